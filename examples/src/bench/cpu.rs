//! How much of the server cores the NIC model took: the model's own count
//! of the time spent inside it ([`Model82599::busy_ns`]) over the time the
//! server threads were on a CPU or waiting for one, both over the same
//! measuring window.
//!
//! The model counts wall time at entry and exit of a random eighth of its
//! calls and scales it up (a thread preempted inside counts as busy), so the denominator is the threads'
//! run time plus run-queue wait from `/proc/self/task/TID/schedstat`
//! (nanoseconds, the scheduler's own account), not CPU time alone: on a
//! shared machine both sides then include the same preemptions, and a
//! thread napping when idle counts neither. A thread blocked on a lock
//! inside the model would count in the model's time but not in its own; on
//! the bench's pinned, busy-polling server core the scheduled time and the
//! wall time of the window agree to within a percent. The kernel adds a
//! running thread's time at each tick, so a busy-polling thread's count
//! lags by at most one tick (a few ms in a window of seconds).
//!
//! On hardware this share is done by the 82599's silicon; the rest of the
//! core is the stack, the driver and the application.
//!
//! The share also depends on where the machine puts the two cores: every
//! frame on the in-memory link is written on one core and read on the
//! other, and that cache-line transfer is the model's time. On a VM the
//! host may move a vCPU to another core complex between runs, which here
//! multiplied the transfer's cost by five and nearly doubled the share, so
//! the bench measures the transfer ([`cache_line_round_trip_ns`]) before
//! and after each ixtcp run and prints it beside the share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ixtcp_driver::model::Model82599;

/// The calling thread's kernel thread id, from `/proc/thread-self`
/// (a link to `PID/task/TID`).
pub fn thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Nanoseconds thread `tid` of this process spent running or runnable
/// (`schedstat`'s first two fields); `None` where the kernel has no
/// schedstat (CONFIG_SCHED_INFO off) or the thread is gone.
pub fn scheduled_ns(tid: u64) -> Option<u64> {
    parse_schedstat(&std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?)
}

/// `RUN_NS WAIT_NS TIMESLICES` → run + wait.
fn parse_schedstat(s: &str) -> Option<u64> {
    let mut f = s.split_ascii_whitespace().map(str::parse::<u64>);
    let run = f.next()?.ok()?;
    let wait = f.next()?.ok()?;
    run.checked_add(wait)
}

/// Samples of the server side for the NIC share.
#[derive(Debug)]
pub struct ServerTime {
    model: Option<Model82599>,
    /// Thread id of each server core's thread (0 until it has started).
    tids: Vec<AtomicU64>,
}

/// One reading of [`ServerTime`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Inside the model so far.
    pub model_ns: u64,
    /// Scheduled time of the server threads so far; `None` if one could not
    /// be read.
    pub threads_ns: Option<u64>,
}

impl ServerTime {
    /// Starts the model's count (none: no share, e.g. a real NIC) for
    /// `cores` server threads.
    pub fn new(model: Option<Model82599>, cores: usize) -> ServerTime {
        if let Some(m) = &model {
            m.count_busy(true);
        }
        ServerTime { model, tids: (0..cores).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Called on server core `core`'s own thread.
    pub fn register_thread(&self, core: usize) {
        if let (Some(slot), Some(tid)) = (self.tids.get(core), thread_id()) {
            slot.store(tid, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn sample(&self) -> Sample {
        let model_ns = self.model.as_ref().map_or(0, Model82599::busy_ns);
        let threads_ns = self.tids.iter().try_fold(0u64, |sum, t| match t.load(Ordering::Relaxed) {
            0 => None,
            tid => Some(sum + scheduled_ns(tid)?),
        });
        Sample { model_ns, threads_ns }
    }

    /// The model's share of the server threads' time between two samples
    /// (`None` without a model, thread times, or time passed).
    pub fn share(&self, start: Sample, end: Sample) -> Option<f64> {
        self.model.as_ref()?;
        share(start, end)
    }
}

fn share(start: Sample, end: Sample) -> Option<f64> {
    let threads = end.threads_ns?.checked_sub(start.threads_ns?)?;
    let model = end.model_ns.checked_sub(start.model_ns)?;
    (threads > 0).then(|| (model as f64 / threads as f64).min(1.0))
}

impl Drop for ServerTime {
    fn drop(&mut self) {
        if let Some(m) = &self.model {
            m.count_busy(false);
        }
    }
}

/// Nanoseconds a cache line takes to go from the core of one thread to the
/// core of another and back: two threads, on cores `a` and `b` when `pin`
/// (else wherever the scheduler puts them), hand a counter back and forth
/// `trips` times, each waiting for the other's store. `None` when a thread
/// could not be pinned or `trips` is 0.
///
/// A waiting thread spins, and yields after a while so that unpinned
/// threads sharing one CPU still make progress (the figure is then
/// scheduling, not a cache line).
pub fn cache_line_round_trip_ns(a: usize, b: usize, pin: bool, trips: u32) -> Option<f64> {
    /// Its own cache line, so the counter shares it with nothing.
    #[repr(align(128))]
    struct Line(AtomicU64);
    /// Stored by a side that gives up, so the other stops waiting.
    const GAVE_UP: u64 = u64::MAX;
    impl Line {
        /// Waits until the counter is `value`; false if the other side gave up.
        fn wait_for(&self, value: u64) -> bool {
            let mut spins = 0u32;
            loop {
                match self.0.load(Ordering::Acquire) {
                    v if v == value => return true,
                    GAVE_UP => return false,
                    _ if spins < 4096 => {
                        spins += 1;
                        std::hint::spin_loop();
                    }
                    _ => std::thread::yield_now(),
                }
            }
        }
    }
    if trips == 0 {
        return None;
    }
    let pinned = |core| !pin || core_affinity::set_for_current(core_affinity::CoreId { id: core });
    let line = Line(AtomicU64::new(0));
    let trips = u64::from(trips);
    std::thread::scope(|s| {
        let far = s.spawn(|| {
            if !pinned(b) {
                line.0.store(GAVE_UP, Ordering::Release);
                return false;
            }
            (0..trips).all(|i| {
                let ok = line.wait_for(2 * i + 1);
                if ok {
                    line.0.store(2 * i + 2, Ordering::Release);
                }
                ok
            })
        });
        let near = s.spawn(|| {
            if !pinned(a) {
                line.0.store(GAVE_UP, Ordering::Release);
                return None;
            }
            let start = Instant::now();
            for i in 0..trips {
                // From the value the far side left, or not at all when it
                // gave up meanwhile.
                if line.0.compare_exchange(2 * i, 2 * i + 1, Ordering::AcqRel, Ordering::Acquire).is_err()
                    || !line.wait_for(2 * i + 2)
                {
                    return None;
                }
            }
            Some(start.elapsed().as_nanos() as f64 / trips as f64)
        });
        let ns = near.join().ok().flatten();
        let far_ok = far.join().unwrap_or(false);
        ns.filter(|_| far_ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_line_round_trip_is_timed_between_two_threads() {
        // Unpinned (tests share the cores), and few trips: the figure is
        // whatever the scheduler makes of it, so only its sanity is checked.
        let ns = cache_line_round_trip_ns(0, 0, false, 200).expect("two unpinned threads always run");
        assert!(ns.is_finite() && ns > 0.0, "{ns}");
        assert_eq!(cache_line_round_trip_ns(0, 0, false, 0), None, "no trip, no figure");
        // Cores this machine does not have: neither side can be pinned, and
        // neither waits for the other.
        assert_eq!(cache_line_round_trip_ns(1000, 1001, true, 10), None);
    }

    #[test]
    fn schedstat_fields_and_bad_text() {
        assert_eq!(parse_schedstat("437663046 136733496 139\n"), Some(574_396_542));
        assert_eq!(parse_schedstat("12 x 3"), None);
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn share_of_a_window() {
        let s = |model_ns, threads_ns| Sample { model_ns, threads_ns };
        assert_eq!(share(s(100, Some(1_000)), s(400, Some(2_000))), Some(0.3));
        assert_eq!(share(s(0, Some(5)), s(0, Some(5))), None, "no time passed");
        assert_eq!(share(s(0, None), s(10, Some(5))), None, "a thread time was missing");
        // Rounding between two clocks never shows more than the whole core.
        assert_eq!(share(s(0, Some(0)), s(20, Some(10))), Some(1.0));
    }

    #[test]
    fn this_threads_time_is_readable_and_grows() {
        let Some(tid) = thread_id() else {
            eprintln!("SKIPPED this_threads_time_is_readable_and_grows: no /proc/thread-self");
            return;
        };
        let Some(before) = scheduled_ns(tid) else {
            eprintln!("SKIPPED this_threads_time_is_readable_and_grows: no schedstat in this kernel");
            return;
        };
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        // The kernel adds a running thread's time at ticks and when it
        // leaves the CPU: a sleep makes the busy loop show.
        std::thread::sleep(std::time::Duration::from_millis(1));
        let after = scheduled_ns(tid).expect("schedstat readable twice");
        assert!(after > before, "{before} -> {after} (x {x})");
        assert_eq!(scheduled_ns(u64::MAX), None, "no such thread");
    }
}
