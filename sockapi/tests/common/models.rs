//! The shared suite over the real stack: two hosts (10.0.0.1 and
//! 10.0.0.2), each an 82599 model driven by the real driver with one stack
//! core per test core, joined by an in-memory link, presented to sockapi as
//! **one** engine per core ([`PairEngine`]), so that test bodies written for
//! one host that connects to itself run unchanged.
//!
//! Listeners live on the server host (10.0.0.1), connections are opened by
//! the client host (10.0.0.2) unless they are for another address, and
//! every address the engine reports has the client's IP replaced by the
//! server's: seen from the test, it is one host talking to itself, while
//! every segment crosses both NICs and the link. Ids are interleaved
//! (server slot i → 2i, client slot i → 2i + 1) so both fit one id space.
//!
//! The hosts are the test kit's [`ModelHost`]s (the driver's `Device::init`
//! and the stack's `build_cores`, as in production); a model moves frames
//! only when pumped, which each half's ingress does first.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ixtcp_driver::device::{DeviceHandle, QueuePair};
use ixtcp_driver::model::{Model82599, ModelRegs};
use ixtcp_driver::time::{Clock, MonotonicClock, VirtualClock};
use ixtcp_driver::wire::{Link, LinkConfig};
use ixtcp_sockapi::StackEngine;
use ixtcp_sockapi::engine::{ConnId, ConnState, Engine, EngineError, EngineEvent, ListenerId, SockOpt};
use ixtcp_sockapi::testing::{TestConfig, TestStats};
use ixtcp_stack::{CoreStats, StackConfig, StatsMirror};
use ixtcp_testkit::hosts::ModelHost;

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The stack configuration a [`TestConfig`] stands for.
fn stack_config(ip: Ipv4Addr, cores: u16, t: &TestConfig) -> StackConfig {
    StackConfig {
        cores,
        // A /8, so that 10.9.9.9 is on the link and simply never answers.
        prefix_len: 8,
        rx_ring_size: 256,
        tx_ring_size: 256,
        mempool_size: 2048,
        socket_rx_buffer: t.recv_buffer.max(1024),
        socket_tx_buffer: t.send_buffer.max(1024),
        ephemeral_first: t.ephemeral_ports.0,
        ephemeral_last: t.ephemeral_ports.1,
        // smoltcp retransmits a SYN after about a second: a few retries.
        connect_timeout_ms: u64::from(t.syn_retries).saturating_mul(700).clamp(1_500, 600_000),
        arp_pending_timeout_ms: 300,
        arp_retry_ms: 100,
        time_wait_ms: 200,
        orphan_timeout_ms: 5_000,
        ..StackConfig::new(ip, 8)
    }
}

/// Counters of both hosts, as the test engine's [`TestStats`] names them,
/// and the switch that makes the client host vanish.
#[derive(Clone, Default)]
pub struct PairStats {
    server: Vec<Arc<StatsMirror>>,
    client: Vec<Arc<StatsMirror>>,
    client_gone: Arc<AtomicBool>,
}

fn sum(ms: &[Arc<StatsMirror>]) -> CoreStats {
    let mut t = CoreStats::default();
    for m in ms {
        t.add(&m.load());
    }
    t
}

impl PairStats {
    /// From now on the client host neither receives nor sends anything:
    /// a peer that has gone away without a word (power cut, cable pulled).
    pub fn client_vanishes(&self) {
        self.client_gone.store(true, Ordering::Relaxed);
    }

    /// The server host's counters, summed over its cores.
    pub fn server(&self) -> CoreStats {
        sum(&self.server)
    }

    /// What maps: handshakes on the server, refusals and ARP-starved
    /// segments on the client, backlog drops on the server, resets and
    /// normal closes on both. `fins` counts connections closed normally
    /// (FIN both ways) on either host, not FIN segments.
    pub fn test_stats(&self) -> TestStats {
        let (s, c) = (sum(&self.server), sum(&self.client));
        TestStats {
            established: s.conns_opened_passive,
            refused: c.conns_refused,
            syns_dropped: s.drop_backlog_full + c.drop_no_neighbor,
            fins: s.conns_closed + c.conns_closed,
            resets: s.conns_reset + c.conns_reset,
            bytes: 0,
            datagrams: s.rx_udp + c.rx_udp,
            datagrams_dropped: s.drop_udp_queue_full + c.drop_udp_queue_full,
            unreachable: s.icmp_port_unreachable_sent + c.icmp_port_unreachable_sent,
        }
    }
}

type Half = StackEngine<QueuePair<ModelRegs>>;

/// One core of each host as one engine. See the module docs.
pub struct PairEngine {
    server: Half,
    client: Half,
    server_model: Model82599,
    client_model: Model82599,
    client_gone: Arc<AtomicBool>,
    // Dropped after the engines (field order): stops the devices.
    _devices: Arc<std::sync::Mutex<Devices>>,
}

/// Each host's control handle and model, once its cores became engines.
pub struct Devices {
    hosts: Vec<(DeviceHandle<ModelRegs>, Model82599)>,
}

impl Drop for Devices {
    fn drop(&mut self) {
        for (handle, model) in &self.hosts {
            let faults = model.faults();
            if !faults.is_empty() && !std::thread::panicking() {
                panic!("model faults: {faults:?}");
            }
            handle.shutdown();
        }
    }
}

/// `cores` pair engines over two linked models, and their counters; on a
/// virtual clock when `simulated` (one thread drives everything).
pub fn pair_engines(cores: u16, t: &TestConfig, simulated: bool) -> (Vec<PairEngine>, PairStats) {
    let vclock = simulated.then(VirtualClock::new);
    let clock: Arc<dyn Clock> = match &vclock {
        Some(v) => Arc::new(v.clone()),
        None => Arc::new(MonotonicClock::new()),
    };
    let (a, b) = Link::pair(LinkConfig::unlimited(), Arc::clone(&clock));
    let mut stats = PairStats::default();
    let mut open = |ip: Ipv4Addr, wire: Box<dyn ixtcp_driver::wire::Wire>, mac: u8| {
        let cfg = stack_config(ip, cores, t);
        let host = ModelHost::new([2, 0, 0, 0, 0, mac], Some(wire), cfg, Some(u64::from(mac)), clock.now_ns());
        let ModelHost { cores, handle, model, .. } = host;
        let halves: Vec<Half> = cores
            .into_iter()
            .map(|core| {
                let mirror = Arc::new(StatsMirror::default());
                let list = if ip == SERVER_IP { &mut stats.server } else { &mut stats.client };
                list.push(Arc::clone(&mirror));
                let engine = match &vclock {
                    Some(v) => StackEngine::on_virtual_clock(core, v.clone()),
                    None => StackEngine::new(core, Arc::clone(&clock)),
                };
                engine.with_stats(mirror, 1).with_idle_wait(t.idle_wait)
            })
            .collect();
        ((handle, model), halves)
    };
    let (sdev, servers) = open(SERVER_IP, Box::new(a), 1);
    let (cdev, clients) = open(CLIENT_IP, Box::new(b), 2);
    let (server_model, client_model) = (sdev.1.clone(), cdev.1.clone());
    let devices = Arc::new(std::sync::Mutex::new(Devices { hosts: vec![sdev, cdev] }));
    let engines = servers
        .into_iter()
        .zip(clients)
        .map(|(server, client)| PairEngine {
            server,
            client,
            server_model: server_model.clone(),
            client_model: client_model.clone(),
            client_gone: Arc::clone(&stats.client_gone),
            _devices: Arc::clone(&devices),
        })
        .collect();
    (engines, stats)
}

fn server_id(id: ConnId) -> ConnId {
    ConnId { index: id.index * 2, generation: id.generation }
}

fn client_id(id: ConnId) -> ConnId {
    ConnId { index: id.index * 2 + 1, generation: id.generation }
}

/// Which half an interleaved id belongs to, and its id there.
fn split(id: ConnId) -> (bool, ConnId) {
    (id.index % 2 == 1, ConnId { index: id.index / 2, generation: id.generation })
}

/// The client's address, shown as the server's.
fn as_one_host(a: SocketAddrV4) -> SocketAddrV4 {
    if *a.ip() == CLIENT_IP { SocketAddrV4::new(SERVER_IP, a.port()) } else { a }
}

impl PairEngine {
    fn half(&self, id: ConnId) -> (&Half, ConnId) {
        match split(id) {
            (true, i) => (&self.client, i),
            (false, i) => (&self.server, i),
        }
    }

    fn half_mut(&mut self, id: ConnId) -> (&mut Half, ConnId) {
        match split(id) {
            (true, i) => (&mut self.client, i),
            (false, i) => (&mut self.server, i),
        }
    }
}

impl Engine for PairEngine {
    fn now_ns(&self) -> u64 {
        self.server.now_ns()
    }
    fn ingress(&mut self, now_ns: u64) {
        self.server_model.pump();
        self.server.ingress(now_ns);
        if !self.client_gone.load(Ordering::Relaxed) {
            self.client_model.pump();
            self.client.ingress(now_ns);
        }
    }
    fn egress(&mut self, now_ns: u64) {
        self.server.egress(now_ns);
        if !self.client_gone.load(Ordering::Relaxed) {
            self.client.egress(now_ns);
        }
    }
    fn take_events(&mut self, out: &mut Vec<EngineEvent>) {
        let start = out.len();
        self.server.take_events(out);
        for e in &mut out[start..] {
            if let EngineEvent::Conn { id, .. } = e {
                *id = server_id(*id);
            }
        }
        let start = out.len();
        self.client.take_events(out);
        for e in &mut out[start..] {
            if let EngineEvent::Conn { id, .. } = e {
                *id = client_id(*id);
            }
        }
    }
    fn idle_wait(&self) -> Option<Duration> {
        self.server.idle_wait()
    }
    fn virtual_clock(&self) -> Option<&VirtualClock> {
        self.server.virtual_clock()
    }
    fn next_wakeup_ns(&self) -> Option<u64> {
        let client = if self.client_gone.load(Ordering::Relaxed) { None } else { self.client.next_wakeup_ns() };
        [self.server.next_wakeup_ns(), client].into_iter().flatten().min()
    }
    fn egress_unanswerable(&mut self, now_ns: u64) {
        self.server.egress_unanswerable(now_ns);
        if !self.client_gone.load(Ordering::Relaxed) {
            self.client.egress_unanswerable(now_ns);
        }
    }
    fn connections(&self) -> usize {
        self.server.connections() + self.client.connections()
    }
    fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId, EngineError> {
        self.server.listen(addr, backlog)
    }
    fn accept(&mut self, listener: ListenerId) -> Result<ConnId, EngineError> {
        self.server.accept(listener).map(server_id)
    }
    fn close_listener(&mut self, listener: ListenerId) -> Result<(), EngineError> {
        self.server.close_listener(listener)
    }
    fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4, EngineError> {
        self.server.listener_addr(listener)
    }
    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError> {
        let local = match local {
            Some(l) if l.ip().is_unspecified() || *l.ip() == SERVER_IP => {
                // One host: a port the server listens on is taken.
                if l.port() != 0 && self.server.core().listening_ports().contains(&l.port()) {
                    return Err(EngineError::AddrInUse);
                }
                Some(SocketAddrV4::new(CLIENT_IP, l.port()))
            }
            Some(_) => return Err(EngineError::AddrNotAvailable),
            None => None,
        };
        self.client.connect(remote, local).map(client_id)
    }
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError> {
        let (h, id) = self.half_mut(conn);
        h.send(id, data)
    }
    fn recv(&mut self, conn: ConnId, into: &mut VecDeque<u8>, max: usize) -> Result<usize, EngineError> {
        let (h, id) = self.half_mut(conn);
        h.recv(id, into, max)
    }
    fn recv_slice(&mut self, conn: ConnId, into: &mut [u8]) -> Result<(usize, bool), EngineError> {
        let (h, id) = self.half_mut(conn);
        h.recv_slice(id, into)
    }
    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError> {
        let (h, id) = self.half_mut(conn);
        h.shutdown_write(id)
    }
    fn close(&mut self, conn: ConnId) -> Result<(), EngineError> {
        let (h, id) = self.half_mut(conn);
        h.close(id)
    }
    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError> {
        let (h, id) = self.half_mut(conn);
        h.abort(id)
    }
    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError> {
        let (h, id) = self.half(conn);
        h.state(id)
    }
    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        let (h, id) = self.half(conn);
        h.local_addr(id).map(as_one_host)
    }
    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        let (h, id) = self.half(conn);
        h.peer_addr(id).map(as_one_host)
    }
    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError> {
        let (h, id) = self.half_mut(conn);
        h.set_option(id, opt)
    }
}
