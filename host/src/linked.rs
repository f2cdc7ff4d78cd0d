//! Two hosts in one process over two linked 82599 models: [`LinkedHosts`]
//! runs them on their runtimes' threads, [`Stepped`] drives them from the
//! calling thread on a virtual clock.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::model::Model82599;
use ixtcp_driver::time::{Clock, VirtualClock};
use ixtcp_driver::wire::link::FCS_LEN;
use ixtcp_driver::wire::{Link, LinkConfig, LinkEnd};
use ixtcp_sockapi::StackEngine;
use ixtcp_sockapi::{Context, StopHandle};

use crate::host::{Host, HostConfig, HostParts, HostStats, TimeSource};
use crate::nic::{Nic, NicDevice, NicQueue};

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
            // The server is told to stop however the client side ends: a
            // client application that panics would otherwise leave the
            // scope waiting for server applications nobody stops, and a
            // failing test would hang instead of failing.
            let stop_server = StopOnDrop(stop);
            let cli = client.run(client_app);
            drop(stop_server);
            let srv = srv.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok((srv?, cli?))
        })
    }
}

/// Stops a host when dropped, on the way out of a panic too.
struct StopOnDrop(StopHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Checks that both hosts can be linked, gives them their MACs and one
/// clock (the server's), and makes the link.
fn link_up(
    server: &mut HostConfig,
    client: &mut HostConfig,
    link: LinkConfig,
) -> io::Result<(Arc<dyn Clock>, LinkEnd, LinkEnd)> {
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
/// mode, and [`Epoll::wait`](ixtcp_sockapi::Epoll::wait) is called with a zero
/// timeout (a wait with a timeout moves the shared time by itself).
///
/// ```
/// use ixtcp_driver::wire::LinkConfig;
/// use ixtcp_host::{HostConfig, LinkedHosts};
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
