//! Per-packet cost of a stack core with 0, 1 000 and 10 000 idle
//! connections: the flow table and the dirty-list egress must make it flat.
//!
//! Two single-core hosts over the in-memory NIC, one thread, virtual clock
//! for the stacks (so no timer behaves differently between runs), wall
//! clock only to time the loop. `N` idle connections are opened and left
//! established; one more connection does 64-byte request/response
//! transactions. The figure is wall time per frame received, over both
//! hosts (it includes the in-memory wire's copy, the same for every N).
//!
//! Run: `cargo bench -p ixtcp-stack --bench idle_conns` (the release
//! profile; `-- --quick` for a shorter run).
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use ixtcp_stack::sim::{SimIo, SimLink, SimNic, SimPort};
use ixtcp_stack::{ConnId, MacAddr, StackConfig, StackCore};
use ixtcp_testkit::hosts::SimHost;

type Core = StackCore<SimIo>;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn host(ip: Ipv4Addr, mac: u8, max: usize) -> (Arc<SimNic>, Core) {
    let cfg = StackConfig {
        cores: 1,
        rx_ring_size: 4096,
        tx_ring_size: 1024,
        rx_burst: 256,
        mempool_size: 8192,
        socket_rx_buffer: 4096,
        socket_tx_buffer: 4096,
        max_connections: max,
        backlog: max,
        preallocate: true,
        neighbor_capacity: 64,
        ..StackConfig::new(ip, 24)
    };
    let SimHost { nic, mut cores, .. } = SimHost::new(cfg, MacAddr([2, 0, 0, 0, 0, mac]), u64::from(mac));
    (nic, cores.remove(0))
}

struct Pair {
    a: Core,
    b: Core,
    link: SimLink,
    now: u64,
}

impl Pair {
    fn step(&mut self, app_a: &mut dyn FnMut(&mut Core), app_b: &mut dyn FnMut(&mut Core)) {
        self.a.poll_with(self.now, |c| app_a(c));
        self.b.poll_with(self.now, |c| app_b(c));
        self.link.pump();
        self.now += 10_000;
    }
}

fn measure(idle: usize, transactions: usize) -> (f64, u64) {
    let (na, a) = host(A, 1, idle + 8);
    let (nb, b) = host(B, 2, idle + 8);
    let link = SimLink::new(na as Arc<dyn SimPort>, nb as Arc<dyn SimPort>);
    let mut p = Pair { a, b, link, now: 1_000_000 };
    p.b.listen(7, None).expect("listen");
    // Open the idle connections, 500 at a time.
    let mut accepted: Vec<ConnId> = Vec::new();
    let mut opened = 0;
    while accepted.len() < idle {
        let limit = accepted.len() + 500;
        let mut open = |c: &mut Core| {
            while opened < idle && opened < limit {
                c.connect(SocketAddrV4::new(B, 7), None).expect("connect");
                opened += 1;
            }
            let _ = c.drain_events().count();
        };
        let mut acc = |c: &mut Core| {
            while let Some(id) = c.accept(7) {
                accepted.push(id);
            }
            let _ = c.drain_events().count();
        };
        p.step(&mut open, &mut acc);
    }
    for _ in 0..10 {
        p.step(&mut |c| c.drain_events().for_each(drop), &mut |c| c.drain_events().for_each(drop));
    }
    // The busy connection.
    let client = p.a.connect(SocketAddrV4::new(B, 7), None).expect("connect");
    let mut server = None;
    while server.is_none() {
        p.step(&mut |c| c.drain_events().for_each(drop), &mut |c| {
            server = c.accept(7);
            let _ = c.drain_events().count();
        });
    }
    let server = server.expect("accepted");
    let msg = [0x42u8; 64];
    let run = |p: &mut Pair, n: usize| {
        let mut done = 0;
        let mut outstanding = false;
        let mut buf = [0u8; 256];
        while done < n {
            let mut client_app = |c: &mut Core| {
                let _ = c.drain_events().count();
                if outstanding {
                    if let Ok(k) = c.recv(client, &mut buf) {
                        if k == 64 {
                            outstanding = false;
                            done += 1;
                        }
                    }
                }
                if !outstanding && done < n && c.send(client, &msg).is_ok() {
                    outstanding = true;
                }
            };
            let mut server_app = |c: &mut Core| {
                let _ = c.drain_events().count();
                let mut b = [0u8; 256];
                if let Ok(k) = c.recv(server, &mut b) {
                    let _ = c.send(server, &b[..k]);
                }
            };
            p.step(&mut client_app, &mut server_app);
        }
    };
    run(&mut p, 1000);
    let before = p.a.stats().rx_packets + p.b.stats().rx_packets;
    let t = Instant::now();
    run(&mut p, transactions);
    let elapsed = t.elapsed();
    let packets = p.a.stats().rx_packets + p.b.stats().rx_packets - before;
    assert_eq!(p.a.socket_census().flows, idle + 1);
    (elapsed.as_nanos() as f64 / packets as f64, packets)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let transactions = if quick { 20_000 } else { 100_000 };
    let rounds = if quick { 3 } else { 7 };
    println!("idle connections | ns per frame (median of {rounds}) | frames timed per run | vs 0 idle");
    let sizes = [0usize, 1_000, 10_000];
    // Interleave the sizes round by round so that drift (frequency, cache,
    // neighbours on a shared machine) hits them alike.
    let mut samples = vec![Vec::new(); sizes.len()];
    let mut frames = vec![0u64; sizes.len()];
    for _ in 0..rounds {
        for (i, &idle) in sizes.iter().enumerate() {
            let (ns, n) = measure(idle, transactions);
            samples[i].push(ns);
            frames[i] = n;
        }
    }
    let mut base = None;
    for (i, &idle) in sizes.iter().enumerate() {
        let v = &mut samples[i];
        v.sort_by(|x, y| x.total_cmp(y));
        let med = v[v.len() / 2];
        let b = *base.get_or_insert(med);
        println!("{idle:>16} | {med:>10.1} | {:>10} | {:+.1}%", frames[i], (med / b - 1.0) * 100.0);
    }
}
