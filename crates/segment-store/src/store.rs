//! The [`Store`]: opening (manifest + WAL replay), appends, snapshots, shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use object_store::ObjectStore;
use parking_lot::{Mutex, RwLock};
use quarry_schema::{DatasetSchema, conform_batch};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::dataset::{Dataset, DatasetState};
use crate::manifest::Manifest;
use crate::wal::writer::WriterSettings;
use crate::wal::{
    DatasetKey, SharedPositions, SourcePositions, WalAppend, WalAppendEntry, WalHandle, WalIndex,
    WalSink, frame, replay,
};
use crate::{
    BufferSnapshot, DatasetInfo, DatasetSnapshot, FAULT_CRASH_AFTER_SEAL_COMMIT, Result,
    StoreConfig, StoreError, StoreMetrics, names,
};

/// The storage engine of one Quarry node. See the crate docs for its guarantees.
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    pub(crate) wal: WalHandle,
    /// Stream sources' durable positions (moved by the WAL writer).
    positions: SharedPositions,
    sealer: Mutex<Option<JoinHandle<()>>>,
    /// The compaction / retention / orphan-sweep loop.
    maintainer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the store, the WAL writer thread (as [`WalSink`]) and the sealer.
pub(crate) struct Inner {
    pub config: StoreConfig,
    pub object_store: Arc<dyn ObjectStore>,
    pub datasets: RwLock<HashMap<DatasetKey, Arc<Dataset>>>,
    pub manifest: tokio::sync::Mutex<Manifest>,
    pub metrics: Arc<StoreMetrics>,
    /// Wakes the sealer early (a buffer crossed a threshold, or shutdown).
    pub seal_wakeup: Notify,
    /// Serializes seals: the background loop and [`Store::seal_all`].
    pub seal_lock: tokio::sync::Mutex<()>,
    pub shutting_down: std::sync::atomic::AtomicBool,
    pub crash_after_seal_commit: bool,
    /// Where a compaction merge aborts the process (crash-recovery tests).
    pub compaction_fault: Option<crate::compaction::CrashPoint>,
    /// Counts manifest changes (seals, rollup changes); rollup maintenance waits on it.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Serializes compaction and retention passes (background loop and direct calls).
    pub maintenance_lock: tokio::sync::Mutex<()>,
    /// Wakes the maintenance loop (files to delete, or shutdown).
    pub maintenance_wakeup: Notify,
    /// Files removed from the manifest, with when to delete them (in that order:
    /// the delay is constant).
    pub pending_deletions: Mutex<std::collections::VecDeque<(tokio::time::Instant, String)>>,
    /// Held to maintain, when processes share the object store.
    pub lease: Option<crate::lease::MaintenanceLease>,
}

impl Inner {
    /// Now, by the store's clock (`StoreConfig::clock`).
    pub(crate) fn now_ns(&self) -> i64 {
        self.config.clock.now_ns()
    }

    pub fn dataset(&self, key: &DatasetKey) -> Option<Arc<Dataset>> {
        self.datasets.read().get(key).cloned()
    }

    pub(crate) fn dataset_or_create(&self, key: &DatasetKey, now_ns: i64) -> Arc<Dataset> {
        if let Some(dataset) = self.dataset(key) {
            return dataset;
        }
        self.datasets
            .write()
            .entry(key.clone())
            .or_insert_with(|| {
                Dataset::new(DatasetState {
                    created_at_ns: now_ns,
                    last_written_ns: now_ns,
                    ..Default::default()
                })
            })
            .clone()
    }

    /// Fails unless this process may maintain: always on its own store, and
    /// while holding (or after taking) the lease on a shared one.
    pub(crate) async fn require_lease(&self) -> Result<()> {
        match &self.lease {
            None => Ok(()),
            // Held with time to spare: the maintenance loop renews it.
            Some(lease) if lease.held_for() > lease.renew_interval() => Ok(()),
            Some(lease) if lease.acquire().await? => Ok(()),
            Some(_) => Err(StoreError::NotLeaseHolder),
        }
    }

    pub fn sealed_seq(&self, key: &DatasetKey) -> u64 {
        self.dataset(key)
            .map_or(0, |dataset| dataset.state.lock().sealed_seq)
    }
}

impl WalSink for Inner {
    fn applied(&self, seq: u64, key: &DatasetKey, batch: RecordBatch) {
        let now_ns = self.now_ns();
        let dataset = self.dataset_or_create(key, now_ns);
        let batch_rows = batch.num_rows() as u64;
        let (rows, bytes, added) = {
            let mut state = dataset.state.lock();
            let added = state.push(seq, batch, now_ns);
            (state.buffer_rows, state.buffer_bytes, added)
        };
        // Counted here, not by the appender: the rows are buffered even if the
        // client that sent them has gone away before the acknowledgement.
        self.metrics.appended_rows.inc_by(batch_rows);
        self.metrics.appended_batches.inc_by(1);
        self.metrics.buffered_bytes.inc_by(added as u64);
        if rows >= self.config.seal_max_rows || bytes >= self.config.seal_max_bytes {
            self.seal_wakeup.notify_one();
        }
    }
}

impl Store {
    /// Opens (or creates) the store: loads the manifest, replays the WAL, starts the
    /// WAL writer and the sealing task.
    pub async fn open(
        config: StoreConfig,
        object_store: Arc<dyn ObjectStore>,
    ) -> Result<Arc<Store>> {
        let wal_dir = config.wal_dir.clone();
        std::fs::create_dir_all(&wal_dir).map_err(|source| StoreError::Wal {
            path: wal_dir.display().to_string(),
            source,
        })?;
        let manifest =
            Manifest::load(object_store.clone(), config.manifest_checkpoint_interval).await?;
        tracing::info!(
            manifest_seq = manifest.seq(),
            datasets = manifest.datasets().count(),
            "manifest loaded"
        );
        let mut datasets = HashMap::new();
        let mut max_sealed_seq = 0;
        for record in manifest.datasets() {
            let sealed_seq = record.sealed_seq_of(&config.node_id);
            max_sealed_seq = max_sealed_seq.max(sealed_seq);
            let state = DatasetState {
                schema: record.schema.clone(),
                segments: record.segments.clone(),
                sealed_seq,
                sealed_seq_by_node: record.sealed_wal_seq_by_node.clone(),
                created_at_ns: record.created_at_ns,
                last_written_ns: record.last_written_ns,
                rollups: record.rollups.clone(),
                ..Default::default()
            };
            datasets.insert(
                (record.env.clone(), record.name.clone()),
                Dataset::new(state),
            );
        }
        let metrics = Arc::new(StoreMetrics::default());
        metrics
            .manifest_quarantined_records
            .set(manifest.quarantined().len() as u64);
        let lease = (config.maintenance_lease && config.run_maintenance).then(|| {
            crate::lease::MaintenanceLease::new(
                object_store.clone(),
                config.node_id.clone(),
                config.compaction.lease_ttl,
                config.clock.clone(),
            )
        });
        let inner = Arc::new(Inner {
            crash_after_seal_commit: std::env::var_os(FAULT_CRASH_AFTER_SEAL_COMMIT)
                .is_some_and(|v| v == "1"),
            compaction_fault: crate::compaction::CrashPoint::from_env(),
            config,
            object_store,
            datasets: RwLock::new(datasets),
            manifest: tokio::sync::Mutex::new(manifest),
            metrics: metrics.clone(),
            seal_wakeup: Notify::new(),
            seal_lock: tokio::sync::Mutex::new(()),
            shutting_down: false.into(),
            changes: tokio::sync::watch::Sender::new(0),
            maintenance_lock: tokio::sync::Mutex::new(()),
            maintenance_wakeup: Notify::new(),
            pending_deletions: Mutex::new(Default::default()),
            lease,
        });

        let mut index = WalIndex::default();
        let replay_inner = inner.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let sealed = |key: &DatasetKey| replay_inner.sealed_seq(key);
            let outcome = replay(&replay_inner.config.wal_dir, sealed, &mut index, |entry| {
                let key = (entry.env, entry.dataset);
                let now_ns = replay_inner.now_ns();
                let dataset = replay_inner.dataset_or_create(&key, now_ns);
                let mut state = dataset.state.lock();
                // Entries were conformed before they were logged; this only
                // re-creates the columns of a schema that was never sealed.
                let batch = conform_batch(entry.batch, &mut state.schema)?;
                replay_inner
                    .metrics
                    .replayed_rows
                    .inc_by(batch.num_rows() as u64);
                let bytes = state.push(entry.seq, batch, now_ns);
                replay_inner.metrics.buffered_bytes.inc_by(bytes as u64);
                Ok(())
            })?;
            Ok::<_, StoreError>((outcome, index))
        })
        .await
        .map_err(|error| StoreError::Manifest(format!("replay task failed: {error}")))?;
        let (outcome, index) = outcome?;
        tracing::info!(
            replayed = outcome.entries_applied,
            already_sealed = outcome.entries_already_sealed,
            "write-ahead log replayed"
        );

        let index = Arc::new(Mutex::new(index));
        let settings = WriterSettings {
            dir: wal_dir,
            first_file_id: outcome.last_file_id.map_or(1, |id| id + 1),
            next_seq: outcome.max_seq.max(max_sealed_seq) + 1,
            durability: inner.config.durability,
            relaxed_sync_interval: inner.config.relaxed_sync_interval,
            file_max_bytes: inner.config.wal_file_max_bytes,
            max_pending: inner.config.max_pending_appends,
        };
        let positions: SharedPositions = Arc::new(Mutex::new(outcome.positions));
        let wal = WalHandle::start(settings, index, positions.clone(), inner.clone(), metrics)?;
        let store = Arc::new(Store {
            inner: inner.clone(),
            wal,
            positions,
            sealer: Mutex::new(None),
            maintainer: Mutex::new(None),
        });
        // WAL files whose entries were all sealed before a crash go now.
        store.delete_sealed_wal_files()?;
        let sealer = tokio::spawn(crate::sealer::run(Arc::downgrade(&store)));
        *store.sealer.lock() = Some(sealer);
        let maintainer = tokio::spawn(crate::maintenance::run(Arc::downgrade(&store)));
        *store.maintainer.lock() = Some(maintainer);
        Ok(store)
    }

    /// The current schema of a dataset (for decoders' type hints), if it exists.
    pub fn schema(&self, env: &str, dataset: &str) -> Option<DatasetSchema> {
        let key = (env.to_owned(), dataset.to_owned());
        self.inner
            .dataset(&key)
            .map(|dataset| dataset.state.lock().schema.clone())
    }

    /// Appends rows (must have a `timestamp` column). Creates the dataset on first
    /// write. Returns once durable (per [`crate::Durability`]) and visible.
    pub async fn append(&self, env: &str, dataset: &str, batch: RecordBatch) -> Result<()> {
        self.submit(env, vec![(dataset.to_owned(), batch)], None)
            .await
    }

    /// Appends rows of several datasets together with stream sources' new
    /// positions, as one transaction: after a crash either all of it is there
    /// (rows and positions) or none of it, so a source that resumes from
    /// [`Store::source_positions`] stores each message exactly once. Positions
    /// only move forward. Returns once durable and visible.
    pub async fn append_transaction(
        &self,
        env: &str,
        batches: Vec<(String, RecordBatch)>,
        positions: SourcePositions,
    ) -> Result<()> {
        self.submit(env, batches, Some(positions)).await
    }

    /// Stream sources' positions as the durable transactions left them.
    pub fn source_positions(&self) -> SourcePositions {
        self.positions.lock().clone()
    }

    async fn submit(
        &self,
        env: &str,
        batches: Vec<(String, RecordBatch)>,
        positions: Option<SourcePositions>,
    ) -> Result<()> {
        names::validate(env)?;
        for (dataset, _) in &batches {
            names::validate(dataset)?;
        }
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(StoreError::ShutDown);
        }
        let batches: Vec<(String, RecordBatch)> = batches
            .into_iter()
            .filter(|(_, batch)| batch.num_rows() > 0)
            .collect();
        if batches.is_empty() && positions.is_none() {
            return Ok(());
        }
        let metrics = &self.inner.metrics;
        if metrics.buffered_bytes.get() as usize >= self.inner.config.max_buffered_bytes {
            metrics.appends_refused_overloaded.inc_by(1);
            self.inner.seal_wakeup.notify_one();
            return Err(StoreError::Overloaded(
                "buffers are full; sealing is behind".into(),
            ));
        }
        if let Some(positions) = &positions {
            // Refused here, not half-written by the WAL writer.
            frame::encode_positions(positions)?;
        }
        let now = self.inner.now_ns();
        let mut entries = Vec::with_capacity(batches.len());
        for (dataset, batch) in batches {
            let key = (env.to_owned(), dataset);
            let dataset_state = self.inner.dataset_or_create(&key, now);
            let batch = {
                let mut state = dataset_state.state.lock();
                state.last_written_ns = now;
                conform_batch(batch, &mut state.schema)?
            };
            let frame = frame::encode_frame(env, &key.1, &batch)?;
            entries.push(WalAppendEntry { frame, key, batch });
        }
        let (done, acknowledged) = oneshot::channel();
        if let Err(error) = self.wal.submit(WalAppend {
            entries,
            positions,
            done,
        }) {
            if matches!(error, StoreError::Overloaded(_)) {
                metrics.appends_refused_overloaded.inc_by(1);
            }
            return Err(error);
        }
        acknowledged.await.map_err(|_| StoreError::ShutDown)??;
        Ok(())
    }

    /// The datasets of an environment, by name.
    pub fn datasets(&self, env: &str) -> Vec<DatasetInfo> {
        let datasets: Vec<(String, Arc<Dataset>)> = self
            .inner
            .datasets
            .read()
            .iter()
            .filter(|((dataset_env, _), _)| dataset_env == env)
            .map(|((_, name), dataset)| (name.clone(), dataset.clone()))
            .collect();
        let mut infos: Vec<DatasetInfo> = datasets
            .into_iter()
            .map(|(name, dataset)| {
                let state = dataset.state.lock();
                DatasetInfo {
                    name,
                    created_at_ns: state.created_at_ns,
                    last_written_ns: state.last_written_ns,
                    schema: state.schema.clone(),
                }
            })
            .collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// A consistent snapshot of a dataset, if it exists.
    pub fn snapshot(&self, env: &str, dataset: &str) -> Option<DatasetSnapshot> {
        let key = (env.to_owned(), dataset.to_owned());
        self.inner
            .dataset(&key)
            .map(|dataset| dataset.state.lock().snapshot())
    }

    /// This node's unsealed rows of a dataset, for a query on another node.
    pub fn buffer_snapshot(&self, env: &str, dataset: &str) -> Option<BufferSnapshot> {
        let key = (env.to_owned(), dataset.to_owned());
        self.inner
            .dataset(&key)
            .map(|dataset| dataset.state.lock().buffer_snapshot())
    }

    /// The name this node's WAL goes by in the manifest (empty: a single node).
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Whether this process may maintain now: always on its own store; on a
    /// shared one, while it holds the maintenance lease (its maintenance loop
    /// takes and renews it).
    pub fn holds_maintenance_lease(&self) -> bool {
        self.inner
            .lease
            .as_ref()
            .is_none_or(|lease| lease.is_held())
    }

    /// The object store holding segments (paths in [`crate::SegmentMeta::path`] are in it).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.object_store.clone()
    }

    /// Seals every buffer now and waits for the manifest commits.
    pub async fn seal_all(&self) -> Result<()> {
        let keys: Vec<DatasetKey> = self.inner.datasets.read().keys().cloned().collect();
        for key in keys {
            crate::sealer::seal_dataset(self, &key).await?;
        }
        Ok(())
    }

    /// Counters of the store's work.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// Stops accepting appends, makes pending ones durable, stops background tasks.
    /// Buffered rows stay in the WAL and are replayed at the next start.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        self.inner.seal_wakeup.notify_one();
        let sealer = self.sealer.lock().take();
        if let Some(sealer) = sealer {
            // Let a seal in progress finish; the loop exits at its next turn.
            let _ = sealer.await;
        }
        // One permit is stored if the loop is busy: it sees the flag before sleeping.
        self.inner.maintenance_wakeup.notify_one();
        let maintainer = self.maintainer.lock().take();
        if let Some(maintainer) = maintainer {
            // A merge in progress finishes (or is abandoned uncommitted: crash-safe).
            let _ = maintainer.await;
        }
        // No query runs any more: files waiting for the deletion delay go now.
        self.delete_due_files(true).await;
        self.wal.shutdown().await;
        Ok(())
    }

    /// Deletes the WAL files whose every entry is sealed into segments.
    pub(crate) fn delete_sealed_wal_files(&self) -> Result<()> {
        let deletable = self
            .wal
            .index
            .lock()
            .take_deletable(|key| self.inner.sealed_seq(key));
        if deletable.is_empty() {
            return Ok(());
        }
        let dir = &self.inner.config.wal_dir;
        for id in &deletable {
            let path = crate::wal::file_path(dir, *id);
            std::fs::remove_file(&path).map_err(|source| StoreError::Wal {
                path: path.display().to_string(),
                source,
            })?;
        }
        self.inner
            .metrics
            .wal_files_deleted
            .inc_by(deletable.len() as u64);
        crate::wal::sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, AsArray, Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::Int64Type;
    use object_store::local::LocalFileSystem;
    use std::path::Path;

    const HOUR_NS: i64 = 3_600_000_000_000;

    fn rows(ids: std::ops::Range<i64>, time_ns: i64) -> RecordBatch {
        let n = ids.end - ids.start;
        let times: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![time_ns; n as usize]).with_timezone("UTC"),
        );
        let ids: ArrayRef = Arc::new(Int64Array::from(ids.collect::<Vec<_>>()));
        RecordBatch::try_from_iter(vec![("timestamp", times), ("id", ids)]).unwrap()
    }

    async fn open(dir: &Path) -> Arc<Store> {
        let objects = dir.join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        let mut config = StoreConfig::new(dir.join("wal"));
        config.seal_max_age = std::time::Duration::from_secs(3600);
        Store::open(
            config,
            Arc::new(LocalFileSystem::new_with_prefix(objects).unwrap()),
        )
        .await
        .unwrap()
    }

    fn ids(store: &Store, dataset: &str) -> Vec<i64> {
        let Some(snapshot) = store.snapshot("default", dataset) else {
            return Vec::new();
        };
        let mut ids: Vec<i64> = snapshot
            .buffer
            .iter()
            .flat_map(|batch| {
                batch
                    .column_by_name("id")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    fn sealed_rows(store: &Store, dataset: &str) -> u64 {
        store
            .snapshot("default", dataset)
            .map_or(0, |s| s.segments.iter().map(|seg| seg.rows).sum())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_are_visible_sealed_and_replayed_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store
            .append("default", "a", rows(0..10, HOUR_NS))
            .await
            .unwrap();
        store
            .append("default", "a", rows(10..15, 2 * HOUR_NS))
            .await
            .unwrap();
        assert_eq!(ids(&store, "a"), (0..15).collect::<Vec<_>>());
        store.seal_all().await.unwrap();
        assert!(ids(&store, "a").is_empty());
        // Two time partitions: two segments.
        let snapshot = store.snapshot("default", "a").unwrap();
        assert_eq!(snapshot.segments.len(), 2);
        assert_eq!(sealed_rows(&store, "a"), 15);
        store
            .append("default", "a", rows(15..20, HOUR_NS))
            .await
            .unwrap();
        store.shutdown().await.unwrap();
        drop(store);

        let reopened = open(dir.path()).await;
        assert_eq!(sealed_rows(&reopened, "a"), 15);
        assert_eq!(ids(&reopened, "a"), (15..20).collect::<Vec<_>>());
        assert_eq!(reopened.metrics().replayed_rows.get(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transactions_positions_outlive_restarts_and_sealed_wal_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let positions = |pairs: &[(&str, i64)]| -> SourcePositions {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        store
            .append_transaction(
                "default",
                vec![
                    ("a".into(), rows(0..3, HOUR_NS)),
                    ("b".into(), rows(10..12, HOUR_NS)),
                ],
                positions(&[("k/t/0", 7)]),
            )
            .await
            .unwrap();
        // Positions alone (a fetch that produced no rows) are a transaction too.
        store
            .append_transaction("default", Vec::new(), positions(&[("k/t/1", 2)]))
            .await
            .unwrap();
        assert_eq!(
            store.source_positions(),
            positions(&[("k/t/0", 7), ("k/t/1", 2)])
        );
        store.shutdown().await.unwrap();
        drop(store);

        let reopened = open(dir.path()).await;
        assert_eq!(ids(&reopened, "a"), vec![0, 1, 2]);
        assert_eq!(ids(&reopened, "b"), vec![10, 11]);
        assert_eq!(
            reopened.source_positions(),
            positions(&[("k/t/0", 7), ("k/t/1", 2)])
        );
        // Sealing rotates the WAL and deletes the files holding the transactions;
        // the new file opens with the positions.
        reopened.seal_all().await.unwrap();
        reopened
            .append_transaction(
                "default",
                vec![("a".into(), rows(3..4, HOUR_NS))],
                positions(&[("k/t/0", 8)]),
            )
            .await
            .unwrap();
        reopened.seal_all().await.unwrap();
        reopened.shutdown().await.unwrap();
        drop(reopened);

        let again = open(dir.path()).await;
        assert_eq!(
            again.source_positions(),
            positions(&[("k/t/0", 8), ("k/t/1", 2)])
        );
        assert_eq!(sealed_rows(&again, "a"), 4);
        assert_eq!(sealed_rows(&again, "b"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_between_seal_commit_and_wal_deletion_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store
            .append("default", "a", rows(0..10, HOUR_NS))
            .await
            .unwrap();
        store
            .append("default", "b", rows(100..103, HOUR_NS))
            .await
            .unwrap();
        // Keep the WAL as it was before sealing: restoring it later is what a crash
        // right after the manifest commit leaves behind.
        let saved = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path().join("wal")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), saved.path().join(entry.file_name())).unwrap();
        }
        store.seal_all().await.unwrap();
        store.shutdown().await.unwrap();
        drop(store);
        for entry in std::fs::read_dir(saved.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join("wal").join(entry.file_name())).unwrap();
        }

        let reopened = open(dir.path()).await;
        assert_eq!(sealed_rows(&reopened, "a"), 10);
        assert_eq!(sealed_rows(&reopened, "b"), 3);
        assert!(ids(&reopened, "a").is_empty() && ids(&reopened, "b").is_empty());
        assert_eq!(reopened.metrics().replayed_rows.get(), 0);
        // The restored files held only sealed entries and are gone again.
        let wal_files = crate::wal::list_files(&dir.path().join("wal")).unwrap();
        assert_eq!(
            wal_files.len(),
            1,
            "only the new active file remains: {wal_files:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conflicting_types_land_in_sibling_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store.append("default", "a", rows(0..2, 1)).await.unwrap();
        let times: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(vec![2]).with_timezone("UTC"));
        let strings: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["seven"]));
        let odd = RecordBatch::try_from_iter(vec![("timestamp", times), ("id", strings)]).unwrap();
        store.append("default", "a", odd).await.unwrap();
        let schema = store.schema("default", "a").unwrap();
        assert_eq!(schema.get("id"), Some(quarry_schema::FieldType::Int));
        assert_eq!(
            schema.get("id#string"),
            Some(quarry_schema::FieldType::String)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_beyond_the_memory_budget_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        let mut config = StoreConfig::new(dir.path().join("wal"));
        config.max_buffered_bytes = 1;
        config.seal_max_age = std::time::Duration::from_secs(3600);
        let store = Store::open(
            config,
            Arc::new(LocalFileSystem::new_with_prefix(objects).unwrap()),
        )
        .await
        .unwrap();
        // Every accepted append takes the buffers over a 1-byte budget, so the next
        // one is refused until the sealer frees memory; whatever the timing, every
        // accepted row is kept and at least one append is shed.
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..50 {
            match store
                .append("default", "a", rows(i * 2..i * 2 + 2, 1))
                .await
            {
                Ok(()) => accepted += 2,
                Err(StoreError::Overloaded(_)) => refused += 1,
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert!(
            refused > 0 && accepted > 0,
            "accepted {accepted}, refused {refused}"
        );
        store.seal_all().await.unwrap();
        assert_eq!(
            sealed_rows(&store, "a") as usize + ids(&store, "a").len(),
            accepted
        );
    }
}
