//! Two stacks over two linked 82599 models with a virtual clock, and a raw
//! frame injector on host 1's side of the link: whatever the test injects
//! goes through the link (at its line rate) into host 0's model, and every
//! frame host 0 sends can be captured.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceHandle, QueuePair};
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::time::{Clock, VirtualClock};
use ixtcp_driver::wire::link::{Link, LinkConfig, LinkEnd};
use ixtcp_driver::wire::{Wire, WireError};
use ixtcp_stack::{CoreSetup, CoreStats, MacAddr, NeighborTable, RssView, StackConfig, StackCore};

pub type ModelCore = StackCore<QueuePair<ModelRegs>>;

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

    /// Takes the captured frames.
    pub fn take(&self) -> Vec<Vec<u8>> {
        self.captured.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default()
    }
}

struct InjectorWire(Injector);

impl Wire for InjectorWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.0.end.lock().map_err(|_| WireError::Io("poisoned".into()))?.transmit(frame)
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        let got = self.0.end.lock().map(|mut e| e.receive(buf)).unwrap_or(false);
        if got && self.0.capturing.lock().map(|c| *c).unwrap_or(false) {
            if let Ok(mut q) = self.0.captured.lock() {
                if q.len() < 1 << 20 {
                    q.push_back(buf.clone());
                }
            }
        }
        got
    }
}

pub struct ModelHost {
    pub model: Model82599,
    pub handle: DeviceHandle<ModelRegs>,
    pub cores: Vec<ModelCore>,
    pub table: Arc<NeighborTable>,
}

pub struct ModelWorld {
    pub clock: VirtualClock,
    pub hosts: Vec<ModelHost>,
    pub injector: Injector,
    a_end: Arc<Mutex<LinkEnd>>,
    pub steps: u64,
}

type Started = (DeviceHandle<ModelRegs>, Vec<ModelCore>, Arc<NeighborTable>);

fn start(model: &Model82599, cfg: StackConfig, seed: Option<u64>, now_ns: u64) -> Started {
    let cfg = Arc::new(cfg);
    let mut dc = cfg.device_config();
    dc.link_timeout = Duration::from_secs(1);
    let dev = Device::init(model.regs(), &model.dma(), dc)
        .unwrap_or_else(|e| panic!("init: {e}; faults {:?}", model.faults()));
    let mac = MacAddr(dev.mac());
    let reta = dev.config().effective_reta();
    let key = dev.config().rss_key;
    let (handle, queues) = dev.into_queues();
    let table = NeighborTable::new(cfg.neighbor_capacity, cfg.neighbor_ttl_ms);
    let rss = RssView { toeplitz: Arc::new(ixtcp_driver::rss::Toeplitz::new(&key)), reta, queue: 0 };
    let cores = queues
        .into_iter()
        .enumerate()
        .map(|(i, io)| {
            let setup = CoreSetup {
                index: i as u16,
                io,
                mac,
                neighbors: Arc::clone(&table),
                rss: rss.for_queue(i as u16),
                seed,
                pcap: None,
            };
            StackCore::new(Arc::clone(&cfg), setup, now_ns).unwrap()
        })
        .collect();
    (handle, cores, table)
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
        let injector = Injector { end: eb, captured: Arc::default(), capturing: Arc::default() };
        let mut hosts = Vec::new();
        for i in 0..2 {
            let model = Model82599::new(ModelConfig { mac: model_mac(i).0, ..ModelConfig::default() });
            if i == 0 {
                model.attach(Box::new(SharedEnd(Arc::clone(&ea))));
            } else {
                model.attach(Box::new(InjectorWire(injector.clone())));
            }
            let (handle, cores, table) = start(&model, cfg(i), seed.map(|s| s + i as u64), clock.now_ns());
            hosts.push(ModelHost { model, handle, cores, table });
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
        let mut s = CoreStats::default();
        for c in &self.hosts[h].cores {
            s.add(&c.stats());
        }
        s
    }

    /// Free buffers plus those the TX rings hold (sent, not yet cleaned),
    /// per core of host `h`: with full RX rings, constant unless buffers
    /// leak.
    pub fn buffers_accounted(&self, h: usize) -> Vec<usize> {
        self.hosts[h].cores.iter().map(|c| c.io().pool.free_count() + c.io().tx.in_flight()).collect()
    }

    /// Every buffer not lent to an RX ring, per core of host `h`.
    pub fn buffers_expected(&self, h: usize) -> Vec<usize> {
        self.hosts[h].cores.iter().map(|c| c.io().pool.capacity() as usize - c.io().rx.ring_size()).collect()
    }
}

/// Frame builders for the injector (checksums computed here, independent
/// of the stack's code).
pub mod craft {
    use std::net::Ipv4Addr;

    use ixtcp_stack::MacAddr;

    pub fn checksum(data: &[u8], initial: u32) -> u16 {
        let mut sum = initial;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + payload.len().max(46));
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    pub struct Seg<'a> {
        pub src: Ipv4Addr,
        pub dst: Ipv4Addr,
        pub sport: u16,
        pub dport: u16,
        pub seq: u32,
        pub ack: u32,
        pub flags: u8,
        pub window: u16,
        pub payload: &'a [u8],
    }

    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    /// An IPv4/TCP packet with valid checksums (MSS option on SYNs).
    pub fn tcp_ip(s: &Seg) -> Vec<u8> {
        let opts: &[u8] = if s.flags & SYN != 0 { &[2, 4, 0x05, 0xb4] } else { &[] };
        let tcp_len = 20 + opts.len() + s.payload.len();
        let total = 20 + tcp_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&s.src.octets());
        p[16..20].copy_from_slice(&s.dst.octets());
        let c = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&s.sport.to_be_bytes());
        t[2..4].copy_from_slice(&s.dport.to_be_bytes());
        t[4..8].copy_from_slice(&s.seq.to_be_bytes());
        t[8..12].copy_from_slice(&s.ack.to_be_bytes());
        t[12] = (((20 + opts.len()) / 4) as u8) << 4;
        t[13] = s.flags;
        t[14..16].copy_from_slice(&s.window.to_be_bytes());
        t[20..20 + opts.len()].copy_from_slice(opts);
        t[20 + opts.len()..].copy_from_slice(s.payload);
        let mut pseudo = 0u32;
        for w in [s.src.octets(), s.dst.octets()] {
            pseudo += u32::from(u16::from_be_bytes([w[0], w[1]])) + u32::from(u16::from_be_bytes([w[2], w[3]]));
        }
        pseudo += 6 + tcp_len as u32;
        let c = checksum(t, pseudo);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        p
    }

    pub fn tcp_frame(dst: MacAddr, src: MacAddr, s: &Seg) -> Vec<u8> {
        eth(dst, src, 0x0800, &tcp_ip(s))
    }

    pub fn arp(op: u16, dst: MacAddr, sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
        let mut a = Vec::with_capacity(28);
        a.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&sender_mac.0);
        a.extend_from_slice(&sender_ip.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&target_ip.octets());
        eth(dst, sender_mac, 0x0806, &a)
    }

    /// A parsed TCP segment from a captured frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Seen {
        pub src: Ipv4Addr,
        pub dst: Ipv4Addr,
        pub sport: u16,
        pub dport: u16,
        pub seq: u32,
        pub ack: u32,
        pub flags: u8,
        pub len: usize,
    }

    pub fn parse_tcp(frame: &[u8]) -> Option<Seen> {
        if frame.len() < 54 || frame[12..14] != [8, 0] || frame[23] != 6 {
            return None;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 15) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let t = ip.get(ihl..total)?;
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let doff = usize::from(t[12] >> 4) * 4;
        Some(Seen {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            sport: u16::from_be_bytes([t[0], t[1]]),
            dport: u16::from_be_bytes([t[2], t[3]]),
            seq: be32(&t[4..8]),
            ack: be32(&t[8..12]),
            flags: t[13],
            len: t.len().saturating_sub(doff),
        })
    }
}
