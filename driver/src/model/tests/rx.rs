//! Receive: queue selection, write-back, filtering, drops.

use super::*;
use crate::desc::{pkt_type, rss_type, rx_status};
use crate::model::counters::off as stat;
use crate::rss::{Reta, VERIFICATION_KEY, ipv4_ports_input, toeplitz_hash};

fn flow(sport: u16) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    ((ip(10, 0, 0, 2), sport), (ip(10, 0, 0, 1), 80))
}

#[test]
fn tcp_frame_lands_in_the_rss_queue_with_full_writeback() {
    let mut rig = Rig::new();
    rig.init();
    rig.enable_rss(&VERIFICATION_KEY, 4);
    let rxs: Vec<Rx> = (0..4).map(|q| rig.rx_queue(q, 32, 2)).collect();
    let (src, dst) = ((ip(66, 9, 149, 187), 2794), (ip(161, 142, 100, 80), 1766));
    let frame = tcp_frame(src, dst, b"hello, model");
    assert_eq!(rig.inject(&frame), 1);

    let hash = toeplitz_hash(&VERIFICATION_KEY, &ipv4_ports_input(src.0, dst.0, src.1, dst.1));
    assert_eq!(hash, 0x51ccc178, "datasheet vector");
    let q = Reta::round_robin(4).queue(hash) as usize;
    let wb = rxs[q].desc(0);
    assert_eq!(wb.status_error, rx_status::DD | rx_status::EOP | rx_status::IPCS | rx_status::L4CS);
    assert_eq!(usize::from(wb.length), frame.len());
    assert_eq!(wb.rss, hash);
    assert_eq!(wb.pkt_info & 0xF, rss_type::TCP_IPV4);
    assert_eq!(wb.pkt_info & 0xFFF0, pkt_type::IPV4 | pkt_type::TCP);
    assert_eq!(rxs[q].data(0, frame.len()), frame);
    assert_eq!(rig.rd(r::RDH(q as u32)), 1);
    for (i, other) in rxs.iter().enumerate() {
        if i != q {
            assert_eq!(rig.rd(r::RDH(i as u32)), 0);
            assert_eq!(other.desc(0).status_error & rx_status::DD, 0);
        }
    }
    // Statistics, clear on read; GORC counts the 4 CRC bytes.
    assert_eq!(rig.rd(r::GPRC), 1);
    assert_eq!(rig.rd(r::GPRC), 0);
    assert_eq!(rig.rd(r::GORCL), frame.len() as u32 + 4);
    assert_eq!(rig.rd(r::GORCH), 0);
    assert_eq!(rig.rd(r::GORCL), 0);
    assert_eq!(rig.rd(r::QPRC(q as u32)), 1);
    assert_eq!(rig.rd(r::QBRC_L(q as u32)), frame.len() as u32);
    rig.assert_no_faults();
}

#[test]
fn round_robin_reta_spreads_tcp_flows_over_four_queues() {
    let mut rig = Rig::new();
    rig.init();
    rig.enable_rss(&VERIFICATION_KEY, 4);
    let rxs: Vec<Rx> = (0..4).map(|q| rig.rx_queue(q, 128, 2)).collect();
    let reta = Reta::round_robin(4);
    let mut expected = [0u32; 4];
    for sport in 1000..1064 {
        let (src, dst) = flow(sport);
        rig.inject(&tcp_frame(src, dst, &sport.to_be_bytes()));
        let hash = toeplitz_hash(&VERIFICATION_KEY, &ipv4_ports_input(src.0, dst.0, src.1, dst.1));
        let q = reta.queue(hash) as usize;
        let i = expected[q];
        let wb = rxs[q].desc(i);
        assert_eq!(wb.rss, hash, "flow {sport}");
        assert_eq!(rxs[q].data(i, 56)[54..], sport.to_be_bytes());
        expected[q] += 1;
    }
    assert!(expected.iter().all(|&n| n > 4), "every queue gets a share: {expected:?}");
    for q in 0..4 {
        assert_eq!(rig.rd(r::RDH(q)), expected[q as usize]);
    }
    rig.assert_no_faults();
}

#[test]
fn without_rss_everything_goes_to_queue_zero_with_ip_id() {
    let mut rig = Rig::new();
    rig.init();
    let rx0 = rig.rx_queue(0, 8, 2);
    let _rx1 = rig.rx_queue(1, 8, 2);
    for sport in 0..4 {
        let (src, dst) = flow(sport);
        rig.inject(&tcp_frame(src, dst, b"x"));
    }
    assert_eq!(rig.rd(r::RDH(0)), 4);
    assert_eq!(rig.rd(r::RDH(1)), 0);
    // PCSD clear: the field carries the IP identification.
    assert_eq!(rx0.desc(0).rss, 0x1234);
    assert_eq!(rx0.desc(0).pkt_info, pkt_type::IPV4 | pkt_type::TCP);
}

#[test]
fn unicast_filter_needs_a_matching_ral_or_upe() {
    let mut rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    let other = [0x02, 0, 0, 0, 0, 0x99];
    let (src, dst) = flow(1);
    rig.inject(&ipv4_frame(other, src, dst, false, b""));
    assert_eq!(rig.rd(r::RDH(0)), 0, "wrong MAC dropped");
    rig.regs.set_bits(r::FCTRL, r::fctrl::UPE);
    rig.inject(&ipv4_frame(other, src, dst, false, b""));
    assert_eq!(rig.rd(r::RDH(0)), 1, "accepted in unicast promiscuous mode");
    rig.regs.clear_bits(r::FCTRL, r::fctrl::UPE);
    // A second address in RAL(3)/RAH(3).
    rig.wr(r::RAL(3), u32::from_le_bytes([0x02, 0, 0, 0]));
    rig.wr(r::RAH(3), 0x9900 | r::rah::AV);
    rig.inject(&ipv4_frame(other, src, dst, false, b""));
    assert_eq!(rig.rd(r::RDH(0)), 2, "matched RAR 3");
    rig.inject(&tcp_frame(src, dst, b""));
    assert_eq!(rig.rd(r::RDH(0)), 3, "own MAC");
}

#[test]
fn broadcast_needs_bam_and_multicast_needs_mpe() {
    let mut rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    rig.regs.clear_bits(r::FCTRL, r::fctrl::BAM);
    rig.inject(&runt([0xFF; 6]));
    assert_eq!(rig.rd(r::RDH(0)), 0);
    rig.regs.set_bits(r::FCTRL, r::fctrl::BAM);
    rig.inject(&runt([0xFF; 6]));
    assert_eq!(rig.rd(r::RDH(0)), 1);
    assert_eq!(rig.rd(stat::BPRC), 1);
    let mcast = [0x01, 0x00, 0x5e, 0, 0, 1];
    rig.inject(&runt(mcast));
    assert_eq!(rig.rd(r::RDH(0)), 1);
    rig.regs.set_bits(r::FCTRL, r::fctrl::MPE);
    rig.inject(&runt(mcast));
    assert_eq!(rig.rd(r::RDH(0)), 2);
}

#[test]
fn short_frames_are_padded_to_60_bytes() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 2);
    let f = runt(MAC);
    assert_eq!(f.len(), 42);
    rig.inject(&f);
    let wb = rx.desc(0);
    assert_eq!(wb.length, 60);
    assert_eq!(wb.status_error, rx_status::DD | rx_status::EOP);
    let data = rx.data(0, 60);
    assert_eq!(data[..42], f[..]);
    assert!(data[42..].iter().all(|&b| b == 0));
}

#[test]
fn length_errors_are_counted_and_dropped() {
    let mut rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    rig.inject(&MAC);
    rig.inject(&vec![0u8; 1515]);
    assert_eq!(rig.rd(r::RDH(0)), 0);
    assert_eq!(rig.rd(r::RLEC), 2);
    assert_eq!(rig.rd(stat::RUC), 1);
    assert_eq!(rig.rd(stat::ROC), 1);
    let mut max = runt(MAC);
    max.resize(1514, 0xAB);
    rig.inject(&max);
    assert_eq!(rig.rd(r::RDH(0)), 1, "1514 + FCS = 1518 fits");
}

#[test]
fn receive_disabled_takes_nothing() {
    let mut rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    rig.regs.clear_bits(r::RXCTRL, r::rxctrl::RXEN);
    rig.inject(&runt(MAC));
    assert_eq!(rig.rd(r::RDH(0)), 0);
    assert_eq!(rig.rd(r::GPRC), 0);
}

/// Fills an 8-entry ring (7 descriptors owned by the device) with 10 frames.
fn overflow(rig: &mut Rig) -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = (0..10u16).map(|i| tcp_frame(flow(i).0, flow(i).1, &[i as u8; 100])).collect();
    for f in &frames {
        rig.peer.transmit(f).unwrap();
    }
    assert_eq!(rig.model.pump(), 10);
    frames
}

#[test]
fn full_ring_with_drop_en_drops_and_counts_per_queue() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 2);
    let frames = overflow(&mut rig);
    assert_eq!(rig.rd(r::RDH(0)), 7);
    assert_eq!(rig.rd(r::RDT(0)), 7, "RDH == RDT: the device owns nothing");
    assert_eq!(rig.rd(r::QPRDC(0)), 3);
    assert_eq!(rig.rd(stat::rnbc(0)), 3);
    assert_eq!(rig.rd(stat::mpc(0)), 0, "DROP_EN drops are not packet buffer misses");
    assert_eq!(rig.rd(r::GPRC), 7);
    for (i, f) in frames.iter().take(7).enumerate() {
        let wb = rx.desc(i as u32);
        assert_eq!(wb.status_error & (rx_status::DD | rx_status::EOP), rx_status::DD | rx_status::EOP);
        assert_eq!(rx.data(i as u32, f.len()), *f, "frame {i} intact");
    }
    assert_eq!(rx.desc(7).status_error & rx_status::DD, 0, "the descriptor at RDT is untouched");
    rig.assert_no_faults();
}

#[test]
fn full_ring_without_drop_en_misses_in_mpc() {
    let mut rig = Rig::new();
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    rig.wr(r::RDT(0), 7);
    let frames = overflow(&mut rig);
    assert_eq!(rig.rd(stat::mpc(0)), 3);
    assert_eq!(rig.rd(r::QPRDC(0)), 0);
    assert_eq!(rx.data(6, frames[6].len()), frames[6]);
}

#[test]
fn packet_buffer_holds_frames_until_descriptors_return() {
    let mut rig = Rig::with_config(ModelConfig { rx_fifo_frames: 2, ..ModelConfig::default() });
    rig.init();
    let rx = Rx::alloc(&rig.dma, 0, 8, 2);
    rig.program_rx(&rx, 0);
    rig.wr(r::RXDCTL(0), r::dctl::ENABLE);
    rig.wr(r::RDT(0), 7);
    let frames = overflow(&mut rig);
    assert_eq!(rig.rd(stat::mpc(0)), 1, "two wait in the packet buffer, one is missed");
    // The driver takes descriptors 0 and 1, re-arms them and hands them
    // back: the two waiting frames arrive, in order.
    rx.arm(7);
    rx.arm(0);
    rig.wr(r::RDT(0), 1);
    assert_eq!(rig.rd(r::RDH(0)), 1);
    assert_eq!(rx.data(7, frames[7].len()), frames[7]);
    assert_eq!(rx.data(0, frames[8].len()), frames[8]);
    assert_eq!(rig.rd(r::GPRC), 9);
    rig.assert_no_faults();
}

#[test]
fn jumbo_frame_spans_descriptors_with_eop_on_the_last() {
    let mut rig = Rig::new();
    rig.init();
    rig.regs.set_bits(r::HLREG0, r::hlreg0::JUMBOEN);
    rig.wr(r::MAXFRS, 9018 << r::maxfrs::MFS_SHIFT);
    let rx = rig.rx_queue(0, 8, 1);
    let frame = tcp_frame(flow(7).0, flow(7).1, &vec![0x5A; 3000 - 54]);
    rig.inject(&frame);
    assert_eq!(rig.rd(r::RDH(0)), 3);
    let lens: Vec<u16> = (0..3).map(|i| rx.desc(i).length).collect();
    assert_eq!(lens, [1024, 1024, 952]);
    assert_eq!(rx.desc(0).status_error, rx_status::DD);
    assert_eq!(rx.desc(1).status_error, rx_status::DD);
    assert_eq!(rx.desc(2).status_error & (rx_status::DD | rx_status::EOP), rx_status::DD | rx_status::EOP);
    let mut data = Vec::new();
    for i in 0..3 {
        data.extend(rx.data(i, usize::from(lens[i as usize])));
    }
    assert_eq!(data, frame);
    rig.assert_no_faults();
}

#[test]
fn bad_checksums_are_flagged() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 2);
    let mut bad_ip = tcp_frame(flow(1).0, flow(1).1, b"abc");
    bad_ip[24] ^= 0xFF;
    let mut bad_tcp = tcp_frame(flow(1).0, flow(1).1, b"abc");
    *bad_tcp.last_mut().unwrap() ^= 0xFF;
    let udp = ipv4_frame(MAC, flow(2).0, flow(2).1, true, b"udp!");
    rig.inject(&bad_ip);
    rig.inject(&bad_tcp);
    rig.inject(&udp);
    let s0 = rx.desc(0).status_error;
    assert_ne!(s0 & rx_status::ERR_IPE, 0);
    assert_eq!(s0 & rx_status::ERR_TCPE, 0);
    let s1 = rx.desc(1).status_error;
    assert_eq!(s1 & rx_status::ERR_IPE, 0);
    assert_ne!(s1 & rx_status::ERR_TCPE, 0);
    let s2 = rx.desc(2).status_error;
    assert_eq!(s2 & (rx_status::ERR_IPE | rx_status::ERR_TCPE), 0);
    assert_ne!(s2 & rx_status::UDPCS, 0);
    assert_eq!(rx.desc(2).pkt_info, pkt_type::IPV4 | pkt_type::UDP);
}

#[test]
fn without_crc_strip_the_fcs_is_written_to_the_buffer() {
    let mut rig = Rig::new();
    rig.init();
    rig.regs.clear_bits(r::RXCTRL, r::rxctrl::RXEN);
    rig.regs.clear_bits(r::HLREG0, r::hlreg0::RXCRCSTRP);
    rig.regs.clear_bits(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    rig.enable_rx();
    let rx = rig.rx_queue(0, 8, 2);
    let f = tcp_frame(flow(1).0, flow(1).1, b"long enough not to be padded");
    rig.inject(&f);
    assert_eq!(usize::from(rx.desc(0).length), f.len() + 4);
    let data = rx.data(0, f.len() + 4);
    assert_eq!(data[f.len()..], crate::model::packet::ethernet_fcs(&f));
    rig.assert_no_faults();
}

/// Fills every receive buffer of `rx` with `canary`.
fn paint(rx: &Rx, canary: u8) {
    super::write_bytes(&rx.bufs, 0, &vec![canary; rx.entries as usize * rx.buf_size()]);
}

#[test]
fn maxfrs_limits_frames_only_with_jumboen() {
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, 8, 16);
    // MFS raised but JUMBOEN clear: the limit stays 1518 with FCS.
    rig.wr(r::MAXFRS, 9018 << r::maxfrs::MFS_SHIFT);
    let long = tcp_frame(flow(1).0, flow(1).1, &vec![7; 1600 - 54]);
    rig.inject(&long);
    assert_eq!(rig.rd(r::RDH(0)), 0);
    assert_eq!(rig.rd(stat::ROC), 1);
    assert_eq!(rig.rd(r::RLEC), 1);
    // JUMBOEN on: MFS is the limit, FCS included.
    rig.regs.set_bits(r::HLREG0, r::hlreg0::JUMBOEN);
    let largest = tcp_frame(flow(1).0, flow(1).1, &vec![8; 9014 - 54]);
    let too_long = tcp_frame(flow(1).0, flow(1).1, &vec![9; 9015 - 54]);
    paint(&rx, 0xEE);
    rig.inject(&too_long);
    assert_eq!(rig.rd(r::RDH(0)), 0, "a frame above MFS is not written");
    assert_eq!(rig.rd(stat::ROC), 1);
    assert_eq!(rig.rd(r::RLEC), 1);
    assert!(rx.data(0, rx.buf_size()).iter().all(|&b| b == 0xEE), "the dropped frame left no byte behind");
    rig.inject(&largest);
    rig.inject(&long);
    assert_eq!(rig.rd(r::RDH(0)), 2);
    assert_eq!(rx.data(0, largest.len()), largest);
    assert_eq!(rx.desc(0).length as usize, largest.len());
    assert_eq!(rx.data(1, long.len()), long);
    assert_eq!(rig.rd(stat::ROC), 0);
    rig.assert_no_faults();
}

#[test]
fn a_frame_larger_than_its_buffer_never_writes_past_it() {
    let mut rig = Rig::new();
    rig.init();
    rig.regs.set_bits(r::HLREG0, r::hlreg0::JUMBOEN);
    rig.wr(r::MAXFRS, 9018 << r::maxfrs::MFS_SHIFT);
    // 2 KiB buffers (BSIZEPKT = 2), back to back in one region.
    let rx = rig.rx_queue(0, 8, 2);
    paint(&rx, 0xEE);
    let frame = tcp_frame(flow(3).0, flow(3).1, &vec![0x11; 9014 - 54]);
    rig.inject(&frame);
    // 9014 bytes in 2048-byte buffers: four full ones and 822 bytes in the
    // fifth, EOP on the last; every other byte keeps the canary.
    assert_eq!(rig.rd(r::RDH(0)), 5);
    let lens: Vec<u16> = (0..5).map(|i| rx.desc(i).length).collect();
    assert_eq!(lens, [2048, 2048, 2048, 2048, 822]);
    assert_eq!(rx.desc(4).status_error & rx_status::EOP, rx_status::EOP);
    let all = rx.data(0, rx.entries as usize * rx.buf_size());
    assert_eq!(all[..frame.len()], frame[..]);
    assert!(all[frame.len()..].iter().all(|&b| b == 0xEE), "bytes after the frame's last buffer changed");
    // A frame that would need more descriptors than the device owns is
    // dropped (DROP_EN), not truncated: 7 owned, 5 used, 2 left.
    rig.inject(&frame);
    assert_eq!(rig.rd(r::RDH(0)), 5);
    assert_eq!(rig.rd(r::QPRDC(0)), 1);
    assert!(all[frame.len()..] == rx.data(0, all.len())[frame.len()..], "the dropped frame wrote nothing");
    rig.assert_no_faults();
}
