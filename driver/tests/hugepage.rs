//! Hugepage DMA memory on this machine's kernel.
//!
//! Needs 2 MiB hugepages and the right to read physical addresses
//! (CAP_SYS_ADMIN). As root with no free hugepages, the test reserves a few
//! itself and restores the previous reservation afterwards (the testkit's
//! `hugepages::reserve`). Without them it prints `SKIPPED` and why, and
//! passes; under `IXTCP_REQUIRE_HUGEPAGES=1` (CI) it fails instead.
//!
//! Everything runs in one test function, so that no two tests of this file
//! change the reservation at the same time.

use ixtcp_driver::dma::{DmaAllocator, DmaError};
use ixtcp_driver::hugepage::{HUGEPAGE_SIZE, HugepageDma, HugepagePool, virt_to_phys};
use ixtcp_testkit::hugepages;

/// Hugepages the test needs: two regions of one page each, one small region.
const NEEDED: u64 = 3;

const TEST: &str = "hugepage_regions_are_aligned_zeroed_writable_and_physically_addressed";

#[test]
fn hugepage_regions_are_aligned_zeroed_writable_and_physically_addressed() {
    let dma = HugepageDma::new();

    // With no hugepages reserved at all, the error says so and what to do.
    if let Some(pool) = HugepagePool::read()
        && pool.total == 0
    {
        let err = dma.alloc(4096).unwrap_err();
        assert!(matches!(err, DmaError::NoHugepages(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("0 of 0 reserved") && msg.contains("setup-hugepages.sh"), "{msg}");
    }

    let Some(_reservation) = hugepages::reserve(TEST, NEEDED) else { return };

    let mut a = match dma.alloc(HUGEPAGE_SIZE) {
        Ok(r) => r,
        Err(DmaError::NoPhysicalAddress(why)) => {
            hugepages::skip(TEST, &format!("cannot read physical addresses ({why}); run as root"));
            return;
        }
        Err(e) => panic!("allocating a hugepage failed: {e}"),
    };
    let b = dma.alloc(HUGEPAGE_SIZE).unwrap();
    let small = dma.alloc(8192).unwrap();

    for r in [&a, &b, &small] {
        assert_eq!(r.virt().as_ptr() as usize % HUGEPAGE_SIZE, 0, "virtual address 2 MiB-aligned");
        assert_ne!(r.iova(), 0, "physical address from pagemap");
        assert_eq!(r.iova() % HUGEPAGE_SIZE as u64, 0, "a hugepage is 2 MiB-aligned physically");
    }
    eprintln!("hugepage regions at physical {:#x}, {:#x}, {:#x}", a.iova(), b.iova(), small.iova());
    assert_eq!((a.len(), small.len()), (HUGEPAGE_SIZE, 8192));
    assert_ne!(a.iova(), b.iova(), "two hugepages, two physical pages");
    assert_ne!(a.iova(), small.iova());

    // The page is physically contiguous: any byte's physical address is
    // the region's plus its offset.
    let offset = 5 * 4096 + 17;
    let phys = virt_to_phys(a.virt().as_ptr() as usize + offset).unwrap();
    assert_eq!(phys, a.iova() + offset as u64);

    // Zeroed, then writable everywhere.
    assert!((0..HUGEPAGE_SIZE).step_by(8).all(|o| a.load_u64(o) == 0), "fresh memory is zeroed");
    a.fill(0xa5);
    assert_eq!(a.load_u64(HUGEPAGE_SIZE - 8), 0xa5a5_a5a5_a5a5_a5a5);
    a.store_u32(64, 0x1234_5678);
    assert_eq!(a.load_u32(64), 0x1234_5678);
    assert_eq!(b.load_u64(0), 0, "regions do not share memory");

    // Dropping a region unmaps it.
    let virt = a.virt().as_ptr() as usize;
    drop(a);
    match virt_to_phys(virt) {
        Err(DmaError::NoPhysicalAddress(why)) => assert!(why.contains("not present"), "{why}"),
        other => panic!("a dropped region is still mapped: {other:?}"),
    }
}
