//! The cost harness: a fixed number of transactions of one workload (echo
//! over persistent connections, echo with a new connection each, HTTP
//! keep-alive), ixtcp server and ixtcp client over two linked 82599 models,
//! every stack core and both applications stepped from this one thread on a
//! virtual clock ([`LinkedHosts::stepped`]), with the bench's own host
//! configurations and application code. The application loops go by the
//! same virtual time ([`LoopClock`]) and the HTTP `Date` is fixed, so
//! nothing here depends on real time or threads, and `valgrind --tool=callgrind` counts the same instructions on
//! every run of the same binary.
//!
//! Each side's measured work runs inside a function of its own,
//! [`server_turn`] and [`client_turn`] (one iteration of that host's stack
//! core and of its application loop: its model's pump, the driver, the
//! stack, sockapi, the echo or HTTP code); the warm-up before (connections
//! opened, neighbours resolved, [`WARMUP`] transactions) and the closing
//! after run outside them. `scripts/callgrind.sh layers` collects one side
//! at a time (`--collect-atstart=no --toggle-collect=…`) and splits the
//! count by layer.
//!
//! Run: `scripts/callgrind.sh layers`; or plainly
//! `cargo bench -p ixtcp-examples --bench layers -- [WORKLOAD…] [--transactions N]`
//! (workloads: echo-persistent, echo-new-conn, http-keep-alive; default
//! all three, 2 000 transactions each). It prints `WORKLOAD transactions N`
//! per workload, N the transactions inside the measured turns.

use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use clap::ValueEnum;
use ixtcp_driver::time::Clock;
use ixtcp_driver::wire::LinkConfig;
use ixtcp_examples::bench::apps::{EchoWork, HttpWork, bench_plan};
use ixtcp_examples::bench::ixtcp_side::{PORT, SERVER_IP, host_configs};
use ixtcp_examples::bench::{Params, Split, Workload};
use ixtcp_examples::echo::EchoServer;
use ixtcp_examples::http::server::{HttpCore, HttpServer, Limits};
use ixtcp_examples::http::site::{Site, SiteConfig};
use ixtcp_examples::reactor::{ClientLoop, ClientWork, Clients, Gauge, LoopClock, Server};
use ixtcp_examples::session::{Session, Tally};
use ixtcp_examples::sockets::Sockets;
use ixtcp_host::{LinkedHosts, Stepped};

/// Transactions before the measured ones (every connection open and warm).
pub const WARMUP: u64 = 500;

/// Measured transactions per workload unless `--transactions` says.
pub const TRANSACTIONS: u64 = 2_000;

/// The workloads the harness runs, in its order.
const WORKLOADS: [Workload; 3] = [Workload::EchoPersistent, Workload::EchoNewConn, Workload::HttpKeepAlive];

/// Steps before a workload is declared stuck (a bug, not a slow machine:
/// nothing here waits for real time).
const STEP_LIMIT: u64 = 50_000_000;

/// One iteration of the server host: its stack core (pump, driver, stack)
/// and its application loop. Kept out of line: callgrind collects inside it.
#[inline(never)]
pub fn server_turn(step: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
    step()
}

/// One iteration of the client host, as [`server_turn`] is for the server.
#[inline(never)]
pub fn client_turn(step: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
    step()
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|(workloads, n)| {
        for w in workloads {
            let measured = run(w, n)?;
            println!("{} transactions {measured}", name(w));
        }
        Ok(())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn name(w: Workload) -> String {
    w.to_possible_value().map_or_else(|| format!("{w:?}"), |v| v.get_name().to_string())
}

/// `[WORKLOAD…] [--transactions N]`; `--bench` (from `cargo bench`) is ignored.
fn parse(args: impl Iterator<Item = String>) -> io::Result<(Vec<Workload>, u64)> {
    let mut workloads = Vec::new();
    let mut n = TRANSACTIONS;
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--transactions" => {
                let v = args.next().ok_or_else(|| bad("--transactions needs a number".into()))?;
                n =
                    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("--transactions {v:?}: give a whole number of transactions above 0"))
                    })?;
            }
            w => {
                let known = WORKLOADS.iter().find(|&&k| name(k) == w).copied();
                let names: Vec<String> = WORKLOADS.iter().map(|&k| name(k)).collect();
                workloads.push(known.ok_or_else(|| {
                    bad(format!("unknown workload {w:?}: choose from {} (or --transactions N)", names.join(", ")))
                })?);
            }
        }
    }
    if workloads.is_empty() {
        workloads = WORKLOADS.to_vec();
    }
    Ok((workloads, n))
}

/// `at` moved on to the next whole second of the monotonic clock, when its
/// nanoseconds can be read (the standard library's `Debug` shows them on
/// Linux). Instants made from it by adding virtual time then carry and
/// borrow in their nanoseconds the same way on every run: from an arbitrary
/// base, std's `Instant` arithmetic takes a branch more or less, and the
/// client's count moved by a fraction of an instruction per transaction.
fn whole_second(at: Instant) -> Instant {
    let shown = format!("{at:?}");
    let nanos = shown
        .split("tv_nsec:")
        .nth(1)
        .and_then(|rest| rest.trim_start().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u64>().ok())
        .filter(|&n| n < 1_000_000_000);
    nanos.map_or(at, |n| at + Duration::from_nanos(1_000_000_000 - n))
}

/// The HTTP server's `Date`: fixed, so that its once-a-second refresh does
/// not depend on how fast the run goes.
fn fixed_date() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

/// Runs `n` measured transactions of `w` after the warm-up; returns how
/// many completed inside the measured turns.
fn run(w: Workload, n: u64) -> io::Result<u64> {
    let params = Params::full();
    // One core a side; `pin` is irrelevant here (nothing runs on threads).
    let split = Split { server: vec![0], client: vec![0], pin: false };
    let (mut server_cfg, mut client_cfg) = host_configs(w, &split, &params, None);
    server_cfg.seed = Some(1);
    client_cfg.seed = Some(2);
    let sim = LinkedHosts::stepped(server_cfg, client_cfg, LinkConfig::unlimited())?;
    let addr = std::net::SocketAddrV4::new(SERVER_IP, PORT);
    let cfg = ClientLoop { server: addr, conns: params.conns, timeout: Duration::from_secs(5) };
    let measured = match w {
        Workload::EchoPersistent | Workload::EchoNewConn => {
            let one_shot = w == Workload::EchoNewConn;
            let work = EchoWork::new(params.size, one_shot, 0);
            drive(&sim, EchoServer::new, work, cfg, n)?
        }
        Workload::HttpKeepAlive => {
            let site = Site::new(SiteConfig::default()).map_err(|e| io::Error::other(e.to_string()))?;
            let core = HttpCore::with_wall_clock(site, Limits::default(), fixed_date);
            let work = HttpWork::new(bench_plan(addr, true), Rc::new(u64::MAX.into()));
            drive(&sim, || HttpServer::new(Rc::clone(&core)), work, cfg, n)?
        }
        other => return Err(bad(format!("{other:?} is not a workload of the cost harness"))),
    };
    let (s, c) = sim.stats();
    let retransmits = s.total().tcp_retransmits + c.total().tcp_retransmits;
    if retransmits > 0 {
        return Err(io::Error::other(format!("{}: {retransmits} retransmissions on a loss-free link", name(w))));
    }
    Ok(measured)
}

/// The server loop of `new_session` and the client loop of `work` over the
/// stepped hosts: warm-up, `n` measured transactions (inside the turns),
/// close.
fn drive<S, F, W>(sim: &Stepped, new_session: F, mut work: W, cfg: ClientLoop, n: u64) -> io::Result<u64>
where
    S: Session,
    F: FnMut() -> S,
    W: ClientWork,
{
    let (mut rs, mut rc) = (Sockets::new(sim.server(0))?, Sockets::new(sim.client(0))?);
    let (sg, cg) = (Gauge::default(), Gauge::default());
    let (mut st, mut ct) = (Tally::default(), Tally::default());
    let zero = Some(Duration::ZERO);
    // The loops go by the simulation's virtual time too (session
    // timestamps, latencies, the stale-connection scan), not the OS clock.
    let (base, virtual_time) = (whole_second(Instant::now()), sim.clock().clone());
    let clock = LoopClock::from_fn(move || base + Duration::from_nanos(virtual_time.now_ns()));
    let mut server = Server::start(&mut rs, cfg.server, new_session, &sg)?.with_clock(clock.clone());
    let mut clients: Clients<_, W::Session> = Clients::new(cfg).with_clock(clock);
    let contexts = [sim.server(0), sim.client(0)];
    let mut steps = 0u64;
    let stuck = |steps: &mut u64, ct: &Tally| {
        *steps += 1;
        (*steps > STEP_LIMIT).then(|| io::Error::other(format!("stuck after {} transactions", ct.transactions)))
    };
    // Warm-up: the same loops, called directly (not collected).
    while ct.transactions < WARMUP {
        if let Some(e) = stuck(&mut steps, &ct) {
            return Err(e);
        }
        server.step(&mut rs, zero, &mut st, &sg)?;
        if !clients.step(&mut rc, &mut work, zero, &mut ct, &cg)? {
            return Err(io::Error::other("the clients stopped during the warm-up"));
        }
        sim.idle(&contexts);
    }
    let (start, goal) = (ct.transactions, ct.transactions + n);
    while ct.transactions < goal {
        if let Some(e) = stuck(&mut steps, &ct) {
            return Err(e);
        }
        server_turn(&mut || server.step(&mut rs, zero, &mut st, &sg))?;
        if !client_turn(&mut || clients.step(&mut rc, &mut work, zero, &mut ct, &cg))? {
            return Err(io::Error::other("the clients stopped before the last measured transaction"));
        }
        sim.idle(&contexts);
    }
    let measured = ct.transactions - start;
    if ct.total_failures() > 0 {
        return Err(io::Error::other(format!("client failures: {:?}", ct.first_failures)));
    }
    clients.stop(&mut rc, &ct, &cg);
    server.stop(&mut rs, &st, &sg);
    sim.run_for(Duration::from_millis(100))?;
    Ok(measured)
}
