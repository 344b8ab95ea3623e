//! One dataset's live state: schema, sealed segments, buffered rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use parking_lot::Mutex;
use quarry_schema::DatasetSchema;

use crate::rollup::RollupSet;
use crate::{BufferGroup, BufferSnapshot, DatasetSnapshot, SegmentMeta};

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
    /// Highest WAL sequence in `sealing`.
    pub sealing_max_seq: u64,
    /// Every WAL entry of this dataset up to here is in `segments`.
    pub sealed_seq: u64,
    /// The same for the WALs of other (named) ingest nodes, as far as their
    /// seals are applied here: which of their unsealed rows a query still needs.
    pub sealed_seq_by_node: BTreeMap<String, u64>,
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
            sealed_seq_by_node: self.sealed_seq_by_node.clone(),
        }
    }

    /// This node's unsealed rows, for a query on another node: the rows being
    /// sealed and the buffer, each group with the highest WAL sequence in it.
    pub fn buffer_snapshot(&self) -> BufferSnapshot {
        let mut groups = Vec::with_capacity(2);
        if !self.sealing.is_empty() {
            groups.push(BufferGroup {
                max_seq: self.sealing_max_seq,
                batches: self.sealing.clone(),
            });
        }
        if !self.buffer.is_empty() {
            groups.push(BufferGroup {
                max_seq: self.buffer_max_seq,
                batches: self.buffer.clone(),
            });
        }
        BufferSnapshot {
            schema: self.schema.clone(),
            sealed_seq: self.sealed_seq,
            groups,
        }
    }

    /// Records that `node`'s rows of this dataset up to `seq` are in segments.
    pub fn note_sealed_by(&mut self, node: &str, seq: u64) {
        if node.is_empty() {
            return;
        }
        let sealed = self.sealed_seq_by_node.entry(node.to_owned()).or_default();
        *sealed = (*sealed).max(seq);
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
        self.sealing_max_seq = self.buffer_max_seq;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::rows;

    fn group_rows(snapshot: &BufferSnapshot) -> Vec<(u64, usize)> {
        snapshot
            .groups
            .iter()
            .map(|group| {
                let rows = group.batches.iter().map(RecordBatch::num_rows).sum();
                (group.max_seq, rows)
            })
            .collect()
    }

    #[test]
    fn a_seal_in_flight_is_its_own_group_until_it_is_committed() {
        let mut state = DatasetState::default();
        state.push(3, rows(0..2, |id| id), 0);
        state.push(5, rows(2..5, |id| id), 0);
        assert_eq!(group_rows(&state.buffer_snapshot()), vec![(5, 5)]);

        assert!(state.begin_seal().is_some());
        state.push(8, rows(5..6, |id| id), 0);
        let during = state.buffer_snapshot();
        assert_eq!(group_rows(&during), vec![(5, 5), (8, 1)]);
        assert_eq!(during.sealed_seq, 0);

        state.finish_seal(Vec::new(), 5);
        let after = state.buffer_snapshot();
        assert_eq!(group_rows(&after), vec![(8, 1)]);
        assert_eq!(after.sealed_seq, 5);

        // Another node's seals only ever move its sequence forward.
        state.note_sealed_by("b", 9);
        state.note_sealed_by("b", 4);
        state.note_sealed_by("", 100);
        assert_eq!(
            state.snapshot().sealed_seq_by_node,
            BTreeMap::from([("b".to_owned(), 9)])
        );
    }
}
