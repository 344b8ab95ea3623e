//! Where segments, rollup segments and the manifest live: a directory on local
//! disk (the default) or a bucket of S3-compatible object storage.
//!
//! ```text
//!  [storage] object_store = "s3://bucket/prefix"     (absent: <data_dir>/objects)
//!        │
//!        ▼
//!  ReadCache ── immutable data files, in 1 MiB chunks on local disk, LRU by bytes
//!        │ misses, and everything else (manifest, listings, puts, deletes)
//!        ▼
//!  PrefixStore("prefix") ── AmazonS3 (object_store: signing, retries with backoff)
//! ```
//!
//! The write-ahead log is never here: it stays on local disk, where it is fsynced.
//! Segment files are written once and never changed, so a cached chunk is never
//! stale; the manifest's log entries are create-only (`If-None-Match: *`), which
//! S3 and the S3-compatible servers that Quarry is tested with support.

mod config;
mod error;
mod metrics;
mod read_cache;
mod s3;

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

pub use config::{ObjectStorageConfig, ReadCacheSettings, S3Settings};
pub use error::ObjectStorageError;
pub use metrics::ReadCacheMetrics;
pub use read_cache::{CHUNK_BYTES, ReadCache};

/// An opened object storage: the store to hand to the segment store, and the
/// read cache's counters (present when the storage is remote).
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    pub store: Arc<dyn ObjectStore>,
    pub read_cache: Option<Arc<ReadCacheMetrics>>,
    /// Where it is, for logs: a local directory or `s3://bucket/prefix`.
    pub location: String,
}

impl ObjectStorage {
    /// Whether the objects are in a remote store (which other nodes may share).
    pub fn is_remote(&self) -> bool {
        self.read_cache.is_some()
    }
}

/// Opens the configured storage. `local_dir` holds the objects when no remote
/// store is configured; `default_cache_dir` holds the read cache of a remote
/// one unless `[storage.read_cache] dir` says otherwise. `is_immutable` tells
/// which paths are write-once data files (only those are cached).
pub fn open(
    config: &ObjectStorageConfig,
    local_dir: &Path,
    default_cache_dir: &Path,
    is_immutable: fn(&object_store::path::Path) -> bool,
) -> Result<ObjectStorage, ObjectStorageError> {
    let Some(url) = config.object_store.as_deref() else {
        std::fs::create_dir_all(local_dir).map_err(|source| ObjectStorageError::Io {
            path: local_dir.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(local_dir)?;
        return Ok(ObjectStorage {
            store: Arc::new(store),
            read_cache: None,
            location: local_dir.display().to_string(),
        });
    };
    let remote = s3::open(url, &config.s3)?;
    let cache_dir = config
        .read_cache
        .dir
        .clone()
        .unwrap_or_else(|| default_cache_dir.to_path_buf());
    let metrics = Arc::new(ReadCacheMetrics::default());
    let cache = ReadCache::new(
        remote,
        &cache_dir,
        config.read_cache.max_bytes,
        is_immutable,
        Arc::clone(&metrics),
    )?;
    Ok(ObjectStorage {
        store: Arc::new(cache),
        read_cache: Some(metrics),
        location: url.to_owned(),
    })
}
