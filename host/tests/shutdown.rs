//! How a host stops, on the one runtime: pinned cores (`stack.cpus`), real
//! threads and the monotonic clock, OS-seeded as in production. What the
//! application left open is closed with FIN and drained; what is still
//! open when the linger ends is reset; every core's queue pair is let go
//! (all its buffers back in the pool) before the device stops. Only
//! outcomes are asserted, never timings.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, HostStats, LinkedHosts};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, TcpListener, TcpStream, Token, Trigger};
use ixtcp_stack::StackConfig;

const SERVER: [u8; 4] = [10, 0, 0, 1];
const CLIENT: [u8; 4] = [10, 0, 0, 2];
const LISTENER: Token = Token(usize::MAX);

/// One CPU per core when the machine has as many (each host on the same
/// ones: they take turns), else none: the runtime then leaves the threads
/// where the OS puts them.
fn cpus(cores: u16) -> Option<Vec<usize>> {
    let ids: Vec<usize> = core_affinity::get_core_ids()?.into_iter().map(|c| c.id).collect();
    (ids.len() >= usize::from(cores)).then(|| ids[..usize::from(cores)].to_vec())
}

fn config(ip: [u8; 4], cores: u16, mode: Mode, linger: Duration) -> HostConfig {
    let stack = StackConfig { cores, cpus: cpus(cores), ..StackConfig::new(ip.into(), 24) };
    let mut c = HostConfig::model(stack, mode);
    c.linger = linger;
    c.stats_every = 1;
    c
}

/// Connects and writes `first`, retrying while the server core that RSS
/// picked does not listen yet (refused).
fn connect_and_send(ctx: &Context, addr: SocketAddr, first: &[u8]) -> TcpStream {
    let start = Instant::now();
    loop {
        // Liveness only (real threads): generous, and says what was stuck.
        assert!(start.elapsed() < Duration::from_secs(60), "stuck: no listener appeared after {:?}", start.elapsed());
        let mut c = TcpStream::connect(ctx, addr).expect("connect");
        c.set_nonblocking(false);
        match c.write_all(first) {
            Ok(()) => return c,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("connect: {e}"),
        }
    }
}

/// Echoes every connection of `ctx`'s core until the host is stopped,
/// closing each one when its peer has (end of stream). Returns the bytes
/// echoed.
fn echo_until_stopped(ctx: &Context, addr: SocketAddr) -> usize {
    let listener = TcpListener::bind(ctx, addr).expect("bind");
    let ep = Epoll::new(ctx).expect("epoll");
    ep.add(&listener, LISTENER, Interest::READABLE, Trigger::LEVEL).expect("add listener");
    let mut streams: Vec<Option<(TcpStream, Vec<u8>)>> = Vec::new();
    let mut events = Events::with_capacity(64);
    let mut echoed = 0;
    let mut buf = [0u8; 4096];
    while !ctx.is_stopped() {
        ep.wait(&mut events, Some(Duration::from_millis(10))).expect("wait");
        let ready: Vec<Token> = events.iter().map(|e| e.token()).collect();
        for token in ready {
            if token == LISTENER {
                while let Ok((s, _)) = listener.accept() {
                    ep.add(&s, Token(streams.len()), Interest::READABLE | Interest::WRITABLE, Trigger::LEVEL)
                        .expect("add stream");
                    streams.push(Some((s, Vec::new())));
                }
                continue;
            }
            let Some(slot) = streams.get_mut(token.0) else { continue };
            let Some((s, pending)) = slot.as_mut() else { continue };
            let mut eof = false;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server read: {e}"),
                }
            }
            match s.write(pending) {
                Ok(n) => {
                    pending.drain(..n);
                    echoed += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("server write: {e}"),
            }
            if eof && pending.is_empty() {
                let (s, _) = slot.take().expect("open stream");
                ep.delete(&s).expect("delete");
                s.close().expect("close");
            }
        }
    }
    // Streams still open are the runtime's to close (FIN after the data).
    echoed
}

/// Every core's counters and buffers once the host stopped: no connection
/// left, every buffer back in its pool.
fn assert_all_let_go(name: &str, stats: &HostStats) {
    for (core, s) in stats.per_core().iter().enumerate() {
        assert_eq!(s.conns_open, 0, "{name} core {core}: a connection outlived the host: {s:?}");
    }
    for (core, (free, capacity)) in stats.buffers().into_iter().enumerate() {
        assert_eq!(free, capacity, "{name} core {core}: buffers not back in the pool");
    }
}

/// Each client core keeps five echo connections open and returns: the
/// runtime closes them with FIN, the servers close their ends at end of
/// stream, and every connection of both hosts ends closed, none reset.
fn pinned_cores_echo_and_shut_down_gracefully(mode: Mode) {
    let linger = Duration::from_secs(30);
    let hosts = LinkedHosts::start(config(SERVER, 2, mode, linger), config(CLIENT, 2, mode, linger)).expect("start");
    let (server_stats, client_stats) = (hosts.server.stats(), hosts.client.stats());
    let addr: SocketAddr = (SERVER, 7).into();
    let (echoed, verified) = hosts
        .run(
            |ctx| echo_until_stopped(ctx, addr),
            |ctx| {
                let msg = [ctx.core() as u8 ^ 0x5a; 1000];
                let mut open = Vec::new();
                let mut verified = 0;
                for _ in 0..5 {
                    let mut c = connect_and_send(ctx, addr, &msg);
                    let mut back = [0u8; 1000];
                    c.read_exact(&mut back).expect("echo");
                    assert!(back == msg, "core {}: the echo differs", ctx.core());
                    verified += 1;
                    open.push(c);
                }
                // Returning with the streams open: the runtime closes them.
                verified
            },
        )
        .expect("run");
    assert_eq!(verified.iter().sum::<usize>(), 10);
    assert_eq!(echoed.iter().sum::<usize>(), 10_000);
    for (name, stats) in [("server", &server_stats), ("client", &client_stats)] {
        let t = stats.total();
        assert_eq!(t.conns_reset, 0, "{name}: drained with FIN, not RST: {t:?}");
        assert_eq!(t.conns_closed, 10, "{name}: {t:?}");
        assert_all_let_go(name, stats);
    }
}

#[test]
fn pinned_cores_echo_and_shut_down_gracefully_threaded() {
    pinned_cores_echo_and_shut_down_gracefully(Mode::Threaded);
}

#[test]
fn pinned_cores_echo_and_shut_down_gracefully_inline() {
    pinned_cores_echo_and_shut_down_gracefully(Mode::Inline);
}

/// The client closes (FIN) a connection whose server end stays open until
/// the server host is stopped, which happens only after the client host
/// has stopped: the client's linger ends first, and the connection is
/// reset then, on both hosts, instead of being left to the peer's timers.
fn open_past_the_linger_is_reset(mode: Mode) {
    let client_linger = Duration::from_millis(200);
    let server = config(SERVER, 1, mode, Duration::from_secs(30));
    let hosts = LinkedHosts::start(server, config(CLIENT, 1, mode, client_linger)).expect("start");
    let (server_stats, client_stats) = (hosts.server.stats(), hosts.client.stats());
    let addr: SocketAddr = (SERVER, 7).into();
    hosts
        .run(
            |ctx| {
                let listener = TcpListener::bind(ctx, addr).expect("bind");
                let mut held = Vec::new();
                while !ctx.is_stopped() {
                    match listener.accept() {
                        Ok((s, _)) => held.push(s),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                        Err(e) => panic!("accept: {e}"),
                    }
                    // Inline, the stack runs only when this thread asks.
                    ctx.quiesce().expect("drive the stack");
                }
                held.len()
            },
            |ctx| {
                let c = connect_and_send(ctx, addr, b"x");
                let start = Instant::now();
                while c.peer_addr().is_err() {
                    assert!(start.elapsed() < Duration::from_secs(60), "never established");
                    ctx.quiesce().expect("drive the stack");
                }
                c.close().expect("close");
            },
        )
        .expect("run");
    let (s, c) = (server_stats.total(), client_stats.total());
    assert_eq!((c.conns_reset, c.conns_closed), (1, 0), "client: reset at the end of its linger: {c:?}");
    assert_eq!((s.conns_reset, s.conns_closed), (1, 0), "server: reset by the client: {s:?}");
    assert_all_let_go("server", &server_stats);
    assert_all_let_go("client", &client_stats);
}

#[test]
fn open_past_the_linger_is_reset_threaded() {
    open_past_the_linger_is_reset(Mode::Threaded);
}

#[test]
fn open_past_the_linger_is_reset_inline() {
    open_past_the_linger_is_reset(Mode::Inline);
}

/// `Host::serve`: the application's own threads attach to the cores of a
/// linked pair's server and client hosts, exchange data, drop their
/// contexts; `join` then stops each device. A core attached twice is
/// refused.
#[test]
fn cores_attached_from_application_threads() {
    // Long enough for any machine: each core stops as soon as it holds no
    // connection.
    let linger = Duration::from_secs(10);
    let (server, client) = (config(SERVER, 1, Mode::Threaded, linger), config(CLIENT, 1, Mode::Inline, linger));
    let LinkedHosts { server, client } = LinkedHosts::start(server, client).expect("linked hosts");
    let (server, client) = (server.serve().expect("serve"), client.serve().expect("serve"));
    let addr = SocketAddr::from((SERVER, 7));
    std::thread::scope(|s| {
        let server = &server;
        s.spawn(move || {
            let ctx = server.attach(0).expect("attach the server core");
            assert_eq!(server.attach(0).unwrap_err().kind(), ErrorKind::AlreadyExists);
            let l = TcpListener::bind(&ctx, addr).expect("bind");
            l.set_nonblocking(false);
            let (s, _) = l.accept().expect("accept");
            s.set_nonblocking(false);
            let mut req = [0; 5];
            (&s).read_exact(&mut req).expect("read");
            (&s).write_all(&req).expect("echo");
            let mut rest = Vec::new();
            (&s).read_to_end(&mut rest).expect("read to end");
            assert!(rest.is_empty());
        });
        let ctx = client.attach(0).expect("attach the client core");
        let c = connect_and_send(&ctx, addr, b"hello");
        c.set_nonblocking(false);
        let mut echo = [0; 5];
        (&c).read_exact(&mut echo).expect("read echo");
        assert_eq!(&echo, b"hello");
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        drop(c);
        drop(ctx);
    });
    let stats = server.stats();
    client.join().expect("client join");
    server.join().expect("server join");
    assert_eq!(stats.total().conns_reset, 0, "{:?}", stats.total());
}

/// A client application that panics stops the server all the same: `run`
/// passes the panic on instead of waiting for a server that nobody stops
/// (a failing test used to hang here). The servers block in a read that
/// only the stop ends. The run happens on a thread of its own so that a
/// regression is a failure after a generous bound, not a hung test.
fn a_panicking_client_stops_the_server(mode: Mode) {
    let linger = Duration::from_millis(100);
    let hosts = LinkedHosts::start(config(SERVER, 1, mode, linger), config(CLIENT, 1, mode, linger)).expect("start");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hosts.run(
                |ctx| {
                    let s = ixtcp_sockapi::UdpSocket::bind(ctx, (SERVER, 9).into()).expect("bind");
                    s.set_nonblocking(false);
                    // Blocks until the stop: nothing is ever sent here.
                    s.recv_from(&mut [0u8; 16]).is_err()
                },
                |_| panic!("the client application fails"),
            )
        }));
        let _ = tx.send(outcome.is_err());
    });
    let panicked = rx.recv_timeout(Duration::from_secs(120)).expect("run did not return: the server was never stopped");
    assert!(panicked, "the client's panic reaches the caller of run");
}

#[test]
fn a_panicking_client_stops_the_server_threaded() {
    a_panicking_client_stops_the_server(Mode::Threaded);
}

#[test]
fn a_panicking_client_stops_the_server_inline() {
    a_panicking_client_stops_the_server(Mode::Inline);
}
