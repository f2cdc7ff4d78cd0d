//! The runtimes themselves: several cores, clean stop (FIN, not RST, for
//! what the application left open), panics propagated, bad configuration.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ixtcp_sockapi::testing::{TestConfig, TestNet};
use ixtcp_sockapi::{Epoll, Events, Interest, Mode, Runtime, TcpListener, TcpStream, Token, Trigger};
use std::sync::Barrier;

both_runtimes!(
    left_open_sockets_close_with_fin,
    echo_across_four_cores,
    app_panic_is_propagated,
    cores_attached_from_the_applications_threads,
    attach_refuses_a_core_twice_and_one_it_lacks,
);
on_models!(echo_across_four_cores,);
// The other two build their own test-engine runtimes whatever the backend.

fn connect_retrying(ctx: &ixtcp_sockapi::Context, port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < SOON, "no listener appeared");
        let c = TcpStream::connect(ctx, addr(port)).unwrap();
        let mut err = None;
        settle(ctx, "connect", || {
            err = c.take_error().unwrap();
            err.is_some() || c.peer_addr().is_ok()
        });
        match err {
            None => return c,
            Some(e) if e.kind() == ErrorKind::ConnectionRefused => std::thread::sleep(Duration::from_millis(1)),
            Some(e) => panic!("connect: {e}"),
        }
    }
}

fn left_open_sockets_close_with_fin(mode: Mode) {
    let net = TestNet::new();
    let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(IP))).unwrap();
    rt.run(|ctx| {
        if ctx.core() == 0 {
            let l = TcpListener::bind(ctx, addr(80)).unwrap();
            l.set_nonblocking(false);
            let (s, _) = l.accept().unwrap();
            (&s).write_all(b"bye").unwrap();
            // Return with the listener and the stream open, data unsent:
            // the runtime sends it, then FIN.
            std::mem::forget(l);
            std::mem::forget(s);
        } else {
            let c = connect_retrying(ctx, 80);
            assert_eq!(read_to_eof(ctx, &c), b"bye");
        }
    })
    .unwrap();
    let stats = net.stats();
    assert_eq!(stats.resets, 0, "{stats:?}");
    assert_eq!(stats.fins, 2, "{stats:?}");
    assert_eq!(net.live_connections(), 0);
}

fn echo_across_four_cores(mode: Mode) {
    const CORES: usize = 4;
    const CLIENTS: usize = 16;
    let finished = AtomicUsize::new(0);
    let results = cores(mode, TestConfig::default(), CORES, |env| {
        // Every core listens on port 80; the network spreads connections by
        // a hash of the 4-tuple, as RSS does.
        let l = TcpListener::bind(env.ctx, addr(80)).unwrap();
        let ep = Epoll::new(env.ctx).unwrap();
        ep.add(&l, Token(usize::MAX), Interest::READABLE, Trigger::EDGE).unwrap();
        // Wait until all cores listen, so no connect is refused.
        std::thread::sleep(Duration::from_millis(20));
        let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect_retrying(env.ctx, 80)).collect();
        for (i, c) in clients.iter().enumerate() {
            ep.add(c, Token(i), Interest::READABLE, Trigger::EDGE).unwrap();
            (&*c).write_all(format!("core {} client {i}", env.ctx.core()).as_bytes()).unwrap();
        }
        let mut servers: Vec<TcpStream> = Vec::new();
        let mut replies = vec![Vec::new(); CLIENTS];
        let mut events = Events::with_capacity(64);
        let start = Instant::now();
        let mut reported = false;
        let done = |r: &Vec<Vec<u8>>| {
            r.iter().enumerate().all(|(i, v)| v.len() == format!("core {} client {i}", env.ctx.core()).len())
        };
        // Keep serving after our own clients are done: other cores' clients
        // may be connected to us. Stop when every core is done.
        while !env.ctx.is_stopped() {
            assert!(start.elapsed() < SOON, "echo stalled");
            ep.wait(&mut events, Some(Duration::from_millis(5))).unwrap();
            for ev in &events {
                match ev.token() {
                    Token(usize::MAX) => {
                        while let Ok((s, _)) = l.accept() {
                            ep.add(&s, Token(1000 + servers.len()), Interest::READABLE, Trigger::EDGE).unwrap();
                            servers.push(s);
                        }
                    }
                    Token(i) if i >= 1000 => {
                        let s = &servers[i - 1000];
                        let mut buf = [0; 256];
                        loop {
                            match (&*s).read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => (&*s).write_all(&buf[..n]).unwrap(),
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    Token(i) => {
                        drain(&clients[i], &mut replies[i]).unwrap();
                    }
                }
            }
            if !reported && done(&replies) {
                reported = true;
                if finished.fetch_add(1, Ordering::SeqCst) + 1 == CORES {
                    env.ctx.stop_handle().stop();
                }
            }
        }
        for (i, r) in replies.iter().enumerate() {
            assert_eq!(r, format!("core {} client {i}", env.ctx.core()).as_bytes());
        }
        servers.len()
    });
    assert_eq!(results.iter().sum::<usize>(), CORES * CLIENTS, "every connection served once: {results:?}");
    assert!(results.iter().filter(|&&n| n > 0).count() > 1, "connections spread over cores: {results:?}");
}

fn app_panic_is_propagated(mode: Mode) {
    let net = TestNet::new();
    let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(IP))).unwrap();
    let start = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.run(|ctx| {
            let _l = TcpListener::bind(ctx, addr(80 + ctx.core() as u16));
            if ctx.core() == 1 {
                panic!("application bug");
            }
        })
    }));
    assert!(r.is_err());
    assert!(start.elapsed() < SOON);
}

#[test]
fn zero_cores_is_invalid() {
    let net = TestNet::new();
    let r = Runtime::builder().build(0, |_| Ok(net.engine(IP)));
    assert_kind(r.map(|_| ()), ErrorKind::InvalidInput);
}

#[test]
fn factory_error_is_returned() {
    let r = Runtime::builder()
        .build(2, |core| if core == 1 { Err(std::io::Error::other("no NIC")) } else { Ok(TestNet::new().engine(IP)) });
    assert_eq!(r.map(|_| ()).unwrap_err().to_string(), "no NIC");
}

/// `Runtime::start` + `Started::attach`: threads the application made take
/// a core each, core 0 serves and core 1 connects to it; when each drops
/// its context, what it left open closes with FIN; `join` then returns.
fn cores_attached_from_the_applications_threads(mode: Mode) {
    let net = TestNet::new();
    let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(IP))).unwrap();
    let started = rt.start().unwrap();
    let listening = Barrier::new(2);
    std::thread::scope(|s| {
        let (started, listening) = (&started, &listening);
        s.spawn(move || {
            let ctx = started.attach(0).expect("attach core 0");
            assert_eq!(ctx.core(), 0);
            let l = TcpListener::bind(&ctx, addr(80)).unwrap();
            listening.wait();
            l.set_nonblocking(false);
            let (s, _) = l.accept().unwrap();
            s.set_nonblocking(false);
            let mut req = [0; 4];
            (&s).read_exact(&mut req).unwrap();
            (&s).write_all(&req).unwrap();
            // Left open: dropping the context closes it after its data.
            std::mem::forget(s);
        });
        s.spawn(move || {
            let ctx = started.attach(1).expect("attach core 1");
            listening.wait();
            let c = connect_retrying(&ctx, 80);
            c.set_nonblocking(false);
            (&c).write_all(b"ping").unwrap();
            let mut echo = [0; 4];
            (&c).read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"ping");
            drop(c);
        });
    });
    started.join().unwrap();
    let stats = net.stats();
    assert_eq!(stats.resets, 0, "{stats:?}");
    assert_eq!(net.live_connections(), 0);
}

fn attach_refuses_a_core_twice_and_one_it_lacks(mode: Mode) {
    let net = TestNet::new();
    let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(IP))).unwrap();
    let started = rt.start().unwrap();
    let beyond = started.attach(2).unwrap_err();
    assert_eq!(beyond.kind(), ErrorKind::InvalidInput);
    assert!(beyond.to_string().contains("core 2 of a runtime with 2 cores"), "{beyond}");
    let ctx = started.attach(1).expect("attach core 1");
    let twice = started.attach(1).unwrap_err();
    assert_eq!(twice.kind(), ErrorKind::AlreadyExists);
    assert!(twice.to_string().contains("core 1 already has a context"), "{twice}");
    drop(ctx);
    // Core 0 was never attached: joining lets it go too.
    started.join().unwrap();
}
