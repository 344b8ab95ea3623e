//! Usage accounting: events and bytes in per environment, dataset and hour, and
//! bytes stored, kept in memory for the usage API and written as rows of the
//! environment's own `quarry-usage` dataset, queryable and graphable like any
//! other.
//!
//! Rows of the dataset are deltas: each flush writes, per dataset, the events and
//! bytes received since the previous flush and the bytes stored at that moment,
//! so `SUM(events)` over any time range is exact and `MAX(bytes_stored)` per
//! hour is the hour's peak.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use parking_lot::Mutex;
use serde::Serialize;

/// The dataset every environment's usage rows are written to.
pub const USAGE_DATASET: &str = "quarry-usage";
/// Nanoseconds in an hour.
const HOUR_NS: i64 = 3_600 * 1_000_000_000;
/// Hours of usage the API keeps in memory (the dataset keeps everything).
const HOURS_KEPT: i64 = 48;

/// Events and bytes of one dataset in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events (rows) written.
    pub events: u64,
    /// Request bytes received, as sent (compressed when the body was).
    pub bytes_in: u64,
    /// Bytes stored (segments and buffered rows) at the last measurement.
    pub bytes_stored: u64,
}

/// One row of the usage API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The dataset.
    pub dataset: String,
    /// Start of the hour (RFC 3339, UTC).
    pub hour: String,
    #[serde(flatten)]
    pub counts: Counts,
}

type Key = (String, String);

#[derive(Debug, Default)]
struct State {
    /// (environment, dataset) -> hour start -> counts.
    hours: HashMap<Key, BTreeMap<i64, Counts>>,
    /// Received since the last flush, by (environment, dataset).
    pending: HashMap<Key, Counts>,
    /// Bytes stored by (environment, dataset), as last measured plus writes since.
    stored: HashMap<Key, u64>,
}

/// Usage of every environment on this node.
#[derive(Debug, Default)]
pub struct Usage {
    state: Mutex<State>,
}

fn hour_of(now_ns: i64) -> i64 {
    now_ns.div_euclid(HOUR_NS) * HOUR_NS
}

impl Usage {
    /// Counts `events` and `bytes_in` received for a dataset, and `bytes_added`
    /// to its storage (an estimate until the next measurement).
    pub fn record(
        &self,
        environment: &str,
        dataset: &str,
        events: u64,
        bytes_in: u64,
        bytes_added: u64,
        now_ns: i64,
    ) {
        let key = (environment.to_owned(), dataset.to_owned());
        let mut state = self.state.lock();
        let stored = {
            let stored = state.stored.entry(key.clone()).or_default();
            *stored += bytes_added;
            *stored
        };
        let hour = state
            .hours
            .entry(key.clone())
            .or_default()
            .entry(hour_of(now_ns))
            .or_default();
        hour.events += events;
        hour.bytes_in += bytes_in;
        hour.bytes_stored = stored;
        let pending = state.pending.entry(key).or_default();
        pending.events += events;
        pending.bytes_in += bytes_in;
    }

    /// Sets a dataset's measured bytes stored.
    pub fn set_stored(&self, environment: &str, dataset: &str, bytes: u64, now_ns: i64) {
        let key = (environment.to_owned(), dataset.to_owned());
        let mut state = self.state.lock();
        state.stored.insert(key.clone(), bytes);
        state
            .hours
            .entry(key)
            .or_default()
            .entry(hour_of(now_ns))
            .or_default()
            .bytes_stored = bytes;
    }

    /// Bytes an environment stores, over all its datasets.
    pub fn stored_bytes(&self, environment: &str) -> u64 {
        let state = self.state.lock();
        state
            .stored
            .iter()
            .filter(|((env, _), _)| env == environment)
            .map(|(_, bytes)| bytes)
            .sum()
    }

    /// The environments with any usage recorded.
    pub fn environments(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut environments: Vec<String> =
            state.hours.keys().map(|(env, _)| env.clone()).collect();
        environments.sort();
        environments.dedup();
        environments
    }

    /// An environment's usage per dataset and hour, oldest hour first.
    pub fn report(&self, environment: &str) -> Vec<UsageRow> {
        let state = self.state.lock();
        let mut rows: Vec<(i64, UsageRow)> = Vec::new();
        for ((env, dataset), hours) in &state.hours {
            if env != environment {
                continue;
            }
            for (&hour, &counts) in hours {
                rows.push((
                    hour,
                    UsageRow {
                        dataset: dataset.clone(),
                        hour: rfc3339(hour),
                        counts,
                    },
                ));
            }
        }
        rows.sort_by(|(a, row_a), (b, row_b)| a.cmp(b).then(row_a.dataset.cmp(&row_b.dataset)));
        rows.into_iter().map(|(_, row)| row).collect()
    }

    /// Takes the usage received since the last call as one batch of
    /// [`USAGE_DATASET`] rows per environment, and forgets hours past the window.
    pub fn take_rows(&self, now_ns: i64) -> Vec<(String, RecordBatch)> {
        let mut state = self.state.lock();
        let oldest = hour_of(now_ns) - HOURS_KEPT * HOUR_NS;
        for hours in state.hours.values_mut() {
            hours.retain(|&hour, _| hour >= oldest);
        }
        let pending = std::mem::take(&mut state.pending);
        let mut by_env: BTreeMap<String, Vec<(String, Counts)>> = BTreeMap::new();
        for ((env, dataset), mut counts) in pending {
            counts.bytes_stored = state
                .stored
                .get(&(env.clone(), dataset.clone()))
                .copied()
                .unwrap_or(0);
            by_env.entry(env).or_default().push((dataset, counts));
        }
        by_env
            .into_iter()
            .filter_map(|(env, rows)| usage_batch(&rows, now_ns).map(|batch| (env, batch)))
            .collect()
    }

    /// Puts rows back after a failed write, so the next flush writes them.
    pub fn restore(&self, environment: &str, batch: &RecordBatch) {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let (Some(datasets), Some(events), Some(bytes)) = (
            batch.column_by_name("dataset"),
            batch.column_by_name("events"),
            batch.column_by_name("bytes_in"),
        ) else {
            return;
        };
        let datasets = datasets.as_string::<i32>();
        let events = events.as_primitive::<Int64Type>();
        let bytes = bytes.as_primitive::<Int64Type>();
        let mut state = self.state.lock();
        for row in 0..batch.num_rows() {
            let key = (environment.to_owned(), datasets.value(row).to_owned());
            let pending = state.pending.entry(key).or_default();
            pending.events += events.value(row) as u64;
            pending.bytes_in += bytes.value(row) as u64;
        }
    }
}

/// Rows of the usage dataset: one per dataset.
fn usage_batch(rows: &[(String, Counts)], now_ns: i64) -> Option<RecordBatch> {
    if rows.is_empty() {
        return None;
    }
    let int = |pick: fn(&Counts) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|(_, counts)| pick(counts).min(i64::MAX as u64) as i64),
        ))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            quarry_schema::TIMESTAMP,
            Arc::new(
                TimestampNanosecondArray::from(vec![now_ns; rows.len()])
                    .with_timezone(quarry_schema::TIMESTAMP_TZ),
            ),
        ),
        (
            "dataset",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(name, _)| name.as_str()),
            )),
        ),
        (
            "hour",
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                rfc3339(hour_of(now_ns)),
                rows.len(),
            ))),
        ),
        ("events", int(|counts| counts.events)),
        ("bytes_in", int(|counts| counts.bytes_in)),
        ("bytes_stored", int(|counts| counts.bytes_stored)),
    ];
    RecordBatch::try_from_iter(columns).ok()
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000 * 1_000_000_000;

    #[test]
    fn usage_is_kept_per_dataset_and_hour() {
        let usage = Usage::default();
        usage.record("prod", "api", 10, 1_000, 500, T0);
        usage.record("prod", "api", 5, 100, 50, T0 + 1);
        usage.record("prod", "api", 1, 10, 5, T0 + HOUR_NS);
        usage.record("dev", "api", 99, 9, 9, T0);
        let report = usage.report("prod");
        assert_eq!(report.len(), 2);
        assert_eq!(
            report[0].counts,
            Counts {
                events: 15,
                bytes_in: 1_100,
                bytes_stored: 550
            }
        );
        assert_eq!(report[1].counts.events, 1);
        assert_eq!(usage.stored_bytes("prod"), 555);
        usage.set_stored("prod", "api", 42, T0 + HOUR_NS);
        assert_eq!(usage.report("prod")[1].counts.bytes_stored, 42);
    }

    #[test]
    fn rows_are_deltas_since_the_last_flush() {
        let usage = Usage::default();
        usage.record("prod", "api", 10, 1_000, 0, T0);
        let rows = usage.take_rows(T0);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "prod");
        assert_eq!(rows[0].1.num_rows(), 1);
        assert!(usage.take_rows(T0).is_empty());
        usage.restore("prod", &rows[0].1);
        let again = usage.take_rows(T0);
        assert_eq!(again[0].1.num_rows(), 1);
    }
}
