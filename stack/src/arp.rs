//! ARP, the protocol (RFC 826) on one core's [`Port`]: answering requests
//! for our address, learning neighbours, sending the requests the resolver
//! asks for (and the gratuitous one at start), and sending the packets
//! that waited for a neighbour once it is known.
//!
//! The neighbour table the answers go into, shared by a host's cores, and
//! the per-core queue of packets waiting for an address are
//! `crate::neighbor`'s; the ARP packet format is `crate::ether`'s.

use std::net::Ipv4Addr;

use ixtcp_driver::mempool::PacketBuf;

use crate::ether::{ARP_LEN, Arp, ArpOp, ETH_HEADER_LEN, EthernetFrame, MacAddr};
use crate::io::PacketIo;
use crate::neighbor::Ask;
use crate::port::Port;

/// The shortest Ethernet payload: ARP frames are padded up to it.
const MIN_PAYLOAD: usize = 46;

impl<P: PacketIo> Port<P> {
    /// Sends an ARP request for `ip` unless one went out recently.
    pub fn ask(&mut self, ip: Ipv4Addr) {
        let decision = self.resolver.should_ask(ip, self.now_ms);
        if decision == Ask::OverBudget {
            self.stats.arp_requests_suppressed += 1;
        }
        if decision == Ask::Send {
            let req = Arp {
                op: ArpOp::Request,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac: MacAddr::default(),
                target_ip: ip,
            };
            if self.send_arp(&req) {
                self.stats.arp_requests += 1;
            }
        }
    }

    /// Gratuitous ARP: announces our address (at start).
    pub fn announce(&mut self) {
        let g = Arp {
            op: ArpOp::Request,
            sender_mac: self.mac,
            sender_ip: self.ip,
            target_mac: MacAddr::default(),
            target_ip: self.ip,
        };
        if self.send_arp(&g) {
            self.stats.arp_requests += 1;
        }
    }

    fn send_arp(&mut self, arp: &Arp) -> bool {
        let Some(mut buf) = self.io.alloc() else {
            self.stats.drop_mempool_empty += 1;
            return false;
        };
        buf.reset(0);
        if !buf.set_len(ETH_HEADER_LEN + MIN_PAYLOAD) {
            return false;
        }
        let frame = buf.data_mut();
        frame.fill(0);
        if arp.emit_frame(frame).is_none() {
            return false;
        }
        self.push_frame(buf);
        true
    }

    /// Handles a received ARP frame (Ethernet header included): learns the
    /// sender and answers requests for our address in place (the request's
    /// buffer becomes the reply: no allocation, no copy).
    pub fn handle_arp(&mut self, mut buf: PacketBuf) {
        self.stats.rx_arp += 1;
        let Ok((arp, frame_src)) =
            EthernetFrame::new_checked(buf.data()).and_then(|f| Ok((Arp::parse(f.payload())?, f.src())))
        else {
            self.stats.drop_malformed += 1;
            return;
        };
        // Learn only plausible neighbours: unicast, on our subnet, and the
        // frame's own source (a corrupted ARP must not poison the table).
        let plausible = arp.sender_mac.is_unicast()
            && arp.sender_mac == frame_src
            && self.next_hop(arp.sender_ip) == Some(arp.sender_ip)
            && arp.sender_ip != self.ip;
        if arp.sender_ip == self.ip && arp.sender_mac != self.mac {
            // Someone claims our address (spoofing, or a duplicate address):
            // never learned (below), never answered, counted.
            self.stats.arp_spoofed += 1;
        }
        let for_us = arp.target_ip == self.ip;
        if plausible && let Ok(true) = self.resolver.table.learn(arp.sender_ip, arp.sender_mac, self.now_ms, for_us) {
            self.stats.arp_learned += 1;
        }
        if arp.op == ArpOp::Request && for_us && plausible {
            let reply = Arp {
                op: ArpOp::Reply,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            if buf.set_len(ETH_HEADER_LEN + ARP_LEN.max(MIN_PAYLOAD)) {
                let frame = buf.data_mut();
                frame.fill(0);
                if reply.emit_frame(frame).is_some() {
                    self.push_frame(buf);
                    self.stats.arp_replies += 1;
                }
            }
        }
    }

    /// Sends packets whose next hop got resolved; drops those that waited
    /// too long; asks again for the rest.
    pub fn service_pending(&mut self) {
        if !self.resolver.needs_service(self.now_ms) {
            return;
        }
        for _ in 0..self.resolver.pending.len() {
            let Some(p) = self.resolver.pending.pop_front() else { break };
            if let Some(n) = self.resolver.table.lookup(p.next_hop, self.now_ms) {
                self.frame_and_push(p.buf, n.mac);
                self.stats.arp_resolved_sent += 1;
            } else if self.resolver.expired(p.since_ms, self.now_ms) {
                self.stats.drop_no_neighbor += 1;
            } else {
                self.ask(p.next_hop);
                self.resolver.pending.push_back(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ixtcp_testkit::frames::{self, ARP_REPLY, ARP_REQUEST, BROADCAST, TcpSeg};
    use smoltcp::time::Instant;

    use super::*;
    use crate::ether::{ETHERTYPE_ARP, ETHERTYPE_IPV4};
    use crate::neighbor::{NeighborTable, Resolver};
    use crate::port::PortAddr;
    use crate::sim::{SimIo, SimNic};

    const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const RETRY_MS: u64 = 100;

    fn port() -> Port<SimIo> {
        let (_nic, mut ios) = SimNic::new(OUR_MAC, 1, 64, 64).unwrap();
        let resolver = Resolver::new(NeighborTable::new(16, 60_000), 4, 1_000, RETRY_MS);
        let addr =
            PortAddr { mac: OUR_MAC, ip: OUR_IP, netmask: Ipv4Addr::new(255, 255, 255, 0), gateway: None, mtu: 1500 };
        let mut p = Port::new(ios.remove(0), addr, resolver, 32, None, false);
        p.set_time(Instant::from_millis(5_000), 5_000);
        p
    }

    /// Hands `frame` to the port as received.
    fn receive(p: &mut Port<SimIo>, frame: &[u8]) {
        let mut b = p.io.alloc().unwrap();
        b.reset(0);
        assert!(b.copy_from(frame));
        p.handle_arp(b);
    }

    /// The ARP packets in the TX batch, taken out of it.
    fn sent(p: &mut Port<SimIo>) -> Vec<(frames::Mac, frames::Arp)> {
        p.tx.drain(..)
            .map(|b| {
                let f = b.data();
                assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
                assert_eq!(frames::ethertype(f), ETHERTYPE_ARP);
                (frames::macs(f).unwrap().0, frames::Arp::parse(f).unwrap())
            })
            .collect()
    }

    /// An IPv4 TCP segment from us to the peer carrying `payload`.
    fn to_peer(payload: &[u8]) -> Vec<u8> {
        frames::tcp_ip(&TcpSeg {
            src: OUR_IP,
            dst: PEER_IP,
            sport: 80,
            dport: 5555,
            seq: 1,
            ack: 2,
            flags: frames::ACK,
            window: 100,
            payload,
        })
    }

    fn request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> frames::Arp {
        frames::Arp { op: ARP_REQUEST, sender_mac, sender_ip, target_mac: [0; 6], target_ip }
    }

    #[test]
    fn a_request_for_us_is_answered_in_place_and_its_sender_learned() {
        let mut p = port();
        let free = p.io.pool().free_count();
        receive(&mut p, &frames::padded(request(PEER_MAC, PEER_IP, OUR_IP).frame(BROADCAST)));
        let reply = frames::Arp {
            op: ARP_REPLY,
            sender_mac: OUR_MAC.0,
            sender_ip: OUR_IP,
            target_mac: PEER_MAC,
            target_ip: PEER_IP,
        };
        assert_eq!(p.io.pool().free_count() + 1, free, "the request's buffer is the reply");
        assert_eq!(sent(&mut p), [(PEER_MAC, reply)]);
        assert_eq!(p.resolver.table.lookup(PEER_IP, 5_000).map(|n| n.mac), Some(MacAddr(PEER_MAC)));
        let s = p.stats;
        assert_eq!((s.rx_arp, s.arp_replies, s.arp_learned, s.arp_spoofed), (1, 1, 1, 0));
    }

    #[test]
    fn implausible_senders_are_neither_learned_nor_answered() {
        let other = Ipv4Addr::new(10, 0, 0, 3);
        let cases = [
            // A request for someone else: not answered, and (unknown
            // sender) not learned.
            request(PEER_MAC, PEER_IP, other).frame(BROADCAST),
            // The sender MAC is not the frame's source.
            {
                let mut f = request(PEER_MAC, PEER_IP, OUR_IP).frame(BROADCAST);
                f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
                f
            },
            // Off our subnet, or a group address.
            request(PEER_MAC, Ipv4Addr::new(192, 168, 0, 2), OUR_IP).frame(BROADCAST),
            request([3, 0, 0, 0, 0, 2], PEER_IP, OUR_IP).frame(BROADCAST),
        ];
        for f in cases {
            let mut p = port();
            receive(&mut p, &frames::padded(f.clone()));
            assert!(sent(&mut p).is_empty(), "{f:02x?}");
            assert!(p.resolver.table.is_empty(), "{f:02x?}");
            assert_eq!((p.stats.rx_arp, p.stats.arp_spoofed, p.stats.drop_malformed), (1, 0, 0));
        }
    }

    #[test]
    fn a_claim_on_our_address_is_counted_not_learned() {
        let mut p = port();
        receive(&mut p, &frames::padded(request(PEER_MAC, OUR_IP, OUR_IP).frame(BROADCAST)));
        assert!(sent(&mut p).is_empty());
        assert!(p.resolver.table.is_empty());
        assert_eq!(p.stats.arp_spoofed, 1);
    }

    #[test]
    fn truncated_or_foreign_arp_is_malformed() {
        let good = request(PEER_MAC, PEER_IP, OUR_IP).frame(BROADCAST);
        let mut foreign = good.clone();
        foreign[ETH_HEADER_LEN + 1] = 6; // hardware type IEEE 802
        for f in [good[..good.len() - 1].to_vec(), good[..ETH_HEADER_LEN].to_vec(), foreign] {
            let mut p = port();
            receive(&mut p, &f);
            assert!(sent(&mut p).is_empty());
            assert_eq!((p.stats.rx_arp, p.stats.drop_malformed), (1, 1));
        }
    }

    #[test]
    fn a_packet_for_an_unknown_neighbour_waits_for_the_reply() {
        let mut p = port();
        let ip = to_peer(b"hi");
        let send = |p: &mut Port<SimIo>| p.build_ip(ip.len(), |b| b.copy_from_slice(&ip));
        send(&mut p);
        let ask = request(OUR_MAC.0, OUR_IP, PEER_IP);
        assert_eq!(sent(&mut p), [(BROADCAST, ask)]);
        assert_eq!(p.resolver.pending.len(), 1);
        // A second packet within the retry interval asks no more.
        send(&mut p);
        assert!(sent(&mut p).is_empty());
        assert_eq!(p.stats.arp_requests, 1);
        // The peer's reply: learned, and both packets go out to its MAC.
        let reply = frames::Arp {
            op: ARP_REPLY,
            sender_mac: PEER_MAC,
            sender_ip: PEER_IP,
            target_mac: OUR_MAC.0,
            target_ip: OUR_IP,
        };
        receive(&mut p, &frames::padded(reply.frame(OUR_MAC.0)));
        assert!(sent(&mut p).is_empty(), "a reply is not answered");
        p.service_pending();
        let out: Vec<_> = p.tx.drain(..).map(|b| (frames::macs(b.data()), frames::ethertype(b.data()))).collect();
        let framed = (Some((PEER_MAC, OUR_MAC.0)), ETHERTYPE_IPV4);
        assert_eq!(out, [framed, framed]);
        assert_eq!(p.stats.arp_resolved_sent, 2);
    }

    #[test]
    fn waiting_packets_are_dropped_after_the_timeout_and_asked_for_again_before() {
        let mut p = port();
        p.build_ip(40, |b| b.copy_from_slice(&to_peer(b"")));
        assert_eq!(sent(&mut p).len(), 1);
        p.set_time(Instant::from_millis(5_000 + RETRY_MS as i64), 5_000 + RETRY_MS);
        p.service_pending();
        assert_eq!(sent(&mut p), [(BROADCAST, request(OUR_MAC.0, OUR_IP, PEER_IP))], "asked again");
        p.set_time(Instant::from_millis(7_000), 7_000);
        p.service_pending();
        assert!(p.resolver.pending.is_empty());
        assert_eq!(p.stats.drop_no_neighbor, 1);
    }

    #[test]
    fn the_announcement_is_a_gratuitous_request() {
        let mut p = port();
        p.announce();
        assert_eq!(sent(&mut p), [(BROADCAST, request(OUR_MAC.0, OUR_IP, OUR_IP))]);
        assert_eq!(p.stats.arp_requests, 1);
    }
}
