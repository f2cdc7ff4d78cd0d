//! The event loops every program runs, over any socket layer.
//!
//! [`Reactor`] is the little a loop needs from a socket layer: listen,
//! accept, connect, register a stream for edge-triggered readable and
//! writable events, wait. [`kernel::Kernel`](crate::kernel::Kernel)
//! implements it over Linux sockets with mio; the ixtcp implementation sits
//! on sockapi's `Epoll`. [`serve`] and [`run_clients`] are the server and
//! client loops, written once, so that ixtcp and the kernel run the very
//! same application code in the benchmark.
//!
//! One loop runs per core, on that core's thread; nothing here is shared
//! between cores except the [`Gauge`] that the once-a-second report reads.

use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::session::{Failure, Session, Step, Tally};

/// The token of the listening socket.
pub const LISTENER: usize = usize::MAX;

/// A readiness event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The token the stream was registered with.
    pub token: usize,
    /// Data, end of stream or an error may be read.
    pub readable: bool,
    /// Bytes may be written (for a connecting stream: the handshake ended,
    /// one way or the other).
    pub writable: bool,
    /// Hang-up or error.
    pub closed: bool,
}

/// A socket layer, as the event loops use it. Streams are non-blocking and
/// registered edge-triggered for both directions.
pub trait Reactor {
    /// A connection.
    type Stream: Read + Write;
    /// A listening socket.
    type Listener;
    /// Listens on `addr`; the listener reports as [`LISTENER`].
    fn listen(&mut self, addr: SocketAddrV4) -> io::Result<Self::Listener>;
    /// Accepts a waiting connection; `None` when there is none.
    fn accept(&mut self, listener: &Self::Listener) -> io::Result<Option<Self::Stream>>;
    /// Starts opening a connection to `addr`.
    fn connect(&mut self, addr: SocketAddrV4) -> io::Result<Self::Stream>;
    /// True once a connecting stream is established; the error if it failed.
    fn connected(&mut self, stream: &Self::Stream) -> io::Result<bool>;
    /// Registers `stream` under `token` for readable and writable events.
    fn register(&mut self, stream: &mut Self::Stream, token: usize) -> io::Result<()>;
    /// Deregisters and closes `stream` (FIN after buffered data).
    fn close(&mut self, stream: Self::Stream);
    /// Waits for events, at most `timeout`; appends them to `out`.
    fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()>;
}

/// The time the loops go by: the OS monotonic clock (the default), or a
/// function a harness gives, such as a simulation's virtual clock mapped
/// onto an `Instant`, so that loops stepped over a virtual clock replay
/// exactly (stale-connection scans, session timestamps).
#[derive(Clone, Default)]
pub struct LoopClock(Option<Rc<dyn Fn() -> Instant>>);

impl std::fmt::Debug for LoopClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "LoopClock(given)" } else { "LoopClock(os)" })
    }
}

impl LoopClock {
    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> Instant + 'static) -> LoopClock {
        LoopClock(Some(Rc::new(now)))
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        self.0.as_ref().map_or_else(Instant::now, |f| f())
    }
}

/// One core's counters, readable from the reporting thread.
#[derive(Debug, Default)]
pub struct Gauge {
    /// Completed transactions.
    pub transactions: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Failures.
    pub failures: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Set by [`serve`] once it listens.
    pub listening: AtomicBool,
}

impl Gauge {
    /// Publishes `tally` and the number of open connections.
    pub fn publish(&self, tally: &Tally, open: usize) {
        self.transactions.store(tally.transactions, Ordering::Relaxed);
        self.bytes_in.store(tally.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(tally.bytes_out, Ordering::Relaxed);
        self.failures.store(tally.total_failures(), Ordering::Relaxed);
        self.open.store(open as u64, Ordering::Relaxed);
    }
}

/// When a loop stops: on a flag (Ctrl-C, the end of a benchmark phase) or
/// at a deadline, whichever comes first.
#[derive(Debug, Clone)]
pub struct Until {
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// Stop once this gauge has counted this many transactions (a fixed
    /// amount of work instead of a fixed time).
    pub transactions: Option<(Arc<Gauge>, u64)>,
}

impl Until {
    /// Until `stop` is set.
    pub fn flag(stop: Arc<AtomicBool>) -> Until {
        Until { stop, deadline: None, transactions: None }
    }

    /// Until `stop` is set or `deadline` passes.
    pub fn deadline(stop: Arc<AtomicBool>, deadline: Option<Instant>) -> Until {
        Until { stop, deadline, transactions: None }
    }

    /// Until `gauge` shows `n` transactions (or `stop` is set). The gauge
    /// mirrors a loop's whole tally, so `n` counts what the tally had
    /// before too.
    pub fn transactions(stop: Arc<AtomicBool>, gauge: Arc<Gauge>, n: u64) -> Until {
        Until { stop, deadline: None, transactions: Some((gauge, n)) }
    }

    /// True when the loop should end.
    pub fn reached(&self, now: Instant) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| now >= d)
            || self.transactions.as_ref().is_some_and(|(g, n)| g.transactions.load(Ordering::Relaxed) >= *n)
    }

    fn timeout(&self, now: Instant, most: Duration) -> Duration {
        self.deadline.map_or(most, |d| d.saturating_duration_since(now).min(most))
    }
}

struct Slot<T, S> {
    stream: T,
    session: S,
    connected: bool,
    last: Instant,
}

/// Slots indexed by token, with a free list.
struct Slots<T, S> {
    slots: Vec<Option<Slot<T, S>>>,
    free: Vec<usize>,
    open: usize,
}

impl<T, S> Slots<T, S> {
    fn new() -> Self {
        Slots { slots: Vec::new(), free: Vec::new(), open: 0 }
    }
    fn insert(&mut self, slot: Slot<T, S>) -> usize {
        self.open += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        }
    }
    fn remove(&mut self, i: usize) -> Option<Slot<T, S>> {
        let s = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        self.open -= 1;
        Some(s)
    }
    fn get(&mut self, i: usize) -> Option<&mut Slot<T, S>> {
        self.slots.get_mut(i)?.as_mut()
    }
}

/// The server loop: accepts connections on `addr` and runs a session from
/// `new_session` on each until `until`; then closes everything.
pub fn serve<R: Reactor, S: Session>(
    reactor: &mut R,
    addr: SocketAddrV4,
    new_session: impl FnMut() -> S,
    until: &Until,
    tally: &mut Tally,
    gauge: &Gauge,
) -> io::Result<()> {
    let mut server = Server::start(reactor, addr, new_session, gauge)?;
    loop {
        // The step's own reading, taken after its wait: one clock read per
        // iteration for the loop, besides the stack's.
        let now = server.now();
        if until.reached(now) {
            break;
        }
        server.step(reactor, Some(until.timeout(now, Duration::from_millis(50))), tally, gauge)?;
    }
    server.stop(reactor, tally, gauge);
    Ok(())
}

/// Finished sessions an event loop keeps for its next connections (a
/// server's renewed ones, a client's through [`ClientWork::done`]), at most
/// [`Spares::MAX`]: a new connection per transaction then allocates nothing
/// for its session.
#[derive(Debug)]
pub struct Spares<S>(Vec<S>);

impl<S> Default for Spares<S> {
    fn default() -> Self {
        Spares(Vec::new())
    }
}

impl<S> Spares<S> {
    /// Most sessions kept.
    pub const MAX: usize = 1024;

    /// A kept session, if there is one.
    pub fn take(&mut self) -> Option<S> {
        self.0.pop()
    }

    /// Keeps `session` for a next connection, unless [`MAX`](Self::MAX)
    /// are kept already.
    pub fn keep(&mut self, session: S) {
        if self.0.len() < Self::MAX {
            self.0.push(session);
        }
    }
}

/// [`serve`], one iteration at a time: for a harness that runs several
/// loops, each on its own context, from one thread (a deterministic
/// simulation), with `step(…, Some(Duration::ZERO), …)`.
pub struct Server<R: Reactor, S, F> {
    listener: R::Listener,
    conns: Slots<R::Stream, S>,
    /// Sessions of closed connections, renewed, for the next accepted ones.
    spare: Spares<S>,
    ready: Vec<Ready>,
    accept_errors: u64,
    new_session: F,
    clock: LoopClock,
    /// The clock's reading after the last step's wait.
    now: Instant,
}

impl<R: Reactor, S: Session, F: FnMut() -> S> Server<R, S, F> {
    /// Listens on `addr` and says so in `gauge`.
    pub fn start(reactor: &mut R, addr: SocketAddrV4, new_session: F, gauge: &Gauge) -> io::Result<Self> {
        let listener = reactor.listen(addr)?;
        gauge.listening.store(true, Ordering::Release);
        Ok(Server {
            listener,
            conns: Slots::new(),
            spare: Spares::default(),
            ready: Vec::with_capacity(1024),
            accept_errors: 0,
            new_session,
            clock: LoopClock::default(),
            now: Instant::now(),
        })
    }

    /// Goes by `clock` instead of the OS clock.
    pub fn with_clock(self, clock: LoopClock) -> Self {
        Server { now: clock.now(), clock, ..self }
    }

    /// The time the last step read after its wait (or when the loop was
    /// made): what a caller's loop goes by, without a reading of its own.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.open
    }

    /// One iteration: wait for events (at most `timeout`), accept, drive
    /// the sessions that have events.
    pub fn step(
        &mut self,
        reactor: &mut R,
        timeout: Option<Duration>,
        tally: &mut Tally,
        gauge: &Gauge,
    ) -> io::Result<()> {
        self.ready.clear();
        reactor.wait(&mut self.ready, timeout)?;
        let now = self.clock.now();
        self.now = now;
        for ev in &self.ready {
            if ev.token == LISTENER {
                loop {
                    match reactor.accept(&self.listener) {
                        Ok(Some(stream)) => {
                            let session = self.spare.take().unwrap_or_else(&mut self.new_session);
                            let slot = Slot { stream, session, connected: true, last: now };
                            let token = self.conns.insert(slot);
                            tally.connections += 1;
                            if let Some(s) = self.conns.get(token)
                                && reactor.register(&mut s.stream, token).is_err()
                                && let Some(s) = self.conns.remove(token)
                            {
                                reactor.close(s.stream);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // Out of descriptors or memory: keep serving the
                            // connections there are; say so once in a while.
                            self.accept_errors += 1;
                            if self.accept_errors.is_power_of_two() {
                                eprintln!("accept failed ({} times so far): {e}", self.accept_errors);
                            }
                            break;
                        }
                    }
                }
                continue;
            }
            let Some(slot) = self.conns.get(ev.token) else { continue };
            if slot.session.drive(&mut slot.stream, tally, now) == Step::Close
                && let Some(mut s) = self.conns.remove(ev.token)
            {
                reactor.close(s.stream);
                if s.session.renew() {
                    self.spare.keep(s.session);
                }
            }
        }
        gauge.publish(tally, self.conns.open);
        Ok(())
    }

    /// Closes every connection and stops listening (in the gauge).
    pub fn stop(mut self, reactor: &mut R, tally: &Tally, gauge: &Gauge) {
        for i in 0..self.conns.slots.len() {
            if let Some(s) = self.conns.remove(i) {
                reactor.close(s.stream);
            }
        }
        gauge.publish(tally, 0);
        gauge.listening.store(false, Ordering::Release);
    }
}

/// Waits until every gauge says its server listens (or `limit` passes).
pub fn wait_listening(gauges: &[Arc<Gauge>], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !gauges.iter().all(|g| g.listening.load(Ordering::Acquire)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// What a client loop opens connections for.
pub trait ClientWork {
    /// The session run on each connection.
    type Session: Session;
    /// A session for a new connection started at `now`; `None` when no
    /// more connections are wanted.
    fn open(&mut self, now: Instant) -> Option<Self::Session>;
    /// A connection could not be opened (already counted as a failure).
    fn connect_failed(&mut self) {}
    /// `session` finished and its connection was closed: `open` may reuse
    /// its memory for the next one (by default it is dropped).
    fn done(&mut self, session: Self::Session) {
        drop(session);
    }
}

/// How a client loop behaves.
#[derive(Debug, Clone)]
pub struct ClientLoop {
    /// The server.
    pub server: SocketAddrV4,
    /// Connections kept open at once.
    pub conns: usize,
    /// A connection with no progress for this long is given up.
    pub timeout: Duration,
}

/// The client loop: keeps `cfg.conns` connections open, each running a
/// session from `work`, opening a new connection whenever one closes, until
/// `until` or until `work` wants no more connections and all are done.
pub fn run_clients<R: Reactor, W: ClientWork>(
    reactor: &mut R,
    cfg: &ClientLoop,
    work: &mut W,
    until: &Until,
    tally: &mut Tally,
    gauge: &Gauge,
) -> io::Result<()> {
    let mut clients = Clients::new(cfg.clone());
    loop {
        let now = clients.now();
        if until.reached(now) {
            break;
        }
        if !clients.step(reactor, work, Some(until.timeout(now, Duration::from_millis(50))), tally, gauge)? {
            break;
        }
    }
    clients.stop(reactor, tally, gauge);
    Ok(())
}

/// [`run_clients`], one iteration at a time (see [`Server`]).
pub struct Clients<R: Reactor, S> {
    cfg: ClientLoop,
    conns: Slots<R::Stream, S>,
    ready: Vec<Ready>,
    /// Connections to (re)open, and when, after a failed attempt.
    to_open: usize,
    retry_at: Option<Instant>,
    exhausted: bool,
    last_scan: Instant,
    clock: LoopClock,
    /// The clock's reading after the last step's wait.
    now: Instant,
}

impl<R: Reactor, S: Session> Clients<R, S> {
    /// A client loop for `cfg`, nothing opened yet.
    pub fn new(cfg: ClientLoop) -> Self {
        let to_open = cfg.conns;
        Clients {
            cfg,
            conns: Slots::new(),
            ready: Vec::with_capacity(1024),
            to_open,
            retry_at: None,
            exhausted: false,
            last_scan: Instant::now(),
            clock: LoopClock::default(),
            now: Instant::now(),
        }
    }

    /// Goes by `clock` instead of the OS clock.
    pub fn with_clock(self, clock: LoopClock) -> Self {
        let now = clock.now();
        Clients { last_scan: now, now, clock, ..self }
    }

    /// The time the last step read after its wait (or when the loop was
    /// made), as [`Server::now`].
    pub fn now(&self) -> Instant {
        self.now
    }

    /// One iteration: open what is missing, wait for events (at most
    /// `timeout`, and at most 10 ms while a reconnect is due), drive the
    /// sessions, give up on stale ones. False once `work` wants no more
    /// connections and all are done.
    pub fn step<W: ClientWork<Session = S>>(
        &mut self,
        reactor: &mut R,
        work: &mut W,
        timeout: Option<Duration>,
        tally: &mut Tally,
        gauge: &Gauge,
    ) -> io::Result<bool> {
        // Connections opened here start at the last step's reading: the
        // time since is that step's own work, and this saves a clock read
        // per iteration.
        let now = self.now;
        if self.retry_at.is_none_or(|t| now >= t) {
            self.retry_at = None;
            while self.to_open > 0 && !self.exhausted {
                let Some(session) = work.open(now) else {
                    self.exhausted = true;
                    break;
                };
                match reactor.connect(self.cfg.server) {
                    Ok(stream) => {
                        let token = self.conns.insert(Slot { stream, session, connected: false, last: now });
                        self.to_open -= 1;
                        if let Some(s) = self.conns.get(token)
                            && let Err(e) = reactor.register(&mut s.stream, token)
                        {
                            if let Some(s) = self.conns.remove(token) {
                                reactor.close(s.stream);
                            }
                            return Err(e);
                        }
                    }
                    Err(e) => {
                        tally.fail(Failure::of(&e), || format!("connect to {}: {e}", self.cfg.server));
                        work.connect_failed();
                        self.retry_at = Some(now + Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
        if self.conns.open == 0 && (self.exhausted || self.to_open == 0) && self.retry_at.is_none() {
            return Ok(false);
        }
        let timeout = match self.retry_at {
            Some(_) => Some(timeout.map_or(Duration::from_millis(10), |t| t.min(Duration::from_millis(10)))),
            None => timeout,
        };
        self.ready.clear();
        reactor.wait(&mut self.ready, timeout)?;
        let now = self.clock.now();
        self.now = now;
        let server = self.cfg.server;
        for ev in &self.ready {
            let Some(slot) = self.conns.get(ev.token) else { continue };
            if !slot.connected {
                match reactor.connected(&slot.stream) {
                    Ok(true) => {
                        slot.connected = true;
                        tally.connections += 1;
                    }
                    Ok(false) if !ev.closed => continue,
                    result => {
                        let e = result.err().unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into());
                        tally.fail(Failure::Connect, || format!("connect to {server}: {e}"));
                        work.connect_failed();
                        if let Some(s) = self.conns.remove(ev.token) {
                            reactor.close(s.stream);
                        }
                        self.to_open += 1;
                        self.retry_at = Some(now + Duration::from_millis(10));
                        continue;
                    }
                }
            }
            slot.last = now;
            if slot.session.drive(&mut slot.stream, tally, now) == Step::Close
                && let Some(s) = self.conns.remove(ev.token)
            {
                reactor.close(s.stream);
                work.done(s.session);
                self.to_open += 1;
            }
        }
        if now.duration_since(self.last_scan) >= Duration::from_millis(250) {
            self.last_scan = now;
            for i in 0..self.conns.slots.len() {
                let stale = self.conns.get(i).is_some_and(|s| now.duration_since(s.last) > self.cfg.timeout);
                if stale && let Some(mut s) = self.conns.remove(i) {
                    let why = if s.connected { Failure::Timeout } else { Failure::Connect };
                    if s.connected {
                        s.session.abandon(tally, why);
                    } else {
                        tally.fail(why, || format!("connect to {server}: no answer"));
                        work.connect_failed();
                    }
                    reactor.close(s.stream);
                    self.to_open += 1;
                }
            }
        }
        gauge.publish(tally, self.conns.open);
        Ok(true)
    }

    /// Closes every connection.
    pub fn stop(mut self, reactor: &mut R, tally: &Tally, gauge: &Gauge) {
        for i in 0..self.conns.slots.len() {
            if let Some(s) = self.conns.remove(i) {
                reactor.close(s.stream);
            }
        }
        gauge.publish(tally, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::Spares;

    #[test]
    fn spares_keep_at_most_their_bound_and_give_back_the_last_kept_first() {
        let mut s = Spares::default();
        assert_eq!(s.take(), None);
        for i in 0..Spares::<usize>::MAX + 5 {
            s.keep(i);
        }
        assert_eq!(s.take(), Some(Spares::<usize>::MAX - 1), "the ones past the bound were dropped");
        let mut n = 1;
        while s.take().is_some() {
            n += 1;
        }
        assert_eq!(n, Spares::<usize>::MAX);
    }
}
