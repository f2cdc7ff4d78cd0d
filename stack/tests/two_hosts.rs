//! Two hosts over the in-memory NIC and wire, one thread, virtual clock.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use ixtcp_stack::sim::SimImpairments;
use ixtcp_stack::{CloseReason, ConnId, Event, Readiness, StackConfig, StackError};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn world(cores: u16, seed: u64, tweak: impl Fn(&mut StackConfig)) -> World {
    let mut ca = base_config(A, cores);
    let mut cb = base_config(B, cores);
    tweak(&mut ca);
    tweak(&mut cb);
    World::pair(Host::new(ca, mac(1), seed), Host::new(cb, mac(2), seed + 1), SimImpairments::default(), seed)
}

fn events(c: &mut Core) -> Vec<Event> {
    c.drain_events().collect()
}

#[test]
fn echo_then_close_leaves_only_a_time_wait_tuple() {
    let mut w = world(1, 1, |_| {});
    w.core(1, 0).listen(7, None).unwrap();
    let client = w.core(0, 0).connect(SocketAddrV4::new(B, 7), None).unwrap();
    let mut server: Option<ConnId> = None;
    let mut got = Vec::new();
    let mut sent = false;
    let mut closed = false;
    let end = w.now_ns + 5_000_000_000;
    while w.now_ns < end && !(closed && w.hosts.iter().all(Host::all_free)) {
        w.step(&mut |h, c| {
            let _ = events(c);
            if h == 1 {
                if let Some(id) = c.accept(7) {
                    server = Some(id);
                }
                if let Some(id) = server {
                    let mut b = [0u8; 64];
                    if let Ok(n) = c.recv(id, &mut b) {
                        if n == 0 {
                            c.close(id).unwrap();
                            server = None;
                        } else {
                            c.send(id, &b[..n]).unwrap();
                        }
                    }
                }
            } else {
                if !sent && c.readiness(client).is_ok_and(|r| r.contains(Readiness::WRITABLE)) {
                    assert_eq!(c.send(client, b"hello, world").unwrap(), 12);
                    sent = true;
                }
                let mut b = [0u8; 64];
                if !closed && let Ok(n) = c.recv(client, &mut b) {
                    got.extend_from_slice(&b[..n]);
                    if got.len() == 12 {
                        c.close(client).unwrap();
                        closed = true;
                    }
                }
            }
        });
    }
    let ok = closed && w.hosts.iter().all(Host::all_free);
    assert!(ok, "did not finish: {:?} / {:?}", w.hosts[0].stats(), w.hosts[1].stats());
    assert_eq!(got, b"hello, world");
    let (a, b) = (w.hosts[0].stats(), w.hosts[1].stats());
    assert_eq!((a.conns_opened_active, b.conns_opened_passive), (1, 1));
    assert_eq!((a.conns_closed, b.conns_closed), (1, 1));
    // The client closed first: it holds TIME_WAIT, as a tuple only.
    assert_eq!(w.core(0, 0).socket_census().time_wait, 1);
    assert_eq!(w.core(0, 0).socket_census().not_closed, 0);
    // The handle is stale now.
    assert_eq!(w.core(0, 0).send(client, b"x"), Err(StackError::StaleHandle));
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut w = world(1, 2, |_| {});
    let id = w.core(0, 0).connect(SocketAddrV4::new(B, 9999), None).unwrap();
    let mut seen = Readiness::default();
    let end = w.now_ns + 2_000_000_000;
    while w.now_ns < end && !seen.contains(Readiness::ERROR) {
        w.step(&mut |h, c| {
            for e in events(c) {
                if let (0, Event::Conn { id: i, ready }) = (h, e) {
                    assert_eq!(i, id);
                    seen = ready;
                }
            }
        });
    }
    let ok = seen.contains(Readiness::ERROR);
    assert!(ok, "no error event");
    let c = w.core(0, 0);
    assert_eq!(c.close_reason(id), Ok(Some(CloseReason::Refused)));
    assert_eq!(c.recv(id, &mut [0; 4]), Err(StackError::ConnectionRefused));
    assert_eq!(c.stats().conns_refused, 1);
    assert_eq!(w.hosts[1].stats().rx_stray, 1);
    w.core(0, 0).close(id).unwrap();
    assert!(w.hosts[0].all_free());
}

#[test]
fn explicit_bind_to_a_port_of_another_core_is_refused() {
    let mut w = world(4, 3, |_| {});
    let remote = SocketAddrV4::new(B, 80);
    let rss = ixtcp_stack::RssView::symmetric(4, 0);
    let foreign = (40_000..41_000u16).find(|&p| rss.queue_of(B, 80, A, p) != 0).unwrap();
    match w.core(0, 0).connect(remote, Some(foreign)) {
        Err(StackError::WrongCore { port, lands_on, this_core: 0 }) => {
            assert_eq!(port, foreign);
            assert_ne!(lands_on, 0);
        }
        other => panic!("expected WrongCore, got {other:?}"),
    }
    let own = (40_000..41_000u16).find(|&p| rss.queue_of(B, 80, A, p) == 0).unwrap();
    w.core(0, 0).connect(remote, Some(own)).unwrap();
    assert!(matches!(w.core(0, 0).connect(remote, Some(own)), Err(StackError::AddrInUse(_))));
}

#[test]
fn pcap_file_holds_arp_and_tcp_frames_as_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.pcap");
    let mut ca = base_config(A, 1);
    ca.pcap = Some(path.clone());
    let a = Host::start(ca, mac(1), Some(5), 0);
    let mut w = World::pair(a, Host::new(base_config(B, 1), mac(2), 6), SimImpairments::default(), 5);
    w.core(1, 0).listen(80, None).unwrap();
    w.core(0, 0).connect(SocketAddrV4::new(B, 80), None).unwrap();
    for _ in 0..50 {
        w.step(&mut |_, c| {
            let _ = events(c);
        });
    }
    drop(w);
    let b = std::fs::read(&path).unwrap();
    let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    assert_eq!(u32_at(0), 0xa1b2_c3d4);
    assert_eq!(u32_at(20), 1, "link type Ethernet");
    let (mut at, mut arp, mut syn, mut synack) = (24, 0, 0, 0);
    while at + 16 <= b.len() {
        let len = u32_at(at + 8) as usize;
        let f = &b[at + 16..at + 16 + len];
        match u16::from_be_bytes([f[12], f[13]]) {
            0x0806 => arp += 1,
            0x0800 => {
                let flags = f[14 + 20 + 13];
                if flags & 0x12 == 0x02 {
                    syn += 1;
                }
                if flags & 0x12 == 0x12 {
                    synack += 1;
                }
            }
            t => panic!("unexpected ethertype {t:#x}"),
        }
        at += 16 + len;
    }
    assert_eq!(at, b.len(), "records must tile the file");
    // Our gratuitous ARP, our request for B and B's reply at least.
    assert!(arp >= 3, "arp {arp}");
    assert_eq!((syn, synack), (1, 1));
    if let Ok(out) = std::process::Command::new("tshark").arg("-r").arg(&path).output() {
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ARP") && text.contains("TCP"), "{text}");
    }
}

#[test]
fn each_arrival_of_data_is_an_event_even_while_earlier_data_is_unread() {
    let mut w = world(1, 7, |_| {});
    w.core(1, 0).listen(7, None).unwrap();
    let client = w.core(0, 0).connect(SocketAddrV4::new(B, 7), None).unwrap();
    let mut server: Option<ConnId> = None;
    // Server-side data events, and the unread bytes at each.
    let mut seen: Vec<usize> = Vec::new();
    let mut writes = 0;
    let end = w.now_ns + 2_000_000_000;
    while w.now_ns < end && seen.len() < 3 {
        w.step(&mut |h, c| {
            if h == 1 {
                if server.is_none() {
                    server = c.accept(7);
                    // Data in before the accept is not an event (look once).
                    if let Some(n) = server.map(|id| c.recv_queue(id).unwrap()).filter(|&n| n > 0) {
                        seen.push(n);
                    }
                }
                for e in events(c) {
                    if let (Some(id), Event::Conn { id: i, .. }) = (server, e) {
                        let unread = c.recv_queue(id).unwrap();
                        if i == id && unread > seen.last().copied().unwrap_or(0) {
                            seen.push(unread);
                        }
                    }
                }
            } else {
                let _ = events(c);
                // One write per arrival seen, so each is a segment of its own;
                // the server never reads.
                if writes == seen.len()
                    && writes < 3
                    && c.readiness(client).is_ok_and(|r| r.contains(Readiness::WRITABLE))
                {
                    assert_eq!(c.send(client, b"ping").unwrap(), 4);
                    writes += 1;
                }
            }
        });
    }
    // Readiness stayed READABLE after the first: the second and third
    // arrivals are events all the same.
    assert_eq!(seen, [4, 8, 12], "data events with the bytes unread at each");
    // Reading everything and then getting more is an event again.
    let id = server.unwrap();
    let mut b = [0u8; 64];
    let (n, more) = w.core(1, 0).recv_more(id, &mut b).unwrap();
    assert_eq!((n, more), (12, false), "read everything: nothing more for now");
    let _ = events(w.core(1, 0));
    assert_eq!(w.core(0, 0).send(client, b"pong").unwrap(), 4);
    let mut again = false;
    let end = w.now_ns + 1_000_000_000;
    while w.now_ns < end && !again {
        w.step(&mut |h, c| {
            let e = events(c);
            if h == 1 {
                again |= e.iter().any(|e| matches!(e, Event::Conn { id: i, .. } if *i == id));
            }
        });
    }
    assert!(again, "no event for data after a drained buffer");
    assert_eq!(w.core(1, 0).recv_more(id, &mut b), Ok((4, false)));
}
