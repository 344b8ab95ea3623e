//! One dataset's live state: schema, sealed segments, buffered rows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use parking_lot::Mutex;
use quarry_schema::DatasetSchema;

use crate::rollup::RollupSet;
use crate::{DatasetSnapshot, SegmentMeta};

/// A dataset and the lock that makes its snapshots consistent.
pub struct Dataset {
    pub state: Mutex<DatasetState>,
}

/// Everything about a dataset that changes; guarded by [`Dataset::state`].
///
/// Rows live in exactly one place a snapshot sees: `buffer`, `sealing` (being
/// written to Parquet, still read from memory) or `segments` (committed). A seal
/// moves rows buffer -> sealing, and sealing -> segments in the same critical
/// section that adds the committed segments, so no query sees rows twice or never.
#[derive(Default)]
pub struct DatasetState {
    pub schema: DatasetSchema,
    pub segments: Vec<Arc<SegmentMeta>>,
    pub buffer: Vec<RecordBatch>,
    pub buffer_rows: usize,
    pub buffer_bytes: usize,
    /// Highest WAL sequence in `buffer` (0 when empty).
    pub buffer_max_seq: u64,
    /// When the oldest buffered row arrived, by the store's clock (seal age).
    pub buffer_oldest_ns: Option<i64>,
    pub sealing: Vec<RecordBatch>,
    pub sealing_bytes: usize,
    /// Every WAL entry of this dataset up to here is in `segments`.
    pub sealed_seq: u64,
    pub created_at_ns: i64,
    pub last_written_ns: i64,
    /// The dataset's rollups, as committed to the manifest.
    pub rollups: RollupSet,
}

impl Dataset {
    /// A dataset with the given state.
    pub fn new(state: DatasetState) -> Arc<Dataset> {
        Arc::new(Dataset {
            state: Mutex::new(state),
        })
    }
}

impl DatasetState {
    /// Adds rows that are durable in the WAL under `seq`.
    pub fn push(&mut self, seq: u64, batch: RecordBatch, now_ns: i64) -> usize {
        let bytes = batch.get_array_memory_size();
        self.buffer_rows += batch.num_rows();
        self.buffer_bytes += bytes;
        self.buffer_max_seq = self.buffer_max_seq.max(seq);
        self.buffer_oldest_ns.get_or_insert(now_ns);
        self.buffer.push(batch);
        bytes
    }

    /// What a query sees.
    pub fn snapshot(&self) -> DatasetSnapshot {
        let mut buffer = self.sealing.clone();
        buffer.extend(self.buffer.iter().cloned());
        DatasetSnapshot {
            schema: self.schema.clone(),
            segments: self.segments.clone(),
            buffer,
        }
    }

    /// Moves the buffer into `sealing`; returns the rows and their highest sequence.
    pub fn begin_seal(&mut self) -> Option<(Vec<RecordBatch>, u64)> {
        if !self.sealing.is_empty() || self.buffer.is_empty() {
            return None;
        }
        self.sealing = std::mem::take(&mut self.buffer);
        self.sealing_bytes = std::mem::take(&mut self.buffer_bytes);
        self.buffer_rows = 0;
        self.buffer_oldest_ns = None;
        Some((self.sealing.clone(), self.buffer_max_seq))
    }

    /// Publishes committed segments and drops the sealed rows; returns the bytes freed.
    pub fn finish_seal(&mut self, segments: Vec<Arc<SegmentMeta>>, sealed_seq: u64) -> usize {
        self.segments.extend(segments);
        self.sealing.clear();
        self.sealed_seq = self.sealed_seq.max(sealed_seq);
        std::mem::take(&mut self.sealing_bytes)
    }

    /// Whether every path names one of the dataset's committed segments.
    pub fn has_segments(&self, paths: &[String]) -> bool {
        crate::manifest::has_segments(&self.segments, paths)
    }

    /// Applies a committed [`crate::manifest::Action::ReplaceSegments`]; returns the
    /// rollup files no longer referenced.
    pub fn replace_segments(
        &mut self,
        removed: &[String],
        added: Vec<SegmentMeta>,
    ) -> Vec<SegmentMeta> {
        crate::manifest::replace_segments(&mut self.segments, &mut self.rollups, removed, added)
    }

    /// Puts rows back in front of the buffer after a failed seal.
    pub fn abort_seal(&mut self, now_ns: i64) {
        let mut rows = std::mem::take(&mut self.sealing);
        self.buffer_rows += rows.iter().map(RecordBatch::num_rows).sum::<usize>();
        self.buffer_bytes += std::mem::take(&mut self.sealing_bytes);
        rows.append(&mut self.buffer);
        self.buffer = rows;
        self.buffer_oldest_ns.get_or_insert(now_ns);
    }
}
