//! The stack core: one value per queue pair, driven one loop iteration at a
//! time by [`StackCore::poll`] (or [`StackCore::poll_with`], which runs the
//! application's work between ingress and egress).
//!
//! One iteration:
//! 1. **ingress**: one `rx_batch`; per frame: ARP is answered here; a TCP
//!    segment is looked up in the flow table and handed to smoltcp with
//!    *that connection's* one-socket set (`poll_ingress_single`); a SYN for a
//!    listening port gets a socket from the free pool first; a segment for a
//!    TIME_WAIT tuple is answered from the TIME_WAIT table; anything else
//!    goes to smoltcp with an empty set, which answers RST.
//! 2. **application** (`poll_with`'s closure): accept, connect, send,
//!    receive, close; reads the events produced by ingress.
//! 3. **timers**: the wheel fires connections whose `poll_at` has come.
//! 4. **egress**: `poll_egress` only for dirty connections (touched by
//!    ingress, the application or a timer), then each one's next `poll_at`
//!    is put in the wheel.
//! 5. TIME_WAIT expiry, packets waiting for ARP, and one `tx_batch`.
//!
//! Nothing in an iteration allocates once the core has its sockets
//! (`preallocate`, or after the first `max_connections` were built), and
//! nothing takes a lock: the only state shared with other cores is the
//! neighbour table, read lock-free.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ixtcp_driver::mempool::PacketBuf;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::iface::{Interface, PollResult, SocketSet};
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

use crate::config::StackConfig;
use crate::conn::{CloseReason, Conn, ConnId, Event, Phase};
use crate::cookie;
use crate::csum;
use crate::error::StackError;
use crate::ether::{
    self, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame, IPPROTO_ICMP, IPPROTO_UDP, Ipv4Class,
    Ipv4Packet, MacAddr, Malformed, TcpHeader,
};
use crate::flow::{FlowKey, FlowTable};
use crate::icmp::Icmp;
use crate::io::PacketIo;
use crate::listen::Listeners;
use crate::neighbor::{NeighborTable, Resolver};
use crate::pcap::PcapFile;
use crate::phy::Phy;
use crate::pmtu::PathMtus;
use crate::port::{Port, PortAddr};
use crate::rss::{PortPicker, RssView};
use crate::secret::HostSecret;
use crate::stats::CoreStats;
use crate::timer::TimerWheel;
use crate::timewait::{TimeWaitAction, TimeWaitTable};
use crate::udp::UdpTable;
use crate::workaround;

/// Everything a core is built from besides the configuration.
pub struct CoreSetup<P: PacketIo> {
    /// Core (and queue) index.
    pub index: u16,
    /// Its queue pair.
    pub io: P,
    /// The MAC to send from (the NIC's unless configured).
    pub mac: MacAddr,
    /// The host's neighbour table, shared by all its cores.
    pub neighbors: Arc<NeighborTable>,
    /// The NIC's RSS setup as seen from this core.
    pub rss: RssView,
    /// Fixed seed for deterministic tests; `None` (production): every random
    /// value, smoltcp's `random_seed` first, comes from the OS.
    pub seed: Option<u64>,
    /// Capture file, if any.
    pub pcap: Option<PcapFile>,
    /// The host's secrets (ISNs, SYN cookies), the same for all its cores:
    /// `HostSecret::new(seed)`.
    pub secret: HostSecret,
}

/// What one iteration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Frames received.
    pub received: usize,
    /// Frames handed to the TX queue.
    pub sent: usize,
    /// Events waiting for the application.
    pub events: usize,
}

/// A count of the core's sockets, for tests and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketCensus {
    /// Socket slots built.
    pub slots: usize,
    /// Slots in the free pool.
    pub free: usize,
    /// Sockets in any state but CLOSED.
    pub not_closed: usize,
    /// Entries in the flow table.
    pub flows: usize,
    /// Entries in the TIME_WAIT table.
    pub time_wait: usize,
    /// Armed timers.
    pub timers: usize,
}

/// Where a post-processing check comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Ingress,
    App,
    /// After egress; `owed`: the socket still has something to send now.
    Egress {
        owed: bool,
    },
}

/// One core's TCP/IP stack. See the module docs for the loop.
pub struct StackCore<P: PacketIo> {
    /// The gratuitous ARP of core 0 is still to be sent. It goes out at the
    /// first `ingress`, on the thread that runs the core, not in `new`: the
    /// first thread to allocate from a mempool owns it (its atomic-free fast
    /// path), and `new` may run on another thread than the core.
    announce_pending: bool,
    pub(crate) cfg: Arc<StackConfig>,
    pub(crate) index: u16,
    pub(crate) ip: Ipv4Addr,
    pub(crate) rss: RssView,
    pub(crate) iface: Interface,
    pub(crate) port: Port<P>,
    pub(crate) conns: Vec<Conn>,
    pub(crate) free: Vec<u32>,
    pub(crate) flows: FlowTable<u32>,
    pub(crate) tw: TimeWaitTable,
    pub(crate) wheel: TimerWheel,
    pub(crate) dirty: VecDeque<u32>,
    pub(crate) listeners: Listeners,
    pub(crate) events: Vec<Event>,
    pub(crate) events_overflowed: bool,
    empty_set: SocketSet<'static>,
    rx_batch: Vec<PacketBuf>,
    pub(crate) picker: PortPicker,
    pub(crate) now: Instant,
    pub(crate) now_ns: u64,
    pub(crate) shutting_down: bool,
    pub(crate) secret: HostSecret,
    pub(crate) rng: ChaCha8Rng,
    /// Challenge ACKs left in the current second, and when it ends (ms).
    challenge_budget: (u32, u64),
    /// ICMP rate limit and IP identification (`crate::icmp`).
    pub(crate) icmp: Icmp,
    /// Bound UDP ports (`crate::udp`).
    pub(crate) udp: UdpTable,
    /// Path MTUs per destination and their interfaces (`crate::pmtu`).
    pub(crate) pmtu: PathMtus,
}

fn instant_of(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

/// The wheel tick (ms) at or after `t`.
fn tick_ceil(t: Instant) -> u64 {
    (t.total_micros().max(0) as u64).div_ceil(1000)
}

impl<P: PacketIo> StackCore<P> {
    /// Builds a core. `now_ns` is the injected clock's current reading.
    pub fn new(cfg: Arc<StackConfig>, setup: CoreSetup<P>, now_ns: u64) -> Result<StackCore<P>, StackError> {
        cfg.validate()?;
        let mut rng = match setup.seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s ^ (u64::from(setup.index) << 48)),
            None => {
                let s = getrandom::u64().map_err(|e| StackError::Device(format!("getrandom: {e}")))?;
                ChaCha8Rng::seed_from_u64(s)
            }
        };
        let random_seed = match setup.seed {
            Some(_) => rng.next_u64(),
            None => getrandom::u64().map_err(|e| StackError::Device(format!("getrandom: {e}")))?,
        };
        let hash_key = (rng.next_u64(), rng.next_u64());
        let resolver = Resolver::new(
            Arc::clone(&setup.neighbors),
            cfg.arp_pending_max,
            cfg.arp_pending_timeout_ms,
            cfg.arp_retry_ms,
        );
        let addr = PortAddr {
            mac: cfg.mac.unwrap_or(setup.mac),
            ip: cfg.ip,
            netmask: cfg.netmask(),
            gateway: cfg.gateway,
            mtu: cfg.mtu,
        };
        let tx_cap = usize::from(cfg.tx_ring_size);
        let mut port = Port::new(setup.io, addr, resolver, tx_cap, setup.pcap, cfg.checksum_offload);
        let now = instant_of(now_ns);
        let iface = crate::pmtu::new_interface(&mut port, cfg.mtu, cfg.ip, cfg.prefix_len, random_seed, now);
        let max = cfg.max_connections;
        let mut conns = Vec::with_capacity(max);
        let mut free = Vec::with_capacity(max);
        if cfg.preallocate {
            for i in 0..max {
                conns.push(Conn::new(cfg.socket_rx_buffer, cfg.socket_tx_buffer));
                free.push((max - 1 - i) as u32);
            }
        }
        let picker = PortPicker::new(cfg.ephemeral_first, cfg.ephemeral_last, rng.next_u32() as u16);
        let mut core = StackCore {
            announce_pending: false,
            index: setup.index,
            ip: cfg.ip,
            rss: setup.rss,
            iface,
            port,
            conns,
            free,
            flows: FlowTable::with_capacity(max, hash_key),
            tw: TimeWaitTable::new(cfg.time_wait_max, cfg.time_wait_ms, (hash_key.1, hash_key.0)),
            wheel: TimerWheel::new(max, now_ns / 1_000_000),
            dirty: VecDeque::with_capacity(max + 1),
            listeners: Listeners::default(),
            events: Vec::with_capacity(max * 2 + 64),
            events_overflowed: false,
            empty_set: SocketSet::new(Vec::new()),
            rx_batch: Vec::with_capacity(cfg.rx_burst),
            picker,
            now,
            now_ns,
            shutting_down: false,
            secret: setup.secret,
            rng,
            challenge_budget: (0, 0),
            icmp: Icmp::new(
                cfg.icmp_ratelimit_ms,
                cfg.icmp_ratelimit_burst,
                now_ns / 1_000_000,
                (hash_key.0 >> 48) as u16,
            ),
            udp: UdpTable::default(),
            pmtu: PathMtus::default(),
            cfg,
        };
        core.set_time(now_ns);
        for n in &core.cfg.static_neighbors {
            core.port.resolver.table.insert_static(n.ip, n.mac).map_err(|e| {
                StackError::Config(crate::config::ConfigError::Invalid {
                    field: "static_neighbors",
                    problem: e.to_string(),
                })
            })?;
        }
        core.announce_pending = core.index == 0;
        Ok(core)
    }

    /// This core's index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Our MAC.
    pub fn mac(&self) -> MacAddr {
        self.port.mac
    }

    /// Our IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The configuration.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// A copy of the counters.
    pub fn stats(&self) -> CoreStats {
        let mut s = self.port.stats;
        s.time_wait = self.tw.len() as u64;
        s.time_wait_evicted = self.tw.evicted();
        s
    }

    /// The host's neighbour table, which this core shares with the other
    /// cores built alongside it (for tests and diagnostics: what ARP learned).
    pub fn neighbors(&self) -> &Arc<NeighborTable> {
        &self.port.resolver.table
    }

    /// The queue pair (for its pool or driver statistics).
    pub fn io(&self) -> &P {
        self.port.io.inner()
    }

    /// Gives the queue pair back (after shutdown).
    pub fn into_io(self) -> P {
        self.port.io.into_inner()
    }

    /// Counts sockets by state.
    pub fn socket_census(&self) -> SocketCensus {
        SocketCensus {
            slots: self.conns.len(),
            free: self.free.len(),
            not_closed: self.conns.iter().filter(|c| c.sock().state() != State::Closed).count(),
            flows: self.flows.len(),
            time_wait: self.tw.len(),
            timers: self.wheel.armed(),
        }
    }

    /// One line about every live connection, for debugging stalls.
    #[doc(hidden)]
    pub fn debug_conns(&mut self) -> Vec<String> {
        let now = self.now;
        let mut out = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            if c.phase == Phase::Free {
                continue;
            }
            let s = c.sock();
            let at = self.pmtu.iface(&mut self.iface, c.path.slot).poll_at(now, &c.set);
            out.push(format!(
                "#{i} {:?} {} sendq {} recvq {} can_send {} can_recv {} poll_at {:?} (now {}) timer {:?} dirty {} ready {:?}",
                c.phase,
                s.state(),
                s.send_queue(),
                s.recv_queue(),
                s.can_send(),
                s.can_recv(),
                at,
                now,
                self.wheel.deadline(i as u32),
                c.dirty,
                c.last_ready
            ));
        }
        out
    }

    fn set_time(&mut self, now_ns: u64) {
        self.now_ns = now_ns.max(self.now_ns);
        self.now = instant_of(self.now_ns);
        self.port.set_time(self.now, self.now_ns / 1_000_000);
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ns / 1_000_000
    }

    /// One loop iteration without application work in the middle.
    pub fn poll(&mut self, now_ns: u64) -> PollOutcome {
        self.poll_with(now_ns, |_| ()).0
    }

    /// One loop iteration, with `app` run between ingress and egress so
    /// that what it sends leaves together with the ACKs ingress owes.
    pub fn poll_with<R>(&mut self, now_ns: u64, app: impl FnOnce(&mut Self) -> R) -> (PollOutcome, R) {
        let received = self.ingress(now_ns);
        let r = app(self);
        let sent = self.egress();
        (PollOutcome { received, sent, events: self.events.len() }, r)
    }

    /// When the core next has work without new packets: `Some(now)` if it
    /// has work now, `None` if only a packet can wake it.
    pub fn next_wakeup_ns(&self) -> Option<u64> {
        if !self.dirty.is_empty() || !self.port.tx.is_empty() {
            return Some(self.now_ns);
        }
        let ms = [
            self.wheel.next_tick(),
            self.tw.next_expiry_ms(),
            self.port
                .resolver
                .pending
                .front()
                .map(|p| p.since_ms + self.cfg.arp_retry_ms.min(self.cfg.arp_pending_timeout_ms)),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some((ms * 1_000_000).max(self.now_ns))
    }

    /// Step 1: receive one batch and process every frame.
    pub fn ingress(&mut self, now_ns: u64) -> usize {
        self.set_time(now_ns);
        if self.announce_pending {
            self.announce_pending = false;
            self.port.announce();
        }
        self.port.stats.polls += 1;
        let mut batch = std::mem::take(&mut self.rx_batch);
        let n = self.port.io.rx_batch(&mut batch, self.cfg.rx_burst);
        for buf in batch.drain(..) {
            self.ingress_frame(buf);
        }
        self.rx_batch = batch;
        n
    }

    fn ingress_frame(&mut self, mut buf: PacketBuf) {
        self.port.stats.rx_packets += 1;
        self.port.stats.rx_bytes += buf.len() as u64;
        match EthernetFrame::new_checked(buf.data()).map(|f| (f.ethertype(), !f.dst().is_unicast())) {
            Ok((ETHERTYPE_ARP, _)) => self.port.handle_arp(buf),
            Ok((ETHERTYPE_IPV4, link_multicast)) => {
                // Zero copy: the IP packet starts where the header ended.
                if !buf.trim_front(ETH_HEADER_LEN) {
                    self.port.stats.drop_malformed += 1;
                    return;
                }
                match ether::classify_ipv4(buf.data()) {
                    Err(Malformed::Fragment) => self.drop_fragment(&buf),
                    Err(_) => self.port.stats.drop_malformed += 1,
                    Ok(Ipv4Class::Other { proto: IPPROTO_ICMP, .. }) => self.ingress_icmp(buf, link_multicast),
                    Ok(Ipv4Class::Other { proto: IPPROTO_UDP, .. }) => self.ingress_udp(buf, link_multicast),
                    Ok(Ipv4Class::Other { .. }) => self.port.stats.drop_not_ours += 1,
                    Ok(Ipv4Class::Tcp(h)) if h.dst != self.ip => self.port.stats.drop_not_ours += 1,
                    Ok(Ipv4Class::Tcp(h)) => {
                        // Checksums first, before anything reads or
                        // rewrites the segment (see `crate::csum`).
                        if csum::check_rx(buf.data(), buf.rx_checksum(), self.port.csum_offload, &mut self.port.stats) {
                            self.ingress_tcp(h, buf);
                        }
                    }
                }
            }
            Ok(_) => self.port.stats.drop_ethertype += 1,
            Err(_) => self.port.stats.drop_malformed += 1,
        }
    }

    /// An IPv4 fragment: never reassembled (TCP sends with DF, and a UDP
    /// or ICMP message in pieces is rare enough to lose); counted by
    /// protocol, never answered (RFC 1122 3.2.2).
    fn drop_fragment(&mut self, buf: &PacketBuf) {
        let s = &mut self.port.stats;
        match Ipv4Packet::new_checked(buf.data()).map(|p| p.protocol()) {
            Ok(IPPROTO_ICMP) => s.drop_icmp_fragment += 1,
            Ok(IPPROTO_UDP) => s.drop_udp_fragment += 1,
            _ => s.drop_malformed += 1,
        }
    }

    fn ingress_tcp(&mut self, h: TcpHeader, buf: PacketBuf) {
        let key = FlowKey { remote_ip: h.src, remote_port: h.src_port, local_port: h.dst_port };
        if let Some(idx) = self.flows.get(&key) {
            self.port.stats.rx_tcp_flow += 1;
            self.deliver(idx as usize, h, buf);
            return;
        }
        let buf = if self.tw.contains(&key) {
            match self.time_wait_segment(key, h, buf) {
                Some(b) => b,
                None => return,
            }
        } else {
            buf
        };
        if h.is_syn_only()
            && !self.shutting_down
            && let Some(li) = self.listeners.find(h.dst_port)
        {
            self.open_passive(key, li, h, buf);
            return;
        }
        let buf = if h.flags & (ether::tcp_flags::SYN | ether::tcp_flags::RST | ether::tcp_flags::ACK)
            == ether::tcp_flags::ACK
            && !self.shutting_down
            && let Some(li) = self.listeners.find(h.dst_port)
            && self.cookies_recent(li)
        {
            match self.cookie_ack(key, li, h, buf) {
                Some(b) => b,
                None => return,
            }
        } else {
            buf
        };
        self.stray(h, buf);
    }

    /// A segment for a tuple in TIME_WAIT. Returns the buffer if it is a SYN
    /// that may open a new connection.
    fn time_wait_segment(&mut self, key: FlowKey, h: TcpHeader, buf: PacketBuf) -> Option<PacketBuf> {
        self.port.stats.rx_time_wait += 1;
        match TimeWaitTable::classify(buf.data(), &csum::edge()) {
            TimeWaitAction::Ack { seq, ack } => {
                drop(buf);
                let ip = self.ip;
                self.port.build_ip(TimeWaitTable::ACK_LEN, |b| {
                    TimeWaitTable::emit_ack_with_window(b, ip, &key, seq, ack, 0, &csum::edge())
                });
                self.port.stats.time_wait_acks += 1;
                None
            }
            TimeWaitAction::Syn => {
                self.tw.remove(&key);
                if self.listeners.find(h.dst_port).is_some() {
                    self.port.stats.time_wait_reused += 1;
                }
                Some(buf)
            }
            TimeWaitAction::Ignore => None,
        }
    }

    fn stray(&mut self, h: TcpHeader, buf: PacketBuf) {
        self.port.stats.rx_stray += 1;
        if !self.rss.is_ours(h.src, h.src_port, h.dst, h.dst_port) {
            self.port.stats.rx_misdirected += 1;
        }
        let mut phy = Phy::new(&mut self.port).with_rx(buf);
        self.iface.poll_ingress_single(self.now, &mut phy, &mut self.empty_set);
    }

    /// Hands a segment (`h`: its headers) to the connection's own socket
    /// set, after the checks and rewrites of `crate::workaround`.
    fn deliver(&mut self, idx: usize, mut h: TcpHeader, mut buf: PacketBuf) {
        if let Some(ack) = self.conns[idx].sent.ack {
            let state = self.conns[idx].sock().state();
            if workaround::rst_out_of_place(&h, ack, state) {
                self.port.stats.drop_rst_out_of_place += 1;
                // RFC 5961 3.2: inside the window, a challenge ACK; outside,
                // nothing (as smoltcp does).
                let ahead = h.seq.wrapping_sub(ack);
                if (ahead as usize) < self.conns[idx].sock().recv_capacity() {
                    self.challenge_ack(idx);
                }
                return;
            }
            if workaround::syn_on_synchronized(&h, state) {
                self.port.stats.drop_syn_synchronized += 1;
                self.challenge_ack(idx);
                return;
            }
            workaround::fix_stale_ack(buf.data_mut(), &mut h, ack);
        }
        let now_ms = self.now_ms();
        let conn = &mut self.conns[idx];
        if h.has(ether::tcp_flags::ACK) {
            conn.note_ack(h.ack);
        }
        // Back from the wire's sequence space to smoltcp's.
        conn.seq.incoming(buf.data_mut(), &mut h);
        conn.heard_ms = now_ms;
        conn.probes = 0;
        crate::conn::set_tsval(now_ms, conn.seq.ts_offset);
        let mut phy = Phy::new(&mut self.port).with_rx(buf).for_conn(&mut conn.seq, &mut conn.sent);
        let iface = self.pmtu.iface(&mut self.iface, conn.path.slot);
        iface.poll_ingress_single(self.now, &mut phy, &mut conn.set);
        self.mark_dirty(idx);
        self.after(idx, Cause::Ingress);
    }

    fn open_passive(&mut self, key: FlowKey, li: usize, h: TcpHeader, buf: PacketBuf) {
        // With cookies, half-open connections may hold at most three
        // quarters of the core's sockets: the rest stay for connections
        // made from cookies. A listener's backlog can be larger than the
        // socket pool (httpd asks for 4 096 with 1 024 sockets), and a
        // flood would otherwise take every socket before the backlog is
        // full, so no cookie would ever be sent and no client get in.
        let max = self.cfg.max_connections;
        let free = self.free.len() + max.saturating_sub(self.conns.len());
        let reserved = self.cfg.syn_cookies && free <= max / 4;
        let Some(l) = self.listeners.get_mut(li) else { return };
        if l.pending >= l.backlog || reserved {
            self.port.stats.drop_backlog_full += 1;
            if self.cfg.syn_cookies {
                self.send_cookie(key, li, &buf);
            }
            return;
        }
        let Some(idx) = self.take_conn() else {
            self.port.stats.drop_no_socket += 1;
            return;
        };
        let cfg = Arc::clone(&self.cfg);
        let ip = self.ip;
        let path = self.path_to(key.remote_ip);
        let c = &mut self.conns[idx];
        c.configure(&cfg);
        c.path = path;
        if c.sock_mut()
            .listen(smoltcp::wire::IpListenEndpoint { addr: Some(IpAddress::Ipv4(ip)), port: key.local_port })
            .is_err()
        {
            self.free_slot(idx);
            return;
        }
        // SYN-RECEIVED ends within the handshake timeout: smoltcp would
        // otherwise retransmit the SYN-ACK to a spoofed source forever, and
        // a SYN flood would hold the backlog full for good.
        c.sock_mut().set_timeout(Some(smoltcp::time::Duration::from_millis(cfg.connect_timeout_ms)));
        c.phase = Phase::Embryonic;
        c.listener = Some(li);
        c.key = Some(key);
        c.seq.isn = self.secret.isn((ip, key.local_port), (key.remote_ip, key.remote_port), self.now_ns);
        c.seq.ts_offset = self.secret.ts_offset((ip, key.local_port), (key.remote_ip, key.remote_port));
        c.last_state = State::Listen;
        if let Some(l) = self.listeners.get_mut(li) {
            l.pending += 1;
        }
        self.flows.insert(key, idx as u32);
        self.port.stats.conns_open += 1;
        self.deliver(idx, h, buf);
        if self.conns[idx].phase != Phase::Free {
            self.port.stats.rx_syn_accepted += 1;
            self.port.stats.conns_opened_passive += 1;
        }
    }

    /// Sends a challenge ACK (RFC 5961 3.2, 4.2) on connection `idx`:
    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with our last window, within
    /// the core's budget per second (RFC 5961 7; like Linux's
    /// `tcp_challenge_ack_limit`, the budget of each second is drawn at
    /// random between half and one and a half times the limit, so that an
    /// off-path attacker cannot count challenge ACKs to learn whether a
    /// tuple is in use, CVE-2016-5696).
    fn challenge_ack(&mut self, idx: usize) {
        let now = self.now_ms();
        if now >= self.challenge_budget.1 {
            let limit = self.cfg.challenge_ack_limit;
            let budget = if limit == 0 { 0 } else { limit / 2 + self.rng.next_u32() % limit };
            self.challenge_budget = (budget, now + 1_000);
        }
        if self.challenge_budget.0 == 0 {
            self.port.stats.challenge_acks_limited += 1;
            return;
        }
        let c = &self.conns[idx];
        let (Some(key), Some(ack), Some(seq)) = (c.key, c.sent.ack, c.sent.snd_max) else { return };
        self.challenge_budget.0 -= 1;
        let (ip, win) = (self.ip, c.sent.win);
        self.port.build_ip(TimeWaitTable::ACK_LEN, |b| {
            TimeWaitTable::emit_ack_with_window(b, ip, &key, seq, ack, win, &csum::edge())
        });
        self.port.stats.challenge_acks += 1;
    }

    /// Whether listener `li` sent cookies recently enough for an ACK to be
    /// checked as one (Linux's `tcp_synq_no_recent_overflow`).
    fn cookies_recent(&mut self, li: usize) -> bool {
        let now = self.now_ms();
        let window = u64::from(cookie::MAX_AGE + 1) * cookie::PERIOD_MS;
        self.listeners.get_mut(li).and_then(|l| l.cookie_sent_ms).is_some_and(|t| now.saturating_sub(t) < window)
    }

    /// Answers a SYN for a listener whose backlog is full with a cookie
    /// SYN-ACK, keeping no state (see `crate::cookie`).
    fn send_cookie(&mut self, key: FlowKey, li: usize, buf: &PacketBuf) {
        let Some(syn) = cookie::parse_syn(buf.data(), &csum::edge()) else { return };
        let now = self.now_ms();
        let t = cookie::Tuple { local: (self.ip, key.local_port), remote: (key.remote_ip, key.remote_port) };
        let c = cookie::make(self.secret.cookie_key(), &t, syn.seq, now, cookie::mss_index(syn.mss));
        if let Some(l) = self.listeners.get_mut(li) {
            l.cookie_sent_ms = Some(now);
        }
        let window = self.cfg.socket_rx_buffer.min(usize::from(u16::MAX)) as u16;
        let mss = self.path_to(key.remote_ip).mtu - 40;
        let (local, remote) = (t.local, t.remote);
        self.port.build_ip(cookie::SYN_LEN, |b| {
            cookie::emit(b, local, remote, c, Some(syn.seq.wrapping_add(1)), window, mss, &csum::edge());
        });
        self.port.stats.syn_cookies_sent += 1;
    }

    /// An ACK for a listening port that sent cookies lately: if it carries
    /// a valid cookie, the connection is built and the ACK delivered to it;
    /// otherwise the ACK is counted and given back (for the RST any stray
    /// ACK gets).
    ///
    /// smoltcp has no way to create an established socket, so the
    /// connection is replayed into a fresh socket in LISTEN: a SYN is
    /// synthesized from the ACK (its sequence number - 1, the MSS from the
    /// cookie's table entry, the ACK's window, no window scale, no SACK),
    /// smoltcp answers it with its own SYN-ACK, which egress maps (offset =
    /// cookie - smoltcp's ISN) and swallows instead of sending, and then the
    /// real ACK (its acknowledgement mapped back) takes the socket to
    /// ESTABLISHED, with any data it carries.
    fn cookie_ack(&mut self, key: FlowKey, li: usize, h: TcpHeader, buf: PacketBuf) -> Option<PacketBuf> {
        let (seq, ack) = (h.seq, h.ack);
        let (client_isn, c) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let t = cookie::Tuple { local: (self.ip, key.local_port), remote: (key.remote_ip, key.remote_port) };
        let mss_index = match cookie::check(self.secret.cookie_key(), &t, client_isn, c, self.now_ms()) {
            Ok(i) => i,
            Err(_) => {
                self.port.stats.syn_cookies_rejected += 1;
                return Some(buf);
            }
        };
        let l = self.listeners.get_mut(li)?;
        if l.accept_queue.len() >= l.backlog {
            // Like Linux (a listen overflow): a cookie connection goes
            // straight to the accept queue, so a full queue drops its ACK;
            // the client retransmits (its data, if it sends any) and is
            // taken once the application has accepted. Half-open entries
            // are not evicted for it: under a burst of real clients they
            // are real, and their own ACK would then draw an RST.
            self.port.stats.drop_backlog_full += 1;
            return None;
        }
        let Some(mut syn) = self.port.io.alloc() else {
            self.port.stats.drop_mempool_empty += 1;
            return None;
        };
        let Some(idx) = self.take_conn() else {
            self.port.stats.drop_no_socket += 1;
            return None;
        };
        syn.reset(0);
        if !syn.set_len(cookie::SYN_LEN) {
            self.free.push(idx as u32);
            return None;
        }
        let mss = cookie::MSS_TABLE[mss_index];
        cookie::emit(syn.data_mut(), t.remote, t.local, client_isn, None, h.window, mss, &csum::edge());
        let Ok(syn_h) = TcpHeader::parse(syn.data()) else {
            self.free.push(idx as u32);
            return None;
        };
        let cfg = Arc::clone(&self.cfg);
        let ip = self.ip;
        let path = self.path_to(key.remote_ip);
        let conn = &mut self.conns[idx];
        conn.configure(&cfg);
        conn.path = path;
        if conn
            .sock_mut()
            .listen(smoltcp::wire::IpListenEndpoint { addr: Some(IpAddress::Ipv4(ip)), port: key.local_port })
            .is_err()
        {
            self.free.push(idx as u32);
            return None;
        }
        conn.sock_mut().set_timeout(Some(smoltcp::time::Duration::from_millis(cfg.connect_timeout_ms)));
        conn.phase = Phase::Embryonic;
        conn.listener = Some(li);
        conn.key = Some(key);
        conn.last_state = State::Listen;
        conn.seq.isn = c;
        conn.seq.swallow_syn = true;
        if let Some(l) = self.listeners.get_mut(li) {
            l.pending += 1;
        }
        self.flows.insert(key, idx as u32);
        self.port.stats.conns_open += 1;
        self.deliver(idx, syn_h, syn);
        if self.conns[idx].phase != Phase::Free && self.port.tx_room() > 0 {
            self.egress_conn(idx);
        }
        let conn = &self.conns[idx];
        if conn.phase == Phase::Free || conn.seq.off.is_none() || conn.sock().state() != State::SynReceived {
            // smoltcp did not take the replayed SYN, or no room to run its
            // SYN-ACK: nothing was sent, the client retransmits.
            if conn.phase != Phase::Free {
                self.free_slot(idx);
            }
            return None;
        }
        self.port.stats.syn_cookies_validated += 1;
        self.port.stats.conns_opened_passive += 1;
        self.deliver(idx, h, buf);
        None
    }

    /// A slot from the free pool, building a socket if the pool is empty
    /// and the core is below `max_connections`.
    pub(crate) fn take_conn(&mut self) -> Option<usize> {
        if let Some(i) = self.free.pop() {
            return Some(i as usize);
        }
        if self.conns.len() < self.cfg.max_connections {
            self.conns.push(Conn::new(self.cfg.socket_rx_buffer, self.cfg.socket_tx_buffer));
            self.wheel.ensure_capacity(self.conns.len());
            return Some(self.conns.len() - 1);
        }
        None
    }

    pub(crate) fn mark_dirty(&mut self, idx: usize) {
        let c = &mut self.conns[idx];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push_back(idx as u32);
        }
    }

    /// Looks at a connection after something happened to it: hands it to
    /// its listener's accept queue, records how it ended, moves it to
    /// TIME_WAIT, frees it, and reports readiness changes.
    pub(crate) fn after(&mut self, idx: usize, cause: Cause) {
        let c = &mut self.conns[idx];
        if c.phase == Phase::Free {
            return;
        }
        let st = c.sock().state();
        let prev = c.last_state;
        c.last_state = st;
        match st {
            State::Listen => {
                // A SYN smoltcp refused, or an RST in
                // SYN-RECEIVED that sent the socket back to LISTEN: the
                // latter was a connection (counted as opened), now reset.
                if prev == State::SynReceived {
                    self.port.stats.conns_reset += 1;
                }
                self.free_slot(idx);
                return;
            }
            State::SynSent | State::SynReceived => {}
            State::Closed => {
                if prev != State::Closed && c.reason.is_none() {
                    let reason = match prev {
                        State::LastAck | State::Closing | State::TimeWait => CloseReason::Normal,
                        _ if c.aborted => CloseReason::Reset,
                        State::SynSent if cause == Cause::Ingress => CloseReason::Refused,
                        _ if cause == Cause::Ingress => CloseReason::Reset,
                        _ => CloseReason::TimedOut,
                    };
                    c.reason = Some(reason);
                    let s = &mut self.port.stats;
                    match reason {
                        CloseReason::Normal => s.conns_closed += 1,
                        CloseReason::Refused => s.conns_refused += 1,
                        CloseReason::Reset | CloseReason::TimedOut => s.conns_reset += 1,
                    }
                }
                // The tuple is free for reuse at once.
                if let Some(k) = c.key.take() {
                    self.flows.remove(&k);
                }
                match c.phase {
                    Phase::Embryonic | Phase::Orphan => {
                        // An aborted socket still owes its RST: free it
                        // only once egress has sent it.
                        if !c.aborted || matches!(cause, Cause::Egress { owed: false }) {
                            self.free_slot(idx);
                        }
                        return;
                    }
                    Phase::App | Phase::Free => {}
                }
            }
            State::TimeWait => {
                if c.phase == Phase::Orphan && matches!(cause, Cause::Egress { owed: false }) {
                    if let Some(k) = c.key.take() {
                        self.flows.remove(&k);
                        self.tw.insert(k, self.now_ns / 1_000_000);
                    }
                    self.port.stats.conns_closed += 1;
                    self.free_slot(idx);
                    return;
                }
                if c.phase == Phase::Orphan {
                    self.mark_dirty(idx);
                }
            }
            _ => {
                if !c.established {
                    c.established = true;
                    // The connect timeout ends with the handshake.
                    let idle = self.cfg.idle_timeout_ms;
                    if matches!(c.phase, Phase::App | Phase::Embryonic) {
                        c.sock_mut().set_timeout((idle > 0).then(|| smoltcp::time::Duration::from_millis(idle)));
                    }
                    if c.phase == Phase::Embryonic
                        && let Some(li) = c.listener
                        && let Some(l) = self.listeners.get_mut(li)
                    {
                        l.accept_queue.push_back(idx as u32);
                        c.in_accept_queue = true;
                        if !l.announced {
                            l.announced = true;
                            let port = l.port;
                            self.push_event(Event::Acceptable { port });
                        }
                    }
                }
            }
        }
        let c = &mut self.conns[idx];
        if c.established
            && matches!(c.phase, Phase::App | Phase::Embryonic)
            && !matches!(st, State::Closed | State::TimeWait)
        {
            // The user timeout (RFC 5482, Linux's TCP_USER_TIMEOUT) runs
            // while anything we sent is unacknowledged: smoltcp's timeout
            // aborts a socket whose peer has sent nothing for that long, so
            // it is armed only while data or our FIN is outstanding (smoltcp
            // counts from the first transmission after the buffer was
            // empty), and is the idle timeout, if any, otherwise.
            let s = c.sock();
            let outstanding = s.send_queue() > 0 || matches!(st, State::FinWait1 | State::Closing | State::LastAck);
            let (user, idle) = (c.user_timeout_ms.unwrap_or(self.cfg.user_timeout_ms), self.cfg.idle_timeout_ms);
            let ms = match (outstanding && user > 0, idle > 0) {
                (true, true) => Some(user.min(idle)),
                (true, false) => Some(user),
                (false, true) => Some(idle),
                (false, false) => None,
            };
            let t = ms.map(smoltcp::time::Duration::from_millis);
            if s.timeout() != t {
                c.sock_mut().set_timeout(t);
            }
        }
        match c.phase {
            Phase::App => {
                let s = c.sock();
                let r = c.status_of(s).ready;
                // Data that arrived while earlier data is still unread
                // changes no readiness bit, but is news to a reader that
                // takes bytes straight from the socket.
                let queued = s.recv_queue();
                let arrived = queued > c.rx_seen;
                c.rx_seen = queued;
                if r != c.last_ready || arrived {
                    c.last_ready = r;
                    if cause != Cause::App {
                        let id = c.id(idx as u32);
                        self.push_event(Event::Conn { id, ready: r });
                    }
                }
            }
            Phase::Orphan => {
                // Nobody will read: discard what arrives so the window
                // stays open while our FIN is on its way.
                let s = c.sock_mut();
                while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                    if n == 0 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn push_event(&mut self, e: Event) {
        if self.events.len() < self.events.capacity() {
            self.events.push(e);
        } else {
            self.events_overflowed = true;
        }
    }

    /// Returns a slot to the free pool: out of the flow table, the wheel and
    /// its listener's count; socket reset without sending anything.
    pub(crate) fn free_slot(&mut self, idx: usize) {
        self.release_from_listener(idx);
        let c = &mut self.conns[idx];
        if c.phase == Phase::Free {
            return;
        }
        if let Some(k) = c.key.take() {
            self.flows.remove(&k);
        }
        c.hard_reset();
        c.generation = c.generation.wrapping_add(1);
        c.phase = Phase::Free;
        self.wheel.cancel(idx as u32);
        self.free.push(idx as u32);
        self.port.stats.conns_open = self.port.stats.conns_open.saturating_sub(1);
    }

    pub(crate) fn release_from_listener(&mut self, idx: usize) {
        let c = &mut self.conns[idx];
        let Some(li) = c.listener.take() else { return };
        let queued = std::mem::take(&mut c.in_accept_queue);
        if let Some(l) = self.listeners.get_mut(li) {
            l.pending = l.pending.saturating_sub(1);
            if queued && let Some(pos) = l.accept_queue.iter().position(|&i| i as usize == idx) {
                l.accept_queue.remove(pos);
            }
        }
    }

    /// Steps 3–5: timers, egress for dirty connections, TIME_WAIT expiry,
    /// packets waiting for ARP, one `tx_batch`. Returns frames sent.
    pub fn egress(&mut self) -> usize {
        let tick = self.now_ns / 1_000_000;
        {
            let (conns, dirty, stats) = (&mut self.conns, &mut self.dirty, &mut self.port.stats);
            self.wheel.advance(tick, |id| {
                stats.timers_fired += 1;
                let c = &mut conns[id as usize];
                if !c.dirty {
                    c.dirty = true;
                    dirty.push_back(id);
                }
            });
        }
        for _ in 0..self.dirty.len() {
            if self.port.tx_room() == 0 {
                break;
            }
            let Some(idx) = self.dirty.pop_front() else { break };
            let idx = idx as usize;
            self.conns[idx].dirty = false;
            if self.conns[idx].phase != Phase::Free {
                self.egress_conn(idx);
            }
        }
        self.tw.expire(self.now_ms());
        self.port.service_pending();
        self.port.flush()
    }

    /// The part of [`egress`](Self::egress) that must not wait for the
    /// application: segments owed by connections that have nothing unread
    /// (the ACK completing an active open, a SYN-ACK, the ACK of a bare FIN
    /// or of a window probe). A connection with unread data keeps its ACK
    /// back, so that the application's answer carries it at the next
    /// `egress`. A runtime that hands control to the application between
    /// ingress and egress calls this right after `ingress`, so the peer's
    /// progress never depends on when the application calls back. No timers
    /// run here. Returns frames sent.
    pub fn egress_unanswerable(&mut self) -> usize {
        let mut any = false;
        for _ in 0..self.dirty.len() {
            if self.port.tx_room() == 0 {
                break;
            }
            let Some(idx) = self.dirty.pop_front() else { break };
            let idx = idx as usize;
            let c = &mut self.conns[idx];
            if c.phase == Phase::Free {
                c.dirty = false;
                continue;
            }
            if c.sock().recv_queue() > 0 {
                // Still dirty: back in the queue for the full egress.
                self.dirty.push_back(idx as u32);
                continue;
            }
            c.dirty = false;
            self.egress_conn(idx);
            any = true;
        }
        if any { self.port.flush() } else { 0 }
    }

    /// The stack's own keep-alive on connection `idx` (see
    /// `conn::KeepAlive`): a probe `<SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>`,
    /// which any TCP answers with an ACK, once the peer has been silent for
    /// `idle_ms` and then every `interval_ms`; after `count` unanswered
    /// probes the socket is aborted, and the egress that follows sends its
    /// RST (Linux does the same). smoltcp's keep-alive has one interval and
    /// no count, so it is off on such a connection. Returns when the next
    /// step is due, ms.
    fn keepalive_step(&mut self, idx: usize) -> Option<u64> {
        let now = self.now_ms();
        let c = &mut self.conns[idx];
        let ka = c.keepalive?;
        let idle = c.established
            && matches!(c.sock().state(), State::Established | State::CloseWait)
            && c.sock().send_queue() == 0;
        if !idle {
            return None;
        }
        let due = c.heard_ms + ka.idle_ms + u64::from(c.probes) * ka.interval_ms;
        if now < due {
            return Some(due);
        }
        if c.probes >= ka.count {
            c.sock_mut().abort();
            self.port.stats.keepalive_timeouts += 1;
            return None;
        }
        let (Some(key), Some(ack), Some(seq)) = (c.key, c.sent.ack, c.sent.snd_max) else {
            return Some(now + ka.interval_ms);
        };
        c.probes += 1;
        let (ip, win) = (self.ip, c.sent.win);
        let probe = seq.wrapping_sub(1);
        self.port.build_ip(TimeWaitTable::ACK_LEN, |b| {
            TimeWaitTable::emit_ack_with_window(b, ip, &key, probe, ack, win, &csum::edge())
        });
        self.port.stats.keepalive_probes += 1;
        Some(due + ka.interval_ms)
    }

    fn egress_conn(&mut self, idx: usize) {
        let keepalive_due = self.keepalive_step(idx);
        let burst = self.cfg.egress_burst;
        let now = self.now;
        let mut sent = 0;
        let c = &mut self.conns[idx];
        if c.sock().state() == State::TimeWait {
            // Send the ACK of the peer's FIN now, so the socket can go.
            c.sock_mut().set_ack_delay(None);
        }
        crate::conn::set_tsval(self.now_ns / 1_000_000, c.seq.ts_offset);
        let iface = self.pmtu.iface(&mut self.iface, c.path.slot);
        let mut known = None;
        // At most one segment's payload at this MTU (IPv4 and TCP headers
        // without options): what a request or response usually is.
        let lone = self.cfg.mtu.saturating_sub(40);
        while sent < burst && self.port.tx_room() > 0 {
            let mut phy = Phy::new(&mut self.port).for_conn(&mut c.seq, &mut c.sent);
            match iface.poll_egress(now, &mut phy, &mut c.set) {
                PollResult::None => break,
                PollResult::SocketStateChanged => sent += 1,
            }
            // After a first segment that leaves at most a segment's worth
            // of bytes in the send buffer (sent or not), ask smoltcp when it
            // wants to send next (its `poll_at` mirrors the start of its
            // dispatch): a request's or a response's segment is usually
            // alone, and a `poll_egress` that finds nothing to send costs
            // about what one that sends does. A bulk sender, with more
            // queued, goes on without asking.
            if sent == 1 && c.sock().send_queue() <= lone {
                let at = iface.poll_at(now, &c.set);
                if !matches!(at, Some(t) if t <= now) {
                    known = Some(at);
                    break;
                }
            }
        }
        let at = known.unwrap_or_else(|| iface.poll_at(now, &c.set));
        let owed = matches!(at, Some(t) if t <= now);
        let tick = self.now_ns / 1_000_000;
        match at {
            Some(t) if t <= now => {
                if sent >= burst || self.port.tx_room() == 0 {
                    // More to send: its turn comes again next iteration.
                    self.mark_dirty(idx);
                } else {
                    // smoltcp says "now" but sent nothing more: look again
                    // next tick rather than spin.
                    self.wheel.arm(idx as u32, tick + 1);
                }
            }
            Some(t) => self.wheel.arm(idx as u32, tick_ceil(t)),
            None => self.wheel.cancel(idx as u32),
        }
        if let Some(due) = keepalive_due
            && self.wheel.deadline(idx as u32).is_none_or(|d| d > due)
        {
            self.wheel.arm(idx as u32, due);
        }
        self.after(idx, Cause::Egress { owed });
    }

    /// Takes the events produced since the last call.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events_overflowed = false;
        self.events.drain(..)
    }

    /// True if events were lost because the application did not drain
    /// them (it should then re-check every connection it holds).
    pub fn events_overflowed(&self) -> bool {
        self.events_overflowed
    }

    /// The handle's slot, if the handle is current and held by the
    /// application.
    pub(crate) fn slot_of(&self, id: ConnId) -> Result<usize, StackError> {
        let idx = id.index as usize;
        match self.conns.get(idx) {
            Some(c) if c.generation == id.generation && c.phase == Phase::App => Ok(idx),
            _ => Err(StackError::StaleHandle),
        }
    }
}
