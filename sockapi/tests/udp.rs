//! `UdpSocket` over the test engine, on both runtimes: datagrams with
//! their boundaries, truncation, `WouldBlock` both ways, epoll readiness,
//! bounded queues with drops counted, connected sockets (peer filter, port
//! unreachable as `ConnectionRefused`), several cores binding one port,
//! and misuse.
mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ixtcp_sockapi::testing::{TestConfig, TestNet};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, Token, Trigger, UdpSocket};

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(salt)).collect()
}

/// Receives one datagram, waiting for it.
fn recv_one(ctx: &Context, s: &UdpSocket, buf: &mut [u8]) -> ixtcp_sockapi::RecvMeta {
    let mut got = None;
    settle(ctx, "a datagram", || match s.recv_from(buf) {
        Ok(m) => {
            got = Some(m);
            true
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("recv_from: {e}"),
    });
    got.expect("settled")
}

fn datagrams_keep_their_boundaries_and_every_byte(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        let caddr = client.local_addr().unwrap();
        assert_ne!(caddr.port(), 0, "an ephemeral port was picked");
        assert_eq!(server.max_payload().unwrap(), 1472);
        let lens = [1usize, 2, 100, 1000, 1471, 1472, 0];
        for (i, &len) in lens.iter().enumerate() {
            assert_eq!(client.send_to(&pattern(len, i as u8), addr(7)).unwrap(), len);
        }
        let mut buf = vec![0u8; 2048];
        for (i, &len) in lens.iter().enumerate() {
            let m = recv_one(env.ctx, &server, &mut buf);
            assert_eq!((m.len, m.datagram_len, m.from, m.truncated()), (len, len, caddr, false));
            assert_eq!(&buf[..len], &pattern(len, i as u8)[..], "datagram {i}");
            // Echo it back.
            server.send_to(&buf[..len], m.from).unwrap();
        }
        for (i, &len) in lens.iter().enumerate() {
            let m = recv_one(env.ctx, &client, &mut buf);
            assert_eq!((m.len, m.from), (len, addr(7)));
            assert_eq!(&buf[..len], &pattern(len, i as u8)[..], "echo {i}");
        }
        assert_kind(client.recv_from(&mut buf), ErrorKind::WouldBlock);
        assert_eq!(env.stats().datagrams, 2 * lens.len() as u64);
    })
}

fn a_datagram_longer_than_the_buffer_is_cut_and_says_so(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        client.send_to(&pattern(100, 1), addr(7)).unwrap();
        client.send_to(&pattern(5, 2), addr(7)).unwrap();
        let mut small = [0u8; 10];
        let m = recv_one(env.ctx, &server, &mut small);
        assert_eq!((m.len, m.datagram_len, m.truncated()), (10, 100, true));
        assert_eq!(&small[..], &pattern(100, 1)[..10]);
        // The rest of the first datagram is gone: the next is the second.
        let m = recv_one(env.ctx, &server, &mut small);
        assert_eq!((m.len, m.datagram_len, m.truncated()), (5, 5, false));
        assert_eq!(&small[..5], &pattern(5, 2)[..]);
        let m = {
            client.send_to(b"abc", addr(7)).unwrap();
            recv_one(env.ctx, &server, &mut [])
        };
        assert_eq!((m.len, m.datagram_len, m.truncated()), (0, 3, true), "an empty buffer takes the datagram");
    })
}

fn a_full_send_queue_would_block_and_becomes_writable_again(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        client.set_send_queue_len(3).unwrap();
        assert_eq!(client.send_queue_len().unwrap(), 3);
        let ep = Epoll::new(env.ctx).unwrap();
        ep.add(&client, Token(1), Interest::WRITABLE, Trigger::EDGE).unwrap();
        let mut events = Events::with_capacity(4);
        ep.wait(&mut events, Some(Duration::from_secs(1))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(1) && e.is_writable()), "writable at first");
        // Threaded, the stack may take datagrams while we queue: fill
        // until the queue says so.
        let mut sent = 0;
        loop {
            match client.send_to(&[sent as u8], addr(7)) {
                Ok(1) => sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                r => panic!("send_to: {r:?}"),
            }
            assert!(sent < 10_000, "the send queue never filled");
        }
        assert!(sent >= 3);
        let mut writable = false;
        settle(env.ctx, "a writable edge", || {
            ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
            writable |= events.iter().any(|e| e.token() == Token(1) && e.is_writable());
            writable
        });
        client.send_to(b"more", addr(7)).unwrap();
        let mut buf = [0u8; 8];
        for i in 0..sent {
            let m = recv_one(env.ctx, &server, &mut buf);
            assert_eq!(&buf[..m.len], &[i as u8], "in order");
        }
        assert_eq!(recv_one(env.ctx, &server, &mut buf).len, 4);
    })
}

fn epoll_reports_a_datagram_once_per_arrival_edge_triggered(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        let ep = Epoll::new(env.ctx).unwrap();
        ep.add(&server, Token(7), Interest::READABLE, Trigger::EDGE).unwrap();
        let mut events = Events::with_capacity(4);
        env.ctx.quiesce().unwrap();
        ep.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "nothing queued: not readable");
        client.send_to(b"one", addr(7)).unwrap();
        client.send_to(b"two", addr(7)).unwrap();
        let mut seen = 0;
        settle(env.ctx, "readable", || {
            ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
            seen += events.iter().filter(|e| e.token() == Token(7) && e.is_readable()).count();
            seen > 0
        });
        let mut buf = [0u8; 8];
        // Read one of two: no new edge until another arrives.
        env.ctx.quiesce().unwrap();
        assert_eq!(server.recv_from(&mut buf).unwrap().len, 3);
        ep.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "no new datagram: no new edge");
        assert_eq!(server.recv_from(&mut buf).unwrap().len, 3);
        assert_kind(server.recv_from(&mut buf), ErrorKind::WouldBlock);
        client.send_to(b"three", addr(7)).unwrap();
        let mut again = false;
        settle(env.ctx, "a new edge", || {
            ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
            again |= events.iter().any(|e| e.token() == Token(7) && e.is_readable());
            again
        });
        // Level-triggered: reported while a datagram is queued.
        ep.modify(&server, Token(8), Interest::READABLE, Trigger::LEVEL).unwrap();
        for _ in 0..3 {
            ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
            assert!(events.iter().any(|e| e.token() == Token(8)), "still queued: reported again");
        }
        assert_eq!(server.recv_from(&mut buf).unwrap().len, 5);
        ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
        ep.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "drained: not reported");
    })
}

fn a_full_receive_queue_drops_and_counts(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        server.set_recv_queue_len(4).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        for i in 0..10u8 {
            client.send_to(&[i], addr(7)).unwrap();
        }
        settle(env.ctx, "all ten handled", || env.stats().datagrams == 10);
        env.ctx.quiesce().unwrap();
        assert_eq!(server.dropped().unwrap(), 6);
        let mut buf = [0u8; 4];
        for i in 0..4u8 {
            let m = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..m.len], &[i], "the first four are kept");
        }
        assert_kind(server.recv_from(&mut buf), ErrorKind::WouldBlock);
        assert_eq!(server.stats().unwrap().dropped, 6);
    })
}

fn the_engines_own_queue_overflow_is_counted_too(mode: Mode) {
    // The engine keeps two; a socket drains it only when the stack runs,
    // and the stack runs after the sender's egress delivered all eight.
    one_core(mode, TestConfig { udp_queue: 2, ..TestConfig::default() }, |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        for i in 0..8u8 {
            client.send_to(&[i], addr(7)).unwrap();
        }
        env.ctx.flush().unwrap();
        settle(env.ctx, "eight handled", || {
            let s = env.stats();
            s.datagrams + s.datagrams_dropped == 8
        });
        env.ctx.quiesce().unwrap();
        let s = env.stats();
        if mode == Mode::Inline {
            // One iteration took all eight jobs, one egress delivered them.
            assert_eq!((s.datagrams, s.datagrams_dropped), (2, 6), "{s:?}");
        }
        assert_eq!(server.dropped().unwrap(), s.datagrams_dropped, "{s:?}");
        let mut kept = 0;
        while server.recv_from(&mut [0u8; 4]).is_ok() {
            kept += 1;
        }
        assert_eq!(kept + server.dropped().unwrap(), 8);
    })
}

fn a_connected_socket_hears_only_its_peer_and_gets_refused_for_a_closed_port(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let other = UdpSocket::bind(env.ctx, addr(8)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        assert_kind(client.peer_addr(), ErrorKind::NotConnected);
        assert_kind(client.send(b"x"), ErrorKind::NotConnected);
        client.connect(addr(7)).unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr(7));
        client.send(b"hello").unwrap();
        let mut buf = [0u8; 16];
        let m = recv_one(env.ctx, &server, &mut buf);
        other.send_to(b"not you", m.from).unwrap();
        server.send_to(b"reply", m.from).unwrap();
        let r = recv_one(env.ctx, &client, &mut buf);
        assert_eq!((&buf[..r.len], r.from), (&b"reply"[..], addr(7)));
        env.ctx.quiesce().unwrap();
        assert_kind(client.recv(&mut buf), ErrorKind::WouldBlock);
        assert_eq!(client.stats().unwrap().filtered, 1, "the other's datagram was dropped");

        // Port 9: nobody. The next receive says refused, once.
        client.connect(addr(9)).unwrap();
        client.send(b"anyone?").unwrap();
        let mut refused = false;
        settle(env.ctx, "connection refused", || match client.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                refused = true;
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            r => panic!("expected refused, got {r:?}"),
        });
        assert!(refused);
        assert_kind(client.recv(&mut buf), ErrorKind::WouldBlock);
        assert_eq!(env.stats().unreachable, 1);

        // An unconnected socket ignores the same error.
        let loose = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        loose.send_to(b"anyone?", addr(9)).unwrap();
        settle(env.ctx, "the second unreachable", || env.stats().unreachable == 2);
        env.ctx.quiesce().unwrap();
        assert_kind(loose.recv_from(&mut buf), ErrorKind::WouldBlock);
        assert!(loose.take_error().unwrap().is_none());

        // And the refusal comes on a send as well, through epoll as an error.
        let ep = Epoll::new(env.ctx).unwrap();
        ep.add(&client, Token(3), Interest::READABLE, Trigger::EDGE).unwrap();
        client.send(b"again?").unwrap();
        let mut events = Events::with_capacity(4);
        let mut error = false;
        settle(env.ctx, "an error event", || {
            ep.wait(&mut events, Some(Duration::from_millis(1))).unwrap();
            error |= events.iter().any(|e| e.token() == Token(3) && e.is_error());
            error
        });
        assert_kind(client.send(b"x"), ErrorKind::ConnectionRefused);
        client.send(b"x").unwrap();
    })
}

fn misuse_is_an_error_never_a_panic(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let s = UdpSocket::bind(env.ctx, addr(53)).unwrap();
        assert_kind(UdpSocket::bind(env.ctx, addr(53)), ErrorKind::AddrInUse);
        assert_kind(UdpSocket::bind(env.ctx, "10.9.9.9:53".parse().unwrap()), ErrorKind::AddrNotAvailable);
        assert_kind(UdpSocket::bind(env.ctx, "[::1]:53".parse().unwrap()), ErrorKind::InvalidInput);
        assert_kind(s.send_to(&[0; 1473], addr(54)), ErrorKind::InvalidInput);
        assert_kind(s.send_to(b"x", addr(0)), ErrorKind::InvalidInput);
        assert_kind(s.send_to(b"x", "0.0.0.0:53".parse().unwrap()), ErrorKind::InvalidInput);
        assert_kind(s.send_to(b"x", "[::1]:53".parse().unwrap()), ErrorKind::InvalidInput);
        assert_kind(s.connect(addr(0)), ErrorKind::InvalidInput);
        assert_kind(s.set_recv_queue_len(0), ErrorKind::InvalidInput);
        assert_kind(s.set_send_queue_len(0), ErrorKind::InvalidInput);
        // A destination only the engine can refuse: counted, kept for take_error.
        s.send_to(b"x", "255.255.255.255:53".parse().unwrap()).unwrap();
        settle(env.ctx, "the refusal", || s.stats().unwrap().send_failures == 1);
        assert_eq!(s.take_error().unwrap().map(|e| e.kind()), Some(ErrorKind::InvalidInput));
        assert!(s.take_error().unwrap().is_none(), "taken once");

        // A handle of another context.
        let foreign_ctx = Context::inline(TestNet::new().engine([10, 0, 0, 9].into()));
        let foreign = UdpSocket::bind(&foreign_ctx, "10.0.0.9:53".parse().unwrap()).unwrap();
        let ep = Epoll::new(env.ctx).unwrap();
        assert_kind(ep.add(&foreign, Token(0), Interest::READABLE, Trigger::EDGE), ErrorKind::InvalidInput);
        ep.add(&s, Token(0), Interest::READABLE, Trigger::EDGE).unwrap();
        assert_kind(ep.add(&s, Token(0), Interest::READABLE, Trigger::EDGE), ErrorKind::AlreadyExists);

        // Closed: every call says so; the port is free again.
        s.close().unwrap();
        assert_kind(s.close(), ErrorKind::NotConnected);
        assert_kind(s.send_to(b"x", addr(54)), ErrorKind::NotConnected);
        assert_kind(s.recv_from(&mut [0; 4]), ErrorKind::NotConnected);
        assert_kind(s.local_addr(), ErrorKind::NotConnected);
        assert_kind(s.take_error(), ErrorKind::NotConnected);
        assert_kind(ep.modify(&s, Token(0), Interest::READABLE, Trigger::EDGE), ErrorKind::NotConnected);
        env.ctx.quiesce().unwrap();
        let again = UdpSocket::bind(env.ctx, addr(53)).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr(53));
    })
}

/// Two cores of one host bind the same port; clients on a second host
/// spread over them by the 4-tuple hash, and every datagram is answered by
/// the core that got it.
fn every_core_binds_the_port_and_flows_spread(mode: Mode) {
    const CLIENTS: usize = 16;
    let net = TestNet::new();
    let served = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let done = AtomicUsize::new(0);
    let rt = ixtcp_sockapi::Runtime::builder()
        .mode(mode)
        .build(3, |i| Ok(net.engine(if i < 2 { IP } else { [10, 0, 0, 2].into() })));
    rt.unwrap()
        .run(|ctx| {
            let mut buf = [0u8; 64];
            if ctx.core() < 2 {
                let s = UdpSocket::bind(ctx, addr(7)).unwrap();
                while done.load(Ordering::Acquire) == 0 {
                    match s.recv_from(&mut buf) {
                        Ok(m) => {
                            served[ctx.core()].fetch_add(1, Ordering::Relaxed);
                            s.send_to(&buf[..m.len], m.from).unwrap();
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            let ep = Epoll::new(ctx).unwrap();
                            ep.wait(&mut Events::with_capacity(1), Some(Duration::from_millis(1))).unwrap();
                        }
                        Err(e) => panic!("server: {e}"),
                    }
                }
                return;
            }
            // Let both servers bind first (threads start in any order).
            let ep = Epoll::new(ctx).unwrap();
            let start = ctx.now_ns();
            while since(ctx, start) < Duration::from_millis(50) {
                ep.wait(&mut Events::with_capacity(1), Some(Duration::from_millis(5))).unwrap();
            }
            let clients: Vec<UdpSocket> =
                (0..CLIENTS).map(|_| UdpSocket::bind(ctx, "10.0.0.2:0".parse().unwrap()).unwrap()).collect();
            for (i, c) in clients.iter().enumerate() {
                c.connect(addr(7)).unwrap();
                c.send(format!("client {i}").as_bytes()).unwrap();
            }
            for (i, c) in clients.iter().enumerate() {
                let m = recv_one(ctx, c, &mut buf);
                assert_eq!(&buf[..m.len], format!("client {i}").as_bytes());
            }
            done.store(1, Ordering::Release);
        })
        .unwrap();
    let (a, b) = (served[0].load(Ordering::Relaxed), served[1].load(Ordering::Relaxed));
    assert_eq!(a + b, CLIENTS);
    assert!(a > 0 && b > 0, "both cores served some flows: {a} and {b}");
}

fn dropping_a_socket_sends_what_it_queued_and_frees_the_port(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        {
            let c = UdpSocket::bind(env.ctx, addr(9000)).unwrap();
            for i in 0..5u8 {
                c.send_to(&[i], addr(7)).unwrap();
            }
        }
        let mut buf = [0u8; 4];
        for i in 0..5u8 {
            let m = recv_one(env.ctx, &server, &mut buf);
            assert_eq!((&buf[..m.len], m.from), (&[i][..], SocketAddr::from((IP, 9000))));
        }
        env.ctx.quiesce().unwrap();
        UdpSocket::bind(env.ctx, addr(9000)).expect("the port is free again");
    })
}

fn datagrams_the_engine_has_no_room_for_wait_for_the_next_iteration(mode: Mode) {
    // The engine takes two datagrams per egress; twenty queued at once
    // leave over ten iterations, in order, none lost.
    one_core(mode, TestConfig { udp_tx_batch: 2, ..TestConfig::default() }, |env| {
        let server = UdpSocket::bind(env.ctx, addr(7)).unwrap();
        let client = UdpSocket::bind(env.ctx, addr(0)).unwrap();
        for i in 0..20u8 {
            client.send_to(&[i; 3], addr(7)).unwrap();
        }
        let mut buf = [0u8; 8];
        for i in 0..20u8 {
            let m = recv_one(env.ctx, &server, &mut buf);
            assert_eq!(&buf[..m.len], &[i; 3], "datagram {i}, in order");
        }
        assert_eq!(client.stats().unwrap(), ixtcp_sockapi::UdpStats::default(), "nothing dropped or refused");
    })
}

both_runtimes!(
    datagrams_the_engine_has_no_room_for_wait_for_the_next_iteration,
    datagrams_keep_their_boundaries_and_every_byte,
    a_datagram_longer_than_the_buffer_is_cut_and_says_so,
    a_full_send_queue_would_block_and_becomes_writable_again,
    epoll_reports_a_datagram_once_per_arrival_edge_triggered,
    a_full_receive_queue_drops_and_counts,
    the_engines_own_queue_overflow_is_counted_too,
    a_connected_socket_hears_only_its_peer_and_gets_refused_for_a_closed_port,
    misuse_is_an_error_never_a_panic,
    every_core_binds_the_port_and_flows_spread,
    dropping_a_socket_sends_what_it_queued_and_frees_the_port,
);
