//! Time as a value that is passed in: a [`Clock`] is either the monotonic
//! clock (production) or a [`VirtualClock`] that tests advance by hand, so
//! that everything that depends on time (the rate-limited link, the stack's
//! timers) replays exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of monotonic time in nanoseconds since an arbitrary epoch.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the clock's epoch; never decreases.
    fn now_ns(&self) -> u64;
}

/// The OS monotonic clock, counted from when the value was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    epoch: Instant,
}

impl MonotonicClock {
    /// A clock whose epoch is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock { epoch: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    ns: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A virtual clock at time zero.
    pub fn new() -> VirtualClock {
        VirtualClock::default()
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.ns.fetch_add(d.as_nanos() as u64, Ordering::AcqRel);
    }

    /// Moves time forward to `ns`, if it is in the future.
    pub fn advance_to(&self, ns: u64) {
        self.ns.fetch_max(ns, Ordering::AcqRel);
    }
}

impl Clock for VirtualClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::Acquire)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward_and_is_shared() {
        let c = VirtualClock::new();
        let d = c.clone();
        c.advance(Duration::from_micros(3));
        assert_eq!(d.now_ns(), 3000);
        d.advance_to(1000);
        assert_eq!(c.now_ns(), 3000);
        d.advance_to(5000);
        assert_eq!(c.now_ns(), 5000);
    }

    #[test]
    fn monotonic_clock_does_not_go_back() {
        let c = MonotonicClock::new();
        let a = c.now_ns();
        assert!(c.now_ns() >= a);
    }
}
