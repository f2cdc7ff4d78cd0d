//! Packet buffer pools in DMA memory.
//!
//! A [`Mempool`] carves one DMA region per 2 MiB into fixed-size entries. It
//! belongs to one queue pair, and so to one core: the receive ring takes
//! buffers from it and the transmit ring gives them back. A [`PacketBuf`] is
//! a handle to one entry that returns it to the pool when dropped.
//!
//! # No atomic read-modify-write on the owning core
//!
//! The pool has an *owner*: the first thread that allocates from it (with
//! [`Mempool::alloc`] or by polling the RX queue it feeds). Filling an RX
//! ring at init does not make the init thread the owner, so the core thread
//! that later polls the queue becomes it. On the owner, allocation and
//! release touch a plain free stack (ixy.rs keeps the same single-owner
//! stack) and a thread-local thread id; nothing else. The pieces:
//!
//! - **Who is the owner**: `owner` holds the owner's thread id, from a
//!   process-wide counter, so ids are never reused. It moves from "nobody"
//!   to a thread by compare-and-swap (once), and from that thread to
//!   "disowned" only by that thread. A thread that reads its own id there is
//!   therefore the only one that can, and it alone touches the stack.
//! - **Other threads**: a buffer dropped on any other thread goes into a
//!   bounded lock-free queue (`shared`, one slot per entry, so a push never
//!   fails); the owner moves that queue into its stack when the stack runs
//!   dry. Allocation on a non-owner (or before anyone owns the pool) pops from
//!   that queue. So that such a thread (the simulated NIC allocates every
//!   frame it delivers from the core's pool) does not starve, the owner
//!   leaves a quarter of the pool in the queue when it claims the pool, and
//!   an allocation off the owner raises `DEMAND`: the owner then returns what
//!   it frees to the queue and, at the end of each ring batch, tops it up to
//!   a quarter of the pool, ending the demand once it holds that much.
//! - **The pool's memory outlives every buffer** without a count per buffer
//!   on the owner: the pool keeps a reference count (`refs`) of who may still
//!   touch it: the [`Mempool`] value (one), each buffer allocated off the
//!   owner (one each), and the owner, which takes `RESERVATION` (2^62) at once
//!   when it claims the pool. Buffers allocated on the owner are covered by
//!   that reservation: one freed on the owner changes no count; one freed
//!   elsewhere drops one reference, a unit of the reservation. The owner
//!   counts (without atomics) how many buffers it handed out minus those it
//!   took back, `out`; when it gives the pool up it drops `RESERVATION - out`
//!   references, which leaves exactly one per buffer still alive. The memory
//!   is freed by whoever drops the last reference. (The reservation bounds
//!   how many owner buffers one pool may see freed on other threads over its
//!   life: 2^62, more than a thousand years at 100 million a second.)
//! - **When the owner gives the pool up**: when the last [`Mempool`] handle
//!   is dropped on the owner's thread (at once), or on another thread (the
//!   owner notices at its next buffer drop or TX cleaning run, at the latest
//!   when its thread exits), or when the owner thread exits (a thread-local
//!   destructor). A pool given up is never claimed again: if its owner
//!   thread exited while handles remain, it goes on working through the
//!   shared queue, with atomics.
//!
//! Holding an `Arc<Mempool>` keeps the pool usable; a `PacketBuf` keeps its
//! entry and the memory behind it valid even after every handle is gone.
//!
//! The rings use the pool through `PoolAccess`: whether this thread owns
//! the pool is decided once per batch, and the receive loop is compiled once
//! for the owner's stack and once for the shared queue. TX cleaning frees
//! through `BulkFree`, which checks ownership once per run of buffers from
//! one pool. The free count other threads see ([`Mempool::free_count`]) is
//! published by the owner at the end of each ring batch, not per packet.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use crossbeam_queue::ArrayQueue;

use crate::dma::{DmaAllocator, DmaError, DmaRegion};
use crate::offload::{RxChecksum, TxOffload};

/// Default entry size: 2 KiB holds a 1518-byte frame with headroom, and
/// divides a 2 MiB hugepage so no entry straddles a page.
pub const DEFAULT_ENTRY_SIZE: u32 = 2048;

/// Headroom a freshly allocated transmit buffer leaves in front of its data,
/// room for an Ethernet header (and a VLAN tag) to be prepended in place.
pub const DEFAULT_HEADROOM: u16 = 64;

/// Largest region a pool may use when it must not straddle a hugepage.
const HUGEPAGE: usize = 2 << 20;

/// References the owner takes when it claims a pool, covering every buffer
/// it will hand out. Each buffer of the owner freed on another thread uses
/// one up for good, so the reservation bounds how many such remote frees
/// one pool may see: 2^62, over a thousand years at 100 million per second.
const RESERVATION: usize = 1 << 62;

/// `owner` before any thread has claimed the pool.
/// Never a thread id (ids count up from 1), and not 0, so that a thread
/// without an id yet (whose thread-local id reads 0) never looks like the
/// owner: `owned_here` compares without assigning one.
const NO_OWNER: u64 = u64::MAX - 1;

/// `owner` after the owner gave the pool up; nobody claims it again.
const DISOWNED: u64 = u64::MAX;

/// Bit of [`PacketBuf::index`] marking a buffer that holds a reference of its
/// own (allocated off the owner). Entry indices are below 2^24.
const COUNTED: u32 = 1 << 31;

/// The entry index in [`PacketBuf::index`]; the top byte holds flags.
const ENTRY_MASK: u32 = (1 << 24) - 1;

/// Where [`PacketBuf::index`] keeps the receive checksum verdict (its four
/// raw bits, [`RxChecksum::bits`]).
const RX_CSUM_SHIFT: u32 = 24;
const RX_CSUM_MASK: u32 = 0xF << RX_CSUM_SHIFT;

/// Bit of [`PacketBuf::index`] saying the buffer asks for a checksum
/// offload, whose parameters are in the pool's per-entry table
/// ([`PoolCore::offloads`]).
const TX_OFFLOAD: u32 = 1 << 28;

/// Source of thread ids, from 1 (0 marks a thread without one).
static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's id, 0 until first asked for.
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
    /// The pools this thread owns, given up when the thread exits.
    static OWNED: OwnedPools = const { OwnedPools(RefCell::new(Vec::new())) };
}

/// This thread's id: unique in the process, never reused.
#[inline(always)]
fn thread_id() -> u64 {
    let id = THREAD_ID.with(Cell::get);
    if id != 0 { id } else { new_thread_id() }
}

#[cold]
fn new_thread_id() -> u64 {
    let id = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
    THREAD_ID.with(|c| c.set(id));
    id
}

/// The thread-local list of owned pools; its destructor gives each up.
struct OwnedPools(RefCell<Vec<NonNull<PoolCore>>>);

impl Drop for OwnedPools {
    fn drop(&mut self) {
        for core in std::mem::take(self.0.get_mut()) {
            // SAFETY: the pool is on this list only while this thread owns
            // it, and an owned pool is alive (the reservation).
            unsafe { PoolCore::disown(core) };
        }
    }
}

/// Errors of pool creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MempoolError {
    /// Entry size not a power of two between 256 and 16 KiB.
    BadEntrySize(u32),
    /// Zero entries, or more than 2^24.
    BadEntryCount(u32),
    /// The DMA memory could not be had.
    Dma(DmaError),
}

impl fmt::Display for MempoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MempoolError::BadEntrySize(s) => {
                write!(f, "mempool entry size {s} is not a power of two between 256 and 16384 bytes")
            }
            MempoolError::BadEntryCount(n) => {
                write!(f, "mempool entry count {n} is not between 1 and 16777216")
            }
            MempoolError::Dma(e) => write!(f, "mempool memory: {e}"),
        }
    }
}

impl std::error::Error for MempoolError {}

impl From<DmaError> for MempoolError {
    fn from(e: DmaError) -> Self {
        MempoolError::Dma(e)
    }
}

/// What only the owner thread touches.
struct Local {
    /// Free entries: `stack[..len]`. Room for every entry.
    stack: Box<[u32]>,
    len: usize,
    /// Buffers allocated on the owner minus those freed on the owner.
    out: usize,
    /// Allocations on the owner that found the pool empty.
    failures: u64,
}

/// The pool itself, shared by the [`Mempool`] handle and every buffer, and
/// freed when `refs` reaches zero.
struct PoolCore {
    /// One region per 2 MiB (hugepages are only contiguous per page):
    /// the memory of every entry, freed with the pool.
    regions: Vec<DmaRegion>,
    /// Device address of each entry, looked up per packet by the rings.
    iovas: Box<[u64]>,
    /// Address of each entry's first byte, looked up per access to a
    /// buffer's data (several per packet): one load instead of finding the
    /// region and checking the offset against it.
    virts: Box<[NonNull<u8>]>,
    /// Each entry's checksum offload request ([`TxOffload::to_bits`]),
    /// valid while its buffer has [`TX_OFFLOAD`] set. Kept here, not in
    /// the handle, so that the handle stays 16 bytes. Only the buffer's
    /// holder reads or writes its entry's word; relaxed atomics make that
    /// plain loads and stores without `unsafe`.
    offloads: Box<[AtomicU32]>,
    /// log2 of the entry size.
    entry_shift: u32,
    num_entries: u32,
    owner: AtomicU64,
    local: UnsafeCell<Local>,
    /// `local.len` for [`Mempool::free_count`] on other threads: a plain
    /// store by the owner at the end of each ring batch and on its slow
    /// paths, not per packet.
    local_free: AtomicU32,
    /// `local.failures`, published likewise.
    owner_failures: AtomicU64,
    /// Entries freed off the owner (and all of them before a claim).
    shared: ArrayQueue<u32>,
    /// Allocations off the owner that found the shared queue empty.
    shared_failures: AtomicU64,
    refs: AtomicUsize,
    /// [`RETIRED`] and [`DEMAND`]: anything here sends the owner's releases
    /// down the slow path, so its fast path tests one byte for both.
    flags: AtomicU8,
}

/// In `flags`: the [`Mempool`] handle was dropped.
const RETIRED: u8 = 1;

/// In `flags`: another thread allocates from the pool, so the owner returns
/// what it frees to the shared queue (where that thread can reach it) until
/// the queue holds [`DEMAND_MET`] of the pool again.
const DEMAND: u8 = 2;

/// Fraction of the pool (as a divisor) that the shared queue must hold for
/// the owner to stop feeding it: a quarter.
const DEMAND_MET: usize = 4;

// SAFETY: `local` is only touched by the thread whose id is in `owner` (see
// the module docs); everything else is immutable or atomic, and the DMA
// regions are only accessed through buffers that own their entry.
unsafe impl Sync for PoolCore {}
// SAFETY: as above; nothing in the core is tied to the creating thread.
unsafe impl Send for PoolCore {}

impl PoolCore {
    /// True on the owner thread. No id is assigned here: a thread that has
    /// none (its thread-local id is still 0) owns nothing, and 0 is never
    /// in `owner`.
    #[inline(always)]
    fn owned_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == THREAD_ID.with(Cell::get)
    }

    /// Makes this thread the owner if nobody is; true if this thread owns
    /// the pool now.
    #[inline(always)]
    fn claim(&self) -> bool {
        let me = thread_id();
        match self.owner.load(Ordering::Relaxed) {
            id if id == me => true,
            NO_OWNER => self.claim_slow(me),
            _ => false,
        }
    }

    #[cold]
    fn claim_slow(&self, me: u64) -> bool {
        let this = NonNull::from(self);
        OWNED
            .try_with(|owned| {
                // Acquire: pairs with nothing yet (no owner before), but
                // keeps the stack accesses below after the claim.
                if self.owner.compare_exchange(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
                    return false;
                }
                // The caller holds a handle, so `refs` > 0: a relaxed
                // increment suffices, as for an `Arc` clone.
                self.refs.fetch_add(RESERVATION, Ordering::Relaxed);
                owned.0.borrow_mut().push(this);
                // SAFETY: this thread just became the owner.
                let local = unsafe { self.local() };
                // A stock stays in the shared queue for other threads that
                // allocate (a simulated NIC, say) until the owner hears of
                // them (`DEMAND`).
                self.refill_keeping(local, self.demand_stock());
                true
            })
            // The thread is exiting: stay a non-owner.
            .unwrap_or(false)
    }

    /// The owner's state.
    ///
    /// # Safety
    /// Only on the owner thread, and no other reference from `local` alive.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn local(&self) -> &mut Local {
        // SAFETY: exclusive by the caller's promise.
        unsafe { &mut *self.local.get() }
    }

    /// How many entries the shared queue should hold while another thread
    /// allocates ([`DEMAND`]): a quarter of the pool.
    fn demand_stock(&self) -> usize {
        (self.num_entries as usize).div_ceil(DEMAND_MET)
    }

    /// Moves entries of the shared queue onto the owner's stack until `keep`
    /// are left there.
    #[cold]
    fn refill_keeping(&self, local: &mut Local, keep: usize) {
        while self.shared.len() > keep
            && let Some(index) = self.shared.pop()
        {
            local.stack[local.len] = index;
            local.len += 1;
        }
        self.local_free.store(local.len as u32, Ordering::Relaxed);
    }

    /// Refills an empty stack: with everything in the shared queue, or half
    /// of it while another thread allocates too.
    fn refill(&self, local: &mut Local) {
        let keep = if self.flags.load(Ordering::Relaxed) & DEMAND != 0 { self.shared.len() / 2 } else { 0 };
        self.refill_keeping(local, keep);
    }

    /// Publishes the owner's free count for other threads (a plain store),
    /// and serves a [`DEMAND`].
    #[inline(always)]
    fn publish(&self, local: &mut Local) {
        self.local_free.store(local.len as u32, Ordering::Relaxed);
        if self.flags.load(Ordering::Relaxed) & DEMAND != 0 {
            self.serve_demand(local);
        }
    }

    /// Tops the shared queue up to [`demand_stock`](Self::demand_stock) from
    /// the owner's stack (at most half of it), or ends the demand once the
    /// queue holds that much.
    #[cold]
    fn serve_demand(&self, local: &mut Local) {
        let (want, have) = (self.demand_stock(), self.shared.len());
        if have >= want {
            self.flags.fetch_and(!DEMAND, Ordering::Relaxed);
            return;
        }
        for _ in 0..(want - have).min(local.len / 2) {
            local.len -= 1;
            self.give_shared(local.stack[local.len]);
        }
        self.local_free.store(local.len as u32, Ordering::Relaxed);
    }

    /// Pops an entry on the owner, or counts a failure.
    #[inline(always)]
    fn take_local(&self, local: &mut Local) -> Option<u32> {
        let len = local.len;
        if len == 0 {
            return self.take_local_dry(local);
        }
        local.len = len - 1;
        // SAFETY: `len` never exceeds the stack's length (it grows only
        // after a checked store), so `len - 1` is in bounds.
        Some(unsafe { *local.stack.get_unchecked(len - 1) })
    }

    /// `take_local` on an empty stack: refill from the shared queue, or
    /// count a failure.
    #[cold]
    #[inline(never)]
    fn take_local_dry(&self, local: &mut Local) -> Option<u32> {
        self.refill(local);
        if local.len == 0 {
            local.failures += 1;
            self.owner_failures.store(local.failures, Ordering::Relaxed);
            return None;
        }
        self.take_local(local)
    }

    /// Pushes an entry on the owner.
    #[inline(always)]
    fn give_local(&self, local: &mut Local, index: u32) {
        let len = local.len;
        debug_assert!(len < local.stack.len(), "mempool entry {index} freed twice");
        // SAFETY: in bounds: the stack has room for every entry, and an
        // entry is pushed once per time it was taken (a handle or a ring
        // slot is unique), so `len` stays below the number of entries.
        unsafe { *local.stack.get_unchecked_mut(len) = index };
        local.len = len + 1;
    }

    /// Pops an entry off the owner, or counts a failure.
    fn take_shared(&self) -> Option<u32> {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != NO_OWNER && owner != DISOWNED && self.flags.load(Ordering::Relaxed) & DEMAND == 0 {
            // An owner keeps what it frees on its own stack, out of this
            // thread's reach, unless told that others allocate too.
            self.flags.fetch_or(DEMAND, Ordering::Relaxed);
        }
        let index = self.shared.pop();
        if index.is_none() {
            self.shared_failures.fetch_add(1, Ordering::Relaxed);
        }
        index
    }

    /// Returns an entry off the owner.
    fn give_shared(&self, index: u32) {
        if self.shared.push(index).is_err() {
            debug_assert!(false, "mempool entry {index} freed twice");
        }
    }

    /// Drops `n` references; frees the pool when they were the last.
    ///
    /// # Safety
    /// The caller holds `n` references and touches `core` no more.
    unsafe fn release(core: NonNull<PoolCore>, n: usize) {
        // SAFETY: alive while the caller's references are.
        let refs = unsafe { &core.as_ref().refs };
        // Release: everything this thread did with the pool happens before
        // the free; the Acquire fence makes the freeing thread see it all.
        if refs.fetch_sub(n, Ordering::Release) == n {
            fence(Ordering::Acquire);
            // SAFETY: made by `Box::into_raw` in `Mempool::new`; no
            // reference is left, so nobody else can reach it.
            drop(unsafe { Box::from_raw(core.as_ptr()) });
        }
    }

    /// Gives the pool up: the stack's entries go to the shared queue and the
    /// unused part of the reservation is dropped (which may free the pool).
    ///
    /// # Safety
    /// Only on the owner thread; `core` is not touched afterwards.
    unsafe fn disown(core: NonNull<PoolCore>) {
        // SAFETY: owned, so alive (the reservation).
        let this = unsafe { core.as_ref() };
        // SAFETY: on the owner thread, no other borrow of `local` alive.
        let local = unsafe { this.local() };
        for &index in &local.stack[..local.len] {
            this.give_shared(index);
        }
        local.len = 0;
        this.local_free.store(0, Ordering::Relaxed);
        let keep = local.out;
        // Release: the stack's last state before anyone else could look.
        this.owner.store(DISOWNED, Ordering::Release);
        // Off the thread's list (during thread exit the list is already
        // taken and `try_with` may fail: nothing to remove then).
        let _ = OWNED.try_with(|owned| owned.0.borrow_mut().retain(|&p| p != core));
        // SAFETY: the reservation was taken at the claim; `keep` of it stays
        // with the owner's buffers still alive.
        unsafe { PoolCore::release(core, RESERVATION - keep) };
    }

    /// The address of entry `index`'s first byte.
    #[inline(always)]
    fn virt(&self, index: u32) -> NonNull<u8> {
        debug_assert!(index < self.num_entries);
        // SAFETY: as in `iova`: the index is below `num_entries`, the
        // table's length.
        unsafe { *self.virts.get_unchecked(index as usize) }
    }

    /// The device address of entry `index`'s first byte.
    #[inline(always)]
    fn iova(&self, index: u32) -> u64 {
        debug_assert!(index < self.num_entries);
        // SAFETY: every index the pool hands out (to a handle, masked with
        // `ENTRY_MASK`, or to a ring slot) is below `num_entries`, the
        // table's length; the rings and handles look up no other.
        unsafe { *self.iovas.get_unchecked(index as usize) }
    }

    /// Frees a buffer's entry and reference; the core may be gone after.
    ///
    /// # Safety
    /// `core` and `index` are those of a live buffer being given up.
    #[inline(always)]
    unsafe fn free_buf(core: NonNull<PoolCore>, index: u32) {
        // SAFETY: alive while the buffer is.
        let this = unsafe { core.as_ref() };
        // The common case, without a call: a buffer of the owner freed on
        // the owner, its pool still in use.
        if index & COUNTED == 0 && this.owned_here() && this.flags.load(Ordering::Relaxed) == 0 {
            // SAFETY: on the owner thread; no other borrow of `local` alive.
            let local = unsafe { this.local() };
            this.give_local(local, index & ENTRY_MASK);
            local.out -= 1;
            return;
        }
        // SAFETY: the caller's promise.
        unsafe { PoolCore::free_buf_slow(core, index) }
    }

    /// `free_buf` for every other case.
    ///
    /// # Safety
    /// As for `free_buf`.
    #[cold]
    #[inline(never)]
    unsafe fn free_buf_slow(core: NonNull<PoolCore>, index: u32) {
        // SAFETY: alive while the buffer is.
        let this = unsafe { core.as_ref() };
        let entry = index & ENTRY_MASK;
        if this.owned_here() {
            // SAFETY: on the owner thread; the borrow ends before `disown`.
            let local = unsafe { this.local() };
            let flags = this.flags.load(Ordering::Relaxed);
            if flags & DEMAND != 0 {
                // Another thread allocates: let it reach this entry.
                this.give_shared(entry);
            } else {
                this.give_local(local, entry);
            }
            this.publish(local);
            let counted = index & COUNTED != 0;
            local.out -= usize::from(!counted);
            if flags & RETIRED != 0 {
                // The handle went away on another thread: give up now.
                // SAFETY: owner thread; the buffer's own reference (if
                // counted) keeps the core alive past this.
                unsafe { PoolCore::disown(core) };
            }
            if counted {
                // SAFETY: the buffer's own reference.
                unsafe { PoolCore::release(core, 1) };
            }
        } else {
            this.give_shared(entry);
            // SAFETY: the buffer's own reference, or (allocated on the
            // owner) one unit of the owner's reservation or what it left.
            unsafe { PoolCore::release(core, 1) };
        }
    }
}

/// A pool of fixed-size DMA buffers. Made by [`Mempool::new`] inside an
/// `Arc`: the handles share one `Mempool`, whose drop (the last handle's)
/// retires the pool; buffers still out keep its memory alive.
pub struct Mempool {
    core: NonNull<PoolCore>,
}

// SAFETY: the core is `Send + Sync`; the handle is just a reference to it.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("entry_size", &self.entry_size())
            .field("num_entries", &self.capacity())
            .field("free", &self.free_count())
            .field("regions", &self.core().regions.len())
            .finish()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let core = self.core();
        core.flags.fetch_or(RETIRED, Ordering::Relaxed);
        if core.owned_here() {
            // SAFETY: on the owner thread; this handle's reference keeps
            // the core alive past it.
            unsafe { PoolCore::disown(self.core) };
        }
        // SAFETY: the handle's reference, not used again.
        unsafe { PoolCore::release(self.core, 1) };
    }
}

impl Mempool {
    /// A pool of `num_entries` buffers of `entry_size` bytes, all free and
    /// not yet owned by any thread.
    pub fn new(dma: &dyn DmaAllocator, num_entries: u32, entry_size: u32) -> Result<Arc<Mempool>, MempoolError> {
        if !entry_size.is_power_of_two() || !(256..=16384).contains(&entry_size) {
            return Err(MempoolError::BadEntrySize(entry_size));
        }
        if num_entries == 0 || num_entries > 1 << 24 {
            return Err(MempoolError::BadEntryCount(num_entries));
        }
        let entries_per_region = (HUGEPAGE / entry_size as usize) as u32;
        let mut regions = Vec::new();
        let mut left = num_entries;
        while left > 0 {
            let n = left.min(entries_per_region);
            regions.push(dma.alloc(n as usize * entry_size as usize)?);
            left -= n;
        }
        let shared = ArrayQueue::new(num_entries as usize);
        for i in 0..num_entries {
            // Cannot fail: the queue has exactly `num_entries` slots.
            let _ = shared.push(i);
        }
        let region_shift = entries_per_region.trailing_zeros();
        let entry_shift = entry_size.trailing_zeros();
        // Each entry's device address and address, from its region and
        // its place in it.
        let (iovas, virts): (Vec<u64>, Vec<NonNull<u8>>) = (0..num_entries)
            .map(|i| {
                let region = &regions[(i >> region_shift) as usize];
                let offset = ((i & (entries_per_region - 1)) as usize) << entry_shift;
                // SAFETY: the entry lies inside its region (`n` entries of
                // `entry_size` bytes were allocated for it).
                (region.iova() + offset as u64, unsafe { region.virt().add(offset) })
            })
            .unzip();
        let offloads = (0..num_entries).map(|_| AtomicU32::new(0)).collect();
        let core = Box::new(PoolCore {
            regions,
            iovas: iovas.into_boxed_slice(),
            virts: virts.into_boxed_slice(),
            offloads,
            entry_shift,
            num_entries,
            owner: AtomicU64::new(NO_OWNER),
            local: UnsafeCell::new(Local {
                stack: vec![0; num_entries as usize].into_boxed_slice(),
                len: 0,
                out: 0,
                failures: 0,
            }),
            local_free: AtomicU32::new(0),
            owner_failures: AtomicU64::new(0),
            shared,
            shared_failures: AtomicU64::new(0),
            // The handle's reference.
            refs: AtomicUsize::new(1),
            flags: AtomicU8::new(0),
        });
        Ok(Arc::new(Mempool { core: NonNull::from(Box::leak(core)) }))
    }

    #[inline(always)]
    fn core(&self) -> &PoolCore {
        // SAFETY: the handle's reference keeps the core alive.
        unsafe { self.core.as_ref() }
    }

    /// Bytes per entry.
    pub fn entry_size(&self) -> u32 {
        1 << self.core().entry_shift
    }

    /// Total number of entries.
    pub fn capacity(&self) -> u32 {
        self.core().num_entries
    }

    /// Number of entries currently free: exact on the owner thread (when no
    /// other thread frees at the same time); on another thread the owner's
    /// share is as of the owner's last ring batch.
    pub fn free_count(&self) -> usize {
        let core = self.core();
        let local = if core.owned_here() {
            // SAFETY: on the owner thread; the borrow ends here.
            unsafe { core.local() }.len
        } else {
            core.local_free.load(Ordering::Relaxed) as usize
        };
        local + core.shared.len()
    }

    /// How many allocations found the pool empty.
    pub fn alloc_failures(&self) -> u64 {
        let core = self.core();
        core.owner_failures.load(Ordering::Relaxed) + core.shared_failures.load(Ordering::Relaxed)
    }

    /// True when the calling thread owns the pool (allocates and frees
    /// without atomics).
    pub fn is_owned_here(&self) -> bool {
        self.core().owned_here()
    }

    /// Access to the pool for a stretch of ring work on this thread,
    /// claiming the pool for it first if `claim` and nobody owns it.
    #[inline(always)]
    pub(crate) fn access(&self, claim: bool) -> PoolAccess<'_> {
        let core = self.core();
        let owned = if claim { core.claim() } else { core.owned_here() };
        if owned {
            PoolAccess::Owner(OwnerOps { core, ptr: self.core, _not_send: PhantomData })
        } else {
            PoolAccess::Shared(SharedOps { core, ptr: self.core })
        }
    }

    /// The device address of entry `index`'s first byte.
    #[cfg(test)]
    pub(crate) fn iova(&self, index: u32) -> u64 {
        self.core().iova(index)
    }

    /// A free buffer with [`DEFAULT_HEADROOM`] and no data, or `None` when
    /// the pool is empty (counted in [`alloc_failures`](Self::alloc_failures)).
    /// Claims the pool for this thread if nobody owns it.
    // Not inlined into other crates, so that its instructions count as the
    // mempool's (scripts/callgrind.sh splits by function).
    #[inline(never)]
    pub fn alloc(self: &Arc<Self>) -> Option<PacketBuf> {
        let core = self.core();
        if core.owned_here() {
            // SAFETY: on the owner thread; the borrow ends in this block.
            let local = unsafe { core.local() };
            if local.len > 0 {
                let index = core.take_local(local)?;
                local.out += 1;
                return Some(PacketBuf::new(self.core, index, DEFAULT_HEADROOM, 0));
            }
        }
        self.alloc_slow()
    }

    /// `alloc` off the fast path: claiming the pool, refilling the stack,
    /// allocating off the owner.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Option<PacketBuf> {
        let mut access = self.access(true);
        let index = access.take()?;
        Some(access.wrap(index, DEFAULT_HEADROOM, 0))
    }
}

/// What the rings do with a pool: take and give back bare entries (the
/// descriptors own them) and wrap entries into buffers. Implemented by the
/// owner's view and by everyone else's, so that a ring loop is compiled once
/// for each and decides who it is once per batch, not per packet.
pub(crate) trait PoolOps {
    /// Takes a free entry index, or counts a failure.
    fn take(&mut self) -> Option<u32>;
    /// Returns an entry index taken with `take`.
    fn give(&mut self, index: u32);
    /// Wraps an entry index taken with `take` into a buffer holding `len`
    /// bytes at `offset`.
    fn wrap(&mut self, index: u32, offset: u16, len: u16) -> PacketBuf;
    /// Wraps a received entry (its frame at offset 0, `len` bytes) with
    /// the device's checksum verdict, written into the handle at once.
    #[inline(always)]
    fn wrap_received(&mut self, index: u32, len: u16, csum: RxChecksum) -> PacketBuf {
        debug_assert!(index & !ENTRY_MASK == 0);
        self.wrap(index | u32::from(csum.bits()) << RX_CSUM_SHIFT, 0, len)
    }
    /// The device address of entry `index`'s first byte.
    fn iova(&self, index: u32) -> u64;
}

/// The pool seen from its owner thread for a stretch of work. Not `Send`,
/// and it borrows a handle, so the pool can be given up neither elsewhere
/// (only the owner can) nor here (that needs the handle gone, or the thread
/// to exit) while it lives.
pub(crate) struct OwnerOps<'a> {
    core: &'a PoolCore,
    ptr: NonNull<PoolCore>,
    _not_send: PhantomData<*const ()>,
}

impl OwnerOps<'_> {
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    fn local(&self) -> &mut Local {
        // SAFETY: this thread owns the pool for as long as `self` lives (see
        // the type); each use of the result ends within one method.
        unsafe { self.core.local() }
    }
}

impl Drop for OwnerOps<'_> {
    fn drop(&mut self) {
        self.core.publish(self.local());
    }
}

impl PoolOps for OwnerOps<'_> {
    #[inline(always)]
    fn take(&mut self) -> Option<u32> {
        self.core.take_local(self.local())
    }

    #[inline(always)]
    fn give(&mut self, index: u32) {
        debug_assert!(index < self.core.num_entries);
        self.core.give_local(self.local(), index);
    }

    #[inline(always)]
    fn wrap(&mut self, index: u32, offset: u16, len: u16) -> PacketBuf {
        self.local().out += 1;
        PacketBuf::new(self.ptr, index, offset, len)
    }

    #[inline(always)]
    fn iova(&self, index: u32) -> u64 {
        self.core.iova(index)
    }
}

/// The pool seen from any other thread (or before it has an owner): the
/// shared queue, and a reference per buffer.
pub(crate) struct SharedOps<'a> {
    core: &'a PoolCore,
    ptr: NonNull<PoolCore>,
}

impl PoolOps for SharedOps<'_> {
    fn take(&mut self) -> Option<u32> {
        self.core.take_shared()
    }

    fn give(&mut self, index: u32) {
        debug_assert!(index < self.core.num_entries);
        self.core.give_shared(index);
    }

    fn wrap(&mut self, index: u32, offset: u16, len: u16) -> PacketBuf {
        // Relaxed, as an `Arc` clone: the borrowed handle holds one.
        self.core.refs.fetch_add(1, Ordering::Relaxed);
        PacketBuf::new(self.ptr, index | COUNTED, offset, len)
    }

    fn iova(&self, index: u32) -> u64 {
        self.core.iova(index)
    }
}

/// The pool as seen by this thread for a stretch of work (a ring refill, a
/// batch): as its owner or not, decided once.
pub(crate) enum PoolAccess<'a> {
    /// This thread owns the pool.
    Owner(OwnerOps<'a>),
    /// It does not.
    Shared(SharedOps<'a>),
}

impl PoolOps for PoolAccess<'_> {
    fn take(&mut self) -> Option<u32> {
        match self {
            PoolAccess::Owner(o) => o.take(),
            PoolAccess::Shared(s) => s.take(),
        }
    }

    fn give(&mut self, index: u32) {
        match self {
            PoolAccess::Owner(o) => o.give(index),
            PoolAccess::Shared(s) => s.give(index),
        }
    }

    fn wrap(&mut self, index: u32, offset: u16, len: u16) -> PacketBuf {
        match self {
            PoolAccess::Owner(o) => o.wrap(index, offset, len),
            PoolAccess::Shared(s) => s.wrap(index, offset, len),
        }
    }

    fn iova(&self, index: u32) -> u64 {
        match self {
            PoolAccess::Owner(o) => o.iova(index),
            PoolAccess::Shared(s) => s.iova(index),
        }
    }
}

/// Frees many buffers in a row (TX cleaning), deciding once per run of
/// buffers from the same pool whether this thread owns it. While it frees
/// into an owned pool it keeps that pool's stack top in a local and writes
/// it (and the pool's count of buffers out) back once per run, not per
/// buffer.
pub(crate) struct BulkFree {
    /// The pool of the last buffer freed when this thread owns it and it
    /// was not retired then; null otherwise.
    owned: *const PoolCore,
    /// That pool's free stack (`Local::stack`), and its length as far as
    /// this run has pushed: `Local::len` is stale until [`settle`](Self::settle).
    stack: *mut u32,
    len: usize,
    /// `Local::len` when the run started, so that `Local::out` drops by
    /// what the run pushed.
    start: usize,
}

impl BulkFree {
    pub(crate) fn new() -> BulkFree {
        BulkFree { owned: std::ptr::null(), stack: std::ptr::null_mut(), len: 0, start: 0 }
    }

    /// Writes the cached pool's stack length and buffers-out count back and
    /// publishes its free count; the run ends. Inlined, so that the run's
    /// state stays in registers in a freeing loop.
    #[inline(always)]
    fn settle(&mut self) {
        // SAFETY: a cached pool is owned by this thread, so alive, and
        // `local` is borrowed only here.
        if let Some(core) = unsafe { self.owned.as_ref() } {
            // SAFETY: owner thread; no other borrow of `local` alive.
            let local = unsafe { core.local() };
            local.len = self.len;
            local.out -= self.len - self.start;
            core.publish(local);
        }
        self.owned = std::ptr::null();
    }

    /// Frees every buffer of `bufs`, as [`free`](Self::free) does one by
    /// one, with the run's stack top in locals (registers) rather than in
    /// the `BulkFree`, which only the slow path (a buffer from another pool,
    /// or not the owner's) sees.
    #[inline(always)]
    pub(crate) fn free_all(bufs: impl Iterator<Item = PacketBuf>) {
        let mut free = BulkFree::new();
        let (mut owned, mut stack, mut len) = (free.owned, free.stack, free.len);
        for buf in bufs {
            let (core, index) = (buf.core, buf.index);
            if owned == core.as_ptr().cast_const() && index & COUNTED == 0 {
                std::mem::forget(buf);
                // SAFETY: as in `free`: the run's pool is owned here and
                // alive, and nothing else touched its stack since the run
                // started; in bounds as in `give_local`.
                unsafe { *stack.add(len) = index & ENTRY_MASK };
                len += 1;
                continue;
            }
            free.len = len;
            free.free(buf);
            (owned, stack, len) = (free.owned, free.stack, free.len);
        }
        free.len = len;
    }

    /// Returns `buf`'s entry to its pool.
    #[inline(always)]
    pub(crate) fn free(&mut self, buf: PacketBuf) {
        let (core, index) = (buf.core, buf.index);
        std::mem::forget(buf);
        if self.owned == core.as_ptr().cast_const() && index & COUNTED == 0 {
            // SAFETY: this thread owned the pool at an earlier buffer of
            // this run, and only this thread can give it up, which it does
            // only in `free_buf` (not called for this pool since: the run
            // is settled before every call); an owned pool is alive, and
            // nothing else touched its stack since `stack`/`len` were read.
            // In bounds as in `give_local`. A retirement since then is
            // noticed at the next run's first buffer or at thread exit;
            // until then the pool stays owned.
            unsafe { *self.stack.add(self.len) = index & ENTRY_MASK };
            self.len += 1;
            return;
        }
        self.settle();
        // SAFETY: alive while the buffer is.
        let this = unsafe { core.as_ref() };
        // Cached only when `free_buf` will not give the pool up (that needs
        // `RETIRED`, which stays set once set) nor send entries to the
        // shared queue.
        let cache = this.owned_here() && this.flags.load(Ordering::Relaxed) == 0;
        // SAFETY: the buffer was given up above and is not touched again.
        unsafe { PoolCore::free_buf(core, index) }
        if cache {
            // SAFETY: owned and not retired, so the owner's reservation
            // keeps the core alive; owner thread, no other borrow of `local`.
            let local = unsafe { this.local() };
            (self.owned, self.stack, self.len, self.start) = (this, local.stack.as_mut_ptr(), local.len, local.len);
        }
    }
}

impl Drop for BulkFree {
    #[inline(always)]
    fn drop(&mut self) {
        self.settle();
    }
}

/// A packet buffer from a [`Mempool`]: `len` bytes of data at some offset
/// inside a fixed-size entry, with headroom in front. Returns to its pool on
/// drop.
pub struct PacketBuf {
    core: NonNull<PoolCore>,
    /// The entry index (below 2^24, [`ENTRY_MASK`]) and, in the top byte,
    /// [`COUNTED`] when the buffer holds its own reference to the pool, the
    /// receive checksum verdict ([`RX_CSUM_SHIFT`]) and [`TX_OFFLOAD`] when
    /// the transmit path is asked to insert checksums (see
    /// [`crate::offload`]). The verdict and the request share this word so
    /// that the handle stays 16 bytes, moved in one vector register.
    index: u32,
    offset: u16,
    len: u16,
}

const _: () = assert!(std::mem::size_of::<PacketBuf>() == 16 && std::mem::size_of::<Option<PacketBuf>>() == 16);

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuf")
            .field("index", &self.entry())
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the buffer owns its entry; the core it points at is `Sync` and
// kept alive by the buffer (see the module docs), from any thread.
unsafe impl Send for PacketBuf {}
// SAFETY: `&PacketBuf` only reads the entry.
unsafe impl Sync for PacketBuf {}

impl PacketBuf {
    /// A handle to entry `index` (with its reference flag) holding `len`
    /// bytes at `offset`, with no offload request and no verdict.
    #[inline(always)]
    fn new(core: NonNull<PoolCore>, index: u32, offset: u16, len: u16) -> PacketBuf {
        PacketBuf { core, index, offset, len }
    }

    #[inline(always)]
    fn core(&self) -> &PoolCore {
        // SAFETY: a live buffer keeps its pool's core alive.
        unsafe { self.core.as_ref() }
    }

    /// The entry index.
    #[inline(always)]
    fn entry(&self) -> u32 {
        self.index & ENTRY_MASK
    }

    /// Bytes per entry.
    #[inline(always)]
    fn entry_size(&self) -> usize {
        1 << self.core().entry_shift
    }

    /// The data.
    pub fn data(&self) -> &[u8] {
        let start = self.data_start();
        // SAFETY: the bytes lie inside the entry (`data_start`), which is
        // owned by this handle: it is not in the free list and not in any
        // ring, so neither the CPU nor the device writes it while `&self`
        // lives.
        unsafe { std::slice::from_raw_parts(start.as_ptr(), usize::from(self.len)) }
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let start = self.data_start();
        // SAFETY: as in `data`, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(start.as_ptr(), usize::from(self.len)) }
    }

    /// Where the data starts, after checking that it ends inside the entry
    /// (the handle's methods keep it so; the check keeps a slip from
    /// reaching the next entry).
    #[inline(always)]
    fn data_start(&self) -> NonNull<u8> {
        let (offset, len) = (usize::from(self.offset), usize::from(self.len));
        assert!(offset + len <= self.entry_size(), "buffer data {offset}+{len} outside its entry");
        // SAFETY: `offset` is inside the entry (just checked).
        unsafe { self.core().virt(self.entry()).add(offset) }
    }

    /// Number of data bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when there is no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the data.
    pub fn headroom(&self) -> usize {
        usize::from(self.offset)
    }

    /// Largest length the data can grow to at its current offset.
    pub fn capacity(&self) -> usize {
        self.entry_size() - usize::from(self.offset)
    }

    /// Sets the data length, up to [`capacity`](Self::capacity). Bytes that
    /// become visible keep whatever the buffer held. Returns false (and
    /// changes nothing) when `len` does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.capacity() {
            return false;
        }
        self.len = len as u16;
        true
    }

    /// Grows the data by `n` bytes at the front, into the headroom, and
    /// returns the new front bytes; `None` if the headroom is too small.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok().filter(|&n| n <= self.offset)?;
        self.offset -= n16;
        self.len += n16;
        Some(&mut self.data_mut()[..n])
    }

    /// Drops `n` bytes from the front of the data (they become headroom);
    /// `false` if there are fewer than `n`.
    pub fn trim_front(&mut self, n: usize) -> bool {
        match u16::try_from(n) {
            Ok(n16) if n16 <= self.len => {
                self.offset += n16;
                self.len -= n16;
                true
            }
            _ => false,
        }
    }

    /// Empties the buffer and sets its headroom (clamped to the entry);
    /// also forgets its offload request and receive checksum verdict.
    pub fn reset(&mut self, headroom: usize) {
        self.offset = headroom.min(self.entry_size()) as u16;
        self.len = 0;
        self.index &= !(TX_OFFLOAD | RX_CSUM_MASK);
    }

    /// Whether the buffer asks for a checksum offload (a test of the
    /// handle alone, without [`tx_offload`](Self::tx_offload)'s table read).
    #[inline(always)]
    pub(crate) fn wants_offload(&self) -> bool {
        self.index & TX_OFFLOAD != 0
    }

    /// The checksum offload `tx_batch` asks the device for ([`TxOffload::NONE`]
    /// unless set).
    #[inline(always)]
    pub fn tx_offload(&self) -> TxOffload {
        if !self.wants_offload() {
            return TxOffload::NONE;
        }
        // Relaxed: only this buffer's holder touches its entry's word, and
        // handing the buffer to another thread orders it like the data.
        TxOffload::from_bits(self.core().offloads[self.entry() as usize].load(Ordering::Relaxed))
    }

    /// Asks the device to insert checksums when this frame is sent
    /// ([`TxOffload::NONE`] withdraws the request).
    pub fn set_tx_offload(&mut self, offload: TxOffload) {
        if offload.is_none() {
            self.index &= !TX_OFFLOAD;
            return;
        }
        self.core().offloads[self.entry() as usize].store(offload.to_bits(), Ordering::Relaxed);
        self.index |= TX_OFFLOAD;
    }

    /// The device's checksum verdict on a received frame
    /// ([`RxChecksum::UNCHECKED`] for buffers that did not come from
    /// `rx_batch`).
    #[inline(always)]
    pub fn rx_checksum(&self) -> RxChecksum {
        RxChecksum::from_bits((self.index >> RX_CSUM_SHIFT) as u8)
    }

    /// Records the device's verdict (the receive path, and tests that play
    /// a NIC).
    #[inline(always)]
    pub fn set_rx_checksum(&mut self, csum: RxChecksum) {
        self.index = (self.index & !RX_CSUM_MASK) | u32::from(csum.bits()) << RX_CSUM_SHIFT;
    }

    /// Copies `bytes` in as the whole data (at the current offset); false if
    /// they do not fit.
    pub fn copy_from(&mut self, bytes: &[u8]) -> bool {
        if !self.set_len(bytes.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// The device address of the first data byte.
    pub fn iova(&self) -> u64 {
        self.core().iova(self.entry()) + u64::from(self.offset)
    }

    /// True when this buffer's entry belongs to `pool`.
    pub fn is_from(&self, pool: &Mempool) -> bool {
        self.core == pool.core
    }
}

impl Drop for PacketBuf {
    // Not inlined into other crates, so that its instructions count as the
    // mempool's (scripts/callgrind.sh splits by function).
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: the buffer is being dropped and not touched again.
        unsafe { PoolCore::free_buf(self.core, self.index) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::HeapDma;

    #[test]
    fn offload_request_and_verdict_share_the_handle_and_leave_the_entry_intact() {
        use crate::offload::{CsumStatus, L4Proto};
        let pool = Mempool::new(&HeapDma, 2, 2048).unwrap();
        let mut a = pool.alloc().unwrap();
        let entry = a.entry();
        let tcp = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap();
        let verdict = RxChecksum::new(CsumStatus::Good, CsumStatus::Bad);
        a.set_tx_offload(tcp);
        a.set_rx_checksum(verdict);
        assert_eq!((a.tx_offload(), a.rx_checksum(), a.entry()), (tcp, verdict, entry));
        // The other buffer's request is its own.
        let mut b = pool.alloc().unwrap();
        assert_eq!((b.tx_offload(), b.rx_checksum()), (TxOffload::NONE, RxChecksum::UNCHECKED));
        let udp = TxOffload::ipv4(18, 24, Some(L4Proto::Udp)).unwrap();
        b.set_tx_offload(udp);
        assert_eq!((a.tx_offload(), b.tx_offload()), (tcp, udp));
        a.set_tx_offload(TxOffload::NONE);
        assert_eq!((a.tx_offload(), a.rx_checksum()), (TxOffload::NONE, verdict));
        a.set_tx_offload(tcp);
        a.reset(usize::from(DEFAULT_HEADROOM));
        assert_eq!((a.tx_offload(), a.rx_checksum(), a.entry()), (TxOffload::NONE, RxChecksum::UNCHECKED, entry));
        // Freed with both set, the entry comes back as itself, clean.
        a.set_tx_offload(tcp);
        a.set_rx_checksum(verdict);
        drop(a);
        drop(b);
        assert_eq!(pool.free_count(), 2);
        let again: Vec<_> = (0..2).map(|_| pool.alloc().unwrap()).collect();
        assert!(again.iter().any(|x| x.entry() == entry));
        assert!(
            again.iter().all(|x| x.entry() < 2 && x.tx_offload().is_none() && x.rx_checksum() == RxChecksum::UNCHECKED)
        );
    }

    #[test]
    fn buffers_return_to_the_pool_on_drop() {
        let pool = Mempool::new(&HeapDma, 4, 2048).unwrap();
        let bufs: Vec<_> = (0..4).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(pool.free_count(), 0);
        assert!(pool.alloc().is_none());
        assert_eq!(pool.alloc_failures(), 1);
        drop(bufs);
        assert_eq!(pool.free_count(), 4);
    }

    #[test]
    fn each_buffer_sees_its_own_entry_across_regions() {
        // Three regions of 2 MiB / 2 KiB entries, the last one partial:
        // every entry's bytes are its own, at the address the device sees.
        let n = 2 * 1024 + 5;
        let pool = Mempool::new(&HeapDma, n, 2048).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..n).map(|_| pool.alloc().unwrap()).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.set_len(b.capacity()));
            b.data_mut().fill(i as u8);
        }
        let mut iovas = std::collections::HashSet::new();
        for (i, b) in bufs.iter().enumerate() {
            assert!(b.data().iter().all(|&x| x == i as u8), "entry {} was written by another", b.entry());
            assert!(iovas.insert(b.iova()), "two entries at {:#x}", b.iova());
        }
    }

    #[test]
    #[should_panic(expected = "outside its entry")]
    fn data_past_the_entry_is_refused() {
        let pool = Mempool::new(&HeapDma, 1, 2048).unwrap();
        let mut b = pool.alloc().unwrap();
        // What no method of the handle lets happen: the check still holds.
        b.len = 2048;
        let _ = b.data();
    }

    #[test]
    fn headroom_prepend_and_trim() {
        let pool = Mempool::new(&HeapDma, 1, 2048).unwrap();
        let mut b = pool.alloc().unwrap();
        assert_eq!(b.headroom(), usize::from(DEFAULT_HEADROOM));
        assert!(b.copy_from(b"payload"));
        b.prepend(3).unwrap().copy_from_slice(b"hdr");
        assert_eq!(b.data(), b"hdrpayload");
        assert!(b.trim_front(3));
        assert_eq!(b.data(), b"payload");
        assert!(b.prepend(1000).is_none());
        assert!(!b.set_len(4096));
        assert_eq!(b.capacity(), 2048 - 64);
    }

    #[test]
    fn large_pools_span_several_regions_with_distinct_addresses() {
        let pool = Mempool::new(&HeapDma, 2048, 2048).unwrap();
        assert_eq!(pool.core().regions.len(), 2);
        let a = pool.alloc().unwrap();
        assert_ne!(pool.iova(0), pool.iova(1024));
        assert_eq!(a.iova(), pool.iova(a.entry()) + 64);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert_eq!(Mempool::new(&HeapDma, 4, 1000).unwrap_err(), MempoolError::BadEntrySize(1000));
        assert_eq!(Mempool::new(&HeapDma, 0, 2048).unwrap_err(), MempoolError::BadEntryCount(0));
    }
}

/// The pool's ownership, lifetime and cross-thread paths.
#[cfg(test)]
mod ownership_tests {
    use std::collections::BTreeSet;
    use std::sync::{Barrier, mpsc};
    use std::thread;

    use super::*;
    use crate::dma::{DmaRelease, HeapDma};

    /// Heap DMA memory that counts how many of its regions were released.
    struct CountingDma(Arc<AtomicUsize>);

    struct CountRelease(Arc<AtomicUsize>);

    impl DmaRelease for CountRelease {
        fn release(&mut self, _virt: NonNull<u8>, _len: usize, _iova: u64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl DmaAllocator for CountingDma {
        fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
            HeapDma::alloc_with(size, Box::new(CountRelease(Arc::clone(&self.0))))
        }
    }

    fn counted_pool(entries: u32) -> (Arc<Mempool>, Arc<AtomicUsize>) {
        let released = Arc::new(AtomicUsize::new(0));
        (Mempool::new(&CountingDma(Arc::clone(&released)), entries, 2048).unwrap(), released)
    }

    fn refs(pool: &Mempool) -> usize {
        pool.core().refs.load(Ordering::SeqCst)
    }

    fn entries(bufs: &[PacketBuf]) -> BTreeSet<u32> {
        bufs.iter().map(PacketBuf::entry).collect()
    }

    #[test]
    fn the_first_allocating_thread_owns_the_pool_and_counts_nothing_per_buffer() {
        let pool = Mempool::new(&HeapDma, 64, 2048).unwrap();
        assert!(!pool.is_owned_here(), "a new pool has no owner");
        let first = pool.alloc().unwrap();
        assert!(pool.is_owned_here());
        let claimed = refs(&pool);
        assert_eq!(claimed, 1 + RESERVATION, "the handle and the owner's reservation");
        // Owner allocations and frees leave the reference count alone: no
        // atomic read-modify-write per buffer.
        for round in 0..100 {
            let bufs: Vec<_> = (0..63).map(|_| pool.alloc().unwrap()).collect();
            assert_eq!(entries(&bufs).len(), 63, "round {round}: distinct entries");
            assert_eq!(pool.free_count(), 0);
            assert_eq!(refs(&pool), claimed, "round {round}");
            drop(bufs);
            assert_eq!(pool.free_count(), 63);
        }
        assert_eq!(first.entry() & COUNTED, 0, "an owner buffer holds no reference of its own");
        let other = Mempool::new(&HeapDma, 1, 2048).unwrap();
        assert!(first.is_from(&pool) && !first.is_from(&other));
        drop(first);
        assert_eq!(pool.free_count(), 64);
        assert_eq!(pool.alloc_failures(), 0);
    }

    #[test]
    fn exhaustion_returns_none_counts_it_and_loses_nothing() {
        let pool = Mempool::new(&HeapDma, 8, 2048).unwrap();
        let bufs: Vec<_> = (0..8).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(entries(&bufs), (0..8).collect());
        for attempt in 1..=3 {
            assert!(pool.alloc().is_none());
            assert_eq!(pool.alloc_failures(), attempt);
        }
        drop(bufs);
        assert_eq!(pool.free_count(), 8);
        let again: Vec<_> = (0..8).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(entries(&again), (0..8).collect(), "every entry came back");
        assert_eq!(pool.alloc_failures(), 3);
    }

    #[test]
    fn ring_access_without_claim_leaves_the_pool_unowned() {
        let pool = Mempool::new(&HeapDma, 4, 2048).unwrap();
        let mut access = pool.access(false);
        let index = access.take().unwrap();
        access.give(index);
        drop(access);
        assert!(!pool.is_owned_here(), "filling a ring at init claims nothing");
        assert_eq!(pool.free_count(), 4);
        assert!(matches!(pool.access(true), PoolAccess::Owner(_)));
        assert!(pool.is_owned_here());
    }

    #[test]
    fn buffers_dropped_on_other_threads_come_back() {
        let pool = Mempool::new(&HeapDma, 32, 2048).unwrap();
        let mut bufs: Vec<_> = (0..32).map(|_| pool.alloc().unwrap()).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.copy_from(&[i as u8; 60]));
        }
        let (tx, rx) = mpsc::channel();
        let worker = thread::spawn(move || {
            let mut seen = Vec::new();
            for buf in rx {
                let buf: PacketBuf = buf;
                // The data crossed threads intact.
                seen.push(buf.data()[0]);
            }
            seen
        });
        for b in bufs.drain(..) {
            tx.send(b).unwrap();
        }
        drop(tx);
        assert_eq!(worker.join().unwrap(), (0..32).collect::<Vec<u8>>());
        assert_eq!(pool.free_count(), 32);
        assert!(pool.is_owned_here(), "remote frees do not move ownership");
        let again: Vec<_> = (0..32).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(entries(&again), (0..32).collect());
        assert_eq!(pool.alloc_failures(), 0);
    }

    #[test]
    fn another_thread_allocating_while_the_owner_frees_never_runs_dry() {
        // As the simulated NIC does: a wire thread allocates every received
        // frame from the core's pool and the core, the owner, drops it.
        let pool = Mempool::new(&HeapDma, 64, 2048).unwrap();
        drop(pool.alloc());
        assert!(pool.is_owned_here());
        let (to_owner, from_wire) = mpsc::channel::<PacketBuf>();
        let (to_wire, from_owner) = mpsc::channel::<()>();
        let remote = Arc::clone(&pool);
        let wire = thread::spawn(move || {
            for _ in 0..64 * 10 {
                let buf = remote.alloc().expect("the owner returns what it frees where this thread reaches it");
                to_owner.send(buf).unwrap();
                from_owner.recv().unwrap();
            }
        });
        for buf in from_wire {
            drop(buf);
            // The wire exits after its last round; the owner keeps going.
            let _ = to_wire.send(());
        }
        wire.join().unwrap();
        assert_eq!(pool.alloc_failures(), 0);
        assert_eq!(pool.free_count(), 64);
        // The owner still has its pool, and every entry.
        let all: Vec<_> = (0..64).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(entries(&all).len(), 64);
    }

    #[test]
    fn many_threads_returning_at_once_lose_nothing() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 64;
        let pool = Mempool::new(&HeapDma, (THREADS * PER_THREAD) as u32, 2048).unwrap();
        let claimed_refs = {
            let b = pool.alloc().unwrap();
            drop(b);
            refs(&pool)
        };
        let shares: Vec<Vec<_>> =
            (0..THREADS).map(|_| (0..PER_THREAD).map(|_| pool.alloc().unwrap()).collect()).collect();
        assert_eq!(pool.free_count(), 0);
        let barrier = Arc::new(Barrier::new(THREADS));
        let workers: Vec<_> = shares
            .into_iter()
            .map(|bufs| {
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    // All threads free at the same moment.
                    barrier.wait();
                    drop(bufs);
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(pool.free_count(), THREADS * PER_THREAD);
        // Each remote free of an owner buffer used one unit of the
        // reservation.
        assert_eq!(refs(&pool), claimed_refs - THREADS * PER_THREAD);
        let again: Vec<_> = (0..THREADS * PER_THREAD).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(entries(&again).len(), THREADS * PER_THREAD, "every entry once");
        assert!(pool.alloc().is_none());
        assert_eq!(pool.alloc_failures(), 1);
    }

    #[test]
    fn pool_handle_dropped_before_its_buffers_on_the_owner() {
        let (pool, released) = counted_pool(4);
        let mut bufs: Vec<_> = (0..3).map(|_| pool.alloc().unwrap()).collect();
        assert!(bufs[0].copy_from(b"still here"));
        drop(pool);
        assert_eq!(released.load(Ordering::SeqCst), 0, "buffers keep the memory");
        assert_eq!(bufs[0].data(), b"still here");
        bufs.pop();
        // The last buffer, freed on another thread, frees the pool there.
        let last = bufs.pop().unwrap();
        thread::spawn(move || drop(last)).join().unwrap();
        assert_eq!(released.load(Ordering::SeqCst), 0);
        drop(bufs);
        assert_eq!(released.load(Ordering::SeqCst), 1, "the memory went with the last buffer");
    }

    #[test]
    fn pool_handle_dropped_on_another_thread_while_the_owner_holds_buffers() {
        let (pool, released) = counted_pool(4);
        let bufs: Vec<_> = (0..2).map(|_| pool.alloc().unwrap()).collect();
        thread::spawn(move || drop(pool)).join().unwrap();
        assert_eq!(released.load(Ordering::SeqCst), 0);
        // The owner notices at its first free and gives the pool up; the
        // second buffer then holds the last reference.
        let mut bufs = bufs.into_iter();
        drop(bufs.next());
        assert_eq!(released.load(Ordering::SeqCst), 0);
        drop(bufs.next());
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unused_pool_frees_its_memory_with_its_handle() {
        let (pool, released) = counted_pool(4);
        drop(pool.alloc());
        drop(pool);
        assert_eq!(released.load(Ordering::SeqCst), 1);
        let (never_owned, released) = counted_pool(4);
        drop(never_owned);
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_exiting_owner_thread_gives_the_pool_up_and_its_entries_stay_usable() {
        let (pool, released) = counted_pool(16);
        let remote = Arc::clone(&pool);
        // The worker owns the pool, keeps 4 buffers past its exit and
        // returns 12 entries to its stack.
        let kept = thread::spawn(move || {
            let mut bufs: Vec<_> = (0..16).map(|_| remote.alloc().unwrap()).collect();
            assert!(remote.is_owned_here());
            let kept = bufs.split_off(12);
            drop(bufs);
            kept
        })
        .join()
        .unwrap();
        assert!(!pool.is_owned_here());
        // The exit moved the worker's free entries to the shared queue.
        assert_eq!(pool.free_count(), 12);
        // Nobody claims a given-up pool: these come off the shared queue,
        // each holding a reference.
        let off_owner: Vec<_> = (0..12).map(|_| pool.alloc().unwrap()).collect();
        assert!(!pool.is_owned_here());
        assert!(off_owner.iter().all(|b| b.index & COUNTED != 0));
        assert!(pool.alloc().is_none());
        drop(pool);
        drop(off_owner);
        assert_eq!(released.load(Ordering::SeqCst), 0, "the worker's 4 buffers are alive");
        drop(kept);
        assert_eq!(released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn buffers_allocated_off_the_owner_hold_a_reference_each() {
        let pool = Mempool::new(&HeapDma, 8, 2048).unwrap();
        let mut bufs: Vec<_> = (0..8).map(|_| pool.alloc().unwrap()).collect();
        let claimed = refs(&pool);
        // Three owner buffers freed elsewhere: into the shared queue, one
        // reservation unit each.
        let three = bufs.split_off(5);
        thread::spawn(move || drop(three)).join().unwrap();
        assert_eq!(refs(&pool), claimed - 3);
        // Another thread allocates them again off the owner: a reference
        // each, and a failure counted once the shared queue is empty.
        let remote = Arc::clone(&pool);
        let taken = thread::spawn(move || {
            let taken: Vec<_> = (0..3).map(|_| remote.alloc().unwrap()).collect();
            assert!(remote.alloc().is_none());
            assert!(!remote.is_owned_here());
            taken
        })
        .join()
        .unwrap();
        assert!(taken.iter().all(|b| b.index & COUNTED != 0));
        assert_eq!(refs(&pool), claimed);
        assert_eq!(pool.alloc_failures(), 1);
        // Freed on the owner: back on its stack, their references dropped.
        drop(taken);
        assert_eq!(refs(&pool), claimed - 3);
        assert_eq!(pool.free_count(), 3);
        drop(bufs);
        assert_eq!(pool.free_count(), 8);
    }
}
