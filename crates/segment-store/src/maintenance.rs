//! The background maintenance loop: compaction, retention and the orphan sweep,
//! each on its own interval.
//!
//! The first compaction and retention passes come one interval after start-up (a
//! restart is not the moment for extra I/O); the orphan sweep runs at start-up,
//! where a crash most likely left something, and then hourly. Every step is also
//! callable directly ([`Store::compact`], [`Store::enforce_retention`],
//! [`Store::sweep_orphans`]); the loop and direct calls are serialized by the
//! store's maintenance lock. Like the sealer, the loop holds only a weak reference
//! to the store between rounds.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::Store;

/// Pause between two orphan sweeps (each lists every data file).
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs maintenance until the store shuts down or is dropped.
pub async fn run(store: Weak<Store>) {
    let start = Instant::now();
    let mut next_sweep = start;
    let mut next_compaction = None;
    let mut next_retention = None;
    if let Some(strong) = store.upgrade() {
        let config = &strong.inner.config;
        if !config.run_maintenance {
            return;
        }
        if config.compaction.enabled {
            next_compaction = Some(start + config.compaction.interval);
        }
        if config.retention.is_enabled() {
            next_retention = Some(start + config.retention.interval);
        }
    }
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        let inner = strong.inner.clone();
        if inner.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        // On a shared store only the lease holder maintains; the others keep
        // trying, so one of them takes over when the holder stops renewing.
        let may_maintain = match &inner.lease {
            None => true,
            Some(lease) => match lease.acquire().await {
                Ok(held) => held,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the maintenance lease; retrying");
                    false
                }
            },
        };
        let now = Instant::now();
        if may_maintain && now >= next_sweep {
            if let Err(error) = strong.sweep_orphans(None).await {
                tracing::warn!(%error, "orphan sweep failed; retrying later");
            }
            next_sweep = Instant::now() + ORPHAN_SWEEP_INTERVAL;
        }
        if may_maintain && next_compaction.is_some_and(|due| now >= due) {
            match strong.compact(None).await {
                Ok(report) if report.merges > 0 => {
                    tracing::info!(?report, "compaction merged small segments");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "compaction failed; retrying later"),
            }
            next_compaction = Some(Instant::now() + inner.config.compaction.interval);
        }
        if may_maintain && next_retention.is_some_and(|due| now >= due) {
            if let Err(error) = strong.enforce_retention(strong.inner.now_ns()).await {
                tracing::warn!(%error, "retention failed; retrying later");
            }
            next_retention = Some(Instant::now() + inner.config.retention.interval);
        }
        let next_deletion = strong.delete_due_files(false).await;
        drop(strong);
        let renew = inner
            .lease
            .as_ref()
            .map(|lease| Instant::now() + lease.renew_interval());
        // Without the lease, due work waits for the next attempt at taking it.
        let due_work = [Some(next_sweep), next_compaction, next_retention];
        let wake = due_work
            .into_iter()
            .filter(|_| may_maintain)
            .chain([next_deletion, renew])
            .flatten()
            .min()
            .unwrap_or(next_sweep);
        tokio::select! {
            () = inner.maintenance_wakeup.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{HOUR_NS, exists, open_store, rows};
    use std::time::Duration;

    /// Generous bound for the background task to act (it runs every 10 ms here).
    const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(30);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_background_task_compacts_and_expires_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |config| {
            config.compaction.enabled = true;
            config.compaction.interval = Duration::from_millis(10);
            config.compaction.min_segments = 2;
            config.retention.max_age = Some(Duration::from_secs(3600));
            config.retention.interval = Duration::from_millis(10);
            config
                .retention
                .dataset_max_age
                .insert("recent".into(), None);
        })
        .await;
        // Far in the past: expired for dataset "old", kept for "recent" (forever),
        // whose two segments of one partition get merged.
        for dataset in ["old", "recent"] {
            for round in 0..2 {
                store
                    .append(
                        "default",
                        dataset,
                        rows(round * 5..round * 5 + 5, |id| HOUR_NS + id),
                    )
                    .await
                    .unwrap();
                store.seal_all().await.unwrap();
            }
        }
        let deadline = tokio::time::Instant::now() + BACKGROUND_TIMEOUT;
        loop {
            let old = store.snapshot("default", "old").unwrap().segments.len();
            let recent = store.snapshot("default", "recent").unwrap().segments;
            if old == 0 && recent.len() == 1 {
                assert_eq!(recent[0].rows, 10);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "old has {old} segments, recent {}",
                recent.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_after_the_commit_leaves_only_unread_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), |_| {}).await;
        for round in 0..3 {
            store
                .append(
                    "default",
                    "a",
                    rows(round * 5..round * 5 + 5, |id| HOUR_NS + id),
                )
                .await
                .unwrap();
            store.seal_all().await.unwrap();
        }
        let inputs = store.snapshot("default", "a").unwrap().segments;
        let saved = tempfile::tempdir().unwrap();
        for (index, input) in inputs.iter().enumerate() {
            std::fs::copy(
                dir.path().join("objects").join(&input.path),
                saved.path().join(index.to_string()),
            )
            .unwrap();
        }
        store.compact(Some(2)).await.unwrap();
        let merged = store.snapshot("default", "a").unwrap().segments;
        store.shutdown().await.unwrap();
        drop(store);
        // What a crash between the commit and the deletions leaves: the inputs.
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        for (index, input) in inputs.iter().enumerate() {
            let path = dir.path().join("objects").join(&input.path);
            std::fs::copy(saved.path().join(index.to_string()), &path).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }

        let reopened = open_store(dir.path(), |_| {}).await;
        assert_eq!(reopened.snapshot("default", "a").unwrap().segments, merged);
        // The start-up sweep may already have run; either way they all go.
        reopened.sweep_orphans(None).await.unwrap();
        for input in &inputs {
            assert!(!exists(dir.path(), &input.path), "{} left", input.path);
        }
        assert!(exists(dir.path(), &merged[0].path));
    }
}
