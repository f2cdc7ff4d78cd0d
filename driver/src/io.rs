//! Register access: the one choke point between the driver and BAR0.
//!
//! The driver is generic over [`RegisterIo`]. On hardware it is [`Mmio`], a
//! volatile access to the mapped BAR; on the software model it is
//! `model::ModelRegs`, which calls the model's register handlers the way an
//! emulator traps MMIO. Either way the driver code is the same,
//! monomorphised, with no dynamic dispatch on the data path. `MappedBar`
//! is the mapping behind an [`Mmio`] on hardware, for both ways of reaching
//! the device (the `pci` module's sysfs path and the `vfio` module's).
//!
//! It also holds the two DMA barriers the rings need ([`dma_wmb`] before a
//! tail write, [`dma_rmb`] after seeing DD), because what they must compile
//! to depends on how the CPU orders its accesses to DMA memory against the
//! device's view and against MMIO:
//!
//! - x86-64 (TSO): stores are not reordered with older stores, loads not
//!   with older loads, also across write-back (DMA) and uncached (BAR0)
//!   memory, so only the compiler must be kept from reordering: a Rust
//!   fence, which emits no instruction here. Linux's `writel` on x86-64
//!   adds nothing either.
//! - aarch64: a Rust fence is `dmb ish` (inner shareable), which orders
//!   accesses between CPUs but not against a device in the outer shareable
//!   domain; Linux uses `dma_wmb()` = `dmb oshst` before a doorbell write
//!   (inside `writel`) and `dma_rmb()` = `dmb oshld` after reading a
//!   descriptor's done bit, and so does this.
//! - Any other architecture: not built (a `compile_error!`), rather than
//!   guess its barriers.
#![allow(unsafe_code)]

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "ixtcp-driver orders DMA memory against the device only for x86_64 and aarch64 (see io.rs); \
     add this architecture's DMA barriers to io::dma_wmb/dma_rmb first"
);

/// The write barrier before a tail (doorbell) write: every store to DMA
/// memory before it (descriptors, frame data) is visible to the device
/// before any register write after it.
#[inline(always)]
pub fn dma_wmb() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a barrier instruction; it touches no memory or register the
    // compiler knows of (and, without `nomem`, also orders the compiler).
    unsafe {
        std::arch::asm!("dmb oshst", options(nostack, preserves_flags));
    }
    // x86-64: keeps the compiler from sinking the stores past the MMIO write.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
}

/// The read barrier after seeing a descriptor's DD bit: nothing the device
/// wrote before DD (the rest of the write-back, frame data) is read before
/// DD itself, and buffers it read are not reused before.
#[inline(always)]
pub fn dma_rmb() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as in `dma_wmb`.
    unsafe {
        std::arch::asm!("dmb oshld", options(nostack, preserves_flags));
    }
    // x86-64: keeps the compiler from hoisting later loads above the DD load.
    std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
}

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;

/// 32-bit access to the device's register file at a BAR0 byte offset.
///
/// Implementations are cheap to clone (a pointer or an `Arc`): every queue
/// keeps its own copy to write its tail register.
pub trait RegisterIo: Clone + Send + Sync + 'static {
    /// Reads the register at `offset`.
    fn read32(&self, offset: u32) -> u32;
    /// Writes `value` to the register at `offset`.
    fn write32(&self, offset: u32, value: u32);

    /// Sets `bits` in the register at `offset` (read-modify-write).
    fn set_bits(&self, offset: u32, bits: u32) {
        self.write32(offset, self.read32(offset) | bits);
    }
    /// Clears `bits` in the register at `offset` (read-modify-write).
    fn clear_bits(&self, offset: u32, bits: u32) {
        self.write32(offset, self.read32(offset) & !bits);
    }

    /// Waits `d` on the device's time: the datasheet's "wait N ms" steps
    /// and the pauses between polls go through here. On hardware this
    /// sleeps the thread; the model advances its own clock instead, so that
    /// it can check that the driver waited (and tests do not sleep).
    fn delay(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// Who unmaps a BAR mapping when the last [`Mmio`] clone goes away.
pub trait BarMapping: Send + Sync {
    /// Start of the mapping.
    fn base(&self) -> NonNull<u8>;
    /// Length of the mapping in bytes.
    fn len(&self) -> usize;
    /// True when the mapping is empty (never for a real BAR0).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Volatile, bounds-checked access to a memory-mapped BAR0.
#[derive(Clone)]
pub struct Mmio {
    base: NonNull<u8>,
    len: usize,
    _mapping: Arc<dyn BarMapping>,
}

// SAFETY: the mapping is device memory that any thread may access; every
// access is a single aligned volatile load or store, and the mapping lives as
// long as the `Arc` held here.
unsafe impl Send for Mmio {}
// SAFETY: as above; `&Mmio` only ever performs volatile register accesses.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// Wraps a mapping of BAR0. The mapping stays alive as long as any clone.
    pub fn new(mapping: Arc<dyn BarMapping>) -> Mmio {
        Mmio { base: mapping.base(), len: mapping.len(), _mapping: mapping }
    }

    /// Length of the mapped BAR in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping is empty (never for a real BAR0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn in_bounds(&self, offset: u32) -> bool {
        offset % 4 == 0 && (offset as usize).checked_add(4).is_some_and(|end| end <= self.len)
    }
}

impl RegisterIo for Mmio {
    fn read32(&self, offset: u32) -> u32 {
        if !self.in_bounds(offset) {
            debug_assert!(false, "register read at {offset:#x} outside BAR0 ({:#x} bytes)", self.len);
            // What a PCIe read that nobody claims returns.
            return u32::MAX;
        }
        // SAFETY: `offset` is 4-aligned and inside the mapping (checked above);
        // the mapping is alive while `self._mapping` is.
        unsafe { self.base.as_ptr().add(offset as usize).cast::<u32>().read_volatile() }
    }

    fn write32(&self, offset: u32, value: u32) {
        if !self.in_bounds(offset) {
            debug_assert!(false, "register write at {offset:#x} outside BAR0 ({:#x} bytes)", self.len);
            return;
        }
        // SAFETY: as in `read32`.
        unsafe { self.base.as_ptr().add(offset as usize).cast::<u32>().write_volatile(value) }
    }
}

/// A BAR mapping over ordinary memory, for tests of `Mmio` itself and of
/// code that maps a fake `resource0` file.
pub struct HeapBar {
    mem: Box<[u32]>,
}

impl HeapBar {
    /// A zeroed fake BAR of `len` bytes (rounded up to 4).
    pub fn new(len: usize) -> HeapBar {
        HeapBar { mem: vec![0u32; len.div_ceil(4)].into_boxed_slice() }
    }
}

impl BarMapping for HeapBar {
    fn base(&self) -> NonNull<u8> {
        NonNull::from(&self.mem[..]).cast()
    }
    fn len(&self) -> usize {
        self.mem.len() * 4
    }
}

/// A shared, read-write mapping of a BAR (sysfs `resource0` or a VFIO
/// region), unmapped on drop. Keeps the file open for its lifetime: under
/// VFIO, closing the last reference to the device resets it.
pub(crate) struct MappedBar {
    base: NonNull<u8>,
    len: usize,
    _file: Arc<File>,
}

// SAFETY: the mapping is plain shared memory (device or file); `MappedBar`
// only hands out its address and never accesses it; `Mmio` does, with
// volatile word accesses, which any thread may perform.
unsafe impl Send for MappedBar {}
// SAFETY: as above; `&MappedBar` gives nothing but the address and length.
unsafe impl Sync for MappedBar {}

impl MappedBar {
    /// Maps `len` bytes of `file` at `offset`.
    pub(crate) fn map(file: Arc<File>, offset: u64, len: usize) -> io::Result<MappedBar> {
        let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh mapping chosen by the kernel (null hint, no
        // MAP_FIXED), so it aliases no Rust object; the fd is open.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null address"))?;
        Ok(MappedBar { base, len, _file: file })
    }
}

impl BarMapping for MappedBar {
    fn base(&self) -> NonNull<u8> {
        self.base
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for MappedBar {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is the mapping made in `map`, and the last
        // `Mmio` clone that could touch it is gone (it holds an `Arc` to us).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_reads_back_writes_and_bit_helpers_work() {
        let io = Mmio::new(Arc::new(HeapBar::new(0x100)));
        io.write32(0x10, 0xdead_beef);
        assert_eq!(io.read32(0x10), 0xdead_beef);
        io.clear_bits(0x10, 0xffff);
        assert_eq!(io.read32(0x10), 0xdead_0000);
        io.set_bits(0x10, 0x1);
        assert_eq!(io.read32(0x10), 0xdead_0001);
        assert_eq!(io.len(), 0x100);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn mmio_out_of_bounds_reads_all_ones() {
        let io = Mmio::new(Arc::new(HeapBar::new(0x100)));
        assert_eq!(io.read32(0x100), u32::MAX);
        io.write32(0x200, 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "outside BAR0")]
    fn mmio_out_of_bounds_is_caught_in_debug_builds() {
        let io = Mmio::new(Arc::new(HeapBar::new(0x100)));
        io.read32(0x100);
    }
}
