//! Transmit descriptor write-back by TXDCTL.WTHRESH (7.2.3.5.1): per RS
//! descriptor with WTHRESH 0, in bursts of WTHRESH descriptors otherwise,
//! and no flush of a partial burst while interrupts are masked.

use super::*;
use crate::desc::tx_cmd;
use crate::desc::tx_olinfo::DD;

/// Sets WTHRESH of an enabled queue (the other TXDCTL bits kept).
fn set_wthresh(rig: &Rig, q: u32, wthresh: u32) {
    let txdctl = rig.rd(r::TXDCTL(q)) & !r::dctl::WTHRESH_MASK;
    rig.wr(r::TXDCTL(q), txdctl | wthresh << 16);
}

/// Queues `n` frames, descriptor `i` with RS when `rs(i)`, one TDT write.
fn send_burst(rig: &mut Rig, tx: &mut Tx, n: u32, rs: impl Fn(u32) -> bool) {
    let frame = runt(PEER_MAC);
    for k in 0..n {
        let i = tx.next;
        let addr = tx.fill(i, &frame);
        let mut d = AdvTxRead::data(addr, frame.len() as u16);
        if !rs(k) {
            d.cmd_type_len &= !tx_cmd::RS;
        }
        tx.put(i, d);
        tx.next = (i + 1) % tx.entries;
    }
    rig.wr(r::TDT(tx.q), tx.next);
    for _ in 0..n {
        assert!(rig.sent().is_some(), "every frame leaves whatever its write-back");
    }
}

fn done(tx: &Tx, range: std::ops::Range<u32>) -> Vec<bool> {
    range.map(|i| tx.status(i) & DD != 0).collect()
}

#[test]
fn wthresh_zero_writes_back_exactly_the_rs_descriptors() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    send_burst(&mut rig, &mut tx, 6, |k| k % 3 == 2);
    assert_eq!(done(&tx, 0..6), [false, false, true, false, false, true]);
    rig.assert_no_faults();
}

#[test]
fn wthresh_four_writes_back_in_bursts_and_strands_the_rest() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    set_wthresh(&rig, 0, 4);
    // RS is ignored: the descriptors without it are written back too.
    send_burst(&mut rig, &mut tx, 10, |k| k != 1);
    assert_eq!(done(&tx, 0..10), [[true; 8].as_slice(), &[false; 2]].concat());
    // No timer flushes the last two, however long the model waits.
    rig.regs.delay(std::time::Duration::from_secs(10));
    rig.model.pump();
    assert_eq!(done(&tx, 8..10), [false, false]);
    // Two more descriptors complete the burst.
    send_burst(&mut rig, &mut tx, 2, |_| true);
    assert_eq!(done(&tx, 8..12), [true; 4]);
    rig.assert_no_faults();
}

#[test]
fn wthresh_one_writes_back_every_descriptor() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    set_wthresh(&rig, 0, 1);
    send_burst(&mut rig, &mut tx, 5, |_| false);
    assert_eq!(done(&tx, 0..5), [true; 5]);
    rig.assert_no_faults();
}
