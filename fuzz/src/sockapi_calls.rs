//! Arbitrary sockapi call sequences on one inline context over the
//! in-memory test engine: bind, accept, connect, read, write, shutdown,
//! close, abort, options, epoll add/modify/delete/wait, dropping handles,
//! in any order and on any handle (closed ones included).
//!
//! Every socket is non-blocking and every wait has a zero timeout, so an
//! input never blocks. Misuse must be an error, never a panic; once every
//! handle is closed and dropped, the context holds no socket.

use std::io::{IoSlice, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::time::Duration;

use ixtcp_sockapi::testing::{TestConfig, TestNet};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, TcpListener, TcpStream, Token, Trigger};

use crate::Input;

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn addr(i: &mut Input) -> SocketAddr {
    let port = match i.u8() % 5 {
        0 => i.u16(),
        k => 79 + u16::from(k),
    };
    SocketAddr::V4(SocketAddrV4::new(HOST, port))
}

fn interest(b: u8) -> Interest {
    match b % 3 {
        0 => Interest::READABLE,
        1 => Interest::WRITABLE,
        _ => Interest::READABLE | Interest::WRITABLE,
    }
}

fn trigger(b: u8) -> Trigger {
    match b % 4 {
        0 => Trigger::LEVEL,
        1 => Trigger::EDGE,
        2 => Trigger::LEVEL.oneshot(),
        _ => Trigger::EDGE.oneshot(),
    }
}

/// Runs one input. Operations (opcode byte modulo 16): bind, accept,
/// connect, read, write (plain and vectored), shutdown, close, abort,
/// options, epoll new/add/modify/delete/wait, drop a handle, wait.
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let cfg = TestConfig {
        send_buffer: usize::from(i.u8() % 16 + 1) * 256,
        recv_buffer: usize::from(i.u8() % 16 + 1) * 256,
        syn_retries: 2,
        ..TestConfig::default()
    };
    let net = TestNet::with_config(cfg);
    let ctx = Context::inline(net.engine(HOST));
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut streams: Vec<TcpStream> = Vec::new();
    let mut epolls: Vec<Epoll> = Vec::new();
    let mut events = Events::with_capacity(16);
    let mut buf = vec![0u8; 4096];
    let mut ops = 0;
    while !i.is_empty() && ops < 1024 {
        ops += 1;
        let pick = usize::from(i.u8());
        match i.u8() % 16 {
            0 => {
                let a = addr(&mut i);
                let backlog = usize::from(i.u8() % 8);
                if let Ok(l) = TcpListener::bind_with_backlog(&ctx, a, backlog) {
                    l.set_nonblocking(true);
                    listeners.push(l);
                }
            }
            1 => {
                if let Some(l) = listeners.get(pick % listeners.len().max(1))
                    && let Ok((s, _)) = l.accept()
                {
                    s.set_nonblocking(true);
                    streams.push(s);
                }
            }
            2 => {
                let a = addr(&mut i);
                if let Ok(s) = TcpStream::connect(&ctx, a) {
                    s.set_nonblocking(true);
                    streams.push(s);
                }
            }
            3 => {
                if let Some(mut s) = streams.get(pick % streams.len().max(1)) {
                    let n = usize::from(i.u16()) % buf.len();
                    let _ = s.read(&mut buf[..n]);
                }
            }
            4 => {
                let n = usize::from(i.u16() % 4096);
                let data = i.bytes(n).to_vec();
                if let Some(mut s) = streams.get(pick % streams.len().max(1)) {
                    if i.u8().is_multiple_of(2) {
                        let _ = s.write(&data);
                    } else {
                        let (a, b) = data.split_at(data.len() / 2);
                        let _ = s.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]);
                    }
                    let _ = s.flush();
                }
            }
            5 => {
                let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][usize::from(i.u8() % 3)];
                if let Some(s) = streams.get(pick % streams.len().max(1)) {
                    let _ = s.shutdown(how);
                }
            }
            6 => {
                if let Some(s) = streams.get(pick % streams.len().max(1)) {
                    let _ = s.close();
                }
            }
            7 => {
                if let Some(s) = streams.get(pick % streams.len().max(1)) {
                    let _ = s.abort();
                }
            }
            8 => {
                let v = i.u16();
                if let Some(s) = streams.get(pick % streams.len().max(1)) {
                    let _ = match v % 6 {
                        0 => s.set_nodelay(v & 0x100 != 0),
                        1 => s.set_keepalive((v & 0x100 != 0).then(|| Duration::from_millis(u64::from(v)))),
                        2 => s.set_send_buffer_size(usize::from(v)),
                        3 => s.set_recv_buffer_size(usize::from(v)),
                        4 => s.take_error().map(|_| ()),
                        _ => s.peer_addr().and_then(|_| s.local_addr()).map(|_| ()),
                    };
                }
            }
            9 => {
                if epolls.len() < 4
                    && let Ok(ep) = Epoll::new(&ctx)
                {
                    epolls.push(ep);
                }
            }
            10 | 11 => {
                let (tok, int, trig, which) = (i.u8(), i.u8(), i.u8(), i.u8());
                if let Some(ep) = epolls.get(pick % epolls.len().max(1)) {
                    let modify = i.u8().is_multiple_of(2);
                    let (t, n, g) = (Token(usize::from(tok)), interest(int), trigger(trig));
                    let _ = if which % 2 == 0 {
                        match streams.get(usize::from(which) % streams.len().max(1)) {
                            Some(s) if modify => ep.modify(s, t, n, g),
                            Some(s) => ep.add(s, t, n, g),
                            None => Ok(()),
                        }
                    } else {
                        match listeners.get(usize::from(which) % listeners.len().max(1)) {
                            Some(l) if modify => ep.modify(l, t, n, g),
                            Some(l) => ep.add(l, t, n, g),
                            None => Ok(()),
                        }
                    };
                }
            }
            12 => {
                let which = usize::from(i.u8());
                if let Some(ep) = epolls.get(pick % epolls.len().max(1))
                    && let Some(s) = streams.get(which % streams.len().max(1))
                {
                    let _ = ep.delete(s);
                }
            }
            13 => {
                if let Some(ep) = epolls.get(pick % epolls.len().max(1)) {
                    events.clear();
                    let _ = ep.wait(&mut events, Some(Duration::ZERO));
                    for e in events.iter() {
                        let _ = (e.token(), e.is_readable(), e.is_writable(), e.is_hang_up(), e.is_error());
                    }
                }
            }
            14 => match i.u8() % 3 {
                0 if !streams.is_empty() => drop(streams.swap_remove(pick % streams.len())),
                1 if !listeners.is_empty() => {
                    let l = listeners.swap_remove(pick % listeners.len());
                    if i.u8().is_multiple_of(2) {
                        let _ = l.close();
                    }
                }
                _ if !epolls.is_empty() => drop(epolls.swap_remove(pick % epolls.len())),
                _ => {}
            },
            _ => {
                // Let the engine run: a zero-timeout wait advances it.
                if let Ok(ep) = Epoll::new(&ctx) {
                    events.clear();
                    let _ = ep.wait(&mut events, Some(Duration::ZERO));
                }
            }
        }
    }
    for s in &streams {
        let _ = s.abort();
    }
    for l in &listeners {
        let _ = l.close();
    }
    drop(streams);
    drop(listeners);
    drop(epolls);
    assert_eq!(ctx.socket_count(), 0, "sockets left after every handle was closed and dropped");
}
