//! The one clock every Quarry crate reads wall time from.
//!
//! Code that decides by the time of day (default event times, seal age, retention
//! cut-offs, rollup windows, alert windows) asks a [`Clock`] instead of the system,
//! so its tests move time with a [`ManualClock`] instead of sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall time, in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// Now, in nanoseconds since the epoch (UTC).
    fn now_ns(&self) -> i64;
}

/// A clock shared by the parts of one server.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        system_now_ns()
    }
}

/// The system clock, shared.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system's wall time in nanoseconds since the epoch; 0 before 1970 and
/// `i64::MAX` after 2262 (neither happens on a sane machine).
pub fn system_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// A clock that moves only when told to: for tests of anything time decides.
#[derive(Debug)]
pub struct ManualClock {
    now_ns: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `now_ns`.
    pub fn new(now_ns: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ns: AtomicI64::new(now_ns),
        })
    }

    /// Moves the clock to `now_ns` (backwards too, as a wall clock can).
    pub fn set_ns(&self, now_ns: i64) {
        self.now_ns.store(now_ns, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.now_ns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            })
            .ok();
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_2020() {
        const JAN_1_2020_NS: i64 = 1_577_836_800_000_000_000;
        assert!(SystemClock.now_ns() > JAN_1_2020_NS);
        assert!(system_clock().now_ns() > JAN_1_2020_NS);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ns(), 1_000);
        clock.advance(Duration::from_micros(2));
        assert_eq!(clock.now_ns(), 3_000);
        clock.set_ns(500);
        assert_eq!(clock.now_ns(), 500);
        clock.set_ns(i64::MAX - 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ns(), i64::MAX);
        let shared: SharedClock = clock;
        assert_eq!(shared.now_ns(), i64::MAX);
    }
}
