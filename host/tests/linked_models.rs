//! The real stack under sockapi: two hosts over two linked 82599 models
//! (the driver on each), both runtimes, several cores.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, LinkedHosts};
use ixtcp_sockapi::{Mode, TcpListener, TcpStream};
use ixtcp_stack::StackConfig;

const SERVER: [u8; 4] = [10, 0, 0, 1];
const CLIENT: [u8; 4] = [10, 0, 0, 2];

fn hosts(mode: Mode, cores: u16) -> LinkedHosts {
    let cfg = |ip: [u8; 4]| {
        let mut c = HostConfig::model(StackConfig { cores, ..StackConfig::new(ip.into(), 24) }, mode);
        c.seed = Some(7 + u64::from(ip[3]));
        c.stats_every = 1;
        c
    };
    LinkedHosts::start(cfg(SERVER), cfg(CLIENT)).expect("start linked hosts")
}

/// Connects and writes `first`, retrying while the server is not
/// listening yet (refused).
fn connect_and_send(ctx: &ixtcp_sockapi::Context, addr: SocketAddr, first: &[u8]) -> TcpStream {
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

fn echo_over_models(mode: Mode) {
    let h = hosts(mode, 2);
    let (server_stats, client_stats) = (h.server.stats(), h.client.stats());
    let addr: SocketAddr = (SERVER, 7).into();
    let (served, sent) = h
        .run(
            move |ctx| {
                let l = TcpListener::bind(ctx, addr).expect("bind");
                l.set_nonblocking(false);
                let mut bytes = 0;
                // Each client core opens 4 connections; RSS spreads them.
                while !ctx.is_stopped() {
                    let (mut s, _) = match l.accept() {
                        Ok(a) => a,
                        Err(_) => break,
                    };
                    s.set_nonblocking(false);
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                s.write_all(&buf[..n]).expect("echo");
                                bytes += n;
                            }
                            Err(e) => panic!("server read: {e}"),
                        }
                    }
                    s.close().expect("close");
                }
                bytes
            },
            move |ctx| {
                let mut total = 0;
                for i in 0..4u8 {
                    let msg: Vec<u8> = (0..3000u32).map(|k| (k as u8) ^ i).collect();
                    let mut c = connect_and_send(ctx, addr, &msg);
                    c.shutdown(Shutdown::Write).expect("shutdown");
                    let mut back = Vec::new();
                    c.read_to_end(&mut back).expect("read");
                    assert!(back == msg, "echo differs on connection {i} of core {}", ctx.core());
                    total += back.len();
                }
                total
            },
        )
        .expect("run");
    assert_eq!(sent, vec![12_000, 12_000]);
    assert_eq!(served.iter().sum::<usize>(), 24_000);
    let (s, c) = (server_stats.total(), client_stats.total());
    // Connects that raced the server's listen were refused and retried.
    assert_eq!(c.conns_opened_active - c.conns_refused, 8, "{c:?}");
    assert_eq!(s.conns_opened_passive, 8, "{s:?}");
    assert_eq!(s.rx_misdirected + c.rx_misdirected, 0);
}

#[test]
fn echo_over_linked_models_inline() {
    echo_over_models(Mode::Inline);
}

#[test]
fn echo_over_linked_models_threaded() {
    echo_over_models(Mode::Threaded);
}
