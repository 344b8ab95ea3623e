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

mod config;
mod error;
mod segment_meta;

pub use config::*;
pub use error::{Result, StoreError};
pub use segment_meta::{BloomFilterLocation, ColumnStats, SegmentMeta, StatValue};

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::RecordBatch;
use object_store::ObjectStore;
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
}

/// What the schema API says about a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    pub name: String,
    pub created_at_ns: i64,
    pub last_written_ns: i64,
    pub schema: DatasetSchema,
}

/// Counters of the store's own work, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    pub appended_rows: AtomicU64,
    pub appended_batches: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub appends_refused_overloaded: AtomicU64,
    pub segments_written: AtomicU64,
    pub rows_sealed: AtomicU64,
    pub manifest_commits: AtomicU64,
    pub wal_files_deleted: AtomicU64,
    pub replayed_rows: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

/// The storage engine of one Quarry node.
pub struct Store {
    _private: (),
}

impl Store {
    /// Opens (or creates) the store: loads the manifest, replays the WAL, starts the
    /// WAL writer and the sealing task.
    pub async fn open(config: StoreConfig, object_store: Arc<dyn ObjectStore>) -> Result<Arc<Store>> {
        let _ = (config, object_store);
        todo!()
    }

    /// The current schema of a dataset (for decoders' type hints), if it exists.
    pub fn schema(&self, env: &str, dataset: &str) -> Option<DatasetSchema> {
        let _ = (env, dataset);
        todo!()
    }

    /// Appends rows (must have a `timestamp` column). Creates the dataset on first
    /// write. Returns once durable and visible; see the crate docs.
    pub async fn append(&self, env: &str, dataset: &str, batch: RecordBatch) -> Result<()> {
        let _ = (env, dataset, batch);
        todo!()
    }

    /// The datasets of an environment, by name.
    pub fn datasets(&self, env: &str) -> Vec<DatasetInfo> {
        let _ = env;
        todo!()
    }

    /// A consistent snapshot of a dataset, if it exists.
    pub fn snapshot(&self, env: &str, dataset: &str) -> Option<DatasetSnapshot> {
        let _ = (env, dataset);
        todo!()
    }

    /// The object store holding segments (paths in [`SegmentMeta::path`] are in it).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        todo!()
    }

    /// Seals every buffer now and waits for the manifest commit.
    pub async fn seal_all(&self) -> Result<()> {
        todo!()
    }

    /// Counters of the store's work.
    pub fn metrics(&self) -> &StoreMetrics {
        todo!()
    }

    /// Stops accepting appends, makes pending ones durable, stops background tasks.
    pub async fn shutdown(&self) -> Result<()> {
        todo!()
    }
}
