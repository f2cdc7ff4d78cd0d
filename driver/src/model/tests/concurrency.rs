//! Concurrency smoke test: a "core" thread transmits and consumes receive
//! descriptors through its own register handle while another thread pumps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread;

use super::*;
use crate::desc::rx_status;

const FRAMES: u32 = 300;
/// Bound on spin iterations, so a bug fails the test instead of hanging it.
const SPIN_LIMIT: u32 = 10_000_000;

#[test]
fn core_thread_and_pump_thread_share_the_model() {
    let rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 512, 2);
    let mut tx = rig.tx_queue(0, 512);
    let Rig { model, regs, mut peer, .. } = rig;
    for i in 0..FRAMES {
        let mut f = runt(MAC);
        f[14..18].copy_from_slice(&i.to_be_bytes());
        peer.transmit(&f).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));

    let pumper = {
        let (model, done) = (model.clone(), Arc::clone(&done));
        thread::spawn(move || {
            let mut spins = 0;
            while !done.load(Ordering::Relaxed) && spins < SPIN_LIMIT {
                model.pump();
                spins += 1;
                thread::yield_now();
            }
        })
    };

    let core = thread::spawn(move || {
        let (mut next_rx, mut received, mut spins) = (0u32, Vec::new(), 0);
        let rig_regs = regs;
        for i in 0..FRAMES {
            // Transmit one frame per iteration (the ring never wraps).
            let mut f = runt(PEER_MAC);
            f[14..18].copy_from_slice(&i.to_be_bytes());
            let at = tx.next;
            let addr = tx.fill(at, &f);
            tx.put(at, AdvTxRead::data(addr, f.len() as u16));
            tx.next += 1;
            fence(Ordering::Release);
            rig_regs.write32(r::TDT(0), tx.next);
            // Consume whatever has arrived.
            while rx.desc(next_rx).status_error & rx_status::DD != 0 {
                fence(Ordering::Acquire);
                received.push(u32::from_be_bytes(rx.data(next_rx, 18)[14..18].try_into().unwrap()));
                rx.arm(next_rx);
                fence(Ordering::Release);
                rig_regs.write32(r::RDT(0), next_rx);
                next_rx = (next_rx + 1) % rx.entries;
            }
        }
        while (received.len() as u32) < FRAMES && spins < SPIN_LIMIT {
            if rx.desc(next_rx).status_error & rx_status::DD != 0 {
                fence(Ordering::Acquire);
                received.push(u32::from_be_bytes(rx.data(next_rx, 18)[14..18].try_into().unwrap()));
                rx.arm(next_rx);
                fence(Ordering::Release);
                rig_regs.write32(r::RDT(0), next_rx);
                next_rx = (next_rx + 1) % rx.entries;
            } else {
                thread::yield_now();
            }
            spins += 1;
        }
        (received, rx, tx)
    });

    let (received, _rx, _tx) = core.join().unwrap();
    done.store(true, Ordering::Relaxed);
    pumper.join().unwrap();

    // The ring holds all frames, so every one arrives, once and in order.
    assert_eq!(model.regs().read32(r::QPRDC(0)), 0);
    assert_eq!(received, (0..FRAMES).collect::<Vec<_>>());
    let mut buf = Vec::new();
    let mut sent = 0;
    while peer.receive(&mut buf) {
        assert_eq!(u32::from_be_bytes(buf[14..18].try_into().unwrap()), sent);
        sent += 1;
    }
    assert_eq!(sent, FRAMES);
    assert_eq!(model.faults(), vec![]);
}
