//! Ethernet II, ARP (RFC 826) and the few IPv4/TCP header fields the flow
//! demultiplexer needs, read and written in place on packet buffers.
//!
//! smoltcp runs with `Medium::Ip`, so everything below the IP header is
//! ours. These are plain byte-offset accessors: the demultiplexer must look
//! at a frame before smoltcp does (to pick the socket set), and it must do
//! so without copying or allocating.

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

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The EtherType of a frame, or `None` if it is shorter than a header.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= ETH_HEADER_LEN).then(|| be16(frame, 12))
}

/// Source MAC of a frame (caller checked the length).
pub fn eth_src(frame: &[u8]) -> MacAddr {
    MacAddr([frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]])
}

/// Writes an Ethernet II header into the first 14 bytes of `buf`.
pub fn write_eth_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
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
    /// Parses the ARP payload of a frame (after the Ethernet header); `None`
    /// if it is not Ethernet/IPv4 ARP or not a request or reply.
    pub fn parse(p: &[u8]) -> Option<Arp> {
        if p.len() < ARP_LEN || be16(p, 0) != 1 || be16(p, 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
            return None;
        }
        let op = match be16(p, 6) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        Some(Arp {
            op,
            sender_mac: MacAddr([p[8], p[9], p[10], p[11], p[12], p[13]]),
            sender_ip: ipv4_at(p, 14),
            target_mac: MacAddr([p[18], p[19], p[20], p[21], p[22], p[23]]),
            target_ip: ipv4_at(p, 24),
        })
    }

    /// Writes the 28-byte ARP packet into `p`.
    pub fn emit(&self, p: &mut [u8]) {
        p[0..2].copy_from_slice(&1u16.to_be_bytes());
        p[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        p[4] = 6;
        p[5] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        p[6..8].copy_from_slice(&op.to_be_bytes());
        p[8..14].copy_from_slice(&self.sender_mac.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_mac.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
    }

    /// Writes a whole frame (Ethernet header + ARP) into `frame`, which must
    /// hold at least 42 bytes; returns the frame length. Requests go to the
    /// broadcast address, replies to the target.
    pub fn emit_frame(&self, frame: &mut [u8]) -> usize {
        let dst = match self.op {
            ArpOp::Request => MacAddr::BROADCAST,
            ArpOp::Reply => self.target_mac,
        };
        write_eth_header(frame, dst, self.sender_mac, ETHERTYPE_ARP);
        self.emit(&mut frame[ETH_HEADER_LEN..]);
        ETH_HEADER_LEN + ARP_LEN
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

/// The TCP fields used for demultiplexing and TIME_WAIT replies. Checksums
/// are not verified here: the core checks them (`crate::csum`) right after
/// classifying, before anything else reads the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    /// IP source (the remote end).
    pub src: Ipv4Addr,
    /// IP destination (us).
    pub dst: Ipv4Addr,
    /// TCP source port.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// Flag bits, see [`tcp_flags`].
    pub flags: u8,
}

impl TcpHeader {
    /// True for a SYN without ACK (a connection request).
    pub fn is_syn_only(&self) -> bool {
        self.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
    }
}

/// Why a packet was not classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its headers say.
    Truncated,
    /// Not IPv4, or a header length below 20.
    BadHeader,
    /// A fragment (we do not reassemble; TCP with DF never fragments).
    Fragment,
}

/// Classifies an IPv4 packet (starting at the IP header).
pub fn classify_ipv4(ip: &[u8]) -> Result<Ipv4Class, Malformed> {
    if ip.len() < 20 {
        return Err(Malformed::Truncated);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Err(Malformed::BadHeader);
    }
    let total = usize::from(be16(ip, 2));
    if total < ihl || ip.len() < total {
        return Err(Malformed::Truncated);
    }
    let frag = be16(ip, 6);
    if frag & 0x3fff != 0 {
        return Err(Malformed::Fragment);
    }
    let (src, dst, proto) = (ipv4_at(ip, 12), ipv4_at(ip, 16), ip[9]);
    if proto != IPPROTO_TCP {
        return Ok(Ipv4Class::Other { dst, proto });
    }
    if total < ihl + 20 {
        return Err(Malformed::Truncated);
    }
    let t = &ip[ihl..];
    Ok(Ipv4Class::Tcp(TcpHeader { src, dst, src_port: be16(t, 0), dst_port: be16(t, 2), flags: t[13] }))
}

/// Reads the TCP sequence and acknowledgement numbers of a classified packet.
pub fn tcp_seq_ack(ip: &[u8]) -> (u32, u32) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    (be32(ip, ihl + 4), be32(ip, ihl + 8))
}

/// The acknowledgement number of a TCP/IPv4 packet with ACK set (no
/// checks beyond lengths: used on packets smoltcp built).
pub fn tcp_ack_of(ip: &[u8]) -> Option<u32> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.len() < ihl + 20 || ip[9] != IPPROTO_TCP || ip[ihl + 13] & tcp_flags::ACK == 0 {
        return None;
    }
    Some(be32(ip, ihl + 8))
}

/// The sequence space of a TCP/IPv4 packet smoltcp built: its sequence
/// number and length counting payload, SYN and FIN (zero for pure ACKs and
/// RSTs). `None` for anything else (no checks beyond lengths).
pub fn tcp_seq_space(ip: &[u8]) -> Option<(u32, u32)> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.len() < ihl + 20 || ip[9] != IPPROTO_TCP {
        return None;
    }
    let flags = ip[ihl + 13];
    if flags & tcp_flags::RST != 0 {
        return Some((be32(ip, ihl + 4), 0));
    }
    let ctl = u32::from(flags & tcp_flags::SYN != 0) + u32::from(flags & tcp_flags::FIN != 0);
    Some((be32(ip, ihl + 4), tcp_payload_len(ip) as u32 + ctl))
}

/// TCP payload length of a classified packet.
pub fn tcp_payload_len(ip: &[u8]) -> usize {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2));
    let doff = usize::from(ip[ihl + 12] >> 4) * 4;
    total.saturating_sub(ihl + doff)
}

/// The TCP flags of a TCP/IPv4 packet (no checks beyond lengths).
pub fn tcp_flags_of(ip: &[u8]) -> Option<u8> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.len() < ihl + 20 || ip[9] != IPPROTO_TCP {
        return None;
    }
    Some(ip[ihl + 13])
}

/// The window field of a classified TCP/IPv4 packet.
pub fn tcp_window_of(ip: &[u8]) -> u16 {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    be16(ip, ihl + 14)
}

/// Which 32-bit TCP header field [`tcp_add`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpField {
    /// The sequence number.
    Seq,
    /// The acknowledgement number.
    Ack,
}

/// Adds `delta` (mod 2^32) to a TCP/IPv4 packet's sequence or
/// acknowledgement number and adjusts the TCP checksum incrementally
/// (RFC 1624, eqn. 3): a valid checksum stays valid, a bad one stays bad.
/// Does nothing to a packet too short to hold a TCP header.
pub fn tcp_add(ip: &mut [u8], field: TcpField, delta: u32) {
    let Some(&b0) = ip.first() else { return };
    let ihl = usize::from(b0 & 0x0f) * 4;
    if ip.len() < ihl + 20 || delta == 0 {
        return;
    }
    let at = ihl + if field == TcpField::Seq { 4 } else { 8 };
    let old = be32(ip, at);
    let new = old.wrapping_add(delta);
    ip[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let ck = ihl + 16;
    let hc = u32::from(be16(ip, ck));
    // HC' = ~(~HC + ~m + m'), over the two 16-bit halves of the field.
    let mut sum = u32::from(!(hc as u16));
    sum += u32::from(!((old >> 16) as u16)) + u32::from(!(old as u16));
    sum += (new >> 16) + (new & 0xffff);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[ck..ck + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The IPv4 destination of an IP packet built by smoltcp (no checks: we
/// built it).
pub fn ipv4_dst(ip: &[u8]) -> Option<Ipv4Addr> {
    (ip.len() >= 20).then(|| ipv4_at(ip, 16))
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
        let n = a.emit_frame(&mut f);
        assert_eq!(n, 42);
        assert_eq!(ethertype(&f), Some(ETHERTYPE_ARP));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(Arp::parse(&f[ETH_HEADER_LEN..n]), Some(a));
        // A hardware type other than Ethernet is not ours.
        f[ETH_HEADER_LEN + 1] = 6;
        assert_eq!(Arp::parse(&f[ETH_HEADER_LEN..n]), None);
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
            tcp_add(&mut p, TcpField::Seq, delta);
            tcp_add(&mut p, TcpField::Ack, delta.wrapping_neg());
            let t = TcpPacket::new_checked(&p[20..]).unwrap();
            assert!(t.verify_checksum(&IpAddress::Ipv4(a), &IpAddress::Ipv4(b)), "{seq:#x} {delta:#x}");
            assert_eq!(t.seq_number().0 as u32, seq.wrapping_add(delta));
            assert_eq!(t.ack_number().0 as u32, ack.wrapping_sub(delta));
            assert_eq!(tcp_flags_of(&p), Some(tcp_flags::ACK | 0x08));
        }
    }
}
