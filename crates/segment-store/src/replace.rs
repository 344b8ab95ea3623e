//! Removing raw segments from a dataset (compaction's inputs, retention's expired
//! segments), possibly adding others, in one manifest transaction that also forgets
//! the rollup segments computed from the removed ones.
//!
//! ```text
//!  manifest lock ── every removed segment still there? ── no ──► nothing committed
//!     │ yes
//!     ▼
//!  commit ReplaceSegments ──► live state updated under the same manifest lock
//!     ▼
//!  change notification (rollup maintenance rolls up what became pending)
//!     ▼
//!  delete the removed files and the orphaned rollup files (best effort)
//! ```
//! Files are deleted only after the commit, so a crash at any point leaves either
//! the old state with an unreferenced new file, or the new state with unreferenced
//! old files; the orphan sweep deletes both kinds later. Neither is ever read.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::manifest::Action;
use crate::wal::DatasetKey;
use crate::{Result, SegmentMeta, Store};

/// What a committed replacement left to delete.
pub(crate) struct Replaced {
    /// Rollup files whose sources were removed.
    pub rollup_files: Vec<SegmentMeta>,
}

impl Store {
    /// Commits the removal of `removed` (and the addition of `added`) to a dataset.
    /// Returns `None`, committing nothing, when the dataset is gone or any removed
    /// segment is no longer part of it (another maintenance step got there first).
    pub(crate) async fn replace_segments(
        &self,
        key: &DatasetKey,
        removed: &[Arc<SegmentMeta>],
        added: Vec<SegmentMeta>,
    ) -> Result<Option<Replaced>> {
        let Some(dataset) = self.inner.dataset(key) else {
            return Ok(None);
        };
        let paths: Vec<String> = removed.iter().map(|s| s.path.clone()).collect();
        let mut manifest = self.inner.manifest.lock().await;
        if !dataset.state.lock().has_segments(&paths) {
            return Ok(None);
        }
        self.inner
            .commit(
                &mut manifest,
                vec![Action::ReplaceSegments {
                    env: key.0.clone(),
                    dataset: key.1.clone(),
                    removed: paths.clone(),
                    added: added.clone(),
                }],
            )
            .await?;
        // Under the manifest lock, like every change: the live state always equals
        // what a restart would load. Other writers' entries read on the way are
        // applied by now; if one of them replaced a removed segment first, this
        // entry changed nothing (the manifest's rule) and neither does the state.
        let rollup_files = {
            let mut state = dataset.state.lock();
            if !state.has_segments(&paths) {
                return Ok(None);
            }
            state.replace_segments(&paths, added)
        };
        drop(manifest);
        let metrics = &self.inner.metrics;
        metrics.manifest_commits.inc_by(1);
        metrics
            .rollup_segments_removed
            .inc_by(rollup_files.len() as u64);
        self.inner.changed();
        Ok(Some(Replaced { rollup_files }))
    }

    /// Deletes files a commit removed from the manifest once the deletion delay
    /// has passed (queries that began before the commit may still read them). A
    /// crash before then leaves them to the orphan sweep.
    pub(crate) async fn retire_files(&self, paths: Vec<String>) {
        let delay = self.inner.config.compaction.deletion_delay;
        if delay.is_zero() {
            self.delete_unreferenced(paths).await;
            return;
        }
        let due = tokio::time::Instant::now() + delay;
        self.inner
            .pending_deletions
            .lock()
            .extend(paths.into_iter().map(|path| (due, path)));
        // The maintenance loop recomputes when to wake up.
        self.inner.maintenance_wakeup.notify_one();
    }

    /// Deletes the retired files whose delay has passed (all of them with `all`);
    /// returns when the next one is due.
    pub(crate) async fn delete_due_files(&self, all: bool) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let (due, next) = {
            let mut pending = self.inner.pending_deletions.lock();
            let count = pending
                .iter()
                .take_while(|(due, _)| all || *due <= now)
                .count();
            let due: Vec<String> = pending.drain(..count).map(|(_, path)| path).collect();
            (due, pending.front().map(|(due, _)| *due))
        };
        if !due.is_empty() {
            self.delete_unreferenced(due).await;
        }
        next
    }

    /// Paths waiting for their deletion delay (the orphan sweep leaves them alone).
    pub(crate) fn retired_paths(&self) -> Vec<String> {
        self.inner
            .pending_deletions
            .lock()
            .iter()
            .map(|(_, path)| path.clone())
            .collect()
    }

    /// Deletes objects no manifest entry names any more. Best effort: a failure is
    /// logged and the orphan sweep deletes the file later. Returns how many went.
    pub(crate) async fn delete_unreferenced(&self, paths: Vec<String>) -> u64 {
        let mut deleted = 0;
        for path in paths {
            match self
                .inner
                .object_store
                .delete(&Path::from(path.as_str()))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(error) => {
                    tracing::warn!(%path, %error, "cannot delete an unreferenced file; the orphan sweep will retry");
                }
            }
        }
        deleted
    }
}
