//! A read-through cache of immutable objects on local disk, bounded in bytes.
//!
//! Objects are cached in aligned chunks of [`CHUNK_BYTES`], so a query that reads
//! two columns of a segment downloads (and keeps) about those columns' bytes, not
//! the whole file. The index of cached chunks is a `moka` cache weighed in bytes
//! with least-recently-used eviction; evicting an entry deletes its file.
//! Concurrent misses of one chunk download it once (`try_get_with` coalesces).
//!
//! Only paths the caller names immutable are cached (segment and rollup files are
//! written once under unique names and never changed, so a chunk is never stale);
//! the manifest, listings, puts and deletes go straight to the inner store. The
//! index lives in memory, so the directory is emptied at start.
//!
//! Written here rather than taken from a crate: the caching object stores on
//! crates.io either cache whole objects in memory or target other object_store
//! versions; this is the part of remote storage that decides warm query speed.

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::{ObjectStorageError, ReadCacheMetrics};

/// Size of one cached chunk (the last chunk of an object may be shorter).
pub const CHUNK_BYTES: u64 = 1 << 20;
/// Chunks of one read fetched at once.
const PARALLEL_CHUNK_READS: usize = 8;
/// Objects whose size the cache remembers (a few hundred bytes each).
const MAX_REMEMBERED_OBJECTS: u64 = 200_000;

type ChunkKey = (Path, u64);

/// An object store whose immutable objects are read through a local disk cache.
pub struct ReadCache {
    inner: Arc<dyn ObjectStore>,
    dir: PathBuf,
    enabled: bool,
    is_immutable: fn(&Path) -> bool,
    /// Cached chunks and their lengths; the weigher counts bytes.
    chunks: moka::future::Cache<ChunkKey, u32>,
    /// Sizes (and the rest of the metadata) of immutable objects.
    metas: moka::future::Cache<Path, ObjectMeta>,
    metrics: Arc<ReadCacheMetrics>,
    /// Makes temporary file names unique.
    next_temp: AtomicU64,
}

impl ReadCache {
    /// Wraps `inner`, keeping at most `max_bytes` of chunks under `dir` (emptied
    /// first). Zero bytes turns caching off.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        dir: &FsPath,
        max_bytes: u64,
        is_immutable: fn(&Path) -> bool,
        metrics: Arc<ReadCacheMetrics>,
    ) -> Result<ReadCache, ObjectStorageError> {
        let io = |source| ObjectStorageError::Io {
            path: dir.display().to_string(),
            source,
        };
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        let listener_dir = dir.to_path_buf();
        let listener_metrics = Arc::clone(&metrics);
        let chunks = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &ChunkKey, len: &u32| *len)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |key: Arc<ChunkKey>, len: u32, cause: RemovalCause| {
                // A replaced entry's file is the new entry's file: keep it.
                if cause == RemovalCause::Replaced {
                    return;
                }
                if cause == RemovalCause::Size {
                    listener_metrics.evictions.inc();
                }
                listener_metrics.cached_bytes.dec_by(u64::from(len));
                let _ = std::fs::remove_file(chunk_file(&listener_dir, &key));
            })
            .build();
        Ok(ReadCache {
            inner,
            dir: dir.to_path_buf(),
            enabled: max_bytes > 0,
            is_immutable,
            chunks,
            metas: moka::future::Cache::new(MAX_REMEMBERED_OBJECTS),
            metrics,
            next_temp: AtomicU64::new(0),
        })
    }

    /// The object's metadata: remembered, or asked for once.
    async fn meta(&self, location: &Path) -> Result<ObjectMeta> {
        if let Some(meta) = self.metas.get(location).await {
            return Ok(meta);
        }
        let meta = self.inner.head(location).await?;
        self.metas.insert(location.clone(), meta.clone()).await;
        Ok(meta)
    }

    /// The bytes of `range` (within the object), chunk by chunk.
    async fn read(&self, location: &Path, size: u64, range: Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let first = range.start / CHUNK_BYTES;
        let last = (range.end - 1) / CHUNK_BYTES;
        let parts: Vec<Bytes> = stream::iter(first..=last)
            .map(|index| {
                let start = index * CHUNK_BYTES;
                let end = size.min(start + CHUNK_BYTES);
                let part = range.start.max(start) - start..range.end.min(end) - start;
                self.chunk_part(location, size, index, part)
            })
            .buffered(PARALLEL_CHUNK_READS)
            .try_collect()
            .await?;
        if let [only] = parts.as_slice() {
            return Ok(only.clone());
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for part in &parts {
            out.extend_from_slice(part);
        }
        Ok(out.freeze())
    }

    /// `part` (offsets within the chunk) of chunk `index`: read from local disk
    /// (only those bytes), or the whole chunk downloaded (once) and kept.
    async fn chunk_part(
        &self,
        location: &Path,
        size: u64,
        index: u64,
        part: Range<u64>,
    ) -> Result<Bytes> {
        let start = index * CHUNK_BYTES;
        let range = start..size.min(start + CHUNK_BYTES);
        let chunk_len = range.end - range.start;
        let key = (location.clone(), index);
        let file = chunk_file(&self.dir, &key);
        if self.chunks.get(&key).await.is_some() {
            if let Some(bytes) = read_part(&file, chunk_len, part.clone()).await {
                self.count_hit(bytes.len());
                return Ok(bytes);
            }
            // Indexed but its file is gone or short (evicted meanwhile, or the
            // disk lost it): forget it and load it again.
            self.chunks.invalidate(&key).await;
        }
        // Load it once among concurrent readers; the loader keeps its bytes.
        let downloaded: Arc<OnceLock<Bytes>> = Arc::new(OnceLock::new());
        let load = {
            let downloaded = Arc::clone(&downloaded);
            let range = range.clone();
            let file = file.clone();
            async move {
                let bytes = self.inner.get_range(location, range).await?;
                self.write_file(&file, &bytes).await;
                let len = bytes.len() as u32;
                let _ = downloaded.set(bytes);
                Ok::<u32, object_store::Error>(len)
            }
        };
        let len = self.chunks.try_get_with(key, load).await.map_err(|error| {
            object_store::Error::Generic {
                store: "read cache",
                source: Box::new(SharedError(error)),
            }
        })?;
        let slice = |bytes: &Bytes| bytes.slice(part.start as usize..part.end as usize);
        if let Some(bytes) = downloaded.get() {
            self.metrics.misses.inc();
            self.metrics.miss_bytes.inc_by(bytes.len() as u64);
            self.metrics.cached_bytes.inc_by(u64::from(len));
            return Ok(slice(bytes));
        }
        // Another reader downloaded it.
        if let Some(bytes) = read_part(&file, chunk_len, part.clone()).await {
            self.count_hit(bytes.len());
            return Ok(bytes);
        }
        self.metrics.misses.inc();
        let bytes = self.inner.get_range(location, range).await?;
        self.metrics.miss_bytes.inc_by(bytes.len() as u64);
        Ok(slice(&bytes))
    }

    fn count_hit(&self, len: usize) {
        self.metrics.hits.inc();
        self.metrics.hit_bytes.inc_by(len as u64);
    }

    /// Writes a chunk's file atomically (temporary name, then rename). A failure
    /// only costs a later download: the read that wrote it has its bytes.
    async fn write_file(&self, file: &FsPath, bytes: &Bytes) {
        let temp = self.dir.join(format!(
            ".tmp-{}",
            self.next_temp.fetch_add(1, Ordering::Relaxed)
        ));
        let written = async {
            tokio::fs::write(&temp, bytes).await?;
            tokio::fs::rename(&temp, file).await
        }
        .await;
        if let Err(error) = written {
            tracing::warn!(%error, file = %file.display(), "cannot write to the read cache");
            let _ = tokio::fs::remove_file(&temp).await;
        }
    }

    fn caches(&self, location: &Path, options: &GetOptions) -> bool {
        self.enabled
            && (self.is_immutable)(location)
            && options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
    }
}

/// The file of a chunk: the object path with `%` and `/` escaped, and the index.
fn chunk_file(dir: &FsPath, (path, index): &ChunkKey) -> PathBuf {
    let name = path.as_ref().replace('%', "%25").replace('/', "%2F");
    dir.join(format!("{name}.{index}"))
}

/// Bytes `part` of a chunk's file, if the file is there whole (`chunk_len`
/// bytes): one positioned read of just those bytes.
async fn read_part(file: &FsPath, chunk_len: u64, part: Range<u64>) -> Option<Bytes> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let opened = std::fs::File::open(&file).ok()?;
        if opened.metadata().ok()?.len() != chunk_len {
            return None;
        }
        let mut buffer = vec![0; (part.end - part.start) as usize];
        opened.read_exact_at(&mut buffer, part.start).ok()?;
        Some(Bytes::from(buffer))
    })
    .await
    .ok()
    .flatten()
}

/// A load error shared by the readers that waited on the same chunk.
#[derive(Debug)]
struct SharedError(Arc<object_store::Error>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {}

impl fmt::Display for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadCache({}, {})", self.inner, self.dir.display())
    }
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("inner", &self.inner)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ObjectStore for ReadCache {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !self.caches(location, &options) {
            return self.inner.get_opts(location, options).await;
        }
        let meta = self.meta(location).await?;
        let range = match (&options.range, options.head) {
            (_, true) => 0..0,
            (None, false) => 0..meta.size,
            (Some(range), false) => {
                range
                    .as_range(meta.size)
                    .map_err(|error| object_store::Error::Generic {
                        store: "read cache",
                        source: Box::new(error),
                    })?
            }
        };
        let bytes = self.read(location, meta.size, range.clone()).await?;
        let payload = stream::once(async move { Ok(bytes) }).boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Deleted objects' chunks are not looked up again (names are never
        // reused) and age out of the cache.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn immutable(path: &Path) -> bool {
        path.as_ref().starts_with("segments/")
    }

    async fn setup(max_bytes: u64) -> (tempfile::TempDir, Arc<InMemory>, ReadCache) {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(InMemory::new());
        let cache = ReadCache::new(
            inner.clone(),
            &dir.path().join("cache"),
            max_bytes,
            immutable,
            Arc::default(),
        )
        .unwrap();
        (dir, inner, cache)
    }

    fn object(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    #[tokio::test]
    async fn ranges_across_chunks_read_the_same_bytes_and_the_second_read_is_a_hit() {
        let (_dir, inner, cache) = setup(64 << 20).await;
        let path = Path::from("segments/a/b.parquet");
        let data = object(2 * CHUNK_BYTES as usize + 1000);
        inner.put(&path, data.clone().into()).await.unwrap();
        let across = CHUNK_BYTES - 10..2 * CHUNK_BYTES + 500;
        let got = cache.get_range(&path, across.clone()).await.unwrap();
        assert_eq!(got, data.slice(across.start as usize..across.end as usize));
        // Three chunks: the first two whole, the last 1000 bytes long.
        assert_eq!(cache.metrics.misses.get(), 3);
        assert_eq!(cache.metrics.miss_bytes.get(), 2 * CHUNK_BYTES + 1000);
        assert_eq!(cache.metrics.hits.get(), 0);

        let again = cache.get_range(&path, across.clone()).await.unwrap();
        assert_eq!(again, got);
        assert_eq!(
            cache.metrics.misses.get(),
            3,
            "the second read downloads nothing"
        );
        assert_eq!(cache.metrics.hits.get(), 3);

        let whole = cache.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole, data);
        assert_eq!(cache.metrics.misses.get(), 3, "every chunk was cached");
        let tail = cache.get_range(&path, 2 * CHUNK_BYTES + 999..2 * CHUNK_BYTES + 1000);
        assert_eq!(tail.await.unwrap(), data.slice(data.len() - 1..));
        assert_eq!(cache.head(&path).await.unwrap().size, data.len() as u64);
    }

    #[tokio::test]
    async fn the_budget_evicts_the_least_recently_used_chunk_and_deletes_its_file() {
        let (dir, inner, cache) = setup(2 * CHUNK_BYTES).await;
        for name in ["a", "b", "c"] {
            let path = Path::from(format!("segments/{name}"));
            inner
                .put(&path, object(CHUNK_BYTES as usize).into())
                .await
                .unwrap();
        }
        // The index records reads in batches; running them after each read
        // makes the order exact for the test.
        let read = |name: &str| {
            let path = Path::from(format!("segments/{name}"));
            let cache = &cache;
            async move {
                let bytes = cache.get_range(&path, 0..10).await.unwrap();
                cache.chunks.run_pending_tasks().await;
                bytes
            }
        };
        read("a").await;
        read("b").await;
        read("a").await; // a is now more recent than b
        read("c").await; // over budget: b goes
        cache.chunks.run_pending_tasks().await;
        assert_eq!(cache.metrics.evictions.get(), 1);
        assert_eq!(cache.metrics.cached_bytes.get(), 2 * CHUNK_BYTES);
        let files: Vec<String> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(!files.iter().any(|name| name.contains("%2Fb")), "{files:?}");
        let misses = cache.metrics.misses.get();
        read("a").await;
        assert_eq!(cache.metrics.misses.get(), misses, "a stayed");
        read("b").await;
        assert_eq!(cache.metrics.misses.get(), misses + 1, "b was evicted");
    }

    #[tokio::test]
    async fn mutable_paths_and_a_zero_budget_pass_straight_through() {
        let (_dir, inner, cache) = setup(64 << 20).await;
        let manifest = Path::from("_manifest/log/1.json");
        inner.put(&manifest, object(100).into()).await.unwrap();
        assert_eq!(
            cache.get(&manifest).await.unwrap().bytes().await.unwrap(),
            object(100)
        );
        inner.put(&manifest, object(50).into()).await.unwrap();
        assert_eq!(
            cache.get(&manifest).await.unwrap().bytes().await.unwrap(),
            object(50)
        );
        assert_eq!(cache.metrics.misses.get() + cache.metrics.hits.get(), 0);

        let (_dir, inner, off) = setup(0).await;
        let path = Path::from("segments/x");
        inner.put(&path, object(10).into()).await.unwrap();
        assert_eq!(
            off.get_range(&path, 2..4).await.unwrap(),
            object(10).slice(2..4)
        );
        assert_eq!(off.metrics.misses.get() + off.metrics.hits.get(), 0);
    }

    #[tokio::test]
    async fn a_missing_object_is_a_not_found_error() {
        let (_dir, _inner, cache) = setup(64 << 20).await;
        let error = cache
            .get_range(&Path::from("segments/gone"), 0..1)
            .await
            .unwrap_err();
        assert!(
            matches!(error, object_store::Error::NotFound { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_chunk_download_it_once() {
        let (_dir, inner, cache) = setup(64 << 20).await;
        let path = Path::from("segments/shared");
        let data = object(CHUNK_BYTES as usize);
        inner.put(&path, data.clone().into()).await.unwrap();
        cache.head(&path).await.unwrap();
        let reads = (0..8).map(|_| cache.get_range(&path, 100..200));
        for got in futures::future::join_all(reads).await {
            assert_eq!(got.unwrap(), data.slice(100..200));
        }
        assert_eq!(cache.metrics.misses.get(), 1);
        assert_eq!(cache.metrics.hits.get(), 7);
    }
}
