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
#[inline]
pub(crate) fn parse_ipv4(frame: &[u8]) -> Option<Ipv4> {
    // An Ethernet header and at least the fixed 20 bytes of an IPv4 header
    // (IHL 5 is the shortest valid one): every field below indexes inside.
    if frame.len() < ETH_HLEN + 20 || frame[12..14] != ETHERTYPE_IPV4.to_be_bytes() {
        return None;
    }
    let off = ETH_HLEN;
    let vihl = frame[off];
    let hdr_len = usize::from(vihl & 0xF) * 4;
    if vihl >> 4 != 4 || hdr_len < 20 || off + hdr_len > frame.len() {
        return None;
    }
    #[inline(always)]
    fn field(frame: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([frame[ETH_HLEN + at], frame[ETH_HLEN + at + 1]])
    }
    let total_len = usize::from(field(frame, 2));
    if total_len < hdr_len || off + total_len > frame.len() {
        return None;
    }
    let fragment = field(frame, 6) & 0x3FFF != 0;
    let proto = frame[off + 9];
    let mut ip = Ipv4 {
        off,
        hdr_len,
        total_len,
        src: [frame[off + 12], frame[off + 13], frame[off + 14], frame[off + 15]],
        dst: [frame[off + 16], frame[off + 17], frame[off + 18], frame[off + 19]],
        proto,
        fragment,
        id: field(frame, 4),
        l4: None,
    };
    let l4_min = match proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return Some(ip),
    };
    if !fragment && total_len - hdr_len >= l4_min {
        // Both ports lie inside the frame: `l4_min` bytes follow the IPv4
        // header within the total length, which fits the frame.
        let l4_off = hdr_len;
        ip.l4 = Some(L4 {
            off: off + l4_off,
            tcp: proto == PROTO_TCP,
            src_port: field(frame, l4_off),
            dst_port: field(frame, l4_off + 2),
        });
    }
    Some(ip)
}

/// Adds `w` to the one's-complement accumulator `acc` with end-around
/// carry.
#[inline(always)]
fn add_carry(acc: u64, w: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(w);
    s + u64::from(carry)
}

/// Runs of at least this many whole 32-byte steps' bytes are summed in
/// independent lanes ([`add_ne_lanes`]): on this project's machine about
/// twice the speed of the carried sum at 1480 bytes, while on a header the
/// lanes' setup and fold cost more than they save.
const WIDE_SUM_MIN: usize = 256;

/// The one's-complement accumulation of `data` as 16-bit words in memory
/// order, read in the machine's byte order (an odd last byte is padded
/// with zero), added to `acc`; fold it with [`fold_ne`].
///
/// Eight bytes at a time and without byte swaps: since 2^16 = 1 modulo
/// 0xFFFF, a sum of 64-bit words with end-around carry folds to the same
/// 16-bit one's-complement sum as the 16-bit words would, and a sum taken
/// in the other byte order is the byte-swapped sum (RFC 1071, section 2).
/// A checksum verdict (the folded sum is 0xFFFF) is the same in either
/// order; a value to store goes back to memory in the order it was read
/// (`to_ne_bytes`).
#[inline(always)]
pub(crate) fn add_ne(data: &[u8], acc: u64) -> u64 {
    let word = |w: &[u8]| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    let mut acc = acc;
    let (body, rest) = data.split_at(data.len() & !31);
    if body.len() >= WIDE_SUM_MIN {
        acc = add_ne_lanes(body, acc);
    } else {
        // Short runs (headers, small segments): one carried sum, four
        // words a step, has less to set up and fold, and stays inlined.
        for q in body.chunks_exact(32) {
            acc = add_carry(acc, word(&q[0..8]));
            acc = add_carry(acc, word(&q[8..16]));
            acc = add_carry(acc, word(&q[16..24]));
            acc = add_carry(acc, word(&q[24..32]));
        }
    }
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        acc = add_carry(acc, word(w));
    }
    // At most seven bytes remain, each piece on an even offset from the
    // start: one 4-byte, one 2-byte word, one byte (padded with a zero
    // byte into its 16-bit word). Each is added as a value of its own: a
    // 16-bit word's place in the accumulator does not matter, as 2^16 = 1
    // modulo 0xFFFF. (Gathering the pieces into an 8-byte array and
    // loading that instead stalls the load behind the narrower stores:
    // it was a third of the model's transmit time.)
    let rest = words.remainder();
    let mut i = 0;
    if rest.len() >= 4 {
        acc = add_carry(acc, u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]])));
        i = 4;
    }
    if rest.len() - i >= 2 {
        acc = add_carry(acc, u64::from(u16::from_ne_bytes([rest[i], rest[i + 1]])));
        i += 2;
    }
    if rest.len() > i {
        acc = add_carry(acc, u64::from(u16::from_ne_bytes([rest[i], 0])));
    }
    acc
}

/// [`add_ne`] over a long run of whole 32-byte steps: eight 32-bit words a step,
/// each into a 64-bit lane of its own. No carry propagates (a lane
/// overflows only after 2^32 words, 16 GiB, far past any frame), so the
/// steps do not wait on each other and the compiler vectorizes them; a
/// 32-bit word's two 16-bit words keep their lanes. Out of line: a call is
/// nothing next to a long run, and the callers' short paths stay small.
#[inline(never)]
fn add_ne_lanes(body: &[u8], mut acc: u64) -> u64 {
    let mut lanes = [0u64; 8];
    for q in body.chunks_exact(32) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane += u64::from(u32::from_ne_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]));
        }
    }
    for lane in lanes {
        acc = add_carry(acc, lane);
    }
    acc
}

/// Folds an [`add_ne`] accumulation to 16 bits (without complementing), in
/// the byte order it was read in. A non-zero accumulation folds to a
/// non-zero value.
#[inline]
pub(crate) fn fold_ne(acc: u64) -> u16 {
    // 64 to 32 bits, then 32 to 16, each an end-around-carry add of the
    // two halves: it keeps the value modulo 0xFFFF, and two halves not
    // both zero never add up to zero. With a carry out the low sum is at
    // most 2^32 - 2 (2^16 - 2), so adding the carry cannot wrap.
    let (s, carry) = (acc as u32).overflowing_add((acc >> 32) as u32);
    let s = s + u32::from(carry);
    let (t, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    t + u16::from(carry)
}

/// A 16-bit big-endian value as an [`add_ne`] term (its bytes in memory
/// order, read in the machine's byte order).
#[inline(always)]
pub(crate) fn ne_term(be: u16) -> u64 {
    u64::from(u16::from_ne_bytes(be.to_be_bytes()))
}

/// The one's-complement accumulation of `data` as big-endian 16-bit words
/// (an odd last byte is padded with zero), added to `sum`; at most 0x1FFFE
/// for a `sum` up to 0x1FFFF, so a caller may add a few small terms before
/// [`fold`]. The big-endian view of [`add_ne`], which the tests check
/// against the definition.
#[cfg(test)]
pub(crate) fn sum16(data: &[u8], sum: u32) -> u32 {
    let be = u32::from(u16::from_be_bytes(fold_ne(add_ne(data, 0)).to_ne_bytes())) + sum;
    (be & 0xFFFF) + (be >> 16)
}

/// Folds a [`sum16`] accumulation to 16 bits (without complementing).
#[cfg(test)]
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// The pseudo-header accumulation (RFC 793, RFC 768) of an IPv4 packet whose
/// header starts at `ip` in `frame` (at least 20 bytes there), for a
/// transport segment of `l4_len` bytes (below 2^16: it lies inside an IPv4
/// total length): the two addresses, the protocol and the length, as
/// [`add_ne`] terms.
#[inline(always)]
pub(crate) fn pseudo_ne(frame: &[u8], ip: usize, proto: u8, l4_len: usize) -> u64 {
    let a = &frame[ip + 12..ip + 20];
    let addrs = u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    add_carry(addrs, ne_term(u16::from(proto)) + ne_term(l4_len as u16))
}

/// Whether the IPv4 header checksum is correct.
#[inline]
pub(crate) fn ipv4_header_ok(frame: &[u8], ip: &Ipv4) -> bool {
    fold_ne(add_ne(&frame[ip.off..ip.off + ip.hdr_len], 0)) == 0xFFFF
}

/// Whether the TCP/UDP checksum of an unfragmented IPv4 packet is correct,
/// or `None` when there is nothing to check (UDP with checksum 0).
#[inline(always)]
pub(crate) fn l4_checksum_ok(frame: &[u8], ip: &Ipv4) -> Option<bool> {
    let l4 = ip.l4?;
    let end = ip.off + ip.total_len;
    let segment = &frame[l4.off..end];
    if !l4.tcp && be16(segment, 6) == Some(0) {
        return None;
    }
    let pseudo = pseudo_ne(frame, ip.off, ip.proto, segment.len());
    Some(fold_ne(add_ne(segment, pseudo)) == 0xFFFF)
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
        // and around the wide sum's threshold and those of full and jumbo
        // frames' payloads, and all-0xFF data,
        // which carries on every add.
        let seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in (0..200).chain([255, 256, 257, 291, 1480, 8980, 9014]) {
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
    fn native_order_terms_and_pseudo_header_match_the_definition() {
        // An IPv4 header (addresses 10.0.0.1 → 10.0.0.2) after an Ethernet
        // header, then a segment of odd length; the pseudo-header summed
        // as big-endian words by the definition.
        let mut f = vec![0u8; 14 + 20 + 37];
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        for (i, b) in f[34..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xA5;
        }
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, PROTO_TCP, 0, 37]);
        pseudo.extend_from_slice(&f[34..]);
        let want = sum16_by_words(&pseudo, 0);
        let got = fold_ne(add_ne(&f[34..], pseudo_ne(&f, 14, PROTO_TCP, 37)));
        assert_eq!(u16::from_be_bytes(got.to_ne_bytes()), want);
        assert_eq!(ne_term(0x1234).to_ne_bytes()[..2], [0x12, 0x34]);
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
