//! The neighbour table: IPv4 → MAC, one per host, shared by all its cores.
//!
//! Under RSS every ARP frame lands on queue 0 (ARP has no ports to hash),
//! so core 0 hears nearly every reply, while every core needs the answers.
//! The table is therefore one fixed-size, open-addressed array of slots
//! that any core reads without a lock: each slot is a seqlock of atomics
//! (sequence, IP, MAC+flags, last update). A reader loads the sequence, the
//! fields, and the sequence again, and trusts the fields only if the
//! sequence is even and unchanged. A reader that meets a slot being written
//! treats the lookup as a miss; the packet then waits for resolution one
//! more loop iteration. Writers (ARP input, static entries at start, both
//! rare) take a slot by making its sequence odd with a compare-exchange.
//!
//! Entries are never removed, only refreshed: an entry learned by ARP
//! older than the TTL is still used, and its user asks again in the
//! background. Static entries never age and ARP never overwrites them.
//!
//! Why not a per-core replica fed by channels: a replica costs one map
//! and one queue per core, loses updates when a queue fills, and shows an
//! update only after the next drain; the shared array costs one cache miss
//! after a (rare) update and nothing otherwise, since read-only cache lines
//! stay shared between cores.
//!
//! `Resolver` is the per-core half: the bounded queue of packets waiting
//! for an answer and the rate limit on requests.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use ixtcp_driver::mempool::PacketBuf;

use crate::ether::MacAddr;

const STATIC_BIT: u64 = 1 << 48;
const MAC_MASK: u64 = (1 << 48) - 1;

struct Slot {
    seq: AtomicU32,
    ip: AtomicU32,
    mac: AtomicU64,
    updated_ms: AtomicU64,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's MAC.
    pub mac: MacAddr,
    /// Learned by ARP longer ago than the TTL: still used, but worth asking
    /// again.
    pub stale: bool,
    /// Configured, never ages.
    pub is_static: bool,
}

/// The table has no free slot for a new neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborTableFull;

impl std::fmt::Display for NeighborTableFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "neighbour table full: raise neighbor_capacity")
    }
}

impl std::error::Error for NeighborTableFull {}

/// The host-wide neighbour table. Share it with `Arc`.
pub struct NeighborTable {
    slots: Box<[Slot]>,
    mask: usize,
    ttl_ms: u64,
    generation: AtomicU64,
    len: AtomicUsize,
}

impl std::fmt::Debug for NeighborTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeighborTable").field("capacity", &self.slots.len()).field("len", &self.len()).finish()
    }
}

fn slot_of(ip: u32, mask: usize) -> usize {
    (ip.wrapping_mul(0x9e37_79b9) as usize >> 7) & mask
}

impl NeighborTable {
    /// A table with room for `capacity` neighbours (rounded up to a power of
    /// two; probing keeps it at most half full, so twice that many slots),
    /// whose learned entries go stale after `ttl_ms`.
    pub fn new(capacity: usize, ttl_ms: u64) -> Arc<NeighborTable> {
        let n = (capacity.max(8) * 2).next_power_of_two();
        let slots = (0..n)
            .map(|_| Slot {
                seq: AtomicU32::new(0),
                ip: AtomicU32::new(0),
                mac: AtomicU64::new(0),
                updated_ms: AtomicU64::new(0),
            })
            .collect();
        Arc::new(NeighborTable { slots, mask: n - 1, ttl_ms, generation: AtomicU64::new(0), len: AtomicUsize::new(0) })
    }

    /// Number of neighbours known.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when no neighbour is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bumped on every insert or change: a core with packets waiting for
    /// resolution looks again only when this moved.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Looks `ip` up without blocking. `None`: unknown, or its slot is being
    /// written this instant (try again later).
    pub fn lookup(&self, ip: Ipv4Addr, now_ms: u64) -> Option<Neighbor> {
        let key = u32::from(ip);
        let mut i = slot_of(key, self.mask);
        for _ in 0..=self.mask {
            let s = &self.slots[i];
            let seq1 = s.seq.load(Ordering::Acquire);
            if seq1 & 1 == 1 {
                return None;
            }
            let slot_ip = s.ip.load(Ordering::Relaxed);
            let mac = s.mac.load(Ordering::Relaxed);
            let updated = s.updated_ms.load(Ordering::Relaxed);
            // Order the field loads before the second sequence load.
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) != seq1 {
                return None;
            }
            if slot_ip == 0 {
                return None;
            }
            if slot_ip == key {
                let is_static = mac & STATIC_BIT != 0;
                return Some(Neighbor {
                    mac: MacAddr::from_u64(mac & MAC_MASK),
                    stale: !is_static && now_ms.saturating_sub(updated) > self.ttl_ms,
                    is_static,
                });
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Adds a static entry (configuration).
    pub fn insert_static(&self, ip: Ipv4Addr, mac: MacAddr) -> Result<(), NeighborTableFull> {
        self.write(ip, mac, 0, true, true).map(|_| ())
    }

    /// Records what ARP said. `create`: add the neighbour if unknown (RFC
    /// 826: when the packet was for us); otherwise only refresh a known one.
    /// Returns whether anything was added or changed.
    pub fn learn(&self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, create: bool) -> Result<bool, NeighborTableFull> {
        self.write(ip, mac, now_ms, false, create)
    }

    fn write(
        &self,
        ip: Ipv4Addr,
        mac: MacAddr,
        now_ms: u64,
        is_static: bool,
        create: bool,
    ) -> Result<bool, NeighborTableFull> {
        let key = u32::from(ip);
        if key == 0 {
            return Ok(false);
        }
        let word = mac.to_u64() | if is_static { STATIC_BIT } else { 0 };
        let mut i = slot_of(key, self.mask);
        for _ in 0..=self.mask {
            let s = &self.slots[i];
            let seq = self.lock(s);
            let slot_ip = s.ip.load(Ordering::Relaxed);
            let outcome = if slot_ip == 0 {
                if !create || self.len() * 2 >= self.slots.len() {
                    Some(if create { Err(NeighborTableFull) } else { Ok(false) })
                } else {
                    s.ip.store(key, Ordering::Relaxed);
                    s.mac.store(word, Ordering::Relaxed);
                    s.updated_ms.store(now_ms, Ordering::Relaxed);
                    self.len.fetch_add(1, Ordering::Relaxed);
                    Some(Ok(true))
                }
            } else if slot_ip == key {
                let old = s.mac.load(Ordering::Relaxed);
                if old & STATIC_BIT != 0 && !is_static {
                    Some(Ok(false))
                } else {
                    s.mac.store(word, Ordering::Relaxed);
                    s.updated_ms.store(now_ms, Ordering::Relaxed);
                    Some(Ok(old != word))
                }
            } else {
                None
            };
            // Release: the field stores above become visible no later than
            // the even sequence that marks the slot readable again.
            s.seq.store(seq.wrapping_add(2), Ordering::Release);
            if let Some(result) = outcome {
                if matches!(result, Ok(true)) {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                return result;
            }
            i = (i + 1) & self.mask;
        }
        Err(NeighborTableFull)
    }

    /// Makes the slot's sequence odd (write in progress); returns the even
    /// value it had. Writers are rare (ARP input), so they simply spin.
    fn lock(&self, s: &Slot) -> u32 {
        loop {
            let seq = s.seq.load(Ordering::Relaxed);
            if seq & 1 == 0 && s.seq.compare_exchange_weak(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return seq;
            }
            std::hint::spin_loop();
        }
    }
}

/// A packet built but waiting for its next hop's MAC.
#[derive(Debug)]
pub(crate) struct Pending {
    pub next_hop: Ipv4Addr,
    pub buf: PacketBuf,
    pub since_ms: u64,
}

/// Per-core side of address resolution.
///
/// A packet whose next hop is unknown waits in a bounded FIFO (up to
/// `arp_pending_max` packets per core, each at most `arp_pending_timeout_ms`)
/// while an ARP request goes out on this core's own TX queue; when the
/// answer arrives (on whichever core) the table's generation moves and
/// this core sends what was waiting. Beyond the bound the packet is dropped
/// and counted (`drop_no_neighbor`), and TCP's retransmission recovers it:
/// the drop-and-retransmit of mTCP, but only after the queue has absorbed
/// the common case of a connection's first SYN.
#[derive(Debug)]
pub(crate) struct Resolver {
    pub table: Arc<NeighborTable>,
    pub pending: VecDeque<Pending>,
    pending_max: usize,
    pending_timeout_ms: u64,
    retry_ms: u64,
    /// Recent requests: (address, when), a ring for rate limiting.
    asked: [(u32, u64); ASK_BUDGET],
    asked_next: usize,
    /// Requests sent in the current `retry_ms` window, at most
    /// [`ASK_BUDGET`]: since that is the ring's size, no address can be
    /// pushed out of the ring and asked for again within `retry_ms`,
    /// however many addresses are unresolved.
    window_start_ms: u64,
    window_asked: usize,
    /// Waiting packets are looked at no more often than this.
    next_service_ms: u64,
    seen_generation: u64,
}

/// Most ARP requests one core sends per `arp_retry_ms` (and the number of
/// addresses it remembers asking for). Without a bound, a flood of SYNs
/// from spoofed on-link sources (each SYN-ACK waiting for an address that
/// never answers) turns into an ARP request storm at line rate.
pub(crate) const ASK_BUDGET: usize = 64;

/// Whether to send an ARP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Send it.
    Send,
    /// One for this address went out less than `retry_ms` ago.
    Recent,
    /// The core's budget of requests for this `retry_ms` window is spent.
    OverBudget,
}

impl Resolver {
    pub fn new(table: Arc<NeighborTable>, pending_max: usize, pending_timeout_ms: u64, retry_ms: u64) -> Resolver {
        Resolver {
            table,
            pending: VecDeque::with_capacity(pending_max),
            pending_max,
            pending_timeout_ms,
            retry_ms,
            asked: [(0, 0); ASK_BUDGET],
            asked_next: 0,
            window_start_ms: 0,
            window_asked: 0,
            next_service_ms: 0,
            seen_generation: u64::MAX,
        }
    }

    /// Whether an ARP request for `ip` should go out now: at most one per
    /// `retry_ms` per address and core, and at most [`ASK_BUDGET`] per
    /// `retry_ms` per core. Records the request if so.
    pub fn should_ask(&mut self, ip: Ipv4Addr, now_ms: u64) -> Ask {
        let key = u32::from(ip);
        let known = self.asked.iter().position(|e| e.0 == key && e.1 != 0);
        if let Some(i) = known
            && now_ms.saturating_sub(self.asked[i].1) < self.retry_ms
        {
            return Ask::Recent;
        }
        if now_ms.saturating_sub(self.window_start_ms) >= self.retry_ms {
            self.window_start_ms = now_ms;
            self.window_asked = 0;
        }
        if self.window_asked >= ASK_BUDGET {
            return Ask::OverBudget;
        }
        self.window_asked += 1;
        // A zero time marks an empty slot: record at least 1 ms.
        let when = now_ms.max(1);
        match known {
            Some(i) => self.asked[i].1 = when,
            None => {
                self.asked[self.asked_next] = (key, when);
                self.asked_next = (self.asked_next + 1) % ASK_BUDGET;
            }
        }
        Ask::Send
    }

    /// Queues a packet; gives it back if the queue is full.
    pub fn park(&mut self, next_hop: Ipv4Addr, buf: PacketBuf, now_ms: u64) -> Result<(), PacketBuf> {
        if self.pending.len() >= self.pending_max {
            return Err(buf);
        }
        self.pending.push_back(Pending { next_hop, buf, since_ms: now_ms });
        Ok(())
    }

    /// True when waiting packets deserve a look: the table changed, or the
    /// oldest has waited long enough to expire or to ask again.
    pub fn needs_service(&mut self, now_ms: u64) -> bool {
        let Some(front) = self.pending.front() else { return false };
        let generation = self.table.generation();
        if generation != self.seen_generation {
            self.seen_generation = generation;
            return true;
        }
        let period = self.retry_ms.min(self.pending_timeout_ms);
        if now_ms < self.next_service_ms || now_ms.saturating_sub(front.since_ms) < period {
            return false;
        }
        self.next_service_ms = now_ms + (period / 4).max(1);
        true
    }

    /// True if a packet parked at `since_ms` has waited too long.
    pub fn expired(&self, since_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(since_ms) >= self.pending_timeout_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, d)
    }

    #[test]
    fn requests_are_limited_per_address_and_per_core_however_many_addresses_wait() {
        let mut r = Resolver::new(NeighborTable::new(16, 1000), 256, 3000, 500);
        // 200 unresolved addresses, asked for again and again within one
        // retry interval: each at most once, and no more than the budget.
        let mut sent = 0;
        for round in 0..10 {
            for d in 0..200u32 {
                let a = Ipv4Addr::from(0x0a00_0100 + d);
                match r.should_ask(a, 1000 + round) {
                    Ask::Send => sent += 1,
                    Ask::Recent | Ask::OverBudget => {}
                }
            }
        }
        assert_eq!(sent, ASK_BUDGET);
        // The next interval has a fresh budget; an address asked for in
        // the last one is not asked again before its retry time.
        assert_eq!(r.should_ask(Ipv4Addr::from(0x0a00_0100), 1400), Ask::Recent);
        assert_eq!(r.should_ask(Ipv4Addr::from(0x0a00_0100 + 199), 1500), Ask::Send);
        assert_eq!(r.should_ask(Ipv4Addr::from(0x0a00_0100), 1500), Ask::Send);
    }

    #[test]
    fn learn_lookup_refresh_and_stale() {
        let t = NeighborTable::new(16, 1000);
        let m1 = MacAddr([2, 0, 0, 0, 0, 1]);
        let m2 = MacAddr([2, 0, 0, 0, 0, 2]);
        assert_eq!(t.lookup(ip(1), 0), None);
        assert_eq!(t.learn(ip(1), m1, 0, false), Ok(false), "refresh-only must not create");
        assert_eq!(t.lookup(ip(1), 0), None);
        let g = t.generation();
        assert_eq!(t.learn(ip(1), m1, 0, true), Ok(true));
        assert!(t.generation() > g);
        assert_eq!(t.lookup(ip(1), 500), Some(Neighbor { mac: m1, stale: false, is_static: false }));
        assert!(t.lookup(ip(1), 1500).unwrap().stale);
        assert_eq!(t.learn(ip(1), m2, 1500, false), Ok(true));
        assert_eq!(t.lookup(ip(1), 1600).unwrap().mac, m2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn static_entries_win_over_arp_and_never_age() {
        let t = NeighborTable::new(16, 1000);
        let s = MacAddr([2, 0, 0, 0, 0, 0xfe]);
        t.insert_static(ip(254), s).unwrap();
        assert_eq!(t.learn(ip(254), MacAddr([2, 9, 9, 9, 9, 9]), 5, true), Ok(false));
        let n = t.lookup(ip(254), 1_000_000).unwrap();
        assert_eq!((n.mac, n.stale, n.is_static), (s, false, true));
    }

    #[test]
    fn colliding_addresses_probe_and_a_full_table_says_so() {
        let t = NeighborTable::new(8, 1000);
        let mut added = 0;
        let mut full = false;
        for d in 1..=200u8 {
            match t.learn(ip(d), MacAddr([2, 0, 0, 0, 0, d]), 0, true) {
                Ok(_) => added += 1,
                Err(NeighborTableFull) => full = true,
            }
        }
        assert!(full);
        assert_eq!(added, t.len());
        for d in 1..=added as u8 {
            assert_eq!(t.lookup(ip(d), 0).unwrap().mac, MacAddr([2, 0, 0, 0, 0, d]), "{d}");
        }
    }

    #[test]
    fn readers_on_other_threads_never_see_a_torn_entry() {
        let t = NeighborTable::new(64, 1_000_000);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(n) = t.lookup(ip(7), 0) {
                        // Writers only ever store MACs whose six bytes are equal.
                        let b = n.mac.0;
                        assert!(b.iter().all(|&x| x == b[0]), "torn MAC {}", n.mac);
                        seen += 1;
                    }
                }
                seen
            })
        };
        for round in 0..200_000u32 {
            let b = (round % 100) as u8 * 2 + 2; // even: unicast
            t.learn(ip(7), MacAddr([b; 6]), 0, true).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        // The reader may have met the slot mid-write every time on a busy
        // machine; what matters is that it never saw a torn MAC.
        let _ = reader.join().unwrap();
        assert!(t.lookup(ip(7), 0).is_some());
    }

    #[test]
    fn resolver_rate_limits_requests_per_address() {
        let t = NeighborTable::new(8, 1000);
        let mut r = Resolver::new(t, 4, 3000, 500);
        assert_eq!(r.should_ask(ip(1), 0), Ask::Send);
        assert_eq!(r.should_ask(ip(1), 100), Ask::Recent);
        assert_eq!(r.should_ask(ip(2), 100), Ask::Send);
        assert_eq!(r.should_ask(ip(1), 600), Ask::Send);
    }
}
