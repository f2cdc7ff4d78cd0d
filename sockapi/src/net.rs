//! [`TcpListener`] and [`TcpStream`]: socket handles bound to one [`Context`].

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::context::{Context, Sock, SockKind};
use crate::engine::{ConnId, EngineError, KeepAlive, ListenerId, SockOpt, error_kind};
use crate::epoll::{Source, SourceId};
use crate::job::Job;
use crate::pump::{Open, Opened};
use crate::share::{ConnRef, ListenRef, Shared};

use crate::slab::Key;

/// Backlog of [`TcpListener::bind`].
pub const DEFAULT_BACKLOG: usize = 128;

/// The error for a handle whose socket was closed.
pub(crate) fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "socket is closed")
}

pub(crate) fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv6 is not supported")),
    }
}

/// The longest user timeout a stream accepts (as the stack's
/// `user_timeout_ms`).
const MAX_USER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn table_full() -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, "socket table is full")
}

/// Copy from the front of `q` into `dst`; returns the count.
/// Moves the first bytes of `q` that fit into `dst`, and returns how many.
fn take_front(q: &mut VecDeque<u8>, dst: &mut [u8]) -> usize {
    let n = dst.len().min(q.len());
    let (a, b) = q.as_slices();
    let from_a = n.min(a.len());
    dst[..from_a].copy_from_slice(&a[..from_a]);
    dst[from_a..n].copy_from_slice(&b[..n - from_a]);
    q.drain(..n);
    n
}

/// Copies the first bytes of `q` that fit into `dst`, skipping the first
/// `skip`, and returns how many (a peek: `q` keeps them).
fn copy_front(q: &VecDeque<u8>, skip: usize, dst: &mut [u8]) -> usize {
    let n = dst.len().min(q.len().saturating_sub(skip));
    if n == 0 {
        return 0;
    }
    let (a, b) = q.as_slices();
    // The `n` bytes from `skip` on: some from the ring's first piece, the
    // rest from its second.
    let from_a = a.len().saturating_sub(skip).min(n);
    let a_start = skip.min(a.len());
    dst[..from_a].copy_from_slice(&a[a_start..a_start + from_a]);
    let b_start = skip.saturating_sub(a.len());
    dst[from_a..n].copy_from_slice(&b[b_start..b_start + (n - from_a)]);
    n
}

/// A TCP connection on one [`Context`].
///
/// Non-blocking by default, as in mTCP and mio: `read` and `write` return
/// `WouldBlock` instead of waiting; [`set_nonblocking(false)`](Self::set_nonblocking)
/// makes them wait (running the stack meanwhile, when inline). Implements
/// `std::io::Read` and `Write`, also on `&TcpStream`, with vectored I/O.
///
/// Dropping the handle closes the socket, like [`close`](Self::close)
/// without the result. After `close` or `abort` every call returns
/// `NotConnected`.
///
/// ```
/// use ixtcp_sockapi::{Context, TcpListener, TcpStream, testing::TestNet};
/// use std::io::{Read, Write};
///
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let listener = TcpListener::bind(&ctx, "10.0.0.1:80".parse().unwrap())?;
/// listener.set_nonblocking(false);
/// let mut client = TcpStream::connect(&ctx, "10.0.0.1:80".parse().unwrap())?;
/// client.set_nonblocking(false);
/// let (mut server, _) = listener.accept()?;
/// server.set_nonblocking(false);
///
/// client.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    ctx: Context,
    key: Key,
    conn: ConnId,
    pub(crate) buf: ConnRef,
    nonblocking: Cell<bool>,
    nodelay: Cell<bool>,
    keepalive: Cell<Option<Duration>>,
    user_timeout: Cell<Option<Duration>>,
    keepalive_probes: Cell<Option<KeepAlive>>,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream").field("ctx", &self.ctx).field("conn", &self.conn).finish()
    }
}

impl TcpStream {
    /// Start connecting to `addr` and return at once (like a non-blocking
    /// `connect`): the stream becomes writable when the handshake completes;
    /// a refused or unanswered connect shows as an error event and as
    /// `ConnectionRefused` / `TimedOut` from `take_error`, `read` or `write`.
    ///
    /// Errors at once: `InvalidInput` (IPv6, or a destination the engine
    /// refuses), `AddrNotAvailable` (no free local port).
    ///
    /// ```
    /// use ixtcp_sockapi::{Context, TcpStream, testing::TestNet};
    /// use std::io::{ErrorKind, Read};
    ///
    /// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
    /// // Nobody listens on port 9: refused at the next loop iteration.
    /// let s = TcpStream::connect(&ctx, "10.0.0.1:9".parse().unwrap())?;
    /// s.set_nonblocking(false);
    /// let err = (&s).read(&mut [0; 1]).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(ctx: &Context, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_from(ctx, addr, None)
    }

    /// Like [`connect`](Self::connect), from a chosen local address (port 0:
    /// any). `AddrInUse` if that 4-tuple is taken, `AddrNotAvailable` if the
    /// address is not this host's.
    pub fn connect_from(ctx: &Context, addr: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpStream> {
        let remote = v4(addr)?;
        let local = local.map(v4).transpose()?;
        let buf = ctx.new_conn_buf();
        let placeholder = ConnId { index: u32::MAX, generation: u32::MAX };
        let key = ctx
            .state()?
            .insert_sock(SockKind::Stream { conn: placeholder, buf: buf.clone() })
            .ok_or_else(table_full)?;
        let res = match buf.clone() {
            Shared::Local(buf) => ctx.open_now(Open::Connect { key, remote, local, buf }).and_then(Opened::conn),
            Shared::Threaded(buf) => ctx.call(|reply| Job::Connect { key, remote, local, buf, reply }),
        };
        match res {
            Ok((conn, local)) => {
                if let Some(Sock { kind: SockKind::Stream { conn: c, .. }, .. }) = ctx.state()?.socks.get_mut(key) {
                    *c = conn;
                }
                let mut b = buf.lock();
                if b.local.is_none() {
                    b.local = local;
                }
                drop(b);
                Ok(TcpStream::from_parts(ctx, key, conn, buf))
            }
            Err(e) => {
                ctx.state()?.remove_sock(key);
                Err(e)
            }
        }
    }

    fn from_parts(ctx: &Context, key: Key, conn: ConnId, buf: ConnRef) -> TcpStream {
        TcpStream {
            ctx: ctx.clone(),
            key,
            conn,
            buf,
            nonblocking: Cell::new(true),
            nodelay: Cell::new(false),
            keepalive: Cell::new(None),
            user_timeout: Cell::new(None),
            keepalive_probes: Cell::new(None),
        }
    }

    /// The context this stream belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// `false`: reads, writes wait instead of returning `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.set(nonblocking);
    }

    /// Copies received bytes into `buf` without consuming them: the next
    /// read returns them again (`recv` with `MSG_PEEK`). Otherwise as
    /// `read`: `Ok(0)` at the end of the stream, `WouldBlock` when nothing
    /// has arrived on a non-blocking stream (a blocking one waits).
    ///
    /// ```
    /// use ixtcp_sockapi::{Context, TcpListener, TcpStream, testing::TestNet};
    /// use std::io::{Read, Write};
    ///
    /// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
    /// let listener = TcpListener::bind(&ctx, "10.0.0.1:7".parse().unwrap())?;
    /// listener.set_nonblocking(false);
    /// let client = TcpStream::connect(&ctx, "10.0.0.1:7".parse().unwrap())?;
    /// let (server, _) = listener.accept()?;
    /// server.set_nonblocking(false);
    /// (&client).write_all(b"hello")?;
    /// let mut two = [0; 2];
    /// assert_eq!(server.peek(&mut two)?, 2);
    /// assert_eq!(&two, b"he");
    /// assert_eq!(server.bytes_readable()?, 5);
    /// let mut all = [0; 5];
    /// (&server).read_exact(&mut all)?;
    /// assert_eq!(&all, b"hello");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.blocking(|| self.try_read(&mut [IoSliceMut::new(buf)], true))
    }

    /// Bytes a read returns now without waiting (`ioctl(FIONREAD)`): those
    /// the stack has handed to this socket, which is all it has received,
    /// up to the socket's receive buffer. Errors only if the stream was
    /// closed by the application.
    pub fn bytes_readable(&self) -> io::Result<usize> {
        self.pull_engine_bytes();
        let b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        Ok(b.rx.len())
    }

    /// Inline, where reads take bytes straight from the engine: moves what
    /// the engine holds into the stream's own buffer, for the calls that
    /// look at that buffer (peek, the readable count). When the stack
    /// cannot be reached now, its next sync does it and reports the socket.
    fn pull_engine_bytes(&self) {
        let unread = {
            let b = self.buf.lock();
            b.rx.is_empty() && b.engine_unread && !b.app_closed
        };
        if unread && !self.ctx.pull_now(self.conn) {
            // Failing only with a context in use or gone, which the
            // caller's own call then reports.
            let _ = self.ask_pull();
        }
    }

    /// Asks the stack side to move the engine's bytes into `rx` at its next
    /// sync (and so to report the socket), queueing that sync once.
    // Cold: only a context in use reaches it, and kept out of `try_read`
    // the read path measures 9 instructions fewer per echo transaction.
    #[cold]
    fn ask_pull(&self) -> io::Result<()> {
        let job = {
            let mut b = self.buf.lock();
            let job = !b.sync_queued;
            (b.pull_asked, b.sync_queued) = (true, true);
            job
        };
        if job { self.sync_job() } else { Ok(()) }
    }

    fn sync_job(&self) -> io::Result<()> {
        self.ctx.push_job(Job::Sync { conn: self.conn })
    }

    /// Reads into `bufs`; with `peek`, leaves what it copied in the buffer.
    fn try_read(&self, bufs: &mut [IoSliceMut<'_>], peek: bool) -> io::Result<usize> {
        if peek {
            self.pull_engine_bytes();
        }
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if bufs.iter().all(|d| d.is_empty()) {
            return Ok(0);
        }
        if b.rx.is_empty() && b.engine_unread && !b.read_shut && !peek {
            // Inline: the bytes are read straight from the engine's buffer.
            match self.ctx.recv_now(self.conn, bufs) {
                Some(Ok((0, _))) => {
                    b.engine_unread = false;
                    b.peer_fin = true;
                    return Ok(0);
                }
                Some(Ok((n, more))) => {
                    b.engine_unread = more;
                    return Ok(n);
                }
                Some(Err(EngineError::Failed(f))) => {
                    // Reported below, by this read; the stack side's sync
                    // finds it recorded.
                    b.engine_unread = false;
                    if b.fail(f) {
                        b.changes.record(true, true);
                    }
                }
                // Nothing after all, or the engine no longer knows the
                // connection (its failure comes with the next sync).
                Some(Err(_)) => b.engine_unread = false,
                None => {
                    // The stack cannot be reached now: it moves the bytes
                    // into `rx` at its next sync, and reports the socket.
                    drop(b);
                    self.ask_pull()?;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        }
        if !b.rx.is_empty() {
            let mut n = 0;
            if peek {
                for dst in bufs.iter_mut() {
                    n += copy_front(&b.rx, n, dst);
                }
                return Ok(n);
            }
            for dst in bufs.iter_mut() {
                n += take_front(&mut b.rx, dst);
                if b.rx.is_empty() {
                    break;
                }
            }
            let pull = b.engine_has_more && !b.sync_queued;
            b.sync_queued |= pull;
            drop(b);
            if pull {
                self.sync_job()?;
            }
            return Ok(n);
        }
        if b.read_shut {
            return Ok(0);
        }
        if let Some(f) = b.error.take() {
            return Err(error_kind(f).into());
        }
        if b.failed.is_some() {
            return if b.established { Ok(0) } else { Err(io::ErrorKind::NotConnected.into()) };
        }
        if b.peer_fin {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if let Some(f) = b.error.take() {
            return Err(error_kind(f).into());
        }
        if b.failed.is_some() {
            let kind = if b.established { io::ErrorKind::BrokenPipe } else { io::ErrorKind::NotConnected };
            return Err(kind.into());
        }
        if b.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if bufs.iter().all(|s| s.is_empty()) {
            return Ok(0);
        }
        let room = b.tx_cap.saturating_sub(b.tx.len());
        if !b.established || room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Inline, with nothing of ours still buffered, the engine takes the
        // bytes at once: no copy into `tx` and no sync job (the stack sends
        // them at its next egress either way). What it has no room for is
        // buffered as below.
        let mut direct = 0;
        if b.tx.is_empty() {
            direct = self.ctx.send_now(self.conn, bufs).unwrap_or(0);
        }
        let mut skip = direct;
        let mut left = room;
        for src in bufs {
            // The first `direct` bytes went to the engine.
            let from = skip.min(src.len());
            skip -= from;
            let src = &src[from..];
            let k = src.len().min(left);
            b.tx.extend(&src[..k]);
            left -= k;
            if left == 0 {
                break;
            }
        }
        if left < room {
            let job = !b.sync_queued;
            b.sync_queued = true;
            drop(b);
            if job {
                self.sync_job()?;
            }
        }
        Ok(direct + room - left)
    }

    fn blocking<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.get() => self.ctx.block_once()?,
                r => return r,
            }
        }
    }

    /// Shut down reading, writing or both. `Write` sends FIN after the
    /// buffered data (half-close; reading goes on); `Read` makes reads
    /// return 0 and drops data that arrives. `NotConnected` before the
    /// handshake completed or after the connection failed.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        if !b.established || b.failed.is_some() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            b.write_shut = true;
            // Writable now (writes fail at once), and maybe hung up: a change
            // for every interest.
            b.changes.record(true, true);
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            b.read_shut = true;
            b.rx.clear();
            // What the engine still holds is dropped at the sync below.
            b.engine_unread = false;
            b.changes.readable();
        }
        b.sync_queued = true;
        drop(b);
        self.ctx.state()?.notify(self.key);
        self.sync_job()
    }

    /// Close the stream, as `close(2)` on Linux: if received data is still
    /// unread the connection is reset (RST); otherwise the data still
    /// buffered is sent, then FIN. `NotConnected` if already closed.
    pub fn close(&self) -> io::Result<()> {
        let unread = {
            let mut b = self.buf.lock();
            if b.app_closed {
                return Err(closed());
            }
            b.app_closed = true;
            !b.rx.is_empty()
        };
        self.ctx.state()?.remove_sock(self.key);
        let conn = self.conn;
        self.ctx.push_job(if unread { Job::Abort { conn } } else { Job::Close { conn } })
    }

    /// Reset the connection (RST) and close the stream; buffered data is
    /// dropped. `NotConnected` if already closed.
    pub fn abort(&self) -> io::Result<()> {
        {
            let mut b = self.buf.lock();
            if b.app_closed {
                return Err(closed());
            }
            b.app_closed = true;
        }
        self.ctx.state()?.remove_sock(self.key);
        self.ctx.push_job(Job::Abort { conn: self.conn })
    }

    /// The local address (known from `connect` on, for an active open).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        b.local.map(SocketAddr::V4).ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// The peer's address; `NotConnected` before the handshake completed or
    /// after the connection failed.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        match (b.established, b.failed, b.peer) {
            (true, None, Some(p)) => Ok(SocketAddr::V4(p)),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// The pending error of a failed connection, cleared by this call
    /// (`SO_ERROR`): `ConnectionRefused`, `ConnectionReset` or `TimedOut`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut b = self.buf.lock();
        if b.app_closed {
            return Err(closed());
        }
        Ok(b.error.take().map(|f| error_kind(f).into()))
    }

    fn check_open(&self) -> io::Result<()> {
        if self.buf.lock().app_closed { Err(closed()) } else { Ok(()) }
    }

    fn set_opt(&self, opt: SockOpt) -> io::Result<()> {
        self.ctx.push_job(Job::SetOpt { conn: self.conn, opt })
    }

    /// Disable (`true`) or enable Nagle's algorithm (`TCP_NODELAY`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.check_open()?;
        self.nodelay.set(nodelay);
        self.set_opt(SockOpt::NoDelay(nodelay))
    }

    /// The last value given to [`set_nodelay`](Self::set_nodelay) (default `false`).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.check_open()?;
        Ok(self.nodelay.get())
    }

    /// Send keep-alive probes every `interval` while idle; `None` turns them
    /// off. `InvalidInput` for a zero interval.
    pub fn set_keepalive(&self, interval: Option<Duration>) -> io::Result<()> {
        self.check_open()?;
        if interval == Some(Duration::ZERO) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "keep-alive interval must not be zero"));
        }
        self.keepalive.set(interval);
        self.keepalive_probes.set(None);
        self.set_opt(SockOpt::KeepAlive(interval))
    }

    /// The keep-alive interval (default `None`).
    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        self.check_open()?;
        Ok(self.keepalive.get())
    }

    /// The user timeout of this stream (RFC 5482, Linux's
    /// `TCP_USER_TIMEOUT`): when data written (or the FIN) stays
    /// unacknowledged and the peer silent this long, the connection is
    /// reset and reports `TimedOut`; `Duration::ZERO`: never. Replaces the
    /// stack's configured default (`user_timeout_ms`) for this stream.
    /// `InvalidInput` above 24 h.
    pub fn set_user_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.check_open()?;
        if timeout > MAX_USER_TIMEOUT {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "user timeout must be at most 24 h"));
        }
        self.user_timeout.set(Some(timeout));
        self.set_opt(SockOpt::UserTimeout(timeout))
    }

    /// The last value given to [`set_user_timeout`](Self::set_user_timeout);
    /// `None` until then (the stack's configured default applies).
    pub fn user_timeout(&self) -> io::Result<Option<Duration>> {
        self.check_open()?;
        Ok(self.user_timeout.get())
    }

    /// Keep-alive probes with an idle time, interval and count (Linux's
    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`; see [`KeepAlive`]):
    /// an idle connection whose peer has gone answers no probe and is reset
    /// after `idle + count × interval`, reporting `TimedOut`. `None` turns
    /// them off. Replaces [`set_keepalive`](Self::set_keepalive)'s
    /// interval. `InvalidInput`, saying which, for a value out of range.
    pub fn set_keepalive_probes(&self, probes: Option<KeepAlive>) -> io::Result<()> {
        self.check_open()?;
        if let Some(problem) = probes.and_then(|k| k.problem()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, problem));
        }
        self.keepalive_probes.set(probes);
        if probes.is_some() {
            self.keepalive.set(None);
        }
        self.set_opt(SockOpt::KeepAliveProbes(probes))
    }

    /// The last value given to
    /// [`set_keepalive_probes`](Self::set_keepalive_probes) (default `None`).
    pub fn keepalive_probes(&self) -> io::Result<Option<KeepAlive>> {
        self.check_open()?;
        Ok(self.keepalive_probes.get())
    }

    /// Size the send side: the stream buffers up to `size` written bytes
    /// before `write` says `WouldBlock`, and the engine is asked for a send
    /// buffer of that size. `InvalidInput` for 0.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.resize(size, true)
    }

    /// Size the receive side, as [`set_send_buffer_size`](Self::set_send_buffer_size).
    /// (Inline, received bytes wait in the engine's buffer alone until read:
    /// reads take them from there, and the stream buffers them only for a
    /// peek or [`bytes_readable`](Self::bytes_readable).)
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.resize(size, false)
    }

    fn resize(&self, size: usize, send: bool) -> io::Result<()> {
        if size == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer size must not be zero"));
        }
        {
            let mut b = self.buf.lock();
            if b.app_closed {
                return Err(closed());
            }
            if send {
                b.tx_cap = size;
                b.changes.writable();
            } else {
                b.rx_cap = size;
            }
            b.sync_queued = true;
        }
        self.ctx.state()?.notify(self.key);
        self.set_opt(if send { SockOpt::SendBuffer(size) } else { SockOpt::RecvBuffer(size) })?;
        self.sync_job()
    }

    /// The stream's send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(b.tx_cap) }
    }

    /// The stream's receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let b = self.buf.lock();
        if b.app_closed { Err(closed()) } else { Ok(b.rx_cap) }
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_vectored(&mut [IoSliceMut::new(buf)])
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let s: &TcpStream = self;
        s.blocking(|| s.try_read(bufs, false))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let s: &TcpStream = self;
        s.blocking(|| s.try_write(bufs))
    }

    /// Data is handed to the stack at the next wait; nothing to do here.
    fn flush(&mut self) -> io::Result<()> {
        self.check_open()
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl Source for TcpStream {
    fn source_id(&self) -> SourceId {
        SourceId { ctx: self.ctx.inner.id, key: self.key }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let open = !self.buf.lock().app_closed;
        if open {
            let _ = self.close();
        }
    }
}

/// A listening socket on one [`Context`]. Every core usually binds the same
/// port, and the NIC's RSS spreads connections over the cores.
///
/// Non-blocking by default: `accept` returns `WouldBlock` when no connection
/// is waiting; the listener is readable when one is. Dropping it closes it;
/// connections not yet accepted are then reset.
///
/// ```
/// use ixtcp_sockapi::{Context, TcpListener, testing::TestNet};
/// use std::io::ErrorKind;
///
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let l = TcpListener::bind(&ctx, "10.0.0.1:8080".parse().unwrap())?;
/// assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
/// // The same port twice on one core:
/// let again = TcpListener::bind(&ctx, "10.0.0.1:8080".parse().unwrap());
/// assert_eq!(again.unwrap_err().kind(), ErrorKind::AddrInUse);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    ctx: Context,
    key: Key,
    id: ListenerId,
    shared: ListenRef,
    addr: SocketAddrV4,
    nonblocking: Cell<bool>,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("ctx", &self.ctx).field("addr", &self.addr).finish()
    }
}

impl TcpListener {
    /// Listen on `addr` with [`DEFAULT_BACKLOG`]. Port 0 picks a free port.
    /// Errors: `AddrInUse`, `AddrNotAvailable` (not this host's address),
    /// `InvalidInput` (IPv6).
    pub fn bind(ctx: &Context, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(ctx, addr, DEFAULT_BACKLOG)
    }

    /// Listen with a backlog: at most `backlog` connections wait (half-open
    /// or not yet accepted) in the engine, and as many again in this
    /// context's accept queue. A backlog of 0 counts as 1.
    pub fn bind_with_backlog(ctx: &Context, addr: SocketAddr, backlog: usize) -> io::Result<TcpListener> {
        let addr = v4(addr)?;
        let backlog = backlog.max(1);
        let shared = ListenRef::new(ctx.is_inline(), backlog);
        let placeholder = ListenerId { index: u32::MAX, generation: u32::MAX };
        let key = ctx
            .state()?
            .insert_sock(SockKind::Listener { id: placeholder, shared: shared.clone() })
            .ok_or_else(table_full)?;
        let res = match shared.clone() {
            Shared::Local(q) => ctx.open_now(Open::Listen { key, addr, backlog, shared: q }).and_then(Opened::listener),
            Shared::Threaded(q) => ctx.call(|reply| Job::Listen { key, addr, backlog, shared: q, reply }),
        };
        match res {
            Ok((id, bound)) => {
                if let Some(Sock { kind: SockKind::Listener { id: slot, .. }, .. }) = ctx.state()?.socks.get_mut(key) {
                    *slot = id;
                }
                Ok(TcpListener { ctx: ctx.clone(), key, id, shared, addr: bound, nonblocking: Cell::new(true) })
            }
            Err(e) => {
                ctx.state()?.remove_sock(key);
                Err(e)
            }
        }
    }

    /// The bound address (with the real port if 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        if self.shared.is_closed() {
            return Err(closed());
        }
        Ok(SocketAddr::V4(self.addr))
    }

    /// The context this listener belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// `false`: `accept` waits for a connection instead of `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.set(nonblocking);
    }

    /// Take an established connection and its peer's address. The stream
    /// is non-blocking, like the listener's default.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            match self.try_accept() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking.get() => self.ctx.block_once()?,
                r => return r,
            }
        }
    }

    fn try_accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let acc = match self.shared.take() {
            Err(()) => return Err(closed()),
            Ok(None) => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(Some(acc)) => acc,
        };
        let more = acc.ask_more;
        let peer = acc.buf.lock().peer.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let kind = SockKind::Stream { conn: acc.conn, buf: acc.buf.clone() };
        let key = match self.ctx.state()?.insert_sock(kind) {
            Some(k) => k,
            None => {
                self.ctx.push_job(Job::Abort { conn: acc.conn })?;
                return Err(table_full());
            }
        };
        self.ctx.push_job(Job::Adopt { conn: acc.conn, key })?;
        if more {
            self.ctx.push_job(Job::AcceptMore { listener: self.id })?;
        }
        Ok((TcpStream::from_parts(&self.ctx, key, acc.conn, acc.buf), SocketAddr::V4(peer)))
    }

    /// Stop listening; connections not yet accepted are reset.
    /// `NotConnected` if already closed.
    pub fn close(&self) -> io::Result<()> {
        if !self.shared.close() {
            return Err(closed());
        }
        self.ctx.state()?.remove_sock(self.key);
        self.ctx.push_job(Job::CloseListener { listener: self.id })
    }
}

impl Source for TcpListener {
    fn source_id(&self) -> SourceId {
        SourceId { ctx: self.ctx.inner.id, key: self.key }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let open = !self.shared.is_closed();
        if open {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_front_reads_across_the_rings_wrap_from_any_offset() {
        // A deque whose contents wrap: its first piece ends before its data does.
        let mut q: VecDeque<u8> = VecDeque::with_capacity(16);
        q.extend(0..12u8);
        q.drain(..10);
        q.extend(12..24u8);
        let want: Vec<u8> = (10..24u8).collect();
        assert!(!q.as_slices().1.is_empty(), "the test needs a wrapped deque");
        for skip in 0..=want.len() + 2 {
            for len in 0..=want.len() + 2 {
                let mut dst = vec![0xee; len];
                let n = copy_front(&q, skip, &mut dst);
                let expect = &want[skip.min(want.len())..(skip + len).min(want.len())];
                assert_eq!(&dst[..n], expect, "skip {skip}, len {len}");
            }
        }
        assert_eq!(q.len(), want.len(), "nothing consumed");
    }

    /// Every buffer an inline context's sockets share with their stack
    /// side is a `RefCell` (no lock, no atomic per packet); a threaded
    /// context's are behind mutexes, as the two threads need.
    #[test]
    fn inline_sockets_share_their_buffers_without_locks_and_threaded_ones_with() {
        use crate::share::Shared;
        use crate::testing::TestNet;
        use crate::{Mode, Runtime, UdpSocket};
        let kinds = |ctx: &Context| {
            let at: SocketAddr = "10.0.0.1:80".parse().unwrap();
            let l = TcpListener::bind(ctx, at).unwrap();
            l.set_nonblocking(false);
            let c = TcpStream::connect(ctx, at).unwrap();
            let (s, _) = l.accept().unwrap();
            let u = UdpSocket::bind(ctx, "10.0.0.1:53".parse().unwrap()).unwrap();
            let local = [
                matches!(l.shared, Shared::Local(_)),
                matches!(c.buf, Shared::Local(_)),
                matches!(s.buf, Shared::Local(_)),
                matches!(u.buf, Shared::Local(_)),
            ];
            let threaded = [
                matches!(l.shared, Shared::Threaded(_)),
                matches!(c.buf, Shared::Threaded(_)),
                matches!(s.buf, Shared::Threaded(_)),
                matches!(u.buf, Shared::Threaded(_)),
            ];
            (local, threaded)
        };
        let ctx = Context::inline(TestNet::simulated().engine([10, 0, 0, 1].into()));
        assert_eq!(kinds(&ctx), ([true; 4], [false; 4]), "inline: listener, connected, accepted, UDP");
        drop(ctx);
        let net = TestNet::new();
        let rt = Runtime::builder().mode(Mode::Threaded).build(1, |_| Ok(net.engine([10, 0, 0, 1].into()))).unwrap();
        let started = rt.start().unwrap();
        let ctx = started.attach(0).unwrap();
        assert_eq!(kinds(&ctx), ([false; 4], [true; 4]), "threaded: listener, connected, accepted, UDP");
        drop(ctx);
        started.join().unwrap();
    }

    /// Inline, a connect takes the buffer of a connection that is over
    /// (renewed, with the memory its queues grew to) instead of a new one,
    /// and the connection works as a fresh one.
    #[test]
    fn an_inline_connect_reuses_a_finished_connections_buffer() {
        use crate::testing::TestNet;
        use std::io::{Read, Write};
        let ctx = Context::inline(TestNet::simulated().engine([10, 0, 0, 1].into()));
        let at: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let l = TcpListener::bind(&ctx, at).unwrap();
        let settle = |what: &str, mut cond: Box<dyn FnMut() -> bool + '_>| {
            for _ in 0..10_000 {
                if cond() {
                    return;
                }
                ctx.step().unwrap();
            }
            panic!("stuck waiting for {what}");
        };
        let exchange = |c: &TcpStream| {
            let mut s = None;
            settle("accept", Box::new(|| l.accept().map(|(a, _)| s = Some(a)).is_ok()));
            let s = s.unwrap();
            settle("connected", Box::new(|| c.peer_addr().is_ok()));
            (&*c).write_all(b"ping").unwrap();
            let mut got = Vec::new();
            settle(
                "ping",
                Box::new(|| {
                    let mut b = [0u8; 8];
                    if let Ok(n) = (&s).read(&mut b) {
                        got.extend_from_slice(&b[..n]);
                    }
                    got.len() >= 4
                }),
            );
            assert_eq!(got, b"ping");
            s
        };
        let first = TcpStream::connect(&ctx, at).unwrap();
        let s = exchange(&first);
        // Weak handles: they keep the allocations from being reused by
        // chance, and do not count as holders (a buffer with another
        // holder is not recycled).
        let local = |b: &ConnRef| match b {
            Shared::Local(c) => std::rc::Rc::clone(c),
            Shared::Threaded(_) => panic!("an inline context's buffer is not behind a mutex"),
        };
        let old = [std::rc::Rc::downgrade(&local(&first.buf)), std::rc::Rc::downgrade(&local(&s.buf))];
        drop(first);
        drop(s);
        // Both ends closed: once the stack is done with them their buffers
        // are spare (the accepted one's too).
        settle("spare buffers", Box::new(|| ctx.quiesce().is_ok() && !ctx.stack_busy()));
        let second = TcpStream::connect(&ctx, at).unwrap();
        let reused = old.iter().any(|w| w.upgrade().is_some_and(|b| std::rc::Rc::ptr_eq(&b, &local(&second.buf))));
        assert!(reused, "the second connect took a spare buffer");
        assert!(second.buf.lock().rx.is_empty() && second.buf.lock().tx.is_empty());
        let s = exchange(&second);
        drop(s);
    }
}
