//! 64-byte echo on one core, threaded vs inline runtime, over the in-memory
//! test engine: measures sockapi's own overhead (jobs, events, buffers,
//! epoll), not TCP. Run: `cargo run --release -p ixtcp-sockapi --example echo_bench [conns] [secs]`.
//! The same workload over two linked 82599 models and the real stack:
//! `echo_models`.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ixtcp_sockapi::testing::TestNet;
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, Runtime, TcpListener, TcpStream, Token, Trigger};

const MSG: usize = 64;

fn echo(ctx: &Context, conns: usize, secs: u64) -> std::io::Result<u64> {
    let addr: SocketAddr = "10.0.0.1:7".parse().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind_with_backlog(ctx, addr, conns)?;
    let ep = Epoll::new(ctx)?;
    ep.add(&listener, Token(usize::MAX), Interest::READABLE, Trigger::EDGE)?;
    let clients = (0..conns).map(|_| TcpStream::connect(ctx, addr)).collect::<std::io::Result<Vec<_>>>()?;
    for (i, c) in clients.iter().enumerate() {
        c.set_nodelay(true)?;
        ep.add(c, Token(i), Interest::READABLE | Interest::WRITABLE, Trigger::EDGE.oneshot())?;
    }
    let mut servers: Vec<TcpStream> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let mut transactions = 0u64;
    let mut started: Option<Instant> = None;
    let msg = [0x5a; MSG];
    loop {
        if let Some(t) = started {
            if t.elapsed() >= Duration::from_secs(secs) {
                break;
            }
        }
        ep.wait(&mut events, Some(Duration::from_millis(100)))?;
        for ev in &events {
            match ev.token() {
                Token(usize::MAX) => {
                    while let Ok((s, _)) = listener.accept() {
                        ep.add(&s, Token(conns + servers.len()), Interest::READABLE, Trigger::EDGE)?;
                        servers.push(s);
                    }
                }
                Token(i) if i >= conns => {
                    let mut s = &servers[i - conns];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => s.write_all(&buf[..n])?,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Token(i) => {
                    // A client: writable once connected (send the first
                    // request), then readable when the echo is complete.
                    let mut c = &clients[i];
                    let mut got = 0;
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                    if got > 0 {
                        transactions += (got / MSG) as u64;
                    }
                    if ev.is_writable() || got > 0 {
                        started.get_or_insert_with(Instant::now);
                        c.write_all(&msg)?;
                    }
                    ep.modify(c, Token(i), Interest::READABLE, Trigger::EDGE.oneshot())?;
                }
            }
        }
    }
    let secs = started.map_or(1.0, |t| t.elapsed().as_secs_f64());
    Ok((transactions as f64 / secs) as u64)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    for mode in [Mode::Inline, Mode::Threaded] {
        let net = TestNet::new();
        let rt = Runtime::builder().mode(mode).build(1, |_| Ok(net.engine([10, 0, 0, 1].into())))?;
        let tps = rt.run(|ctx| echo(ctx, conns, secs))?.pop().unwrap_or(Ok(0))?;
        println!("{mode:?}: {conns} connections, {MSG} B echo: {tps} transactions/s on one core");
    }
    Ok(())
}
