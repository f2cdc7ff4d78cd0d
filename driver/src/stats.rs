//! Statistics: the device's clear-on-read counters accumulated into 64-bit
//! totals, and the software counters each queue keeps on its data path.
//!
//! The 82599's statistics registers (datasheet 8.2.3.23) clear when read, so
//! every read must be added to a running total; reading one twice without
//! adding would lose packets. `StatsAccumulator` is the only code that
//! reads them after init. It lives behind a mutex in the
//! [`DeviceHandle`](crate::device::DeviceHandle): statistics are off the data
//! path, so the lock costs nothing where it matters.

use crate::io::RegisterIo;
use crate::regs;

/// Number of per-queue statistics register sets (QPRC, QPTC, QBRC, QBTC,
/// QPRDC): 16. The driver maps queue `i` to set `i` for the first 16 queues
/// through RQSMR/TQSM during init (their reset value maps every queue to
/// set 0).
pub const NUM_QUEUE_STAT_SETS: usize = 16;

/// Software counters of one RX or TX queue, kept by the core that owns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets handed to the caller (RX) or to the device (TX).
    pub packets: u64,
    /// Bytes of those packets (without the CRC).
    pub bytes: u64,
    /// Tail register writes: one per non-empty batch.
    pub batches: u64,
    /// RX batches cut short because the mempool had no buffer to refill a
    /// descriptor with. The frame stays in the ring and is delivered later.
    pub mempool_empty: u64,
    /// TX batches that could not take every buffer because the ring was full;
    /// the rest stayed with the caller.
    pub ring_full: u64,
    /// RX: frames dropped because the descriptor reported an error, a frame
    /// spanning several descriptors, or a length that does not fit the
    /// buffer. TX: buffers refused (and dropped) because their length is
    /// outside what one descriptor may carry.
    pub errors: u64,
    /// TX: buffers returned to their pool after the device sent them.
    pub cleaned: u64,
    /// TX: context descriptors written (one per change of the checksum
    /// offload parameters the queue's two context slots hold).
    pub contexts: u64,
}

/// The device's per-queue counters (datasheet 8.2.3.23.71–75), for the
/// first [`NUM_QUEUE_STAT_SETS`] queues, accumulated across reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueHwStats {
    /// QPRC: packets received into the queue.
    pub rx_packets: u64,
    /// QBRC: bytes received into the queue.
    pub rx_bytes: u64,
    /// QPRDC: packets dropped because the queue had no free descriptor.
    pub rx_dropped: u64,
    /// QPTC: packets transmitted from the queue.
    pub tx_packets: u64,
    /// QBTC: bytes transmitted from the queue.
    pub tx_bytes: u64,
}

/// Device-wide counters (datasheet 8.2.3.23), accumulated across reads since
/// init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// GPRC: good packets received.
    pub rx_packets: u64,
    /// GORC: good octets received (as the device counts them; the 82599
    /// includes the 4-byte CRC).
    pub rx_bytes: u64,
    /// GPTC: good packets transmitted.
    pub tx_packets: u64,
    /// GOTC: good octets transmitted (as the device counts them).
    pub tx_bytes: u64,
    /// MPC(0): packets missed because packet buffer 0 or the ring was full.
    pub rx_missed: u64,
    /// RLEC: frames received with a length error.
    pub rx_length_errors: u64,
    /// Per-queue counters, one entry per configured queue up to
    /// [`NUM_QUEUE_STAT_SETS`].
    pub queues: Vec<QueueHwStats>,
}

/// Running totals of the clear-on-read registers.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsAccumulator {
    totals: DeviceStats,
}

/// Reads a 36-bit octet counter: the low register first, then the high one,
/// whose read clears the pair (see [`regs::GORCH`]); reading them the other
/// way round would split a carry between two reads.
fn read_split<R: RegisterIo>(regs: &R, low: u32, high: u32) -> u64 {
    let lo = u64::from(regs.read32(low));
    let hi = u64::from(regs.read32(high) & 0xF);
    (hi << 32) | lo
}

impl StatsAccumulator {
    /// Totals for a device with `num_queues` queues, all zero.
    pub(crate) fn new(num_queues: u16) -> StatsAccumulator {
        let n = usize::from(num_queues).min(NUM_QUEUE_STAT_SETS);
        StatsAccumulator { totals: DeviceStats { queues: vec![QueueHwStats::default(); n], ..DeviceStats::default() } }
    }

    /// Reads every counter once and discards the values: the baseline after
    /// reset (datasheet 4.6.5: the counters are cleared by reading them).
    pub(crate) fn clear<R: RegisterIo>(regs: &R, num_queues: u16) {
        let mut scratch = StatsAccumulator::new(num_queues);
        scratch.update(regs);
    }

    /// Adds the current register values (which the reads clear) to the
    /// totals.
    pub(crate) fn update<R: RegisterIo>(&mut self, regs: &R) {
        let t = &mut self.totals;
        t.rx_packets += u64::from(regs.read32(regs::GPRC));
        t.tx_packets += u64::from(regs.read32(regs::GPTC));
        t.rx_bytes += read_split(regs, regs::GORCL, regs::GORCH);
        t.tx_bytes += read_split(regs, regs::GOTCL, regs::GOTCH);
        t.rx_missed += u64::from(regs.read32(regs::MPC0));
        t.rx_length_errors += u64::from(regs.read32(regs::RLEC));
        for q in 0..t.queues.len() {
            Self::update_queue_into(regs, q, &mut t.queues[q]);
        }
    }

    /// Adds queue `q`'s registers to its totals. `q` must be below the
    /// number of per-queue sets this accumulator tracks.
    pub(crate) fn update_queue<R: RegisterIo>(&mut self, regs: &R, q: usize) -> Option<QueueHwStats> {
        let slot = self.totals.queues.get_mut(q)?;
        Self::update_queue_into(regs, q, slot);
        Some(*slot)
    }

    fn update_queue_into<R: RegisterIo>(regs: &R, q: usize, s: &mut QueueHwStats) {
        let i = q as u32;
        s.rx_packets += u64::from(regs.read32(regs::QPRC(i)));
        s.rx_bytes += read_split(regs, regs::QBRC_L(i), regs::QBRC_H(i));
        s.rx_dropped += u64::from(regs.read32(regs::QPRDC(i)));
        s.tx_packets += u64::from(regs.read32(regs::QPTC(i)));
        s.tx_bytes += read_split(regs, regs::QBTC_L(i), regs::QBTC_H(i));
    }

    /// The totals so far.
    pub(crate) fn totals(&self) -> &DeviceStats {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{HeapBar, Mmio};
    use std::sync::Arc;

    #[test]
    fn accumulates_across_reads_and_joins_split_octet_counters() {
        let io = Mmio::new(Arc::new(HeapBar::new(regs::BAR0_LEN)));
        let mut acc = StatsAccumulator::new(2);
        io.write32(regs::GPRC, 3);
        io.write32(regs::GORCL, 0xFFFF_FFFF);
        io.write32(regs::GORCH, 0x1);
        io.write32(regs::QPRC(1), 7);
        acc.update(&io);
        // A plain memory BAR does not clear on read; clear by hand to act
        // like the device.
        for r in [regs::GPRC, regs::GORCL, regs::GORCH, regs::QPRC(1)] {
            io.write32(r, 0);
        }
        io.write32(regs::GPRC, 2);
        io.write32(regs::GORCL, 1);
        acc.update(&io);
        assert_eq!(acc.totals().rx_packets, 5);
        assert_eq!(acc.totals().rx_bytes, 0x1_FFFF_FFFF + 1);
        assert_eq!(acc.totals().queues[1].rx_packets, 7);
        assert_eq!(acc.totals().queues.len(), 2);
        assert!(acc.update_queue(&io, 2).is_none());
    }

    #[test]
    fn per_queue_sets_are_capped_at_sixteen() {
        assert_eq!(StatsAccumulator::new(64).totals().queues.len(), NUM_QUEUE_STAT_SETS);
    }
}
