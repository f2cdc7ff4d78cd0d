//! Model faults: whatever the datasheet forbids, reported instead of being
//! silently accepted (or crashing the process).
//!
//! A fault that concerns a queue halts that queue, as a real 82599 would stop
//! making progress (or corrupt memory) on a bad ring; it processes nothing
//! more until it is re-enabled or the device is reset, so each fault is
//! recorded once. Faults that concern the register file (a bad access) are
//! recorded every time they happen.

use std::fmt;

/// One violation of the programming model the datasheet describes, caught by
/// the software 82599.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFault {
    /// A register access outside BAR0 (512 KiB) or not 4-byte aligned. A read
    /// returns `0xFFFF_FFFF`, like a PCIe read that nobody claims; a write is
    /// ignored.
    BadRegisterAccess {
        /// Byte offset into BAR0.
        offset: u32,
        /// True for a write.
        write: bool,
    },
    /// DMA to or from device addresses that no registered region covers
    /// (a wild pointer in a descriptor or ring base, or memory already
    /// freed).
    DmaOutOfBounds {
        /// First device address of the access.
        addr: u64,
        /// Length of the access in bytes.
        len: usize,
        /// What was being accessed: "rx descriptor ring", "rx packet
        /// buffer", "tx descriptor ring", "tx buffer".
        what: &'static str,
        /// The queue on whose behalf the access was made.
        queue: u16,
    },
    /// A ring base with any of bits 6:0 set: rings must be 128-byte aligned
    /// (8.2.3.8.1, 8.2.3.9.5).
    MisalignedRing {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// The base address programmed.
        base: u64,
    },
    /// A ring length that is not a multiple of 128 bytes, or larger than the
    /// 20-bit RDLEN/TDLEN field holds (8.2.3.8.3, 8.2.3.9.7).
    BadRingLength {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// The length in bytes programmed.
        len: u32,
    },
    /// A tail (RDT/TDT) written with a value that is not a descriptor index
    /// of the ring (including any tail while the ring has no length).
    TailPastRing {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// The value written.
        tail: u32,
        /// Descriptors in the ring.
        entries: u32,
    },
    /// A head (RDH/TDH) that is not a descriptor index of the ring when the
    /// queue is enabled.
    HeadPastRing {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// The head value.
        head: u32,
        /// Descriptors in the ring.
        entries: u32,
    },
    /// A tail write on an enabled queue that hands back fewer descriptors to
    /// the device than it already owned: software took back descriptors the
    /// hardware may be using (7.1.9, 7.2.3.3).
    TailMovedBackwards {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// Head at the time of the write.
        head: u32,
        /// Tail before the write.
        old: u32,
        /// Tail written.
        new: u32,
    },
    /// RXDCTL/TXDCTL.ENABLE set while the ring's base or length is zero
    /// (4.6.7.1, 4.6.8.1: the ring is programmed before the queue is
    /// enabled).
    EnabledWithoutBase {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
    },
    /// The ring's base, length or head rewritten while the queue is enabled.
    RingReprogrammedWhileEnabled {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// BAR0 offset of the register written.
        offset: u32,
    },
    /// A transmit descriptor that is neither an advanced data (DTYP 3) nor an
    /// advanced context (DTYP 2) descriptor with DEXT set; this includes
    /// legacy descriptors, which the model does not support.
    UnknownDescriptorType {
        /// Queue index.
        queue: u16,
        /// The DTYP field (bits 23:20 of `cmd_type_len`), or `0x100 | DTYP`
        /// when DEXT was clear.
        dtyp: u32,
    },
    /// Another violation of the transmit descriptor rules (7.2.3.2): a
    /// context index other than 0 or 1, a context descriptor between the
    /// data descriptors of one packet, a zero-length buffer, PAYLEN that
    /// disagrees with the bytes fetched, an offload without a context or
    /// with headers outside the packet.
    BadTxDescriptor {
        /// Queue index.
        queue: u16,
        /// Ring index of the offending descriptor.
        index: u32,
        /// Which rule.
        reason: &'static str,
    },
    /// A transmit packet longer than the largest frame the MAC sends
    /// (1518 bytes with FCS, or MAXFRS.MFS with HLREG0.JUMBOEN).
    TxPacketTooLong {
        /// Queue index.
        queue: u16,
        /// Packet length without FCS (so far).
        len: usize,
        /// Largest allowed length without FCS.
        max: usize,
    },
    /// SRRCTL.BSIZEPKT is zero (or larger than 16 KiB) on a queue that must
    /// receive.
    BadBufferSize {
        /// Queue index.
        queue: u16,
        /// The BSIZEPKT field.
        bsizepkt: u32,
    },
    /// RXCTRL.RXEN set while RDRXCTL.CRCSTRIP and HLREG0.RXCRCSTRP disagree
    /// (8.2.3.8.8: the two must be set alike).
    CrcStripMismatch {
        /// HLREG0.RXCRCSTRP.
        hlreg0: bool,
        /// RDRXCTL.CRCSTRIP.
        rdrxctl: bool,
    },
    /// A register access less than 1 ms (on the model's clock) after
    /// CTRL.RST: the device is still resetting and does not answer (reads
    /// return all ones, writes are lost). Wait 1 ms before polling CTRL
    /// (datasheet 4.6.3.2; Linux sleeps 1–1.2 ms).
    AccessDuringReset {
        /// BAR0 offset accessed.
        offset: u32,
        /// True for a write.
        write: bool,
        /// Nanoseconds since the reset was written.
        after_ns: u64,
    },
    /// CTRL.RST written without disabling PCIe mastering first
    /// (CTRL.GIO_DIS set and STATUS.GIO read clear), so DMA may still be in
    /// flight when the device resets (5.2.5.3.2; Linux
    /// ixgbe_disable_pcie_master before every reset).
    ResetWithMasterEnabled,
    /// RXCTRL.RXEN set 0 -> 1 without the 82599 receive-enable erratum
    /// sequence: SECRXCTRL.RX_DIS set and SECRXSTAT.SECRX_RDY polled until
    /// set (Linux ixgbe_enable_rx_dma_82599). RXEN stays clear.
    RxEnableErratum {
        /// SECRXCTRL.RX_DIS was set.
        rx_dis: bool,
        /// SECRXSTAT.SECRX_RDY had been read as set.
        ready_seen: bool,
    },
    /// Something the real 82599 does but the model does not (TSO, VLAN
    /// insertion, header split, SCTP checksums …). Not a driver bug, but the
    /// model cannot continue faithfully, so the queue halts.
    Unsupported {
        /// Queue index.
        queue: u16,
        /// True for a receive queue.
        rx: bool,
        /// What.
        what: &'static str,
    },
    /// LINKS polled after auto-negotiation was restarted with an AUTOC link
    /// mode that does not suit the board's media (4.6.4): the link stays
    /// down. An SFP+ port needs LMS = 10G serial (3), a backplane KX4/KX/KR
    /// (4, 6 or 7), CX4 10G without AN (1); a copper PHY needs MDIO setup,
    /// which the model does not have. Recorded once per AN restart.
    LinkModeMismatch {
        /// The PCI device id the model presents.
        device_id: u16,
        /// Its media, if the id is known.
        media: Option<crate::board::Media>,
        /// AUTOC.LMS (bits 15:13).
        lms: u32,
    },
    /// LINKS polled on an SFP+ board whose transmit laser is off: ESDP.SDP3
    /// (the module's TX_DISABLE) must be an output (SDP3_DIR) driven low.
    /// The link partner sees no light, so the link stays down. Recorded once
    /// per AN restart.
    LaserOff {
        /// ESDP as programmed.
        esdp: u32,
    },
    /// Receive or transmit enabled while the packet buffer sizes add up to
    /// more than the device has (8.2.3.8.9: 512 KB of receive buffer on
    /// the 82599; 8.2.3.9.13: 160 KB of transmit buffer). RXEN or TE stays
    /// clear.
    PacketBufferOvercommitted {
        /// True for RXPBSIZE, false for TXPBSIZE.
        rx: bool,
        /// The sum of the eight sizes, in KB.
        total_kb: u32,
        /// What the device has, in KB.
        capacity_kb: u32,
    },
    /// A transmit packet shorter than 17 bytes: the descriptor's PAYLEN must
    /// be at least 17 (Linux pads every frame to 17 bytes for this reason
    /// before it reaches the ring). The queue halts.
    TxFrameTooShort {
        /// Queue index.
        queue: u16,
        /// Ring index of the packet's first descriptor.
        index: u32,
        /// Its length in bytes.
        len: usize,
    },
    /// TXDCTL.ENABLE set while DMATXCTL.TE is clear: 4.6.8 enables the
    /// transmit DMA before the first queue (Linux ixgbe_configure_tx sets
    /// TE before it configures any ring). The queue stays disabled.
    TxEnabledBeforeTransmitDma {
        /// Queue index.
        queue: u16,
    },
    /// A non-zero RDT/TDT written while the queue is disabled: the tail may
    /// only move once RXDCTL/TXDCTL.ENABLE reads back set (4.6.7.1, 4.6.8;
    /// before that the ring is programmed with head = tail = 0). The write is
    /// ignored.
    TailWrittenWhileDisabled {
        /// Queue index.
        queue: u16,
        /// True for a receive ring.
        rx: bool,
        /// The value written.
        tail: u32,
    },
    /// MTQC written while RTTDCS.ARBDIS is clear: the transmit queue layout
    /// may only change with the descriptor arbiter disabled (8.2.3.9.15;
    /// Linux ixgbe_setup_mtqc).
    MtqcWithoutArbiterDisabled {
        /// The value written.
        value: u32,
    },
    /// RXCTRL.RXEN set (or a receive queue enabled while RXEN is set) with
    /// one of the bits 4.6.7 requires before receive not as required:
    /// CTRL_EXT.NS_DIS set, bit 12 of DCA_RXCTRL clear on every enabled
    /// queue, RDRXCTL.RSCFRSTSIZE 0 with RSCACKC and FCOE_WRFIX set (Linux
    /// ixgbe_setup_rdrxctl for the 82599). Receive (or the queue) stays off.
    RxInitBits {
        /// The register at fault: "CTRL_EXT", "DCA_RXCTRL", "RDRXCTL".
        register: &'static str,
        /// The queue, for DCA_RXCTRL.
        queue: Option<u16>,
        /// What it must hold.
        rule: &'static str,
    },
}

impl ModelFault {
    /// The queue a fault concerns and whether it is a receive queue, if any.
    pub fn queue(&self) -> Option<(u16, bool)> {
        match *self {
            ModelFault::BadRegisterAccess { .. }
            | ModelFault::CrcStripMismatch { .. }
            | ModelFault::AccessDuringReset { .. }
            | ModelFault::ResetWithMasterEnabled
            | ModelFault::RxEnableErratum { .. }
            | ModelFault::LinkModeMismatch { .. }
            | ModelFault::LaserOff { .. }
            | ModelFault::PacketBufferOvercommitted { .. }
            | ModelFault::MtqcWithoutArbiterDisabled { .. }
            | ModelFault::RxInitBits { .. } => None,
            ModelFault::TxEnabledBeforeTransmitDma { queue } => Some((queue, false)),
            ModelFault::TailWrittenWhileDisabled { queue, rx, .. } => Some((queue, rx)),
            ModelFault::DmaOutOfBounds { queue, what, .. } => Some((queue, what.starts_with("rx"))),
            ModelFault::MisalignedRing { queue, rx, .. }
            | ModelFault::BadRingLength { queue, rx, .. }
            | ModelFault::TailPastRing { queue, rx, .. }
            | ModelFault::HeadPastRing { queue, rx, .. }
            | ModelFault::TailMovedBackwards { queue, rx, .. }
            | ModelFault::EnabledWithoutBase { queue, rx }
            | ModelFault::RingReprogrammedWhileEnabled { queue, rx, .. } => Some((queue, rx)),
            ModelFault::UnknownDescriptorType { queue, .. }
            | ModelFault::BadTxDescriptor { queue, .. }
            | ModelFault::TxPacketTooLong { queue, .. } => Some((queue, false)),
            ModelFault::BadBufferSize { queue, .. } => Some((queue, true)),
            ModelFault::Unsupported { queue, rx, .. } => Some((queue, rx)),
            ModelFault::TxFrameTooShort { queue, .. } => Some((queue, false)),
        }
    }
}

fn dir(rx: bool) -> &'static str {
    if rx { "rx" } else { "tx" }
}

impl fmt::Display for ModelFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ModelFault::BadRegisterAccess { offset, write } => write!(
                f,
                "register {} at BAR0 offset {offset:#x}: outside the 512 KiB BAR or not 4-byte aligned",
                if write { "write" } else { "read" }
            ),
            ModelFault::DmaOutOfBounds { addr, len, what, queue } => {
                write!(f, "queue {queue}: DMA to {what} at {addr:#x}+{len} is outside every registered DMA region")
            }
            ModelFault::MisalignedRing { queue, rx, base } => {
                write!(f, "{} queue {queue}: ring base {base:#x} is not 128-byte aligned", dir(rx))
            }
            ModelFault::BadRingLength { queue, rx, len } => write!(
                f,
                "{} queue {queue}: ring length {len} bytes is not a non-zero multiple of 128 below 1 MiB",
                dir(rx)
            ),
            ModelFault::TailPastRing { queue, rx, tail, entries } => {
                write!(f, "{} queue {queue}: tail {tail} written for a ring of {entries} descriptors", dir(rx))
            }
            ModelFault::HeadPastRing { queue, rx, head, entries } => {
                write!(f, "{} queue {queue}: head {head} outside a ring of {entries} descriptors", dir(rx))
            }
            ModelFault::TailMovedBackwards { queue, rx, head, old, new } => write!(
                f,
                "{} queue {queue}: tail moved from {old} back to {new} (head {head}), taking back descriptors \
                 the device owns",
                dir(rx)
            ),
            ModelFault::EnabledWithoutBase { queue, rx } => {
                write!(f, "{} queue {queue}: enabled with a ring base or length of zero", dir(rx))
            }
            ModelFault::RingReprogrammedWhileEnabled { queue, rx, offset } => {
                write!(f, "{} queue {queue}: ring register at {offset:#x} changed while the queue is enabled", dir(rx))
            }
            ModelFault::UnknownDescriptorType { queue, dtyp } => {
                if dtyp & 0x100 != 0 {
                    write!(f, "tx queue {queue}: descriptor without DEXT (legacy format is not supported)")
                } else {
                    write!(f, "tx queue {queue}: unknown advanced descriptor type {dtyp}")
                }
            }
            ModelFault::BadTxDescriptor { queue, index, reason } => {
                write!(f, "tx queue {queue}: descriptor {index}: {reason}")
            }
            ModelFault::TxPacketTooLong { queue, len, max } => {
                write!(f, "tx queue {queue}: packet of {len} bytes exceeds the maximum of {max} (without FCS)")
            }
            ModelFault::BadBufferSize { queue, bsizepkt } => {
                write!(f, "rx queue {queue}: SRRCTL.BSIZEPKT = {bsizepkt} is not a buffer size of 1 to 16 KiB")
            }
            ModelFault::CrcStripMismatch { hlreg0, rdrxctl } => write!(
                f,
                "receive enabled with HLREG0.RXCRCSTRP = {} but RDRXCTL.CRCSTRIP = {}",
                u8::from(hlreg0),
                u8::from(rdrxctl)
            ),
            ModelFault::AccessDuringReset { offset, write, after_ns } => write!(
                f,
                "register {} at {offset:#x} {after_ns} ns after CTRL.RST: wait at least 1 ms after a reset \
                 before touching the device",
                if write { "write" } else { "read" }
            ),
            ModelFault::ResetWithMasterEnabled => f.write_str(
                "CTRL.RST written with PCIe mastering enabled: set CTRL.GIO_DIS and poll STATUS.GIO clear first",
            ),
            ModelFault::RxEnableErratum { rx_dis, ready_seen } => write!(
                f,
                "RXCTRL.RXEN set without the receive-enable erratum sequence (SECRXCTRL.RX_DIS = {}, \
                 SECRXSTAT.SECRX_RDY seen = {}): stop and drain the security Rx path around RXEN",
                u8::from(rx_dis),
                u8::from(ready_seen)
            ),
            ModelFault::Unsupported { queue, rx, what } => write!(f, "{} queue {queue}: not modelled: {what}", dir(rx)),
            ModelFault::LinkModeMismatch { device_id, media, lms } => {
                match media {
                    Some(m) => write!(f, "device {device_id:#06x} has {m} media")?,
                    None => write!(f, "device {device_id:#06x} has unknown media")?,
                }
                write!(
                    f,
                    ", but auto-negotiation was restarted with AUTOC.LMS = {lms}, which does not suit it: \
                     the link stays down"
                )
            }
            ModelFault::LaserOff { esdp } => write!(
                f,
                "link polled with the SFP+ transmit laser off (ESDP = {esdp:#x}; SDP3 must be an output, SDP3_DIR, \
                 driven low): the link stays down"
            ),
            ModelFault::PacketBufferOvercommitted { rx, total_kb, capacity_kb } => write!(
                f,
                "{} enabled with {}PBSIZE summing to {total_kb} KB, more than the {capacity_kb} KB packet buffer",
                if rx { "receive" } else { "transmit" },
                if rx { "RX" } else { "TX" }
            ),
            ModelFault::TxFrameTooShort { queue, index, len } => write!(
                f,
                "tx queue {queue}: descriptor {index}: a {len}-byte frame is shorter than the 17 bytes the device \
                 can send; pad it"
            ),
            ModelFault::TxEnabledBeforeTransmitDma { queue } => write!(
                f,
                "tx queue {queue}: TXDCTL.ENABLE set before DMATXCTL.TE: enable transmit DMA before the first queue"
            ),
            ModelFault::TailWrittenWhileDisabled { queue, rx, tail } => write!(
                f,
                "{} queue {queue}: tail {tail} written while the queue is disabled: move the tail only after \
                 ENABLE reads back set",
                dir(rx)
            ),
            ModelFault::MtqcWithoutArbiterDisabled { value } => {
                write!(f, "MTQC written ({value:#x}) with RTTDCS.ARBDIS clear: disable the Tx arbiter around it")
            }
            ModelFault::RxInitBits { register, queue, rule } => match queue {
                Some(q) => write!(f, "receive enabled with {register}({q}) not as 4.6.7 requires: {rule}"),
                None => write!(f, "receive enabled with {register} not as 4.6.7 requires: {rule}"),
            },
        }
    }
}

impl std::error::Error for ModelFault {}
