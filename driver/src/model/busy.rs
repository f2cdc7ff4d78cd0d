//! The model's own account of the time it takes: what a real 82599 would
//! do in silicon, so a benchmark can tell the stack's cost from the NIC's.
//!
//! Off by default (one relaxed load per entry then). When on, each public
//! entry into the model ([`Model82599::pump`](super::Model82599::pump) and
//! every register access, a TDT write being a whole transmit batch) reads
//! the monotonic clock once at entry and once at exit, never per frame, and
//! adds the difference. It is wall time: a thread preempted inside the
//! model is counted as busy in it, so compare it with a thread's time on
//! or waiting for a CPU (`/proc/.../schedstat`), not its CPU time alone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds spent inside the model while counting was on.
#[derive(Debug, Default)]
pub(super) struct BusyClock {
    on: AtomicBool,
    ns: AtomicU64,
}

impl BusyClock {
    /// Starts or stops counting; what was counted stays.
    pub(super) fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// The total so far.
    pub(super) fn ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }

    /// Runs `f`, adding how long it took when counting is on.
    #[inline]
    pub(super) fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.on.load(Ordering::Relaxed) {
            return f();
        }
        let start = Instant::now();
        let r = f();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.ns.fetch_add(ns, Ordering::Relaxed);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_only_while_on_and_keeps_the_total() {
        let c = BusyClock::default();
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        assert_eq!(c.ns(), 0, "counted while off");
        c.set(true);
        assert_eq!(c.time(|| 7), 7, "the closure's result is passed on");
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        // A sleep lasts at least as long as asked: a lower bound, not a timing.
        let counted = c.ns();
        assert!(counted >= 2_000_000, "a 2 ms sleep inside counted as {counted} ns");
        c.set(false);
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        assert_eq!(c.ns(), counted, "counting went on after it was switched off");
    }
}
