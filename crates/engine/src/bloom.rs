//! Segment pruning by Parquet bloom filters: `trace.trace_id = '…'` (or `IN (…)`)
//! skips every segment whose bloom filters rule all the values out.
//!
//! The manifest says where each (column, row group) filter lies in its file, so a
//! lookup reads only those bytes, never a footer. Segments are immutable, so parsed
//! filters are cached by (path, row group, column) under a byte budget.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::cache::lru_queue::LruQueue;
use futures::StreamExt;
use object_store::ObjectStore;
use parking_lot::Mutex;
use parquet::bloom_filter::Sbbf;
use quarry_segment_store::{BloomFilterLocation, SegmentMeta};

use crate::QueryMetrics;
use crate::segment_files::object_path;

/// Segments whose filters are fetched at once (each one `get_ranges` request).
const BLOOM_FETCH_CONCURRENCY: usize = 16;
/// Bytes a Split Block Bloom Filter block takes in memory.
const SBBF_BLOCK_BYTES: usize = 32;
/// Bookkeeping bytes charged per cached filter besides its blocks.
const CACHE_ENTRY_OVERHEAD_BYTES: usize = 128;

/// Identifies one bloom filter: a column chunk of one row group of one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BloomKey {
    path: Arc<str>,
    row_group: usize,
    column: Arc<str>,
}

/// Parsed bloom filters, least recently used evicted first past the byte budget.
pub(crate) struct BloomCache {
    capacity_bytes: usize,
    state: Mutex<CacheState>,
}

struct CacheState {
    entries: LruQueue<BloomKey, (Arc<Sbbf>, usize)>,
    bytes: usize,
}

impl BloomCache {
    /// A cache holding at most `capacity_bytes` of filters (0 disables it).
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        BloomCache {
            capacity_bytes,
            state: Mutex::new(CacheState {
                entries: LruQueue::new(),
                bytes: 0,
            }),
        }
    }

    fn get(&self, key: &BloomKey) -> Option<Arc<Sbbf>> {
        let mut state = self.state.lock();
        state.entries.get(key).map(|(filter, _)| Arc::clone(filter))
    }

    fn insert(&self, key: BloomKey, filter: Arc<Sbbf>) {
        let size = filter.num_blocks() * SBBF_BLOCK_BYTES + CACHE_ENTRY_OVERHEAD_BYTES;
        if size > self.capacity_bytes {
            return;
        }
        let mut state = self.state.lock();
        if let Some((_, replaced)) = state.entries.put(key, (filter, size)) {
            state.bytes -= replaced;
        }
        state.bytes += size;
        while state.bytes > self.capacity_bytes {
            match state.entries.pop() {
                Some((_, (_, evicted))) => state.bytes -= evicted,
                None => break,
            }
        }
    }

    /// Bytes currently held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

/// The bloom filters of one segment that a scan looks values up in, by column:
/// one per row group. A column is missing when the segment has no filter for it
/// (or reading one failed), meaning "unknown".
pub(crate) type SegmentBlooms = HashMap<String, Vec<Arc<Sbbf>>>;

/// Loads the filters of `columns` for each segment, from the cache or the store.
pub(crate) async fn load_blooms(
    store: &Arc<dyn ObjectStore>,
    cache: &BloomCache,
    metrics: &QueryMetrics,
    segments: &[Arc<SegmentMeta>],
    columns: &HashSet<String>,
) -> Vec<SegmentBlooms> {
    // Futures built up front (not in a stream closure) keep the borrow simple
    // enough for the `Send` check of the async `scan` that awaits them.
    let loads: Vec<_> = segments
        .iter()
        .map(|segment| load_segment_blooms(store, cache, metrics, segment, columns))
        .collect();
    futures::stream::iter(loads)
        .buffered(BLOOM_FETCH_CONCURRENCY)
        .collect()
        .await
}

async fn load_segment_blooms(
    store: &Arc<dyn ObjectStore>,
    cache: &BloomCache,
    metrics: &QueryMetrics,
    segment: &SegmentMeta,
    columns: &HashSet<String>,
) -> SegmentBlooms {
    let path: Arc<str> = Arc::from(segment.path.as_str());
    let wanted: Vec<&BloomFilterLocation> = segment
        .bloom_filters
        .iter()
        .filter(|location| columns.contains(&location.column))
        .collect();
    let mut found: Vec<(&BloomFilterLocation, Arc<Sbbf>)> = Vec::with_capacity(wanted.len());
    let mut missing: Vec<(&BloomFilterLocation, BloomKey)> = Vec::new();
    for location in wanted {
        let key = BloomKey {
            path: Arc::clone(&path),
            row_group: location.row_group,
            column: Arc::from(location.column.as_str()),
        };
        match cache.get(&key) {
            Some(filter) => found.push((location, filter)),
            None => missing.push((location, key)),
        }
    }
    let mut failed: HashSet<&str> = HashSet::new();
    if !missing.is_empty() {
        let ranges: Vec<Range<u64>> = missing
            .iter()
            .map(|(location, _)| location.offset..location.offset.saturating_add(location.length))
            .collect();
        QueryMetrics::add(&metrics.bloom_filter_reads, ranges.len());
        match store.get_ranges(&object_path(&segment.path), &ranges).await {
            Ok(bytes) => {
                for ((location, key), bytes) in missing.into_iter().zip(bytes) {
                    match Sbbf::from_bytes(&bytes) {
                        Ok(filter) => {
                            let filter = Arc::new(filter);
                            cache.insert(key, Arc::clone(&filter));
                            found.push((location, filter));
                        }
                        Err(error) => {
                            tracing::warn!(path = %segment.path, column = %location.column, %error, "unreadable bloom filter; segment kept");
                            failed.insert(location.column.as_str());
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(path = %segment.path, %error, "bloom filters not readable; segment kept");
                failed.extend(missing.iter().map(|(location, _)| location.column.as_str()));
            }
        }
    }
    let mut blooms = SegmentBlooms::new();
    for (location, filter) in found {
        if !failed.contains(location.column.as_str()) {
            blooms
                .entry(location.column.clone())
                .or_default()
                .push(filter);
        }
    }
    blooms
}

/// Loaded bloom filters seen by `PruningPredicate` through `contained`: a segment
/// is ruled out when no row group's filter may hold any of the looked-up values.
/// Min/max are left unknown; [`crate::segment_stats`] handled those already.
pub(crate) struct BloomStatistics<'a> {
    segments: &'a [SegmentBlooms],
}

impl<'a> BloomStatistics<'a> {
    /// Statistics over the loaded filters, one container per segment.
    pub(crate) fn new(segments: &'a [SegmentBlooms]) -> Self {
        BloomStatistics { segments }
    }
}

impl PruningStatistics for BloomStatistics<'_> {
    fn min_values(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }

    fn max_values(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }

    fn num_containers(&self) -> usize {
        self.segments.len()
    }

    fn null_counts(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        None
    }

    /// `false` where the segment surely has none of `values`; unknown (null) otherwise:
    /// a bloom filter can only ever prove absence.
    fn contained(&self, column: &Column, values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        let answers: BooleanArray = self
            .segments
            .iter()
            .map(|blooms| {
                let filters = blooms.get(&column.name)?;
                let maybe_present = values
                    .iter()
                    .any(|value| filters.iter().any(|filter| may_contain(filter, value)));
                if maybe_present { None } else { Some(false) }
            })
            .collect();
        Some(answers)
    }
}

/// Whether `filter` may hold `value`, hashed as the Parquet writer hashed the
/// column's physical type. Types whose hashing could disagree with SQL equality
/// (floats: `0.0 = -0.0`) answer "maybe".
fn may_contain(filter: &Sbbf, value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)) => filter.check(text.as_str()),
        ScalarValue::Int64(Some(int)) | ScalarValue::TimestampNanosecond(Some(int), _) => {
            filter.check(int)
        }
        ScalarValue::Boolean(Some(flag)) => filter.check(flag),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn filter_with(values: &[&str]) -> Arc<Sbbf> {
        let mut filter = Sbbf::new_with_num_of_bytes(1024);
        for value in values {
            filter.insert(*value);
        }
        Arc::new(filter)
    }

    #[test]
    fn segments_without_any_value_are_ruled_out() {
        let mut with_a = SegmentBlooms::new();
        with_a.insert(
            "trace.trace_id".into(),
            vec![filter_with(&["x"]), filter_with(&["a"])],
        );
        let mut with_b = SegmentBlooms::new();
        with_b.insert("trace.trace_id".into(), vec![filter_with(&["b"])]);
        let unknown = SegmentBlooms::new();
        let segments = vec![with_a, with_b, unknown];
        let stats = BloomStatistics::new(&segments);
        let values: HashSet<ScalarValue> = [ScalarValue::from("a")].into_iter().collect();
        let answers = stats
            .contained(&Column::from_name("trace.trace_id"), &values)
            .unwrap();
        assert!(answers.is_null(0));
        assert!(!answers.is_null(1) && !answers.value(1));
        assert!(answers.is_null(2));
    }

    #[test]
    fn cache_evicts_least_recently_used_past_its_budget() {
        let filter = filter_with(&["a"]);
        let entry_bytes = filter.num_blocks() * SBBF_BLOCK_BYTES + CACHE_ENTRY_OVERHEAD_BYTES;
        let cache = BloomCache::new(2 * entry_bytes);
        let key = |row_group| BloomKey {
            path: Arc::from("p"),
            row_group,
            column: Arc::from("c"),
        };
        cache.insert(key(0), Arc::clone(&filter));
        cache.insert(key(1), Arc::clone(&filter));
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(2), Arc::clone(&filter));
        assert_eq!(cache.bytes(), 2 * entry_bytes);
        assert!(
            cache.get(&key(1)).is_none(),
            "row group 1 was least recently used"
        );
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(2)).is_some());
    }
}
