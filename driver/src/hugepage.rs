//! DMA memory from 2 MiB hugepages, with physical addresses from pagemap.
//!
//! On the sysfs access path the device sees physical memory, so every
//! region must be physically contiguous and pinned. A 2 MiB hugepage is both
//! (hugetlb pages are never swapped, and one page is one physical extent),
//! so a region is exactly one hugepage and at most 2 MiB; the mempool
//! already splits its memory into regions of at most 2 MiB.
//!
//! # Why anonymous hugetlb mappings rather than hugetlbfs files
//!
//! ixy maps files on a hugetlbfs mount (`/mnt/huge`) and unlinks them. An
//! anonymous `MAP_SHARED | MAP_HUGETLB | MAP_HUGE_2MB` mapping draws from
//! the same reserved pool (`nr_hugepages`) without a mount to set up, and
//! without files to leak when the process dies before unlinking. It asks
//! for 2 MiB pages explicitly, so it still works when the system's default
//! hugepage size is 1 GiB. `MAP_SHARED` keeps the pages from being copied on
//! `fork`, which would change their physical address under the device.
//!
//! Physical addresses come from `/proc/self/pagemap`
//! (docs/reference/82599.md): one
//! 64-bit entry per base page, the frame number in bits 0–54, bit 63 set
//! when the page is present. Without `CAP_SYS_ADMIN` the kernel reports
//! frame number 0, which [`virt_to_phys`] turns into
//! [`DmaError::NoPhysicalAddress`].
#![allow(unsafe_code)]

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

use crate::dma::{DmaAllocator, DmaError, DmaRegion, DmaRelease};

/// The size, and alignment, of one hugepage: 2 MiB.
pub const HUGEPAGE_SIZE: usize = 2 << 20;

/// Where the kernel counts 2 MiB hugepages.
pub const HUGEPAGES_2M_SYSFS: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";

/// Pagemap entry bits 0–54: the page frame number.
const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;
/// Pagemap entry bit 63: the page is present in RAM.
const PAGEMAP_PRESENT: u64 = 1 << 63;

/// The system's 2 MiB hugepage pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepagePool {
    /// Pages reserved (`nr_hugepages`).
    pub total: u64,
    /// Pages reserved and not in use (`free_hugepages`).
    pub free: u64,
}

impl HugepagePool {
    /// Reads the counters from [`HUGEPAGES_2M_SYSFS`]; `None` if the kernel
    /// has no 2 MiB hugepage support (or sysfs is not mounted).
    pub fn read() -> Option<HugepagePool> {
        let count = |name: &str| -> Option<u64> {
            fs::read_to_string(format!("{HUGEPAGES_2M_SYSFS}/{name}")).ok()?.trim().parse().ok()
        };
        Some(HugepagePool { total: count("nr_hugepages")?, free: count("free_hugepages")? })
    }

    /// A description for error messages, e.g. "0 of 0 reserved 2 MiB
    /// hugepages are free".
    fn describe() -> String {
        match HugepagePool::read() {
            Some(p) => format!("{} of {} reserved 2 MiB hugepages are free", p.free, p.total),
            None => format!("{HUGEPAGES_2M_SYSFS} is missing: the kernel offers no 2 MiB hugepages"),
        }
    }
}

/// Hugepage-backed DMA memory with physical addresses, for the sysfs
/// access path. Each region is one 2 MiB hugepage, zeroed, locked, and
/// unmapped when the region is dropped. Needs root (`CAP_SYS_ADMIN`, for
/// pagemap) and reserved hugepages (`scripts/setup-hugepages.sh`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HugepageDma {
    _private: (),
}

impl HugepageDma {
    /// A hugepage allocator. Nothing is checked until the first allocation.
    pub fn new() -> HugepageDma {
        HugepageDma { _private: () }
    }
}

impl DmaAllocator for HugepageDma {
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
        if size == 0 {
            return Err(DmaError::BadSize { size, reason: "zero-sized region" });
        }
        if size > HUGEPAGE_SIZE {
            return Err(DmaError::BadSize {
                size,
                reason: "larger than one 2 MiB hugepage, the most that is guaranteed to be physically contiguous; \
                         split it into regions of at most 2 MiB",
            });
        }
        let mapping = HugeMapping::new(HUGEPAGE_SIZE)?;
        let phys = virt_to_phys(mapping.ptr.as_ptr() as usize)?;
        if phys % HUGEPAGE_SIZE as u64 != 0 {
            // A 2 MiB hugepage is 2 MiB-aligned physically too; anything else
            // means the memory is not one hugepage and may not be contiguous.
            return Err(DmaError::Os {
                what: format!("checking the hugepage at physical address {phys:#x}"),
                err: "not 2 MiB-aligned, so not backed by a single hugepage".into(),
            });
        }
        let virt = mapping.ptr;
        let release = Box::new(UnmapOnRelease(Some(mapping)));
        // SAFETY: `virt` starts a fresh, zeroed, locked, writable mapping of
        // HUGEPAGE_SIZE >= size bytes, 2 MiB-aligned, owned only by `release`,
        // which unmaps it when the region is dropped; `phys` is the physical
        // address of its first byte, and the whole page is contiguous.
        Ok(unsafe { DmaRegion::from_raw_parts(virt, size, phys, release) })
    }
}

/// Translates a virtual address of this process into a physical address
/// through `/proc/self/pagemap`. The page must be present (touched and, for
/// DMA, locked). Needs `CAP_SYS_ADMIN`; without it the kernel hides frame
/// numbers and this returns [`DmaError::NoPhysicalAddress`].
pub fn virt_to_phys(addr: usize) -> Result<u64, DmaError> {
    let page = page_size();
    let path = "/proc/self/pagemap";
    let file = File::open(path).map_err(|e| DmaError::NoPhysicalAddress(format!("cannot open {path}: {e}")))?;
    let mut entry = [0u8; 8];
    file.read_exact_at(&mut entry, (addr / page) as u64 * 8)
        .map_err(|e| DmaError::NoPhysicalAddress(format!("cannot read {path} for address {addr:#x}: {e}")))?;
    let entry = u64::from_le_bytes(entry);
    if entry & PAGEMAP_PRESENT == 0 {
        return Err(DmaError::NoPhysicalAddress(format!("the page at {addr:#x} is not present in memory")));
    }
    let pfn = entry & PAGEMAP_PFN_MASK;
    if pfn == 0 {
        return Err(DmaError::NoPhysicalAddress(format!(
            "{path} shows frame number 0 for {addr:#x}: the kernel hides physical addresses without CAP_SYS_ADMIN"
        )));
    }
    Ok(pfn * page as u64 + (addr % page) as u64)
}

/// The base page size, which indexes pagemap even for hugepage mappings.
fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| s.is_power_of_two()).unwrap_or(4096)
}

/// An anonymous, shared, locked mapping of 2 MiB hugepages, zeroed, and
/// unmapped on drop. Also the memory behind [`crate::vfio::VfioDma`].
pub(crate) struct HugeMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is freed only
// by `Drop`, and reads and writes go through `DmaRegion`, which synchronises.
unsafe impl Send for HugeMapping {}
// SAFETY: `&HugeMapping` exposes only the address and length.
unsafe impl Sync for HugeMapping {}

impl HugeMapping {
    /// Maps `len` bytes (rounded up to whole hugepages) of hugepage memory,
    /// faults every page in by zeroing it, and locks it.
    pub(crate) fn new(len: usize) -> Result<HugeMapping, DmaError> {
        let len = len
            .checked_next_multiple_of(HUGEPAGE_SIZE)
            .ok_or(DmaError::BadSize { size: len, reason: "size overflows the address space" })?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks
        // (no MAP_FIXED): it aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                // ENOMEM: the pool has too few free pages; EINVAL: the kernel
                // has no 2 MiB hugepage pool at all.
                Some(libc::ENOMEM) | Some(libc::EINVAL) => DmaError::NoHugepages(format!(
                    "mapping {} hugepage(s) failed: {err}; {}",
                    len / HUGEPAGE_SIZE,
                    HugepagePool::describe()
                )),
                _ => DmaError::Os { what: format!("mmap of {len} bytes of hugepage memory"), err: err.to_string() },
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or(DmaError::Os { what: "mmap of hugepage memory".into(), err: "returned null".into() })?;
        let mapping = HugeMapping { ptr, len };
        // A shared hugetlb mapping reserves its pages at mmap time (the
        // ENOMEM above), so faulting them in here does not run out (short of
        // a hugetlb cgroup limit). The kernel hands out zeroed hugepages;
        // clearing them again costs microseconds per page, faults every page
        // in before pagemap is read, and makes zeroing explicit.
        // SAFETY: the whole mapping is ours and writable.
        unsafe { std::ptr::write_bytes(mapping.ptr.as_ptr(), 0, len) };
        // SAFETY: locks pages of our own mapping; no memory is accessed.
        if unsafe { libc::mlock(mapping.ptr.as_ptr().cast(), len) } != 0 {
            let err = io::Error::last_os_error();
            return Err(DmaError::Os {
                what: format!("mlock of {len} bytes of hugepage memory (raise `ulimit -l` or run as root)"),
                err: err.to_string(),
            });
        }
        Ok(mapping)
    }

    /// Start of the mapping.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping (whole hugepages).
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for HugeMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the mapping created in `new`, and its
        // owner (a `DmaRegion`'s release, or an error path) is done with it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Releases a hugepage region by dropping (unmapping) its mapping.
struct UnmapOnRelease(Option<HugeMapping>);

impl DmaRelease for UnmapOnRelease {
    fn release(&mut self, _virt: NonNull<u8>, _len: usize, _iova: u64) {
        drop(self.0.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_over_one_hugepage_and_zero_are_refused() {
        let dma = HugepageDma::new();
        assert!(matches!(dma.alloc(0), Err(DmaError::BadSize { .. })));
        let err = dma.alloc(HUGEPAGE_SIZE + 1).unwrap_err();
        assert!(matches!(err, DmaError::BadSize { .. }));
        assert!(err.to_string().contains("physically contiguous"), "{err}");
    }

    #[test]
    fn pagemap_translates_a_heap_page_when_privileged() {
        let data = vec![0x5au8; 8192];
        let addr = data.as_ptr() as usize + 100;
        match virt_to_phys(addr) {
            Ok(phys) => {
                assert_ne!(phys, 0);
                assert_eq!(phys % page_size() as u64, addr as u64 % page_size() as u64);
            }
            Err(DmaError::NoPhysicalAddress(why)) => {
                // Needs root; a failure instead under IXTCP_REQUIRE_HUGEPAGES=1.
                let why = format!("cannot read physical addresses ({why})");
                ixtcp_testkit::hugepages::skip("pagemap_translates_a_heap_page_when_privileged", &why);
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn an_unmapped_address_is_not_present() {
        // Page 0 is never mapped in a Linux process.
        match virt_to_phys(16) {
            Err(DmaError::NoPhysicalAddress(why)) => assert!(why.contains("not present"), "{why}"),
            other => panic!("expected not present, got {other:?}"),
        }
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
    }
}
