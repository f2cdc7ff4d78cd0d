//! What sockapi needs from one stack core: the [`Engine`] trait and its
//! vocabulary (ids, readiness bits, events, errors, options).
//!
//! An engine is one core's TCP/IP stack: a value, not a thread. The runtime
//! owns it and calls it from exactly one thread (the stack thread in the
//! threaded runtime, the application's thread in the inline runtime), so the
//! trait takes `&mut self` and needs no internal locking.
//!
//! One loop iteration, as the runtime drives it:
//!
//! ```text
//!   ingress(now)            receive a batch, run TCP input
//!   take_events(&mut v)     which connections/listeners changed
//!   ... application work:   send/recv/connect/close/... on the engine
//!   egress(now)             emit segments for what changed, one tx batch
//! ```
//!
//! The trait is byte-oriented and allocation-free: `send` copies from the
//! caller's bytes into the connection's own buffer, `recv` from that buffer
//! onto the end of the caller's queue, and both say how many bytes moved;
//! events are appended to a vector the caller reuses.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddrV4;
use std::time::Duration;

use ixtcp_driver::time::VirtualClock;

/// The engine's words for connections are the stack's own: a connection id
/// (slot and generation), its readiness bits, its TCP state and why it
/// ended. sockapi defines no second copy of them.
pub use ixtcp_stack::{CloseReason, ConnId, Readiness, TcpState};

/// The engine's words for UDP are the stack's too: a bound port's id, what
/// one receive took (with the datagram's whole length, for truncation) and
/// an ICMP error about a datagram the port sent.
pub use ixtcp_stack::{UdpError, UdpId, UdpRecv};

/// ICMP destination unreachable code for "port unreachable" (RFC 792).
pub const ICMP_PORT_UNREACHABLE: u8 = 3;

/// The `io::ErrorKind` a UDP socket connected to the destination reports
/// for an ICMP error with `code`, as Linux's UDP does (`ECONNREFUSED` for
/// port and protocol unreachable, `EHOSTUNREACH`, `ENETUNREACH`); `None`
/// for codes Linux does not report (fragmentation needed and the rest).
pub fn udp_error_kind(code: u8) -> Option<io::ErrorKind> {
    match code {
        2 | ICMP_PORT_UNREACHABLE => Some(io::ErrorKind::ConnectionRefused),
        0 | 6 | 11 => Some(io::ErrorKind::NetworkUnreachable),
        1 | 7 | 12 => Some(io::ErrorKind::HostUnreachable),
        _ => None,
    }
}

/// The `io::ErrorKind` a sockets user expects for a connection that ended
/// for `reason`. Only abnormal ends are failures; a normal close (FIN both
/// ways) is never reported as an error, and maps to `NotConnected` should
/// it be asked.
pub fn error_kind(reason: CloseReason) -> io::ErrorKind {
    match reason {
        CloseReason::Refused => io::ErrorKind::ConnectionRefused,
        CloseReason::Reset => io::ErrorKind::ConnectionReset,
        CloseReason::TimedOut => io::ErrorKind::TimedOut,
        CloseReason::Normal => io::ErrorKind::NotConnected,
    }
}

/// A listening socket on one engine: a slot index and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId {
    /// Slot in the engine's listener table.
    pub index: u32,
    /// Generation of the slot.
    pub generation: u32,
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener#{}.{}", self.index, self.generation)
    }
}

/// Something that changed during an iteration. Events may be spurious or
/// coalesced: the receiver re-reads state with [`Engine::state`] and
/// `send`/`recv`/`accept` until they say `WouldBlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    /// A connection's readiness changed (data arrived, buffer space freed,
    /// handshake done, FIN, reset, timeout).
    Conn {
        /// The connection; [`Engine::state`] says what it is now.
        id: ConnId,
    },
    /// A listener has at least one connection for [`Engine::accept`].
    Acceptable {
        /// The listener.
        listener: ListenerId,
    },
    /// A bound UDP port has datagrams for [`Engine::udp_recv_from`] or an
    /// error for [`Engine::udp_take_error`]. Raised at least when a
    /// datagram arrives on a port whose queue the receiver had emptied:
    /// after an event, take datagrams until `WouldBlock`.
    Udp {
        /// The port.
        id: UdpId,
    },
}

/// A connection's state, as [`Engine::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnState {
    /// The TCP state.
    pub tcp: TcpState,
    /// Readiness bits, as in [`EngineEvent::Conn`].
    pub ready: Readiness,
    /// Set once the connection has failed.
    pub failure: Option<CloseReason>,
}

/// A per-connection setting, passed to [`Engine::set_option`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOpt {
    /// Disable Nagle's algorithm (`true`) or enable it.
    NoDelay(bool),
    /// Keep-alive probe interval; `None` turns keep-alive off.
    KeepAlive(Option<Duration>),
    /// Requested send buffer size in bytes. An engine may round or clamp it.
    SendBuffer(usize),
    /// Requested receive buffer size in bytes. An engine may round or clamp it.
    RecvBuffer(usize),
    /// User timeout (RFC 5482, `TCP_USER_TIMEOUT`): reset the connection
    /// when unacknowledged data waits this long; zero: never.
    UserTimeout(Duration),
    /// Keep-alive probes with an idle time, interval and count; `None`
    /// turns them off.
    KeepAliveProbes(Option<KeepAlive>),
}

/// Keep-alive settings of one connection, as Linux's `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL` and `TCP_KEEPCNT`: the first probe after `idle` without
/// hearing from the peer, then one every `interval`; after `count`
/// unanswered probes the connection is reset and reports `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence from the peer before the first probe (1 ms ..= 32 767 s).
    pub idle: Duration,
    /// Time between probes (1 ms ..= 32 767 s).
    pub interval: Duration,
    /// Unanswered probes after which the connection is reset (1 ..= 127).
    pub count: u32,
}

impl KeepAlive {
    /// Linux's limit on the idle time and the interval.
    pub const MAX_TIME: Duration = Duration::from_secs(32_767);
    /// Linux's limit on the count.
    pub const MAX_COUNT: u32 = 127;

    /// What is wrong with these values, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        let ok = |d: Duration| d >= Duration::from_millis(1) && d <= Self::MAX_TIME;
        if !ok(self.idle) {
            Some("keep-alive idle time must be 1 ms ..= 32 767 s")
        } else if !ok(self.interval) {
            Some("keep-alive interval must be 1 ms ..= 32 767 s")
        } else if self.count == 0 || self.count > Self::MAX_COUNT {
            Some("keep-alive count must be 1 ..= 127")
        } else {
            None
        }
    }
}

/// Errors an engine returns. Each maps to the `io::ErrorKind` a sockets user
/// expects (see the `From` impl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineError {
    /// Nothing to do now: no data, no buffer space, no pending connection.
    WouldBlock,
    /// The id is unknown or stale (its slot was released or reused).
    InvalidHandle,
    /// An argument is not acceptable (bad address, zero backlog, a local
    /// port that would not hash to this core, …).
    InvalidInput,
    /// The local address or port is taken.
    AddrInUse,
    /// The local address is not this host's, or no local port is free.
    AddrNotAvailable,
    /// The connection is not established (yet, or any more).
    NotConnected,
    /// Writing after `shutdown_write`, or to a connection that is gone.
    BrokenPipe,
    /// No free connection or listener slot.
    Exhausted,
    /// The engine does not do this (UDP on an engine without it).
    Unsupported,
    /// The connection failed; the same failure stays readable in its state.
    Failed(CloseReason),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            EngineError::WouldBlock => "operation would block",
            EngineError::InvalidHandle => "unknown or stale connection handle",
            EngineError::InvalidInput => "invalid argument",
            EngineError::AddrInUse => "address in use",
            EngineError::AddrNotAvailable => "address not available",
            EngineError::NotConnected => "not connected",
            EngineError::BrokenPipe => "broken pipe",
            EngineError::Exhausted => "no free connection slot",
            EngineError::Unsupported => "not supported by this engine",
            EngineError::Failed(CloseReason::Refused) => "connection refused",
            EngineError::Failed(CloseReason::Reset) => "connection reset by peer",
            EngineError::Failed(CloseReason::TimedOut) => "connection timed out",
            EngineError::Failed(CloseReason::Normal) => "connection closed",
        };
        f.write_str(s)
    }
}

impl std::error::Error for EngineError {}

impl From<EngineError> for io::Error {
    fn from(e: EngineError) -> io::Error {
        let kind = match e {
            EngineError::WouldBlock => io::ErrorKind::WouldBlock,
            EngineError::InvalidHandle => io::ErrorKind::NotConnected,
            EngineError::InvalidInput => io::ErrorKind::InvalidInput,
            EngineError::AddrInUse => io::ErrorKind::AddrInUse,
            EngineError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            EngineError::NotConnected => io::ErrorKind::NotConnected,
            EngineError::BrokenPipe => io::ErrorKind::BrokenPipe,
            EngineError::Exhausted => io::ErrorKind::OutOfMemory,
            EngineError::Unsupported => io::ErrorKind::Unsupported,
            EngineError::Failed(f) => error_kind(f),
        };
        io::Error::new(kind, e)
    }
}

/// One stack core, as sockapi drives it.
///
/// Implemented by the real per-core stack (smoltcp per connection, flow
/// table, listeners with backlog) and by `testing::TestEngine` (feature `test-utils`).
/// All methods are called from one thread at a time; none may block.
///
/// Contract, in the order sockapi relies on it:
///
/// - **Ids.** `listen`, `accept` and `connect` hand out ids that stay valid
///   until `close_listener`, `close` or `abort` is called on them, even after
///   the connection failed or the peer went away: like a file descriptor, the
///   id is released by its owner, not by the network. Calls with a released
///   or unknown id return [`EngineError::InvalidHandle`].
/// - **Events.** Whenever a connection's readiness may have changed, data
///   arrived for it (also while earlier data is unread), or a listener has
///   a connection to accept, the engine queues an event, which
///   [`take_events`](Engine::take_events) hands out. Spurious and coalesced
///   events are fine; missing ones are not (sockapi does not poll).
/// - **Data.** `send` copies as much as fits into the send buffer and returns
///   the count (`WouldBlock` if none fits); `recv` copies out what is there,
///   returns `Ok(0)` only at end of stream (FIN received and buffer drained)
///   and `WouldBlock` when empty but still open.
/// - **Close.** `close` releases the id; the engine then finishes the
///   connection like Linux does: if unread received data remains it sends
///   RST, otherwise it sends what is queued, then FIN. `abort` sends RST at
///   once. Both release the id.
pub trait Engine {
    /// This core's clock, in nanoseconds; passed back to `ingress`/`egress`.
    fn now_ns(&self) -> u64;

    /// First half of a loop iteration: receive and process a batch.
    fn ingress(&mut self, now_ns: u64);

    /// Second half of a loop iteration: emit segments for connections that
    /// changed (data written, ACK owed, FIN, timers due), transmit one batch.
    fn egress(&mut self, now_ns: u64);

    /// Append the events produced since the last call to `out`.
    fn take_events(&mut self, out: &mut Vec<EngineEvent>);

    /// How long the runtime may sleep waiting for application jobs after an
    /// iteration that did nothing. `None` (the default, right for a
    /// poll-mode NIC) means never sleep: poll again at once.
    fn idle_wait(&self) -> Option<Duration> {
        None
    }

    /// The virtual clock this engine's time comes from, if its time is
    /// virtual (a simulation: it moves only when the runtime moves it, after
    /// an iteration that found nothing to do). `None`, the default, for the
    /// monotonic clock.
    fn virtual_clock(&self) -> Option<&VirtualClock> {
        None
    }

    /// When the engine next has work to do without new input (a timer, a
    /// segment it could not send yet), on its clock; `None` if only input
    /// can wake it. A runtime on a virtual clock moves time to here.
    fn next_wakeup_ns(&self) -> Option<u64> {
        None
    }

    /// Transmit, now, what the last ingress owes on connections that have
    /// nothing new for the application to read (the ACK completing an
    /// active open, the ACK of a bare FIN or of a window probe): there is no
    /// reply of the application's for those to ride on, so they must not
    /// wait for its next call. Connections with unread data keep their ACK
    /// for the egress after the application answered. The default does
    /// nothing (engines whose egress owes nothing of the kind).
    fn egress_unanswerable(&mut self, now_ns: u64) {
        let _ = now_ns;
    }

    /// Connections the engine still holds, including closed ones that are
    /// still sending or waiting for the peer's FIN. The runtime's clean stop
    /// waits (up to a bound) for this to reach zero.
    fn connections(&self) -> usize;

    /// Listen on `addr` (port 0: an ephemeral port). At most `backlog`
    /// connections may be half-open or established but not yet accepted;
    /// beyond that, SYNs are dropped.
    fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId, EngineError>;

    /// Take one established connection from a listener's queue.
    fn accept(&mut self, listener: ListenerId) -> Result<ConnId, EngineError>;

    /// Stop listening. Connections queued and not yet accepted are reset.
    fn close_listener(&mut self, listener: ListenerId) -> Result<(), EngineError>;

    /// The address a listener is bound to (with the actual port if 0 was asked).
    fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4, EngineError>;

    /// Start an active open to `remote`, from `local` if given (its port 0 or
    /// `None`: the engine picks a port whose replies reach this core). The
    /// handshake completes later: an event with [`Readiness::CONNECTED`], or
    /// one with [`Readiness::ERROR`] and a [`CloseReason`].
    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError>;

    /// Copy bytes into the send buffer; returns how many fit.
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError>;

    /// Append up to `max` received bytes to `into`, straight from the
    /// engine's own receive buffer, and say how many; `Ok(0)` means end of
    /// stream. Callers pass a `max` of at least 1. Fewer than `max` bytes
    /// means the engine has handed over all it had. (The threaded runtime
    /// reads this way into the stream's shared buffer; inline, the
    /// application's read uses [`recv_slice`](Self::recv_slice).)
    fn recv(&mut self, conn: ConnId, into: &mut VecDeque<u8>, max: usize) -> Result<usize, EngineError>;

    /// Copies received bytes into `into`, straight from the engine's own
    /// receive buffer (the application's read buffer, in the inline
    /// runtime: no copy in between), as [`recv`](Self::recv) does; with
    /// the count, whether a read would still return anything but
    /// `WouldBlock` afterwards (bytes, the end of the stream, a failure).
    /// `into` is not empty.
    fn recv_slice(&mut self, conn: ConnId, into: &mut [u8]) -> Result<(usize, bool), EngineError>;

    /// Send FIN after the queued data; receiving goes on.
    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// Release the id and finish the connection (see the trait docs).
    fn close(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// Release the id and reset the connection.
    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// The connection's TCP state, readiness and failure. `ready` holds
    /// `READABLE` whenever [`recv`](Self::recv) would return anything but
    /// `WouldBlock` (bytes, the end of the stream, a failure): the pump
    /// reads only then.
    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError>;

    /// Local address of a connection.
    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError>;

    /// Remote address of a connection.
    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError>;

    /// Change a per-connection setting.
    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError>;

    // UDP. An engine without it keeps the defaults: binding answers
    // `Unsupported`, so no UDP id ever exists and the rest is never
    // reached with a valid one.

    /// Bind a UDP port on `addr` (its IP unspecified or this host's; port
    /// 0: a free ephemeral port). With `peer`, port 0 picks a port whose
    /// datagrams from `peer` reach this core (RSS), for a client talking
    /// to one peer. Every core of a host may bind the same port: each
    /// takes the flows the NIC's hash gives it. `AddrInUse` if this core
    /// has the port bound.
    fn udp_bind(&mut self, addr: SocketAddrV4, peer: Option<SocketAddrV4>) -> Result<UdpId, EngineError> {
        let _ = (addr, peer);
        Err(EngineError::Unsupported)
    }

    /// Release a UDP port; its queued datagrams are dropped.
    fn udp_unbind(&mut self, id: UdpId) -> Result<(), EngineError> {
        let _ = id;
        Err(EngineError::InvalidHandle)
    }

    /// The address a UDP port is bound to (with the actual port).
    fn udp_local_addr(&self, id: UdpId) -> Result<SocketAddrV4, EngineError> {
        let _ = id;
        Err(EngineError::InvalidHandle)
    }

    /// The largest payload [`udp_send_to`](Self::udp_send_to) takes (and
    /// the largest a received datagram can have).
    fn udp_max_payload(&self) -> usize {
        0
    }

    /// Send `data` as one datagram from `id` to `to`. `WouldBlock`: no room
    /// in this iteration's transmit batch, try again after the next
    /// egress; `InvalidInput`: longer than
    /// [`udp_max_payload`](Self::udp_max_payload), or a destination no
    /// host has or no route reaches.
    fn udp_send_to(&mut self, id: UdpId, to: SocketAddrV4, data: &[u8]) -> Result<(), EngineError> {
        let _ = (id, to, data);
        Err(EngineError::InvalidHandle)
    }

    /// Take the oldest datagram of `id` into `buf` (cut to `buf`'s length;
    /// [`UdpRecv::datagram_len`] says how long it was). `WouldBlock` when
    /// none is queued.
    fn udp_recv_from(&mut self, id: UdpId, buf: &mut [u8]) -> Result<UdpRecv, EngineError> {
        let _ = (id, buf);
        Err(EngineError::InvalidHandle)
    }

    /// Datagrams for `id` the engine dropped because its queue was full.
    fn udp_dropped(&self, id: UdpId) -> Result<u64, EngineError> {
        let _ = id;
        Err(EngineError::InvalidHandle)
    }

    /// The latest ICMP error about a datagram `id` sent, once.
    fn udp_take_error(&mut self, id: UdpId) -> Result<Option<UdpError>, EngineError> {
        let _ = id;
        Err(EngineError::InvalidHandle)
    }
}

impl<E: Engine + ?Sized> Engine for Box<E> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn ingress(&mut self, now_ns: u64) {
        (**self).ingress(now_ns)
    }
    fn egress(&mut self, now_ns: u64) {
        (**self).egress(now_ns)
    }
    fn take_events(&mut self, out: &mut Vec<EngineEvent>) {
        (**self).take_events(out)
    }
    fn idle_wait(&self) -> Option<Duration> {
        (**self).idle_wait()
    }
    fn virtual_clock(&self) -> Option<&VirtualClock> {
        (**self).virtual_clock()
    }
    fn next_wakeup_ns(&self) -> Option<u64> {
        (**self).next_wakeup_ns()
    }
    fn egress_unanswerable(&mut self, now_ns: u64) {
        (**self).egress_unanswerable(now_ns)
    }
    fn connections(&self) -> usize {
        (**self).connections()
    }
    fn listen(&mut self, addr: SocketAddrV4, backlog: usize) -> Result<ListenerId, EngineError> {
        (**self).listen(addr, backlog)
    }
    fn accept(&mut self, listener: ListenerId) -> Result<ConnId, EngineError> {
        (**self).accept(listener)
    }
    fn close_listener(&mut self, listener: ListenerId) -> Result<(), EngineError> {
        (**self).close_listener(listener)
    }
    fn listener_addr(&self, listener: ListenerId) -> Result<SocketAddrV4, EngineError> {
        (**self).listener_addr(listener)
    }
    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError> {
        (**self).connect(remote, local)
    }
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError> {
        (**self).send(conn, data)
    }
    fn recv(&mut self, conn: ConnId, into: &mut VecDeque<u8>, max: usize) -> Result<usize, EngineError> {
        (**self).recv(conn, into, max)
    }
    fn recv_slice(&mut self, conn: ConnId, into: &mut [u8]) -> Result<(usize, bool), EngineError> {
        (**self).recv_slice(conn, into)
    }
    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError> {
        (**self).shutdown_write(conn)
    }
    fn close(&mut self, conn: ConnId) -> Result<(), EngineError> {
        (**self).close(conn)
    }
    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError> {
        (**self).abort(conn)
    }
    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError> {
        (**self).state(conn)
    }
    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        (**self).local_addr(conn)
    }
    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError> {
        (**self).peer_addr(conn)
    }
    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError> {
        (**self).set_option(conn, opt)
    }
    fn udp_bind(&mut self, addr: SocketAddrV4, peer: Option<SocketAddrV4>) -> Result<UdpId, EngineError> {
        (**self).udp_bind(addr, peer)
    }
    fn udp_unbind(&mut self, id: UdpId) -> Result<(), EngineError> {
        (**self).udp_unbind(id)
    }
    fn udp_local_addr(&self, id: UdpId) -> Result<SocketAddrV4, EngineError> {
        (**self).udp_local_addr(id)
    }
    fn udp_max_payload(&self) -> usize {
        (**self).udp_max_payload()
    }
    fn udp_send_to(&mut self, id: UdpId, to: SocketAddrV4, data: &[u8]) -> Result<(), EngineError> {
        (**self).udp_send_to(id, to, data)
    }
    fn udp_recv_from(&mut self, id: UdpId, buf: &mut [u8]) -> Result<UdpRecv, EngineError> {
        (**self).udp_recv_from(id, buf)
    }
    fn udp_dropped(&self, id: UdpId) -> Result<u64, EngineError> {
        (**self).udp_dropped(id)
    }
    fn udp_take_error(&mut self, id: UdpId) -> Result<Option<UdpError>, EngineError> {
        (**self).udp_take_error(id)
    }
}
