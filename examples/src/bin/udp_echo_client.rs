//! udp_echo_client: keeps F flows (UDP sockets, one datagram in flight
//! each) busy against a UDP echo server with B-byte datagrams, verifies
//! every echoed byte, prints transactions per second per core every second
//! and a summary with p50/p99/p99.9 latency at exit.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin udp_echo_client -- --seconds 5            # no NIC: in-process server on a linked model
//! sudo target/release/udp_echo_client --nic tap:ixtcp0 --ip 10.0.0.1/24 --server 10.0.0.2:7 --conns 64 --seconds 10
//! sudo target/release/udp_echo_client --nic pci:0000:03:00.0 --ip 10.1.0.2/24 --cores 4 --server 10.1.0.1:7
//! ```
//!
//! Each flow binds a port whose replies the NIC hashes back to its core.
//! A datagram not echoed within `--timeout-ms` counts as a timeout (UDP
//! may lose it) and the flow goes on with the next. With `--nic model`
//! (the default) the server runs in this process on a second 82599 model
//! linked to ours. Exit status 1 when an echo differed, a flow was refused
//! (port unreachable) or a datagram was lost.
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ixtcp_examples::cli::{IpPrefix, StackArgs};
use ixtcp_examples::program::{parse_seconds, peer_config, run_client, same_subnet, until_interrupted};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_examples::udp_echo::{UdpEchoLoad, load_udp_echo, serve_udp_echo};
use ixtcp_examples::{ExampleError, NicSpec, exit_with};

#[derive(Debug, Parser)]
#[command(about = "UDP echo load generator over ixtcp: every echoed byte verified")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The echo server (default with --nic model: 10.0.0.1:7, served in this process).
    #[arg(long, value_name = "ADDR:PORT")]
    server: Option<SocketAddrV4>,
    /// Flows (sockets with one datagram in flight), spread over the cores.
    #[arg(long, value_name = "C", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    conns: u32,
    /// Datagram size in bytes (at most 1472: no fragmentation).
    #[arg(long, value_name = "B", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1472))]
    size: u32,
    /// Run this long (Ctrl-C stops earlier).
    #[arg(long, value_name = "S", default_value = "10", value_parser = parse_seconds)]
    seconds: f64,
    /// A datagram not echoed within this many milliseconds is lost.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    timeout_ms: u64,
    /// Seed of the datagram contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const DEFAULT_SERVER: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 7);

const NAME: &str = "udp_echo_client";

fn main() {
    let args = Args::parse();
    // Catch Ctrl-C from the start, so that it always stops cleanly.
    ixtcp_examples::interrupted();
    if let Err(e) = run(&args) {
        exit_with(&e);
    }
}

fn run(args: &Args) -> Result<(), ExampleError> {
    let model = args.stack.nic == NicSpec::Model;
    let server = args.stack.server(args.server, DEFAULT_SERVER)?;
    let ours = args.stack.host_config(IpPrefix { addr: [10, 0, 0, 2].into(), prefix: 24 })?;
    let cores = usize::from(ours.stack.cores);
    let load = UdpEchoLoad {
        server,
        flows: args.conns as usize,
        size: args.size as usize,
        seed: args.seed,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let until = until_interrupted(Some(args.seconds));
    let gauges: Vec<Arc<Gauge>> = (0..cores).map(|_| Arc::default()).collect();
    let started = Instant::now();
    let ended = AtomicU64::new(0);
    eprintln!(
        "udp_echo_client: {} on {} ({} cores), {} flows to {server}, {} B datagrams, {:.0} s",
        ours.stack.ip, args.stack.nic, cores, load.flows, load.size, args.seconds
    );
    let app = |ctx: &ixtcp_sockapi::Context| {
        let gauge = &gauges[ctx.core() % gauges.len()];
        let result = load_udp_echo(ctx, &load, (ctx.core(), cores), &until, gauge);
        ended.fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    };
    let server_host = if model {
        same_subnet(&ours, *server.ip()).map_err(ExampleError::Other)?;
        eprintln!("--nic model: the UDP echo server runs in this process at {server} on a linked 82599 model");
        Some(peer_config(&ours, *server.ip()))
    } else {
        None
    };
    let serve = |ctx: &ixtcp_sockapi::Context, until: &Until, gauge: &Gauge| serve_udp_echo(ctx, server, until, gauge);
    let tallies = run_client(NAME, &args.stack.nic, args.stack.stats, ours, server_host, &gauges, &ended, app, serve)?;
    if tallies.iter().any(|t| t.total_failures() > 0) {
        return Err(ExampleError::Other("some datagrams failed (see above)".into()));
    }
    Ok(())
}
