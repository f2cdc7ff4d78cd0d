//! Receive-side scaling: the Toeplitz hash and the redirection table
//! (82599 datasheet 7.1.2.8).
//!
//! One implementation serves the driver (to program RSSRK/RETA), the model
//! (to pick the queue of a received frame) and the stack (to choose local
//! ports whose replies come back to the calling core).

use std::net::Ipv4Addr;

/// A 40-byte RSS key, in the byte order the hash consumes it.
pub type RssKey = [u8; 40];

/// Number of entries in the redirection table.
pub const RETA_ENTRIES: usize = 128;

/// The symmetric key: `6d 5a` repeated. Its 16-bit period makes the hash of
/// (src, dst, sport, dport) equal the hash of (dst, src, dport, sport), so
/// both directions of a flow land on the same queue index.
pub const SYMMETRIC_KEY: RssKey = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The Microsoft/Intel verification key (82599 datasheet 7.1.2.8.3).
pub const VERIFICATION_KEY: RssKey = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`: for every set bit `i` of the
/// input (most significant bit of the first byte first), XOR in the 32 bits
/// of the key that start at bit `i`.
///
/// Inputs longer than 36 bytes are hashed over their first 36 bytes (the
/// key has no more windows); RSS inputs are at most 36 bytes.
pub fn toeplitz_hash(key: &RssKey, input: &[u8]) -> u32 {
    let mut hash = 0u32;
    // The 32-bit window of the key starting at the current bit, with the
    // following key bits queued up in `next` as we shift.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().take(key.len() - 4).enumerate() {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// A Toeplitz hasher with the key's windows precomputed per input byte
/// value: one table lookup per input byte instead of eight shifts, for the
/// hot paths (the model's receive, the stack's port search).
#[derive(Clone)]
pub struct Toeplitz {
    key: RssKey,
    /// `table[i][b]` is the hash contribution of byte value `b` at input
    /// position `i`.
    table: Box<[[u32; 256]; 36]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Toeplitz {
    /// Precomputes the tables for `key`.
    pub fn new(key: &RssKey) -> Toeplitz {
        let mut table = Box::new([[0u32; 256]; 36]);
        for (pos, row) in table.iter_mut().enumerate() {
            for bit in 0..8 {
                let mut one = [0u8; 36];
                one[pos] = 0x80 >> bit;
                let contribution = toeplitz_hash(key, &one[..=pos]);
                for (value, slot) in row.iter_mut().enumerate() {
                    if value & (0x80 >> bit) != 0 {
                        *slot ^= contribution;
                    }
                }
            }
        }
        Toeplitz { key: *key, table }
    }

    /// The key the tables were built from.
    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// Same result as [`toeplitz_hash`] with this key.
    pub fn hash(&self, input: &[u8]) -> u32 {
        input.iter().zip(self.table.iter()).fold(0, |h, (&b, row)| h ^ row[usize::from(b)])
    }

    /// Hash of a TCP/IPv4 (or UDP/IPv4) 4-tuple, as the 82599 computes it for
    /// a received packet with this source and destination.
    pub fn hash_ipv4_ports(&self, src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> u32 {
        self.hash(&ipv4_ports_input(src, dst, src_port, dst_port))
    }

    /// Hash over the IPv4 addresses only (non-TCP/UDP IPv4 packets).
    pub fn hash_ipv4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        self.hash(&ipv4_input(src, dst))
    }
}

/// The hash input for TCP/IPv4: source address, destination address,
/// source port, destination port, all in network byte order.
pub fn ipv4_ports_input(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[8..10].copy_from_slice(&src_port.to_be_bytes());
    b[10..12].copy_from_slice(&dst_port.to_be_bytes());
    b
}

/// The hash input for IPv4 without ports.
pub fn ipv4_input(src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b
}

/// The 128-entry redirection table: RSS queue = `RETA[hash & 0x7F] & 0xF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reta {
    entries: [u8; RETA_ENTRIES],
}

impl Reta {
    /// Entries spread round robin over `queues` queues (`i % queues`), the
    /// default of Linux and DPDK. `queues` is clamped to 1..=16.
    pub fn round_robin(queues: u16) -> Reta {
        let n = queues.clamp(1, 16) as usize;
        let mut entries = [0u8; RETA_ENTRIES];
        for (i, e) in entries.iter_mut().enumerate() {
            *e = (i % n) as u8;
        }
        Reta { entries }
    }

    /// A table from explicit entries (only the low 4 bits are used by the
    /// 82599).
    pub fn from_entries(entries: [u8; RETA_ENTRIES]) -> Reta {
        Reta { entries }
    }

    /// The raw entries.
    pub fn entries(&self) -> &[u8; RETA_ENTRIES] {
        &self.entries
    }

    /// The queue a hash selects.
    pub fn queue(&self, hash: u32) -> u16 {
        u16::from(self.entries[(hash & 0x7F) as usize] & 0xF)
    }

    /// The value of register RETA(`i`), `i` in 0..32: entry `4i + j` in byte
    /// `j`.
    pub fn register(&self, i: usize) -> u32 {
        u32::from_le_bytes([
            self.entries[4 * i],
            self.entries[4 * i + 1],
            self.entries[4 * i + 2],
            self.entries[4 * i + 3],
        ])
    }

    /// Rebuilds a table from the 32 register values.
    pub fn from_registers(regs: &[u32; 32]) -> Reta {
        let mut entries = [0u8; RETA_ENTRIES];
        for (i, r) in regs.iter().enumerate() {
            entries[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
        }
        Reta { entries }
    }
}

/// The value of register RSSRK(`i`), `i` in 0..10: key bytes packed little
/// endian (byte `4i` in bits 7:0).
pub fn rssrk_register(key: &RssKey, i: usize) -> u32 {
    u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
}

/// Rebuilds a key from the 10 RSSRK register values.
pub fn key_from_registers(regs: &[u32; 10]) -> RssKey {
    let mut key = [0u8; 40];
    for (i, r) in regs.iter().enumerate() {
        key[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// (src, sport, dst, dport, IPv4 hash, TCP/IPv4 hash) from the 82599
    /// datasheet's RSS verification suite (7.1.2.8.3).
    const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178),
        ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea),
        ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a),
        ("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f),
        ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2),
    ];

    /// IPv6 vectors from the same suite: (src, sport, dst, dport, IPv6 hash,
    /// TCP/IPv6 hash).
    const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        ("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5, 0x40207d3d),
        ("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461c, 0xdde51bbf),
        ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61e985, 0x02d1feef),
    ];

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn datasheet_ipv4_vectors() {
        let fast = Toeplitz::new(&VERIFICATION_KEY);
        for (src, sp, dst, dp, ip_hash, tcp_hash) in V4 {
            let (src, dst) = (v4(src), v4(dst));
            assert_eq!(toeplitz_hash(&VERIFICATION_KEY, &ipv4_input(src, dst)), ip_hash, "{src} {dst}");
            assert_eq!(toeplitz_hash(&VERIFICATION_KEY, &ipv4_ports_input(src, dst, sp, dp)), tcp_hash, "{src}:{sp}");
            assert_eq!(fast.hash_ipv4(src, dst), ip_hash);
            assert_eq!(fast.hash_ipv4_ports(src, dst, sp, dp), tcp_hash);
        }
    }

    #[test]
    fn datasheet_ipv6_vectors() {
        let fast = Toeplitz::new(&VERIFICATION_KEY);
        for (src, sp, dst, dp, ip_hash, tcp_hash) in V6 {
            let src: Ipv6Addr = src.parse().unwrap();
            let dst: Ipv6Addr = dst.parse().unwrap();
            let mut input = Vec::new();
            input.extend_from_slice(&src.octets());
            input.extend_from_slice(&dst.octets());
            assert_eq!(toeplitz_hash(&VERIFICATION_KEY, &input), ip_hash, "{src}");
            assert_eq!(fast.hash(&input), ip_hash);
            input.extend_from_slice(&sp.to_be_bytes());
            input.extend_from_slice(&dp.to_be_bytes());
            assert_eq!(toeplitz_hash(&VERIFICATION_KEY, &input), tcp_hash, "{src}");
            assert_eq!(fast.hash(&input), tcp_hash);
        }
    }

    #[test]
    fn symmetric_key_hashes_both_directions_alike() {
        let t = Toeplitz::new(&SYMMETRIC_KEY);
        for (src, sp, dst, dp, _, _) in V4 {
            let (src, dst) = (v4(src), v4(dst));
            assert_eq!(t.hash_ipv4_ports(src, dst, sp, dp), t.hash_ipv4_ports(dst, src, dp, sp));
            assert_eq!(t.hash_ipv4(src, dst), t.hash_ipv4(dst, src));
        }
        // The verification key is not symmetric: the property is the key's.
        let ms = Toeplitz::new(&VERIFICATION_KEY);
        let (a, b) = (v4("66.9.149.187"), v4("161.142.100.80"));
        assert_ne!(ms.hash_ipv4_ports(a, b, 2794, 1766), ms.hash_ipv4_ports(b, a, 1766, 2794));
    }

    #[test]
    fn reta_registers_pack_four_entries_little_endian() {
        let reta = Reta::round_robin(4);
        assert_eq!(reta.register(0), 0x0302_0100);
        assert_eq!(Reta::from_registers(&std::array::from_fn(|i| reta.register(i))), reta);
        assert_eq!(reta.queue(0x7F), 3);
        assert_eq!(reta.queue(0x80), 0);
        let key_regs: [u32; 10] = std::array::from_fn(|i| rssrk_register(&VERIFICATION_KEY, i));
        assert_eq!(key_regs[0], 0xda56_5a6d);
        assert_eq!(key_from_registers(&key_regs), VERIFICATION_KEY);
    }

    #[test]
    fn round_robin_clamps_to_sixteen_queues() {
        assert!(Reta::round_robin(64).entries().iter().all(|&e| e < 16));
        assert!(Reta::round_robin(0).entries().iter().all(|&e| e == 0));
    }
}
