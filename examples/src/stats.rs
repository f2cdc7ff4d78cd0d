//! Rates from counter snapshots, printed the way ixy's pktgen prints them.

use std::time::Duration;

/// Packets and bytes at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets.
    pub packets: u64,
    /// Bytes, as the device counts them.
    pub bytes: u64,
}

/// A rate between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Million packets per second.
    pub mpps: f64,
    /// Megabits per second of frame data (what the device counts; add 20
    /// bytes per frame for preamble and gap to get line occupancy).
    pub mbit: f64,
}

impl Rate {
    /// The rate from `before` to `after` over `elapsed`.
    pub fn between(before: Counts, after: Counts, elapsed: Duration) -> Rate {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let packets = after.packets.saturating_sub(before.packets) as f64;
        let bytes = after.bytes.saturating_sub(before.bytes) as f64;
        Rate { mpps: packets / secs / 1e6, mbit: bytes * 8.0 / secs / 1e6 }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:8.3} Mpps {:9.1} Mbit/s", self.mpps, self.mbit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_one_second() {
        let r = Rate::between(
            Counts { packets: 0, bytes: 0 },
            Counts { packets: 2_000_000, bytes: 128_000_000 },
            Duration::from_secs(1),
        );
        assert!((r.mpps - 2.0).abs() < 1e-9);
        assert!((r.mbit - 1024.0).abs() < 1e-9);
    }
}
