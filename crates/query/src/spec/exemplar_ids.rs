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

use std::collections::{BTreeMap, HashMap};

use datafusion::prelude::SessionContext;

use serde_json::Value;

use super::json::json_values;
use super::plan::{
    DATASET_INPUT, EXEMPLAR_VALUE, Plan, SPAN_ID_INPUT, TIME_NS, TRACE_ID_INPUT, input, key,
};
use super::result::{Exemplar, Group, Heatmap};
use crate::QueryError;

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
    let batches = plan.exemplar_events(context, &times)?.collect().await?;
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
