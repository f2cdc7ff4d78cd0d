//! UDP echo over sockapi: the server loop of `udp_echo_server` (every core
//! binds the port; the NIC's hash keeps each flow on one core) and the
//! load of `udp_echo_client` (each flow keeps one datagram in flight and
//! checks every byte of the echo); and the same two over the kernel's
//! sockets, for the benchmark's "UDP echo" row.
//!
//! A datagram of the load carries its flow's sequence number in its first
//! bytes (as many of the 8 as fit) and bytes derived from the seed, the
//! flow and the sequence number after them. An echo is a transaction when
//! it equals the datagram in flight. UDP may lose datagrams: one not
//! echoed within [`UdpEchoLoad::timeout`] counts as a timeout and the flow
//! sends the next one; an echo arriving after that (an older sequence
//! number) is late and ignored; any other difference is a mismatch.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use ixtcp_sockapi::{Context, Epoll, Events, Interest, Token, Trigger, UdpSocket};

use crate::bench::apps::share;
use crate::reactor::{Gauge, Until};
use crate::session::{Failure, Tally};

/// Longest wait of one loop iteration, so that the stop flag is seen.
const TICK: Duration = Duration::from_millis(10);

/// The server on one core: echoes every datagram to `addr` back to its
/// sender until `until`.
pub fn serve_udp_echo(ctx: &Context, addr: SocketAddrV4, until: &Until, gauge: &Gauge) -> io::Result<Tally> {
    let sock = UdpSocket::bind(ctx, SocketAddr::V4(addr))?;
    let ep = Epoll::new(ctx)?;
    ep.add(&sock, Token(0), Interest::READABLE, Trigger::LEVEL)?;
    let mut events = Events::with_capacity(4);
    let mut buf = vec![0u8; 65_536];
    let mut tally = Tally::default();
    gauge.listening.store(true, std::sync::atomic::Ordering::Relaxed);
    while !until.reached(Instant::now()) && !ctx.is_stopped() {
        ep.wait(&mut events, Some(TICK))?;
        loop {
            let m = match sock.recv_from(&mut buf) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    tally.fail(Failure::Io, || format!("receive: {e}"));
                    break;
                }
            };
            tally.bytes_in += m.len as u64;
            if m.truncated() {
                tally.fail(Failure::Malformed, || format!("a datagram of {} B was cut", m.datagram_len));
                continue;
            }
            match sock.send_to(&buf[..m.len], m.from) {
                Ok(n) => {
                    tally.bytes_out += n as u64;
                    tally.transactions += 1;
                }
                // The send queue is full: the echo is lost, as the kernel
                // drops it when a socket's send buffer is.
                Err(e) if e.kind() == ErrorKind::WouldBlock => tally.fail(Failure::Io, || "send queue full".into()),
                Err(e) => tally.fail(Failure::Io, || format!("send to {}: {e}", m.from)),
            }
        }
        gauge.publish(&tally, 1);
    }
    gauge.publish(&tally, 1);
    Ok(tally)
}

/// What a UDP echo client core does.
#[derive(Debug, Clone)]
pub struct UdpEchoLoad {
    /// The server.
    pub server: SocketAddrV4,
    /// Flows (sockets, each one datagram in flight) over all client cores.
    pub flows: usize,
    /// Datagram size (1 ..= 1472).
    pub size: usize,
    /// Seed of the datagram contents.
    pub seed: u64,
    /// How long a datagram waits for its echo before it counts as lost.
    pub timeout: Duration,
}

/// The datagram number `seq` of flow `flow`: the sequence number first,
/// then bytes from the seed.
pub fn datagram(seed: u64, flow: u64, seq: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    let head = seq.to_be_bytes();
    out.extend_from_slice(&head[..size.min(8)]);
    let mut x = seed ^ flow.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
}

/// What an echo is, against the datagram in flight.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The datagram in flight, every byte.
    Match,
    /// An echo of an earlier datagram (one that timed out).
    Late,
    /// Anything else.
    Mismatch,
}

/// Compares an echo with the datagram `expect` (sequence number `seq`).
pub fn judge(echo: &[u8], expect: &[u8], seq: u64) -> Verdict {
    if echo == expect {
        return Verdict::Match;
    }
    if echo.len() == expect.len() && echo.len() >= 8 {
        let got = u64::from_be_bytes(echo[..8].try_into().unwrap_or([0; 8]));
        if got < seq {
            return Verdict::Late;
        }
    }
    Verdict::Mismatch
}

struct Flow {
    sock: UdpSocket,
    seq: u64,
    sent_at: Instant,
    msg: Vec<u8>,
}

/// The load on client core `index` of `cores`: its share of the flows,
/// one datagram in flight each, every echoed byte verified.
pub fn load_udp_echo(
    ctx: &Context,
    load: &UdpEchoLoad,
    (index, cores): (usize, usize),
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    let n = share(load.flows, index, cores);
    if n == 0 {
        return Ok(tally);
    }
    let ep = Epoll::new(ctx)?;
    let mut flows = Vec::with_capacity(n);
    for i in 0..n {
        let sock = UdpSocket::bind_for_peer(ctx, SocketAddr::V4(load.server))?;
        ep.add(&sock, Token(i), Interest::READABLE, Trigger::LEVEL)?;
        flows.push(Flow { sock, seq: 0, sent_at: Instant::now(), msg: Vec::with_capacity(load.size) });
    }
    let flow_id = |i: usize| ((index as u64) << 32) | i as u64;
    let send = |f: &mut Flow, i: usize, tally: &mut Tally| {
        f.seq += 1;
        datagram(load.seed, flow_id(i), f.seq, load.size, &mut f.msg);
        f.sent_at = Instant::now();
        match f.sock.send(&f.msg) {
            Ok(n) => tally.bytes_out += n as u64,
            Err(e) => tally.fail(Failure::Io, || format!("send: {e}")),
        }
    };
    for (i, f) in flows.iter_mut().enumerate() {
        send(f, i, &mut tally);
    }
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if until.reached(now) || ctx.is_stopped() {
            break;
        }
        ep.wait(&mut events, Some(TICK))?;
        for ev in &events {
            let i = ev.token().0;
            let f = &mut flows[i];
            loop {
                match f.sock.recv(&mut buf) {
                    Ok(m) => {
                        tally.bytes_in += m.len as u64;
                        match judge(&buf[..m.len], &f.msg, f.seq) {
                            Verdict::Match => {
                                tally.transactions += 1;
                                tally.latency.record(f.sent_at.elapsed());
                                send(f, i, &mut tally);
                            }
                            Verdict::Late => {}
                            Verdict::Mismatch => {
                                tally.fail(Failure::Mismatch, || {
                                    format!("flow {i} datagram {}: the echo of {} B differs", f.seq, m.len)
                                });
                                send(f, i, &mut tally);
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        tally.fail(Failure::Connect, || format!("flow {i}: {e} (is the server up?)"));
                        send(f, i, &mut tally);
                        break;
                    }
                    Err(e) => {
                        tally.fail(Failure::Io, || format!("flow {i}: {e}"));
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        for (i, f) in flows.iter_mut().enumerate() {
            if now.duration_since(f.sent_at) >= load.timeout {
                tally.fail(Failure::Timeout, || format!("flow {i} datagram {}: no echo", f.seq));
                send(f, i, &mut tally);
            }
        }
        gauge.publish(&tally, flows.len());
    }
    gauge.publish(&tally, flows.len());
    Ok(tally)
}

/// The kernel's server on one thread: echoes what arrives on `sock`
/// (shared by every server thread through `try_clone`: the kernel hands
/// each datagram to one waiting thread) until `until`.
pub fn kernel_serve_udp_echo(sock: &std::net::UdpSocket, until: &Until, gauge: &Gauge) -> io::Result<Tally> {
    sock.set_read_timeout(Some(TICK))?;
    let mut buf = vec![0u8; 65_536];
    let mut tally = Tally::default();
    gauge.listening.store(true, std::sync::atomic::Ordering::Relaxed);
    while !until.reached(Instant::now()) {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                tally.bytes_in += n as u64;
                match sock.send_to(&buf[..n], from) {
                    Ok(m) => {
                        tally.bytes_out += m as u64;
                        tally.transactions += 1;
                    }
                    Err(e) => tally.fail(Failure::Io, || format!("send to {from}: {e}")),
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => tally.fail(Failure::Io, || format!("receive: {e}")),
        }
        if tally.transactions % 256 == 0 {
            gauge.publish(&tally, 1);
        }
    }
    gauge.publish(&tally, 1);
    Ok(tally)
}

/// The kernel's client on client thread `index` of `cores`: its share of
/// the flows as connected std sockets, all sent at once, then each echo
/// taken in turn and the flow's next datagram sent, every byte verified
/// as by [`load_udp_echo`].
pub fn kernel_load_udp_echo(
    load: &UdpEchoLoad,
    (index, cores): (usize, usize),
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    let n = share(load.flows, index, cores);
    let mut flows = Vec::with_capacity(n);
    for _ in 0..n {
        let s = std::net::UdpSocket::bind((*load.server.ip(), 0))?;
        s.connect(load.server)?;
        s.set_read_timeout(Some(TICK))?;
        flows.push((s, 0u64, Instant::now(), Vec::with_capacity(load.size)));
    }
    let flow_id = |i: usize| ((index as u64) << 32) | i as u64;
    let send = |f: &mut (std::net::UdpSocket, u64, Instant, Vec<u8>), i: usize, tally: &mut Tally| {
        f.1 += 1;
        datagram(load.seed, flow_id(i), f.1, load.size, &mut f.3);
        f.2 = Instant::now();
        match f.0.send(&f.3) {
            Ok(n) => tally.bytes_out += n as u64,
            Err(e) => tally.fail(Failure::Io, || format!("send: {e}")),
        }
    };
    for (i, f) in flows.iter_mut().enumerate() {
        send(f, i, &mut tally);
    }
    let mut buf = vec![0u8; 65_536];
    'run: loop {
        for (i, f) in flows.iter_mut().enumerate() {
            if until.reached(Instant::now()) {
                break 'run;
            }
            match f.0.recv(&mut buf) {
                Ok(m) => {
                    tally.bytes_in += m as u64;
                    match judge(&buf[..m], &f.3, f.1) {
                        Verdict::Match => {
                            tally.transactions += 1;
                            tally.latency.record(f.2.elapsed());
                            send(f, i, &mut tally);
                        }
                        Verdict::Late => {}
                        Verdict::Mismatch => {
                            tally.fail(Failure::Mismatch, || format!("flow {i}: the echo of {m} B differs"));
                            send(f, i, &mut tally);
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if f.2.elapsed() >= load.timeout {
                        tally.fail(Failure::Timeout, || format!("flow {i} datagram {}: no echo", f.1));
                        send(f, i, &mut tally);
                    }
                }
                Err(e) => {
                    tally.fail(Failure::Io, || format!("flow {i}: {e}"));
                    send(f, i, &mut tally);
                }
            }
        }
        gauge.publish(&tally, flows.len());
    }
    gauge.publish(&tally, flows.len());
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_their_number_and_differ_by_flow_and_number() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        datagram(1, 0, 5, 64, &mut a);
        datagram(1, 1, 5, 64, &mut b);
        datagram(1, 0, 6, 64, &mut c);
        assert_eq!(a.len(), 64);
        assert_eq!(u64::from_be_bytes(a[..8].try_into().unwrap()), 5);
        assert_ne!(a[8..], b[8..]);
        assert_ne!(a[8..], c[8..]);
        datagram(1, 0, 5, 3, &mut a);
        assert_eq!(a, [0, 0, 0], "short ones keep the first bytes of the number");
    }

    #[test]
    fn echoes_are_judged_against_the_datagram_in_flight() {
        let (mut now, mut old) = (Vec::new(), Vec::new());
        datagram(9, 2, 7, 64, &mut now);
        datagram(9, 2, 6, 64, &mut old);
        assert_eq!(judge(&now, &now, 7), Verdict::Match);
        assert_eq!(judge(&old, &now, 7), Verdict::Late);
        let mut bad = now.clone();
        bad[40] ^= 1;
        assert_eq!(judge(&bad, &now, 7), Verdict::Mismatch);
        assert_eq!(judge(&now[..63], &now, 7), Verdict::Mismatch);
    }
}
