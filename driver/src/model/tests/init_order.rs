//! Init order and the bits 4.6.7 requires: each test plays a driver that
//! gets one step wrong, checks the fault and that the device refused, then
//! does the step right and checks that it is accepted.

use super::*;

/// Programs transmit queue `q`'s ring (head = tail = 0), not enabled.
fn program_tx(rig: &Rig, q: u32, ring: &DmaRegion) {
    rig.wr(r::TDBAL(q), ring.iova() as u32);
    rig.wr(r::TDBAH(q), (ring.iova() >> 32) as u32);
    rig.wr(r::TDLEN(q), (ring.len()) as u32);
    rig.wr(r::TDH(q), 0);
    rig.wr(r::TDT(q), 0);
}

#[test]
fn tx_queue_enabled_before_transmit_dma() {
    let rig = Rig::new();
    rig.reset();
    let ring = rig.dma.alloc(1024).unwrap();
    program_tx(&rig, 2, &ring);
    // Wrong: the queue before DMATXCTL.TE.
    rig.wr(r::TXDCTL(2), r::dctl::ENABLE);
    assert_eq!(rig.faults(), vec![ModelFault::TxEnabledBeforeTransmitDma { queue: 2 }]);
    assert_eq!(rig.rd(r::TXDCTL(2)) & r::dctl::ENABLE, 0, "the queue stays disabled");
    rig.model.take_faults();
    // Right: TE first (4.6.8).
    rig.wr(r::DMATXCTL, r::dmatxctl::TE);
    rig.wr(r::TXDCTL(2), r::dctl::ENABLE);
    assert_ne!(rig.rd(r::TXDCTL(2)) & r::dctl::ENABLE, 0);
    rig.assert_no_faults();
}

#[test]
fn rx_tail_written_before_the_queue_is_enabled() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 1, 64, 2);
    rig.program_rx(&rx, r::srrctl::DROP_EN);
    // Wrong: the ring handed over before the queue is enabled.
    rig.wr(r::RDT(1), 63);
    assert_eq!(rig.faults(), vec![ModelFault::TailWrittenWhileDisabled { queue: 1, rx: true, tail: 63 }]);
    assert_eq!(rig.rd(r::RDT(1)), 0, "the write is ignored");
    rig.model.take_faults();
    // Right: enable, then move the tail (4.6.7.1).
    rig.wr(r::RXDCTL(1), r::dctl::ENABLE);
    rig.wr(r::RDT(1), 63);
    assert_eq!(rig.rd(r::RDT(1)), 63);
    rig.assert_no_faults();
}

#[test]
fn tx_tail_written_before_the_queue_is_enabled() {
    let rig = Rig::new();
    rig.init();
    let ring = rig.dma.alloc(1024).unwrap();
    program_tx(&rig, 0, &ring);
    rig.wr(r::TDT(0), 5);
    assert_eq!(rig.faults(), vec![ModelFault::TailWrittenWhileDisabled { queue: 0, rx: false, tail: 5 }]);
    assert_eq!(rig.rd(r::TDT(0)), 0);
    rig.model.take_faults();
    // Zero is the programmed value and always fine; so is the tail once the
    // queue is on.
    rig.wr(r::TDT(0), 0);
    rig.wr(r::TXDCTL(0), r::dctl::ENABLE);
    rig.assert_no_faults();
}

#[test]
fn mtqc_written_with_the_arbiter_running() {
    let rig = Rig::new();
    rig.reset();
    rig.wr(r::MTQC, 0);
    assert_eq!(rig.faults(), vec![ModelFault::MtqcWithoutArbiterDisabled { value: 0 }]);
    rig.model.take_faults();
    rig.regs.set_bits(r::RTTDCS, r::rttdcs::ARBDIS);
    rig.wr(r::MTQC, 0);
    rig.regs.clear_bits(r::RTTDCS, r::rttdcs::ARBDIS);
    rig.assert_no_faults();
}

/// Undoes one of the bits 4.6.7 wants.
type Spoil<'a> = &'a dyn Fn(&Rig);

/// RXEN with everything 4.6.7 wants except what `spoil` undoes; returns the
/// faults and whether receive came on.
fn enable_rx_with(spoil: impl Fn(&Rig)) -> (Vec<ModelFault>, bool) {
    let rig = Rig::new();
    rig.reset();
    rig.regs.set_bits(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    rig.rx_required_bits();
    let rx = Rx::alloc(&rig.dma, 3, 64, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RXDCTL(3), r::dctl::ENABLE);
    spoil(&rig);
    rig.enable_rx();
    (rig.faults(), rig.rd(r::RXCTRL) & r::rxctrl::RXEN != 0)
}

#[test]
fn rx_enabled_without_the_required_bits() {
    assert_eq!(enable_rx_with(|_| {}), (vec![], true));
    let cases: [(Spoil, &str, Option<u16>); 5] = [
        (&|rig| rig.regs.clear_bits(r::CTRL_EXT, r::ctrl_ext::NS_DIS), "CTRL_EXT", None),
        (&|rig| rig.regs.set_bits(r::RDRXCTL, 1 << 17), "RDRXCTL", None),
        (&|rig| rig.regs.clear_bits(r::RDRXCTL, r::rdrxctl::RSCACKC), "RDRXCTL", None),
        (&|rig| rig.regs.clear_bits(r::RDRXCTL, r::rdrxctl::FCOE_WRFIX), "RDRXCTL", None),
        (&|rig| rig.regs.set_bits(r::DCA_RXCTRL(3), r::dca_rxctrl::RESERVED_BIT12), "DCA_RXCTRL", Some(3)),
    ];
    for (spoil, register, queue) in cases {
        let (faults, on) = enable_rx_with(spoil);
        assert!(!on, "{register}: receive stays off");
        assert!(
            matches!(faults.as_slice(), [ModelFault::RxInitBits { register: got, queue: q, .. }]
                if *got == register && *q == queue),
            "{register}: {faults:?}"
        );
    }
    // Bit 12 of a queue that is not enabled does not matter (the reset
    // value is still there on queue 9).
    assert_eq!(enable_rx_with(|rig| assert_ne!(rig.rd(r::DCA_RXCTRL(9)), 0)), (vec![], true));
}

#[test]
fn rx_queue_joining_a_running_receive_path_needs_bit_12_clear() {
    let rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 4, 64, 2);
    rig.program_rx(&rx, 0);
    rig.regs.set_bits(r::DCA_RXCTRL(4), r::dca_rxctrl::RESERVED_BIT12);
    rig.wr(r::RXDCTL(4), r::dctl::ENABLE);
    assert!(matches!(rig.faults()[..], [ModelFault::RxInitBits { register: "DCA_RXCTRL", queue: Some(4), .. }]));
    assert_eq!(rig.rd(r::RXDCTL(4)) & r::dctl::ENABLE, 0);
    rig.model.take_faults();
    rig.regs.clear_bits(r::DCA_RXCTRL(4), r::dca_rxctrl::RESERVED_BIT12);
    rig.wr(r::RXDCTL(4), r::dctl::ENABLE);
    assert_ne!(rig.rd(r::RXDCTL(4)) & r::dctl::ENABLE, 0);
    rig.assert_no_faults();
}

#[test]
fn init_order_faults_say_what_to_fix() {
    let f = ModelFault::TxEnabledBeforeTransmitDma { queue: 1 };
    assert!(f.to_string().contains("DMATXCTL.TE"), "{f}");
    let f = ModelFault::TailWrittenWhileDisabled { queue: 0, rx: true, tail: 7 };
    assert!(f.to_string().starts_with("rx queue 0: tail 7"), "{f}");
    assert!(ModelFault::MtqcWithoutArbiterDisabled { value: 0 }.to_string().contains("ARBDIS"));
    let f = ModelFault::RxInitBits { register: "DCA_RXCTRL", queue: Some(2), rule: "bit 12 clear" };
    assert_eq!(f.to_string(), "receive enabled with DCA_RXCTRL(2) not as 4.6.7 requires: bit 12 clear");
}
