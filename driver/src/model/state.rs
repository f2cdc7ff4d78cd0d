//! The model's state: the flat register file and what the engines keep
//! beside it (queue snapshots, transmit contexts, the receive packet buffer,
//! cached RSS tables, faults).
//!
//! The register file is the source of truth for everything software can
//! read (heads, tails, control bits), as in QEMU's `mac[]` array; the ring
//! structs hold only what hardware latches when a queue is enabled.

use std::collections::VecDeque;

use super::ModelConfig;
use super::counters::Counters;
use super::fault::ModelFault;
use super::iommu::Memo;
use crate::regs;
use crate::rss::{Reta, Toeplitz};
use crate::time::VirtualClock;
use crate::wire::Wire;

/// Queues per direction.
pub(crate) const QUEUES: usize = regs::MAX_QUEUES as usize;
// `State::tx_pending` has one bit per transmit queue.
const _: () = assert!(QUEUES <= u128::BITS as usize);

/// Number of receive address (RAL/RAH) pairs.
pub(crate) const RAR_ENTRIES: u32 = 128;

/// Faults kept before further ones are only counted, so that a driver
/// hammering a bad register cannot exhaust memory.
const MAX_FAULTS: usize = 1 << 16;

/// What a receive queue latched at enable time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RxRing {
    /// RXDCTL.ENABLE took effect (the ring was valid).
    pub enabled: bool,
    /// A fault halted the queue.
    pub faulted: bool,
    /// Ring base device address.
    pub base: u64,
    /// Descriptors in the ring.
    pub entries: u32,
    /// The region of the last descriptor translated.
    pub desc_memo: Memo,
    /// The region of the last packet buffer translated.
    pub buf_memo: Memo,
}

/// A transmit context (7.2.3.2.3), as latched from a context descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TxContext {
    /// `vlan_macip_lens`.
    pub vlan_macip_lens: u32,
    /// `type_tucmd_mlhl`.
    pub type_tucmd_mlhl: u32,
    /// `mss_l4len_idx`.
    pub mss_l4len_idx: u32,
}

/// The packet being gathered from data descriptors, up to its EOP.
#[derive(Debug, Default)]
pub(crate) struct TxPartial {
    /// Bytes fetched so far.
    pub data: Vec<u8>,
    /// Whether a first data descriptor has been seen.
    pub started: bool,
    /// `olinfo_status` of the first data descriptor (offload requests,
    /// context index, PAYLEN).
    pub olinfo: u32,
    /// Ring index of the first data descriptor (for fault reports).
    pub first_index: u32,
}

/// What a transmit queue latched at enable time, and its engine state.
#[derive(Debug, Default)]
pub(crate) struct TxRing {
    /// TXDCTL.ENABLE took effect.
    pub enabled: bool,
    /// A fault halted the queue.
    pub faulted: bool,
    /// Ring base device address.
    pub base: u64,
    /// Descriptors in the ring.
    pub entries: u32,
    /// The region of the last descriptor translated.
    pub desc_memo: Memo,
    /// The region of the last packet buffer translated.
    pub buf_memo: Memo,
    /// The two context slots of the queue.
    pub ctx: [Option<TxContext>; 2],
    /// The packet being gathered.
    pub partial: TxPartial,
    /// A finished frame the wire refused as busy, held in the transmit
    /// packet buffer until it goes out; nothing more is fetched meanwhile.
    pub held: Option<Vec<u8>>,
    /// Host bytes of the held frame, for QBTC.
    pub held_host_bytes: usize,
    /// Device addresses of data descriptors done but not yet written back
    /// (TXDCTL.WTHRESH > 0 batches write-backs, 7.2.3.5.1).
    pub wb_pending: Vec<u64>,
}

/// Link state machine (LINKS, AUTOC.AN_RESTART).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Link {
    /// AN_RESTART was written since the last reset.
    pub restarted: bool,
    /// LINKS reads since then.
    pub polls: u32,
    /// Link reported up.
    pub up: bool,
    /// Why the link cannot come up was recorded as a fault since the
    /// restart (once, not on every poll).
    pub blocker_reported: bool,
}

/// RSS tables rebuilt only when RSSRK/RETA change.
#[derive(Default)]
pub(crate) struct RssCache {
    /// Toeplitz tables for the current key, if built.
    pub toeplitz: Option<Toeplitz>,
    /// The redirection table, if rebuilt since the last RETA write.
    pub reta: Option<Reta>,
}

/// What the receive path needs per frame from registers that only a
/// register write changes, decoded once after such a write (7.1.1,
/// 7.1.1.1, 7.1.2.8) instead of per frame. `State::set_reg` marks it
/// stale; [`State::rx_conf`] decodes it again on the next frame.
#[derive(Debug, Default)]
pub(crate) struct RxConf {
    /// Decoded from the registers as they are now.
    pub valid: bool,
    /// RXCTRL.RXEN.
    pub rxen: bool,
    /// [`State::max_frame`].
    pub max_frame: usize,
    /// FCTRL.
    pub fctrl: u32,
    /// The addresses of the valid RAL/RAH pairs, as RAL | (RAH & 0xFFFF) << 32
    /// (the destination MAC's first six bytes read little-endian).
    pub rar: Vec<u64>,
    /// MRQC.
    pub mrqc: u32,
    /// RXCSUM.PCSD.
    pub pcsd: bool,
    /// HLREG0.RXCRCSTRP.
    pub strip: bool,
}

/// Everything the model holds.
pub(crate) struct State {
    pub config: ModelConfig,
    /// BAR0, one word per 4 bytes.
    pub regs: Box<[u32]>,
    pub rx: Vec<RxRing>,
    pub tx: Vec<TxRing>,
    /// Bit `q` set: transmit queue `q` may have work left that
    /// [`pump`](State::pump) must retry: a frame the wire refused, or
    /// descriptors a previous owner left (`Model82599::left_running`).
    /// Every other queue was run to its tail when TDT was written. A stale
    /// bit only costs one look at the queue.
    pub tx_pending: u128,
    pub stats: Counters,
    pub link: Link,
    pub rss: RssCache,
    pub wire: Option<Box<dyn Wire>>,
    /// The wire rings the model's doorbell when frames arrive
    /// ([`Wire::ring_on_arrival`]).
    pub wire_rings: bool,
    /// The last pump took every frame the wire had ready (it stopped on an
    /// empty wire, not at [`PUMP_BATCH`](super::PUMP_BATCH)).
    pub wire_drained: bool,
    faults: Vec<ModelFault>,
    faults_dropped: u64,
    reset_count: u64,
    /// The receive packet buffer: frames waiting for a descriptor.
    pub rx_fifo: VecDeque<Vec<u8>>,
    /// Reused buffer for frames from the wire.
    pub rx_buf: Vec<u8>,
    /// Reused buffer for a received frame with its FCS appended (receive
    /// CRC stripping off).
    pub rx_fcs_scratch: Vec<u8>,
    /// The model's time: it moves only when the driver waits
    /// (`RegisterIo::delay` on `ModelRegs`) or a test advances it.
    pub clock: VirtualClock,
    /// When the last CTRL.RST was written, until the quiet time after it
    /// has passed.
    pub reset_at: Option<u64>,
    /// SECRXSTAT reads since SECRXCTRL.RX_DIS was set.
    pub secrx_reads: u8,
    /// The receive path's decoded registers.
    rx_conf: RxConf,
}

impl State {
    /// A device just powered on.
    pub fn new(config: ModelConfig, clock: VirtualClock) -> State {
        let mut s = State {
            config,
            regs: vec![0; regs::BAR0_LEN / 4].into_boxed_slice(),
            rx: vec![RxRing::default(); QUEUES],
            tx: (0..QUEUES).map(|_| TxRing::default()).collect(),
            tx_pending: 0,
            stats: Counters::default(),
            link: Link::default(),
            rss: RssCache::default(),
            wire: None,
            wire_rings: false,
            wire_drained: false,
            faults: Vec::new(),
            faults_dropped: 0,
            reset_count: 0,
            rx_fifo: VecDeque::new(),
            rx_buf: Vec::new(),
            rx_fcs_scratch: Vec::new(),
            clock,
            reset_at: None,
            secrx_reads: 0,
            rx_conf: RxConf::default(),
        };
        s.reset_to_power_on();
        s
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn reset_count(&self) -> u64 {
        self.reset_count
    }

    pub fn count_reset(&mut self) {
        self.reset_count += 1;
    }

    pub fn faults(&self) -> &[ModelFault] {
        &self.faults
    }

    pub fn take_faults(&mut self) -> Vec<ModelFault> {
        std::mem::take(&mut self.faults)
    }

    /// Records `fault` and halts the queue it concerns.
    pub fn fault(&mut self, fault: ModelFault) {
        if let Some((q, rx)) = fault.queue() {
            let q = usize::from(q);
            if rx {
                if let Some(r) = self.rx.get_mut(q) {
                    r.faulted = true;
                }
            } else if let Some(t) = self.tx.get_mut(q) {
                t.faulted = true;
                t.held = None;
                t.partial = TxPartial::default();
            }
        }
        if self.faults.len() < MAX_FAULTS {
            self.faults.push(fault);
        } else {
            self.faults_dropped += 1;
        }
    }

    /// Replaces the wire; `rings` says whether the new one rings the
    /// model's doorbell.
    pub fn attach(&mut self, wire: Option<Box<dyn Wire>>, rings: bool) -> Option<Box<dyn Wire>> {
        (self.wire_rings, self.wire_drained) = (rings, false);
        std::mem::replace(&mut self.wire, wire)
    }

    /// Whether a pump would find nothing to do unless the doorbell rang: no
    /// transmission to retry, no frame in the receive packet buffer, and
    /// nothing left on (or inside) a wire that rings when frames arrive.
    pub fn idle(&self) -> bool {
        self.tx_pending == 0
            && self.rx_fifo.is_empty()
            && self.wire.as_ref().is_none_or(|w| self.wire_rings && self.wire_drained && !w.holds_frames())
    }

    /// The register at byte offset `offset` (already validated).
    pub fn reg(&self, offset: u32) -> u32 {
        self.regs.get((offset / 4) as usize).copied().unwrap_or(0)
    }

    /// Sets the register at byte offset `offset` (already validated). The
    /// receive path's decoded registers ([`RxConf`]) are decoded again
    /// before the next frame.
    pub fn set_reg(&mut self, offset: u32, value: u32) {
        self.rx_conf.valid = false;
        self.set_ring_reg(offset, value);
    }

    /// Sets a head or tail register (RDH, RDT, TDH, TDT), which nothing in
    /// [`RxConf`] depends on: the per-frame path.
    #[inline]
    pub fn set_ring_reg(&mut self, offset: u32, value: u32) {
        if let Some(r) = self.regs.get_mut((offset / 4) as usize) {
            *r = value;
        }
    }

    /// The receive path's decoded registers, decoded now if a register
    /// write made them stale.
    #[inline]
    pub fn rx_conf(&mut self) -> &RxConf {
        if !self.rx_conf.valid {
            self.decode_rx_conf();
        }
        &self.rx_conf
    }

    #[cold]
    fn decode_rx_conf(&mut self) {
        let mut rar = std::mem::take(&mut self.rx_conf.rar);
        rar.clear();
        for i in 0..RAR_ENTRIES {
            let h = self.reg(regs::RAH(i));
            if h & regs::rah::AV != 0 {
                rar.push(u64::from(self.reg(regs::RAL(i))) | u64::from(h & 0xFFFF) << 32);
            }
        }
        self.rx_conf = RxConf {
            valid: true,
            rxen: self.reg(regs::RXCTRL) & regs::rxctrl::RXEN != 0,
            max_frame: self.max_frame(),
            fctrl: self.reg(regs::FCTRL),
            rar,
            mrqc: self.reg(regs::MRQC),
            pcsd: self.reg(regs::RXCSUM) & regs::rxcsum::PCSD != 0,
            strip: self.reg(regs::HLREG0) & regs::hlreg0::RXCRCSTRP != 0,
        };
    }
}
