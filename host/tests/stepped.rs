//! Deterministic interleavings of two linked hosts: both hosts' inline
//! contexts on this thread over a virtual clock ([`LinkedHosts::stepped`]),
//! so that "the client's application stops driving its stack" is a step the
//! test takes, not a race with the OS scheduler.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use ixtcp_driver::wire::LinkConfig;
use ixtcp_host::{HostConfig, LinkedHosts, Stepped};
use ixtcp_sockapi::{Mode, TcpListener, TcpStream};
use ixtcp_stack::StackConfig;

fn sim() -> Stepped {
    sim_with(|_| {})
}

/// Both hosts with their stack config changed by `tweak`, over a link of
/// standard 1514-byte frames (`LinkedHosts` raises that to what the hosts
/// send).
fn sim_with(tweak: impl Fn(&mut StackConfig)) -> Stepped {
    let cfg = |ip: [u8; 4]| {
        let mut stack = StackConfig::new(ip.into(), 24);
        tweak(&mut stack);
        let mut c = HostConfig::model(stack, Mode::Inline);
        c.seed = Some(11 + u64::from(ip[3]));
        c.stats_every = 1;
        c
    };
    LinkedHosts::stepped(cfg([10, 0, 0, 1]), cfg([10, 0, 0, 2]), LinkConfig::unlimited()).expect("stepped hosts")
}

const ADDR: ([u8; 4], u16) = ([10, 0, 0, 1], 8000);

/// The bench's idle workload stalled here (issue 13): a client core opened
/// its idle connections, saw them established, and then waited for the
/// server to count them without driving its own stack. The ACKs that
/// complete those handshakes were owed by the client's last ingress and
/// left only at its next egress, which never came, so the server never
/// accepted one. Now what an ingress owes on connections with nothing
/// for the application to read leaves before control returns to it.
#[test]
fn handshakes_complete_while_the_client_application_waits_elsewhere() {
    let sim = sim();
    let addr = SocketAddr::from(ADDR);
    let listener = TcpListener::bind(sim.server(0), addr).expect("bind");
    let conns: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(sim.client(0), addr).expect("connect")).collect();
    sim.run_until(Duration::from_secs(5), "every connection established on the client", || {
        conns.iter().all(|c| c.peer_addr().is_ok())
    })
    .expect("client side");

    // From here on the client's application is busy elsewhere: only the
    // server's stack runs.
    let mut accepted = Vec::new();
    let server = [sim.server(0)];
    let r = sim.run_these_until(&server, Duration::from_secs(5), "the server accepts all 50", || {
        while let Ok((s, _)) = listener.accept() {
            accepted.push(s);
        }
        accepted.len() == 50
    });
    let (s, c) = sim.stats();
    r.unwrap_or_else(|e| panic!("{e}: accepted {}; server {:?}; client {:?}", accepted.len(), s.total(), c.total()));
}

/// The same holds for a connection whose peer closed with nothing to read:
/// the ACK of the FIN leaves without the application's help, so the
/// closing side does not retransmit its FIN.
#[test]
fn the_ack_of_a_fin_leaves_while_the_application_waits_elsewhere() {
    let sim = sim();
    let addr = SocketAddr::from(ADDR);
    let listener = TcpListener::bind(sim.server(0), addr).expect("bind");
    let client = TcpStream::connect(sim.client(0), addr).expect("connect");
    let mut server = None;
    sim.run_until(Duration::from_secs(5), "accept", || {
        server = listener.accept().ok().map(|(s, _)| s);
        server.is_some()
    })
    .expect("accept");
    let server = server.expect("accepted");
    sim.run_until(Duration::from_secs(5), "client established", || client.peer_addr().is_ok()).expect("est");

    // The client half-closes; only the server's stack and then only the
    // client's run from here, and the server's application never reads.
    let server_rx = sim.stats().0.total().rx_packets;
    client.shutdown(std::net::Shutdown::Write).expect("shutdown");
    sim.step_these(&[sim.client(0)]).expect("client step");
    sim.run_these_until(&[sim.server(0)], Duration::from_millis(100), "server saw the FIN", || {
        sim.stats().0.total().rx_packets > server_rx
    })
    .expect("fin in");
    let before = sim.stats().1.total();

    sim.run_these_until(&[sim.client(0)], Duration::from_secs(3), "client's FIN acknowledged", || {
        sim.stats().1.total().rx_packets > before.rx_packets
    })
    .expect("ack of fin");
    assert_eq!(sim.stats().1.total().tcp_retransmits, 0, "the FIN was retransmitted: its ACK waited");
    drop(server);
}

/// An echo exchange over the stepped hosts: non-blocking application code
/// on both hosts, interleaved by the test; replays exactly.
#[test]
fn echo_over_stepped_hosts() {
    echo(&sim(), 200_000);
}

/// The same with jumbo frames: the frames carrying the data are above the
/// standard 1514 bytes, and every byte comes back.
#[test]
fn jumbo_echo_over_stepped_hosts() {
    let sim = sim_with(|c| {
        c.mtu = 9000;
        // 16 KiB buffers: half the default count keeps the memory sane.
        c.mempool_size = 2048;
    });
    echo(&sim, 1 << 20);
    let (s, c) = sim.stats();
    for (who, t) in [("server", s.total()), ("client", c.total())] {
        let average = t.tx_bytes / t.tx_packets.max(1);
        assert!(average > 1514, "{who}: {} frames, {} bytes: no jumbo frames", t.tx_packets, t.tx_bytes);
    }
}

/// Echoes `len` bytes from the client to the server and back.
fn echo(sim: &Stepped, len: usize) {
    let addr = SocketAddr::from(ADDR);
    let listener = TcpListener::bind(sim.server(0), addr).expect("bind");
    let mut client = TcpStream::connect(sim.client(0), addr).expect("connect");
    let msg: Vec<u8> = (0..len as u32).map(|i| (i * 7) as u8).collect();
    let (mut sent, mut back, mut server) = (0, Vec::new(), None::<TcpStream>);
    let mut buf = vec![0u8; 8192];
    sim.run_until(Duration::from_secs(30), "all bytes echoed", || {
        if server.is_none() {
            server = listener.accept().ok().map(|(s, _)| s);
        }
        if sent < msg.len() {
            match client.write(&msg[sent..]) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => {}
                Err(e) => panic!("client write: {e}"),
            }
        }
        if let Some(s) = server.as_mut() {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => s.write_all(&buf[..n]).expect("echo (the send buffer holds the receive buffer)"),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server read: {e}"),
                }
            }
        }
        loop {
            match client.read(&mut buf) {
                Ok(n) if n > 0 => back.extend_from_slice(&buf[..n]),
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
        back.len() == msg.len()
    })
    .expect("echo");
    assert!(back == msg, "echo differs");
}
