//! The orphan sweep: deleting segment and rollup files no manifest entry names.
//!
//! Such files come from a crash (or a failed commit) between an upload and its
//! manifest commit, and from deletions that failed after a commit. They are never
//! read — queries see only manifest segments — so sweeping them only frees space.
//! A file is swept only when it is older than a grace period, so an upload whose
//! commit is still on its way is never taken for an orphan; and the set of
//! referenced files is read after listing, so a file committed meanwhile counts as
//! referenced.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::names::{DATA_FILE_SUFFIX, DATA_PREFIXES};
use crate::{Result, Store};

impl Store {
    /// Deletes data files that no manifest entry names and that are older than
    /// `grace` (the configured `orphan_grace` when `None`). Returns how many went.
    pub async fn sweep_orphans(&self, grace: Option<Duration>) -> Result<u64> {
        // One sweep at a time (the start-up one and an admin pass may overlap),
        // so each file is deleted, and counted, once.
        let _one_at_a_time = self.inner.maintenance_lock.lock().await;
        self.inner.require_lease().await?;
        let grace = grace.unwrap_or(self.inner.config.compaction.orphan_grace);
        let grace_ns = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        let cutoff_ns = self.inner.now_ns().saturating_sub(grace_ns);
        let mut candidates: Vec<ObjectMeta> = Vec::new();
        for prefix in DATA_PREFIXES {
            let listed: Vec<ObjectMeta> = match self
                .inner
                .object_store
                .list(Some(&Path::from(prefix)))
                .try_collect()
                .await
            {
                Ok(listed) => listed,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            candidates.extend(listed.into_iter().filter(|object| {
                object.location.as_ref().ends_with(DATA_FILE_SUFFIX)
                    && object
                        .last_modified
                        .timestamp_nanos_opt()
                        .is_some_and(|modified| modified < cutoff_ns)
            }));
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        // Listed first, then the manifest read up to date: a file another writer
        // committed after this node's last look is referenced, not an orphan.
        self.follow_manifest().await?;
        let Some(mut referenced) = self.referenced_files().await else {
            tracing::warn!(
                "orphan sweep skipped: the manifest holds a quarantined record whose files are unknown"
            );
            return Ok(0);
        };
        // Removed from the manifest but still readable by queries for a while.
        referenced.extend(self.retired_paths());
        let orphans: Vec<String> = candidates
            .into_iter()
            .map(|object| object.location.to_string())
            .filter(|path| !referenced.contains(path))
            .collect();
        if orphans.is_empty() {
            return Ok(0);
        }
        tracing::info!(
            files = orphans.len(),
            "deleting data files no manifest entry names"
        );
        let deleted = self.delete_unreferenced(orphans).await;
        self.inner.metrics.orphan_files_deleted.inc_by(deleted);
        Ok(deleted)
    }

    /// Every raw and rollup segment file the manifest names (its own record: a
    /// seal's live state is updated just after its commit).
    /// Every data file the manifest names, quarantined records included; `None`
    /// when a quarantined record is not readable enough to tell which files it names.
    async fn referenced_files(&self) -> Option<HashSet<String>> {
        let manifest = self.inner.manifest.lock().await;
        let mut referenced = HashSet::new();
        for record in manifest.quarantined() {
            if record.opaque {
                return None;
            }
            referenced.extend(record.paths.iter().cloned());
        }
        for record in manifest.datasets() {
            referenced.extend(record.segments.iter().map(|s| s.path.clone()));
            for rollup in &record.rollups.rollups {
                referenced.extend(
                    rollup
                        .segments
                        .iter()
                        .filter_map(|segment| segment.file.as_ref())
                        .map(|file| file.path.clone()),
                );
            }
        }
        Some(referenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{HOUR_NS, exists, open_store, rows};
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_unreferenced_files_past_the_grace_period_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |_| {}).await;
        store
            .append("default", "a", rows(0..5, |id| HOUR_NS + id))
            .await
            .unwrap();
        store.seal_all().await.unwrap();
        let segment = store.snapshot("default", "a").unwrap().segments[0].clone();
        // What a crash between an upload and its commit leaves behind.
        let orphan = "segments/default/a/3600/0190-never-committed.parquet";
        let not_data = "segments/default/a/3600/notes.txt";
        for path in [orphan, not_data] {
            store
                .object_store()
                .put(&Path::from(path), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        assert_eq!(store.sweep_orphans(None).await.unwrap(), 0, "too young");
        assert!(exists(dir.path(), orphan));
        // Two hours later (the default grace is one hour), for every file.
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        for path in [orphan, not_data, segment.path.as_str()] {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join("objects").join(path))
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        assert_eq!(store.sweep_orphans(None).await.unwrap(), 1);
        assert!(!exists(dir.path(), orphan));
        assert!(exists(dir.path(), not_data), "only .parquet files are data");
        assert!(exists(dir.path(), &segment.path), "referenced files stay");
        assert_eq!(store.metrics().orphan_files_deleted.get(), 1);
    }
}
