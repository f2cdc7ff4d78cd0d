//! The model's device addresses: disjoint from virtual addresses, and in
//! the hugepage layout contiguous only within 2 MiB. Each test plays a
//! driver that confuses the two and checks that the model faults.

use super::*;
use crate::hugepage::HUGEPAGE_SIZE;
use crate::model::{IOVA_BASE, IovaLayout};

/// The CPU address of a region, as a buggy driver would write it.
fn virt(region: &DmaRegion) -> u64 {
    region.virt().as_ptr() as u64
}

#[test]
fn every_region_lives_in_the_models_iova_space() {
    let rig = Rig::new();
    for dma in [rig.model.dma(), rig.model.hugepage_dma()] {
        let regions: Vec<DmaRegion> = [4096, 100, 3 << 20].iter().map(|&n| dma.alloc(n).unwrap()).collect();
        for r in &regions {
            assert!(r.iova() >= IOVA_BASE, "{r:?} ({:?})", dma.layout());
            assert!(virt(r) < IOVA_BASE, "{r:?}");
            assert_eq!(r.iova() % 128, 0);
        }
    }
    assert_eq!(rig.model.hugepage_dma().alloc(4096).unwrap().iova() % HUGEPAGE_SIZE as u64, 0);
}

#[test]
fn a_virtual_address_in_a_tx_descriptor_is_caught() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let frame = runt(PEER_MAC);
    tx.fill(0, &frame);
    // The bug: the buffer's virtual address instead of its device address.
    tx.put(0, AdvTxRead::data(virt(&tx.bufs), frame.len() as u16));
    rig.wr(r::TDT(0), 1);
    assert_eq!(
        rig.faults(),
        vec![ModelFault::DmaOutOfBounds { addr: virt(&tx.bufs), len: frame.len(), what: "tx buffer", queue: 0 }]
    );
    assert_eq!(tx.status(0) & crate::desc::tx_olinfo::DD, 0, "nothing written back");
}

#[test]
fn a_virtual_address_in_an_rx_descriptor_is_caught() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 64, 2);
    rx.ring.store_u64(0, virt(&rx.bufs));
    let frame = runt(MAC);
    rig.inject(&frame);
    let faults = rig.faults();
    assert!(
        matches!(faults.as_slice(), [ModelFault::DmaOutOfBounds { addr, what: "rx packet buffer", queue: 0, .. }]
            if *addr == virt(&rx.bufs)),
        "{faults:?}"
    );
}

#[test]
fn a_virtual_ring_base_is_caught_at_enable() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 64, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RDBAL(0), virt(&rx.ring) as u32);
    rig.wr(r::RDBAH(0), (virt(&rx.ring) >> 32) as u32);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    assert_eq!(rig.rd(r::RXDCTL(0)) & r::dctl::ENABLE, 0, "the queue does not come up");
    assert_eq!(
        rig.faults(),
        vec![ModelFault::DmaOutOfBounds { addr: virt(&rx.ring), len: 1024, what: "rx descriptor ring", queue: 0 }]
    );
}

/// Sends one frame of `len` bytes from `off` bytes into `bufs` (device
/// address `bufs.iova() + off`); returns whether it left without a fault.
fn send_at(rig: &mut Rig, tx: &mut Tx, bufs: &DmaRegion, off: usize, len: usize) -> bool {
    let frame: Vec<u8> = runt(PEER_MAC).into_iter().cycle().take(len).collect();
    write_bytes(bufs, off, &frame);
    let i = tx.next;
    tx.put(i, AdvTxRead::data(bufs.iova() + off as u64, len as u16));
    tx.next = (i + 1) % tx.entries;
    rig.wr(r::TDT(tx.q), tx.next);
    let ok = rig.model.take_faults().is_empty();
    if ok {
        assert_eq!(rig.sent(), Some(frame));
    }
    ok
}

/// Re-enables a halted transmit queue with an empty ring.
fn restart(rig: &Rig, tx: &mut Tx) {
    rig.wr(r::TXDCTL(tx.q), 0);
    rig.wr(r::TDH(tx.q), 0);
    rig.wr(r::TDT(tx.q), 0);
    rig.wr(r::TXDCTL(tx.q), r::dctl::ENABLE);
    tx.next = 0;
}

#[test]
fn hugepage_layout_is_contiguous_only_within_2_mib() {
    let mut rig = Rig::new();
    rig.init();
    let dma = rig.model.hugepage_dma();
    assert_eq!(dma.layout(), IovaLayout::Hugepages);
    // A region of two hugepages, as a buggy allocator that assumes the
    // pages are physically adjacent would hand out.
    let bufs = dma.alloc(2 * HUGEPAGE_SIZE).unwrap();
    let mut tx = rig.tx_queue(0, 64);
    assert!(send_at(&mut rig, &mut tx, &bufs, 0, 60), "inside the first page");
    assert!(send_at(&mut rig, &mut tx, &bufs, HUGEPAGE_SIZE - 60, 60), "up to the page's end");
    // Crossing the boundary, and the second page at "base + 2 MiB": both
    // fault, because the second page's device address is elsewhere.
    assert!(!send_at(&mut rig, &mut tx, &bufs, HUGEPAGE_SIZE - 30, 60), "across the 2 MiB boundary");
    restart(&rig, &mut tx);
    assert!(!send_at(&mut rig, &mut tx, &bufs, HUGEPAGE_SIZE, 60), "the second page is not at base + 2 MiB");
    // The same two pages in the IOMMU layout are one contiguous range.
    let flat = rig.model.dma().alloc(2 * HUGEPAGE_SIZE).unwrap();
    restart(&rig, &mut tx);
    assert!(send_at(&mut rig, &mut tx, &flat, HUGEPAGE_SIZE - 30, 60));
}
