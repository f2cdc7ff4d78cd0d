//! The model's own account of the time it takes: what a real 82599 would
//! do in silicon, so a benchmark can tell the stack's cost from the NIC's.
//!
//! Off by default (one relaxed load per entry then). When on, the public
//! entries into the model ([`Model82599::pump`](super::Model82599::pump)
//! and every register access, a TDT write being a whole transmit batch) are
//! *sampled*: one entry in [`SAMPLE_EVERY`], picked by a per-thread
//! xorshift generator, reads the monotonic clock at entry and exit, and its
//! time counts `SAMPLE_EVERY` times. Timing every entry cost two clock
//! reads per entry, three entries per iteration of a busy core — a tenth
//! of the iteration on this project's echo benchmark, and itself counted
//! as model time. Random picks, not a fixed stride, keep the estimate
//! unbiased when a core's loop enters the model in a fixed pattern (pump,
//! RDT, TDT, pump, ...). What one clock read costs (the smallest of a few
//! back-to-back pairs, measured when counting starts) is taken off each
//! sample, so the measurement does not count itself.
//!
//! It is wall time: a thread preempted inside the model is counted as busy
//! in it, so compare it with a thread's time on or waiting for a CPU
//! (`/proc/.../schedstat`), not its CPU time alone.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// One entry in this many is timed while counting is on.
pub(super) const SAMPLE_EVERY: u32 = 8;

thread_local! {
    /// The sampling generator of this thread (xorshift64; any non-zero
    /// start works, and a fixed one makes a thread's picks repeatable).
    static PICK: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

/// True for about one call in `every`.
#[inline]
fn picked(every: u32) -> bool {
    PICK.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % u64::from(every) == 0
    })
}

/// Nanoseconds spent inside the model while counting was on.
#[derive(Debug)]
pub(super) struct BusyClock {
    on: AtomicBool,
    /// Estimated total: each sample's time times `every`.
    ns: AtomicU64,
    /// Entries timed.
    samples: AtomicU64,
    /// One entry in `every` is timed ([`SAMPLE_EVERY`]; 1 times them all).
    every: AtomicU32,
    /// The clock's own cost, taken off each sample.
    overhead_ns: AtomicU64,
}

impl Default for BusyClock {
    fn default() -> Self {
        BusyClock::sampling(SAMPLE_EVERY)
    }
}

impl BusyClock {
    /// A clock that times one entry in `every` (at least 1).
    pub(super) fn sampling(every: u32) -> BusyClock {
        BusyClock {
            on: AtomicBool::new(false),
            ns: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            every: AtomicU32::new(every.max(1)),
            overhead_ns: AtomicU64::new(0),
        }
    }

    /// Starts or stops counting; what was counted stays. Starting measures
    /// what reading the clock costs.
    pub(super) fn set(&self, on: bool) {
        if on {
            self.overhead_ns.store(clock_read_cost_ns(), Ordering::Relaxed);
        }
        self.on.store(on, Ordering::Relaxed);
    }

    /// The estimated total so far.
    pub(super) fn ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }

    /// How many entries were timed.
    #[cfg(test)]
    fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Runs `f`, adding an estimate of how long it took when counting is on.
    #[inline]
    pub(super) fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        if !self.on.load(Ordering::Relaxed) {
            return f();
        }
        let every = self.every.load(Ordering::Relaxed);
        if !picked(every) {
            return f();
        }
        let start = Instant::now();
        let r = f();
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let took = took.saturating_sub(self.overhead_ns.load(Ordering::Relaxed));
        self.ns.fetch_add(took.saturating_mul(u64::from(every)), Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
        r
    }
}

/// What timing an empty stretch costs: the smallest of a few back-to-back
/// clock reads (the smallest, because a preempted pair only adds).
fn clock_read_cost_ns() -> u64 {
    (0..32)
        .map(|_| {
            let start = Instant::now();
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_only_while_on_and_keeps_the_total() {
        let c = BusyClock::sampling(1);
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        assert_eq!(c.ns(), 0, "counted while off");
        c.set(true);
        assert_eq!(c.time(|| 7), 7, "the closure's result is passed on");
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        // A sleep lasts at least as long as asked, and the clock's own cost
        // taken off is far below a millisecond: a lower bound, not a timing.
        let counted = c.ns();
        assert!(counted >= 1_000_000, "a 2 ms sleep inside counted as {counted} ns");
        c.set(false);
        c.time(|| std::thread::sleep(Duration::from_millis(2)));
        assert_eq!(c.ns(), counted, "counting went on after it was switched off");
    }

    #[test]
    fn samples_about_one_entry_in_every_and_scales_what_it_times() {
        let c = BusyClock::sampling(SAMPLE_EVERY);
        c.set(true);
        let calls = 8_000u64;
        let mut results = 0u64;
        for i in 0..calls {
            results += c.time(|| i);
        }
        assert_eq!(results, calls * (calls - 1) / 2, "every call ran, timed or not");
        let samples = c.samples();
        let expected = calls / u64::from(SAMPLE_EVERY);
        assert!(
            samples > expected * 3 / 4 && samples < expected * 5 / 4,
            "{samples} of {calls} entries timed, expected about {expected}"
        );
        // A sampled 2 ms sleep counts SAMPLE_EVERY times over.
        let before = c.ns();
        let mut slept = 0;
        while c.samples() == samples {
            c.time(|| std::thread::sleep(Duration::from_millis(2)));
            slept += 1;
            assert!(slept < 1_000, "no entry picked in 1000");
        }
        let added = c.ns() - before;
        assert!(added >= u64::from(SAMPLE_EVERY) * 1_000_000, "a sampled 2 ms sleep added {added} ns");
    }

    #[test]
    fn the_picks_spread_over_a_fixed_pattern_of_entries() {
        // A loop that enters the model in a cycle of three kinds must see
        // each kind sampled, not always the same one.
        let mut per_kind = [0u32; 3];
        for i in 0..3_000usize {
            if picked(SAMPLE_EVERY) {
                per_kind[i % 3] += 1;
            }
        }
        for (kind, n) in per_kind.iter().enumerate() {
            assert!(*n > 60, "kind {kind} sampled {n} times in 1000: {per_kind:?}");
        }
    }
}
