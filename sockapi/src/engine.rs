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
//! The trait is byte-oriented and allocation-free: `send`/`recv` copy into and
//! out of the connection's own buffers and say how many bytes fit or were
//! there; events are appended to a vector the caller reuses.

use std::fmt;
use std::io;
use std::net::SocketAddrV4;
use std::time::Duration;

use ixtcp_driver::time::VirtualClock;

/// A connection on one engine: a slot index and the slot's generation.
///
/// The generation changes whenever the slot is reused, so an id kept after its
/// connection was released is refused ([`EngineError::InvalidHandle`]), never
/// confused with a newer connection in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Slot in the engine's connection table.
    pub index: u32,
    /// Generation of the slot.
    pub generation: u32,
}

/// A listening socket on one engine: a slot index and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId {
    /// Slot in the engine's listener table.
    pub index: u32,
    /// Generation of the slot.
    pub generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener#{}.{}", self.index, self.generation)
    }
}

/// Readiness of a connection as the engine sees it, as bits.
///
/// These describe the engine's own buffers: `READABLE` means `recv` would
/// return data or end of stream, `WRITABLE` means `send` would accept bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Readiness(pub u8);

impl Readiness {
    /// No bit set.
    pub const EMPTY: Readiness = Readiness(0);
    /// `recv` would return data, or 0 for end of stream.
    pub const READABLE: Readiness = Readiness(1);
    /// `send` would accept at least one byte.
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer sent FIN (end of stream after the buffered data).
    pub const READ_CLOSED: Readiness = Readiness(4);
    /// The connection is over: both directions closed, or reset.
    pub const HUP: Readiness = Readiness(8);
    /// Ended abnormally; [`ConnState::failure`] says why.
    pub const ERROR: Readiness = Readiness(16);
    /// The three-way handshake has completed (set from then on).
    pub const CONNECTED: Readiness = Readiness(32);

    /// True if every bit of `other` is set in `self`.
    pub fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, other: Readiness) -> Readiness {
        Readiness(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Readiness {
    fn bitor_assign(&mut self, other: Readiness) {
        self.0 |= other.0;
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
        /// The connection.
        id: ConnId,
        /// Its readiness when the event was produced.
        ready: Readiness,
    },
    /// A listener has at least one connection for [`Engine::accept`].
    Acceptable {
        /// The listener.
        listener: ListenerId,
    },
}

/// TCP states (RFC 793), as the engine reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// No connection (failed, reset, or fully closed).
    Closed,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received, SYN-ACK sent.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We sent FIN; waiting for its ACK.
    FinWait1,
    /// Our FIN is acknowledged; the peer may still send.
    FinWait2,
    /// The peer sent FIN; we may still send.
    CloseWait,
    /// Both sent FIN simultaneously.
    Closing,
    /// The peer closed, then we did; waiting for the last ACK.
    LastAck,
    /// Both closed; waiting out stray segments.
    TimeWait,
}

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The peer answered our SYN with RST.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// No answer in time (connect, retransmission or keep-alive timeout).
    TimedOut,
}

impl Failure {
    /// The `io::ErrorKind` a sockets user expects for this failure.
    pub fn kind(self) -> io::ErrorKind {
        match self {
            Failure::Refused => io::ErrorKind::ConnectionRefused,
            Failure::Reset => io::ErrorKind::ConnectionReset,
            Failure::TimedOut => io::ErrorKind::TimedOut,
        }
    }
}

/// A connection's state, as [`Engine::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnState {
    /// The TCP state.
    pub tcp: TcpState,
    /// Readiness bits, as in [`EngineEvent::Conn`].
    pub ready: Readiness,
    /// Set once the connection has failed.
    pub failure: Option<Failure>,
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
    /// The connection failed; the same failure stays readable in its state.
    Failed(Failure),
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
            EngineError::Failed(Failure::Refused) => "connection refused",
            EngineError::Failed(Failure::Reset) => "connection reset by peer",
            EngineError::Failed(Failure::TimedOut) => "connection timed out",
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
            EngineError::Failed(f) => f.kind(),
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
/// - **Events.** Whenever a connection's readiness may have changed, or a
///   listener has a connection to accept, the engine queues an event, which
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
    /// one with [`Readiness::ERROR`] and a [`Failure`].
    fn connect(&mut self, remote: SocketAddrV4, local: Option<SocketAddrV4>) -> Result<ConnId, EngineError>;

    /// Copy bytes into the send buffer; returns how many fit.
    fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, EngineError>;

    /// Copy received bytes out; `Ok(0)` means end of stream.
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, EngineError>;

    /// Send FIN after the queued data; receiving goes on.
    fn shutdown_write(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// Release the id and finish the connection (see the trait docs).
    fn close(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// Release the id and reset the connection.
    fn abort(&mut self, conn: ConnId) -> Result<(), EngineError>;

    /// The connection's TCP state, readiness and failure.
    fn state(&self, conn: ConnId) -> Result<ConnState, EngineError>;

    /// Local address of a connection.
    fn local_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError>;

    /// Remote address of a connection.
    fn peer_addr(&self, conn: ConnId) -> Result<SocketAddrV4, EngineError>;

    /// Change a per-connection setting.
    fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> Result<(), EngineError>;
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
    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, EngineError> {
        (**self).recv(conn, buf)
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
}
