//! IPv4 and TCP checksums: the stack's one place for them.
//!
//! smoltcp neither computes nor verifies IPv4 header and TCP checksums
//! here (its `DeviceCapabilities::checksum` says so, see `crate::phy`);
//! this module does, so that every rewrite the stack makes (the RFC 6528
//! sequence offset and `fix_stale_ack` of `crate::workaround`, crafted ACKs and
//! cookie SYN-ACKs) happens on frames whose checksums are settled once, at
//! the edge:
//!
//! - **Transmit** ([`finish_tx`]), for every IPv4 packet as it leaves
//!   (`Port::send_ip`), after the last rewrite: with offload on and a
//!   packet the 82599 can describe (a 20-byte IPv4 header, TCP or UDP, not
//!   a fragment), the IPv4 checksum field is cleared, the transport one
//!   seeded with the pseudo-header sum and the buffer asks the NIC to
//!   insert both ([`TxOffload`]); otherwise (offload off, or IPv4 options,
//!   another protocol, a fragment: counted as `tx_csum_software`) both are
//!   computed here. ICMP's own checksum is computed by whoever builds the
//!   message ([`fill_icmp`], `crate::icmp`): the 82599 cannot insert it.
//! - **Receive** ([`check_rx`]), for every TCP segment for our address
//!   before anything reads or rewrites it: with offload on, a checksum the
//!   NIC verified good is not verified again, one it flagged bad drops the
//!   frame (`drop_ip_csum_nic`, `drop_tcp_csum_nic`), and one it did not
//!   check is verified in software (`rx_csum_software`; a bad one counts
//!   in `drop_ip_csum_sw` / `drop_tcp_csum_sw`). With offload off every
//!   segment is verified in software. ICMP and UDP packets for us have
//!   their IPv4 header checked the same way ([`check_ip_header`]); the UDP
//!   checksum ([`udp_ok`]: zero means none) and the ICMP one ([`icmp_ok`],
//!   never checked by the NIC) are checked by `crate::udp` and
//!   `crate::icmp`, which count their own drops.
//!
//! A capture (`--pcap`) of a frame sent with offload shows the seeded
//! transport checksum, as captures on Linux with offload do: the NIC fills
//! it in after the capture point.

use std::net::Ipv4Addr;

use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::offload::{CsumStatus, L4Proto, RxChecksum, TxOffload};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, checksum};

use crate::ether::ETH_HEADER_LEN;
use crate::stats::CoreStats;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The pseudo-header sum (folded, not complemented) of a transport segment
/// of `len` bytes: what the 82599 expects in the checksum field. Summed
/// here from the header's address bytes (20 of them are there: every caller
/// has checked the IPv4 header's length), the same sum smoltcp's
/// `pseudo_header_v4` computes from `Ipv4Addr`s, in a few instructions.
fn pseudo_sum(ip: &[u8], proto: u8, len: usize) -> u16 {
    let Some(h) = ip.first_chunk::<20>() else { return 0 };
    let w = |i: usize| u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
    // Six terms below 2^17 each: two folds bring the sum into 16 bits.
    let mut sum = w(12) + w(14) + w(16) + w(18) + u32::from(proto) + (len as u32 & 0xffff);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The transport checksum field's offset for `proto`, if the stack knows it.
fn l4_checksum_at(proto: u8) -> Option<(L4Proto, usize)> {
    match proto {
        PROTO_TCP => Some((L4Proto::Tcp, L4Proto::Tcp.checksum_offset())),
        PROTO_UDP => Some((L4Proto::Udp, L4Proto::Udp.checksum_offset())),
        _ => None,
    }
}

/// How an outgoing packet's checksums were settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxCsum {
    /// The NIC inserts them.
    Offloaded,
    /// Computed here.
    Software,
    /// Not an IPv4 packet the stack can read: left as it is.
    Untouched,
}

/// Settles the checksums of the IPv4 packet in `buf` (IP header first, the
/// Ethernet header not yet written); see the module docs.
pub(crate) fn finish_tx(buf: &mut PacketBuf, offload: bool) -> TxCsum {
    let ip = buf.data_mut();
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return TxCsum::Untouched;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2));
    if ihl < 20 || total < ihl || total > ip.len() {
        return TxCsum::Untouched;
    }
    let proto = ip[9];
    let fragment = be16(ip, 6) & 0x3fff != 0;
    let l4 = l4_checksum_at(proto).filter(|(p, _)| !fragment && total >= ihl + p.min_header());
    ip[10..12].copy_from_slice(&[0, 0]);
    if offload
        && ihl == 20
        && let Some((p, at)) = l4
    {
        let seed = pseudo_sum(ip, proto, total - ihl);
        ip[ihl + at..ihl + at + 2].copy_from_slice(&seed.to_be_bytes());
        // Cannot fail: 14 and 20 are inside the descriptor fields.
        if let Ok(o) = TxOffload::ipv4(ETH_HEADER_LEN, ihl, Some(p)) {
            buf.set_tx_offload(o);
            return TxCsum::Offloaded;
        }
    }
    let header = !checksum::data(&ip[..ihl]);
    ip[10..12].copy_from_slice(&header.to_be_bytes());
    if let Some((p, at)) = l4 {
        let seg = ihl..total;
        ip[ihl + at..ihl + at + 2].copy_from_slice(&[0, 0]);
        let mut sum = !checksum::combine(&[pseudo_sum(ip, proto, total - ihl), checksum::data(&ip[seg])]);
        if p == L4Proto::Udp && sum == 0 {
            // A computed zero goes out as all ones (RFC 768).
            sum = 0xffff;
        }
        ip[ihl + at..ihl + at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    TxCsum::Software
}

/// Whether the checksums of a classified TCP segment (`ip`, IP header
/// first) may be believed, given the NIC's verdict `nic` (ignored without
/// offload); counts what it drops and what it verifies itself.
pub(crate) fn check_rx(ip: &[u8], nic: RxChecksum, offload: bool, stats: &mut CoreStats) -> bool {
    let nic = if offload { nic } else { RxChecksum::UNCHECKED };
    let software = nic.ip() == CsumStatus::Unchecked || nic.l4() == CsumStatus::Unchecked;
    if software {
        stats.rx_csum_software += 1;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let ip_ok = match nic.ip() {
        CsumStatus::Good => true,
        CsumStatus::Bad => {
            stats.drop_ip_csum_nic += 1;
            return false;
        }
        CsumStatus::Unchecked => checksum::data(&ip[..ihl]) == 0xffff,
    };
    if !ip_ok {
        stats.drop_ip_csum_sw += 1;
        return false;
    }
    let ok = match nic.l4() {
        CsumStatus::Good => true,
        CsumStatus::Bad => {
            stats.drop_tcp_csum_nic += 1;
            return false;
        }
        CsumStatus::Unchecked => {
            let total = usize::from(be16(ip, 2));
            let seg = &ip[ihl..total];
            checksum::combine(&[pseudo_sum(ip, PROTO_TCP, seg.len()), checksum::data(seg)]) == 0xffff
        }
    };
    if !ok {
        stats.drop_tcp_csum_sw += 1;
    }
    ok
}

/// Whether the IPv4 header checksum of `ip` (a checked IPv4 packet) may be
/// believed, given the NIC's verdict `nic` (ignored without offload): the
/// header half of [`check_rx`], for the protocols whose transport checksum
/// the stack checks itself (ICMP, UDP). Counts what it drops.
pub(crate) fn check_ip_header(ip: &[u8], nic: RxChecksum, offload: bool, stats: &mut CoreStats) -> bool {
    let nic = if offload { nic } else { RxChecksum::UNCHECKED };
    match nic.ip() {
        CsumStatus::Good => true,
        CsumStatus::Bad => {
            stats.drop_ip_csum_nic += 1;
            false
        }
        CsumStatus::Unchecked => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let ok = checksum::data(&ip[..ihl]) == 0xffff;
            if !ok {
                stats.drop_ip_csum_sw += 1;
            }
            ok
        }
    }
}

/// Whether the UDP checksum of datagram `udp` (header and payload, at least
/// 8 bytes) from `src` to `dst` is right: a zero field means the sender
/// computed none (RFC 768), and is accepted; otherwise the NIC's verdict
/// (with offload) or the sum here.
pub(crate) fn udp_ok(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8], nic: RxChecksum, offload: bool) -> bool {
    if be16(udp, 6) == 0 {
        return true;
    }
    let nic = if offload { nic.l4() } else { CsumStatus::Unchecked };
    match nic {
        CsumStatus::Good => true,
        CsumStatus::Bad => false,
        CsumStatus::Unchecked => {
            let pseudo = checksum::pseudo_header_v4(&src, &dst, IpProtocol::Udp, udp.len() as u32);
            checksum::combine(&[pseudo, checksum::data(udp)]) == 0xffff
        }
    }
}

/// The ICMP checksum of `msg` (the whole ICMP message, checksum field
/// included): right if the ones' complement sum is all ones.
pub(crate) fn icmp_ok(msg: &[u8]) -> bool {
    checksum::data(msg) == 0xffff
}

/// Fills the checksum field (bytes 2..4) of the ICMP message `msg`.
/// ICMP has no pseudo-header and the 82599 cannot insert its checksum, so
/// it is always computed here.
pub(crate) fn fill_icmp(msg: &mut [u8]) {
    msg[2..4].copy_from_slice(&[0, 0]);
    let sum = !checksum::data(msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Checksum capabilities for the segments the core parses and builds
/// itself (TIME_WAIT answers, challenge ACKs, keep-alive probes, SYN
/// cookies): none computed or verified, because what it parses was verified
/// on arrival and what it builds is settled by [`finish_tx`] on the way out.
pub(crate) fn edge() -> ChecksumCapabilities {
    ChecksumCapabilities::ignored()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_sum_is_smoltcps_pseudo_header_sum() {
        // Addresses with carries in every word, and lengths up to the
        // largest IPv4 payload.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut ip = [0u8; 20];
            ip[12..20].copy_from_slice(&rng.to_be_bytes());
            if round % 7 == 0 {
                ip[12..20].fill(0xff);
            }
            let len = (rng >> 40) as usize % 65_516;
            let proto = if round % 2 == 0 { PROTO_TCP } else { PROTO_UDP };
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            let want = checksum::pseudo_header_v4(&src, &dst, IpProtocol::from(proto), len as u32);
            assert_eq!(pseudo_sum(&ip, proto, len), want, "seed state {rng:#x}, len {len}");
        }
    }
    use ixtcp_driver::dma::HeapDma;
    use ixtcp_driver::mempool::Mempool;
    use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

    /// smoltcp's view of an address pair.
    fn ip_pair(src: Ipv4Addr, dst: Ipv4Addr) -> (IpAddress, IpAddress) {
        (IpAddress::Ipv4(src), IpAddress::Ipv4(dst))
    }

    fn buf_with(pool: &std::sync::Arc<Mempool>, bytes: &[u8]) -> PacketBuf {
        let mut b = pool.alloc().unwrap();
        assert!(b.copy_from(bytes));
        b
    }

    /// A TCP/IPv4 packet built by smoltcp with both checksums right and
    /// `options` bytes of IPv4 options (NOPs) inserted.
    fn segment(payload: &[u8], options: usize) -> Vec<u8> {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut out = vec![0u8; 40 + payload.len()];
        crate::timewait::TimeWaitTable::emit_ack_with_window(
            &mut out,
            a,
            &crate::flow::FlowKey { remote_ip: b, remote_port: 80, local_port: 4000 },
            7,
            9,
            100,
            &ChecksumCapabilities::default(),
        );
        // Payload: lengthen the packet and refill both checksums.
        out[40..].copy_from_slice(payload);
        let total = out.len() as u16;
        out[2..4].copy_from_slice(&total.to_be_bytes());
        if options > 0 {
            out.splice(20..20, std::iter::repeat_n(1u8, options));
            out[0] = 0x45 + (options / 4) as u8;
            let total = out.len() as u16;
            out[2..4].copy_from_slice(&total.to_be_bytes());
        }
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        p.fill_checksum();
        let mut t = TcpPacket::new_unchecked(p.payload_mut());
        let (s, d) = ip_pair(a, b);
        t.fill_checksum(&s, &d);
        out
    }

    fn valid(ip: &[u8]) -> bool {
        let p = Ipv4Packet::new_checked(ip).unwrap();
        let t = TcpPacket::new_checked(p.payload()).unwrap();
        let (s, d) = ip_pair(p.src_addr(), p.dst_addr());
        p.verify_checksum() && t.verify_checksum(&s, &d)
    }

    #[test]
    fn offload_seeds_the_pseudo_header_and_software_computes_what_it_cannot_describe() {
        let pool = Mempool::new(&HeapDma, 8, 2048).unwrap();
        let good = segment(b"hello", 0);
        // Offload: IP checksum zero, pseudo-header seed, a request on the buffer.
        let mut zeroed = good.clone();
        zeroed[10..12].copy_from_slice(&[0, 0]);
        zeroed[36..38].copy_from_slice(&[0, 0]);
        let mut b = buf_with(&pool, &zeroed);
        assert_eq!(finish_tx(&mut b, true), TxCsum::Offloaded);
        assert_eq!(b.tx_offload(), TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap());
        assert_eq!(be16(b.data(), 10), 0);
        assert_eq!(be16(b.data(), 36), pseudo_sum(&good, PROTO_TCP, good.len() - 20));
        // Offload off: both computed, no request.
        let mut b = buf_with(&pool, &zeroed);
        assert_eq!(finish_tx(&mut b, false), TxCsum::Software);
        assert!(b.tx_offload().is_none());
        assert_eq!(b.data(), &good[..]);
        // IPv4 options with offload on: software fallback.
        let opts = segment(b"hello", 8);
        let mut garbled = opts.clone();
        garbled[10] ^= 0xff;
        garbled[20 + 8 + 16] ^= 0x55;
        let mut b = buf_with(&pool, &garbled);
        assert_eq!(finish_tx(&mut b, true), TxCsum::Software);
        assert!(b.tx_offload().is_none());
        assert!(valid(b.data()));
        // Not IPv4: untouched.
        let mut b = buf_with(&pool, &[0x60; 40]);
        assert_eq!(finish_tx(&mut b, true), TxCsum::Untouched);
        assert_eq!(b.data(), &[0x60; 40]);
    }

    #[test]
    fn receive_trusts_the_nic_verifies_what_it_did_not_check_and_counts_drops() {
        let good = segment(b"data", 0);
        let mut bad_tcp = good.clone();
        bad_tcp[30] ^= 1;
        let mut bad_ip = good.clone();
        bad_ip[8] ^= 1;
        let g = CsumStatus::Good;
        let nic_good = RxChecksum::new(g, g);
        let mut s = CoreStats::default();
        // The NIC's word is taken: even a corrupted frame passes if it says
        // good (it checked the bytes it received), and a good one is
        // dropped if it says bad.
        assert!(check_rx(&bad_tcp, nic_good, true, &mut s));
        assert!(!check_rx(&good, RxChecksum::new(g, CsumStatus::Bad), true, &mut s));
        assert!(!check_rx(&good, RxChecksum::new(CsumStatus::Bad, g), true, &mut s));
        assert_eq!((s.drop_tcp_csum_nic, s.drop_ip_csum_nic, s.rx_csum_software), (1, 1, 0));
        // Unchecked: software.
        assert!(check_rx(&good, RxChecksum::UNCHECKED, true, &mut s));
        assert!(!check_rx(&bad_tcp, RxChecksum::UNCHECKED, true, &mut s));
        assert!(!check_rx(&bad_ip, RxChecksum::new(CsumStatus::Unchecked, g), true, &mut s));
        assert_eq!((s.drop_tcp_csum_sw, s.drop_ip_csum_sw, s.rx_csum_software), (1, 1, 3));
        // Offload off: the NIC's verdict is ignored.
        assert!(!check_rx(&bad_tcp, nic_good, false, &mut s));
        assert_eq!((s.drop_tcp_csum_sw, s.rx_csum_software), (2, 4));
        // Ethernet padding behind the segment is not summed.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xaa; 6]);
        assert!(check_rx(&padded, RxChecksum::UNCHECKED, true, &mut s));
    }
}
