//! Device initialisation (82599 datasheet 4.6.3 onwards), RSS programming,
//! and the split into per-core queue pairs.
//!
//! [`Device::init`] runs the whole sequence: disable interrupts, stop
//! whatever a previous owner left running (receive and all 128 queues),
//! PCIe master disable and global reset, wait for the EEPROM and DMA init, set up the link, clear the
//! statistics, program the receive path (with RSS) and the transmit path,
//! enable every queue, enable receive, and wait for the link.
//! [`Device::into_queues`] then hands out one [`QueuePair`] per core and a
//! [`DeviceHandle`] for the control plane (statistics, link state,
//! promiscuous mode, shutdown), which any thread may share.
//!
//! Lifetimes: each queue owns its ring and keeps its pool alive; dropping a
//! queue disables it in the device before freeing its memory, so the device
//! never writes into freed memory whatever the order in which the handle
//! and the queues are dropped.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::dma::{DmaAllocator, DmaRegion};
use crate::io::RegisterIo;
use crate::mempool::Mempool;
use crate::queue::{QueueShared, poll_register};
use crate::regs;
use crate::rss::{self, Reta, RssKey};
use crate::stats::{NUM_QUEUE_STAT_SETS, StatsAccumulator};

pub use crate::error::DriverError;
pub use crate::queue::{QueueId, QueuePair, RxQueue, TxQueue};
pub use crate::stats::{DeviceStats, QueueHwStats, QueueStats};

/// Most queue pairs the driver sets up: RSS spreads over at most 16 queues
/// (RETA entries are 4 bits wide, datasheet 7.1.2.8).
pub const MAX_RSS_QUEUES: u16 = 16;

/// Smallest and largest ring sizes accepted (descriptors). Powers of two so
/// that ring indices wrap with a mask; RDLEN/TDLEN must be multiples of 128
/// bytes (8 descriptors), which every size here is.
pub const MIN_RING_SIZE: u16 = 64;
/// See [`MIN_RING_SIZE`].
pub const MAX_RING_SIZE: u16 = 4096;

/// Largest standard Ethernet frame, FCS included (1500-byte MTU, no VLAN
/// tag): the MAC's limit while HLREG0.JUMBOEN is clear.
pub const STANDARD_MAX_FRAME: u32 = 1518;
/// Largest frame, FCS included, [`DeviceConfig::max_frame_size`] accepts:
/// 9 728 bytes, the jumbo limit Linux's ixgbe driver uses for the 82599
/// (`IXGBE_MAX_JUMBO_FRAME_SIZE`), room for a 9 000-byte MTU and tags.
pub const MAX_JUMBO_FRAME: u32 = 9728;

/// Frame check sequence: counted in `max_frame_size`, added by the MAC.
const FCS_LEN: usize = 4;

/// How often the init sequence polls a register it waits on.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long the init sequence waits for a bit the device sets by itself.
const STEP_TIMEOUT: Duration = Duration::from_secs(1);

/// What [`Device::init`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Number of queue pairs, 1..=16; queue pair `i` is meant for core `i`.
    pub num_queues: u16,
    /// Descriptors per RX ring: a power of two in 64..=4096.
    pub rx_ring_size: u16,
    /// Descriptors per TX ring: a power of two in 64..=4096.
    pub tx_ring_size: u16,
    /// Buffers in each queue pair's mempool. The RX ring holds
    /// `rx_ring_size` of them at all times and a full TX ring up to
    /// `tx_ring_size - 1`, so at least `rx_ring_size + tx_ring_size` are
    /// required; more leave room for buffers the application holds.
    pub mempool_entries: u32,
    /// Mempool entry size in bytes: 2048, 4096, 8192 or 16384. RX writes
    /// frames of up to this size into one descriptor (SRRCTL.BSIZEPKT is
    /// programmed from it), so it must hold a frame of `max_frame_size`
    /// (a frame the device spreads over several descriptors is dropped).
    pub buf_size: u32,
    /// Largest frame, FCS included, the MAC receives and sends:
    /// [`STANDARD_MAX_FRAME`] (1518, the default) up to
    /// [`MAX_JUMBO_FRAME`]. Above 1518 the driver sets HLREG0.JUMBOEN and
    /// MAXFRS.MFS (8.2.3.22.8, 8.2.3.22.13); longer frames from the wire
    /// are dropped and counted in ROC and RLEC. A 9 000-byte MTU needs
    /// 9 018 and a `buf_size` of 16384.
    pub max_frame_size: u32,
    /// The RSS key (RSSRK). The default, [`rss::SYMMETRIC_KEY`], sends both
    /// directions of a flow to the same queue index.
    pub rss_key: RssKey,
    /// The redirection table (RETA); `None` spreads the entries round robin
    /// over the queues. Entries must name configured queues.
    pub reta: Option<Reta>,
    /// Accept every unicast and multicast frame (FCTRL.UPE and MPE).
    /// Broadcast is always accepted (FCTRL.BAM).
    pub promiscuous: bool,
    /// Use this MAC address instead of the one the EEPROM loaded into
    /// RAL(0)/RAH(0).
    pub mac: Option<[u8; 6]>,
    /// How long `init` waits for the link; [`Duration::ZERO`] does not wait
    /// (and does not fail when the link is down).
    pub link_timeout: Duration,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            num_queues: 1,
            rx_ring_size: 512,
            tx_ring_size: 512,
            mempool_entries: 4096,
            buf_size: 2048,
            max_frame_size: STANDARD_MAX_FRAME,
            rss_key: rss::SYMMETRIC_KEY,
            reta: None,
            promiscuous: false,
            mac: None,
            link_timeout: Duration::from_secs(10),
        }
    }
}

fn config_error(field: &'static str, reason: String) -> DriverError {
    DriverError::Config { field, reason }
}

impl DeviceConfig {
    /// Checks every field; the error names the first field at fault and
    /// says which values are accepted.
    pub fn validate(&self) -> Result<(), DriverError> {
        if !(1..=MAX_RSS_QUEUES).contains(&self.num_queues) {
            return Err(config_error(
                "num_queues",
                format!("{} is not in 1..={MAX_RSS_QUEUES} (RSS spreads over at most 16 queues)", self.num_queues),
            ));
        }
        for (field, size) in [("rx_ring_size", self.rx_ring_size), ("tx_ring_size", self.tx_ring_size)] {
            if !size.is_power_of_two() || !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&size) {
                return Err(config_error(
                    field,
                    format!("{size} is not a power of two in {MIN_RING_SIZE}..={MAX_RING_SIZE}"),
                ));
            }
        }
        if !matches!(self.buf_size, 2048 | 4096 | 8192 | 16384) {
            return Err(config_error(
                "buf_size",
                format!(
                    "{} is not one of 2048, 4096, 8192, 16384 (a power of two of whole KiB, for \
                     SRRCTL.BSIZEPKT, holding a 1518-byte frame)",
                    self.buf_size
                ),
            ));
        }
        if !(STANDARD_MAX_FRAME..=MAX_JUMBO_FRAME).contains(&self.max_frame_size) {
            return Err(config_error(
                "max_frame_size",
                format!(
                    "{} is not in {STANDARD_MAX_FRAME}..={MAX_JUMBO_FRAME} (bytes with FCS: 1518 for a 1500-byte \
                     MTU, 9018 for 9000)",
                    self.max_frame_size
                ),
            ));
        }
        if self.buf_size < self.max_frame_size {
            return Err(config_error(
                "buf_size",
                format!(
                    "{} bytes cannot hold a frame of max_frame_size {} in one receive buffer; use {}",
                    self.buf_size,
                    self.max_frame_size,
                    self.max_frame_size.next_power_of_two()
                ),
            ));
        }
        let needed = self.min_mempool_entries();
        if self.mempool_entries < needed || self.mempool_entries > 1 << 24 {
            return Err(config_error(
                "mempool_entries",
                format!(
                    "{} is not in {needed}..=16777216: the pool must fill the RX ring ({}) and a full TX ring \
                     ({}) at once, or RX starves while TX holds buffers",
                    self.mempool_entries, self.rx_ring_size, self.tx_ring_size
                ),
            ));
        }
        if let Some(reta) = &self.reta {
            if let Some((i, &q)) = reta.entries().iter().enumerate().find(|&(_, &q)| u16::from(q) >= self.num_queues) {
                return Err(config_error(
                    "reta",
                    format!("entry {i} sends traffic to queue {q}, but only {} queues are configured", self.num_queues),
                ));
            }
        }
        if let Some(mac) = self.mac {
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err(config_error(
                    "mac",
                    format!("{} is a multicast or all-zero address; a station address must be unicast", fmt_mac(mac)),
                ));
            }
        }
        Ok(())
    }

    /// The smallest `mempool_entries` [`validate`](Self::validate) accepts
    /// for the configured ring sizes.
    pub fn min_mempool_entries(&self) -> u32 {
        u32::from(self.rx_ring_size) + u32::from(self.tx_ring_size)
    }

    /// The redirection table to program: the configured one or round robin.
    pub fn effective_reta(&self) -> Reta {
        self.reta.unwrap_or_else(|| Reta::round_robin(self.num_queues))
    }
}

fn fmt_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Link state from the LINKS register (datasheet 8.2.3.22.20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// LINKS.UP.
    pub up: bool,
    /// The negotiated speed in Mbit/s (10000, 1000 or 100), 0 when down.
    pub speed_mbps: u32,
}

impl LinkStatus {
    fn from_links(links: u32) -> LinkStatus {
        let up = links & regs::links::UP != 0;
        let speed_mbps = match links & regs::links::SPEED_MASK {
            _ if !up => 0,
            regs::links::SPEED_10G => 10_000,
            regs::links::SPEED_1G => 1_000,
            regs::links::SPEED_100M => 100,
            _ => 0,
        };
        LinkStatus { up, speed_mbps }
    }
}

/// An initialised 82599: the control part ([`DeviceHandle`]) and the queue
/// pairs, until [`into_queues`](Device::into_queues) separates them.
pub struct Device<R: RegisterIo> {
    // Field order is drop order: the handle shuts the device down first,
    // then each queue frees its ring (it disables itself again first, which
    // also covers queues dropped without a handle).
    handle: DeviceHandle<R>,
    queues: Vec<QueuePair<R>>,
}

impl<R: RegisterIo> std::fmt::Debug for Device<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("handle", &self.handle).field("queues", &self.queues).finish()
    }
}

/// The device's control plane: MAC, link, statistics, promiscuous mode.
/// `Send + Sync`; share it (in an `Arc`) between threads. Statistics reads
/// take a mutex, which is fine because they are not on the data path.
///
/// Dropping it (or calling [`shutdown`](DeviceHandle::shutdown)) disables
/// receive and every queue; the queues then deliver and send nothing, and
/// can still be dropped safely at any time.
pub struct DeviceHandle<R: RegisterIo> {
    regs: R,
    mac: [u8; 6],
    config: DeviceConfig,
    shared: Arc<QueueShared>,
    /// The statistics totals; the lock also serialises read-modify-writes
    /// of control registers.
    control: Mutex<StatsAccumulator>,
}

impl<R: RegisterIo> std::fmt::Debug for DeviceHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle").field("mac", &fmt_mac(self.mac)).field("config", &self.config).finish()
    }
}

impl<R: RegisterIo> Device<R> {
    /// Resets and initialises the device behind `regs`, allocating rings and
    /// mempools from `dma`, following the datasheet's order (4.6.3–4.6.8).
    /// On error everything allocated so far is disabled in the device and
    /// freed.
    pub fn init(regs: R, dma: &dyn DmaAllocator, config: DeviceConfig) -> Result<Device<R>, DriverError> {
        config.validate()?;
        // 4.6.3.1: interrupts off before the reset, so none fires midway.
        disable_interrupts(&regs);
        // A device left running (by the kernel, or by a run of this driver
        // that crashed) may still own rings in memory that is gone: stop its
        // DMA before anything else.
        stop_adapter(&regs);
        global_reset(&regs)?;
        // 4.6.3.1 again: the reset re-enabled the defaults.
        disable_interrupts(&regs);
        // 4.6.3: the EEPROM auto-read loads the MAC address and the
        // analogue settings; nothing may be programmed before it is done.
        wait_bits(&regs, regs::EEC, "EEC", regs::eec::ARD, regs::eec::ARD, "the EEPROM auto-read (EEC.ARD)")?;
        // 4.6.3: DMA initialisation done; the receive path can only be set
        // up after it.
        wait_bits(
            &regs,
            regs::RDRXCTL,
            "RDRXCTL",
            regs::rdrxctl::DMAIDONE,
            regs::rdrxctl::DMAIDONE,
            "DMA initialisation (RDRXCTL.DMAIDONE)",
        )?;
        let mac = setup_mac(&regs, config.mac)?;
        init_link(&regs);
        // 4.6.5: statistics are cleared by reading them; also route queue i
        // to per-queue statistics set i (RQSMR/TQSM reset to all-in-set-0).
        map_queue_stats(&regs);
        StatsAccumulator::clear(&regs, config.num_queues);

        let shared = Arc::new(QueueShared::default());
        let rx = init_rx(&regs, dma, &config, &shared)?;
        let tx = init_tx(&regs, dma, &config, &shared)?;
        let mut queues: Vec<QueuePair<R>> = rx
            .into_iter()
            .zip(tx)
            .enumerate()
            .map(|(i, ((rx, pool), tx))| QueuePair { id: QueueId(i as u16), rx, tx, pool })
            .collect();
        let handle = DeviceHandle {
            regs: regs.clone(),
            mac,
            control: Mutex::new(StatsAccumulator::new(config.num_queues)),
            config,
            shared,
        };
        // From here on, `device` cleans up on every error path.
        for pair in &mut queues {
            pair.rx.start()?;
            pair.tx.start()?;
        }
        let device = Device { handle, queues };
        // 4.6.7: enable the receive path last, once every ring is armed, as
        // Linux does (ixy enables it before starting the queues).
        enable_rx_dma(&regs);
        device.wait_for_link()?;
        Ok(device)
    }

    /// Polls LINKS until the link is up or `link_timeout` passes.
    fn wait_for_link(&self) -> Result<(), DriverError> {
        let timeout = self.handle.config.link_timeout;
        if timeout.is_zero() {
            return Ok(());
        }
        // 4.6.4: the link comes up once auto-negotiation completes; with a
        // 10G link partner that takes up to a few seconds on hardware.
        let interval = Duration::from_millis(1).max(timeout / 10_000).min(Duration::from_millis(100));
        poll_register(&self.handle.regs, regs::LINKS, regs::links::UP, regs::links::UP, timeout, interval).map_err(
            |waited| {
                let r = &self.handle.regs;
                let (links, autoc, esdp) = (r.read32(regs::LINKS), r.read32(regs::AUTOC), r.read32(regs::ESDP));
                DriverError::LinkDown { waited, links, autoc, esdp }
            },
        )
    }

    /// The station MAC address (RAL(0)/RAH(0)).
    pub fn mac(&self) -> [u8; 6] {
        self.handle.mac()
    }

    /// The current link state.
    pub fn link(&self) -> LinkStatus {
        self.handle.link()
    }

    /// Number of queue pairs.
    pub fn num_queues(&self) -> u16 {
        self.handle.num_queues()
    }

    /// The configuration the device was initialised with.
    pub fn config(&self) -> &DeviceConfig {
        self.handle.config()
    }

    /// Statistics since init (reads and accumulates the device counters).
    pub fn stats(&self) -> DeviceStats {
        self.handle.stats()
    }

    /// The control handle.
    pub fn handle(&self) -> &DeviceHandle<R> {
        &self.handle
    }

    /// The queue pairs, while they are still part of the device.
    pub fn queues_mut(&mut self) -> &mut [QueuePair<R>] {
        &mut self.queues
    }

    /// Separates the control handle from the queue pairs (pair `i` for core
    /// `i`).
    pub fn into_queues(self) -> (DeviceHandle<R>, Vec<QueuePair<R>>) {
        (self.handle, self.queues)
    }
}

impl<R: RegisterIo> DeviceHandle<R> {
    fn lock(&self) -> MutexGuard<'_, StatsAccumulator> {
        // A panic while holding the lock leaves the totals consistent
        // (they are plain adds), so a poisoned lock is still usable.
        self.control.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The station MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The current link state (reads LINKS).
    pub fn link(&self) -> LinkStatus {
        LinkStatus::from_links(self.regs.read32(regs::LINKS))
    }

    /// Number of queue pairs.
    pub fn num_queues(&self) -> u16 {
        self.config.num_queues
    }

    /// The configuration the device was initialised with.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Statistics since init: reads every counter (which clears it in the
    /// device), adds it to the totals and returns the totals.
    pub fn stats(&self) -> DeviceStats {
        let mut acc = self.lock();
        acc.update(&self.regs);
        acc.totals().clone()
    }

    /// The device's counters of queue `q` since init (reads and
    /// accumulates only that queue's registers); `None` for a queue that is
    /// not configured or beyond the first 16, which have no counters.
    pub fn queue_stats(&self, q: QueueId) -> Option<QueueHwStats> {
        if q.0 >= self.config.num_queues || usize::from(q.0) >= NUM_QUEUE_STAT_SETS {
            return None;
        }
        self.lock().update_queue(&self.regs, usize::from(q.0))
    }

    /// Turns unicast and multicast promiscuous mode on or off (FCTRL.UPE,
    /// FCTRL.MPE, datasheet 8.2.3.7.1).
    pub fn set_promiscuous(&self, on: bool) {
        let _guard = self.lock();
        let bits = regs::fctrl::UPE | regs::fctrl::MPE;
        if on {
            self.regs.set_bits(regs::FCTRL, bits);
        } else {
            self.regs.clear_bits(regs::FCTRL, bits);
        }
    }

    /// Stops the device: receive off (RXCTRL.RXEN), every queue disabled,
    /// and the queues' batch functions turned into no-ops. Idempotent;
    /// dropping the handle does it too. The queues free their memory when
    /// they are dropped.
    pub fn shutdown(&self) {
        let _guard = self.lock();
        self.shared.stop();
        self.regs.clear_bits(regs::RXCTRL, regs::rxctrl::RXEN);
        for q in 0..u32::from(self.config.num_queues) {
            self.regs.clear_bits(regs::RXDCTL(q), regs::dctl::ENABLE);
            self.regs.clear_bits(regs::TXDCTL(q), regs::dctl::ENABLE);
        }
    }
}

impl<R: RegisterIo> Drop for DeviceHandle<R> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls until `(register & mask) == want`, or a [`DriverError::Timeout`].
fn wait_bits<R: RegisterIo>(
    regs: &R,
    offset: u32,
    register: &'static str,
    mask: u32,
    want: u32,
    what: &'static str,
) -> Result<(), DriverError> {
    poll_register(regs, offset, mask, want, STEP_TIMEOUT, POLL_INTERVAL).map_err(|waited| DriverError::Timeout {
        what,
        register,
        waited,
    })
}

/// How long Linux gives the device to finish its master requests after
/// CTRL.GIO_DIS (IXGBE_PCI_MASTER_DISABLE_TIMEOUT: 800 polls 100 us apart).
const MASTER_DISABLE_TIMEOUT: Duration = Duration::from_millis(80);
/// The datasheet's quiet time after CTRL.RST before any register access
/// (Linux: usleep_range(1000, 1200) before it polls CTRL).
const RESET_QUIET: Duration = Duration::from_millis(1);
/// The settling time after the reset bits clear (Linux ixgbe_reset_hw_82599
/// sleeps 50 ms before touching the device again).
const RESET_SETTLE: Duration = Duration::from_millis(50);
/// How long the receive-enable erratum sequence waits for SECRX_RDY.
const SECRX_TIMEOUT: Duration = Duration::from_millis(40);

/// How long the queues get to finish after they are disabled, before the
/// master disable (Linux ixgbe_stop_adapter_generic sleeps 1 to 2 ms).
const QUEUE_STOP_SETTLE: Duration = Duration::from_millis(2);

/// Stops every DMA engine, as Linux ixgbe_stop_adapter does before each
/// reset: receive off (RXCTRL.RXEN), then every one of the 128 receive and
/// transmit queues disabled, not just the ones this driver will use (a
/// previous owner may have used others), then a short settle. Only then can
/// the master disable in [`global_reset`] drain the outstanding requests.
fn stop_adapter<R: RegisterIo>(regs: &R) {
    regs.clear_bits(regs::RXCTRL, regs::rxctrl::RXEN);
    for q in 0..u32::from(regs::MAX_QUEUES) {
        regs.clear_bits(regs::RXDCTL(q), regs::dctl::ENABLE);
        regs.clear_bits(regs::TXDCTL(q), regs::dctl::ENABLE);
    }
    regs.delay(QUEUE_STOP_SETTLE);
}

/// 4.6.3.2: global reset, preceded by a PCIe master disable so that no DMA
/// is in flight when the device resets (a board the kernel just released
/// may still be receiving into its rings).
///
/// Master disable (5.2.5.3.2, Linux ixgbe_disable_pcie_master): set
/// CTRL.GIO_DIS and poll STATUS.GIO until clear. If it does not clear,
/// Linux resets twice ("double reset"), and so does this.
fn global_reset<R: RegisterIo>(regs: &R) -> Result<(), DriverError> {
    regs.set_bits(regs::CTRL, regs::ctrl::GIO_DIS);
    let quiesced =
        poll_register(regs, regs::STATUS, regs::status::GIO, 0, MASTER_DISABLE_TIMEOUT, Duration::from_micros(100));
    let resets = if quiesced.is_ok() { 1 } else { 2 };
    for _ in 0..resets {
        // RST (device) and LNK_RST (link), OR-ed into CTRL as Linux does so
        // that GIO_DIS stays set while the reset is issued.
        regs.write32(regs::CTRL, regs.read32(regs::CTRL) | regs::ctrl::RST_MASK);
        // No register access for 1 ms: the device does not answer while it
        // resets.
        regs.delay(RESET_QUIET);
        wait_bits(regs, regs::CTRL, "CTRL", regs::ctrl::RST_MASK, 0, "the global reset to complete")?;
        // Let the reset settle (EEPROM auto-read, PHY) before programming.
        regs.delay(RESET_SETTLE);
    }
    Ok(())
}

/// Sets RXCTRL.RXEN with the 82599 receive-enable erratum sequence (Linux
/// ixgbe_enable_rx_dma_82599): stop the security block's receive path
/// (SECRXCTRL.RX_DIS), wait until it is empty (SECRXSTAT.SECRX_RDY), enable
/// receive, restart the security path. Like Linux, a SECRX_RDY that never
/// comes is not fatal: RXEN is still set.
fn enable_rx_dma<R: RegisterIo>(regs: &R) {
    regs.set_bits(regs::SECRXCTRL, regs::secrxctrl::RX_DIS);
    let rdy = regs::secrxstat::SECRX_RDY;
    let _ = poll_register(regs, regs::SECRXSTAT, rdy, rdy, SECRX_TIMEOUT, Duration::from_micros(10));
    regs.set_bits(regs::RXCTRL, regs::rxctrl::RXEN);
    regs.clear_bits(regs::SECRXCTRL, regs::secrxctrl::RX_DIS);
}

/// 4.6.3.1: mask every interrupt cause (EIMC is write-1-to-clear; bit 31 is
/// reserved and not written) and clear pending causes by reading EICR.
/// Writing 0 to EIMS, as ixy does, is a no-op: EIMS is write-1-to-set.
fn disable_interrupts<R: RegisterIo>(regs: &R) {
    regs.write32(regs::EIMC, regs::IRQ_CLEAR_MASK);
    let _ = regs.read32(regs::EICR);
}

/// Reads the station address the EEPROM loaded into RAL(0)/RAH(0)
/// (8.2.3.7.9–10), or takes the configured one, and writes it to RAR(0)
/// with RAH.AV set either way: after a reset the EEPROM load normally sets
/// AV, but Linux (ixgbe_init_rx_addrs_generic) rewrites RAR(0) with AV
/// rather than rely on it, and so does this. Then clears the other
/// receive addresses and the multicast table, which have no reset value
/// (stale filters would accept frames for addresses that are not ours).
fn setup_mac<R: RegisterIo>(regs: &R, mac: Option<[u8; 6]>) -> Result<[u8; 6], DriverError> {
    let m = match mac {
        Some(m) => m,
        None => {
            let low = regs.read32(regs::RAL(0)).to_le_bytes();
            let high = regs.read32(regs::RAH(0)).to_le_bytes();
            [low[0], low[1], low[2], low[3], high[0], high[1]]
        }
    };
    if m[0] & 1 != 0 || m == [0; 6] {
        return Err(config_error(
            "mac",
            format!("the EEPROM holds no valid station address ({}); set DeviceConfig.mac", fmt_mac(m)),
        ));
    }
    regs.write32(regs::RAL(0), u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    regs.write32(regs::RAH(0), u32::from(u16::from_le_bytes([m[4], m[5]])) | regs::rah::AV);
    for i in 1..regs::RAR_ENTRIES {
        // RAL first, then RAH (which holds AV), as Linux clears them.
        regs.write32(regs::RAL(i), 0);
        regs.write32(regs::RAH(i), 0);
    }
    for i in 0..regs::MTA_ENTRIES {
        regs.write32(regs::MTA(i), 0);
    }
    Ok(m)
}

/// How long the SFP+ laser takes to light up after SDP3 goes low (Linux
/// ixgbe_enable_tx_laser_multispeed_fiber sleeps 100 ms).
const LASER_ON_SETTLE: Duration = Duration::from_millis(100);
/// Polls of ANLP1 during a pipeline reset, and the wait before each (Linux
/// ixgbe_reset_pipeline_82599: 10 polls 4 ms apart).
const PIPELINE_RESET_POLLS: u32 = 10;
/// See [`PIPELINE_RESET_POLLS`].
const PIPELINE_RESET_INTERVAL: Duration = Duration::from_millis(4);

/// 4.6.4: link setup for the SFP+ boards this driver accepts
/// ([`board::SUPPORTED_DEVICES`](crate::board::SUPPORTED_DEVICES)), as
/// Linux's SFP path does it (ixgbe_setup_sfp_modules_82599): switch the
/// transmit laser on, select the 10G serial link mode (SFI) and reset the
/// MAC pipeline so the new mode takes effect. The link is waited for at
/// the very end of init, so it comes up while the rest is programmed.
fn init_link<R: RegisterIo>(regs: &R) {
    enable_tx_laser(regs);
    use regs::autoc;
    let value = regs.read32(regs::AUTOC);
    let value = (value & !autoc::LMS_MASK) | autoc::LMS_10G_SERIAL;
    // The parallel 10G PMA/PMD field is unused in serial mode (the serial
    // PMA/PMD, SFI, is in AUTOC2 from the EEPROM); XAUI as ixy writes it.
    let value = (value & !autoc::PMA_PMD_10G_MASK) | autoc::PMA_PMD_10G_XAUI;
    regs.write32(regs::AUTOC, value);
    reset_pipeline(regs);
}

/// Switches the SFP+ transmit laser on: SDP3 drives the module's
/// TX_DISABLE, and Linux sets it (laser off) when it brings the port down
/// or probes it, so a port just released by the kernel is dark. SDP3 low
/// turns it on (Linux ixgbe_enable_tx_laser_multispeed_fiber, DPDK and
/// FreeBSD "turn on the laser" at start). Linux leaves SDP3's direction to
/// the EEPROM; this also sets SDP3_DIR (output), which every accepted board
/// wires that way, so a direction cleared by someone else cannot leave the
/// pin floating.
fn enable_tx_laser<R: RegisterIo>(regs: &R) {
    let esdp = regs.read32(regs::ESDP);
    regs.write32(regs::ESDP, (esdp & !regs::esdp::SDP3) | regs::esdp::SDP3_DIR);
    // Give the laser time to light up before the link is set up.
    regs.delay(LASER_ON_SETTLE);
}

/// The 82599 pipeline reset after an AUTOC change (Linux
/// ixgbe_reset_pipeline_82599): clear an NVM link disable in AUTOC2,
/// restart auto-negotiation with LMS bit 2 toggled, wait until ANLP1 shows
/// AN out of its idle state, then restart again with the real link mode.
/// Like Linux, an AN that never leaves idle is not fatal here: the final
/// AUTOC write happens anyway and the link wait at the end of init tells.
fn reset_pipeline<R: RegisterIo>(regs: &R) {
    use regs::autoc;
    let autoc2 = regs.read32(regs::AUTOC2);
    if autoc2 & regs::autoc2::LINK_DISABLE_MASK != 0 {
        regs.write32(regs::AUTOC2, autoc2 & !regs::autoc2::LINK_DISABLE_MASK);
    }
    let value = regs.read32(regs::AUTOC) | autoc::AN_RESTART;
    // Toggling LMS bit 2 together with AN_RESTART resets the whole pipeline.
    regs.write32(regs::AUTOC, value ^ (0x4 << autoc::LMS_SHIFT));
    for _ in 0..PIPELINE_RESET_POLLS {
        regs.delay(PIPELINE_RESET_INTERVAL);
        if regs.read32(regs::ANLP1) & regs::anlp1::AN_STATE_MASK != 0 {
            break;
        }
    }
    // The real link mode, with AN_RESTART.
    regs.write32(regs::AUTOC, value);
}

/// Maps queue `i` to per-queue statistics set `i` for the first 16 queues
/// (RQSMR/TQSM, four queues per register, one byte each).
fn map_queue_stats<R: RegisterIo>(regs: &R) {
    for i in 0..(NUM_QUEUE_STAT_SETS as u32 / 4) {
        let q = 4 * i;
        let value = q | (q + 1) << 8 | (q + 2) << 16 | (q + 3) << 24;
        regs.write32(regs::RQSMR(i), value);
        regs.write32(regs::TQSM(i), value);
    }
}

/// Allocates a ring of `size` descriptors and checks the 128-byte alignment
/// the base address registers require (8.2.3.8.1, 8.2.3.9.5).
fn alloc_ring(dma: &dyn DmaAllocator, size: u16, ring: &'static str, queue: u16) -> Result<DmaRegion, DriverError> {
    let region = dma.alloc(usize::from(size) * crate::desc::DESC_SIZE)?;
    if region.iova() % 128 != 0 {
        return Err(DriverError::RingAlignment { ring, queue, iova: region.iova() });
    }
    Ok(region)
}

/// Writes a ring's base and length registers; the head and tail start at 0.
fn program_ring<R: RegisterIo>(regs: &R, ring: &DmaRegion, bal: u32, bah: u32, len: u32, head: u32, tail: u32) {
    regs.write32(bal, (ring.iova() & 0xFFFF_FFFF) as u32);
    regs.write32(bah, (ring.iova() >> 32) as u32);
    regs.write32(len, ring.len() as u32);
    regs.write32(head, 0);
    regs.write32(tail, 0);
}

/// An RX queue and the pool it refills from.
type RxWithPool<R> = (RxQueue<R>, Arc<Mempool>);

/// 4.6.7: the receive path, with receive disabled throughout. Returns each
/// queue with its pool; the queues are not enabled yet.
fn init_rx<R: RegisterIo>(
    regs: &R,
    dma: &dyn DmaAllocator,
    config: &DeviceConfig,
    shared: &Arc<QueueShared>,
) -> Result<Vec<RxWithPool<R>>, DriverError> {
    // Receive off while the path is configured.
    regs.clear_bits(regs::RXCTRL, regs::rxctrl::RXEN);
    // 8.2.3.8.9: one traffic class, so the whole 512 KB receive packet
    // buffer goes to PB 0 (size in KB at bits 19:10) and none to PB 1..7.
    // ixy gives PB 0 only 128 KB, which leaves three quarters unused.
    regs.write32(regs::RXPBSIZE(0), 512 << 10);
    for i in 1..8 {
        regs.write32(regs::RXPBSIZE(i), 0);
    }
    set_max_frame(regs, config.max_frame_size);
    // 8.2.3.22.8 / 8.2.3.8.8: strip the CRC; HLREG0.RXCRCSTRP and
    // RDRXCTL.CRCSTRIP must agree.
    regs.set_bits(regs::HLREG0, regs::hlreg0::RXCRCSTRP);
    regs.set_bits(regs::RDRXCTL, regs::rdrxctl::CRCSTRIP);
    // 8.2.3.8.8: RSCFRSTSIZE must be 0 and RSCACKC, FCOE_WRFIX 1 (as Linux
    // programs the 82599).
    regs.clear_bits(regs::RDRXCTL, regs::rdrxctl::RSCFRSTSIZE);
    regs.set_bits(regs::RDRXCTL, regs::rdrxctl::RSCACKC | regs::rdrxctl::FCOE_WRFIX);
    // 8.2.3.7.1: always accept broadcast (ARP needs it); promiscuous on
    // request.
    let mut fctrl = regs.read32(regs::FCTRL) | regs::fctrl::BAM;
    let promisc = regs::fctrl::UPE | regs::fctrl::MPE;
    fctrl = if config.promiscuous { fctrl | promisc } else { fctrl & !promisc };
    regs.write32(regs::FCTRL, fctrl);

    let mut queues = Vec::with_capacity(usize::from(config.num_queues));
    for q in 0..config.num_queues {
        let i = u32::from(q);
        // 8.2.3.8.7: advanced one-buffer descriptors; the packet buffer size
        // written explicitly (in KiB) rather than trusting the reset value;
        // DROP_EN so a full ring drops its own frames instead of stalling the
        // shared packet buffer for every queue.
        let srrctl = regs.read32(regs::SRRCTL(i))
            & !(regs::srrctl::DESCTYPE_MASK | regs::srrctl::BSIZEPKT_MASK | regs::srrctl::BSIZEHDR_MASK);
        let bsizepkt = (config.buf_size >> regs::srrctl::BSIZEPKT_SHIFT) & regs::srrctl::BSIZEPKT_MASK;
        regs.write32(regs::SRRCTL(i), srrctl | regs::srrctl::DESCTYPE_ADV_ONEBUF | bsizepkt | regs::srrctl::DROP_EN);
        let ring = alloc_ring(dma, config.rx_ring_size, "rx", q)?;
        program_ring(regs, &ring, regs::RDBAL(i), regs::RDBAH(i), regs::RDLEN(i), regs::RDH(i), regs::RDT(i));
        // 8.2.3.11.1: bit 12 of DCA_RXCTRL is reserved, set at reset, and
        // must be cleared.
        regs.clear_bits(regs::DCA_RXCTRL(i), regs::dca_rxctrl::RESERVED_BIT12);
        let pool = Mempool::new(dma, config.mempool_entries, config.buf_size)?;
        let rx = RxQueue::new(QueueId(q), regs.clone(), ring, Arc::clone(&pool), Arc::clone(shared))?;
        queues.push((rx, pool));
    }
    // 8.2.3.1.3: CTRL_EXT.NS_DIS (no-snoop disable), as ixy does.
    regs.set_bits(regs::CTRL_EXT, regs::ctrl_ext::NS_DIS);
    init_rss(regs, config);
    Ok(queues)
}

/// 8.2.3.22.13: MAXFRS.MFS is the largest frame (FCS included) the MAC
/// takes while HLREG0.JUMBOEN is set (8.2.3.22.8); with JUMBOEN clear the
/// limit is 1518 whatever MFS holds. Jumbo frames on above 1518 only.
fn set_max_frame<R: RegisterIo>(regs: &R, max_frame: u32) {
    use regs::maxfrs;
    let v = regs.read32(regs::MAXFRS) & !maxfrs::MFS_MASK;
    regs.write32(regs::MAXFRS, v | max_frame << maxfrs::MFS_SHIFT);
    if max_frame > STANDARD_MAX_FRAME {
        regs.set_bits(regs::HLREG0, regs::hlreg0::JUMBOEN);
    } else {
        regs.clear_bits(regs::HLREG0, regs::hlreg0::JUMBOEN);
    }
}

/// 7.1.2.8: receive-side scaling. The key into RSSRK (little-endian bytes
/// per register), the redirection table into RETA (four entries per
/// register), RXCSUM.PCSD so the descriptor carries the hash (the hash and
/// the packet checksum share the write-back field), and MRQC last: RSS only,
/// hashing TCP/IPv4, UDP/IPv4, IPv4, TCP/IPv6 and IPv6 (Linux's 0x00330001
/// plus UDP/IPv4, so that the datagrams of one UDP flow reach one core).
/// Programmed for one queue too: the stack uses the hash.
fn init_rss<R: RegisterIo>(regs: &R, config: &DeviceConfig) {
    for i in 0..10 {
        regs.write32(regs::RSSRK(i as u32), rss::rssrk_register(&config.rss_key, i));
    }
    let reta = config.effective_reta();
    for i in 0..32 {
        regs.write32(regs::RETA(i as u32), reta.register(i));
    }
    regs.set_bits(regs::RXCSUM, regs::rxcsum::PCSD);
    use regs::mrqc;
    regs.write32(regs::MRQC, mrqc::RSSEN | mrqc::IPV4_TCP | mrqc::IPV4_UDP | mrqc::IPV4 | mrqc::IPV6_TCP | mrqc::IPV6);
}

/// 4.6.8: the transmit path. Returns the queues, not enabled yet.
fn init_tx<R: RegisterIo>(
    regs: &R,
    dma: &dyn DmaAllocator,
    config: &DeviceConfig,
    shared: &Arc<QueueShared>,
) -> Result<Vec<TxQueue<R>>, DriverError> {
    // 8.2.3.22.8: append the CRC and pad short frames to the minimum size.
    regs.set_bits(regs::HLREG0, regs::hlreg0::TXCRCEN | regs::hlreg0::TXPADEN);
    // 8.2.3.9.13: one traffic class, so the whole 160 KB transmit packet
    // buffer goes to PB 0 (size in KB at bits 19:10; ixy gives it 40 KB).
    regs.write32(regs::TXPBSIZE(0), 160 << 10);
    for i in 1..8 {
        regs.write32(regs::TXPBSIZE(i), 0);
    }
    // 8.2.3.9.1: the largest total size of outstanding DMA read requests;
    // the field is 12 bits wide, 0xFFF is its maximum.
    regs.write32(regs::DTXMXSZRQ, 0xFFF);
    // 8.2.3.9.15: MTQC may only change with the descriptor arbiter
    // disabled; 0 = no DCB, no virtualisation, 64 queues in one pool.
    regs.set_bits(regs::RTTDCS, regs::rttdcs::ARBDIS);
    regs.write32(regs::MTQC, 0);
    regs.clear_bits(regs::RTTDCS, regs::rttdcs::ARBDIS);

    let mut queues = Vec::with_capacity(usize::from(config.num_queues));
    for q in 0..config.num_queues {
        let i = u32::from(q);
        let ring = alloc_ring(dma, config.tx_ring_size, "tx", q)?;
        program_ring(regs, &ring, regs::TDBAL(i), regs::TDBAH(i), regs::TDLEN(i), regs::TDH(i), regs::TDT(i));
        // 8.2.3.9.10: prefetch and host thresholds PTHRESH 36, HTHRESH 8
        // (DPDK's defaults). WTHRESH 1, as Linux uses with interrupt
        // moderation off: with a larger WTHRESH the device writes DD back
        // only once that many descriptors are done, and with interrupts
        // masked nothing flushes the remainder, so the last buffers of a
        // burst would never come back to `TxQueue::clean`.
        use regs::dctl;
        let txdctl = regs.read32(regs::TXDCTL(i)) & !(dctl::PTHRESH_MASK | dctl::HTHRESH_MASK | dctl::WTHRESH_MASK);
        regs.write32(regs::TXDCTL(i), txdctl | 36 | 8 << 8 | 1 << 16);
        let mut tx = TxQueue::new(QueueId(q), regs.clone(), ring, Arc::clone(shared));
        // The MAC sends frames up to MAXFRS.MFS with FCS (set_max_frame).
        tx.set_max_len(config.max_frame_size as usize - FCS_LEN);
        queues.push(tx);
    }
    // 8.2.3.9.2: transmit DMA on.
    regs.set_bits(regs::DMATXCTL, regs::dmatxctl::TE);
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: DeviceConfig) -> Option<&'static str> {
        config.validate().err().and_then(|e| e.field())
    }

    #[test]
    fn default_config_is_valid() {
        assert_eq!(DeviceConfig::default().validate(), Ok(()));
        assert_eq!(DeviceConfig::default().min_mempool_entries(), 1024);
    }

    #[test]
    fn validation_names_the_field() {
        let d = DeviceConfig::default;
        assert_eq!(field_of(DeviceConfig { num_queues: 0, ..d() }), Some("num_queues"));
        assert_eq!(field_of(DeviceConfig { num_queues: 17, ..d() }), Some("num_queues"));
        assert_eq!(field_of(DeviceConfig { rx_ring_size: 100, ..d() }), Some("rx_ring_size"));
        assert_eq!(field_of(DeviceConfig { tx_ring_size: 8192, ..d() }), Some("tx_ring_size"));
        assert_eq!(field_of(DeviceConfig { tx_ring_size: 32, ..d() }), Some("tx_ring_size"));
        assert_eq!(field_of(DeviceConfig { buf_size: 1024, ..d() }), Some("buf_size"));
        assert_eq!(field_of(DeviceConfig { buf_size: 3000, ..d() }), Some("buf_size"));
        assert_eq!(field_of(DeviceConfig { max_frame_size: 1517, ..d() }), Some("max_frame_size"));
        assert_eq!(field_of(DeviceConfig { max_frame_size: 9729, ..d() }), Some("max_frame_size"));
        let jumbo = DeviceConfig { max_frame_size: 9018, ..d() };
        let e = jumbo.clone().validate().unwrap_err();
        assert_eq!(e.field(), Some("buf_size"));
        assert!(e.to_string().contains("9018") && e.to_string().contains("16384"), "{e}");
        assert_eq!(field_of(DeviceConfig { buf_size: 16384, ..jumbo }), None);
        assert_eq!(field_of(DeviceConfig { mempool_entries: 1000, ..d() }), Some("mempool_entries"));
        assert_eq!(field_of(DeviceConfig { mac: Some([1, 0, 0, 0, 0, 1]), ..d() }), Some("mac"));
        let reta = Some(Reta::round_robin(4));
        assert_eq!(field_of(DeviceConfig { num_queues: 2, reta, ..d() }), Some("reta"));
        assert_eq!(field_of(DeviceConfig { num_queues: 4, reta, ..d() }), None);
        let e = DeviceConfig { mempool_entries: 10, ..d() }.validate().unwrap_err();
        assert!(e.to_string().contains("mempool_entries"), "{e}");
    }

    #[test]
    fn link_status_decodes_links() {
        use regs::links;
        assert_eq!(LinkStatus::from_links(links::UP | links::SPEED_10G), LinkStatus { up: true, speed_mbps: 10_000 });
        assert_eq!(LinkStatus::from_links(links::UP | links::SPEED_1G).speed_mbps, 1_000);
        assert_eq!(LinkStatus::from_links(links::SPEED_10G), LinkStatus { up: false, speed_mbps: 0 });
    }

    #[test]
    fn init_on_a_dead_device_times_out_naming_the_register() {
        use crate::dma::HeapDma;
        use crate::io::{HeapBar, Mmio};
        // Plain memory: the reset bits never self-clear.
        let io = Mmio::new(Arc::new(HeapBar::new(regs::BAR0_LEN)));
        let err = Device::init(io, &HeapDma, DeviceConfig::default()).unwrap_err();
        assert!(matches!(err, DriverError::Timeout { register: "CTRL", .. }), "{err}");
    }
}
