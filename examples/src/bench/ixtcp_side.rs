//! ixtcp's run of a workload: two hosts in this process over two linked
//! 82599 models ([`LinkedHosts`]), the server host with one stack core per
//! server core of the split and the client host with one per client core,
//! both in sockapi's inline runtime (application and stack on one thread
//! per core, which the runtime pins to the split's core: `stack.cpus`). Each core runs the same
//! [`server_part`] / [`client_part`] as the kernel side, over
//! [`Sockets`].
//!
//! Order of a run: servers listen; each client core opens its share of the
//! idle connections (idle workload) and then starts its loop; the calling
//! thread waits out the warm-up and measures; it stops the clients, the
//! last client to finish stops the servers, and both hosts linger until
//! their connections are closed.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ixtcp_host::{HostConfig, LinkedHosts};
use ixtcp_sockapi::Mode;
use ixtcp_stack::{ConfigError, StackConfig};

use super::apps::{client_part, open_idle, server_part, share};
use super::cpu::ServerTime;
use super::kernel_side::{measured, wait_open};
use super::{Measured, Params, Split, Workload, measure};
use crate::reactor::{Gauge, Until, wait_listening};
use crate::session::Tally;
use crate::sockets::Sockets;

/// The server host's address.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The client host's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The port every workload is served on.
pub const PORT: u16 = 8000;

/// Send and receive buffer of each connection in the idle workload: ten
/// thousand idle connections with the default 64 KiB each way would hold
/// over a gigabyte per host for nothing (the kernel sizes its buffers on
/// demand; the stack's slots have fixed buffers).
pub const IDLE_SOCKET_BUFFER: usize = 16 * 1024;

/// Send and receive buffer of each connection in the bulk workload: what a
/// bulk user sets (docs/ixtcp.toml), about the bandwidth-delay product of a
/// 10 Gbit/s link with a few hundred microseconds of queueing, so the window
/// (scaled above 64 KiB) does not cap one connection's rate. The kernel
/// sizes its own buffers on demand.
pub const BULK_SOCKET_BUFFER: usize = 1 << 20;

/// Round trips timed for the core round trip before and after each run:
/// 100 000 take 6 ms at 60 ns and 32 ms at 320 ns, the two figures seen
/// here.
const CORE_RTT_TRIPS: u32 = 100_000;

/// Why the stack's configuration refuses `mtu`, when it does (a build
/// without jumbo frames refuses MTUs above 1500): the bench then skips that
/// row instead of failing it. Any other configuration problem is not a skip.
pub fn mtu_refused(mtu: usize) -> Option<String> {
    let mut stack = StackConfig::new(SERVER_IP, 24);
    stack.mtu = mtu;
    match stack.validate() {
        Err(e @ ConfigError::Invalid { field: "mtu", .. }) => Some(e.to_string()),
        _ => None,
    }
}

/// The stack configurations of both hosts for `w`, at `mtu` (`None`: the
/// stack's default).
pub fn host_configs(w: Workload, split: &Split, params: &Params, mtu: Option<usize>) -> (HostConfig, HostConfig) {
    let shared_cpu = split.server.iter().any(|c| split.client.contains(c));
    let make = |ip: Ipv4Addr, cpus: &[usize]| {
        let mut stack = StackConfig::new(ip, 24);
        stack.cores = u16::try_from(cpus.len().clamp(1, 16)).unwrap_or(1);
        // Core i on the side's i-th CPU, through the runtime.
        if split.pin && !cpus.is_empty() {
            stack.cpus = Some(cpus.iter().copied().take(usize::from(stack.cores)).collect());
        }
        if let Some(mtu) = mtu {
            stack.mtu = mtu;
        }
        // Room for the active connections, the idle ones and those still
        // closing, on any one core (RSS spreads them unevenly).
        let idle = if w == Workload::EchoIdle { params.idle } else { 0 };
        stack.max_connections = (idle + 4 * params.conns + 1024).max(stack.max_connections);
        stack.backlog = 4096;
        if w == Workload::EchoIdle {
            stack.socket_rx_buffer = IDLE_SOCKET_BUFFER;
            stack.socket_tx_buffer = IDLE_SOCKET_BUFFER;
        }
        if w == Workload::Bulk {
            stack.socket_rx_buffer = BULK_SOCKET_BUFFER;
            stack.socket_tx_buffer = BULK_SOCKET_BUFFER;
        }
        let mut cfg = HostConfig::model(stack, Mode::Inline);
        // Poll without pausing when each side has CPUs of its own, as on
        // hardware; nap when idle when both share one.
        if !shared_cpu && split.pin {
            cfg.idle_wait = None;
        }
        cfg.stats_every = 1024;
        cfg
    };
    (make(SERVER_IP, &split.server), make(CLIENT_IP, &split.client))
}

/// Runs `w` on ixtcp at `mtu`; returns the measured figures (with the NIC
/// model's share of the server cores, see [`ServerTime`]) and the client
/// tallies.
pub fn run(
    w: Workload,
    split: &Split,
    params: &Params,
    mtu: Option<usize>,
    progress: &mut dyn FnMut(f64),
) -> io::Result<(Measured, Vec<Tally>)> {
    let (server_cfg, client_cfg) = host_configs(w, split, params, mtu);
    // Before any host thread runs and after they all ended, while both
    // cores are free (pinned runs only: tests share their cores and never
    // busy-poll them).
    let core_rtt = || match (split.pin, split.server.first(), split.client.first()) {
        (true, Some(&a), Some(&b)) if a != b => super::cpu::cache_line_round_trip_ns(a, b, true, CORE_RTT_TRIPS),
        _ => None,
    };
    let rtt_before = core_rtt();
    let hosts = LinkedHosts::start(server_cfg, client_cfg)?;
    let server_time = ServerTime::new(hosts.server.model(), split.server.len());
    let addr = SocketAddrV4::new(SERVER_IP, PORT);
    let client_stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::new(AtomicBool::new(false));
    let client_until = Until::flag(Arc::clone(&client_stop));
    let server_until = Until::flag(Arc::clone(&server_stop));
    let server_gauges: Vec<Arc<Gauge>> = split.server.iter().map(|_| Arc::default()).collect();
    let client_gauges: Vec<Arc<Gauge>> = split.client.iter().map(|_| Arc::default()).collect();
    // Client cores that have started their loop, and that have finished it.
    let started = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let clients = split.client.len();

    let server_app = |ctx: &ixtcp_sockapi::Context| -> io::Result<Tally> {
        let core = ctx.core();
        server_time.register_thread(core);
        let gauge = server_gauges.get(core).ok_or_else(|| io::Error::other("no gauge for a server core"))?;
        if w == Workload::UdpEcho {
            return crate::udp_echo::serve_udp_echo(ctx, addr, &server_until, gauge);
        }
        let mut r = Sockets::new(ctx)?;
        server_part(w, &mut r, addr, &server_until, gauge)
    };
    let client_app = |ctx: &ixtcp_sockapi::Context| -> io::Result<Tally> {
        let index = ctx.core();
        let result = (|| {
            let gauge = client_gauges.get(index).ok_or_else(|| io::Error::other("no gauge for a client core"))?;
            let mut r = Sockets::new(ctx)?;
            if !wait_listening(&server_gauges, Duration::from_secs(10)) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the ixtcp server never listened"));
            }
            let idle = if w == Workload::EchoIdle {
                let idle = open_idle(&mut r, addr, share(params.idle, index, clients), Duration::from_secs(60))?;
                wait_open(&server_gauges, params.idle, Duration::from_secs(60))?;
                idle
            } else {
                Vec::new()
            };
            started.fetch_add(1, Ordering::AcqRel);
            if w == Workload::UdpEcho {
                let load = super::apps::udp_load(addr, params);
                return crate::udp_echo::load_udp_echo(ctx, &load, (index, clients), &client_until, gauge);
            }
            let tally = client_part(w, &mut r, addr, params, (index, clients), &client_until, gauge);
            for s in idle {
                let _ = s.close();
            }
            tally
        })();
        // The last client core out stops the servers, so that no server
        // closes a connection in the middle of a transaction.
        if finished.fetch_add(1, Ordering::AcqRel) + 1 == clients {
            server_stop.store(true, Ordering::Relaxed);
        }
        result
    };

    std::thread::scope(|s| {
        let running = s.spawn(|| hosts.run(server_app, client_app));
        // Wait until every client core runs its loop (or the run ended early).
        let limit = Instant::now() + Duration::from_secs(130);
        let mut ready = true;
        while started.load(Ordering::Acquire) < clients {
            if running.is_finished() || Instant::now() > limit {
                ready = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let figures = ready.then(|| {
            let (total, per_core, t0, t1) =
                measure(w, &client_gauges, params, split.server.len(), || server_time.sample(), progress);
            (total, per_core, server_time.share(t0, t1))
        });
        client_stop.store(true, Ordering::Relaxed);
        let joined = running.join().map_err(|_| io::Error::other("an ixtcp host thread panicked"))?;
        let (servers, clients) = joined.map_err(|e| io::Error::new(e.kind(), format!("ixtcp hosts: {e}")))?;
        for srv in servers {
            srv.map_err(|e| io::Error::new(e.kind(), format!("ixtcp server: {e}")))?;
        }
        let tallies = clients
            .into_iter()
            .collect::<io::Result<Vec<Tally>>>()
            .map_err(|e| io::Error::new(e.kind(), format!("ixtcp client: {e}")))?;
        let (total, per_core, nic_share) =
            figures.ok_or_else(|| io::Error::other("the ixtcp clients never started (timed out)"))?;
        let core_rtt_ns = rtt_before.zip(core_rtt()).map(|(before, after)| [before, after]);
        Ok((Measured { nic_share, core_rtt_ns, ..measured(total, per_core, &tallies, w) }, tallies))
    })
}

#[cfg(test)]
mod tests {
    use super::super::cpu;
    use super::*;

    #[test]
    fn every_workload_runs_on_ixtcp() {
        let params = Params {
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(200),
            conns: 4,
            size: 64,
            idle: 50,
            // Liveness, not speed: however long the machine keeps the
            // clients waiting, each workload must complete some.
            min_transactions: 20,
        };
        // Other tests run on the same cores: no pinning, no busy polling.
        let split = Split::floating(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let timed = cpu::thread_id().is_some_and(|t| cpu::scheduled_ns(t).is_some());
        let mut shares = Vec::new();
        for w in Workload::ALL {
            let (m, tallies) = run(w, &split, &params, None, &mut |_| {}).unwrap();
            let failures: Vec<_> = tallies.iter().flat_map(|t| t.first_failures.clone()).collect();
            assert_eq!(m.failures, 0, "{w:?}: {failures:?}");
            assert!(m.total > 0.0, "{w:?}");
            if timed {
                let share = m.nic_share.unwrap_or_else(|| panic!("{w:?}: no NIC model share"));
                assert!((0.0..=1.0).contains(&share), "{w:?}: NIC model share {share}");
                shares.push(share);
            }
        }
        // The model times a random eighth of its calls: in a short window
        // on a loaded machine one workload may have none timed (CI saw a
        // bulk share of 0), but the accounting must show in some.
        assert!(!timed || shares.iter().any(|&s| s > 0.0), "no workload shows NIC model time: {shares:?}");
    }

    #[test]
    fn an_mtu_the_config_refuses_is_named_and_one_it_takes_is_not() {
        assert_eq!(mtu_refused(1500), None);
        let low = mtu_refused(100).expect("mtu 100 refused");
        assert!(low.contains("`mtu`") && low.contains("100"), "{low}");
        let (server, client) = host_configs(Workload::Bulk, &Split::floating(2), &Params::quick(), Some(1400));
        assert_eq!((server.stack.mtu, client.stack.mtu), (1400, 1400));
        assert_eq!(server.stack.socket_rx_buffer, BULK_SOCKET_BUFFER);
        let (server, _) = host_configs(Workload::Bulk, &Split::floating(2), &Params::quick(), None);
        assert_eq!(server.stack.mtu, StackConfig::new(SERVER_IP, 24).mtu);
    }

    #[test]
    fn the_runtime_pins_the_server_on_its_cpus_and_the_load_on_its_own() {
        let (server, client) = host_configs(Workload::EchoPersistent, &Split::halves(2, None), &Params::quick(), None);
        assert_eq!((server.stack.cpus, client.stack.cpus), (Some(vec![0]), Some(vec![1])));
        let (server, client) = host_configs(Workload::EchoPersistent, &Split::halves(5, None), &Params::quick(), None);
        assert_eq!((server.stack.cpus, client.stack.cpus), (Some(vec![0, 1, 2]), Some(vec![3, 4])));
        let (server, client) = host_configs(Workload::EchoPersistent, &Split::floating(2), &Params::quick(), None);
        assert_eq!((server.stack.cpus, client.stack.cpus), (None, None), "tests float");
    }
}
