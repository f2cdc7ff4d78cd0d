//! Soak: echo and HTTP-style request/response load between two ixtcp
//! stacks over two linked 82599 models, through a 10 Gbit/s link with 1%
//! loss and 1% reordering in each direction, on the monotonic clock, for a
//! fixed time; every byte is verified.
//!
//! ```text
//! cargo run --release -p ixtcp-stack --example soak -- --seconds 1800
//! cargo run --release -p ixtcp-stack --example soak -- --seconds 60 --cores 2 --loss 0.01 --reorder 0.01 --seed 7
//! ```
//!
//! Host A (10.0.0.1) is the client, host B (10.0.0.2) the server; each has
//! `--cores` stack cores (one queue pair each, RSS between them), all
//! driven from this one thread. On every core of A:
//!
//! - `--echo` long-lived connections to port 7, each sending messages of
//!   1 B..32 KiB and waiting for the echo, byte-for-byte compared with the
//!   deterministic stream it sent;
//! - `--http` connections to port 80 at any time, each one
//!   `GET /obj/KEY/LEN HTTP/1.1` with `Connection: close`; B answers with a
//!   `Content-Length: LEN` body derived from KEY, A checks status, length
//!   and every body byte, closes, and opens the next.
//!
//! Prints a line every `--report` seconds and a summary at the end:
//! transactions, bytes, TCP retransmissions (the stack's `tcp_retransmits`
//! counter, both hosts), link losses and reorders, and the process's RSS
//! (VmRSS) at start and end. Exits 1 on any verification error or when
//! sockets or packet buffers were not all returned after the drain.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceHandle, QueuePair};
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::time::{Clock, MonotonicClock};
use ixtcp_driver::wire::impair::Impairments;
use ixtcp_driver::wire::link::{Link, LinkConfig, LinkEnd, LinkStats};
use ixtcp_driver::wire::{Wire, WireError};
use ixtcp_stack::{
    ConnId, CoreSetup, CoreStats, HostSecret, MacAddr, NeighborTable, PacketIo, RssView, StackConfig, StackCore,
};
use ixtcp_stack::{Event, StackError};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Core = StackCore<QueuePair<ModelRegs>>;

const IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
const PERIOD: usize = 65_521;

struct Args {
    seconds: u64,
    cores: u16,
    loss: f64,
    reorder: f64,
    seed: u64,
    echo: usize,
    http: usize,
    report: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { seconds: 600, cores: 2, loss: 0.01, reorder: 0.01, seed: 0, echo: 8, http: 16, report: 60 };
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err("usage: soak [--seconds N (600)] [--cores N (2)] [--loss P (0.01)] [--reorder P (0.01)] \
                        [--seed N (random)] [--echo N per core (8)] [--http N per core (16)] [--report SECS (60)]"
                .into());
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {v}: {e}");
        match flag.as_str() {
            "--seconds" => a.seconds = v.parse().map_err(|e| bad(&e))?,
            "--cores" => a.cores = v.parse().map_err(|e| bad(&e))?,
            "--loss" => a.loss = v.parse().map_err(|e| bad(&e))?,
            "--reorder" => a.reorder = v.parse().map_err(|e| bad(&e))?,
            "--seed" => seed = Some(v.parse().map_err(|e| bad(&e))?),
            "--echo" => a.echo = v.parse().map_err(|e| bad(&e))?,
            "--http" => a.http = v.parse().map_err(|e| bad(&e))?,
            "--report" => a.report = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag} (try --help)")),
        }
    }
    a.seed = match seed {
        Some(s) => s,
        None => getrandom::u64().map_err(|e| format!("getrandom: {e}"))?,
    };
    Ok(a)
}

/// Resident set size of this process, KiB.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Deterministic content: byte k of the stream with base b is
/// `table[(b + k) % PERIOD]`.
struct Pattern {
    table: Vec<u8>,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut table = vec![0u8; PERIOD + 65_536];
        rng.fill_bytes(&mut table[..PERIOD]);
        for i in PERIOD..table.len() {
            table[i] = table[i - PERIOD];
        }
        Pattern { table }
    }

    fn slice(&self, base: usize, offset: usize, len: usize) -> &[u8] {
        let start = (base + offset) % PERIOD;
        &self.table[start..start + len.min(65_536)]
    }

    fn matches(&self, base: usize, offset: usize, data: &[u8]) -> bool {
        data.chunks(65_536).enumerate().all(|(i, c)| self.slice(base, offset + i * 65_536, c.len()) == c)
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    echo_tx: u64,
    http_tx: u64,
    echo_bytes: u64,
    http_bytes: u64,
    errors: u64,
}

struct EchoClient {
    id: ConnId,
    base: usize,
    sent: usize,
    received: usize,
    msg_end: usize,
}

struct HttpClient {
    id: ConnId,
    key: usize,
    want: usize,
    request: Vec<u8>,
    req_sent: usize,
    head: Vec<u8>,
    body_seen: Option<usize>,
}

struct Client {
    pattern: Arc<Pattern>,
    rng: ChaCha8Rng,
    echo: Vec<EchoClient>,
    http: Vec<HttpClient>,
    echo_target: usize,
    http_target: usize,
    opening: bool,
    buf: Vec<u8>,
}

fn error(t: &mut Tally, what: String) {
    t.errors += 1;
    if t.errors <= 20 {
        eprintln!("soak: ERROR {what}");
    }
}

impl Client {
    fn service(&mut self, c: &mut Core, t: &mut Tally) {
        let server = IPS[1];
        while self.opening && self.echo.len() < self.echo_target {
            match c.connect(SocketAddrV4::new(server, ECHO_PORT), None) {
                Ok(id) => {
                    let base = self.rng.random_range(0..PERIOD);
                    self.echo.push(EchoClient { id, base, sent: 0, received: 0, msg_end: 0 });
                }
                Err(e) => {
                    error(t, format!("echo connect: {e}"));
                    break;
                }
            }
        }
        while self.opening && self.http.len() < self.http_target {
            // Mostly small objects, sometimes up to 64 KiB.
            let want = if self.rng.random_bool(0.8) {
                self.rng.random_range(0..2048)
            } else {
                self.rng.random_range(0..=65_536)
            };
            let key = self.rng.random_range(0..PERIOD);
            match c.connect(SocketAddrV4::new(server, HTTP_PORT), None) {
                Ok(id) => {
                    let request = format!("GET /obj/{key}/{want} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                        .into_bytes();
                    self.http.push(HttpClient {
                        id,
                        key,
                        want,
                        request,
                        req_sent: 0,
                        head: Vec::new(),
                        body_seen: None,
                    });
                }
                Err(StackError::PortsExhausted | StackError::NoSocket) => break,
                Err(e) => {
                    error(t, format!("http connect: {e}"));
                    break;
                }
            }
        }
        let mut i = 0;
        while i < self.echo.len() {
            match self.echo_step(i, c, t) {
                Some(true) => i += 1,
                done => {
                    let e = self.echo.swap_remove(i);
                    let _ = if done.is_some() { c.close(e.id) } else { c.abort(e.id) };
                }
            }
        }
        let mut i = 0;
        while i < self.http.len() {
            match self.http_step(i, c, t) {
                Some(true) => i += 1,
                Some(false) => {
                    let h = self.http.swap_remove(i);
                    let _ = c.close(h.id);
                }
                None => {
                    let h = self.http.swap_remove(i);
                    let _ = c.abort(h.id);
                }
            }
        }
    }

    /// `Some(true)`: keep; `Some(false)`: done (draining), close; `None`:
    /// failed.
    fn echo_step(&mut self, i: usize, c: &mut Core, t: &mut Tally) -> Option<bool> {
        let e = &mut self.echo[i];
        loop {
            match c.recv(e.id, &mut self.buf) {
                Ok(0) => {
                    error(t, format!("echo {}: closed by the server", e.id));
                    return None;
                }
                Ok(n) => {
                    if e.received + n > e.sent || !self.pattern.matches(e.base, e.received, &self.buf[..n]) {
                        error(t, format!("echo {}: bytes {}..{} differ", e.id, e.received, e.received + n));
                        return None;
                    }
                    e.received += n;
                    t.echo_bytes += n as u64;
                }
                Err(StackError::WouldBlock) => break,
                Err(err) => {
                    error(t, format!("echo {}: recv: {err}", e.id));
                    return None;
                }
            }
        }
        if e.received == e.msg_end {
            if e.msg_end > 0 {
                t.echo_tx += 1;
            }
            if !self.opening {
                return Some(false);
            }
            e.msg_end += self.rng.random_range(1..=32_768);
        }
        while e.sent < e.msg_end {
            match c.send(e.id, self.pattern.slice(e.base, e.sent, e.msg_end - e.sent)) {
                Ok(n) => e.sent += n,
                Err(StackError::WouldBlock) => break,
                Err(err) => {
                    error(t, format!("echo {}: send: {err}", e.id));
                    return None;
                }
            }
        }
        Some(true)
    }

    /// `Some(true)`: keep; `Some(false)`: done, close; `None`: failed.
    fn http_step(&mut self, i: usize, c: &mut Core, t: &mut Tally) -> Option<bool> {
        let h = &mut self.http[i];
        while h.req_sent < h.request.len() {
            match c.send(h.id, &h.request[h.req_sent..]) {
                Ok(n) => h.req_sent += n,
                Err(StackError::WouldBlock) => return Some(true),
                Err(err) => {
                    error(t, format!("http {}: send: {err}", h.id));
                    return None;
                }
            }
        }
        loop {
            match c.recv(h.id, &mut self.buf) {
                Ok(0) => {
                    if h.body_seen != Some(h.want) {
                        error(t, format!("http {}: body {:?} of {}", h.id, h.body_seen, h.want));
                        return None;
                    }
                    t.http_tx += 1;
                    return Some(false);
                }
                Ok(n) => {
                    let mut data = &self.buf[..n];
                    if h.body_seen.is_none() {
                        h.head.extend_from_slice(data);
                        let Some(end) = h.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                            if h.head.len() > 4096 {
                                error(t, format!("http {}: header too long", h.id));
                                return None;
                            }
                            continue;
                        };
                        let want_head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", h.want);
                        if !h.head.starts_with(want_head.as_bytes()) {
                            error(t, format!("http {}: bad header {:?}", h.id, String::from_utf8_lossy(&h.head)));
                            return None;
                        }
                        h.body_seen = Some(0);
                        let rest = h.head.split_off(end + 4);
                        self.buf[..rest.len()].copy_from_slice(&rest);
                        data = &self.buf[..rest.len()];
                    }
                    let seen = h.body_seen.unwrap_or(0);
                    if seen + data.len() > h.want || !self.pattern.matches(h.key, seen, data) {
                        error(t, format!("http {}: body bytes {seen}.. differ", h.id));
                        return None;
                    }
                    h.body_seen = Some(seen + data.len());
                    t.http_bytes += data.len() as u64;
                }
                Err(StackError::WouldBlock) => return Some(true),
                Err(err) => {
                    error(t, format!("http {}: recv: {err}", h.id));
                    return None;
                }
            }
        }
    }
}

struct EchoServer {
    id: ConnId,
    pending: Vec<u8>,
    at: usize,
}

struct HttpServer {
    id: ConnId,
    request: Vec<u8>,
    head: Vec<u8>,
    key: usize,
    len: usize,
    sent: usize,
}

struct Server {
    pattern: Arc<Pattern>,
    echo: Vec<EchoServer>,
    http: Vec<HttpServer>,
    buf: Vec<u8>,
}

impl Server {
    fn service(&mut self, c: &mut Core, t: &mut Tally) {
        while let Some(id) = c.accept(ECHO_PORT) {
            self.echo.push(EchoServer { id, pending: Vec::with_capacity(65_536), at: 0 });
        }
        while let Some(id) = c.accept(HTTP_PORT) {
            self.http.push(HttpServer { id, request: Vec::new(), head: Vec::new(), key: 0, len: 0, sent: 0 });
        }
        let mut i = 0;
        while i < self.echo.len() {
            match Self::echo_step(&mut self.echo[i], &mut self.buf, c, t) {
                Some(true) => i += 1,
                done => {
                    let e = self.echo.swap_remove(i);
                    let _ = if done.is_some() { c.close(e.id) } else { c.abort(e.id) };
                }
            }
        }
        let mut i = 0;
        while i < self.http.len() {
            match self.http_step(i, c, t) {
                Some(true) => i += 1,
                done => {
                    let h = self.http.swap_remove(i);
                    let _ = if done.is_some() { c.close(h.id) } else { c.abort(h.id) };
                }
            }
        }
    }

    fn echo_step(e: &mut EchoServer, buf: &mut [u8], c: &mut Core, t: &mut Tally) -> Option<bool> {
        loop {
            while e.at < e.pending.len() {
                match c.send(e.id, &e.pending[e.at..]) {
                    Ok(n) => e.at += n,
                    Err(StackError::WouldBlock) => return Some(true),
                    Err(err) => {
                        error(t, format!("echo server {}: send: {err}", e.id));
                        return None;
                    }
                }
            }
            e.pending.clear();
            e.at = 0;
            match c.recv(e.id, buf) {
                Ok(0) => return Some(false),
                Ok(n) => e.pending.extend_from_slice(&buf[..n]),
                Err(StackError::WouldBlock) => return Some(true),
                Err(err) => {
                    error(t, format!("echo server {}: recv: {err}", e.id));
                    return None;
                }
            }
        }
    }

    fn http_step(&mut self, i: usize, c: &mut Core, t: &mut Tally) -> Option<bool> {
        let h = &mut self.http[i];
        if h.head.is_empty() {
            loop {
                match c.recv(h.id, &mut self.buf) {
                    Ok(0) => {
                        error(t, format!("http server {}: closed before a request", h.id));
                        return Some(false);
                    }
                    Ok(n) => h.request.extend_from_slice(&self.buf[..n]),
                    Err(StackError::WouldBlock) => break,
                    Err(err) => {
                        error(t, format!("http server {}: recv: {err}", h.id));
                        return None;
                    }
                }
            }
            if !h.request.windows(4).any(|w| w == b"\r\n\r\n") {
                if h.request.len() > 4096 {
                    error(t, format!("http server {}: request too long", h.id));
                    return None;
                }
                return Some(true);
            }
            let Some((key, len)) = parse_request(&h.request) else {
                error(t, format!("http server {}: bad request {:?}", h.id, String::from_utf8_lossy(&h.request)));
                return None;
            };
            h.key = key;
            h.len = len;
            h.head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n").into_bytes();
        }
        let total = h.head.len() + h.len;
        while h.sent < total {
            let r = if h.sent < h.head.len() {
                c.send(h.id, &h.head[h.sent..])
            } else {
                let off = h.sent - h.head.len();
                c.send(h.id, self.pattern.slice(h.key, off, h.len - off))
            };
            match r {
                Ok(n) => h.sent += n,
                Err(StackError::WouldBlock) => return Some(true),
                Err(err) => {
                    error(t, format!("http server {}: send: {err}", h.id));
                    return None;
                }
            }
        }
        // Everything queued: close (FIN after the data).
        Some(false)
    }
}

/// `GET /obj/KEY/LEN HTTP/1.1` → (KEY, LEN).
fn parse_request(req: &[u8]) -> Option<(usize, usize)> {
    let line = req.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let path = line.strip_prefix("GET /obj/")?.strip_suffix(" HTTP/1.1")?;
    let (k, l) = path.split_once('/')?;
    let (key, len) = (k.parse().ok()?, l.parse().ok()?);
    (key < PERIOD && len <= 1 << 20).then_some((key, len))
}

/// A link end shared with the soak, which reads its counters.
struct SharedEnd(Arc<Mutex<LinkEnd>>);

impl SharedEnd {
    fn stats(end: &Arc<Mutex<LinkEnd>>) -> LinkStats {
        end.lock().map(|e| e.stats()).unwrap_or_default()
    }
}

impl Wire for SharedEnd {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.0.lock().map_err(|_| WireError::Io("poisoned".into()))?.transmit(frame)
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        self.0.lock().map(|mut e| e.receive(buf)).unwrap_or(false)
    }
}

struct Host {
    model: Model82599,
    _handle: DeviceHandle<ModelRegs>,
    cores: Vec<Core>,
    pool_free_at_start: Vec<usize>,
}

fn start_host(
    i: usize,
    end: &Arc<Mutex<LinkEnd>>,
    cores: u16,
    seed: u64,
    clock: &MonotonicClock,
) -> Result<Host, String> {
    let model = Model82599::new(ModelConfig { mac: [2, 0, 0, 0, 0, i as u8 + 1], ..ModelConfig::default() });
    model.attach(Box::new(SharedEnd(Arc::clone(end))));
    let cfg = Arc::new(StackConfig {
        cores,
        rx_ring_size: 1024,
        tx_ring_size: 512,
        rx_burst: 256,
        mempool_size: 4096,
        max_connections: 1024,
        time_wait_ms: 2_000,
        ..StackConfig::new(IPS[i], 24)
    });
    let mut dc = cfg.device_config();
    dc.link_timeout = Duration::from_secs(2);
    let dev = Device::init(model.regs(), &model.dma(), dc).map_err(|e| format!("init: {e}"))?;
    let mac = MacAddr(dev.mac());
    let reta = dev.config().effective_reta();
    let key = dev.config().rss_key;
    let (handle, queues) = dev.into_queues();
    let table = NeighborTable::new(cfg.neighbor_capacity, cfg.neighbor_ttl_ms);
    let rss = RssView { toeplitz: Arc::new(ixtcp_driver::rss::Toeplitz::new(&key)), reta, queue: 0 };
    let mut out = Vec::new();
    let secret = HostSecret::from_seed(seed ^ (i as u64) << 32);
    for (q, io) in queues.into_iter().enumerate() {
        let setup = CoreSetup {
            index: q as u16,
            io,
            mac,
            neighbors: Arc::clone(&table),
            rss: rss.for_queue(q as u16),
            seed: Some(seed ^ (i as u64) << 32),
            pcap: None,
            secret,
        };
        out.push(StackCore::new(Arc::clone(&cfg), setup, clock.now_ns()).map_err(|e| format!("core {q}: {e}"))?);
    }
    // Every buffer not lent to the RX ring.
    let pool_free_at_start = out.iter().map(|c| c.io().pool().capacity() as usize - c.io().rx.ring_size()).collect();
    Ok(Host { model, _handle: handle, cores: out, pool_free_at_start })
}

/// Free buffers plus those the TX ring still holds (sent, not yet cleaned):
/// with the RX ring always full, this is constant unless buffers leak.
fn pool_accounted(c: &Core) -> usize {
    c.io().pool().free_count() + c.io().tx.buffers_in_flight()
}

fn host_stats(h: &Host) -> CoreStats {
    let mut s = CoreStats::default();
    for c in &h.cores {
        s.add(&c.stats());
    }
    s
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let rss_start = vm_rss_kib();
    let clock = MonotonicClock::new();
    let imp = Impairments { loss: args.loss, reorder: args.reorder, seed: args.seed, ..Impairments::none() };
    let (ea, eb) = Link::pair(LinkConfig::ten_gig().with_impairments(imp), Arc::new(clock) as Arc<dyn Clock>);
    let (ea, eb) = (Arc::new(Mutex::new(ea)), Arc::new(Mutex::new(eb)));
    let mut hosts =
        [start_host(0, &ea, args.cores, args.seed, &clock)?, start_host(1, &eb, args.cores, args.seed, &clock)?];
    let links = || (SharedEnd::stats(&ea), SharedEnd::stats(&eb));
    let pattern = Arc::new(Pattern::new(args.seed));
    let mut clients: Vec<Client> = (0..args.cores)
        .map(|q| Client {
            pattern: Arc::clone(&pattern),
            rng: ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(u64::from(q) + 1)),
            echo: Vec::new(),
            http: Vec::new(),
            echo_target: args.echo,
            http_target: args.http,
            opening: true,
            buf: vec![0; 65_536],
        })
        .collect();
    let mut servers: Vec<Server> = (0..args.cores)
        .map(|_| Server { pattern: Arc::clone(&pattern), echo: Vec::new(), http: Vec::new(), buf: vec![0; 65_536] })
        .collect();
    for c in hosts[1].cores.iter_mut() {
        c.listen(ECHO_PORT, None).map_err(|e| e.to_string())?;
        c.listen(HTTP_PORT, None).map_err(|e| e.to_string())?;
    }
    println!(
        "soak: seed {} ({} s, {} cores per host, loss {}, reorder {}, {} echo + {} http connections per core); \
         VmRSS at start {} KiB",
        args.seed, args.seconds, args.cores, args.loss, args.reorder, args.echo, args.http, rss_start
    );
    let mut t = Tally::default();
    let run_ns = args.seconds * 1_000_000_000;
    let drain_ns = 60_000_000_000;
    let mut next_report = args.report * 1_000_000_000;
    let mut rss_after_warmup = None;
    let mut draining = false;
    loop {
        let now = clock.now_ns();
        if !draining && now >= run_ns {
            draining = true;
            for cl in clients.iter_mut() {
                cl.opening = false;
            }
        }
        for (h, host) in hosts.iter_mut().enumerate() {
            for (q, core) in host.cores.iter_mut().enumerate() {
                core.poll_with(now, |c| {
                    // The apps look at every connection they hold each time:
                    // events only matter for knowing when to stop waiting.
                    let _ = c.drain_events().filter(|e| matches!(e, Event::Acceptable { .. })).count();
                    if h == 0 {
                        clients[q].service(c, &mut t);
                    } else {
                        servers[q].service(c, &mut t);
                    }
                });
            }
        }
        for host in &hosts {
            while host.model.pump() > 0 {}
        }
        if draining {
            // Echo connections close once their last message is back.
            let clients_done = clients.iter().all(|cl| cl.echo.is_empty() && cl.http.is_empty());
            let quiet = hosts.iter().all(|h| host_stats(h).conns_open == 0);
            if clients_done && quiet {
                break;
            }
            if now >= run_ns + drain_ns {
                error(&mut t, "drain: connections still open after 60 s".into());
                break;
            }
        }
        if now >= next_report {
            next_report += args.report * 1_000_000_000;
            if rss_after_warmup.is_none() {
                rss_after_warmup = Some(vm_rss_kib());
            }
            let (la, lb) = links();
            report(now, &t, &hosts, &la, &lb);
        }
    }
    // Let the last FINs and TIME_WAITs run out.
    let settle = clock.now_ns() + 5_000_000_000;
    while clock.now_ns() < settle {
        let now = clock.now_ns();
        for (h, host) in hosts.iter_mut().enumerate() {
            for (q, core) in host.cores.iter_mut().enumerate() {
                core.poll_with(now, |c| {
                    let _ = c.drain_events().count();
                    if h == 1 {
                        servers[q].service(c, &mut t);
                    }
                });
            }
        }
        for host in &hosts {
            while host.model.pump() > 0 {}
        }
    }
    let now = clock.now_ns();
    let (la, lb) = links();
    report(now, &t, &hosts, &la, &lb);
    let rss_end = vm_rss_kib();
    let mut ok = t.errors == 0;
    for (h, host) in hosts.iter().enumerate() {
        for (q, c) in host.cores.iter().enumerate() {
            let n = c.socket_census();
            let free = pool_accounted(c);
            if n.not_closed != 0 || n.flows != 0 || n.free != n.slots || free != host.pool_free_at_start[q] {
                ok = false;
                println!(
                    "soak: LEAK host {h} core {q}: {n:?}; pool free + TX in flight {free} (expected {})",
                    host.pool_free_at_start[q]
                );
            }
        }
        if !host.model.faults().is_empty() {
            ok = false;
            println!("soak: model faults on host {h}: {:?}", host.model.faults());
        }
    }
    let (a, b) = (host_stats(&hosts[0]), host_stats(&hosts[1]));
    println!("soak: host A stats {a:?}");
    println!("soak: host B stats {b:?}");
    println!(
        "soak: SUMMARY {} s: {} echo + {} http transactions, {} MiB verified, {} errors, {} TCP retransmissions \
         (A {} B {}), link lost {} reordered {}; VmRSS start {} KiB, after first report {} KiB, end {} KiB; {}",
        now / 1_000_000_000,
        t.echo_tx,
        t.http_tx,
        (t.echo_bytes + t.http_bytes) >> 20,
        t.errors,
        a.tcp_retransmits + b.tcp_retransmits,
        a.tcp_retransmits,
        b.tcp_retransmits,
        la.dropped + lb.dropped,
        la.reordered + lb.reordered,
        rss_start,
        rss_after_warmup.unwrap_or(rss_end),
        rss_end,
        if ok { "OK" } else { "FAILED" }
    );
    Ok(ok)
}

fn report(now: u64, t: &Tally, hosts: &[Host; 2], la: &LinkStats, lb: &LinkStats) {
    let (a, b) = (host_stats(&hosts[0]), host_stats(&hosts[1]));
    println!(
        "soak: t={:>5} s echo {:>10} http {:>9} ({} MiB) errors {} retransmits {} lost {} reordered {} \
         open A {} B {} time_wait B {} VmRSS {} KiB",
        now / 1_000_000_000,
        t.echo_tx,
        t.http_tx,
        (t.echo_bytes + t.http_bytes) >> 20,
        t.errors,
        a.tcp_retransmits + b.tcp_retransmits,
        la.dropped + lb.dropped,
        la.reordered + lb.reordered,
        a.conns_open,
        b.conns_open,
        b.time_wait,
        vm_rss_kib()
    );
}
