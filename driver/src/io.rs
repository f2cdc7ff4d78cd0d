//! Register access: the one choke point between the driver and BAR0.
//!
//! The driver is generic over [`RegisterIo`]. On hardware it is [`Mmio`], a
//! volatile access to the mapped BAR; on the software model it is
//! `model::ModelRegs`, which calls the model's register handlers the way an
//! emulator traps MMIO. Either way the driver code is the same,
//! monomorphised, with no dynamic dispatch on the data path.
#![allow(unsafe_code)]

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
