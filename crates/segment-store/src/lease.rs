//! The maintenance lease: which one of the processes sharing an object store
//! runs compaction, retention and the orphan sweep.
//!
//! One object, `_leases/maintenance.json`, says who holds it and until when. It
//! is taken with a create-only put, and renewed or taken over with a put that
//! succeeds only if the object is still the version that was read (S3: `If-Match`
//! on its ETag), so two processes never both win the same round. A holder that
//! stops renewing (killed) keeps the lease until it expires; then the next
//! candidate takes it over. A holder that was paused past its expiry and wakes up
//! to commit a merge the new holder also made cannot add rows twice: the manifest
//! applies a replacement only while all of its inputs are still there.
//!
//! Expiry is judged by each process's clock: the clocks of the nodes must agree
//! to well within the lease's time to live (NTP does).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use quarry_schema::SharedClock;
use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

const LEASE_PATH: &str = "_leases/maintenance.json";

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    expires_at_ns: i64,
}

/// One process's side of the maintenance lease.
pub struct MaintenanceLease {
    store: Arc<dyn ObjectStore>,
    holder: String,
    ttl: Duration,
    clock: SharedClock,
    /// Until when this process holds it by its own last renewal (0: not held).
    held_until_ns: AtomicI64,
    /// One attempt at a time: two of this process's own attempts would read the
    /// same version and the second put would fail against the first.
    attempt: tokio::sync::Mutex<()>,
}

impl MaintenanceLease {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        holder: String,
        ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        MaintenanceLease {
            store,
            holder,
            ttl,
            clock,
            held_until_ns: AtomicI64::new(0),
            attempt: tokio::sync::Mutex::new(()),
        }
    }

    /// How often a holder renews: a third of the time to live, so two renewals
    /// may fail before the lease expires.
    pub fn renew_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// Takes the lease (when free or expired) or renews it (when held); returns
    /// whether this process holds it now.
    pub async fn acquire(&self) -> Result<bool> {
        let _one_attempt_at_a_time = self.attempt.lock().await;
        let now_ns = self.clock.now_ns();
        let ttl_ns = i64::try_from(self.ttl.as_nanos()).unwrap_or(i64::MAX);
        let record = LeaseRecord {
            holder: self.holder.clone(),
            expires_at_ns: now_ns.saturating_add(ttl_ns),
        };
        let body = serde_json::to_vec(&record)
            .map_err(|error| StoreError::Manifest(format!("lease: {error}")))?;
        let path = Path::from(LEASE_PATH);
        let mode = match self.store.get(&path).await {
            Err(object_store::Error::NotFound { .. }) => PutMode::Create,
            Err(error) => return Err(error.into()),
            Ok(current) => {
                let version = UpdateVersion {
                    e_tag: current.meta.e_tag.clone(),
                    version: current.meta.version.clone(),
                };
                let bytes = current.bytes().await?;
                // An unreadable record is treated as expired: it is replaced.
                let taken_by_another = serde_json::from_slice::<LeaseRecord>(&bytes)
                    .is_ok_and(|held| held.holder != self.holder && held.expires_at_ns > now_ns);
                if taken_by_another {
                    self.held_until_ns.store(0, Ordering::SeqCst);
                    return Ok(false);
                }
                PutMode::Update(version)
            }
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(body), mode.into())
            .await
        {
            Ok(_) => {
                self.held_until_ns
                    .store(record.expires_at_ns, Ordering::SeqCst);
                Ok(true)
            }
            // Another process wrote it between the read and this put.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                self.held_until_ns.store(0, Ordering::SeqCst);
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Whether this process holds the lease by its last renewal.
    pub fn is_held(&self) -> bool {
        self.held_for() > Duration::ZERO
    }

    /// How much longer this process holds the lease without renewing it.
    pub fn held_for(&self) -> Duration {
        let left_ns = self.held_until_ns.load(Ordering::SeqCst) - self.clock.now_ns();
        Duration::from_nanos(u64::try_from(left_ns).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use quarry_schema::ManualClock;

    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_the_next_takes_over_after_expiry() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let clock = ManualClock::new(1_000_000_000_000);
        let ttl = Duration::from_secs(30);
        let lease =
            |holder: &str| MaintenanceLease::new(store.clone(), holder.into(), ttl, clock.clone());
        let (a, b) = (lease("a"), lease("b"));
        assert!(a.acquire().await.unwrap());
        assert!(!b.acquire().await.unwrap(), "held by a");
        assert!(a.is_held() && !b.is_held());

        clock.advance(Duration::from_secs(20));
        assert!(a.acquire().await.unwrap(), "renewed");
        clock.advance(Duration::from_secs(20));
        assert!(!b.acquire().await.unwrap(), "the renewal moved the expiry");

        // a stops renewing (killed): once expired, b takes over and a no longer holds.
        clock.advance(Duration::from_secs(11));
        assert!(!a.is_held());
        assert!(b.acquire().await.unwrap());
        assert!(!a.acquire().await.unwrap(), "b holds it now");
        assert!(b.is_held() && !a.is_held());
    }
}
