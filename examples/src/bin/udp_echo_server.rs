//! udp_echo_server: echoes every UDP datagram sent to `--port` back to its
//! sender, the port bound on every core (the NIC's hash of the 4-tuple
//! keeps each flow on one core), until Ctrl-C.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin udp_echo_server -- --seconds 5        # no NIC: a built-in load on a linked model
//! sudo target/release/udp_echo_server --nic tap:ixtcp0 --ip 10.0.0.1/24 --port 7 --stats   # the kernel as client (docs/PROGRAMS.md)
//! sudo target/release/udp_echo_server --nic pci:0000:03:00.0 --ip 10.1.0.1/24 --cores 4
//! ```
//!
//! With `--nic model` (the default) there is no wire to a client, so this
//! process starts one: a client host on a second 82599 model linked to
//! ours, running udp_echo_client's load (16 flows of 64-byte datagrams)
//! until the server stops.
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ixtcp_examples::cli::{IpPrefix, StackArgs};
use ixtcp_examples::program::{parse_seconds, peer_config, peer_ip, run_server};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_examples::udp_echo::{UdpEchoLoad, load_udp_echo, serve_udp_echo};
use ixtcp_examples::{ExampleError, NicSpec, exit_with};

#[derive(Debug, Parser)]
#[command(about = "UDP echo server over ixtcp")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The port to bind.
    #[arg(long, value_name = "P", default_value_t = 7)]
    port: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
}

const NAME: &str = "udp_echo_server";

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
    eprintln!("udp_echo_server: bound to {addr} on {} ({cores} cores); Ctrl-C stops", args.stack.nic);
    let serve = |ctx: &ixtcp_sockapi::Context, until: &Until| {
        serve_udp_echo(ctx, addr, until, &gauges[ctx.core() % gauges.len()])
    };
    let load = UdpEchoLoad { server: addr, flows: 16, size: 64, seed: 1, timeout: Duration::from_secs(1) };
    let peer = if args.stack.nic == NicSpec::Model {
        let peer_addr = peer_ip(ours.stack.ip, ours.stack.prefix_len);
        eprintln!(
            "--nic model: no wire to a client, so a client host at {peer_addr} on a linked 82599 model runs \
             {} flows of {} B datagrams against this server (for a real client see --nic tap:NAME)",
            load.flows, load.size
        );
        Some(peer_config(&ours, peer_addr))
    } else {
        None
    };
    run_server(
        NAME,
        &args.stack.nic,
        args.stack.stats,
        ours,
        peer,
        args.seconds,
        &gauges,
        serve,
        |ctx: &ixtcp_sockapi::Context, until: &Until, gauge: &Gauge| load_udp_echo(ctx, &load, (0, 1), until, gauge),
    )
}
