//! Misuse is an error, never a panic: handles used after close, handles of
//! another context, epoll misuse, and random sequences of API calls. Every
//! test runs on both runtimes.

mod common;

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use common::*;
use ixtcp_sockapi::testing::{TestConfig, TestNet};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, TcpListener, TcpStream, Token, Trigger};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

both_runtimes!(
    stream_use_after_close,
    listener_use_after_close,
    handles_of_another_context,
    epoll_misuse,
    random_call_sequences
);
on_models!(stream_use_after_close, listener_use_after_close, epoll_misuse, random_call_sequences,);
// Not on the models: `handles_of_another_context` connects from a test
// engine's host to this one, which the models' link does not reach.

fn stream_use_after_close(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let (c, s) = pair(env.ctx, 80);
        let ep = Epoll::new(env.ctx).unwrap();
        ep.add(&c, Token(1), Interest::READABLE, Trigger::LEVEL).unwrap();
        c.close().unwrap();
        let nc = ErrorKind::NotConnected;
        assert_kind(c.close(), nc);
        assert_kind(c.abort(), nc);
        assert_kind((&c).read(&mut [0; 4]), nc);
        assert_kind((&c).read_vectored(&mut [IoSliceMut::new(&mut [0; 4])]), nc);
        assert_kind((&c).write(b"x"), nc);
        assert_kind((&c).write_vectored(&[IoSlice::new(b"x")]), nc);
        assert_kind((&c).flush(), nc);
        assert_kind(c.shutdown(Shutdown::Both), nc);
        assert_kind(c.local_addr(), nc);
        assert_kind(c.peer_addr(), nc);
        assert_kind(c.take_error(), nc);
        assert_kind(c.set_nodelay(true), nc);
        assert_kind(c.nodelay(), nc);
        assert_kind(c.set_keepalive(None), nc);
        assert_kind(c.set_send_buffer_size(10), nc);
        assert_kind(c.recv_buffer_size(), nc);
        // Closing removed the registration; the handle cannot be re-added.
        assert_kind(ep.modify(&c, Token(1), Interest::READABLE, Trigger::LEVEL), nc);
        assert_kind(ep.delete(&c), nc);
        assert_kind(ep.add(&c, Token(1), Interest::READABLE, Trigger::LEVEL), nc);
        // Its slot is reused by a new socket; the old handle still misses.
        let (_c2, _s2) = pair(env.ctx, 81);
        assert_kind((&c).read(&mut [0; 4]), nc);
        s.abort().unwrap();
        assert_kind(s.abort(), nc);
        drop(c); // dropping a closed handle is fine
    });
}

fn listener_use_after_close(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let l = TcpListener::bind(env.ctx, addr(80)).unwrap();
        l.close().unwrap();
        assert_kind(l.close(), ErrorKind::NotConnected);
        assert_kind(l.accept(), ErrorKind::NotConnected);
        assert_kind(l.local_addr(), ErrorKind::NotConnected);
        l.set_nonblocking(false);
        assert_kind(l.accept(), ErrorKind::NotConnected);
        let ep = Epoll::new(env.ctx).unwrap();
        assert_kind(ep.add(&l, Token(0), Interest::READABLE, Trigger::EDGE), ErrorKind::NotConnected);
    });
}

fn handles_of_another_context(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        // A second context on the same thread: another core of another host.
        let other = Context::inline(env.net.engine([10, 0, 0, 2].into()));
        let (c, _s) = pair(env.ctx, 80);
        let l = TcpListener::bind(env.ctx, addr(81)).unwrap();
        let ep = Epoll::new(&other).unwrap();
        let inval = ErrorKind::InvalidInput;
        assert_kind(ep.add(&c, Token(0), Interest::READABLE, Trigger::LEVEL), inval);
        assert_kind(ep.add(&l, Token(0), Interest::READABLE, Trigger::LEVEL), inval);
        assert_kind(ep.modify(&c, Token(0), Interest::READABLE, Trigger::LEVEL), inval);
        assert_kind(ep.delete(&l), inval);
        // The other context works on its own, and talks to this host.
        let far = TcpStream::connect(&other, addr(81)).unwrap();
        let mut accepted = None;
        settle(env.ctx, "cross-host accept", || {
            let _ = is_readable(&far); // drives the other context's stack too
            accepted = l.accept().ok();
            accepted.is_some()
        });
        assert_eq!(accepted.unwrap().1, far.local_addr().unwrap());
    });
}

fn epoll_misuse(mode: Mode) {
    one_core(mode, TestConfig::default(), |env| {
        let (c, _s) = pair(env.ctx, 80);
        let ep = Epoll::new(env.ctx).unwrap();
        assert_kind(ep.delete(&c), ErrorKind::NotFound);
        assert_kind(ep.modify(&c, Token(1), Interest::WRITABLE, Trigger::EDGE), ErrorKind::NotFound);
        ep.add(&c, Token(1), Interest::READABLE, Trigger::EDGE).unwrap();
        assert_kind(ep.add(&c, Token(1), Interest::READABLE, Trigger::EDGE), ErrorKind::AlreadyExists);
        assert_kind(ep.wait(&mut Events::with_capacity(0), Some(Duration::ZERO)), ErrorKind::InvalidInput);
        ep.delete(&c).unwrap();
        assert_kind(ep.delete(&c), ErrorKind::NotFound);
    });
}

/// The error kinds the API may return; anything else is a bug.
const EXPECTED: &[ErrorKind] = &[
    ErrorKind::WouldBlock,
    ErrorKind::NotConnected,
    ErrorKind::InvalidInput,
    ErrorKind::AddrInUse,
    ErrorKind::AddrNotAvailable,
    ErrorKind::ConnectionRefused,
    ErrorKind::ConnectionReset,
    ErrorKind::BrokenPipe,
    ErrorKind::TimedOut,
    ErrorKind::AlreadyExists,
    ErrorKind::NotFound,
];

fn check<T>(r: io::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(EXPECTED.contains(&e.kind()), "unexpected error kind: {e:?}");
            None
        }
    }
}

/// Random sequences of calls on random handles, live or closed, with
/// random arguments: every call returns, with a result or an expected error.
fn random_call_sequences(mode: Mode) {
    let seed = seed();
    let cfg = TestConfig { send_buffer: 512, recv_buffer: 512, syn_retries: 3, ..TestConfig::default() };
    one_core(mode, cfg, |env| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let other = Context::inline(TestNet::new().engine([10, 0, 0, 9].into()));
        let other_stream = TcpStream::connect(&other, SocketAddr::from(([10, 0, 0, 9], 1))).unwrap();
        let mut listeners: Vec<TcpListener> = Vec::new();
        let mut streams: Vec<TcpStream> = Vec::new();
        let epolls = [Epoll::new(env.ctx).unwrap(), Epoll::new(env.ctx).unwrap()];
        let mut events = Events::with_capacity(16);
        let port = |rng: &mut ChaCha8Rng| rng.random_range(0..4u16) + 80;
        let interest = |rng: &mut ChaCha8Rng| match rng.random_range(0..3) {
            0 => Interest::READABLE,
            1 => Interest::WRITABLE,
            _ => Interest::READABLE | Interest::WRITABLE,
        };
        let trigger = |rng: &mut ChaCha8Rng| match rng.random_range(0..4) {
            0 => Trigger::LEVEL,
            1 => Trigger::EDGE,
            2 => Trigger::LEVEL.oneshot(),
            _ => Trigger::EDGE.oneshot(),
        };
        for _step in 0..3_000 {
            let si = if streams.is_empty() { None } else { Some(rng.random_range(0..streams.len())) };
            let li = if listeners.is_empty() { None } else { Some(rng.random_range(0..listeners.len())) };
            let ep = &epolls[rng.random_range(0..2)];
            match (rng.random_range(0..20), si, li) {
                (0, _, _) => {
                    if let Some(l) =
                        check(TcpListener::bind_with_backlog(env.ctx, addr(port(&mut rng)), rng.random_range(0..4)))
                    {
                        listeners.push(l);
                    }
                }
                (1 | 2, _, _) => {
                    let local = rng.random_bool(0.2).then(|| addr(rng.random_range(5000..5003)));
                    if let Some(s) = check(TcpStream::connect_from(env.ctx, addr(port(&mut rng)), local)) {
                        streams.push(s);
                    }
                }
                (3 | 4, _, Some(l)) => {
                    if let Some((s, _)) = check(listeners[l].accept()) {
                        streams.push(s);
                    }
                }
                (5 | 6, Some(s), _) => {
                    let mut buf = vec![0; rng.random_range(0..700)];
                    check((&streams[s]).read(&mut buf));
                }
                (7 | 8, Some(s), _) => {
                    let buf = vec![1; rng.random_range(0..700)];
                    check((&streams[s]).write(&buf));
                }
                (9, Some(s), _) => {
                    let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][rng.random_range(0..3)];
                    check(streams[s].shutdown(how));
                }
                (10, Some(s), _) => {
                    check(if rng.random_bool(0.5) { streams[s].close() } else { streams[s].abort() });
                }
                (11, Some(s), _) => {
                    // Drop a handle outright (closes it if still open).
                    streams.swap_remove(s);
                }
                (12, Some(s), _) => {
                    let s = &streams[s];
                    match rng.random_range(0..6) {
                        0 => drop(check(s.set_nodelay(rng.random()))),
                        1 => drop(check(s.set_keepalive(Some(Duration::from_millis(rng.random_range(0..3)))))),
                        2 => drop(check(s.set_send_buffer_size(rng.random_range(0..3000)))),
                        3 => drop(check(s.set_recv_buffer_size(rng.random_range(0..3000)))),
                        4 => drop(check(s.take_error())),
                        _ => {
                            check(s.local_addr());
                            check(s.peer_addr());
                        }
                    }
                }
                (13, Some(s), _) => {
                    check(ep.add(&streams[s], Token(s), interest(&mut rng), trigger(&mut rng)));
                }
                (14, Some(s), _) => {
                    check(ep.modify(&streams[s], Token(s), interest(&mut rng), trigger(&mut rng)));
                }
                (15, Some(s), _) => {
                    check(ep.delete(&streams[s]));
                }
                (16, _, Some(l)) => {
                    let l = &listeners[l];
                    match rng.random_range(0..3) {
                        0 => drop(check(ep.add(l, Token(1000), Interest::READABLE, trigger(&mut rng)))),
                        1 => drop(check(l.close())),
                        _ => drop(check(l.local_addr())),
                    }
                }
                (17, _, _) => {
                    check(ep.add(&other_stream, Token(0), Interest::READABLE, Trigger::LEVEL));
                }
                _ => {
                    check(ep.wait(&mut events, Some(Duration::ZERO)));
                }
            }
        }
        println!("ended with {} streams, {} listeners", streams.len(), listeners.len());
    });
}
