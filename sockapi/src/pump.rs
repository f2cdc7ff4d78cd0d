//! The stack side of one core: owns the [`Engine`], applies the
//! application's jobs, moves bytes between the engine and the shared
//! per-connection buffers (and datagrams between it and the shared UDP
//! queues), and turns engine events into application events
//! (the keys of sockets whose readiness may have changed).
//!
//! Both runtimes run this same code; they differ in where it runs (the
//! stack thread, or the application's thread inside `Epoll::wait`), in how
//! job and event batches travel, and in who takes received bytes from the
//! engine: inline, the application's read does ([`AnyPump::recv_now`]) and
//! a sync only notes that there is something to read; threaded, a sync
//! moves them into the connection's shared buffer.

use std::io::IoSliceMut;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::buffers::{Accepted, ConnBuf, Datagram};
use crate::engine::{ConnId, Engine, EngineError, EngineEvent, ListenerId, Readiness, TcpState, UdpId, udp_error_kind};
use crate::job::{Job, Reply};
use crate::readiness::Notified;
use crate::share::{ConnCell, ListenCell, Local, Share, UdpCell};
use crate::slab::Key;

/// Bytes taken from the engine per call to be dropped after a read shutdown.
const DISCARD: usize = 16 * 1024;

/// Buffers of finished connections kept per core for the next accepted
/// ones: enough for a burst of short connections, bounded so an idle core
/// gives memory back.
const SPARE_BUFS: usize = 256;

/// A finished connection's buffer is kept only if its queues hold at most
/// this much (a bulk transfer's grown queues are let go instead).
const SPARE_BUF_MAX_BYTES: usize = 16 * 1024;

struct StackConn<S: Share> {
    id: ConnId,
    /// The application's socket, once it has one (accepted connections wait
    /// in a listener's queue without).
    key: Option<Key>,
    buf: ConnCell<S>,
    /// The application closed it; the stack finishes sending, then releases it.
    released: bool,
    fin_sent: bool,
    /// The batch in which the application was last told about it.
    notified: Notified,
}

struct StackListener<S: Share> {
    id: ListenerId,
    key: Key,
    shared: ListenCell<S>,
    notified: Notified,
}

struct StackUdp<S: Share> {
    id: UdpId,
    key: Key,
    buf: UdpCell<S>,
    /// The application closed it: send what is queued, then unbind.
    closing: bool,
    notified: Notified,
}

/// Type-erased view used by the inline runtime (whose buffers are
/// [`Local`]).
pub(crate) trait AnyPump {
    /// Ingress, then at once what it owes that the application cannot
    /// answer ([`Engine::egress_unanswerable`]): inline, the application
    /// runs between this and the next egress, and may not come back soon.
    fn ingress(&mut self, out: &mut Vec<Key>) -> bool;
    fn apply(&mut self, jobs: &mut Vec<Job>, out: &mut Vec<Key>);
    fn egress(&mut self);
    fn idle(&mut self, deadline_ns: Option<u64>);
    fn now_ns(&self) -> u64;
    /// The time the last ingress read (the iteration's one clock read).
    fn iteration_ns(&self) -> u64;
    fn next_wakeup_ns(&self) -> Option<u64>;
    fn busy(&self) -> bool;
    /// Hands `data` to the engine for connection `conn` now, as its next
    /// bytes (the caller checked that none of its are still buffered on
    /// the application side); the bytes taken, `None` if the connection is
    /// not this pump's or the application closed it, or the engine refused.
    fn send_now(&mut self, conn: ConnId, data: &[u8]) -> Option<usize>;
    /// `Job::Listen`, `Job::Connect` or `Job::UdpBind` without the reply
    /// channel and with inline buffers: `jobs` (queued before, applied
    /// first, in order), then the open; its result at once.
    fn open_now(&mut self, jobs: &mut Vec<Job>, open: Open, out: &mut Vec<Key>) -> Result<Opened, EngineError>;
    /// A renewed buffer of a finished connection, for a new one.
    fn spare_buf(&mut self) -> Option<ConnCell<Local>>;
    /// Reads received bytes of connection `conn` into `bufs`, in order,
    /// straight from the engine's buffer (the caller's `rx` for it is
    /// empty): as [`Engine::recv_slice`] over several buffers, the count
    /// and whether anything is left for a read. `None` if the connection
    /// is not this pump's or the application closed it.
    fn recv_now(&mut self, conn: ConnId, bufs: &mut [IoSliceMut<'_>]) -> Option<Result<(usize, bool), EngineError>>;
    /// Moves what the engine holds for `conn` into its `rx` now, as a
    /// sync of a runtime without direct reads would (for a peek, or the
    /// count of readable bytes, which look at `rx`).
    fn pull_now(&mut self, conn: ConnId);
}

/// What `Job::Listen`, `Job::Connect` and `Job::UdpBind` carry but their
/// replies, with the inline runtime's buffers.
pub(crate) enum Open {
    Listen { key: Key, addr: SocketAddrV4, backlog: usize, shared: ListenCell<Local> },
    Connect { key: Key, remote: SocketAddrV4, local: Option<SocketAddrV4>, buf: ConnCell<Local> },
    UdpBind { key: Key, addr: SocketAddrV4, peer: Option<SocketAddrV4>, shared: UdpCell<Local> },
}

/// What an [`Open`] answers (as the jobs' replies do).
#[derive(Debug)]
pub(crate) enum Opened {
    Listener(ListenerId, SocketAddrV4),
    Conn(ConnId, Option<SocketAddrV4>),
    /// A UDP socket's id (its bound address and largest payload are in its buffer).
    Udp(UdpId),
}

impl Opened {
    fn mismatch(self, asked: &str) -> std::io::Error {
        std::io::Error::other(format!("the stack answered {asked} with {self:?}"))
    }
    pub fn listener(self) -> std::io::Result<(ListenerId, SocketAddrV4)> {
        if let Opened::Listener(id, at) = self { Ok((id, at)) } else { Err(self.mismatch("a listen")) }
    }
    pub fn conn(self) -> std::io::Result<(ConnId, Option<SocketAddrV4>)> {
        if let Opened::Conn(id, at) = self { Ok((id, at)) } else { Err(self.mismatch("a connect")) }
    }
    pub fn udp(self) -> std::io::Result<UdpId> {
        if let Opened::Udp(id) = self { Ok(id) } else { Err(self.mismatch("a UDP bind")) }
    }
}

/// The longest step a virtual clock takes in one idle iteration: frames
/// in flight on a link with latency are not among an engine's wakeups, so
/// time moves in steps no longer than this between looks.
const MAX_VIRTUAL_STEP_NS: u64 = 1_000_000;

/// The shortest step: an idle iteration always moves virtual time, so a
/// wakeup that is due but finds nothing to do cannot hold time still.
const MIN_VIRTUAL_STEP_NS: u64 = 1_000;

/// One core's stack side; `S`: how its buffers are shared with the
/// application (a mutex threaded, a `RefCell` inline).
pub(crate) struct Pump<E, S: Share> {
    engine: E,
    conns: Vec<Option<StackConn<S>>>,
    listeners: Vec<Option<StackListener<S>>>,
    udps: Vec<Option<StackUdp<S>>>,
    /// UDP sockets with datagrams the engine had no room for: tried again
    /// at the next iteration, after an egress emptied its transmit batch.
    udp_retry: Vec<UdpId>,
    udp_retry_spare: Vec<UdpId>,
    events: Vec<EngineEvent>,
    /// Iteration counter, for per-batch deduplication of notifications.
    batch: u64,
    /// The time of the last ingress: the clock is read once per iteration
    /// (egress and the idle decision use this reading).
    now: u64,
    /// Connections the application closed that still have data to send.
    orphans: usize,
    /// `Job::Quiesce` answers owed at the next iteration with nothing to do.
    quiesce: Vec<Reply<()>>,
    /// Buffers of finished connections nobody else holds, renewed, for the
    /// next accepted ones (at most [`SPARE_BUFS`]).
    spare_bufs: Vec<ConnCell<S>>,
    /// `accept_some`'s list, kept between calls.
    accepted: Vec<(ConnId, ConnCell<S>)>,
}

fn slot<T>(v: &mut Vec<Option<T>>, index: u32) -> &mut Option<T> {
    let i = index as usize;
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    &mut v[i]
}

impl<E: Engine, S: Share> Pump<E, S> {
    pub fn new(engine: E) -> Pump<E, S> {
        Pump {
            engine,
            conns: Vec::new(),
            listeners: Vec::new(),
            udps: Vec::new(),
            udp_retry: Vec::new(),
            udp_retry_spare: Vec::new(),
            events: Vec::new(),
            batch: 0,
            now: 0,
            orphans: 0,
            quiesce: Vec::new(),
            spare_bufs: Vec::new(),
            accepted: Vec::new(),
        }
    }

    /// A buffer for a newly accepted connection: a spare one if there is.
    fn conn_buf(&mut self) -> ConnCell<S> {
        self.spare_bufs
            .pop()
            .unwrap_or_else(|| S::cell(ConnBuf::new(crate::buffers::DEFAULT_BUF, crate::buffers::DEFAULT_BUF)))
    }

    /// Keeps a finished connection's buffer for the next one, if this was
    /// its last holder (the application's handle and its context's table
    /// let go of theirs when it closed) and it did not grow large.
    fn recycle(&mut self, buf: ConnCell<S>) {
        if self.spare_bufs.len() >= SPARE_BUFS || !S::sole(&buf) {
            return;
        }
        {
            let mut b = S::lock(&buf);
            if b.held_bytes() > SPARE_BUF_MAX_BYTES {
                return;
            }
            b.renew(crate::buffers::DEFAULT_BUF, crate::buffers::DEFAULT_BUF);
        }
        self.spare_bufs.push(buf);
    }

    /// Receive a batch and turn what changed into application events.
    /// Returns true if the engine reported anything.
    pub fn ingress(&mut self, out: &mut Vec<Key>) -> bool {
        self.batch += 1;
        self.now = self.engine.now_ns();
        self.engine.ingress(self.now);
        self.collect(out)
    }

    /// Transmit what the iteration produced (at the iteration's time).
    pub fn egress(&mut self) {
        self.engine.egress(self.now);
    }

    pub fn idle_wait(&self) -> Option<Duration> {
        self.engine.idle_wait()
    }

    pub fn now_ns(&self) -> u64 {
        self.engine.now_ns()
    }

    /// True if the engine runs on a virtual clock.
    pub fn is_virtual(&self) -> bool {
        self.engine.virtual_clock().is_some()
    }

    /// An iteration found nothing to do: let time pass, until `deadline_ns`
    /// at the latest. On a virtual clock, move it to the engine's next
    /// wakeup (at most [`MAX_VIRTUAL_STEP_NS`] ahead); on the monotonic
    /// clock, nap until the engine's next timer, for at most its idle nap
    /// (a polled NIC raises no wakeup when a frame arrives, so the nap is
    /// also the longest a frame waits), if it has one.
    pub fn idle(&mut self, deadline_ns: Option<u64>) {
        let now = self.now;
        if let Some(clock) = self.engine.virtual_clock() {
            let mut to = now.saturating_add(MAX_VIRTUAL_STEP_NS);
            if let Some(w) = self.engine.next_wakeup_ns() {
                to = to.min(w);
            }
            if let Some(d) = deadline_ns {
                to = to.min(d);
            }
            clock.advance_to(to.max(now.saturating_add(MIN_VIRTUAL_STEP_NS)));
            return;
        }
        if let Some(nap) = self.engine.idle_wait() {
            let until = [deadline_ns, self.engine.next_wakeup_ns()].into_iter().flatten().min();
            let nap = match until {
                Some(t) => nap.min(Duration::from_nanos(t.saturating_sub(now))),
                None => nap,
            };
            if !nap.is_zero() {
                std::thread::sleep(nap);
            }
        }
    }

    /// True while closed connections (or closed UDP sockets' queued
    /// datagrams) are still being flushed or the engine still holds
    /// connections.
    pub fn busy(&self) -> bool {
        self.orphans > 0 || self.engine.connections() > 0 || self.udps.iter().flatten().any(|u| u.closing)
    }

    /// Apply a batch of jobs, in order.
    pub fn apply(&mut self, jobs: &mut Vec<Job>, out: &mut Vec<Key>) {
        self.apply_then(jobs, out, |_, _| ());
    }

    /// [`apply`](Self::apply) with `last` run after the jobs, as one more.
    fn apply_then<T>(
        &mut self,
        jobs: &mut Vec<Job>,
        out: &mut Vec<Key>,
        last: impl FnOnce(&mut Self, &mut Vec<Key>) -> T,
    ) -> T {
        // The keys this call produces reach the application as a batch of
        // their own (inline, `Context::flush` dispatches them at once), so
        // notifications made before must not suppress these: a connection
        // synced again after the application drained it has news.
        self.batch += 1;
        for job in jobs.drain(..) {
            self.apply_one(job, out);
        }
        let res = last(self, out);
        // Jobs such as abort or close may produce engine events at once.
        self.collect(out);
        res
    }

    fn collect(&mut self, out: &mut Vec<Key>) -> bool {
        let any_retry = !self.udp_retry.is_empty();
        if any_retry {
            let mut retry = std::mem::replace(&mut self.udp_retry, std::mem::take(&mut self.udp_retry_spare));
            for id in retry.drain(..) {
                self.sync_udp(id, out);
            }
            self.udp_retry_spare = retry;
        }
        let mut events = std::mem::take(&mut self.events);
        self.engine.take_events(&mut events);
        let any = !events.is_empty();
        for ev in events.drain(..) {
            match ev {
                EngineEvent::Conn { id, .. } => self.sync_with(id, out, true),
                EngineEvent::Acceptable { listener } => self.accept_some(listener, out),
                EngineEvent::Udp { id } => self.sync_udp(id, out),
            }
        }
        self.events = events;
        any || any_retry
    }

    /// True while `Job::Quiesce` answers are owed.
    pub fn quiesce_pending(&self) -> bool {
        !self.quiesce.is_empty()
    }

    /// The stack had an iteration with nothing to do (and sent the events
    /// of the ones before): answer every `Job::Quiesce`.
    pub fn answer_quiesce(&mut self) {
        for reply in self.quiesce.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }

    fn apply_one(&mut self, job: Job, out: &mut Vec<Key>) {
        match job {
            Job::Quiesce { reply } => self.quiesce.push(reply),
            Job::Listen { key, addr, backlog, shared, reply } => {
                let res = match S::listen_from(shared) {
                    Some(shared) => self.listen(key, addr, backlog, shared),
                    None => Err(EngineError::Unsupported),
                };
                // The app may have given up waiting (stopped): nothing to do then.
                let _ = reply.send(res);
            }
            Job::CloseListener { listener } => self.close_listener(listener),
            Job::AcceptMore { listener } => {
                if let Some(Some(l)) = self.listeners.get(listener.index as usize) {
                    if l.id == listener {
                        S::lock(&l.shared).more_queued = false;
                    }
                }
                self.accept_some(listener, out)
            }
            Job::Connect { key, remote, local, buf, reply } => {
                let res = match S::conn_from(buf) {
                    Some(buf) => self.connect(key, remote, local, buf, out),
                    None => Err(EngineError::Unsupported),
                };
                let _ = reply.send(res);
            }
            Job::Adopt { conn, key } => {
                // Whatever happened before adoption was not reported (there was
                // no key to report it to): report the socket once now.
                let batch = self.batch;
                if let Some(c) = self.conn_mut(conn) {
                    c.key = Some(key);
                    c.notified.first_in(batch);
                    out.push(key);
                }
                self.sync(conn, out);
            }
            Job::Sync { conn } => self.sync(conn, out),
            Job::Close { conn } => {
                if let Some(c) = self.conn_mut(conn) {
                    if !c.released {
                        c.released = true;
                        c.key = None;
                        self.orphans += 1;
                    }
                }
                self.sync(conn, out);
            }
            Job::Abort { conn } => {
                if let Some(c) = self.take_conn(conn) {
                    if c.released {
                        self.orphans = self.orphans.saturating_sub(1);
                    }
                    let _ = self.engine.abort(conn);
                }
            }
            Job::UdpBind { key, addr, peer, shared, reply } => {
                let res = match S::udp_from(shared) {
                    Some(shared) => self.udp_bind(key, addr, peer, shared),
                    None => Err(EngineError::Unsupported),
                };
                let _ = reply.send(res);
            }
            Job::UdpSync { id } => self.sync_udp(id, out),
            Job::UdpClose { id } => {
                if let Some(Some(u)) = self.udps.get_mut(id.index as usize) {
                    if u.id == id {
                        u.closing = true;
                    }
                }
                self.sync_udp(id, out);
            }
            Job::SetOpt { conn, opt } => {
                // Settings are advisory: an engine may clamp or refuse them.
                let _ = self.engine.set_option(conn, opt);
            }
        }
    }

    /// Opens a connection for the application's socket `key` with buffer
    /// `buf`: its id and local address.
    fn connect(
        &mut self,
        key: Key,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
        buf: ConnCell<S>,
        out: &mut Vec<Key>,
    ) -> Result<(ConnId, Option<SocketAddrV4>), EngineError> {
        let id = self.engine.connect(remote, local)?;
        let local = self.engine.local_addr(id).ok();
        *slot(&mut self.conns, id.index) = Some(StackConn {
            id,
            key: Some(key),
            buf,
            released: false,
            fin_sent: false,
            notified: Notified::default(),
        });
        self.sync(id, out);
        Ok((id, local))
    }

    fn listen(
        &mut self,
        key: Key,
        addr: SocketAddrV4,
        backlog: usize,
        shared: ListenCell<S>,
    ) -> Result<(ListenerId, SocketAddrV4), EngineError> {
        let id = self.engine.listen(addr, backlog)?;
        let bound = match self.engine.listener_addr(id) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.engine.close_listener(id);
                return Err(e);
            }
        };
        *slot(&mut self.listeners, id.index) = Some(StackListener { id, key, shared, notified: Notified::default() });
        Ok((id, bound))
    }

    fn udp_bind(
        &mut self,
        key: Key,
        addr: SocketAddrV4,
        peer: Option<SocketAddrV4>,
        shared: UdpCell<S>,
    ) -> Result<(UdpId, SocketAddrV4, usize), EngineError> {
        let id = self.engine.udp_bind(addr, peer)?;
        let local = match self.engine.udp_local_addr(id) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.engine.udp_unbind(id);
                return Err(e);
            }
        };
        let max = self.engine.udp_max_payload();
        {
            let mut b = S::lock(&shared);
            b.local = local;
            b.max_payload = max;
        }
        *slot(&mut self.udps, id.index) =
            Some(StackUdp { id, key, buf: shared, closing: false, notified: Notified::default() });
        Ok((id, local, max))
    }

    /// Bring one UDP socket up to date: an ICMP error about a datagram to
    /// its connected peer, datagrams from its send queue into the engine
    /// (those it has no room for wait for the next iteration), datagrams
    /// from the engine into its receive queue (all of them: those beyond
    /// the queue's bound, or from others than the connected peer, are
    /// dropped and counted here, so the engine's queue is always left
    /// empty and its next datagram raises an event), and unbinding after
    /// a close once the send queue is empty.
    fn sync_udp(&mut self, id: UdpId, out: &mut Vec<Key>) {
        let engine = &mut self.engine;
        let Some(Some(u)) = self.udps.get_mut(id.index as usize) else { return };
        if u.id != id {
            return;
        }
        let mut b = S::lock(&u.buf);
        b.sync_queued = false;
        let (mut rx, mut tx) = (false, false);
        if let Ok(Some(err)) = engine.udp_take_error(id) {
            if let (true, Some(kind)) = (b.peer == Some(err.to), udp_error_kind(err.code)) {
                b.error = Some(kind);
                (rx, tx) = (true, true);
            }
        }
        let was_full = b.tx.len() >= b.tx_cap;
        let mut blocked = false;
        while let Some((to, data)) = b.tx.pop_front() {
            match engine.udp_send_to(id, to, &data) {
                Ok(()) => b.recycle(data),
                Err(EngineError::WouldBlock) => {
                    b.tx.push_front((to, data));
                    blocked = true;
                    break;
                }
                Err(e) => {
                    b.send_failures += 1;
                    b.send_error = Some(e);
                    b.recycle(data);
                }
            }
        }
        if was_full && b.tx.len() < b.tx_cap {
            tx = true;
        }
        if !u.closing {
            let max = engine.udp_max_payload();
            loop {
                let mut data = b.buffer();
                data.resize(max, 0);
                match engine.udp_recv_from(id, &mut data) {
                    Ok(got) => {
                        data.truncate(got.len);
                        if b.peer.is_some_and(|p| p != got.from) {
                            b.filtered += 1;
                            b.recycle(data);
                        } else if b.rx.len() >= b.rx_cap {
                            b.dropped += 1;
                            b.recycle(data);
                        } else {
                            b.rx.push_back(Datagram { from: got.from, data, len: got.datagram_len });
                            rx = true;
                        }
                    }
                    Err(_) => {
                        b.recycle(data);
                        break;
                    }
                }
            }
            if let Ok(d) = engine.udp_dropped(id) {
                b.engine_dropped = d;
            }
        }
        let notify = b.changes.record(rx, tx);
        let done = u.closing && b.tx.is_empty();
        drop(b);
        if done {
            let _ = engine.udp_unbind(id);
            self.udps[id.index as usize] = None;
            return;
        }
        if blocked && !self.udp_retry.contains(&id) {
            self.udp_retry.push(id);
        }
        if notify && !u.closing && u.notified.first_in(self.batch) {
            out.push(u.key);
        }
    }

    fn close_listener(&mut self, id: ListenerId) {
        let Some(entry) = self.listeners.get_mut(id.index as usize) else { return };
        if entry.as_ref().is_none_or(|l| l.id != id) {
            return;
        }
        let Some(l) = entry.take() else { return };
        let _ = self.engine.close_listener(id);
        // Connections accepted from the engine but not by the application are
        // reset, as Linux does when a listening socket with a queue is closed.
        let pending: Vec<Accepted<ConnCell<S>>> = S::lock(&l.shared).queue.drain(..).collect();
        for a in pending {
            if self.take_conn(a.conn).is_some() {
                let _ = self.engine.abort(a.conn);
            }
        }
    }

    /// Move connections from the engine into the listener's accept queue,
    /// up to its backlog.
    fn accept_some(&mut self, id: ListenerId, out: &mut Vec<Key>) {
        let Some(Some(l)) = self.listeners.get_mut(id.index as usize) else { return };
        if l.id != id {
            return;
        }
        let shared = l.shared.clone();
        let mut accepted = std::mem::take(&mut self.accepted);
        // Only this side adds to the queue, so its room can only grow
        // while the connections are taken and brought up to date.
        let room = {
            let q = S::lock(&shared);
            q.backlog.saturating_sub(q.queue.len())
        };
        while accepted.len() < room {
            match self.engine.accept(id) {
                Ok(conn) => {
                    let buf = self.conn_buf();
                    accepted.push((conn, buf));
                }
                Err(_) => break,
            }
        }
        // Each connection is synced (handshake state, addresses, data)
        // before the application can take it from the queue: threaded, an
        // accept on the other thread must not find a buffer the stack has
        // not filled in yet (it returned 0.0.0.0:0 as the peer).
        for (conn, buf) in &accepted {
            *slot(&mut self.conns, conn.index) = Some(StackConn {
                id: *conn,
                key: None,
                buf: buf.clone(),
                released: false,
                fin_sent: false,
                notified: Notified::default(),
            });
            self.sync(*conn, out);
        }
        let any = !accepted.is_empty();
        {
            let mut q = S::lock(&shared);
            // Stopped for want of room: the engine may hold more.
            q.more = accepted.len() >= room;
            q.queue.extend(accepted.drain(..).map(|(conn, buf)| Accepted { conn, buf }));
            if any {
                q.changes.readable();
            }
        }
        let batch = self.batch;
        if let Some(Some(l)) = self.listeners.get_mut(id.index as usize) {
            if any && l.notified.first_in(batch) {
                out.push(l.key);
            }
        }
        self.accepted = accepted;
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut StackConn<S>> {
        match self.conns.get_mut(id.index as usize) {
            Some(Some(c)) if c.id == id => Some(c),
            _ => None,
        }
    }

    fn take_conn(&mut self, id: ConnId) -> Option<StackConn<S>> {
        let entry = self.conns.get_mut(id.index as usize)?;
        if entry.as_ref().is_some_and(|c| c.id == id) { entry.take() } else { None }
    }

    /// Bring one connection up to date: failure and handshake state, bytes
    /// from the app's `tx` into the engine, bytes from the engine into the
    /// app's `rx` (or, when the application reads straight from the
    /// engine, whether there is something to read), FIN after a write
    /// shutdown, release after close.
    fn sync(&mut self, id: ConnId, out: &mut Vec<Key>) {
        self.sync_with(id, out, false)
    }

    /// [`sync`](Self::sync); `event`: the engine raised an event for the
    /// connection (data may have arrived, which a direct reader must hear
    /// of even while earlier bytes wait in the engine).
    fn sync_with(&mut self, id: ConnId, out: &mut Vec<Key>, event: bool) {
        // Inline, the application's read takes the bytes from the engine
        // itself (`AnyPump::recv_now`): a sync only notes that there is
        // something to read. Threaded, it moves them into `rx`.
        let direct = S::DIRECT_READS;
        let engine = &mut self.engine;
        let Some(Some(c)) = self.conns.get_mut(id.index as usize) else { return };
        if c.id != id {
            return;
        }
        let mut b = S::lock(&c.buf);
        b.sync_queued = false;
        // Which directions changed (for edge-triggered epolls).
        let (mut rx, mut tx) = (false, false);
        // Whether the engine has anything for `recv` (data, end of stream,
        // failure): without it the receive loop below is skipped.
        let mut readable = true;
        // Whether the peer may have sent its FIN (any state past those in
        // which it has not): then a read that drains the data is followed
        // by one more, which reports the end of the stream.
        let mut fin_possible = true;

        match engine.state(id) {
            Ok(st) => {
                readable = st.ready.contains(Readiness::READABLE);
                fin_possible = self::fin_possible(st.tcp);
                if let Some(f) = st.failure {
                    if b.fail(f) {
                        (rx, tx) = (true, true);
                    }
                }
                if st.ready.contains(Readiness::CONNECTED) && !b.established {
                    b.established = true;
                    b.local = engine.local_addr(id).ok();
                    b.peer = engine.peer_addr(id).ok();
                    tx = true;
                }
            }
            Err(_) => {
                // The engine no longer knows the id: report it as reset.
                if b.fail(crate::engine::CloseReason::Reset) {
                    (rx, tx) = (true, true);
                }
            }
        }

        if b.failed.is_none() && b.established {
            let was_full = b.tx.len() >= b.tx_cap;
            while !b.tx.is_empty() {
                let (front, _) = b.tx.as_slices();
                match engine.send(id, front) {
                    Ok(0) => break,
                    Ok(n) => {
                        b.tx.drain(..n);
                    }
                    Err(EngineError::Failed(f)) => {
                        // Only reached while not failed: `fail` records it.
                        b.fail(f);
                        (rx, tx) = (true, true);
                        break;
                    }
                    Err(_) => break,
                }
            }
            if was_full && b.tx.len() < b.tx_cap {
                tx = true;
            }
            if b.tx.is_empty() && b.write_shut && !c.fin_sent {
                c.fin_sent = engine.shutdown_write(id).is_ok();
            }
        }

        if !c.released && b.failed.is_none() {
            if direct && !b.read_shut && !b.pull_asked {
                // The application's read takes the bytes from the engine:
                // only say that there is something, and that it is news
                // when the engine raised an event (data arrived) or the
                // end of the stream is new.
                b.engine_unread = readable;
                if readable && event {
                    rx = true;
                }
                if fin_possible && !b.fin_in {
                    b.fin_in = true;
                    rx = true;
                }
            } else {
                b.pull_asked = false;
                let (r, t) = pull(engine, id, &mut b, readable, fin_possible);
                (rx, tx) = (rx || r, tx || t);
            }
        }

        let notify = b.changes.record(rx, tx);

        if c.released && (b.failed.is_some() || b.tx.is_empty()) {
            drop(b);
            let _ = engine.close(id);
            if let Some(done) = self.conns.get_mut(id.index as usize).and_then(Option::take) {
                self.recycle(done.buf);
            }
            self.orphans = self.orphans.saturating_sub(1);
            return;
        }
        drop(b);
        if let (true, Some(key)) = (notify, c.key) {
            if c.notified.first_in(self.batch) {
                out.push(key);
            }
        }
    }
}

/// Moves the bytes the engine holds for connection `id` into its `rx`, up
/// to `rx`'s bound (after a read shutdown they are taken and dropped), and
/// the end of the stream or a failure into its flags; `readable`: the
/// engine has something for `recv`; `fin_possible`: the peer may have sent
/// its FIN. The directions that changed (read, write).
fn pull<E: Engine>(engine: &mut E, id: ConnId, b: &mut ConnBuf, readable: bool, fin_possible: bool) -> (bool, bool) {
    let (mut rx, mut tx) = (false, false);
    b.engine_has_more = false;
    b.engine_unread = false;
    while readable && !b.peer_fin {
        let room = if b.read_shut { DISCARD } else { b.rx_cap.saturating_sub(b.rx.len()) };
        if room == 0 {
            b.engine_has_more = true;
            break;
        }
        match engine.recv(id, &mut b.rx, room) {
            Ok(0) => {
                b.peer_fin = true;
                rx = true;
            }
            Ok(n) => {
                if b.read_shut {
                    b.rx.clear();
                } else {
                    rx = true;
                }
                // Less than asked for: the engine is drained (a core's
                // `recv` hands over both pieces of its ring at once),
                // unless the end of the stream may still be there to read.
                if n < room && !fin_possible {
                    break;
                }
            }
            Err(EngineError::Failed(f)) => {
                // Only reached while not failed: `fail` records it.
                b.fail(f);
                (rx, tx) = (true, true);
                break;
            }
            Err(_) => break,
        }
    }
    (rx, tx)
}

impl<E: Engine> AnyPump for Pump<E, Local> {
    fn ingress(&mut self, out: &mut Vec<Key>) -> bool {
        self.batch += 1;
        self.now = self.engine.now_ns();
        self.engine.ingress(self.now);
        // Before `collect` moves received bytes out of the engine: the
        // engine tells answerable connections by their unread data.
        self.engine.egress_unanswerable(self.now);
        self.collect(out)
    }
    fn apply(&mut self, jobs: &mut Vec<Job>, out: &mut Vec<Key>) {
        Pump::apply(self, jobs, out)
    }
    fn egress(&mut self) {
        Pump::egress(self)
    }
    fn idle(&mut self, deadline_ns: Option<u64>) {
        Pump::idle(self, deadline_ns)
    }
    fn now_ns(&self) -> u64 {
        Pump::now_ns(self)
    }
    fn iteration_ns(&self) -> u64 {
        self.now
    }
    fn next_wakeup_ns(&self) -> Option<u64> {
        self.engine.next_wakeup_ns()
    }
    fn busy(&self) -> bool {
        Pump::busy(self)
    }
    fn send_now(&mut self, conn: ConnId, data: &[u8]) -> Option<usize> {
        if self.conn_mut(conn)?.released {
            return None;
        }
        self.engine.send(conn, data).ok()
    }
    fn open_now(&mut self, jobs: &mut Vec<Job>, open: Open, out: &mut Vec<Key>) -> Result<Opened, EngineError> {
        self.apply_then(jobs, out, |pump, out| match open {
            Open::Listen { key, addr, backlog, shared } => {
                pump.listen(key, addr, backlog, shared).map(|(id, at)| Opened::Listener(id, at))
            }
            Open::Connect { key, remote, local, buf } => {
                pump.connect(key, remote, local, buf, out).map(|(id, at)| Opened::Conn(id, at))
            }
            Open::UdpBind { key, addr, peer, shared } => {
                pump.udp_bind(key, addr, peer, shared).map(|(id, ..)| Opened::Udp(id))
            }
        })
    }
    fn spare_buf(&mut self) -> Option<ConnCell<Local>> {
        self.spare_bufs.pop()
    }
    fn recv_now(&mut self, conn: ConnId, bufs: &mut [IoSliceMut<'_>]) -> Option<Result<(usize, bool), EngineError>> {
        if self.conn_mut(conn)?.released {
            return None;
        }
        let (mut total, mut more) = (0, true);
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            match self.engine.recv_slice(conn, buf) {
                // The end of the stream: reported once the bytes before it are.
                Ok((0, _)) => break,
                Ok((n, left)) => {
                    (total, more) = (total + n, left);
                    if n < buf.len() || !left {
                        break;
                    }
                }
                // Bytes first; the engine says the rest at the next read.
                Err(_) if total > 0 => break,
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok((total, more)))
    }
    fn pull_now(&mut self, conn: ConnId) {
        let engine = &mut self.engine;
        let Some(Some(c)) = self.conns.get_mut(conn.index as usize) else { return };
        if c.id != conn || c.released {
            return;
        }
        let Ok(st) = engine.state(conn) else { return };
        let mut b = Local::lock(&c.buf);
        if b.failed.is_some() {
            return;
        }
        let readable = st.ready.contains(Readiness::READABLE);
        pull(engine, conn, &mut b, readable, fin_possible(st.tcp));
    }
}

/// Whether the peer may have sent its FIN: any TCP state but those in
/// which it has not.
fn fin_possible(tcp: TcpState) -> bool {
    !matches!(
        tcp,
        TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::SynSent | TcpState::SynReceived
    )
}
