//! Packet buffer pools in DMA memory.
//!
//! A [`Mempool`] carves one DMA region into fixed-size entries. It belongs to
//! one queue pair, and so to one core: the receive ring takes buffers from
//! it and the transmit ring gives them back. A [`PacketBuf`] is a handle to
//! one entry that returns it to the pool when dropped.
//!
//! The free list is a bounded lock-free queue. On the intended use (one
//! core) every operation is an uncontended atomic, and a `PacketBuf` may
//! still be sent to, and dropped on, another thread without unsoundness.
#![allow(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A pool of fixed-size DMA buffers.
pub struct Mempool {
    /// One region per 2 MiB (hugepages are only contiguous per page).
    regions: Vec<DmaRegion>,
    entries_per_region: u32,
    entry_size: u32,
    num_entries: u32,
    free: ArrayQueue<u32>,
    alloc_failures: AtomicU64,
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("entry_size", &self.entry_size)
            .field("num_entries", &self.num_entries)
            .field("free", &self.free.len())
            .finish()
    }
}

impl Mempool {
    /// A pool of `num_entries` buffers of `entry_size` bytes, all free.
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
        let free = ArrayQueue::new(num_entries as usize);
        for i in 0..num_entries {
            // Cannot fail: the queue has exactly `num_entries` slots.
            let _ = free.push(i);
        }
        Ok(Arc::new(Mempool {
            regions,
            entries_per_region,
            entry_size,
            num_entries,
            free,
            alloc_failures: AtomicU64::new(0),
        }))
    }

    /// Bytes per entry.
    pub fn entry_size(&self) -> u32 {
        self.entry_size
    }

    /// Total number of entries.
    pub fn capacity(&self) -> u32 {
        self.num_entries
    }

    /// Number of entries currently free.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// How many allocations found the pool empty.
    pub fn alloc_failures(&self) -> u64 {
        self.alloc_failures.load(Ordering::Relaxed)
    }

    fn locate(&self, index: u32) -> (&DmaRegion, usize) {
        let region = &self.regions[(index / self.entries_per_region) as usize];
        (region, (index % self.entries_per_region) as usize * self.entry_size as usize)
    }

    /// The device address of entry `index`'s first byte.
    pub(crate) fn iova(&self, index: u32) -> u64 {
        let (region, offset) = self.locate(index);
        region.iova() + offset as u64
    }

    /// Takes a free entry index, or counts a failure.
    pub(crate) fn alloc_index(&self) -> Option<u32> {
        let index = self.free.pop();
        if index.is_none() {
            self.alloc_failures.fetch_add(1, Ordering::Relaxed);
        }
        index
    }

    /// Returns an entry index taken with `alloc_index`.
    pub(crate) fn free_index(&self, index: u32) {
        debug_assert!(index < self.num_entries);
        if self.free.push(index).is_err() {
            debug_assert!(false, "mempool entry {index} freed twice");
        }
    }

    /// A free buffer with [`DEFAULT_HEADROOM`] and no data, or `None` when
    /// the pool is empty (counted in [`alloc_failures`](Self::alloc_failures)).
    pub fn alloc(self: &Arc<Self>) -> Option<PacketBuf> {
        let index = self.alloc_index()?;
        Some(PacketBuf {
            pool: Arc::clone(self),
            index,
            offset: DEFAULT_HEADROOM,
            len: 0,
            tx_offload: TxOffload::NONE,
            rx_csum: RxChecksum::UNCHECKED,
        })
    }

    /// Wraps an entry index the queues own into a handle holding `len`
    /// bytes at `offset`.
    pub(crate) fn wrap(self: &Arc<Self>, index: u32, offset: u16, len: u16) -> PacketBuf {
        PacketBuf {
            pool: Arc::clone(self),
            index,
            offset,
            len,
            tx_offload: TxOffload::NONE,
            rx_csum: RxChecksum::UNCHECKED,
        }
    }
}

/// A packet buffer from a [`Mempool`]: `len` bytes of data at some offset
/// inside a fixed-size entry, with headroom in front. Returns to its pool on
/// drop.
pub struct PacketBuf {
    pool: Arc<Mempool>,
    index: u32,
    offset: u16,
    len: u16,
    /// What the transmit path is asked to insert (see [`crate::offload`]).
    tx_offload: TxOffload,
    /// What the receive path found.
    rx_csum: RxChecksum,
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuf")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl PacketBuf {
    /// The data.
    pub fn data(&self) -> &[u8] {
        let (region, base) = self.pool.locate(self.index);
        // SAFETY: the entry is owned by this handle: it is not in the free
        // list and not in any ring, so neither the CPU nor the device writes
        // it while `&self` lives.
        unsafe { region.slice(base + usize::from(self.offset), usize::from(self.len)) }
    }

    /// The data, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (region, base) = self.pool.locate(self.index);
        // SAFETY: as in `data`, and `&mut self` makes this the only borrow.
        unsafe { region.slice_mut(base + usize::from(self.offset), usize::from(self.len)) }
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
        self.pool.entry_size as usize - usize::from(self.offset)
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
        self.offset = headroom.min(self.pool.entry_size as usize) as u16;
        self.len = 0;
        self.tx_offload = TxOffload::NONE;
        self.rx_csum = RxChecksum::UNCHECKED;
    }

    /// The checksum offload `tx_batch` asks the device for ([`TxOffload::NONE`]
    /// unless set).
    pub fn tx_offload(&self) -> TxOffload {
        self.tx_offload
    }

    /// Asks the device to insert checksums when this frame is sent.
    pub fn set_tx_offload(&mut self, offload: TxOffload) {
        self.tx_offload = offload;
    }

    /// The device's checksum verdict on a received frame
    /// ([`RxChecksum::UNCHECKED`] for buffers that did not come from
    /// `rx_batch`).
    pub fn rx_checksum(&self) -> RxChecksum {
        self.rx_csum
    }

    /// Records the device's verdict (the receive path, and tests that play
    /// a NIC).
    pub fn set_rx_checksum(&mut self, csum: RxChecksum) {
        self.rx_csum = csum;
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
        self.pool.iova(self.index) + u64::from(self.offset)
    }

    /// The pool this buffer belongs to.
    pub fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }

    /// Gives up the handle without freeing the entry (the ring now owns it).
    // Unused: the TX ring keeps whole `PacketBuf`s so that buffers from any
    // pool return home; kept for rings that store bare indices.
    #[allow(dead_code)]
    pub(crate) fn into_index(self) -> u32 {
        let index = self.index;
        std::mem::forget(self);
        index
    }
}

impl Drop for PacketBuf {
    fn drop(&mut self) {
        self.pool.free_index(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::HeapDma;

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
        assert_eq!(pool.regions.len(), 2);
        let a = pool.alloc().unwrap();
        assert_ne!(pool.iova(0), pool.iova(1024));
        assert_eq!(a.iova(), pool.iova(a.index) + 64);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert_eq!(Mempool::new(&HeapDma, 4, 1000).unwrap_err(), MempoolError::BadEntrySize(1000));
        assert_eq!(Mempool::new(&HeapDma, 0, 2048).unwrap_err(), MempoolError::BadEntryCount(0));
    }
}
