//! Counters of the query engine's own work, exported on `/metrics` as
//! `quarry_query_<name>_total`.

use std::sync::atomic::{AtomicU64, Ordering};

/// How much segment pruning saved, summed over every scan since start.
///
/// Each scan adds every segment of its snapshot to `segments_considered`, then
/// each of them to exactly one of the other segment counters (or none, when a
/// `LIMIT` without filters was satisfied before reaching it).
#[derive(Debug, Default)]
pub struct QueryMetrics {
    /// Segments in the snapshots scans started from.
    pub segments_considered: AtomicU64,
    /// Segments skipped because their time range or column statistics exclude the filters.
    pub segments_pruned_by_time_or_stats: AtomicU64,
    /// Segments skipped because their bloom filters exclude every looked-up value.
    pub segments_pruned_by_bloom: AtomicU64,
    /// Segments handed to the Parquet scan.
    pub segments_scanned: AtomicU64,
    /// Bloom filters read from the object store (cache misses).
    pub bloom_filter_reads: AtomicU64,
}

impl QueryMetrics {
    /// Adds `count` to `counter`.
    pub fn add(counter: &AtomicU64, count: usize) {
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }
}
