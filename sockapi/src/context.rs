//! The per-core application context (mTCP's `mctx`): the socket table, the
//! epoll instances, the outgoing job batch, and the link to the stack side.

use std::cell::Cell;
use std::cell::{RefCell, RefMut};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::batch::{BatchRx, BatchTx};

use crate::buffers::ConnBuf;
use crate::engine::{ConnId, Engine, EngineError, ListenerId, Readiness, UdpId};
use crate::job::{Job, Reply};
use crate::pump::{AnyPump, Open, Opened, Pump};
use crate::readiness::{self, Changes, Reg};
use crate::share::{ConnRef, ListenRef, Local, Share, Shared, Threaded, UdpRef};
use crate::slab::{Key, Slab};
use crate::waker::{CtxWake, WakerShared};

/// Iterations an inline [`Context::quiesce`] runs at most.
const QUIESCE_BOUND: usize = 100_000;

/// Jobs queued beyond this many are sent at once instead of at the next wait.
const MAX_BATCH: usize = 1024;

static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Asks every context of a runtime to stop; cheap to clone and `Send`.
///
/// After [`stop`](StopHandle::stop), [`Context::is_stopped`] is true,
/// [`Epoll::wait`](crate::Epoll::wait) returns at once with no events, and
/// blocking calls fail with `ConnectionAborted` instead of waiting.
///
/// ```
/// use ixtcp_sockapi::{Context, testing::TestNet};
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let stop = ctx.stop_handle();
/// stop.stop();
/// assert!(ctx.is_stopped());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
}

impl StopHandle {
    /// Request the stop. Idempotent.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// True once `stop` was called.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// What a socket-table entry holds.
pub(crate) enum SockKind {
    Stream {
        conn: ConnId,
        buf: ConnRef,
    },
    Listener {
        id: ListenerId,
        shared: ListenRef,
    },
    /// A [`UdpSocket`](crate::UdpSocket).
    Udp {
        id: UdpId,
        buf: UdpRef,
    },
    /// A [`Waker`](crate::Waker): readable while woken.
    Waker {
        shared: Arc<WakerShared>,
    },
}

/// One entry of the socket table.
pub(crate) struct Sock {
    pub kind: SockKind,
    /// Registrations with this context's epolls (usually zero or one).
    pub regs: Vec<Reg>,
}

impl Sock {
    /// Readiness now, with the change counters (readable, writable) that
    /// edge-triggered registrations compare against their last report.
    pub fn readiness(&self) -> (Readiness, Changes) {
        match &self.kind {
            SockKind::Stream { buf, .. } => {
                let b = buf.lock();
                (b.readiness(), b.changes)
            }
            SockKind::Listener { shared, .. } => {
                let (queued, changes) = shared.queued();
                (readiness::listener(queued), changes)
            }
            SockKind::Udp { buf, .. } => {
                let b = buf.lock();
                (b.readiness(), b.changes)
            }
            SockKind::Waker { shared } => {
                let (woken, wakes) = shared.state();
                let ready = if woken { Readiness::READABLE } else { Readiness::EMPTY };
                (ready, Changes::with_reads(wakes))
            }
        }
    }
}

/// One epoll instance's state: the sockets that may be ready.
#[derive(Default)]
pub(crate) struct EpollState {
    /// (socket, registration sequence) pairs to look at in the next wait.
    pub ready: std::collections::VecDeque<(Key, u64)>,
}

/// Mutable per-context state, behind one `RefCell`.
#[derive(Default)]
pub(crate) struct CtxState {
    pub socks: Slab<Sock>,
    pub epolls: Slab<EpollState>,
    pub jobs: Vec<Job>,
    /// Keys received from the stack, reused between batches.
    pub keys: Vec<Key>,
    pub next_reg_seq: u64,
    /// The context's [`Waker`](crate::Waker)s.
    pub wakers: Vec<Key>,
    /// Emptied registration lists of removed sockets, for new ones: most
    /// sockets have one registration, and a new connection per
    /// transaction would otherwise allocate one list per connection.
    spare_regs: Vec<Vec<Reg>>,
}

/// Registration lists [`CtxState::remove_sock`] keeps.
const SPARE_REGS: usize = 256;

impl CtxState {
    /// Adds a socket to the table (with a kept registration list); `None`
    /// when the table is full.
    pub fn insert_sock(&mut self, kind: SockKind) -> Option<Key> {
        let regs = self.spare_regs.pop().unwrap_or_default();
        self.socks.insert(Sock { kind, regs })
    }

    /// Takes a socket out of the table, keeping its registration list for
    /// the next one.
    pub fn remove_sock(&mut self, key: Key) -> Option<SockKind> {
        let Sock { kind, mut regs } = self.socks.remove(key)?;
        if regs.capacity() > 0 && self.spare_regs.len() < SPARE_REGS {
            regs.clear();
            self.spare_regs.push(regs);
        }
        Some(kind)
    }

    /// Queue the sockets in `keys` on every epoll they are registered with.
    pub fn dispatch(&mut self, keys: &[Key]) {
        for &key in keys {
            self.notify(key);
        }
    }

    /// Queue every woken waker on its epolls (after `CtxWake::take_any`).
    pub fn dispatch_wakers(&mut self) {
        for i in 0..self.wakers.len() {
            let key = self.wakers[i];
            let woken =
                matches!(self.socks.get(key), Some(Sock { kind: SockKind::Waker { shared }, .. }) if shared.state().0);
            if woken {
                self.notify(key);
            }
        }
    }

    #[inline]
    pub fn notify(&mut self, key: Key) {
        let Some(sock) = self.socks.get_mut(key) else { return };
        for reg in sock.regs.iter_mut() {
            if let Some(ep) = self.epolls.get_mut(reg.epoll) {
                if reg.should_queue() {
                    ep.ready.push_back((key, reg.seq));
                }
            }
        }
    }
}

/// How the context reaches its stack side.
enum Link {
    /// The stack runs on this thread, inside `Epoll::wait` and blocking calls.
    Inline(Box<dyn AnyPump>),
    /// The stack runs on its own thread; batches travel over channels.
    Threaded { jobs: BatchTx<Job>, events: BatchRx<Key> },
    /// `finish` ran: the stack is gone.
    Closed,
}

pub(crate) struct CtxInner {
    pub id: u64,
    core: usize,
    pub state: RefCell<CtxState>,
    link: RefCell<Link>,
    /// The link was made inline (it stays so until it is closed).
    inline: bool,
    stop: StopHandle,
    /// Threaded: the clock of waits and timeouts (the stack's is on its
    /// thread). Inline, the stack's clock is used.
    epoch: Instant,
    /// The stack's time at the last drive (inline), for `now_ns` while the
    /// stack is in use.
    last_now: Cell<u64>,
    /// Where this context's wakers signal (see `crate::waker`).
    pub wake: Arc<CtxWake>,
}

/// One core's application context: sockets and epolls live here, and every
/// handle made from it works only with it.
///
/// A `Context` is cheap to clone (a reference count) and is not `Send`: it
/// belongs to the thread that runs the core's application, like mTCP's
/// `mctx_t`. Contexts come from a [`Runtime`](crate::Runtime), or from
/// [`Context::inline`] for a single-threaded setup over one engine.
///
/// ```
/// use ixtcp_sockapi::{Context, TcpListener, testing::TestNet};
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let listener = TcpListener::bind(&ctx, "10.0.0.1:80".parse().unwrap())?;
/// assert_eq!(listener.local_addr()?.port(), 80);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Rc<CtxInner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("id", &self.inner.id).field("core", &self.inner.core).finish()
    }
}

/// How long a drive step may wait for something to happen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Do one step and return.
    No,
    /// Wait until something happens or the deadline, in nanoseconds on the
    /// context's clock ([`Context::now_ns`]); none: no deadline.
    Until(Option<u64>),
}

pub(crate) fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the context's stack has stopped")
}

pub(crate) fn busy() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "context is in use by a call on this thread")
}

impl Context {
    /// A context that runs `engine` on the calling thread: the inline
    /// runtime for one core, without spawning anything. The stack advances
    /// inside [`Epoll::wait`](crate::Epoll::wait) and blocking calls.
    ///
    /// ```
    /// use ixtcp_sockapi::{Context, testing::TestNet};
    /// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
    /// assert_eq!(ctx.core(), 0);
    /// ```
    pub fn inline<E: Engine + 'static>(engine: E) -> Context {
        Context::with_link(0, Link::Inline(Box::new(Pump::<_, Local>::new(engine))), StopHandle::default())
    }

    /// An inline context for core `core` of a set that share `stop`: for
    /// harnesses that drive several cores' stacks from one thread (such as
    /// `ixtcp_host::Stepped`); [`inline`](Self::inline) is core 0 alone.
    pub fn inline_core<E: Engine + 'static>(core: usize, engine: E, stop: StopHandle) -> Context {
        Context::with_link(core, Link::Inline(Box::new(Pump::<_, Local>::new(engine))), stop)
    }

    pub(crate) fn threaded(core: usize, jobs: BatchTx<Job>, events: BatchRx<Key>, stop: StopHandle) -> Context {
        Context::with_link(core, Link::Threaded { jobs, events }, stop)
    }

    fn with_link(core: usize, link: Link, stop: StopHandle) -> Context {
        Context {
            inner: Rc::new(CtxInner {
                id: NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed),
                core,
                state: RefCell::new(CtxState::default()),
                inline: matches!(link, Link::Inline(_)),
                link: RefCell::new(link),
                stop,
                epoch: Instant::now(),
                last_now: Cell::new(0),
                wake: Arc::new(CtxWake::new()),
            }),
        }
    }

    /// The context's clock, in nanoseconds: inline, its stack's clock (a
    /// virtual one in simulations, where it moves only while the context
    /// waits with nothing to do); threaded, the monotonic clock since the
    /// context was made. Timeouts of [`Epoll::wait`](crate::Epoll::wait)
    /// and the linger at the end run on it.
    pub fn now_ns(&self) -> u64 {
        match self.inner.link.try_borrow().as_deref() {
            Ok(Link::Inline(stack)) => {
                let now = stack.now_ns();
                self.inner.last_now.set(now);
                now
            }
            Ok(Link::Threaded { .. }) => self.inner.epoch.elapsed().as_nanos() as u64,
            Ok(Link::Closed) | Err(_) => self.inner.last_now.get(),
        }
    }

    /// The time at the start of the last iteration this context drove
    /// (inline: what its stack's ingress read, so a wait right after an
    /// iteration needs no clock read of its own); threaded, as `now_ns`.
    pub(crate) fn iteration_ns(&self) -> u64 {
        match self.inner.link.try_borrow().as_deref() {
            Ok(Link::Threaded { .. }) => self.inner.epoch.elapsed().as_nanos() as u64,
            _ => self.inner.last_now.get(),
        }
    }

    /// Runs one iteration of this context's stack without waiting (inline:
    /// queued jobs, egress, ingress; threaded: sends the queued jobs and
    /// takes the event batches that arrived) and reports whether anything
    /// happened. For harnesses that drive several inline contexts from one
    /// thread, such as `ixtcp_host::Stepped`; applications use
    /// [`Epoll::wait`](crate::Epoll::wait).
    pub fn step(&self) -> io::Result<bool> {
        self.drive(Block::No)
    }

    /// Runs the stack until it has had an iteration with nothing to do,
    /// and takes every event produced until then: afterwards a wait with a
    /// zero timeout reports all that the work so far has caused, so a test
    /// that "no event arrives" checks something that was given its chance
    /// to happen. Inline, this context drives its stack (a virtual clock
    /// does not move: timers that are not due stay not due); threaded, it
    /// asks the stack thread and waits for its answer. A stack that never
    /// goes idle ends the wait after a bound of iterations.
    pub fn quiesce(&self) -> io::Result<()> {
        let inline = matches!(self.inner.link.try_borrow().as_deref(), Ok(Link::Inline(_)));
        if inline {
            for _ in 0..QUIESCE_BOUND {
                let progress = self.drive(Block::No)?;
                let due = self.next_wakeup_ns().is_some_and(|w| w <= self.now_ns());
                if !progress && !due {
                    break;
                }
            }
            return Ok(());
        }
        self.call(|reply| Job::Quiesce { reply })?;
        // The events of the iterations before the answer are in the channel.
        self.drive(Block::No).map(|_| ())
    }

    /// When this context's stack next has work without new input, on
    /// [`now_ns`](Self::now_ns)'s clock (inline only; `None` threaded or
    /// when only input can wake it).
    pub fn next_wakeup_ns(&self) -> Option<u64> {
        match self.inner.link.try_borrow().as_deref() {
            Ok(Link::Inline(stack)) => stack.next_wakeup_ns(),
            _ => None,
        }
    }

    /// True while this context's stack still holds connections or is
    /// flushing closed ones (inline only; threaded, false).
    pub fn stack_busy(&self) -> bool {
        match self.inner.link.try_borrow().as_deref() {
            Ok(Link::Inline(stack)) => stack.busy(),
            _ => false,
        }
    }

    /// Index of the core this context belongs to.
    pub fn core(&self) -> usize {
        self.inner.core
    }

    /// True once the runtime was asked to stop (see [`StopHandle`]).
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_stopped()
    }

    /// A handle that stops this context's runtime (or this context alone, for
    /// one made with [`Context::inline`]).
    pub fn stop_handle(&self) -> StopHandle {
        self.inner.stop.clone()
    }

    /// Number of open sockets (streams, listeners, UDP sockets) on this context.
    pub fn socket_count(&self) -> usize {
        self.inner.state.try_borrow().map(|s| s.socks.len()).unwrap_or(0)
    }

    pub(crate) fn state(&self) -> io::Result<RefMut<'_, CtxState>> {
        self.inner.state.try_borrow_mut().map_err(|_| busy())
    }

    /// Inline: writes `bufs` into connection `conn`'s engine buffer now,
    /// in order, until the engine takes less than offered; the bytes taken.
    /// `None` when the stack is not on this thread (threaded), is in use
    /// by a call on this thread, or does not take bytes for `conn` (then
    /// the write goes through the connection's buffer and a sync job). The
    /// caller holds no bytes of `conn` that were written earlier.
    pub(crate) fn send_now(&self, conn: ConnId, bufs: &[std::io::IoSlice<'_>]) -> Option<usize> {
        let mut link = self.inner.link.try_borrow_mut().ok()?;
        let Link::Inline(stack) = &mut *link else { return None };
        let mut taken = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            match stack.send_now(conn, buf) {
                Some(n) => {
                    taken += n;
                    if n < buf.len() {
                        break;
                    }
                }
                None if taken == 0 => return None,
                None => break,
            }
        }
        Some(taken)
    }

    /// Inline: reads received bytes of `conn` into `bufs` straight from
    /// the engine (the stream's own buffer holds none); the count and
    /// whether anything is left for a read. `None` when the stack is not
    /// on this thread, is in use by a call on this thread, or does not
    /// read for `conn`.
    pub(crate) fn recv_now(
        &self,
        conn: ConnId,
        bufs: &mut [std::io::IoSliceMut<'_>],
    ) -> Option<Result<(usize, bool), EngineError>> {
        let mut link = self.inner.link.try_borrow_mut().ok()?;
        let Link::Inline(stack) = &mut *link else { return None };
        stack.recv_now(conn, bufs)
    }

    /// Inline: moves what the engine holds for `conn` into the stream's
    /// buffer now. False when the stack could not be reached (see
    /// [`recv_now`](Self::recv_now)). The caller does not hold the
    /// stream's buffer locked.
    pub(crate) fn pull_now(&self, conn: ConnId) -> bool {
        let Ok(mut link) = self.inner.link.try_borrow_mut() else { return false };
        let Link::Inline(stack) = &mut *link else { return false };
        stack.pull_now(conn);
        true
    }

    /// True if the stack runs on this thread (the inline runtime): the
    /// sockets' buffers are then shared without locks
    /// ([`Local`](crate::share::Local)) and opened with
    /// [`open_now`](Self::open_now).
    pub(crate) fn is_inline(&self) -> bool {
        self.inner.inline
    }

    /// Inline: the jobs queued so far, then `open` (a listen, connect or
    /// UDP bind with inline buffers), applied now; its result, without the
    /// reply channel its job needs to cross threads. `WouldBlock` when the
    /// stack is in use by a call on this thread, `NotConnected` when it is
    /// gone or not inline.
    pub(crate) fn open_now(&self, open: Open) -> io::Result<Opened> {
        let mut link = self.inner.link.try_borrow_mut().map_err(|_| busy())?;
        let Link::Inline(stack) = &mut *link else { return Err(gone()) };
        let (mut jobs, mut keys) = {
            let mut st = self.state()?;
            (std::mem::take(&mut st.jobs), std::mem::take(&mut st.keys))
        };
        let res = stack.open_now(&mut jobs, open, &mut keys);
        drop(link);
        let mut st = self.state()?;
        st.dispatch(&keys);
        keys.clear();
        st.keys = keys;
        st.jobs = jobs;
        res.map_err(io::Error::from)
    }

    /// A buffer for a new connection of this context: inline, a renewed
    /// one of a connection that is over if there is.
    pub(crate) fn new_conn_buf(&self) -> ConnRef {
        let new = || ConnBuf::new(crate::buffers::DEFAULT_BUF, crate::buffers::DEFAULT_BUF);
        if !self.is_inline() {
            return Shared::Threaded(Threaded::cell(new()));
        }
        let spare = match self.inner.link.try_borrow_mut().as_deref_mut() {
            Ok(Link::Inline(stack)) => stack.spare_buf(),
            _ => None,
        };
        Shared::Local(spare.unwrap_or_else(|| Local::cell(new())))
    }

    /// Queue a job for the stack's next batch.
    pub(crate) fn push_job(&self, job: Job) -> io::Result<()> {
        let full = {
            let mut st = self.state()?;
            st.jobs.push(job);
            st.jobs.len() >= MAX_BATCH
        };
        if full { self.drive(Block::No).map(|_| ()) } else { Ok(()) }
    }

    /// Send a job and wait for the stack's answer.
    pub(crate) fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Job) -> io::Result<T> {
        let (tx, rx) = bounded(1);
        self.state()?.jobs.push(make(tx));
        self.flush_jobs()?;
        let res = match rx.try_recv() {
            Ok(r) => r,
            Err(_) => rx.recv().map_err(|_| gone())?,
        };
        res.map_err(io::Error::from)
    }

    /// Hand the jobs queued by earlier calls (writes, closes, …) to the
    /// stack now instead of at the next [`Epoll::wait`](crate::Epoll::wait)
    /// or blocking call: threaded, as one batch to the stack thread; inline,
    /// applied at once (they leave at the next egress). For applications
    /// that do long work between waits.
    ///
    /// ```
    /// use ixtcp_sockapi::{Context, testing::TestNet};
    /// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
    /// ctx.flush()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn flush(&self) -> io::Result<()> {
        self.flush_jobs()
    }

    fn flush_jobs(&self) -> io::Result<()> {
        let mut link = self.inner.link.try_borrow_mut().map_err(|_| busy())?;
        let mut jobs = std::mem::take(&mut self.state()?.jobs);
        if jobs.is_empty() {
            return Ok(());
        }
        match &mut *link {
            Link::Inline(stack) => {
                let mut keys = std::mem::take(&mut self.state()?.keys);
                stack.apply(&mut jobs, &mut keys);
                let mut st = self.state()?;
                st.dispatch(&keys);
                keys.clear();
                st.keys = keys;
                st.jobs = jobs;
                Ok(())
            }
            Link::Threaded { jobs: tx, .. } => {
                let sent = tx.send(&mut jobs).map_err(|_| gone());
                // Keep the (recycled, empty) vector for the next jobs.
                self.state()?.jobs = jobs;
                sent
            }
            Link::Closed => Err(gone()),
        }
    }

    /// Advance: inline, one loop iteration (jobs, egress, ingress, and at
    /// once what ingress owes that the application cannot answer), then let
    /// time pass if nothing happened and `block` allows (a nap on the
    /// monotonic clock, a step forward on a virtual one); threaded, send
    /// the job batch and take event batches, waiting for one if `block`
    /// allows. Returns whether anything happened.
    pub(crate) fn drive(&self, block: Block) -> io::Result<bool> {
        let mut link = self.inner.link.try_borrow_mut().map_err(|_| busy())?;
        match &mut *link {
            Link::Inline(stack) => {
                let (mut jobs, mut keys) = {
                    let mut st = self.state()?;
                    (std::mem::take(&mut st.jobs), std::mem::take(&mut st.keys))
                };
                let had_jobs = !jobs.is_empty();
                stack.apply(&mut jobs, &mut keys);
                stack.egress();
                let events = stack.ingress(&mut keys);
                self.inner.last_now.set(stack.iteration_ns());
                let progress = had_jobs || events || !keys.is_empty();
                if let (Block::Until(deadline), false) = (block, progress) {
                    stack.idle(deadline);
                }
                drop(link);
                let mut st = self.state()?;
                st.dispatch(&keys);
                keys.clear();
                st.keys = keys;
                st.jobs = jobs;
                let woken = self.inner.wake.take_any();
                if woken {
                    st.dispatch_wakers();
                }
                Ok(progress || woken)
            }
            Link::Threaded { jobs: tx, events } => {
                let had_jobs = {
                    let mut st = self.state()?;
                    let had = !st.jobs.is_empty();
                    tx.send(&mut st.jobs).map_err(|_| gone())?;
                    had
                };
                let wake = &self.inner.wake;
                // A wake already signalled is not waited for.
                let early = wake.take_any();
                if early {
                    self.state()?.dispatch_wakers();
                }
                let block = if early { Block::No } else { block };
                let first = match block {
                    Block::No => events.try_recv().map(Some),
                    Block::Until(None) => events.recv_or_wake(wake.receiver(), None),
                    Block::Until(Some(d)) => {
                        let left = d.saturating_sub(self.inner.epoch.elapsed().as_nanos() as u64);
                        events.recv_or_wake(wake.receiver(), Some(Duration::from_nanos(left)))
                    }
                };
                let mut st = self.state()?;
                let woken = wake.take_any() || early;
                if woken {
                    st.dispatch_wakers();
                }
                match first {
                    Ok(Some(batch)) => {
                        st.dispatch(&batch);
                        events.recycle(batch);
                    }
                    Ok(None) => {}
                    Err(true) => return Err(gone()),
                    Err(false) => return Ok(had_jobs || woken),
                }
                while let Ok(batch) = events.try_recv() {
                    st.dispatch(&batch);
                    events.recycle(batch);
                }
                Ok(true)
            }
            Link::Closed => Err(gone()),
        }
    }

    /// Wait for progress on behalf of a blocking call; fails once stopped.
    pub(crate) fn block_once(&self) -> io::Result<()> {
        if self.is_stopped() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "runtime is stopping"));
        }
        self.drive(Block::Until(None)).map(|_| ())
    }

    /// Close every socket (streams with FIN after their data, listeners
    /// resetting their unaccepted connections) and let the stack finish, for
    /// up to `linger` when inline. Threaded, the stack thread lingers after
    /// the job channel closes. Afterwards every handle reports `NotConnected`.
    pub(crate) fn finish(&self, linger: Duration) {
        self.close_all();
        let inline = matches!(&*self.inner.link.borrow(), Link::Inline(_));
        if inline {
            let deadline = self.now_ns().saturating_add(linger.as_nanos() as u64);
            loop {
                if self.drive(Block::Until(Some(deadline))).is_err() {
                    break;
                }
                if !self.stack_busy() || self.now_ns() >= deadline {
                    break;
                }
            }
        } else {
            let _ = self.flush_jobs();
        }
        self.close_link();
    }

    /// Lets go of the stack (inline: the engine is dropped): every handle
    /// reports `NotConnected` from now on. The last step of stopping, after
    /// [`close_all`](Self::close_all) and a linger.
    pub fn close_link(&self) {
        if let Ok(mut link) = self.inner.link.try_borrow_mut() {
            *link = Link::Closed;
        }
    }

    /// Queue the close of every socket (streams with FIN after their data,
    /// or RST with unread data; listeners resetting what they had not
    /// accepted), as the first step of stopping; the stack carries the
    /// closes out when it next runs.
    pub fn close_all(&self) {
        let Ok(mut st) = self.state() else { return };
        let mut jobs = Vec::new();
        for key in st.socks.keys() {
            if let Some(kind) = st.remove_sock(key) {
                match kind {
                    SockKind::Stream { conn, buf } => {
                        let mut b = buf.lock();
                        if !b.app_closed {
                            b.app_closed = true;
                            let unread = !b.rx.is_empty();
                            jobs.push(if unread { Job::Abort { conn } } else { Job::Close { conn } });
                        }
                    }
                    SockKind::Listener { id, shared } => {
                        shared.close();
                        jobs.push(Job::CloseListener { listener: id });
                    }
                    SockKind::Udp { id, buf } => {
                        let mut b = buf.lock();
                        if !b.app_closed {
                            b.app_closed = true;
                            jobs.push(Job::UdpClose { id });
                        }
                    }
                    // Nothing of the stack's: its handles wake nothing now.
                    SockKind::Waker { .. } => {}
                }
            }
        }
        st.jobs.append(&mut jobs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoll::{Interest, Token, Trigger};

    /// A removed socket's registration list (emptied) serves the next
    /// socket, so a new connection per transaction allocates none.
    #[test]
    fn a_removed_sockets_registration_list_serves_the_next_socket() {
        let mut st = CtxState::default();
        let stream = || SockKind::Stream {
            conn: ConnId { index: 0, generation: 0 },
            buf: ConnRef::new(true, ConnBuf::new(64, 64)),
        };
        let ep = st.epolls.insert(EpollState::default()).unwrap();
        let key = st.insert_sock(stream()).unwrap();
        let reg = Reg::new(ep, 0, Token(7), Interest::READABLE, Trigger::EDGE);
        st.socks.get_mut(key).unwrap().regs.push(reg);
        let list = st.socks.get(key).unwrap().regs.as_ptr();
        assert!(matches!(st.remove_sock(key), Some(SockKind::Stream { .. })));
        assert!(st.socks.get(key).is_none());
        assert_eq!(st.remove_sock(key).map(|_| ()), None, "removed once");
        let next = st.insert_sock(stream()).unwrap();
        let regs = &st.socks.get(next).unwrap().regs;
        assert!(regs.is_empty(), "the kept list comes back empty");
        assert_eq!(regs.as_ptr(), list, "and is the removed socket's");
    }

    /// Inline, a read takes bytes straight from the engine; when it cannot
    /// reach the stack (the context is in use), it says `WouldBlock`, and
    /// the stack side moves the bytes into the stream's buffer at its next
    /// iteration and reports the socket again, so an edge-triggered reader
    /// loses nothing.
    #[test]
    fn a_read_that_cannot_reach_the_stack_gets_its_bytes_at_the_next_event() {
        use crate::{Epoll, Events, TcpListener, TcpStream, testing::TestNet};
        use std::io::Read;
        use std::io::Write;
        let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
        let addr = "10.0.0.1:7".parse().unwrap();
        let listener = TcpListener::bind(&ctx, addr).unwrap();
        listener.set_nonblocking(false);
        let client = TcpStream::connect(&ctx, addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let ep = Epoll::new(&ctx).unwrap();
        ep.add(&server, Token(1), Interest::READABLE, Trigger::EDGE).unwrap();
        (&client).write_all(b"hello").unwrap();
        let mut events = Events::with_capacity(4);
        let mut wait_readable = || {
            for _ in 0..1000 {
                ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
                if events.iter().any(|e| e.token() == Token(1) && e.is_readable()) {
                    return;
                }
            }
            panic!("no readable event");
        };
        wait_readable();
        assert!(server.buf.lock().engine_unread, "inline: the bytes wait in the engine");
        let mut buf = [0u8; 16];
        {
            let _in_use = ctx.inner.link.borrow_mut();
            let e = (&server).read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert!(server.buf.lock().pull_asked);
        }
        wait_readable();
        let b = server.buf.lock();
        assert_eq!((b.rx.len(), b.engine_unread, b.pull_asked), (5, false, false), "moved into the stream's buffer");
        drop(b);
        assert_eq!((&server).read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!((&server).read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // A peek looks at the stream's buffer: unable to fill it from the
        // engine now, it finds nothing, and the next sync fills it.
        (&client).write_all(b"again").unwrap();
        wait_readable();
        {
            let _in_use = ctx.inner.link.borrow_mut();
            assert_eq!(server.peek(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        }
        wait_readable();
        assert_eq!(server.peek(&mut buf).unwrap(), 5);
        assert_eq!((&server).read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"again");
    }
}
