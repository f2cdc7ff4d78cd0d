//! The idle pump: with no work left behind and no doorbell rung, a pump
//! returns without a lock and without asking the wire; a frame published
//! later rings the doorbell, so it is never missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::model::PUMP_BATCH;
use crate::wire::{Doorbell, WireError};

/// A queue wire that counts the model's `receive` calls; `rings` says
/// whether it passes the doorbell on (false: as an OS-facing wire).
struct Counting {
    inner: QueueWire,
    receives: Arc<AtomicUsize>,
    rings: bool,
}

impl Wire for Counting {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.inner.transmit(frame)
    }
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        self.receives.fetch_add(1, Ordering::Relaxed);
        self.inner.receive(buf)
    }
    fn ring_on_arrival(&mut self, bell: Arc<Doorbell>) -> bool {
        self.rings && self.inner.ring_on_arrival(bell)
    }
    fn holds_frames(&self) -> bool {
        self.inner.holds_frames()
    }
}

fn counting_rig(rings: bool) -> (Rig, Arc<AtomicUsize>) {
    let mut rig = Rig::new();
    let (port, peer) = QueueWire::pair();
    let receives = Arc::new(AtomicUsize::new(0));
    rig.model.attach(Box::new(Counting { inner: port, receives: Arc::clone(&receives), rings }));
    rig.peer = peer;
    rig.init();
    (rig, receives)
}

fn frame(n: u8) -> Vec<u8> {
    frames::padded(frames::ethernet(MAC, PEER_MAC, 0x88b5, &[n; 20]))
}

#[test]
fn an_idle_pump_does_not_touch_the_wire_and_a_later_frame_rings() {
    let (mut rig, receives) = counting_rig(true);
    let _rx = rig.rx_queue(0, 64, 2);
    assert_eq!(rig.model.pump(), 0);
    let looked = receives.load(Ordering::Relaxed);
    assert!(looked > 0, "the first pump after attach looks at the wire");
    for _ in 0..10 {
        assert_eq!(rig.model.pump(), 0);
    }
    assert_eq!(receives.load(Ordering::Relaxed), looked, "idle pumps asked the wire");
    assert_eq!(rig.inject(&frame(1)), 1, "the frame published after the idle pumps");
    assert_eq!(rig.rd(r::RDH(0)), 1);
    let after = receives.load(Ordering::Relaxed);
    assert!(after > looked);
    assert_eq!(rig.model.pump(), 0);
    assert_eq!(receives.load(Ordering::Relaxed), after, "idle again once the frame was taken");
    rig.assert_no_faults();
}

#[test]
fn a_wire_without_a_doorbell_is_asked_on_every_pump() {
    let (mut rig, receives) = counting_rig(false);
    let _rx = rig.rx_queue(0, 64, 2);
    for i in 1..=5 {
        assert_eq!(rig.model.pump(), 0);
        assert_eq!(receives.load(Ordering::Relaxed), i, "pump {i}");
    }
    assert_eq!(rig.inject(&frame(2)), 1);
    assert_eq!(rig.rd(r::RDH(0)), 1);
}

#[test]
fn frames_left_beyond_one_pump_batch_are_taken_by_the_next_pump() {
    let (mut rig, _) = counting_rig(true);
    let _rx = rig.rx_queue(0, 64, 2);
    let f = frame(3);
    for _ in 0..PUMP_BATCH + 40 {
        rig.peer.transmit(&f).unwrap();
    }
    assert_eq!(rig.model.pump(), PUMP_BATCH);
    assert_eq!(rig.model.pump(), 40, "no new ring, but the wire was not drained");
    assert_eq!(rig.model.pump(), 0);
}

#[test]
fn a_frame_waiting_in_the_packet_buffer_is_delivered_by_an_idle_looking_pump() {
    let mut rig = Rig::with_config(ModelConfig { rx_fifo_frames: 4, ..ModelConfig::default() });
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    // No descriptor handed over: the frame waits in the packet buffer.
    assert_eq!(rig.inject(&frame(4)), 1);
    assert_eq!(rig.rd(r::RDH(0)), 0);
    rig.wr(r::RDT(0), 7);
    assert_eq!(rig.model.pump(), 0, "nothing new from the wire");
    assert_eq!(rig.rd(r::RDH(0)), 1, "the waiting frame was written once descriptors came");
}
