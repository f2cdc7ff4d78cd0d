//! The kernel's run of a workload: epoll servers on the split's server
//! cores and epoll clients on its client cores, over 127.0.0.1.
//!
//! Ten thousand idle connections cost twenty thousand descriptors in one
//! process (both ends), more than a common limit of 20 000; so the idle
//! ends can be held by a child process ([`IdleGuard::in_child`]), which
//! the `bench` program does by running itself with `--hold-idle`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::apps::{client_part, server_part};
use super::{Measured, Params, Split, Workload, measure};
use crate::kernel::Kernel;
use crate::reactor::{Gauge, Until};
use crate::session::Tally;

/// Idle connections held open for the idle workload.
#[derive(Debug)]
pub enum IdleGuard {
    /// Held by this process.
    Local(Vec<TcpStream>),
    /// Held by a child process, which exits when its stdin closes.
    Child(Child),
}

impl IdleGuard {
    /// Opens `n` connections to `addr` from this process.
    pub fn in_process(addr: SocketAddrV4, n: usize) -> io::Result<IdleGuard> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(TcpStream::connect(SocketAddr::V4(addr))?);
        }
        Ok(IdleGuard::Local(v))
    }

    /// Runs `exe --hold-idle ADDR N` and waits for its "ready" line.
    pub fn in_child(exe: &Path, addr: SocketAddrV4, n: usize) -> io::Result<IdleGuard> {
        let mut child = Command::new(exe)
            .arg("--hold-idle")
            .arg(format!("{addr}/{n}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("the idle-connection holder said {line:?} instead of ready")));
        }
        Ok(IdleGuard::Child(child))
    }
}

impl Drop for IdleGuard {
    fn drop(&mut self) {
        if let IdleGuard::Child(c) = self {
            drop(c.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The child's side of [`IdleGuard::in_child`]: `spec` is `ADDR/N`; opens
/// the connections, says "ready", and holds them until stdin closes.
pub fn hold_idle_main(spec: &str) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("--hold-idle {spec:?}: expected ADDR:PORT/N"));
    let (a, n) = spec.split_once('/').ok_or_else(bad)?;
    let addr: SocketAddrV4 = a.parse().map_err(|_| bad())?;
    let n: usize = n.parse().map_err(|_| bad())?;
    crate::kernel::raise_fd_limit();
    let guard = IdleGuard::in_process(addr, n)?;
    let mut out = io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    drop(guard);
    Ok(())
}

/// A loopback port nobody listens on now.
pub fn free_port() -> io::Result<SocketAddrV4> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    match l.local_addr()? {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(io::Error::other("127.0.0.1 bound to an IPv6 address")),
    }
}

/// Pins the calling thread to `core` (ignored where pinning is refused).
pub fn pin(core: usize) {
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
}

/// How the idle ends are held.
pub type HoldIdle<'a> = &'a (dyn Fn(SocketAddrV4, usize) -> io::Result<IdleGuard> + Sync);

/// Runs `w` on kernel sockets; returns the measured figures and the
/// client tallies.
pub fn run(
    w: Workload,
    split: &Split,
    params: &Params,
    hold_idle: HoldIdle<'_>,
    progress: &mut dyn FnMut(f64),
) -> io::Result<(Measured, Vec<Tally>)> {
    if w == Workload::UdpEcho {
        return run_udp(split, params, progress);
    }
    let addr = free_port()?;
    // Clients stop first, so that no server closes a connection in the
    // middle of a transaction.
    let client_stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::new(AtomicBool::new(false));
    let client_until = Until::flag(Arc::clone(&client_stop));
    let server_until = Until::flag(Arc::clone(&server_stop));
    let server_gauges: Vec<Arc<Gauge>> = split.server.iter().map(|_| Arc::default()).collect();
    let client_gauges: Vec<Arc<Gauge>> = split.client.iter().map(|_| Arc::default()).collect();
    std::thread::scope(|s| {
        let servers: Vec<_> = split
            .server
            .iter()
            .zip(&server_gauges)
            .map(|(&core, gauge)| {
                let until = server_until.clone();
                s.spawn(move || {
                    if split.pin {
                        pin(core);
                    }
                    let mut k = Kernel::new()?;
                    server_part(w, &mut k, addr, &until, gauge)
                })
            })
            .collect();
        let stop_clients = || client_stop.store(true, Ordering::Relaxed);
        let result = (|| -> io::Result<(f64, f64, Vec<Tally>)> {
            wait_for_listener(addr)?;
            let _idle = if w == Workload::EchoIdle {
                let guard = hold_idle(addr, params.idle)?;
                wait_open(&server_gauges, params.idle, Duration::from_secs(60))?;
                Some(guard)
            } else {
                None
            };
            let clients: Vec<_> = split
                .client
                .iter()
                .zip(&client_gauges)
                .enumerate()
                .map(|(i, (&core, gauge))| {
                    let until = client_until.clone();
                    let cores = split.client.len();
                    s.spawn(move || {
                        if split.pin {
                            pin(core);
                        }
                        let mut k = Kernel::new()?;
                        client_part(w, &mut k, addr, params, (i, cores), &until, gauge)
                    })
                })
                .collect();
            let (total, per_core, (), ()) = measure(w, &client_gauges, params, split.server.len(), || (), progress);
            stop_clients();
            let mut tallies = Vec::new();
            for c in clients {
                tallies.push(c.join().map_err(|_| io::Error::other("a client thread panicked"))??);
            }
            Ok((total, per_core, tallies))
        })();
        stop_clients();
        server_stop.store(true, Ordering::Relaxed);
        for srv in servers {
            match srv.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io::Error::new(e.kind(), format!("kernel server: {e}"))),
                Err(_) => return Err(io::Error::other("a server thread panicked")),
            }
        }
        let (total, per_core, tallies) = result?;
        Ok((measured(total, per_core, &tallies, w), tallies))
    })
}

/// The UDP echo row on kernel sockets: one socket on 127.0.0.1 shared by
/// the server threads (each pinned to a server core, each taking the
/// datagrams the kernel hands it), the flows' connected sockets on the
/// client threads.
fn run_udp(split: &Split, params: &Params, progress: &mut dyn FnMut(f64)) -> io::Result<(Measured, Vec<Tally>)> {
    let w = Workload::UdpEcho;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let addr = match sock.local_addr()? {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => return Err(io::Error::other("127.0.0.1 bound to an IPv6 address")),
    };
    let load = super::apps::udp_load(addr, params);
    let client_stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::new(AtomicBool::new(false));
    let client_until = Until::flag(Arc::clone(&client_stop));
    let server_until = Until::flag(Arc::clone(&server_stop));
    let server_gauges: Vec<Arc<Gauge>> = split.server.iter().map(|_| Arc::default()).collect();
    let client_gauges: Vec<Arc<Gauge>> = split.client.iter().map(|_| Arc::default()).collect();
    std::thread::scope(|s| {
        let mut servers = Vec::new();
        for (&core, gauge) in split.server.iter().zip(&server_gauges) {
            let (until, sock) = (server_until.clone(), sock.try_clone()?);
            servers.push(s.spawn(move || {
                if split.pin {
                    pin(core);
                }
                crate::udp_echo::kernel_serve_udp_echo(&sock, &until, gauge)
            }));
        }
        let result = (|| -> io::Result<(f64, f64, Vec<Tally>)> {
            let cores = split.client.len();
            let clients: Vec<_> = split
                .client
                .iter()
                .zip(&client_gauges)
                .enumerate()
                .map(|(i, (&core, gauge))| {
                    let (until, load) = (client_until.clone(), load.clone());
                    s.spawn(move || {
                        if split.pin {
                            pin(core);
                        }
                        crate::udp_echo::kernel_load_udp_echo(&load, (i, cores), &until, gauge)
                    })
                })
                .collect();
            let (total, per_core, (), ()) = measure(w, &client_gauges, params, split.server.len(), || (), progress);
            client_stop.store(true, Ordering::Relaxed);
            let mut tallies = Vec::new();
            for c in clients {
                tallies.push(c.join().map_err(|_| io::Error::other("a client thread panicked"))??);
            }
            Ok((total, per_core, tallies))
        })();
        client_stop.store(true, Ordering::Relaxed);
        server_stop.store(true, Ordering::Relaxed);
        for srv in servers {
            match srv.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io::Error::new(e.kind(), format!("kernel UDP server: {e}"))),
                Err(_) => return Err(io::Error::other("a server thread panicked")),
            }
        }
        let (total, per_core, tallies) = result?;
        Ok((measured(total, per_core, &tallies, w), tallies))
    })
}

/// The figures of a run from its client tallies.
pub fn measured(total: f64, per_core: f64, tallies: &[Tally], w: Workload) -> Measured {
    let mut all = Tally::default();
    for t in tallies {
        all.merge(t);
    }
    let lat = (w != Workload::Bulk && all.latency.count() > 0).then(|| all.latency.summary());
    Measured {
        total,
        per_core,
        failures: all.total_failures(),
        p50_us: lat.map(|l| l.p50.as_secs_f64() * 1e6),
        p99_us: lat.map(|l| l.p99.as_secs_f64() * 1e6),
        nic_share: None,
        core_rtt_ns: None,
    }
}

fn wait_for_listener(addr: SocketAddrV4) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(io::Error::new(e.kind(), format!("the kernel server on {addr} never listened: {e}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Waits until the servers hold at least `n` open connections.
pub fn wait_open(gauges: &[Arc<Gauge>], n: usize, limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let open: u64 = gauges.iter().map(|g| g.open.load(Ordering::Relaxed)).sum();
        if open >= n as u64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("only {open} of {n} idle connections were accepted in {limit:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_runs_on_the_kernel() {
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
        for w in Workload::ALL {
            let (m, tallies) = run(w, &split, &params, &IdleGuard::in_process, &mut |_| {}).unwrap();
            let failures: Vec<_> = tallies.iter().flat_map(|t| t.first_failures.clone()).collect();
            assert_eq!(m.failures, 0, "{w:?}: {failures:?}");
            assert!(m.total > 0.0, "{w:?}");
        }
    }
}
