//! What the application side and the stack side share: per-connection byte
//! buffers, per-listener accept queues and per-UDP-socket datagram queues. (The jobs that cross from one
//! side to the other are in `crate::job`.)
//!
//! Each connection has one `ConnBuf`, shared as its runtime shares buffers
//! (`crate::share`: a mutex threaded, a `RefCell` inline). The application
//! takes it for one `read`/`write` (a memcpy); the stack takes it once per
//! connection per loop iteration in which that connection changed. Threaded,
//! the two sides meet on the same connection only when both touch it in the
//! same few microseconds, so the lock is uncontended in practice (mTCP
//! guards its per-stream buffers the same way). Neither side holds a buffer
//! across a call into the other side or across a channel operation.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::engine::{CloseReason, ConnId, EngineError, Readiness};
use crate::readiness::{self, Changes, StreamState};

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
    pub failed: Option<CloseReason>,
    /// The failure not yet reported to the application (`take_error`, or the
    /// next read or write).
    pub error: Option<CloseReason>,
    /// A `Sync` job is queued (set by the app, cleared by the stack).
    pub sync_queued: bool,
    /// The stack stopped pulling because `rx` was full: the engine may hold more.
    pub engine_has_more: bool,
    /// Inline runtime: the engine holds something for a read (bytes, the
    /// end of the stream, a failure), which the application's read takes
    /// straight from the engine's buffer instead of `rx` (set by the stack
    /// side at an event, cleared by the read that empties the engine).
    pub engine_unread: bool,
    /// Inline runtime: the peer's FIN is in at the engine, perhaps behind
    /// unread bytes there (`peer_fin` is set when a read reaches it).
    pub fin_in: bool,
    /// Inline runtime: a read could not reach the engine (the context was
    /// in use); the stack side moves the engine's bytes into `rx` at its
    /// next sync instead, and reports the socket.
    pub pull_asked: bool,
    /// The application closed or aborted its handle.
    pub app_closed: bool,
    /// Bumped by whichever side makes a change that may make the socket
    /// readable or writable, in the same critical section as the change
    /// (see [`crate::readiness`]).
    pub changes: Changes,
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
            engine_unread: false,
            fin_in: false,
            pull_asked: false,
            app_closed: false,
            changes: Changes::default(),
            local: None,
            peer: None,
        }
    }

    /// The buffer of a connection that is over, made new for the next one
    /// (as [`new`](Self::new)) but keeping the memory its queues grew to, so
    /// a core that opens and closes connections all day does not allocate
    /// for each ([`crate::pump`]'s spare buffers).
    pub fn renew(&mut self, rx_cap: usize, tx_cap: usize) {
        let (mut rx, mut tx) = (std::mem::take(&mut self.rx), std::mem::take(&mut self.tx));
        rx.clear();
        tx.clear();
        *self = ConnBuf { rx, tx, ..ConnBuf::new(rx_cap, tx_cap) };
    }

    /// Bytes of memory the queues hold, used or not.
    pub fn held_bytes(&self) -> usize {
        self.rx.capacity() + self.tx.capacity()
    }

    /// The connection failed for `reason`: record it (it stays) and owe the
    /// application its report. True if this is the first failure; a later
    /// one changes nothing.
    pub fn fail(&mut self, reason: CloseReason) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.failed = Some(reason);
        self.error = Some(reason);
        true
    }

    /// Readiness as the application sees it ([`readiness::stream`]).
    pub fn readiness(&self) -> Readiness {
        readiness::stream(StreamState {
            unread: !self.rx.is_empty() || self.engine_unread,
            room: self.tx.len() < self.tx_cap,
            established: self.established,
            peer_fin: self.peer_fin || self.fin_in,
            write_shut: self.write_shut,
            read_shut: self.read_shut,
            failed: self.failed.is_some(),
            error: self.error.is_some(),
        })
    }
}

/// A connection the stack accepted from the engine, waiting for the
/// application's `accept`, with its buffer (`B`: as the runtime shares it).
#[derive(Debug)]
pub(crate) struct Accepted<B> {
    pub conn: ConnId,
    pub buf: B,
}

/// One listener's accept queue, filled by the stack, drained by the app.
#[derive(Debug)]
pub(crate) struct ListenBuf<B> {
    pub queue: VecDeque<Accepted<B>>,
    /// The stack keeps at most this many accepted connections here.
    pub backlog: usize,
    /// The stack stopped accepting because the queue was full: the engine may
    /// hold more; the app asks for them (`AcceptMore`) after an accept.
    pub more: bool,
    /// An `AcceptMore` job is queued.
    pub more_queued: bool,
    /// The application closed the listener.
    pub closed: bool,
    /// Bumped when the stack queues connections (see `ConnBuf::changes`).
    pub changes: Changes,
}

impl<B> ListenBuf<B> {
    pub fn new(backlog: usize) -> ListenBuf<B> {
        ListenBuf {
            queue: VecDeque::new(),
            backlog,
            more: false,
            more_queued: false,
            closed: false,
            changes: Changes::default(),
        }
    }

    /// Connections queued, and the change counters.
    pub fn queued(&self) -> (usize, Changes) {
        (self.queue.len(), self.changes)
    }
}

/// Datagrams a UDP socket queues each way by default.
pub(crate) const DEFAULT_UDP_QUEUE: usize = 256;

/// One received datagram, in a buffer of the socket's pool.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub from: SocketAddrV4,
    /// The bytes the engine handed over.
    pub data: Vec<u8>,
    /// The datagram's whole length (more than `data.len()` only if the
    /// engine itself had to cut it).
    pub len: usize,
}

/// One UDP socket's queues and flags, shared by the application (which
/// reads `rx` and fills `tx`) and the stack (which fills `rx` from the
/// engine and moves `tx` into it).
#[derive(Debug)]
pub(crate) struct UdpBuf {
    /// Received datagrams not yet read.
    pub rx: VecDeque<Datagram>,
    /// At most this many wait in `rx`; the stack drops (and counts) more.
    pub rx_cap: usize,
    /// Datagrams written, not yet taken by the engine: destination, bytes.
    pub tx: VecDeque<(SocketAddrV4, Vec<u8>)>,
    pub tx_cap: usize,
    /// Emptied buffers, reused by both sides.
    pub spare: Vec<Vec<u8>>,
    pub local: SocketAddrV4,
    /// The connected peer: only its datagrams are taken, and ICMP errors
    /// about datagrams to it are reported.
    pub peer: Option<SocketAddrV4>,
    /// The largest payload the engine sends.
    pub max_payload: usize,
    /// Datagrams dropped because `rx` was full.
    pub dropped: u64,
    /// Datagrams the engine dropped (its own queue full), as last read.
    pub engine_dropped: u64,
    /// Datagrams from others than the connected peer, dropped.
    pub filtered: u64,
    /// Datagrams the engine refused to send (no route, bad destination).
    pub send_failures: u64,
    /// The last such refusal, for `take_error`.
    pub send_error: Option<EngineError>,
    /// An ICMP error about a datagram to the connected peer, reported by
    /// the next receive or send (Linux's `sk_err`).
    pub error: Option<std::io::ErrorKind>,
    /// A sync job is queued (set by the app, cleared by the stack).
    pub sync_queued: bool,
    pub app_closed: bool,
    pub changes: Changes,
}

impl UdpBuf {
    pub fn new(local: SocketAddrV4, max_payload: usize) -> UdpBuf {
        UdpBuf {
            rx: VecDeque::new(),
            rx_cap: DEFAULT_UDP_QUEUE,
            tx: VecDeque::new(),
            tx_cap: DEFAULT_UDP_QUEUE,
            spare: Vec::new(),
            local,
            peer: None,
            max_payload,
            dropped: 0,
            engine_dropped: 0,
            filtered: 0,
            send_failures: 0,
            send_error: None,
            error: None,
            sync_queued: false,
            app_closed: false,
            changes: Changes::default(),
        }
    }

    /// A buffer from the pool, empty.
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Returns a buffer to the pool (which keeps no more than both queues
    /// can hold).
    pub fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < self.rx_cap + self.tx_cap {
            self.spare.push(b);
        }
    }

    /// Readiness as the application sees it ([`readiness::datagram`]).
    pub fn readiness(&self) -> Readiness {
        readiness::datagram(!self.rx.is_empty(), self.tx.len() < self.tx_cap, self.error.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_buffer_is_new_but_keeps_its_memory() {
        let mut b = ConnBuf::new(100, 200);
        b.rx.extend(b"request".iter());
        b.tx.extend(b"response".iter());
        b.established = true;
        b.peer_fin = true;
        b.write_shut = true;
        b.read_shut = true;
        b.fail(CloseReason::Reset);
        b.sync_queued = true;
        b.engine_has_more = true;
        b.app_closed = true;
        b.changes.readable();
        b.local = Some("10.0.0.1:80".parse().unwrap());
        b.peer = Some("10.0.0.2:4000".parse().unwrap());
        let held = b.held_bytes();
        assert!(held >= 15);
        b.renew(1000, 2000);
        let fresh = ConnBuf::new(1000, 2000);
        assert_eq!(b.held_bytes(), held, "the queues keep their memory");
        assert!(b.rx.is_empty() && b.tx.is_empty());
        assert_eq!((b.rx_cap, b.tx_cap), (1000, 2000));
        assert_eq!(
            (b.established, b.peer_fin, b.write_shut, b.read_shut, b.sync_queued, b.engine_has_more, b.app_closed),
            (false, false, false, false, false, false, false)
        );
        assert_eq!((b.failed, b.error, b.local, b.peer), (None, None, None, None));
        assert_eq!(format!("{:?}", b.changes), format!("{:?}", fresh.changes));
        assert_eq!(b.readiness(), fresh.readiness());
    }
}
