//! Ethernet II, ARP (RFC 826) and the IPv4/TCP header fields the core
//! needs, read and written in place on packet buffers.
//!
//! smoltcp runs with `Medium::Ip`, so everything below the IP header is
//! ours, and the core must look at a segment before smoltcp does (to pick
//! its socket set), without copying or allocating. As in smoltcp's `wire`
//! module, a view's `new_checked` constructor ([`EthernetFrame`],
//! [`Ipv4Packet`], [`TcpSegment`]; [`Arp::parse`] for the ARP
//! representation) checks every length once, after which its accessors
//! cannot go out of bounds. A TCP/IPv4 segment's fields are read once into
//! a [`TcpHeader`], which travels with the buffer through the core.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Length of an Ethernet II header (no VLAN tag).
pub const ETH_HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Length of an ARP packet for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Length of the IPv4 header the stack writes (no options).
pub const IPV4_HEADER_LEN: usize = 20;
/// TTL of the packets the stack builds itself (Linux's default).
pub const DEFAULT_TTL: u8 = 64;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Acknowledgement field significant.
    pub const ACK: u8 = 0x10;
}

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for a unicast address (group bit clear) that is not all zeros.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }

    /// The address packed into the low 48 bits of a `u64` (byte 0 most significant).
    pub fn to_u64(self) -> u64 {
        self.0.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// Inverse of [`to_u64`](Self::to_u64); bits above 48 are ignored.
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The error of parsing a MAC address string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacParseError(pub String);

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a MAC address (expected six hex bytes like 02:00:00:00:00:01)", self.0)
    }
}

impl std::error::Error for MacParseError {}

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<MacAddr, MacParseError> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// Field offsets, in bytes from the start of each header.
mod field {
    use std::ops::Range;

    /// Ethernet II.
    pub const ETH_DST: Range<usize> = 0..6;
    pub const ETH_SRC: Range<usize> = 6..12;
    pub const ETH_TYPE: usize = 12;
    /// ARP for Ethernet/IPv4 (RFC 826).
    pub const ARP_HTYPE: usize = 0;
    pub const ARP_PTYPE: usize = 2;
    pub const ARP_HLEN: usize = 4;
    pub const ARP_PLEN: usize = 5;
    pub const ARP_OP: usize = 6;
    pub const ARP_SHA: Range<usize> = 8..14;
    pub const ARP_SPA: usize = 14;
    pub const ARP_THA: Range<usize> = 18..24;
    pub const ARP_TPA: usize = 24;
    /// IPv4 (RFC 791).
    pub const IP_TOTAL_LEN: usize = 2;
    pub const IP_FRAG: usize = 6;
    pub const IP_PROTO: usize = 9;
    pub const IP_SRC: usize = 12;
    pub const IP_DST: usize = 16;
    /// TCP (RFC 9293 3.1).
    pub const TCP_SRC_PORT: usize = 0;
    pub const TCP_DST_PORT: usize = 2;
    pub const TCP_SEQ: usize = 4;
    pub const TCP_ACK: usize = 8;
    pub const TCP_DOFF: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_WINDOW: usize = 14;
    pub const TCP_CHECKSUM: usize = 16;
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn mac_at(b: &[u8], r: std::ops::Range<usize>) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[r]);
    MacAddr(m)
}

/// Why a frame or packet was refused by a `new_checked` constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its headers say.
    Truncated,
    /// Not IPv4, a header length below 20, or (ARP) not Ethernet/IPv4 or
    /// not a request or reply.
    BadHeader,
    /// A fragment (we do not reassemble; TCP with DF never fragments).
    Fragment,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "shorter than its headers say",
            Malformed::BadHeader => "bad header",
            Malformed::Fragment => "an IP fragment",
        })
    }
}

impl std::error::Error for Malformed {}

/// An Ethernet II frame whose header is known to be there.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<'a> {
    b: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// A view of `frame`; [`Malformed::Truncated`] if it is shorter than a
    /// header.
    pub fn new_checked(frame: &'a [u8]) -> Result<EthernetFrame<'a>, Malformed> {
        if frame.len() < ETH_HEADER_LEN {
            return Err(Malformed::Truncated);
        }
        Ok(EthernetFrame { b: frame })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        mac_at(self.b, field::ETH_DST)
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        mac_at(self.b, field::ETH_SRC)
    }

    /// The EtherType.
    pub fn ethertype(&self) -> u16 {
        be16(self.b, field::ETH_TYPE)
    }

    /// What follows the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.b[ETH_HEADER_LEN..]
    }
}

/// The EtherType of a frame, or `None` if it is shorter than a header.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    EthernetFrame::new_checked(frame).ok().map(|f| f.ethertype())
}

/// Writes an Ethernet II header.
pub fn write_eth_header(h: &mut [u8; ETH_HEADER_LEN], dst: MacAddr, src: MacAddr, ethertype: u16) {
    h[field::ETH_DST].copy_from_slice(&dst.0);
    h[field::ETH_SRC].copy_from_slice(&src.0);
    h[field::ETH_TYPE..].copy_from_slice(&ethertype.to_be_bytes());
}

/// ARP operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`?
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (ignored in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// Parses the ARP payload of a frame (after the Ethernet header):
    /// [`Malformed::Truncated`] if shorter than 28 bytes,
    /// [`Malformed::BadHeader`] if it is not Ethernet/IPv4 ARP or not a
    /// request or reply.
    pub fn parse(p: &[u8]) -> Result<Arp, Malformed> {
        if p.len() < ARP_LEN {
            return Err(Malformed::Truncated);
        }
        if be16(p, field::ARP_HTYPE) != 1
            || be16(p, field::ARP_PTYPE) != ETHERTYPE_IPV4
            || p[field::ARP_HLEN] != 6
            || p[field::ARP_PLEN] != 4
        {
            return Err(Malformed::BadHeader);
        }
        let op = match be16(p, field::ARP_OP) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return Err(Malformed::BadHeader),
        };
        Ok(Arp {
            op,
            sender_mac: mac_at(p, field::ARP_SHA),
            sender_ip: ipv4_at(p, field::ARP_SPA),
            target_mac: mac_at(p, field::ARP_THA),
            target_ip: ipv4_at(p, field::ARP_TPA),
        })
    }

    /// Writes the 28-byte ARP packet.
    pub fn emit(&self, p: &mut [u8; ARP_LEN]) {
        p[field::ARP_HTYPE..field::ARP_PTYPE].copy_from_slice(&1u16.to_be_bytes());
        p[field::ARP_PTYPE..field::ARP_HLEN].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        p[field::ARP_HLEN] = 6;
        p[field::ARP_PLEN] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        p[field::ARP_OP..field::ARP_SHA.start].copy_from_slice(&op.to_be_bytes());
        p[field::ARP_SHA].copy_from_slice(&self.sender_mac.0);
        p[field::ARP_SPA..field::ARP_THA.start].copy_from_slice(&self.sender_ip.octets());
        p[field::ARP_THA].copy_from_slice(&self.target_mac.0);
        p[field::ARP_TPA..].copy_from_slice(&self.target_ip.octets());
    }

    /// Writes a whole frame (Ethernet header + ARP) at the start of
    /// `frame` and returns its length (42), or `None` if `frame` is
    /// shorter than that. Requests go to the broadcast address, replies to
    /// the target.
    pub fn emit_frame(&self, frame: &mut [u8]) -> Option<usize> {
        let (eth, rest) = frame.split_first_chunk_mut::<ETH_HEADER_LEN>()?;
        let arp = rest.first_chunk_mut::<ARP_LEN>()?;
        let dst = match self.op {
            ArpOp::Request => MacAddr::BROADCAST,
            ArpOp::Reply => self.target_mac,
        };
        write_eth_header(eth, dst, self.sender_mac, ETHERTYPE_ARP);
        self.emit(arp);
        Some(ETH_HEADER_LEN + ARP_LEN)
    }
}

/// An IPv4 packet whose header and total length are known to be there;
/// the view ends at the total length (any Ethernet padding cut off).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    b: &'a [u8],
    ihl: usize,
}

impl<'a> Ipv4Packet<'a> {
    /// A view of `ip`: [`Malformed::Truncated`] if shorter than 20 bytes
    /// or than its total length (or the total length shorter than the
    /// header), [`Malformed::BadHeader`] if not version 4 or a header
    /// length below 20. Fragments are accepted (see
    /// [`is_fragment`](Self::is_fragment)).
    pub fn new_checked(ip: &'a [u8]) -> Result<Ipv4Packet<'a>, Malformed> {
        if ip.len() < 20 {
            return Err(Malformed::Truncated);
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 {
            return Err(Malformed::BadHeader);
        }
        let total = usize::from(be16(ip, field::IP_TOTAL_LEN));
        if total < ihl || ip.len() < total {
            return Err(Malformed::Truncated);
        }
        Ok(Ipv4Packet { b: &ip[..total], ihl })
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        self.ihl
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        ipv4_at(self.b, field::IP_SRC)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        ipv4_at(self.b, field::IP_DST)
    }

    /// IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.b[field::IP_PROTO]
    }

    /// More fragments set or a fragment offset other than zero.
    pub fn is_fragment(&self) -> bool {
        be16(self.b, field::IP_FRAG) & 0x3fff != 0
    }

    /// What follows the header, up to the total length.
    pub fn payload(&self) -> &'a [u8] {
        &self.b[self.ihl..]
    }
}

/// A TCP segment (header and payload) whose header, options included, is
/// known to be there.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    b: &'a [u8],
    doff: usize,
}

impl<'a> TcpSegment<'a> {
    /// A view of `tcp` (an IPv4 packet's payload):
    /// [`Malformed::Truncated`] if shorter than 20 bytes or than its data
    /// offset, [`Malformed::BadHeader`] if the data offset is below 20.
    pub fn new_checked(tcp: &'a [u8]) -> Result<TcpSegment<'a>, Malformed> {
        if tcp.len() < 20 {
            return Err(Malformed::Truncated);
        }
        let doff = usize::from(tcp[field::TCP_DOFF] >> 4) * 4;
        if doff < 20 {
            return Err(Malformed::BadHeader);
        }
        if tcp.len() < doff {
            return Err(Malformed::Truncated);
        }
        Ok(TcpSegment { b: tcp, doff })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b, field::TCP_SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b, field::TCP_DST_PORT)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.b, field::TCP_SEQ)
    }

    /// Acknowledgement number (meaningful with ACK set).
    pub fn ack(&self) -> u32 {
        be32(self.b, field::TCP_ACK)
    }

    /// Flag bits, see [`tcp_flags`].
    pub fn flags(&self) -> u8 {
        self.b[field::TCP_FLAGS]
    }

    /// The window field (unscaled).
    pub fn window(&self) -> u16 {
        be16(self.b, field::TCP_WINDOW)
    }

    /// Payload bytes after the header and options.
    pub fn payload_len(&self) -> usize {
        self.b.len() - self.doff
    }
}

/// What the demultiplexer learns from an IPv4 packet's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Class {
    /// A TCP segment.
    Tcp(TcpHeader),
    /// Some other protocol.
    Other {
        /// Destination address.
        dst: Ipv4Addr,
        /// IP protocol number.
        proto: u8,
    },
}

/// A TCP/IPv4 segment's header fields, read once (by
/// [`TcpHeader::parse`]) and passed along with the packet, so nothing
/// downstream parses the headers again. Checksums are not verified here:
/// the core checks them (`crate::csum`) right after classifying, before
/// anything else reads the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    /// IP source (the remote end, for a received segment).
    pub src: Ipv4Addr,
    /// IP destination (us, for a received segment).
    pub dst: Ipv4Addr,
    /// TCP source port.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK set).
    pub ack: u32,
    /// Flag bits, see [`tcp_flags`].
    pub flags: u8,
    /// The window field (unscaled).
    pub window: u16,
    /// Payload length.
    pub payload_len: u16,
    /// IPv4 header length: where the TCP header starts.
    pub ip_header_len: u8,
}

impl TcpHeader {
    /// Reads the headers of a TCP/IPv4 packet (starting at the IP header);
    /// fragments are not refused here (see [`classify_ipv4`]).
    /// [`Malformed::BadHeader`] for another protocol.
    pub fn parse(ip: &[u8]) -> Result<TcpHeader, Malformed> {
        let p = Ipv4Packet::new_checked(ip)?;
        if p.protocol() != IPPROTO_TCP {
            return Err(Malformed::BadHeader);
        }
        TcpHeader::from_ipv4(&p)
    }

    /// Reads the TCP headers of the checked IPv4 packet `p` (whose
    /// protocol the caller found to be TCP).
    pub fn from_ipv4(p: &Ipv4Packet<'_>) -> Result<TcpHeader, Malformed> {
        let t = TcpSegment::new_checked(p.payload())?;
        Ok(TcpHeader {
            src: p.src(),
            dst: p.dst(),
            src_port: t.src_port(),
            dst_port: t.dst_port(),
            seq: t.seq(),
            ack: t.ack(),
            flags: t.flags(),
            window: t.window(),
            // At most the IPv4 total length, a 16-bit field.
            payload_len: t.payload_len() as u16,
            // At most 60.
            ip_header_len: p.header_len() as u8,
        })
    }

    /// True for a SYN without ACK (a connection request).
    pub fn is_syn_only(&self) -> bool {
        self.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
    }

    /// Whether all of `bits` are set.
    pub fn has(&self, bits: u8) -> bool {
        self.flags & bits == bits
    }

    /// The sequence space the segment occupies: payload plus one each for
    /// SYN and FIN; zero for an RST.
    pub fn seq_len(&self) -> u32 {
        if self.has(tcp_flags::RST) {
            return 0;
        }
        u32::from(self.payload_len) + u32::from(self.has(tcp_flags::SYN)) + u32::from(self.has(tcp_flags::FIN))
    }
}

/// Classifies an IPv4 packet (starting at the IP header), refusing
/// fragments.
pub fn classify_ipv4(ip: &[u8]) -> Result<Ipv4Class, Malformed> {
    let p = Ipv4Packet::new_checked(ip)?;
    if p.is_fragment() {
        return Err(Malformed::Fragment);
    }
    if p.protocol() != IPPROTO_TCP {
        return Ok(Ipv4Class::Other { dst: p.dst(), proto: p.protocol() });
    }
    Ok(Ipv4Class::Tcp(TcpHeader::from_ipv4(&p)?))
}

/// Writes a 20-byte IPv4 header (no options, not a fragment, TTL
/// [`DEFAULT_TTL`]) for a packet of `total` bytes into `b`; the header
/// checksum is left zero for `crate::csum` to settle on the way out.
pub fn write_ipv4_header(b: &mut [u8], total: u16, ident: u16, proto: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    b[0] = 0x45;
    b[1] = 0;
    b[2..4].copy_from_slice(&total.to_be_bytes());
    b[4..6].copy_from_slice(&ident.to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    b[8] = DEFAULT_TTL;
    b[field::IP_PROTO] = proto;
    b[10..12].copy_from_slice(&[0, 0]);
    b[field::IP_SRC..field::IP_SRC + 4].copy_from_slice(&src.octets());
    b[field::IP_DST..field::IP_DST + 4].copy_from_slice(&dst.octets());
}

/// True for an address no host may send from and no ICMP error or reply
/// may go to (RFC 1122 3.2.1.3, 3.2.2): unspecified, limited broadcast,
/// multicast, loopback, or the directed broadcast of the subnet `ours/mask`.
pub fn is_special(addr: Ipv4Addr, ours: Ipv4Addr, mask: Ipv4Addr) -> bool {
    let (a, m) = (u32::from(addr), u32::from(mask));
    let directed = m != u32::MAX && m != u32::MAX << 1 && a & m == u32::from(ours) & m && a | m == u32::MAX;
    addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() || directed
}

/// Which 32-bit TCP header field [`tcp_add`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpField {
    /// The sequence number.
    Seq,
    /// The acknowledgement number.
    Ack,
}

/// Adds `delta` (mod 2^32) to the sequence or acknowledgement number of
/// the TCP/IPv4 packet `ip`, whose headers `h` were read from it, and
/// adjusts the TCP checksum incrementally (RFC 1624, eqn. 3): a valid
/// checksum stays valid, a bad one stays bad. `h` is updated to match.
/// Does nothing if `ip` is too short for the header `h` describes.
pub fn tcp_add(ip: &mut [u8], h: &mut TcpHeader, which: TcpField, delta: u32) {
    let ihl = usize::from(h.ip_header_len);
    let Some(tcp) = ip.get_mut(ihl..ihl + 20) else { return };
    if delta == 0 {
        return;
    }
    let (at, slot) = match which {
        TcpField::Seq => (field::TCP_SEQ, &mut h.seq),
        TcpField::Ack => (field::TCP_ACK, &mut h.ack),
    };
    let old = be32(tcp, at);
    let new = old.wrapping_add(delta);
    *slot = new;
    tcp[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let ck = field::TCP_CHECKSUM;
    let hc = u32::from(be16(tcp, ck));
    // HC' = ~(~HC + ~m + m'), over the two 16-bit halves of the field.
    let mut sum = u32::from(!(hc as u16));
    sum += u32::from(!((old >> 16) as u16)) + u32::from(!(old as u16));
    sum += (new >> 16) + (new & 0xffff);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    tcp[ck..ck + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_prints_and_packs() {
        let m: MacAddr = "02:1a:2B:3c:4d:5e".parse().unwrap();
        assert_eq!(m.to_string(), "02:1a:2b:3c:4d:5e");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!(m.is_unicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        for bad in ["", "02:00", "02:00:00:00:00:00:00", "zz:00:00:00:00:00", "2:00:00:00:00:00"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arp_round_trips_through_a_frame() {
        let a = Arp {
            op: ArpOp::Request,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: MacAddr::default(),
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut f = [0u8; 60];
        let n = a.emit_frame(&mut f).unwrap();
        assert_eq!(n, 42);
        assert_eq!(ethertype(&f), Some(ETHERTYPE_ARP));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(Arp::parse(&f[ETH_HEADER_LEN..n]), Ok(a));
        // A hardware type other than Ethernet is not ours.
        f[ETH_HEADER_LEN + 1] = 6;
        assert_eq!(Arp::parse(&f[ETH_HEADER_LEN..n]), Err(Malformed::BadHeader));
    }

    #[test]
    fn classify_reads_tcp_ports_and_refuses_fragments() {
        let mut ip = [0u8; 40];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
        ip[20..22].copy_from_slice(&5555u16.to_be_bytes());
        ip[22..24].copy_from_slice(&80u16.to_be_bytes());
        ip[32] = 0x50; // data offset: 5 words
        ip[33] = tcp_flags::SYN;
        let Ok(Ipv4Class::Tcp(h)) = classify_ipv4(&ip) else { panic!("not tcp") };
        assert_eq!((h.src_port, h.dst_port), (5555, 80));
        assert!(h.is_syn_only());
        assert_eq!(classify_ipv4(&ip[..30]), Err(Malformed::Truncated));
        ip[6] = 0x20; // more fragments
        assert_eq!(classify_ipv4(&ip), Err(Malformed::Fragment));
        ip[6] = 0x40; // don't fragment is fine
        assert!(classify_ipv4(&ip).is_ok());
        ip[0] = 0x65;
        assert_eq!(classify_ipv4(&ip), Err(Malformed::BadHeader));
    }

    #[test]
    fn tcp_add_keeps_a_valid_checksum_valid() {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{
            IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
        };
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        for (seq, ack, delta) in [(1u32, 2u32, 3u32), (0xffff_fff0, 7, 0x20), (0x1234_5678, 0xdead_beef, 0xfedc_ba98)] {
            let payload = [0x5au8; 33];
            let tcp = TcpRepr {
                src_port: 1,
                dst_port: 2,
                control: TcpControl::Psh,
                seq_number: TcpSeqNumber(seq as i32),
                ack_number: Some(TcpSeqNumber(ack as i32)),
                window_len: 100,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload: &payload,
            };
            let ip = Ipv4Repr {
                src_addr: a,
                dst_addr: b,
                next_header: IpProtocol::Tcp,
                payload_len: tcp.buffer_len(),
                hop_limit: 64,
            };
            let caps = ChecksumCapabilities::default();
            let mut p = vec![0u8; 20 + tcp.buffer_len()];
            let mut pk = Ipv4Packet::new_unchecked(&mut p[..]);
            ip.emit(&mut pk, &caps);
            tcp.emit(&mut TcpPacket::new_unchecked(pk.payload_mut()), &IpAddress::Ipv4(a), &IpAddress::Ipv4(b), &caps);
            let mut h = TcpHeader::parse(&p).unwrap();
            tcp_add(&mut p, &mut h, TcpField::Seq, delta);
            tcp_add(&mut p, &mut h, TcpField::Ack, delta.wrapping_neg());
            assert_eq!(TcpHeader::parse(&p), Ok(h), "the header read once follows the rewrite");
            let t = TcpPacket::new_checked(&p[20..]).unwrap();
            assert!(t.verify_checksum(&IpAddress::Ipv4(a), &IpAddress::Ipv4(b)), "{seq:#x} {delta:#x}");
            assert_eq!(t.seq_number().0 as u32, seq.wrapping_add(delta));
            assert_eq!(t.ack_number().0 as u32, ack.wrapping_sub(delta));
            assert_eq!(TcpHeader::parse(&p).map(|h| h.flags), Ok(tcp_flags::ACK | 0x08));
        }
    }

    #[test]
    fn views_refuse_truncated_input() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13]).err(), Some(Malformed::Truncated));
        let mut f = [0u8; 14];
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        let e = EthernetFrame::new_checked(&f).unwrap();
        assert_eq!((e.src(), e.ethertype(), e.payload().len()), (MacAddr([2, 0, 0, 0, 0, 9]), ETHERTYPE_ARP, 0));
        assert_eq!(ethertype(&f[..13]), None);
        assert_eq!(Arp::parse(&[0u8; ARP_LEN - 1]), Err(Malformed::Truncated));
        let a = Arp {
            op: ArpOp::Reply,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        };
        assert_eq!(a.emit_frame(&mut [0u8; 41]), None, "a frame too short to hold it");
        // IPv4: shorter than a header, than the total length, or a total
        // length shorter than the header.
        let mut ip = [0u8; 60];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&60u16.to_be_bytes());
        ip[9] = IPPROTO_TCP;
        ip[32] = 0x80; // TCP data offset 32: 12 bytes of options
        assert!(TcpHeader::parse(&ip).is_ok());
        assert_eq!(Ipv4Packet::new_checked(&ip[..19]).err(), Some(Malformed::Truncated));
        assert_eq!(Ipv4Packet::new_checked(&ip[..59]).err(), Some(Malformed::Truncated));
        ip[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&ip).err(), Some(Malformed::Truncated));
        // TCP: shorter than 20 bytes, or than its data offset; an offset
        // below 20 is no header at all.
        ip[2..4].copy_from_slice(&39u16.to_be_bytes());
        assert_eq!(TcpHeader::parse(&ip), Err(Malformed::Truncated));
        ip[2..4].copy_from_slice(&51u16.to_be_bytes());
        assert_eq!(TcpHeader::parse(&ip), Err(Malformed::Truncated));
        ip[2..4].copy_from_slice(&52u16.to_be_bytes());
        assert_eq!(TcpHeader::parse(&ip).map(|h| h.payload_len), Ok(0));
        ip[32] = 0x40;
        assert_eq!(TcpHeader::parse(&ip), Err(Malformed::BadHeader));
        assert_eq!(classify_ipv4(&ip), Err(Malformed::BadHeader));
        // Another protocol is not TCP, whatever follows.
        ip[9] = 17;
        assert_eq!(TcpHeader::parse(&ip), Err(Malformed::BadHeader));
        assert!(matches!(classify_ipv4(&ip), Ok(Ipv4Class::Other { proto: 17, .. })));
        // The header read once: sequence space counts SYN and FIN, not RST.
        ip[9] = IPPROTO_TCP;
        ip[32] = 0x50;
        ip[33] = tcp_flags::SYN | tcp_flags::FIN;
        assert_eq!(TcpHeader::parse(&ip).map(|h| (h.payload_len, h.seq_len())), Ok((12, 14)));
        ip[33] = tcp_flags::RST | tcp_flags::ACK;
        assert_eq!(TcpHeader::parse(&ip).map(|h| h.seq_len()), Ok(0));
    }

    #[test]
    fn tcp_add_leaves_a_short_packet_alone() {
        let mut h = TcpHeader::parse(&{
            let mut ip = [0u8; 40];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            ip[9] = IPPROTO_TCP;
            ip[32] = 0x50;
            ip
        })
        .unwrap();
        let mut short = [0u8; 39];
        tcp_add(&mut short, &mut h, TcpField::Seq, 5);
        assert_eq!((short, h.seq), ([0u8; 39], 0));
    }
}
