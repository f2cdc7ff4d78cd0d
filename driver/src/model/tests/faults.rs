//! One test per fault: the exact variant is reported, the process goes on,
//! and the queue concerned halts.

use super::*;
use crate::desc::{rx_status, tx_cmd, tx_olinfo};
use crate::dma::HeapDma;

/// A transmit descriptor with an arbitrary command word.
fn raw(addr: u64, cmd: u32, olinfo: u32) -> AdvTxRead {
    AdvTxRead { buffer_addr: addr, cmd_type_len: cmd, olinfo_status: olinfo }
}

#[test]
fn bad_register_access_reads_all_ones() {
    let rig = Rig::new();
    assert_eq!(rig.rd(0x8_0000), u32::MAX);
    assert_eq!(rig.rd(0x0_0002), u32::MAX);
    rig.wr(0x10_0000, 1);
    assert_eq!(
        rig.faults(),
        vec![
            ModelFault::BadRegisterAccess { offset: 0x8_0000, write: false },
            ModelFault::BadRegisterAccess { offset: 0x2, write: false },
            ModelFault::BadRegisterAccess { offset: 0x10_0000, write: true },
        ]
    );
    assert_eq!(rig.model.take_faults().len(), 3);
    rig.assert_no_faults();
}

#[test]
fn rx_buffer_outside_registered_memory() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 2);
    let stray = HeapDma.alloc(4096).unwrap(); // not registered with the model
    rx.ring.store_u64(0, stray.iova());
    rig.inject(&runt(MAC));
    let fault = ModelFault::DmaOutOfBounds { addr: stray.iova(), len: 2048, what: "rx packet buffer", queue: 0 };
    assert_eq!(rig.faults(), vec![fault]);
    assert_eq!(read_bytes(&stray, 0, 16), vec![0; 16], "nothing written there");
    assert_eq!(rx.desc(0).status_error & rx_status::DD, 0);
    // The queue is halted: later frames are dropped, no new fault.
    rig.inject(&runt(MAC));
    assert_eq!(rig.faults().len(), 1);
    assert_eq!(rig.rd(r::QPRDC(0)), 1);
}

#[test]
fn rx_buffer_whose_tail_leaves_the_region() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 2);
    // Start the buffer 64 bytes before the end of the buffer region: a 2 KiB
    // write could run past it.
    let addr = rx.bufs.iova() + rx.bufs.len() as u64 - 64;
    rx.ring.store_u64(0, addr);
    rig.inject(&runt(MAC));
    assert_eq!(rig.faults(), vec![ModelFault::DmaOutOfBounds { addr, len: 2048, what: "rx packet buffer", queue: 0 }]);
}

#[test]
fn tx_buffer_outside_registered_memory() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(3, 64);
    let stray = HeapDma.alloc(4096).unwrap();
    tx.put(0, AdvTxRead::data(stray.iova(), 60));
    rig.wr(r::TDT(3), 1);
    assert_eq!(
        rig.faults(),
        vec![ModelFault::DmaOutOfBounds { addr: stray.iova(), len: 60, what: "tx buffer", queue: 3 }]
    );
    assert_eq!(rig.sent(), None);
    assert_eq!(tx.status(0) & tx_olinfo::DD, 0);
}

#[test]
fn ring_base_outside_registered_memory() {
    let rig = Rig::new();
    rig.init();
    let stray = HeapDma.alloc(4096).unwrap();
    rig.wr(r::RDBAL(0), stray.iova() as u32);
    rig.wr(r::RDBAH(0), (stray.iova() >> 32) as u32);
    rig.wr(r::RDLEN(0), 4096);
    rig.wr(r::SRRCTL(0), r::srrctl::DESCTYPE_ADV_ONEBUF | 2);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    assert_eq!(
        rig.faults(),
        vec![ModelFault::DmaOutOfBounds { addr: stray.iova(), len: 4096, what: "rx descriptor ring", queue: 0 }]
    );
    assert_eq!(rig.rd(r::RXDCTL(0)) & r::dctl::ENABLE, 0, "ENABLE does not stick");
}

#[test]
fn misaligned_ring() {
    let rig = Rig::new();
    rig.init();
    let ring = rig.dma.alloc(8192).unwrap();
    let base = ring.iova() + 64;
    rig.wr(r::TDBAL(2), base as u32);
    rig.wr(r::TDBAH(2), (base >> 32) as u32);
    rig.wr(r::TDLEN(2), 1024);
    rig.wr(r::TXDCTL(2), r::dctl::ENABLE);
    assert_eq!(rig.faults(), vec![ModelFault::MisalignedRing { queue: 2, rx: false, base }]);
    assert_eq!(rig.rd(r::TXDCTL(2)) & r::dctl::ENABLE, 0);
}

#[test]
fn ring_length_not_a_multiple_of_128() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 1, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RDLEN(1), 8 * 16 + 16);
    rig.wr(r::RXDCTL(1), r::dctl::ENABLE);
    assert_eq!(rig.faults(), vec![ModelFault::BadRingLength { queue: 1, rx: true, len: 144 }]);
}

#[test]
fn rdt_past_the_ring() {
    let mut rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, r::srrctl::DROP_EN);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    rig.wr(r::RDT(0), 8);
    assert_eq!(rig.faults(), vec![ModelFault::TailPastRing { queue: 0, rx: true, tail: 8, entries: 8 }]);
    // Halted: nothing is received.
    rig.inject(&runt(MAC));
    assert_eq!(rig.rd(r::RDH(0)), 0);
    assert_eq!(rig.faults().len(), 1);
}

#[test]
fn tdt_past_the_ring() {
    let rig = Rig::new();
    rig.init();
    let _tx = rig.tx_queue(0, 64);
    rig.wr(r::TDT(0), 64);
    assert_eq!(rig.faults(), vec![ModelFault::TailPastRing { queue: 0, rx: false, tail: 64, entries: 64 }]);
}

#[test]
fn tail_moved_backwards() {
    let rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2); // RDT = 7, RDH = 0
    rig.wr(r::RDT(0), 3);
    assert_eq!(rig.faults(), vec![ModelFault::TailMovedBackwards { queue: 0, rx: true, head: 0, old: 7, new: 3 }]);
}

#[test]
fn enable_without_base() {
    let rig = Rig::new();
    rig.init();
    rig.wr(r::TDLEN(4), 1024);
    rig.wr(r::TXDCTL(4), r::dctl::ENABLE);
    rig.wr(r::RXDCTL(5), r::dctl::ENABLE);
    assert_eq!(
        rig.faults(),
        vec![
            ModelFault::EnabledWithoutBase { queue: 4, rx: false },
            ModelFault::EnabledWithoutBase { queue: 5, rx: true }
        ]
    );
}

#[test]
fn ring_reprogrammed_while_enabled() {
    let rig = Rig::new();
    rig.init();
    let _tx = rig.tx_queue(0, 64);
    rig.wr(r::TDH(0), 0); // unchanged: allowed (ixy writes it after enabling)
    rig.assert_no_faults();
    rig.wr(r::TDLEN(0), 2048);
    assert_eq!(
        rig.faults(),
        vec![ModelFault::RingReprogrammedWhileEnabled { queue: 0, rx: false, offset: r::TDLEN(0) }]
    );
}

#[test]
fn unknown_descriptor_type() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let addr = tx.fill(0, &runt(PEER_MAC));
    tx.put(0, raw(addr, tx_cmd::DEXT | 5 << 20 | tx_cmd::EOP | 60, 60 << 14));
    rig.wr(r::TDT(0), 1);
    assert_eq!(rig.faults(), vec![ModelFault::UnknownDescriptorType { queue: 0, dtyp: 5 }]);
    assert_eq!(rig.rd(r::TDH(0)), 0, "the bad descriptor is not consumed");
}

#[test]
fn legacy_descriptor_is_an_unknown_type() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let addr = tx.fill(0, &runt(PEER_MAC));
    tx.put(0, raw(addr, tx_cmd::EOP | tx_cmd::RS | 60, 0));
    rig.wr(r::TDT(0), 1);
    assert_eq!(rig.faults(), vec![ModelFault::UnknownDescriptorType { queue: 0, dtyp: 0x100 }]);
}

#[test]
fn dropped_region_is_no_longer_accepted() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let before = rig.model.dma_regions();
    let gone = rig.dma.alloc(4096).unwrap();
    let addr = gone.iova();
    assert_eq!(rig.model.dma_regions(), before + 1);
    drop(gone);
    assert_eq!(rig.model.dma_regions(), before);
    tx.put(0, AdvTxRead::data(addr, 60));
    rig.wr(r::TDT(0), 1);
    assert_eq!(rig.faults(), vec![ModelFault::DmaOutOfBounds { addr, len: 60, what: "tx buffer", queue: 0 }]);
}

#[test]
fn halted_queue_recovers_on_re_enable() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    tx.put(0, AdvTxRead::data(0x1000, 60));
    rig.wr(r::TDT(0), 1);
    assert_eq!(rig.faults().len(), 1);
    tx.send(&rig, &runt(PEER_MAC)); // halted: ignored
    assert_eq!(rig.sent(), None);
    // Re-initialise the ring and re-enable: it works again.
    rig.wr(r::TXDCTL(0), 0);
    rig.wr(r::TDH(0), 0);
    rig.wr(r::TDT(0), 0);
    rig.wr(r::TXDCTL(0), r::dctl::ENABLE);
    tx.next = 0;
    tx.send(&rig, &runt(PEER_MAC));
    assert!(rig.sent().is_some());
    assert_eq!(rig.faults().len(), 1);
}

#[test]
fn buffer_size_zero() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::SRRCTL(0), r::srrctl::DESCTYPE_ADV_ONEBUF);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    assert_eq!(rig.faults(), vec![ModelFault::BadBufferSize { queue: 0, bsizepkt: 0 }]);
}

#[test]
fn buffer_size_cleared_after_enable() {
    let mut rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    rig.wr(r::SRRCTL(0), r::srrctl::DESCTYPE_ADV_ONEBUF);
    rig.inject(&runt(MAC));
    assert_eq!(rig.faults(), vec![ModelFault::BadBufferSize { queue: 0, bsizepkt: 0 }]);
}

#[test]
fn legacy_rx_descriptor_type_is_unsupported() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::SRRCTL(0), 2);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    assert!(matches!(rig.faults()[..], [ModelFault::Unsupported { queue: 0, rx: true, .. }]));
}

#[test]
fn crc_strip_mismatch() {
    let rig = Rig::new();
    // After reset HLREG0.RXCRCSTRP = 1 but RDRXCTL.CRCSTRIP = 0.
    rig.reset();
    rig.enable_rx();
    assert_eq!(rig.faults(), vec![ModelFault::CrcStripMismatch { hlreg0: true, rdrxctl: false }]);
    assert_eq!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0);
}

#[test]
fn tx_packet_too_long() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let addr = tx.fill(0, &[0u8; 1515]);
    tx.put(0, AdvTxRead::data(addr, 1515));
    rig.wr(r::TDT(0), 1);
    assert_eq!(rig.faults(), vec![ModelFault::TxPacketTooLong { queue: 0, len: 1515, max: 1514 }]);
}

#[test]
fn paylen_mismatch() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let mut d = AdvTxRead::data(tx.fill(0, &runt(PEER_MAC)), 42);
    d.olinfo_status = 60 << tx_olinfo::PAYLEN_SHIFT;
    tx.put(0, d);
    rig.wr(r::TDT(0), 1);
    assert!(matches!(rig.faults()[..], [ModelFault::BadTxDescriptor { queue: 0, index: 0, .. }]));
}

#[test]
fn checksum_offload_without_context() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let mut d = AdvTxRead::data(tx.fill(0, &runt(PEER_MAC)), 42);
    d.olinfo_status |= tx_olinfo::IXSM;
    tx.put(0, d);
    rig.wr(r::TDT(0), 1);
    assert!(matches!(rig.faults()[..], [ModelFault::BadTxDescriptor { queue: 0, index: 0, .. }]));
}

#[test]
fn context_index_above_one() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    tx.put(0, raw(14 << 9 | 20, tx_cmd::DTYP_CTXT | tx_cmd::DEXT, 2 << tx_olinfo::IDX_SHIFT));
    rig.wr(r::TDT(0), 1);
    assert!(matches!(rig.faults()[..], [ModelFault::BadTxDescriptor { queue: 0, index: 0, .. }]));
}

#[test]
fn tso_is_unsupported() {
    let rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let mut d = AdvTxRead::data(tx.fill(0, &runt(PEER_MAC)), 42);
    d.cmd_type_len |= tx_cmd::TSE;
    tx.put(0, d);
    rig.wr(r::TDT(0), 1);
    assert!(matches!(rig.faults()[..], [ModelFault::Unsupported { queue: 0, rx: false, .. }]));
}

#[test]
fn faults_display_something_useful() {
    let f = ModelFault::DmaOutOfBounds { addr: 0x1000, len: 60, what: "tx buffer", queue: 3 };
    assert_eq!(f.to_string(), "queue 3: DMA to tx buffer at 0x1000+60 is outside every registered DMA region");
    assert!(ModelFault::UnknownDescriptorType { queue: 0, dtyp: 0x100 }.to_string().contains("legacy"));
}

#[test]
fn head_write_back_is_unsupported() {
    let rig = Rig::new();
    rig.init();
    let ring = rig.dma.alloc(1024).unwrap();
    rig.wr(r::TDBAL(0), ring.iova() as u32);
    rig.wr(r::TDBAH(0), (ring.iova() >> 32) as u32);
    rig.wr(r::TDLEN(0), 1024);
    rig.wr(crate::model::regfile::off::tdwbal(0), 0x1001);
    rig.wr(r::TXDCTL(0), r::dctl::ENABLE);
    assert!(matches!(rig.faults()[..], [ModelFault::Unsupported { queue: 0, rx: false, .. }]));
    assert_eq!(rig.rd(r::TXDCTL(0)) & r::dctl::ENABLE, 0);
}

#[test]
fn register_access_within_1ms_of_reset() {
    let rig = Rig::new();
    rig.regs.set_bits(r::CTRL, r::ctrl::GIO_DIS);
    let _ = rig.rd(r::STATUS);
    // The old driver: CTRL polled right after the reset.
    rig.wr(r::CTRL, r::ctrl::GIO_DIS | r::ctrl::RST_MASK);
    assert_eq!(rig.rd(r::CTRL), u32::MAX, "nobody answers during the reset");
    rig.model.clock().advance(std::time::Duration::from_micros(999));
    rig.wr(r::FCTRL, r::fctrl::BAM);
    assert!(matches!(
        rig.faults()[..],
        [
            ModelFault::AccessDuringReset { offset: r::CTRL, write: false, after_ns: 0 },
            ModelFault::AccessDuringReset { offset: r::FCTRL, write: true, after_ns: 999_000 }
        ]
    ));
    // 1 ms after the reset the device answers again.
    rig.model.clock().advance(std::time::Duration::from_micros(1));
    assert_eq!(rig.rd(r::CTRL) & r::ctrl::RST_MASK, 0);
    assert_eq!(rig.rd(r::FCTRL), 0, "the write during the reset was lost");
    assert_eq!(rig.faults().len(), 2);
}

#[test]
fn reset_without_master_disable() {
    let rig = Rig::new();
    // The old driver: CTRL.RST with bus mastering still on.
    rig.wr(r::CTRL, r::ctrl::RST_MASK);
    assert_eq!(rig.faults(), vec![ModelFault::ResetWithMasterEnabled]);
    rig.model.take_faults();
    rig.model.clock().advance(std::time::Duration::from_millis(1));
    assert_ne!(rig.rd(r::STATUS) & r::status::GIO, 0, "mastering is back on after the reset");
    rig.reset();
    rig.assert_no_faults();
}

#[test]
fn rx_enable_without_the_erratum_sequence() {
    let rig = Rig::new();
    rig.reset();
    rig.regs.set_bits(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    rig.rx_required_bits();
    // The old driver: RXEN set directly.
    rig.regs.set_bits(r::RXCTRL, r::rxctrl::RXEN);
    assert_eq!(rig.faults(), vec![ModelFault::RxEnableErratum { rx_dis: false, ready_seen: false }]);
    assert_eq!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0, "receive stays off");
    rig.model.take_faults();
    // RX_DIS set but SECRX_RDY never polled.
    rig.regs.set_bits(r::SECRXCTRL, r::secrxctrl::RX_DIS);
    rig.regs.set_bits(r::RXCTRL, r::rxctrl::RXEN);
    assert_eq!(rig.faults(), vec![ModelFault::RxEnableErratum { rx_dis: true, ready_seen: false }]);
    rig.model.take_faults();
    rig.regs.clear_bits(r::SECRXCTRL, r::secrxctrl::RX_DIS);
    rig.enable_rx();
    rig.assert_no_faults();
    assert_ne!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0);
}

/// Queues `frame` from descriptor `first` on, one descriptor per 2 KiB,
/// EOP on the last, and writes TDT; returns the next free descriptor.
fn send_gathered(rig: &Rig, tx: &Tx, first: u32, frame: &[u8]) -> u32 {
    let chunks: Vec<&[u8]> = frame.chunks(2048).collect();
    for (k, c) in chunks.iter().enumerate() {
        let i = first + k as u32;
        let addr = tx.fill(i, c);
        let mut d = AdvTxRead::data(addr, c.len() as u16);
        if k + 1 < chunks.len() {
            d.cmd_type_len &= !tx_cmd::EOP;
        }
        // PAYLEN is the whole packet's (7.2.3.2.4).
        d.olinfo_status = (frame.len() as u32) << tx_olinfo::PAYLEN_SHIFT;
        tx.put(i, d);
    }
    rig.wr(r::TDT(0), first + chunks.len() as u32);
    first + chunks.len() as u32
}

#[test]
fn jumbo_tx_frames_up_to_maxfrs_are_sent_and_longer_ones_fault() {
    let mut rig = Rig::new();
    rig.init();
    rig.regs.set_bits(r::HLREG0, r::hlreg0::JUMBOEN);
    rig.wr(r::MAXFRS, 9018 << r::maxfrs::MFS_SHIFT);
    let tx = rig.tx_queue(0, 64);
    // 9014 bytes gathered from five 2 KiB buffers, EOP on the last.
    let frame: Vec<u8> = (0..9014).map(|i| i as u8).collect();
    let next = send_gathered(&rig, &tx, 0, &frame);
    assert_eq!(rig.sent().as_deref(), Some(&frame[..]));
    rig.assert_no_faults();
    let mut longer = frame.clone();
    longer.push(0);
    send_gathered(&rig, &tx, next, &longer);
    assert_eq!(rig.faults(), vec![ModelFault::TxPacketTooLong { queue: 0, len: 9015, max: 9014 }]);
    assert_eq!(rig.sent(), None);
}
