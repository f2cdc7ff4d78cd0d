//! A strict software model of the Intel 82599 10 GbE controller, for running
//! the real driver on machines without the NIC.
//!
//! The model is a register file plus the receive and transmit engines that
//! the driver programs through it, in the shape of QEMU's igb model and
//! rust-vmm's device models: [`ModelRegs`] implements
//! [`RegisterIo`] by calling the model's read and
//! write handlers, as an emulator traps MMIO. Descriptor rings and packet
//! buffers live in DMA memory the driver allocates from [`ModelDma`], which
//! registers every region in the model's IOMMU table at device addresses of
//! the model's own, disjoint from every virtual address (and, in the
//! hugepage layout, contiguous only within 2 MiB); every DMA the model
//! performs is checked against that table.
//!
//! What the model covers (datasheet sections in the files):
//!
//! - time: a [`VirtualClock`] that moves when the driver waits
//!   (`RegisterIo::delay`); no access within 1 ms of CTRL.RST, PCIe master
//!   disable (CTRL.GIO_DIS, STATUS.GIO, which clears only once receive and
//!   every queue are stopped) before it, and the receive-enable
//!   erratum (SECRXCTRL.RX_DIS, SECRXSTAT.SECRX_RDY) around RXCTRL.RXEN;
//! - init order: DMATXCTL.TE before any TXDCTL.ENABLE, tails moved only
//!   on enabled queues, MTQC only with RTTDCS.ARBDIS, and at RXEN the bits
//!   4.6.7 requires (CTRL_EXT.NS_DIS, DCA_RXCTRL bit 12 clear, RDRXCTL
//!   RSCFRSTSIZE 0 with RSCACKC and FCOE_WRFIX);
//! - reset (CTRL.RST/LNK_RST) to power-on values, EEPROM auto-read (EEC.ARD)
//!   and DMA-init done (RDRXCTL.DMAIDONE), the MAC address in RAL(0)/RAH(0);
//! - the board: its media from the PCI device id ([`crate::board`]); link
//!   up at 10 Gb/s a few LINKS polls after AUTOC.AN_RESTART only when
//!   AUTOC.LMS suits the media and, on SFP+, the transmit laser is on
//!   (ESDP.SDP3 an output driven low), else a fault says why; ANLP1's AN
//!   state for the pipeline reset; the packet buffer sizes (Σ RXPBSIZE
//!   at most 512 KB, Σ TXPBSIZE at most 160 KB when RX/TX is enabled);
//! - interrupt cause and mask registers (EICR clear-on-read, EICS, EIMS,
//!   EIMC), without raising interrupts;
//! - receive: RXCTRL.RXEN, frame length checks, FCTRL/RAL/RAH filtering, RSS
//!   (MRQC, RSSRK, RETA, RXCSUM.PCSD), advanced one-buffer descriptors with
//!   write-back (also across several descriptors), IPv4/TCP/UDP checksum
//!   status, a missed frame when a ring is full;
//! - transmit: advanced data and context descriptors, multi-descriptor
//!   packets, IPv4/TCP/UDP checksum insertion, padding, DD write-back by
//!   TXDCTL.WTHRESH (per RS descriptor, or in bursts, never by a timer),
//!   MAC loopback (HLREG0.LPBK);
//! - clear-on-read statistics (GPRC, GPTC, GORC, GOTC, MPC, RLEC, per-queue
//!   QPRC/QPTC/QBRC/QBTC/QPRDC …).
//!
//! [`Model82599::left_running`] starts the model as a previous owner left
//! it (receive on, queues enabled on rings in freed memory, transmit work
//! pending, filters set, laser off), so that tests exercise every stop and
//! reset step of init.
//!
//! Whatever the datasheet forbids is a [`ModelFault`], never a panic: the
//! model exists to catch driver bugs. A fault on a queue halts that queue
//! until it is re-enabled or the device is reset.
//!
//! ## Choices where the datasheet leaves room
//!
//! - After a reset an SFP+ board's laser is off (ESDP = SDP3_DIR | SDP3,
//!   the state Linux leaves it in when it brings the port down), RAR[1] and
//!   RAR[100] hold a stale valid address and every MTA word stale bits (the
//!   datasheet gives them no reset value), so the driver must switch the
//!   laser on and clear the filters. Copper media never link (no PHY).
//! - A transmit packet shorter than 17 bytes faults (PAYLEN minimum).
//! - Reset values: SRRCTL has BSIZEPACKET = 2 (2 KiB), BSIZEHEADER = 4 and
//!   the legacy descriptor type (the driver must select advanced
//!   one-buffer, or enabling the queue faults); HLREG0.RXCRCSTRP resets to
//!   1 and RDRXCTL.CRCSTRIP to 0, so the driver must set both alike before
//!   RXCTRL.RXEN. LNK_RST alone only takes the link down.
//! - A frame whose queue has no free descriptor: with SRRCTL.DROP_EN it is
//!   dropped and counted in QPRDC(queue) and RNBC(0), not MPC; without
//!   DROP_EN it waits in the packet buffer ([`ModelConfig::rx_fifo_frames`],
//!   default 0) and is counted in MPC(0) when that is full.
//! - RSS selects the queue only with MRQC.MRQE = RSS-only and RXCSUM.PCSD;
//!   a packet with no selected hash field goes to queue 0 with RSS type 0.
//! - A frame larger than one buffer spans descriptors; each carries its own
//!   length, pkt_info and RSS field; EOP and the checksum status only the
//!   last. All descriptors are checked before anything is written.
//! - Transmit: PAYLEN (first data descriptor) must equal the packet length;
//!   the offload flags come from the first data descriptor; context
//!   descriptors are never written back; the longest packet is the longest
//!   frame the receive side accepts. IFCS is not checked (the wire carries
//!   no FCS either way).
//! - Checksum offload (`offload`): the context must describe the frame
//!   (MACLEN, IPLEN, TUCMD.IPV4, L4T), and software must leave the IPv4
//!   checksum zero, the pseudo-header sum in the TCP/UDP field and no bytes
//!   after the IPv4 total length; otherwise the device would insert a wrong
//!   checksum silently, so the model faults. Receive status: IPCS for
//!   every IPv4 header (fragments too), L4CS only for unfragmented TCP and
//!   UDP with a non-zero checksum, whatever RXCSUM holds (it has no enable
//!   for these).
//! - Octet counters: see the `counters` module (low register first, no
//!   octets lost; GORC/GOTC include the 4 CRC bytes, QBRC/QBTC do not).
//!
//! ## Not modelled
//!
//! Interrupts (EICR queue causes, MSI-X, IVAR, EITR), VLAN tags and
//! filters, the multicast table array, VMDq, DCB, flow director, TSO, RSC,
//! header split, IPv6 (no RSS hash and no checksum status for it), flow
//! control, head write-back (faults), LinkSec/IPsec, the EEPROM and flash
//! interfaces, PCI configuration space, and line rate (the wire's
//! business).
//!
//! ## Threads
//!
//! [`Model82599`], [`ModelRegs`] and [`ModelDma`] are cheap clones of one
//! shared model, usable from any thread. All state sits behind one mutex (a
//! simulator may lock; the driver's data path on hardware does not), the
//! IOMMU table behind another: each core writes its own tails through its
//! `ModelRegs`, while another thread calls [`Model82599::pump`]. A register
//! write or a pump takes both once (a register read only the state), so the
//! data path locks once per batch, not per frame. A TDT write transmits
//! synchronously, on the writing thread, and flushes the burst to the wire;
//! frames from the wire reach the rings only when someone pumps.

mod busy;
mod counters;
mod dirty;
mod fault;
mod iommu;
mod offload;
mod packet;
mod regfile;
mod rx;
mod state;
mod tx;

#[cfg(test)]
mod tests;

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

pub use dirty::DIRTY_QUEUES;
pub use fault::ModelFault;
pub use iommu::IOVA_BASE;

use crate::dma::{DmaAllocator, DmaError, DmaRegion, DmaRelease, HEAP_DMA_ALIGN, HeapDma};
use crate::hugepage::HUGEPAGE_SIZE;
use crate::io::RegisterIo;
use crate::time::VirtualClock;
use crate::wire::{Doorbell, Wire};
use iommu::IommuTable;
use state::State;

/// The most frames one [`Model82599::pump`] call takes from the wire, so
/// that a fast peer cannot keep a pump call (and the model's lock) forever.
pub const PUMP_BATCH: usize = 4096;

/// How the model is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The MAC address in the "EEPROM", loaded into RAL(0)/RAH(0) at reset.
    pub mac: [u8; 6],
    /// The PCI device id reported to whoever asks (0x10FB: 82599ES SFI/SFP+).
    /// It also picks the board's media ([`crate::board::media_of`]), which
    /// decide which AUTOC link mode gets link and whether a laser on SDP3
    /// must be switched on.
    pub device_id: u16,
    /// LINKS reads after AUTOC.AN_RESTART that still report the link down.
    pub link_up_after_polls: u32,
    /// Frames the receive packet buffer holds while the head frame's queue
    /// has no free descriptor and SRRCTL.DROP_EN is clear; a frame that
    /// finds it full is missed (MPC). With DROP_EN set a frame without a
    /// descriptor is dropped at once (QPRDC) whatever this says.
    pub rx_fifo_frames: usize,
}

impl Default for ModelConfig {
    /// A locally administered MAC (02:00:00:00:00:01), the 82599ES SFP+
    /// device id, link up on the fourth LINKS read after AN restart, and no
    /// buffering of frames without descriptors.
    fn default() -> Self {
        ModelConfig { mac: [0x02, 0, 0, 0, 0, 0x01], device_id: 0x10FB, link_up_after_polls: 3, rx_fifo_frames: 0 }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Separate from `state` so that a region being dropped (on any thread)
    /// only needs this lock. Lock order: `state`, then `iommu`.
    iommu: Arc<Mutex<IommuTable>>,
    /// Time spent in the model's public entries, when asked for.
    busy: busy::BusyClock,
    /// Rung by the attached wire when frames arrive (if it can).
    bell: Arc<Doorbell>,
    /// [`State::idle`] as of the end of the last locked entry: a pump finds
    /// nothing to do unless `bell` rang since.
    idle: AtomicBool,
}

/// A lock that a panic elsewhere poisoned still guards consistent data for
/// the model's purposes (every handler leaves the state valid between
/// statements that can panic, and none should); never propagate the poison.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut State, &IommuTable) -> R) -> R {
        let mut state = lock(&self.state);
        let iommu = lock(&self.iommu);
        let r = f(&mut state, &iommu);
        // Release, under the lock: a pump that reads it (acquire) sees the
        // state it describes.
        self.idle.store(state.idle(), Ordering::Release);
        r
    }

    fn new(state: State, iommu: Arc<Mutex<IommuTable>>) -> Shared {
        Shared {
            state: Mutex::new(state),
            iommu,
            busy: busy::BusyClock::default(),
            bell: Arc::default(),
            // Not known to be idle until a pump has looked.
            idle: AtomicBool::new(false),
        }
    }

    fn attach(&self, wire: Option<Box<dyn Wire>>) -> Option<Box<dyn Wire>> {
        let mut wire = wire;
        let rings = wire.as_mut().is_some_and(|w| w.ring_on_arrival(Arc::clone(&self.bell)));
        let mut state = lock(&self.state);
        // The next pump looks whatever the new wire already holds.
        self.idle.store(false, Ordering::Release);
        state.attach(wire, rings)
    }
}

/// The software 82599: one port. Clones share the same device.
#[derive(Clone)]
pub struct Model82599 {
    shared: Arc<Shared>,
}

impl fmt::Debug for Model82599 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model82599").field("mac", &self.mac()).field("resets", &self.reset_count()).finish()
    }
}

impl Model82599 {
    /// A powered-on device: registers at their reset values, EEPROM read,
    /// link down until the driver restarts auto-negotiation, no wire.
    pub fn new(config: ModelConfig) -> Model82599 {
        let shared = Shared::new(State::new(config, VirtualClock::new()), Arc::default());
        Model82599 { shared: Arc::new(shared) }
    }

    /// Another device behind the same IOMMU domain as `other`: DMA memory
    /// allocated through either model's [`dma`](Self::dma) is reachable by
    /// both, as for the two ports of one adapter, or two devices that use
    /// physical addresses. A forwarder that receives on one port and
    /// transmits the same buffer on the other needs this.
    pub fn new_sharing_dma(config: ModelConfig, other: &Model82599) -> Model82599 {
        let state = State::new(config, VirtualClock::new());
        let shared = Shared::new(state, Arc::clone(&other.shared.iommu));
        Model82599 { shared: Arc::new(shared) }
    }

    /// Register access for the driver.
    pub fn regs(&self) -> ModelRegs {
        ModelRegs { shared: Arc::clone(&self.shared), clock: self.clock() }
    }

    /// The model's clock. It starts at zero and moves only when the driver
    /// waits through [`RegisterIo::delay`] on [`ModelRegs`] (or a test
    /// advances it), so timing checks (the quiet time after CTRL.RST) are
    /// exact and tests never sleep.
    pub fn clock(&self) -> VirtualClock {
        lock(&self.shared.state).clock.clone()
    }

    /// DMA memory for the driver, laid out as behind an IOMMU (VFIO): each
    /// region is contiguous for the device, at a device address from the
    /// model's IOVA space ([`IOVA_BASE`] up), never its virtual address.
    /// Every region is registered with the model's IOMMU table until it is
    /// dropped.
    pub fn dma(&self) -> ModelDma {
        ModelDma { iommu: Arc::clone(&self.shared.iommu), layout: IovaLayout::Iommu }
    }

    /// DMA memory for the driver laid out as hugepages with physical
    /// addresses are (the sysfs path): see [`IovaLayout::Hugepages`].
    pub fn hugepage_dma(&self) -> ModelDma {
        ModelDma { iommu: Arc::clone(&self.shared.iommu), layout: IovaLayout::Hugepages }
    }

    /// Plugs the port into `wire`, replacing (and dropping) any previous one.
    pub fn attach(&self, wire: Box<dyn Wire>) {
        self.shared.attach(Some(wire));
    }

    /// Unplugs the port; what it transmits meanwhile is lost.
    pub fn detach(&self) -> Option<Box<dyn Wire>> {
        self.shared.attach(None)
    }

    /// Moves frames waiting on the wire into the receive rings (at most
    /// [`PUMP_BATCH`]), and retries transmission that the wire refused as
    /// busy. Returns the number of frames moved in either direction.
    ///
    /// A pump with nothing to do (the last one left no work behind and the
    /// wire has not rung the model's doorbell since) returns at once after
    /// two atomic loads, without a lock, and is not timed by
    /// [`count_busy`](Self::count_busy) (reading the clock would cost more
    /// than the check).
    pub fn pump(&self) -> usize {
        let shared = &*self.shared;
        // Acquire both: pairs with the release in `Shared::with` and the
        // wire's ring.
        if shared.idle.load(Ordering::Acquire) && !shared.bell.is_rung() {
            return 0;
        }
        shared.busy.time(|| {
            // Cleared before the wire is read, so a frame published from
            // now on rings it again.
            shared.bell.take();
            shared.with(|state, iommu| state.pump(iommu))
        })
    }

    /// Starts (`true`) or stops counting the time spent inside the model:
    /// in [`pump`](Self::pump) and in register accesses through any of its
    /// [`ModelRegs`] (a TDT write transmits the batch). Sampled: about one
    /// call in eight, picked at random, reads the clock at entry and exit
    /// and counts eight times over, never per frame; off by default. What
    /// hardware would do in silicon, for a benchmark's "NIC share".
    pub fn count_busy(&self, on: bool) {
        self.shared.busy.set(on);
    }

    /// Nanoseconds (wall clock) spent inside the model while counting was
    /// on ([`count_busy`](Self::count_busy)), summed over every thread that
    /// called in, estimated from the sampled calls; a thread preempted
    /// inside counts as busy.
    pub fn busy_ns(&self) -> u64 {
        self.shared.busy.ns()
    }

    /// Every fault so far (oldest first).
    pub fn faults(&self) -> Vec<ModelFault> {
        lock(&self.shared.state).faults().to_vec()
    }

    /// Every fault so far, forgetting them.
    pub fn take_faults(&self) -> Vec<ModelFault> {
        lock(&self.shared.state).take_faults()
    }

    /// The MAC address in the model's EEPROM.
    pub fn mac(&self) -> [u8; 6] {
        lock(&self.shared.state).config().mac
    }

    /// The PCI device id the model presents.
    pub fn device_id(&self) -> u16 {
        lock(&self.shared.state).config().device_id
    }

    /// Global resets (CTRL.RST) since the model was made; the power-on reset
    /// is not counted.
    pub fn reset_count(&self) -> u64 {
        lock(&self.shared.state).reset_count()
    }

    /// Number of DMA regions currently registered in the IOMMU table.
    pub fn dma_regions(&self) -> usize {
        lock(&self.shared.iommu).len()
    }
}

/// The driver's view of BAR0 on the model: each access calls the model's
/// register handlers.
#[derive(Clone)]
pub struct ModelRegs {
    shared: Arc<Shared>,
    clock: VirtualClock,
}

impl fmt::Debug for ModelRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelRegs")
    }
}

impl RegisterIo for ModelRegs {
    fn read32(&self, offset: u32) -> u32 {
        // Reads never touch DMA memory: the IOMMU table is not needed.
        self.shared.busy.time(|| lock(&self.shared.state).read32(offset))
    }

    fn write32(&self, offset: u32, value: u32) {
        self.shared.busy.time(|| self.shared.with(|state, iommu| state.write32(iommu, offset, value)))
    }

    /// The model's time passes instead of the thread sleeping; the thread
    /// yields so that a waiting driver does not spin at full speed.
    fn delay(&self, d: std::time::Duration) {
        self.clock.advance(d);
        std::thread::yield_now();
    }
}

/// How [`ModelDma`] gives a region its device addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IovaLayout {
    /// As behind an IOMMU (VFIO): a region is contiguous for the device.
    Iommu,
    /// As 2 MiB hugepages seen at their physical addresses (the sysfs path):
    /// each 2 MiB page of a region, 2 MiB-aligned, has a device address of
    /// its own, not adjacent to the next page's, so a DMA that crosses a
    /// 2 MiB boundary inside a region faults (`DmaOutOfBounds`), as it would
    /// run into an unrelated physical page on hardware.
    /// [`HugepageDma`](crate::hugepage::HugepageDma) never hands out more
    /// than one page per region for this reason, and the mempool splits its
    /// memory into regions of at most 2 MiB.
    Hugepages,
}

/// DMA memory from the heap, registered with the model like an IOMMU
/// mapping. Device addresses come from the model's own IOVA space (from
/// [`IOVA_BASE`], which no user-space virtual address reaches), so a driver
/// that writes a virtual address where the device expects a device address
/// (`virt()` for `iova()`) makes the model fault instead of passing.
/// Addresses are never reused, so a stale one stays unmapped.
#[derive(Clone)]
pub struct ModelDma {
    iommu: Arc<Mutex<IommuTable>>,
    layout: IovaLayout,
}

impl fmt::Debug for ModelDma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelDma")
    }
}

/// Unregisters a region from the model's table when the region is dropped
/// (before its memory is freed: `HeapDma::alloc_with` runs this first).
/// Holds the table weakly, so regions may outlive the model.
struct Unmap {
    iommu: Weak<Mutex<IommuTable>>,
    /// The device address of each mapping of the region.
    iovas: Vec<u64>,
}

impl DmaRelease for Unmap {
    fn release(&mut self, _virt: NonNull<u8>, _len: usize, _iova: u64) {
        if let Some(table) = self.iommu.upgrade() {
            let mut table = lock(&table);
            for &iova in &self.iovas {
                table.unmap(iova);
            }
        }
    }
}

impl ModelDma {
    /// The layout of this allocator's regions.
    pub fn layout(&self) -> IovaLayout {
        self.layout
    }
}

impl DmaAllocator for ModelDma {
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
        if size == 0 {
            return Err(DmaError::BadSize { size, reason: "zero-sized region" });
        }
        // (alignment, bytes per separately addressed piece)
        let (align, piece) = match self.layout {
            IovaLayout::Iommu => (HEAP_DMA_ALIGN, size),
            IovaLayout::Hugepages => (HUGEPAGE_SIZE, HUGEPAGE_SIZE),
        };
        let lens: Vec<usize> = (0..size.div_ceil(piece)).map(|i| (size - i * piece).min(piece)).collect();
        let iovas: Vec<u64> = {
            let mut table = lock(&self.iommu);
            lens.iter().map(|&len| table.alloc_iova(len, align as u64)).collect()
        };
        let unmap = Unmap { iommu: Arc::downgrade(&self.iommu), iovas: iovas.clone() };
        let region = HeapDma::alloc_at(size, align, Some(iovas[0]), Box::new(unmap))?;
        let mut table = lock(&self.iommu);
        for (i, (&iova, &len)) in iovas.iter().zip(&lens).enumerate() {
            // In bounds: piece `i` starts inside the region's allocation.
            if let Some(virt) = NonNull::new(region.virt().as_ptr().wrapping_add(i * piece)) {
                table.map(iova, virt, len, i == 0);
            }
        }
        drop(table);
        Ok(region)
    }
}
