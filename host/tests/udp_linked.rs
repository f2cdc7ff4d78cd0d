//! UDP through sockapi on the real stack: two hosts over two linked 82599
//! models, two cores each with the NIC hashing UDP 4-tuples, both runtimes.
//! Every length from 1 to 1472 bytes is echoed and every byte checked.
//! On one core each, a datagram to a closed port comes back as
//! `ConnectionRefused` on the connected socket, and the ICMP error is never
//! answered. (With several cores, the NIC hashes an ICMP error by its two
//! addresses alone, so it reaches the socket's core only when that hash
//! happens to agree; elsewhere it is counted in `icmp_errors_no_conn`.)

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, LinkedHosts};
use ixtcp_sockapi::{Context, Epoll, Events, Mode, UdpSocket};
use ixtcp_stack::StackConfig;

const SERVER: [u8; 4] = [10, 0, 0, 1];
const CLIENT: [u8; 4] = [10, 0, 0, 2];
/// Sockets (flows) per client core.
const FLOWS: usize = 4;
const MAX: usize = 1472;

fn hosts(mode: Mode, cores: u16) -> LinkedHosts {
    let cfg = |ip: [u8; 4]| {
        let mut c = HostConfig::model(StackConfig { cores, ..StackConfig::new(ip.into(), 24) }, mode);
        c.seed = Some(11 + u64::from(ip[3]));
        c.stats_every = 1;
        c
    };
    LinkedHosts::start(cfg(SERVER), cfg(CLIENT)).expect("start linked hosts")
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(29).wrapping_add(salt)).collect()
}

/// Waits up to `patience` (real time: threads) for one datagram or error
/// on `s`; `TimedOut` if none came.
fn recv_within(ctx: &Context, s: &UdpSocket, buf: &mut [u8], patience: Duration) -> std::io::Result<usize> {
    let ep = Epoll::new(ctx).expect("epoll");
    let mut events = Events::with_capacity(1);
    let start = Instant::now();
    loop {
        match s.recv(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            r => return r.map(|m| m.len),
        }
        if start.elapsed() > patience {
            return Err(ErrorKind::TimedOut.into());
        }
        ep.wait(&mut events, Some(Duration::from_millis(1))).expect("wait");
    }
}

/// Liveness bound of a whole exchange (real threads): generous.
const STUCK: Duration = Duration::from_secs(60);

/// How long the client waits for an echo before it sends the datagram again.
const RESEND_AFTER: Duration = Duration::from_millis(100);

fn udp_over_models(mode: Mode) {
    let h = hosts(mode, 2);
    let (server_stats, client_stats) = (h.server.stats(), h.client.stats());
    let addr: SocketAddr = (SERVER, 7).into();
    let (served, sent) = h
        .run(
            move |ctx| {
                let s = UdpSocket::bind(ctx, addr).expect("bind on every core");
                s.set_nonblocking(false);
                let mut buf = vec![0u8; 2048];
                let mut n = 0usize;
                // A blocking receive fails once the run is stopped.
                while let Ok(m) = s.recv_from(&mut buf) {
                    assert!(!m.truncated());
                    s.send_to(&buf[..m.len], m.from).expect("echo");
                    n += 1;
                }
                n
            },
            move |ctx| {
                let core = ctx.core();
                // Ports whose replies the client NIC hashes to this core.
                let socks: Vec<UdpSocket> = (0..FLOWS)
                    .map(|_| {
                        let s = UdpSocket::bind_for_peer(ctx, addr).expect("bind");
                        assert_eq!(s.peer_addr().unwrap(), addr);
                        s
                    })
                    .collect();
                let mut buf = vec![0u8; 2048];
                // This core's lengths: every other one, from 1 to 1472.
                let lens: Vec<usize> = (1..=MAX).filter(|l| l % 2 == core).collect();
                let start = Instant::now();
                for chunk in lens.chunks(FLOWS) {
                    for (s, &len) in socks.iter().zip(chunk) {
                        s.send(&pattern(len, len as u8)).expect("send");
                    }
                    for (s, &len) in socks.iter().zip(chunk) {
                        // No answer for a while: the server's socket on that
                        // core may not be bound yet, and its refusal may have
                        // gone to the other client core (or come back
                        // here): send again. A resent datagram can be echoed
                        // twice; a socket's lengths only grow, so an echo
                        // shorter than the one awaited is such a duplicate,
                        // checked and skipped.
                        let n = loop {
                            match recv_within(ctx, s, &mut buf, RESEND_AFTER) {
                                Ok(n) if n < len => {
                                    assert!(
                                        buf[..n] == pattern(n, n as u8)[..],
                                        "bytes of a repeated {n}-byte echo differ"
                                    );
                                }
                                Ok(n) => break n,
                                Err(e)
                                    if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::TimedOut =>
                                {
                                    assert!(start.elapsed() < STUCK, "the server never answered on core {core}");
                                    s.send(&pattern(len, len as u8)).expect("send again");
                                }
                                Err(e) => panic!("receiving the {len}-byte echo on core {core}: {e}"),
                            }
                        };
                        assert_eq!(n, len, "length of the echo on core {core}");
                        assert!(buf[..n] == pattern(len, len as u8)[..], "bytes of the {len}-byte echo differ");
                    }
                }
                lens.len()
            },
        )
        .expect("run");
    assert_eq!(sent.iter().sum::<usize>(), MAX);
    assert!(served.iter().sum::<usize>() >= MAX, "{served:?}");
    assert!(served.iter().all(|&n| n > 0), "RSS spread the flows over both server cores: {served:?}");
    let (s, c) = (server_stats.total(), client_stats.total());
    assert_eq!(s.rx_udp_misdirected + c.rx_udp_misdirected, 0, "every flow stayed on its cores");
    assert_eq!(c.drop_udp_no_port, 0, "every reply found its socket: {c:?}");
    assert_eq!(c.icmp_port_unreachable_sent, 0, "no ICMP error about an ICMP error");
    assert_eq!(s.drop_udp_queue_full + c.drop_udp_queue_full, 0);
}

/// One core each: port 9 is bound nowhere, so the server answers port
/// unreachable, which the connected socket reports on its next receive,
/// and then on nothing else; the client answers the ICMP error with
/// nothing.
fn refused_over_models(mode: Mode) {
    let h = hosts(mode, 1);
    let (server_stats, client_stats) = (h.server.stats(), h.client.stats());
    let closed: SocketAddr = (SERVER, 9).into();
    h.run(
        |ctx| {
            // Binds nothing, but keeps its stack running until the client is done.
            let ep = Epoll::new(ctx).expect("epoll");
            let mut events = Events::with_capacity(1);
            while !ctx.is_stopped() {
                ep.wait(&mut events, Some(Duration::from_millis(5))).expect("wait");
            }
        },
        move |ctx| {
            let s = UdpSocket::bind_for_peer(ctx, closed).expect("bind");
            let mut buf = [0u8; 16];
            let start = Instant::now();
            // The first datagrams may go before ARP has resolved the peer
            // (dropped and counted): send until an answer comes.
            let r = loop {
                assert!(start.elapsed() < STUCK, "no answer at all");
                s.send(b"anyone?").expect("send");
                match recv_within(ctx, &s, &mut buf, Duration::from_millis(100)) {
                    Err(e) if e.kind() == ErrorKind::TimedOut => continue,
                    r => break r,
                }
            };
            assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));
            ctx.quiesce().expect("quiesce");
            assert_eq!(s.recv(&mut buf).map_err(|e| e.kind()), Err(ErrorKind::WouldBlock), "reported once");
        },
    )
    .expect("run");
    let (s, c) = (server_stats.total(), client_stats.total());
    assert!(s.drop_udp_no_port >= 1 && s.icmp_port_unreachable_sent >= 1, "{s:?}");
    assert!(c.icmp_unreachable_udp >= 1, "{c:?}");
    assert_eq!(c.icmp_port_unreachable_sent, 0, "no ICMP error about an ICMP error");
}

#[test]
fn a_closed_port_is_refused_on_the_connected_socket_over_linked_models_inline() {
    refused_over_models(Mode::Inline);
}

#[test]
fn a_closed_port_is_refused_on_the_connected_socket_over_linked_models_threaded() {
    refused_over_models(Mode::Threaded);
}

#[test]
fn udp_echo_of_every_length_over_linked_models_inline() {
    udp_over_models(Mode::Inline);
}

#[test]
fn udp_echo_of_every_length_over_linked_models_threaded() {
    udp_over_models(Mode::Threaded);
}
