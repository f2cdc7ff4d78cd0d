//! Two stacks over two linked 82599 models with a virtual clock, and a raw
//! frame injector on host 1's side of the link: whatever the test injects
//! goes through the link (at its line rate) into host 0's model, and every
//! frame host 0 sends can be captured.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ixtcp_driver::time::{Clock, VirtualClock};
use ixtcp_driver::wire::link::{Link, LinkConfig, LinkEnd};
use ixtcp_driver::wire::{Wire, WireError};
use ixtcp_stack::{CoreStats, MacAddr, StackConfig};

pub use ixtcp_testkit::hosts::{ModelCore, ModelHost};

pub const IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];

pub fn model_mac(i: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i as u8 + 1])
}

pub fn model_config(ip: Ipv4Addr, cores: u16) -> StackConfig {
    StackConfig {
        cores,
        rx_ring_size: 1024,
        tx_ring_size: 512,
        rx_burst: 256,
        mempool_size: 4096,
        ..StackConfig::new(ip, 24)
    }
}

/// Host 1's end of the link, shared with the injector.
#[derive(Clone)]
pub struct Injector {
    end: Arc<Mutex<LinkEnd>>,
    /// Frames host 1's side received (what host 0 sent), while capturing.
    captured: Arc<Mutex<VecDeque<Vec<u8>>>>,
    capturing: Arc<Mutex<bool>>,
    router: Arc<Mutex<Option<Router>>>,
}

/// A router with a narrower next hop between host 0 and host 1: an IPv4
/// packet from host 0 longer than `limit` with DF set is dropped (counted
/// in `dropped`, still captured) and answered with "fragmentation needed"
/// from `ip` saying `report` (RFC 1191), quoting its header and first 8
/// payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct Router {
    pub limit: usize,
    pub report: u16,
    pub ip: Ipv4Addr,
    pub dropped: u64,
}

/// "Fragmentation needed" from `from` to host 0 saying `mtu`, quoting
/// `ip` (an IPv4 packet host 0 sent), in a frame from host 1's MAC.
pub fn frag_needed_frame(from: Ipv4Addr, mtu: u16, ip: &[u8]) -> Vec<u8> {
    let quoted = &ip[..(usize::from(ip[0] & 0x0f) * 4 + 8).min(ip.len())];
    let mut m = vec![3, 4, 0, 0, 0, 0];
    m.extend_from_slice(&mtu.to_be_bytes());
    m.extend_from_slice(quoted);
    let c = ixtcp_testkit::frames::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, 1, 0, 0];
    p[2..4].copy_from_slice(&((20 + m.len()) as u16).to_be_bytes());
    p.extend_from_slice(&from.octets());
    p.extend_from_slice(&ip[12..16]);
    let c = ixtcp_testkit::frames::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&m);
    ixtcp_testkit::frames::padded(ixtcp_testkit::frames::ethernet(model_mac(0), model_mac(1), 0x0800, &p))
}

impl Injector {
    /// Sends a raw frame towards host 0; `false` when the link is busy
    /// (line-rate backlog full): try again after the clock moved.
    pub fn inject(&self, frame: &[u8]) -> bool {
        let Ok(mut e) = self.end.lock() else { return false };
        match e.transmit(frame) {
            Ok(()) => true,
            Err(WireError::Busy) => false,
            Err(err) => panic!("inject: {err}"),
        }
    }

    /// Starts (or stops) keeping a copy of every frame host 0 sends.
    pub fn capture(&self, on: bool) {
        if let Ok(mut c) = self.capturing.lock() {
            *c = on;
        }
    }

    /// Puts a router (or none) between host 0 and host 1.
    pub fn route(&self, r: Option<Router>) {
        if let Ok(mut g) = self.router.lock() {
            *g = r;
        }
    }

    /// The router's drops so far.
    pub fn router_dropped(&self) -> u64 {
        self.router.lock().ok().and_then(|g| g.map(|r| r.dropped)).unwrap_or(0)
    }

    /// Takes the captured frames.
    pub fn take(&self) -> Vec<Vec<u8>> {
        self.captured.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default()
    }
}

struct InjectorWire(Injector);

impl InjectorWire {
    /// The router's part: true if it dropped `frame` (and answered it;
    /// an answer the link is too busy for is lost, as a router's may be).
    fn forward(&self, frame: &[u8]) -> bool {
        let Ok(mut g) = self.0.router.lock() else { return false };
        let Some(r) = g.as_mut() else { return false };
        if frame.len() < 34 || ixtcp_testkit::frames::ethertype(frame) != 0x0800 {
            return false;
        }
        let ip = &frame[14..];
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total <= r.limit {
            return false;
        }
        assert!(ip[6] & 0x40 != 0, "a packet of {total} bytes without DF");
        r.dropped += 1;
        let answer = frag_needed_frame(r.ip, r.report, &ip[..total.min(ip.len())]);
        drop(g);
        let _ = self.0.end.lock().map(|mut e| e.transmit(&answer));
        true
    }
}

impl Wire for InjectorWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.0.end.lock().map_err(|_| WireError::Io("poisoned".into()))?.transmit(frame)
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        loop {
            let got = self.0.end.lock().map(|mut e| e.receive(buf)).unwrap_or(false);
            if got && self.0.capturing.lock().map(|c| *c).unwrap_or(false) {
                if let Ok(mut q) = self.0.captured.lock() {
                    if q.len() < 1 << 20 {
                        q.push_back(buf.clone());
                    }
                }
            }
            if !got || !self.forward(buf) {
                return got;
            }
        }
    }
}

pub struct ModelWorld {
    pub clock: VirtualClock,
    pub hosts: Vec<ModelHost>,
    pub injector: Injector,
    a_end: Arc<Mutex<LinkEnd>>,
    pub steps: u64,
}

/// Wraps a link end so that two owners can use it.
struct SharedEnd(Arc<Mutex<LinkEnd>>);

impl Wire for SharedEnd {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.0.lock().map_err(|_| WireError::Io("poisoned".into()))?.transmit(frame)
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        self.0.lock().map(|mut e| e.receive(buf)).unwrap_or(false)
    }
}

impl ModelWorld {
    /// Host 0 and host 1 with `cfg(i)`; `seed: None` seeds every core from
    /// the OS (as in production).
    pub fn new(link: LinkConfig, seed: Option<u64>, cfg: impl Fn(usize) -> StackConfig) -> ModelWorld {
        let clock = VirtualClock::new();
        clock.advance(Duration::from_millis(1));
        let (ea, eb) = Link::pair(link, Arc::new(clock.clone()) as Arc<dyn Clock>);
        let (ea, eb) = (Arc::new(Mutex::new(ea)), Arc::new(Mutex::new(eb)));
        let injector =
            Injector { end: eb, captured: Arc::default(), capturing: Arc::default(), router: Arc::default() };
        let mut hosts = Vec::new();
        for i in 0..2 {
            let wire: Box<dyn Wire> =
                if i == 0 { Box::new(SharedEnd(Arc::clone(&ea))) } else { Box::new(InjectorWire(injector.clone())) };
            hosts.push(ModelHost::new(model_mac(i).0, Some(wire), cfg(i), seed.map(|s| s + i as u64), clock.now_ns()));
        }
        ModelWorld { clock, hosts, injector, a_end: ea, steps: 0 }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub fn core(&mut self, h: usize, c: usize) -> &mut ModelCore {
        &mut self.hosts[h].cores[c]
    }

    /// One step: every core polls (the app between ingress and egress),
    /// the models move frames; the clock advances 5 µs, or jumps to the
    /// next timer or arrival when nothing happened.
    pub fn step(&mut self, app: &mut dyn FnMut(usize, &mut ModelCore)) {
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
            let arrivals = [
                self.a_end.lock().ok().and_then(|e| e.next_arrival_ns()),
                self.injector.end.lock().ok().and_then(|e| e.next_arrival_ns()),
            ];
            let next = self
                .hosts
                .iter()
                .flat_map(|h| h.cores.iter())
                .filter_map(|c| c.next_wakeup_ns())
                .chain(arrivals.into_iter().flatten())
                .min()
                .unwrap_or(now + 1_000_000);
            self.clock.advance_to(next.max(now + 1_000));
        } else {
            self.clock.advance(Duration::from_micros(5));
        }
    }

    /// Steps for `ns` of virtual time.
    pub fn run_for(&mut self, ns: u64, app: &mut dyn FnMut(usize, &mut ModelCore)) {
        let end = self.now_ns() + ns;
        while self.now_ns() < end {
            self.step(app);
        }
    }

    pub fn stats(&self, h: usize) -> CoreStats {
        self.hosts[h].stats()
    }

    /// Free buffers plus those the TX rings hold (sent, not yet cleaned),
    /// per core of host `h`: with full RX rings, constant unless buffers
    /// leak.
    pub fn buffers_accounted(&self, h: usize) -> Vec<usize> {
        self.hosts[h].cores.iter().map(|c| c.io().pool.free_count() + c.io().tx.buffers_in_flight()).collect()
    }

    /// Every buffer not lent to an RX ring, per core of host `h`.
    pub fn buffers_expected(&self, h: usize) -> Vec<usize> {
        self.hosts[h].cores.iter().map(|c| c.io().pool.capacity() as usize - c.io().rx.ring_size()).collect()
    }
}
