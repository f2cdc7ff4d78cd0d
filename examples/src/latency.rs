//! Latency recording: an HDR histogram of nanoseconds (three significant
//! digits, 1 ns to 100 s), one per core, merged at the end for the summary.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency recorded exactly; longer ones count as this.
const MAX_NANOS: u64 = 100_000_000_000;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Option<Histogram<u64>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts; if it ever did
        // not, recording would be skipped rather than the program stopped.
        Latency { hist: Histogram::new_with_bounds(1, MAX_NANOS, 3).ok() }
    }

    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        if let Some(h) = &mut self.hist {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(MAX_NANOS).clamp(1, MAX_NANOS);
            h.saturating_record(ns);
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        if let (Some(a), Some(b)) = (&mut self.hist, &other.hist) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = a.add(b);
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len())
    }

    /// The latency below which `quantile` (0..=1) of the samples fall.
    pub fn quantile(&self, quantile: f64) -> Duration {
        self.hist.as_ref().map_or(Duration::ZERO, |h| Duration::from_nanos(h.value_at_quantile(quantile)))
    }

    /// p50, p99, p99.9, mean and max.
    pub fn summary(&self) -> LatencySummary {
        let mean = self.hist.as_ref().map_or(0.0, |h| h.mean());
        LatencySummary {
            samples: self.count(),
            p50: self.quantile(0.50),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            mean: Duration::from_nanos(mean as u64),
            max: self.hist.as_ref().map_or(Duration::ZERO, |h| Duration::from_nanos(h.max())),
        }
    }
}

/// The figures a summary prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Mean.
    pub mean: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// A duration in the unit that suits it (ns, µs, ms, s).
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos() as f64;
        if ns < 1e3 {
            write!(f, "{ns:.0} ns")
        } else if ns < 1e6 {
            write!(f, "{:.1} µs", ns / 1e3)
        } else if ns < 1e9 {
            write!(f, "{:.2} ms", ns / 1e6)
        } else {
            write!(f, "{:.2} s", ns / 1e9)
        }
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.samples == 0 {
            return write!(f, "latency: no samples");
        }
        write!(
            f,
            "latency over {} samples: p50 {}  p99 {}  p99.9 {}  mean {}  max {}",
            self.samples,
            Human(self.p50),
            Human(self.p99),
            Human(self.p999),
            Human(self.mean),
            Human(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.samples, 1000);
        let close = |d: Duration, us: u64| (d.as_nanos() as f64 - us as f64 * 1e3).abs() <= us as f64 * 1e3 * 0.002;
        assert!(close(s.p50, 500), "{s:?}");
        assert!(close(s.p99, 990), "{s:?}");
        assert!(close(s.p999, 999), "{s:?}");
        assert!(close(s.max, 1000), "{s:?}");
    }

    #[test]
    fn merge_adds_samples_and_extremes_clamp() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record(Duration::ZERO);
        b.record(Duration::from_secs(1000));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!(a.summary().max >= Duration::from_secs(99));
    }

    #[test]
    fn empty_summary_says_so() {
        assert_eq!(Latency::new().summary().to_string(), "latency: no samples");
        assert_eq!(Human(Duration::from_micros(1500)).to_string(), "1.50 ms");
    }
}
