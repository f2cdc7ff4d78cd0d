//! [`UdpSocket`]: a UDP port bound on one [`Context`]'s core.
//!
//! - **Queues.** Each socket has a receive queue and a send queue of whole
//!   datagrams, shared with the stack side ([`crate::buffers`]'s
//!   `UdpBuf`), each bounded by a count of datagrams
//!   ([`set_recv_queue_len`](UdpSocket::set_recv_queue_len),
//!   [`set_send_queue_len`](UdpSocket::set_send_queue_len), 256 by
//!   default). The stack moves every datagram the engine holds into the
//!   receive queue at once; one that finds the queue full is dropped and
//!   counted ([`UdpSocket::dropped`]), as Linux drops a datagram for a
//!   full receive buffer.
//! - **Boundaries.** One receive takes one datagram. A datagram longer
//!   than the caller's buffer is cut to it and the rest is gone, and the
//!   call says so: [`RecvMeta::datagram_len`] is the whole length and
//!   [`RecvMeta::truncated`] is true (Linux's `recvmsg` with `MSG_TRUNC`
//!   in its flags). One send is one datagram.
//! - **Sending** copies the datagram into the send queue and returns; the
//!   stack hands it to the engine at its next iteration. A datagram the
//!   engine has no room for this iteration waits for the next one. What is
//!   wrong with a datagram before it leaves is refused at once
//!   (`InvalidInput`: IPv6, port 0, an unspecified address, longer than
//!   [`max_payload`](UdpSocket::max_payload) — Linux says `EMSGSIZE`);
//!   what only the engine can tell (no route, a broadcast address) drops
//!   the datagram, counts it and keeps the error for
//!   [`take_error`](UdpSocket::take_error).
//! - **Connected sockets.** [`connect`](UdpSocket::connect) sets the peer
//!   for [`send`](UdpSocket::send) and keeps only its datagrams (others
//!   are dropped and counted). An ICMP port unreachable about a datagram
//!   to the peer makes the next receive or send fail once with
//!   `ConnectionRefused` (host and network unreachable give
//!   `HostUnreachable`, `NetworkUnreachable`), as on Linux; an
//!   unconnected socket ignores ICMP errors, as Linux does without
//!   `IP_RECVERR`.
//! - **Readiness** ([`crate::readiness`]): readable with a datagram
//!   queued, writable with room in the send queue, both and in error
//!   while an ICMP error waits to be reported. Registered with
//!   [`Epoll`](crate::Epoll) like a stream.
//! - **Cores.** A socket lives on its context's core. A server binds the
//!   same port on every core's context: the NIC hashes each flow's
//!   4-tuple to one core, which then sees all of that flow's datagrams. A
//!   client talking to one peer binds with
//!   [`bind_for_peer`](UdpSocket::bind_for_peer), which picks a port
//!   whose replies the hash brings back to the client's core.

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};

use crate::buffers::UdpBuf;
use crate::context::{Context, Sock, SockKind};
use crate::engine::UdpId;
use crate::epoll::{Source, SourceId};
use crate::job::Job;
use crate::net::{closed, table_full, v4};
use crate::pump::{Open, Opened};
use crate::share::{Shared, UdpRef};
use crate::slab::Key;

/// What one receive took: how much was copied, the datagram's whole
/// length, and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's whole length; more than `len` if it was cut.
    pub datagram_len: usize,
    /// The sender.
    pub from: SocketAddr,
}

impl RecvMeta {
    /// True if the datagram was longer than the buffer given: the rest is
    /// gone (`MSG_TRUNC` in `recvmsg`'s flags on Linux).
    pub fn truncated(&self) -> bool {
        self.datagram_len > self.len
    }
}

/// A UDP socket's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams for this socket dropped because a receive queue was full
    /// (this socket's, or the engine's before the stack took them).
    pub dropped: u64,
    /// Datagrams from others than the connected peer, dropped.
    pub filtered: u64,
    /// Datagrams the engine refused to send (no route, a destination no
    /// host has), dropped.
    pub send_failures: u64,
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A UDP socket on one [`Context`].
///
/// Non-blocking by default: `recv_from` says `WouldBlock` when no datagram
/// is queued and `send_to` when the send queue is full;
/// [`set_nonblocking(false)`](Self::set_nonblocking) makes them wait.
/// Dropping the handle closes the socket; after [`close`](Self::close)
/// every call returns `NotConnected`.
///
/// ```
/// use ixtcp_sockapi::{Context, UdpSocket, testing::TestNet};
///
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let server = UdpSocket::bind(&ctx, "10.0.0.1:53".parse().unwrap())?;
/// let client = UdpSocket::bind(&ctx, "10.0.0.1:0".parse().unwrap())?;
/// server.set_nonblocking(false);
/// client.send_to(b"query", "10.0.0.1:53".parse().unwrap())?;
/// let mut buf = [0; 3];
/// let got = server.recv_from(&mut buf)?;
/// assert_eq!((&buf, got.datagram_len, got.truncated()), (b"que", 5, true));
/// assert_eq!(got.from, client.local_addr()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    ctx: Context,
    key: Key,
    id: UdpId,
    pub(crate) buf: UdpRef,
    nonblocking: Cell<bool>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket").field("ctx", &self.ctx).field("id", &self.id).finish()
    }
}

impl UdpSocket {
    /// Bind `addr` on this context's core (port 0: a free ephemeral port).
    /// Errors: `AddrInUse` (this core has the port bound),
    /// `AddrNotAvailable` (not this host's address, or no free port),
    /// `InvalidInput` (IPv6), `Unsupported` (an engine without UDP).
    pub fn bind(ctx: &Context, addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::open(ctx, v4(addr)?, None)
    }

    /// Bind a free ephemeral port whose datagrams from `peer` the NIC's
    /// hash sends to this context's core, and connect to `peer`: the
    /// socket a client on one core of several uses to talk to one server.
    pub fn bind_for_peer(ctx: &Context, peer: SocketAddr) -> io::Result<UdpSocket> {
        let peer = UdpSocket::destination(peer)?;
        let s = UdpSocket::open(ctx, SocketAddrV4::new([0, 0, 0, 0].into(), 0), Some(peer))?;
        s.buf.lock().peer = Some(peer);
        Ok(s)
    }

    fn open(ctx: &Context, addr: SocketAddrV4, peer: Option<SocketAddrV4>) -> io::Result<UdpSocket> {
        let buf = UdpRef::new(ctx.is_inline(), UdpBuf::new(addr, 0));
        let placeholder = UdpId { index: u32::MAX, generation: u32::MAX };
        let key =
            ctx.state()?.insert_sock(SockKind::Udp { id: placeholder, buf: buf.clone() }).ok_or_else(table_full)?;
        let res = match buf.clone() {
            Shared::Local(shared) => ctx.open_now(Open::UdpBind { key, addr, peer, shared }).and_then(Opened::udp),
            Shared::Threaded(shared) => {
                ctx.call(|reply| Job::UdpBind { key, addr, peer, shared, reply }).map(|(id, ..)| id)
            }
        };
        match res {
            Ok(id) => {
                if let Some(Sock { kind: SockKind::Udp { id: i, .. }, .. }) = ctx.state()?.socks.get_mut(key) {
                    *i = id;
                }
                Ok(UdpSocket { ctx: ctx.clone(), key, id, buf, nonblocking: Cell::new(true) })
            }
            Err(e) => {
                ctx.state()?.remove_sock(key);
                Err(e)
            }
        }
    }

    /// A destination a datagram can be sent to, or why not.
    fn destination(addr: SocketAddr) -> io::Result<SocketAddrV4> {
        let a = v4(addr)?;
        if a.port() == 0 {
            return Err(invalid("destination port 0"));
        }
        if a.ip().is_unspecified() {
            return Err(invalid("destination address 0.0.0.0"));
        }
        Ok(a)
    }

    /// The context this socket belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// `false`: receives and sends wait instead of returning `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.set(nonblocking);
    }

    fn blocking<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.get() => self.ctx.block_once()?,
                r => return r,
            }
        }
    }

    /// Set the peer: [`send`](Self::send) goes there, only its datagrams
    /// are received from now on, and ICMP errors about datagrams to it are
    /// reported. May be called again to change it.
    pub fn connect(&self, peer: SocketAddr) -> io::Result<()> {
        let peer = UdpSocket::destination(peer)?;
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        b.peer = Some(peer);
        b.error = None;
        Ok(())
    }

    /// Send `data` as one datagram to `to`; returns its length. See the
    /// module docs for what is refused at once and what later.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        let to = UdpSocket::destination(to)?;
        self.blocking(|| self.try_send(data, to))
    }

    /// Send to the connected peer; `NotConnected` if there is none.
    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        let peer = {
            let b = self.buf.lock();
            if b.app_closed {
                return Err(closed());
            }
            b.peer.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected"))?
        };
        self.blocking(|| self.try_send(data, peer))
    }

    fn try_send(&self, data: &[u8], to: SocketAddrV4) -> io::Result<usize> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if let Some(kind) = b.error.take() {
            return Err(kind.into());
        }
        if data.len() > b.max_payload {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("datagram of {} bytes, longer than {} (no fragmentation)", data.len(), b.max_payload),
            ));
        }
        if b.tx.len() >= b.tx_cap {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut d = b.buffer();
        d.extend_from_slice(data);
        b.tx.push_back((to, d));
        let job = !b.sync_queued;
        b.sync_queued = true;
        drop(b);
        if job {
            self.ctx.push_job(Job::UdpSync { id: self.id })?;
        }
        Ok(data.len())
    }

    /// Take the oldest datagram into `buf`; a longer one is cut (see
    /// [`RecvMeta`]). `WouldBlock` when none is queued (a blocking socket
    /// waits); a connected socket's pending ICMP error first.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        self.blocking(|| self.try_recv(buf))
    }

    /// As [`recv_from`](Self::recv_from); named for connected sockets,
    /// which receive only from their peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        self.recv_from(buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if let Some(kind) = b.error.take() {
            return Err(kind.into());
        }
        let Some(d) = b.rx.pop_front() else { return Err(io::ErrorKind::WouldBlock.into()) };
        let len = d.data.len().min(buf.len());
        buf[..len].copy_from_slice(&d.data[..len]);
        let meta = RecvMeta { len, datagram_len: d.len, from: SocketAddr::V4(d.from) };
        // Room again needs no job: the stack drains the engine whenever it
        // has datagrams, dropping what finds the queue full.
        b.recycle(d.data);
        Ok(meta)
    }

    /// The bound address (with the actual port if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(SocketAddr::V4(b.local)) }
    }

    /// The connected peer; `NotConnected` if none.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        b.peer.map(SocketAddr::V4).ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// The largest datagram [`send_to`](Self::send_to) takes: the engine's
    /// MTU less the IPv4 and UDP headers (1472 on Ethernet).
    pub fn max_payload(&self) -> io::Result<usize> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(b.max_payload) }
    }

    /// The pending error, cleared by this call (`SO_ERROR`): an ICMP error
    /// about a datagram to the connected peer, else the engine's last
    /// refusal of a datagram (`InvalidInput`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if let Some(kind) = b.error.take() {
            return Ok(Some(kind.into()));
        }
        Ok(b.send_error.take().map(io::Error::from))
    }

    /// Datagrams for this socket dropped because a receive queue was full.
    pub fn dropped(&self) -> io::Result<u64> {
        self.stats().map(|s| s.dropped)
    }

    /// The socket's counters.
    pub fn stats(&self) -> io::Result<UdpStats> {
        let b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        Ok(UdpStats { dropped: b.dropped + b.engine_dropped, filtered: b.filtered, send_failures: b.send_failures })
    }

    /// Datagrams the receive queue holds at most (`InvalidInput` for 0).
    pub fn set_recv_queue_len(&self, len: usize) -> io::Result<()> {
        self.resize(len, false)
    }

    /// Datagrams the send queue holds at most (`InvalidInput` for 0).
    pub fn set_send_queue_len(&self, len: usize) -> io::Result<()> {
        self.resize(len, true)
    }

    fn resize(&self, len: usize, send: bool) -> io::Result<()> {
        if len == 0 {
            return Err(invalid("queue length must not be zero"));
        }
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if send {
            b.tx_cap = len;
            b.changes.writable();
        } else {
            b.rx_cap = len;
        }
        drop(b);
        self.ctx.state()?.notify(self.key);
        Ok(())
    }

    /// The receive queue's bound, in datagrams.
    pub fn recv_queue_len(&self) -> io::Result<usize> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(b.rx_cap) }
    }

    /// The send queue's bound, in datagrams.
    pub fn send_queue_len(&self) -> io::Result<usize> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(b.tx_cap) }
    }

    /// Close the socket: datagrams already sent are still handed to the
    /// engine, then the port is released; those not yet read are dropped.
    /// `NotConnected` if already closed.
    pub fn close(&self) -> io::Result<()> {
        {
            let mut b = self.buf.lock();
            if b.app_closed {
                return Err(closed());
            }
            b.app_closed = true;
            b.rx.clear();
        }
        self.ctx.state()?.remove_sock(self.key);
        self.ctx.push_job(Job::UdpClose { id: self.id })
    }
}

impl Source for UdpSocket {
    fn source_id(&self) -> SourceId {
        SourceId { ctx: self.ctx.inner.id, key: self.key }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let open = !self.buf.lock().app_closed;
        if open {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestNet;

    fn ctx() -> Context {
        Context::inline(TestNet::simulated().engine([10, 0, 0, 1].into()))
    }

    #[test]
    fn destinations_are_checked_before_queueing() {
        for bad in ["10.0.0.2:0", "0.0.0.0:53", "[::1]:53"] {
            let e = UdpSocket::destination(bad.parse().unwrap()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(UdpSocket::destination("10.0.0.2:53".parse().unwrap()).is_ok());
    }

    #[test]
    fn recv_meta_says_truncated_only_when_cut() {
        let from = "10.0.0.2:9".parse().unwrap();
        assert!(!RecvMeta { len: 4, datagram_len: 4, from }.truncated());
        assert!(RecvMeta { len: 4, datagram_len: 5, from }.truncated());
    }

    #[test]
    fn a_closed_socket_answers_not_connected_everywhere() {
        let c = ctx();
        let s = UdpSocket::bind(&c, "10.0.0.1:7".parse().unwrap()).unwrap();
        s.close().unwrap();
        let to = "10.0.0.1:8".parse().unwrap();
        let kinds = [
            s.close().unwrap_err().kind(),
            s.send_to(b"x", to).unwrap_err().kind(),
            s.send(b"x").unwrap_err().kind(),
            s.recv_from(&mut [0; 4]).unwrap_err().kind(),
            s.local_addr().unwrap_err().kind(),
            s.connect(to).unwrap_err().kind(),
            s.dropped().unwrap_err().kind(),
            s.set_recv_queue_len(4).unwrap_err().kind(),
        ];
        assert!(kinds.iter().all(|k| *k == io::ErrorKind::NotConnected), "{kinds:?}");
        assert_eq!(c.socket_count(), 0);
    }
}
