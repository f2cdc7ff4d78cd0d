//! The runtimes: start one application context per core over engines the
//! caller supplies, run the application, stop cleanly.
//!
//! - [`Mode::Threaded`] (mTCP's model): per core a stack thread that owns the
//!   engine and loops (ingress → jobs → one event batch to the app → egress),
//!   and an application thread that blocks in [`Epoll::wait`](crate::Epoll::wait).
//!   Jobs go to the stack and events come back as one `Vec` per loop
//!   iteration over crossbeam channels, so the application is woken at most
//!   once per stack iteration, not per event.
//! - [`Mode::Inline`] (run to completion): per core one thread; the
//!   application's calls queue the same jobs and `Epoll::wait` runs the same
//!   stack code (jobs → egress → ingress) on that thread.

use std::io;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::batch::{self, BatchRx, BatchTx};

use crate::context::{Context, StopHandle};
use crate::engine::Engine;
use crate::job::Job;
use crate::pump::Pump;
use crate::share::Threaded;
use crate::slab::Key;

/// Which runtime to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A stack thread and an application thread per core.
    Threaded,
    /// The application and the stack share one thread per core.
    Inline,
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use ixtcp_sockapi::{Mode, Runtime, testing::TestNet};
/// let net = TestNet::new();
/// let rt = Runtime::builder()
///     .mode(Mode::Inline)
///     .build(2, |core| Ok(net.engine([10, 0, 0, 1].into())))?;
/// assert_eq!(rt.cores(), 2);
/// let cores = rt.run(|ctx| ctx.core())?;
/// assert_eq!(cores, vec![0, 1]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    mode: Mode,
    linger: Duration,
    cpus: Option<Vec<usize>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { mode: Mode::Threaded, linger: Duration::from_secs(1), cpus: None }
    }
}

impl Builder {
    /// Threaded, with a one-second linger, not pinned.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Choose the runtime.
    pub fn mode(mut self, mode: Mode) -> Builder {
        self.mode = mode;
        self
    }

    /// How long a core keeps running its stack after its application
    /// returned, so that closed connections finish sending and exchange
    /// FINs. The core stops earlier once the engine holds no connection.
    pub fn linger(mut self, linger: Duration) -> Builder {
        self.linger = linger;
        self
    }

    /// Pin core `i`'s threads to CPU `cpus[i]`: threaded, its stack thread
    /// and its application thread both (as mTCP pins an application thread
    /// with its stack thread, so they share a cache); inline, its one
    /// thread. [`build`](Self::build) refuses (`InvalidInput`) an empty list,
    /// fewer CPUs than cores, and a CPU this process may not run on.
    /// Unpinned by default: the OS places the threads.
    ///
    /// ```
    /// use ixtcp_sockapi::{Mode, Runtime, testing::TestNet};
    /// let net = TestNet::new();
    /// let engine = |_| Ok(net.engine([10, 0, 0, 1].into()));
    /// let rt = Runtime::builder().mode(Mode::Inline).pin([0]).build(1, engine)?;
    /// assert_eq!(rt.run(|ctx| ctx.core())?, vec![0]);
    /// let short = Runtime::builder().pin([0]).build(2, engine);
    /// assert!(short.unwrap_err().to_string().contains("2 cores"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pin(mut self, cpus: impl IntoIterator<Item = usize>) -> Builder {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Make `cores` engines with `factory(core)` (for the real stack: start
    /// the NIC, then build one stack core per queue pair) and return the
    /// runtime, not yet running. `InvalidInput` for zero cores.
    pub fn build<E, F>(self, cores: usize, mut factory: F) -> io::Result<Runtime<E>>
    where
        E: Engine + Send + 'static,
        F: FnMut(usize) -> io::Result<E>,
    {
        if cores == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a runtime needs at least one core"));
        }
        if let Some(cpus) = &self.cpus {
            check_cpus(cpus, cores)?;
        }
        let engines = (0..cores).map(&mut factory).collect::<io::Result<Vec<E>>>()?;
        Ok(Runtime { engines, mode: self.mode, linger: self.linger, cpus: self.cpus, stop: StopHandle::default() })
    }
}

/// Checks a [`Builder::pin`] list against `cores` and the CPUs this thread
/// may run on (its affinity mask: what pinning can be granted).
fn check_cpus(cpus: &[usize], cores: usize) -> io::Result<()> {
    let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if cpus.is_empty() {
        return bad("pin: the CPU list is empty; give one CPU per core, or do not pin".into());
    }
    if cpus.len() < cores {
        return bad(format!("pin: {} CPUs for {cores} cores; give one CPU per core", cpus.len()));
    }
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    if let Some(cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
        return bad(format!("pin: there is no CPU {cpu} this process may run on (it may run on {allowed:?})"));
    }
    Ok(())
}

/// Pins the calling thread to `cpu`, if given. The CPU was checked when the
/// runtime was built; should the OS refuse it now, the thread runs unpinned
/// rather than not at all.
fn pin_here(cpu: Option<usize>) {
    if let Some(id) = cpu {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Engines, one per core, ready to run an application on each.
#[derive(Debug)]
pub struct Runtime<E> {
    engines: Vec<E>,
    mode: Mode,
    linger: Duration,
    cpus: Option<Vec<usize>>,
    stop: StopHandle,
}

impl Runtime<()> {
    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<E: Engine + Send + 'static> Runtime<E> {
    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.engines.len()
    }

    /// The runtime's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A handle to stop the running application from anywhere (another
    /// thread, a signal handler thread, or the application itself).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Run `app` once per core, each on that core's application thread with
    /// that core's [`Context`], and return the results in core order when
    /// all have returned. Then each core closes what its application left
    /// open (listeners first, then streams with FIN after their data), lets
    /// the stack finish for up to the linger time, and its threads end.
    ///
    /// A panic in `app` is re-raised here after every thread was joined.
    pub fn run<R, F>(self, app: F) -> io::Result<Vec<R>>
    where
        R: Send,
        F: Fn(&Context) -> R + Sync,
    {
        let Runtime { engines, mode, linger, cpus, stop } = self;
        let app = &app;
        let joined = std::thread::scope(|s| {
            let mut apps = Vec::new();
            let mut stacks = Vec::new();
            let mut spawn_error = None;
            for (core, engine) in engines.into_iter().enumerate() {
                let app_stop = stop.clone();
                let cpu = cpus.as_ref().and_then(|c| c.get(core).copied());
                let spawned = match mode {
                    Mode::Inline => {
                        std::thread::Builder::new().name(format!("ixtcp-app-{core}")).spawn_scoped(s, move || {
                            pin_here(cpu);
                            let ctx = Context::inline_core(core, engine, app_stop);
                            let r = app(&ctx);
                            ctx.finish(linger);
                            r
                        })
                    }
                    Mode::Threaded => {
                        let (jobs_tx, jobs_rx) = batch::pipe();
                        let (events_tx, events_rx) = batch::pipe();
                        let stack_stop = stop.clone();
                        let stack = std::thread::Builder::new().name(format!("ixtcp-stack-{core}")).spawn_scoped(
                            s,
                            move || {
                                pin_here(cpu);
                                stack_loop(engine, jobs_rx, events_tx, stack_stop, linger)
                            },
                        );
                        match stack {
                            Ok(h) => stacks.push(h),
                            Err(e) => {
                                spawn_error = Some(e);
                                break;
                            }
                        }
                        std::thread::Builder::new().name(format!("ixtcp-app-{core}")).spawn_scoped(s, move || {
                            pin_here(cpu);
                            let ctx = Context::threaded(core, jobs_tx, events_rx, app_stop);
                            let r = app(&ctx);
                            ctx.finish(linger);
                            r
                        })
                    }
                };
                match spawned {
                    Ok(h) => apps.push(h),
                    Err(e) => {
                        spawn_error = Some(e);
                        break;
                    }
                }
            }
            if spawn_error.is_some() {
                stop.stop();
            }
            let results: Vec<_> = apps.into_iter().map(|h| h.join()).collect();
            let stack_results: Vec<_> = stacks.into_iter().map(|h| h.join()).collect();
            (results, stack_results, spawn_error)
        });
        let (results, stack_results, spawn_error) = joined;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(v) => out.push(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for r in stack_results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
        match spawn_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl<E: Engine + Send + 'static> Runtime<E> {
    /// Starts the runtime without running an application: threaded, each
    /// core's stack thread starts now; inline, nothing runs until a core is
    /// attached. The application's own threads then take one core each with
    /// [`Started::attach`] (mTCP's `mtcp_create_context`, called from a
    /// thread the application made), and [`Started::join`] ends it all.
    ///
    /// ```
    /// use ixtcp_sockapi::{Mode, Runtime, testing::TestNet};
    /// let net = TestNet::new();
    /// let rt = Runtime::builder().mode(Mode::Threaded).build(2, |_| Ok(net.engine([10, 0, 0, 1].into())))?;
    /// let started = rt.start()?;
    /// std::thread::scope(|s| {
    ///     for core in 0..2 {
    ///         let started = &started;
    ///         s.spawn(move || {
    ///             let ctx = started.attach(core).expect("attach");
    ///             assert_eq!(ctx.core(), core);
    ///             // Dropping the context finishes the core.
    ///         });
    ///     }
    /// });
    /// started.join()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start(self) -> io::Result<Started<E>> {
        let Runtime { engines, mode, linger, cpus, stop } = self;
        let mut slots = Vec::with_capacity(engines.len());
        let mut stacks = Vec::new();
        for (core, engine) in engines.into_iter().enumerate() {
            let slot = match mode {
                Mode::Inline => Slot::Inline(engine),
                Mode::Threaded => {
                    let (jobs_tx, jobs_rx) = batch::pipe();
                    let (events_tx, events_rx) = batch::pipe();
                    let (stack_stop, cpu) = (stop.clone(), cpus.as_ref().and_then(|c| c.get(core).copied()));
                    let spawned = std::thread::Builder::new().name(format!("ixtcp-stack-{core}")).spawn(move || {
                        pin_here(cpu);
                        stack_loop(engine, jobs_rx, events_tx, stack_stop, linger)
                    });
                    match spawned {
                        Ok(h) => stacks.push(h),
                        Err(e) => {
                            // The threads already started end when their
                            // job channels close, with the slots dropped here.
                            stop.stop();
                            return Err(e);
                        }
                    }
                    Slot::Threaded { jobs: jobs_tx, events: events_rx }
                }
            };
            slots.push(Some(slot));
        }
        Ok(Started { slots: Mutex::new(slots), stacks, linger, cpus, stop })
    }
}

/// What a core's context is made from when it is attached.
enum Slot<E> {
    Inline(E),
    Threaded { jobs: BatchTx<Job>, events: BatchRx<Key> },
}

/// A started runtime whose cores the application's own threads attach to,
/// one context per core ([`Runtime::start`]). `Sync`: share it by
/// reference (or in an `Arc`) with those threads.
pub struct Started<E> {
    slots: Mutex<Vec<Option<Slot<E>>>>,
    stacks: Vec<JoinHandle<()>>,
    linger: Duration,
    cpus: Option<Vec<usize>>,
    stop: StopHandle,
}

impl<E> std::fmt::Debug for Started<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("stack_threads", &self.stacks.len()).finish()
    }
}

impl<E: Engine + Send + 'static> Started<E> {
    /// Core `core`'s context, on the calling thread (which is pinned to the
    /// core's CPU if the runtime pins). Threaded, it talks to the core's
    /// stack thread; inline, the core's stack runs on this thread from now
    /// on. Dropping the context finishes the core as [`Runtime::run`] does
    /// when an application returns: what it left open is closed, and the
    /// stack lingers. `InvalidInput` for a core the runtime does not have;
    /// `AlreadyExists` if the core was attached before.
    pub fn attach(&self, core: usize) -> io::Result<Attached> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let cores = slots.len();
            let entry = slots.get_mut(core).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("attach: core {core} of a runtime with {cores} cores"),
                )
            })?;
            entry.take().ok_or_else(|| {
                io::Error::new(io::ErrorKind::AlreadyExists, format!("attach: core {core} already has a context"))
            })?
        };
        pin_here(self.cpus.as_ref().and_then(|c| c.get(core).copied()));
        let ctx = match slot {
            Slot::Inline(engine) => Context::inline_core(core, engine, self.stop.clone()),
            Slot::Threaded { jobs, events } => Context::threaded(core, jobs, events, self.stop.clone()),
        };
        Ok(Attached { ctx, linger: self.linger })
    }

    /// Asks every core to stop (as [`Runtime::stop_handle`]).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Ends the runtime: cores never attached are let go, and each stack
    /// thread is waited for (it ends once its context is dropped and its
    /// linger is over). Call it after every attached context was dropped;
    /// a panic on a stack thread is raised again here.
    pub fn join(self) -> io::Result<()> {
        let Started { slots, stacks, .. } = self;
        drop(slots);
        for h in stacks {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Ok(())
    }
}

/// A core's context taken with [`Started::attach`]; derefs to the
/// [`Context`]. Dropping it finishes the core.
pub struct Attached {
    ctx: Context,
    linger: Duration,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ctx.fmt(f)
    }
}

impl std::ops::Deref for Attached {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.ctx.finish(self.linger);
    }
}

/// Iterations a `Context::quiesce` waits at most for an idle one.
const QUIESCE_BOUND: u32 = 100_000;

/// The stack thread of the threaded runtime.
fn stack_loop<E: Engine>(engine: E, jobs: BatchRx<Job>, events: BatchTx<Key>, stop: StopHandle, linger: Duration) {
    let mut side = Pump::<_, Threaded>::new(engine);
    let mut out: Vec<Key> = Vec::new();
    let mut pending: Option<Vec<Job>> = None;
    let mut open = true;
    let mut stop_forwarded = false;
    let mut linger_until: Option<u64> = None;
    let mut quiet_wait = 0u32;
    loop {
        let mut progress = side.ingress(&mut out);
        if let Some(mut batch) = pending.take() {
            progress = true;
            side.apply(&mut batch, &mut out);
            jobs.recycle(batch);
        }
        while open {
            match jobs.try_recv() {
                Ok(mut batch) => {
                    progress = true;
                    side.apply(&mut batch, &mut out);
                    jobs.recycle(batch);
                }
                Err(false) => break,
                Err(true) => open = false,
            }
        }
        // One batch of events per iteration; an empty one wakes the app to
        // see the stop request.
        let wake = stop.is_stopped() && !stop_forwarded;
        if !out.is_empty() || wake {
            stop_forwarded |= wake;
            // A send error means the app is gone; the stack still finishes.
            let sent = if out.is_empty() { events.send_empty() } else { events.send(&mut out) };
            if sent.is_err() {
                out.clear();
            }
        }
        side.egress();
        if side.quiesce_pending() {
            // The batch that asked is progress; a later idle iteration
            // answers (a stack that never idles answers after a bound).
            quiet_wait += 1;
            if !progress || quiet_wait > QUIESCE_BOUND {
                side.answer_quiesce();
                quiet_wait = 0;
            }
        }
        if !open {
            // On the engine's clock, which a simulation moves itself.
            let until = *linger_until.get_or_insert_with(|| side.now_ns().saturating_add(linger.as_nanos() as u64));
            if !side.busy() || side.now_ns() >= until {
                return;
            }
        }
        if !progress {
            if side.is_virtual() {
                // Nothing to wait for in real time: move the clock on.
                side.idle(None);
            } else if let Some(idle) = side.idle_wait() {
                if open {
                    match jobs.recv_timeout(idle) {
                        Ok(batch) => pending = Some(batch),
                        Err(false) => {}
                        Err(true) => open = false,
                    }
                } else {
                    std::thread::sleep(idle);
                }
            }
        }
    }
}
