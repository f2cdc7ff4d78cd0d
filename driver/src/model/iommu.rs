//! The model's IOMMU: the table of DMA regions the driver allocated through
//! [`ModelDma`](super::ModelDma), and the only code in the model that touches
//! their memory.
//!
//! Every DMA the model performs names a device address (IOVA) and a length;
//! it goes through [`IommuTable`], which finds the one registered region that
//! covers the whole access, or refuses (and the caller reports a
//! `DmaOutOfBounds` fault). A region is unregistered by its `DmaRelease`
//! before its memory is freed, under the same lock that every access holds,
//! so an access never touches freed memory.
//!
//! Translation is a table lookup, not a search: the model hands out every
//! device address itself ([`IommuTable::alloc_iova`]), each region starting
//! on a 2 MiB granule and followed by at least one unmapped granule, so a
//! granule belongs to at most one region and the granule number
//! (`(iova - IOVA_BASE) >> 21`) indexes a flat table of region slots.
//! The rings go one step further: each remembers the region of its last
//! descriptor and of its last packet buffer ([`Memo`]), so the next access
//! there is one range check, for as long as the table unmaps nothing.
//!
//! All accesses are atomic (whole words for descriptor fields, and bytes or
//! aligned words for packet data): the descriptor ownership protocol
//! (7.1.9, 7.2.3.3) says who may touch which memory when, but atomics keep
//! the model's side sound even if a buggy driver breaks that protocol.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// One registered region.
#[derive(Debug)]
struct Mapping {
    /// Its first device address (granule-aligned).
    iova: u64,
    virt: NonNull<u8>,
    len: usize,
    /// The mapping of a region's first byte (a region in the hugepage
    /// layout has one mapping per page).
    first: bool,
}

/// The first device address the model hands out: 2^56. Every user-space
/// virtual address lies below it (x86-64 with 4- or 5-level paging: below
/// 2^47 or 2^56; aarch64: below 2^52), and on x86-64 it is not even a
/// canonical address, so a virtual address written where the device expects
/// a device address never falls inside a registered region.
pub const IOVA_BASE: u64 = 1 << 56;

/// Unmapped device addresses left after every mapping, so that an access
/// running off the end of one region never lands in the next.
const IOVA_GUARD: u64 = 1 << GRANULE_SHIFT;

/// log2 of the granule the translation table is indexed by (2 MiB). Every
/// reservation starts on a granule boundary and ends at least one whole
/// granule before the next one starts.
const GRANULE_SHIFT: u32 = 21;

/// Registered DMA regions and the allocator of device addresses: a bump
/// pointer from [`IOVA_BASE`] that never reuses an address, so a stale
/// address (memory already freed) stays unmapped for good.
///
/// `granules[g]` is the slot in `mappings` (plus one; 0 is unmapped) of the
/// region covering granule `g` of the IOVA space. The table grows by four
/// bytes per 2 MiB of device address space handed out; slots of unmapped
/// regions are reused.
#[derive(Debug)]
pub(crate) struct IommuTable {
    granules: Vec<u32>,
    mappings: Vec<Option<Mapping>>,
    free_slots: Vec<u32>,
    next_iova: u64,
    /// Bumped by every unmap (from 1): a [`Memo`] filled at this value
    /// names a region that is still mapped.
    generation: u64,
}

impl Default for IommuTable {
    fn default() -> Self {
        IommuTable {
            granules: Vec::new(),
            mappings: Vec::new(),
            free_slots: Vec::new(),
            next_iova: IOVA_BASE,
            generation: 1,
        }
    }
}

/// The region an earlier translation found, remembered by whoever
/// translates into the same region again and again (a ring's descriptors,
/// a queue's packet buffers), so that the next access there checks one
/// range instead of looking the address up. It is used only while the
/// table has unmapped nothing since it was filled (`generation`): then the
/// region is still registered, and since regions never overlap, an access
/// inside it is exactly what the table would allow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memo {
    /// The table's generation when filled; 0 (never a generation) if empty,
    /// so an empty memo never passes the generation check and its `virt`
    /// is never used.
    generation: u64,
    iova: u64,
    virt: NonNull<u8>,
    len: usize,
}

impl Default for Memo {
    fn default() -> Self {
        Memo { generation: 0, iova: 0, virt: NonNull::dangling(), len: 0 }
    }
}

// SAFETY: a memo is only a remembered address; it is dereferenced only
// through `IommuTable::translate_with`, under the table's lock and only
// while the region it names is registered (the generation check).
unsafe impl Send for Memo {}

/// The granule of device address `addr`, if it lies in the model's space.
#[inline(always)]
fn granule(addr: u64) -> Option<usize> {
    usize::try_from(addr.checked_sub(IOVA_BASE)? >> GRANULE_SHIFT).ok()
}

// SAFETY: the table only stores pointers to DMA regions; it dereferences
// them (atomically) only while the region is registered, and a region
// unregisters itself under the table's lock before its memory is freed.
unsafe impl Send for IommuTable {}

impl IommuTable {
    /// Reserves `len` bytes of device address space aligned to `align` (a
    /// power of two), followed by an unmapped guard gap; returns the first
    /// address. Nothing is mapped there until [`map`](Self::map).
    pub(crate) fn alloc_iova(&mut self, len: usize, align: u64) -> u64 {
        let start = self.next_iova.next_multiple_of(align);
        self.next_iova = start + (len as u64).next_multiple_of(IOVA_GUARD) + IOVA_GUARD;
        start
    }

    /// Registers `len` bytes at `virt` as visible to the device at `iova`,
    /// an address [`alloc_iova`](Self::alloc_iova) returned for at least
    /// `len` bytes (an address outside the model's IOVA space, or one whose
    /// granules are taken, is not mapped). `first` marks the mapping of a
    /// region's first byte (see [`len`](Self::len)).
    pub(crate) fn map(&mut self, iova: u64, virt: NonNull<u8>, len: usize, first: bool) {
        let (Some(start), Some(end)) = (granule(iova), granule(iova + len.max(1) as u64 - 1)) else { return };
        if iova % IOVA_GUARD != 0 || self.granules.get(start..=end).is_some_and(|g| g.iter().any(|&s| s != 0)) {
            debug_assert!(false, "IOVA {iova:#x} was not reserved by alloc_iova");
            return;
        }
        let mapping = Some(Mapping { iova, virt, len, first });
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.mappings[slot as usize] = mapping;
                slot
            }
            None => {
                self.mappings.push(mapping);
                (self.mappings.len() - 1) as u32
            }
        };
        if self.granules.len() <= end {
            self.granules.resize(end + 1, 0);
        }
        self.granules[start..=end].fill(slot + 1);
    }

    /// Forgets the region that starts at `iova`.
    pub(crate) fn unmap(&mut self, iova: u64) {
        let Some(slot) = self.slot_of(iova) else { return };
        let Some(m) = self.mappings[slot].take_if(|m| m.iova == iova) else { return };
        let (Some(start), Some(end)) = (granule(m.iova), granule(m.iova + m.len.max(1) as u64 - 1)) else { return };
        self.granules[start..=end].fill(0);
        self.free_slots.push(slot as u32);
        // Every memo may name this region: none is trusted any more.
        self.generation += 1;
    }

    /// Number of registered regions (not counting the further pages of a
    /// region in the hugepage layout).
    pub(crate) fn len(&self) -> usize {
        self.mappings.iter().flatten().filter(|m| m.first).count()
    }

    /// The slot of the mapping covering device address `addr`.
    #[inline(always)]
    fn slot_of(&self, addr: u64) -> Option<usize> {
        let slot = *self.granules.get(granule(addr)?)?;
        Some(slot.checked_sub(1)? as usize)
    }

    /// The CPU address of device address `addr`, if one region covers all
    /// of `[addr, addr + len)` (an empty access must still start inside a
    /// region): one table lookup.
    #[inline(always)]
    fn translate(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let m = self.mappings.get(self.slot_of(addr)?)?.as_ref()?;
        let offset = usize::try_from(addr.checked_sub(m.iova)?).ok()?;
        let end = offset.checked_add(len.max(1))?;
        if end > m.len {
            return None;
        }
        // In bounds of the region by the check above.
        Some(m.virt.as_ptr().wrapping_add(offset))
    }

    /// `translate`, through `memo`: checked against the region the memo
    /// remembers if it is still valid, else looked up (and remembered).
    #[inline(always)]
    fn translate_with(&self, memo: &mut Memo, addr: u64, len: usize) -> Option<*mut u8> {
        if memo.generation == self.generation {
            let virt = memo.virt;
            let offset = addr.wrapping_sub(memo.iova);
            // `offset < memo.len` first, so the subtraction cannot wrap.
            if offset < memo.len as u64 && len.max(1) <= memo.len - offset as usize {
                // In bounds of the region by the check above.
                return Some(virt.as_ptr().wrapping_add(offset as usize));
            }
        }
        self.translate_remembering(memo, addr, len)
    }

    #[inline(never)]
    fn translate_remembering(&self, memo: &mut Memo, addr: u64, len: usize) -> Option<*mut u8> {
        let base = self.translate(addr, len)?;
        if let Some(m) = self.slot_of(addr).and_then(|slot| self.mappings.get(slot)).and_then(Option::as_ref) {
            *memo = Memo { generation: self.generation, iova: m.iova, virt: m.virt, len: m.len };
        }
        Some(base)
    }

    /// [`desc`](Self::desc), translated through `memo`.
    #[inline(always)]
    pub(crate) fn desc_with(&self, memo: &mut Memo, addr: u64) -> Desc<'_> {
        let base = self.translate_with(memo, addr, DESC_LEN).filter(|p| *p as usize % 8 == 0);
        Desc { base, _table: PhantomData }
    }

    /// [`buffer`](Self::buffer), translated through `memo`.
    #[inline(always)]
    pub(crate) fn buffer_with(&self, memo: &mut Memo, addr: u64, len: usize) -> Option<DmaBuf<'_>> {
        let base = self.translate_with(memo, addr, len)?;
        Some(DmaBuf { base, len, _table: PhantomData })
    }

    /// Whether one registered region covers `[addr, addr + len)`.
    pub(crate) fn contains(&self, addr: u64, len: usize) -> bool {
        self.translate(addr, len).is_some()
    }

    /// The 16-byte descriptor at device address `addr`, translated once for
    /// all the accesses to its fields; every access through it is `None`
    /// (or false) if no region covers the 16 bytes or they are not 8-byte
    /// aligned, as each access through the table would be.
    #[inline(always)]
    pub(crate) fn desc(&self, addr: u64) -> Desc<'_> {
        let base = self.translate(addr, DESC_LEN).filter(|p| *p as usize % 8 == 0);
        Desc { base, _table: PhantomData }
    }

    /// The `len` bytes at device address `addr`, translated once for the
    /// writes into them, if one region covers them all.
    #[inline(always)]
    pub(crate) fn buffer(&self, addr: u64, len: usize) -> Option<DmaBuf<'_>> {
        let base = self.translate(addr, len)?;
        Some(DmaBuf { base, len, _table: PhantomData })
    }

    /// Copies `data` to device address `addr` (a receive DMA write).
    /// Returns false, writing nothing, if no region covers the range. The
    /// receive path writes through [`buffer`](Self::buffer) instead, which
    /// it has translated to check the whole buffer anyway.
    #[cfg(test)]
    pub(crate) fn write(&self, addr: u64, data: &[u8]) -> bool {
        self.buffer(addr, data.len()).is_some_and(|b| b.write(data))
    }
    /// Appends `len` bytes from device address `addr` to `out` (a transmit
    /// DMA read). Returns false, appending nothing, if no region covers the
    /// range.
    #[cfg(test)]
    pub(crate) fn read_into(&self, addr: u64, len: usize, out: &mut Vec<u8>) -> bool {
        self.read_into_with(&mut Memo::default(), addr, len, out)
    }

    /// [`read_into`](Self::read_into), translated through `memo`.
    pub(crate) fn read_into_with(&self, memo: &mut Memo, addr: u64, len: usize, out: &mut Vec<u8>) -> bool {
        let Some(base) = self.translate_with(memo, addr, len) else { return false };
        let start = out.len();
        out.reserve(len);
        // Filled in place (no zeroing first), in the pieces `write` uses:
        // bytes up to an 8-byte boundary of the source, aligned words, then
        // one 4-, one 2- and one 1-byte load for the rest.
        let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // `align_offset` on a byte pointer: the bytes to the next 8-byte
        // boundary, 0 for a buffer that starts on one (every pool entry).
        let lead = ((8 - (base as usize & 7)) & 7).min(len);
        let words = (len - lead) / 8;
        let tail = lead + words * 8;
        // SAFETY (every access below): the source lies inside the range
        // checked by `translate` and on the alignment its width needs
        // (`base + lead` is 8-aligned, and so is every word after it); the
        // destination lies inside the `len` bytes of spare capacity
        // `reserve` made, written unaligned.
        unsafe {
            for i in 0..lead {
                dst.add(i).write(AtomicU8::from_ptr(base.add(i)).load(Ordering::Relaxed));
            }
            let (src, out_words) = (base.add(lead).cast::<u64>(), dst.add(lead).cast::<u64>());
            // Two words a step: half the loop overhead per byte.
            for w in (0..words & !1).step_by(2) {
                let (a, b) = (AtomicU64::from_ptr(src.add(w)), AtomicU64::from_ptr(src.add(w + 1)));
                out_words.add(w).write_unaligned(a.load(Ordering::Relaxed));
                out_words.add(w + 1).write_unaligned(b.load(Ordering::Relaxed));
            }
            if words & 1 != 0 {
                let w = words - 1;
                out_words.add(w).write_unaligned(AtomicU64::from_ptr(src.add(w)).load(Ordering::Relaxed));
            }
            let mut i = tail;
            if i + 4 <= len {
                dst.add(i)
                    .cast::<u32>()
                    .write_unaligned(AtomicU32::from_ptr(base.add(i).cast()).load(Ordering::Relaxed));
                i += 4;
            }
            if i + 2 <= len {
                dst.add(i)
                    .cast::<u16>()
                    .write_unaligned(AtomicU16::from_ptr(base.add(i).cast()).load(Ordering::Relaxed));
                i += 2;
            }
            if i < len {
                dst.add(i).write(AtomicU8::from_ptr(base.add(i)).load(Ordering::Relaxed));
            }
            // Every one of the `len` bytes after the old length was written
            // above (lead, words, then the 4/2/1 tail cover them exactly).
            out.set_len(start + len);
        }
        true
    }
}

/// Bytes of DMA memory translated once (see [`IommuTable::buffer`]). It
/// borrows the table, so the region stays registered while it lives.
pub(crate) struct DmaBuf<'a> {
    /// CPU address of the first byte; `len` bytes from it are mapped.
    base: *mut u8,
    len: usize,
    _table: PhantomData<&'a IommuTable>,
}

impl DmaBuf<'_> {
    /// Copies `data` to the start of the buffer; false, writing nothing, if
    /// it is longer than the buffer.
    #[inline(always)]
    pub(crate) fn write(&self, data: &[u8]) -> bool {
        let (base, len) = (self.base, data.len());
        if len > self.len {
            return false;
        }
        // Bytes up to an 8-byte boundary, then aligned words, then one
        // 4-, one 2- and one 1-byte store for the rest (each on its own
        // alignment, as the words ended on an 8-byte boundary).
        // Bytes to the next 8-byte boundary (none for a buffer that starts
        // on one, as every pool entry does).
        let (head, rest) = data.split_at(((8 - (base as usize & 7)) & 7).min(len));
        for (i, &b) in head.iter().enumerate() {
            // SAFETY: `base + i` is inside the registered range checked by
            // `IommuTable::buffer` (i < len <= self.len); byte atomics need no alignment.
            unsafe { AtomicU8::from_ptr(base.add(i)) }.store(b, Ordering::Relaxed);
        }
        // SAFETY: `head.len() <= len`, inside the checked range.
        let mut p = unsafe { base.add(head.len()) };
        // Two words a step: half the loop overhead per byte.
        let mut pairs = rest.chunks_exact(16);
        for w in &mut pairs {
            let a = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            let b = u64::from_ne_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15]]);
            // SAFETY: inside the checked range (16 more bytes of `data`
            // fit) and 8-byte aligned (`base + lead` is on a boundary, and
            // each step moves 16 bytes on).
            unsafe {
                AtomicU64::from_ptr(p.cast()).store(a, Ordering::Relaxed);
                AtomicU64::from_ptr(p.add(8).cast()).store(b, Ordering::Relaxed);
                p = p.add(16);
            }
        }
        let mut rest = pairs.remainder();
        if let [a0, a1, a2, a3, a4, a5, a6, a7, more @ ..] = rest {
            // SAFETY: inside the checked range, 8-byte aligned as above.
            unsafe {
                AtomicU64::from_ptr(p.cast())
                    .store(u64::from_ne_bytes([*a0, *a1, *a2, *a3, *a4, *a5, *a6, *a7]), Ordering::Relaxed);
                p = p.add(8);
            }
            rest = more;
        }
        if let [a, b, c, d, more @ ..] = rest {
            // SAFETY: inside the checked range, 8-byte aligned as above.
            unsafe {
                AtomicU32::from_ptr(p.cast()).store(u32::from_ne_bytes([*a, *b, *c, *d]), Ordering::Relaxed);
                p = p.add(4);
            }
            rest = more;
        }
        if let [a, b, more @ ..] = rest {
            // SAFETY: inside the checked range, at least 2-byte aligned.
            unsafe {
                AtomicU16::from_ptr(p.cast()).store(u16::from_ne_bytes([*a, *b]), Ordering::Relaxed);
                p = p.add(2);
            }
            rest = more;
        }
        if let [b] = rest {
            // SAFETY: inside the checked range.
            unsafe { AtomicU8::from_ptr(p) }.store(*b, Ordering::Relaxed);
        }
        true
    }
}

/// Length of an advanced receive or transmit descriptor.
const DESC_LEN: usize = 16;

/// A descriptor in DMA memory, translated once (see [`IommuTable::desc`]).
/// It borrows the table, so the region stays registered while it lives.
pub(crate) struct Desc<'a> {
    /// The descriptor's CPU address, 8-byte aligned, or `None` if unmapped.
    base: Option<*mut u8>,
    _table: PhantomData<&'a IommuTable>,
}

impl Desc<'_> {
    /// The field of type `T` at byte `offset`, if it lies inside the
    /// descriptor on its natural alignment and the descriptor is mapped.
    fn field<T>(&self, offset: usize) -> Option<*mut T> {
        let size = std::mem::size_of::<T>();
        let fits = offset % size == 0 && offset + size <= DESC_LEN;
        // In bounds of the 16 translated bytes by `fits`.
        self.base.filter(|_| fits).map(|p| p.wrapping_add(offset).cast())
    }

    /// Loads the `u32` at byte `offset` of the descriptor.
    pub(crate) fn load_u32(&self, offset: usize) -> Option<u32> {
        let p = self.field::<u32>(offset)?;
        // SAFETY: `field` checked that the 4 bytes lie in the descriptor,
        // which `IommuTable::desc` found in a registered region (alive while
        // the table is borrowed), and are aligned (the base is 8-aligned).
        Some(unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Relaxed))
    }

    /// Loads the `u64` at byte `offset` of the descriptor.
    pub(crate) fn load_u64(&self, offset: usize) -> Option<u64> {
        let p = self.field::<u64>(offset)?;
        // SAFETY: as in `load_u32`.
        Some(unsafe { AtomicU64::from_ptr(p) }.load(Ordering::Relaxed))
    }

    /// Stores the `u32` at byte `offset` of the descriptor.
    pub(crate) fn store_u32(&self, offset: usize, value: u32) -> bool {
        let Some(p) = self.field::<u32>(offset) else { return false };
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU32::from_ptr(p) }.store(value, Ordering::Relaxed);
        true
    }

    /// Stores the `u64` at byte `offset` of the descriptor.
    pub(crate) fn store_u64(&self, offset: usize, value: u64) -> bool {
        let Some(p) = self.field::<u64>(offset) else { return false };
        // SAFETY: as in `load_u32`.
        unsafe { AtomicU64::from_ptr(p) }.store(value, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::{DmaAllocator, HeapDma};

    #[test]
    fn device_addresses_are_never_virtual_addresses() {
        let mut t = IommuTable::default();
        let a = t.alloc_iova(4096, 4096);
        let b = t.alloc_iova(3 << 20, 2 << 20);
        let c = t.alloc_iova(1, 4096);
        assert!(a >= IOVA_BASE);
        assert!(b >= a + 4096 + IOVA_GUARD, "a guard gap after each reservation");
        assert_eq!(b % (2 << 20), 0);
        assert!(c >= b + (3 << 20) + IOVA_GUARD);
        let r = HeapDma.alloc(4096).unwrap();
        assert!((r.virt().as_ptr() as u64) < IOVA_BASE, "user addresses lie below the model's IOVA space");
    }

    #[test]
    fn accesses_must_fall_inside_one_region() {
        let r = HeapDma.alloc(4096).unwrap();
        let mut t = IommuTable::default();
        let base = t.alloc_iova(r.len(), 4096);
        t.map(base, r.virt(), r.len(), true);
        assert!(t.contains(base, 4096));
        assert!(!t.contains(base, 4097));
        assert!(!t.contains(base + 4096, 1));
        assert!(!t.contains(base.wrapping_sub(1), 2));
        assert!(t.desc(base).store_u32(8, 0xabcd));
        assert_eq!(r.load_u32(8), 0xabcd);
        assert_eq!(t.desc(base).load_u32(6), None, "misaligned word");
        let data: Vec<u8> = (0..100).collect();
        assert!(t.write(base + 3, &data));
        let mut back = Vec::new();
        assert!(t.read_into(base + 3, 100, &mut back));
        assert_eq!(back, data);
        assert!(!t.write(base + 4000, &data));
        t.unmap(base);
        assert!(!t.contains(base, 1));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn a_descriptor_is_translated_once_and_checked_like_single_accesses() {
        let r = HeapDma.alloc(4096).unwrap();
        let mut t = IommuTable::default();
        let base = t.alloc_iova(r.len(), 4096);
        t.map(base, r.virt(), r.len(), true);
        let d = t.desc(base + 32);
        assert!(d.store_u64(0, 0x1122_3344_5566_7788) && d.store_u32(12, 9));
        assert_eq!((r.load_u32(32), r.load_u32(36), r.load_u32(44)), (0x5566_7788, 0x1122_3344, 9));
        assert_eq!((d.load_u64(0), d.load_u32(12)), (Some(0x1122_3344_5566_7788), Some(9)));
        assert_eq!(d.load_u32(14), None, "misaligned field");
        assert_eq!(d.load_u64(16), None, "past the descriptor");
        assert_eq!(t.desc(base + 4088).load_u32(0), None, "straddles the end of the region");
        assert_eq!(t.desc(base + 4).load_u32(0), None, "not 8-byte aligned");
        assert!(!t.desc(base + 8192).store_u32(0, 1), "unmapped");
    }

    #[test]
    fn a_remembered_region_is_checked_like_a_lookup_and_forgotten_at_any_unmap() {
        let (r1, r2) = (HeapDma.alloc(4096).unwrap(), HeapDma.alloc(4096).unwrap());
        let mut t = IommuTable::default();
        let (a, b) = (t.alloc_iova(r1.len(), 4096), t.alloc_iova(r2.len(), 4096));
        t.map(a, r1.virt(), r1.len(), true);
        t.map(b, r2.virt(), r2.len(), true);
        let mut memo = Memo::default();
        assert!(t.desc_with(&mut memo, a + 64).store_u32(0, 5));
        assert_eq!(r1.load_u32(64), 5);
        // Hits in the remembered region, and the same bounds as a lookup.
        assert!(t.buffer_with(&mut memo, a + 4000, 96).is_some());
        assert!(t.buffer_with(&mut memo, a + 4000, 97).is_none(), "past the region's end");
        assert!(t.buffer_with(&mut memo, a.wrapping_sub(8), 16).is_none(), "before the region");
        assert!(t.buffer_with(&mut memo, a + 4096, 0).is_none(), "an empty access must start inside");
        // Another region through the same memo, then back.
        assert!(t.desc_with(&mut memo, b).store_u32(4, 6) && r2.load_u32(4) == 6);
        assert_eq!(t.desc_with(&mut memo, a + 64).load_u32(0), Some(5));
        // Unmapping any region makes the memo look the address up again.
        t.unmap(b);
        assert_eq!(t.desc_with(&mut memo, a + 64).load_u32(0), Some(5));
        t.unmap(a);
        assert_eq!(t.desc_with(&mut memo, a + 64).load_u32(0), None, "a freed region stays unreachable");
        let mut back = Vec::new();
        assert!(!t.read_into_with(&mut memo, a, 16, &mut back) && back.is_empty());
    }

    #[test]
    fn copies_are_byte_exact_at_every_alignment_and_length() {
        let r = HeapDma.alloc(256).unwrap();
        let mut t = IommuTable::default();
        let base = t.alloc_iova(r.len(), 4096);
        t.map(base, r.virt(), r.len(), true);
        for off in 0..9u64 {
            for len in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 60, 100] {
                let data: Vec<u8> = (0..len).map(|i| (i as u64 * 7 + off) as u8 ^ 0x5a).collect();
                assert!(t.write(base + 16 + off, &data));
                let mut back = vec![0xee];
                assert!(t.read_into(base + 16 + off, len, &mut back), "offset {off} length {len}");
                assert_eq!((back[0], &back[1..]), (0xee, &data[..]), "offset {off} length {len}");
            }
        }
    }

    #[test]
    fn neighbouring_regions_never_join_and_stale_addresses_stay_unmapped() {
        let (r1, r2, r3) =
            (HeapDma.alloc(3 << 20).unwrap(), HeapDma.alloc(4096).unwrap(), HeapDma.alloc(4096).unwrap());
        let mut t = IommuTable::default();
        let a = t.alloc_iova(r1.len(), 4096);
        let b = t.alloc_iova(r2.len(), 4096);
        t.map(a, r1.virt(), r1.len(), true);
        t.map(b, r2.virt(), r2.len(), true);
        assert!(t.contains(a + (2 << 20), 1 << 20), "the second granule of a region translates too");
        assert!(!t.contains(a + (3 << 20) - 4, 8), "straddles the end of the first region");
        assert!(!t.contains(a + (3 << 20), 1), "the guard after a region is unmapped");
        assert!(!t.contains(b - 1, 2), "straddles the start of the second region");
        assert!(t.desc(b).store_u32(0, 7) && t.desc(b).load_u32(0) == Some(7));
        t.unmap(a);
        let c = t.alloc_iova(r3.len(), 4096);
        t.map(c, r3.virt(), r3.len(), true);
        assert!(!t.contains(a, 1), "a freed region's address stays unmapped when its slot is reused");
        assert!(t.contains(c, 4096) && t.contains(b, 4096));
        assert_eq!(t.len(), 2);
        t.unmap(a + 4096);
        assert!(t.contains(c, 4096), "unmapping an address that starts no region changes nothing");
        assert_eq!(t.desc(IOVA_BASE - 16).load_u32(0), None, "below the model's IOVA space");
    }
}
