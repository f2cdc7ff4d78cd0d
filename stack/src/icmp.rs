//! ICMP for IPv4 (RFC 792, RFC 1122 3.2.2): echo replies, destination
//! unreachable for UDP ports nobody bound, and the per-core rate limit.
//!
//! - **Input** (`StackCore::ingress_icmp`): a message for our address has
//!   its IPv4 header checksum checked like a TCP segment's
//!   (`crate::csum`), then its length (at least the 8-byte header) and
//!   its own checksum (the 82599 never checks ICMP's); a bad one is
//!   counted by cause and dropped. Echo requests are answered; other types
//!   are counted (`icmp_ignored`) and dropped, but destination
//!   unreachable about one of our TCP connections.
//! - **Errors in** (RFC 1122 4.2.3.9, RFC 5927): the quoted TCP header
//!   names the connection (flow table) and its sequence number must lie
//!   in SND.UNA..SND.MAX, or the message is ignored (counted). A hard
//!   error (protocol or port unreachable, administratively prohibited) on
//!   a connection in SYN-SENT fails the connect as refused; on a
//!   synchronized connection errors are counted only, as Linux does
//!   without `IP_RECVERR`. An error quoting a datagram sent from one of
//!   our bound UDP ports is recorded on that port (the latest one, with
//!   the destination it names) and raises `Event::Udp`: UDP has no
//!   sequence number to check, so the socket's owner judges it, acting
//!   only when the destination is its connected peer (as Linux's UDP
//!   does). Fragmentation needed (RFC 1191) lowers the connection's path
//!   MTU (`crate::pmtu`).
//! - **Never answered** (RFC 1122 3.2.2, 3.2.2.6): a message sent to a
//!   broadcast or multicast address, IP or link layer; one from an address
//!   no host sends from (`ether::is_special`, or our own); a fragment
//!   (counted in `drop_icmp_fragment` by the core's dispatch, never
//!   reassembled). An ICMP error is never sent about an ICMP message: the
//!   only error the stack sends is port unreachable, for UDP.
//! - **Output**: the reply is built into a fresh buffer (20-byte header,
//!   request options dropped, the request's identifier, sequence number
//!   and data copied intact), its ICMP checksum computed here and its IPv4
//!   one by `crate::csum` on the way out through `Port::build_ip`, the
//!   path every packet the core crafts takes (next hop, ARP, TX batch).
//! - **Rate limit** ([`RateLimit`]): one token bucket per core, as Linux's
//!   `icmp_ratelimit` (there per destination): a message costs
//!   `icmp_ratelimit_ms` of credit, credit grows with time up to
//!   `icmp_ratelimit_burst` messages. It applies to the types in
//!   `icmp_ratemask`; the default (Linux's 0x1818) leaves echo replies
//!   unlimited, as Linux does: a ping answered at any rate costs no more
//!   than the request did, and an operator's `ping -f` then measures the
//!   stack, not a limit.

use std::net::{Ipv4Addr, SocketAddrV4};

use ixtcp_driver::mempool::PacketBuf;

use crate::core::StackCore;
use crate::csum;
use crate::ether::{self, IPPROTO_ICMP, IPV4_HEADER_LEN, Ipv4Packet};
use crate::io::PacketIo;

/// ICMP message types the stack sends or reads.
pub(crate) mod kind {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
}

/// Destination unreachable code: port unreachable.
pub(crate) const CODE_PORT_UNREACHABLE: u8 = 3;

/// Destination unreachable code: fragmentation needed and DF set.
const CODE_FRAG_NEEDED: u8 = 4;

/// Destination unreachable codes that are hard errors for a connection
/// (RFC 1122 4.2.3.9: protocol and port unreachable; and the
/// administrative prohibitions of RFC 1812, as Linux treats them):
/// protocol (2), port (3), network and host prohibited (9, 10),
/// communication prohibited (13).
const HARD_CODES: [u8; 5] = [2, 3, 9, 10, 13];

/// Length of the ICMP header (type, code, checksum, four more bytes).
pub(crate) const ICMP_HEADER_LEN: usize = 8;

/// A token bucket measured in time, as Linux's `xrlim_allow`: credit (ms)
/// grows with the clock up to `burst` messages' worth; a message costs
/// `interval_ms`. It starts full.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    interval_ms: u64,
    cap_ms: u64,
    credit_ms: u64,
    last_ms: u64,
}

impl RateLimit {
    /// A full bucket at time `now_ms`; `interval_ms == 0` never limits.
    pub fn new(interval_ms: u64, burst: u32, now_ms: u64) -> RateLimit {
        let cap_ms = interval_ms.saturating_mul(u64::from(burst));
        RateLimit { interval_ms, cap_ms, credit_ms: cap_ms, last_ms: now_ms }
    }

    /// Whether a message may go at `now_ms` (and takes its token if so).
    pub fn allow(&mut self, now_ms: u64) -> bool {
        if self.interval_ms == 0 {
            return true;
        }
        let gained = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.credit_ms = self.credit_ms.saturating_add(gained).min(self.cap_ms);
        if self.credit_ms >= self.interval_ms {
            self.credit_ms -= self.interval_ms;
            true
        } else {
            false
        }
    }
}

/// A core's ICMP state: the rate limit, and the IPv4 identification of
/// the packets it builds (RFC 6864: any value for these, a counter here).
#[derive(Debug, Clone)]
pub(crate) struct Icmp {
    pub limit: RateLimit,
    pub ident: u16,
}

impl Icmp {
    pub fn new(interval_ms: u64, burst: u32, now_ms: u64, ident: u16) -> Icmp {
        Icmp { limit: RateLimit::new(interval_ms, burst, now_ms), ident }
    }

    pub fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }
}

impl<P: PacketIo> StackCore<P> {
    /// True if `src` may be answered: not a special address (see
    /// `ether::is_special`) and not our own.
    pub(crate) fn answerable(&self, src: Ipv4Addr) -> bool {
        src != self.ip && !ether::is_special(src, self.ip, self.cfg.netmask())
    }

    /// Whether an ICMP message of `kind` may go now (the rate limit, for
    /// the types in `icmp_ratemask`); counts the ones it holds back.
    fn icmp_allowed(&mut self, kind: u8) -> bool {
        let limited = kind < 32 && self.cfg.icmp_ratemask & (1 << kind) != 0;
        if !limited || self.icmp.limit.allow(self.now_ms()) {
            return true;
        }
        self.port.stats.icmp_rate_limited += 1;
        false
    }

    /// An ICMP message in a checked, unfragmented IPv4 packet (`buf`, IP
    /// header first); `link_multicast`: the frame went to a broadcast or
    /// multicast MAC.
    pub(crate) fn ingress_icmp(&mut self, buf: PacketBuf, link_multicast: bool) {
        let Ok(p) = Ipv4Packet::new_checked(buf.data()) else {
            self.port.stats.drop_malformed += 1;
            return;
        };
        if p.dst() != self.ip {
            if ether::is_special(p.dst(), self.ip, self.cfg.netmask()) {
                self.port.stats.drop_icmp_broadcast += 1;
            } else {
                self.port.stats.drop_not_ours += 1;
            }
            return;
        }
        if !csum::check_ip_header(buf.data(), buf.rx_checksum(), self.port.csum_offload, &mut self.port.stats) {
            return;
        }
        let msg = p.payload();
        if msg.len() < ICMP_HEADER_LEN {
            self.port.stats.drop_icmp_truncated += 1;
            return;
        }
        if !csum::icmp_ok(msg) {
            self.port.stats.drop_icmp_checksum += 1;
            return;
        }
        match msg[0] {
            kind::ECHO_REQUEST => {
                self.port.stats.icmp_echo_requests += 1;
                if link_multicast {
                    self.port.stats.drop_icmp_broadcast += 1;
                    return;
                }
                if !self.answerable(p.src()) {
                    self.port.stats.drop_bad_source += 1;
                    return;
                }
                if !self.icmp_allowed(kind::ECHO_REPLY) {
                    return;
                }
                let (src, tos) = (p.src(), buf.data()[1]);
                self.send_echo_reply(src, tos, msg);
            }
            kind::DEST_UNREACHABLE => {
                let next_hop_mtu = u16::from_be_bytes([msg[6], msg[7]]);
                self.unreachable_in(msg[1], next_hop_mtu, &msg[ICMP_HEADER_LEN..]);
            }
            _ => self.port.stats.icmp_ignored += 1,
        }
    }

    /// Destination unreachable with `code` about `quoted` (the IP header
    /// and first bytes of a packet we sent); `next_hop_mtu`: bytes 6..8 of
    /// the ICMP header (RFC 1191, for fragmentation needed). For a TCP
    /// connection whose quoted sequence number is in SND.UNA..SND.MAX
    /// (RFC 5927 4.1: an attacker off the path must guess it): a hard
    /// error in SYN-SENT fails the connect (`CloseReason::Refused`, as
    /// Linux's ECONNREFUSED for port unreachable); fragmentation needed
    /// lowers the path MTU (`crate::pmtu`); anything else is counted only.
    fn unreachable_in(&mut self, code: u8, next_hop_mtu: u16, quoted: &[u8]) {
        // The quoted header may be cut short of its total length: read it
        // by hand, needing only the header and the first 8 TCP bytes.
        let ihl = usize::from(quoted.first().map_or(0, |b| b & 0x0f)) * 4;
        if quoted.len() < 20 || quoted[0] >> 4 != 4 || ihl < 20 || quoted.len() < ihl + 8 {
            self.port.stats.drop_icmp_truncated += 1;
            return;
        }
        let src = Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]);
        if src != self.ip || (quoted[9] != ether::IPPROTO_TCP && quoted[9] != ether::IPPROTO_UDP) {
            self.port.stats.icmp_ignored += 1;
            return;
        }
        let t = &quoted[ihl..];
        if quoted[9] == ether::IPPROTO_UDP {
            let to = SocketAddrV4::new(
                Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]),
                u16::from_be_bytes([t[2], t[3]]),
            );
            match self.udp.record_error(u16::from_be_bytes([t[0], t[1]]), to, code) {
                Some(id) => {
                    self.port.stats.icmp_unreachable_udp += 1;
                    self.push_event(crate::conn::Event::Udp { id });
                }
                None => self.port.stats.icmp_errors_no_conn += 1,
            }
            return;
        }
        let key = crate::flow::FlowKey {
            remote_ip: Ipv4Addr::new(quoted[16], quoted[17], quoted[18], quoted[19]),
            remote_port: u16::from_be_bytes([t[2], t[3]]),
            local_port: u16::from_be_bytes([t[0], t[1]]),
        };
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let Some(idx) = self.flows.get(&key).map(|i| i as usize) else {
            self.port.stats.icmp_errors_no_conn += 1;
            return;
        };
        let c = &mut self.conns[idx];
        let in_window = c.unacked().is_some_and(|(lo, hi)| seq.wrapping_sub(lo) < hi.wrapping_sub(lo));
        if !in_window {
            self.port.stats.icmp_errors_out_of_window += 1;
            return;
        }
        self.port.stats.icmp_unreachable_tcp += 1;
        if code == CODE_FRAG_NEEDED {
            self.port.stats.icmp_frag_needed += 1;
            self.frag_needed(idx, next_hop_mtu, u16::from_be_bytes([quoted[2], quoted[3]]));
            return;
        }
        if HARD_CODES.contains(&code) && c.sock().state() == smoltcp::socket::tcp::State::SynSent {
            // Closed without a segment (no RST for a SYN nobody took),
            // then reported as a refused connect by `after`.
            c.reason = Some(crate::conn::CloseReason::Refused);
            c.hard_reset();
            self.port.stats.conns_refused += 1;
            self.after(idx, crate::core::Cause::Ingress);
        }
    }

    /// Echoes request `msg` (its ICMP message) back to `to`.
    fn send_echo_reply(&mut self, to: Ipv4Addr, tos: u8, msg: &[u8]) {
        let len = IPV4_HEADER_LEN + msg.len();
        let (ip, ident) = (self.ip, self.icmp.next_ident());
        self.port.build_ip(len, |b| {
            // At most the request's length: fits its 16-bit total.
            ether::write_ipv4_header(b, len as u16, ident, IPPROTO_ICMP, ip, to);
            b[1] = tos;
            let reply = &mut b[IPV4_HEADER_LEN..];
            reply.copy_from_slice(msg);
            reply[0] = kind::ECHO_REPLY;
            reply[1] = 0;
            csum::fill_icmp(reply);
        });
        self.port.stats.icmp_echo_replies += 1;
    }

    /// Sends destination unreachable with `code` about the datagram `ip`
    /// (a checked IPv4 packet for us, from an answerable source, not a
    /// fragment, not ICMP): its IP header and first 8 payload bytes
    /// (RFC 792, RFC 1122 3.2.2), within the rate limit.
    pub(crate) fn send_unreachable(&mut self, ip: &[u8], code: u8) {
        let Ok(p) = Ipv4Packet::new_checked(ip) else { return };
        if !self.icmp_allowed(kind::DEST_UNREACHABLE) {
            return;
        }
        let quoted = &ip[..(p.header_len() + 8).min(ip.len()).min(usize::from(u16::from_be_bytes([ip[2], ip[3]])))];
        let len = IPV4_HEADER_LEN + ICMP_HEADER_LEN + quoted.len();
        let (me, to, ident) = (self.ip, p.src(), self.icmp.next_ident());
        self.port.build_ip(len, |b| {
            // At most 20 + 8 + 60 + 8.
            ether::write_ipv4_header(b, len as u16, ident, IPPROTO_ICMP, me, to);
            let m = &mut b[IPV4_HEADER_LEN..];
            m[..ICMP_HEADER_LEN].copy_from_slice(&[kind::DEST_UNREACHABLE, code, 0, 0, 0, 0, 0, 0]);
            m[ICMP_HEADER_LEN..].copy_from_slice(quoted);
            csum::fill_icmp(m);
        });
        self.port.stats.icmp_port_unreachable_sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_starts_full_empties_and_refills_with_time() {
        let mut r = RateLimit::new(1_000, 6, 5_000);
        assert!((0..6).all(|_| r.allow(5_000)), "the burst goes at once");
        assert!(!r.allow(5_000));
        assert!(!r.allow(5_999));
        assert!(r.allow(6_000), "one token a second");
        assert!(!r.allow(6_500));
        // A long quiet time refills no more than the burst.
        assert_eq!((0..10).filter(|_| r.allow(100_000)).count(), 6);
        // A clock read out of order gives nothing.
        assert!(!r.allow(50_000));
        let mut off = RateLimit::new(0, 1, 0);
        assert!((0..1_000).all(|_| off.allow(0)));
    }
}
