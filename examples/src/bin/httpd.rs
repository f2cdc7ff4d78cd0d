//! httpd: a static file server (GET and HEAD, keep-alive, pipelining) on
//! `--port`, serving `--root DIR` or a built-in page, one listener per core.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin httpd -- --seconds 5              # no NIC: a built-in load on a linked model
//! sudo target/release/httpd --nic tap:ixtcp0 --ip 10.0.0.1/24 --root ./www      # then curl from the kernel (docs/PROGRAMS.md)
//! sudo target/release/httpd --nic pci:0000:03:00.0 --ip 10.1.0.1/24 --cores 4 --port 80 --root /srv/www
//! ```
//!
//! With `--nic model` (the default) there is no wire to a client, so this
//! process starts one: a client host on a second 82599 model linked to
//! ours, fetching `/` (or the first file of the root when it has no
//! index.html) over 16 keep-alive connections until the server stops.
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use ixtcp_examples::cli::{IpPrefix, StackArgs};
use ixtcp_examples::http::site::{Site, SiteConfig};
use ixtcp_examples::program::{
    HttpLoad, builtin_http_plan, load_http, parse_seconds, peer_config, peer_ip, run_server, serve_http,
};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_examples::{ExampleError, NicSpec, exit_with};

#[derive(Debug, Parser)]
#[command(about = "Static HTTP/1.1 server over ixtcp")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The port to listen on.
    #[arg(long, value_name = "P", default_value_t = 80)]
    port: u16,
    /// Serve the files of DIR (default: a built-in page at /).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
}

const NAME: &str = "httpd";

fn main() {
    let args = Args::parse();
    // Catch Ctrl-C from the start, so that it always stops cleanly.
    ixtcp_examples::interrupted();
    if let Err(e) = run(&args) {
        exit_with(&e);
    }
}

fn run(args: &Args) -> Result<(), ExampleError> {
    // Refuse a bad root before bringing up any NIC.
    Site::new(SiteConfig { root: args.root.clone(), ..SiteConfig::default() })
        .map_err(|e| ExampleError::Other(e.to_string()))?;
    let ours = args.stack.host_config(IpPrefix { addr: [10, 0, 0, 1].into(), prefix: 24 })?;
    let cores = usize::from(ours.stack.cores);
    let addr = SocketAddrV4::new(ours.stack.ip, args.port);
    let root = args.root.as_deref();
    let gauges: Vec<Arc<Gauge>> = (0..cores).map(|_| Arc::default()).collect();
    let what = root.map_or("the built-in page".to_string(), |r| r.display().to_string());
    eprintln!("httpd: serving {what} on http://{addr}/ on {} ({cores} cores); Ctrl-C stops", args.stack.nic);
    let serve = |ctx: &ixtcp_sockapi::Context, until: &Until| {
        serve_http(ctx, addr, root, until, &gauges[ctx.core() % gauges.len()])
    };
    // What the built-in client runs on --nic model.
    let load = HttpLoad { server: addr, plan: builtin_http_plan(addr, root), requests: u64::MAX, conns: 16 };
    let peer = if args.stack.nic == NicSpec::Model {
        let peer_addr = peer_ip(ours.stack.ip, ours.stack.prefix_len);
        let peer = peer_config(&ours, peer_addr);
        let target = load.plan.targets.first().map_or("/".to_string(), |t| t.path.clone());
        eprintln!(
            "--nic model: no wire to a client, so a client host at {peer_addr} on a linked 82599 model fetches \
             {target} over {} keep-alive connections (for curl as the client see --nic tap:NAME)",
            load.conns
        );
        Some(peer)
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
        |ctx: &ixtcp_sockapi::Context, until: &Until, gauge: &Gauge| load_http(ctx, &load, (0, 1), until, gauge),
    )
}
