//! What the application side and the stack side share: per-connection byte
//! buffers, per-listener accept queues, and the jobs that cross from one to
//! the other.
//!
//! Each connection has one `Mutex<ConnBuf>`. The application locks it for one
//! `read`/`write` (a memcpy); the stack locks it once per connection per loop
//! iteration in which that connection changed. The two sides meet on the same
//! connection only when both touch it in the same few microseconds, so the
//! lock is uncontended in practice, and it is never held across a call into
//! the other side or across a channel operation. mTCP guards its per-stream
//! buffers the same way.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam_channel::Sender;

use crate::engine::{ConnId, EngineError, Failure, ListenerId, Readiness, SockOpt};
use crate::slab::Key;

/// Lock a mutex; a poisoned lock (a panic elsewhere while holding it) still
/// yields the data, which is plain bytes and flags and stays consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Default size of the application-side buffers of a connection.
pub(crate) const DEFAULT_BUF: usize = 64 * 1024;

/// One connection's application-side buffers and flags.
#[derive(Debug)]
pub(crate) struct ConnBuf {
    /// Received bytes the application has not read yet.
    pub rx: VecDeque<u8>,
    pub rx_cap: usize,
    /// Written bytes the stack has not moved into the engine yet.
    pub tx: VecDeque<u8>,
    pub tx_cap: usize,
    /// The handshake completed (stays set).
    pub established: bool,
    /// End of stream: the peer's FIN arrived and everything before it is in `rx`.
    pub peer_fin: bool,
    /// The application shut down writing; the stack sends FIN after `tx`.
    pub write_shut: bool,
    /// The application shut down reading; reads return 0, arriving data is dropped.
    pub read_shut: bool,
    /// The connection failed (stays set).
    pub failed: Option<Failure>,
    /// The failure not yet reported to the application (`take_error`, or the
    /// next read or write).
    pub error: Option<Failure>,
    /// A `Sync` job is queued (set by the app, cleared by the stack).
    pub sync_queued: bool,
    /// The stack stopped pulling because `rx` was full: the engine may hold more.
    pub engine_has_more: bool,
    /// The application closed or aborted its handle.
    pub app_closed: bool,
    /// Bumped on every change that may make the socket readable (data, FIN,
    /// failure), by whichever side made it; edge-triggered epolls report a
    /// socket only when this moved since their last report.
    pub rseq: u64,
    /// Same for writable (room freed, connected, failure, write shutdown).
    pub wseq: u64,
    pub local: Option<SocketAddrV4>,
    pub peer: Option<SocketAddrV4>,
}

impl ConnBuf {
    pub fn new(rx_cap: usize, tx_cap: usize) -> ConnBuf {
        ConnBuf {
            rx: VecDeque::new(),
            rx_cap,
            tx: VecDeque::new(),
            tx_cap,
            established: false,
            peer_fin: false,
            write_shut: false,
            read_shut: false,
            failed: None,
            error: None,
            sync_queued: false,
            engine_has_more: false,
            app_closed: false,
            rseq: 0,
            wseq: 0,
            local: None,
            peer: None,
        }
    }

    /// Readiness as the application sees it (Linux `tcp_poll` rules): a
    /// failed connection is readable, writable, read-closed and hung up.
    pub fn readiness(&self) -> Readiness {
        let dead = self.failed.is_some();
        let mut r = Readiness::EMPTY;
        if !self.rx.is_empty() || self.peer_fin || self.read_shut || dead {
            r |= Readiness::READABLE;
        }
        if dead || (self.established && (self.tx.len() < self.tx_cap || self.write_shut)) {
            r |= Readiness::WRITABLE;
        }
        if self.peer_fin || self.read_shut || dead {
            r |= Readiness::READ_CLOSED;
        }
        if dead || (self.peer_fin && self.write_shut) {
            r |= Readiness::HUP;
        }
        if self.error.is_some() {
            r |= Readiness::ERROR;
        }
        r
    }
}

/// A connection the stack accepted from the engine, waiting for the
/// application's `accept`.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub conn: ConnId,
    pub buf: Arc<Mutex<ConnBuf>>,
}

/// One listener's accept queue, filled by the stack, drained by the app.
#[derive(Debug)]
pub(crate) struct ListenBuf {
    pub queue: VecDeque<Accepted>,
    /// The stack keeps at most this many accepted connections here.
    pub backlog: usize,
    /// The stack stopped accepting because the queue was full: the engine may
    /// hold more; the app asks for them (`AcceptMore`) after an accept.
    pub more: bool,
    /// An `AcceptMore` job is queued.
    pub more_queued: bool,
    /// The application closed the listener.
    pub closed: bool,
    /// Bumped when the stack queues connections (see `ConnBuf::rseq`).
    pub seq: u64,
}

impl ListenBuf {
    pub fn new(backlog: usize) -> ListenBuf {
        ListenBuf { queue: VecDeque::new(), backlog, more: false, more_queued: false, closed: false, seq: 0 }
    }
}

/// Answer to a synchronous job.
pub(crate) type Reply<T> = Sender<Result<T, EngineError>>;

/// Work the application hands to the stack. Jobs travel in batches (a `Vec`
/// per flush) and are applied in order between ingress and egress.
#[derive(Debug)]
pub(crate) enum Job {
    /// Open a listener; answered with its id and bound address.
    Listen {
        key: Key,
        addr: SocketAddrV4,
        backlog: usize,
        shared: Arc<Mutex<ListenBuf>>,
        reply: Reply<(ListenerId, SocketAddrV4)>,
    },
    /// Stop listening; reset connections not yet accepted.
    CloseListener { listener: ListenerId },
    /// The app took connections from a full accept queue: accept more.
    AcceptMore { listener: ListenerId },
    /// Start an active open; answered with the id and local address.
    Connect {
        key: Key,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
        buf: Arc<Mutex<ConnBuf>>,
        reply: Reply<(ConnId, Option<SocketAddrV4>)>,
    },
    /// The app accepted `conn` as socket `key`: send its events there.
    Adopt { conn: ConnId, key: Key },
    /// `tx` has data, `rx` has room, or `write_shut` was set: sync the connection.
    Sync { conn: ConnId },
    /// The app closed the connection: send what is left, then FIN.
    Close { conn: ConnId },
    /// The app aborted the connection (or closed it with unread data): RST.
    Abort { conn: ConnId },
    /// Pass a setting to the engine.
    SetOpt { conn: ConnId, opt: SockOpt },
    /// Answer once the stack has had an iteration with nothing to do, after
    /// sending the events of every iteration before it (threaded runtime;
    /// see `Context::quiesce`).
    Quiesce { reply: Reply<()> },
}
