//! Two stacks over two linked 82599 models (the driver's own code on the
//! model's registers and DMA), with a virtual clock driving the link.
mod common;

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use common::model::{IPS, model_config as config};
use common::{BulkApp, Pattern, conn_events};
use ixtcp_driver::time::{Clock, VirtualClock};
use ixtcp_driver::wire::impair::Impairments;
use ixtcp_driver::wire::link::{Link, LinkConfig};
use ixtcp_stack::{CoreStats, StackConfig};
use ixtcp_testkit::hosts::{ModelCore as Core, ModelHost};
use ixtcp_testkit::seed::Seeded;

struct ModelWorld {
    clock: VirtualClock,
    hosts: Vec<ModelHost>,
    steps: u64,
}

impl ModelWorld {
    fn new(cores: u16, link: LinkConfig, seed: u64, tweak: impl Fn(&mut StackConfig)) -> ModelWorld {
        let clock = VirtualClock::new();
        clock.advance(Duration::from_millis(1));
        let (ea, eb) = Link::pair(link, Arc::new(clock.clone()) as Arc<dyn Clock>);
        let mut hosts = Vec::new();
        for (i, end) in [ea, eb].into_iter().enumerate() {
            let mut cfg = config(IPS[i], cores);
            tweak(&mut cfg);
            let mac = [2, 0, 0, 0, 0, i as u8 + 1];
            hosts.push(ModelHost::new(mac, Some(Box::new(end)), cfg, Some(seed + i as u64), clock.now_ns()));
        }
        ModelWorld { clock, hosts, steps: 0 }
    }

    fn core(&mut self, h: usize, c: usize) -> &mut Core {
        &mut self.hosts[h].cores[c]
    }

    fn step(&mut self, app: &mut dyn FnMut(usize, &mut Core)) {
        self.steps += 1;
        let now = self.clock.now_ns();
        let mut work = 0;
        for (h, host) in self.hosts.iter_mut().enumerate() {
            for core in host.cores.iter_mut() {
                let (out, ()) = core.poll_with(now, |c| app(h, c));
                work += out.received + out.sent;
            }
        }
        for host in &self.hosts {
            loop {
                let n = host.model.pump();
                work += n;
                if n == 0 {
                    break;
                }
            }
        }
        if work == 0 {
            let next = self
                .hosts
                .iter()
                .flat_map(|h| h.cores.iter())
                .filter_map(|c| c.next_wakeup_ns())
                .min()
                .unwrap_or(now + 1_000_000);
            self.clock.advance_to(next.max(now + 1_000));
        } else {
            self.clock.advance(Duration::from_micros(5));
        }
    }

    fn stats(&self, h: usize) -> CoreStats {
        self.hosts[h].stats()
    }
}

/// Opens `conns` connections (alternating sides and cores), moves `bytes`
/// each way on each, verifies every byte.
fn bulk_over_models(w: &mut ModelWorld, conns: usize, bytes: usize, seed: u64, max_virtual_ns: u64) -> [BulkApp; 2] {
    let cores = w.hosts[0].cores.len();
    let pattern = Arc::new(Pattern::new(seed));
    let mut apps = [BulkApp::new(Arc::clone(&pattern), bytes, cores), BulkApp::new(pattern, bytes, cores)];
    for h in 0..2 {
        for c in 0..cores {
            // Already listening after a first round: fine.
            let _ = w.core(h, c).listen(5000, None);
        }
    }
    let mut to_open: Vec<(usize, usize)> = (0..conns).map(|i| (i % 2, (i / 2) % cores)).collect();
    let end = w.clock.now_ns() + max_virtual_ns;
    while w.clock.now_ns() < end && apps[0].finished + apps[1].finished < 2 * conns {
        w.step(&mut |h, c| {
            let ci = usize::from(c.index());
            let mut ids = conn_events(c);
            apps[h].accept_all(ci, c, 5000, &mut ids);
            to_open.retain(|&(oh, oc)| {
                if (oh, oc) != (h, ci) {
                    return true;
                }
                let id = c.connect(SocketAddrV4::new(IPS[1 - h], 5000), None).unwrap();
                let (l, _) = c.endpoints(id).unwrap();
                apps[h].add(ci, id, l.port(), true);
                false
            });
            apps[h].service(ci, c, &ids);
        });
    }
    apps
}

#[test]
fn models_carry_a_thousand_connections_one_mib_each_way_on_one_core() {
    thousand_connections_over_models(1);
}

#[test]
fn models_carry_a_thousand_connections_one_mib_each_way_on_two_cores() {
    thousand_connections_over_models(2);
}

#[test]
fn models_carry_a_thousand_connections_one_mib_each_way_on_four_cores() {
    thousand_connections_over_models(4);
}

/// 1 000 connections per host (half opened by each side), 1 MiB each way,
/// every byte verified, every segment on the core that owns its TCB.
fn thousand_connections_over_models(cores: u16) {
    let seeded = Seeded::new(21);
    let seed = seeded.seed;
    let mut w = ModelWorld::new(cores, LinkConfig::unlimited(), seed, |c| {
        c.socket_rx_buffer = 16 * 1024;
        c.socket_tx_buffer = 16 * 1024;
        c.max_connections = 1000;
        c.backlog = 1000;
        c.preallocate = true;
    });
    let apps = bulk_over_models(&mut w, 1000, 1 << 20, seed, 600_000_000_000);
    for app in &apps {
        assert!(app.errors.is_empty(), "seed {seed}: {:?}", &app.errors[..app.errors.len().min(5)]);
    }
    assert_eq!(apps[0].finished + apps[1].finished, 2000, "seed {seed}: A {:?} B {:?}", w.stats(0), w.stats(1));
    for h in 0..2 {
        for (i, c) in w.hosts[h].cores.iter().enumerate() {
            let s = c.stats();
            assert_eq!(s.rx_misdirected, 0, "host {h} core {i}: {s:?}");
            assert!(s.conns_opened_active > 0 && s.conns_opened_passive > 0, "host {h} core {i}: {s:?}");
        }
        assert_eq!(w.hosts[h].model.faults(), vec![], "model faults");
    }
    println!("models, {cores} core(s): {} steps, {} virtual ms", w.steps, w.clock.now_ns() / 1_000_000);
}

#[test]
fn models_deliver_ten_mib_intact_over_an_impaired_link() {
    impaired_transfer(0x5eed_0002, 10 << 20, true);
}

#[test]
fn models_deliver_intact_over_an_impaired_link_with_checksums_in_software() {
    impaired_transfer(0x5eed_0003, 2 << 20, false);
}

/// `bytes` each way on one connection over a link that loses, duplicates,
/// reorders and corrupts frames, with `checksum_offload` as given: every
/// byte arrives, and the corrupted segments were dropped by the NIC's check
/// (offload) or the stack's (software), never by the other one.
fn impaired_transfer(default_seed: u64, bytes: usize, offload: bool) {
    let seeded = Seeded::new(default_seed);
    let seed = seeded.seed;
    let imp = Impairments { loss: 0.02, duplicate: 0.01, reorder: 0.02, corrupt: 0.01, seed };
    let mut w = ModelWorld::new(1, LinkConfig::unlimited().with_impairments(imp), seed, |c| {
        c.socket_rx_buffer = 256 * 1024;
        c.socket_tx_buffer = 256 * 1024;
        c.checksum_offload = offload;
    });
    let apps = bulk_over_models(&mut w, 1, bytes, seed, 3_600_000_000_000);
    let report = format!("seed {seed} (replay: IXTCP_SEED={seed}); A {:?}; B {:?}", w.stats(0), w.stats(1));
    for app in &apps {
        assert!(app.errors.is_empty(), "{:?}; {report}", app.errors);
    }
    assert_eq!(apps[0].finished + apps[1].finished, 2, "{report}");
    let (a, b) = (w.stats(0), w.stats(1));
    let nic = a.drop_ip_csum_nic + a.drop_tcp_csum_nic + b.drop_ip_csum_nic + b.drop_tcp_csum_nic;
    let sw = a.drop_ip_csum_sw + a.drop_tcp_csum_sw + b.drop_ip_csum_sw + b.drop_tcp_csum_sw;
    if offload {
        assert!(nic > 0 && sw == 0, "{report}");
        assert!(a.tx_csum_offloaded > 0 && a.tx_csum_software == 0 && a.rx_csum_software == 0, "{report}");
    } else {
        assert!(nic == 0 && sw > 0, "{report}");
        assert!(a.tx_csum_offloaded == 0 && a.tx_csum_software > 0 && a.rx_csum_software > 0, "{report}");
    }
    println!("{report}; virtual {} s", w.clock.now_ns() / 1_000_000_000);
}

#[test]
fn a_crashed_stack_restarts_on_a_cleanly_reinitialised_device() {
    let seeded = Seeded::new(23);
    let seed = seeded.seed;
    let mut w = ModelWorld::new(2, LinkConfig::unlimited(), seed, |_| {});
    let apps = bulk_over_models(&mut w, 4, 64 * 1024, seed, 30_000_000_000);
    assert_eq!(apps[0].finished + apps[1].finished, 8);
    // Crash host 1 mid-connection: open connections, then drop the stack
    // and the queues without any shutdown.
    let _ = w.core(0, 0).connect(SocketAddrV4::new(IPS[1], 5000), None).unwrap();
    for _ in 0..20 {
        w.step(&mut |_, c| {
            let _ = c.drain_events().count();
        });
    }
    // (A host drops its cores, queues included, before the device handle.)
    let crashed = w.hosts.pop().expect("host 1");
    let model = crashed.model.clone();
    drop(crashed);
    // Restart: the driver resets and re-initialises the device.
    let now = w.clock.now_ns();
    w.hosts.push(ModelHost::start(model, config(IPS[1], 2), Some(seed + 100), now));
    assert!(w.hosts[1].model.reset_count() >= 2, "init must reset the device");
    let apps = bulk_over_models(&mut w, 4, 64 * 1024, seed + 1, 60_000_000_000);
    assert_eq!(apps[0].finished + apps[1].finished, 8, "after restart: A {:?} B {:?}", w.stats(0), w.stats(1));
    assert_eq!(w.hosts[1].model.faults(), vec![], "model faults");
}

/// The mempool's atomic-free fast path belongs to the first thread that
/// allocates from it, so a core built on one thread and run on another must
/// not allocate in between: its first packet (core 0's gratuitous ARP) is
/// built by its first `poll`, on the thread that runs it.
#[test]
fn a_core_built_on_one_thread_owns_its_pool_on_the_thread_that_runs_it() {
    let clock = VirtualClock::new();
    let mut host = ModelHost::new([2, 0, 0, 0, 0, 1], None, config(IPS[0], 1), Some(5), clock.now_ns());
    let core = host.cores.remove(0);
    assert!(!core.io().pool.is_owned_here(), "building the core claimed the pool on the building thread");
    let now = clock.now_ns();
    let (owned, announced) = std::thread::spawn(move || {
        let mut core = core;
        core.poll(now);
        (core.io().pool.is_owned_here(), core.stats().arp_requests)
    })
    .join()
    .unwrap();
    assert!(owned, "the core's thread does not own its pool after its first poll");
    assert_eq!(announced, 1, "the gratuitous ARP goes out at the first poll");
}
