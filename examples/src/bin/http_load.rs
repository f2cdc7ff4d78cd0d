//! http_load: sends N GET requests for URL over C connections (keep-alive
//! or one request per connection), checks every response, and prints
//! requests per second per core and in total every second, then latency
//! percentiles and errors by kind.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin http_load -- http://10.0.0.1/ --requests 100000 --conns 16 --keep-alive   # no NIC: in-process httpd
//! sudo target/release/http_load --nic tap:ixtcp0 --ip 10.0.0.1/24 http://10.0.0.2:8080/index.html --requests 10000 --conns 8
//! sudo target/release/http_load --nic pci:0000:03:00.0 --ip 10.1.0.2/24 --cores 4 http://10.1.0.1/ --requests 10000000 --conns 1024 --keep-alive
//! ```
//!
//! Several URLs (same server) are requested in turn. Each response must
//! have the expected status (`--expect-status`, 200) and a body of the
//! length announced; with `--expect-dir DIR` its body must equal the file
//! DIR/PATH byte for byte (`/` and directories: index.html), otherwise it
//! must equal (length and checksum) the first response the connection got
//! for that URL. With `--nic model` (the default) an httpd host runs in this
//! process at the URL's address on a linked 82599 model, serving `--root`.
//! Exit status 1 when any request failed.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use ixtcp_examples::cli::{IpPrefix, StackArgs};
use ixtcp_examples::http::client::{ClientPlan, Expect, Target, Url};
use ixtcp_examples::http::site::{Site, SiteConfig};
use ixtcp_examples::program::{
    HttpLoad, load_http, parse_seconds, peer_config, run_client, same_subnet, serve_http, until_interrupted,
};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_examples::{ExampleError, NicSpec, exit_with};

#[derive(Debug, Parser)]
#[command(about = "HTTP load generator over ixtcp: every response checked")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// http://A.B.C.D[:PORT]/PATH (several: requested in turn; one server).
    #[arg(required = true, value_name = "URL")]
    urls: Vec<Url>,
    /// Requests in total, over all cores.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    requests: u64,
    /// Connections, spread over the cores.
    #[arg(long, value_name = "C", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    conns: u32,
    /// Many requests per connection (otherwise one, with Connection: close).
    #[arg(long)]
    keep_alive: bool,
    /// Requests sent before waiting for their responses (with --keep-alive).
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pipeline: u32,
    /// The status every response must have.
    #[arg(long, value_name = "CODE", default_value_t = 200)]
    expect_status: u16,
    /// Every body must equal the file of DIR named by the URL's path.
    #[arg(long, value_name = "DIR")]
    expect_dir: Option<PathBuf>,
    /// With --nic model: the document root of the in-process server.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Stop after this many seconds even if requests remain.
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    seconds: Option<f64>,
}

const NAME: &str = "http_load";

fn main() {
    let args = Args::parse();
    // Catch Ctrl-C from the start, so that it always stops cleanly.
    ixtcp_examples::interrupted();
    if let Err(e) = run(&args) {
        exit_with(&e);
    }
}

/// The file of `dir` a URL path names, as httpd resolves it.
fn expected_body(dir: &Path, path: &str) -> Result<Arc<[u8]>, ExampleError> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut file = dir.join(path.trim_start_matches('/'));
    if path.ends_with('/') || file.is_dir() {
        file = file.join("index.html");
    }
    std::fs::read(&file)
        .map(Arc::from)
        .map_err(|e| ExampleError::Other(format!("--expect-dir: {}: {e}", file.display())))
}

fn run(args: &Args) -> Result<(), ExampleError> {
    let Some(first) = args.urls.first() else {
        return Err(ExampleError::Other("give at least one URL".into()));
    };
    let server = first.addr;
    if let Some(other) = args.urls.iter().find(|u| u.addr != server) {
        return Err(ExampleError::Other(format!("every URL must name one server: {} and {}", server, other.addr)));
    }
    if args.pipeline > 1 && !args.keep_alive {
        return Err(ExampleError::Other("--pipeline needs --keep-alive".into()));
    }
    let model = args.stack.nic == NicSpec::Model;
    if args.root.is_some() && !model {
        return Err(ExampleError::Other("--root is for the in-process server of --nic model".into()));
    }
    let mut targets = Vec::with_capacity(args.urls.len());
    for u in &args.urls {
        let body = match &args.expect_dir {
            Some(dir) => Some(expected_body(dir, &u.path)?),
            None => None,
        };
        targets.push(Target { path: u.path.clone(), head: false, expect: Expect { status: args.expect_status, body } });
    }
    let plan = Arc::new(ClientPlan {
        host: first.host.clone(),
        targets: targets.into(),
        keep_alive: args.keep_alive,
        pipeline: args.pipeline as usize,
    });
    let ours = args.stack.host_config(IpPrefix { addr: [10, 0, 0, 2].into(), prefix: 24 })?;
    let cores = usize::from(ours.stack.cores);
    let load = HttpLoad { server, plan, requests: args.requests, conns: args.conns as usize };
    let until = until_interrupted(args.seconds);
    let gauges: Vec<Arc<Gauge>> = (0..cores).map(|_| Arc::default()).collect();
    let started = Instant::now();
    let ended = AtomicU64::new(0);
    let how = if args.keep_alive { "keep-alive" } else { "a new connection per request" };
    eprintln!(
        "http_load: {} on {} ({cores} cores), {} requests to {server} over {} connections, {how}",
        ours.stack.ip, args.stack.nic, load.requests, load.conns
    );
    let app = |ctx: &ixtcp_sockapi::Context| {
        let result = load_http(ctx, &load, (ctx.core(), cores), &until, &gauges[ctx.core() % gauges.len()]);
        ended.fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    };
    let root = args.root.as_deref();
    let server_host = if model {
        same_subnet(&ours, *server.ip()).map_err(ExampleError::Other)?;
        Site::new(SiteConfig { root: args.root.clone(), ..SiteConfig::default() })
            .map_err(|e| ExampleError::Other(e.to_string()))?;
        let what = root.map_or("the built-in page".to_string(), |r| r.display().to_string());
        eprintln!("--nic model: httpd runs in this process at {server} on a linked 82599 model, serving {what}");
        Some(peer_config(&ours, *server.ip()))
    } else {
        None
    };
    let serve =
        |ctx: &ixtcp_sockapi::Context, until: &Until, gauge: &Gauge| serve_http(ctx, server, root, until, gauge);
    let tallies = run_client(NAME, &args.stack.nic, args.stack.stats, ours, server_host, &gauges, &ended, app, serve)?;
    let done: u64 = tallies.iter().map(|t| t.transactions).sum();
    if tallies.iter().any(|t| t.total_failures() > 0) {
        return Err(ExampleError::Other("some requests failed (see above)".into()));
    }
    if done < args.requests && args.seconds.is_none() {
        return Err(ExampleError::Other(format!("only {done} of {} requests completed", args.requests)));
    }
    Ok(())
}
