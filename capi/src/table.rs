//! One context's id table: mTCP's socket ids (sockets, listeners, epolls,
//! pipe ends share one space of small integers, lowest free first, as
//! file descriptors) over sockapi's handles, and every call's semantics in
//! safe Rust. The C functions in `api.rs` only convert pointers.
//!
//! An mTCP socket is made before it is a listener or a stream, so an id
//! starts [`Entry::Fresh`] (its bound address, its options, blocking or
//! not) and becomes a sockapi [`TcpListener`] at `listen` or a
//! [`TcpStream`] at `connect`. Epoll registrations are kept here too
//! (events mask and the caller's data per id), so that a registration made
//! while the socket was fresh takes effect when it becomes one, and so that
//! `mtcp_epoll_wait` can give back the caller's `data`.

use std::collections::{BTreeSet, HashMap};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use ixtcp_sockapi::{Context, Epoll, Events, Interest, Source, TcpListener, TcpStream, Token, Trigger, Waker};

use crate::errno::{Errno, Res};
use crate::pipe::{self, PipeReader, PipeWriter};

/// Event bits, as `mtcp_epoll.h` defines them.
pub mod ev {
    /// Readable.
    pub const IN: u32 = 0x001;
    /// Writable.
    pub const OUT: u32 = 0x004;
    /// Error.
    pub const ERR: u32 = 0x008;
    /// Hung up.
    pub const HUP: u32 = 0x010;
    /// The peer shut its writing side.
    pub const RDHUP: u32 = 0x2000;
    /// One event, then disabled until re-armed.
    pub const ONESHOT: u32 = 1 << 30;
    /// Edge-triggered.
    pub const ET: u32 = 1 << 31;
    /// Bits a registration may carry (the rest are `EINVAL`).
    pub const KNOWN: u32 = IN | 0x002 | OUT | ERR | HUP | 0x040 | 0x080 | 0x100 | 0x200 | 0x400 | RDHUP | ONESHOT | ET;
}

/// `mtcp_epoll_ctl`'s operations.
pub mod op {
    /// Add a registration.
    pub const ADD: i32 = 1;
    /// Remove one.
    pub const DEL: i32 = 2;
    /// Change one.
    pub const MOD: i32 = 3;
}

/// The token of the context's interrupt waker in every epoll.
const INTERRUPT: Token = Token(usize::MAX);

/// Linux's `tcp_keepalive_time`: what `SO_KEEPALIVE` turns on.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(7200);

/// Socket options set with `mtcp_setsockopt`, kept for fresh sockets and
/// listeners (whose accepted streams take them, as on Linux) and read back
/// by `mtcp_getsockopt`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    nodelay: Option<bool>,
    sndbuf: Option<usize>,
    rcvbuf: Option<usize>,
    keepalive: Option<bool>,
    /// `SO_REUSEADDR` as set; it changes nothing (see `setsockopt`).
    reuseaddr: Option<bool>,
}

/// What an id stands for.
#[derive(Debug)]
pub enum Entry {
    /// Made by `mtcp_socket`, neither listening nor connecting yet.
    Fresh {
        /// The address given to `mtcp_bind`.
        bound: Option<SocketAddrV4>,
        /// Options set so far.
        opts: Opts,
        /// `mtcp_setsock_nonblock` was called.
        nonblock: bool,
    },
    /// Listening.
    Listener {
        /// The sockapi listener.
        l: TcpListener,
        /// Options for accepted streams.
        opts: Opts,
        /// Non-blocking.
        nonblock: bool,
    },
    /// Connected or connecting.
    Stream {
        /// The sockapi stream.
        s: TcpStream,
        /// Options as set.
        opts: Opts,
        /// Non-blocking.
        nonblock: bool,
    },
    /// An epoll and its event buffer.
    Epoll {
        /// The sockapi epoll.
        ep: Epoll,
        /// Reused between waits.
        events: Events,
    },
    /// A pipe's read end.
    PipeRead(PipeReader),
    /// A pipe's write end (the writer itself is in the context's shared
    /// registry, usable from any thread; see `lib.rs`).
    PipeWrite,
}

/// One registration: the caller's mask and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg {
    /// `MTCP_EPOLL*` bits asked for.
    pub events: u32,
    /// `mtcp_epoll_data_t`, as its 64 bits.
    pub data: u64,
}

/// What one wait returned.
#[derive(Debug, Default)]
pub struct Waited {
    /// (events, data) per ready id.
    pub ready: Vec<(u32, u64)>,
    /// A registered signal arrived during the wait.
    pub interrupted: bool,
}

/// What a socket has before `mtcp_setsockopt` changes it: the stack's
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The stack's `nodelay`.
    pub nodelay: bool,
    /// The stack's send buffer, bytes.
    pub sndbuf: usize,
    /// The stack's receive buffer, bytes.
    pub rcvbuf: usize,
}

impl Defaults {
    /// The defaults of `stack`.
    pub fn of(stack: &ixtcp_stack::StackConfig) -> Defaults {
        Defaults { nodelay: stack.nodelay, sndbuf: stack.socket_tx_buffer, rcvbuf: stack.socket_rx_buffer }
    }
}

/// One context's ids.
pub struct Table {
    ctx: Context,
    defaults: Defaults,
    entries: Vec<Option<Entry>>,
    free: BTreeSet<usize>,
    regs: HashMap<i32, HashMap<i32, Reg>>,
    interrupt: Waker,
    limit: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("ctx", &self.ctx).field("ids", &(self.entries.len() - self.free.len())).finish()
    }
}

fn e(code: i32) -> Errno {
    Errno(code)
}

fn interest(mask: u32) -> Interest {
    match (mask & (ev::IN | ev::RDHUP) != 0, mask & ev::OUT != 0) {
        (_, false) => Interest::READABLE,
        (false, true) => Interest::WRITABLE,
        (true, true) => Interest::READABLE | Interest::WRITABLE,
    }
}

/// A mask that asks for neither reading nor writing (only the errors and
/// hang-ups every registration gets) is watched edge-triggered: sockapi
/// needs an interest, and a level-triggered readable one would report the
/// unread data that this mask filters out in every wait.
fn trigger(mask: u32) -> Trigger {
    let io = mask & (ev::IN | ev::RDHUP | ev::OUT) != 0;
    let t = if mask & ev::ET != 0 || !io { Trigger::EDGE } else { Trigger::LEVEL };
    if mask & ev::ONESHOT != 0 { t.oneshot() } else { t }
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

impl Table {
    /// An empty table on `ctx` with room for `limit` ids. Fails only if the
    /// context cannot make its interrupt waker.
    pub fn new(ctx: Context, limit: usize, defaults: Defaults) -> Res<Table> {
        let interrupt = Waker::new(&ctx)?;
        Ok(Table { ctx, defaults, entries: Vec::new(), free: BTreeSet::new(), regs: HashMap::new(), interrupt, limit })
    }

    /// The waker a signal wakes, interrupting this context's waits.
    pub fn interrupt(&self) -> &Waker {
        &self.interrupt
    }

    fn alloc(&mut self, entry: Entry) -> Res<i32> {
        if let Some(id) = self.free.pop_first() {
            self.entries[id] = Some(entry);
            return Ok(id as i32);
        }
        if self.entries.len() >= self.limit {
            return Err(e(libc::ENFILE));
        }
        self.entries.push(Some(entry));
        Ok(self.entries.len() as i32 - 1)
    }

    fn get(&self, id: i32) -> Res<&Entry> {
        usize::try_from(id).ok().and_then(|i| self.entries.get(i)).and_then(Option::as_ref).ok_or(e(libc::EBADF))
    }

    fn get_mut(&mut self, id: i32) -> Res<&mut Entry> {
        usize::try_from(id).ok().and_then(|i| self.entries.get_mut(i)).and_then(Option::as_mut).ok_or(e(libc::EBADF))
    }

    fn take(&mut self, id: i32) -> Res<Entry> {
        let i = usize::try_from(id).map_err(|_| e(libc::EBADF))?;
        let entry = self.entries.get_mut(i).and_then(Option::take).ok_or(e(libc::EBADF))?;
        self.free.insert(i);
        for regs in self.regs.values_mut() {
            regs.remove(&id);
        }
        self.regs.remove(&id);
        Ok(entry)
    }

    /// The kind of `id` (`EBADF` if it is not open).
    pub fn is_pipe_write(&self, id: i32) -> Res<bool> {
        Ok(matches!(self.get(id)?, Entry::PipeWrite))
    }

    /// `mtcp_socket`: `AF_INET` and `SOCK_STREAM` only.
    pub fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> Res<i32> {
        if domain != libc::AF_INET {
            return Err(e(libc::EAFNOSUPPORT));
        }
        if ty != libc::SOCK_STREAM {
            return Err(e(libc::EINVAL));
        }
        if protocol != 0 && protocol != libc::IPPROTO_TCP {
            return Err(e(libc::EPROTONOSUPPORT));
        }
        self.alloc(Entry::Fresh { bound: None, opts: Opts::default(), nonblock: false })
    }

    /// `mtcp_bind`: a fresh socket, once.
    pub fn bind(&mut self, id: i32, addr: SocketAddrV4) -> Res<()> {
        match self.get_mut(id)? {
            Entry::Fresh { bound: b @ None, .. } => {
                *b = Some(addr);
                Ok(())
            }
            Entry::Fresh { .. } | Entry::Listener { .. } | Entry::Stream { .. } => Err(e(libc::EINVAL)),
            _ => Err(e(libc::ENOTSOCK)),
        }
    }

    /// `mtcp_listen`: a bound fresh socket becomes a listener.
    pub fn listen(&mut self, id: i32, backlog: i32) -> Res<()> {
        let (addr, opts, nonblock) = match self.get(id)? {
            Entry::Fresh { bound: Some(a), opts, nonblock } => (*a, *opts, *nonblock),
            Entry::Fresh { bound: None, .. } => return Err(e(libc::EDESTADDRREQ)),
            Entry::Listener { .. } => return Ok(()),
            Entry::Stream { .. } => return Err(e(libc::EINVAL)),
            _ => return Err(e(libc::ENOTSOCK)),
        };
        let l = TcpListener::bind_with_backlog(&self.ctx, SocketAddr::V4(addr), backlog.max(1) as usize)?;
        l.set_nonblocking(nonblock);
        self.entries[id as usize] = Some(Entry::Listener { l, opts, nonblock });
        self.reregister(id)
    }

    /// `mtcp_accept`: the new stream's id and its peer.
    pub fn accept(&mut self, id: i32) -> Res<(i32, SocketAddrV4)> {
        let (l, opts) = match self.get(id)? {
            Entry::Listener { l, opts, .. } => (l, *opts),
            Entry::Fresh { .. } | Entry::Stream { .. } => return Err(e(libc::EINVAL)),
            _ => return Err(e(libc::ENOTSOCK)),
        };
        if self.free.is_empty() && self.entries.len() >= self.limit {
            return Err(e(libc::ENFILE));
        }
        let (s, peer) = l.accept()?;
        // Accepted sockets block until told otherwise, as on Linux.
        s.set_nonblocking(false);
        apply(&s, &opts)?;
        let id = self.alloc(Entry::Stream { s, opts, nonblock: false })?;
        Ok((id, v4(peer)))
    }

    /// `mtcp_connect`: non-blocking, `EINPROGRESS` (completion is
    /// `MTCP_EPOLLOUT`); blocking, waits for the handshake.
    pub fn connect(&mut self, id: i32, addr: SocketAddrV4) -> Res<()> {
        let (bound, opts, nonblock) = match self.get(id)? {
            Entry::Fresh { bound, opts, nonblock } => (*bound, *opts, *nonblock),
            Entry::Stream { s, .. } => {
                return Err(e(if s.peer_addr().is_ok() { libc::EISCONN } else { libc::EALREADY }));
            }
            Entry::Listener { .. } => return Err(e(libc::EISCONN)),
            _ => return Err(e(libc::ENOTSOCK)),
        };
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(e(libc::EINVAL));
        }
        let local = bound.filter(|b| !b.ip().is_unspecified() || b.port() != 0).map(SocketAddr::V4);
        let s = TcpStream::connect_from(&self.ctx, SocketAddr::V4(addr), local)?;
        s.set_nonblocking(nonblock);
        apply(&s, &opts)?;
        self.entries[id as usize] = Some(Entry::Stream { s, opts, nonblock });
        self.reregister(id)?;
        if nonblock {
            return Err(e(libc::EINPROGRESS));
        }
        let Entry::Stream { s, .. } = self.get(id)? else { unreachable!("just stored") };
        let ep = Epoll::new(&self.ctx)?;
        ep.add(s, Token(0), Interest::WRITABLE, Trigger::LEVEL)?;
        let mut events = Events::with_capacity(1);
        while ep.wait(&mut events, None)? == 0 {}
        match s.take_error()? {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    /// `mtcp_read`, `mtcp_recv` (`peek`: `MSG_PEEK`), `mtcp_readv`.
    pub fn read(&mut self, id: i32, bufs: &mut [&mut [u8]], peek: bool) -> Res<usize> {
        match self.get(id)? {
            Entry::Stream { s, .. } => {
                if peek {
                    let first = bufs.iter_mut().find(|b| !b.is_empty());
                    return match first {
                        Some(b) => Ok(s.peek(b)?),
                        None => Ok(0),
                    };
                }
                let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                Ok((&*s).read_vectored(&mut slices)?)
            }
            Entry::PipeRead(r) => {
                if peek {
                    return Err(e(libc::EINVAL));
                }
                r.read(bufs)
            }
            Entry::Fresh { .. } | Entry::Listener { .. } => Err(e(libc::ENOTCONN)),
            Entry::Epoll { .. } | Entry::PipeWrite => Err(e(libc::EBADF)),
        }
    }

    /// `mtcp_write`, `mtcp_writev` on a stream (pipes: [`PipeWriter`]).
    pub fn write(&mut self, id: i32, bufs: &[&[u8]]) -> Res<usize> {
        match self.get(id)? {
            Entry::Stream { s, .. } => {
                let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
                Ok((&*s).write_vectored(&slices)?)
            }
            Entry::Fresh { .. } | Entry::Listener { .. } => Err(e(libc::ENOTCONN)),
            Entry::Epoll { .. } | Entry::PipeRead(_) | Entry::PipeWrite => Err(e(libc::EBADF)),
        }
    }

    /// `mtcp_close`. A stream with unread data is reset, as on Linux.
    pub fn close(&mut self, id: i32) -> Res<()> {
        match self.take(id)? {
            Entry::Stream { s, .. } => s.close().map_err(Errno::from),
            Entry::Listener { l, .. } => l.close().map_err(Errno::from),
            _ => Ok(()),
        }
    }

    /// `mtcp_abort`: reset a stream at once.
    pub fn abort(&mut self, id: i32) -> Res<()> {
        match self.get(id)? {
            Entry::Stream { .. } => {}
            Entry::Fresh { .. } | Entry::Listener { .. } => return Err(e(libc::ENOTCONN)),
            _ => return Err(e(libc::ENOTSOCK)),
        }
        match self.take(id)? {
            Entry::Stream { s, .. } => s.abort().map_err(Errno::from),
            _ => unreachable!("checked above"),
        }
    }

    /// `mtcp_getsockname`.
    pub fn sockname(&self, id: i32) -> Res<SocketAddrV4> {
        match self.get(id)? {
            Entry::Fresh { bound, .. } => Ok(bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
            Entry::Listener { l, .. } => Ok(v4(l.local_addr()?)),
            Entry::Stream { s, .. } => Ok(v4(s.local_addr()?)),
            _ => Err(e(libc::ENOTSOCK)),
        }
    }

    /// `mtcp_getpeername`: `ENOTCONN` unless connected.
    pub fn peername(&self, id: i32) -> Res<SocketAddrV4> {
        match self.get(id)? {
            Entry::Stream { s, .. } => Ok(v4(s.peer_addr()?)),
            Entry::Fresh { .. } | Entry::Listener { .. } => Err(e(libc::ENOTCONN)),
            _ => Err(e(libc::ENOTSOCK)),
        }
    }

    /// `mtcp_setsock_nonblock` and `FIONBIO`.
    pub fn set_nonblock(&mut self, id: i32, on: bool) -> Res<()> {
        match self.get_mut(id)? {
            Entry::Fresh { nonblock, .. } => *nonblock = on,
            Entry::Listener { l, nonblock, .. } => {
                l.set_nonblocking(on);
                *nonblock = on;
            }
            Entry::Stream { s, nonblock, .. } => {
                s.set_nonblocking(on);
                *nonblock = on;
            }
            // Pipes never block.
            Entry::PipeRead(_) | Entry::PipeWrite => {}
            Entry::Epoll { .. } => return Err(e(libc::EBADF)),
        }
        Ok(())
    }

    /// `FIONREAD`: bytes a read returns now.
    pub fn readable_bytes(&self, id: i32) -> Res<usize> {
        match self.get(id)? {
            Entry::Stream { s, .. } => Ok(s.bytes_readable()?),
            Entry::PipeRead(r) => Ok(r.available()),
            Entry::Fresh { .. } | Entry::Listener { .. } => Ok(0),
            _ => Err(e(libc::EBADF)),
        }
    }

    /// `mtcp_getsockopt` of an int-valued option.
    pub fn getsockopt(&self, id: i32, level: i32, name: i32) -> Res<i32> {
        let (opts, stream) = match self.get(id)? {
            Entry::Fresh { opts, .. } | Entry::Listener { opts, .. } => (*opts, None),
            Entry::Stream { s, opts, .. } => (*opts, Some(s)),
            _ => return Err(e(libc::ENOTSOCK)),
        };
        let d = self.defaults;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => match stream {
                Some(s) => Ok(s.take_error()?.map_or(0, |err| Errno::from(err).0)),
                None => Ok(0),
            },
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => Ok(i32::from(opts.nodelay.unwrap_or(d.nodelay))),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Ok(i32::from(opts.keepalive.unwrap_or(false))),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => Ok(i32::from(opts.reuseaddr.unwrap_or(false))),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => match (stream, opts.sndbuf) {
                (Some(s), _) => Ok(s.send_buffer_size()?.min(i32::MAX as usize) as i32),
                (None, v) => Ok(v.unwrap_or(d.sndbuf).min(i32::MAX as usize) as i32),
            },
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => match (stream, opts.rcvbuf) {
                (Some(s), _) => Ok(s.recv_buffer_size()?.min(i32::MAX as usize) as i32),
                (None, v) => Ok(v.unwrap_or(d.rcvbuf).min(i32::MAX as usize) as i32),
            },
            _ => Err(e(libc::ENOPROTOOPT)),
        }
    }

    /// `mtcp_setsockopt` of an int-valued option: `TCP_NODELAY`,
    /// `SO_SNDBUF`, `SO_RCVBUF`, `SO_KEEPALIVE`, `SO_REUSEADDR`; others
    /// `ENOPROTOOPT`. `SO_REUSEADDR` is accepted and remembered but has
    /// nothing to change: an ixtcp listener binds its port whatever
    /// connections on it are in TIME-WAIT, which is what servers set it for
    /// (lighttpd, nginx and mTCP's ports do), and an explicit local port in
    /// `connect` is refused while its exact 4-tuple is in TIME-WAIT, as on
    /// Linux with the option set.
    pub fn setsockopt(&mut self, id: i32, level: i32, name: i32, value: i32) -> Res<()> {
        let mut change = Opts::default();
        match (level, name) {
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => change.nodelay = Some(value != 0),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => change.keepalive = Some(value != 0),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => change.reuseaddr = Some(value != 0),
            (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_RCVBUF) => {
                if value <= 0 {
                    return Err(e(libc::EINVAL));
                }
                if name == libc::SO_SNDBUF {
                    change.sndbuf = Some(value as usize);
                } else {
                    change.rcvbuf = Some(value as usize);
                }
            }
            _ => return Err(e(libc::ENOPROTOOPT)),
        }
        let (opts, stream) = match self.get_mut(id)? {
            Entry::Fresh { opts, .. } | Entry::Listener { opts, .. } => (opts, None),
            Entry::Stream { s, opts, .. } => (opts, Some(&*s)),
            _ => return Err(e(libc::ENOTSOCK)),
        };
        if let Some(s) = stream {
            apply(s, &change)?;
        }
        opts.nodelay = change.nodelay.or(opts.nodelay);
        opts.keepalive = change.keepalive.or(opts.keepalive);
        opts.reuseaddr = change.reuseaddr.or(opts.reuseaddr);
        opts.sndbuf = change.sndbuf.or(opts.sndbuf);
        opts.rcvbuf = change.rcvbuf.or(opts.rcvbuf);
        Ok(())
    }

    /// `mtcp_pipe`: (read end, write end).
    pub fn pipe(&mut self) -> Res<(i32, PipeWriter)> {
        if self.entries.len() - self.free.len() + 2 > self.limit {
            return Err(e(libc::ENFILE));
        }
        let (r, w) = pipe::pipe(Waker::new(&self.ctx)?);
        let rid = self.alloc(Entry::PipeRead(r))?;
        Ok((rid, w))
    }

    /// Reserves the write end's id (the writer lives in the context's
    /// shared registry).
    pub fn pipe_write_id(&mut self) -> Res<i32> {
        self.alloc(Entry::PipeWrite)
    }

    /// Frees a write end's id after the end was closed (from any thread).
    pub fn forget_pipe_write(&mut self, id: i32) {
        if matches!(self.get(id), Ok(Entry::PipeWrite)) {
            let _ = self.take(id);
        }
    }

    /// `mtcp_epoll_create`.
    pub fn epoll_create(&mut self) -> Res<i32> {
        let ep = Epoll::new(&self.ctx)?;
        ep.add(&self.interrupt, INTERRUPT, Interest::READABLE, Trigger::LEVEL)?;
        let id = self.alloc(Entry::Epoll { ep, events: Events::with_capacity(1) })?;
        self.regs.insert(id, HashMap::new());
        Ok(id)
    }

    fn source(&self, id: i32) -> Res<Option<&dyn Source>> {
        Ok(match self.get(id)? {
            Entry::Listener { l, .. } => Some(l),
            Entry::Stream { s, .. } => Some(s),
            Entry::PipeRead(r) => Some(&r.waker),
            Entry::Fresh { .. } => None,
            Entry::Epoll { .. } | Entry::PipeWrite => return Err(e(libc::EPERM)),
        })
    }

    fn epoll(&self, epid: i32) -> Res<&Epoll> {
        match self.get(epid)? {
            Entry::Epoll { ep, .. } => Ok(ep),
            _ => Err(e(libc::EINVAL)),
        }
    }

    /// `mtcp_epoll_ctl`. `reg` is `None` only for `DEL`.
    pub fn epoll_ctl(&mut self, epid: i32, op: i32, id: i32, reg: Option<Reg>) -> Res<()> {
        let ep = self.epoll(epid)?;
        if id == epid {
            return Err(e(libc::EINVAL));
        }
        let source = self.source(id)?;
        let known = self.regs.get(&epid).is_some_and(|r| r.contains_key(&id));
        match op {
            op::ADD | op::MOD => {
                let reg = reg.ok_or(e(libc::EFAULT))?;
                if reg.events & !ev::KNOWN != 0 {
                    return Err(e(libc::EINVAL));
                }
                match (op, known) {
                    (op::ADD, true) => return Err(e(libc::EEXIST)),
                    (op::MOD, false) => return Err(e(libc::ENOENT)),
                    _ => {}
                }
                if let Some(src) = source {
                    let (i, t) = (interest(reg.events), trigger(reg.events));
                    if op == op::ADD {
                        ep.add(src, Token(id as usize), i, t)?;
                    } else {
                        ep.modify(src, Token(id as usize), i, t)?;
                    }
                }
                self.regs.entry(epid).or_default().insert(id, reg);
            }
            op::DEL => {
                if !known {
                    return Err(e(libc::ENOENT));
                }
                if let Some(src) = source {
                    ep.delete(src)?;
                }
                self.regs.entry(epid).or_default().remove(&id);
            }
            _ => return Err(e(libc::EINVAL)),
        }
        Ok(())
    }

    /// Registrations made while `id` was fresh take effect now that it is a
    /// listener or a stream.
    fn reregister(&mut self, id: i32) -> Res<()> {
        let mut pending = Vec::new();
        for (&epid, regs) in &self.regs {
            if let Some(reg) = regs.get(&id) {
                pending.push((epid, *reg));
            }
        }
        for (epid, reg) in pending {
            let ep = self.epoll(epid)?;
            if let Some(src) = self.source(id)? {
                ep.add(src, Token(id as usize), interest(reg.events), trigger(reg.events))?;
            }
        }
        Ok(())
    }

    /// `mtcp_epoll_wait`: up to `max` events, waiting up to `timeout`
    /// (`None`: without limit). Events that the registrations' masks filter
    /// out entirely do not end the wait early.
    pub fn epoll_wait(&mut self, epid: i32, max: usize, timeout: Option<Duration>) -> Res<Waited> {
        // No more ids can be ready than the table holds: a huge `maxevents`
        // must not become a huge allocation.
        let max = max.min(self.limit + 1);
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let (out, raw) = self.wait_once(epid, max, left)?;
            let expired = left.is_some_and(|l| l.is_zero());
            if !out.ready.is_empty() || out.interrupted || raw == 0 || expired {
                return Ok(out);
            }
        }
    }

    /// One sockapi wait: what it gives C, and how many events it had.
    fn wait_once(&mut self, epid: i32, max: usize, timeout: Option<Duration>) -> Res<(Waited, usize)> {
        let i = usize::try_from(epid).map_err(|_| e(libc::EBADF))?;
        let regs = self.regs.get(&epid);
        let interrupt = &self.interrupt;
        let Some(Some(Entry::Epoll { ep, events })) = self.entries.get_mut(i) else {
            let open = self.entries.get(i).is_some_and(Option::is_some);
            return Err(e(if open { libc::EINVAL } else { libc::EBADF }));
        };
        // One more slot than asked: the interrupt may take one.
        if events.capacity() != max + 1 {
            *events = Events::with_capacity(max + 1);
        }
        let mut out = Waited::default();
        let raw = ep.wait(events, timeout)?;
        for event in events.iter() {
            if event.token() == INTERRUPT {
                out.interrupted = true;
                interrupt.take();
                continue;
            }
            let id = event.token().0 as i32;
            let Some(reg) = regs.and_then(|r| r.get(&id)) else { continue };
            let mut bits = 0;
            if event.is_readable() && reg.events & ev::IN != 0 {
                bits |= ev::IN;
            }
            if event.is_writable() && reg.events & ev::OUT != 0 {
                bits |= ev::OUT;
            }
            if event.is_read_closed() && reg.events & ev::RDHUP != 0 {
                bits |= ev::RDHUP;
            }
            if event.is_hang_up() {
                bits |= ev::HUP;
            }
            if event.is_error() {
                bits |= ev::ERR;
            }
            if bits != 0 && out.ready.len() < max {
                out.ready.push((bits, reg.data));
            }
        }
        Ok((out, raw))
    }
}

/// Applies set options to a stream.
fn apply(s: &TcpStream, o: &Opts) -> Res<()> {
    if let Some(v) = o.nodelay {
        s.set_nodelay(v)?;
    }
    if let Some(v) = o.keepalive {
        s.set_keepalive(v.then_some(KEEPALIVE_IDLE))?;
    }
    if let Some(v) = o.sndbuf {
        s.set_send_buffer_size(v)?;
    }
    if let Some(v) = o.rcvbuf {
        s.set_recv_buffer_size(v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ixtcp_sockapi::testing::TestNet;

    fn table() -> Table {
        let defaults = Defaults { nodelay: true, sndbuf: 4096, rcvbuf: 8192 };
        Table::new(Context::inline(TestNet::new().engine([10, 0, 0, 1].into())), 64, defaults).unwrap()
    }

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn an_echo_over_ids_with_epoll_registrations_made_while_fresh() {
        let mut t = table();
        let ep = t.epoll_create().unwrap();
        let l = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        t.set_nonblock(l, true).unwrap();
        t.epoll_ctl(ep, op::ADD, l, Some(Reg { events: ev::IN, data: 77 })).unwrap();
        t.bind(l, addr("10.0.0.1:7")).unwrap();
        t.listen(l, 16).unwrap();
        let c = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        t.set_nonblock(c, true).unwrap();
        assert_eq!(t.connect(c, addr("10.0.0.1:7")), Err(Errno(libc::EINPROGRESS)));
        t.epoll_ctl(ep, op::ADD, c, Some(Reg { events: ev::OUT | ev::ET, data: 5 })).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let w = t.epoll_wait(ep, 8, Some(Duration::from_secs(5))).unwrap();
            seen.extend(w.ready);
        }
        assert!(seen.contains(&(ev::IN, 77)) && seen.contains(&(ev::OUT, 5)), "{seen:?}");
        let (s, peer) = t.accept(l).unwrap();
        assert_eq!(t.peername(s).unwrap(), peer);
        assert_eq!(t.sockname(c).unwrap().port(), peer.port());
        assert_eq!(t.write(c, &[b"he", b"llo"]).unwrap(), 5);
        let mut buf = [0u8; 5];
        // The accepted stream blocks: the read waits for the bytes.
        assert_eq!(t.read(s, &mut [&mut buf[..2]], true).unwrap(), 2);
        assert_eq!(t.readable_bytes(s).unwrap(), 5);
        assert_eq!(t.read(s, &mut [&mut buf], false).unwrap(), 5);
        assert_eq!(&buf, b"hello");
        assert_eq!(t.getsockopt(c, libc::SOL_SOCKET, libc::SO_ERROR).unwrap(), 0);
        t.close(s).unwrap();
        assert_eq!(t.read(s, &mut [&mut buf], false), Err(Errno(libc::EBADF)));
        // Lowest free id first.
        assert_eq!(t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap(), s);
    }

    #[test]
    fn misuse_is_an_errno_never_a_panic() {
        let mut t = table();
        assert_eq!(t.socket(libc::AF_INET6, libc::SOCK_STREAM, 0), Err(Errno(libc::EAFNOSUPPORT)));
        assert_eq!(t.socket(libc::AF_INET, libc::SOCK_DGRAM, 0), Err(Errno(libc::EINVAL)));
        assert_eq!(t.close(-1), Err(Errno(libc::EBADF)));
        assert_eq!(t.close(1000), Err(Errno(libc::EBADF)));
        let s = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        assert_eq!(t.listen(s, 1), Err(Errno(libc::EDESTADDRREQ)));
        assert_eq!(t.read(s, &mut [], false), Err(Errno(libc::ENOTCONN)));
        assert_eq!(t.peername(s), Err(Errno(libc::ENOTCONN)));
        assert_eq!(t.abort(s), Err(Errno(libc::ENOTCONN)));
        assert_eq!(t.setsockopt(s, libc::SOL_SOCKET, libc::SO_BROADCAST, 1), Err(Errno(libc::ENOPROTOOPT)));
        // SO_REUSEADDR, which servers set before bind: accepted and reported back.
        assert_eq!(t.getsockopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR), Ok(0));
        assert_eq!(t.setsockopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1), Ok(()));
        assert_eq!(t.getsockopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR), Ok(1));
        // Before any setsockopt: the stack's configuration.
        assert_eq!(t.getsockopt(s, libc::IPPROTO_TCP, libc::TCP_NODELAY), Ok(1));
        assert_eq!(t.getsockopt(s, libc::SOL_SOCKET, libc::SO_SNDBUF), Ok(4096));
        assert_eq!(t.getsockopt(s, libc::SOL_SOCKET, libc::SO_RCVBUF), Ok(8192));
        t.setsockopt(s, libc::IPPROTO_TCP, libc::TCP_NODELAY, 0).unwrap();
        assert_eq!(t.getsockopt(s, libc::IPPROTO_TCP, libc::TCP_NODELAY), Ok(0));
        let ep = t.epoll_create().unwrap();
        assert_eq!(t.epoll_ctl(s, op::ADD, ep, Some(Reg { events: ev::IN, data: 0 })), Err(Errno(libc::EINVAL)));
        assert_eq!(t.epoll_ctl(ep, op::ADD, ep, Some(Reg { events: ev::IN, data: 0 })), Err(Errno(libc::EINVAL)));
        assert_eq!(t.epoll_ctl(ep, op::DEL, s, None), Err(Errno(libc::ENOENT)));
        assert_eq!(t.epoll_ctl(ep, op::ADD, s, None), Err(Errno(libc::EFAULT)));
        assert_eq!(t.epoll_ctl(ep, 9, s, Some(Reg { events: ev::IN, data: 0 })), Err(Errno(libc::EINVAL)));
        t.epoll_ctl(ep, op::ADD, s, Some(Reg { events: ev::IN, data: 0 })).unwrap();
        assert_eq!(t.epoll_ctl(ep, op::ADD, s, Some(Reg { events: ev::IN, data: 0 })), Err(Errno(libc::EEXIST)));
        assert_eq!(t.epoll_wait(s, 1, Some(Duration::ZERO)).unwrap_err(), Errno(libc::EINVAL));
        // Refused: the error comes back as SO_ERROR once.
        assert_eq!(t.connect(s, addr("10.0.0.1:9")), Err(Errno(libc::ECONNREFUSED)));
    }

    #[test]
    fn a_mask_without_in_or_out_reports_hang_ups_only_and_waits_out_its_timeout() {
        let mut t = table();
        let l = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        t.bind(l, addr("10.0.0.1:8")).unwrap();
        t.listen(l, 4).unwrap();
        let c = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        t.connect(c, addr("10.0.0.1:8")).unwrap();
        let (s, _) = t.accept(l).unwrap();
        let ep = t.epoll_create().unwrap();
        t.epoll_ctl(ep, op::ADD, s, Some(Reg { events: ev::HUP, data: 9 })).unwrap();
        assert_eq!(t.write(c, &[b"unread"]).unwrap(), 6);
        // Readable data, which this mask does not ask for: no event, and the
        // wait lasts its timeout instead of returning early with nothing.
        let w = t.epoll_wait(ep, 4, Some(Duration::from_millis(30))).unwrap();
        assert!(w.ready.is_empty() && !w.interrupted, "{w:?}");
        // The peer resets: a hang-up, whatever the mask.
        t.abort(c).unwrap();
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen.extend(t.epoll_wait(ep, 4, Some(Duration::from_millis(50))).unwrap().ready);
            if !seen.is_empty() {
                break;
            }
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].1, 9);
        assert!(seen[0].0 & ev::HUP != 0 && seen[0].0 & ev::IN == 0, "{seen:?}");
    }

    /// epwget's pattern: ten downloads at a time, each new connection taking
    /// the id the last finished one freed, every byte counted until the
    /// server's FIN.
    #[test]
    fn downloads_with_ids_reused_see_every_byte_before_the_end_of_stream() {
        const SIZE: usize = 100_204;
        let mut t = table();
        let l = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        t.bind(l, addr("10.0.0.1:80")).unwrap();
        t.listen(l, 64).unwrap();
        t.set_nonblock(l, true).unwrap();
        let ep = t.epoll_create().unwrap();
        t.epoll_ctl(ep, op::ADD, l, Some(Reg { events: ev::IN, data: u64::MAX })).unwrap();
        let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        // Server side: per id, the bytes still to send.
        let mut serving: HashMap<i32, usize> = HashMap::new();
        // Client side: per id, bytes received.
        let mut clients: HashMap<i32, usize> = HashMap::new();
        let (mut started, mut done) = (0, 0);
        let mut buf = vec![0u8; 8192];
        let mut rounds = 0;
        while done < 50 {
            rounds += 1;
            assert!(rounds < 100_000, "stuck: {done} done, clients {clients:?}");
            while clients.len() < 10 && started < 50 {
                let c = t.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
                t.set_nonblock(c, true).unwrap();
                assert_eq!(t.connect(c, addr("10.0.0.1:80")), Err(Errno(libc::EINPROGRESS)));
                t.epoll_ctl(ep, op::ADD, c, Some(Reg { events: ev::IN, data: c as u64 })).unwrap();
                clients.insert(c, 0);
                started += 1;
            }
            let w = t.epoll_wait(ep, 64, Some(Duration::from_millis(10))).unwrap();
            for (_, data) in w.ready {
                if data == u64::MAX {
                    while let Ok((s, _)) = t.accept(l) {
                        t.set_nonblock(s, true).unwrap();
                        t.epoll_ctl(ep, op::ADD, s, Some(Reg { events: ev::OUT, data: (1 << 32) | s as u64 })).unwrap();
                        serving.insert(s, 0);
                    }
                } else if data >> 32 == 1 {
                    let s = data as u32 as i32;
                    let Some(sent) = serving.get_mut(&s) else { continue };
                    while *sent < SIZE {
                        match t.write(s, &[&body[*sent..]]) {
                            Ok(n) => *sent += n,
                            Err(Errno(libc::EAGAIN)) => break,
                            Err(e) => panic!("server write: {e:?}"),
                        }
                    }
                    if *sent == SIZE {
                        serving.remove(&s);
                        t.close(s).unwrap();
                    }
                } else {
                    let c = data as i32;
                    let Some(got) = clients.get_mut(&c) else { continue };
                    loop {
                        match t.read(c, &mut [&mut buf], false) {
                            Ok(0) => {
                                assert_eq!(*got, SIZE, "connection {c}: the end of stream after {got} bytes");
                                clients.remove(&c);
                                t.close(c).unwrap();
                                done += 1;
                                break;
                            }
                            Ok(n) => {
                                assert_eq!(&buf[..n], &body[*got..*got + n], "connection {c} at {got}");
                                *got += n;
                            }
                            Err(Errno(libc::EAGAIN)) => break,
                            Err(e) => panic!("client read: {e:?}"),
                        }
                    }
                }
            }
        }
    }
}
