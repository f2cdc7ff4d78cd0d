//! Test harness: hosts of several stack cores over the in-memory NIC and
//! wire, driven from one thread with a virtual clock.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ixtcp_stack::sim::{SimImpairments, SimIo, SimLink, SimPort};
use ixtcp_stack::{ConnId, Event, MacAddr, PacketIo, StackConfig, StackCore};

pub type Core = StackCore<SimIo>;

/// A host of stack cores over the in-memory NIC (the testkit's).
pub use ixtcp_testkit::hosts::SimHost as Host;

pub fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

/// Ring sizes that let one side's whole TX batch land in the other's RX
/// ring: the sim has no line rate to pace senders.
pub fn base_config(ip: Ipv4Addr, cores: u16) -> StackConfig {
    StackConfig {
        cores,
        rx_ring_size: 4096,
        tx_ring_size: 512,
        rx_burst: 512,
        mempool_size: 8192,
        ..StackConfig::new(ip, 24)
    }
}

pub struct World {
    pub now_ns: u64,
    pub hosts: Vec<Host>,
    pub links: Vec<SimLink>,
    /// Virtual time per step while packets flow.
    pub quantum_ns: u64,
    pub steps: u64,
}

impl World {
    pub fn pair(a: Host, b: Host, imp: SimImpairments, seed: u64) -> World {
        let link = SimLink::impaired(
            Arc::clone(&a.nic) as Arc<dyn SimPort>,
            Arc::clone(&b.nic) as Arc<dyn SimPort>,
            imp,
            seed,
        );
        World { now_ns: 1_000_000, hosts: vec![a, b], links: vec![link], quantum_ns: 20_000, steps: 0 }
    }

    /// One step: every core of every host polls (with `app` between ingress
    /// and egress), then the wires move. When nothing moved, the clock jumps
    /// to the earliest wake-up. Returns frames moved by the wires.
    pub fn step(&mut self, app: &mut dyn FnMut(usize, &mut Core)) -> usize {
        self.steps += 1;
        let now = self.now_ns;
        let mut work = 0;
        for (h, host) in self.hosts.iter_mut().enumerate() {
            for core in host.cores.iter_mut() {
                let (out, ()) = core.poll_with(now, |c| app(h, c));
                work += out.received + out.sent;
            }
        }
        let moved: usize = self.links.iter_mut().map(|l| l.pump()).sum();
        if moved == 0 && work == 0 {
            let next = self
                .hosts
                .iter()
                .flat_map(|h| h.cores.iter())
                .filter_map(|c| c.next_wakeup_ns())
                .min()
                .unwrap_or(now + 1_000_000);
            self.now_ns = next.max(now + self.quantum_ns);
        } else {
            self.now_ns += self.quantum_ns;
        }
        moved
    }

    /// Steps until `done` or `max_virtual_ns` of virtual time passed.
    pub fn run_until(
        &mut self,
        max_virtual_ns: u64,
        app: &mut dyn FnMut(usize, &mut Core),
        done: &mut dyn FnMut(&World) -> bool,
    ) -> bool {
        let end = self.now_ns + max_virtual_ns;
        while self.now_ns < end {
            self.step(app);
            if done(self) {
                return true;
            }
        }
        false
    }

    pub fn core(&mut self, host: usize, core: usize) -> &mut Core {
        &mut self.hosts[host].cores[core]
    }
}

/// Deterministic per-stream content: byte k of a stream with base b is
/// TABLE[(b + k) % P]. Slices up to 64 KiB are contiguous.
pub struct Pattern {
    table: Vec<u8>,
}

pub const PATTERN_PERIOD: usize = 65_521;

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut table = vec![0u8; PATTERN_PERIOD + 65_536];
        rng.fill_bytes(&mut table[..PATTERN_PERIOD]);
        for i in PATTERN_PERIOD..table.len() {
            table[i] = table[i % PATTERN_PERIOD];
        }
        Pattern { table }
    }

    pub fn slice(&self, base: usize, offset: usize, len: usize) -> &[u8] {
        let start = (base + offset) % PATTERN_PERIOD;
        &self.table[start..start + len.min(65_536)]
    }

    /// Index of the first byte of `data` that differs from the stream.
    pub fn mismatch(&self, base: usize, offset: usize, data: &[u8]) -> Option<usize> {
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(65_536);
            let want = self.slice(base, offset + done, n);
            if let Some(i) = want.iter().zip(&data[done..done + n]).position(|(a, b)| a != b) {
                return Some(done + i);
            }
            done += n;
        }
        None
    }
}

/// One end of a bidirectional bulk transfer.
#[derive(Debug, Clone)]
pub struct Stream {
    pub send_base: usize,
    pub recv_base: usize,
    pub sent: usize,
    pub received: usize,
    pub total: usize,
    pub closed: bool,
    pub peer_done: bool,
}

/// Per-core application: pushes `total` bytes each way on every
/// connection, verifies what arrives, closes when both directions are done.
/// The connections an event of this turn names, draining the events.
pub fn conn_events<P: PacketIo>(core: &mut StackCore<P>) -> Vec<ConnId> {
    core.drain_events()
        .filter_map(|e| match e {
            Event::Conn { id, .. } => Some(id),
            _ => None,
        })
        .collect()
}

pub struct BulkApp {
    pub pattern: Arc<Pattern>,
    pub total: usize,
    pub streams: Vec<HashMap<ConnId, Stream>>,
    pub finished: usize,
    pub errors: Vec<String>,
    buf: Vec<u8>,
}

impl BulkApp {
    pub fn new(pattern: Arc<Pattern>, total: usize, cores: usize) -> BulkApp {
        BulkApp {
            pattern,
            total,
            streams: (0..cores).map(|_| HashMap::new()).collect(),
            finished: 0,
            errors: Vec::new(),
            buf: vec![0; 65_536],
        }
    }

    /// Starts tracking a connection whose client port is `cport`.
    pub fn add(&mut self, core: usize, id: ConnId, cport: u16, is_client: bool) {
        let (a, b) = ((usize::from(cport) * 7) % PATTERN_PERIOD, (usize::from(cport) * 13 + 1) % PATTERN_PERIOD);
        let (send_base, recv_base) = if is_client { (a, b) } else { (b, a) };
        self.streams[core].insert(
            id,
            Stream { send_base, recv_base, sent: 0, received: 0, total: self.total, closed: false, peer_done: false },
        );
    }

    /// Accepts every connection waiting on `port` of `core` (core number
    /// `core_idx`) as a server stream, and adds each to `ids`.
    pub fn accept_all<P: PacketIo>(
        &mut self,
        core_idx: usize,
        core: &mut StackCore<P>,
        port: u16,
        ids: &mut Vec<ConnId>,
    ) {
        while let Some(id) = core.accept(port) {
            let (_, remote) = core.endpoints(id).unwrap();
            self.add(core_idx, id, remote.port(), false);
            ids.push(id);
        }
    }

    /// Moves data on every connection of `core` that an event named.
    pub fn service<P: ixtcp_stack::PacketIo>(&mut self, core_idx: usize, core: &mut StackCore<P>, ids: &[ConnId]) {
        for &id in ids {
            let Some(s) = self.streams[core_idx].get_mut(&id) else { continue };
            if s.closed {
                continue;
            }
            // Read until it would block.
            loop {
                match core.recv(id, &mut self.buf) {
                    Ok(0) => {
                        s.peer_done = true;
                        break;
                    }
                    Ok(n) => {
                        if let Some(i) = self.pattern.mismatch(s.recv_base, s.received, &self.buf[..n]) {
                            self.errors.push(format!("{id}: byte {} differs", s.received + i));
                        }
                        s.received += n;
                    }
                    Err(ixtcp_stack::StackError::WouldBlock) => break,
                    Err(e) => {
                        self.errors.push(format!("{id}: recv: {e}"));
                        s.closed = true;
                        break;
                    }
                }
            }
            while s.sent < s.total && !s.closed {
                let n = (s.total - s.sent).min(16_384);
                match core.send(id, self.pattern.slice(s.send_base, s.sent, n)) {
                    Ok(k) => s.sent += k,
                    Err(ixtcp_stack::StackError::WouldBlock) => break,
                    Err(e) => {
                        self.errors.push(format!("{id}: send: {e}"));
                        s.closed = true;
                    }
                }
            }
            if !s.closed && s.sent == s.total && s.received == s.total {
                s.closed = true;
                if s.received > s.total {
                    self.errors.push(format!("{id}: received {} > {}", s.received, s.total));
                }
                let _ = core.close(id);
                self.finished += 1;
            }
        }
    }
}
pub mod model;
