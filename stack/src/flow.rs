//! The flow table: 4-tuple → connection, one per core, O(1) per packet.
//!
//! Every address on a host is the same IPv4 address, so a flow is named by
//! the remote address, the remote port and the local port: 64 bits, one
//! integer to hash and compare. The hasher is a keyed multiply-fold with a
//! per-core random key (from the OS), so a peer cannot aim tuples at one
//! bucket without knowing the key. The map is sized at start for the
//! core's connections and so never grows on the packet path.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

/// A flow as seen from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Remote IPv4 address.
    pub remote_ip: Ipv4Addr,
    /// Remote port.
    pub remote_port: u16,
    /// Local port.
    pub local_port: u16,
}

impl FlowKey {
    /// The key packed into 64 bits.
    pub fn packed(&self) -> u64 {
        (u64::from(u32::from(self.remote_ip)) << 32) | (u64::from(self.remote_port) << 16) | u64::from(self.local_port)
    }
}

impl std::fmt::Display for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} <-> :{}", self.remote_ip, self.remote_port, self.local_port)
    }
}

/// Builds [`FlowHasher`]s with a fixed random key.
#[derive(Debug, Clone, Copy)]
pub struct FlowHashBuilder {
    k0: u64,
    k1: u64,
}

impl FlowHashBuilder {
    /// A builder with the given 128-bit key.
    pub fn new(k0: u64, k1: u64) -> FlowHashBuilder {
        FlowHashBuilder { k0: k0 | 1, k1 }
    }
}

/// A keyed 64→64 bit hash, one folded 128-bit multiply per word.
#[derive(Debug, Clone, Copy)]
pub struct FlowHasher {
    state: u64,
    k1: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for FlowHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.state = fold_mul(self.state ^ v, self.k1 ^ 0x9e37_79b9_7f4a_7c15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.state, self.k1 | 1)
    }
}

impl BuildHasher for FlowHashBuilder {
    type Hasher = FlowHasher;
    #[inline]
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher { state: self.k0, k1: self.k1 }
    }
}

/// Hashing a [`FlowKey`] feeds its packed form as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedKey(pub u64);

impl std::hash::Hash for PackedKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// 4-tuple → value, preallocated.
#[derive(Debug)]
pub struct FlowTable<V> {
    map: HashMap<PackedKey, V, FlowHashBuilder>,
}

impl<V: Copy> FlowTable<V> {
    /// A table for `capacity` flows keyed with `key`.
    pub fn with_capacity(capacity: usize, key: (u64, u64)) -> FlowTable<V> {
        FlowTable { map: HashMap::with_capacity_and_hasher(capacity, FlowHashBuilder::new(key.0, key.1)) }
    }

    /// The value for `k`.
    #[inline]
    pub fn get(&self, k: &FlowKey) -> Option<V> {
        self.map.get(&PackedKey(k.packed())).copied()
    }

    /// Inserts or replaces; returns the old value.
    pub fn insert(&mut self, k: FlowKey, v: V) -> Option<V> {
        self.map.insert(PackedKey(k.packed()), v)
    }

    /// Removes `k`.
    pub fn remove(&mut self, k: &FlowKey) -> Option<V> {
        self.map.remove(&PackedKey(k.packed()))
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Flows it holds without growing.
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ip: u8, rp: u16, lp: u16) -> FlowKey {
        FlowKey { remote_ip: Ipv4Addr::new(10, 0, 0, ip), remote_port: rp, local_port: lp }
    }

    #[test]
    fn insert_get_remove_without_growing() {
        let mut t = FlowTable::with_capacity(10_000, (1, 2));
        let cap = t.capacity();
        for i in 0..10_000u16 {
            assert_eq!(t.insert(k((i % 250) as u8, 1000 + i, 80), u32::from(i)), None);
        }
        assert_eq!(t.capacity(), cap, "a preallocated table must not grow");
        assert_eq!(t.get(&k(7, 1007, 80)), Some(7));
        assert_eq!(t.get(&k(7, 1007, 81)), None);
        assert_eq!(t.remove(&k(7, 1007, 80)), Some(7));
        assert_eq!(t.get(&k(7, 1007, 80)), None);
        assert_eq!(t.len(), 9_999);
    }

    #[test]
    fn keys_differing_in_one_field_hash_apart() {
        let b = FlowHashBuilder::new(0x1234, 0x5678);
        let h = |key: FlowKey| b.hash_one(PackedKey(key.packed()));
        let base = h(k(1, 1000, 80));
        assert_ne!(base, h(k(2, 1000, 80)));
        assert_ne!(base, h(k(1, 1001, 80)));
        assert_ne!(base, h(k(1, 1000, 81)));
        // Low bits (the bucket index) spread over sequential ports.
        let mut buckets = [0u32; 64];
        for p in 0..6400u16 {
            buckets[(h(k(1, p, 80)) & 63) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (50..=150).contains(&n)), "{buckets:?}");
    }
}
