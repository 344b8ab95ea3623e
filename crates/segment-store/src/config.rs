//! Every tunable of the store, with its default, in one place.
//!
//! The structs deserialize straight from the server's TOML file (`[storage]`,
//! `[compaction]`, `[retention]`): a key's name is its field's, with a `_secs` or
//! `_ms` suffix where the field is a duration. Unknown keys are errors; values are
//! checked by [`StoreConfig::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use quarry_schema::{SharedClock, system_clock};
use serde::{Deserialize, Deserializer};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
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

/// Configuration of a [`crate::Store`]. Deserializes from `[storage]` (without
/// `compaction` and `retention`, which are sections of their own).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Local directory of the write-ahead log (must be a local disk: it is fsynced).
    #[serde(skip)]
    pub wal_dir: PathBuf,
    pub durability: Durability,
    /// Fsync period in [`Durability::Relaxed`] mode.
    #[serde(rename = "relaxed_sync_interval_ms", deserialize_with = "millis")]
    pub relaxed_sync_interval: Duration,
    /// Seal a dataset's buffer once it holds this many rows.
    pub seal_max_rows: usize,
    /// Seal a dataset's buffer once its Arrow arrays use this many bytes.
    pub seal_max_bytes: usize,
    /// Seal a dataset's buffer once its oldest row has waited this long.
    #[serde(rename = "seal_max_age_secs", deserialize_with = "seconds")]
    pub seal_max_age: Duration,
    /// Width of a time partition: each segment holds rows of one partition.
    #[serde(rename = "partition_width_secs", deserialize_with = "seconds")]
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
    #[serde(skip)]
    pub compaction: CompactionConfig,
    /// Dropping segments by age.
    #[serde(skip)]
    pub retention: RetentionConfig,
    /// Wall time for seal age, retention cut-offs and segment creation times (the
    /// system clock; tests move a `ManualClock` instead of sleeping).
    #[serde(skip, default = "system_clock")]
    pub clock: SharedClock,
    /// This writer's name in the manifest, which records per node how far each
    /// node's WAL is sealed. Empty for a single node; every ingest node that
    /// shares a bucket with others needs its own (the server sets it).
    #[serde(skip)]
    pub node_id: String,
    /// Run compaction, retention and the orphan sweep in the background. Among
    /// processes sharing one manifest exactly one does (the server sets it from
    /// the node's role).
    #[serde(skip, default = "yes")]
    pub run_maintenance: bool,
    /// Maintain only while holding the maintenance lease in the object store
    /// (the server sets it for a shared, remote store).
    #[serde(skip)]
    pub maintenance_lease: bool,
}

fn yes() -> bool {
    true
}

/// When and how the background task merges small segments of one time partition.
/// Deserializes from `[compaction]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Run compaction in the background (the admin trigger works either way).
    pub enabled: bool,
    /// Pause between two background rounds.
    #[serde(rename = "interval_secs", deserialize_with = "seconds")]
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
    #[serde(rename = "orphan_grace_secs", deserialize_with = "seconds")]
    pub orphan_grace: Duration,
    /// Files that compaction or retention removed from the manifest are deleted
    /// this long after the commit, so queries that started before it can still
    /// read them (zero: at once).
    #[serde(rename = "deletion_delay_secs", deserialize_with = "seconds")]
    pub deletion_delay: Duration,
    /// When several processes share the object store, the one holding the
    /// maintenance lease maintains; it renews every third of this, and another
    /// takes over this long after the holder stopped renewing.
    #[serde(rename = "lease_ttl_secs", deserialize_with = "seconds")]
    pub lease_ttl: Duration,
}

/// How long sealed data is kept. Deserializes from `[retention]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Segments whose newest row is older than this are dropped; `None` keeps
    /// everything. In the file: a duration (`"30d"`, `"12h 30m"`) or `"forever"`.
    #[serde(deserialize_with = "max_age")]
    pub max_age: Option<Duration>,
    /// Per dataset name (in every environment): overrides `max_age`; `None` keeps
    /// that dataset forever.
    #[serde(rename = "datasets", deserialize_with = "max_age_by_dataset")]
    pub dataset_max_age: BTreeMap<String, Option<Duration>>,
    /// Pause between two background retention passes.
    #[serde(rename = "interval_secs", deserialize_with = "seconds")]
    pub interval: Duration,
}

impl CompactionConfig {
    /// Checks the `[compaction]` settings.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        positive("interval_secs", self.interval)?;
        if self.min_segments < MIN_COMPACTION_SEGMENTS {
            return Err(InvalidSetting {
                key: "min_segments",
                problem: format!("must be at least {MIN_COMPACTION_SEGMENTS}"),
            });
        }
        positive("small_segment_bytes", self.small_segment_bytes)?;
        positive("max_input_rows", self.max_input_rows)?;
        positive("max_input_bytes", self.max_input_bytes)?;
        if self.lease_ttl < Duration::from_secs(3) {
            return Err(InvalidSetting {
                key: "lease_ttl_secs",
                problem: "must be at least 3".into(),
            });
        }
        Ok(())
    }
}

impl RetentionConfig {
    /// Checks the `[retention]` settings (ages are checked as they are read).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        positive("interval_secs", self.interval)
    }

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
/// Default time to live of the maintenance lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
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
            lease_ttl: DEFAULT_LEASE_TTL,
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

impl Default for StoreConfig {
    /// Defaults, with no WAL directory yet (set `wal_dir` before opening a store).
    fn default() -> Self {
        StoreConfig::new(PathBuf::new())
    }
}

/// A setting whose value the store cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The key, as the configuration file names it (`seal_max_rows`).
    pub key: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.problem)
    }
}

/// A merge needs at least two segments.
pub const MIN_COMPACTION_SEGMENTS: usize = 2;

/// Refuses a zero where zero would stall or break the store.
fn positive<T: PartialEq + Default>(key: &'static str, value: T) -> Result<(), InvalidSetting> {
    if value == T::default() {
        return Err(InvalidSetting {
            key,
            problem: "must be greater than 0".into(),
        });
    }
    Ok(())
}

impl StoreConfig {
    /// Checks the `[storage]` settings (not those of `compaction` and `retention`,
    /// which check themselves).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        positive("relaxed_sync_interval_ms", self.relaxed_sync_interval)?;
        positive("seal_max_rows", self.seal_max_rows)?;
        positive("seal_max_bytes", self.seal_max_bytes)?;
        positive("partition_width_secs", self.partition_width)?;
        positive("row_group_rows", self.row_group_rows)?;
        positive("wal_file_max_bytes", self.wal_file_max_bytes)?;
        positive("max_buffered_bytes", self.max_buffered_bytes)?;
        positive("max_pending_appends", self.max_pending_appends)?;
        positive(
            "manifest_checkpoint_interval",
            self.manifest_checkpoint_interval,
        )
    }

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
            clock: system_clock(),
            node_id: String::new(),
            run_maintenance: true,
            maintenance_lease: false,
        }
    }
}

/// The value of a maximum age that keeps data forever.
pub const FOREVER: &str = "forever";

/// Whole seconds.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// Whole milliseconds.
fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

/// A maximum age: a positive duration in `humantime` syntax (`"30d"`, `"12h 30m"`)
/// or `"forever"` (`None`).
pub fn parse_max_age(text: &str) -> Result<Option<Duration>, String> {
    if text.trim().eq_ignore_ascii_case(FOREVER) {
        return Ok(None);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(age) if !age.is_zero() => Ok(Some(age)),
        Ok(_) => Err("must be greater than 0".into()),
        Err(error) => Err(format!(
            "{text:?} is not a duration like \"30d\" or \"12h\", nor \"{FOREVER}\": {error}"
        )),
    }
}

fn max_age<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_max_age(&text).map_err(serde::de::Error::custom)
}

fn max_age_by_dataset<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Option<Duration>>, D::Error> {
    let texts = BTreeMap::<String, String>::deserialize(deserializer)?;
    texts
        .into_iter()
        .map(|(dataset, text)| match parse_max_age(&text) {
            Ok(age) => Ok((dataset, age)),
            Err(problem) => Err(serde::de::Error::custom(format!("{dataset:?}: {problem}"))),
        })
        .collect()
}
