//! 64-byte echo over the real stack on two linked 82599 models (the driver
//! on each, an in-memory link between them), threaded vs inline runtime:
//! transactions per second per core, with persistent connections in a
//! closed loop (each sends its next request when its echo is back).
//!
//! Run: `cargo run --release -p ixtcp-host --example echo_models [conns] [secs] [cores]`
//! (defaults: 64 connections per client core, 3 s, 1 core per host). No
//! hardware needed; the figures are in docs/BENCHMARKS.md.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, LinkedHosts};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, TcpListener, TcpStream, Token, Trigger};
use ixtcp_stack::StackConfig;

const MSG: usize = 64;
const LISTENER: Token = Token(usize::MAX);

fn server(ctx: &Context, addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind_with_backlog(ctx, addr, 1024)?;
    let ep = Epoll::new(ctx)?;
    ep.add(&listener, LISTENER, Interest::READABLE, Trigger::EDGE)?;
    let mut streams: Vec<TcpStream> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !ctx.is_stopped() {
        ep.wait(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nodelay(true)?;
                    ep.add(&s, Token(streams.len()), Interest::READABLE, Trigger::EDGE)?;
                    streams.push(s);
                }
                continue;
            }
            let Some(mut s) = streams.get(ev.token().0) else { continue };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => s.write_all(&buf[..n])?,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // A client went away: forget it.
                    Err(_) => break,
                }
            }
        }
    }
    Ok(())
}

/// Returns (transactions, seconds measured).
fn client(ctx: &Context, addr: SocketAddr, conns: usize, secs: u64) -> io::Result<(u64, f64)> {
    let ep = Epoll::new(ctx)?;
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        // The server may still be starting: retry refused connects.
        let start = Instant::now();
        let c = loop {
            let c = TcpStream::connect(ctx, addr)?;
            c.set_nonblocking(false);
            match (&c).write_all(&[0x5a; MSG]) {
                Ok(()) => break c,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused && start.elapsed() < Duration::from_secs(10) => {}
                Err(e) => return Err(e),
            }
        };
        c.set_nonblocking(true);
        c.set_nodelay(true)?;
        ep.add(&c, Token(i), Interest::READABLE, Trigger::EDGE)?;
        clients.push((c, 0usize));
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let mut transactions = 0u64;
    let (mut warm, mut started) = (true, Instant::now());
    let warmup = Duration::from_millis(300);
    let msg = [0x5a; MSG];
    loop {
        if warm && started.elapsed() >= warmup {
            (warm, started, transactions) = (false, Instant::now(), 0);
        }
        if !warm && started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        ep.wait(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            let Some((c, pending)) = clients.get_mut(ev.token().0) else { continue };
            let mut c: &TcpStream = c;
            loop {
                match c.read(&mut buf) {
                    Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed")),
                    Ok(n) => *pending += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            while *pending >= MSG {
                *pending -= MSG;
                transactions += 1;
                c.write_all(&msg)?;
            }
        }
    }
    Ok((transactions, started.elapsed().as_secs_f64()))
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let cores: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let addr: SocketAddr = ([10, 0, 0, 1], 7).into();
    for mode in [Mode::Inline, Mode::Threaded] {
        let cfg = |ip: [u8; 4]| {
            let mut c = HostConfig::model(StackConfig { cores, ..StackConfig::new(ip.into(), 24) }, mode);
            c.linger = Duration::from_millis(200);
            c
        };
        let hosts = LinkedHosts::start(cfg([10, 0, 0, 1]), cfg([10, 0, 0, 2]))?;
        let (server_stats, client_stats) = (hosts.server.stats(), hosts.client.stats());
        let (served, measured) = hosts.run(|ctx| server(ctx, addr), |ctx| client(ctx, addr, conns, secs))?;
        for r in served {
            r?;
        }
        let mut per_core = Vec::new();
        for r in measured {
            let (n, s) = r?;
            per_core.push(n as f64 / s);
        }
        let total: f64 = per_core.iter().sum();
        let (s, c) = (server_stats.total(), client_stats.total());
        println!(
            "{mode:?}: {cores} core(s) per host, {conns} connections per core, {MSG} B echo: \
             {:.0} transactions/s per core ({total:.0} in all); frames server rx {} tx {}, client rx {} tx {}",
            total / f64::from(cores),
            s.rx_packets,
            s.tx_packets,
            c.rx_packets,
            c.tx_packets
        );
    }
    Ok(())
}
