//! One host: a NIC brought up by [`NicDevice`], one stack core per queue
//! pair, and sockapi's [`Runtime`] running one [`Context`] per core.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::mempool::Mempool;
use ixtcp_driver::model::Model82599;
use ixtcp_driver::time::{Clock, MonotonicClock, VirtualClock};
use ixtcp_driver::wire::Wire;
use ixtcp_stack::{CoreStats, StackConfig, StatsMirror};

use ixtcp_sockapi::StackEngine;
use ixtcp_sockapi::{Attached, Context, Mode, Runtime, Started, StopHandle};

use crate::nic::{Nic, NicDevice, NicQueue, OpenOptions};

/// Everything a [`Host`] is started from.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The stack: address, cores (= queue pairs) and the CPUs they are
    /// pinned to (`cpus`), rings, buffers, timers.
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
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
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
    pools: Vec<Arc<Mempool>>,
}

impl HostStats {
    /// The counters of each core, in core order.
    pub fn per_core(&self) -> Vec<CoreStats> {
        self.mirrors.iter().map(|m| m.load()).collect()
    }

    /// Each core's packet buffers, in core order: (free, capacity) of its
    /// queue pair's pool. Once [`Host::run`] returned, free is capacity:
    /// the rings, the stack and the application let every buffer go.
    pub fn buffers(&self) -> Vec<(usize, usize)> {
        self.pools.iter().map(|p| (p.free_count(), p.capacity() as usize)).collect()
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

    pub(crate) fn start_inner(cfg: HostConfig, wire: Option<Box<dyn Wire>>, clock: Arc<dyn Clock>) -> io::Result<Host> {
        let (mode, linger, cpus) = (cfg.mode, cfg.linger, cfg.stack.cpus.clone());
        let parts = HostParts::build(cfg, wire, clock)?;
        let mut engines: Vec<Option<StackEngine<NicQueue>>> = parts.engines.into_iter().map(Some).collect();
        let mut builder = Runtime::builder().mode(mode).linger(linger);
        if let Some(cpus) = cpus {
            builder = builder.pin(cpus);
        }
        let runtime = builder.build(engines.len(), |i| {
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

impl Host {
    /// Starts the host without an application, for programs whose own
    /// threads take a core each ([`Serving::attach`]; mTCP's
    /// `mtcp_create_context` from an application's pthread). See
    /// [`Runtime::start`].
    pub fn serve(self) -> io::Result<Serving> {
        let Host { runtime, stats, ip, device } = self;
        let cores = runtime.cores();
        let started = runtime.start()?;
        Ok(Serving { started, stats, ip, cores, device: std::sync::Mutex::new(Some(device)) })
    }
}

/// A started host whose cores the application's threads attach to
/// ([`Host::serve`]). `Sync`: share it by reference with those threads.
pub struct Serving {
    started: Started<StackEngine<NicQueue>>,
    stats: HostStats,
    ip: Ipv4Addr,
    cores: usize,
    /// Behind a lock only so that the handle is `Sync`; taken once, by `join`.
    device: std::sync::Mutex<Option<NicDevice>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").field("ip", &self.ip).field("cores", &self.cores).finish()
    }
}

impl Serving {
    /// Core `core`'s context on the calling thread; dropping it finishes
    /// the core. See [`Started::attach`] (and its errors).
    pub fn attach(&self, core: usize) -> io::Result<Attached> {
        self.started.attach(core)
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Live per-core counters.
    pub fn stats(&self) -> HostStats {
        self.stats.clone()
    }

    /// Asks every core to stop.
    pub fn stop_handle(&self) -> StopHandle {
        self.started.stop_handle()
    }

    /// Waits for every core's stack to end (after each attached context was
    /// dropped; cores never attached are let go), then stops the device.
    pub fn join(self) -> io::Result<()> {
        let Serving { started, device, .. } = self;
        let out = started.join();
        if let Some(device) = device.into_inner().unwrap_or_else(|p| p.into_inner()) {
            device.shutdown();
        }
        out
    }
}

/// What a host is made of before a runtime runs it.
pub(crate) struct HostParts {
    pub(crate) engines: Vec<StackEngine<NicQueue>>,
    pub(crate) stats: HostStats,
    pub(crate) ip: Ipv4Addr,
    pub(crate) device: NicDevice,
}

impl HostParts {
    /// Opens the NIC and builds one engine per queue pair on `clock` (the
    /// virtual clock of `cfg.time` when it is one).
    pub(crate) fn build(cfg: HostConfig, wire: Option<Box<dyn Wire>>, clock: Arc<dyn Clock>) -> io::Result<HostParts> {
        let stack = Arc::new(cfg.stack);
        stack.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut device = NicDevice::open_with(&cfg.nic, &stack, wire, &cfg.open)?;
        let queues = device.take_queues();
        let cores = ixtcp_stack::cores::build_cores(
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
        let pools = device.pools().to_vec();
        Ok(HostParts { engines, stats: HostStats { mirrors, pools }, ip: stack.ip, device })
    }
}
