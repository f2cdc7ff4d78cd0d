//! The jobs the application hands to its core's stack side: opening and
//! closing sockets, settings, and "sync this connection" (or UDP socket)
//! after a read or write moved bytes in its shared buffers (`crate::buffers`).

use std::net::SocketAddrV4;

use crossbeam_channel::Sender;

use crate::engine::{ConnId, EngineError, ListenerId, SockOpt, UdpId};
use crate::share::{ConnCell, ListenCell, Threaded, UdpCell};
use crate::slab::Key;

/// Answer to a synchronous job.
pub(crate) type Reply<T> = Sender<Result<T, EngineError>>;

/// Work the application hands to the stack. Jobs travel in batches (a `Vec`
/// per flush) and are applied in order between ingress and egress. The
/// jobs that carry a buffer carry a threaded runtime's: inline, sockets are
/// opened by a direct call instead (`AnyPump::open_now`).
#[derive(Debug)]
pub(crate) enum Job {
    /// Open a listener; answered with its id and bound address.
    Listen {
        key: Key,
        addr: SocketAddrV4,
        backlog: usize,
        shared: ListenCell<Threaded>,
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
        buf: ConnCell<Threaded>,
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
    /// Bind a UDP port (with `peer`, port 0: one whose datagrams from the
    /// peer reach this core); answered with its id, bound address and the
    /// engine's largest payload.
    UdpBind {
        key: Key,
        addr: SocketAddrV4,
        peer: Option<SocketAddrV4>,
        shared: UdpCell<Threaded>,
        reply: Reply<(UdpId, SocketAddrV4, usize)>,
    },
    /// The UDP socket's `tx` has datagrams or `rx` has room: sync it.
    UdpSync { id: UdpId },
    /// The app closed the UDP socket: send what is queued, then unbind.
    UdpClose { id: UdpId },
    /// Answer once the stack has had an iteration with nothing to do, after
    /// sending the events of every iteration before it (threaded runtime;
    /// see `Context::quiesce`).
    Quiesce { reply: Reply<()> },
}
