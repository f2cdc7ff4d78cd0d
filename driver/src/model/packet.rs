//! Frame parsing and checksums: what the receive classifier (RSS input,
//! packet type, checksum status, 7.1.2.8 and 7.1.11) and the transmit
//! offloads (7.2.4) need to know about a frame. Only Ethernet II, IPv4,
//! TCP and UDP are understood; anything else is "not IP" to the model.

/// Length of an Ethernet header without VLAN tag.
pub(crate) const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of TCP.
pub(crate) const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub(crate) const PROTO_UDP: u8 = 17;

/// The transport header of an unfragmented IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L4 {
    /// Offset of the TCP/UDP header in the frame.
    pub off: usize,
    /// TCP (else UDP).
    pub tcp: bool,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// An IPv4 packet inside an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4 {
    /// Offset of the IPv4 header in the frame.
    pub off: usize,
    /// Header length in bytes (IHL × 4).
    pub hdr_len: usize,
    /// Total length from the header (header and payload, no padding).
    pub total_len: usize,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol.
    pub proto: u8,
    /// More-fragments set or a non-zero fragment offset.
    pub fragment: bool,
    /// Identification field.
    pub id: u16,
    /// TCP or UDP header, for unfragmented packets that carry a whole one.
    pub l4: Option<L4>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses an Ethernet II frame carrying IPv4; `None` for anything else,
/// including IPv4 whose header or stated length does not fit the frame.
pub(crate) fn parse_ipv4(frame: &[u8]) -> Option<Ipv4> {
    if be16(frame, 12)? != ETHERTYPE_IPV4 {
        return None;
    }
    let off = ETH_HLEN;
    let vihl = *frame.get(off)?;
    let hdr_len = usize::from(vihl & 0xF) * 4;
    if vihl >> 4 != 4 || hdr_len < 20 || off + hdr_len > frame.len() {
        return None;
    }
    let total_len = usize::from(be16(frame, off + 2)?);
    if total_len < hdr_len || off + total_len > frame.len() {
        return None;
    }
    let fragment = be16(frame, off + 6)? & 0x3FFF != 0;
    let proto = frame[off + 9];
    let mut ip = Ipv4 {
        off,
        hdr_len,
        total_len,
        src: [frame[off + 12], frame[off + 13], frame[off + 14], frame[off + 15]],
        dst: [frame[off + 16], frame[off + 17], frame[off + 18], frame[off + 19]],
        proto,
        fragment,
        id: be16(frame, off + 4)?,
        l4: None,
    };
    let l4_off = off + hdr_len;
    let l4_min = match proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return Some(ip),
    };
    if !fragment && total_len - hdr_len >= l4_min {
        ip.l4 = Some(L4 {
            off: l4_off,
            tcp: proto == PROTO_TCP,
            src_port: be16(frame, l4_off)?,
            dst_port: be16(frame, l4_off + 2)?,
        });
    }
    Some(ip)
}

/// The one's-complement accumulation of `data` as big-endian 16-bit words
/// (an odd last byte is padded with zero), added to `sum`; at most 0x1FFFE,
/// so a caller may add a few small terms before [`fold`].
///
/// One pass, eight bytes at a time: since 2^16 = 1 modulo 0xFFFF, a sum of
/// big-endian 64-bit words with end-around carry folds to the same 16-bit
/// one's-complement sum as the 16-bit words would (RFC 1071, section 2).
pub(crate) fn sum16(data: &[u8], sum: u32) -> u32 {
    let mut acc = u64::from(sum);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
        acc = s + u64::from(carry);
    }
    // At most seven bytes remain: one 4-byte, one 2-byte word, one byte,
    // each still on an even offset.
    let mut rest = words.remainder();
    let mut tail = 0u64;
    if let [a, b, c, d, more @ ..] = rest {
        tail += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        rest = more;
    }
    if let [a, b, more @ ..] = rest {
        tail += u64::from(u16::from_be_bytes([*a, *b]));
        rest = more;
    }
    if let [last] = rest {
        tail += u64::from(*last) << 8;
    }
    let (s, carry) = acc.overflowing_add(tail);
    acc = s + u64::from(carry);
    // 64 to 32 bits, then to 17: each step keeps the value modulo 0xFFFF
    // and keeps a non-zero sum non-zero.
    acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc as u32
}

/// Folds an accumulation to 16 bits (without complementing).
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Whether the IPv4 header checksum is correct.
pub(crate) fn ipv4_header_ok(frame: &[u8], ip: &Ipv4) -> bool {
    fold(sum16(&frame[ip.off..ip.off + ip.hdr_len], 0)) == 0xFFFF
}

/// Whether the TCP/UDP checksum of an unfragmented IPv4 packet is correct,
/// or `None` when there is nothing to check (UDP with checksum 0).
pub(crate) fn l4_checksum_ok(frame: &[u8], ip: &Ipv4) -> Option<bool> {
    let l4 = ip.l4?;
    let end = ip.off + ip.total_len;
    let segment = &frame[l4.off..end];
    if !l4.tcp && be16(segment, 6) == Some(0) {
        return None;
    }
    let mut sum = sum16(&ip.src, 0);
    sum = sum16(&ip.dst, sum);
    sum += u32::from(ip.proto);
    sum += segment.len() as u32;
    Some(fold(sum16(segment, sum)) == 0xFFFF)
}

/// The Ethernet FCS (CRC-32, reflected, polynomial 0x04C11DB7) of `frame`,
/// in the byte order it follows the frame on the wire. Only used when
/// receive CRC stripping is off, so a bitwise loop is enough.
pub(crate) fn ethernet_fcs(frame: &[u8]) -> [u8; 4] {
    let mut crc = !0u32;
    for &b in frame {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    (!crc).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition: 16-bit big-endian words, folded as they go.
    fn sum16_by_words(data: &[u8], seed: u32) -> u16 {
        let mut sum = u64::from(seed);
        for c in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn word_at_a_time_sum_matches_the_definition() {
        // A fixed xorshift stream (seed printed on failure), lengths 0..200
        // and all-0xFF data, which carries on every add.
        let seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in 0..200 {
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let start = (next() % 0x2_0000) as u32;
            assert_eq!(fold(sum16(&data, start)), sum16_by_words(&data, start), "seed {seed:#x}, length {len}");
            let ones = vec![0xFF; len];
            assert_eq!(fold(sum16(&ones, start)), sum16_by_words(&ones, start), "all ones, length {len}");
            assert!(sum16(&ones, start) <= 0x1FFFE);
        }
        assert_eq!(fold(sum16(&[0; 9], 0)), 0, "an all-zero sum stays zero");
    }

    #[test]
    fn fcs_matches_the_standard_check_value() {
        // CRC-32/ISO-HDLC of "123456789" is 0xCBF43926.
        assert_eq!(ethernet_fcs(b"123456789"), 0xCBF4_3926u32.to_le_bytes());
    }

    #[test]
    fn non_ip_and_truncated_frames_do_not_parse() {
        let mut f = vec![0u8; 60];
        f[12] = 0x86;
        f[13] = 0xdd;
        assert_eq!(parse_ipv4(&f), None);
        f[12] = 0x08;
        f[13] = 0x00;
        f[14] = 0x45;
        f[16] = 0x01; // total length 256 > frame
        assert_eq!(parse_ipv4(&f), None);
        assert_eq!(parse_ipv4(&f[..10]), None);
    }
}
