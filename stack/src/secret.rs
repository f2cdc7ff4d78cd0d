//! The host's secrets and the keyed hash built on them: RFC 6528 initial
//! sequence numbers and SYN cookies (`crate::cookie`).
//!
//! One [`HostSecret`] per host, shared by its cores (`cores::build_cores`
//! makes it): 128-bit SipHash-2-4 keys from the OS RNG (`getrandom`), or
//! derived from the test seed for deterministic runs.
//!
//! **ISNs (RFC 6528).** `ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey)`, with `M` a 4 µs clock read from the core's
//! time (the injected clock, so tests on a virtual clock see exact values)
//! and `F` SipHash-2-4 of the 4-tuple, truncated to 32 bits. The same
//! 4-tuple opened again later starts `(t2 - t1) / 4 µs` further on (old
//! duplicates of an earlier incarnation stay behind), while ISNs of other
//! tuples reveal nothing about it.
//!
//! smoltcp 0.14 draws every ISN from its interface's private PRNG
//! (`tcp::Socket::random_seq_no`, `Context::rand`, both crate-private) and
//! offers no way to choose it. The core therefore leaves smoltcp its own
//! ISN and *maps* sequence numbers: when a connection's first SYN (or
//! SYN-ACK) leaves, the offset `wanted ISN - smoltcp's ISN` is fixed for
//! the connection; every segment it sends gets `seq += offset`, every
//! segment it receives `ack -= offset` (checksums adjusted incrementally,
//! RFC 1624), so the wire sees the RFC 6528 ISN and smoltcp its own. SACK
//! blocks the peer sends about our data are not mapped: smoltcp 0.14
//! ignores received SACK blocks.

use crate::error::StackError;

/// The secrets of one host.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HostSecret {
    isn_key: (u64, u64),
    cookie_key: (u64, u64),
}

impl std::fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSecret(..)")
    }
}

impl HostSecret {
    /// Fresh keys from the OS RNG (production).
    pub fn from_os() -> Result<HostSecret, StackError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| StackError::Device(format!("getrandom: {e}")))?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Ok(HostSecret { isn_key: (w(0), w(1)), cookie_key: (w(2), w(3)) })
    }

    /// Keys derived from a test seed (deterministic runs only).
    pub fn from_seed(seed: u64) -> HostSecret {
        let k = (seed, 0x6a09_e667_f3bc_c908);
        let w = |i: u64| siphash24(k, &i.to_le_bytes());
        HostSecret { isn_key: (w(1), w(2)), cookie_key: (w(3), w(4)) }
    }

    /// `from_seed` when a seed is given, else `from_os`.
    pub fn new(seed: Option<u64>) -> Result<HostSecret, StackError> {
        match seed {
            Some(s) => Ok(HostSecret::from_seed(s)),
            None => HostSecret::from_os(),
        }
    }

    /// The RFC 6528 ISN of a connection at `now_ns`.
    pub fn isn(&self, local: (std::net::Ipv4Addr, u16), remote: (std::net::Ipv4Addr, u16), now_ns: u64) -> u32 {
        let m = (now_ns / 4_000) as u32;
        m.wrapping_add(self.isn_offset(local, remote))
    }

    /// F(4-tuple, secret) of RFC 6528.
    pub fn isn_offset(&self, local: (std::net::Ipv4Addr, u16), remote: (std::net::Ipv4Addr, u16)) -> u32 {
        siphash24(self.isn_key, &tuple_bytes(local, remote)) as u32
    }

    /// The offset of a connection's TCP timestamp clock (RFC 7323 section
    /// 7.1: per connection, so TSvals reveal neither the host's uptime nor
    /// a link between its connections): the hash's other 32 bits, so it
    /// tells nothing about the ISN offset.
    pub fn ts_offset(&self, local: (std::net::Ipv4Addr, u16), remote: (std::net::Ipv4Addr, u16)) -> u32 {
        (siphash24(self.isn_key, &tuple_bytes(local, remote)) >> 32) as u32
    }

    /// The key SYN cookies are made with.
    pub(crate) fn cookie_key(&self) -> (u64, u64) {
        self.cookie_key
    }
}

/// The 4-tuple as 12 bytes: local address and port, remote address and port.
pub(crate) fn tuple_bytes(local: (std::net::Ipv4Addr, u16), remote: (std::net::Ipv4Addr, u16)) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&local.0.octets());
    b[4..6].copy_from_slice(&local.1.to_be_bytes());
    b[6..10].copy_from_slice(&remote.0.octets());
    b[10..12].copy_from_slice(&remote.1.to_be_bytes());
    b
}

#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 (Aumasson and Bernstein) of `msg` with the 128-bit key
/// `(k0, k1)` (the key's bytes are `k0` then `k1`, little-endian).
pub fn siphash24(key: (u64, u64), msg: &[u8]) -> u64 {
    let (k0, k1) = key;
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let b = u64::from_le_bytes(last) | ((msg.len() as u64 & 0xff) << 56);
    v[3] ^= b;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // The paper's appendix A: key 00..0f, message 00..0e.
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(key, &msg), 0xa129_ca61_49be_45e5);
        // vectors.h of the reference code: empty message and 8 bytes.
        assert_eq!(siphash24(key, &[]), 0x726f_db47_dd0e_0e31);
        let eight: Vec<u8> = (0..8).collect();
        assert_eq!(siphash24(key, &eight), 0x93f5_f579_9a93_2462);
    }

    #[test]
    fn isns_advance_with_the_4us_clock_and_differ_by_tuple() {
        let s = HostSecret::from_seed(1);
        let l = (Ipv4Addr::new(10, 0, 0, 1), 80);
        let r = (Ipv4Addr::new(10, 0, 0, 2), 40_000);
        let a = s.isn(l, r, 1_000_000);
        assert_eq!(s.isn(l, r, 1_000_000 + 4_000 * 1234).wrapping_sub(a), 1234);
        assert_ne!(s.isn(l, (r.0, 40_001), 1_000_000), a);
        assert_ne!(HostSecret::from_seed(2).isn(l, r, 1_000_000), a);
    }

    #[test]
    fn timestamp_offsets_differ_by_tuple_and_host_and_from_the_isn_offset() {
        let s = HostSecret::from_seed(1);
        let l = (Ipv4Addr::new(10, 0, 0, 1), 80);
        let r = (Ipv4Addr::new(10, 0, 0, 2), 40_000);
        let t = s.ts_offset(l, r);
        assert_eq!(s.ts_offset(l, r), t, "fixed for a tuple");
        assert_ne!(s.ts_offset(l, (r.0, 40_001)), t);
        assert_ne!(HostSecret::from_seed(2).ts_offset(l, r), t);
        assert_ne!(s.isn_offset(l, r), t, "the two halves of the hash");
    }
}
