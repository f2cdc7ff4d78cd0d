//! `PacketWire` (AF_PACKET) on a veth pair inside a network namespace that
//! each test creates and deletes (also on failure: `Netns` deletes it, and
//! the veth pair with it, on drop). Traffic goes only to addresses of that
//! namespace (10.78.0.0/24 exists only there). Skips, saying why, without
//! root or `ip` (fails instead under `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

mod wire_support;

use ixtcp_driver::wire::{Netns, PacketWire, Wire};
use std::net::Ipv4Addr;
use std::time::Duration;
use wire_support::*;

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const FAKE_MAC: Mac = [0x02, 0x78, 0, 0, 0, 2];
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);

/// A namespace holding a veth pair `a` <-> `b`, both up; `b` has the
/// kernel's address 10.78.0.1/24, `a` has none (the model's side).
struct Veth {
    ns: Netns,
    a: String,
    b: String,
}

fn veth(n: u32) -> Veth {
    let ns = Netns::new("ixtcp-pkt").unwrap();
    let (a, b) = (ifname("ixpa", n), ifname("ixpb", n));
    ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]).unwrap();
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", &b]).unwrap();
    ns.ip(&["link", "set", "dev", &a, "up"]).unwrap();
    ns.ip(&["link", "set", "dev", &b, "up"]).unwrap();
    Veth { ns, a, b }
}

fn open_in(ns: &Netns, iface: &str) -> PacketWire {
    ns.run(|| PacketWire::open(iface)).unwrap().unwrap()
}

#[test]
fn frames_sent_on_one_veth_end_arrive_at_the_other_and_are_not_read_back() {
    if !peer::kernel_peer("frames_sent_on_one_veth_end_arrive_at_the_other_and_are_not_read_back", Needs::NETNS) {
        return;
    }
    let v = veth(0);
    let mut wa = open_in(&v.ns, &v.a);
    let mut wb = open_in(&v.ns, &v.b);
    assert_eq!(wa.name(), v.a);
    assert!(wa.ifindex() > 0 && wa.ifindex() != wb.ifindex());
    let shown = v.ns.ip(&["-d", "link", "show", "dev", &v.a]).unwrap();
    assert!(shown.contains("promiscuity 1"), "not promiscuous: {shown}");

    // To a unicast MAC that is neither veth's: only promiscuous reception
    // (or veth's lack of filtering) gets it to `b`'s socket.
    let sent: Vec<Vec<u8>> =
        (0u8..10).map(|i| ethernet([0x02, 0x78, 0, 0, 0, 0x99], FAKE_MAC, ETHERTYPE_EXPERIMENTAL, &[i; 50])).collect();
    for f in &sent {
        wa.transmit(f).unwrap();
    }
    let mut got = Vec::new();
    let found = wait_for(
        &mut wb,
        Duration::from_secs(3),
        |f| {
            if ethertype(f) == ETHERTYPE_EXPERIMENTAL {
                got.push(f.to_vec());
            }
            (got.len() == sent.len()).then_some(())
        },
        |_, _| {},
    );
    assert!(found.is_some(), "got {} of {} frames on {}", got.len(), sent.len(), v.b);
    assert_eq!(got, sent);

    // `a` does not read back what it sent.
    let echoed = wait_for(&mut wa, Duration::from_millis(200), |f| sent.contains(&f.to_vec()).then_some(()), |_, _| {});
    assert!(echoed.is_none(), "{} read back its own transmission", v.a);
}

#[test]
fn kernel_answers_arp_and_echoes_udp_through_the_packet_wire() {
    if !peer::kernel_peer("kernel_answers_arp_and_echoes_udp_through_the_packet_wire", Needs::NETNS) {
        return;
    }
    let v = veth(1);
    let mut wa = open_in(&v.ns, &v.a);

    // Model -> kernel -> model: ARP request for the kernel's address.
    let request =
        Arp { op: ARP_REQUEST, sender_mac: FAKE_MAC, sender_ip: FAKE_IP, target_mac: [0; 6], target_ip: KERNEL_IP };
    let reply = (0..15).find_map(|_| {
        wa.transmit(&request.frame(BROADCAST)).unwrap();
        wait_for(
            &mut wa,
            Duration::from_millis(200),
            |f| Arp::parse(f).filter(|a| a.op == ARP_REPLY && a.sender_ip == KERNEL_IP && a.target_mac == FAKE_MAC),
            |_, _| {},
        )
    });
    let reply = reply.unwrap_or_else(|| panic!("no ARP reply from the kernel on {}", v.b));
    let hex: Vec<String> = reply.sender_mac.iter().map(|b| format!("{b:02x}")).collect();
    let shown = v.ns.ip(&["link", "show", "dev", &v.b]).unwrap();
    assert!(shown.contains(&format!("link/ether {}", hex.join(":"))), "reply from {hex:?}, but {shown}");

    // Kernel -> model -> kernel: UDP from a socket in the namespace to a
    // fake host behind `a`, echoed back.
    let mut host = FakeHost::new([0x02, 0x78, 0, 0, 0, 3], Ipv4Addr::new(10, 78, 0, 3));
    assert!(udp_round_trip(&v.ns, &mut wa, &mut host), "UDP echo through {} failed", v.a);
    assert_eq!((host.arp_answered, host.udp_echoed), (1, 1));
}

#[test]
fn opening_a_missing_interface_says_where_to_look() {
    if !peer::kernel_peer("opening_a_missing_interface_says_where_to_look", Needs::NETNS) {
        return;
    }
    let ns = Netns::new("ixtcp-pkt").unwrap();
    let e = ns.run(|| PacketWire::open("ixnothere0")).unwrap().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("in_netns"), "{e}");
}
