//! An in-memory, deterministic, TCP-like [`Engine`] for tests and examples.
//!
//! A [`TestNet`] is a set of hosts (IPv4 addresses), each served by one or
//! more [`TestEngine`]s (cores). A connection is two ends, each with a send
//! queue and a receive queue of finite size. It models what sockapi relies
//! on and nothing more:
//!
//! - `connect` queues a SYN that the client core sends at its next egress:
//!   a listener (picked by a hash of the 4-tuple when several cores of the
//!   host listen on the port) with room in its backlog completes the
//!   handshake at once; a host without a listener refuses; a full backlog or
//!   an unknown host drops the SYN, which is retried at each egress and
//!   times out after [`TestConfig::syn_retries`] tries.
//! - Each egress moves bytes from the sender's send queue into the peer's
//!   receive queue as far as it has room, then delivers FIN once the send
//!   queue is empty. Reading frees room; the sender moves more at its next
//!   egress.
//! - `close` with unread data, `abort`, data arriving for a closed end, and
//!   closing a listener with queued connections reset the peer (RST).
//!
//! - UDP: a datagram sent leaves at the sender core's next egress (at most
//!   [`TestConfig::udp_tx_batch`] per egress; more is `WouldBlock`) and
//!   is queued on the port bound to its destination (picked by the same
//!   4-tuple hash when several cores of the host bind it), up to
//!   [`TestConfig::udp_queue`] datagrams, beyond which it is dropped and
//!   counted; the first on an empty queue raises an event. A datagram to
//!   a known host's unbound port comes back as port unreachable: recorded
//!   on the sending port with an event, as the stack does with ICMP.
//!
//! It is not a TCP implementation: no segments, no loss, no timers beyond
//! SYN retries. Everything happens in loop iterations, so a single-threaded
//! test replays exactly.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{
    CloseReason, ConnId, ConnState, Engine, EngineError, EngineEvent, ICMP_PORT_UNREACHABLE, ListenerId, Readiness,
    SockOpt, TcpState, UdpError, UdpId, UdpRecv,
};
use ixtcp_driver::time::{Clock, VirtualClock};

use crate::buffers::lock;
use crate::slab::{Key, Slab};

/// Settings of a [`TestNet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestConfig {
    /// Send queue size of every new connection end, in bytes.
    pub send_buffer: usize,
    /// Receive queue size of every new connection end, in bytes.
    pub recv_buffer: usize,
    /// SYNs a connect sends before it fails with `TimedOut`.
    pub syn_retries: u32,
    /// First and last ephemeral port.
    pub ephemeral_ports: (u16, u16),
    /// What [`Engine::idle_wait`] says.
    pub idle_wait: Option<Duration>,
    /// Run the network's engines on one shared virtual clock
    /// ([`TestNet::clock`]) instead of the monotonic clock: a context's
    /// waits then move time instead of sleeping, so a test on one thread
    /// replays exactly and never waits in real time. Leave it off when
    /// several threads drive the network (their idle waits would each move
    /// the shared time).
    pub virtual_time: bool,
    /// Datagrams a bound UDP port queues before it drops.
    pub udp_queue: usize,
    /// Datagrams one core sends per egress; more is `WouldBlock`.
    pub udp_tx_batch: usize,
    /// The largest UDP payload (as Ethernet's 1500-byte MTU allows).
    pub udp_max_payload: usize,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            send_buffer: 16 * 1024,
            recv_buffer: 16 * 1024,
            syn_retries: 8,
            ephemeral_ports: (49152, 65535),
            idle_wait: Some(Duration::from_micros(50)),
            virtual_time: false,
            udp_queue: 64,
            udp_tx_batch: 64,
            udp_max_payload: 1472,
        }
    }
}

/// Counters of a [`TestNet`], for assertions about what went over the "wire".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestStats {
    /// Handshakes completed.
    pub established: u64,
    /// Connects refused (no listener).
    pub refused: u64,
    /// SYNs dropped (full backlog or unknown host).
    pub syns_dropped: u64,
    /// FINs delivered.
    pub fins: u64,
    /// Resets sent.
    pub resets: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// UDP datagrams queued on a port.
    pub datagrams: u64,
    /// UDP datagrams dropped on a full port queue.
    pub datagrams_dropped: u64,
    /// UDP datagrams answered with port unreachable.
    pub unreachable: u64,
}

#[derive(Debug)]
struct End {
    engine: usize,
    /// The engine-local id while the end has one (accepted or connected,
    /// and not yet released).
    id: Option<ConnId>,
    addr: SocketAddrV4,
    established: bool,
    syn_tries: u32,
    snd: VecDeque<u8>,
    snd_cap: usize,
    rcv: VecDeque<u8>,
    rcv_cap: usize,
    fin_queued: bool,
    fin_sent: bool,
    peer_fin: bool,
    failure: Option<CloseReason>,
    released: bool,
    /// Reset locally (abort, or close with unread data): nothing more happens.
    dead: bool,
    dirty: bool,
    event_queued: bool,
}

impl End {
    fn new(engine: usize, addr: SocketAddrV4, cfg: &TestConfig) -> End {
        End {
            engine,
            id: None,
            addr,
            established: false,
            syn_tries: 0,
            snd: VecDeque::new(),
            snd_cap: cfg.send_buffer,
            rcv: VecDeque::new(),
            rcv_cap: cfg.recv_buffer,
            fin_queued: false,
            fin_sent: false,
            peer_fin: false,
            failure: None,
            released: false,
            dead: false,
            dirty: false,
            event_queued: false,
        }
    }

    /// Nothing more will happen on this end.
    fn terminal(&self) -> bool {
        self.dead || self.failure.is_some() || (self.fin_sent && self.peer_fin)
    }

    fn readiness(&self) -> Readiness {
        let mut r = Readiness::EMPTY;
        if !self.rcv.is_empty() || self.peer_fin || self.failure.is_some() {
            r |= Readiness::READABLE;
        }
        if self.failure.is_some() || (self.established && !self.fin_queued && self.snd.len() < self.snd_cap) {
            r |= Readiness::WRITABLE;
        }
        if self.peer_fin {
            r |= Readiness::READ_CLOSED;
        }
        if self.failure.is_some() || (self.fin_sent && self.peer_fin) {
            r |= Readiness::HUP;
        }
        if self.failure.is_some() {
            r |= Readiness::ERROR;
        }
        if self.established {
            r |= Readiness::CONNECTED;
        }
        r
    }

    fn tcp_state(&self) -> TcpState {
        if self.failure.is_some() || self.dead {
            TcpState::Closed
        } else if !self.established {
            TcpState::SynSent
        } else {
            match (self.fin_queued, self.fin_sent, self.peer_fin) {
                (false, _, false) => TcpState::Established,
                (false, _, true) => TcpState::CloseWait,
                (true, false, false) => TcpState::FinWait1,
                (true, true, false) => TcpState::FinWait2,
                (true, false, true) => TcpState::LastAck,
                (true, true, true) => TcpState::TimeWait,
            }
        }
    }
}

#[derive(Debug)]
struct Conn {
    /// `[client, server]`; the server end's engine is known once the SYN
    /// reached a listener.
    ends: [End; 2],
    /// The client's local port is counted in `Net::ports`.
    holds_port: bool,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddrV4,
    backlog: usize,
    /// Established connections not yet accepted.
    queue: VecDeque<Key>,
}

/// A bound UDP port of one core.
#[derive(Debug)]
struct UdpPort {
    engine: usize,
    addr: SocketAddrV4,
    queue: VecDeque<(SocketAddrV4, Vec<u8>)>,
    dropped: u64,
    error: Option<UdpError>,
    event_queued: bool,
}

#[derive(Debug)]
struct Host {
    ip: Ipv4Addr,
    ids: Slab<(Key, usize)>,
    listeners: Slab<Listener>,
    pending: Vec<(Key, usize)>,
    acceptable: Vec<ListenerId>,
    dirty: Vec<(Key, usize)>,
    next_port: u16,
    /// Datagrams to send at the next egress: from, to, payload.
    udp_out: Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)>,
    /// UDP ports with an event to report.
    udp_events: Vec<Key>,
}

#[derive(Debug, Default)]
struct Net {
    cfg: TestConfig,
    hosts: Vec<Host>,
    conns: Slab<Conn>,
    /// Local ports held by client ends, per address.
    ports: HashMap<SocketAddrV4, u32>,
    /// Bound UDP ports of every core.
    udp: Slab<UdpPort>,
    stats: TestStats,
}

fn conn_id(k: Key) -> ConnId {
    ConnId { index: k.index, generation: k.generation }
}

fn listener_id(k: Key) -> ListenerId {
    ListenerId { index: k.index, generation: k.generation }
}

fn hash4(a: SocketAddrV4, b: SocketAddrV4) -> usize {
    // FNV-1a over both endpoints: deterministic spreading over cores.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in
        a.ip().octets().into_iter().chain(a.port().to_be_bytes()).chain(b.ip().octets()).chain(b.port().to_be_bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

fn udp_key(id: UdpId) -> Key {
    Key { index: id.index, generation: id.generation }
}

impl Net {
    /// The UDP port `id` of core `me`.
    fn udp_port(&mut self, me: usize, id: UdpId) -> Result<&mut UdpPort, EngineError> {
        match self.udp.get_mut(udp_key(id)) {
            Some(p) if p.engine == me => Ok(p),
            _ => Err(EngineError::InvalidHandle),
        }
    }

    /// Queue an event for UDP port `k` (once until taken).
    fn touch_udp(&mut self, k: Key) {
        let Some(p) = self.udp.get_mut(k) else { return };
        if p.event_queued {
            return;
        }
        p.event_queued = true;
        let engine = p.engine;
        if let Some(h) = self.hosts.get_mut(engine) {
            h.udp_events.push(k);
        }
    }

    /// Deliver one datagram (see the module docs).
    fn deliver_udp(&mut self, from: SocketAddrV4, to: SocketAddrV4, data: Vec<u8>) {
        let mut candidates: Vec<(usize, Key)> =
            self.udp.iter().filter(|(_, p)| p.addr == to).map(|(k, p)| (p.engine, k)).collect();
        candidates.sort();
        let Some(&(_, k)) = candidates.get(hash4(from, to) % candidates.len().max(1)) else {
            if self.hosts.iter().any(|h| h.ip == *to.ip()) {
                self.stats.unreachable += 1;
                let sender = self.udp.iter().find(|(_, p)| p.addr == from).map(|(k, _)| k);
                if let Some(sk) = sender {
                    if let Some(p) = self.udp.get_mut(sk) {
                        p.error = Some(UdpError { to, code: ICMP_PORT_UNREACHABLE });
                    }
                    self.touch_udp(sk);
                }
            }
            return;
        };
        let cap = self.cfg.udp_queue;
        let Some(p) = self.udp.get_mut(k) else { return };
        if p.queue.len() >= cap {
            p.dropped += 1;
            self.stats.datagrams_dropped += 1;
            return;
        }
        p.queue.push_back((from, data));
        let first = p.queue.len() == 1;
        self.stats.datagrams += 1;
        if first {
            self.touch_udp(k);
        }
    }

    fn end(&mut self, k: Key, side: usize) -> Option<&mut End> {
        self.conns.get_mut(k).and_then(|c| c.ends.get_mut(side))
    }

    /// Queue an event for an end's engine (once until taken).
    fn touch(&mut self, k: Key, side: usize) {
        let Some(e) = self.end(k, side) else { return };
        if e.id.is_none() || e.event_queued {
            return;
        }
        e.event_queued = true;
        let engine = e.engine;
        if let Some(h) = self.hosts.get_mut(engine) {
            h.pending.push((k, side));
        }
    }

    /// Ask an end's engine to run it at its next egress.
    fn mark_dirty(&mut self, k: Key, side: usize) {
        let hosts = self.hosts.len();
        let Some(e) = self.end(k, side) else { return };
        // A server end before the SYN reached a listener has no engine yet.
        if e.dirty || e.dead || e.engine >= hosts {
            return;
        }
        e.dirty = true;
        let engine = e.engine;
        if let Some(h) = self.hosts.get_mut(engine) {
            h.dirty.push((k, side));
        }
    }

    fn resolve(&self, me: usize, id: ConnId) -> Result<(Key, usize), EngineError> {
        let h = self.hosts.get(me).ok_or(EngineError::InvalidHandle)?;
        h.ids.get(Key { index: id.index, generation: id.generation }).copied().ok_or(EngineError::InvalidHandle)
    }

    fn port_free(&self, addr: SocketAddrV4) -> bool {
        // Client ends always hold a concrete local address (the host's).
        let conn_port = self.ports.contains_key(&addr);
        let listener = self
            .hosts
            .iter()
            .filter(|h| h.ip == *addr.ip())
            .any(|h| h.listeners.iter().any(|(_, l)| l.addr.port() == addr.port()));
        !conn_port && !listener
    }

    fn ephemeral(&mut self, me: usize, ip: Ipv4Addr) -> Result<u16, EngineError> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        for _ in 0..span {
            let h = self.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            if h.next_port < lo || h.next_port > hi {
                h.next_port = lo;
            }
            let port = h.next_port;
            h.next_port = if port >= hi { lo } else { port + 1 };
            if self.port_free(SocketAddrV4::new(ip, port)) {
                return Ok(port);
            }
        }
        Err(EngineError::AddrNotAvailable)
    }

    /// Remove a connection once both ends are released and finished.
    fn gc(&mut self, k: Key) {
        let done = self.conns.get(k).is_some_and(|c| c.ends.iter().all(|e| e.released && (e.terminal() || e.dead)));
        if done {
            if let Some(c) = self.conns.remove(k) {
                if c.holds_port {
                    let a = c.ends[0].addr;
                    if let Some(n) = self.ports.get_mut(&a) {
                        *n -= 1;
                        if *n == 0 {
                            self.ports.remove(&a);
                        }
                    }
                }
            }
        }
    }

    /// The client gave up before the handshake: there is no server end.
    fn forget_server_end(&mut self, k: Key) {
        if let Some(c) = self.conns.get_mut(k) {
            if !c.ends[0].established {
                c.ends[1].released = true;
                c.ends[1].dead = true;
            }
        }
        self.gc(k);
    }

    /// Reset the end opposite `side` (we sent RST).
    fn reset_peer(&mut self, k: Key, side: usize) {
        let other = 1 - side;
        self.stats.resets += 1;
        if let Some(p) = self.end(k, other) {
            if p.failure.is_none() && !p.dead {
                p.failure = Some(CloseReason::Reset);
                p.snd.clear();
            }
        }
        self.touch(k, other);
        self.gc(k);
    }

    /// One end's egress: SYN (retries), data, FIN.
    fn egress_end(&mut self, k: Key, side: usize) {
        let Some(e) = self.end(k, side) else { return };
        e.dirty = false;
        if e.dead || e.failure.is_some() {
            return;
        }
        if !e.established {
            if side == 0 {
                self.send_syn(k);
            }
            return;
        }
        let other = 1 - side;
        let Some(conn) = self.conns.get_mut(k) else { return };
        let [a, b] = &mut conn.ends;
        let (me, peer) = if side == 0 { (a, b) } else { (b, a) };
        if !me.snd.is_empty() && (peer.dead || peer.failure.is_some() || peer.released) {
            // Data for a closed or reset end: it answers with RST.
            me.failure = Some(CloseReason::Reset);
            me.snd.clear();
            peer.dead = true;
            self.stats.resets += 1;
            self.touch(k, side);
            self.gc(k);
            return;
        }
        let room = peer.rcv_cap.saturating_sub(peer.rcv.len());
        let n = room.min(me.snd.len());
        let was_full = me.snd.len() >= me.snd_cap;
        peer.rcv.extend(me.snd.drain(..n));
        let mut fin = false;
        if me.snd.is_empty() && me.fin_queued && !me.fin_sent {
            me.fin_sent = true;
            peer.peer_fin = true;
            fin = true;
        }
        self.stats.bytes += n as u64;
        if fin {
            self.stats.fins += 1;
        }
        if n > 0 || fin {
            self.touch(k, other);
        }
        if (n > 0 && was_full) || fin {
            self.touch(k, side);
        }
        self.gc(k);
    }

    fn send_syn(&mut self, k: Key) {
        let Some(c) = self.conns.get_mut(k) else { return };
        let (src, dst) = (c.ends[0].addr, c.ends[1].addr);
        c.ends[0].syn_tries += 1;
        let tries = c.ends[0].syn_tries;
        let host_known = self.hosts.iter().any(|h| h.ip == *dst.ip());
        let candidates: Vec<(usize, Key)> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.ip == *dst.ip())
            .flat_map(|(i, h)| {
                h.listeners
                    .iter()
                    .filter(|(_, l)| l.addr.port() == dst.port())
                    .map(move |(lk, _)| (i, lk))
                    .collect::<Vec<_>>()
            })
            .collect();
        if host_known && candidates.is_empty() {
            if let Some(c) = self.conns.get_mut(k) {
                c.ends[0].failure = Some(CloseReason::Refused);
                c.ends[1].released = true;
                c.ends[1].dead = true;
            }
            self.stats.refused += 1;
            self.touch(k, 0);
            self.gc(k);
            return;
        }
        let pick =
            if candidates.is_empty() { None } else { candidates.get(hash4(src, dst) % candidates.len()).copied() };
        let room = pick.and_then(|(h, lk)| {
            let l = self.hosts.get(h)?.listeners.get(lk)?;
            (l.queue.len() < l.backlog).then_some((h, lk))
        });
        let Some((h, lk)) = room else {
            self.stats.syns_dropped += 1;
            if tries > self.cfg.syn_retries {
                if let Some(c) = self.conns.get_mut(k) {
                    c.ends[0].failure = Some(CloseReason::TimedOut);
                    c.ends[1].released = true;
                    c.ends[1].dead = true;
                }
                self.touch(k, 0);
                self.gc(k);
            } else {
                self.mark_dirty(k, 0);
            }
            return;
        };
        if let Some(c) = self.conns.get_mut(k) {
            c.ends[1].engine = h;
            c.ends[1].established = true;
            c.ends[0].established = true;
        }
        if let Some(l) = self.hosts.get_mut(h).and_then(|host| host.listeners.get_mut(lk)) {
            l.queue.push_back(k);
        }
        if let Some(host) = self.hosts.get_mut(h) {
            host.acceptable.push(listener_id(lk));
        }
        self.stats.established += 1;
        self.touch(k, 0);
        // The client may have written before the handshake completed.
        self.mark_dirty(k, 0);
    }
}

/// A simulated network of hosts; make [`TestEngine`]s from it.
///
/// ```
/// use ixtcp_sockapi::testing::{TestConfig, TestNet};
/// let net = TestNet::with_config(TestConfig { send_buffer: 1024, ..TestConfig::default() });
/// let _core0 = net.engine([10, 0, 0, 1].into());
/// let _core1 = net.engine([10, 0, 0, 1].into()); // a second core of the same host
/// assert_eq!(net.stats().established, 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestNet {
    net: Arc<Mutex<Net>>,
    clock: Option<VirtualClock>,
}

impl TestNet {
    /// A network with [`TestConfig::default`].
    pub fn new() -> TestNet {
        TestNet::with_config(TestConfig::default())
    }

    /// A network with `cfg`.
    pub fn with_config(cfg: TestConfig) -> TestNet {
        let clock = cfg.virtual_time.then(VirtualClock::new);
        TestNet { net: Arc::new(Mutex::new(Net { cfg, ..Net::default() })), clock }
    }

    /// A network on a virtual clock (see [`TestConfig::virtual_time`]),
    /// otherwise with [`TestConfig::default`].
    pub fn simulated() -> TestNet {
        TestNet::with_config(TestConfig { virtual_time: true, ..TestConfig::default() })
    }

    /// The network's virtual clock, when it has one.
    pub fn clock(&self) -> Option<&VirtualClock> {
        self.clock.as_ref()
    }

    /// A new core of host `ip` (the host exists once it has a core).
    pub fn engine(&self, ip: Ipv4Addr) -> TestEngine {
        let mut net = lock(&self.net);
        let start = net.cfg.ephemeral_ports.0;
        net.hosts.push(Host {
            ip,
            ids: Slab::default(),
            listeners: Slab::default(),
            pending: Vec::new(),
            acceptable: Vec::new(),
            dirty: Vec::new(),
            next_port: start,
            udp_out: Vec::new(),
            udp_events: Vec::new(),
        });
        TestEngine {
            net: Arc::clone(&self.net),
            me: net.hosts.len() - 1,
            start: Instant::now(),
            clock: self.clock.clone(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> TestStats {
        lock(&self.net).stats
    }

    /// Connections not yet fully closed and released, over all hosts.
    pub fn live_connections(&self) -> usize {
        lock(&self.net).conns.len()
    }
}

/// One core of a host on a [`TestNet`]; implements [`Engine`].
#[derive(Debug)]
pub struct TestEngine {
    net: Arc<Mutex<Net>>,
    me: usize,
    start: Instant,
    clock: Option<VirtualClock>,
}

impl TestEngine {
    fn with<T>(&self, f: impl FnOnce(&mut Net, usize) -> T) -> T {
        f(&mut lock(&self.net), self.me)
    }
}

/// What a read of an end with no bytes queued finds: its failure, the end
/// of the stream (`Ok`), or nothing yet.
fn nothing_queued(e: &End) -> Result<(), EngineError> {
    match (e.peer_fin, e.failure) {
        (_, Some(f)) => Err(EngineError::Failed(f)),
        (true, None) => Ok(()),
        (false, None) => Err(EngineError::WouldBlock),
    }
}

impl Engine for TestEngine {
    fn now_ns(&self) -> u64 {
        match &self.clock {
            Some(c) => c.now_ns(),
            None => u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn virtual_clock(&self) -> Option<&VirtualClock> {
        self.clock.as_ref()
    }

    fn ingress(&mut self, _now_ns: u64) {
        // Deliveries happened at the senders' egress; events are queued.
    }

    fn egress(&mut self, _now_ns: u64) {
        self.with(|net, me| {
            let (dirty, datagrams) = match net.hosts.get_mut(me) {
                Some(h) => (std::mem::take(&mut h.dirty), std::mem::take(&mut h.udp_out)),
                None => return,
            };
            for (k, side) in dirty {
                net.egress_end(k, side);
            }
            for (from, to, data) in datagrams {
                net.deliver_udp(from, to, data);
            }
        })
    }

    fn take_events(&mut self, out: &mut Vec<EngineEvent>) {
        self.with(|net, me| {
            let Some(h) = net.hosts.get_mut(me) else { return };
            let pending = std::mem::take(&mut h.pending);
            out.extend(h.acceptable.drain(..).map(|listener| EngineEvent::Acceptable { listener }));
            let udp = std::mem::take(&mut h.udp_events);
            for k in udp {
                if let Some(p) = net.udp.get_mut(k) {
                    p.event_queued = false;
                    out.push(EngineEvent::Udp { id: UdpId { index: k.index, generation: k.generation } });
                }
            }
            for (k, side) in pending {
                if let Some(e) = net.end(k, side) {
                    e.event_queued = false;
                    if let Some(id) = e.id {
                        out.push(EngineEvent::Conn { id });
                    }
                }
            }
        })
    }

    fn idle_wait(&self) -> Option<Duration> {
        self.with(|net, _| net.cfg.idle_wait)
    }

    fn connections(&self) -> usize {
        self.with(|net, me| {
            net.conns
                .iter()
                .flat_map(|(_, c)| c.ends.iter())
                .filter(|e| e.engine == me && !(e.released && e.terminal()))
                .count()
        })
    }

    fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId, EngineError> {
        self.with(|net, me| {
            let ip = net.hosts.get(me).ok_or(EngineError::InvalidHandle)?.ip;
            if !addr.ip().is_unspecified() && *addr.ip() != ip {
                return Err(EngineError::AddrNotAvailable);
            }
            if backlog == 0 {
                return Err(EngineError::InvalidInput);
            }
            let port = if addr.port() == 0 { net.ephemeral(me, ip)? } else { addr.port() };
            let h = net.hosts.get(me).ok_or(EngineError::InvalidHandle)?;
            let mine = h.listeners.iter().any(|(_, l)| l.addr.port() == port);
            if mine || net.ports.contains_key(&SocketAddrV4::new(ip, port)) {
                return Err(EngineError::AddrInUse);
            }
            let l = Listener { addr: SocketAddrV4::new(ip, port), backlog, queue: VecDeque::new() };
            let h = net.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            h.listeners.insert(l).map(listener_id).ok_or(EngineError::Exhausted)
        })
    }

    fn accept(&mut self, listener: ListenerId) -> Result<ConnId, EngineError> {
        self.with(|net, me| {
            let lk = Key { index: listener.index, generation: listener.generation };
            let h = net.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            let l = h.listeners.get_mut(lk).ok_or(EngineError::InvalidHandle)?;
            let k = l.queue.pop_front().ok_or(EngineError::WouldBlock)?;
            let id = h.ids.insert((k, 1)).map(conn_id).ok_or(EngineError::Exhausted)?;
            if let Some(e) = net.end(k, 1) {
                e.id = Some(id);
            }
            Ok(id)
        })
    }

    fn close_listener(&mut self, listener: ListenerId) -> Result<(), EngineError> {
        self.with(|net, me| {
            let lk = Key { index: listener.index, generation: listener.generation };
            let h = net.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            let l = h.listeners.remove(lk).ok_or(EngineError::InvalidHandle)?;
            for k in l.queue {
                if let Some(e) = net.end(k, 1) {
                    e.released = true;
                    e.dead = true;
                }
                net.reset_peer(k, 1);
            }
            Ok(())
        })
    }

    fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4, EngineError> {
        self.with(|net, me| {
            let lk = Key { index: listener.index, generation: listener.generation };
            let h = net.hosts.get(me).ok_or(EngineError::InvalidHandle)?;
            h.listeners.get(lk).map(|l| l.addr).ok_or(EngineError::InvalidHandle)
        })
    }

    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError> {
        self.with(|net, me| {
            let ip = net.hosts.get(me).ok_or(EngineError::InvalidHandle)?.ip;
            if remote.ip().is_unspecified() || remote.port() == 0 || remote.ip().is_broadcast() {
                return Err(EngineError::InvalidInput);
            }
            let local = local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            if !local.ip().is_unspecified() && *local.ip() != ip {
                return Err(EngineError::AddrNotAvailable);
            }
            let port = if local.port() == 0 {
                net.ephemeral(me, ip)?
            } else if net.port_free(SocketAddrV4::new(ip, local.port())) {
                local.port()
            } else {
                return Err(EngineError::AddrInUse);
            };
            let addr = SocketAddrV4::new(ip, port);
            let cfg = net.cfg.clone();
            let conn = Conn { ends: [End::new(me, addr, &cfg), End::new(usize::MAX, remote, &cfg)], holds_port: true };
            let k = net.conns.insert(conn).ok_or(EngineError::Exhausted)?;
            *net.ports.entry(addr).or_insert(0) += 1;
            let h = net.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            let Some(id) = h.ids.insert((k, 0)).map(conn_id) else {
                return Err(EngineError::Exhausted);
            };
            if let Some(e) = net.end(k, 0) {
                e.id = Some(id);
            }
            net.mark_dirty(k, 0);
            Ok(id)
        })
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            if let Some(f) = e.failure {
                return Err(EngineError::Failed(f));
            }
            if e.fin_queued {
                return Err(EngineError::BrokenPipe);
            }
            if !e.established {
                return Err(EngineError::NotConnected);
            }
            let n = e.snd_cap.saturating_sub(e.snd.len()).min(data.len());
            if n == 0 {
                return Err(EngineError::WouldBlock);
            }
            e.snd.extend(&data[..n]);
            net.mark_dirty(k, side);
            Ok(n)
        })
    }

    fn recv(&mut self, conn: ConnId, into: &mut VecDeque<u8>, max: usize) -> Result<usize, EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            if e.rcv.is_empty() {
                return nothing_queued(e).map(|()| 0);
            }
            let n = max.min(e.rcv.len());
            into.extend(e.rcv.drain(..n));
            // Room freed: the peer may send more at its next egress.
            net.mark_dirty(k, 1 - side);
            Ok(n)
        })
    }

    fn recv_slice(&mut self, conn: ConnId, into: &mut [u8]) -> Result<(usize, bool), EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            if e.rcv.is_empty() {
                return nothing_queued(e).map(|()| (0, true));
            }
            let n = into.len().min(e.rcv.len());
            for (d, s) in into.iter_mut().zip(e.rcv.drain(..n)) {
                *d = s;
            }
            let more = !e.rcv.is_empty() || e.peer_fin || e.failure.is_some();
            // Room freed: the peer may send more at its next egress.
            net.mark_dirty(k, 1 - side);
            Ok((n, more))
        })
    }

    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            if !e.established || e.failure.is_some() {
                return Err(EngineError::NotConnected);
            }
            e.fin_queued = true;
            net.mark_dirty(k, side);
            Ok(())
        })
    }

    fn close(&mut self, conn: ConnId) -> Result<(), EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            if let Some(h) = net.hosts.get_mut(me) {
                h.ids.remove(Key { index: conn.index, generation: conn.generation });
            }
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            e.id = None;
            e.released = true;
            if e.terminal() {
                net.gc(k);
            } else if !e.established {
                // A connect still in progress: forget it.
                e.dead = true;
                net.forget_server_end(k);
            } else if !e.rcv.is_empty() {
                // Unread data: Linux sends RST.
                e.dead = true;
                e.snd.clear();
                net.reset_peer(k, side);
            } else {
                e.fin_queued = true;
                net.mark_dirty(k, side);
            }
            Ok(())
        })
    }

    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            if let Some(h) = net.hosts.get_mut(me) {
                h.ids.remove(Key { index: conn.index, generation: conn.generation });
            }
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            e.id = None;
            e.released = true;
            let reset = e.established && e.failure.is_none();
            e.dead = true;
            e.snd.clear();
            if reset {
                net.reset_peer(k, side);
            } else {
                net.forget_server_end(k);
            }
            Ok(())
        })
    }

    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            Ok(ConnState { tcp: e.tcp_state(), ready: e.readiness(), failure: e.failure })
        })
    }

    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let c = net.conns.get(k).ok_or(EngineError::InvalidHandle)?;
            // The server end's address is the client's destination.
            Ok(if side == 0 { c.ends[0].addr } else { c.ends[1].addr })
        })
    }

    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let c = net.conns.get(k).ok_or(EngineError::InvalidHandle)?;
            Ok(c.ends[1 - side].addr)
        })
    }

    fn udp_bind(&mut self, addr: SocketAddrV4, peer: Option<SocketAddrV4>) -> Result<UdpId, EngineError> {
        // With a peer, any free port will do: a port bound on one core
        // only takes every datagram for it.
        let _ = peer;
        self.with(|net, me| {
            let ip = net.hosts.get(me).ok_or(EngineError::InvalidHandle)?.ip;
            if !addr.ip().is_unspecified() && *addr.ip() != ip {
                return Err(EngineError::AddrNotAvailable);
            }
            let port = if addr.port() == 0 {
                let (lo, hi) = net.cfg.ephemeral_ports;
                let taken = |p: u16| net.udp.iter().any(|(_, u)| u.addr == SocketAddrV4::new(ip, p));
                (lo..=hi).find(|&p| !taken(p)).ok_or(EngineError::AddrNotAvailable)?
            } else {
                addr.port()
            };
            let local = SocketAddrV4::new(ip, port);
            if net.udp.iter().any(|(_, u)| u.engine == me && u.addr == local) {
                return Err(EngineError::AddrInUse);
            }
            let k = net
                .udp
                .insert(UdpPort {
                    engine: me,
                    addr: local,
                    queue: VecDeque::new(),
                    dropped: 0,
                    error: None,
                    event_queued: false,
                })
                .ok_or(EngineError::Exhausted)?;
            Ok(UdpId { index: k.index, generation: k.generation })
        })
    }

    fn udp_unbind(&mut self, id: UdpId) -> Result<(), EngineError> {
        self.with(|net, me| {
            net.udp_port(me, id)?;
            net.udp.remove(udp_key(id));
            Ok(())
        })
    }

    fn udp_local_addr(&self, id: UdpId) -> Result<SocketAddrV4, EngineError> {
        self.with(|net, me| net.udp_port(me, id).map(|p| p.addr))
    }

    fn udp_max_payload(&self) -> usize {
        self.with(|net, _| net.cfg.udp_max_payload)
    }

    fn udp_send_to(&mut self, id: UdpId, to: SocketAddrV4, data: &[u8]) -> Result<(), EngineError> {
        self.with(|net, me| {
            let from = net.udp_port(me, id)?.addr;
            if data.len() > net.cfg.udp_max_payload
                || to.port() == 0
                || to.ip().is_unspecified()
                || to.ip().is_broadcast()
                || to.ip().is_multicast()
            {
                return Err(EngineError::InvalidInput);
            }
            let batch = net.cfg.udp_tx_batch;
            let h = net.hosts.get_mut(me).ok_or(EngineError::InvalidHandle)?;
            if h.udp_out.len() >= batch {
                return Err(EngineError::WouldBlock);
            }
            h.udp_out.push((from, to, data.to_vec()));
            Ok(())
        })
    }

    fn udp_recv_from(&mut self, id: UdpId, buf: &mut [u8]) -> Result<UdpRecv, EngineError> {
        self.with(|net, me| {
            let p = net.udp_port(me, id)?;
            let (from, data) = p.queue.pop_front().ok_or(EngineError::WouldBlock)?;
            let len = data.len().min(buf.len());
            buf[..len].copy_from_slice(&data[..len]);
            Ok(UdpRecv { len, datagram_len: data.len(), from })
        })
    }

    fn udp_dropped(&self, id: UdpId) -> Result<u64, EngineError> {
        self.with(|net, me| net.udp_port(me, id).map(|p| p.dropped))
    }

    fn udp_take_error(&mut self, id: UdpId) -> Result<Option<UdpError>, EngineError> {
        self.with(|net, me| net.udp_port(me, id).map(|p| p.error.take()))
    }

    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError> {
        self.with(|net, me| {
            let (k, side) = net.resolve(me, conn)?;
            let e = net.end(k, side).ok_or(EngineError::InvalidHandle)?;
            match opt {
                SockOpt::SendBuffer(0) | SockOpt::RecvBuffer(0) => return Err(EngineError::InvalidInput),
                SockOpt::SendBuffer(n) => e.snd_cap = n,
                SockOpt::RecvBuffer(n) => {
                    e.rcv_cap = n;
                    net.mark_dirty(k, 1 - side);
                }
                // No timers here: accepted (sockapi checked the values) and
                // without effect.
                SockOpt::NoDelay(_) | SockOpt::KeepAlive(_) | SockOpt::UserTimeout(_) | SockOpt::KeepAliveProbes(_) => {
                }
            }
            Ok(())
        })
    }
}
