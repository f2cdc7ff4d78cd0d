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

use std::sync::atomic::{AtomicU64, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

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
