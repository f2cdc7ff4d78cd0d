//! The device as a previous owner left it running
//! ([`Model82599::left_running`]): what goes wrong if it is trusted, and
//! which init steps make it safe.

use super::*;
use crate::model::DIRTY_QUEUES;

fn dirty() -> Rig {
    let model = Model82599::left_running(ModelConfig::default());
    let (port, peer) = QueueWire::pair();
    model.attach(Box::new(port));
    Rig { regs: model.regs(), dma: model.dma(), model, peer }
}

#[test]
fn a_device_left_running_writes_into_freed_memory_until_stopped() {
    let mut rig = dirty();
    assert_ne!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0);
    for q in 0..DIRTY_QUEUES {
        assert_ne!(rig.rd(r::RXDCTL(q)) & r::dctl::ENABLE, 0);
        assert_ne!(rig.rd(r::TXDCTL(q)) & r::dctl::ENABLE, 0);
    }
    // Any activity now: the pending transmit work is fetched from the stale
    // rings of every queue, and a frame arriving goes to queue 0's.
    rig.inject(&runt(MAC));
    let faults = rig.model.take_faults();
    let stale = |what, q| {
        faults.iter().any(
            |f| matches!(f, ModelFault::DmaOutOfBounds { what: w, queue, .. } if *w == what && u32::from(*queue) == q),
        )
    };
    assert!(stale("rx descriptor ring", 0), "{faults:?}");
    assert!((0..DIRTY_QUEUES).all(|q| stale("tx descriptor ring", q)), "{faults:?}");
    // Receive off first: the next frame is not written anywhere.
    rig.regs.clear_bits(r::RXCTRL, r::rxctrl::RXEN);
    rig.inject(&runt(MAC));
    rig.assert_no_faults();
}

#[test]
fn master_disable_does_not_drain_while_receive_and_queues_run() {
    let rig = dirty();
    // Skipping the stop: GIO_DIS alone, as the driver did before.
    rig.regs.set_bits(r::CTRL, r::ctrl::GIO_DIS);
    for _ in 0..100 {
        assert_ne!(rig.rd(r::STATUS) & r::status::GIO, 0, "master requests still pending");
    }
    rig.regs.set_bits(r::CTRL, r::ctrl::RST_MASK);
    assert_eq!(rig.faults(), vec![ModelFault::ResetWithMasterEnabled]);
}

#[test]
fn every_stop_step_is_needed_before_the_master_drains() {
    let rig = dirty();
    rig.regs.set_bits(r::CTRL, r::ctrl::GIO_DIS);
    rig.regs.clear_bits(r::RXCTRL, r::rxctrl::RXEN);
    for q in 0..DIRTY_QUEUES {
        rig.regs.clear_bits(r::RXDCTL(q), r::dctl::ENABLE);
        assert_ne!(rig.rd(r::STATUS) & r::status::GIO, 0, "transmit queues still on");
    }
    for q in 0..DIRTY_QUEUES {
        assert_ne!(rig.rd(r::STATUS) & r::status::GIO, 0, "transmit queue {q} still on");
        rig.regs.clear_bits(r::TXDCTL(q), r::dctl::ENABLE);
    }
    assert_eq!(rig.rd(r::STATUS) & r::status::GIO, 0, "idle: the master disable completes");
    rig.regs.set_bits(r::CTRL, r::ctrl::RST_MASK);
    rig.regs.delay(std::time::Duration::from_millis(1));
    rig.assert_no_faults();
    // The filters have no reset value: the previous owner's RAR(1) is still
    // valid after the reset, and init must clear it (driver/tests/board.rs).
    assert_ne!(rig.rd(r::RAH(1)) & r::rah::AV, 0, "the reset leaves the old filters");
}

#[test]
fn rings_programmed_without_a_reset_trip_over_the_running_queues() {
    let rig = dirty();
    let rx = Rx::alloc(&rig.dma, 0, 64, 2);
    rig.program_rx(&rx, 0);
    let faults = rig.faults();
    assert!(
        faults.iter().any(|f| matches!(f, ModelFault::RingReprogrammedWhileEnabled { queue: 0, rx: true, .. })),
        "{faults:?}"
    );
}
