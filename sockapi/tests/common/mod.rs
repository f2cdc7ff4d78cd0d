//! Helpers shared by the suites: run a test body on either runtime over the
//! test engine or over the real stack on two linked 82599 models
//! ([`models`]), drive the stack until a condition holds, and macros that
//! make one `#[test]` per runtime ([`both_runtimes!`]) and per runtime on
//! the models ([`on_models!`]).

#![allow(dead_code)]

pub mod models;

use std::cell::Cell;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ixtcp_sockapi::testing::{TestConfig, TestNet};
use ixtcp_sockapi::{Context, Epoll, Events, Interest, Mode, Runtime, TcpListener, TcpStream, Token, Trigger};

/// The test host's address.
pub const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// A generous bound for anything that must happen "soon": tests assert that
/// it happened, and fail only if it took longer than this on the context's
/// clock ([`Context::now_ns`]) — virtual time on one inline core, where it
/// is a bound on simulated time and cannot be hit by a slow machine; real
/// time elsewhere, where it is a liveness bound with room to spare.
pub const SOON: Duration = Duration::from_secs(30);

/// Time on `ctx`'s clock since `start_ns`.
pub fn since(ctx: &Context, start_ns: u64) -> Duration {
    Duration::from_nanos(ctx.now_ns().saturating_sub(start_ns))
}

/// Which engine the suite's bodies run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-memory test engine.
    TestEngine,
    /// The real stack on two linked 82599 models ([`models::PairEngine`]).
    Models,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::TestEngine) };
}

/// Runs `f` with the suite's helpers building engines of `backend`.
pub fn with_backend<R>(backend: Backend, f: impl FnOnce() -> R) -> R {
    // Put the default back afterwards, even on a panic: the test harness
    // may run the next test on this same thread (`--test-threads 1`).
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BACKEND.with(|b| b.set(Backend::TestEngine));
        }
    }
    let _reset = Reset;
    BACKEND.with(|b| b.set(backend));
    f()
}

/// The backend of the calling test.
pub fn backend() -> Backend {
    BACKEND.with(|b| b.get())
}

/// What a test body gets. `net` is always a test network (for foreign
/// contexts); its traffic counters are [`Env::stats`].
pub struct Env<'a> {
    pub ctx: &'a Context,
    pub net: &'a TestNet,
    pub mode: Mode,
    pub backend: Backend,
    models: Option<&'a models::PairStats>,
}

impl Env<'_> {
    /// Traffic counters of whichever engine runs the test.
    pub fn stats(&self) -> ixtcp_sockapi::testing::TestStats {
        match self.models {
            Some(m) => m.test_stats(),
            None => self.net.stats(),
        }
    }

    /// The real stack's counters of the server host (`None` on the test
    /// engine, which has no such counters).
    pub fn server_stats(&self) -> Option<ixtcp_stack::CoreStats> {
        self.models.map(|m| m.server())
    }

    /// On the models: the client host goes silent for good (see
    /// [`models::PairStats::client_vanishes`]). Panics on the test engine.
    pub fn client_vanishes(&self) {
        self.models.expect("only the models have a client host").client_vanishes();
    }
}

/// `IP:port`.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((IP, port))
}

/// Run `body` on one core of host `IP`, in `mode`, over a fresh network.
pub fn one_core<R: Send>(mode: Mode, cfg: TestConfig, body: impl Fn(&Env) -> R + Sync) -> R {
    cores(mode, cfg, 1, body).pop().expect("one result")
}

/// Run `body` on `cores` cores of host `IP`. One inline core runs on a
/// virtual clock (the whole test is then one thread that replays exactly);
/// several cores, or the threaded runtime, on the monotonic clock, since
/// several threads would each move a shared virtual time.
pub fn cores<R: Send>(mode: Mode, cfg: TestConfig, cores: usize, body: impl Fn(&Env) -> R + Sync) -> Vec<R> {
    let simulated = mode == Mode::Inline && cores == 1;
    let cfg = TestConfig { virtual_time: simulated, ..cfg };
    let net = TestNet::with_config(cfg.clone());
    let builder = Runtime::builder().mode(mode).linger(Duration::from_millis(200));
    match backend() {
        Backend::TestEngine => {
            let rt = builder.build(cores, |_| Ok(net.engine(IP))).expect("build runtime");
            rt.run(|ctx| body(&Env { ctx, net: &net, mode, backend: Backend::TestEngine, models: None })).expect("run")
        }
        Backend::Models => {
            let (engines, stats) = models::pair_engines(cores as u16, &cfg, simulated);
            let mut engines: Vec<Option<models::PairEngine>> = engines.into_iter().map(Some).collect();
            let rt = builder.build(cores, |i| Ok(engines[i].take().expect("engine"))).expect("build runtime");
            rt.run(|ctx| body(&Env { ctx, net: &net, mode, backend: Backend::Models, models: Some(&stats) }))
                .expect("run")
        }
    }
}

/// Drive the context's stack until `cond` holds; panics after [`SOON`] on
/// the context's clock, saying what was awaited.
pub fn settle(ctx: &Context, what: &str, mut cond: impl FnMut() -> bool) {
    let ep = Epoll::new(ctx).expect("epoll");
    let mut events = Events::with_capacity(1);
    let start = ctx.now_ns();
    while !cond() {
        let waited = since(ctx, start);
        assert!(waited < SOON, "stuck: still waiting for {what} after {waited:?} (on core {})", ctx.core());
        ep.wait(&mut events, Some(Duration::from_millis(1))).expect("wait");
    }
}

/// A connected pair on one context: (client, server-side stream).
pub fn pair(ctx: &Context, port: u16) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(ctx, addr(port)).expect("bind");
    let client = TcpStream::connect(ctx, addr(port)).expect("connect");
    let mut server = None;
    settle(ctx, "accept", || match listener.accept() {
        Ok((s, _)) => {
            server = Some(s);
            true
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    });
    let server = server.expect("accepted");
    settle(ctx, "client established", || client.peer_addr().is_ok());
    listener.close().expect("close listener");
    (client, server)
}

/// Read what is there now (until `WouldBlock`); `Ok(None)` at end of stream.
pub fn drain(mut s: &TcpStream, into: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Some(total)),
            Err(e) => return Err(e),
        }
    }
}

/// Read until `n` bytes arrived, driving the stack.
pub fn read_n(ctx: &Context, s: &TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    settle(ctx, "read_n", || {
        let r = drain(s, &mut got).expect("read");
        r.is_none() || got.len() >= n
    });
    got
}

/// Write all of `data`, driving the stack while the buffer is full.
pub fn write_all(ctx: &Context, mut s: &TcpStream, data: &[u8]) {
    let mut off = 0;
    settle(ctx, "write_all", || {
        while off < data.len() {
            match s.write(&data[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => panic!("write: {e}"),
            }
        }
        true
    });
}

/// Read until end of stream, driving the stack.
pub fn read_to_eof(ctx: &Context, s: &TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    settle(ctx, "end of stream", || drain(s, &mut got).expect("read").is_none());
    got
}

/// True if a read would not block now (level-triggered, zero-timeout
/// check through a private epoll, after the stack went idle: see
/// [`Context::quiesce`]).
pub fn is_readable(s: &TcpStream) -> bool {
    s.context().quiesce().expect("quiesce");
    let ep = Epoll::new(s.context()).expect("epoll");
    ep.add(s, Token(0), Interest::READABLE, Trigger::LEVEL).expect("add");
    let mut ev = Events::with_capacity(1);
    ep.wait(&mut ev, Some(Duration::ZERO)).expect("wait");
    !ev.is_empty()
}

/// Assert a result is an error of `kind`.
#[track_caller]
pub fn assert_kind<T: std::fmt::Debug>(r: io::Result<T>, kind: ErrorKind) {
    match r {
        Err(e) => assert_eq!(e.kind(), kind, "expected {kind:?}, got {e}"),
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
    }
}

/// A seed from `IXTCP_SEED` (the test kit's reading of it) or a fixed
/// default; printed so a failure replays.
pub fn seed() -> u64 {
    let seed = ixtcp_testkit::seed::seed_from_env(0x5eed_1234);
    println!("seed = {seed} (set IXTCP_SEED={seed} to replay)");
    seed
}

/// One `#[test]` per runtime for each named `fn(Mode)`.
#[macro_export]
macro_rules! both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod inline {
            $( #[test] fn $name() { super::$name(ixtcp_sockapi::Mode::Inline) } )*
        }
        mod threaded {
            $( #[test] fn $name() { super::$name(ixtcp_sockapi::Mode::Threaded) } )*
        }
    };
}

/// One `#[test]` per runtime for each named `fn(Mode)`, over the real stack
/// on two linked 82599 models.
#[macro_export]
macro_rules! on_models {
    ($($name:ident),* $(,)?) => {
        mod models_inline {
            $( #[test] fn $name() {
                super::common::with_backend(super::common::Backend::Models, || super::$name(ixtcp_sockapi::Mode::Inline))
            } )*
        }
        mod models_threaded {
            $( #[test] fn $name() {
                super::common::with_backend(super::common::Backend::Models, || super::$name(ixtcp_sockapi::Mode::Threaded))
            } )*
        }
    };
}
