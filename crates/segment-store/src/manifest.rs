//! The manifest: which segments make up each dataset, as an append-only log.
//!
//! ```text
//! _manifest/log/<seq, 20 digits>.json         one committed transaction each
//! _manifest/checkpoint/<seq, 20 digits>.json  the whole state as of that entry
//! ```
//! A commit is a create-only put of the next log entry: if the object exists,
//! another writer got there first and the commit fails instead of overwriting it.
//! Loading reads the newest checkpoint and the entries after it, so start-up cost
//! does not grow with history. The state holds per segment everything a query
//! planner needs (see [`SegmentMeta`]), so planning opens no Parquet footer.
//! The format is JSON, versioned by [`FORMAT_VERSION`], readable by a person.
//!
//! Several processes may write one manifest (ingest nodes sealing, the compactor):
//! a writer that finds its next entry taken reads the entries it missed
//! ([`Manifest::refresh`]), keeps them for the store to apply to its live state
//! ([`Manifest::take_foreign`]), and commits again after them. Readers that never
//! write (query nodes) call `refresh` to follow.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use quarry_schema::DatasetSchema;
use serde::{Deserialize, Serialize};

use crate::quarantine::{QuarantinedRecord, salvage_checkpoint, salvage_log_entry};
use crate::rollup::{Rollup, RollupSegment, RollupSet};
use crate::wal::DatasetKey;
use crate::{Result, SegmentMeta, StoreError};

/// Version of the manifest format written by this build (2 added
/// [`Action::ReplaceSegments`]; version 1 logs read unchanged).
pub const FORMAT_VERSION: u32 = 2;
const LOG_DIR: &str = "_manifest/log";
const CHECKPOINT_DIR: &str = "_manifest/checkpoint";
/// Log entries kept behind the newest checkpoint (for inspection after an incident).
const LOG_ENTRIES_KEPT_BEHIND_CHECKPOINT: u64 = 16;

/// The manifest's record of one dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub env: String,
    pub name: String,
    pub schema: DatasetSchema,
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Every WAL entry of this dataset up to this sequence is in `segments`: the
    /// WAL of the writer without a node id (a single-node Quarry).
    pub sealed_wal_seq: u64,
    /// The same for the WAL of each named ingest node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed_wal_seq_by_node: BTreeMap<String, u64>,
    pub created_at_ns: i64,
    pub last_written_ns: i64,
    /// The dataset's rollups (absent in manifests written before rollups existed).
    #[serde(default)]
    pub rollups: RollupSet,
}

impl DatasetManifest {
    /// Every WAL entry of `node` (empty: the unnamed single node) up to this
    /// sequence is in `segments`.
    pub fn sealed_seq_of(&self, node: &str) -> u64 {
        if node.is_empty() {
            self.sealed_wal_seq
        } else {
            self.sealed_wal_seq_by_node.get(node).copied().unwrap_or(0)
        }
    }
}

/// One change in a transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Segments sealed from a dataset's buffer up to WAL sequence `sealed_wal_seq`
    /// of the WAL of `node` (empty: the unnamed single node).
    SealSegments {
        env: String,
        dataset: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        node: String,
        schema: DatasetSchema,
        segments: Vec<SegmentMeta>,
        sealed_wal_seq: u64,
        created_at_ns: i64,
        last_written_ns: i64,
    },
    /// A rollup created (or replacing the one of the same name, whose segments go).
    PutRollup {
        env: String,
        dataset: String,
        rollup: Rollup,
        /// Created as a default rollup (remembered so it is created only once).
        #[serde(default)]
        default: bool,
    },
    /// A rollup deleted.
    DropRollup {
        env: String,
        dataset: String,
        name: String,
    },
    /// Raw segments removed (compaction's inputs, retention's expired segments) and
    /// segments added (compaction's output), atomically; nothing at all when a
    /// removed segment is no longer there (another writer replaced it first). The rollup segments
    /// computed from a removed segment go too: their sources' rows are either gone
    /// (retention) or pending again in the added segment (compaction).
    ReplaceSegments {
        env: String,
        dataset: String,
        removed: Vec<String>,
        #[serde(default)]
        added: Vec<SegmentMeta>,
    },
    /// Rollup rows computed from raw segments; ignored when the rollup is gone, a
    /// source is already rolled up (so a repeated commit never double-counts) or a
    /// source is no longer a segment of the dataset (compacted or expired meanwhile).
    AddRollupSegment {
        env: String,
        dataset: String,
        rollup_id: String,
        segment: RollupSegment,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    version: u32,
    seq: u64,
    /// Unique per commit attempt: tells a writer that an entry it finds already
    /// there is its own (absent in entries written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    commit_id: Option<String>,
    actions: Vec<Action>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    seq: u64,
    datasets: Vec<DatasetManifest>,
    /// Records set aside because they could not be read (absent when none ever were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    quarantined: Vec<QuarantinedRecord>,
}

/// The loaded manifest and the object store it lives in.
pub struct Manifest {
    store: Arc<dyn ObjectStore>,
    seq: u64,
    datasets: BTreeMap<DatasetKey, DatasetManifest>,
    checkpoint_interval: u64,
    last_checkpoint_seq: u64,
    /// Records that could not be read, kept aside (and in every checkpoint).
    quarantined: Vec<QuarantinedRecord>,
    /// Other writers' changes read since the store last took them.
    foreign: Option<ForeignChanges>,
}

/// Changes other writers committed, for the store to apply to its live state.
#[derive(Debug)]
pub enum ForeignChanges {
    /// Their actions, in commit order.
    Actions(Vec<Action>),
    /// Too many to replay (their log entries were folded into a checkpoint): the
    /// manifest was loaded anew, and the live state must be copied from it.
    Reloaded,
}

/// Attempts at committing one transaction while other writers take the entries.
const MAX_COMMIT_ATTEMPTS: usize = 32;

impl Manifest {
    /// Loads the newest checkpoint and replays the log entries after it.
    ///
    /// A record that cannot be read is set aside (see [`QuarantinedRecord`]) and
    /// the rest loads; only a missing log entry, a format newer than this build or
    /// an object store failure stop the load.
    pub async fn load(store: Arc<dyn ObjectStore>, checkpoint_interval: u64) -> Result<Manifest> {
        let checkpoint_seq = latest_seq(&store, CHECKPOINT_DIR).await?;
        let mut manifest = Manifest {
            store: store.clone(),
            seq: 0,
            datasets: BTreeMap::new(),
            checkpoint_interval: checkpoint_interval.max(1),
            last_checkpoint_seq: 0,
            quarantined: Vec::new(),
            foreign: None,
        };
        if let Some(seq) = checkpoint_seq {
            let checkpoint = read_checkpoint(&store, seq, &mut manifest.quarantined).await?;
            manifest.quarantined.splice(0..0, checkpoint.quarantined);
            for mut dataset in checkpoint.datasets {
                dataset.schema.reindex();
                manifest
                    .datasets
                    .insert((dataset.env.clone(), dataset.name.clone()), dataset);
            }
            manifest.seq = checkpoint.seq;
            manifest.last_checkpoint_seq = checkpoint.seq;
        }
        let mut later: Vec<u64> = list_seqs(&store, LOG_DIR)
            .await?
            .into_iter()
            .filter(|seq| *seq > manifest.seq)
            .collect();
        later.sort_unstable();
        for seq in later {
            if seq != manifest.seq + 1 {
                return Err(StoreError::Manifest(format!(
                    "log entry {} is missing (found {seq})",
                    manifest.seq + 1
                )));
            }
            let actions = read_log_entry(&store, seq, &mut manifest.quarantined).await?;
            manifest.apply(actions);
            manifest.seq = seq;
        }
        if !manifest.quarantined.is_empty() {
            tracing::warn!(
                records = manifest.quarantined.len(),
                "the manifest holds quarantined records (their files are kept; see docs/storage.md)"
            );
        }
        Ok(manifest)
    }

    /// Records set aside because they could not be read.
    pub fn quarantined(&self) -> &[QuarantinedRecord] {
        &self.quarantined
    }

    /// The datasets as of the last commit.
    pub fn datasets(&self) -> impl Iterator<Item = &DatasetManifest> {
        self.datasets.values()
    }

    /// The sequence number of the last committed entry.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Reads the entries other writers committed since this manifest's last one;
    /// returns whether there were any (then [`Manifest::take_foreign`] has them).
    pub async fn refresh(&mut self) -> Result<bool> {
        let mut changed = false;
        loop {
            let seq = self.seq + 1;
            let mut actions = match read_log_entry(&self.store, seq, &mut self.quarantined).await {
                Ok(actions) => actions,
                Err(StoreError::ObjectStore(object_store::Error::NotFound { .. })) => break,
                Err(error) => return Err(error),
            };
            self.apply(actions.clone());
            self.seq = seq;
            changed = true;
            match &mut self.foreign {
                Some(ForeignChanges::Actions(pending)) => pending.append(&mut actions),
                Some(ForeignChanges::Reloaded) => {}
                None => self.foreign = Some(ForeignChanges::Actions(actions)),
            }
        }
        // The next entry is missing: either nothing new, or this reader fell so far
        // behind that the entries it needs were folded into a newer checkpoint.
        if !changed
            && latest_seq(&self.store, CHECKPOINT_DIR)
                .await?
                .is_some_and(|checkpoint| checkpoint > self.seq)
        {
            let foreign_reload =
                Manifest::load(self.store.clone(), self.checkpoint_interval).await?;
            let quarantined = std::mem::take(&mut self.quarantined);
            *self = foreign_reload;
            if self.quarantined.is_empty() {
                self.quarantined = quarantined;
            }
            self.foreign = Some(ForeignChanges::Reloaded);
            changed = true;
        }
        Ok(changed)
    }

    /// Other writers' changes read since the last call, if any.
    pub fn take_foreign(&mut self) -> Option<ForeignChanges> {
        self.foreign.take()
    }

    /// Commits a transaction: durable in the object store when this returns. When
    /// other writers took the next entries, reads them (see
    /// [`Manifest::take_foreign`]) and commits after them.
    pub async fn commit(&mut self, actions: Vec<Action>) -> Result<u64> {
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            match self.try_commit(&actions).await? {
                Some(seq) => return Ok(seq),
                None => {
                    if !self.refresh().await? {
                        return Err(StoreError::Manifest(format!(
                            "manifest entry {} exists but cannot be read",
                            self.seq + 1
                        )));
                    }
                }
            }
        }
        Err(StoreError::Manifest(format!(
            "gave up committing after {MAX_COMMIT_ATTEMPTS} attempts: other writers keep taking the next manifest entry"
        )))
    }

    /// One attempt at the next entry: `None` when another writer took it.
    async fn try_commit(&mut self, actions: &[Action]) -> Result<Option<u64>> {
        let actions = actions.to_vec();
        let seq = self.seq + 1;
        let commit_id = uuid::Uuid::now_v7().to_string();
        let entry = LogEntry {
            version: FORMAT_VERSION,
            seq,
            commit_id: Some(commit_id.clone()),
            actions,
        };
        let body =
            serde_json::to_vec(&entry).map_err(|error| StoreError::Manifest(error.to_string()))?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&object_path(LOG_DIR, seq), PutPayload::from(body), options)
            .await
        {
            Ok(_) => {}
            // A remote store retries a put whose answer was lost; the retry then
            // finds the entry the first attempt wrote. That entry is this commit.
            Err(object_store::Error::AlreadyExists { .. })
                if self.entry_commit_id(seq).await.as_deref() == Some(commit_id.as_str()) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        }
        self.apply(entry.actions);
        self.seq = seq;
        if seq - self.last_checkpoint_seq >= self.checkpoint_interval {
            // A failed checkpoint costs only start-up time: the log still has it all.
            if let Err(error) = self.checkpoint().await {
                tracing::warn!(%error, "manifest checkpoint failed");
            }
        }
        Ok(Some(seq))
    }

    /// The commit id of log entry `seq`, if it can be read and has one.
    async fn entry_commit_id(&self, seq: u64) -> Option<String> {
        let bytes = self
            .store
            .get(&object_path(LOG_DIR, seq))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        serde_json::from_slice::<LogEntry>(&bytes).ok()?.commit_id
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SealSegments {
                    env,
                    dataset,
                    node,
                    mut schema,
                    segments,
                    sealed_wal_seq,
                    created_at_ns,
                    last_written_ns,
                } => {
                    schema.reindex();
                    let record = self.record(env, dataset, created_at_ns);
                    // Writers' schemas only grow; several writers' are united.
                    merge_schema(&mut record.schema, &schema);
                    record.segments.extend(segments.into_iter().map(Arc::new));
                    let sealed = if node.is_empty() {
                        &mut record.sealed_wal_seq
                    } else {
                        record.sealed_wal_seq_by_node.entry(node).or_default()
                    };
                    *sealed = (*sealed).max(sealed_wal_seq);
                    record.last_written_ns = record.last_written_ns.max(last_written_ns);
                }
                Action::PutRollup {
                    env,
                    dataset,
                    rollup,
                    default,
                } => {
                    let created_at_ns = rollup.created_at_ns;
                    self.record(env, dataset, created_at_ns)
                        .rollups
                        .put(rollup, default);
                }
                Action::DropRollup { env, dataset, name } => {
                    if let Some(record) = self.datasets.get_mut(&(env, dataset)) {
                        record.rollups.drop_rollup(&name);
                    }
                }
                Action::AddRollupSegment {
                    env,
                    dataset,
                    rollup_id,
                    segment,
                } => {
                    if let Some(record) = self.datasets.get_mut(&(env, dataset))
                        && has_segments(&record.segments, &segment.sources)
                    {
                        record.rollups.add_segment(&rollup_id, segment);
                    }
                }
                Action::ReplaceSegments {
                    env,
                    dataset,
                    removed,
                    added,
                } => {
                    // Only when every removed segment is still there: two writers
                    // that replaced the same segments (a compactor that lost its
                    // lease mid-merge, and the next one) must not both add their
                    // output. Every reader applies the log in one order, so all
                    // agree which of the two took effect.
                    if let Some(record) = self.datasets.get_mut(&(env, dataset))
                        && has_segments(&record.segments, &removed)
                    {
                        replace_segments(
                            &mut record.segments,
                            &mut record.rollups,
                            &removed,
                            added,
                        );
                    }
                }
            }
        }
    }

    /// The record of a dataset, created empty when a rollup comes before any seal.
    fn record(&mut self, env: String, dataset: String, created_at_ns: i64) -> &mut DatasetManifest {
        let key = (env.clone(), dataset.clone());
        self.datasets.entry(key).or_insert_with(|| DatasetManifest {
            env,
            name: dataset,
            schema: DatasetSchema::default(),
            segments: Vec::new(),
            sealed_wal_seq: 0,
            sealed_wal_seq_by_node: BTreeMap::new(),
            created_at_ns,
            last_written_ns: created_at_ns,
            rollups: RollupSet::default(),
        })
    }

    async fn checkpoint(&mut self) -> Result<()> {
        let checkpoint = Checkpoint {
            version: FORMAT_VERSION,
            seq: self.seq,
            datasets: self.datasets.values().cloned().collect(),
            quarantined: self.quarantined.clone(),
        };
        let body = serde_json::to_vec(&checkpoint)
            .map_err(|error| StoreError::Manifest(error.to_string()))?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(
                &object_path(CHECKPOINT_DIR, self.seq),
                PutPayload::from(body),
                options,
            )
            .await?;
        let previous = self.last_checkpoint_seq;
        self.last_checkpoint_seq = self.seq;
        // Older checkpoints and most log entries behind this one are no longer read.
        if previous > 0 {
            let _ = self
                .store
                .delete(&object_path(CHECKPOINT_DIR, previous))
                .await;
        }
        let horizon = self.seq.saturating_sub(LOG_ENTRIES_KEPT_BEHIND_CHECKPOINT);
        for seq in list_seqs(&self.store, LOG_DIR).await? {
            if seq < horizon {
                let _ = self.store.delete(&object_path(LOG_DIR, seq)).await;
            }
        }
        Ok(())
    }
}

/// Adds the columns of `from` that `into` lacks (a column keeps its first type).
pub(crate) fn merge_schema(into: &mut DatasetSchema, from: &DatasetSchema) {
    for (name, field_type) in from.columns() {
        into.insert(name, field_type);
    }
}

/// Whether every path in `paths` names one of `segments`.
pub(crate) fn has_segments(segments: &[Arc<SegmentMeta>], paths: &[String]) -> bool {
    let present: HashSet<&str> = segments.iter().map(|s| s.path.as_str()).collect();
    paths.iter().all(|path| present.contains(path.as_str()))
}

/// Applies a [`Action::ReplaceSegments`] to a dataset's segments and rollups (the
/// manifest's record and the live state alike); returns the rollup files that are
/// no longer referenced.
pub(crate) fn replace_segments(
    segments: &mut Vec<Arc<SegmentMeta>>,
    rollups: &mut RollupSet,
    removed: &[String],
    added: Vec<SegmentMeta>,
) -> Vec<SegmentMeta> {
    let removed: HashSet<&str> = removed.iter().map(String::as_str).collect();
    segments.retain(|segment| !removed.contains(segment.path.as_str()));
    segments.extend(added.into_iter().map(Arc::new));
    rollups.remove_sources(&removed)
}

fn check_version(version: u32) -> Result<()> {
    if version > FORMAT_VERSION {
        return Err(StoreError::Manifest(format!(
            "manifest format {version} is newer than this build reads ({FORMAT_VERSION}); upgrade Quarry"
        )));
    }
    Ok(())
}

fn object_path(dir: &str, seq: u64) -> Path {
    Path::from(format!("{dir}/{seq:020}.json"))
}

async fn list_seqs(store: &Arc<dyn ObjectStore>, dir: &str) -> Result<Vec<u64>> {
    let objects: Vec<_> = store.list(Some(&Path::from(dir))).try_collect().await?;
    Ok(objects
        .iter()
        .filter_map(|object| {
            object
                .location
                .filename()?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect())
}

async fn latest_seq(store: &Arc<dyn ObjectStore>, dir: &str) -> Result<Option<u64>> {
    Ok(list_seqs(store, dir).await?.into_iter().max())
}

/// The actions of log entry `seq`: all of them when it parses, else the readable
/// ones, the rest set aside in `quarantine`.
async fn read_log_entry(
    store: &Arc<dyn ObjectStore>,
    seq: u64,
    quarantine: &mut Vec<QuarantinedRecord>,
) -> Result<Vec<Action>> {
    let bytes = store.get(&object_path(LOG_DIR, seq)).await?.bytes().await?;
    let (version, actions) = match serde_json::from_slice::<LogEntry>(&bytes) {
        Ok(entry) => (Some(entry.version), entry.actions),
        Err(_) => salvage_log_entry(&format!("log entry {seq}"), &bytes, quarantine),
    };
    if let Some(version) = version {
        check_version(version)?;
    }
    Ok(actions)
}

/// Checkpoint `seq`: whole when it parses, else its readable datasets and segments.
async fn read_checkpoint(
    store: &Arc<dyn ObjectStore>,
    seq: u64,
    quarantine: &mut Vec<QuarantinedRecord>,
) -> Result<Checkpoint> {
    let bytes = store
        .get(&object_path(CHECKPOINT_DIR, seq))
        .await?
        .bytes()
        .await?;
    let checkpoint = match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) => checkpoint,
        Err(_) => {
            let salvaged = salvage_checkpoint(&format!("checkpoint {seq}"), &bytes, quarantine);
            Checkpoint {
                version: salvaged.version.unwrap_or(FORMAT_VERSION),
                seq,
                datasets: salvaged.datasets,
                quarantined: salvaged.quarantined,
            }
        }
    };
    check_version(checkpoint.version)?;
    Ok(Checkpoint { seq, ..checkpoint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn seal(dataset: &str, wal_seq: u64, path: &str) -> Action {
        Action::SealSegments {
            env: "default".into(),
            dataset: dataset.into(),
            node: String::new(),
            schema: DatasetSchema::default(),
            segments: vec![SegmentMeta {
                path: path.into(),
                size_bytes: 1,
                rows: 1,
                min_time_ns: 0,
                max_time_ns: 0,
                partition_start_ns: 0,
                created_at_ns: 0,
                columns: vec![],
                bloom_filters: vec![],
            }],
            sealed_wal_seq: wal_seq,
            created_at_ns: 0,
            last_written_ns: 0,
        }
    }

    #[tokio::test]
    async fn commits_survive_reload_across_checkpoints() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut manifest = Manifest::load(store.clone(), 3).await.unwrap();
        for i in 0..7u64 {
            manifest
                .commit(vec![seal(
                    if i % 2 == 0 { "a" } else { "b" },
                    i + 1,
                    &format!("s{i}"),
                )])
                .await
                .unwrap();
        }
        let reloaded = Manifest::load(store.clone(), 3).await.unwrap();
        assert_eq!(reloaded.seq(), 7);
        let a = reloaded.datasets().find(|d| d.name == "a").unwrap();
        assert_eq!(a.segments.len(), 4);
        assert_eq!(a.sealed_wal_seq, 7);
        let b = reloaded.datasets().find(|d| d.name == "b").unwrap();
        assert_eq!((b.segments.len(), b.sealed_wal_seq), (3, 6));
        // Only the newest checkpoint (seq 6) is kept.
        assert_eq!(list_seqs(&store, CHECKPOINT_DIR).await.unwrap(), vec![6]);
    }

    /// A remote store whose answer to a put got lost: the put lands, then the
    /// client's retry (a second put) answers for it.
    #[derive(Debug)]
    struct RetriedPuts(InMemory);

    impl std::fmt::Display for RetriedPuts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("RetriedPuts")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for RetriedPuts {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0
                .put_opts(location, payload.clone(), opts.clone())
                .await?;
            self.0.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_commit_whose_put_landed_before_a_retry_is_committed_once() {
        let store: Arc<dyn ObjectStore> = Arc::new(RetriedPuts(InMemory::new()));
        let mut manifest = Manifest::load(store.clone(), 100).await.unwrap();
        assert_eq!(manifest.commit(vec![seal("a", 1, "s1")]).await.unwrap(), 1);
        assert_eq!(manifest.commit(vec![seal("a", 2, "s2")]).await.unwrap(), 2);
        let reloaded = Manifest::load(store.clone(), 100).await.unwrap();
        assert_eq!(reloaded.seq(), 2);
        let a = reloaded.datasets().find(|d| d.name == "a").unwrap();
        assert_eq!((a.segments.len(), a.sealed_wal_seq), (2, 2));
        assert!(
            manifest.take_foreign().is_none(),
            "its own entries are not foreign"
        );
    }

    async fn put_raw(store: &Arc<dyn ObjectStore>, dir: &str, seq: u64, body: &str) {
        store
            .put(&object_path(dir, seq), PutPayload::from(body.to_owned()))
            .await
            .unwrap();
    }

    fn segment_json(path: &str, rows: &str, float_stats: &str) -> String {
        format!(
            r#"{{"path":"{path}","size_bytes":1,"rows":{rows},"min_time_ns":0,"max_time_ns":0,
               "partition_start_ns":0,"created_at_ns":0,"bloom_filters":[],
               "columns":[{{"name":"f","field_type":"float","null_count":0,{float_stats}}}]}}"#
        )
    }

    fn seal_entry_json(seq: u64, segments: &[String]) -> String {
        format!(
            r#"{{"version":2,"seq":{seq},"actions":[{{"seal_segments":{{"env":"default",
               "dataset":"a","schema":{{"columns":[]}},"segments":[{}],"sealed_wal_seq":{seq},
               "created_at_ns":0,"last_written_ns":0}}}}]}}"#,
            segments.join(",")
        )
    }

    /// Builds before non-finite floats were spelled out wrote `inf` bounds as null.
    #[tokio::test]
    async fn a_manifest_with_null_float_bounds_loads_with_unknown_bounds() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let segment = segment_json("s1", "3", r#""min":{"float":null},"max":{"float":null}"#);
        put_raw(&store, LOG_DIR, 1, &seal_entry_json(1, &[segment])).await;
        let manifest = Manifest::load(store, 100).await.unwrap();
        let a = manifest.datasets().find(|d| d.name == "a").unwrap();
        let stats = a.segments[0].column("f").unwrap();
        assert_eq!((&stats.min, &stats.max), (&None, &None));
        assert!(manifest.quarantined().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_segment_is_set_aside_and_its_neighbours_served() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let good = segment_json(
            "good",
            "3",
            r#""min":{"float":1.5},"max":{"float":"Infinity"}"#,
        );
        let bad = segment_json("bad", r#""many""#, r#""min":null,"max":null"#);
        put_raw(&store, LOG_DIR, 1, &seal_entry_json(1, &[good, bad])).await;

        let mut manifest = Manifest::load(store.clone(), 2).await.unwrap();
        let a = manifest.datasets().find(|d| d.name == "a").unwrap();
        assert_eq!(a.segments.len(), 1);
        assert_eq!(a.segments[0].path, "good");
        let max = &a.segments[0].column("f").unwrap().max;
        assert_eq!(max, &Some(crate::StatValue::Float(f64::INFINITY)));
        assert_eq!(a.sealed_wal_seq, 1, "the entry's WAL position still counts");
        let quarantined = manifest.quarantined().to_vec();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].kind, "segment");
        assert_eq!(quarantined[0].source, "log entry 1");
        assert_eq!(quarantined[0].paths, vec!["bad".to_owned()]);
        assert!(
            quarantined[0].error.contains("invalid type"),
            "{quarantined:?}"
        );

        // The next commit checkpoints (interval 2); the record outlives its log entry.
        manifest.commit(vec![seal("a", 2, "next")]).await.unwrap();
        assert_eq!(list_seqs(&store, CHECKPOINT_DIR).await.unwrap(), vec![2]);
        store.delete(&object_path(LOG_DIR, 1)).await.unwrap();
        let reloaded = Manifest::load(store.clone(), 2).await.unwrap();
        assert_eq!(reloaded.quarantined(), quarantined.as_slice());
        let a = reloaded.datasets().find(|d| d.name == "a").unwrap();
        let paths: Vec<&str> = a.segments.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["good", "next"]);
    }

    #[tokio::test]
    async fn an_entry_that_is_not_json_is_set_aside_and_later_entries_apply() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let segment = segment_json("s1", "3", r#""min":null,"max":null"#);
        put_raw(&store, LOG_DIR, 1, &seal_entry_json(1, &[segment])).await;
        put_raw(&store, LOG_DIR, 2, "{\"version\":2,\"seq\":2,\"act").await;
        let unknown_action = r#"{"version":2,"seq":3,"actions":[{"reticulate_splines":{}}]}"#;
        put_raw(&store, LOG_DIR, 3, unknown_action).await;

        let mut manifest = Manifest::load(store.clone(), 100).await.unwrap();
        assert_eq!(manifest.seq(), 3);
        let kinds: Vec<(&str, bool)> = manifest
            .quarantined()
            .iter()
            .map(|record| (record.kind.as_str(), record.opaque))
            .collect();
        assert_eq!(kinds, [("log entry", true), ("action", false)]);
        assert_eq!(manifest.commit(vec![seal("a", 4, "s4")]).await.unwrap(), 4);
        let a = manifest.datasets().find(|d| d.name == "a").unwrap();
        assert_eq!(a.segments.len(), 2);
    }

    #[tokio::test]
    async fn a_newer_format_still_stops_the_load() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put_raw(
            &store,
            LOG_DIR,
            1,
            r#"{"version":99,"seq":1,"actions":[{"x":1}]}"#,
        )
        .await;
        let error = Manifest::load(store, 100).await.err().unwrap();
        assert!(error.to_string().contains("newer"), "{error}");
    }

    #[tokio::test]
    async fn a_second_writer_commits_after_the_first_instead_of_over_it() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut first = Manifest::load(store.clone(), 100).await.unwrap();
        let mut second = Manifest::load(store.clone(), 100).await.unwrap();
        assert_eq!(first.commit(vec![seal("a", 1, "x")]).await.unwrap(), 1);
        assert_eq!(second.commit(vec![seal("a", 1, "y")]).await.unwrap(), 2);
        // The second writer read the first one's entry on its way.
        match second.take_foreign() {
            Some(ForeignChanges::Actions(actions)) => assert_eq!(actions.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(first.refresh().await.unwrap());
        assert!(!first.refresh().await.unwrap(), "nothing newer");
        for manifest in [&first, &second, &Manifest::load(store, 100).await.unwrap()] {
            assert_eq!(manifest.seq(), 2);
            let a = manifest.datasets().next().unwrap();
            let paths: Vec<&str> = a.segments.iter().map(|s| s.path.as_str()).collect();
            assert_eq!(paths, ["x", "y"]);
        }
    }
}
