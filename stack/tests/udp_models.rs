//! UDP and ICMP over the 82599 model as the driver programs it: MRQC
//! hashes UDP/IPv4 4-tuples, so every datagram of one flow reaches one
//! queue, flows spread over the queues, and the stack's own RSS check
//! (`RssView::is_ours`) agrees with the NIC; an echo request is answered
//! with both checksums right while TCP/UDP checksum offload is on.
mod common;

use std::collections::HashMap;
use std::net::SocketAddrV4;

use common::model::{IPS, ModelWorld, model_config, model_mac};
use ixtcp_driver::wire::link::LinkConfig;
use ixtcp_stack::UdpId;
use ixtcp_testkit::frames::{self, UdpDatagram};

const PORT: u16 = 5353;

#[test]
fn the_datagrams_of_one_udp_flow_reach_one_core_and_flows_spread() {
    let mut w = ModelWorld::new(LinkConfig::ten_gig(), Some(21), |i| model_config(IPS[i], 4));
    let ids: Vec<UdpId> = (0..4).map(|c| w.core(0, c).udp_bind(PORT).unwrap()).collect();
    let flows: Vec<u16> = (20_000..20_032).collect();
    const PER_FLOW: usize = 6;
    for round in 0..PER_FLOW {
        for &sport in &flows {
            let payload = [round as u8, (sport & 0xff) as u8];
            let d = UdpDatagram { src: IPS[1], dst: IPS[0], sport, dport: PORT, payload: &payload };
            let f = frames::padded(frames::udp_frame(model_mac(0), model_mac(1), &d));
            while !w.injector.inject(&f) {
                w.step(&mut |_, _| {});
            }
        }
    }
    w.run_for(5_000_000, &mut |_, _| {});
    let mut core_of: HashMap<SocketAddrV4, Vec<u16>> = HashMap::new();
    for (c, &id) in ids.iter().enumerate() {
        let core = w.core(0, c);
        let mut buf = [0u8; 16];
        while let Ok(r) = core.udp_recv_from(id, &mut buf) {
            assert_eq!(r.len, 2);
            core_of.entry(r.from).or_default().push(c as u16);
        }
    }
    assert_eq!(core_of.len(), flows.len(), "every flow arrived");
    for (from, cores) in &core_of {
        assert_eq!(cores.len(), PER_FLOW, "{from}: every datagram arrived once");
        assert!(cores.iter().all(|&c| c == cores[0]), "{from} was split over cores {cores:?}");
    }
    let used: std::collections::HashSet<u16> = core_of.values().map(|c| c[0]).collect();
    assert_eq!(used.len(), 4, "32 flows spread over all 4 queues");
    let s = w.stats(0);
    assert_eq!(s.rx_udp, (flows.len() * PER_FLOW) as u64);
    assert_eq!(s.rx_udp_misdirected, 0, "the stack's RSS check agrees with the NIC for UDP");
}

#[test]
fn ping_over_the_model_with_offload_on_is_answered_with_both_checksums_right() {
    let mut w = ModelWorld::new(LinkConfig::ten_gig(), Some(22), |i| model_config(IPS[i], 2));
    let data: Vec<u8> = (0..56u8).collect();
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(&data);
    let c = frames::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&IPS[1].octets());
    ip.extend_from_slice(&IPS[0].octets());
    let c = frames::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    w.injector.capture(true);
    assert!(w.injector.inject(&frames::ethernet(model_mac(0), model_mac(1), 0x0800, &ip)));
    w.run_for(5_000_000, &mut |_, _| {});
    let replies: Vec<Vec<u8>> =
        w.injector.take().into_iter().filter(|f| frames::ethertype(f) == 0x0800 && f[14 + 9] == 1).collect();
    assert_eq!(replies.len(), 1, "one echo reply");
    let p = &replies[0][14..];
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    assert_eq!(total, 20 + 8 + 56);
    assert_eq!(frames::checksum(&p[..20]), 0, "IPv4 header checksum");
    let m = &p[20..total];
    assert_eq!((m[0], m[1]), (0, 0));
    assert_eq!(frames::checksum(m), 0, "ICMP checksum");
    assert_eq!(&m[4..], &icmp[4..], "identifier, sequence and data");
    assert_eq!(w.stats(0).icmp_echo_replies, 1);
}
