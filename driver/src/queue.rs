//! Per-queue receive and transmit rings: `rx_batch` and `tx_batch`.
//!
//! Each ring is an array of 16-byte advanced descriptors in DMA memory
//! (datasheet 7.1.6 for RX, 7.2.3.2 for TX), shared with the device under an
//! ownership protocol: the device owns the descriptors from head to tail,
//! software owns the rest. Software learns that the device is done with a
//! descriptor from its DD bit, and hands descriptors over by writing the
//! tail register. Everything here is safe code: descriptor words are read
//! and written with atomic loads and stores through [`DmaRegion`], and
//! ordering comes from the DMA barriers in [`crate::io`] at the two points
//! the protocol needs them ([`dma_rmb`] after seeing DD, [`dma_wmb`] before
//! writing a tail).
//!
//! A [`QueuePair`] belongs to one core. Nothing in `rx_batch`/`tx_batch`
//! takes a lock, allocates or makes a system call; the only shared state is
//! the device's "stopped" flag, read once per batch.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::desc::{field, rx_status, tx_cmd, tx_olinfo};
use crate::dma::{DescRing, DescView, DmaRegion};
use crate::error::DriverError;
use crate::io::{RegisterIo, dma_rmb, dma_wmb};
use crate::mempool::{BulkFree, Mempool, PacketBuf, PoolAccess, PoolOps};
use crate::offload::{ContextCache, RxChecksum, TxOffload};
use crate::regs;
use crate::stats::QueueStats;

/// The index of a queue pair (RX queue `n` and TX queue `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueId(pub u16);

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue {}", self.0)
    }
}

impl QueueId {
    /// The index as a register index.
    fn reg(self) -> u32 {
        u32::from(self.0)
    }
}

/// TX descriptors are reclaimed in groups of this many: `tx_batch` checks
/// the DD bit of only the last descriptor of a group (the device completes
/// descriptors in order, so DD there means the whole group is done) and
/// frees the group's buffers together. One descriptor read per 32 packets
/// instead of one per packet, as ixy measured; DPDK's `tx_free_thresh` is the
/// same idea. Leftovers under a group stay in the ring until more traffic
/// arrives or [`TxQueue::clean`] is called.
pub const TX_CLEAN_BATCH: usize = 32;

/// Smallest frame `tx_batch` accepts: an Ethernet header. The device pads
/// frames to 60 bytes (HLREG0.TXPADEN), but a frame without a header is a
/// caller bug.
pub const MIN_TX_FRAME: usize = 14;

/// Shortest frame handed to the device: its PAYLEN must be at least 17, so
/// `tx_batch` pads 14..17-byte frames with zeros to 17, as Linux does
/// (ixgbe_xmit_frame). On the wire nothing changes: the device pads to 60
/// anyway. Padding rather than refusing keeps [`MIN_TX_FRAME`] the natural
/// "an Ethernet header" bound for callers.
pub const DEVICE_MIN_TX_FRAME: usize = 17;

/// Largest frame `tx_batch` accepts by default, without FCS: 1514 bytes,
/// the standard maximum. A device configured for jumbo frames
/// (`DeviceConfig::max_frame_size`) raises it to that size less the FCS.
pub const MAX_TX_FRAME: usize = 1514;

/// How long dropping a queue waits for the device to acknowledge the
/// disable (and, for TX, to drain) before giving up.
const DISABLE_TIMEOUT: Duration = Duration::from_millis(100);

/// State the device handle shares with every queue.
#[derive(Debug, Default)]
pub(crate) struct QueueShared {
    /// Set when the device is shut down: the queues are disabled and the
    /// batch functions do nothing.
    stopped: AtomicBool,
}

impl QueueShared {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// The queues of one core: RX and TX queue `id` and the mempool that feeds
/// the RX ring (and from which the core should allocate what it sends).
/// `Send`: move it to the core that owns it.
pub struct QueuePair<R: RegisterIo> {
    /// Which queue pair this is.
    pub id: QueueId,
    /// The receive queue.
    pub rx: RxQueue<R>,
    /// The transmit queue.
    pub tx: TxQueue<R>,
    /// The pool the receive ring takes its buffers from.
    pub pool: Arc<Mempool>,
}

impl<R: RegisterIo> fmt::Debug for QueuePair<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePair").field("id", &self.id).field("rx", &self.rx).field("tx", &self.tx).finish()
    }
}

/// Polls `offset` until `(value & mask) == want`, sleeping `interval`
/// between reads, for at most `timeout`. The first read happens at once, so
/// a bit that is already set (as on the model) costs no sleep.
pub(crate) fn poll_register<R: RegisterIo>(
    regs: &R,
    offset: u32,
    mask: u32,
    want: u32,
    timeout: Duration,
    interval: Duration,
) -> Result<(), Duration> {
    // Time is counted as the sum of the delays taken (the device's time,
    // see `RegisterIo::delay`): on hardware that is at most the wall time,
    // so a timeout is never cut short, and on the model it is exact.
    let mut waited = Duration::ZERO;
    loop {
        if regs.read32(offset) & mask == want {
            return Ok(());
        }
        if waited >= timeout {
            return Err(waited);
        }
        let step = interval.min(timeout - waited);
        regs.delay(step);
        waited += step;
    }
}

const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// A receive queue: a ring of descriptors each holding one mempool entry.
pub struct RxQueue<R: RegisterIo> {
    id: QueueId,
    regs: R,
    ring: Arc<DescRing>,
    pool: Arc<Mempool>,
    /// The mempool entry each descriptor's `pkt_addr` points at. Every slot
    /// always holds one: a descriptor whose frame is handed out is refilled
    /// in the same step, or not handed out at all.
    bufs: Vec<u32>,
    /// Next descriptor to look at.
    next: usize,
    mask: usize,
    buf_size: u32,
    /// Inside a frame that spans descriptors: drop until its EOP.
    discarding: bool,
    shared: Arc<QueueShared>,
    stats: QueueStats,
}

impl<R: RegisterIo> fmt::Debug for RxQueue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxQueue")
            .field("id", &self.id)
            .field("ring_size", &self.bufs.len())
            .field("next", &self.next)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<R: RegisterIo> RxQueue<R> {
    /// Takes a ring of `ring.len() / 16` descriptors and fills every one
    /// with a fresh buffer from `pool` (`pkt_addr` = entry start, no headroom:
    /// the device writes the frame at the address it is given).
    /// `hdr_addr = 0` keeps DD clear (7.1.6.1: DD overlays bit 0 of
    /// `hdr_addr`). The queue is not enabled yet.
    pub(crate) fn new(
        id: QueueId,
        regs: R,
        ring: DmaRegion,
        pool: Arc<Mempool>,
        shared: Arc<QueueShared>,
    ) -> Result<RxQueue<R>, DriverError> {
        let ring = DescRing::new(ring);
        let n = ring.slots();
        let mut bufs = Vec::with_capacity(n);
        // Not claiming the pool: this runs on the init thread, and the pool
        // belongs to the core that will poll the queue.
        let mut access = pool.access(false);
        for slot in 0..n {
            let Some(index) = access.take() else {
                for &index in &bufs {
                    access.give(index);
                }
                return Err(DriverError::Config {
                    field: "mempool_entries",
                    reason: format!("the pool of {id} ran dry filling an RX ring of {n} descriptors"),
                });
            };
            rearm(ring.view(), slot, access.iova(index));
            bufs.push(index);
        }
        drop(access);
        let buf_size = pool.entry_size();
        Ok(RxQueue {
            id,
            regs,
            ring: Arc::new(ring),
            pool,
            bufs,
            next: 0,
            mask: n - 1,
            buf_size,
            discarding: false,
            shared,
            stats: QueueStats::default(),
        })
    }

    /// Enables the queue and hands the ring to the device (4.6.7.1).
    pub(crate) fn start(&mut self) -> Result<(), DriverError> {
        let q = self.id.reg();
        self.regs.set_bits(regs::RXDCTL(q), regs::dctl::ENABLE);
        // 4.6.7.1: the enable takes effect only once RXDCTL.ENABLE reads back
        // set; the tail may be bumped only after that.
        poll_register(
            &self.regs,
            regs::RXDCTL(q),
            regs::dctl::ENABLE,
            regs::dctl::ENABLE,
            Duration::from_secs(1),
            POLL_INTERVAL,
        )
        .map_err(|waited| DriverError::Timeout { what: "RX queue enable", register: "RXDCTL", waited })?;
        // Every descriptor holds a buffer, but RDT is N-1, not N (== 0):
        // intentionally off by one, because RDT == RDH means "the device owns
        // nothing". The device may fill N-1 descriptors; the last one is
        // handed over by the first rx_batch.
        // Write barrier: the descriptor contents written in `new` must be
        // visible to the device before it owns them.
        dma_wmb();
        self.regs.write32(regs::RDT(q), self.mask as u32);
        Ok(())
    }

    /// Receives up to `max` frames, appending them to `out`; returns how many.
    ///
    /// Reads descriptors from the last position until one has DD clear.
    /// Each received descriptor is refilled with a fresh buffer from the
    /// pool before its frame is handed out; when the pool is empty the batch
    /// stops there (counted in `mempool_empty`) and that frame stays in the
    /// ring, to be delivered by a later call. Frames the device flags as
    /// bad, or that span several descriptors, are dropped and counted in
    /// `errors`; their descriptor is re-armed with the same buffer. The tail
    /// register is written once per batch.
    pub fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        if max == 0 || self.shared.is_stopped() {
            return 0;
        }
        let mut rx = RxScan {
            ring: self.ring.view(),
            bufs: &mut self.bufs[..=self.mask],
            buf_size: self.buf_size,
            discarding: &mut self.discarding,
            stats: &mut self.stats,
            slot: self.next,
            received: 0,
            consumed: 0,
            bytes: 0,
        };
        // The core polling the queue owns its pool (claimed on first use):
        // refills and hand-outs then use no atomics. Decided once per batch;
        // the loop is compiled for each case.
        match self.pool.access(true) {
            PoolAccess::Owner(mut pool) => rx.scan(&mut pool, out, max),
            PoolAccess::Shared(mut pool) => rx.scan(&mut pool, out, max),
        }
        let RxScan { slot, received, consumed, bytes, .. } = rx;
        if consumed > 0 {
            self.next = slot;
            self.stats.bytes += bytes;
            self.stats.packets += received as u64;
            self.stats.batches += 1;
            // Write barrier: the refilled descriptors must be visible to the
            // device before the tail write gives them to it.
            dma_wmb();
            // Intentionally off by one: RDT points at the last descriptor
            // processed, never at `next`, so RDT == RDH only when the ring is
            // empty (see `start`).
            self.regs.write32(regs::RDT(self.id.reg()), ((slot + self.mask) & self.mask) as u32);
        }
        received
    }

    /// Software counters of this queue.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Which queue this is.
    pub fn id(&self) -> QueueId {
        self.id
    }

    /// Number of descriptors in the ring.
    pub fn ring_size(&self) -> usize {
        self.bufs.len()
    }

    /// The pool the ring refills from.
    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }
}

impl<R: RegisterIo> Drop for RxQueue<R> {
    /// Disables the queue, waits until the device confirms (4.6.7.1:
    /// RXDCTL.ENABLE reads back 0 once the queue has stopped writing), and
    /// only then returns the ring's buffers to the pool and frees the ring.
    /// If the device never confirms, the ring and its buffers are leaked on
    /// purpose: a device still writing into freed memory is far worse.
    fn drop(&mut self) {
        let q = self.id.reg();
        self.regs.clear_bits(regs::RXDCTL(q), regs::dctl::ENABLE);
        let stopped = poll_register(&self.regs, regs::RXDCTL(q), regs::dctl::ENABLE, 0, DISABLE_TIMEOUT, POLL_INTERVAL);
        if stopped.is_err() {
            // Keep the ring and the pool's memory alive forever, and never
            // return the ring's buffers: the device may still write them.
            std::mem::forget(Arc::clone(&self.ring));
            std::mem::forget(Arc::clone(&self.pool));
            return;
        }
        let mut pool = self.pool.access(false);
        for &index in &self.bufs {
            pool.give(index);
        }
    }
}

/// Points RX descriptor `slot` at the buffer at `iova` and clears DD:
/// `hdr_addr = 0` overwrites the write-back status dword (7.1.6.1).
#[inline(always)]
fn rearm(ring: DescView<'_>, slot: usize, iova: u64) {
    ring.write_u64(slot, field::RX_PKT_ADDR, iova);
    ring.write_u64(slot, field::RX_HDR_ADDR, 0);
}

/// The state of one `rx_batch` scan over the ring.
struct RxScan<'a> {
    ring: DescView<'a>,
    /// The entry of each descriptor; its length is the ring size.
    bufs: &'a mut [u32],
    buf_size: u32,
    discarding: &'a mut bool,
    stats: &'a mut QueueStats,
    /// Next descriptor to look at.
    slot: usize,
    received: usize,
    consumed: usize,
    bytes: u64,
}

impl RxScan<'_> {
    /// Reads descriptors from `slot` on until one has DD clear, `max` frames
    /// were received or the pool ran dry (see `rx_batch`).
    #[inline(always)]
    fn scan<P: PoolOps>(&mut self, pool: &mut P, out: &mut Vec<PacketBuf>, max: usize) {
        let ring = self.ring;
        // A power of two: the ring size.
        let mask = self.bufs.len() - 1;
        let mut slot = self.slot;
        let mut discarding = *self.discarding;
        // The counters live in locals (registers) during the loop: stored
        // through `self` they would be reloaded after every write to `out`.
        let (mut received, mut consumed, mut bytes) = (self.received, self.consumed, self.bytes);
        while received < max {
            let status = ring.read_u32(slot, field::RX_WB_STATUS_ERROR);
            if status & rx_status::DD == 0 {
                break;
            }
            // Read barrier: pairs with the device's write of DD, which it
            // makes after the rest of the write-back and the frame data
            // (7.1.6.2).
            dma_rmb();
            let len = ring.read_u32(slot, field::RX_WB_LENGTH_VLAN) & 0xFFFF;
            let eop = status & rx_status::EOP != 0;
            let bad = status & rx_status::ERR_RXE != 0 || len == 0 || len > self.buf_size;
            if discarding || !eop || bad {
                // Drop the frame; the descriptor keeps its buffer. The
                // write-back overwrote pkt_addr, so write it again.
                // Count each dropped frame once, at its first descriptor.
                self.stats.errors += u64::from(!discarding);
                discarding = !eop;
                rearm(ring, slot, pool.iova(self.bufs[slot & mask]));
            } else {
                let Some(fresh) = pool.take() else {
                    // Pool empty: leave this descriptor as it is (DD set,
                    // frame intact, not owned by the device because RDT is
                    // behind it) and retry on the next call.
                    self.stats.mempool_empty += 1;
                    break;
                };
                let old = std::mem::replace(&mut self.bufs[slot & mask], fresh);
                rearm(ring, slot, pool.iova(fresh));
                // 7.1.6: the frame starts at pkt_addr, which is the entry
                // start; `len` <= buf_size was checked above. 7.1.6.2:
                // IPCS/L4CS say what was checked, IPE/TCPE what failed; the
                // verdict goes into the handle as it is made.
                out.push(pool.wrap_received(old, len as u16, RxChecksum::from_status(status)));
                bytes += u64::from(len);
                received += 1;
            }
            consumed += 1;
            slot = (slot + 1) & mask;
        }
        (self.received, self.consumed, self.bytes) = (received, consumed, bytes);
        self.slot = slot;
        *self.discarding = discarding;
    }
}

/// Makes a frame the device may send out of one whose length is outside
/// [`DEVICE_MIN_TX_FRAME`]..=the queue's largest frame: one of [`MIN_TX_FRAME`]..17
/// bytes is padded with zeros to 17 (every buffer holds far more, so this
/// only fails if the caller took headroom away). Returns the padded frame,
/// or `None` (the buffer dropped) for one that cannot be sent. Kept out of
/// the loop, and by value so the loop keeps its buffer in registers: it is
/// rare.
#[cold]
#[inline(never)]
fn pad_short_frame(mut buf: PacketBuf) -> Option<PacketBuf> {
    let len = buf.len();
    if !(MIN_TX_FRAME..DEVICE_MIN_TX_FRAME).contains(&len) || !buf.set_len(DEVICE_MIN_TX_FRAME) {
        return None;
    }
    buf.data_mut()[len..].fill(0);
    Some(buf)
}

/// A transmit queue: a ring of descriptors and, per descriptor, the buffer
/// it sends until the device is done with it.
pub struct TxQueue<R: RegisterIo> {
    id: QueueId,
    regs: R,
    ring: Arc<DescRing>,
    /// The buffer each in-flight descriptor sends. The whole `PacketBuf` is
    /// kept (not just an index), so a buffer from any pool goes back to its
    /// own pool when cleaned.
    bufs: Vec<Option<PacketBuf>>,
    /// Next descriptor to fill (mirrors TDT).
    tail: usize,
    /// Oldest descriptor not yet cleaned.
    clean: usize,
    mask: usize,
    /// Largest frame accepted, without FCS (MAXFRS.MFS - 4 with jumbo
    /// frames on, else [`MAX_TX_FRAME`]).
    max_len: usize,
    /// What the device's two context slots hold.
    contexts: ContextCache,
    shared: Arc<QueueShared>,
    stats: QueueStats,
}

impl<R: RegisterIo> fmt::Debug for TxQueue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxQueue")
            .field("id", &self.id)
            .field("ring_size", &self.bufs.len())
            .field("in_flight", &self.in_flight())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<R: RegisterIo> TxQueue<R> {
    /// Takes a ring of `ring.len() / 16` descriptors. Their contents do not
    /// matter: the device reads none before TDT moves past it.
    pub(crate) fn new(id: QueueId, regs: R, ring: DmaRegion, shared: Arc<QueueShared>) -> TxQueue<R> {
        let ring = DescRing::new(ring);
        let n = ring.slots();
        TxQueue {
            id,
            regs,
            ring: Arc::new(ring),
            bufs: (0..n).map(|_| None).collect(),
            tail: 0,
            clean: 0,
            mask: n - 1,
            max_len: MAX_TX_FRAME,
            contexts: ContextCache::default(),
            shared,
            stats: QueueStats::default(),
        }
    }

    /// Sets the largest frame (without FCS) `tx_batch` accepts: what the
    /// MAC was programmed to send, so a longer frame never reaches it.
    pub(crate) fn set_max_len(&mut self, len: usize) {
        self.max_len = len;
    }

    /// The largest frame (without FCS) `tx_batch` accepts.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Enables the queue (4.6.8: TDH and TDT are 0 from init; ENABLE must
    /// read back set before the queue is used).
    pub(crate) fn start(&mut self) -> Result<(), DriverError> {
        let q = self.id.reg();
        // A queue being enabled holds no context yet.
        self.contexts.clear();
        self.regs.set_bits(regs::TXDCTL(q), regs::dctl::ENABLE);
        poll_register(
            &self.regs,
            regs::TXDCTL(q),
            regs::dctl::ENABLE,
            regs::dctl::ENABLE,
            Duration::from_secs(1),
            POLL_INTERVAL,
        )
        .map_err(|waited| DriverError::Timeout { what: "TX queue enable", register: "TXDCTL", waited })
    }

    /// Sends as many buffers from the front of `bufs` as the ring has room
    /// for, removing them from the vector; returns how many were queued.
    ///
    /// First reclaims finished descriptors in groups of [`TX_CLEAN_BATCH`].
    /// Buffers that do not fit stay in `bufs`, in order, for the next call
    /// (counted once in `ring_full`). A buffer whose length is outside
    /// [`MIN_TX_FRAME`]..=[`max_len`](Self::max_len) is removed and dropped (counted in
    /// `errors`): leaving it at the front would block the queue forever. A
    /// frame shorter than [`DEVICE_MIN_TX_FRAME`] is padded with zeros to
    /// that length. A buffer that asks for a checksum offload
    /// ([`PacketBuf::set_tx_offload`]) but is shorter than the headers it
    /// names is dropped the same way. Such a buffer is sent with the
    /// offload bits of a data descriptor, after a context descriptor when
    /// neither of the queue's two context slots holds its parameters.
    /// Every descriptor asks for a status report (RS), so DD of any
    /// descriptor tells that it and all before it are done. The tail
    /// register is written once per batch.
    pub fn tx_batch(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        if bufs.is_empty() || self.shared.is_stopped() {
            return 0;
        }
        self.clean_groups();
        let room = self.mask - self.in_flight();
        let take = self.fitting(bufs, room);
        if take < bufs.len() {
            self.stats.ring_full += 1;
        }
        let ring = self.ring.view();
        let mask = self.mask;
        let max_len = self.max_len;
        // `tail & mask` indexes both the ring and this (length mask + 1).
        let slots = &mut self.bufs[..=mask];
        let start = self.tail;
        let mut tail = start;
        let mut bytes = 0u64;
        // Buffers dropped for a bad length or offload request; the rest of
        // the `take` were sent.
        let mut refused = 0;
        for mut buf in bufs.drain(..take) {
            let mut len = buf.len();
            if !(DEVICE_MIN_TX_FRAME..=max_len).contains(&len) {
                match pad_short_frame(buf) {
                    Some(padded) => {
                        buf = padded;
                        len = DEVICE_MIN_TX_FRAME;
                    }
                    None => {
                        refused += 1;
                        continue;
                    }
                }
            }
            let len32 = len as u32;
            let mut olinfo = len32 << tx_olinfo::PAYLEN_SHIFT;
            // The handle's flag first: a frame without a request never
            // reads the pool's offload table.
            if buf.wants_offload() {
                let offload = buf.tx_offload();
                if len < offload.min_frame() {
                    // Shorter than the headers the request names.
                    refused += 1;
                    continue;
                }
                let (idx, write) = self.contexts.select(offload);
                if write {
                    // The context descriptor takes the tail slot, which
                    // stays `None` (see `done`).
                    write_context(&ring, tail, offload, idx);
                    tail = (tail + 1) & mask;
                    self.stats.contexts += 1;
                }
                olinfo |= offload.olinfo_bits(idx);
            }
            // 7.2.3.2.4: one advanced data descriptor per frame: EOP (the
            // frame ends here), IFCS (append the CRC), RS (write DD back),
            // DEXT + DTYP_DATA (advanced data format); PAYLEN is the whole
            // frame without TSO; POPTS/CC/IDX for an offload. Writing
            // olinfo_status also clears the DD bit left over from the
            // descriptor's previous use.
            ring.write_u64(tail, field::TX_BUFFER_ADDR, buf.iova());
            ring.write_u32(
                tail,
                field::TX_CMD_TYPE_LEN,
                tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS | tx_cmd::DEXT | tx_cmd::DTYP_DATA | len32,
            );
            ring.write_u32(tail, field::TX_OLINFO_STATUS, olinfo);
            // The descriptor at the tail was cleaned (it holds `None`): the
            // ring never fills its last slot, and cleaning empties what it
            // reclaims. Nothing to drop, so skip the check for one.
            let old = slots[tail & mask].replace(buf);
            debug_assert!(old.is_none(), "TX descriptor {tail} reused before it was cleaned");
            std::mem::forget(old);
            tail = (tail + 1) & mask;
            bytes += len as u64;
        }
        self.stats.errors += refused as u64;
        let sent = take - refused;
        self.tail = tail;
        if sent > 0 {
            self.stats.bytes += bytes;
            self.stats.packets += sent as u64;
            self.stats.batches += 1;
            // Write barrier: the descriptors (and the frame data the caller
            // wrote) must be visible to the device before the tail write
            // hands them over.
            dma_wmb();
            self.regs.write32(regs::TDT(self.id.reg()), self.tail as u32);
        }
        sent
    }

    /// How many frames from the front of `bufs` fit in `room` descriptors:
    /// one each, plus one for each context descriptor the cache will ask
    /// for (a dry run of the choices `tx_batch` then makes).
    fn fitting(&self, bufs: &[PacketBuf], room: usize) -> usize {
        if bufs.len().saturating_mul(2) <= room {
            // Even with a context descriptor before every frame.
            return bufs.len();
        }
        let mut cache = self.contexts;
        let mut used = 0;
        for (i, buf) in bufs.iter().enumerate() {
            let need = if buf.wants_offload() {
                let offload = buf.tx_offload();
                match sendable(buf.len(), self.max_len, offload) {
                    false => 0,
                    true => 1 + usize::from(cache.select(offload).1),
                }
            } else {
                usize::from(sendable(buf.len(), self.max_len, TxOffload::NONE))
            };
            if used + need > room {
                return i;
            }
            used += need;
        }
        bufs.len()
    }

    /// Whether the device is done with descriptor `slot`: its DD bit, or for
    /// a context descriptor (the in-flight slot without a buffer), which
    /// the device never writes back, the DD bit of the data descriptor
    /// written right after it.
    fn done(&self, slot: usize) -> bool {
        let slot = if self.bufs[slot].is_none() { (slot + 1) & self.mask } else { slot };
        self.ring.view().read_u32(slot, field::TX_OLINFO_STATUS) & tx_olinfo::DD != 0
    }

    /// Returns the buffers of `count` descriptors from `clean` on to their
    /// pools. Not inlined: it runs once per group of [`TX_CLEAN_BATCH`], and
    /// on its own its loop keeps the free stack's top in registers.
    #[inline(never)]
    fn release(&mut self, count: usize) {
        let (clean, mask) = (self.clean, self.mask);
        let slots = &mut self.bufs[..=mask];
        BulkFree::free_all((0..count).filter_map(|i| slots[(clean + i) & mask].take()));
        self.clean = (self.clean + count) & self.mask;
        self.stats.cleaned += count as u64;
    }

    /// Reclaims whole groups of [`TX_CLEAN_BATCH`] finished descriptors.
    fn clean_groups(&mut self) -> usize {
        let mut cleaned = 0;
        while self.in_flight() >= TX_CLEAN_BATCH {
            if !self.done((self.clean + TX_CLEAN_BATCH - 1) & self.mask) {
                break;
            }
            // Read barrier: the device has finished reading these buffers
            // before it wrote DD; only now may they be reused.
            dma_rmb();
            self.release(TX_CLEAN_BATCH);
            cleaned += TX_CLEAN_BATCH;
        }
        cleaned
    }

    /// Reclaims every finished descriptor, one by one (also groups smaller
    /// than [`TX_CLEAN_BATCH`]); returns how many. Call it when the queue
    /// goes idle to get every buffer back.
    pub fn clean(&mut self) -> usize {
        let mut cleaned = self.clean_groups();
        let mut count = 0;
        while count < self.in_flight() && self.done((self.clean + count) & self.mask) {
            count += 1;
        }
        if count > 0 {
            // Read barrier: as in `clean_groups`.
            dma_rmb();
            self.release(count);
            cleaned += count;
        }
        cleaned
    }

    /// Descriptors handed to the device and not yet cleaned.
    pub fn in_flight(&self) -> usize {
        (self.tail + self.bufs.len() - self.clean) & self.mask
    }

    /// Buffers the queue holds: those of the in-flight data descriptors
    /// (context descriptors hold none). For leak accounting; walks the ring.
    pub fn buffers_in_flight(&self) -> usize {
        (0..self.in_flight()).filter(|i| self.bufs[(self.clean + i) & self.mask].is_some()).count()
    }

    /// Software counters of this queue.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Which queue this is.
    pub fn id(&self) -> QueueId {
        self.id
    }

    /// Number of descriptors in the ring; at most `ring_size() - 1` are in
    /// flight at once.
    pub fn ring_size(&self) -> usize {
        self.bufs.len()
    }
}

/// Whether `tx_batch` can send a buffer of `len` bytes asking for
/// `offload` on a queue whose largest frame is `max_len`: a length it
/// accepts (short ones are padded), long enough for the headers the
/// request names.
#[inline]
fn sendable(len: usize, max_len: usize, offload: TxOffload) -> bool {
    (MIN_TX_FRAME..=max_len).contains(&len) && (offload.is_none() || len >= offload.min_frame())
}

/// Writes an advanced context descriptor (7.2.3.2.3) for `offload` into
/// context slot `idx` at descriptor `slot`. It holds no buffer and gets no
/// write-back: the data descriptor that follows it tells when it is done
/// (see `TxQueue::done`).
fn write_context(ring: &DescView<'_>, slot: usize, offload: TxOffload, idx: u32) {
    let (macip_seed, tucmd, mss_l4len_idx) = offload.context_words(idx);
    // Layout: vlan_macip_lens and seqnum_seed where a data descriptor has
    // its address, type_tucmd_mlhl where it has cmd_type_len.
    ring.write_u64(slot, field::TX_BUFFER_ADDR, macip_seed);
    ring.write_u32(slot, field::TX_CMD_TYPE_LEN, tucmd);
    ring.write_u32(slot, field::TX_OLINFO_STATUS, mss_l4len_idx);
}

impl<R: RegisterIo> Drop for TxQueue<R> {
    /// Lets the device finish what it was given (TDH reaches TDT), disables
    /// the queue and waits for TXDCTL.ENABLE to read back 0 (4.6.8), and
    /// only then returns the in-flight buffers and frees the ring. If the
    /// device never confirms, ring and buffers are leaked on purpose, as for
    /// RX.
    fn drop(&mut self) {
        let q = self.id.reg();
        if self.regs.read32(regs::TXDCTL(q)) & regs::dctl::ENABLE != 0 {
            // Best effort: frames not sent within the timeout are discarded.
            let _ = poll_register(&self.regs, regs::TDH(q), u32::MAX, self.tail as u32, DISABLE_TIMEOUT, POLL_INTERVAL);
        }
        self.regs.clear_bits(regs::TXDCTL(q), regs::dctl::ENABLE);
        let stopped = poll_register(&self.regs, regs::TXDCTL(q), regs::dctl::ENABLE, 0, DISABLE_TIMEOUT, POLL_INTERVAL);
        if stopped.is_err() {
            std::mem::forget(Arc::clone(&self.ring));
            std::mem::forget(std::mem::take(&mut self.bufs));
            return;
        }
        self.bufs.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::fence;

    use super::*;
    use crate::desc::DESC_SIZE;
    use crate::dma::{DmaAllocator, HeapDma};
    use crate::io::{HeapBar, Mmio};
    use crate::offload::L4Proto;

    const N: usize = 64;

    fn bar() -> Mmio {
        Mmio::new(Arc::new(HeapBar::new(regs::BAR0_LEN)))
    }

    fn rx_queue(io: &Mmio, entries: u32) -> (RxQueue<Mmio>, Arc<Mempool>) {
        let pool = Mempool::new(&HeapDma, entries, 2048).unwrap();
        let ring = HeapDma.alloc(N * DESC_SIZE).unwrap();
        let mut rx = RxQueue::new(QueueId(1), io.clone(), ring, Arc::clone(&pool), Arc::default()).unwrap();
        rx.start().unwrap();
        (rx, pool)
    }

    /// Plays the device: writes back descriptor `slot` with `len` bytes.
    fn write_back(rx: &RxQueue<Mmio>, slot: usize, status: u32, len: u32) {
        rx.ring.store_u32(slot * DESC_SIZE + field::RX_WB_LENGTH_VLAN, len);
        fence(Ordering::Release);
        rx.ring.store_u32(slot * DESC_SIZE + field::RX_WB_STATUS_ERROR, status);
    }

    const GOOD: u32 = rx_status::DD | rx_status::EOP;

    #[test]
    fn rx_start_arms_every_descriptor_and_sets_tail_one_behind() {
        let io = bar();
        let (rx, pool) = rx_queue(&io, 256);
        assert_eq!(io.read32(regs::RDT(1)), (N - 1) as u32);
        assert_eq!(pool.free_count(), 256 - N);
        for slot in 0..N {
            assert_eq!(rx.ring.load_u64(slot * DESC_SIZE + field::RX_PKT_ADDR), pool.iova(rx.bufs[slot]));
            assert_eq!(rx.ring.load_u64(slot * DESC_SIZE + field::RX_HDR_ADDR), 0);
        }
        drop(rx);
        assert_eq!(io.read32(regs::RXDCTL(1)) & regs::dctl::ENABLE, 0);
        assert_eq!(pool.free_count(), 256);
    }

    #[test]
    fn rx_batch_hands_out_frames_refills_and_writes_the_tail_once() {
        let io = bar();
        let (mut rx, pool) = rx_queue(&io, 256);
        for slot in 0..3 {
            write_back(&rx, slot, GOOD, 60 + slot as u32);
        }
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 2), 2);
        assert_eq!(io.read32(regs::RDT(1)), 1);
        assert_eq!(rx.rx_batch(&mut out, 32), 1);
        assert_eq!(io.read32(regs::RDT(1)), 2);
        assert_eq!(rx.rx_batch(&mut out, 32), 0);
        assert_eq!(out.iter().map(PacketBuf::len).collect::<Vec<_>>(), [60, 61, 62]);
        assert!(out.iter().all(|b| b.headroom() == 0));
        // Refilled: DD clear, a fresh buffer in each descriptor.
        for slot in 0..3 {
            assert_eq!(rx.ring.load_u32(slot * DESC_SIZE + field::RX_WB_STATUS_ERROR) & rx_status::DD, 0);
            assert_eq!(rx.ring.load_u64(slot * DESC_SIZE + field::RX_PKT_ADDR), pool.iova(rx.bufs[slot]));
        }
        assert_eq!(rx.stats().packets, 3);
        assert_eq!(rx.stats().bytes, 183);
        assert_eq!(rx.stats().batches, 2);
        drop(out);
        drop(rx);
        assert_eq!(pool.free_count(), 256);
    }

    #[test]
    fn the_thread_polling_the_rx_queue_owns_its_pool() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 256, 2048).unwrap();
        let ring = HeapDma.alloc(N * DESC_SIZE).unwrap();
        // Built on one thread (as `Device::init` does) without claiming it.
        let (rx, pool) = std::thread::spawn(move || {
            let mut rx = RxQueue::new(QueueId(1), io.clone(), ring, Arc::clone(&pool), Arc::default()).unwrap();
            rx.start().unwrap();
            assert!(!pool.is_owned_here());
            (rx, pool)
        })
        .join()
        .unwrap();
        let mut rx = rx;
        assert_eq!(pool.free_count(), 256 - N);
        write_back(&rx, 0, GOOD, 60);
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 32), 1);
        assert!(pool.is_owned_here(), "the first rx_batch claims the pool");
        drop(out);
        assert_eq!(pool.free_count(), 256 - N);
        drop(rx);
        assert_eq!(pool.free_count(), 256);
    }

    #[test]
    fn rx_wraps_around_the_ring() {
        let io = bar();
        let (mut rx, pool) = rx_queue(&io, 256);
        let mut out = Vec::new();
        for round in 0..3 * N {
            write_back(&rx, round % N, GOOD, 100);
            assert_eq!(rx.rx_batch(&mut out, 8), 1, "round {round}");
            assert_eq!(io.read32(regs::RDT(1)), (round % N) as u32);
            out.clear();
        }
        drop(rx);
        assert_eq!(pool.free_count(), 256);
    }

    #[test]
    fn rx_empty_pool_shortens_the_batch_and_keeps_the_frame() {
        let io = bar();
        // One spare buffer beyond the ring.
        let (mut rx, pool) = rx_queue(&io, N as u32 + 1);
        write_back(&rx, 0, GOOD, 70);
        write_back(&rx, 1, GOOD, 71);
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 32), 1);
        assert_eq!(rx.stats().mempool_empty, 1);
        assert_eq!(io.read32(regs::RDT(1)), 0);
        assert_eq!(rx.rx_batch(&mut out, 32), 0);
        assert_eq!(rx.stats().mempool_empty, 2);
        out.clear();
        assert_eq!(rx.rx_batch(&mut out, 32), 1);
        assert_eq!(out[0].len(), 71);
        assert_eq!(io.read32(regs::RDT(1)), 1);
        drop((out, rx));
        assert_eq!(pool.free_count(), N + 1);
    }

    #[test]
    fn rx_drops_errored_and_multi_descriptor_frames_counting_each_once() {
        let io = bar();
        let (mut rx, pool) = rx_queue(&io, 256);
        write_back(&rx, 0, GOOD | rx_status::ERR_RXE, 60);
        write_back(&rx, 1, rx_status::DD, 2048); // first of three
        write_back(&rx, 2, rx_status::DD, 2048);
        write_back(&rx, 3, GOOD, 100); // its last
        write_back(&rx, 4, GOOD, 3000); // longer than the buffer
        write_back(&rx, 5, GOOD, 64);
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 32), 1);
        assert_eq!(out[0].len(), 64);
        assert_eq!(rx.stats().errors, 3);
        assert_eq!(io.read32(regs::RDT(1)), 5);
        // Dropped frames' descriptors are re-armed with their own buffer.
        for slot in 0..5 {
            assert_eq!(rx.ring.load_u64(slot * DESC_SIZE + field::RX_PKT_ADDR), pool.iova(rx.bufs[slot]));
            assert_eq!(rx.ring.load_u64(slot * DESC_SIZE + field::RX_HDR_ADDR), 0);
        }
        drop((out, rx));
        assert_eq!(pool.free_count(), 256);
    }

    fn tx_queue(io: &Mmio) -> TxQueue<Mmio> {
        let ring = HeapDma.alloc(N * DESC_SIZE).unwrap();
        let mut tx = TxQueue::new(QueueId(2), io.clone(), ring, Arc::default());
        tx.start().unwrap();
        tx
    }

    fn frames(pool: &Arc<Mempool>, n: usize, len: usize) -> Vec<PacketBuf> {
        (0..n)
            .map(|_| {
                let mut b = pool.alloc().unwrap();
                assert!(b.set_len(len));
                b
            })
            .collect()
    }

    /// Plays the device: completes every descriptor up to TDT.
    fn complete_all(io: &Mmio, tx: &TxQueue<Mmio>) {
        let tdt = io.read32(regs::TDT(2)) as usize;
        let mut slot = io.read32(regs::TDH(2)) as usize;
        while slot != tdt {
            let off = slot * DESC_SIZE + field::TX_OLINFO_STATUS;
            tx.ring.store_u32(off, tx.ring.load_u32(off) | tx_olinfo::DD);
            slot = (slot + 1) % N;
        }
        io.write32(regs::TDH(2), tdt as u32);
    }

    #[test]
    fn tx_batch_fills_descriptors_and_stops_at_a_full_ring() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 256, 2048).unwrap();
        let mut tx = tx_queue(&io);
        let mut bufs = frames(&pool, 100, 60);
        let first_iova = bufs[0].iova();
        assert_eq!(tx.tx_batch(&mut bufs), N - 1);
        assert_eq!(bufs.len(), 100 - (N - 1));
        assert_eq!(tx.stats().ring_full, 1);
        assert_eq!(tx.in_flight(), N - 1);
        assert_eq!(io.read32(regs::TDT(2)), (N - 1) as u32);
        assert_eq!(tx.ring.load_u64(field::TX_BUFFER_ADDR), first_iova);
        assert_eq!(tx.ring.load_u32(field::TX_CMD_TYPE_LEN), 0x2B30_0000 | 60);
        assert_eq!(tx.ring.load_u32(field::TX_OLINFO_STATUS), 60 << 14);
        // Nothing done yet: nothing to clean, still full.
        assert_eq!(tx.tx_batch(&mut bufs), 0);
        assert_eq!(tx.stats().ring_full, 2);
        complete_all(&io, &tx);
        // tx_batch cleans whole groups of 32 only: 63 in flight -> 32
        // cleaned, 31 left, room for 32.
        assert_eq!(tx.tx_batch(&mut bufs), 32);
        assert_eq!(tx.stats().cleaned, 32);
        complete_all(&io, &tx);
        assert_eq!(tx.clean(), N - 1);
        assert_eq!(tx.in_flight(), 0);
        assert_eq!(tx.tx_batch(&mut bufs), 100 - (N - 1) - 32);
        assert!(bufs.is_empty());
        complete_all(&io, &tx);
        drop(tx);
        assert_eq!(pool.free_count(), 256);
    }

    #[test]
    fn tx_refuses_bad_lengths_without_blocking() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 16, 2048).unwrap();
        let mut tx = tx_queue(&io);
        let mut bufs = frames(&pool, 1, 0);
        bufs.extend(frames(&pool, 1, MAX_TX_FRAME + 1));
        bufs.extend(frames(&pool, 1, MAX_TX_FRAME));
        assert_eq!(tx.tx_batch(&mut bufs), 1);
        assert!(bufs.is_empty());
        assert_eq!(tx.stats().errors, 2);
        assert_eq!(pool.free_count(), 15);
        complete_all(&io, &tx);
        drop(tx);
        assert_eq!(pool.free_count(), 16);
    }

    #[test]
    fn tx_keeps_buffers_of_other_pools_and_returns_them_home() {
        let io = bar();
        let a = Mempool::new(&HeapDma, 8, 2048).unwrap();
        let b = Mempool::new(&HeapDma, 8, 2048).unwrap();
        let mut tx = tx_queue(&io);
        let mut bufs = frames(&a, 3, 60);
        bufs.extend(frames(&b, 5, 60));
        assert_eq!(tx.tx_batch(&mut bufs), 8);
        assert_eq!((a.free_count(), b.free_count()), (5, 3));
        complete_all(&io, &tx);
        assert_eq!(tx.clean(), 8);
        assert_eq!((a.free_count(), b.free_count()), (8, 8));
    }

    /// Plays the device as the 82599 does with contexts: DD only into the
    /// data descriptors up to TDT (a context descriptor gets no write-back).
    fn complete_data_only(io: &Mmio, tx: &TxQueue<Mmio>) {
        let tdt = io.read32(regs::TDT(2)) as usize;
        let mut slot = io.read32(regs::TDH(2)) as usize;
        while slot != tdt {
            let cmd = tx.ring.load_u32(slot * DESC_SIZE + field::TX_CMD_TYPE_LEN);
            if cmd & tx_cmd::DTYP_MASK == tx_cmd::DTYP_DATA {
                let off = slot * DESC_SIZE + field::TX_OLINFO_STATUS;
                tx.ring.store_u32(off, tx.ring.load_u32(off) | tx_olinfo::DD);
            }
            slot = (slot + 1) % N;
        }
        io.write32(regs::TDH(2), tdt as u32);
    }

    fn with_offload(mut bufs: Vec<PacketBuf>, off: TxOffload) -> Vec<PacketBuf> {
        for b in &mut bufs {
            b.set_tx_offload(off);
        }
        bufs
    }

    fn tcp_offload() -> TxOffload {
        TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap()
    }

    #[test]
    fn tx_writes_a_context_descriptor_once_per_parameter_change() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 64, 2048).unwrap();
        let mut tx = tx_queue(&io);
        let (tcp, udp) = (tcp_offload(), TxOffload::ipv4(14, 20, Some(L4Proto::Udp)).unwrap());
        let mut bufs = with_offload(frames(&pool, 3, 60), tcp);
        bufs.extend(frames(&pool, 1, 60));
        bufs.extend(with_offload(frames(&pool, 2, 60), udp));
        bufs.extend(with_offload(frames(&pool, 1, 60), tcp));
        assert_eq!(tx.tx_batch(&mut bufs), 7);
        // Ring: context (TCP, slot 0), three data, one plain data, context
        // (UDP, slot 1), two data, one data back on slot 0.
        assert_eq!(tx.stats().contexts, 2);
        assert_eq!((tx.in_flight(), tx.buffers_in_flight()), (9, 7));
        assert_eq!(io.read32(regs::TDT(2)), 9);
        let word = |slot: usize, f: usize| tx.ring.load_u32(slot * DESC_SIZE + f);
        let (macip, tucmd, idx) = tcp.context_words(0);
        assert_eq!(tx.ring.load_u64(field::TX_BUFFER_ADDR), macip);
        assert_eq!(word(0, field::TX_CMD_TYPE_LEN), tucmd);
        assert_eq!(word(0, field::TX_OLINFO_STATUS), idx);
        let popts = tx_olinfo::IXSM | tx_olinfo::TXSM | tx_olinfo::CC;
        for slot in 1..=3 {
            assert_eq!(word(slot, field::TX_OLINFO_STATUS), 60 << 14 | popts, "slot {slot}");
        }
        assert_eq!(word(4, field::TX_OLINFO_STATUS), 60 << 14);
        assert_eq!(word(5, field::TX_CMD_TYPE_LEN), udp.context_words(1).1);
        assert_eq!(word(5, field::TX_OLINFO_STATUS), 1 << tx_olinfo::IDX_SHIFT);
        assert_eq!(word(6, field::TX_OLINFO_STATUS), 60 << 14 | popts | 1 << tx_olinfo::IDX_SHIFT);
        assert_eq!(word(8, field::TX_OLINFO_STATUS), 60 << 14 | popts);
        complete_data_only(&io, &tx);
        assert_eq!(tx.clean(), 9);
        assert_eq!(pool.free_count(), 64);
        // Same parameters again: no context descriptor.
        let mut bufs = with_offload(frames(&pool, 2, 60), udp);
        assert_eq!(tx.tx_batch(&mut bufs), 2);
        assert_eq!((tx.stats().contexts, tx.in_flight()), (2, 2));
        complete_data_only(&io, &tx);
        assert_eq!(tx.clean(), 2);
    }

    #[test]
    fn tx_cleans_past_a_context_descriptor_at_the_end_of_a_group() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 64, 2048).unwrap();
        let mut tx = tx_queue(&io);
        // 31 plain frames, then the context descriptor in slot 31 (the
        // last of the first clean group) and its data in slot 32.
        let mut bufs = frames(&pool, TX_CLEAN_BATCH - 1, 60);
        bufs.extend(with_offload(frames(&pool, 1, 60), tcp_offload()));
        assert_eq!(tx.tx_batch(&mut bufs), TX_CLEAN_BATCH);
        assert_eq!(tx.in_flight(), TX_CLEAN_BATCH + 1);
        complete_data_only(&io, &tx);
        assert_eq!(tx.clean(), TX_CLEAN_BATCH + 1);
        assert_eq!(pool.free_count(), 64);
    }

    #[test]
    fn tx_keeps_a_frame_whose_context_descriptor_does_not_fit() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 128, 2048).unwrap();
        let mut tx = tx_queue(&io);
        let mut bufs = frames(&pool, N - 2, 60);
        bufs.extend(with_offload(frames(&pool, 2, 60), tcp_offload()));
        // One descriptor left after the plain frames: not enough for a
        // context and its data.
        assert_eq!(tx.tx_batch(&mut bufs), N - 2);
        assert_eq!((bufs.len(), tx.stats().ring_full, tx.stats().contexts), (2, 1, 0));
        complete_data_only(&io, &tx);
        assert_eq!(tx.clean(), N - 2);
        assert_eq!(tx.tx_batch(&mut bufs), 2);
        assert_eq!((tx.stats().contexts, tx.in_flight()), (1, 3));
        complete_data_only(&io, &tx);
        assert_eq!(tx.clean(), 3);
        assert_eq!(pool.free_count(), 128);
    }

    #[test]
    fn tx_drops_an_offload_request_longer_than_its_frame() {
        let io = bar();
        let pool = Mempool::new(&HeapDma, 16, 2048).unwrap();
        let mut tx = tx_queue(&io);
        // 53 bytes cannot hold Ethernet, IPv4 and TCP headers (54).
        let mut bufs = with_offload(frames(&pool, 1, 53), tcp_offload());
        bufs.extend(frames(&pool, 1, 53));
        assert_eq!(tx.tx_batch(&mut bufs), 1);
        assert_eq!((tx.stats().errors, tx.stats().contexts, tx.in_flight()), (1, 0, 1));
    }

    #[test]
    fn rx_batch_records_the_checksum_verdict() {
        let io = bar();
        let (mut rx, _pool) = rx_queue(&io, 256);
        write_back(&rx, 0, GOOD, 60);
        write_back(&rx, 1, GOOD | rx_status::IPCS | rx_status::L4CS, 60);
        write_back(&rx, 2, GOOD | rx_status::IPCS | rx_status::L4CS | rx_status::ERR_TCPE, 60);
        write_back(&rx, 3, GOOD | rx_status::IPCS | rx_status::ERR_IPE, 60);
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 32), 4);
        let got: Vec<_> = out.iter().map(|b| (b.rx_checksum().ip(), b.rx_checksum().l4())).collect();
        use crate::offload::CsumStatus::{Bad, Good, Unchecked};
        assert_eq!(got, [(Unchecked, Unchecked), (Good, Good), (Good, Bad), (Bad, Unchecked)]);
    }

    #[test]
    fn stopped_queues_do_nothing() {
        let io = bar();
        let (mut rx, pool) = rx_queue(&io, 128);
        write_back(&rx, 0, GOOD, 60);
        rx.shared.stop();
        let mut out = Vec::new();
        assert_eq!(rx.rx_batch(&mut out, 32), 0);
        let mut tx =
            TxQueue::new(QueueId(2), io.clone(), HeapDma.alloc(N * DESC_SIZE).unwrap(), Arc::clone(&rx.shared));
        let mut bufs = frames(&pool, 2, 60);
        assert_eq!(tx.tx_batch(&mut bufs), 0);
        assert_eq!(bufs.len(), 2);
    }
}
