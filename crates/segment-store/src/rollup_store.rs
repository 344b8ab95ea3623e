//! The store's side of rollups: definitions and rollup segments committed to the
//! manifest, and the live view queries and maintenance read.
//!
//! Every change here takes the manifest lock, commits, and then updates the
//! dataset's in-memory [`RollupSet`] before releasing it, so the in-memory view
//! always equals what a restart would load.

use std::sync::Arc;

use arrow::array::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::watch;

use crate::manifest::Action;
use crate::rollup::{Rollup, RollupDefinition, RollupSegment, RollupSet};
use crate::segment_writer::build_rollup_segment;
use crate::store::Inner;
use crate::wal::DatasetKey;
use crate::{DatasetSnapshot, Result, SegmentMeta, Store, StoreError, names};

/// How [`Store::put_rollup`] treats an existing rollup of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutRollupMode {
    /// Create; an existing rollup of that name is left alone and reported.
    Create,
    /// Create, or replace an existing rollup whose definition differs (the
    /// configuration file's rollups: the file is the source of truth).
    Replace,
    /// A default rollup: created only if it never was for this dataset and the
    /// name is free.
    Default,
}

/// What [`Store::put_rollup`] did.
#[derive(Debug, Clone)]
pub enum PutRollupOutcome {
    /// The rollup was created (or replaced); its backfill starts.
    Created(Arc<Rollup>),
    /// A rollup of that name exists (with this definition, for `Replace`).
    Exists(Arc<Rollup>),
    /// A default rollup that was created before (and maybe deleted since).
    Declined,
    /// The dataset does not exist.
    NoDataset,
}

impl Inner {
    /// Wakes whoever waits for manifest changes (rollup maintenance).
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|count| *count += 1);
    }
}

impl Store {
    /// Every (environment, dataset) the store holds.
    pub fn dataset_keys(&self) -> Vec<DatasetKey> {
        let mut keys: Vec<DatasetKey> = self.inner.datasets.read().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The rollups of a dataset, if it exists.
    pub fn rollups(&self, env: &str, dataset: &str) -> Option<RollupSet> {
        let key = (env.to_owned(), dataset.to_owned());
        self.inner
            .dataset(&key)
            .map(|dataset| dataset.state.lock().rollups.clone())
    }

    /// A snapshot of a dataset and its rollups taken together: every raw segment a
    /// rollup segment names as a source is among the snapshot's segments.
    pub fn rollup_snapshot(
        &self,
        env: &str,
        dataset: &str,
    ) -> Option<(DatasetSnapshot, RollupSet)> {
        let key = (env.to_owned(), dataset.to_owned());
        self.inner.dataset(&key).map(|dataset| {
            let state = dataset.state.lock();
            (state.snapshot(), state.rollups.clone())
        })
    }

    /// A receiver that changes after every seal and rollup change.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Creates a rollup of an existing dataset (see [`PutRollupMode`]).
    pub async fn put_rollup(
        &self,
        env: &str,
        dataset: &str,
        definition: RollupDefinition,
        mode: PutRollupMode,
    ) -> Result<PutRollupOutcome> {
        let key = (env.to_owned(), dataset.to_owned());
        let mut manifest = self.inner.manifest.lock().await;
        let Some(state) = self.inner.dataset(&key) else {
            return Ok(PutRollupOutcome::NoDataset);
        };
        let (existing, default_created) = {
            let state = state.state.lock();
            (
                state.rollups.get(&definition.name).cloned(),
                state.rollups.defaults_created.contains(&definition.name),
            )
        };
        match (mode, existing) {
            (PutRollupMode::Default, _) if default_created => {
                return Ok(PutRollupOutcome::Declined);
            }
            (PutRollupMode::Create | PutRollupMode::Default, Some(existing)) => {
                return Ok(PutRollupOutcome::Exists(existing));
            }
            (PutRollupMode::Replace, Some(existing)) if existing.definition == definition => {
                return Ok(PutRollupOutcome::Exists(existing));
            }
            _ => {}
        }
        let rollup = Rollup::new(definition, self.inner.now_ns());
        let default = mode == PutRollupMode::Default;
        self.inner
            .commit(
                &mut manifest,
                vec![Action::PutRollup {
                    env: key.0.clone(),
                    dataset: key.1.clone(),
                    rollup: rollup.clone(),
                    default,
                }],
            )
            .await?;
        let replaced = {
            let mut state = state.state.lock();
            let replaced = state.rollups.get(&rollup.definition.name).cloned();
            state.rollups.put(rollup.clone(), default);
            replaced
        };
        drop(manifest);
        self.inner.changed();
        if let Some(replaced) = replaced {
            self.delete_rollup_files(&replaced).await;
        }
        Ok(PutRollupOutcome::Created(Arc::new(rollup)))
    }

    /// Deletes a rollup and its files; `false` when there is no such rollup.
    pub async fn drop_rollup(&self, env: &str, dataset: &str, name: &str) -> Result<bool> {
        let key = (env.to_owned(), dataset.to_owned());
        let manifest = self.inner.manifest.lock().await;
        let Some(state) = self.inner.dataset(&key) else {
            return Ok(false);
        };
        if state.state.lock().rollups.get(name).is_none() {
            return Ok(false);
        }
        let mut manifest = manifest;
        self.inner
            .commit(
                &mut manifest,
                vec![Action::DropRollup {
                    env: key.0.clone(),
                    dataset: key.1.clone(),
                    name: name.to_owned(),
                }],
            )
            .await?;
        let dropped = state.state.lock().rollups.drop_rollup(name);
        drop(manifest);
        self.inner.changed();
        if let Some(dropped) = dropped {
            self.delete_rollup_files(&dropped).await;
        }
        Ok(true)
    }

    /// Stores the rollup rows computed from the raw segments `sources` (all of one
    /// time partition, starting at `partition_start_ns`) as a segment of rollup
    /// `rollup_id`, and commits it. Returns `false`, storing nothing, when the
    /// rollup is gone or a source is already rolled up: calling this twice for the
    /// same sources never counts their rows twice.
    pub async fn add_rollup_segment(
        &self,
        env: &str,
        dataset: &str,
        rollup_id: &str,
        sources: Vec<String>,
        rows: Option<RecordBatch>,
        partition_start_ns: i64,
    ) -> Result<bool> {
        let key = (env.to_owned(), dataset.to_owned());
        let Some(state) = self.inner.dataset(&key) else {
            return Ok(false);
        };
        if !state.state.lock().rollups.accepts(rollup_id, &sources) {
            return Ok(false);
        }
        let file = match rows.filter(|rows| rows.num_rows() > 0) {
            Some(rows) => Some(
                self.write_rollup_file(&key, rollup_id, rows, partition_start_ns)
                    .await?,
            ),
            None => None,
        };
        let segment = RollupSegment { file, sources };
        let mut manifest = self.inner.manifest.lock().await;
        // Checked again under the manifest lock: the rollup may have been dropped
        // or replaced while the file was written, and compaction or retention may
        // have removed a source (its rows are then elsewhere, or gone).
        let accepted = {
            let state = state.state.lock();
            state.rollups.accepts(rollup_id, &segment.sources)
                && state.has_segments(&segment.sources)
        };
        if accepted {
            self.inner
                .commit(
                    &mut manifest,
                    vec![Action::AddRollupSegment {
                        env: key.0.clone(),
                        dataset: key.1.clone(),
                        rollup_id: rollup_id.to_owned(),
                        segment: segment.clone(),
                    }],
                )
                .await?;
            state
                .state
                .lock()
                .rollups
                .add_segment(rollup_id, segment.clone());
        }
        drop(manifest);
        if accepted {
            self.inner.changed();
        } else if let Some(file) = &segment.file {
            self.delete_file(file).await;
        }
        Ok(accepted)
    }

    async fn write_rollup_file(
        &self,
        key: &DatasetKey,
        rollup_id: &str,
        rows: RecordBatch,
        partition_start_ns: i64,
    ) -> Result<SegmentMeta> {
        let dir = names::rollup_dir(&key.0, &key.1, rollup_id);
        let row_group_rows = self.inner.config.row_group_rows;
        let created_ns = self.inner.now_ns();
        let file = tokio::task::spawn_blocking(move || {
            build_rollup_segment(&rows, row_group_rows, &dir, partition_start_ns, created_ns)
        })
        .await
        .map_err(|error| StoreError::Manifest(format!("rollup segment task failed: {error}")))??;
        self.inner
            .object_store
            .put(
                &Path::from(file.meta.path.as_str()),
                PutPayload::from(file.bytes),
            )
            .await?;
        Ok(file.meta)
    }

    /// Best effort: a file left behind is never read (the manifest does not name it).
    async fn delete_rollup_files(&self, rollup: &Rollup) {
        for segment in &rollup.segments {
            if let Some(file) = &segment.file {
                self.delete_file(file).await;
            }
        }
    }

    async fn delete_file(&self, file: &SegmentMeta) {
        let path = Path::from(file.path.as_str());
        if let Err(error) = self.inner.object_store.delete(&path).await {
            tracing::warn!(path = %file.path, %error, "cannot delete an unreferenced rollup file");
        }
    }
}

impl RollupSet {
    /// Whether [`RollupSet::add_segment`] would record a segment of these sources.
    pub fn accepts(&self, rollup_id: &str, sources: &[String]) -> bool {
        let Some(rollup) = self.rollups.iter().find(|rollup| rollup.id == rollup_id) else {
            return false;
        };
        let covered = rollup.covered();
        !sources.is_empty()
            && sources
                .iter()
                .all(|source| !covered.contains(source.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use crate::rollup::{MeasureOp, RollupMeasure};
    use arrow::array::{ArrayRef, Int64Array, TimestampNanosecondArray};
    use object_store::local::LocalFileSystem;

    const HOUR_NS: i64 = 3_600_000_000_000;

    async fn open(dir: &std::path::Path) -> Arc<Store> {
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

    fn rows(n: i64) -> RecordBatch {
        let times: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![HOUR_NS; n as usize]).with_timezone("UTC"),
        );
        let ids: ArrayRef = Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()));
        RecordBatch::try_from_iter(vec![("timestamp", times), ("id", ids)]).unwrap()
    }

    fn definition() -> RollupDefinition {
        RollupDefinition {
            name: "by_id".into(),
            granularity: 60,
            dimensions: vec!["id".into()],
            measures: vec![RollupMeasure {
                op: MeasureOp::Count,
                column: None,
            }],
            filters: vec![],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollups_and_their_segments_survive_a_restart_and_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        assert!(matches!(
            store
                .put_rollup("default", "a", definition(), PutRollupMode::Create)
                .await
                .unwrap(),
            PutRollupOutcome::NoDataset
        ));
        store.append("default", "a", rows(3)).await.unwrap();
        store.seal_all().await.unwrap();
        let PutRollupOutcome::Created(rollup) = store
            .put_rollup("default", "a", definition(), PutRollupMode::Create)
            .await
            .unwrap()
        else {
            panic!("not created");
        };
        assert!(matches!(
            store
                .put_rollup("default", "a", definition(), PutRollupMode::Create)
                .await
                .unwrap(),
            PutRollupOutcome::Exists(_)
        ));
        let (snapshot, _) = store.rollup_snapshot("default", "a").unwrap();
        let source = snapshot.segments[0].path.clone();
        let added = store
            .add_rollup_segment(
                "default",
                "a",
                &rollup.id,
                vec![source.clone()],
                Some(rows(2)),
                0,
            )
            .await
            .unwrap();
        assert!(added);
        let again = store
            .add_rollup_segment(
                "default",
                "a",
                &rollup.id,
                vec![source.clone()],
                Some(rows(2)),
                0,
            )
            .await
            .unwrap();
        assert!(!again, "a source is rolled up once");
        store.shutdown().await.unwrap();
        drop(store);

        let reopened = open(dir.path()).await;
        let set = reopened.rollups("default", "a").unwrap();
        let stored = set.get("by_id").unwrap();
        assert_eq!(stored.id, rollup.id);
        assert_eq!(stored.segments.len(), 1);
        let file = stored.segments[0].file.clone().unwrap();
        assert_eq!(file.rows, 2);
        assert!(file.path.starts_with("rollups/default/a/"));
        assert!(
            !reopened
                .add_rollup_segment("default", "a", &rollup.id, vec![source], None, 0)
                .await
                .unwrap()
        );
        assert!(reopened.drop_rollup("default", "a", "by_id").await.unwrap());
        assert!(!reopened.drop_rollup("default", "a", "by_id").await.unwrap());
        reopened.shutdown().await.unwrap();
        drop(reopened);
        let again = open(dir.path()).await;
        assert!(again.rollups("default", "a").unwrap().rollups.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_default_rollup_is_created_once_and_a_config_change_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store.append("default", "a", rows(1)).await.unwrap();
        let created = store
            .put_rollup("default", "a", definition(), PutRollupMode::Default)
            .await
            .unwrap();
        assert!(matches!(created, PutRollupOutcome::Created(_)));
        assert!(store.drop_rollup("default", "a", "by_id").await.unwrap());
        let again = store
            .put_rollup("default", "a", definition(), PutRollupMode::Default)
            .await
            .unwrap();
        assert!(matches!(again, PutRollupOutcome::Declined));

        let first = store
            .put_rollup("default", "a", definition(), PutRollupMode::Replace)
            .await
            .unwrap();
        let PutRollupOutcome::Created(first) = first else {
            panic!("not created")
        };
        let same = store
            .put_rollup("default", "a", definition(), PutRollupMode::Replace)
            .await
            .unwrap();
        assert!(matches!(same, PutRollupOutcome::Exists(ref r) if r.id == first.id));
        let mut changed = definition();
        changed.granularity = 300;
        let replaced = store
            .put_rollup("default", "a", changed, PutRollupMode::Replace)
            .await
            .unwrap();
        assert!(matches!(replaced, PutRollupOutcome::Created(ref r) if r.id != first.id));
        assert_eq!(store.rollups("default", "a").unwrap().rollups.len(), 1);
    }
}
