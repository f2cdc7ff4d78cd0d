//! Transmit: gather, write-back, padding, offloads, statistics, busy wire.

use std::sync::{Arc, Mutex};

use super::*;
use crate::desc::{AdvTxContext, tx_cmd, tx_ctx, tx_olinfo};
use crate::model::counters::off as stat;
use crate::wire::WireError;

/// Just the command bits of a data descriptor, with DTALEN.
fn data_cmd(len: usize, eop: bool, rs: bool) -> u32 {
    let mut c = tx_cmd::DEXT | tx_cmd::DTYP_DATA | tx_cmd::IFCS | len as u32;
    if eop {
        c |= tx_cmd::EOP;
    }
    if rs {
        c |= tx_cmd::RS;
    }
    c
}

#[test]
fn single_descriptor_packet_reaches_the_wire_and_is_counted() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    let frame = ipv4_frame(PEER_MAC, (ip(10, 0, 0, 1), 80), (ip(10, 0, 0, 2), 1234), false, b"payload");
    let i = tx.send(&rig, &frame);
    assert_eq!(rig.sent(), Some(frame.clone()));
    assert_eq!(rig.sent(), None);
    assert_eq!(tx.status(i) & tx_olinfo::DD, tx_olinfo::DD);
    assert_eq!(rig.rd(r::TDH(0)), 1);
    assert_eq!(rig.rd(r::GPTC), 1);
    assert_eq!(rig.rd(r::GPTC), 0, "clear on read");
    assert_eq!(rig.rd(r::GOTCL), frame.len() as u32 + 4);
    assert_eq!(rig.rd(r::GOTCH), 0);
    assert_eq!(rig.rd(r::QPTC(0)), 1);
    assert_eq!(rig.rd(r::QPTC(0)), 0);
    assert_eq!(rig.rd(r::QBTC_L(0)), frame.len() as u32);
    assert_eq!(rig.rd(r::QBTC_H(0)), 0);
    rig.assert_no_faults();
}

#[test]
fn multi_descriptor_packet_is_gathered_byte_exact() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(1, 64);
    let frame: Vec<u8> = ipv4_frame(PEER_MAC, (ip(1, 2, 3, 4), 5), (ip(6, 7, 8, 9), 10), true, &[0xC3; 1000]);
    let parts = [&frame[..14], &frame[14..500], &frame[500..]];
    for (i, part) in parts.iter().enumerate() {
        let addr = tx.fill(i as u32, part);
        let last = i == parts.len() - 1;
        tx.put(
            i as u32,
            AdvTxRead {
                buffer_addr: addr,
                cmd_type_len: data_cmd(part.len(), last, last),
                olinfo_status: (frame.len() as u32) << tx_olinfo::PAYLEN_SHIFT,
            },
        );
    }
    // Hand over the first two only: nothing goes out before EOP.
    rig.wr(r::TDT(1), 2);
    assert_eq!(rig.sent(), None);
    assert_eq!(rig.rd(r::TDH(1)), 2);
    rig.wr(r::TDT(1), 3);
    assert_eq!(rig.sent(), Some(frame.clone()));
    // DD only where RS was set; the others keep their olinfo.
    let paylen = (frame.len() as u32) << tx_olinfo::PAYLEN_SHIFT;
    assert_eq!(tx.status(0), paylen);
    assert_eq!(tx.status(1), paylen);
    assert_eq!(tx.status(2), tx_olinfo::DD);
    rig.assert_no_faults();
}

#[test]
fn dd_is_written_back_only_with_rs() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    let f = runt(PEER_MAC);
    let addr = tx.fill(0, &f);
    let olinfo = (f.len() as u32) << tx_olinfo::PAYLEN_SHIFT;
    tx.put(0, AdvTxRead { buffer_addr: addr, cmd_type_len: data_cmd(f.len(), true, false), olinfo_status: olinfo });
    rig.wr(r::TDT(0), 1);
    assert!(rig.sent().is_some());
    assert_eq!(tx.status(0), olinfo);
    assert_eq!(rig.rd(r::TDH(0)), 1);
}

#[test]
fn short_frames_are_padded_only_with_txpaden() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    let f = runt(PEER_MAC);
    tx.send(&rig, &f);
    let out = rig.sent().unwrap();
    assert_eq!(out.len(), 60);
    assert_eq!(out[..42], f[..]);
    assert!(out[42..].iter().all(|&b| b == 0));
    assert_eq!(rig.rd(r::GOTCL), 64);
    assert_eq!(rig.rd(r::QBTC_L(0)), 42, "bytes fetched from host memory");
    rig.regs.clear_bits(r::HLREG0, r::hlreg0::TXPADEN);
    tx.send(&rig, &f);
    assert_eq!(rig.sent().unwrap(), f);
}

/// Writes a context descriptor for Ethernet/IPv4 (20-byte header) and the
/// given L4 type into slot `idx` at ring index `i`.
fn put_context(tx: &Tx, i: u32, idx: u32, l4t: u32) {
    let ctx = AdvTxContext {
        vlan_macip_lens: 20 | 14 << tx_ctx::MACLEN_SHIFT,
        seqnum_seed: 0,
        type_tucmd_mlhl: tx_ctx::TUCMD_IPV4 | l4t | tx_cmd::DTYP_CTXT | tx_cmd::DEXT,
        mss_l4len_idx: idx << tx_olinfo::IDX_SHIFT | 20 << 8,
    };
    let at = i as usize * DESC_SIZE;
    tx.ring.store_u32(at, ctx.vlan_macip_lens);
    tx.ring.store_u32(at + 4, ctx.seqnum_seed);
    tx.ring.store_u32(at + 8, ctx.type_tucmd_mlhl);
    tx.ring.store_u32(at + 12, ctx.mss_l4len_idx);
}

/// The frame as software prepares it for offload: IPv4 checksum zero, L4
/// checksum holding the (uncomplemented) pseudo-header sum.
fn prepare_for_offload(good: &[u8], udp: bool) -> Vec<u8> {
    let mut f = good.to_vec();
    f[24..26].copy_from_slice(&[0, 0]);
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let proto = f[23];
    let pseudo = frames::pseudo_header_sum(src, dst, proto, f.len() - 34);
    let at = if udp { 40 } else { 50 };
    f[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    f
}

#[test]
fn context_and_ixsm_txsm_insert_correct_checksums() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, 64);
    for (n, udp) in [false, true].into_iter().enumerate() {
        let good = ipv4_frame(PEER_MAC, (ip(192, 168, 1, 1), 4000), (ip(192, 168, 1, 2), 53), udp, b"offload me!");
        let prepared = prepare_for_offload(&good, udp);
        assert_ne!(prepared, good);
        let (ci, di) = (2 * n as u32, 2 * n as u32 + 1);
        let l4t = if udp { 0 } else { tx_ctx::TUCMD_L4T_TCP };
        put_context(&tx, ci, 1, l4t);
        let addr = tx.fill(di, &prepared);
        let olinfo = (prepared.len() as u32) << tx_olinfo::PAYLEN_SHIFT
            | tx_olinfo::IXSM
            | tx_olinfo::TXSM
            | 1 << tx_olinfo::IDX_SHIFT;
        let cmd = data_cmd(prepared.len(), true, true);
        tx.put(di, AdvTxRead { buffer_addr: addr, cmd_type_len: cmd, olinfo_status: olinfo });
        rig.wr(r::TDT(0), di + 1);
        let out = rig.sent().unwrap();
        // Checked independently: the header sums to zero, the segment with
        // its pseudo header too (the UDP frame was padded to 60 bytes after
        // the checksum), and the frame equals the one built in software.
        assert_eq!(frames::checksum(&out[14..34]), 0);
        let src = Ipv4Addr::new(out[26], out[27], out[28], out[29]);
        let dst = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
        let l4_len = usize::from(u16::from_be_bytes([out[16], out[17]])) - 20;
        assert_eq!(frames::l4_checksum(src, dst, out[23], &out[34..34 + l4_len]), 0);
        assert_eq!(out[..good.len()], good[..], "udp = {udp}");
    }
    rig.assert_no_faults();
}

/// A wire that refuses the first `busy` frames, then records.
#[derive(Clone, Default)]
struct BusyWire {
    inner: Arc<Mutex<(usize, Vec<Vec<u8>>)>>,
}

impl Wire for BusyWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let mut g = self.inner.lock().unwrap();
        if g.0 > 0 {
            g.0 -= 1;
            return Err(WireError::Busy);
        }
        g.1.push(frame.to_vec());
        Ok(())
    }
    fn receive(&mut self, _buf: &mut Vec<u8>) -> bool {
        false
    }
}

#[test]
fn busy_wire_holds_the_frame_and_pump_retries_it() {
    // Queue 0, and one above 64 (pump tracks held queues in a bit mask).
    for q in [0, 70] {
        busy_wire_holds_and_pump_retries_on(q);
    }
}

fn busy_wire_holds_and_pump_retries_on(q: u32) {
    let rig = Rig::new();
    rig.init();
    let wire = BusyWire::default();
    wire.inner.lock().unwrap().0 = 3;
    rig.model.attach(Box::new(wire.clone()));
    let mut tx = rig.tx_queue(q, 64);
    let a = runt(PEER_MAC);
    let mut b = runt(PEER_MAC);
    b[20] = 0xEE;
    tx.send(&rig, &a);
    tx.send(&rig, &b);
    // `a` is held in the packet buffer (its descriptor done; the second
    // TDT write retried it, busy again); `b` waits.
    assert!(wire.inner.lock().unwrap().1.is_empty());
    assert_eq!(rig.rd(r::TDH(q)), 1);
    assert_eq!(tx.status(1) & tx_olinfo::DD, 0);
    assert_eq!(rig.rd(r::GPTC), 0);
    assert_eq!(rig.model.pump(), 0, "queue {q}: still busy once");
    assert_eq!(rig.model.pump(), 2, "queue {q}");
    let sent = wire.inner.lock().unwrap().1.clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0][..42], a[..]);
    assert_eq!(sent[1][..42], b[..]);
    assert_eq!(rig.rd(r::TDH(q)), 2);
    assert_eq!(rig.rd(r::GPTC), 2);
    rig.assert_no_faults();
}

#[test]
fn mac_loopback_returns_transmitted_frames_to_receive() {
    let mut rig = Rig::new();
    rig.init();
    rig.regs.set_bits(r::HLREG0, r::hlreg0::LPBK);
    let rx = rig.rx_queue(0, 8, 2);
    let mut tx = rig.tx_queue(0, 64);
    let f = tcp_frame((ip(10, 0, 0, 1), 1), (ip(10, 0, 0, 1), 2), b"loop");
    tx.send(&rig, &f);
    assert_eq!(rig.sent(), None, "nothing on the wire");
    assert_eq!(rx.data(0, f.len()), f);
    assert_eq!(rig.rd(r::GPTC), 1);
    assert_eq!(rig.rd(r::GPRC), 1);
    rig.assert_no_faults();
}

#[test]
fn broadcast_and_multicast_transmit_counters() {
    let rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    tx.send(&rig, &runt([0xFF; 6]));
    tx.send(&rig, &runt([0x01, 0, 0x5e, 0, 0, 1]));
    assert_eq!(rig.rd(stat::BPTC), 1);
    assert_eq!(rig.rd(stat::MPTC), 1);
    assert_eq!(rig.rd(r::GPTC), 2);
}
