//! Quarry's storage engine: write-ahead log, in-memory buffers, Parquet segments and
//! the manifest that names them, on an `object_store`.
//!
//! ```text
//!  append(env, dataset, batch)
//!     │ conform to the dataset schema (under the dataset lock)
//!     ▼
//!  WAL writer task ── frames (lz4 Arrow IPC, crc32) ── group commit: one fsync per round
//!     │ after the fsync, in WAL order
//!     ▼
//!  dataset buffer  ◄── queries read a snapshot: buffer batches + manifest segments
//!     │ seal on rows / bytes / age
//!     ▼
//!  Parquet segment per time partition (sorted by timestamp, zstd, page index, bloom)
//!     │ create-only put of the next manifest log entry
//!     ▼
//!  manifest commit ──► WAL files no buffer needs any more are deleted
//! ```
//!
//! Guarantees of [`Store::append`]: when it returns `Ok`, the batch is durable (per
//! [`Durability`]) and visible to [`Store::snapshot`]. Replay after a crash is
//! idempotent: every WAL entry carries a sequence number and the manifest records,
//! per dataset, the highest sequence already sealed into segments.
//!
//! quarry-segment-store depends only on `quarry-schema` (its tests also on
//! `quarry-ingest` and `quarry-datagen`): it stores batches and must not know
//! their wire formats or how they are queried.

mod compaction;
mod config;
mod dataset;
mod error;
mod follow;
mod lease;
mod maintenance;
mod manifest;
mod metrics;
mod names;
mod orphans;
mod quarantine;
mod replace;
mod retention;
pub mod rollup;
mod rollup_store;
mod sealer;
mod segment_meta;
pub mod segment_writer;
mod stat_value;
mod store;
#[cfg(test)]
mod test_support;
pub mod wal;

pub use compaction::CompactionReport;
pub use config::*;
pub use error::{Result, StoreError};
pub use metrics::{AmountGauge, StoreMetrics};
pub use names::{DATA_PREFIXES, is_immutable_object};
pub use quarantine::QuarantinedRecord;
pub use retention::RetentionReport;
pub use rollup::{
    MeasureOp, Rollup, RollupDefinition, RollupFilter, RollupMeasure, RollupSegment, RollupSet,
};
pub use rollup_store::{PutRollupMode, PutRollupOutcome};
pub use segment_meta::{BloomFilterLocation, ColumnStats, SegmentMeta, StatValue};
pub use store::Store;
pub use wal::SourcePositions;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use quarry_schema::DatasetSchema;

/// The environment used when no API keys are configured.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// A consistent view of one dataset for a query: every row is in exactly one of
/// `segments` or `buffer`.
#[derive(Debug, Clone)]
pub struct DatasetSnapshot {
    pub schema: DatasetSchema,
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Buffered (not yet sealed) rows; each batch has a subset of the schema's columns.
    pub buffer: Vec<RecordBatch>,
    /// For each other ingest node, the WAL sequence up to which its rows of this
    /// dataset are in `segments` (a query adds only its rows after that).
    pub sealed_seq_by_node: BTreeMap<String, u64>,
}

/// One node's unsealed rows of one dataset, as another node's query needs them
/// (see `DatasetState::buffer_snapshot`).
#[derive(Debug, Clone, Default)]
pub struct BufferSnapshot {
    /// The dataset's columns as this node knows them.
    pub schema: DatasetSchema,
    /// Every row of the dataset in this node's WAL up to here is in committed
    /// segments; the rows after it are in `groups`.
    pub sealed_seq: u64,
    /// The unsealed rows, oldest group first.
    pub groups: Vec<BufferGroup>,
}

/// Rows that are sealed together: all of them are in segments exactly when the
/// manifest records this node sealed up to `max_seq` (or beyond).
#[derive(Debug, Clone)]
pub struct BufferGroup {
    pub max_seq: u64,
    pub batches: Vec<RecordBatch>,
}

/// What the schema API says about a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    pub name: String,
    pub created_at_ns: i64,
    pub last_written_ns: i64,
    pub schema: DatasetSchema,
}

/// Environment variable that makes the process abort right after a seal's manifest
/// commit, before buffers and WAL files are released (crash-recovery tests).
pub const FAULT_CRASH_AFTER_SEAL_COMMIT: &str = "QUARRY_FAULT_CRASH_AFTER_SEAL_COMMIT";

/// Environment variable that makes the process abort in a compaction merge, right
/// before (`before-commit`) or right after (`after-commit`) its manifest commit
/// (crash-recovery tests).
pub const FAULT_CRASH_IN_COMPACTION: &str = "QUARRY_FAULT_CRASH_IN_COMPACTION";
