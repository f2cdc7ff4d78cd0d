//! Statistics registers (82599 datasheet 8.2.3.23): all clear on read, and
//! sticky at their maximum rather than wrapping.
//!
//! The model counts in 64 bits, with a plain add per frame, and applies the
//! register's width when software reads it: a count above the maximum
//! reads as the maximum, which is what a counter that stuck there would
//! show. No 64-bit count can wrap in the life of a model (2^64 frames or
//! octets), so the two are the same to software; the model is just spared
//! a saturating add per counter per frame.
//!
//! Octet counters are 36 bits wide, split into a low register (32 bits) and
//! a high one (bits 35:32). The datasheet's rule for such pairs is to read
//! the low register first and then the high one, the pair clearing on that
//! read sequence. The model implements it without losing octets: reading
//! the low register moves the whole count into a latch (the counter starts
//! again from zero) and returns its low 32 bits; reading the high register
//! returns the latched high bits and empties the latch. Reading only the
//! high register returns 0.
//!
//! GORC/GOTC count octets from the destination address through the CRC
//! (8.2.3.23.27/33), so every frame adds its length plus 4, whether or not
//! the CRC is stripped or was inserted by the MAC. The per-queue byte
//! counters QBRC/QBTC count the bytes moved to or from host memory (no
//! CRC), which is what a driver comparing them with its own byte counts
//! expects.

/// Number of per-queue statistics register sets (QPRC(0..16) …); the reset
/// value of RQSMR/TQSM maps queue `n` to set `n`.
pub(crate) const QUEUE_STATS: usize = 16;
/// Number of packet buffers (MPC(0..8), RNBC(0..8)).
pub(crate) const PACKET_BUFFERS: usize = 8;

const OCTETS_MAX: u64 = (1 << 36) - 1;

/// Offsets of statistics registers that `regs` does not name.
pub(crate) mod off {
    /// Broadcast Packets Received Count (8.2.3.23.28).
    pub(crate) const BPRC: u32 = 0x04078;
    /// Multicast Packets Received Count (8.2.3.23.29).
    pub(crate) const MPRC: u32 = 0x0407C;
    /// Receive Undersize Count (8.2.3.23.12).
    pub(crate) const RUC: u32 = 0x040A4;
    /// Receive Oversize Count (8.2.3.23.14).
    pub(crate) const ROC: u32 = 0x040A8;
    /// Multicast Packets Transmitted Count (8.2.3.23.47).
    pub(crate) const MPTC: u32 = 0x040F0;
    /// Broadcast Packets Transmitted Count (8.2.3.23.48).
    pub(crate) const BPTC: u32 = 0x040F4;
    /// Missed Packets Count, packet buffer `i` (8.2.3.23.4).
    pub(crate) const fn mpc(i: u32) -> u32 {
        0x03FA0 + 4 * i
    }
    /// Receive No Buffers Count, packet buffer `i` (8.2.3.23.7).
    pub(crate) const fn rnbc(i: u32) -> u32 {
        0x03FC0 + 4 * i
    }
}

/// A 36-bit octet counter with the latch described in the module doc.
#[derive(Debug, Clone, Copy, Default)]
struct Octets {
    /// Since the last read of the low register, uncapped.
    count: u64,
    latched_high: u32,
}

impl Octets {
    #[inline]
    fn add(&mut self, n: usize) {
        self.count += n as u64;
    }
    fn read_low(&mut self) -> u32 {
        let v = std::mem::take(&mut self.count).min(OCTETS_MAX);
        self.latched_high = (v >> 32) as u32;
        v as u32
    }
    fn read_high(&mut self) -> u32 {
        std::mem::take(&mut self.latched_high)
    }
}

/// Counts one event in a 32-bit counter (capped when read, see the module
/// documentation).
#[inline]
fn bump(c: &mut u64) {
    *c += 1;
}

/// Reads and clears a 32-bit counter: what a counter sticky at its maximum
/// would hold.
fn take(c: &mut u64) -> u32 {
    std::mem::take(c).min(u64::from(u32::MAX)) as u32
}

/// The statistics the model keeps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    gprc: u64,
    bprc: u64,
    mprc: u64,
    gptc: u64,
    bptc: u64,
    mptc: u64,
    rlec: u64,
    ruc: u64,
    roc: u64,
    mpc: [u64; PACKET_BUFFERS],
    rnbc: [u64; PACKET_BUFFERS],
    qprc: [u64; QUEUE_STATS],
    qptc: [u64; QUEUE_STATS],
    qprdc: [u64; QUEUE_STATS],
    gorc: Octets,
    gotc: Octets,
    qbrc: [Octets; QUEUE_STATS],
    qbtc: [Octets; QUEUE_STATS],
}

/// What kind of destination a frame had, for BPRC/MPRC and BPTC/MPTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cast {
    Unicast,
    Multicast,
    Broadcast,
}

impl Cast {
    /// Classifies a frame by its destination MAC (the first 6 bytes).
    #[inline(always)]
    pub(crate) fn of(frame: &[u8]) -> Cast {
        match frame.get(..6) {
            Some([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) => Cast::Broadcast,
            Some(d) if d[0] & 1 != 0 => Cast::Multicast,
            _ => Cast::Unicast,
        }
    }
}

impl Counters {
    /// A frame written to host memory on `queue`: `len` bytes on the wire
    /// without CRC, `host_bytes` written to buffers.
    #[inline(always)]
    pub(crate) fn received(&mut self, queue: u16, cast: Cast, len: usize, host_bytes: usize) {
        bump(&mut self.gprc);
        self.gorc.add(len + 4);
        match cast {
            Cast::Broadcast => bump(&mut self.bprc),
            Cast::Multicast => bump(&mut self.mprc),
            Cast::Unicast => {}
        }
        if let Some(q) = Self::stat_index(queue) {
            bump(&mut self.qprc[q]);
            self.qbrc[q].add(host_bytes);
        }
    }

    /// A frame handed to the wire from `queue`: `len` bytes without CRC
    /// (after padding), `host_bytes` fetched from host memory.
    #[inline(always)]
    pub(crate) fn transmitted(&mut self, queue: u16, cast: Cast, len: usize, host_bytes: usize) {
        bump(&mut self.gptc);
        self.gotc.add(len + 4);
        match cast {
            Cast::Broadcast => bump(&mut self.bptc),
            Cast::Multicast => bump(&mut self.mptc),
            Cast::Unicast => {}
        }
        if let Some(q) = Self::stat_index(queue) {
            bump(&mut self.qptc[q]);
            self.qbtc[q].add(host_bytes);
        }
    }

    /// A frame shorter than an Ethernet header.
    pub(crate) fn undersize(&mut self) {
        bump(&mut self.ruc);
        bump(&mut self.rlec);
    }

    /// A frame longer than the maximum frame size.
    pub(crate) fn oversize(&mut self) {
        bump(&mut self.roc);
        bump(&mut self.rlec);
    }

    /// A frame that found no descriptor on `queue` (RNBC of packet buffer 0).
    pub(crate) fn no_buffer(&mut self) {
        bump(&mut self.rnbc[0]);
    }

    /// A frame dropped on `queue` for lack of descriptors with
    /// SRRCTL.DROP_EN, or because the queue is disabled.
    pub(crate) fn queue_drop(&mut self, queue: u16) {
        if let Some(q) = Self::stat_index(queue) {
            bump(&mut self.qprdc[q]);
        }
    }

    /// A frame missed because receive packet buffer 0 was full.
    pub(crate) fn missed(&mut self) {
        bump(&mut self.mpc[0]);
    }

    #[inline]
    fn stat_index(queue: u16) -> Option<usize> {
        let q = usize::from(queue);
        (q < QUEUE_STATS).then_some(q)
    }

    /// If `offset` is a statistics register, reads (and so clears) it.
    pub(crate) fn read(&mut self, offset: u32) -> Option<u32> {
        use crate::regs;
        let v = match offset {
            regs::GPRC => take(&mut self.gprc),
            off::BPRC => take(&mut self.bprc),
            off::MPRC => take(&mut self.mprc),
            regs::GPTC => take(&mut self.gptc),
            off::BPTC => take(&mut self.bptc),
            off::MPTC => take(&mut self.mptc),
            regs::RLEC => take(&mut self.rlec),
            off::RUC => take(&mut self.ruc),
            off::ROC => take(&mut self.roc),
            regs::GORCL => self.gorc.read_low(),
            regs::GORCH => self.gorc.read_high(),
            regs::GOTCL => self.gotc.read_low(),
            regs::GOTCH => self.gotc.read_high(),
            o if (off::mpc(0)..off::mpc(8)).contains(&o) && o % 4 == 0 => {
                take(&mut self.mpc[((o - off::mpc(0)) / 4) as usize])
            }
            o if (off::rnbc(0)..off::rnbc(8)).contains(&o) && o % 4 == 0 => {
                take(&mut self.rnbc[((o - off::rnbc(0)) / 4) as usize])
            }
            o => return self.read_queue(o),
        };
        Some(v)
    }

    fn read_queue(&mut self, offset: u32) -> Option<u32> {
        use crate::regs::{QBRC_H, QBRC_L, QBTC_H, QBTC_L, QPRC, QPRDC, QPTC};
        // QPRC/QBRC/QPRDC and QPTC sit in 0x40-byte strides (inside the
        // queue register blocks), QBTC is packed at 0x08700.
        if (QPRC(0)..QPRC(16)).contains(&offset) {
            let (q, r) = (((offset - QPRC(0)) / 0x40) as usize, (offset - QPRC(0)) % 0x40);
            return match r {
                0 => Some(take(&mut self.qprc[q])),
                4 => Some(self.qbrc[q].read_low()),
                8 => Some(self.qbrc[q].read_high()),
                _ => None,
            };
        }
        if (QPRDC(0)..QPRDC(16)).contains(&offset) && (offset - QPRDC(0)) % 0x40 == 0 {
            return Some(take(&mut self.qprdc[((offset - QPRDC(0)) / 0x40) as usize]));
        }
        if (QPTC(0)..QPTC(16)).contains(&offset) && (offset - QPTC(0)) % 0x40 == 0 {
            return Some(take(&mut self.qptc[((offset - QPTC(0)) / 0x40) as usize]));
        }
        if (QBTC_L(0)..QBTC_L(16)).contains(&offset) {
            let q = ((offset - QBTC_L(0)) / 8) as usize;
            return match offset {
                o if o == QBTC_L(q as u32) => Some(self.qbtc[q].read_low()),
                o if o == QBTC_H(q as u32) => Some(self.qbtc[q].read_high()),
                _ => None,
            };
        }
        debug_assert_eq!(QBRC_L(0), QPRC(0) + 4);
        debug_assert_eq!(QBRC_H(0), QPRC(0) + 8);
        None
    }

    /// Whether `offset` is a statistics register (read-only to software).
    pub(crate) fn is_counter(offset: u32) -> bool {
        Counters::default().read(offset).is_some()
    }
}
