//! The phy adapter: smoltcp's [`Device`] over one queue pair, plus the
//! Ethernet and ARP layer underneath it.
//!
//! - Receive is zero copy: the core strips the Ethernet header in place
//!   (`trim_front(14)`), parks the buffer in [`Port::rx_current`] and calls
//!   smoltcp once; the RX token lends that buffer's bytes and returns it to
//!   the mempool when consumed.
//! - Transmit builds the IP packet straight into a mempool buffer at its
//!   default headroom, then writes the Ethernet header into the headroom
//!   (`prepend(14)`) for the next hop (the gateway when off-subnet) and
//!   appends the buffer to the TX batch, which the core hands to the queue
//!   with one `tx_batch` per loop iteration.
//! - A full TX batch or an empty mempool makes `transmit` return `None`:
//!   smoltcp then keeps the data and tries again later, so nothing is lost
//!   to local back-pressure.
//! - A packet whose next hop is not yet resolved waits in the resolver's
//!   bounded queue while an ARP request goes out (see [`crate::neighbor`]).
//! - Every IPv4 packet's checksums are settled in `send_ip`, after the last
//!   rewrite: left to the NIC or computed (see `crate::csum`); smoltcp is
//!   told to compute and verify neither.

use std::net::Ipv4Addr;

use ixtcp_driver::mempool::PacketBuf;
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::csum::{self, TxCsum};
use crate::ether::{self, Arp, ArpOp, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, MacAddr};
use crate::io::PacketIo;
use crate::neighbor::{Ask, Resolver};
use crate::pcap::PcapFile;
use crate::stats::CoreStats;

/// The link layer and packet I/O of one core.
pub(crate) struct Port<P: PacketIo> {
    pub io: P,
    pub tx: Vec<PacketBuf>,
    pub tx_cap: usize,
    pub rx_current: Option<PacketBuf>,
    pub resolver: Resolver,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    mask: u32,
    gateway: Option<Ipv4Addr>,
    mtu: usize,
    pub stats: CoreStats,
    pub pcap: Option<PcapFile>,
    /// Where a reply is built when no buffer is free, to be dropped.
    scratch: Vec<u8>,
    pub now: Instant,
    pub now_ms: u64,
    /// Acknowledgement number of the last TCP segment sent (the core reads
    /// it back around each per-connection smoltcp call).
    pub last_tx_ack: Option<u32>,
    /// Window field of that segment.
    pub last_tx_win: u16,
    /// While a connection's smoltcp call runs: the end of the highest
    /// sequence space it has sent (SND.MAX), to count retransmissions.
    /// The core loads it from the connection before and stores it after.
    pub snd_max: Option<Option<u32>>,
    /// While a connection's smoltcp call runs: how its sequence numbers
    /// map to the wire (see `crate::secret`). The core loads it from the
    /// connection before and stores it after.
    pub seq: Option<SeqMap>,
    /// Leave checksums to the NIC (`checksum_offload` and the I/O has it).
    pub csum_offload: bool,
}

/// A connection's sequence-number mapping: the ISN it must show on the
/// wire and, once its first SYN has left, `wire - smoltcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeqMap {
    /// The ISN the wire must see (RFC 6528, or a SYN cookie).
    pub isn: u32,
    /// `wire - smoltcp`, fixed when the first SYN is sent.
    pub off: Option<u32>,
    /// Fix the offset from the next SYN but do not send it (the SYN-ACK of
    /// a connection made from a SYN cookie: the peer already has ours).
    pub swallow_syn: bool,
    /// Added to the core's millisecond clock to make this connection's
    /// TCP timestamps (`tcp_timestamps`; see `HostSecret::ts_offset`).
    pub ts_offset: u32,
}

/// Addressing of a port.
pub(crate) struct PortAddr {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: usize,
}

impl<P: PacketIo> Port<P> {
    /// A port over `io`; `csum_offload` asks for the NIC's checksum offload,
    /// used only if `io` has it.
    pub fn new(
        io: P,
        addr: PortAddr,
        resolver: Resolver,
        tx_cap: usize,
        pcap: Option<PcapFile>,
        csum_offload: bool,
    ) -> Port<P> {
        let csum_offload = csum_offload && io.checksum_offload();
        Port {
            io,
            tx: Vec::with_capacity(tx_cap),
            tx_cap,
            rx_current: None,
            resolver,
            mac: addr.mac,
            ip: addr.ip,
            mask: u32::from(addr.netmask),
            gateway: addr.gateway,
            mtu: addr.mtu,
            stats: CoreStats::default(),
            pcap,
            scratch: vec![0; addr.mtu + ETH_HEADER_LEN],
            now: Instant::from_micros(0),
            now_ms: 0,
            last_tx_ack: None,
            last_tx_win: 0,
            snd_max: None,
            seq: None,
            csum_offload,
        }
    }

    /// Room left in the TX batch.
    pub fn tx_room(&self) -> usize {
        self.tx_cap.saturating_sub(self.tx.len())
    }

    /// The next hop towards `dst`: itself on our subnet, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if u32::from(dst) & self.mask == u32::from(self.ip) & self.mask { Some(dst) } else { self.gateway }
    }

    /// Appends a complete frame to the TX batch (or drops and counts it).
    pub fn push_frame(&mut self, buf: PacketBuf) {
        if self.tx.len() >= self.tx_cap {
            self.stats.drop_ring_full += 1;
            return;
        }
        if let Some(p) = self.pcap.as_mut() {
            p.record(self.now, buf.data());
        }
        self.tx.push(buf);
    }

    /// Sends an IP packet (built at the buffer's headroom): writes the
    /// Ethernet header for the next hop, or parks it for ARP.
    pub fn send_ip(&mut self, mut buf: PacketBuf) {
        let Some(dst) = ether::ipv4_dst(buf.data()) else { return };
        let mut swallow = false;
        if let Some(m) = self.seq.as_mut()
            && let Some(flags) = ether::tcp_flags_of(buf.data())
        {
            if m.off.is_none() && flags & ether::tcp_flags::SYN != 0 {
                let (seq, _) = ether::tcp_seq_ack(buf.data());
                m.off = Some(m.isn.wrapping_sub(seq));
                swallow = std::mem::take(&mut m.swallow_syn);
            }
            if let Some(off) = m.off {
                ether::tcp_add(buf.data_mut(), ether::TcpField::Seq, off);
            }
        }
        if let Some(ack) = ether::tcp_ack_of(buf.data()) {
            self.last_tx_ack = Some(ack);
            self.last_tx_win = ether::tcp_window_of(buf.data());
        }
        if let Some(hi) = self.snd_max.as_mut()
            && let Some((seq, len)) = ether::tcp_seq_space(buf.data())
            && len > 0
        {
            let end = seq.wrapping_add(len);
            match *hi {
                // Ends at or below what was already sent: a retransmission
                // (timeout, fast retransmit or a repeated SYN/FIN).
                Some(h) if (end.wrapping_sub(h) as i32) <= 0 => self.stats.tcp_retransmits += 1,
                _ => *hi = Some(end),
            }
        }
        if swallow {
            return;
        }
        // After the last rewrite of the packet: its checksums, by the NIC
        // or here (see `crate::csum`).
        match csum::finish_tx(&mut buf, self.csum_offload) {
            TxCsum::Offloaded => self.stats.tx_csum_offloaded += 1,
            TxCsum::Software => self.stats.tx_csum_software += 1,
            TxCsum::Untouched => {}
        }
        let Some(hop) = self.next_hop(dst) else {
            self.stats.drop_no_route += 1;
            return;
        };
        match self.resolver.table.lookup(hop, self.now_ms) {
            Some(n) => {
                if n.stale {
                    self.ask(hop);
                }
                self.frame_and_push(&mut buf, n.mac);
                self.push_frame(buf);
            }
            None => {
                self.ask(hop);
                if let Err(dropped) = self.resolver.park(hop, buf, self.now_ms) {
                    drop(dropped);
                    self.stats.drop_no_neighbor += 1;
                }
            }
        }
    }

    fn frame_and_push(&mut self, buf: &mut PacketBuf, dst: MacAddr) {
        let src = self.mac;
        if let Some(h) = buf.prepend(ETH_HEADER_LEN) {
            ether::write_eth_header(h, dst, src, ETHERTYPE_IPV4);
        }
    }

    /// Sends an ARP request for `ip` unless one went out recently.
    pub fn ask(&mut self, ip: Ipv4Addr) {
        let decision = self.resolver.should_ask(ip, self.now_ms);
        if decision == Ask::OverBudget {
            self.stats.arp_requests_suppressed += 1;
        }
        if decision == Ask::Send {
            let req = Arp {
                op: ArpOp::Request,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac: MacAddr::default(),
                target_ip: ip,
            };
            if self.send_arp(&req) {
                self.stats.arp_requests += 1;
            }
        }
    }

    /// Gratuitous ARP: announces our address (at start).
    pub fn announce(&mut self) {
        let g = Arp {
            op: ArpOp::Request,
            sender_mac: self.mac,
            sender_ip: self.ip,
            target_mac: MacAddr::default(),
            target_ip: self.ip,
        };
        if self.send_arp(&g) {
            self.stats.arp_requests += 1;
        }
    }

    fn send_arp(&mut self, arp: &Arp) -> bool {
        let Some(mut buf) = self.io.alloc() else {
            self.stats.drop_mempool_empty += 1;
            return false;
        };
        buf.reset(0);
        if !buf.set_len(60) {
            return false;
        }
        let frame = buf.data_mut();
        frame.fill(0);
        arp.emit_frame(frame);
        self.push_frame(buf);
        true
    }

    /// Handles a received ARP frame (Ethernet header included): learns the
    /// sender and answers requests for our address in place (the request's
    /// buffer becomes the reply: no allocation, no copy).
    pub fn handle_arp(&mut self, mut buf: PacketBuf) {
        self.stats.rx_arp += 1;
        let Some(arp) = Arp::parse(&buf.data()[ETH_HEADER_LEN..]) else {
            self.stats.drop_malformed += 1;
            return;
        };
        // Learn only plausible neighbours: unicast, on our subnet, and the
        // frame's own source (a corrupted ARP must not poison the table).
        let plausible = arp.sender_mac.is_unicast()
            && arp.sender_mac == ether::eth_src(buf.data())
            && self.next_hop(arp.sender_ip) == Some(arp.sender_ip)
            && arp.sender_ip != self.ip;
        if arp.sender_ip == self.ip && arp.sender_mac != self.mac {
            // Someone claims our address (spoofing, or a duplicate address):
            // never learned (below), never answered, counted.
            self.stats.arp_spoofed += 1;
        }
        let for_us = arp.target_ip == self.ip;
        if plausible && let Ok(true) = self.resolver.table.learn(arp.sender_ip, arp.sender_mac, self.now_ms, for_us) {
            self.stats.arp_learned += 1;
        }
        if arp.op == ArpOp::Request && for_us && plausible {
            let reply = Arp {
                op: ArpOp::Reply,
                sender_mac: self.mac,
                sender_ip: self.ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            if buf.set_len(ETH_HEADER_LEN + ether::ARP_LEN.max(46)) {
                let frame = buf.data_mut();
                frame.fill(0);
                reply.emit_frame(frame);
                self.push_frame(buf);
                self.stats.arp_replies += 1;
            }
        }
    }

    /// Sends packets whose next hop got resolved; drops those that waited
    /// too long; asks again for the rest.
    pub fn service_pending(&mut self) {
        if !self.resolver.needs_service(self.now_ms) {
            return;
        }
        for _ in 0..self.resolver.pending.len() {
            let Some(mut p) = self.resolver.pending.pop_front() else { break };
            if let Some(n) = self.resolver.table.lookup(p.next_hop, self.now_ms) {
                self.frame_and_push(&mut p.buf, n.mac);
                self.push_frame(p.buf);
                self.stats.arp_resolved_sent += 1;
            } else if self.resolver.expired(p.since_ms, self.now_ms) {
                self.stats.drop_no_neighbor += 1;
            } else {
                self.ask(p.next_hop);
                self.resolver.pending.push_back(p);
            }
        }
    }

    /// Hands the TX batch to the queue; what does not fit stays for the
    /// next iteration. Returns the number sent.
    pub fn flush(&mut self) -> usize {
        if self.tx.is_empty() {
            return 0;
        }
        let total: usize = self.tx.iter().map(|b| b.len()).sum();
        let sent = self.io.tx_batch(&mut self.tx);
        let left: usize = self.tx.iter().map(|b| b.len()).sum();
        if !self.tx.is_empty() {
            self.stats.tx_ring_full += 1;
        }
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += (total - left) as u64;
        if let Some(p) = self.pcap.as_mut() {
            p.flush_now();
        }
        sent
    }

    /// Builds an IP packet of `len` bytes with `f` and sends it; used for
    /// packets the core crafts itself (TIME_WAIT ACKs).
    pub fn build_ip(&mut self, len: usize, f: impl FnOnce(&mut [u8])) {
        let buf = self.io.alloc();
        self.finish_tx(buf, len, f);
    }

    fn finish_tx<R>(&mut self, buf: Option<PacketBuf>, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match buf.filter(|b| len <= b.capacity()) {
            Some(mut buf) => {
                buf.set_len(len);
                let r = f(buf.data_mut());
                self.send_ip(buf);
                r
            }
            None => {
                // No buffer: build into scratch so the caller's state moves
                // on as if sent, and count the loss; TCP retransmits.
                self.stats.drop_mempool_empty += 1;
                let n = len.min(self.scratch.len());
                let mut scratch = std::mem::take(&mut self.scratch);
                let r = f(&mut scratch[..n]);
                self.scratch = scratch;
                r
            }
        }
    }
}

/// Lends the received packet to smoltcp.
pub(crate) struct PortRx(PacketBuf);

impl RxToken for PortRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.data())
    }
}

/// Builds one packet into a mempool buffer.
pub(crate) struct PortTx<'a, P: PacketIo> {
    port: &'a mut Port<P>,
    buf: Option<PacketBuf>,
}

impl<P: PacketIo> TxToken for PortTx<'_, P> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, len: usize, f: F) -> R {
        // The token from `receive` carries no buffer yet (most received
        // packets need no immediate reply): allocate now.
        let buf = self.buf.take().or_else(|| self.port.io.alloc());
        self.port.finish_tx(buf, len, f)
    }
}

impl<P: PacketIo> Device for Port<P> {
    type RxToken<'a>
        = PortRx
    where
        Self: 'a;
    type TxToken<'a>
        = PortTx<'a, P>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(PortRx, PortTx<'_, P>)> {
        let rx = self.rx_current.take()?;
        // A reply (RST, challenge ACK) that finds the batch full is dropped
        // and counted in `push_frame`; TCP recovers.
        Some((PortRx(rx), PortTx { port: self, buf: None }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<PortTx<'_, P>> {
        if self.tx.len() + 1 > self.tx_cap {
            return None;
        }
        match self.io.alloc() {
            Some(buf) => Some(PortTx { port: self, buf: Some(buf) }),
            None => {
                self.stats.drop_mempool_empty += 1;
                None
            }
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = None;
        // The stack settles IPv4 and TCP checksums itself, at the edge
        // (`crate::csum`): the NIC's offload or its own code, after every
        // rewrite of a segment. smoltcp computes and verifies neither;
        // ICMP and UDP stay its own.
        caps.checksum.ipv4 = Checksum::None;
        caps.checksum.tcp = Checksum::None;
        caps
    }
}

/// Kind of a received frame, after the Ethernet header.
pub(crate) fn frame_kind(frame: &[u8]) -> Option<u16> {
    match ether::ethertype(frame)? {
        t @ (ETHERTYPE_IPV4 | ETHERTYPE_ARP) => Some(t),
        _ => None,
    }
}
