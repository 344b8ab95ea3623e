//! Every tunable of the store, with its default, in one place.

use std::collections::BTreeMap;
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
    /// Merging small segments of a partition (and sweeping orphaned files).
    pub compaction: CompactionConfig,
    /// Dropping segments by age.
    pub retention: RetentionConfig,
}

/// When and how the background task merges small segments of one time partition.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    /// Run compaction in the background (the admin trigger works either way).
    pub enabled: bool,
    /// Pause between two background rounds.
    pub interval: Duration,
    /// A partition is compacted once it has this many small segments.
    pub min_segments: usize,
    /// Segments smaller than this (file bytes) are "small": merge candidates.
    pub small_segment_bytes: u64,
    /// Cap on the rows of one merge: its rows are held in memory while the output
    /// is sorted and encoded, like a seal's.
    pub max_input_rows: u64,
    /// Cap on the file bytes read by one merge.
    pub max_input_bytes: u64,
    /// Files under `segments/` and `rollups/` that no manifest entry names are
    /// deleted once older than this (a crash between upload and commit leaves them).
    pub orphan_grace: Duration,
    /// Files that compaction or retention removed from the manifest are deleted
    /// this long after the commit, so queries that started before it can still
    /// read them (zero: at once).
    pub deletion_delay: Duration,
}

/// How long sealed data is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Segments whose newest row is older than this are dropped; `None` keeps
    /// everything.
    pub max_age: Option<Duration>,
    /// Per dataset name (in every environment): overrides `max_age`; `None` keeps
    /// that dataset forever.
    pub dataset_max_age: BTreeMap<String, Option<Duration>>,
    /// Pause between two background retention passes.
    pub interval: Duration,
}

impl RetentionConfig {
    /// The maximum age of the dataset named `dataset`, if its data expires.
    pub fn max_age_for(&self, dataset: &str) -> Option<Duration> {
        match self.dataset_max_age.get(dataset) {
            Some(configured) => *configured,
            None => self.max_age,
        }
    }

    /// Whether any dataset's data expires.
    pub fn is_enabled(&self) -> bool {
        self.max_age.is_some() || self.dataset_max_age.values().any(Option::is_some)
    }
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
/// Default pause between background compaction rounds.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(60);
/// Default number of small segments in a partition that triggers a merge.
pub const DEFAULT_COMPACTION_MIN_SEGMENTS: usize = 4;
/// Default size below which a segment is a merge candidate.
pub const DEFAULT_SMALL_SEGMENT_BYTES: u64 = 32 << 20;
/// Default cap on the rows of one merge (the seal threshold: a merge holds no more
/// rows in memory than a seal does).
pub const DEFAULT_COMPACTION_MAX_INPUT_ROWS: u64 = DEFAULT_SEAL_MAX_ROWS as u64;
/// Default cap on the file bytes one merge reads.
pub const DEFAULT_COMPACTION_MAX_INPUT_BYTES: u64 = 128 << 20;
/// Default age before an unreferenced file is swept: far longer than any upload
/// takes to be committed.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// Default delay between a commit that removes files and their deletion: longer
/// than queries run.
pub const DEFAULT_DELETION_DELAY: Duration = Duration::from_secs(300);
/// Default pause between background retention passes.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            enabled: true,
            interval: DEFAULT_COMPACTION_INTERVAL,
            min_segments: DEFAULT_COMPACTION_MIN_SEGMENTS,
            small_segment_bytes: DEFAULT_SMALL_SEGMENT_BYTES,
            max_input_rows: DEFAULT_COMPACTION_MAX_INPUT_ROWS,
            max_input_bytes: DEFAULT_COMPACTION_MAX_INPUT_BYTES,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            deletion_delay: DEFAULT_DELETION_DELAY,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: None,
            dataset_max_age: BTreeMap::new(),
            interval: DEFAULT_RETENTION_INTERVAL,
        }
    }
}

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
            compaction: CompactionConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}
