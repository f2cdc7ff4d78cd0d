//! Shared by the kernel-peer wire tests (`wire_tap.rs`, `wire_packet.rs`,
//! `tap_driver.rs`): a tiny host that answers ARP for a fake address and
//! echoes UDP, and the loops that wait for the kernel's frames. Frames come
//! from the testkit; so do the kernel-peer check and interface names.
// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

use ixtcp_driver::wire::Wire;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub use ixtcp_testkit::frames::{
    ARP_REPLY, ARP_REQUEST, Arp, BROADCAST, ETHERTYPE_EXPERIMENTAL, Mac, UdpDatagram, ethernet, ethertype, parse_udp,
    udp_frame,
};
pub use ixtcp_testkit::peer::{self, Needs, ifname};

/// If `f` is an IPv4 UDP datagram to `ip`, the same datagram sent back
/// (addresses and ports swapped) from `mac`: a UDP echo service.
pub fn udp_echo(f: &[u8], mac: Mac, ip: Ipv4Addr) -> Option<Vec<u8>> {
    let got = parse_udp(f).filter(|d| d.dst == ip)?;
    let reply = UdpDatagram { src: ip, dst: got.src, sport: got.dport, dport: got.sport, payload: &got.payload };
    Some(udp_frame(got.src_mac, mac, &reply))
}

/// A fake host on the wire: answers ARP requests for its address and
/// echoes UDP datagrams sent to it.
pub struct FakeHost {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub arp_answered: u32,
    pub udp_echoed: u32,
}

impl FakeHost {
    pub fn new(mac: Mac, ip: Ipv4Addr) -> FakeHost {
        FakeHost { mac, ip, arp_answered: 0, udp_echoed: 0 }
    }

    pub fn handle(&mut self, wire: &mut dyn Wire, f: &[u8]) {
        if let Some(a) = Arp::parse(f).filter(|a| a.op == ARP_REQUEST && a.target_ip == self.ip) {
            let reply = Arp {
                op: ARP_REPLY,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac: a.sender_mac,
                target_ip: a.sender_ip,
            };
            wire.transmit(&reply.frame(a.sender_mac)).unwrap();
            self.arp_answered += 1;
        } else if let Some(reply) = udp_echo(f, self.mac, self.ip) {
            wire.transmit(&reply).unwrap();
            self.udp_echoed += 1;
        }
    }
}

/// Polls `wire` until `want` accepts a frame or `timeout` passes; frames
/// that are not wanted go to `other`.
pub fn wait_for<T>(
    wire: &mut dyn Wire,
    timeout: Duration,
    mut want: impl FnMut(&[u8]) -> Option<T>,
    mut other: impl FnMut(&mut dyn Wire, &[u8]),
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    while Instant::now() < deadline {
        if wire.receive(&mut buf) {
            if let Some(t) = want(&buf) {
                return Some(t);
            }
            other(wire, &buf);
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    None
}

/// A UDP socket inside the namespace sends a datagram to `host`, which
/// answers the kernel's ARP request and echoes the datagram back over
/// `wire`; returns true when the socket got its datagram back from `host`.
pub fn udp_round_trip(ns: &ixtcp_driver::wire::Netns, wire: &mut dyn Wire, host: &mut FakeHost) -> bool {
    let socket = ns.run(|| UdpSocket::bind("0.0.0.0:0")).unwrap().unwrap();
    socket.set_nonblocking(true).unwrap();
    let to = SocketAddr::from((host.ip, 7777));
    let message = b"through the wire and back";
    socket.send_to(message, to).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut got = [0u8; 64];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut got) {
            return from == to && got[..n] == message[..];
        }
        if wire.receive(&mut buf) {
            host.handle(wire, &buf);
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    false
}
