//! What the programs print: per-core rates once a second (`--stats`), and
//! a summary at exit with latency percentiles and failures by kind.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::reactor::Gauge;
use crate::session::Tally;

/// Which figure a report leads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Transactions (echo round trips, HTTP responses) per second.
    Transactions,
    /// Received bits per second.
    Bits,
}

/// "12.3k", "4.56M": a rate with an SI prefix.
pub fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Prints every core's rate once a second until dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts printing `label` lines for `gauges` (one per core).
    pub fn start(label: &str, gauges: Vec<Arc<Gauge>>, unit: Unit) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let label = label.to_string();
        let thread = std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || {
                let start = Instant::now();
                let mut last = snapshot(&gauges, unit);
                let mut at = start;
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if at.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let now = Instant::now();
                    let secs = now.duration_since(at).as_secs_f64();
                    let cur = snapshot(&gauges, unit);
                    let mut line = format!("[{:4.0}s] {label}:", now.duration_since(start).as_secs_f64());
                    let mut total = 0.0;
                    for (i, (a, b)) in last.iter().zip(&cur).enumerate() {
                        let rate = (b.0 - a.0) as f64 / secs;
                        total += rate;
                        let _ = write!(line, " core {i} {}", fmt_rate(rate, unit));
                    }
                    let open: u64 = cur.iter().map(|c| c.1).sum();
                    let failures: u64 = cur.iter().map(|c| c.2).sum();
                    let _ = write!(line, " | total {} | open {open} | failures {failures}", fmt_rate(total, unit));
                    println!("{line}");
                    last = cur;
                    at = now;
                }
            })
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn snapshot(gauges: &[Arc<Gauge>], unit: Unit) -> Vec<(u64, u64, u64)> {
    gauges
        .iter()
        .map(|g| {
            let main = match unit {
                Unit::Transactions => g.transactions.load(Ordering::Relaxed),
                Unit::Bits => g.bytes_in.load(Ordering::Relaxed) * 8,
            };
            (main, g.open.load(Ordering::Relaxed), g.failures.load(Ordering::Relaxed))
        })
        .collect()
}

fn fmt_rate(rate: f64, unit: Unit) -> String {
    match unit {
        Unit::Transactions => format!("{}/s", si(rate)),
        Unit::Bits => format!("{}bit/s", si(rate)),
    }
}

/// The summary printed at exit: per-core and total rates over `elapsed`,
/// latency percentiles, failures by kind and the first few described.
pub fn summary(label: &str, tallies: &[Tally], elapsed: Duration, unit: Unit) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut total = Tally::default();
    let mut out = format!("{label}: {:.2} s\n", secs);
    for (i, t) in tallies.iter().enumerate() {
        let _ = writeln!(
            out,
            "  core {i}: {} transactions ({}/s), {} connections, {} in, {} out, failures: {}",
            t.transactions,
            si(t.transactions as f64 / secs),
            t.connections,
            bytes(t.bytes_in),
            bytes(t.bytes_out),
            t.failure_line()
        );
        total.merge(t);
    }
    let lead = match unit {
        Unit::Transactions => format!("{}/s", si(total.transactions as f64 / secs)),
        Unit::Bits => format!("{}bit/s received", si(total.bytes_in as f64 * 8.0 / secs)),
    };
    let _ = writeln!(
        out,
        "  total: {} transactions, {lead}, {} connections, failures: {}",
        total.transactions,
        total.connections,
        total.failure_line()
    );
    if total.latency.count() > 0 {
        let _ = writeln!(out, "  {}", total.latency.summary());
    }
    for f in &total.first_failures {
        let _ = writeln!(out, "  first failures: {f}");
    }
    out
}

fn bytes(n: u64) -> String {
    format!("{}B", si(n as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Failure;

    #[test]
    fn summary_lists_cores_totals_latency_and_failures() {
        let mut a = Tally::default();
        a.transactions = 1000;
        a.connections = 2;
        a.latency.record(Duration::from_micros(10));
        let mut b = Tally::default();
        b.transactions = 3000;
        b.fail(Failure::Reset, || "by peer".into());
        let s = summary("echo_client", &[a, b], Duration::from_secs(2), Unit::Transactions);
        assert!(s.contains("core 0: 1000 transactions (500/s)"), "{s}");
        assert!(s.contains("core 1: 3000 transactions (1.5k/s)"), "{s}");
        assert!(s.contains("total: 4000 transactions, 2.0k/s"), "{s}");
        assert!(s.contains("p50 10.0 µs"), "{s}");
        assert!(s.contains("failures: reset 1"), "{s}");
        assert!(s.contains("reset: by peer"), "{s}");
        assert_eq!(si(1_234_567.0), "1.23M");
    }
}
