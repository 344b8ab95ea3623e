//! Compaction: merging the small segments of one time partition into one segment.
//!
//! ```text
//!  plan: per (dataset, partition), segments below `small_segment_bytes`, in time
//!        order, cut into groups under the row and byte caps; a group of at least
//!        `min_segments` is merged
//!     ▼
//!  read the inputs (Parquet record batches) ── build_segments: the seal's own
//!     writer (sorted by timestamp, bloom filters, statistics from the rows)
//!     ▼
//!  upload the output ── commit ReplaceSegments {removed: inputs, added: output}
//!     ▼
//!  delete the inputs and the rollup files computed from them
//! ```
//! The rollup segments listing an input as a source leave the manifest in the same
//! commit, so every rollup sees the output as pending and rolls it up again (woken
//! by the commit's change notification, as after a seal): rollup answers stay equal
//! to raw answers at every moment.
//!
//! Memory: one merge holds its inputs' rows in memory (read batch by batch, then
//! sorted and encoded once), capped by `max_input_rows` and `max_input_bytes` —
//! the same order of memory a seal of `seal_max_rows` rows uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quarry_schema::DatasetSchema;
use serde::Serialize;

use crate::metrics::observe_since;
use crate::segment_writer::{SegmentFile, SegmentSettings, build_segments};
use crate::wal::DatasetKey;
use crate::{CompactionConfig, Result, SegmentMeta, Store, StoreError, names};

/// Rows per record batch when reading a merge's inputs.
const READ_BATCH_ROWS: usize = 8192;
/// A merge needs at least two inputs.
const MIN_MERGE_INPUTS: usize = 2;

/// Where [`crate::FAULT_CRASH_IN_COMPACTION`] aborts a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// The output is uploaded, the manifest not changed.
    BeforeCommit,
    /// The manifest names the output; the inputs are not deleted.
    AfterCommit,
}

impl CrashPoint {
    pub(crate) fn from_env() -> Option<CrashPoint> {
        match std::env::var(crate::FAULT_CRASH_IN_COMPACTION)
            .ok()?
            .as_str()
        {
            "before-commit" => Some(CrashPoint::BeforeCommit),
            "after-commit" => Some(CrashPoint::AfterCommit),
            _ => None,
        }
    }

    fn crash_if(store: &Store, point: CrashPoint) {
        if store.inner.compaction_fault == Some(point) {
            tracing::error!(
                ?point,
                "{} is set: aborting in a compaction",
                crate::FAULT_CRASH_IN_COMPACTION
            );
            std::process::abort();
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Merges committed.
    pub merges: u64,
    /// Segments merged away.
    pub segments_in: u64,
    /// Segments written in their place.
    pub segments_out: u64,
    /// File bytes of the inputs and of the outputs.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Rows rewritten.
    pub rows: u64,
}

/// The groups of segments to merge: per partition, the small segments in time
/// order, cut into groups within the caps; groups smaller than `min_segments` wait.
pub(crate) fn plan(
    segments: &[Arc<SegmentMeta>],
    config: &CompactionConfig,
    min_segments: usize,
) -> Vec<Vec<Arc<SegmentMeta>>> {
    let min_segments = min_segments.max(MIN_MERGE_INPUTS);
    let mut partitions: BTreeMap<i64, Vec<Arc<SegmentMeta>>> = BTreeMap::new();
    for segment in segments {
        if segment.size_bytes < config.small_segment_bytes {
            partitions
                .entry(segment.partition_start_ns)
                .or_default()
                .push(Arc::clone(segment));
        }
    }
    let mut groups = Vec::new();
    for (_, mut small) in partitions {
        small.sort_by(|a, b| (a.min_time_ns, &a.path).cmp(&(b.min_time_ns, &b.path)));
        let mut group: Vec<Arc<SegmentMeta>> = Vec::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        for segment in small {
            let over = rows + segment.rows > config.max_input_rows
                || bytes + segment.size_bytes > config.max_input_bytes;
            if over && !group.is_empty() {
                let full = std::mem::take(&mut group);
                if full.len() >= min_segments {
                    groups.push(full);
                }
                (rows, bytes) = (0, 0);
            }
            rows += segment.rows;
            bytes += segment.size_bytes;
            group.push(segment);
        }
        if group.len() >= min_segments {
            groups.push(group);
        }
    }
    groups
}

impl Store {
    /// One compaction pass over every dataset: merges the small segments of each
    /// partition that has at least `min_segments` of them (the configured number
    /// when `None`). Returns what was merged; on failures, the first error after
    /// trying every group (a failed merge commits nothing).
    pub async fn compact(&self, min_segments: Option<usize>) -> Result<CompactionReport> {
        let _one_at_a_time = self.inner.maintenance_lock.lock().await;
        self.inner.require_lease().await?;
        // Plan from the latest commits of every writer sharing the manifest.
        self.follow_manifest().await?;
        let config = &self.inner.config.compaction;
        let min_segments = min_segments.unwrap_or(config.min_segments);
        let mut report = CompactionReport::default();
        let mut first_error = None;
        for key in self.dataset_keys() {
            let Some(snapshot) = self.snapshot(&key.0, &key.1) else {
                continue;
            };
            for group in plan(&snapshot.segments, config, min_segments) {
                if self.inner.shutting_down.load(Ordering::Relaxed) {
                    return first_error.map_or(Ok(report), Err);
                }
                let started = Instant::now();
                let merged = self.merge(&key, &snapshot.schema, group, &mut report).await;
                if merged.is_ok() {
                    observe_since(&self.inner.metrics.compaction_seconds, started);
                }
                if let Err(error) = merged {
                    tracing::warn!(env = %key.0, dataset = %key.1, %error, "compaction of a partition failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    /// Merges `inputs` (one partition of one dataset) into one segment and commits it.
    async fn merge(
        &self,
        key: &DatasetKey,
        schema: &DatasetSchema,
        inputs: Vec<Arc<SegmentMeta>>,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let store = &self.inner.object_store;
        let mut files = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let path = Path::from(input.path.as_str());
            files.push(store.get(&path).await?.bytes().await?);
        }
        let settings = SegmentSettings {
            partition_width_ns: self.inner.config.partition_width.as_nanos() as i64,
            row_group_rows: self.inner.config.row_group_rows,
            bloom_filter_columns: self.inner.config.bloom_filter_columns.clone(),
        };
        let dir = names::segment_dir(&key.0, &key.1);
        let expected_rows: u64 = inputs.iter().map(|input| input.rows).sum();
        let schema = schema.clone();
        let created_ns = self.inner.now_ns();
        let outputs = tokio::task::spawn_blocking(move || {
            merge_files(files, &schema, &settings, &dir, expected_rows, created_ns)
        })
        .await
        .map_err(|error| StoreError::Compaction(format!("merge task failed: {error}")))??;
        for output in &outputs {
            store
                .put(
                    &Path::from(output.meta.path.as_str()),
                    PutPayload::from(output.bytes.clone()),
                )
                .await?;
        }
        let added: Vec<SegmentMeta> = outputs.into_iter().map(|output| output.meta).collect();
        CrashPoint::crash_if(self, CrashPoint::BeforeCommit);
        // A failed commit may still have landed (the put's answer was lost): the
        // outputs are then referenced after a restart, so they are never deleted
        // here; the orphan sweep removes them if they stay unreferenced.
        let replaced = self.replace_segments(key, &inputs, added.clone()).await?;
        let Some(replaced) = replaced else {
            // An input was compacted or expired meanwhile: this output is not needed.
            self.delete_unreferenced(added.into_iter().map(|meta| meta.path).collect())
                .await;
            return Ok(());
        };
        CrashPoint::crash_if(self, CrashPoint::AfterCommit);
        let bytes_in: u64 = inputs.iter().map(|input| input.size_bytes).sum();
        let bytes_out: u64 = added.iter().map(|meta| meta.size_bytes).sum();
        report.merges += 1;
        report.segments_in += inputs.len() as u64;
        report.segments_out += added.len() as u64;
        report.bytes_in += bytes_in;
        report.bytes_out += bytes_out;
        report.rows += expected_rows;
        let metrics = &self.inner.metrics;
        metrics.compactions.inc_by(1);
        metrics.segments_compacted.inc_by(inputs.len() as u64);
        metrics.segments_written.inc_by(added.len() as u64);
        metrics.compaction_bytes_read.inc_by(bytes_in);
        metrics.compaction_bytes_written.inc_by(bytes_out);
        let obsolete: Vec<String> = inputs
            .iter()
            .map(|input| input.path.clone())
            .chain(replaced.rollup_files.into_iter().map(|file| file.path))
            .collect();
        self.retire_files(obsolete).await;
        Ok(())
    }
}

/// Reads the inputs' rows and writes them again as the segments of their partition
/// (one, unless the partition width changed since they were sealed).
fn merge_files(
    files: Vec<Bytes>,
    schema: &DatasetSchema,
    settings: &SegmentSettings,
    dir: &str,
    expected_rows: u64,
    created_ns: i64,
) -> Result<Vec<SegmentFile>> {
    let mut batches = Vec::new();
    for bytes in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
            .with_batch_size(READ_BATCH_ROWS)
            .build()?;
        for batch in reader {
            let batch = batch?;
            // The writer keeps the dataset schema's columns only: a column it does
            // not know would be lost, so refuse rather than drop data.
            if let Some(unknown) = batch
                .schema()
                .fields()
                .iter()
                .find(|field| schema.get(field.name()).is_none())
            {
                return Err(StoreError::Compaction(format!(
                    "column {:?} of a segment is not in the dataset schema",
                    unknown.name()
                )));
            }
            batches.push(batch);
        }
    }
    let outputs = build_segments(&batches, schema, settings, dir, created_ns)?;
    let rows: u64 = outputs.iter().map(|output| output.meta.rows).sum();
    if rows != expected_rows {
        return Err(StoreError::Compaction(format!(
            "merged {rows} rows where the manifest records {expected_rows}"
        )));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        HOUR_NS, MINUTE_NS, count_rollup, exists, open_store, read_segment, rows,
    };
    use crate::{PutRollupMode, PutRollupOutcome, StatValue};
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{Int64Type, TimestampNanosecondType};

    fn meta(path: &str, partition: i64, min_time: i64, rows: u64, bytes: u64) -> Arc<SegmentMeta> {
        Arc::new(SegmentMeta {
            path: path.into(),
            size_bytes: bytes,
            rows,
            min_time_ns: min_time,
            max_time_ns: min_time,
            partition_start_ns: partition,
            created_at_ns: 0,
            columns: vec![],
            bloom_filters: vec![],
        })
    }

    fn paths(groups: &[Vec<Arc<SegmentMeta>>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|group| group.iter().map(|s| s.path.as_str()).collect())
            .collect()
    }

    #[test]
    fn plans_small_segments_per_partition_in_time_order_under_the_caps() {
        let config = CompactionConfig {
            small_segment_bytes: 100,
            max_input_rows: 10,
            max_input_bytes: 1000,
            ..CompactionConfig::default()
        };
        let segments = vec![
            meta("p0-late", 0, 30, 4, 10),
            meta("p0-early", 0, 10, 4, 10),
            meta("p0-big", 0, 20, 4, 100),
            meta("p0-next", 0, 40, 4, 10),
            meta("p1-a", HOUR_NS, HOUR_NS, 1, 10),
            meta("p1-b", HOUR_NS, HOUR_NS + 1, 1, 10),
            meta("p2-alone", 2 * HOUR_NS, 2 * HOUR_NS, 1, 10),
        ];
        // p0: the big one is left alone; 4 + 4 rows fit, the third would make 12.
        // p1: two small ones; p2: one is nothing to merge.
        assert_eq!(
            paths(&plan(&segments, &config, 2)),
            vec![vec!["p0-early", "p0-late"], vec!["p1-a", "p1-b"]]
        );
        // With min_segments 3 no group qualifies.
        assert!(plan(&segments, &config, 3).is_empty());
        let tight = CompactionConfig {
            max_input_bytes: 15,
            ..config
        };
        assert!(plan(&segments, &tight, 2).is_empty());
    }

    fn ids_and_times(batches: &[RecordBatch]) -> (Vec<i64>, Vec<i64>) {
        let mut ids = Vec::new();
        let mut times = Vec::new();
        for batch in batches {
            ids.extend(
                batch
                    .column_by_name("id")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values(),
            );
            times.extend(
                batch
                    .column_by_name("timestamp")
                    .unwrap()
                    .as_primitive::<TimestampNanosecondType>()
                    .values(),
            );
        }
        (ids, times)
    }

    /// Four seals into partition 1 (ids interleaved in time), one into partition 2.
    async fn four_small_segments(store: &Store) {
        for round in 0..4i64 {
            // Round r holds ids r*10 .. r*10+10 at minute (id * 7 % 50): the rounds
            // overlap in time, so the merge must really sort.
            store
                .append(
                    "default",
                    "a",
                    rows(round * 10..round * 10 + 10, |id| {
                        HOUR_NS + (id * 7 % 50) * MINUTE_NS + id
                    }),
                )
                .await
                .unwrap();
            store.seal_all().await.unwrap();
        }
        store
            .append("default", "a", rows(100..105, |id| 2 * HOUR_NS + id))
            .await
            .unwrap();
        store.seal_all().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_preserves_every_row_and_the_statistics_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |_| {}).await;
        four_small_segments(&store).await;
        let before = store.snapshot("default", "a").unwrap().segments;
        assert_eq!(before.len(), 5);
        let inputs: Vec<_> = before
            .iter()
            .filter(|s| s.partition_start_ns == HOUR_NS)
            .cloned()
            .collect();

        // The configured minimum (4) is met: one merge of the four.
        let report = store.compact(None).await.unwrap();
        assert_eq!(
            (
                report.merges,
                report.segments_in,
                report.segments_out,
                report.rows
            ),
            (1, 4, 1, 40)
        );
        assert_eq!(
            report.bytes_in,
            inputs.iter().map(|s| s.size_bytes).sum::<u64>()
        );
        let after = store.snapshot("default", "a").unwrap().segments;
        assert_eq!(after.len(), 2);
        let merged = after
            .iter()
            .find(|s| s.partition_start_ns == HOUR_NS)
            .unwrap()
            .clone();
        assert_eq!(merged.rows, 40);
        assert_eq!(
            merged.min_time_ns,
            inputs.iter().map(|s| s.min_time_ns).min().unwrap()
        );
        assert_eq!(
            merged.max_time_ns,
            inputs.iter().map(|s| s.max_time_ns).max().unwrap()
        );
        let id_stats = merged.column("id").unwrap();
        assert_eq!(
            (&id_stats.min, &id_stats.max, id_stats.null_count),
            (&Some(StatValue::Int(0)), &Some(StatValue::Int(39)), 0)
        );
        assert_eq!(
            merged.column(quarry_schema::TRACE_ID).unwrap().min,
            Some(StatValue::String("t0".into()))
        );
        assert!(
            !merged.bloom_filters.is_empty(),
            "trace ids keep a bloom filter"
        );
        assert_eq!(report.bytes_out, merged.size_bytes);

        // Every row once, sorted by time.
        let (ids, times) = ids_and_times(&read_segment(&store, &merged.path).await);
        let mut sorted_ids = ids.clone();
        sorted_ids.sort_unstable();
        assert_eq!(sorted_ids, (0..40).collect::<Vec<_>>());
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
        // The inputs are deleted after the commit; the other partition is untouched.
        for input in &inputs {
            assert!(!exists(dir.path(), &input.path), "{} kept", input.path);
        }
        assert!(exists(dir.path(), &merged.path));
        let metrics = store.metrics();
        assert_eq!(metrics.compactions.get(), 1);
        assert_eq!(metrics.segments_compacted.get(), 4);
        // A second pass finds nothing to do.
        assert_eq!(store.compact(Some(2)).await.unwrap().merges, 0);

        store.shutdown().await.unwrap();
        drop(store);
        let reopened = open_store(dir.path(), |_| {}).await;
        let replayed = reopened.snapshot("default", "a").unwrap().segments;
        assert_eq!(replayed, after, "the manifest replays to the same segments");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollup_segments_of_merged_inputs_leave_in_the_same_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |_| {}).await;
        four_small_segments(&store).await;
        let PutRollupOutcome::Created(rollup) = store
            .put_rollup("default", "a", count_rollup(), PutRollupMode::Create)
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        let segments = store.snapshot("default", "a").unwrap().segments;
        // Roll up every segment (any rows do: the store does not look inside).
        for segment in &segments {
            let added = store
                .add_rollup_segment(
                    "default",
                    "a",
                    &rollup.id,
                    vec![segment.path.clone()],
                    Some(rows(0..1, |_| segment.min_time_ns)),
                    segment.partition_start_ns,
                )
                .await
                .unwrap();
            assert!(added);
        }
        let files_before: Vec<String> = store.rollups("default", "a").unwrap().rollups[0]
            .segments
            .iter()
            .map(|s| s.file.as_ref().unwrap().path.clone())
            .collect();
        assert_eq!(files_before.len(), 5);
        let mut changes = store.subscribe_changes();
        changes.borrow_and_update();

        store.compact(Some(2)).await.unwrap();
        assert!(changes.has_changed().unwrap(), "maintenance is woken");
        let (snapshot, set) = store.rollup_snapshot("default", "a").unwrap();
        let merged = snapshot
            .segments
            .iter()
            .find(|s| s.partition_start_ns == HOUR_NS)
            .unwrap();
        let covered: Vec<String> = set.rollups[0]
            .covered()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let other = snapshot
            .segments
            .iter()
            .find(|s| s.partition_start_ns == 2 * HOUR_NS)
            .unwrap();
        // Only the untouched partition stays rolled up; the merged segment is pending.
        assert_eq!(covered, vec![other.path.clone()]);
        let kept: Vec<&String> = files_before
            .iter()
            .filter(|path| exists(dir.path(), path))
            .collect();
        assert_eq!(
            kept.len(),
            1,
            "the four rollup files of the inputs are deleted"
        );
        // A late rollup segment of an input is refused: its rows are in `merged` now.
        let old_input = segments
            .iter()
            .find(|s| s.partition_start_ns == HOUR_NS)
            .unwrap();
        let late = store
            .add_rollup_segment(
                "default",
                "a",
                &rollup.id,
                vec![old_input.path.clone()],
                None,
                HOUR_NS,
            )
            .await
            .unwrap();
        assert!(!late, "a source that left the dataset is not rolled up");
        let fresh = store
            .add_rollup_segment(
                "default",
                "a",
                &rollup.id,
                vec![merged.path.clone()],
                None,
                HOUR_NS,
            )
            .await
            .unwrap();
        assert!(fresh, "the merged segment is pending and rolled up once");

        store.shutdown().await.unwrap();
        drop(store);
        let reopened = open_store(dir.path(), |_| {}).await;
        let (replayed, set_after) = reopened.rollup_snapshot("default", "a").unwrap();
        assert_eq!(replayed.segments, snapshot.segments);
        let mut covered_after: Vec<&str> = set_after.rollups[0].covered().into_iter().collect();
        covered_after.sort_unstable();
        let mut expected = vec![other.path.as_str(), merged.path.as_str()];
        expected.sort_unstable();
        assert_eq!(covered_after, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merged_inputs_stay_readable_for_the_deletion_delay() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |config| {
            config.compaction.deletion_delay = std::time::Duration::from_secs(3600);
        })
        .await;
        four_small_segments(&store).await;
        let inputs: Vec<_> = store
            .snapshot("default", "a")
            .unwrap()
            .segments
            .into_iter()
            .filter(|s| s.partition_start_ns == HOUR_NS)
            .collect();
        store.compact(Some(2)).await.unwrap();
        // A query that took its snapshot before the commit can still read them,
        // and the orphan sweep leaves them to the delay.
        assert_eq!(
            store
                .sweep_orphans(Some(std::time::Duration::ZERO))
                .await
                .unwrap(),
            0
        );
        for input in &inputs {
            assert!(exists(dir.path(), &input.path));
            assert_eq!(read_segment(&store, &input.path).await[0].num_rows(), 10);
        }
        // At shutdown no query runs any more: they go.
        store.shutdown().await.unwrap();
        for input in &inputs {
            assert!(!exists(dir.path(), &input.path), "{} kept", input.path);
        }
    }
}
