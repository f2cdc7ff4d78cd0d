//! An in-memory NIC and wire, for tests and benchmarks of the stack alone.
//!
//! [`SimNic`] behaves like the parts of an 82599 the stack relies on: per
//! queue RX and TX rings of fixed size, a mempool per queue, a receive
//! filter on the MAC, and RSS queue selection with the same Toeplitz hash
//! and redirection table over TCP and UDP 4-tuples (other frames to queue
//! 0), as the NIC programmed by the driver does. A
//! full RX ring drops the frame (a "missed packet"). [`SimLink`] joins two
//! [`SimPort`]s and can lose, duplicate, reorder and corrupt frames with a
//! seeded RNG. [`SimRouter`] is a minimal two-port IPv4 forwarder that
//! answers ARP for its addresses, for gateway tests.
//!
//! The model of the real controller (driver crate) replaces this in the
//! tests that cross crates; this one keeps the stack testable on its own.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use ixtcp_driver::dma::HeapDma;
use ixtcp_driver::mempool::{Mempool, MempoolError, PacketBuf};
use ixtcp_driver::rss::{Reta, SYMMETRIC_KEY, Toeplitz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ether::{self, Arp, ArpOp, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, Ipv4Class, MacAddr};
use crate::io::PacketIo;

struct SimQueue {
    rx: ArrayQueue<PacketBuf>,
    tx: ArrayQueue<PacketBuf>,
    pool: Arc<Mempool>,
    missed: AtomicU64,
    received: AtomicU64,
}

/// One queue pair of a [`SimNic`], as a core sees it.
pub struct SimIo {
    q: Arc<SimQueue>,
}

impl std::fmt::Debug for SimIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimIo").field("free", &self.q.pool.free_count()).finish()
    }
}

impl PacketIo for SimIo {
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.q.rx.pop() {
                Some(b) => {
                    out.push(b);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize {
        let room = self.q.tx.capacity() - self.q.tx.len();
        let n = room.min(batch.len());
        for b in batch.drain(..n) {
            // Cannot fail: one producer, room checked above.
            let _ = self.q.tx.push(b);
        }
        n
    }

    fn alloc(&mut self) -> Option<PacketBuf> {
        self.q.pool.alloc()
    }

    fn pool(&self) -> &Arc<Mempool> {
        &self.q.pool
    }

    /// The in-memory NIC inserts and checks nothing: the stack does both.
    fn checksum_offload(&self) -> bool {
        false
    }
}

/// Where a [`SimLink`] takes frames from and delivers them to.
pub trait SimPort: Send + Sync {
    /// Calls `f` with every frame transmitted since the last call.
    fn pull(&self, f: &mut dyn FnMut(&[u8]));
    /// Receives one frame from the wire.
    fn push(&self, frame: &[u8]);
}

/// An in-memory NIC with RSS.
pub struct SimNic {
    mac: MacAddr,
    queues: Vec<Arc<SimQueue>>,
    toeplitz: Toeplitz,
    reta: Reta,
}

impl std::fmt::Debug for SimNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNic").field("mac", &self.mac).field("queues", &self.queues.len()).finish()
    }
}

impl SimNic {
    /// A NIC with `queues` queue pairs of `ring` descriptors and `pool`
    /// 2 KiB buffers each, RSS with the symmetric key and a round-robin table.
    pub fn new(mac: MacAddr, queues: u16, ring: usize, pool: u32) -> Result<(Arc<SimNic>, Vec<SimIo>), MempoolError> {
        SimNic::with_buffer_size(mac, queues, ring, pool, ixtcp_driver::mempool::DEFAULT_ENTRY_SIZE)
    }

    /// [`new`](Self::new) with buffers of `buffer_size` bytes (for jumbo
    /// frames: `StackConfig::buffer_size`).
    pub fn with_buffer_size(
        mac: MacAddr,
        queues: u16,
        ring: usize,
        pool: u32,
        buffer_size: u32,
    ) -> Result<(Arc<SimNic>, Vec<SimIo>), MempoolError> {
        let qs = (0..queues.max(1))
            .map(|_| {
                Ok(Arc::new(SimQueue {
                    rx: ArrayQueue::new(ring.max(1)),
                    tx: ArrayQueue::new(ring.max(1)),
                    pool: Mempool::new(&HeapDma, pool, buffer_size)?,
                    missed: AtomicU64::new(0),
                    received: AtomicU64::new(0),
                }))
            })
            .collect::<Result<Vec<Arc<SimQueue>>, MempoolError>>()?;
        let ios = qs.iter().map(|q| SimIo { q: Arc::clone(q) }).collect();
        let nic = Arc::new(SimNic {
            mac,
            queues: qs,
            toeplitz: Toeplitz::new(&SYMMETRIC_KEY),
            reta: Reta::round_robin(queues),
        });
        Ok((nic, ios))
    }

    /// The NIC's MAC.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Frames dropped because an RX ring was full, per queue.
    pub fn missed(&self) -> Vec<u64> {
        self.queues.iter().map(|q| q.missed.load(Ordering::Relaxed)).collect()
    }

    /// Frames delivered into each queue's RX ring.
    pub fn received_per_queue(&self) -> Vec<u64> {
        self.queues.iter().map(|q| q.received.load(Ordering::Relaxed)).collect()
    }

    /// Free buffers in each queue's pool.
    pub fn free_buffers(&self) -> Vec<usize> {
        self.queues.iter().map(|q| q.pool.free_count()).collect()
    }

    /// The queue RSS picks for a frame.
    pub fn rss_queue(&self, frame: &[u8]) -> usize {
        if ether::ethertype(frame) != Some(ETHERTYPE_IPV4) {
            return 0;
        }
        match ether::classify_ipv4(&frame[ETH_HEADER_LEN..]) {
            Ok(Ipv4Class::Tcp(h)) => {
                let hash = self.toeplitz.hash_ipv4_ports(h.src, h.dst, h.src_port, h.dst_port);
                usize::from(self.reta.queue(hash)) % self.queues.len()
            }
            Ok(Ipv4Class::Other { proto: ether::IPPROTO_UDP, .. }) => {
                // The UDP 4-tuple, as MRQC.IPV4_UDP makes the 82599 do.
                let Ok(p) = ether::Ipv4Packet::new_checked(&frame[ETH_HEADER_LEN..]) else { return 0 };
                let Some(u) = p.payload().first_chunk::<4>() else { return 0 };
                let (sport, dport) = (u16::from_be_bytes([u[0], u[1]]), u16::from_be_bytes([u[2], u[3]]));
                let hash = self.toeplitz.hash_ipv4_ports(p.src(), p.dst(), sport, dport);
                usize::from(self.reta.queue(hash)) % self.queues.len()
            }
            _ => 0,
        }
    }
}

impl SimPort for SimNic {
    fn pull(&self, f: &mut dyn FnMut(&[u8])) {
        for q in &self.queues {
            while let Some(b) = q.tx.pop() {
                f(b.data());
            }
        }
    }

    fn push(&self, frame: &[u8]) {
        if frame.len() < ETH_HEADER_LEN {
            return;
        }
        let dst = MacAddr([frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]]);
        if dst != self.mac && dst != MacAddr::BROADCAST {
            return;
        }
        let q = &self.queues[self.rss_queue(frame)];
        let Some(mut b) = q.pool.alloc() else {
            q.missed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        b.reset(0);
        if !b.copy_from(frame) {
            return;
        }
        if q.rx.push(b).is_err() {
            q.missed.fetch_add(1, Ordering::Relaxed);
        } else {
            q.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Seeded wire impairments, as probabilities per frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimImpairments {
    /// Drop the frame.
    pub loss: f64,
    /// Deliver it twice.
    pub duplicate: f64,
    /// Hold it back behind the next few frames.
    pub reorder: f64,
    /// Flip one random bit.
    pub corrupt: f64,
}

/// Counters of a link direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Frames carried.
    pub frames: u64,
    /// Frames lost.
    pub lost: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames reordered.
    pub reordered: u64,
    /// Frames corrupted.
    pub corrupted: u64,
}

struct Direction {
    held: VecDeque<(u32, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
    counters: LinkCounters,
}

/// A cable between two ports.
pub struct SimLink {
    a: Arc<dyn SimPort>,
    b: Arc<dyn SimPort>,
    imp: SimImpairments,
    rng: ChaCha8Rng,
    dirs: [Direction; 2],
    /// Print every frame (debugging).
    pub trace: bool,
}

fn trace_frame(d: usize, frame: &[u8]) {
    if frame.len() < ETH_HEADER_LEN + 40 || ether::ethertype(frame) != Some(ETHERTYPE_IPV4) {
        return;
    }
    if let Ok(Ipv4Class::Tcp(h)) = ether::classify_ipv4(&frame[ETH_HEADER_LEN..]) {
        let (seq, ack, len, win) = (h.seq, h.ack, h.payload_len, h.window);
        println!("{d} {}>{} flags {:02x} seq {seq} ack {ack} len {len} win {win}", h.src_port, h.dst_port, h.flags);
    }
}

impl std::fmt::Debug for SimLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLink").field("imp", &self.imp).finish()
    }
}

impl SimLink {
    /// A loss-free link.
    pub fn new(a: Arc<dyn SimPort>, b: Arc<dyn SimPort>) -> SimLink {
        SimLink::impaired(a, b, SimImpairments::default(), 0)
    }

    /// A link with impairments drawn from `seed`.
    pub fn impaired(a: Arc<dyn SimPort>, b: Arc<dyn SimPort>, imp: SimImpairments, seed: u64) -> SimLink {
        let dir = || Direction { held: VecDeque::new(), spare: Vec::new(), counters: LinkCounters::default() };
        SimLink { a, b, imp, rng: ChaCha8Rng::seed_from_u64(seed), dirs: [dir(), dir()], trace: false }
    }

    /// Counters of the a→b (0) and b→a (1) directions.
    pub fn counters(&self) -> [LinkCounters; 2] {
        [self.dirs[0].counters, self.dirs[1].counters]
    }

    /// Moves everything transmitted so far across; returns frames moved.
    pub fn pump(&mut self) -> usize {
        let (a, b) = (Arc::clone(&self.a), Arc::clone(&self.b));
        self.carry(0, &*a, &*b) + self.carry(1, &*b, &*a)
    }

    fn carry(&mut self, d: usize, from: &dyn SimPort, to: &dyn SimPort) -> usize {
        let imp = self.imp;
        let clean = imp == SimImpairments::default();
        let (rng, dir) = (&mut self.rng, &mut self.dirs[d]);
        let mut moved = 0;
        let trace = self.trace;
        from.pull(&mut |frame| {
            if trace {
                trace_frame(d, frame);
            }
            moved += 1;
            dir.counters.frames += 1;
            if clean {
                to.push(frame);
                return;
            }
            if rng.random_bool(imp.loss) {
                dir.counters.lost += 1;
                return;
            }
            let copies = if rng.random_bool(imp.duplicate) {
                dir.counters.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut f = dir.spare.pop().unwrap_or_default();
                f.clear();
                f.extend_from_slice(frame);
                if rng.random_bool(imp.corrupt) && !f.is_empty() {
                    // Past the Ethernet header: the MAC filter would drop a
                    // corrupted destination anyway, an FCS would catch it.
                    let at = rng.random_range(ETH_HEADER_LEN.min(f.len() - 1)..f.len());
                    f[at] ^= 1 << rng.random_range(0..8);
                    dir.counters.corrupted += 1;
                }
                if rng.random_bool(imp.reorder) {
                    dir.counters.reordered += 1;
                    let behind = rng.random_range(1..4u32);
                    dir.held.push_back((behind, f));
                    continue;
                }
                to.push(&f);
                dir.spare.push(f);
                // Frames held back go out after a few others.
                for _ in 0..dir.held.len() {
                    let Some((n, h)) = dir.held.pop_front() else { break };
                    if n <= 1 {
                        to.push(&h);
                        dir.spare.push(h);
                    } else {
                        dir.held.push_back((n - 1, h));
                    }
                }
            }
        });
        if moved == 0 {
            // Quiet wire: release what was held back.
            while let Some((_, h)) = dir.held.pop_front() {
                to.push(&h);
                dir.spare.push(h);
                moved += 1;
            }
        }
        moved
    }
}

/// One side of a [`SimRouter`].
pub struct RouterPort {
    router: Arc<Mutex<RouterCore>>,
    side: usize,
}

struct RouterSide {
    mac: MacAddr,
    ip: Ipv4Addr,
    prefix: u8,
    out: VecDeque<Vec<u8>>,
}

struct RouterCore {
    sides: [RouterSide; 2],
    /// Hosts the router knows, by address.
    hosts: Vec<(Ipv4Addr, MacAddr)>,
    forwarded: u64,
}

/// A two-port IPv4 router: answers ARP for its two addresses and forwards
/// between the two subnets, rewriting MACs from a static host table.
pub struct SimRouter {
    core: Arc<Mutex<RouterCore>>,
}

fn same_net(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(a) & m == u32::from(b) & m
}

impl SimRouter {
    /// A router with side 0 at `a` and side 1 at `b` (MAC, address, prefix)
    /// that knows `hosts`.
    pub fn new(a: (MacAddr, Ipv4Addr, u8), b: (MacAddr, Ipv4Addr, u8), hosts: Vec<(Ipv4Addr, MacAddr)>) -> SimRouter {
        let side = |(mac, ip, prefix)| RouterSide { mac, ip, prefix, out: VecDeque::new() };
        SimRouter { core: Arc::new(Mutex::new(RouterCore { sides: [side(a), side(b)], hosts, forwarded: 0 })) }
    }

    /// The port of side `i` (0 or 1).
    pub fn port(&self, side: usize) -> Arc<RouterPort> {
        Arc::new(RouterPort { router: Arc::clone(&self.core), side: side.min(1) })
    }

    /// Frames forwarded.
    pub fn forwarded(&self) -> u64 {
        self.core.lock().map(|c| c.forwarded).unwrap_or(0)
    }
}

impl SimPort for RouterPort {
    fn pull(&self, f: &mut dyn FnMut(&[u8])) {
        let frames: Vec<Vec<u8>> = match self.router.lock() {
            Ok(mut c) => c.sides[self.side].out.drain(..).collect(),
            Err(_) => return,
        };
        for fr in frames {
            f(&fr);
        }
    }

    fn push(&self, frame: &[u8]) {
        let Ok(mut c) = self.router.lock() else { return };
        let me = self.side;
        match ether::ethertype(frame) {
            Some(ETHERTYPE_ARP) => {
                let Ok(arp) = Arp::parse(&frame[ETH_HEADER_LEN..]) else { return };
                let side = &mut c.sides[me];
                if arp.op == ArpOp::Request && arp.target_ip == side.ip {
                    let reply = Arp {
                        op: ArpOp::Reply,
                        sender_mac: side.mac,
                        sender_ip: side.ip,
                        target_mac: arp.sender_mac,
                        target_ip: arp.sender_ip,
                    };
                    let mut out = vec![0u8; 60];
                    let _ = reply.emit_frame(&mut out);
                    side.out.push_back(out);
                }
            }
            Some(ETHERTYPE_IPV4) => {
                if frame[0..6] != c.sides[me].mac.0 {
                    return;
                }
                let Ok(ip) = ether::Ipv4Packet::new_checked(&frame[ETH_HEADER_LEN..]) else { return };
                let dst = ip.dst();
                let other = 1 - me;
                if !same_net(dst, c.sides[other].ip, c.sides[other].prefix) {
                    return;
                }
                let Some(&(_, host_mac)) = c.hosts.iter().find(|(ip, _)| *ip == dst) else { return };
                let mut out = frame.to_vec();
                let src = c.sides[other].mac;
                if let Some(h) = out.first_chunk_mut() {
                    ether::write_eth_header(h, host_mac, src, ETHERTYPE_IPV4);
                }
                c.sides[other].out.push_back(out);
                c.forwarded += 1;
            }
            _ => {}
        }
    }
}
