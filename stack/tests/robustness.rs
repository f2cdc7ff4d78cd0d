//! Loss, duplication, reordering and corruption; ARP and gateway routing;
//! short connections through TIME_WAIT; backlog overflow; buffer leaks.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use common::*;
use ixtcp_stack::sim::{SimImpairments, SimLink, SimPort, SimRouter};
use ixtcp_stack::{Event, StackConfig, StackError};
use ixtcp_testkit::seed::Seeded;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Runs a bulk transfer of `bytes` each way on `conns` connections opened
/// by host 0, over world `w`; returns the apps.
fn transfer(w: &mut World, conns: usize, bytes: usize, seed: u64, max_virtual_ns: u64) -> [BulkApp; 2] {
    let cores = w.hosts[0].cores.len();
    let pattern = Arc::new(Pattern::new(seed));
    let mut apps = [BulkApp::new(Arc::clone(&pattern), bytes, cores), BulkApp::new(pattern, bytes, cores)];
    for c in 0..w.hosts[1].cores.len() {
        w.core(1, c).listen(5000, None).unwrap();
    }
    let dst = w.hosts[1].cores[0].ip();
    let mut left: Vec<usize> = (0..conns).map(|i| i % cores).collect();
    let end = w.now_ns + max_virtual_ns;
    let mut next_report = w.now_ns;
    while w.now_ns < end && apps[0].finished + apps[1].finished < 2 * conns {
        if std::env::var("IXTCP_DEBUG").is_ok() && w.now_ns >= next_report {
            next_report = w.now_ns + 5_000_000_000;
            w.links[0].trace = w.now_ns > 3_000_000_000;
            for h in 0..2 {
                for l in w.core(h, 0).debug_conns() {
                    println!("t={}ms host {h}: {l}", w.now_ns / 1_000_000);
                }
            }
        }
        w.step(&mut |h, c| {
            let ci = usize::from(c.index());
            let mut ids = conn_events(c);
            apps[h].accept_all(ci, c, 5000, &mut ids);
            if h == 0 {
                left.retain(|&core| {
                    if core != ci {
                        return true;
                    }
                    let id = c.connect(SocketAddrV4::new(dst, 5000), None).unwrap();
                    let (local, _) = c.endpoints(id).unwrap();
                    apps[0].add(ci, id, local.port(), true);
                    false
                });
            }
            apps[h].service(ci, c, &ids);
        });
    }
    apps
}

#[test]
fn ten_mib_arrive_intact_through_loss_duplication_reordering_and_corruption() {
    let seeded = Seeded::new(0x5eed_0001);
    let seed = seeded.seed;
    let imp = SimImpairments { loss: 0.02, duplicate: 0.01, reorder: 0.02, corrupt: 0.01 };
    let cfg = |ip| StackConfig { socket_rx_buffer: 256 * 1024, socket_tx_buffer: 256 * 1024, ..base_config(ip, 1) };
    let mut w = World::pair(Host::new(cfg(A), mac(1), seed), Host::new(cfg(B), mac(2), seed + 1), imp, seed);
    let apps = transfer(&mut w, 1, 10 << 20, seed, 3_600_000_000_000);
    let report = format!(
        "seed {seed} (replay with IXTCP_SEED={seed}); virtual {} s; link {:?}; A {:?}; B {:?}",
        w.now_ns / 1_000_000_000,
        w.links[0].counters(),
        w.hosts[0].stats(),
        w.hosts[1].stats()
    );
    for app in &apps {
        assert!(app.errors.is_empty(), "{:?}; {report}", app.errors);
    }
    assert_eq!(apps[0].finished + apps[1].finished, 2, "transfer did not finish; {report}");
    let c = w.links[0].counters();
    assert!(c[0].lost > 0 && c[0].corrupted > 0 && c[0].duplicated > 0 && c[0].reordered > 0, "{report}");
    println!("{report}");
}

#[test]
fn arp_resolves_on_every_core_without_static_entries() {
    let seeded = Seeded::new(7);
    let seed = seeded.seed;
    let mut w = World::pair(
        Host::new(base_config(A, 4), mac(1), seed),
        Host::new(base_config(B, 4), mac(2), seed + 1),
        SimImpairments::default(),
        seed,
    );
    assert!(w.hosts[0].table.is_empty() && w.hosts[1].table.is_empty());
    // Four connections from every core of A; each core resolves B itself.
    let apps = transfer(&mut w, 16, 4096, seed, 30_000_000_000);
    assert_eq!(apps[0].finished, 16, "seed {seed}");
    for (h, host) in w.hosts.iter().enumerate() {
        assert_eq!(host.table.len(), 1, "host {h} learned its peer");
        let s = host.stats();
        assert!(s.arp_learned >= 1, "host {h}: {s:?}");
        assert_eq!(s.drop_no_neighbor, 0, "host {h}: {s:?}");
    }
    // Every core of A sent its first SYN from the resolution queue, and
    // the resolution took no retransmission (virtual time stayed short).
    for (i, core) in w.hosts[0].cores.iter().enumerate() {
        assert!(core.stats().arp_resolved_sent >= 1, "core {i}: {:?}", core.stats());
    }
    assert!(w.now_ns < 900_000_000, "took {} ms: a retransmission was needed", w.now_ns / 1_000_000);
}

#[test]
fn off_subnet_traffic_goes_through_the_gateway() {
    let seeded = Seeded::new(8);
    let seed = seeded.seed;
    let (gw_a, gw_b) = (Ipv4Addr::new(10, 0, 0, 254), Ipv4Addr::new(10, 0, 1, 254));
    let far = Ipv4Addr::new(10, 0, 1, 2);
    let ca = StackConfig { gateway: Some(gw_a), ..base_config(A, 2) };
    let cb = StackConfig { gateway: Some(gw_b), ..base_config(far, 2) };
    let (ha, hb) = (Host::new(ca, mac(1), seed), Host::new(cb, mac(2), seed + 1));
    let router = SimRouter::new((mac(0xa0), gw_a, 24), (mac(0xb0), gw_b, 24), vec![(A, mac(1)), (far, mac(2))]);
    let l1 = SimLink::new(Arc::clone(&ha.nic) as Arc<dyn SimPort>, router.port(0) as Arc<dyn SimPort>);
    let l2 = SimLink::new(router.port(1) as Arc<dyn SimPort>, Arc::clone(&hb.nic) as Arc<dyn SimPort>);
    let mut w = World { now_ns: 1_000_000, hosts: vec![ha, hb], links: vec![l1, l2], quantum_ns: 20_000, steps: 0 };
    let apps = transfer(&mut w, 8, 100_000, seed, 30_000_000_000);
    assert_eq!(apps[0].finished + apps[1].finished, 16, "seed {seed}: {:?}", w.hosts[0].stats());
    assert!(router.forwarded() > 0);
    // Each side resolved only its gateway, never the far host.
    assert_eq!(w.hosts[0].table.lookup(gw_a, 0).map(|n| n.mac), Some(mac(0xa0)));
    assert_eq!(w.hosts[0].table.lookup(far, 0), None);
    assert_eq!(w.hosts[1].table.lookup(gw_b, 0).map(|n| n.mac), Some(mac(0xb0)));
    // Without a gateway, off-subnet is an error at connect.
    let mut lonely = Host::new(base_config(A, 1), mac(3), seed);
    let r = lonely.cores[0].connect(SocketAddrV4::new(far, 80), None);
    assert!(matches!(r, Err(StackError::NoRoute(_))), "{r:?}");
}

#[test]
fn ten_thousand_short_connections_leave_no_socket_and_no_buffer_behind() {
    let seeded = Seeded::new(9);
    let seed = seeded.seed;
    let cfg = |ip| StackConfig { max_connections: 256, time_wait_ms: 500, ..base_config(ip, 2) };
    let mut w = World::pair(
        Host::new(cfg(A), mac(1), seed),
        Host::new(cfg(B), mac(2), seed + 1),
        SimImpairments::default(),
        seed,
    );
    // The starting point: every buffer of every pool free.
    let free_at_start: Vec<Vec<usize>> = w.hosts.iter().map(|h| vec![8192; h.cores.len()]).collect();
    for c in 0..2 {
        w.core(1, c).listen(80, None).unwrap();
    }
    let total = 10_000usize;
    let (mut opened, mut done) = (0usize, 0usize);
    let mut slots_high = 0usize;
    let end = w.now_ns + 600_000_000_000;
    while w.now_ns < end && done < total {
        w.step(&mut |h, c| {
            let evs: Vec<Event> = c.drain_events().collect();
            if h == 1 {
                while let Some(id) = c.accept(80) {
                    let _ = c.send(id, b"hi");
                    c.close(id).unwrap();
                }
                return;
            }
            // Keep up to 100 connections in flight per core.
            let in_flight = c.socket_census().slots - c.socket_census().free;
            for _ in in_flight..100 {
                if opened >= total {
                    break;
                }
                c.connect(SocketAddrV4::new(B, 80), None).unwrap();
                opened += 1;
            }
            for e in evs {
                if let Event::Conn { id, .. } = e {
                    let mut b = [0u8; 8];
                    loop {
                        match c.recv(id, &mut b) {
                            Ok(0) => {
                                c.close(id).unwrap();
                                done += 1;
                                break;
                            }
                            Ok(_) => {}
                            Err(StackError::WouldBlock | StackError::StaleHandle) => break,
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                }
            }
            slots_high = slots_high.max(c.socket_census().slots);
        });
    }
    assert_eq!(done, total, "seed {seed}: {:?} {:?}", w.hosts[0].stats(), w.hosts[1].stats());
    // TIME_WAIT held tuples only; let them expire.
    let later = w.now_ns + 2_000_000_000;
    while w.now_ns < later {
        w.step(&mut |_, c| {
            let _ = c.drain_events().count();
        });
    }
    for (h, host) in w.hosts.iter().enumerate() {
        assert!(host.all_free(), "host {h}: sockets left");
        for c in &host.cores {
            let n = c.socket_census();
            assert_eq!((n.time_wait, n.timers, n.flows), (0, 0, 0), "host {h}: {n:?}");
            assert!(n.slots <= 256, "sockets are reused, not piled up: {n:?}");
        }
        let s = host.stats();
        assert_eq!(s.conns_open, 0);
        assert_eq!(s.conns_closed, total as u64, "host {h}: {s:?}");
        assert_eq!(host.nic.free_buffers(), free_at_start[h], "host {h}: buffers leaked");
    }
    assert!(slots_high <= 256);
}

#[test]
fn backlog_overflow_is_counted_and_established_connections_keep_moving() {
    backlog_overflow(false);
}

#[test]
fn backlog_overflow_with_syn_cookies_holds_at_most_the_backlog_and_a_full_accept_queue_and_resets_no_one() {
    backlog_overflow(true);
}

/// Without cookies the listener takes exactly its backlog. With them, the
/// SYNs beyond it get cookies, and a cookie's ACK makes a connection while
/// fewer than `backlog` wait in the accept queue (Linux's rule): at most the
/// backlog's half-open connections plus a full accept queue wait, and no
/// real client is reset to make room.
fn backlog_overflow(syn_cookies: bool) {
    let seeded = Seeded::new(10);
    let seed = seeded.seed;
    let cfg = |ip| StackConfig { backlog: 8, max_connections: 512, syn_cookies, ..base_config(ip, 1) };
    let mut w = World::pair(
        Host::new(cfg(A), mac(1), seed),
        Host::new(cfg(B), mac(2), seed + 1),
        SimImpairments::default(),
        seed,
    );
    let pattern = Arc::new(Pattern::new(seed));
    let mut apps = [BulkApp::new(Arc::clone(&pattern), 4 << 20, 1), BulkApp::new(pattern, 4 << 20, 1)];
    w.core(1, 0).listen(5000, None).unwrap();
    w.core(1, 0).listen(6000, Some(8)).unwrap();
    let mut started = false;
    let mut burst_sent = false;
    let mut progress_during_burst = 0usize;
    let end = w.now_ns + 120_000_000_000;
    while w.now_ns < end && apps[0].finished + apps[1].finished < 4 {
        w.step(&mut |h, c| {
            let mut ids = conn_events(c);
            if h == 1 {
                apps[1].accept_all(0, c, 5000, &mut ids);
                // Port 6000 is never accepted from: its backlog fills up.
            } else {
                if !started {
                    for _ in 0..2 {
                        let id = c.connect(SocketAddrV4::new(B, 5000), None).unwrap();
                        let (l, _) = c.endpoints(id).unwrap();
                        apps[0].add(0, id, l.port(), true);
                    }
                    started = true;
                }
                let moved: usize = apps[0].streams[0].values().map(|s| s.received).sum();
                if !burst_sent && moved > 0 {
                    for _ in 0..200 {
                        c.connect(SocketAddrV4::new(B, 6000), None).unwrap();
                    }
                    burst_sent = true;
                    progress_during_burst = moved;
                }
            }
            apps[h].service(0, c, &ids);
        });
    }
    let s = w.hosts[1].stats();
    assert!(apps[0].errors.is_empty() && apps[1].errors.is_empty());
    assert_eq!(apps[0].finished + apps[1].finished, 4, "seed {seed}: bulk stalled; {s:?}");
    let moved: usize = apps[0].streams[0].values().map(|s| s.received).sum();
    assert!(moved > progress_during_burst);
    assert!(s.drop_backlog_full >= 192, "seed {seed}: {s:?}");
    if syn_cookies {
        assert!(s.syn_cookies_validated > 0, "seed {seed}: {s:?}");
        // Cookie connections go to the accept queue only while it has
        // room: the backlog's half-open entries plus a full queue, at most.
        assert!(s.conns_open <= 2 + 2 * 8, "more than two backlogs wait: {s:?}");
        assert!(s.syn_cookies_validated <= 8, "cookies beyond a full accept queue: {s:?}");
        assert_eq!(s.conns_reset, 0, "a real client was reset to make room: {s:?}");
        assert_eq!(s.conns_opened_passive, s.conns_closed + s.conns_reset + s.conns_open, "{s:?}");
    } else {
        assert_eq!(s.syn_cookies_sent, 0, "seed {seed}: {s:?}");
        assert_eq!(s.conns_opened_passive, 2 + 8, "only the backlog's worth were taken: {s:?}");
    }
}

#[test]
fn time_wait_answers_retransmitted_fins_over_a_lossy_wire() {
    // The server closes first, so it holds TIME_WAIT (as a tuple only).
    // With 10% loss some of its last ACKs are lost; the client, in
    // LAST-ACK, retransmits its FIN, and the TIME_WAIT table must answer
    // so that every connection still ends cleanly on both sides.
    let seeded = Seeded::new(11);
    let seed = seeded.seed;
    let imp = SimImpairments { loss: 0.10, ..SimImpairments::default() };
    let cfg = |ip| StackConfig { time_wait_ms: 60_000, ..base_config(ip, 1) };
    let mut w = World::pair(Host::new(cfg(A), mac(1), seed), Host::new(cfg(B), mac(2), seed + 1), imp, seed);
    w.core(1, 0).listen(80, None).unwrap();
    let total = 300usize;
    let (mut opened, mut done) = (0usize, 0usize);
    let end = w.now_ns + 3_600_000_000_000;
    while w.now_ns < end && (done < total || w.hosts[0].stats().conns_open > 0 || w.hosts[1].stats().conns_open > 0) {
        w.step(&mut |h, c| {
            let evs: Vec<Event> = c.drain_events().collect();
            if h == 1 {
                while let Some(id) = c.accept(80) {
                    let _ = c.send(id, b"bye");
                    c.close(id).unwrap();
                }
                return;
            }
            while opened < total && opened < done + 20 {
                c.connect(SocketAddrV4::new(B, 80), None).unwrap();
                opened += 1;
            }
            for e in evs {
                if let Event::Conn { id, .. } = e {
                    let mut b = [0u8; 8];
                    loop {
                        match c.recv(id, &mut b) {
                            Ok(0) => {
                                c.close(id).unwrap();
                                done += 1;
                                break;
                            }
                            Ok(_) => {}
                            Err(StackError::WouldBlock | StackError::StaleHandle) => break,
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                }
            }
        });
    }
    let (a, b) = (w.hosts[0].stats(), w.hosts[1].stats());
    assert_eq!(done, total, "seed {seed}: {a:?} {b:?}");
    assert_eq!((a.conns_closed, b.conns_closed), (total as u64, total as u64), "seed {seed}: {a:?} {b:?}");
    assert_eq!((a.conns_reset, b.conns_reset), (0, 0), "seed {seed}");
    assert!(b.time_wait_acks > 0, "seed {seed}: no FIN was retransmitted into TIME_WAIT: {b:?}");
    assert!(w.hosts.iter().all(Host::all_free));
}
