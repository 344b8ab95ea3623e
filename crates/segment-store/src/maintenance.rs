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
use crate::store::now_ns;

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
        let now = Instant::now();
        if now >= next_sweep {
            if let Err(error) = strong.sweep_orphans(None).await {
                tracing::warn!(%error, "orphan sweep failed; retrying later");
            }
            next_sweep = Instant::now() + ORPHAN_SWEEP_INTERVAL;
        }
        if next_compaction.is_some_and(|due| now >= due) {
            match strong.compact(None).await {
                Ok(report) if report.merges > 0 => {
                    tracing::info!(?report, "compaction merged small segments");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "compaction failed; retrying later"),
            }
            next_compaction = Some(Instant::now() + inner.config.compaction.interval);
        }
        if next_retention.is_some_and(|due| now >= due) {
            if let Err(error) = strong.enforce_retention(now_ns()).await {
                tracing::warn!(%error, "retention failed; retrying later");
            }
            next_retention = Some(Instant::now() + inner.config.retention.interval);
        }
        drop(strong);
        let wake = [Some(next_sweep), next_compaction, next_retention]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_sweep);
        tokio::select! {
            () = inner.maintenance_wakeup.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}
