//! ixtcp's sockets as a [`Reactor`]: sockapi's `TcpListener`, `TcpStream`
//! and `Epoll` on one core's [`Context`], registered edge-triggered, the
//! way [`kernel`](crate::kernel) uses mio. Whatever engine is under the
//! context (the stack core over a NIC, or sockapi's in-memory test engine)
//! runs the same event loops.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use ixtcp_sockapi::{Context, Epoll, Events, Interest, TcpListener, TcpStream, Token, Trigger};

use crate::reactor::{LISTENER, Reactor, Ready};

/// One core's sockets and epoll.
pub struct Sockets<'a> {
    ctx: &'a Context,
    epoll: Epoll,
    events: Events,
}

impl std::fmt::Debug for Sockets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sockets(core {})", self.ctx.core())
    }
}

impl<'a> Sockets<'a> {
    /// A reactor over `ctx` with an epoll of its own.
    pub fn new(ctx: &'a Context) -> io::Result<Sockets<'a>> {
        Ok(Sockets { ctx, epoll: Epoll::new(ctx)?, events: Events::with_capacity(1024) })
    }
}

impl Reactor for Sockets<'_> {
    type Stream = TcpStream;
    type Listener = TcpListener;

    fn listen(&mut self, addr: SocketAddrV4) -> io::Result<TcpListener> {
        let l = TcpListener::bind_with_backlog(self.ctx, SocketAddr::V4(addr), 4096)?;
        self.epoll.add(&l, Token(LISTENER), Interest::READABLE, Trigger::EDGE)?;
        Ok(l)
    }

    fn accept(&mut self, listener: &TcpListener) -> io::Result<Option<TcpStream>> {
        match listener.accept() {
            Ok((s, _)) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn connect(&mut self, addr: SocketAddrV4) -> io::Result<TcpStream> {
        TcpStream::connect(self.ctx, SocketAddr::V4(addr))
    }

    fn connected(&mut self, stream: &TcpStream) -> io::Result<bool> {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn register(&mut self, stream: &mut TcpStream, token: usize) -> io::Result<()> {
        self.epoll.add(stream, Token(token), Interest::READABLE | Interest::WRITABLE, Trigger::EDGE)
    }

    fn close(&mut self, stream: TcpStream) {
        let _ = self.epoll.delete(&stream);
        let _ = stream.close();
    }

    fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        self.epoll.wait(&mut self.events, timeout)?;
        out.extend(self.events.iter().map(|e| Ready {
            token: e.token().0,
            readable: e.is_readable() || e.is_read_closed(),
            writable: e.is_writable(),
            closed: e.is_error() || e.is_hang_up(),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::apps::{EchoWork, HttpWork, bench_plan};
    use crate::echo::EchoServer;
    use crate::http::server::{HttpCore, HttpServer, Limits};
    use crate::http::site::{Site, SiteConfig};
    use crate::reactor::{ClientLoop, Gauge, Until, run_clients, serve, wait_listening};
    use crate::session::Tally;
    use ixtcp_sockapi::testing::TestNet;
    use ixtcp_sockapi::{Mode, Runtime};
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Core 0 serves, core 1 loads, over sockapi's in-memory engine, in
    /// both runtimes: the event loops work over sockapi as over mio.
    fn echo_and_http(mode: Mode) {
        let net = TestNet::new();
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(ip))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let gauge = Arc::new(Gauge::default());
        let echo_addr = SocketAddrV4::new(ip, 7);
        let http_addr = SocketAddrV4::new(ip, 80);
        let results = rt
            .run(|ctx| -> Result<Tally, String> {
                let mut r = Sockets::new(ctx).map_err(|e| e.to_string())?;
                let mut t = Tally::default();
                if ctx.core() == 0 {
                    let until = Until::flag(Arc::clone(&stop));
                    serve(&mut r, echo_addr, EchoServer::new, &until, &mut t, &gauge).map_err(|e| e.to_string())?;
                    return Ok(t);
                }
                assert!(wait_listening(&[Arc::clone(&gauge)], Duration::from_secs(5)));
                let cfg = ClientLoop { server: echo_addr, conns: 8, timeout: Duration::from_secs(5) };
                for one_shot in [false, true] {
                    let mut work = EchoWork::new(1000, one_shot, 0);
                    // A fixed amount of work, not a time window: the test
                    // holds however slowly the machine runs it.
                    let done = Arc::new(Gauge::default());
                    // (The gauge mirrors the tally, which runs on over both modes.)
                    let n = t.transactions + 150;
                    let until = Until::transactions(Arc::new(AtomicBool::new(false)), Arc::clone(&done), n);
                    run_clients(&mut r, &cfg, &mut work, &until, &mut t, &done).map_err(|e| e.to_string())?;
                }
                stop.store(true, Ordering::Relaxed);
                Ok(t)
            })
            .unwrap();
        let client: Tally = results[1].clone().unwrap();
        assert_eq!(client.failure_line(), "none", "{:?}", client.first_failures);
        assert!(client.transactions >= 300, "150 per mode: {}", client.transactions);
        let server = results[0].clone().unwrap();
        assert!(server.connections > 8);

        // HTTP: one core serves the built-in page, the other fetches it 200 times.
        let rt = Runtime::builder().mode(mode).build(2, |_| Ok(net.engine(ip))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let gauge = Arc::new(Gauge::default());
        let results = rt
            .run(|ctx| -> Result<Tally, String> {
                let mut r = Sockets::new(ctx).map_err(|e| e.to_string())?;
                let mut t = Tally::default();
                if ctx.core() == 0 {
                    let site = Site::new(SiteConfig::default()).map_err(|e| e.to_string())?;
                    let core = HttpCore::new(site, Limits::default());
                    let until = Until::flag(Arc::clone(&stop));
                    serve(&mut r, http_addr, || HttpServer::new(Rc::clone(&core)), &until, &mut t, &gauge)
                        .map_err(|e| e.to_string())?;
                    return Ok(t);
                }
                assert!(wait_listening(&[Arc::clone(&gauge)], Duration::from_secs(5)));
                for keep_alive in [true, false] {
                    let mut work = HttpWork::new(bench_plan(http_addr, keep_alive), Rc::new(Cell::new(100)));
                    let cfg = ClientLoop { server: http_addr, conns: 4, timeout: Duration::from_secs(5) };
                    let until = Until::flag(Arc::new(AtomicBool::new(false)));
                    run_clients(&mut r, &cfg, &mut work, &until, &mut t, &Gauge::default())
                        .map_err(|e| e.to_string())?;
                }
                stop.store(true, Ordering::Relaxed);
                Ok(t)
            })
            .unwrap();
        let client = results[1].clone().unwrap();
        assert_eq!(client.failure_line(), "none", "{:?}", client.first_failures);
        assert_eq!(client.transactions, 200);
    }

    /// The server and client loops stepped from this one thread, each on
    /// its own inline context: `step` with a zero wait drives that
    /// context's stack once. Nothing here runs on another thread, so the
    /// run replays exactly whatever the machine is doing.
    fn stepped_echo_and_http(server: &Context, client: &Context, mut idle: impl FnMut()) {
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let echo_addr = SocketAddrV4::new(ip, 7);
        let http_addr = SocketAddrV4::new(ip, 80);
        let mut rs = Sockets::new(server).unwrap();
        let mut rc = Sockets::new(client).unwrap();
        let (sg, cg) = (Gauge::default(), Gauge::default());
        let (mut st, mut ct) = (Tally::default(), Tally::default());
        let zero = Some(Duration::ZERO);
        let cfg = |server| ClientLoop { server, conns: 8, timeout: Duration::from_secs(5) };

        let mut echo = crate::reactor::Server::start(&mut rs, echo_addr, EchoServer::new, &sg).unwrap();
        for one_shot in [false, true] {
            let mut work = EchoWork::new(1000, one_shot, 0);
            let mut clients = crate::reactor::Clients::new(cfg(echo_addr));
            let goal = ct.transactions + 150;
            let mut steps = 0;
            while ct.transactions < goal {
                steps += 1;
                assert!(steps < 200_000, "echo stuck at {} of {goal} transactions", ct.transactions);
                echo.step(&mut rs, zero, &mut st, &sg).unwrap();
                assert!(clients.step(&mut rc, &mut work, zero, &mut ct, &cg).unwrap(), "echo clients gave up");
                idle();
            }
            clients.stop(&mut rc, &ct, &cg);
        }
        assert_eq!(ct.failure_line(), "none", "{:?}", ct.first_failures);
        assert!(st.connections > 8, "{}", st.connections);

        let site = Site::new(SiteConfig::default()).unwrap();
        let core = HttpCore::new(site, Limits::default());
        let mut http =
            crate::reactor::Server::start(&mut rs, http_addr, || HttpServer::new(Rc::clone(&core)), &sg).unwrap();
        let before = ct.transactions;
        for keep_alive in [true, false] {
            let mut work = HttpWork::new(bench_plan(http_addr, keep_alive), Rc::new(Cell::new(100)));
            let mut clients = crate::reactor::Clients::new(cfg(http_addr));
            let mut steps = 0;
            // The budget ends the loop: `step` says false when all are done.
            while clients.step(&mut rc, &mut work, zero, &mut ct, &cg).unwrap() {
                steps += 1;
                assert!(steps < 200_000, "http stuck at {} transactions", ct.transactions - before);
                http.step(&mut rs, zero, &mut st, &sg).unwrap();
                echo.step(&mut rs, zero, &mut st, &sg).unwrap();
                idle();
            }
            clients.stop(&mut rc, &ct, &cg);
        }
        assert_eq!(ct.failure_line(), "none", "{:?}", ct.first_failures);
        assert_eq!(ct.transactions - before, 200);
        http.stop(&mut rs, &st, &sg);
        echo.stop(&mut rs, &st, &sg);
    }

    #[test]
    fn loops_stepped_on_one_thread_over_the_test_engine() {
        let net = TestNet::simulated();
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 1);
        let (server, client) = (Context::inline(net.engine(ip)), Context::inline(net.engine(ip)));
        stepped_echo_and_http(&server, &client, || {});
    }

    #[test]
    fn loops_stepped_on_one_thread_over_two_linked_stacks() {
        use ixtcp_driver::wire::LinkConfig;
        use ixtcp_host::{HostConfig, LinkedHosts};
        use ixtcp_stack::StackConfig;
        let cfg = |ip: [u8; 4]| {
            let mut c = HostConfig::model(StackConfig::new(ip.into(), 24), Mode::Inline);
            c.seed = Some(u64::from(ip[3]));
            c
        };
        let sim = LinkedHosts::stepped(cfg([10, 0, 0, 1]), cfg([10, 0, 0, 2]), LinkConfig::unlimited()).unwrap();
        // Time moves on between iterations, to the next timer at most.
        stepped_echo_and_http(sim.server(0), sim.client(0), || sim.idle(&[sim.server(0), sim.client(0)]));
        let (s, c) = sim.stats();
        assert_eq!(s.total().tcp_retransmits + c.total().tcp_retransmits, 0, "a loss-free link retransmitted");
    }

    #[test]
    fn loops_run_over_sockapi_inline() {
        echo_and_http(Mode::Inline);
    }

    #[test]
    fn loops_run_over_sockapi_threaded() {
        echo_and_http(Mode::Threaded);
    }
}
