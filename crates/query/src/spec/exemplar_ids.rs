//! The trace and span ids of the exemplars an answer shows, looked up after the
//! one pass.
//!
//! The pass picks each group's and cell's exemplars from their value, time and
//! dataset alone: decoding the ids of every matching row, to keep three per
//! group, cost more than the rest of the answer. The picked events are then
//! read again by their timestamps, which the segments are sorted by: a few
//! row groups and pages, and (with filter pushdown) the ids of only those rows.
//!
//! An exemplar is matched to an event of the same dataset, timestamp and value
//! (and, for a group, the same breakdown values), so it is always an event of
//! its group or cell; among several such events the smallest (trace id, span
//! id) is taken, so the answer does not depend on the read order.
//!
//! Events sharing timestamps (data sent with whole-second times) could make
//! the lookup return far more rows than exemplars: it reads at most
//! [`MAX_LOOKUP_ROWS`], and an exemplar whose event is not among them keeps
//! its time and value without ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlanBuilder, cast, lit};
use datafusion::physical_plan::collect;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use quarry_functions::in_sorted_expr;
use quarry_schema::{TIMESTAMP, TIMESTAMP_TZ};
use serde_json::Value;

use super::columns::column;
use super::filters::time_literal;
use super::json::json_values;
use super::plan::{
    DATASET_INPUT, EXEMPLAR_VALUE, Plan, SPAN_ID_INPUT, TIME_NS, TRACE_ID_INPUT, input, key,
};
use super::result::{Exemplar, Group, Heatmap};
use quarry_engine::QueryError;

/// Most events the id lookup reads (memory stays bounded whatever the data).
const MAX_LOOKUP_ROWS: usize = 100_000;

/// Fills in the ids of every exemplar of `groups` and `heatmaps` (one read of
/// the picked events).
pub(super) async fn fill_exemplar_ids(
    context: &SessionContext,
    plan: &Plan,
    groups: &mut [Group],
    heatmaps: &mut [Heatmap],
) -> Result<(), QueryError> {
    if !plan.has_exemplars() {
        return Ok(());
    }
    // Per dataset, the sorted times of its exemplars.
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for exemplar in groups
        .iter()
        .flat_map(|group| group.exemplars.iter())
        .chain(
            heatmaps
                .iter()
                .flat_map(|heatmap| heatmap.cells.iter())
                .flat_map(|cell| cell.exemplars.iter()),
        )
    {
        if let (Some(dataset), Some(time)) = (&exemplar.dataset, exemplar_ns(exemplar)) {
            times.entry(dataset.clone()).or_default().push(time);
        }
    }
    if times.is_empty() {
        return Ok(());
    }
    for list in times.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    let started = std::time::Instant::now();
    let physical = exemplar_events(plan, context, &times)?
        .limit(0, Some(MAX_LOOKUP_ROWS))?
        .create_physical_plan()
        .await?;
    let planned = started.elapsed();
    let batches = collect(Arc::clone(&physical), context.task_ctx()).await?;
    let read = started.elapsed();
    let events = Events::new(&batches, plan)?;
    tracing::debug!(
        times = times.values().map(Vec::len).sum::<usize>(),
        rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        plan_ms = planned.as_secs_f64() * 1e3,
        read_ms = (read - planned).as_secs_f64() * 1e3,
        events_ms = (started.elapsed() - read).as_secs_f64() * 1e3,
        "spec exemplar ids"
    );
    tracing::trace!(
        plan = %DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true),
        "spec exemplar ids plan"
    );
    let breakdowns = &plan.spec.breakdowns;
    for group in groups.iter_mut() {
        let keys: Vec<Value> = breakdowns
            .iter()
            .map(|name| group.key.get(name).cloned().unwrap_or(Value::Null))
            .collect();
        for exemplar in &mut group.exemplars {
            let found = events.find(exemplar, |event| {
                event.value == exemplar.value.map(f64::to_bits) && event.keys == keys
            });
            fill(exemplar, found);
        }
    }
    for (heatmap, index) in heatmaps.iter_mut().zip(&plan.heatmaps) {
        for cell in &mut heatmap.cells {
            for exemplar in &mut cell.exemplars {
                let wanted = exemplar.value.map(f64::to_bits);
                let found = events.find(exemplar, |event| {
                    event.heatmap_values.get(index) == Some(&wanted)
                });
                fill(exemplar, found);
            }
        }
    }
    Ok(())
}

fn fill(exemplar: &mut Exemplar, event: Option<&Event>) {
    if let Some(event) = event {
        exemplar.trace_id.clone_from(&event.trace_id);
        exemplar.span_id.clone_from(&event.span_id);
    }
}

/// The exemplar's time in nanoseconds (from its RFC 3339 text).
fn exemplar_ns(exemplar: &Exemplar) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&exemplar.timestamp)
        .ok()?
        .timestamp_nanos_opt()
}

/// The events behind exemplars, read to look up their ids: per dataset, the
/// events at the given times (ns). Columns: time (ns, [`TIME_NS`]), dataset,
/// trace and span ids, breakdown keys, group exemplar value
/// ([`EXEMPLAR_VALUE`]) and heatmap inputs.
///
/// A few times are a filter: per dataset (a branch of `__all__` keeps its
/// own times only, the others' branches fold away), the ranges that cover
/// its times for the scan to skip row groups and pages, then the exact times
/// as one list (`quarry_in_sorted`; an IN list of many times cost more to plan
/// than the scan), so only the wanted rows' ids are decoded. Many times (a
/// heatmap's cells, one every few hundred rows) are a semi-join with a table of
/// them instead: the filter then selects rows on nearly every page, and reading
/// pages in so many pieces cost more than decoding them whole.
fn exemplar_events(
    plan: &Plan,
    context: &SessionContext,
    times: &BTreeMap<String, Vec<i64>>,
) -> Result<DataFrame, QueryError> {
    let mut selected = vec![
        cast(column(TIMESTAMP), DataType::Int64).alias(TIME_NS),
        column(DATASET_INPUT),
        cast(column(TRACE_ID_INPUT), DataType::Utf8).alias(TRACE_ID_INPUT),
        cast(column(SPAN_ID_INPUT), DataType::Utf8).alias(SPAN_ID_INPUT),
        plan.exemplar_value().alias(EXEMPLAR_VALUE),
    ];
    selected.extend(plan.keys());
    selected.extend(
        plan.heatmaps
            .iter()
            .map(|index| cast(column(&input(*index)), DataType::Float64).alias(input(*index))),
    );
    let count: usize = times.values().map(Vec::len).sum();
    if count <= EXEMPLAR_TIMES_FILTERED {
        let wanted = times
            .iter()
            .map(|(dataset, times)| {
                column(DATASET_INPUT)
                    .eq(lit(dataset.as_str()))
                    .and(covering_ranges(times))
                    .and(in_sorted_expr(column(TIMESTAMP), times))
            })
            .reduce(Expr::or)
            .unwrap_or(lit(false));
        return Ok(plan.base.clone().filter(wanted)?.select(selected)?);
    }
    let datasets: Vec<&str> = times
        .iter()
        .flat_map(|(dataset, times)| times.iter().map(move |_| dataset.as_str()))
        .collect();
    let stamps: Vec<i64> = times.values().flatten().copied().collect();
    let table = RecordBatch::try_from_iter(vec![
        (
            WANTED_DATASET,
            Arc::new(StringArray::from(datasets)) as ArrayRef,
        ),
        (
            WANTED_TIME,
            Arc::new(TimestampNanosecondArray::from(stamps).with_timezone(TIMESTAMP_TZ)),
        ),
    ])?;
    let (state, plan) = plan
        .base
        .clone()
        .filter(
            column(DATASET_INPUT)
                .in_list(times.keys().map(|name| lit(name.as_str())).collect(), false),
        )?
        .into_parts();
    let joined = LogicalPlanBuilder::from(plan)
        .join(
            context.read_batch(table)?.logical_plan().clone(),
            JoinType::LeftSemi,
            (
                vec![
                    datafusion::common::Column::new_unqualified(DATASET_INPUT),
                    datafusion::common::Column::new_unqualified(TIMESTAMP),
                ],
                vec![
                    datafusion::common::Column::new_unqualified(WANTED_DATASET),
                    datafusion::common::Column::new_unqualified(WANTED_TIME),
                ],
            ),
            None,
        )?
        .build()?;
    Ok(DataFrame::new(state, joined).select(selected)?)
}

/// Most exemplar times the lookup lists in a filter; beyond, it joins.
const EXEMPLAR_TIMES_FILTERED: usize = 512;
/// Most time ranges per dataset the lookup's filter lists for pruning.
const EXEMPLAR_RANGES: usize = 8;
/// Columns of the table of wanted exemplar times.
const WANTED_DATASET: &str = "__quarry_wanted_dataset";
const WANTED_TIME: &str = "__quarry_wanted_time";

/// `timestamp` within one of at most [`EXEMPLAR_RANGES`] ranges covering
/// `sorted` times: a predicate the scan prunes row groups and pages with.
fn covering_ranges(sorted: &[i64]) -> Expr {
    time_ranges(sorted, EXEMPLAR_RANGES)
        .into_iter()
        .map(|(first, last)| {
            column(TIMESTAMP)
                .gt_eq(time_literal(first))
                .and(column(TIMESTAMP).lt_eq(time_literal(last)))
        })
        .reduce(Expr::or)
        .unwrap_or(lit(false))
}

/// At most `most` ranges `[first, last]` covering every time of `sorted`: the
/// widest gaps between consecutive times split them.
fn time_ranges(sorted: &[i64], most: usize) -> Vec<(i64, i64)> {
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let mut gaps: Vec<(i64, usize)> = sorted
        .windows(2)
        .enumerate()
        .map(|(at, pair)| (pair[1] - pair[0], at))
        .collect();
    gaps.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut cuts: Vec<usize> = gaps
        .into_iter()
        .take(most.saturating_sub(1))
        .filter(|(gap, _)| *gap > 0)
        .map(|(_, at)| at)
        .collect();
    cuts.sort_unstable();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut start = *first;
    for at in cuts {
        ranges.push((start, sorted[at]));
        start = sorted[at + 1];
    }
    ranges.push((start, *last));
    ranges
}

/// One looked-up event.
struct Event {
    trace_id: Option<String>,
    span_id: Option<String>,
    /// The group exemplar value, as f64 bits (exact comparison).
    value: Option<u64>,
    keys: Vec<Value>,
    /// Per HEATMAP calculation index, its column value as f64 bits.
    heatmap_values: HashMap<usize, Option<u64>>,
}

/// The looked-up events by (dataset, time ns), each list in (trace id, span
/// id) order.
struct Events {
    by_time: HashMap<(Option<String>, i64), Vec<Event>>,
}

impl Events {
    fn new(batches: &[arrow::array::RecordBatch], plan: &Plan) -> Result<Events, QueryError> {
        let mut by_time: HashMap<(Option<String>, i64), Vec<Event>> = HashMap::new();
        for batch in batches {
            let column = |name: &str| -> Result<Vec<Value>, QueryError> {
                let index = batch.schema().index_of(name)?;
                json_values(batch.column(index))
            };
            let times = column(TIME_NS)?;
            let datasets = column(DATASET_INPUT)?;
            let trace_ids = column(TRACE_ID_INPUT)?;
            let span_ids = column(SPAN_ID_INPUT)?;
            let values = column(EXEMPLAR_VALUE)?;
            let keys = (0..plan.spec.breakdowns.len())
                .map(|index| column(&key(index)))
                .collect::<Result<Vec<_>, _>>()?;
            let heatmap_values = plan
                .heatmaps
                .iter()
                .map(|index| Ok((*index, column(&input(*index))?)))
                .collect::<Result<Vec<_>, QueryError>>()?;
            let text = |value: &Value| value.as_str().map(str::to_owned);
            for row in 0..batch.num_rows() {
                let Some(time) = times[row].as_i64() else {
                    continue;
                };
                let event = Event {
                    trace_id: text(&trace_ids[row]),
                    span_id: text(&span_ids[row]),
                    value: values[row].as_f64().map(f64::to_bits),
                    keys: keys.iter().map(|values| values[row].clone()).collect(),
                    heatmap_values: heatmap_values
                        .iter()
                        .map(|(index, values)| (*index, values[row].as_f64().map(f64::to_bits)))
                        .collect(),
                };
                by_time
                    .entry((text(&datasets[row]), time))
                    .or_default()
                    .push(event);
            }
        }
        for events in by_time.values_mut() {
            events.sort_by(|a, b| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)));
        }
        Ok(Events { by_time })
    }

    /// The first event of `exemplar`'s dataset and time that `matches`.
    fn find(&self, exemplar: &Exemplar, matches: impl Fn(&Event) -> bool) -> Option<&Event> {
        let time = exemplar_ns(exemplar)?;
        self.by_time
            .get(&(exemplar.dataset.clone(), time))?
            .iter()
            .find(|event| matches(event))
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::time_ranges;

    #[test]
    fn ranges_cover_every_time_split_at_the_widest_gaps() {
        let times = [1, 2, 3, 100, 101, 500, 1000, 1001];
        assert_eq!(
            time_ranges(&times, 3),
            vec![(1, 101), (500, 500), (1000, 1001)]
        );
        assert_eq!(time_ranges(&times, 1), vec![(1, 1001)]);
        assert_eq!(time_ranges(&[7], 4), vec![(7, 7)]);
        assert_eq!(time_ranges(&[], 4), Vec::<(i64, i64)>::new());
        assert_eq!(time_ranges(&times, 100).len(), times.len());
    }
}
