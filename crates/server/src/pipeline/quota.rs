//! Per-environment rate limits: token buckets of events and bytes, with a burst.
//!
//! Each environment has buckets of its own, so only an environment over its limit
//! is refused; the others never wait on it. A request larger than the whole
//! burst is let through when the bucket is full and leaves it in debt, so a big
//! request is slowed, never refused forever.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::rules::Quota;

/// A token bucket: `rate` tokens a second, holding at most `capacity`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u64, capacity: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            capacity: capacity as f64,
            tokens: capacity as f64,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled_at = now;
    }

    /// Whether `cost` tokens are there; when they are not, how long until they are.
    pub fn check(&mut self, cost: u64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        // More than the whole burst: wait for a full bucket, then go into debt.
        let needed = (cost as f64).min(self.capacity);
        if self.tokens >= needed {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - self.tokens) / self.rate))
        }
    }

    /// Takes `cost` tokens (after a successful [`TokenBucket::check`]).
    pub fn take(&mut self, cost: u64) {
        self.tokens -= cost as f64;
    }
}

/// The buckets of one environment (absent: no limit).
#[derive(Debug, Clone)]
struct Buckets {
    events: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl Buckets {
    fn new(quota: &Quota, now: Instant) -> Buckets {
        let bucket = |rate: Option<u64>, burst: Option<u64>| {
            rate.map(|rate| TokenBucket::new(rate, burst.unwrap_or(rate), now))
        };
        Buckets {
            events: bucket(quota.events_per_second, quota.events_burst),
            bytes: bucket(quota.bytes_per_second, quota.bytes_burst),
        }
    }
}

/// What went over its limit, and when to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct OverLimit {
    /// `events` or `bytes`.
    pub unit: &'static str,
    /// How long until the request would fit.
    pub retry_after: Duration,
}

/// Every environment's rate limits.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Buckets>>,
}

impl RateLimits {
    /// Sets an environment's limits (full buckets); `None` removes them.
    pub fn set(&self, environment: &str, quota: Option<&Quota>) {
        let mut buckets = self.buckets.lock();
        match quota {
            Some(quota)
                if quota.events_per_second.is_some() || quota.bytes_per_second.is_some() =>
            {
                buckets.insert(environment.to_owned(), Buckets::new(quota, Instant::now()));
            }
            _ => {
                buckets.remove(environment);
            }
        }
    }

    /// Takes `bytes` from the environment's byte bucket, or says when to retry.
    pub fn take_bytes(&self, environment: &str, bytes: u64) -> Result<(), OverLimit> {
        self.take(environment, bytes, "bytes", |buckets| {
            buckets.bytes.as_mut()
        })
    }

    /// Takes `events` from the environment's event bucket, or says when to retry.
    pub fn take_events(&self, environment: &str, events: u64) -> Result<(), OverLimit> {
        self.take(environment, events, "events", |buckets| {
            buckets.events.as_mut()
        })
    }

    fn take(
        &self,
        environment: &str,
        cost: u64,
        unit: &'static str,
        bucket_of: impl FnOnce(&mut Buckets) -> Option<&mut TokenBucket>,
    ) -> Result<(), OverLimit> {
        let mut buckets = self.buckets.lock();
        let Some(bucket) = buckets.get_mut(environment).and_then(bucket_of) else {
            return Ok(());
        };
        bucket
            .check(cost, Instant::now())
            .map_err(|retry_after| OverLimit { unit, retry_after })?;
        bucket.take(cost);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 20, start);
        for _ in 0..20 {
            assert!(bucket.check(1, start).is_ok());
            bucket.take(1);
        }
        let wait = bucket.check(1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        let later = start + Duration::from_millis(500);
        assert!(bucket.check(5, later).is_ok());
        assert!(bucket.check(6, later).is_err());
    }

    #[test]
    fn a_request_over_the_burst_waits_for_a_full_bucket_then_goes_into_debt() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100, 100, start);
        assert!(bucket.check(1_000, start).is_ok());
        bucket.take(1_000);
        let wait = bucket.check(1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 9.01).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn environments_have_buckets_of_their_own() {
        let limits = RateLimits::default();
        let quota = Quota {
            events_per_second: Some(1),
            events_burst: Some(5),
            ..Quota::default()
        };
        limits.set("noisy", Some(&quota));
        assert!(limits.take_events("noisy", 5).is_ok());
        let over = limits.take_events("noisy", 1).unwrap_err();
        assert_eq!(over.unit, "events");
        assert!(limits.take_events("quiet", 1_000_000).is_ok());
        assert!(limits.take_bytes("noisy", 1_000_000).is_ok());
        limits.set("noisy", None);
        assert!(limits.take_events("noisy", 100).is_ok());
    }
}
