//! The runtime entry point over the real stack: a [`Host`] is a NIC, one
//! stack core per queue pair and one sockapi [`Context`] per core, in
//! either [`Mode`]; [`LinkedHosts`] is two of them in one process over two
//! 82599 models joined by an in-memory link (for tests, examples and the
//! benchmark).
//!
//! ```
//! use ixtcp_sockapi::host::{HostConfig, LinkedHosts};
//! use ixtcp_sockapi::{Mode, TcpListener, TcpStream};
//! use ixtcp_stack::StackConfig;
//! use std::io::{Read, Write};
//!
//! let server = HostConfig::model(StackConfig::new([10, 0, 0, 1].into(), 24), Mode::Inline);
//! let client = HostConfig::model(StackConfig::new([10, 0, 0, 2].into(), 24), Mode::Inline);
//! let hosts = LinkedHosts::start(server, client)?;
//! let (served, replies) = hosts.run(
//!     |ctx| {
//!         let l = TcpListener::bind(ctx, "10.0.0.1:7".parse().unwrap())?;
//!         l.set_nonblocking(false);
//!         let (mut s, _) = l.accept()?;
//!         s.set_nonblocking(false);
//!         let mut buf = [0; 5];
//!         s.read_exact(&mut buf)?;
//!         s.write_all(&buf)?;
//!         Ok::<_, std::io::Error>(buf)
//!     },
//!     |ctx| {
//!         // The server may not listen yet: retry while refused.
//!         let mut c = loop {
//!             let mut c = TcpStream::connect(ctx, "10.0.0.1:7".parse().unwrap())?;
//!             c.set_nonblocking(false);
//!             match c.write_all(b"hello") {
//!                 Ok(()) => break c,
//!                 Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
//!                 Err(e) => return Err(e),
//!             }
//!         };
//!         let mut buf = [0; 5];
//!         c.read_exact(&mut buf)?;
//!         Ok::<_, std::io::Error>(buf)
//!     },
//! )?;
//! assert_eq!(&served[0].as_ref().unwrap(), &b"hello");
//! assert_eq!(&replies[0].as_ref().unwrap(), &b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Stopping: [`Host::run`] returns when every core's application has
//! returned; each core then closes what its application left open (FIN
//! after the data), lets the stack finish for up to the linger time, and
//! the device is stopped (receive off, queues disabled) before `run`
//! returns. [`LinkedHosts::run`] asks the server to stop once the client's
//! applications have all returned.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::model::Model82599;
use ixtcp_driver::time::{Clock, MonotonicClock, VirtualClock};
use ixtcp_driver::wire::link::FCS_LEN;
use ixtcp_driver::wire::{Link, LinkConfig, Wire};
use ixtcp_stack::{CoreStats, StackConfig, StatsMirror};

use crate::context::{Context, StopHandle};
use crate::nic::{Nic, NicDevice, NicQueue, OpenOptions};
use crate::runtime::{Mode, Runtime};
use crate::stack::StackEngine;

/// Everything a [`Host`] is started from.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The stack: address, cores (= queue pairs), rings, buffers, timers.
    pub stack: StackConfig,
    /// Which NIC.
    pub nic: Nic,
    /// Threaded or inline.
    pub mode: Mode,
    /// How long each core keeps its stack running after its application
    /// returned, so closed connections can finish.
    pub linger: Duration,
    /// What the engines' `idle_wait` says: `None` (poll without pause, right
    /// for hardware) or a short nap when an iteration found nothing, which
    /// leaves CPU to the other threads on a small machine running models.
    pub idle_wait: Option<Duration>,
    /// Seed for deterministic tests; `None` in production (randomness, the
    /// initial sequence numbers first, from the OS).
    pub seed: Option<u64>,
    /// Publish counters every this many iterations (1: always current).
    pub stats_every: u32,
    /// Device bring-up details (sysfs root, link timeout, model MAC).
    pub open: OpenOptions,
    /// The clock the host runs on.
    pub time: TimeSource,
}

/// The clock a host's stack cores, its model and its link run on.
#[derive(Debug, Clone, Default)]
pub enum TimeSource {
    /// The OS monotonic clock (production, benchmarks, programs).
    #[default]
    Monotonic,
    /// A virtual clock that moves only when a runtime with nothing to do
    /// moves it (to the next timer) or a test moves it: a simulation that
    /// replays exactly and never waits in real time. Meant for one thread
    /// driving everything ([`LinkedHosts::stepped`], or one inline core);
    /// with several threads each idle one moves the shared time.
    Virtual(VirtualClock),
}

impl TimeSource {
    fn clock(&self) -> Arc<dyn Clock> {
        match self {
            TimeSource::Monotonic => Arc::new(MonotonicClock::new()),
            TimeSource::Virtual(c) => Arc::new(c.clone()),
        }
    }
}

impl HostConfig {
    /// `stack` on `nic` in `mode`, one second of linger, no idle nap.
    pub fn new(stack: StackConfig, nic: Nic, mode: Mode) -> HostConfig {
        HostConfig {
            stack,
            nic,
            mode,
            linger: Duration::from_secs(1),
            idle_wait: None,
            seed: None,
            stats_every: 256,
            open: OpenOptions { link_timeout: Duration::from_secs(10), ..OpenOptions::default() },
            time: TimeSource::Monotonic,
        }
    }

    /// `stack` on an 82599 model in `mode`, with a 50 µs idle nap (models
    /// usually share a few CPUs with their peer).
    pub fn model(stack: StackConfig, mode: Mode) -> HostConfig {
        HostConfig { idle_wait: Some(Duration::from_micros(50)), ..HostConfig::new(stack, Nic::Model, mode) }
    }
}

/// Live counters of a host's cores, readable from any thread while the
/// host runs (each core publishes every `stats_every` iterations and when
/// it stops). Cheap to clone.
#[derive(Debug, Clone)]
pub struct HostStats {
    mirrors: Vec<Arc<StatsMirror>>,
}

impl HostStats {
    /// The counters of each core, in core order.
    pub fn per_core(&self) -> Vec<CoreStats> {
        self.mirrors.iter().map(|m| m.load()).collect()
    }

    /// The sum over the cores.
    pub fn total(&self) -> CoreStats {
        let mut t = CoreStats::default();
        for m in &self.mirrors {
            t.add(&m.load());
        }
        t
    }
}

/// A NIC, its stack cores and their sockapi runtime, ready to run an
/// application on every core. See the module docs.
pub struct Host {
    runtime: Runtime<StackEngine<NicQueue>>,
    stats: HostStats,
    ip: Ipv4Addr,
    device: NicDevice,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("ip", &self.ip).field("cores", &self.runtime.cores()).finish()
    }
}

impl Host {
    /// Brings up `cfg.nic` (a model's port stays unplugged: use
    /// [`start_on_wire`](Self::start_on_wire) or [`LinkedHosts`]) and builds
    /// one stack core per queue pair.
    pub fn start(cfg: HostConfig) -> io::Result<Host> {
        let clock = cfg.time.clock();
        Host::start_inner(cfg, None, clock)
    }

    /// Like [`start`](Self::start), with a model's port plugged into `wire`
    /// (ignored for other NICs, which bring their own).
    pub fn start_on_wire(cfg: HostConfig, wire: Box<dyn Wire>) -> io::Result<Host> {
        let clock = cfg.time.clock();
        Host::start_inner(cfg, Some(wire), clock)
    }

    fn start_inner(cfg: HostConfig, wire: Option<Box<dyn Wire>>, clock: Arc<dyn Clock>) -> io::Result<Host> {
        let (mode, linger) = (cfg.mode, cfg.linger);
        let parts = HostParts::build(cfg, wire, clock)?;
        let mut engines: Vec<Option<StackEngine<NicQueue>>> = parts.engines.into_iter().map(Some).collect();
        let runtime = Runtime::builder().mode(mode).linger(linger).build(engines.len(), |i| {
            engines.get_mut(i).and_then(Option::take).ok_or_else(|| io::Error::other("one engine per core"))
        })?;
        Ok(Host { runtime, stats: parts.stats, ip: parts.ip, device: parts.device })
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.runtime.cores()
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The runtime's mode.
    pub fn mode(&self) -> Mode {
        self.runtime.mode()
    }

    /// Live per-core counters (keep a clone to read them while `run` runs).
    pub fn stats(&self) -> HostStats {
        self.stats.clone()
    }

    /// Stops the running applications from anywhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.runtime.stop_handle()
    }

    /// The model behind the NIC, if it is one (its faults, for tests).
    pub fn model(&self) -> Option<Model82599> {
        self.device.model().cloned()
    }

    /// Runs `app` once per core with that core's [`Context`] and returns the
    /// results in core order; then closes what was left open, lingers, and
    /// stops the device. See [`Runtime::run`].
    pub fn run<R, F>(self, app: F) -> io::Result<Vec<R>>
    where
        R: Send,
        F: Fn(&Context) -> R + Sync,
    {
        let Host { runtime, device, .. } = self;
        let out = runtime.run(app);
        device.shutdown();
        drop(device);
        out
    }
}

/// What a host is made of before a runtime runs it.
struct HostParts {
    engines: Vec<StackEngine<NicQueue>>,
    stats: HostStats,
    ip: Ipv4Addr,
    device: NicDevice,
}

impl HostParts {
    /// Opens the NIC and builds one engine per queue pair on `clock` (the
    /// virtual clock of `cfg.time` when it is one).
    fn build(cfg: HostConfig, wire: Option<Box<dyn Wire>>, clock: Arc<dyn Clock>) -> io::Result<HostParts> {
        let stack = Arc::new(cfg.stack);
        stack.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut device = NicDevice::open_with(&cfg.nic, &stack, wire, &cfg.open)?;
        let queues = device.take_queues();
        let cores = ixtcp_stack::runtime::build_cores(
            Arc::clone(&stack),
            device.mac(),
            device.rss(),
            queues,
            clock.now_ns(),
            cfg.seed,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        let mut mirrors = Vec::with_capacity(cores.len());
        let engines = cores
            .into_iter()
            .map(|core| {
                let mirror = Arc::new(StatsMirror::default());
                mirrors.push(Arc::clone(&mirror));
                let engine = match &cfg.time {
                    TimeSource::Virtual(vc) => StackEngine::on_virtual_clock(core, vc.clone()),
                    TimeSource::Monotonic => StackEngine::new(core, Arc::clone(&clock)),
                };
                engine.with_stats(mirror, cfg.stats_every).with_idle_wait(cfg.idle_wait)
            })
            .collect();
        Ok(HostParts { engines, stats: HostStats { mirrors }, ip: stack.ip, device })
    }
}

/// Two hosts in one process: two 82599 models (the real driver on each)
/// joined by an in-memory [`Link`], each with its stack cores and runtime.
#[derive(Debug)]
pub struct LinkedHosts {
    /// The host that usually listens.
    pub server: Host,
    /// The host that usually connects.
    pub client: Host,
}

impl LinkedHosts {
    /// Starts both hosts over an unlimited, loss-free link. Their NICs must
    /// be [`Nic::Model`]; their models get the MACs 02:00:00:00:00:01 and
    /// …:02 (a configured `stack.mac` still wins).
    pub fn start(server: HostConfig, client: HostConfig) -> io::Result<LinkedHosts> {
        LinkedHosts::start_with_link(server, client, LinkConfig::unlimited())
    }

    /// Like [`start`](Self::start), over a link configured by `link` (line
    /// rate, latency, seeded impairments). Here and in
    /// [`stepped`](Self::stepped) the link's `max_frame` is raised, if
    /// need be, to carry the hosts' largest frame (their `mtu` + 14).
    pub fn start_with_link(
        mut server: HostConfig,
        mut client: HostConfig,
        link: LinkConfig,
    ) -> io::Result<LinkedHosts> {
        let (clock, a, b) = link_up(&mut server, &mut client, link)?;
        let server = Host::start_inner(server, Some(Box::new(a)), Arc::clone(&clock))?;
        let client = Host::start_inner(client, Some(Box::new(b)), clock)?;
        Ok(LinkedHosts { server, client })
    }

    /// Both hosts over `link` on a virtual clock, their contexts on the
    /// calling thread, driven step by step by the caller: see [`Stepped`].
    /// The runtimes' `mode` is ignored (this is the inline runtime, run by
    /// hand); `server.time`, if virtual, gives the clock (else a new one).
    pub fn stepped(mut server: HostConfig, mut client: HostConfig, link: LinkConfig) -> io::Result<Stepped> {
        let clock = match &server.time {
            TimeSource::Virtual(c) => c.clone(),
            TimeSource::Monotonic => VirtualClock::new(),
        };
        server.time = TimeSource::Virtual(clock.clone());
        let linger = server.linger.max(client.linger);
        let (shared, a, b) = link_up(&mut server, &mut client, link)?;
        let s = HostParts::build(server, Some(Box::new(a)), Arc::clone(&shared))?;
        let c = HostParts::build(client, Some(Box::new(b)), shared)?;
        let stop = StopHandle::default();
        let contexts = |engines: Vec<StackEngine<NicQueue>>| -> Vec<Context> {
            engines.into_iter().enumerate().map(|(i, e)| Context::inline_core(i, e, stop.clone())).collect()
        };
        Ok(Stepped {
            server: contexts(s.engines),
            client: contexts(c.engines),
            clock,
            linger,
            stats: (s.stats, c.stats),
            devices: vec![s.device, c.device],
        })
    }

    /// Runs `server_app` on every server core and `client_app` on every
    /// client core, each host on its own threads; when all client
    /// applications have returned, the server is asked to stop
    /// ([`Context::is_stopped`], and `Epoll::wait` returns at once). Returns
    /// both hosts' results in core order.
    pub fn run<R1, R2, F1, F2>(self, server_app: F1, client_app: F2) -> io::Result<(Vec<R1>, Vec<R2>)>
    where
        R1: Send,
        R2: Send,
        F1: Fn(&Context) -> R1 + Send + Sync,
        F2: Fn(&Context) -> R2 + Sync,
    {
        let LinkedHosts { server, client } = self;
        let stop = server.stop_handle();
        std::thread::scope(|s| {
            let srv = s.spawn(|| server.run(server_app));
            let cli = client.run(client_app);
            stop.stop();
            let srv = srv.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok((srv?, cli?))
        })
    }
}

/// Checks that both hosts can be linked, gives them their MACs and one
/// clock (the server's), and makes the link.
fn link_up(
    server: &mut HostConfig,
    client: &mut HostConfig,
    link: LinkConfig,
) -> io::Result<(Arc<dyn Clock>, ixtcp_driver::wire::LinkEnd, ixtcp_driver::wire::LinkEnd)> {
    if server.nic != Nic::Model || client.nic != Nic::Model {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "linked hosts run on models (Nic::Model)"));
    }
    // One link, one clock: both hosts run on the server's.
    client.time = server.time.clone();
    let clock = server.time.clock();
    // The cable carries the hosts' largest frame (jumbo frames with an
    // `mtu` above 1500): the limit on frame size is the NICs' (MAXFRS).
    let mut link = link;
    let largest = server.stack.max_frame_size().max(client.stack.max_frame_size()) as usize - FCS_LEN;
    link.max_frame = link.max_frame.max(largest);
    let (a, b) = Link::pair(link, Arc::clone(&clock));
    server.open.model_mac = [2, 0, 0, 0, 0, 1];
    client.open.model_mac = [2, 0, 0, 0, 0, 2];
    Ok((clock, a, b))
}

/// Two linked hosts on a virtual clock, with every core's inline
/// [`Context`] on the calling thread: a deterministic simulation that the
/// test drives step by step, so nothing in it depends on how fast the
/// machine is or on which thread the OS runs when.
///
/// Each [`step`](Self::step) runs one iteration of every context's stack
/// (or of the ones given); when none had anything to do, time moves to the
/// earliest next timer (at most 1 ms ahead). Application code on these
/// contexts is non-blocking: sockets stay in their default non-blocking
/// mode, and [`Epoll::wait`](crate::Epoll::wait) is called with a zero
/// timeout (a wait with a timeout moves the shared time by itself).
///
/// ```
/// use ixtcp_driver::wire::LinkConfig;
/// use ixtcp_sockapi::host::{HostConfig, LinkedHosts};
/// use ixtcp_sockapi::{Mode, TcpListener, TcpStream};
/// use ixtcp_stack::StackConfig;
/// use std::time::Duration;
///
/// let cfg = |ip: [u8; 4]| HostConfig::model(StackConfig::new(ip.into(), 24), Mode::Inline);
/// let sim = LinkedHosts::stepped(cfg([10, 0, 0, 1]), cfg([10, 0, 0, 2]), LinkConfig::unlimited())?;
/// let listener = TcpListener::bind(sim.server(0), "10.0.0.1:7".parse().unwrap())?;
/// let client = TcpStream::connect(sim.client(0), "10.0.0.1:7".parse().unwrap())?;
/// let mut accepted = None;
/// sim.run_until(Duration::from_secs(5), "accept", || {
///     accepted = listener.accept().ok();
///     accepted.is_some()
/// })?;
/// assert!(client.peer_addr().is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Stepped {
    server: Vec<Context>,
    client: Vec<Context>,
    clock: VirtualClock,
    linger: Duration,
    stats: (HostStats, HostStats),
    devices: Vec<NicDevice>,
}

impl std::fmt::Debug for Stepped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepped")
            .field("server_cores", &self.server.len())
            .field("client_cores", &self.client.len())
            .field("now", &self.now())
            .finish()
    }
}

/// The longest move of the clock in one idle step (see [`Stepped`]).
const STEP_MAX: Duration = Duration::from_millis(1);

impl Stepped {
    /// The server host's context of core `core` (panics if there is none).
    pub fn server(&self, core: usize) -> &Context {
        &self.server[core]
    }

    /// The client host's context of core `core` (panics if there is none).
    pub fn client(&self, core: usize) -> &Context {
        &self.client[core]
    }

    /// Every server context, in core order.
    pub fn servers(&self) -> &[Context] {
        &self.server
    }

    /// Every client context, in core order.
    pub fn clients(&self) -> &[Context] {
        &self.client
    }

    /// The shared virtual clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Virtual time since the simulation started.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.clock.now_ns())
    }

    /// Live counters of the server host and of the client host.
    pub fn stats(&self) -> (HostStats, HostStats) {
        self.stats.clone()
    }

    /// The models behind the server's and the client's NIC.
    pub fn models(&self) -> Vec<Model82599> {
        self.devices.iter().filter_map(|d| d.model().cloned()).collect()
    }

    fn all(&self) -> Vec<&Context> {
        self.server.iter().chain(&self.client).collect()
    }

    /// One iteration of every context's stack; true if any had something
    /// to do.
    pub fn step(&self) -> io::Result<bool> {
        self.step_these(&self.all())
    }

    /// One iteration of the given contexts only (the others' applications
    /// are, say, busy elsewhere); true if any had something to do.
    pub fn step_these(&self, contexts: &[&Context]) -> io::Result<bool> {
        let mut progress = false;
        for c in contexts {
            progress |= c.step()?;
        }
        Ok(progress)
    }

    /// Moves time to the earliest next timer of `contexts` (at least 1 µs,
    /// at most 1 ms ahead).
    pub fn idle(&self, contexts: &[&Context]) {
        let now = self.clock.now_ns();
        let wake = contexts.iter().filter_map(|c| c.next_wakeup_ns()).min();
        let to = wake.unwrap_or(u64::MAX).min(now.saturating_add(STEP_MAX.as_nanos() as u64));
        self.clock.advance_to(to.max(now.saturating_add(1_000)));
    }

    /// Steps every context until `cond` holds, moving time when nothing
    /// happens; `TimedOut` naming `what` if `limit` of virtual time passes
    /// first.
    pub fn run_until(&self, limit: Duration, what: &str, cond: impl FnMut() -> bool) -> io::Result<()> {
        self.run_these_until(&self.all(), limit, what, cond)
    }

    /// Like [`run_until`](Self::run_until), stepping only `contexts`.
    pub fn run_these_until(
        &self,
        contexts: &[&Context],
        limit: Duration,
        what: &str,
        mut cond: impl FnMut() -> bool,
    ) -> io::Result<()> {
        let start = self.now();
        loop {
            if cond() {
                return Ok(());
            }
            if self.now() - start > limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: still not so after {limit:?} of virtual time (now at {:?})", self.now()),
                ));
            }
            if !self.step_these(contexts)? {
                self.idle(contexts);
            }
        }
    }

    /// Steps every context for `d` of virtual time.
    pub fn run_for(&self, d: Duration) -> io::Result<()> {
        let end = self.now() + d;
        self.run_until(d + STEP_MAX, "run_for", || self.now() >= end)
    }
}

/// Stopping, as [`Host::run`] does at its end: every socket is closed, the
/// stacks run (on the virtual clock) until their connections are done or
/// the longer linger of the two hosts has passed, and the devices stop.
impl Drop for Stepped {
    fn drop(&mut self) {
        let all = self.all();
        for c in &all {
            c.close_all();
        }
        let limit = self.linger;
        let _ = self.run_until(limit, "linger", || all.iter().all(|c| !c.stack_busy()));
        for c in &all {
            c.close_link();
        }
        for d in &self.devices {
            d.shutdown();
        }
    }
}
