//! `quarry_exemplars(value, timestamp, trace_id, span_id, dataset)` ->
//! `List<Struct{dataset, timestamp, trace_id, span_id, value}>`: up to three real
//! events standing for a group or a heatmap cell.
//!
//! Policy (deterministic: the same rows give the same exemplars however the data
//! is split across partitions, segments and merges):
//!
//! 1. Rows with a trace id come before rows without one in both picks below: an
//!    exemplar is most useful when a click opens its trace.
//! 2. First, the **slowest** event: the largest `value` (what an engineer looking
//!    at a p99 wants to see).
//! 3. Then two **typical** events: the smallest FNV-1a hash of the span id (else of
//!    the trace id, else of timestamp and value) — a uniform-looking sample that
//!    does not change between runs.
//!
//! Ties are broken by timestamp, value, trace id, span id and dataset, so the
//! choice is a total order. Any argument may be null (a column missing from the
//! dataset): such rows are still candidates, ranked last on that criterion.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, LargeStringArray,
    ListArray, StringArray, StringBuilder, StringViewArray, StructArray, TimestampNanosecondArray,
    TimestampNanosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit, TimestampNanosecondType};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use quarry_schema::TIMESTAMP_TZ;

use super::args::float_arg;

/// Name of the aggregate.
pub const EXEMPLARS: &str = "quarry_exemplars";
/// Most exemplars per group.
pub const MAX_EXEMPLARS: usize = 3;
/// Typical events kept per group before the final pick: one more than needed, in
/// case the slowest is also among them.
const SAMPLED_KEPT: usize = MAX_EXEMPLARS;

/// The struct fields of one exemplar, in output order.
pub fn exemplar_fields() -> Fields {
    Fields::from(vec![
        Field::new("dataset", DataType::Utf8, true),
        Field::new("timestamp", timestamp_type(), true),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ])
}

/// The output type: a list of exemplar structs.
pub fn exemplars_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(exemplar_fields()),
        true,
    )))
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIMESTAMP_TZ.into()))
}

/// One event, borrowed from a batch (`S = &str`) or kept (`S = String`).
#[derive(Debug, Clone, PartialEq)]
struct Candidate<S> {
    dataset: Option<S>,
    timestamp: Option<i64>,
    trace_id: Option<S>,
    span_id: Option<S>,
    value: Option<f64>,
    hash: u64,
}

type Owned = Candidate<String>;

impl<S: AsRef<str>> Candidate<S> {
    fn new(
        dataset: Option<S>,
        timestamp: Option<i64>,
        trace_id: Option<S>,
        span_id: Option<S>,
        value: Option<f64>,
    ) -> Self {
        let hash = match (&span_id, &trace_id) {
            (Some(span), _) => fnv1a(span.as_ref().as_bytes()),
            (None, Some(trace)) => fnv1a(trace.as_ref().as_bytes()),
            (None, None) => {
                let mut bytes = timestamp.unwrap_or(0).to_le_bytes().to_vec();
                bytes.extend_from_slice(&value.unwrap_or(0.0).to_bits().to_le_bytes());
                fnv1a(&bytes)
            }
        };
        Candidate {
            dataset,
            timestamp,
            trace_id,
            span_id,
            value,
            hash,
        }
    }

    fn has_trace(&self) -> bool {
        self.trace_id
            .as_ref()
            .is_some_and(|id| !id.as_ref().is_empty())
    }

    fn to_owned(&self) -> Owned {
        let own = |text: &Option<S>| text.as_ref().map(|text| text.as_ref().to_owned());
        Candidate {
            dataset: own(&self.dataset),
            timestamp: self.timestamp,
            trace_id: own(&self.trace_id),
            span_id: own(&self.span_id),
            value: self.value,
            hash: self.hash,
        }
    }

    fn heap_bytes(&self) -> usize {
        [&self.dataset, &self.trace_id, &self.span_id]
            .into_iter()
            .flatten()
            .map(|text| text.as_ref().len())
            .sum()
    }
}

/// FNV-1a, 64 bits: stable across runs and platforms (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// Last resort of both orders: every field, so the order is total.
fn tie_break<A: AsRef<str>, B: AsRef<str>>(a: &Candidate<A>, b: &Candidate<B>) -> Ordering {
    let text = |x: &Option<A>, y: &Option<B>| {
        x.as_ref()
            .map(AsRef::as_ref)
            .cmp(&y.as_ref().map(AsRef::as_ref))
    };
    a.timestamp
        .cmp(&b.timestamp)
        .then_with(|| match (a.value, b.value) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        })
        .then_with(|| text(&a.trace_id, &b.trace_id))
        .then_with(|| text(&a.span_id, &b.span_id))
        .then_with(|| text(&a.dataset, &b.dataset))
}

/// `Less` when `a` is the slower pick (trace id first, then the larger value).
fn slower<A: AsRef<str>, B: AsRef<str>>(a: &Candidate<A>, b: &Candidate<B>) -> Ordering {
    b.has_trace()
        .cmp(&a.has_trace())
        .then_with(|| match (a.value, b.value) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (x, y) => y.is_some().cmp(&x.is_some()),
        })
        .then(a.hash.cmp(&b.hash))
        .then_with(|| tie_break(a, b))
}

/// `Less` when `a` is the earlier typical pick (trace id first, then the hash).
fn sampled_first<A: AsRef<str>, B: AsRef<str>>(a: &Candidate<A>, b: &Candidate<B>) -> Ordering {
    b.has_trace()
        .cmp(&a.has_trace())
        .then(a.hash.cmp(&b.hash))
        .then_with(|| tie_break(a, b))
}

/// Bytes of one group's picks at most, strings aside.
const PICKS_BYTES: usize = size_of::<Picks>() + (SAMPLED_KEPT + 1) * size_of::<Owned>();

/// The candidates kept for one group.
#[derive(Debug, Default)]
struct Picks {
    slowest: Option<Owned>,
    /// Sorted by [`sampled_first`], at most [`SAMPLED_KEPT`].
    sampled: Vec<Owned>,
}

impl Picks {
    /// Considers `candidate`; returns the change in heap bytes.
    fn offer<S: AsRef<str>>(&mut self, candidate: &Candidate<S>) -> isize {
        let mut delta = 0isize;
        let better = self
            .slowest
            .as_ref()
            .is_none_or(|current| slower(candidate, current) == Ordering::Less);
        if better {
            delta += candidate.heap_bytes() as isize;
            if let Some(old) = self.slowest.replace(candidate.to_owned()) {
                delta -= old.heap_bytes() as isize;
            }
        }
        let at = self
            .sampled
            .partition_point(|kept| sampled_first(kept, candidate) == Ordering::Less);
        let duplicate = self
            .sampled
            .get(at)
            .is_some_and(|kept| sampled_first(kept, candidate) == Ordering::Equal);
        if at < SAMPLED_KEPT && !duplicate {
            delta += candidate.heap_bytes() as isize;
            self.sampled.insert(at, candidate.to_owned());
            if self.sampled.len() > SAMPLED_KEPT
                && let Some(dropped) = self.sampled.pop()
            {
                delta -= dropped.heap_bytes() as isize;
            }
        }
        delta
    }

    /// Every kept candidate (the state to merge elsewhere).
    fn kept(&self) -> impl Iterator<Item = &Owned> {
        self.slowest.iter().chain(self.sampled.iter())
    }

    /// The final exemplars: the slowest, then up to two typical ones.
    fn chosen(&self) -> impl Iterator<Item = &Owned> {
        let slowest = self.slowest.as_ref();
        let others = self
            .sampled
            .iter()
            .filter(move |kept| slowest.is_none_or(|slow| slow != *kept))
            .take(MAX_EXEMPLARS - usize::from(slowest.is_some()));
        slowest.into_iter().chain(others)
    }

    /// Bytes of the kept strings (the candidates themselves are counted per
    /// group by [`PICKS_BYTES`]).
    fn heap_bytes(&self) -> usize {
        self.kept().map(Candidate::heap_bytes).sum()
    }
}

/// The arguments of one batch, as typed arrays.
struct Columns {
    value: Float64Array,
    timestamp: TimestampNanosecondArray,
    trace_id: Text,
    span_id: Text,
    dataset: Text,
}

/// A text argument in the string layout it arrived in: casting ids between
/// layouts copied every value of every batch.
enum Text {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl Text {
    fn new(array: &ArrayRef) -> Result<Text> {
        Ok(match array.data_type() {
            DataType::Utf8 => Text::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Text::Large(array.as_string::<i64>().clone()),
            DataType::Utf8View => Text::View(array.as_string_view().clone()),
            _ => Text::Utf8(
                arrow::compute::cast(array, &DataType::Utf8)?
                    .as_string::<i32>()
                    .clone(),
            ),
        })
    }

    /// The text of row `row`, if any.
    fn at(&self, row: usize) -> Option<&str> {
        match self {
            Text::Utf8(array) => array.is_valid(row).then(|| array.value(row)),
            Text::Large(array) => array.is_valid(row).then(|| array.value(row)),
            Text::View(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}

impl Columns {
    fn new(arrays: &[ArrayRef]) -> Result<Columns> {
        let [value, timestamp, trace_id, span_id, dataset] = arrays else {
            return Err(DataFusionError::Internal(format!(
                "{EXEMPLARS} takes 5 arguments, got {}",
                arrays.len()
            )));
        };
        Ok(Columns {
            value: arrow::compute::cast(value, &DataType::Float64)?
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone(),
            timestamp: arrow::compute::cast(timestamp, &timestamp_type())?
                .as_primitive::<TimestampNanosecondType>()
                .clone(),
            trace_id: Text::new(trace_id)?,
            span_id: Text::new(span_id)?,
            dataset: Text::new(dataset)?,
        })
    }

    fn row(&self, row: usize) -> Candidate<&str> {
        Candidate::new(
            self.dataset.at(row),
            self.timestamp
                .is_valid(row)
                .then(|| self.timestamp.value(row)),
            self.trace_id.at(row),
            self.span_id.at(row),
            self.value
                .is_valid(row)
                .then(|| self.value.value(row))
                .filter(|value| !value.is_nan()),
        )
    }
}

/// Exemplar lists, one per group: `lists[g]` holds group `g`'s candidates.
fn to_list<'a>(lists: impl Iterator<Item = Vec<&'a Owned>>) -> ArrayRef {
    let mut dataset = StringBuilder::new();
    let mut timestamp = TimestampNanosecondBuilder::new().with_timezone(TIMESTAMP_TZ);
    let mut trace_id = StringBuilder::new();
    let mut span_id = StringBuilder::new();
    let mut value = Float64Builder::new();
    let mut offsets = vec![0i32];
    for list in lists {
        for candidate in &list {
            dataset.append_option(candidate.dataset.as_deref());
            timestamp.append_option(candidate.timestamp);
            trace_id.append_option(candidate.trace_id.as_deref());
            span_id.append_option(candidate.span_id.as_deref());
            value.append_option(candidate.value);
        }
        let last = offsets.last().copied().unwrap_or(0);
        offsets.push(last + list.len() as i32);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(dataset.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(value.finish()),
    ];
    let structs = StructArray::new(exemplar_fields(), columns, None);
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(
            DataType::Struct(exemplar_fields()),
            true,
        )),
        OffsetBuffer::new(offsets.into()),
        Arc::new(structs),
        None,
    ))
}

/// Calls `offer(row, candidate)` for every candidate of every row of a state list
/// array; sums the heap changes it returns.
fn merge_lists(
    state: &ArrayRef,
    mut offer: impl FnMut(usize, &Candidate<&str>) -> Result<isize>,
) -> Result<isize> {
    let lists = state.as_list::<i32>();
    let structs = lists.values().as_struct();
    let columns = Columns::new(&[
        Arc::clone(structs.column(4)),
        Arc::clone(structs.column(1)),
        Arc::clone(structs.column(2)),
        Arc::clone(structs.column(3)),
        Arc::clone(structs.column(0)),
    ])?;
    let mut delta = 0;
    for (row, window) in lists.offsets().windows(2).enumerate() {
        if lists.is_null(row) {
            continue;
        }
        for item in window[0] as usize..window[1] as usize {
            delta += offer(row, &columns.row(item))?;
        }
    }
    Ok(delta)
}

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExemplarsUdaf {
    signature: Signature,
}

impl Default for ExemplarsUdaf {
    fn default() -> Self {
        ExemplarsUdaf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for ExemplarsUdaf {
    fn name(&self) -> &str {
        EXEMPLARS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, timestamp, trace_id, span_id, dataset] = arg_types else {
            return plan_err!("{EXEMPLARS} takes (value, timestamp, trace_id, span_id, dataset)");
        };
        let time = match timestamp {
            DataType::Timestamp(..) | DataType::Null => timestamp_type(),
            other => return plan_err!("{EXEMPLARS}: timestamp must be a timestamp, got {other}"),
        };
        for (name, data_type) in [
            ("trace_id", trace_id),
            ("span_id", span_id),
            ("dataset", dataset),
        ] {
            if !arrow::compute::can_cast_types(data_type, &DataType::Utf8) {
                return plan_err!("{EXEMPLARS}: {name} must be text, got {data_type}");
            }
        }
        // Text stays in its own layout (read without a copy), other types cast.
        let text = |data_type: &DataType| match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => data_type.clone(),
            _ => DataType::Utf8,
        };
        Ok(vec![
            float_arg(EXEMPLARS, "value", value)?,
            time,
            text(trace_id),
            text(span_id),
            text(dataset),
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(exemplars_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::List(Arc::new(
            to_list(std::iter::once(Vec::new()))
                .as_list::<i32>()
                .clone(),
        )))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<ExemplarsAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "candidates"),
            exemplars_type(),
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::<ExemplarsGroups>::default())
    }
}

/// Exemplars of an ungrouped aggregate.
#[derive(Debug, Default)]
struct ExemplarsAccumulator {
    picks: Picks,
}

impl Accumulator for ExemplarsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = Columns::new(values)?;
        for row in 0..columns.value.len() {
            self.picks.offer(&columns.row(row));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let list = to_list(std::iter::once(self.picks.chosen().collect()));
        Ok(ScalarValue::List(Arc::new(list.as_list::<i32>().clone())))
    }

    fn size(&self) -> usize {
        PICKS_BYTES + self.picks.heap_bytes()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = to_list(std::iter::once(self.picks.kept().collect()));
        Ok(vec![ScalarValue::List(Arc::new(
            list.as_list::<i32>().clone(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(state) = states.first() else {
            return Ok(());
        };
        let picks = &mut self.picks;
        merge_lists(state, |_, candidate| Ok(picks.offer(candidate)))?;
        Ok(())
    }
}

/// Exemplars per group.
#[derive(Default)]
struct ExemplarsGroups {
    groups: Vec<Picks>,
    heap: usize,
}

impl ExemplarsGroups {
    fn grow(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, Picks::default);
        }
    }

    fn apply(&mut self, delta: isize) {
        self.heap = self.heap.saturating_add_signed(delta);
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Picks> {
        let taken = emit_to.take_needed(&mut self.groups);
        let freed: usize = taken.iter().map(Picks::heap_bytes).sum();
        self.heap = self.heap.saturating_sub(freed);
        taken
    }
}

impl GroupsAccumulator for ExemplarsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let columns = Columns::new(values)?;
        let mut delta = 0;
        for (row, group) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|filter| !(filter.is_valid(row) && filter.value(row))) {
                continue;
            }
            let Some(picks) = self.groups.get_mut(*group) else {
                return Err(DataFusionError::Internal(format!(
                    "group {group} out of range"
                )));
            };
            delta += picks.offer(&columns.row(row));
        }
        self.apply(delta);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(to_list(taken.iter().map(|picks| picks.chosen().collect())))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![to_list(
            taken.iter().map(|picks| picks.kept().collect()),
        )])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let Some(state) = values.first() else {
            return Ok(());
        };
        let groups = &mut self.groups;
        let delta = merge_lists(state, |row, candidate| {
            let picks = group_indices
                .get(row)
                .and_then(|group| groups.get_mut(*group))
                .ok_or_else(|| {
                    DataFusionError::Internal(format!("state row {row} has no group"))
                })?;
            Ok(picks.offer(candidate))
        })?;
        self.apply(delta);
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let columns = Columns::new(values)?;
        let owned: Vec<Option<Owned>> = (0..columns.value.len())
            .map(|row| {
                let passes =
                    opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row));
                passes.then(|| columns.row(row).to_owned())
            })
            .collect();
        Ok(vec![to_list(
            owned.iter().map(|candidate| candidate.iter().collect()),
        )])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * PICKS_BYTES + self.heap
    }
}
