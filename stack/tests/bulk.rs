//! 1 000 concurrent connections, 1 MiB each way, every byte verified, on
//! 1, 2 and 4 cores per side; half opened by each side. Every reply must
//! land on the core that owns the connection.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use common::*;
use ixtcp_stack::sim::SimImpairments;
use ixtcp_stack::{ConnId, Event};

const IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
const PORT: u16 = 5000;

fn bulk(cores: u16, conns: usize, bytes: usize, seed: u64) -> [ixtcp_stack::CoreStats; 2] {
    bulk_at_mtu(cores, conns, bytes, seed, 1500)
}

fn bulk_at_mtu(cores: u16, conns: usize, bytes: usize, seed: u64, mtu: usize) -> [ixtcp_stack::CoreStats; 2] {
    let tweak = |ip| {
        let mut c = base_config(ip, cores);
        c.mtu = mtu;
        if mtu > 1500 {
            // 16 KiB buffers: a smaller ring and pool keep the memory
            // sane, and still hold every window of the 16 connections.
            c.rx_ring_size = 1024;
            c.mempool_size = 2048;
        }
        // Smaller socket buffers keep 2 000 sockets per host affordable; the
        // windows still hold many segments, so the transfer is no toy.
        c.socket_rx_buffer = 16 * 1024;
        c.socket_tx_buffer = 16 * 1024;
        c.max_connections = conns;
        c.backlog = conns;
        c.preallocate = true;
        c
    };
    let hosts = [Host::new(tweak(IPS[0]), mac(1), seed), Host::new(tweak(IPS[1]), mac(2), seed + 1)];
    let [a, b] = hosts;
    let mut w = World::pair(a, b, SimImpairments::default(), seed);
    let pattern = Arc::new(Pattern::new(seed));
    let mut apps =
        [BulkApp::new(Arc::clone(&pattern), bytes, cores.into()), BulkApp::new(pattern, bytes, cores.into())];
    for h in 0..2 {
        for c in 0..usize::from(cores) {
            w.core(h, c).listen(PORT, None).unwrap();
        }
    }
    // Connection i is opened by host i % 2, from core (i / 2) % cores.
    let mut to_open: Vec<(usize, usize)> = (0..conns).map(|i| (i % 2, (i / 2) % usize::from(cores))).collect();
    let end = w.now_ns + 600_000_000_000;
    let done = |apps: &[BulkApp; 2]| apps[0].finished + apps[1].finished == 2 * conns;
    while w.now_ns < end && !(done(&apps) && w.hosts.iter().all(Host::all_free)) {
        w.step(&mut |h, c| {
            let ci = usize::from(c.index());
            let mut ids: Vec<ConnId> = Vec::new();
            for e in c.drain_events().collect::<Vec<_>>() {
                if let Event::Conn { id, .. } = e {
                    ids.push(id);
                }
            }
            while let Some(id) = c.accept(PORT) {
                let (_, remote) = c.endpoints(id).unwrap();
                apps[h].add(ci, id, remote.port(), false);
                ids.push(id);
            }
            to_open.retain(|&(oh, oc)| {
                if (oh, oc) != (h, ci) {
                    return true;
                }
                let id = c.connect(SocketAddrV4::new(IPS[1 - h], PORT), None).unwrap();
                let (local, _) = c.endpoints(id).unwrap();
                apps[h].add(ci, id, local.port(), true);
                false
            });
            apps[h].service(ci, c, &ids);
        });
    }
    for (h, app) in apps.iter().enumerate() {
        assert!(app.errors.is_empty(), "host {h}: {:?}", &app.errors[..app.errors.len().min(5)]);
    }
    let stats = [w.hosts[0].stats(), w.hosts[1].stats()];
    assert!(
        done(&apps),
        "finished {}+{} of {} (virtual {} ms, {} steps)\nA {:?}\nB {:?}",
        apps[0].finished,
        apps[1].finished,
        2 * conns,
        w.now_ns / 1_000_000,
        w.steps,
        stats[0],
        stats[1]
    );
    for (h, app) in apps.iter().enumerate() {
        let total: usize = app.streams.iter().flat_map(|m| m.values()).map(|s| s.received).sum();
        assert_eq!(total, conns * bytes, "host {h} bytes received");
    }
    // Every reply landed on the core that owns the TCB: no segment met a
    // core without its connection, every core carried its share, and each
    // core's queue received what its counters say it processed.
    for (h, host) in w.hosts.iter().enumerate() {
        let per_queue = host.nic.received_per_queue();
        for (i, core) in host.cores.iter().enumerate() {
            let s = core.stats();
            assert_eq!(s.rx_misdirected, 0, "host {h} core {i}: misdirected segments");
            assert_eq!(s.rx_stray, 0, "host {h} core {i}: segments for unknown connections");
            assert!(s.conns_opened_active > 0 && s.conns_opened_passive > 0, "host {h} core {i}: {s:?}");
            assert_eq!(s.rx_packets, per_queue[i], "host {h} core {i}: RX counter vs queue");
        }
        assert!(host.all_free(), "host {h}: sockets left behind");
        assert_eq!(host.nic.missed().iter().sum::<u64>(), 0, "host {h}: RX ring overflowed");
    }
    if std::env::var("IXTCP_DEBUG").is_ok() {
        println!("A {:?}\nB {:?}", stats[0], stats[1]);
    }
    println!(
        "cores {cores}: {} steps, {} virtual ms, frames A→B {} B→A {}",
        w.steps,
        w.now_ns / 1_000_000,
        w.links[0].counters()[0].frames,
        w.links[0].counters()[1].frames
    );
    stats
}

#[test]
fn thousand_connections_one_mib_each_way_one_core() {
    bulk(1, 1000, 1 << 20, 11);
}

#[test]
fn jumbo_frames_over_the_sim_nic_two_cores() {
    // mtu 9000: 16 KiB buffers in the sim NIC too (the config's
    // buffer_size), full 9014-byte frames on the wire.
    let stats = bulk_at_mtu(2, 16, 1 << 20, 14, 9000);
    for (h, s) in stats.iter().enumerate() {
        let average = s.tx_bytes / s.tx_packets.max(1);
        assert!(average > 1514, "host {h}: {} frames, {} bytes: no jumbo frames", s.tx_packets, s.tx_bytes);
    }
}

#[test]
fn thousand_connections_one_mib_each_way_two_cores() {
    bulk(2, 1000, 1 << 20, 12);
}

#[test]
fn thousand_connections_one_mib_each_way_four_cores() {
    bulk(4, 1000, 1 << 20, 13);
}
