//! Register read and write handlers (82599 datasheet chapter 8), in the
//! manner of QEMU's per-register handlers: a flat store for all of BAR0,
//! with side effects for the registers that have them. Registers the model
//! does not interpret read back what was written.

use super::counters::Counters;
use super::fault::ModelFault;
use super::iommu::IommuTable;
use super::state::{Link, QUEUES, RssCache, RxRing, State, TxRing};
use crate::board::{self, Media};
use crate::regs::{self, dctl, hlreg0, rdrxctl, srrctl};
use crate::rss::{Reta, Toeplitz, key_from_registers};
use crate::time::Clock;

/// Registers `regs` does not name.
pub(crate) mod off {
    /// Extended Interrupt Cause Set (8.2.3.5.2): writing 1s sets EICR bits.
    pub(crate) const EICS: u32 = 0x00808;
    /// Tx Descriptor Completion Write Back Address Low (8.2.3.9.11).
    pub(crate) const fn tdwbal(n: u32) -> u32 {
        0x06038 + 0x40 * n
    }
}

/// EEC: EEPROM present (bit 8), reported with ARD.
const EEC_PRES: u32 = 1 << 8;
/// EICR: link status change cause (bit 20).
const EICR_LSC: u32 = 1 << 20;
/// Largest ring the 20-bit RDLEN/TDLEN field describes, in bytes.
pub(crate) const MAX_RING_BYTES: u32 = 0xF_FF80;
/// MAXFRS reset value: MFS = 1518 (8.2.3.22.13).
const MAXFRS_RESET: u32 = 1518 << regs::maxfrs::MFS_SHIFT;
/// How long after CTRL.RST the device does not answer: the datasheet asks
/// software to wait at least 1 ms before any register access (Linux sleeps
/// 1 to 1.2 ms before it polls CTRL).
pub(crate) const RESET_QUIET_NS: u64 = 1_000_000;
/// Receive packet buffer of the 82599 in KB (8.2.3.8.9).
pub(crate) const RX_PB_KB: u32 = 512;
/// Transmit packet buffer of the 82599 in KB (8.2.3.9.13).
pub(crate) const TX_PB_KB: u32 = 160;
/// What the model leaves in RAR[1] after a reset: the datasheet gives the
/// receive address registers other than RAR[0] (and the MTA) no reset
/// value, so the model fills them with a stale station address (valid) and
/// stale multicast bits; a driver has to clear them.
pub(crate) const STALE_RAR: [u8; 6] = [0x0e, 0x5c, 0xa1, 0xab, 0x1e, 0x01];
/// The stale MTA word the model leaves after a reset, in every entry.
pub(crate) const STALE_MTA: u32 = 0x0001_0040;
/// SRRCTL reset value (8.2.3.8.7): BSIZEPACKET = 2 (2 KiB), BSIZEHEADER =
/// 4 (256 bytes), descriptor type legacy. The driver must choose the
/// advanced one-buffer type anyway, and should write the size explicitly.
const SRRCTL_RESET: u32 = 0x2 | (0x4 << 8);

/// A receive queue register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxReg {
    Bal,
    Bah,
    Len,
    Head,
    Tail,
    Srrctl,
    Dctl,
}

/// A transmit queue register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxReg {
    Bal,
    Bah,
    Len,
    Head,
    Tail,
    Dctl,
}

/// Maps alias windows onto one canonical offset, so that each register has
/// one slot in the store: SRRCTL and DCA_RXCTRL of queues 0–15 (0x02100,
/// 0x02200 and the queue blocks at 0x01000), RAL/RAH 0–15 (0x05400 and
/// 0x0A200). The canonical offsets are the ones `regs` produces.
fn canonical(offset: u32) -> u32 {
    if (0x01000..0x01400).contains(&offset) {
        let (q, r) = ((offset - 0x01000) / 0x40, (offset - 0x01000) % 0x40);
        match r {
            0x14 => return regs::SRRCTL(q),
            0x0C => return regs::DCA_RXCTRL(q),
            _ => {}
        }
    }
    if (0x0A200..0x0A280).contains(&offset) {
        return offset - 0x0A200 + 0x05400;
    }
    offset
}

/// Decodes a receive queue register (after `canonical`).
fn rx_reg(offset: u32) -> Option<(usize, RxReg)> {
    if (regs::SRRCTL(0)..regs::SRRCTL(16)).contains(&offset) {
        return Some((((offset - regs::SRRCTL(0)) / 4) as usize, RxReg::Srrctl));
    }
    let (q, r) = match offset {
        0x01000..0x02000 => ((offset - 0x01000) / 0x40, (offset - 0x01000) % 0x40),
        0x0D000..0x0E000 => (64 + (offset - 0x0D000) / 0x40, (offset - 0x0D000) % 0x40),
        _ => return None,
    };
    let reg = match r {
        0x00 => RxReg::Bal,
        0x04 => RxReg::Bah,
        0x08 => RxReg::Len,
        0x10 => RxReg::Head,
        0x14 => RxReg::Srrctl,
        0x18 => RxReg::Tail,
        0x28 => RxReg::Dctl,
        _ => return None,
    };
    Some((q as usize, reg))
}

/// Decodes a transmit queue register.
fn tx_reg(offset: u32) -> Option<(usize, TxReg)> {
    if !(0x06000..0x08000).contains(&offset) {
        return None;
    }
    let (q, r) = ((offset - 0x06000) / 0x40, (offset - 0x06000) % 0x40);
    let reg = match r {
        0x00 => TxReg::Bal,
        0x04 => TxReg::Bah,
        0x08 => TxReg::Len,
        0x10 => TxReg::Head,
        0x18 => TxReg::Tail,
        0x28 => TxReg::Dctl,
        _ => return None,
    };
    Some((q as usize, reg))
}

/// Offset of receive queue `q`'s register `r`.
fn rx_offset(q: usize, r: RxReg) -> u32 {
    let q = q as u32;
    match r {
        RxReg::Bal => regs::RDBAL(q),
        RxReg::Bah => regs::RDBAH(q),
        RxReg::Len => regs::RDLEN(q),
        RxReg::Head => regs::RDH(q),
        RxReg::Tail => regs::RDT(q),
        RxReg::Srrctl => regs::SRRCTL(q),
        RxReg::Dctl => regs::RXDCTL(q),
    }
}

/// Descriptors the device owns in a ring of `entries` with this head and
/// tail: `[head, tail)`, so equal means none (7.1.9).
pub(crate) fn owned(head: u32, tail: u32, entries: u32) -> u32 {
    if entries == 0 { 0 } else { (tail + entries - head) % entries }
}

impl State {
    /// Power-on: every register at its reset value, and the EEPROM and DMA
    /// init done.
    pub(crate) fn reset_to_power_on(&mut self) {
        self.regs.fill(0);
        self.rx = vec![RxRing::default(); QUEUES];
        self.tx = (0..QUEUES).map(|_| TxRing::default()).collect();
        self.stats = Counters::default();
        self.link = Link::default();
        self.rss = RssCache::default();
        self.rx_fifo.clear();

        // 4.6.3: after a reset the EEPROM auto-read completes (EEC.ARD) and
        // the DMA initialises (RDRXCTL.DMAIDONE); the MAC address comes from
        // the EEPROM into RAL(0)/RAH(0) with Address Valid.
        self.set_reg(regs::EEC, regs::eec::ARD | EEC_PRES);
        // Bus mastering enabled: master requests may be outstanding.
        self.set_reg(regs::STATUS, regs::status::GIO);
        self.secrx_reads = 0;
        // CRCSTRIP resets to 0 while HLREG0.RXCRCSTRP resets to 1: software
        // must set both alike before enabling receive (8.2.3.8.8).
        self.set_reg(regs::RDRXCTL, rdrxctl::DMAIDONE);
        self.set_reg(regs::HLREG0, hlreg0::TXCRCEN | hlreg0::RXCRCSTRP | hlreg0::TXPADEN);
        self.set_reg(regs::MAXFRS, MAXFRS_RESET);
        // 8.2.3.8.9/8.2.3.9.13: all packet buffer memory in buffer 0.
        self.set_reg(regs::RXPBSIZE(0), 0x8_0000);
        self.set_reg(regs::TXPBSIZE(0), 0x2_8000);
        for q in 0..QUEUES as u32 {
            self.set_reg(regs::SRRCTL(q), SRRCTL_RESET);
            // Bit 12 of DCA_RXCTRL resets to 1 and must be cleared (the
            // model only stores it).
            self.set_reg(regs::DCA_RXCTRL(q), regs::dca_rxctrl::RESERVED_BIT12);
        }
        let mac = self.config.mac;
        self.set_reg(regs::RAL(0), u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
        self.set_reg(regs::RAH(0), u32::from_le_bytes([mac[4], mac[5], 0, 0]) | regs::rah::AV);
        // No reset value for RAR[1..] and the MTA: stale contents.
        let [a, b, c, d, e, f] = STALE_RAR;
        for i in [1, 100] {
            self.set_reg(regs::RAL(i), u32::from_le_bytes([a, b, c, d]));
            self.set_reg(regs::RAH(i), u32::from_le_bytes([e, f, 0, 0]) | regs::rah::AV);
        }
        for i in 0..regs::MTA_ENTRIES {
            self.set_reg(regs::MTA(i), STALE_MTA);
        }
        // SFP+ boards: the EEPROM makes SDP3 (the module's TX_DISABLE) an
        // output; the model has it drive high, laser off, as Linux leaves it
        // after ixgbe_down, so that the driver must switch the laser on.
        if board::media_of(self.config.device_id).is_some_and(Media::has_sdp3_laser) {
            self.set_reg(regs::ESDP, regs::esdp::SDP3_DIR | regs::esdp::SDP3);
        }
    }

    /// Reads BAR0 at `offset`.
    pub(crate) fn read32(&mut self, offset: u32) -> u32 {
        if offset % 4 != 0 || offset as usize >= regs::BAR0_LEN {
            self.fault(ModelFault::BadRegisterAccess { offset, write: false });
            return u32::MAX;
        }
        if self.in_reset_window(offset, false) {
            // Nobody answers a read during the reset, as on PCIe.
            return u32::MAX;
        }
        let offset = canonical(offset);
        if let Some(v) = self.stats.read(offset) {
            return v;
        }
        match offset {
            // 8.2.3.5.1: reading EICR returns the causes and clears them.
            regs::EICR => std::mem::take(&mut self.regs[(offset / 4) as usize]),
            // EIMC is write-only.
            regs::EIMC => 0,
            regs::LINKS => self.read_links(),
            // Auto-negotiation leaves its idle state as soon as it is
            // restarted (what a pipeline reset waits for).
            regs::ANLP1 => {
                let state = if self.link.restarted { 1 << 16 } else { 0 };
                (self.reg(offset) & !regs::anlp1::AN_STATE_MASK) | state
            }
            regs::STATUS => {
                let status = self.reg(offset) & !regs::status::GIO;
                if self.master_busy() { status | regs::status::GIO } else { status }
            }
            // The security block has drained one read after RX_DIS was set
            // (a driver that does not poll SECRX_RDY is caught).
            regs::SECRXSTAT => {
                if self.reg(regs::SECRXCTRL) & regs::secrxctrl::RX_DIS == 0 {
                    return 0;
                }
                self.secrx_reads = self.secrx_reads.saturating_add(1);
                if self.secrx_ready() { regs::secrxstat::SECRX_RDY } else { 0 }
            }
            _ => self.reg(offset),
        }
    }

    /// STATUS.GIO (5.2.5.3.2, Linux ixgbe_disable_pcie_master): master
    /// requests may be outstanding unless CTRL.GIO_DIS is set and the DMA
    /// engines are idle. The model counts receive on (RXCTRL.RXEN) or any
    /// queue enabled as not idle: Linux stops the receive unit and every
    /// queue (ixgbe_stop_adapter) before the master disable, and on a device
    /// left running that is what lets the requests drain; a driver that
    /// skips it waits for GIO in vain and resets with it set
    /// (`ResetWithMasterEnabled`).
    fn master_busy(&self) -> bool {
        let idle = self.reg(regs::RXCTRL) & regs::rxctrl::RXEN == 0
            && !self.rx.iter().any(|r| r.enabled)
            && !self.tx.iter().any(|t| t.enabled);
        self.reg(regs::CTRL) & regs::ctrl::GIO_DIS == 0 || !idle
    }

    /// SECRXSTAT.SECRX_RDY has been reported since SECRXCTRL.RX_DIS was set:
    /// the first read after RX_DIS still sees the path busy, the second
    /// ready, so a driver has to poll.
    fn secrx_ready(&self) -> bool {
        self.secrx_reads >= 2
    }

    /// True (with a fault recorded) when an access comes less than
    /// [`RESET_QUIET_NS`] after the last CTRL.RST on the model's clock.
    fn in_reset_window(&mut self, offset: u32, write: bool) -> bool {
        let Some(at) = self.reset_at else { return false };
        let after_ns = self.clock.now_ns().saturating_sub(at);
        if after_ns >= RESET_QUIET_NS {
            self.reset_at = None;
            return false;
        }
        self.fault(ModelFault::AccessDuringReset { offset, write, after_ns });
        true
    }

    /// What keeps the link down although auto-negotiation was restarted: a
    /// link mode that does not suit the board's media, or (on SFP+) the
    /// transmit laser off.
    fn link_blocker(&self) -> Option<ModelFault> {
        let device_id = self.config.device_id;
        let media = board::media_of(device_id);
        let lms = (self.reg(regs::AUTOC) & regs::autoc::LMS_MASK) >> regs::autoc::LMS_SHIFT;
        let suits = match media {
            Some(Media::SfpFibre | Media::FibreLco | Media::QsfpFibre) => lms == 3,
            Some(Media::Backplane) => matches!(lms, 4 | 6 | 7),
            Some(Media::Cx4) => lms == 1,
            Some(Media::Copper) | None => false,
        };
        if !suits {
            return Some(ModelFault::LinkModeMismatch { device_id, media, lms });
        }
        let esdp = self.reg(regs::ESDP);
        let laser_on = esdp & regs::esdp::SDP3_DIR != 0 && esdp & regs::esdp::SDP3 == 0;
        if media.is_some_and(Media::has_sdp3_laser) && !laser_on {
            return Some(ModelFault::LaserOff { esdp });
        }
        None
    }

    /// LINKS (8.2.3.22.20): down until auto-negotiation was restarted with a
    /// link mode that suits the media (and, on SFP+, the laser is on) and
    /// `link_up_after_polls` reads have seen it down; then up at 10 Gb/s.
    /// What keeps it down is recorded as a fault once per restart.
    fn read_links(&mut self) -> u32 {
        if !self.link.restarted {
            return 0;
        }
        if let Some(fault) = self.link_blocker() {
            self.link.up = false;
            if !self.link.blocker_reported {
                self.link.blocker_reported = true;
                self.fault(fault);
            }
            return 0;
        }
        if !self.link.up {
            if self.link.polls < self.config.link_up_after_polls {
                self.link.polls += 1;
                return 0;
            }
            self.link.up = true;
            let eicr = self.reg(regs::EICR);
            self.set_reg(regs::EICR, eicr | EICR_LSC);
        }
        regs::links::UP | regs::links::SPEED_10G
    }

    /// Writes `value` to BAR0 at `offset`.
    pub(crate) fn write32(&mut self, io: &IommuTable, offset: u32, value: u32) {
        if offset % 4 != 0 || offset as usize >= regs::BAR0_LEN {
            self.fault(ModelFault::BadRegisterAccess { offset, write: true });
            return;
        }
        if self.in_reset_window(offset, true) {
            return;
        }
        let offset = canonical(offset);
        if let Some((q, r)) = rx_reg(offset) {
            return self.write_rx(io, q, r, offset, value);
        }
        if let Some((q, r)) = tx_reg(offset) {
            return self.write_tx(io, q, r, offset, value);
        }
        if Counters::is_counter(offset) {
            // Statistics are read-only; a write changes nothing.
            return;
        }
        let old = self.reg(offset);
        match offset {
            regs::CTRL => {
                // 4.6.3.2: RST is a global reset, LNK_RST resets the link;
                // both self-clear (the model finishes at once).
                self.set_reg(offset, value & !regs::ctrl::RST_MASK);
                if value & regs::ctrl::RST != 0 {
                    // A reset with master requests possibly in flight can
                    // hang the PCIe link: disable the master first.
                    if old & regs::ctrl::GIO_DIS == 0 || self.master_busy() {
                        self.fault(ModelFault::ResetWithMasterEnabled);
                    }
                    self.count_reset();
                    self.reset_to_power_on();
                    self.reset_at = Some(self.clock.now_ns());
                } else if value & regs::ctrl::LNK_RST != 0 {
                    self.link = Link::default();
                }
            }
            regs::SECRXCTRL => {
                self.set_reg(offset, value);
                if value & regs::secrxctrl::RX_DIS == 0 {
                    self.secrx_reads = 0;
                }
            }
            // Read-only: STATUS, LINKS, SECRXSTAT.
            regs::SECRXSTAT => {}
            regs::STATUS | regs::LINKS => {}
            // EEC.ARD and RDRXCTL.DMAIDONE are status bits software cannot
            // change.
            regs::EEC => self.set_reg(offset, (value & !regs::eec::ARD) | (old & regs::eec::ARD)),
            regs::RDRXCTL => self.set_reg(offset, (value & !rdrxctl::DMAIDONE) | (old & rdrxctl::DMAIDONE)),
            // 8.2.3.5.1: writing 1s to EICR clears those causes.
            regs::EICR => self.set_reg(offset, old & !value),
            off::EICS => {
                let eicr = self.reg(regs::EICR);
                self.set_reg(regs::EICR, eicr | value);
            }
            // 8.2.3.5.3/4: EIMS sets mask bits and reads the mask; EIMC
            // clears them.
            regs::EIMS => self.set_reg(offset, old | value),
            regs::EIMC => {
                let eims = self.reg(regs::EIMS);
                self.set_reg(regs::EIMS, eims & !value);
            }
            regs::AUTOC => {
                // AN_RESTART self-clears; the link goes down and comes back
                // after the configured number of LINKS polls.
                self.set_reg(offset, value & !regs::autoc::AN_RESTART);
                if value & regs::autoc::AN_RESTART != 0 {
                    self.link = Link { restarted: true, ..Link::default() };
                } else if (value ^ old) & regs::autoc::LMS_MASK != 0 {
                    // A new link mode takes effect only with a restart.
                    self.link = Link::default();
                }
            }
            regs::RXCTRL => {
                let mut value = value;
                if value & regs::rxctrl::RXEN != 0 && old & regs::rxctrl::RXEN == 0 {
                    // 82599 erratum (Linux ixgbe_enable_rx_dma_82599): RXEN
                    // goes 0 -> 1 only with the security Rx path stopped
                    // (SECRXCTRL.RX_DIS) and drained (SECRXSTAT.SECRX_RDY
                    // seen), or the receive path can hang.
                    let rx_dis = self.reg(regs::SECRXCTRL) & regs::secrxctrl::RX_DIS != 0;
                    let ready_seen = self.secrx_ready();
                    if !rx_dis || !ready_seen {
                        self.fault(ModelFault::RxEnableErratum { rx_dis, ready_seen });
                        value &= !regs::rxctrl::RXEN;
                    }
                }
                if value & regs::rxctrl::RXEN != 0 && old & regs::rxctrl::RXEN == 0 && !self.packet_buffers_fit(true) {
                    value &= !regs::rxctrl::RXEN;
                }
                if value & regs::rxctrl::RXEN != 0 && old & regs::rxctrl::RXEN == 0 {
                    let hl = self.reg(regs::HLREG0) & hlreg0::RXCRCSTRP != 0;
                    let rd = self.reg(regs::RDRXCTL) & rdrxctl::CRCSTRIP != 0;
                    if hl != rd {
                        self.fault(ModelFault::CrcStripMismatch { hlreg0: hl, rdrxctl: rd });
                        value &= !regs::rxctrl::RXEN;
                    }
                }
                if value & regs::rxctrl::RXEN != 0 && old & regs::rxctrl::RXEN == 0 {
                    if let Some(fault) = self.rx_init_fault(None) {
                        self.fault(fault);
                        value &= !regs::rxctrl::RXEN;
                    }
                }
                self.set_reg(offset, value);
                if value & regs::rxctrl::RXEN != 0 {
                    self.drain_rx_fifo(io);
                }
            }
            regs::DMATXCTL => {
                let mut value = value;
                if value & regs::dmatxctl::TE != 0 && old & regs::dmatxctl::TE == 0 && !self.packet_buffers_fit(false) {
                    value &= !regs::dmatxctl::TE;
                }
                self.set_reg(offset, value);
                if value & regs::dmatxctl::TE != 0 && old & regs::dmatxctl::TE == 0 {
                    for q in 0..QUEUES {
                        self.transmit(io, q);
                    }
                }
            }
            regs::MTQC => {
                // 8.2.3.9.15: the Tx queue layout changes only with the
                // descriptor arbiter disabled.
                if self.reg(regs::RTTDCS) & regs::rttdcs::ARBDIS == 0 {
                    self.fault(ModelFault::MtqcWithoutArbiterDisabled { value });
                }
                self.set_reg(offset, value);
            }
            o if (regs::RSSRK(0)..regs::RSSRK(10)).contains(&o) => {
                self.set_reg(o, value);
                if old != value {
                    self.rss.toeplitz = None;
                }
            }
            o if (regs::RETA(0)..regs::RETA(32)).contains(&o) => {
                self.set_reg(o, value);
                if old != value {
                    self.rss.reta = None;
                }
            }
            _ => self.set_reg(offset, value),
        }
    }

    /// Whether the eight RXPBSIZE (or TXPBSIZE) sizes fit the device's
    /// packet buffer; records the fault if not. Checked when receive or
    /// transmit is enabled, since the sizes are written one at a time.
    fn packet_buffers_fit(&mut self, rx: bool) -> bool {
        let (at, capacity_kb): (fn(u32) -> u32, u32) =
            if rx { (regs::RXPBSIZE, RX_PB_KB) } else { (regs::TXPBSIZE, TX_PB_KB) };
        // Size in KB at bits 19:10 of each register.
        let total_kb = (0..8).map(|i| (self.reg(at(i)) >> 10) & 0x3FF).sum::<u32>();
        if total_kb > capacity_kb {
            self.fault(ModelFault::PacketBufferOvercommitted { rx, total_kb, capacity_kb });
            return false;
        }
        true
    }

    fn write_rx(&mut self, io: &IommuTable, q: usize, r: RxReg, offset: u32, value: u32) {
        let ring = self.rx[q];
        let qid = q as u16;
        let old = self.reg(offset);
        match r {
            RxReg::Bal | RxReg::Bah | RxReg::Len | RxReg::Head => {
                if ring.enabled && value != old {
                    self.fault(ModelFault::RingReprogrammedWhileEnabled { queue: qid, rx: true, offset });
                }
                self.set_reg(offset, value);
            }
            RxReg::Srrctl => self.set_reg(offset, value),
            RxReg::Tail => {
                if ring.enabled && !ring.faulted {
                    if !self.tail_ok(qid, true, ring.entries, self.reg(rx_offset(q, RxReg::Head)), old, value) {
                        return;
                    }
                    self.set_ring_reg(offset, value);
                    // Descriptors arrived: frames waiting in the packet
                    // buffer may go now.
                    self.drain_rx_fifo(io);
                } else if !ring.enabled && value != 0 {
                    self.fault(ModelFault::TailWrittenWhileDisabled { queue: qid, rx: true, tail: value });
                } else {
                    self.set_reg(offset, value);
                }
            }
            RxReg::Dctl => {
                if value & dctl::ENABLE == 0 {
                    self.rx[q].enabled = false;
                    self.set_reg(offset, value);
                    return;
                }
                if old & dctl::ENABLE != 0 && ring.enabled {
                    self.set_reg(offset, value);
                    return;
                }
                // 4.6.7.1: enabling latches the ring; a re-enable also
                // clears an earlier fault.
                self.rx[q].faulted = false;
                let latched = self.validate_rx(io, q).filter(|_| {
                    // With receive already on, the queue joins it only with
                    // the bits 4.6.7 requires.
                    let fault = (self.reg(regs::RXCTRL) & regs::rxctrl::RXEN != 0)
                        .then(|| self.rx_init_fault(Some(q)))
                        .flatten();
                    fault.map(|f| self.fault(f)).is_none()
                });
                match latched {
                    Some(latched) => {
                        self.rx[q] = latched;
                        self.set_reg(offset, value);
                        self.drain_rx_fifo(io);
                    }
                    None => self.set_reg(offset, value & !dctl::ENABLE),
                }
            }
        }
    }

    /// The first bit that 4.6.7 requires before receive is enabled and that
    /// is not as required (Linux ixgbe_start_hw_generic sets NS_DIS,
    /// ixgbe_setup_rdrxctl the RDRXCTL bits; ixy clears DCA_RXCTRL bit 12):
    /// for every enabled receive queue, or only for queue `only`.
    fn rx_init_fault(&self, only: Option<usize>) -> Option<ModelFault> {
        let bad = |register, queue, rule| Some(ModelFault::RxInitBits { register, queue, rule });
        if self.reg(regs::CTRL_EXT) & regs::ctrl_ext::NS_DIS == 0 {
            return bad("CTRL_EXT", None, "NS_DIS (bit 16) set");
        }
        let rdrxctl = self.reg(regs::RDRXCTL);
        if rdrxctl & rdrxctl::RSCFRSTSIZE != 0 {
            return bad("RDRXCTL", None, "RSCFRSTSIZE (bits 21:17) 0");
        }
        if rdrxctl & rdrxctl::RSCACKC == 0 {
            return bad("RDRXCTL", None, "RSCACKC (bit 25) set");
        }
        if rdrxctl & rdrxctl::FCOE_WRFIX == 0 {
            return bad("RDRXCTL", None, "FCOE_WRFIX (bit 26) set");
        }
        let queues: Vec<usize> = match only {
            Some(q) => vec![q],
            None => (0..QUEUES).filter(|&q| self.rx[q].enabled).collect(),
        };
        queues
            .into_iter()
            .find(|&q| self.reg(regs::DCA_RXCTRL(q as u32)) & regs::dca_rxctrl::RESERVED_BIT12 != 0)
            .and_then(|q| bad("DCA_RXCTRL", Some(q as u16), "bit 12 (reserved, set at reset) clear"))
    }

    /// Checks a tail write on an enabled ring; records the fault and
    /// returns false if it is bad.
    fn tail_ok(&mut self, queue: u16, rx: bool, entries: u32, head: u32, old: u32, new: u32) -> bool {
        if new >= entries {
            self.fault(ModelFault::TailPastRing { queue, rx, tail: new, entries });
            return false;
        }
        if owned(head, new, entries) < owned(head, old, entries) {
            self.fault(ModelFault::TailMovedBackwards { queue, rx, head, old, new });
            return false;
        }
        true
    }

    /// The ring checks common to both directions at enable time; returns
    /// (base, entries) or records the fault.
    fn validate_ring(&mut self, io: &IommuTable, queue: u16, rx: bool, regs_at: [u32; 5]) -> Option<(u64, u32)> {
        let [bal, bah, len, head, tail] = regs_at.map(|o| self.reg(o));
        let base = u64::from(bah) << 32 | u64::from(bal);
        if base == 0 || len == 0 {
            self.fault(ModelFault::EnabledWithoutBase { queue, rx });
            return None;
        }
        if len % 128 != 0 || len > MAX_RING_BYTES {
            self.fault(ModelFault::BadRingLength { queue, rx, len });
            return None;
        }
        if base & 0x7F != 0 {
            self.fault(ModelFault::MisalignedRing { queue, rx, base });
            return None;
        }
        let what = if rx { "rx descriptor ring" } else { "tx descriptor ring" };
        if !io.contains(base, len as usize) {
            self.fault(ModelFault::DmaOutOfBounds { addr: base, len: len as usize, what, queue });
            return None;
        }
        let entries = len / 16;
        if head >= entries {
            self.fault(ModelFault::HeadPastRing { queue, rx, head, entries });
            return None;
        }
        if tail >= entries {
            self.fault(ModelFault::TailPastRing { queue, rx, tail, entries });
            return None;
        }
        Some((base, entries))
    }

    fn validate_rx(&mut self, io: &IommuTable, q: usize) -> Option<RxRing> {
        let qid = q as u16;
        let at = [RxReg::Bal, RxReg::Bah, RxReg::Len, RxReg::Head, RxReg::Tail].map(|r| rx_offset(q, r));
        let (base, entries) = self.validate_ring(io, qid, true, at)?;
        let srr = self.reg(regs::SRRCTL(q as u32));
        let bsizepkt = srr & srrctl::BSIZEPKT_MASK;
        if bsizepkt == 0 || bsizepkt > 16 {
            self.fault(ModelFault::BadBufferSize { queue: qid, bsizepkt });
            return None;
        }
        if srr & srrctl::DESCTYPE_MASK != srrctl::DESCTYPE_ADV_ONEBUF {
            let what = "SRRCTL.DESCTYPE other than advanced one-buffer (legacy or header split)";
            self.fault(ModelFault::Unsupported { queue: qid, rx: true, what });
            return None;
        }
        Some(RxRing { enabled: true, faulted: false, base, entries, ..RxRing::default() })
    }

    fn write_tx(&mut self, io: &IommuTable, q: usize, r: TxReg, offset: u32, value: u32) {
        let qid = q as u16;
        let old = self.reg(offset);
        let (enabled, faulted, entries) = (self.tx[q].enabled, self.tx[q].faulted, self.tx[q].entries);
        match r {
            TxReg::Bal | TxReg::Bah | TxReg::Len | TxReg::Head => {
                if enabled && value != old {
                    self.fault(ModelFault::RingReprogrammedWhileEnabled { queue: qid, rx: false, offset });
                }
                self.set_reg(offset, value);
            }
            TxReg::Tail => {
                if enabled && !faulted {
                    if !self.tail_ok(qid, false, entries, self.reg(regs::TDH(q as u32)), old, value) {
                        return;
                    }
                    self.set_ring_reg(offset, value);
                    // 7.2.1: a tail write hands descriptors to the device;
                    // the model transmits them synchronously.
                    self.transmit(io, q);
                } else if !enabled && value != 0 {
                    self.fault(ModelFault::TailWrittenWhileDisabled { queue: qid, rx: false, tail: value });
                } else {
                    self.set_reg(offset, value);
                }
            }
            TxReg::Dctl => {
                if value & dctl::ENABLE == 0 {
                    self.tx[q].enabled = false;
                    self.set_reg(offset, value);
                    return;
                }
                if old & dctl::ENABLE != 0 && enabled {
                    self.set_reg(offset, value);
                    return;
                }
                if self.reg(regs::DMATXCTL) & regs::dmatxctl::TE == 0 {
                    // 4.6.8: transmit DMA first, then the queues.
                    self.tx[q] = TxRing::default();
                    self.fault(ModelFault::TxEnabledBeforeTransmitDma { queue: qid });
                    self.set_reg(offset, value & !dctl::ENABLE);
                    return;
                }
                let q32 = q as u32;
                let at = [regs::TDBAL(q32), regs::TDBAH(q32), regs::TDLEN(q32), regs::TDH(q32), regs::TDT(q32)];
                self.tx[q] = TxRing::default();
                let ring = self.validate_ring(io, qid, false, at);
                let ring = ring.filter(|_| {
                    // 7.2.3.5.2: head write-back replaces DD write-back; the
                    // model writes DD only, so a driver waiting on the head
                    // copy would wait forever.
                    let head_wb = self.reg(off::tdwbal(q32)) & 1 != 0;
                    if head_wb {
                        let what = "transmit head write-back (TDWBAL.Head_WB_En)";
                        self.fault(ModelFault::Unsupported { queue: qid, rx: false, what });
                    }
                    !head_wb
                });
                match ring {
                    Some((base, entries)) => {
                        self.tx[q] = TxRing { enabled: true, base, entries, ..TxRing::default() };
                        self.set_reg(offset, value);
                        self.transmit(io, q);
                    }
                    None => self.set_reg(offset, value & !dctl::ENABLE),
                }
            }
        }
    }

    /// The Toeplitz tables for the key in RSSRK, built on first use after a
    /// key change.
    pub(crate) fn toeplitz(&mut self) -> &Toeplitz {
        if self.rss.toeplitz.is_none() {
            let words: [u32; 10] = std::array::from_fn(|i| self.reg(regs::RSSRK(i as u32)));
            self.rss.toeplitz = Some(Toeplitz::new(&key_from_registers(&words)));
        }
        let RssCache { toeplitz, .. } = &mut self.rss;
        toeplitz.get_or_insert_with(|| Toeplitz::new(&[0; 40]))
    }

    /// The redirection table in RETA, rebuilt on first use after a change.
    /// (A reference, not a copy: this runs for every received frame, and the
    /// table is 128 bytes.)
    pub(crate) fn reta(&mut self) -> &Reta {
        if self.rss.reta.is_none() {
            let words: [u32; 32] = std::array::from_fn(|i| self.reg(regs::RETA(i as u32)));
            self.rss.reta = Some(Reta::from_registers(&words));
        }
        let RssCache { reta, .. } = &mut self.rss;
        reta.get_or_insert_with(|| Reta::from_registers(&[0; 32]))
    }

    /// Largest frame without FCS the MAC accepts or sends: 1518 with FCS,
    /// or MAXFRS.MFS when HLREG0.JUMBOEN is set (8.2.3.22.13).
    pub(crate) fn max_frame(&self) -> usize {
        let with_fcs = if self.reg(regs::HLREG0) & hlreg0::JUMBOEN != 0 {
            (self.reg(regs::MAXFRS) >> regs::maxfrs::MFS_SHIFT) as usize
        } else {
            1518
        };
        with_fcs.saturating_sub(4)
    }
}
