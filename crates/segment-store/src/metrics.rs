//! The store's metrics, each defined (name, help, type) here, next to its field,
//! and counted where the store does the work. The server registers them on
//! `/metrics` with [`StoreMetrics::register`].

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A gauge of a non-negative amount.
pub type AmountGauge = Gauge<u64, AtomicU64>;

/// Buckets of the store's latency histograms: 100 µs to about 105 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_1, 2.0, 21)
}

/// The store's own work, exported on `/metrics` as `quarry_store_*` (and
/// `quarry_wal_*`, `quarry_manifest_*`).
#[derive(Debug)]
pub struct StoreMetrics {
    /// Rows appended to the store.
    pub appended_rows: Counter,
    /// Batches appended to the store.
    pub appended_batches: Counter,
    /// Bytes written to the write-ahead log.
    pub wal_bytes: Counter,
    /// Fsyncs of the write-ahead log.
    pub wal_fsyncs: Counter,
    /// Appends refused because the store was overloaded.
    pub appends_refused_overloaded: Counter,
    /// Parquet segments written (by seals and compaction).
    pub segments_written: Counter,
    /// Rows sealed into Parquet segments.
    pub rows_sealed: Counter,
    /// Manifest log entries committed.
    pub manifest_commits: Counter,
    /// Write-ahead log files deleted after sealing.
    pub wal_files_deleted: Counter,
    /// Rows replayed from the write-ahead log at startup.
    pub replayed_rows: Counter,
    /// Bytes of Arrow data held in buffers (including rows being sealed).
    pub buffered_bytes: AmountGauge,
    /// Merges committed by compaction.
    pub compactions: Counter,
    /// Segments merged away by compaction (its inputs).
    pub segments_compacted: Counter,
    /// File bytes of compaction's inputs.
    pub compaction_bytes_read: Counter,
    /// File bytes of compaction's outputs.
    pub compaction_bytes_written: Counter,
    /// Segments dropped by retention.
    pub segments_expired: Counter,
    /// Rows of the segments dropped by retention.
    pub rows_expired: Counter,
    /// File bytes of the segments dropped by retention.
    pub bytes_expired: Counter,
    /// Rollup segments removed with their sources (by compaction or retention).
    pub rollup_segments_removed: Counter,
    /// Unreferenced files deleted by the orphan sweep.
    pub orphan_files_deleted: Counter,
    /// Manifest records set aside because they could not be read.
    pub manifest_quarantined_records: AmountGauge,
    /// Seconds one fsync of the write-ahead log took.
    pub wal_fsync_seconds: Histogram,
    /// Seconds one seal (buffer to Parquet segment to manifest commit) took.
    pub seal_seconds: Histogram,
    /// Seconds one compaction merge took, from reading its inputs to its commit.
    pub compaction_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            appended_rows: Counter::default(),
            appended_batches: Counter::default(),
            wal_bytes: Counter::default(),
            wal_fsyncs: Counter::default(),
            appends_refused_overloaded: Counter::default(),
            segments_written: Counter::default(),
            rows_sealed: Counter::default(),
            manifest_commits: Counter::default(),
            wal_files_deleted: Counter::default(),
            replayed_rows: Counter::default(),
            buffered_bytes: AmountGauge::default(),
            compactions: Counter::default(),
            segments_compacted: Counter::default(),
            compaction_bytes_read: Counter::default(),
            compaction_bytes_written: Counter::default(),
            segments_expired: Counter::default(),
            rows_expired: Counter::default(),
            bytes_expired: Counter::default(),
            rollup_segments_removed: Counter::default(),
            orphan_files_deleted: Counter::default(),
            manifest_quarantined_records: AmountGauge::default(),
            wal_fsync_seconds: Histogram::new(latency_buckets()),
            seal_seconds: Histogram::new(latency_buckets()),
            compaction_seconds: Histogram::new(latency_buckets()),
        }
    }
}

impl StoreMetrics {
    /// Registers every metric of the store (counters get the `_total` suffix;
    /// prometheus-client ends every help text with a period, so ours have none).
    pub fn register(&self, registry: &mut Registry) {
        let counters: [(&str, &str, &Counter); 19] = [
            (
                "appended_rows",
                "Rows appended to the store",
                &self.appended_rows,
            ),
            (
                "appended_batches",
                "Batches appended to the store",
                &self.appended_batches,
            ),
            (
                "wal_bytes",
                "Bytes written to the write-ahead log",
                &self.wal_bytes,
            ),
            (
                "wal_fsyncs",
                "Fsyncs of the write-ahead log",
                &self.wal_fsyncs,
            ),
            (
                "appends_refused_overloaded",
                "Appends refused because the store was overloaded",
                &self.appends_refused_overloaded,
            ),
            (
                "segments_written",
                "Parquet segments written",
                &self.segments_written,
            ),
            (
                "rows_sealed",
                "Rows sealed into Parquet segments",
                &self.rows_sealed,
            ),
            (
                "manifest_commits",
                "Manifest log entries committed",
                &self.manifest_commits,
            ),
            (
                "wal_files_deleted",
                "Write-ahead log files deleted after sealing",
                &self.wal_files_deleted,
            ),
            (
                "replayed_rows",
                "Rows replayed from the write-ahead log at startup",
                &self.replayed_rows,
            ),
            (
                "compactions",
                "Compaction merges committed",
                &self.compactions,
            ),
            (
                "segments_compacted",
                "Segments merged away by compaction",
                &self.segments_compacted,
            ),
            (
                "compaction_bytes_read",
                "File bytes of the segments compaction merged",
                &self.compaction_bytes_read,
            ),
            (
                "compaction_bytes_written",
                "File bytes of the segments compaction wrote",
                &self.compaction_bytes_written,
            ),
            (
                "segments_expired",
                "Segments dropped by retention",
                &self.segments_expired,
            ),
            (
                "rows_expired",
                "Rows of the segments dropped by retention",
                &self.rows_expired,
            ),
            (
                "bytes_expired",
                "File bytes of the segments dropped by retention",
                &self.bytes_expired,
            ),
            (
                "rollup_segments_removed",
                "Rollup segment files removed with their source segments",
                &self.rollup_segments_removed,
            ),
            (
                "orphan_files_deleted",
                "Unreferenced data files deleted by the orphan sweep",
                &self.orphan_files_deleted,
            ),
        ];
        {
            let store = registry.sub_registry_with_prefix("quarry_store");
            for (name, help, counter) in counters {
                store.register(name, help, counter.clone());
            }
            store.register(
                "buffered_bytes",
                "Bytes held in in-memory buffers, not yet sealed",
                self.buffered_bytes.clone(),
            );
            store.register(
                "seal_duration_seconds",
                "Seconds one seal took, from the buffer to the manifest commit",
                self.seal_seconds.clone(),
            );
            store.register(
                "compaction_duration_seconds",
                "Seconds one compaction merge took, from reading its inputs to its commit",
                self.compaction_seconds.clone(),
            );
        }
        registry.register(
            "quarry_manifest_quarantined_records",
            "Manifest records set aside at start because they could not be read (their files are kept)",
            self.manifest_quarantined_records.clone(),
        );
        registry.register(
            "quarry_wal_fsync_duration_seconds",
            "Seconds one fsync of the write-ahead log took",
            self.wal_fsync_seconds.clone(),
        );
    }
}

/// Observes the seconds since `started` in `histogram`.
pub fn observe_since(histogram: &Histogram, started: Instant) {
    histogram.observe(started.elapsed().as_secs_f64());
}
