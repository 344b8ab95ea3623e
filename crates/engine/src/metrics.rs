//! Counters of the query engine's own work, each defined here and counted where
//! the engine does the work; exported on `/metrics` as `quarry_query_<name>_total`
//! through [`QueryMetrics::register`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// How much segment pruning saved, summed over every scan since start.
///
/// Each scan adds every segment of its snapshot to `segments_considered`, then
/// each of them to exactly one of the other segment counters (or none, when a
/// `LIMIT` without filters was satisfied before reaching it).
#[derive(Debug, Default)]
pub struct QueryMetrics {
    /// Segments in the snapshots scans started from.
    pub segments_considered: Counter,
    /// Segments skipped because their time range or column statistics exclude the filters.
    pub segments_pruned_by_time_or_stats: Counter,
    /// Segments skipped because their bloom filters exclude every looked-up value.
    pub segments_pruned_by_bloom: Counter,
    /// Segments handed to the Parquet scan.
    pub segments_scanned: Counter,
    /// Bloom filters read from the object store (cache misses).
    pub bloom_filter_reads: Counter,
}

impl QueryMetrics {
    /// Adds `count` to `counter`.
    pub fn add(counter: &Counter, count: usize) {
        counter.inc_by(count as u64);
    }

    /// Registers every counter as `quarry_query_<name>_total`.
    pub fn register(&self, registry: &mut Registry) {
        let query = registry.sub_registry_with_prefix("quarry_query");
        for (name, help, counter) in [
            (
                "segments_considered",
                "Segments considered by query planning",
                &self.segments_considered,
            ),
            (
                "segments_pruned_by_time_or_stats",
                "Segments skipped by time range or column statistics",
                &self.segments_pruned_by_time_or_stats,
            ),
            (
                "segments_pruned_by_bloom",
                "Segments skipped by bloom filters",
                &self.segments_pruned_by_bloom,
            ),
            (
                "segments_scanned",
                "Segments scanned by queries",
                &self.segments_scanned,
            ),
            (
                "bloom_filter_reads",
                "Bloom filters read from segments",
                &self.bloom_filter_reads,
            ),
        ] {
            query.register(name, help, counter.clone());
        }
    }
}
