//! Shared by the kernel-peer wire tests (`wire_tap.rs`, `wire_packet.rs`):
//! building and parsing the few frames they exchange with the kernel (ARP,
//! ICMP echo) and a tiny host that answers for a fake address.
#![allow(dead_code)]

use ixtcp_driver::wire::Wire;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IEEE 802 "local experimental" EtherType, for frames only these tests use.
pub const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;

/// Returns the reason to skip, after printing it, when the kernel cannot be
/// a peer on this machine.
pub fn skip_reason(test: &str, need_tun: bool) -> Option<String> {
    let why = ixtcp_driver::wire::netns::kernel_peer_unavailable(need_tun)?;
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
    Some(why)
}

/// A unique interface name (at most 15 bytes) for this process.
pub fn ifname(prefix: &str, n: u32) -> String {
    let name = format!("{prefix}{}{n}", std::process::id() % 100_000);
    name[..name.len().min(15)].to_owned()
}

pub fn ethertype(f: &[u8]) -> u16 {
    if f.len() < 14 { 0 } else { u16::from_be_bytes([f[12], f[13]]) }
}

pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP packet (RFC 826, Ethernet/IPv4) in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

impl Arp {
    pub fn frame(&self, dst: Mac) -> Vec<u8> {
        let mut p = Vec::with_capacity(28);
        p.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]); // Ethernet, IPv4, lengths
        p.extend_from_slice(&self.op.to_be_bytes());
        p.extend_from_slice(&self.sender_mac);
        p.extend_from_slice(&self.sender_ip.octets());
        p.extend_from_slice(&self.target_mac);
        p.extend_from_slice(&self.target_ip.octets());
        ethernet(dst, self.sender_mac, ETHERTYPE_ARP, &p)
    }

    pub fn parse(f: &[u8]) -> Option<Arp> {
        if ethertype(f) != ETHERTYPE_ARP || f.len() < 42 || f[14..20] != [0, 1, 0x08, 0x00, 6, 4] {
            return None;
        }
        let mac = |at: usize| -> Mac { f[at..at + 6].try_into().unwrap_or([0; 6]) };
        let ip = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        Some(Arp {
            op: u16::from_be_bytes([f[20], f[21]]),
            sender_mac: mac(22),
            sender_ip: ip(28),
            target_mac: mac(32),
            target_ip: ip(38),
        })
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// If `f` is an IPv4 UDP datagram to `ip`, the same datagram sent back
/// (addresses and ports swapped) from `mac`: a UDP echo service.
pub fn udp_echo(f: &[u8], mac: Mac, ip: Ipv4Addr) -> Option<Vec<u8>> {
    if ethertype(f) != ETHERTYPE_IPV4 || f.len() < 14 + 20 + 8 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if f[14] >> 4 != 4 || f[23] != 17 || f[30..34] != ip.octets() || total > f.len() - 14 || total < ihl + 8 {
        return None;
    }
    let udp = 14 + ihl;
    let mut r = f[..14 + total].to_vec();
    r[0..6].copy_from_slice(&f[6..12]);
    r[6..12].copy_from_slice(&mac);
    r[22] = 64; // TTL
    r[26..30].copy_from_slice(&f[30..34]);
    r[30..34].copy_from_slice(&f[26..30]);
    r[24..26].copy_from_slice(&[0, 0]);
    let ip_sum = checksum(&r[14..udp]);
    r[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    r[udp..udp + 2].copy_from_slice(&f[udp + 2..udp + 4]);
    r[udp + 2..udp + 4].copy_from_slice(&f[udp..udp + 2]);
    r[udp + 6..udp + 8].copy_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    Some(r)
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
