//! Frames for tests, built and read with smoltcp's wire types
//! (`EthernetRepr`, `ArpRepr`, `Ipv4Repr`, `TcpRepr`, `UdpRepr`), so that the
//! checksums and layouts come from code independent of ixtcp's own.
//!
//! Builders return exactly the bytes asked for; [`padded`] brings a frame
//! up to the 60-byte Ethernet minimum, as a NIC would before sending it.
//! Parsers check lengths but not checksums: they read what the code under
//! test sent, whatever it is.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr, checksum,
};

/// A MAC address as six bytes.
pub type Mac = [u8; 6];

/// ff:ff:ff:ff:ff:ff.
pub const BROADCAST: Mac = [0xff; 6];
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IEEE 802 "local experimental" EtherType, for frames only tests use.
pub const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;
/// The shortest Ethernet frame, without its FCS.
pub const MIN_FRAME: usize = 60;
/// Ethernet + IPv4 + TCP headers without options.
pub const TCP_HEADERS: usize = 14 + 20 + 20;

/// Anything that names a MAC address: `[u8; 6]` or the stack's `MacAddr`.
pub trait AsMac {
    /// The address's six bytes.
    fn octets(&self) -> Mac;
}

impl AsMac for Mac {
    fn octets(&self) -> Mac {
        *self
    }
}

impl AsMac for ixtcp_stack::MacAddr {
    fn octets(&self) -> Mac {
        self.0
    }
}

/// An Ethernet II frame: `dst`, `src`, `ethertype`, then `payload`.
pub fn ethernet(dst: impl AsMac, src: impl AsMac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(src.octets()),
        dst_addr: EthernetAddress(dst.octets()),
        ethertype: EthernetProtocol::from(ethertype),
    };
    let mut f = vec![0u8; repr.buffer_len() + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut f[..]);
    repr.emit(&mut frame);
    frame.payload_mut().copy_from_slice(payload);
    f
}

/// `frame` with zeros appended up to [`MIN_FRAME`] bytes.
pub fn padded(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    frame
}

/// The EtherType of `frame`, 0 if it is too short to have one.
pub fn ethertype(frame: &[u8]) -> u16 {
    EthernetFrame::new_checked(frame).map_or(0, |f| u16::from(f.ethertype()))
}

/// The destination and source MACs of `frame`, if it is long enough.
pub fn macs(frame: &[u8]) -> Option<(Mac, Mac)> {
    let f = EthernetFrame::new_checked(frame).ok()?;
    Some((f.dst_addr().0, f.src_addr().0))
}

/// TCP flag bits, as in the header's flags byte.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;

/// A TCP segment to build. `flags` combines [`ACK`] with at most one of
/// [`SYN`], [`FIN`], [`RST`] or [`PSH`] (what smoltcp's `TcpRepr` can say);
/// `ack` is written only with [`ACK`]. A SYN carries an MSS option of 1460.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeg<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (used with [`ACK`]).
    pub ack: u32,
    /// Flag bits.
    pub flags: u8,
    /// Window field.
    pub window: u16,
    /// Payload.
    pub payload: &'a [u8],
}

fn control(flags: u8) -> TcpControl {
    match flags & !ACK {
        0 => TcpControl::None,
        SYN => TcpControl::Syn,
        FIN => TcpControl::Fin,
        RST => TcpControl::Rst,
        PSH => TcpControl::Psh,
        other => panic!("TCP flags {flags:#04x}: {other:#04x} is more than one of SYN, FIN, RST, PSH"),
    }
}

/// An IPv4 packet (TTL 64, don't-fragment) holding `seg`, both checksums valid.
pub fn tcp_ip(seg: &TcpSeg) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: seg.sport,
        dst_port: seg.dport,
        control: control(seg.flags),
        seq_number: TcpSeqNumber(seg.seq as i32),
        ack_number: (seg.flags & ACK != 0).then_some(TcpSeqNumber(seg.ack as i32)),
        window_len: seg.window,
        window_scale: None,
        max_seg_size: (seg.flags & SYN != 0).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: seg.payload,
    };
    let ip = Ipv4Repr {
        src_addr: seg.src,
        dst_addr: seg.dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut p = vec![0u8; ip.buffer_len() + ip.payload_len];
    let mut packet = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.emit(&mut packet, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(seg.src),
        &IpAddress::Ipv4(seg.dst),
        &caps,
    );
    p
}

/// `seg` in an Ethernet frame from `src` to `dst`, [`padded`].
pub fn tcp_frame(dst: impl AsMac, src: impl AsMac, seg: &TcpSeg) -> Vec<u8> {
    padded(ethernet(dst, src, ETHERTYPE_IPV4, &tcp_ip(seg)))
}

/// Sets the IPv4 identification field of the Ethernet/IPv4 `frame` to
/// `ident` and refills the header checksum (smoltcp's reprs always write 0
/// there). Panics if `frame` is not IPv4.
pub fn set_ipv4_ident(frame: &mut [u8], ident: u16) {
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).expect("an Ethernet frame");
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4, "not an IPv4 frame");
    let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).expect("an IPv4 header");
    ip.set_ident(ident);
    ip.fill_checksum();
}

/// A TCP segment read from a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSeen {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment field (whatever it holds, ACK set or not).
    pub ack: u32,
    /// Flag bits ([`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`]; URG is 0x20).
    pub flags: u8,
    /// Payload length.
    pub len: usize,
}

/// The TCP segment in `frame`, if it is an IPv4/TCP frame whose lengths
/// hold together (checksums are not checked).
pub fn parse_tcp(frame: &[u8]) -> Option<TcpSeen> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let bit = |on: bool, b: u8| if on { b } else { 0 };
    let flags = bit(t.fin(), FIN)
        | bit(t.syn(), SYN)
        | bit(t.rst(), RST)
        | bit(t.psh(), PSH)
        | bit(t.ack(), ACK)
        | bit(t.urg(), 0x20);
    Some(TcpSeen {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        sport: t.src_port(),
        dport: t.dst_port(),
        seq: t.seq_number().0 as u32,
        ack: t.ack_number().0 as u32,
        flags,
        len: t.payload().len(),
    })
}

/// The window and the options of a TCP segment, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptionsSeen {
    /// The window field (unscaled).
    pub window: u16,
    /// Maximum segment size option.
    pub mss: Option<u16>,
    /// Window scale option (the shift).
    pub window_scale: Option<u8>,
    /// Timestamps option (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

/// The window and options of the TCP segment in `frame`, if it is an
/// IPv4/TCP frame whose lengths and options parse (checksums are not
/// checked).
pub fn parse_tcp_options(frame: &[u8]) -> Option<TcpOptionsSeen> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    let repr = TcpRepr::parse(&t, &src, &dst, &ChecksumCapabilities::ignored()).ok()?;
    Some(TcpOptionsSeen {
        window: repr.window_len,
        mss: repr.max_seg_size,
        window_scale: repr.window_scale,
        timestamp: repr.timestamp.map(|ts| (ts.tsval, ts.tsecr)),
    })
}

/// A UDP datagram to build (IPv4, TTL 64, both checksums valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Payload.
    pub payload: &'a [u8],
}

/// An IPv4 packet holding `d`.
pub fn udp_ip(d: &UdpDatagram) -> Vec<u8> {
    let udp = UdpRepr { src_port: d.sport, dst_port: d.dport };
    let ip = Ipv4Repr {
        src_addr: d.src,
        dst_addr: d.dst,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + d.payload.len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut p = vec![0u8; ip.buffer_len() + ip.payload_len];
    let mut packet = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.emit(&mut packet, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(d.src),
        &IpAddress::Ipv4(d.dst),
        d.payload.len(),
        |buf| buf.copy_from_slice(d.payload),
        &caps,
    );
    p
}

/// `d` in an Ethernet frame from `src` to `dst` (not padded).
pub fn udp_frame(dst: impl AsMac, src: impl AsMac, d: &UdpDatagram) -> Vec<u8> {
    ethernet(dst, src, ETHERTYPE_IPV4, &udp_ip(d))
}

/// A UDP datagram read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSeen {
    /// The frame's source MAC.
    pub src_mac: Mac,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Payload.
    pub payload: Vec<u8>,
}

/// The UDP datagram in `frame`, if it is an IPv4/UDP frame whose lengths
/// hold together (checksums are not checked).
pub fn parse_udp(frame: &[u8]) -> Option<UdpSeen> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let u = UdpPacket::new_checked(ip.payload()).ok()?;
    Some(UdpSeen {
        src_mac: eth.src_addr().0,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        sport: u.src_port(),
        dport: u.dst_port(),
        payload: u.payload().to_vec(),
    })
}

/// ARP request (operation 1).
pub const ARP_REQUEST: u16 = 1;
/// ARP reply (operation 2).
pub const ARP_REPLY: u16 = 2;

/// An ARP packet (RFC 826, Ethernet/IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// [`ARP_REQUEST`], [`ARP_REPLY`], or anything else.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// The packet in an Ethernet frame to `dst` from the sender's MAC
    /// (42 bytes, not padded).
    pub fn frame(&self, dst: impl AsMac) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::from(self.op),
            source_hardware_addr: EthernetAddress(self.sender_mac),
            source_protocol_addr: self.sender_ip,
            target_hardware_addr: EthernetAddress(self.target_mac),
            target_protocol_addr: self.target_ip,
        };
        let mut p = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut p[..]));
        ethernet(dst, self.sender_mac, ETHERTYPE_ARP, &p)
    }

    /// The ARP packet in `frame`, if it is an Ethernet/IPv4 one.
    pub fn parse(frame: &[u8]) -> Option<Arp> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Arp {
            return None;
        }
        let packet = ArpPacket::new_checked(eth.payload()).ok()?;
        match ArpRepr::parse(&packet).ok()? {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } => Some(Arp {
                op: u16::from(operation),
                sender_mac: source_hardware_addr.0,
                sender_ip: source_protocol_addr,
                target_mac: target_hardware_addr.0,
                target_ip: target_protocol_addr,
            }),
            _ => None,
        }
    }
}

/// The Internet checksum (RFC 1071) of `data`: the complement of its
/// ones'-complement sum. A header with its checksum field filled in sums
/// to 0.
pub fn checksum(data: &[u8]) -> u16 {
    !checksum::data(data)
}

/// The ones'-complement sum of the IPv4 pseudo header of a `len`-byte TCP
/// or UDP segment (not complemented: what a NIC that offloads the checksum
/// expects in the checksum field).
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u16 {
    checksum::pseudo_header_v4(&src, &dst, IpProtocol::from(protocol), len as u32)
}

/// The TCP or UDP checksum of `segment` (header and payload) between `src`
/// and `dst`; 0 when the segment's own checksum field is right.
pub fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    !checksum::combine(&[pseudo_header_sum(src, dst, protocol, segment.len()), checksum::data(segment)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn the_checksum_matches_rfc_1071s_example_and_validates_headers() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        // An odd length is padded with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        let p = tcp_ip(&TcpSeg {
            src: A,
            dst: B,
            sport: 1,
            dport: 2,
            seq: 3,
            ack: 4,
            flags: ACK,
            window: 5,
            payload: b"x",
        });
        assert_eq!(checksum(&p[..20]), 0);
        assert_eq!(l4_checksum(A, B, 6, &p[20..]), 0);
    }

    #[test]
    fn a_syn_has_the_header_fields_asked_for_and_an_mss_option() {
        let seg =
            TcpSeg { src: A, dst: B, sport: 999, dport: 5000, seq: 1, ack: 0, flags: SYN, window: 1000, payload: &[] };
        let p = tcp_ip(&seg);
        assert_eq!(p.len(), 20 + 24);
        assert_eq!(&p[..4], &[0x45, 0, 0, 44]);
        assert_eq!(p[6], 0x40, "don't fragment");
        assert_eq!((p[8], p[9]), (64, 6));
        assert_eq!(&p[12..20], &[10, 0, 0, 1, 10, 0, 0, 2]);
        let t = &p[20..];
        assert_eq!(&t[..4], &[0x03, 0xe7, 0x13, 0x88]);
        assert_eq!(&t[4..12], &[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!((t[12], t[13]), (6 << 4, SYN));
        assert_eq!(&t[14..16], &1000u16.to_be_bytes());
        assert_eq!(&t[20..24], &[2, 4, 0x05, 0xb4]);
        let mut f = tcp_frame(BROADCAST, [2, 0, 0, 0, 0, 1], &seg);
        assert_eq!(f.len(), MIN_FRAME);
        assert_eq!(&f[18..20], &[0, 0]);
        set_ipv4_ident(&mut f, 0x1234);
        assert_eq!(&f[18..20], &[0x12, 0x34]);
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(ethertype(&f), ETHERTYPE_IPV4);
        assert_eq!(macs(&f), Some((BROADCAST, [2, 0, 0, 0, 0, 1])));
    }

    #[test]
    fn tcp_segments_read_back_as_built() {
        for (flags, payload) in [(SYN, &b""[..]), (ACK, b""), (PSH | ACK, b"hello"), (FIN | ACK, b""), (RST, b"")] {
            let seg = TcpSeg {
                src: B,
                dst: A,
                sport: 40_000,
                dport: 80,
                seq: 0xdead_beef,
                ack: 7,
                flags,
                window: 1,
                payload,
            };
            let seen = parse_tcp(&tcp_frame([2; 6], [4; 6], &seg)).unwrap();
            let ack = if flags & ACK != 0 { 7 } else { 0 };
            let want =
                TcpSeen { src: B, dst: A, sport: 40_000, dport: 80, seq: 0xdead_beef, ack, flags, len: payload.len() };
            assert_eq!(seen, want);
        }
        assert_eq!(parse_tcp(&ethernet(BROADCAST, [2; 6], ETHERTYPE_ARP, &[0; 46])), None);
        let mut cut = tcp_frame(
            [2; 6],
            [4; 6],
            &TcpSeg { src: A, dst: B, sport: 1, dport: 2, seq: 0, ack: 0, flags: ACK, window: 0, payload: &[1; 40] },
        );
        cut.truncate(70);
        assert_eq!(parse_tcp(&cut), None, "IPv4 total length beyond the frame");
    }

    #[test]
    #[should_panic(expected = "more than one")]
    fn flags_smoltcp_cannot_express_are_refused() {
        tcp_ip(&TcpSeg {
            src: A,
            dst: B,
            sport: 1,
            dport: 2,
            seq: 0,
            ack: 0,
            flags: SYN | FIN,
            window: 0,
            payload: &[],
        });
    }

    #[test]
    fn udp_and_arp_read_back_as_built() {
        let d = UdpDatagram { src: A, dst: B, sport: 7777, dport: 7, payload: b"through the wire" };
        let f = udp_frame([2; 6], [4; 6], &d);
        assert_eq!(f.len(), 14 + 20 + 8 + 16);
        assert_eq!(l4_checksum(A, B, 17, &f[34..]), 0);
        let seen = parse_udp(&f).unwrap();
        assert_eq!(
            seen,
            UdpSeen { src_mac: [4; 6], src: A, dst: B, sport: 7777, dport: 7, payload: b"through the wire".to_vec() }
        );
        let arp = Arp { op: ARP_REQUEST, sender_mac: [2; 6], sender_ip: A, target_mac: [0; 6], target_ip: B };
        let f = arp.frame(BROADCAST);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        assert_eq!(Arp::parse(&f), Some(arp));
        assert_eq!(Arp::parse(&padded(f.clone())), Some(arp));
        assert_eq!(Arp::parse(&f[..41]), None);
        assert_eq!(parse_udp(&f), None);
    }

    #[test]
    fn pseudo_header_sum_is_the_folded_sum_of_its_words() {
        // 10.0.0.1 + 10.0.0.2 + protocol 6 + length 20, word by word.
        let want = 0x0a00u32 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20;
        assert_eq!(u32::from(pseudo_header_sum(A, B, 6, 20)), want);
    }
}
