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
use ixtcp_driver::time::{Clock, MonotonicClock};
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
        Host::start_inner(cfg, None, Arc::new(MonotonicClock::new()))
    }

    /// Like [`start`](Self::start), with a model's port plugged into `wire`
    /// (ignored for other NICs, which bring their own).
    pub fn start_on_wire(cfg: HostConfig, wire: Box<dyn Wire>) -> io::Result<Host> {
        Host::start_inner(cfg, Some(wire), Arc::new(MonotonicClock::new()))
    }

    fn start_inner(cfg: HostConfig, wire: Option<Box<dyn Wire>>, clock: Arc<dyn Clock>) -> io::Result<Host> {
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
        let mut engines: Vec<Option<StackEngine<NicQueue>>> = cores
            .into_iter()
            .map(|core| {
                let mirror = Arc::new(StatsMirror::default());
                mirrors.push(Arc::clone(&mirror));
                Some(
                    StackEngine::new(core, Arc::clone(&clock))
                        .with_stats(mirror, cfg.stats_every)
                        .with_idle_wait(cfg.idle_wait),
                )
            })
            .collect();
        let runtime = Runtime::builder().mode(cfg.mode).linger(cfg.linger).build(engines.len(), |i| {
            engines.get_mut(i).and_then(Option::take).ok_or_else(|| io::Error::other("one engine per core"))
        })?;
        Ok(Host { runtime, stats: HostStats { mirrors }, ip: stack.ip, device })
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
    /// rate, latency, seeded impairments).
    pub fn start_with_link(
        mut server: HostConfig,
        mut client: HostConfig,
        link: LinkConfig,
    ) -> io::Result<LinkedHosts> {
        if server.nic != Nic::Model || client.nic != Nic::Model {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "linked hosts run on models (Nic::Model)"));
        }
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
        let (a, b) = Link::pair(link, Arc::clone(&clock));
        server.open.model_mac = [2, 0, 0, 0, 0, 1];
        client.open.model_mac = [2, 0, 0, 0, 0, 2];
        let server = Host::start_inner(server, Some(Box::new(a)), Arc::clone(&clock))?;
        let client = Host::start_inner(client, Some(Box::new(b)), clock)?;
        Ok(LinkedHosts { server, client })
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
