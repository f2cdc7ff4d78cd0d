//! echo_server: echoes every byte of every connection on `--port`, one
//! listener per core (RSS spreads the connections), until Ctrl-C.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin echo_server -- --seconds 5        # no NIC: a built-in load on a linked model
//! sudo target/release/echo_server --nic tap:ixtcp0 --ip 10.0.0.1/24 --port 7 --stats   # the kernel as client (docs/PROGRAMS.md)
//! sudo target/release/echo_server --nic pci:0000:03:00.0 --ip 10.1.0.1/24 --cores 4
//! ```
//!
//! With `--nic model` (the default) there is no wire to a client, so this
//! process starts one: a client host on a second 82599 model linked to
//! ours, running echo_client's load (16 connections of 64-byte messages)
//! until the server stops.
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use ixtcp_examples::cli::{IpPrefix, StackArgs};
use ixtcp_examples::program::{
    EchoLoad, StackTicker, load_echo, parse_seconds, peer_config, peer_ip, pin_core, pins, run_linked, serve_echo,
    stack_summary, tallies, until_interrupted,
};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_examples::report::{Ticker, Unit, summary};
use ixtcp_examples::{ExampleError, NicSpec, exit_with};
use ixtcp_sockapi::host::{Host, LinkedHosts};

#[derive(Debug, Parser)]
#[command(about = "Echo server over ixtcp")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The port to listen on.
    #[arg(long, value_name = "P", default_value_t = 7)]
    port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
}

fn main() {
    let args = Args::parse();
    // Catch Ctrl-C from the start, so that it always stops cleanly.
    ixtcp_examples::interrupted();
    if let Err(e) = run(&args) {
        exit_with(&e);
    }
}

fn run(args: &Args) -> Result<(), ExampleError> {
    let ours = args.stack.host_config(IpPrefix { addr: [10, 0, 0, 1].into(), prefix: 24 })?;
    let cores = usize::from(ours.stack.cores);
    let addr = SocketAddrV4::new(ours.stack.ip, args.port);
    let gauges: Vec<Arc<Gauge>> = (0..cores).map(|_| Arc::default()).collect();
    eprintln!("echo_server: listening on {addr} on {} ({cores} cores); Ctrl-C stops", args.stack.nic);
    let serve = |ctx: &ixtcp_sockapi::Context, until: &Until| {
        if pins(&args.stack.nic) {
            pin_core(ctx.core());
        }
        serve_echo(ctx, addr, until, &gauges[ctx.core() % gauges.len()])
    };
    let started = Instant::now();
    let (results, stats) = if args.stack.nic == NicSpec::Model {
        let peer_addr = peer_ip(ours.stack.ip, ours.stack.prefix_len);
        let peer = peer_config(&ours, peer_addr);
        let load = EchoLoad { server: addr, conns: 16, size: 64, new_conn: false, seed: 1 };
        eprintln!(
            "--nic model: no wire to a client, so a client host at {peer_addr} on a linked 82599 model runs \
             {} connections of {} B messages against this server (for a real client see --nic tap:NAME)",
            load.conns, load.size
        );
        let hosts = LinkedHosts::start(ours, peer).map_err(|e| ExampleError::Other(format!("starting hosts: {e}")))?;
        let stats = hosts.server.stats();
        let _stack_ticker = args.stack.stats.then(|| StackTicker::start("echo_server", stats.clone()));
        let _ticker = args.stack.stats.then(|| Ticker::start("echo_server", gauges.clone(), Unit::Transactions));
        let until = until_interrupted(args.seconds);
        let client_gauge = Gauge::default();
        let (srv, cli) = run_linked(hosts, &gauges, serve, |ctx| load_echo(ctx, &load, (0, 1), &until, &client_gauge))
            .map_err(|e| ExampleError::Other(e.to_string()))?;
        let (client, error) = tallies(cli);
        if let Some(e) = error {
            eprintln!("the built-in client failed: {e}");
        }
        print!("{}", summary("built-in client", &client, started.elapsed(), Unit::Transactions));
        (srv, stats)
    } else {
        let host = Host::start(ours).map_err(|e| ExampleError::Other(format!("--nic {}: {e}", args.stack.nic)))?;
        let stats = host.stats();
        let _stack_ticker = args.stack.stats.then(|| StackTicker::start("echo_server", stats.clone()));
        let _ticker = args.stack.stats.then(|| Ticker::start("echo_server", gauges.clone(), Unit::Transactions));
        let until = until_interrupted(args.seconds);
        (host.run(|ctx| serve(ctx, &until)).map_err(|e| ExampleError::Other(e.to_string()))?, stats)
    };
    let (tallies, error) = tallies(results);
    print!("{}", summary("echo_server", &tallies, started.elapsed(), Unit::Transactions));
    print!("{}", stack_summary("echo_server", &stats));
    match error {
        Some(e) => Err(ExampleError::Other(e.to_string())),
        None => Ok(()),
    }
}
