//! The real stack as an [`Engine`]: [`StackEngine`] wraps one
//! [`ixtcp_stack::StackCore`] (any [`PacketIo`]: the 82599, its model, the
//! in-memory NIC) together with what the trait needs and the core does not
//! hold itself: the clock, listener ids, the handles the application holds
//! (to resynchronise after an event overflow) and a counter mirror.
//!
//! Why a wrapper and not `impl Engine for StackCore`: a core is given the
//! time by whoever polls it and has no clock of its own, while
//! [`Engine::now_ns`] must read one; and the core keys listeners by port
//! with no generation, while sockapi needs ids that a closed listener's
//! successor on the same port does not inherit.
//!
//! How the trait maps onto the core:
//!
//! | Engine | StackCore |
//! |---|---|
//! | `ingress` / `egress` | `ingress(now)` / `egress()` |
//! | `take_events` | `drain_events`; `Acceptable{port}` → the port's [`ListenerId`]; after `events_overflowed`, one event per held connection and listener |
//! | `listen(addr, backlog)` | `listen(port, backlog)`; port 0 picks a free one from the ephemeral range |
//! | `connect(remote, local)` | `connect(remote, port)`; a local IP other than ours is `AddrNotAvailable`, a listening port `AddrInUse` |
//! | `recv` | `recv`; after a normal close (FIN both ways) `Ok(0)` |
//! | `close` | `abort` if unread data remains in the core, else `close` (Linux) |
//! | `state` | `status` (state, readiness and close reason in one lookup) |
//! | `connections` | slots not in the free pool ([`ixtcp_stack::SocketCensus`]) |
//! | `udp_bind(addr, peer)` | `udp_bind(port)`; port 0 with a peer: `udp_bind_for_peer` (a port RSS brings that peer's replies to this core for) |
//! | `udp_send_to` / `udp_recv_from` | the same; a datagram too long, a destination no host has or no route to is `InvalidInput` |
//! | `take_events` (UDP) | `Event::Udp{id}` as is; after an overflow, one event per bound port |
//! | `set_option` | `set_nodelay`, `set_keepalive`, `set_user_timeout`, `set_keepalive_probes`; buffer sizes: the core's slots have fixed buffers, so a size up to the configured one is accepted (the slot keeps its buffer) and a larger one is `InvalidInput` |

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::time::{Clock, VirtualClock};
use ixtcp_stack::{PacketIo, StackCore, StackError, StatsMirror};

use crate::engine::{
    CloseReason, ConnId, ConnState, Engine, EngineError, EngineEvent, ListenerId, SockOpt, UdpError, UdpId, UdpRecv,
};

/// Publish counters to the mirror every this many iterations by default.
const STATS_EVERY: u32 = 256;

/// One stack core as a sockapi [`Engine`]. See the module docs.
pub struct StackEngine<P: PacketIo> {
    core: StackCore<P>,
    clock: Arc<dyn Clock>,
    /// Listening ports and the generation of their current listener.
    listeners: Vec<(u16, u32)>,
    next_listener_generation: u32,
    /// Generation of the handle the application holds, per slot.
    held: Vec<Option<u32>>,
    /// The UDP ports bound through this engine.
    udp_held: Vec<UdpId>,
    mirror: Arc<StatsMirror>,
    stats_every: u32,
    iterations: u32,
    idle_wait: Option<Duration>,
    /// Set when `clock` is this virtual clock (a simulation).
    virtual_clock: Option<VirtualClock>,
}

impl<P: PacketIo> std::fmt::Debug for StackEngine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackEngine").field("core", &self.core.index()).field("ip", &self.core.ip()).finish()
    }
}

/// A failure is an abnormal end; a normal close is none.
fn failure_of(reason: Option<CloseReason>) -> Option<CloseReason> {
    reason.filter(|r| *r != CloseReason::Normal)
}

/// The error a sockets user expects for a core's error.
/// Whole milliseconds, rounded up (so a short time stays non-zero).
fn ms_ceil(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64
}

fn engine_error(e: StackError) -> EngineError {
    match e {
        StackError::StaleHandle => EngineError::InvalidHandle,
        StackError::WouldBlock => EngineError::WouldBlock,
        StackError::NotConnected => EngineError::NotConnected,
        StackError::ConnectionRefused => EngineError::Failed(CloseReason::Refused),
        StackError::ConnectionReset => EngineError::Failed(CloseReason::Reset),
        StackError::TimedOut => EngineError::Failed(CloseReason::TimedOut),
        StackError::NoSocket => EngineError::Exhausted,
        StackError::AddrInUse(_) => EngineError::AddrInUse,
        StackError::PortsExhausted => EngineError::AddrNotAvailable,
        // Linux says EINVAL for a bad destination; mTCP for a port of
        // another core; no route has no kind of its own in the trait.
        StackError::WrongCore { .. }
        | StackError::InvalidAddress(_)
        | StackError::NoRoute(_)
        | StackError::InvalidOption(_)
        | StackError::Config(_) => EngineError::InvalidInput,
        StackError::InvalidPort(_) => EngineError::AddrInUse,
        StackError::NotListening(_) => EngineError::InvalidHandle,
        StackError::ShuttingDown | StackError::Device(_) => EngineError::NotConnected,
    }
}

impl<P: PacketIo> StackEngine<P> {
    /// Wraps `core`; `clock` is the clock the core's time comes from.
    pub fn new(core: StackCore<P>, clock: Arc<dyn Clock>) -> StackEngine<P> {
        StackEngine {
            core,
            clock,
            listeners: Vec::new(),
            next_listener_generation: 1,
            held: Vec::new(),
            udp_held: Vec::new(),
            mirror: Arc::new(StatsMirror::default()),
            stats_every: STATS_EVERY,
            iterations: 0,
            idle_wait: None,
            virtual_clock: None,
        }
    }

    /// Wraps `core` on a virtual clock: the runtime moves `clock` forward to
    /// the core's next timer when an iteration found nothing to do, so a
    /// simulation runs as fast as the CPU allows and replays exactly.
    pub fn on_virtual_clock(core: StackCore<P>, clock: VirtualClock) -> StackEngine<P> {
        let mut e = StackEngine::new(core, Arc::new(clock.clone()));
        e.virtual_clock = Some(clock);
        e
    }

    /// Publishes counters into `mirror` (instead of a private one) every
    /// `every` iterations (1: every iteration, for exact figures in tests).
    pub fn with_stats(mut self, mirror: Arc<StatsMirror>, every: u32) -> StackEngine<P> {
        mirror.publish(&self.core.stats());
        self.mirror = mirror;
        self.stats_every = every.max(1);
        self
    }

    /// What [`Engine::idle_wait`] answers: `None` (the default) for a
    /// poll-mode NIC; a short nap for a model on a machine with few CPUs.
    pub fn with_idle_wait(mut self, idle: Option<Duration>) -> StackEngine<P> {
        self.idle_wait = idle;
        self
    }

    /// The mirror this engine publishes its core's counters into.
    pub fn stats_mirror(&self) -> Arc<StatsMirror> {
        Arc::clone(&self.mirror)
    }

    /// The stack core.
    pub fn core(&self) -> &StackCore<P> {
        &self.core
    }

    /// The stack core, mutably (calls made here bypass sockapi's view).
    pub fn core_mut(&mut self) -> &mut StackCore<P> {
        &mut self.core
    }

    fn listener_port(&self, id: ListenerId) -> Result<u16, EngineError> {
        let port = u16::try_from(id.index).map_err(|_| EngineError::InvalidHandle)?;
        match self.listeners.iter().any(|&(p, g)| p == port && g == id.generation) {
            true => Ok(port),
            false => Err(EngineError::InvalidHandle),
        }
    }

    fn hold(&mut self, id: ixtcp_stack::ConnId) {
        let i = id.index as usize;
        if self.held.len() <= i {
            self.held.resize(i + 1, None);
        }
        self.held[i] = Some(id.generation);
    }

    fn release(&mut self, id: ConnId) {
        if let Some(h) = self.held.get_mut(id.index as usize)
            && *h == Some(id.generation)
        {
            *h = None;
        }
    }

    /// A port for `listen(…:0)`: the first in the ephemeral range that
    /// nothing listens on.
    fn free_listen_port(&self) -> Option<u16> {
        let cfg = self.core.config();
        (cfg.ephemeral_first..=cfg.ephemeral_last).find(|&p| self.listeners.iter().all(|&(q, _)| q != p))
    }

    fn publish(&mut self) {
        self.mirror.publish(&self.core.stats());
    }
}

/// The end of a core: its runtime closed every socket with FIN and lingered
/// (until no connection was left, or the linger passed). Whatever is still
/// open is reset now, so that peers learn at once instead of retransmitting
/// into silence; what could not be sent is let go, so every buffer is back
/// in its pool when the queue pair goes; and the last counters are
/// published.
impl<P: PacketIo> Drop for StackEngine<P> {
    fn drop(&mut self) {
        if self.connections() > 0 {
            self.core.abort_all();
            let now = self.clock.now_ns();
            // The resets leave in the next iteration; a few more give a
            // full TX ring the chance to take the rest.
            for _ in 0..4 {
                self.core.poll(now);
            }
        }
        self.core.discard_pending();
        self.publish();
    }
}

impl<P: PacketIo> Engine for StackEngine<P> {
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn ingress(&mut self, now_ns: u64) {
        self.core.ingress(now_ns);
        self.iterations = self.iterations.wrapping_add(1);
        if self.iterations % self.stats_every == 0 {
            self.publish();
        }
    }

    fn egress(&mut self, _now_ns: u64) {
        // The core keeps the time of the last ingress; timers fire on it.
        self.core.egress();
    }

    fn take_events(&mut self, out: &mut Vec<EngineEvent>) {
        // Read before draining: draining clears the flag.
        let overflowed = self.core.events_overflowed();
        let listeners = &self.listeners;
        out.extend(self.core.drain_events().filter_map(|e| match e {
            ixtcp_stack::Event::Conn { id, .. } => Some(EngineEvent::Conn { id }),
            ixtcp_stack::Event::Acceptable { port } => {
                listeners.iter().find(|&&(p, _)| p == port).map(|&(p, g)| EngineEvent::Acceptable {
                    listener: ListenerId { index: u32::from(p), generation: g },
                })
            }
            ixtcp_stack::Event::Udp { id } => Some(EngineEvent::Udp { id }),
        }));
        if overflowed {
            // Some events were lost: report everything the application
            // holds, so that it looks at each again (spurious is allowed,
            // missing is not).
            for (index, g) in self.held.iter().enumerate() {
                if let Some(generation) = *g {
                    out.push(EngineEvent::Conn { id: ConnId { index: index as u32, generation } });
                }
            }
            for &(p, g) in &self.listeners {
                out.push(EngineEvent::Acceptable { listener: ListenerId { index: u32::from(p), generation: g } });
            }
            out.extend(self.udp_held.iter().map(|&id| EngineEvent::Udp { id }));
        }
    }

    fn idle_wait(&self) -> Option<Duration> {
        self.idle_wait
    }

    fn virtual_clock(&self) -> Option<&VirtualClock> {
        self.virtual_clock.as_ref()
    }

    fn next_wakeup_ns(&self) -> Option<u64> {
        self.core.next_wakeup_ns()
    }

    fn egress_unanswerable(&mut self, _now_ns: u64) {
        // The core keeps the time of the last ingress.
        self.core.egress_unanswerable();
    }

    fn connections(&self) -> usize {
        let c = self.core.socket_census();
        c.slots - c.free
    }

    fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId, EngineError> {
        if !addr.ip().is_unspecified() && *addr.ip() != self.core.ip() {
            return Err(EngineError::AddrNotAvailable);
        }
        if backlog == 0 {
            return Err(EngineError::InvalidInput);
        }
        let port = match addr.port() {
            0 => self.free_listen_port().ok_or(EngineError::AddrNotAvailable)?,
            p => p,
        };
        self.core.listen(port, Some(backlog)).map_err(engine_error)?;
        let generation = self.next_listener_generation;
        self.next_listener_generation = generation.wrapping_add(1).max(1);
        self.listeners.push((port, generation));
        Ok(ListenerId { index: u32::from(port), generation })
    }

    fn accept(&mut self, listener: ListenerId) -> Result<ConnId, EngineError> {
        let port = self.listener_port(listener)?;
        let id = self.core.accept(port).ok_or(EngineError::WouldBlock)?;
        self.hold(id);
        Ok(id)
    }

    fn close_listener(&mut self, listener: ListenerId) -> Result<(), EngineError> {
        let port = self.listener_port(listener)?;
        self.listeners.retain(|&(p, _)| p != port);
        self.core.unlisten(port).map_err(engine_error)
    }

    fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4, EngineError> {
        Ok(SocketAddrV4::new(self.core.ip(), self.listener_port(listener)?))
    }

    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError> {
        let port = match local {
            Some(l) if !l.ip().is_unspecified() && *l.ip() != self.core.ip() => {
                return Err(EngineError::AddrNotAvailable);
            }
            Some(l) if l.port() != 0 => {
                if self.listeners.iter().any(|&(p, _)| p == l.port()) {
                    return Err(EngineError::AddrInUse);
                }
                Some(l.port())
            }
            _ => None,
        };
        let id = self.core.connect(remote, port).map_err(engine_error)?;
        self.hold(id);
        Ok(id)
    }

    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError> {
        self.core.send(conn, data).map_err(|e| match e {
            // Shut down for writing, or closed normally.
            StackError::NotConnected => EngineError::BrokenPipe,
            e => engine_error(e),
        })
    }

    fn recv(&mut self, conn: ConnId, into: &mut VecDeque<u8>, max: usize) -> Result<usize, EngineError> {
        let id = conn;
        match self.core.recv_with(id, max, |bytes| into.extend(bytes)) {
            Ok(n) => Ok(n),
            // Closed with FIN both ways: the stream has ended.
            Err(StackError::NotConnected) if self.core.close_reason(id) == Ok(Some(CloseReason::Normal)) => Ok(0),
            Err(e) => Err(engine_error(e)),
        }
    }

    fn recv_slice(&mut self, conn: ConnId, into: &mut [u8]) -> Result<(usize, bool), EngineError> {
        match self.core.recv_more(conn, into) {
            Ok(got) => Ok(got),
            Err(StackError::NotConnected) if self.core.close_reason(conn) == Ok(Some(CloseReason::Normal)) => {
                Ok((0, true))
            }
            Err(e) => Err(engine_error(e)),
        }
    }

    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError> {
        self.core.shutdown_write(conn).map_err(engine_error)
    }

    fn close(&mut self, conn: ConnId) -> Result<(), EngineError> {
        let id = conn;
        // Linux: closing with unread data resets the connection.
        let unread = self.core.recv_queue(id).map_err(engine_error)?;
        let r = if unread > 0 { self.core.abort(id) } else { self.core.close(id) };
        self.release(conn);
        r.map_err(engine_error)
    }

    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError> {
        let r = self.core.abort(conn);
        if r.is_ok() {
            self.release(conn);
        }
        r.map_err(engine_error)
    }

    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError> {
        let s = self.core.status(conn).map_err(engine_error)?;
        Ok(ConnState { tcp: s.state, ready: s.ready, failure: failure_of(s.reason) })
    }

    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        self.core.endpoints(conn).map(|(l, _)| l).map_err(engine_error)
    }

    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        self.core.endpoints(conn).map(|(_, r)| r).map_err(engine_error)
    }

    fn udp_bind(&mut self, addr: SocketAddrV4, peer: Option<SocketAddrV4>) -> Result<UdpId, EngineError> {
        if !addr.ip().is_unspecified() && *addr.ip() != self.core.ip() {
            return Err(EngineError::AddrNotAvailable);
        }
        let id = match (addr.port(), peer) {
            (0, Some(peer)) => self.core.udp_bind_for_peer(peer),
            (port, _) => self.core.udp_bind(port),
        }
        .map_err(engine_error)?;
        self.udp_held.push(id);
        Ok(id)
    }

    fn udp_unbind(&mut self, id: UdpId) -> Result<(), EngineError> {
        self.core.udp_unbind(id).map_err(engine_error)?;
        self.udp_held.retain(|&h| h != id);
        Ok(())
    }

    fn udp_local_addr(&self, id: UdpId) -> Result<SocketAddrV4, EngineError> {
        let port = self.core.udp_local_port(id).map_err(engine_error)?;
        Ok(SocketAddrV4::new(self.core.ip(), port))
    }

    fn udp_max_payload(&self) -> usize {
        self.core.udp_max_payload()
    }

    fn udp_send_to(&mut self, id: UdpId, to: SocketAddrV4, data: &[u8]) -> Result<(), EngineError> {
        self.core.udp_send_to(id, to, data).map(|_| ()).map_err(engine_error)
    }

    fn udp_recv_from(&mut self, id: UdpId, buf: &mut [u8]) -> Result<UdpRecv, EngineError> {
        self.core.udp_recv_from(id, buf).map_err(engine_error)
    }

    fn udp_dropped(&self, id: UdpId) -> Result<u64, EngineError> {
        self.core.udp_dropped(id).map_err(engine_error)
    }

    fn udp_take_error(&mut self, id: UdpId) -> Result<Option<UdpError>, EngineError> {
        self.core.udp_take_error(id).map_err(engine_error)
    }

    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError> {
        let id = conn;
        let cfg = self.core.config();
        let (rx_cap, tx_cap) = (cfg.socket_rx_buffer, cfg.socket_tx_buffer);
        match opt {
            SockOpt::NoDelay(on) => self.core.set_nodelay(id, on),
            SockOpt::KeepAlive(interval) => {
                // Round up to whole milliseconds, so a short interval stays on.
                let ms = interval.map(ms_ceil);
                self.core.set_keepalive(id, ms)
            }
            SockOpt::UserTimeout(d) => self.core.set_user_timeout(id, ms_ceil(d)),
            SockOpt::KeepAliveProbes(ka) => self.core.set_keepalive_probes(
                id,
                ka.map(|k| ixtcp_stack::KeepAlive {
                    idle_ms: ms_ceil(k.idle),
                    interval_ms: ms_ceil(k.interval),
                    count: k.count,
                }),
            ),
            SockOpt::SendBuffer(n) | SockOpt::RecvBuffer(n) if n == 0 => return Err(EngineError::InvalidInput),
            SockOpt::SendBuffer(n) => {
                self.core.state(id).map_err(engine_error)?;
                return if n <= tx_cap { Ok(()) } else { Err(EngineError::InvalidInput) };
            }
            SockOpt::RecvBuffer(n) => {
                self.core.state(id).map_err(engine_error)?;
                return if n <= rx_cap { Ok(()) } else { Err(EngineError::InvalidInput) };
            }
        }
        .map_err(engine_error)
    }
}
