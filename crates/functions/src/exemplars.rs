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
//!    the trace id, else `mix64(timestamp ^ mix64(value bits))`, splitmix64's
//!    finalizer) — a uniform-looking sample that does not change between runs.
//!
//! Ties are broken by timestamp, value, trace id, span id and dataset, so the
//! choice is a total order. Any argument may be null (a column missing from the
//! dataset): such rows are still candidates, ranked last on that criterion.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::args::float_arg;
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

/// One event as the policy orders it, borrowed from a batch or from kept picks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate<'a> {
    dataset: Option<&'a str>,
    timestamp: Option<i64>,
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    value: Option<f64>,
    hash: u64,
}

impl<'a> Candidate<'a> {
    fn new(
        dataset: Option<&'a str>,
        timestamp: Option<i64>,
        trace_id: Option<&'a str>,
        span_id: Option<&'a str>,
        value: Option<f64>,
    ) -> Self {
        let hash = row_hash(span_id, trace_id, timestamp, value);
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
        self.trace_id.is_some_and(|id| !id.is_empty())
    }

    fn rank(&self) -> Rank {
        Rank {
            has_trace: self.has_trace(),
            value: self.value,
            hash: self.hash,
        }
    }
}

/// A candidate kept in a group's picks, in 40 bytes: a state per (time bucket,
/// fine value bin) or per (time bucket, customer) keeps one of these for nearly
/// every row, so its size is the pass's memory and its copies the pass's time.
/// The dataset is an index into the accumulator's [`Names`]; ids, which the
/// query spec's pass never passes, are shared behind one pointer.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    timestamp: i64,
    value: f64,
    hash: u64,
    ids: Option<Arc<Ids>>,
    dataset: u32,
    has_timestamp: bool,
    has_value: bool,
    has_trace: bool,
}

/// The ids of a kept candidate.
#[derive(Debug, PartialEq)]
struct Ids {
    trace_id: Option<Box<str>>,
    span_id: Option<Box<str>>,
}

/// [`Kept::dataset`] of a candidate without one.
const NO_NAME: u32 = u32::MAX;

impl Kept {
    fn new(candidate: &Candidate<'_>, names: &mut Names) -> Kept {
        let ids = (candidate.trace_id.is_some() || candidate.span_id.is_some()).then(|| {
            Arc::new(Ids {
                trace_id: candidate.trace_id.map(Box::from),
                span_id: candidate.span_id.map(Box::from),
            })
        });
        Kept {
            timestamp: candidate.timestamp.unwrap_or(0),
            value: candidate.value.unwrap_or(0.0),
            hash: candidate.hash,
            ids,
            dataset: candidate.dataset.map_or(NO_NAME, |name| names.index(name)),
            has_timestamp: candidate.timestamp.is_some(),
            has_value: candidate.value.is_some(),
            has_trace: candidate.has_trace(),
        }
    }

    fn rank(&self) -> Rank {
        Rank {
            has_trace: self.has_trace,
            value: self.has_value.then_some(self.value),
            hash: self.hash,
        }
    }

    /// The candidate this keeps, its texts read from `names` and its ids.
    fn view<'a>(&'a self, names: &'a Names) -> Candidate<'a> {
        let ids = self.ids.as_deref();
        Candidate {
            dataset: names.name(self.dataset),
            timestamp: self.has_timestamp.then_some(self.timestamp),
            trace_id: ids.and_then(|ids| ids.trace_id.as_deref()),
            span_id: ids.and_then(|ids| ids.span_id.as_deref()),
            value: self.has_value.then_some(self.value),
            hash: self.hash,
        }
    }

    /// Bytes of the ids (the dataset name is counted once, in [`Names`]).
    fn heap_bytes(&self) -> usize {
        self.ids.as_deref().map_or(0, |ids| {
            [&ids.trace_id, &ids.span_id]
                .into_iter()
                .flatten()
                .map(|text| text.len())
                .sum()
        })
    }
}

/// The dataset names of an accumulator's kept candidates, each stored once.
/// Batches come one dataset at a time, so the last name found is tried first.
#[derive(Debug, Default)]
struct Names {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    last: Option<u32>,
    bytes: usize,
}

impl Names {
    fn index(&mut self, name: &str) -> u32 {
        if let Some(last) = self.last
            && self
                .names
                .get(last as usize)
                .is_some_and(|kept| kept.as_ref() == name)
        {
            return last;
        }
        let index = match self.index.get(name) {
            Some(index) => *index,
            None => {
                let index = self.names.len() as u32;
                let shared: Arc<str> = Arc::from(name);
                self.names.push(Arc::clone(&shared));
                self.index.insert(shared, index);
                self.bytes += name.len();
                index
            }
        };
        self.last = Some(index);
        index
    }

    fn name(&self, index: u32) -> Option<&str> {
        self.names.get(index as usize).map(AsRef::as_ref)
    }

    /// Bytes of the names and their index.
    fn heap_bytes(&self) -> usize {
        self.bytes + self.names.capacity() * (size_of::<Arc<str>>() * 2 + 8)
    }
}

/// The hash a row is sampled by: of its span id, else its trace id, else its
/// timestamp and value.
fn row_hash(
    span_id: Option<&str>,
    trace_id: Option<&str>,
    timestamp: Option<i64>,
    value: Option<f64>,
) -> u64 {
    match (span_id, trace_id) {
        (Some(span), _) => fnv1a(span.as_bytes()),
        (None, Some(trace)) => fnv1a(trace.as_bytes()),
        // The query API's case (it passes no ids): one hash per row, so two
        // multiplications rather than a byte loop.
        (None, None) => {
            mix64(timestamp.unwrap_or(0) as u64 ^ mix64(value.unwrap_or(0.0).to_bits()))
        }
    }
}

/// splitmix64's finalizer: a stable 64-bit mix of `z`.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What orders a row in both picks before the tie-break. Read alone, it lets
/// most rows be turned away without building a candidate: they lose to a
/// group's current picks on it already.
#[derive(Debug, Clone, Copy)]
struct Rank {
    has_trace: bool,
    value: Option<f64>,
    hash: u64,
}

impl Rank {
    /// `Less` when `self` is the slower pick (trace id first, then the larger
    /// value, then the hash); `Equal` leaves it to the tie-break.
    fn slower_cmp(&self, other: &Rank) -> Ordering {
        other
            .has_trace
            .cmp(&self.has_trace)
            .then_with(|| match (self.value, other.value) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (x, y) => y.is_some().cmp(&x.is_some()),
            })
            .then(self.hash.cmp(&other.hash))
    }

    /// `Less` when `self` is the earlier typical pick (trace id first, then the
    /// hash); `Equal` leaves it to the tie-break.
    fn sampled_cmp(&self, other: &Rank) -> Ordering {
        other
            .has_trace
            .cmp(&self.has_trace)
            .then(self.hash.cmp(&other.hash))
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
fn tie_break(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.timestamp
        .cmp(&b.timestamp)
        .then_with(|| match (a.value, b.value) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        })
        .then_with(|| a.trace_id.cmp(&b.trace_id))
        .then_with(|| a.span_id.cmp(&b.span_id))
        .then_with(|| a.dataset.cmp(&b.dataset))
}

/// `Less` when `a` is the slower pick than `b` (trace id first, then the
/// larger value).
fn slower(a: &Candidate<'_>, b: &Kept, names: &Names) -> Ordering {
    a.rank()
        .slower_cmp(&b.rank())
        .then_with(|| tie_break(a, &b.view(names)))
}

/// `Less` when `a` is the earlier typical pick than `b` (trace id first, then
/// the hash).
fn sampled_first(a: &Kept, b: &Candidate<'_>, names: &Names) -> Ordering {
    a.rank()
        .sampled_cmp(&b.rank())
        .then_with(|| tie_break(&a.view(names), b))
}

/// Bytes of one group's picks, ids aside.
const PICKS_BYTES: usize = size_of::<Picks>();

/// The candidates kept for one group, in place (no allocation per group).
#[derive(Debug, Default)]
struct Picks {
    slowest: Option<Kept>,
    /// Sorted by [`sampled_first`]; the kept ones are a prefix.
    sampled: [Option<Kept>; SAMPLED_KEPT],
}

impl Picks {
    /// Whether a row of `rank` surely changes nothing: it is neither slower
    /// than the slowest kept nor earlier than the last typical pick kept (of a
    /// full list), before any tie-break.
    fn turns_away(&self, rank: &Rank) -> bool {
        let Some(slowest) = &self.slowest else {
            return false;
        };
        rank.slower_cmp(&slowest.rank()) == Ordering::Greater
            && self.sampled[SAMPLED_KEPT - 1]
                .as_ref()
                .is_some_and(|last| rank.sampled_cmp(&last.rank()) == Ordering::Greater)
    }

    /// The typical picks kept, in order.
    fn sampled(&self) -> impl Iterator<Item = &Kept> {
        self.sampled.iter().map_while(Option::as_ref)
    }

    /// Considers `candidate`; returns the change in heap bytes.
    fn offer(&mut self, candidate: &Candidate<'_>, names: &mut Names) -> isize {
        let better = self
            .slowest
            .as_ref()
            .is_none_or(|current| slower(candidate, current, names) == Ordering::Less);
        let kept = self.sampled().count();
        let at = self
            .sampled()
            .position(|kept| sampled_first(kept, candidate, names) != Ordering::Less)
            .unwrap_or(kept);
        let duplicate = self.sampled[..kept]
            .get(at)
            .and_then(Option::as_ref)
            .is_some_and(|kept| sampled_first(kept, candidate, names) == Ordering::Equal);
        let typical = at < SAMPLED_KEPT && !duplicate;
        if !better && !typical {
            return 0;
        }
        let new = Kept::new(candidate, names);
        let mut delta = 0isize;
        if better {
            delta += new.heap_bytes() as isize;
            if let Some(old) = self.slowest.replace(new.clone()) {
                delta -= old.heap_bytes() as isize;
            }
        }
        if typical {
            delta += new.heap_bytes() as isize;
            // The last kept pick falls off a full list; the rest move down one.
            if let Some(dropped) = self.sampled[SAMPLED_KEPT - 1].take() {
                delta -= dropped.heap_bytes() as isize;
            }
            self.sampled[at..].rotate_right(1);
            self.sampled[at] = Some(new);
        }
        delta
    }

    /// Offers row `row` of `columns` unless its rank alone turns it away.
    fn consider(&mut self, columns: &Columns, row: usize, names: &mut Names) -> isize {
        if self.turns_away(&columns.rank(row)) {
            0
        } else {
            self.offer(&columns.row(row), names)
        }
    }

    /// Every kept candidate, the slowest once even when it is also a typical
    /// pick (the state to merge elsewhere: offering it once considers it for
    /// both picks, and a group of one event, the common case of a state per
    /// (time bucket, customer), keeps one candidate instead of two).
    fn kept(&self) -> impl Iterator<Item = &Kept> {
        let slowest = self.slowest.as_ref();
        slowest.into_iter().chain(
            self.sampled()
                .filter(move |kept| slowest.is_none_or(|slow| slow != *kept)),
        )
    }

    /// The final exemplars: the slowest, then up to two typical ones.
    fn chosen(&self) -> impl Iterator<Item = &Kept> {
        let slowest = self.slowest.as_ref();
        let others = self
            .sampled()
            .filter(move |kept| slowest.is_none_or(|slow| slow != *kept))
            .take(MAX_EXEMPLARS - usize::from(slowest.is_some()));
        slowest.into_iter().chain(others)
    }

    /// Bytes of the kept ids (the candidates themselves are counted per group
    /// by [`PICKS_BYTES`]).
    fn heap_bytes(&self) -> usize {
        self.slowest
            .iter()
            .chain(self.sampled())
            .map(Kept::heap_bytes)
            .sum()
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

    fn row(&self, row: usize) -> Candidate<'_> {
        Candidate::new(
            self.dataset.at(row),
            self.timestamp(row),
            self.trace_id.at(row),
            self.span_id.at(row),
            self.value(row),
        )
    }

    fn timestamp(&self, row: usize) -> Option<i64> {
        self.timestamp
            .is_valid(row)
            .then(|| self.timestamp.value(row))
    }

    fn value(&self, row: usize) -> Option<f64> {
        self.value
            .is_valid(row)
            .then(|| self.value.value(row))
            .filter(|value| !value.is_nan())
    }

    /// The [`Rank`] of row `row`, read without its other columns.
    fn rank(&self, row: usize) -> Rank {
        let trace_id = self.trace_id.at(row);
        let value = self.value(row);
        let span_id = self.span_id.at(row);
        let hash = match (span_id, trace_id) {
            (None, None) => row_hash(None, None, self.timestamp(row), value),
            (span_id, trace_id) => row_hash(span_id, trace_id, None, None),
        };
        Rank {
            has_trace: trace_id.is_some_and(|id| !id.is_empty()),
            value,
            hash,
        }
    }
}

/// Exemplar lists, one per group: `lists[g]` holds group `g`'s candidates.
fn to_list<'a>(lists: impl Iterator<Item = Vec<&'a Kept>>, names: &Names) -> ArrayRef {
    let mut dataset = StringBuilder::new();
    let mut timestamp = TimestampNanosecondBuilder::new().with_timezone(TIMESTAMP_TZ);
    let mut trace_id = StringBuilder::new();
    let mut span_id = StringBuilder::new();
    let mut value = Float64Builder::new();
    let mut offsets = vec![0i32];
    for list in lists {
        for kept in &list {
            let candidate = kept.view(names);
            dataset.append_option(candidate.dataset);
            timestamp.append_option(candidate.timestamp);
            trace_id.append_option(candidate.trace_id);
            span_id.append_option(candidate.span_id);
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

/// Calls `offer(row, columns, item)` for every candidate (`item` of `columns`)
/// of every row of a state list array; sums the heap changes it returns.
fn merge_lists(
    state: &ArrayRef,
    mut offer: impl FnMut(usize, &Columns, usize) -> Result<isize>,
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
            delta += offer(row, &columns, item)?;
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
            to_list(std::iter::once(Vec::new()), &Names::default())
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
    names: Names,
}

impl Accumulator for ExemplarsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns = Columns::new(values)?;
        for row in 0..columns.value.len() {
            self.picks.consider(&columns, row, &mut self.names);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let list = to_list(std::iter::once(self.picks.chosen().collect()), &self.names);
        Ok(ScalarValue::List(Arc::new(list.as_list::<i32>().clone())))
    }

    fn size(&self) -> usize {
        PICKS_BYTES + self.picks.heap_bytes() + self.names.heap_bytes()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = to_list(std::iter::once(self.picks.kept().collect()), &self.names);
        Ok(vec![ScalarValue::List(Arc::new(
            list.as_list::<i32>().clone(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(state) = states.first() else {
            return Ok(());
        };
        let (picks, names) = (&mut self.picks, &mut self.names);
        merge_lists(state, |_, columns, item| {
            Ok(picks.consider(columns, item, names))
        })?;
        Ok(())
    }
}

/// Exemplars per group.
#[derive(Default)]
struct ExemplarsGroups {
    groups: Vec<Picks>,
    names: Names,
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
            delta += picks.consider(&columns, row, &mut self.names);
        }
        self.apply(delta);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(to_list(
            taken.iter().map(|picks| picks.chosen().collect()),
            &self.names,
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![to_list(
            taken.iter().map(|picks| picks.kept().collect()),
            &self.names,
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
        let (groups, names) = (&mut self.groups, &mut self.names);
        let delta = merge_lists(state, |row, columns, item| {
            let picks = group_indices
                .get(row)
                .and_then(|group| groups.get_mut(*group))
                .ok_or_else(|| {
                    DataFusionError::Internal(format!("state row {row} has no group"))
                })?;
            Ok(picks.consider(columns, item, names))
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
        let mut names = Names::default();
        let kept: Vec<Option<Kept>> = (0..columns.value.len())
            .map(|row| {
                let passes =
                    opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row));
                passes.then(|| Kept::new(&columns.row(row), &mut names))
            })
            .collect();
        Ok(vec![to_list(
            kept.iter().map(|candidate| candidate.iter().collect()),
            &names,
        )])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * PICKS_BYTES + self.heap + self.names.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with repeated values and hashes, some without ids or values: the
    /// ranks that turn rows away must not change any pick.
    fn columns(rows: usize) -> Columns {
        let pick = |i: usize, m: usize| (i * 7919 + 13) % m;
        let value: Float64Array = (0..rows)
            .map(|i| (pick(i, 5) != 0).then(|| (pick(i, 11) as f64) * 1.5))
            .collect();
        let timestamp: TimestampNanosecondArray = (0..rows)
            .map(|i| Some(1_000 + pick(i, 17) as i64))
            .collect();
        let trace_id: StringArray = (0..rows)
            .map(|i| match pick(i, 6) {
                0 => None,
                1 => Some(String::new()),
                _ => Some(format!("t{}", pick(i, 40))),
            })
            .collect();
        let span_id: StringArray = (0..rows)
            .map(|i| (pick(i, 4) != 0).then(|| format!("s{}", pick(i, 30))))
            .collect();
        let dataset: StringArray = (0..rows).map(|i| Some(format!("d{}", i % 2))).collect();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(value),
            Arc::new(timestamp.with_timezone(TIMESTAMP_TZ)),
            Arc::new(trace_id),
            Arc::new(span_id),
            Arc::new(dataset),
        ];
        Columns::new(&arrays).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn rows_turned_away_by_rank_would_not_have_changed_the_picks() {
        let columns = columns(500);
        let mut every_row = Picks::default();
        let mut ranked = Picks::default();
        let mut names = Names::default();
        let mut turned_away = 0;
        for row in 0..500 {
            let candidate = columns.row(row);
            let rank = columns.rank(row);
            let full = candidate.rank();
            assert_eq!(
                (rank.has_trace, rank.value.map(f64::to_bits), rank.hash),
                (full.has_trace, full.value.map(f64::to_bits), full.hash),
                "row {row}"
            );
            every_row.offer(&candidate, &mut names);
            if ranked.turns_away(&rank) {
                turned_away += 1;
            } else {
                ranked.offer(&candidate, &mut names);
            }
            assert_eq!(
                ranked.kept().collect::<Vec<_>>(),
                every_row.kept().collect::<Vec<_>>()
            );
        }
        assert!(turned_away > 400, "only {turned_away} rows turned away");
    }

    /// Picks merged from the states of any split of the rows (through the
    /// state lists, each part with names of its own) are the picks of all
    /// rows, although a state lists the slowest once when it is also a typical
    /// pick.
    #[test]
    fn merged_states_pick_as_all_rows_do() -> Result<()> {
        let columns = columns(300);
        let mut names = Names::default();
        let mut all = Picks::default();
        for row in 0..300 {
            all.offer(&columns.row(row), &mut names);
        }
        let chosen = |picks: &Picks, names: &Names| -> Vec<String> {
            picks
                .chosen()
                .map(|kept| format!("{:?}", kept.view(names)))
                .collect()
        };
        for parts in [1, 2, 7, 60, 300] {
            let mut merged = Picks::default();
            let mut merged_names = Names::default();
            for part in 0..parts {
                let mut picks = Picks::default();
                let mut part_names = Names::default();
                for row in (0..300).filter(|row| row % parts == part) {
                    picks.offer(&columns.row(row), &mut part_names);
                }
                let state = to_list(std::iter::once(picks.kept().collect()), &part_names);
                merge_lists(&state, |_, columns, item| {
                    Ok(merged.consider(columns, item, &mut merged_names))
                })?;
            }
            assert_eq!(
                chosen(&merged, &merged_names),
                chosen(&all, &names),
                "{parts} parts"
            );
        }
        Ok(())
    }

    #[test]
    fn a_kept_candidate_is_small() {
        assert!(
            size_of::<Option<Kept>>() <= 40,
            "{}",
            size_of::<Option<Kept>>()
        );
    }
}
