//! Other writers' manifest changes in this store's live state.
//!
//! Several processes may share one manifest: ingest nodes seal into it, the
//! compactor compacts, expires and rolls up, and query nodes only read it. A
//! store learns what the others committed when its own commit finds the next
//! entry taken ([`Inner::commit`]), and, on a node that follows the manifest, on
//! every [`Store::follow_manifest`]. Either way the changes are applied under the
//! manifest lock, like the store's own, so the live state always equals what a
//! restart would load (plus the rows still buffered here).

use std::sync::Arc;

use crate::manifest::{Action, ForeignChanges, Manifest, merge_schema};
use crate::store::Inner;
use crate::{Result, Store};

impl Inner {
    /// Commits `actions` (the caller holds the manifest lock and applies its own
    /// change to the live state afterwards), first applying the changes other
    /// writers committed before it.
    pub(crate) async fn commit(
        &self,
        manifest: &mut Manifest,
        actions: Vec<Action>,
    ) -> Result<u64> {
        let committed = manifest.commit(actions).await;
        // Even when the commit failed: entries read meanwhile are committed facts.
        self.apply_foreign(manifest);
        committed
    }

    /// Applies the other writers' changes the manifest read; whether there were any.
    pub(crate) fn apply_foreign(&self, manifest: &mut Manifest) -> bool {
        let Some(changes) = manifest.take_foreign() else {
            return false;
        };
        match changes {
            ForeignChanges::Actions(actions) => {
                for action in actions {
                    self.apply_foreign_action(action);
                }
            }
            ForeignChanges::Reloaded => self.copy_committed_state(manifest),
        }
        self.changed();
        true
    }

    fn apply_foreign_action(&self, action: Action) {
        match action {
            Action::SealSegments {
                env,
                dataset,
                node,
                schema,
                segments,
                sealed_wal_seq,
                created_at_ns,
                last_written_ns,
            } => {
                // Another node's WAL: this node's sealed sequence does not move.
                let dataset = self.dataset_or_create(&(env, dataset), created_at_ns);
                let mut state = dataset.state.lock();
                merge_schema(&mut state.schema, &schema);
                state.segments.extend(segments.into_iter().map(Arc::new));
                state.note_sealed_by(&node, sealed_wal_seq);
                state.last_written_ns = state.last_written_ns.max(last_written_ns);
            }
            Action::PutRollup {
                env,
                dataset,
                rollup,
                default,
            } => {
                let dataset = self.dataset_or_create(&(env, dataset), rollup.created_at_ns);
                dataset.state.lock().rollups.put(rollup, default);
            }
            Action::DropRollup { env, dataset, name } => {
                if let Some(dataset) = self.dataset(&(env, dataset)) {
                    dataset.state.lock().rollups.drop_rollup(&name);
                }
            }
            Action::AddRollupSegment {
                env,
                dataset,
                rollup_id,
                segment,
            } => {
                if let Some(dataset) = self.dataset(&(env, dataset)) {
                    let mut state = dataset.state.lock();
                    if state.has_segments(&segment.sources) {
                        state.rollups.add_segment(&rollup_id, segment);
                    }
                }
            }
            Action::ReplaceSegments {
                env,
                dataset,
                removed,
                added,
            } => {
                if let Some(dataset) = self.dataset(&(env, dataset)) {
                    let mut state = dataset.state.lock();
                    // The manifest's rule: nothing when a removed one is gone.
                    if state.has_segments(&removed) {
                        state.replace_segments(&removed, added);
                    }
                }
            }
        }
    }

    /// Copies every dataset's committed segments, rollups and columns from the
    /// manifest (loaded anew); rows buffered here stay where they are.
    fn copy_committed_state(&self, manifest: &Manifest) {
        for record in manifest.datasets() {
            let key = (record.env.clone(), record.name.clone());
            let dataset = self.dataset_or_create(&key, record.created_at_ns);
            let mut state = dataset.state.lock();
            merge_schema(&mut state.schema, &record.schema);
            state.segments = record.segments.clone();
            state.rollups = record.rollups.clone();
            for (node, seq) in &record.sealed_wal_seq_by_node {
                state.note_sealed_by(node, *seq);
            }
            state.last_written_ns = state.last_written_ns.max(record.last_written_ns);
        }
    }
}

impl Store {
    /// Reads what other writers committed since the last look and applies it to
    /// the live state; returns whether anything changed. Query nodes call this a
    /// few times a second; a node that writes also learns it at its next commit.
    pub async fn follow_manifest(&self) -> Result<bool> {
        let mut manifest = self.inner.manifest.lock().await;
        manifest.refresh().await?;
        Ok(self.inner.apply_foreign(&mut manifest))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use object_store::local::LocalFileSystem;

    use super::*;
    use crate::StoreConfig;
    use crate::test_support::{HOUR_NS, rows};

    /// A writer named `node` with its own WAL under `dir/<node>`, sharing the
    /// object store `dir/objects`.
    async fn writer(dir: &Path, node: &str) -> Arc<Store> {
        let objects = dir.join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        let mut config = StoreConfig::new(dir.join(node).join("wal"));
        config.seal_max_age = std::time::Duration::from_secs(3600);
        config.compaction.enabled = false;
        config.node_id = node.to_owned();
        let objects = LocalFileSystem::new_with_prefix(objects).unwrap();
        Store::open(config, Arc::new(objects)).await.unwrap()
    }

    fn sealed_rows(store: &Store) -> u64 {
        store
            .snapshot("default", "ds")
            .map_or(0, |s| s.segments.iter().map(|segment| segment.rows).sum())
    }

    fn buffered_rows(store: &Store) -> usize {
        store
            .snapshot("default", "ds")
            .map_or(0, |s| s.buffer.iter().map(|batch| batch.num_rows()).sum())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_commit_to_one_manifest_and_each_replays_its_own_wal() {
        let dir = tempfile::tempdir().unwrap();
        let a = writer(dir.path(), "a").await;
        let b = writer(dir.path(), "b").await;
        a.append("default", "ds", rows(0..10, |id| HOUR_NS + id))
            .await
            .unwrap();
        a.seal_all().await.unwrap();
        // b's commit finds entry 1 taken by a: it reads it, then commits entry 2.
        b.append("default", "ds", rows(10..25, |id| HOUR_NS + id))
            .await
            .unwrap();
        b.seal_all().await.unwrap();
        assert_eq!(sealed_rows(&b), 25, "b learned a's seal while committing");
        assert_eq!(sealed_rows(&a), 10);
        assert!(a.follow_manifest().await.unwrap());
        assert_eq!(sealed_rows(&a), 25);
        assert!(!a.follow_manifest().await.unwrap(), "nothing new");

        // a seals more, so the highest sealed WAL sequence in the manifest is a's
        // 2; b's unsealed entry 2 must still be replayed from b's WAL.
        a.append("default", "ds", rows(100..130, |id| HOUR_NS + id))
            .await
            .unwrap();
        a.seal_all().await.unwrap();
        b.append("default", "ds", rows(200..203, |id| HOUR_NS + id))
            .await
            .unwrap();
        b.shutdown().await.unwrap();
        drop(b);
        let b = writer(dir.path(), "b").await;
        assert_eq!(sealed_rows(&b), 55);
        assert_eq!(buffered_rows(&b), 3, "b's own unsealed rows came back");
        b.seal_all().await.unwrap();
        assert!(a.follow_manifest().await.unwrap());
        assert_eq!(sealed_rows(&a), 58);
        assert_eq!(sealed_rows(&b), 58);
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_far_behind_loads_the_newest_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let follower = writer(dir.path(), "reader").await;
        let writer_store = {
            let objects = dir.path().join("objects");
            let mut config = StoreConfig::new(dir.path().join("w").join("wal"));
            config.seal_max_age = std::time::Duration::from_secs(3600);
            config.compaction.enabled = false;
            config.node_id = "w".into();
            // A checkpoint every 2 entries: old log entries are deleted early.
            config.manifest_checkpoint_interval = 2;
            let objects = LocalFileSystem::new_with_prefix(objects).unwrap();
            Store::open(config, Arc::new(objects)).await.unwrap()
        };
        for seal in 0..40 {
            writer_store
                .append(
                    "default",
                    "ds",
                    rows(seal * 10..seal * 10 + 10, |id| HOUR_NS + id),
                )
                .await
                .unwrap();
            writer_store.seal_all().await.unwrap();
        }
        assert!(follower.follow_manifest().await.unwrap());
        assert_eq!(sealed_rows(&follower), 400);
        assert_eq!(
            follower.snapshot("default", "ds").unwrap().segments.len(),
            40
        );
        follower.shutdown().await.unwrap();
        writer_store.shutdown().await.unwrap();
    }

    /// What a query node needs to add an ingest node's unsealed rows exactly
    /// once: the ingest node's groups with their sequences and its sealed
    /// sequence, and, on the follower, how far the manifest shows it sealed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffers_say_how_far_they_are_sealed_and_followers_know_it() {
        let dir = tempfile::tempdir().unwrap();
        let ingest = writer(dir.path(), "ingest").await;
        let follower = writer(dir.path(), "query").await;
        ingest
            .append("default", "ds", rows(0..10, |id| HOUR_NS + id))
            .await
            .unwrap();
        ingest.seal_all().await.unwrap();
        ingest
            .append("default", "ds", rows(10..14, |id| HOUR_NS + id))
            .await
            .unwrap();
        let buffer = ingest.buffer_snapshot("default", "ds").unwrap();
        assert_eq!(buffer.sealed_seq, 1);
        let groups: Vec<(u64, usize)> = buffer
            .groups
            .iter()
            .map(|group| {
                (
                    group.max_seq,
                    group.batches.iter().map(|b| b.num_rows()).sum(),
                )
            })
            .collect();
        assert_eq!(groups, vec![(2, 4)]);
        assert!(ingest.buffer_snapshot("default", "none").is_none());

        assert!(follower.snapshot("default", "ds").is_none());
        assert!(follower.follow_manifest().await.unwrap());
        let seen = follower.snapshot("default", "ds").unwrap();
        assert_eq!(seen.sealed_seq_by_node.get("ingest"), Some(&1));
        assert_eq!(seen.segments.iter().map(|s| s.rows).sum::<u64>(), 10);

        // A follower started later reads the same from the manifest it loads.
        ingest.seal_all().await.unwrap();
        let late = writer(dir.path(), "late").await;
        let seen = late.snapshot("default", "ds").unwrap();
        assert_eq!(seen.sealed_seq_by_node.get("ingest"), Some(&2));
        for store in [ingest, follower, late] {
            store.shutdown().await.unwrap();
        }
    }
}
