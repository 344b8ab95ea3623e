//! Every tunable of the store, with its default, in one place.

use std::path::PathBuf;
use std::time::Duration;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge after the WAL frame is fsynced (group commit shares one fsync
    /// between concurrent appends). Survives power loss. The default.
    #[default]
    Fsync,
    /// Acknowledge after the frame reaches the OS page cache; fsync runs every
    /// [`StoreConfig::relaxed_sync_interval`]. Survives a process crash (`kill -9`),
    /// may lose the last interval of writes on power loss or a kernel crash.
    Relaxed,
}

/// Configuration of a [`crate::Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Local directory of the write-ahead log (must be a local disk: it is fsynced).
    pub wal_dir: PathBuf,
    pub durability: Durability,
    /// Fsync period in [`Durability::Relaxed`] mode.
    pub relaxed_sync_interval: Duration,
    /// Seal a dataset's buffer once it holds this many rows.
    pub seal_max_rows: usize,
    /// Seal a dataset's buffer once its Arrow arrays use this many bytes.
    pub seal_max_bytes: usize,
    /// Seal a dataset's buffer once its oldest row has waited this long.
    pub seal_max_age: Duration,
    /// Width of a time partition: each segment holds rows of one partition.
    pub partition_width: Duration,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Columns that get a bloom filter in every segment (besides `trace.trace_id`).
    pub bloom_filter_columns: Vec<String>,
    /// Start a new WAL file after this many bytes.
    pub wal_file_max_bytes: u64,
    /// Memory budget of all buffers together; appends beyond it are refused with
    /// [`crate::StoreError::Overloaded`] until sealing catches up.
    pub max_buffered_bytes: usize,
    /// Appends waiting for the WAL writer beyond which new ones are refused.
    pub max_pending_appends: usize,
    /// Write a manifest checkpoint after this many log entries.
    pub manifest_checkpoint_interval: u64,
}

/// Default seal threshold in rows.
pub const DEFAULT_SEAL_MAX_ROWS: usize = 1 << 20;
/// Default seal threshold in buffered bytes.
pub const DEFAULT_SEAL_MAX_BYTES: usize = 256 << 20;
/// Default seal age.
pub const DEFAULT_SEAL_MAX_AGE: Duration = Duration::from_secs(120);
/// Default time partition: one hour.
pub const DEFAULT_PARTITION_WIDTH: Duration = Duration::from_secs(3600);
/// Default Parquet row group size (rows).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 128 * 1024;
/// Default WAL file size before rotation.
pub const DEFAULT_WAL_FILE_MAX_BYTES: u64 = 64 << 20;
/// Default memory budget of all buffers.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 2 << 30;
/// Default bound on appends queued for the WAL writer.
pub const DEFAULT_MAX_PENDING_APPENDS: usize = 4096;
/// Default manifest entries between checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 64;
/// Default fsync period in relaxed mode.
pub const DEFAULT_RELAXED_SYNC_INTERVAL: Duration = Duration::from_millis(200);

impl StoreConfig {
    /// Defaults with the WAL under `wal_dir`.
    pub fn new(wal_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            wal_dir: wal_dir.into(),
            durability: Durability::default(),
            relaxed_sync_interval: DEFAULT_RELAXED_SYNC_INTERVAL,
            seal_max_rows: DEFAULT_SEAL_MAX_ROWS,
            seal_max_bytes: DEFAULT_SEAL_MAX_BYTES,
            seal_max_age: DEFAULT_SEAL_MAX_AGE,
            partition_width: DEFAULT_PARTITION_WIDTH,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            bloom_filter_columns: Vec::new(),
            wal_file_max_bytes: DEFAULT_WAL_FILE_MAX_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_pending_appends: DEFAULT_MAX_PENDING_APPENDS,
            manifest_checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}
