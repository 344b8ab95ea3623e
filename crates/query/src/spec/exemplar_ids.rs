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

use std::collections::HashMap;

use serde_json::Value;

use super::json::json_values;
use super::plan::{
    DATASET_INPUT, EXEMPLAR_VALUE, Plan, SPAN_ID_INPUT, TIME_NS, TRACE_ID_INPUT, input, key,
};
use super::result::{Exemplar, Group, Heatmap};
use crate::QueryError;

/// Most time ranges the lookup's filter lists for the scan to prune with.
const MAX_RANGES: usize = 16;

/// Fills in the ids of every exemplar of `groups` and `heatmaps` (one read of
/// the picked events).
pub(super) async fn fill_exemplar_ids(
    plan: &Plan,
    groups: &mut [Group],
    heatmaps: &mut [Heatmap],
) -> Result<(), QueryError> {
    if !plan.has_exemplars() {
        return Ok(());
    }
    let mut times: Vec<i64> = groups
        .iter()
        .flat_map(|group| group.exemplars.iter())
        .chain(
            heatmaps
                .iter()
                .flat_map(|heatmap| heatmap.cells.iter())
                .flat_map(|cell| cell.exemplars.iter()),
        )
        .filter_map(exemplar_ns)
        .collect();
    times.sort_unstable();
    times.dedup();
    if times.is_empty() {
        return Ok(());
    }
    let ranges = time_ranges(&times, MAX_RANGES);
    let batches = plan.exemplar_events(&times, &ranges)?.collect().await?;
    let events = Events::new(&batches, plan)?;
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
mod tests {
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
        let all = time_ranges(&times, 100);
        assert_eq!(all.len(), times.len());
    }
}
