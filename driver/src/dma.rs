//! DMA memory: regions the device reads and writes, and who provides them.
//!
//! A [`DmaRegion`] is a span of memory pinned for the device, known by its
//! virtual address (for the CPU) and its IO virtual address (for the device:
//! a physical address from pagemap on sysfs, an IOVA under VFIO, an address
//! from the model's own IOVA space on the model, disjoint from every virtual
//! address). Word accesses to it are atomic, so that the
//! device (or the model, on another thread) and the driver can share
//! descriptors safely; ordering comes from the DMA barriers in
//! [`crate::io`] (`dma_wmb`, `dma_rmb`) at the places the datasheet's
//! ownership protocol requires them.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::desc::DESC_SIZE;

/// Errors of DMA memory allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaError {
    /// A size of zero, or one the allocator cannot satisfy in one piece.
    BadSize {
        /// The size asked for.
        size: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The operating system refused (mmap, mlock, open, ioctl …).
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        err: String,
    },
    /// Physical addresses cannot be read (not root, or no pagemap).
    NoPhysicalAddress(String),
    /// No hugepages are reserved or hugetlbfs is not mounted.
    NoHugepages(String),
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::BadSize { size, reason } => {
                write!(f, "cannot allocate {size} bytes of DMA memory: {reason}")
            }
            DmaError::Os { what, err } => write!(f, "{what}: {err}"),
            DmaError::NoPhysicalAddress(why) => write!(
                f,
                "cannot translate virtual to physical addresses ({why}); run as root (CAP_SYS_ADMIN) or use VFIO"
            ),
            DmaError::NoHugepages(why) => write!(
                f,
                "no 2 MiB hugepages available ({why}); run scripts/setup-hugepages.sh or reserve some in /sys/kernel/mm/hugepages"
            ),
        }
    }
}

impl std::error::Error for DmaError {}

/// Something that hands out DMA memory: hugepages, VFIO, or the model.
pub trait DmaAllocator: Send + Sync {
    /// Allocates `size` bytes of zeroed DMA memory, aligned to at least 4 KiB,
    /// contiguous for the device.
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError>;
}

/// Releases a region's memory (munmap, VFIO unmap, model unregister …).
pub trait DmaRelease: Send + Sync {
    /// Called once, when the region is dropped.
    fn release(&mut self, virt: NonNull<u8>, len: usize, iova: u64);
}

/// A span of DMA memory. Unmapped (by its [`DmaRelease`]) on drop.
pub struct DmaRegion {
    virt: NonNull<u8>,
    len: usize,
    iova: u64,
    release: Box<dyn DmaRelease>,
}

// SAFETY: the region owns its memory; all access through `&DmaRegion` is by
// atomic word operations or through the `unsafe` slice accessors, whose
// callers promise exclusive ownership of the bytes they touch.
unsafe impl Send for DmaRegion {}
// SAFETY: as above.
unsafe impl Sync for DmaRegion {}

impl fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaRegion")
            .field("virt", &self.virt)
            .field("len", &self.len)
            .field("iova", &format_args!("{:#x}", self.iova))
            .finish()
    }
}

impl DmaRegion {
    /// Wraps memory that an allocator has pinned and mapped for the device.
    ///
    /// # Safety
    /// `virt..virt+len` must be valid, writable memory, aligned to 8 bytes,
    /// exclusively owned by the returned region until `release` is called,
    /// and `iova` must be the address at which the device sees `virt`.
    pub unsafe fn from_raw_parts(virt: NonNull<u8>, len: usize, iova: u64, release: Box<dyn DmaRelease>) -> DmaRegion {
        DmaRegion { virt, len, iova, release }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device's address of the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The CPU's address of the first byte.
    pub fn virt(&self) -> NonNull<u8> {
        self.virt
    }

    /// Whether `[offset, offset+len)` lies inside the region.
    pub fn contains(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    fn word<T>(&self, offset: usize) -> *mut T {
        let size = std::mem::size_of::<T>();
        assert!(
            offset % size == 0 && self.contains(offset, size),
            "DMA word access at {offset:#x} (size {size}) outside a region of {:#x} bytes",
            self.len
        );
        // In bounds by the assertion above.
        self.virt.as_ptr().wrapping_add(offset).cast()
    }

    /// Atomically loads the aligned `u32` at `offset` (relaxed).
    pub fn load_u32(&self, offset: usize) -> u32 {
        // SAFETY: `word` checked bounds and alignment; the memory lives as
        // long as `self`; all concurrent accesses to words are atomic.
        unsafe { AtomicU32::from_ptr(self.word(offset)) }.load(Ordering::Relaxed)
    }

    /// Atomically stores the aligned `u32` at `offset` (relaxed).
    pub fn store_u32(&self, offset: usize, value: u32) {
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(self.word(offset)) }.store(value, Ordering::Relaxed)
    }

    /// Atomically loads the aligned `u64` at `offset` (relaxed).
    pub fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU64::from_ptr(self.word(offset)) }.load(Ordering::Relaxed)
    }

    /// Atomically stores the aligned `u64` at `offset` (relaxed).
    pub fn store_u64(&self, offset: usize, value: u64) {
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU64::from_ptr(self.word(offset)) }.store(value, Ordering::Relaxed)
    }

    /// Fills the whole region with `byte` (through word stores, so it is
    /// safe while nobody else owns any of it).
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: `&mut self` guarantees no other reference into the region.
        unsafe { std::ptr::write_bytes(self.virt.as_ptr(), byte, self.len) }
    }

    /// Borrows `len` bytes at `offset`.
    ///
    /// # Safety
    /// Nobody (CPU or device) may write these bytes while the slice lives.
    pub unsafe fn slice(&self, offset: usize, len: usize) -> &[u8] {
        assert!(self.contains(offset, len), "DMA slice {offset:#x}+{len} outside region of {:#x}", self.len);
        // SAFETY: bounds checked; exclusivity promised by the caller.
        unsafe { std::slice::from_raw_parts(self.virt.as_ptr().add(offset), len) }
    }

    /// Mutably borrows `len` bytes at `offset`.
    ///
    /// # Safety
    /// Nobody else (CPU or device) may read or write these bytes while the
    /// slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        assert!(self.contains(offset, len), "DMA slice {offset:#x}+{len} outside region of {:#x}", self.len);
        // SAFETY: bounds checked; exclusivity promised by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.virt.as_ptr().add(offset), len) }
    }
}

/// A DMA region used as a ring of 16-byte descriptors, their number a power
/// of two. Slot numbers are taken modulo the ring size, so no access can
/// leave the region: unlike [`DmaRegion`]'s word accessors it needs no bounds
/// check per access (the rings' hot loops make several per packet); the
/// accessors are on its [`DescView`]. It dereferences to its region for
/// byte-offset access (tests).
pub struct DescRing {
    region: DmaRegion,
    mask: usize,
}

impl fmt::Debug for DescRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DescRing").field("region", &self.region).field("slots", &(self.mask + 1)).finish()
    }
}

impl std::ops::Deref for DescRing {
    type Target = DmaRegion;

    fn deref(&self) -> &DmaRegion {
        &self.region
    }
}

impl DescRing {
    /// Views `region` as a ring; panics unless it holds a power-of-two number
    /// of whole descriptors (the device configuration allows only such ring
    /// sizes).
    pub fn new(region: DmaRegion) -> DescRing {
        let slots = region.len() / DESC_SIZE;
        assert!(
            slots.is_power_of_two() && slots * DESC_SIZE == region.len(),
            "a descriptor ring of {} bytes is not a power-of-two number of {DESC_SIZE}-byte descriptors",
            region.len()
        );
        DescRing { region, mask: slots - 1 }
    }

    /// Number of descriptors.
    pub fn slots(&self) -> usize {
        self.mask + 1
    }

    /// A copy of the ring's base and size for a hot loop: kept in
    /// registers, where the ring's own fields would be loaded again after
    /// every descriptor store (the compiler cannot tell that DMA stores leave
    /// them alone).
    #[inline(always)]
    pub fn view(&self) -> DescView<'_> {
        DescView { base: self.region.virt, mask: self.mask, _ring: PhantomData }
    }
}

/// A [`DescRing`] borrowed for a stretch of descriptor accesses.
#[derive(Clone, Copy)]
pub struct DescView<'a> {
    base: NonNull<u8>,
    mask: usize,
    _ring: PhantomData<&'a DescRing>,
}

impl DescView<'_> {
    /// The word of type `T` at byte `field` of descriptor `slot` (modulo the
    /// ring size).
    #[inline(always)]
    fn word<T>(self, slot: usize, field: usize) -> *mut T {
        let size = std::mem::size_of::<T>();
        // Constant after inlining (fields are constants), so it costs
        // nothing; it keeps the access inside the descriptor.
        assert!(field % size == 0 && field + size <= DESC_SIZE, "descriptor field {field} of size {size}");
        // In bounds: (slot & mask) * 16 + field + size <= (mask + 1) * 16,
        // the region's length; aligned because the region is 8-byte aligned.
        self.base.as_ptr().wrapping_add((slot & self.mask) * DESC_SIZE + field).cast()
    }

    /// Atomically loads the `u32` at byte `field` of descriptor `slot`
    /// (relaxed).
    #[inline(always)]
    pub fn read_u32(self, slot: usize, field: usize) -> u32 {
        // SAFETY: `word` keeps the access inside the region and aligned; the
        // region outlives the borrow `'a`; concurrent accesses are atomic.
        unsafe { AtomicU32::from_ptr(self.word(slot, field)) }.load(Ordering::Relaxed)
    }

    /// Atomically stores the `u32` at byte `field` of descriptor `slot`
    /// (relaxed).
    #[inline(always)]
    pub fn write_u32(self, slot: usize, field: usize, value: u32) {
        // SAFETY: as in `read_u32`.
        unsafe { AtomicU32::from_ptr(self.word(slot, field)) }.store(value, Ordering::Relaxed)
    }

    /// Atomically stores the `u64` at byte `field` of descriptor `slot`
    /// (relaxed).
    #[inline(always)]
    pub fn write_u64(self, slot: usize, field: usize, value: u64) {
        // SAFETY: as in `read_u32`.
        unsafe { AtomicU64::from_ptr(self.word(slot, field)) }.store(value, Ordering::Relaxed)
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        self.release.release(self.virt, self.len, self.iova);
    }
}

/// Page-aligned memory from the Rust allocator; the device address is the
/// virtual address. For tests of ring logic without a device model; the
/// model's own allocator ([`ModelDma`](crate::model::ModelDma)) puts its
/// regions at device addresses no virtual address can have, so that a
/// driver which hands the device a virtual address is caught.
pub struct HeapDma;

/// Alignment of heap DMA regions: a 4 KiB page, more than the 128 bytes the
/// 82599 needs for rings.
pub const HEAP_DMA_ALIGN: usize = 4096;

struct HeapRelease {
    align: usize,
}

impl DmaRelease for HeapRelease {
    fn release(&mut self, virt: NonNull<u8>, len: usize, _iova: u64) {
        if let Ok(layout) = std::alloc::Layout::from_size_align(len, self.align) {
            // SAFETY: allocated in `HeapDma::alloc_at` with exactly this
            // layout.
            unsafe { std::alloc::dealloc(virt.as_ptr(), layout) }
        }
    }
}

impl HeapDma {
    /// Allocates a zeroed, page-aligned region from the heap, with `release`
    /// run before the memory is freed; the device address is the virtual
    /// address.
    pub fn alloc_with(size: usize, release: Box<dyn DmaRelease>) -> Result<DmaRegion, DmaError> {
        HeapDma::alloc_at(size, HEAP_DMA_ALIGN, None, release)
    }

    /// Allocates a zeroed region of `size` bytes aligned to `align` (a power
    /// of two, at least [`HEAP_DMA_ALIGN`]) that the device sees at `iova`
    /// (`None`: at its virtual address), with `release` run before the
    /// memory is freed. Whoever picks `iova` must make the device see the
    /// memory there (the model registers it in its IOMMU table).
    pub(crate) fn alloc_at(
        size: usize,
        align: usize,
        iova: Option<u64>,
        mut release: Box<dyn DmaRelease>,
    ) -> Result<DmaRegion, DmaError> {
        if size == 0 {
            return Err(DmaError::BadSize { size, reason: "zero-sized region" });
        }
        let align = align.max(HEAP_DMA_ALIGN);
        let layout = std::alloc::Layout::from_size_align(size, align)
            .map_err(|_| DmaError::BadSize { size, reason: "size overflows the address space" })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let virt = NonNull::new(ptr)
            .ok_or(DmaError::Os { what: format!("allocating {size} bytes"), err: "out of memory".into() })?;
        struct Chain(Box<dyn DmaRelease>, HeapRelease);
        impl DmaRelease for Chain {
            fn release(&mut self, virt: NonNull<u8>, len: usize, iova: u64) {
                self.0.release(virt, len, iova);
                self.1.release(virt, len, iova);
            }
        }
        release = Box::new(Chain(release, HeapRelease { align }));
        let iova = iova.unwrap_or(virt.as_ptr() as u64);
        // SAFETY: freshly allocated, zeroed, aligned to at least a page,
        // owned by the region; the caller makes the device see it at `iova`.
        Ok(unsafe { DmaRegion::from_raw_parts(virt, size, iova, release) })
    }
}

impl DmaAllocator for HeapDma {
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
        struct Nothing;
        impl DmaRelease for Nothing {
            fn release(&mut self, _: NonNull<u8>, _: usize, _: u64) {}
        }
        HeapDma::alloc_with(size, Box::new(Nothing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_region_is_zeroed_aligned_and_word_accessible() {
        let mut r = HeapDma.alloc(8192).unwrap();
        assert_eq!(r.virt().as_ptr() as usize % HEAP_DMA_ALIGN, 0);
        assert_eq!(r.iova(), r.virt().as_ptr() as u64);
        assert_eq!(r.load_u64(8184), 0);
        r.store_u32(4, 0x1234_5678);
        r.store_u64(16, u64::MAX);
        assert_eq!(r.load_u32(4), 0x1234_5678);
        assert_eq!(r.load_u64(16), u64::MAX);
        r.fill(0xff);
        assert_eq!(r.load_u32(0), u32::MAX);
    }

    #[test]
    fn zero_size_is_refused() {
        assert!(matches!(HeapDma.alloc(0), Err(DmaError::BadSize { .. })));
    }

    #[test]
    #[should_panic(expected = "outside a region")]
    fn word_access_out_of_bounds_panics() {
        let r = HeapDma.alloc(4096).unwrap();
        r.load_u32(4096);
    }
}
