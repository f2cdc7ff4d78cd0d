//! The two sides of every workload, over any [`Reactor`]: what a server
//! core and a client core run. ixtcp and the kernel run exactly this code.

use std::cell::Cell;
use std::io;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Params, Workload};
use crate::echo::{BulkSink, BulkSource, EchoClient, EchoServer};
use crate::http::client::{ClientPlan, Expect, HttpClient, Target};
use crate::http::server::{HttpCore, HttpServer, Limits};
use crate::http::site::{BUILTIN_PAGE, Site, SiteConfig};
use crate::reactor::{ClientLoop, ClientWork, Gauge, Reactor, Spares, Until, run_clients, serve};
use crate::session::Tally;

/// Echo clients: `seed_base` keeps the message contents of cores apart.
#[derive(Debug)]
pub struct EchoWork {
    /// Message size.
    pub size: usize,
    /// One transaction per connection.
    pub one_shot: bool,
    /// Connections opened so far (also the next seed).
    pub opened: u64,
    /// Added to every seed.
    pub seed_base: u64,
    /// Sessions of closed connections, for the next ones.
    spare: Spares<EchoClient>,
}

impl EchoWork {
    /// Clients sending `size`-byte messages, one per connection with
    /// `one_shot`, seeds starting after `seed_base`.
    pub fn new(size: usize, one_shot: bool, seed_base: u64) -> EchoWork {
        EchoWork { size, one_shot, opened: 0, seed_base, spare: Spares::default() }
    }
}

impl ClientWork for EchoWork {
    type Session = EchoClient;
    fn open(&mut self, now: Instant) -> Option<EchoClient> {
        self.opened += 1;
        let seed = self.seed_base + self.opened;
        Some(match self.spare.take() {
            Some(mut c) => {
                c.restart(seed, now);
                c
            }
            None => EchoClient::new(seed, self.size, self.one_shot, now),
        })
    }
    fn done(&mut self, session: EchoClient) {
        self.spare.keep(session);
    }
}

/// HTTP clients sharing one request budget.
#[derive(Debug)]
pub struct HttpWork {
    /// What each connection does.
    pub plan: Arc<ClientPlan>,
    /// Requests left for this core.
    pub budget: Rc<Cell<u64>>,
    /// Connections opened so far (spreads the first target).
    pub opened: usize,
    /// Sessions of closed connections, for the next ones.
    spare: Spares<HttpClient>,
}

impl HttpWork {
    /// Clients following `plan`, sharing `budget`.
    pub fn new(plan: Arc<ClientPlan>, budget: Rc<Cell<u64>>) -> HttpWork {
        HttpWork { plan, budget, opened: 0, spare: Spares::default() }
    }
}

impl ClientWork for HttpWork {
    type Session = HttpClient;
    fn open(&mut self, now: Instant) -> Option<HttpClient> {
        if self.budget.get() == 0 {
            return None;
        }
        self.opened += 1;
        Some(match self.spare.take() {
            Some(mut c) => {
                c.restart(self.opened, now);
                c
            }
            None => HttpClient::new(Arc::clone(&self.plan), Rc::clone(&self.budget), self.opened, now),
        })
    }
    fn done(&mut self, session: HttpClient) {
        self.spare.keep(session);
    }
    fn connect_failed(&mut self) {
        // A request that could not even connect is a finished (failed) one,
        // so a run with a request count ends even if the server is down.
        self.budget.set(self.budget.get().saturating_sub(1));
    }
}

/// Bulk receivers: one connection each, kept for the whole run.
#[derive(Debug, Default)]
pub struct BulkWork;

impl ClientWork for BulkWork {
    type Session = BulkSink;
    fn open(&mut self, _now: Instant) -> Option<BulkSink> {
        Some(BulkSink::new())
    }
}

/// Runs the server side of `w` on this core until `until`.
pub fn server_part<R: Reactor>(
    w: Workload,
    reactor: &mut R,
    addr: SocketAddrV4,
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    match w {
        Workload::EchoPersistent | Workload::EchoNewConn | Workload::EchoIdle => {
            serve(reactor, addr, EchoServer::new, until, &mut tally, gauge)?
        }
        Workload::HttpKeepAlive | Workload::HttpNewConn => {
            let site = Site::new(SiteConfig::default()).map_err(|e| io::Error::other(e.to_string()))?;
            let core = HttpCore::new(site, Limits::default());
            serve(reactor, addr, || HttpServer::new(Rc::clone(&core)), until, &mut tally, gauge)?
        }
        Workload::Bulk => serve(reactor, addr, BulkSource::new, until, &mut tally, gauge)?,
        Workload::UdpEcho => return Err(datagram_workload()),
    }
    Ok(tally)
}

/// The HTTP plan of the benchmark: GET / (the built-in page), every body
/// checked.
pub fn bench_plan(server: SocketAddrV4, keep_alive: bool) -> Arc<ClientPlan> {
    Arc::new(ClientPlan {
        host: server.to_string(),
        targets: vec![Target {
            path: "/".into(),
            head: false,
            expect: Expect { status: 200, body: Some(Arc::from(BUILTIN_PAGE.as_bytes())) },
        }]
        .into(),
        keep_alive,
        pipeline: 1,
    })
}

/// UDP echo runs on datagram sockets (`crate::udp_echo`), not on a
/// stream reactor: each side calls it itself.
fn datagram_workload() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "UDP echo runs on datagram sockets, not a stream reactor")
}

/// The UDP echo load of the benchmark over `server`.
pub fn udp_load(server: SocketAddrV4, params: &Params) -> crate::udp_echo::UdpEchoLoad {
    crate::udp_echo::UdpEchoLoad {
        server,
        flows: params.conns,
        size: params.size,
        seed: 1,
        timeout: Duration::from_secs(1),
    }
}

/// How many of `total` fall to client core `index` of `cores`.
pub fn share(total: usize, index: usize, cores: usize) -> usize {
    let cores = cores.max(1);
    total / cores + usize::from(index < total % cores)
}

/// Runs the client side of `w` on client core `index` of `cores` until
/// `until`.
pub fn client_part<R: Reactor>(
    w: Workload,
    reactor: &mut R,
    server: SocketAddrV4,
    params: &Params,
    (index, cores): (usize, usize),
    until: &Until,
    gauge: &Gauge,
) -> io::Result<Tally> {
    let mut tally = Tally::default();
    let conns = share(params.conns, index, cores).max(1);
    let cfg = ClientLoop { server, conns, timeout: Duration::from_secs(5) };
    let seed_base = (index as u64) << 40;
    match w {
        Workload::EchoPersistent | Workload::EchoIdle => {
            let mut work = EchoWork::new(params.size, false, seed_base);
            run_clients(reactor, &cfg, &mut work, until, &mut tally, gauge)?;
        }
        Workload::EchoNewConn => {
            let mut work = EchoWork::new(params.size, true, seed_base);
            run_clients(reactor, &cfg, &mut work, until, &mut tally, gauge)?;
        }
        Workload::HttpKeepAlive | Workload::HttpNewConn => {
            let keep_alive = w == Workload::HttpKeepAlive;
            let mut work = HttpWork::new(bench_plan(server, keep_alive), Rc::new(Cell::new(u64::MAX)));
            run_clients(reactor, &cfg, &mut work, until, &mut tally, gauge)?;
        }
        Workload::Bulk => {
            let cfg = ClientLoop { conns: 1, ..cfg };
            run_clients(reactor, &cfg, &mut BulkWork, until, &mut tally, gauge)?;
        }
        Workload::UdpEcho => return Err(datagram_workload()),
    }
    Ok(tally)
}

/// Connections of [`open_idle`] in their handshake at once: a burst of
/// thousands of SYNs would overrun the peer's receive ring and backlog and
/// leave the dropped ones to the (slow) SYN retransmission.
pub const IDLE_OPEN_WINDOW: usize = 256;

/// Opens `n` idle connections to `server` through `reactor`, at most
/// [`IDLE_OPEN_WINDOW`] connecting at once, and waits until all are
/// established (or `limit` passes); returns them, to be closed by the
/// caller when the workload is over.
pub fn open_idle<R: Reactor>(
    reactor: &mut R,
    server: SocketAddrV4,
    n: usize,
    limit: Duration,
) -> io::Result<Vec<R::Stream>> {
    let mut idle = Vec::with_capacity(n);
    let mut pending: Vec<R::Stream> = Vec::with_capacity(IDLE_OPEN_WINDOW);
    let deadline = Instant::now() + limit;
    let mut events = Vec::new();
    while idle.len() < n {
        while pending.len() < IDLE_OPEN_WINDOW && idle.len() + pending.len() < n {
            pending.push(reactor.connect(server)?);
        }
        let mut still = Vec::with_capacity(pending.len());
        for s in pending {
            match reactor.connected(&s) {
                Ok(true) => idle.push(s),
                Ok(false) => still.push(s),
                Err(e) => {
                    let ok = idle.len();
                    return Err(io::Error::new(e.kind(), format!("opening idle connection {}: {e}", ok + 1)));
                }
            }
        }
        pending = still;
        if idle.len() == n {
            break;
        }
        if Instant::now() > deadline {
            let (ok, left) = (idle.len(), n - idle.len());
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{ok} idle connections established, {left} not after {limit:?}"),
            ));
        }
        events.clear();
        reactor.wait(&mut events, Some(Duration::from_millis(1)))?;
    }
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in [0, 1, 63, 64, 10_000] {
            for cores in 1..5 {
                assert_eq!((0..cores).map(|i| share(total, i, cores)).sum::<usize>(), total);
            }
        }
    }
}
