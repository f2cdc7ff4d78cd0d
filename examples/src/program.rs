//! What the socket programs (`echo_server`, `echo_client`, `httpd`,
//! `http_load`) share: starting the host their flags describe, the peer
//! host that `--nic model` starts in the same process, when each side
//! stops, and the stack's per-core counters once a second and at exit.
//!
//! `--nic model` has no wire to a peer, so each program brings its peer
//! along: a second host on a second 82599 model, linked to ours in memory
//! ([`LinkedHosts`]). A load generator (`echo_client`, `http_load`) gets a
//! server at the address it was told to load; a server (`echo_server`,
//! `httpd`) gets a small built-in load. The default command of each
//! program thus does something visible with no NIC and no root.
//!
//! Stopping: the side the user runs stops on Ctrl-C or at `--seconds`;
//! in a linked pair the servers stop only once the last client core has
//! finished, so that no server closes a connection in the middle of a
//! transaction ([`run_linked`]).

use std::cell::Cell;
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, HostStats, LinkedHosts};
use ixtcp_sockapi::Context;
use ixtcp_stack::CoreStats;

use crate::NicSpec;
use crate::bench::apps::{EchoWork, HttpWork, bench_plan, share};
use crate::echo::EchoServer;
use crate::http::client::{ClientPlan, Expect, Target};
use crate::http::server::{HttpCore, HttpServer, Limits};
use crate::http::site::{Site, SiteConfig};
use crate::reactor::{ClientLoop, Gauge, Until, run_clients, serve, wait_listening};
use crate::report::si;
use crate::session::Tally;
use crate::sockets::Sockets;

/// An address of `ip`'s subnet (`prefix` bits) other than `ip`: the first
/// host address, or the second when `ip` is the first.
pub fn peer_ip(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    let net = u32::from(ip) & mask;
    let first = Ipv4Addr::from(net.wrapping_add(1));
    if first == ip { Ipv4Addr::from(net.wrapping_add(2)) } else { first }
}

/// The in-process peer of `ours` for `--nic model`: the same stack
/// settings at `ip`, one core, no capture.
pub fn peer_config(ours: &HostConfig, ip: Ipv4Addr) -> HostConfig {
    let mut stack = ours.stack.clone();
    stack.ip = ip;
    stack.cores = 1;
    stack.pcap = None;
    stack.mac = None;
    HostConfig::model(stack, ours.mode)
}

/// Checks that `peer` can be reached from `ours` without a router: the
/// in-process peer sits on the same link.
pub fn same_subnet(ours: &HostConfig, peer: Ipv4Addr) -> Result<(), String> {
    if peer == ours.stack.ip {
        return Err(format!("the peer {peer} has our own address; give --ip another one"));
    }
    if !ours.stack.on_subnet(peer) {
        return Err(format!(
            "with --nic model the peer runs in this process on the same link: {peer} must be in our subnet {}/{}",
            ours.stack.ip, ours.stack.prefix_len
        ));
    }
    Ok(())
}

/// Until Ctrl-C, or `seconds` from now when given.
pub fn until_interrupted(seconds: Option<f64>) -> Until {
    Until::deadline(crate::interrupted(), seconds.map(|s| Instant::now() + Duration::from_secs_f64(s)))
}

/// Parses a duration in seconds for `--seconds`.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1e6 => Ok(x),
        _ => Err(format!("{s:?}: give a number of seconds, more than 0")),
    }
}

/// What each core's application returned, in core order.
pub type CoreResults = Vec<io::Result<Tally>>;

/// Runs `server_app` on every core of `hosts.server` and `client_app` on
/// every core of `hosts.client`. Clients start once every server gauge
/// says it listens (they stop by themselves); the servers' [`Until`] is
/// reached when the last client core has returned. Returns both sides'
/// results in core order.
pub fn run_linked<S, C>(
    hosts: LinkedHosts,
    server_gauges: &[Arc<Gauge>],
    server_app: S,
    client_app: C,
) -> io::Result<(CoreResults, CoreResults)>
where
    S: Fn(&Context, &Until) -> io::Result<Tally> + Send + Sync,
    C: Fn(&Context) -> io::Result<Tally> + Sync,
{
    let clients = hosts.client.cores();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Until::flag(Arc::clone(&stop));
    let finished = AtomicUsize::new(0);
    hosts.run(
        |ctx| server_app(ctx, &until),
        |ctx| {
            let result = if wait_listening(server_gauges, Duration::from_secs(10)) {
                client_app(ctx)
            } else {
                Err(io::Error::new(io::ErrorKind::TimedOut, "the in-process server never listened"))
            };
            if finished.fetch_add(1, Ordering::AcqRel) + 1 == clients {
                stop.store(true, Ordering::Relaxed);
            }
            result
        },
    )
}

/// Splits per-core results into tallies and the first error.
pub fn tallies(results: CoreResults) -> (Vec<Tally>, Option<io::Error>) {
    let mut out = Vec::with_capacity(results.len());
    let mut error = None;
    for r in results {
        match r {
            Ok(t) => out.push(t),
            Err(e) => {
                out.push(Tally::default());
                error.get_or_insert(e);
            }
        }
    }
    (out, error)
}

/// The counters a once-a-second stack line shows.
fn stack_line(label: &str, before: &[CoreStats], after: &[CoreStats], secs: f64) -> String {
    let mut line = format!("{label} stack:");
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        let rate = |x: u64, y: u64| si(y.saturating_sub(x) as f64 / secs);
        let drops = b.drop_ring_full
            + b.drop_mempool_empty
            + b.drop_backlog_full
            + b.drop_no_socket
            + b.drop_no_neighbor
            + b.drop_no_route;
        let _ = write!(
            line,
            " | core {i} rx {} pkt/s tx {} pkt/s, conns {}, time-wait {}, drops {drops}",
            rate(a.rx_packets, b.rx_packets),
            rate(a.tx_packets, b.tx_packets),
            b.conns_open,
            b.time_wait
        );
    }
    line
}

/// Every non-zero counter of every core, for the exit summary.
pub fn stack_summary(label: &str, stats: &HostStats) -> String {
    let mut out = format!("{label} stack counters:\n");
    for (i, c) in stats.per_core().iter().enumerate() {
        let fields: Vec<String> =
            c.fields().into_iter().filter(|&(_, v)| v != 0).map(|(n, v)| format!("{n} {v}")).collect();
        let _ = writeln!(out, "  core {i}: {}", if fields.is_empty() { "all zero".into() } else { fields.join(", ") });
    }
    out
}

/// Prints a host's per-core stack counters once a second until dropped.
pub struct StackTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StackTicker {
    /// Starts printing lines labelled `label` for `stats`.
    pub fn start(label: &str, stats: HostStats) -> StackTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let label = label.to_string();
        let thread = std::thread::Builder::new()
            .name("stack-stats".into())
            .spawn(move || {
                let mut last = stats.per_core();
                let mut at = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if at.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let now = Instant::now();
                    let cur = stats.per_core();
                    println!("{}", stack_line(&label, &last, &cur, now.duration_since(at).as_secs_f64()));
                    last = cur;
                    at = now;
                }
            })
            .ok();
        StackTicker { stop, thread }
    }
}

impl Drop for StackTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The echo server on one core: echoes every connection on `addr`.
pub fn serve_echo(ctx: &Context, addr: SocketAddrV4, until: &Until, gauge: &Gauge) -> io::Result<Tally> {
    let mut r = Sockets::new(ctx)?;
    let mut tally = Tally::default();
    serve(&mut r, addr, EchoServer::new, until, &mut tally, gauge)?;
    Ok(tally)
}

/// What an echo client core does.
#[derive(Debug, Clone)]
pub struct EchoLoad {
    /// The server.
    pub server: SocketAddrV4,
    /// Connections over all client cores.
    pub conns: usize,
    /// Message size.
    pub size: usize,
    /// A new connection per transaction.
    pub new_conn: bool,
    /// Seed of the message contents (each core and connection derive theirs).
    pub seed: u64,
}

/// The echo client on client core `index` of `cores`: its share of the
/// connections, every echoed byte verified.
pub fn load_echo(
    ctx: &Context,
    load: &EchoLoad,
    (index, cores): (usize, usize),
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut r = Sockets::new(ctx)?;
    let mut tally = Tally::default();
    let conns = share(load.conns, index, cores);
    if conns == 0 {
        return Ok(tally);
    }
    let cfg = ClientLoop { server: load.server, conns, timeout: Duration::from_secs(10) };
    let seed_base = load.seed.wrapping_add((index as u64) << 40);
    let mut work = EchoWork::new(load.size, load.new_conn, seed_base);
    run_clients(&mut r, &cfg, &mut work, until, &mut tally, gauge)?;
    Ok(tally)
}

/// The HTTP server on one core: serves `root` (none: the built-in page) on
/// `addr`.
pub fn serve_http(
    ctx: &Context,
    addr: SocketAddrV4,
    root: Option<&Path>,
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let site = Site::new(SiteConfig { root: root.map(Path::to_path_buf), ..SiteConfig::default() })
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let core = HttpCore::new(site, Limits::default());
    let mut r = Sockets::new(ctx)?;
    let mut tally = Tally::default();
    serve(&mut r, addr, || HttpServer::new(Rc::clone(&core)), until, &mut tally, gauge)?;
    Ok(tally)
}

/// What an HTTP load generator does.
#[derive(Debug, Clone)]
pub struct HttpLoad {
    /// The server.
    pub server: SocketAddrV4,
    /// Requests, targets and their expected responses.
    pub plan: Arc<ClientPlan>,
    /// Requests over all client cores.
    pub requests: u64,
    /// Connections over all client cores.
    pub conns: usize,
}

/// The HTTP load generator on client core `index` of `cores`: its share of
/// the requests over its share of the connections, every response checked.
pub fn load_http(
    ctx: &Context,
    load: &HttpLoad,
    (index, cores): (usize, usize),
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut r = Sockets::new(ctx)?;
    let mut tally = Tally::default();
    let requests = share64(load.requests, index, cores);
    let conns = share(load.conns, index, cores).max(1);
    if requests == 0 {
        return Ok(tally);
    }
    let cfg = ClientLoop { server: load.server, conns, timeout: Duration::from_secs(10) };
    let mut work = HttpWork::new(Arc::clone(&load.plan), Rc::new(Cell::new(requests)));
    run_clients(&mut r, &cfg, &mut work, until, &mut tally, gauge)?;
    Ok(tally)
}

/// How many of `total` fall to core `index` of `cores`.
pub fn share64(total: u64, index: usize, cores: usize) -> u64 {
    let cores = cores.max(1) as u64;
    total / cores + u64::from((index as u64) < total % cores)
}

/// The built-in load of `httpd --nic model`: GET of the page `/` serves,
/// or of the first file of the document root when it has no index.
pub fn builtin_http_plan(server: SocketAddrV4, root: Option<&Path>) -> Arc<ClientPlan> {
    let Some(root) = root else { return bench_plan(server, true) };
    let mut files: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    files.sort();
    let has_index = files.iter().any(|f| f == "index.html");
    let (path, status) = match files.first() {
        _ if has_index => ("/".to_string(), 200),
        Some(f) => (format!("/{}", f.to_string_lossy()), 200),
        None => ("/".to_string(), 404),
    };
    Arc::new(ClientPlan {
        host: server.to_string(),
        targets: vec![Target { path, head: false, expect: Expect { status, body: None } }].into(),
        keep_alive: true,
        pipeline: 1,
    })
}

/// Runs a server program to the end: with `peer` (on `--nic model`, where
/// no wire leads to a client) against a built-in client host on a linked
/// 82599 model running `load`, otherwise on the NIC alone. Starts the
/// per-second tickers when `stats` is set, prints the summaries at the end
/// and returns the first core's error.
#[allow(clippy::too_many_arguments)]
pub fn run_server<S, L>(
    name: &str,
    nic: &NicSpec,
    stats: bool,
    ours: HostConfig,
    peer: Option<HostConfig>,
    seconds: Option<f64>,
    gauges: &[Arc<Gauge>],
    serve: S,
    load: L,
) -> Result<(), crate::ExampleError>
where
    S: Fn(&Context, &Until) -> io::Result<Tally> + Send + Sync,
    L: Fn(&Context, &Until, &Gauge) -> io::Result<Tally> + Sync,
{
    use crate::ExampleError;
    use crate::report::{Ticker, Unit, summary};
    let started = Instant::now();
    let (results, host_stats) = match peer {
        Some(peer) => {
            let hosts =
                LinkedHosts::start(ours, peer).map_err(|e| ExampleError::Other(format!("starting hosts: {e}")))?;
            let host_stats = hosts.server.stats();
            let _stack_ticker = stats.then(|| StackTicker::start(name, host_stats.clone()));
            let _ticker = stats.then(|| Ticker::start(name, gauges.to_vec(), Unit::Transactions));
            let until = until_interrupted(seconds);
            let client_gauge = Gauge::default();
            let (srv, cli) = run_linked(hosts, gauges, serve, |ctx| load(ctx, &until, &client_gauge))
                .map_err(|e| ExampleError::Other(e.to_string()))?;
            let (client, error) = tallies(cli);
            if let Some(e) = error {
                eprintln!("the built-in client failed: {e}");
            }
            print!("{}", summary("built-in client", &client, started.elapsed(), Unit::Transactions));
            (srv, host_stats)
        }
        None => {
            let host = ixtcp_host::Host::start(ours).map_err(|e| ExampleError::Other(format!("--nic {nic}: {e}")))?;
            let host_stats = host.stats();
            let _stack_ticker = stats.then(|| StackTicker::start(name, host_stats.clone()));
            let _ticker = stats.then(|| Ticker::start(name, gauges.to_vec(), Unit::Transactions));
            let until = until_interrupted(seconds);
            (host.run(|ctx| serve(ctx, &until)).map_err(|e| ExampleError::Other(e.to_string()))?, host_stats)
        }
    };
    let (tallies, error) = tallies(results);
    print!("{}", summary(name, &tallies, started.elapsed(), Unit::Transactions));
    print!("{}", stack_summary(name, &host_stats));
    match error {
        Some(e) => Err(ExampleError::Other(e.to_string())),
        None => Ok(()),
    }
}

/// Runs a load-generator program to the end: with `server` (on `--nic
/// model`) against a server host in this process on a linked 82599 model
/// running `serve`, otherwise against whatever the NIC reaches. Shows the
/// per-second rates (and stack counters when `stats` is set), prints the
/// summaries (over the time in `ended_ns`, set by the apps as they finish)
/// and returns every core's tally, or the first core's error.
#[allow(clippy::too_many_arguments)]
pub fn run_client<A, S>(
    name: &str,
    nic: &NicSpec,
    stats: bool,
    ours: HostConfig,
    server: Option<HostConfig>,
    gauges: &[Arc<Gauge>],
    ended_ns: &std::sync::atomic::AtomicU64,
    app: A,
    serve: S,
) -> Result<Vec<Tally>, crate::ExampleError>
where
    A: Fn(&Context) -> io::Result<Tally> + Sync,
    S: Fn(&Context, &Until, &Gauge) -> io::Result<Tally> + Send + Sync,
{
    use crate::ExampleError;
    use crate::report::{Ticker, Unit, summary};
    let (results, host_stats) = match server {
        Some(server) => {
            let hosts =
                LinkedHosts::start(server, ours).map_err(|e| ExampleError::Other(format!("starting hosts: {e}")))?;
            let host_stats = hosts.client.stats();
            let _stack_ticker = stats.then(|| StackTicker::start(name, host_stats.clone()));
            let _ticker = Ticker::start(name, gauges.to_vec(), Unit::Transactions);
            let server_gauge = Arc::new(Gauge::default());
            let server_gauges = [Arc::clone(&server_gauge)];
            let (srv, cli) = run_linked(hosts, &server_gauges, |ctx, until| serve(ctx, until, &server_gauge), app)
                .map_err(|e| ExampleError::Other(e.to_string()))?;
            if let (_, Some(e)) = tallies(srv) {
                eprintln!("the in-process server failed: {e}");
            }
            (cli, host_stats)
        }
        None => {
            let host = ixtcp_host::Host::start(ours).map_err(|e| ExampleError::Other(format!("--nic {nic}: {e}")))?;
            let host_stats = host.stats();
            let _stack_ticker = stats.then(|| StackTicker::start(name, host_stats.clone()));
            let _ticker = Ticker::start(name, gauges.to_vec(), Unit::Transactions);
            (host.run(app).map_err(|e| ExampleError::Other(e.to_string()))?, host_stats)
        }
    };
    let elapsed = Duration::from_nanos(ended_ns.load(Ordering::Relaxed));
    let (tallies, error) = tallies(results);
    print!("{}", summary(name, &tallies, elapsed, Unit::Transactions));
    print!("{}", stack_summary(name, &host_stats));
    match error {
        Some(e) => Err(ExampleError::Other(e.to_string())),
        None => Ok(tallies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ixtcp_sockapi::Mode;
    use ixtcp_stack::StackConfig;

    #[test]
    fn peer_addresses() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(peer_ip(ip("10.0.0.2"), 24), ip("10.0.0.1"));
        assert_eq!(peer_ip(ip("10.0.0.1"), 24), ip("10.0.0.2"));
        assert_eq!(peer_ip(ip("192.168.7.9"), 16), ip("192.168.0.1"));
        let ours = HostConfig::model(StackConfig::new(ip("10.0.0.2"), 24), Mode::Inline);
        assert!(same_subnet(&ours, ip("10.0.0.1")).is_ok());
        assert!(same_subnet(&ours, ip("10.0.1.1")).unwrap_err().contains("subnet"));
        assert!(same_subnet(&ours, ip("10.0.0.2")).unwrap_err().contains("our own"));
        let peer = peer_config(&ours, ip("10.0.0.1"));
        assert_eq!((peer.stack.ip, peer.stack.cores), (ip("10.0.0.1"), 1));
    }

    #[test]
    fn stack_lines_show_rates_and_gauges() {
        let a = CoreStats::default();
        let b = CoreStats { rx_packets: 2000, tx_packets: 1000, conns_open: 3, drop_backlog_full: 1, ..a };
        let line = stack_line("echo_server", &[a], &[b], 2.0);
        assert!(line.contains("core 0 rx 1.0k pkt/s tx 500 pkt/s, conns 3, time-wait 0, drops 1"), "{line}");
        assert!(parse_seconds("0").is_err() && parse_seconds("x").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(1.5));
    }
}
