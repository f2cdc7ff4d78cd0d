//! SYN cookies: a listener whose backlog is full answers a SYN with a
//! SYN-ACK whose sequence number encodes the connection, and keeps nothing.
//!
//! The cookie, as Linux builds it (`net/ipv4/syncookies.c`), with
//! SipHash-2-4 under the host's cookie key (`HostSecret`, from the OS RNG):
//!
//! ```text
//! cookie = H(tuple, 0) + client ISN + (count << 24) + ((H(tuple, count) + mss index) mod 2^24)
//! ```
//!
//! `count` is the core's clock in 64 s periods. Because the second hash
//! mixes in the period, the key in effect rotates every 64 s; a cookie is
//! accepted in the period it was made and the next [`MAX_AGE`] (so for 128
//! to 192 s). The MSS index picks one of [`MSS_TABLE`] (the largest not
//! above the client's MSS). An ACK to a listening port that has sent
//! cookies recently is checked: `ack - 1` must be a cookie of the tuple and
//! `seq - 1`; anything else (too old, an index outside the table, forged)
//! is counted as rejected, creates no state and is answered as any stray
//! ACK is, with an RST.
//!
//! Without timestamps a cookie has no room for window scaling or
//! SACK-permitted, and like Linux in that case the cookie SYN-ACK offers
//! neither: a connection made from a cookie runs unscaled windows (at most
//! 64 KiB in flight) and without SACK. Only MSS is kept, rounded down to
//! the table.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

use crate::secret::{siphash24, tuple_bytes};

/// The MSS values a cookie can carry (Linux's `msstab`).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Length of one cookie period, ms.
pub const PERIOD_MS: u64 = 64_000;
/// Periods after the one it was made in that a cookie stays valid.
pub const MAX_AGE: u32 = 2;

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Made more than [`MAX_AGE`] periods ago (or in the future).
    Stale,
    /// Its MSS index is outside [`MSS_TABLE`]: forged or altered.
    BadMss,
}

/// What a cookie is made of.
#[derive(Debug, Clone, Copy)]
pub struct Tuple {
    /// Our address and port.
    pub local: (Ipv4Addr, u16),
    /// The client's.
    pub remote: (Ipv4Addr, u16),
}

fn h(key: (u64, u64), t: &Tuple, count: u32, which: u8) -> u32 {
    let mut b = [0u8; 17];
    b[..12].copy_from_slice(&tuple_bytes(t.local, t.remote));
    b[12..16].copy_from_slice(&count.to_le_bytes());
    b[16] = which;
    siphash24(key, &b) as u32
}

/// The period of `now_ms`.
pub fn period(now_ms: u64) -> u32 {
    (now_ms / PERIOD_MS) as u32
}

/// The cookie for a SYN with sequence number `client_isn` at `now_ms`.
pub fn make(key: (u64, u64), t: &Tuple, client_isn: u32, now_ms: u64, mss_index: usize) -> u32 {
    let count = period(now_ms);
    h(key, t, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << 24)
        .wrapping_add(h(key, t, count, 1).wrapping_add(mss_index as u32) & 0xff_ffff)
}

/// Checks `cookie` (the ACK's acknowledgement number - 1) against the tuple
/// and `client_isn` (its sequence number - 1); the MSS index if valid.
pub fn check(key: (u64, u64), t: &Tuple, client_isn: u32, cookie: u32, now_ms: u64) -> Result<usize, Reject> {
    let v = cookie.wrapping_sub(h(key, t, 0, 0)).wrapping_sub(client_isn);
    let now = period(now_ms);
    let age = now.wrapping_sub(v >> 24) & 0xff;
    if age > MAX_AGE {
        return Err(Reject::Stale);
    }
    let count = now.wrapping_sub(age);
    let idx = (v.wrapping_sub(h(key, t, count, 1))) & 0xff_ffff;
    if idx as usize >= MSS_TABLE.len() {
        return Err(Reject::BadMss);
    }
    Ok(idx as usize)
}

/// The table index for a client that announced `mss` (536 without the
/// option, RFC 9293).
pub fn mss_index(mss: Option<u16>) -> usize {
    let mss = mss.filter(|&m| m != 0).unwrap_or(536);
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0)
}

/// A SYN as the stack needs it to answer with a cookie.
#[derive(Debug, Clone, Copy)]
pub struct SynSeen {
    /// The client's ISN.
    pub seq: u32,
    /// Its MSS option.
    pub mss: Option<u16>,
}

/// Reads a SYN (an IPv4 packet); `None` if it does not parse or, when
/// `caps` asks for them to be verified, its checksums are wrong.
pub fn parse_syn(ip: &[u8], caps: &ChecksumCapabilities) -> Option<SynSeen> {
    let ipp = Ipv4Packet::new_checked(ip).ok()?;
    let iprepr = Ipv4Repr::parse(&ipp, caps).ok()?;
    let tcp = TcpPacket::new_checked(ipp.payload()).ok()?;
    let (src, dst) = (IpAddress::Ipv4(iprepr.src_addr), IpAddress::Ipv4(iprepr.dst_addr));
    let repr = TcpRepr::parse(&tcp, &src, &dst, caps).ok()?;
    Some(SynSeen { seq: repr.seq_number.0 as u32, mss: repr.max_seg_size })
}

/// Length of what [`emit`] writes for a segment with an MSS option.
pub const SYN_LEN: usize = 44;

/// Writes an IPv4 SYN (no ACK) or SYN-ACK from `src` to `dst` with an MSS
/// option and nothing else (no window scale, no SACK, no timestamps) into
/// `buf` ([`SYN_LEN`] bytes), with the checksums `caps` asks for.
#[allow(clippy::too_many_arguments)]
pub fn emit(
    buf: &mut [u8],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: Option<u32>,
    window: u16,
    mss: u16,
    caps: &ChecksumCapabilities,
) {
    let tcp = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: Some(mss),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: src.0,
        dst_addr: dst.0,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut ipp = Ipv4Packet::new_unchecked(&mut buf[..SYN_LEN]);
    ip.emit(&mut ipp, caps);
    tcp.emit(&mut TcpPacket::new_unchecked(ipp.payload_mut()), &IpAddress::Ipv4(src.0), &IpAddress::Ipv4(dst.0), caps);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tuple = Tuple { local: (Ipv4Addr::new(10, 0, 0, 1), 80), remote: (Ipv4Addr::new(10, 0, 0, 9), 40_000) };

    #[test]
    fn cookies_round_trip_within_their_window_and_not_after() {
        let key = (1, 2);
        for idx in 0..MSS_TABLE.len() {
            let c = make(key, &T, 12345, 1_000, idx);
            assert_eq!(check(key, &T, 12345, c, 1_000), Ok(idx));
            assert_eq!(check(key, &T, 12345, c, 1_000 + 2 * PERIOD_MS), Ok(idx));
            assert_eq!(check(key, &T, 12345, c, 1_000 + 3 * PERIOD_MS), Err(Reject::Stale));
            // (A client ISN a few lower only moves the index, as in Linux: it
            // takes a cookie seen on the wire to do that.)
            assert!(check(key, &T, 12345 + 1000, c, 1_000).is_err(), "another client ISN");
            assert!(check((1, 3), &T, 12345, c, 1_000).is_err(), "another key");
            let other = Tuple { remote: (T.remote.0, 40_001), ..T };
            assert!(check(key, &other, 12345, c, 1_000).is_err(), "another tuple");
        }
        // An index outside the table, made with the right key, is refused.
        assert_eq!(check(key, &T, 7, make(key, &T, 7, 0, 4), 0), Err(Reject::BadMss));
        assert_eq!(check(key, &T, 7, make(key, &T, 7, 0, 0).wrapping_add(4), 0), Err(Reject::BadMss));
    }

    #[test]
    fn the_mss_index_rounds_down() {
        assert_eq!(mss_index(None), 0);
        assert_eq!(mss_index(Some(1460)), 3);
        assert_eq!(mss_index(Some(1400)), 1);
        assert_eq!(mss_index(Some(9000)), 3);
        assert_eq!(mss_index(Some(100)), 0);
    }
}
