//! The link layer of one core: its queue pair (behind the [`Pcap`]
//! wrapper), the TX batch, its addresses and next hop, and the one path
//! every IPv4 packet takes out ([`Port::send_ip`]).
//!
//! - Transmit builds the IP packet straight into a mempool buffer at its
//!   default headroom (smoltcp through `crate::phy`, or the core's own
//!   crafted segments through [`Port::build_ip`]); `send_ip` then reads
//!   its TCP headers once, applies the connection's sequence mapping
//!   (`crate::workaround`) and records what it sent (`crate::sent`),
//!   settles its checksums (`crate::csum`, after the last rewrite), writes
//!   the Ethernet header into the headroom (`prepend(14)`) for the next
//!   hop (the gateway when off-subnet) and appends the buffer to the TX
//!   batch, which the core hands to the queue with one `tx_batch` per loop
//!   iteration ([`Port::flush`]).
//! - A packet whose next hop is not yet resolved waits in the resolver's
//!   bounded queue while an ARP request goes out (`crate::arp`).
//! - A full TX batch drops and counts (`drop_ring_full`); an empty mempool
//!   builds into a scratch buffer and counts (`drop_mempool_empty`), so the
//!   caller's state moves on as if sent and TCP retransmits.

use std::net::Ipv4Addr;

use ixtcp_driver::mempool::PacketBuf;
use smoltcp::time::Instant;

use crate::csum::{self, TxCsum};
use crate::ether::{self, ETH_HEADER_LEN, ETHERTYPE_IPV4, IPPROTO_TCP, Ipv4Packet, MacAddr, TcpHeader};
use crate::io::PacketIo;
use crate::neighbor::Resolver;
use crate::pcap::{Pcap, PcapFile};
use crate::sent::Sent;
use crate::stats::CoreStats;
use crate::workaround::SeqMap;

/// The link layer and packet I/O of one core.
pub(crate) struct Port<P: PacketIo> {
    pub io: Pcap<P>,
    pub tx: Vec<PacketBuf>,
    pub tx_cap: usize,
    pub resolver: Resolver,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    mask: u32,
    gateway: Option<Ipv4Addr>,
    pub mtu: usize,
    pub stats: CoreStats,
    /// Where a reply is built when no buffer is free, to be dropped.
    scratch: Vec<u8>,
    pub now: Instant,
    pub now_ms: u64,
    /// Leave checksums to the NIC (`checksum_offload` and the I/O has it).
    pub csum_offload: bool,
}

/// The per-connection state a segment smoltcp sends for a connection
/// updates as it leaves: its sequence mapping and its record of what was
/// sent.
pub(crate) struct ConnTx<'a> {
    pub seq: &'a mut SeqMap,
    pub sent: &'a mut Sent,
}

impl ConnTx<'_> {
    /// The same borrows, for a shorter while.
    pub fn reborrow(&mut self) -> ConnTx<'_> {
        ConnTx { seq: &mut *self.seq, sent: &mut *self.sent }
    }
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
    /// A port over `io`, capturing into `pcap` if given; `csum_offload`
    /// asks for the NIC's checksum offload, used only if `io` has it.
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
            io: Pcap::new(io, pcap),
            tx: Vec::with_capacity(tx_cap),
            tx_cap,
            resolver,
            mac: addr.mac,
            ip: addr.ip,
            mask: u32::from(addr.netmask),
            gateway: addr.gateway,
            mtu: addr.mtu,
            stats: CoreStats::default(),
            scratch: vec![0; addr.mtu + ETH_HEADER_LEN],
            now: Instant::from_micros(0),
            now_ms: 0,
            csum_offload,
        }
    }

    /// Sets the clock the port (and its capture) reads.
    pub fn set_time(&mut self, now: Instant, now_ms: u64) {
        self.now = now;
        self.now_ms = now_ms;
        self.io.set_now(now);
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
        self.tx.push(buf);
    }

    /// Sends an IP packet (built at the buffer's headroom): for a
    /// connection's segment (`conn`), maps its sequence number and records
    /// it; then settles its checksums and writes the Ethernet header for
    /// the next hop, or parks it for ARP.
    pub fn send_ip(&mut self, mut buf: PacketBuf, conn: Option<ConnTx<'_>>) {
        let (dst, h) = match Ipv4Packet::new_checked(buf.data()) {
            // Only a connection's segments are looked into.
            Ok(p) if conn.is_some() && p.protocol() == IPPROTO_TCP => (p.dst(), TcpHeader::from_ipv4(&p).ok()),
            Ok(p) => (p.dst(), None),
            Err(_) => return,
        };
        if let Some(conn) = conn
            && let Some(mut h) = h
        {
            let swallow = conn.seq.outgoing(buf.data_mut(), &mut h);
            if conn.sent.record(&h) {
                self.stats.tcp_retransmits += 1;
            }
            if swallow {
                return;
            }
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
                self.frame_and_push(buf, n.mac);
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

    /// Writes the Ethernet header of an IPv4 packet for `dst` into the
    /// buffer's headroom and appends the frame to the TX batch.
    pub fn frame_and_push(&mut self, mut buf: PacketBuf, dst: MacAddr) {
        let src = self.mac;
        if let Some(h) = buf.prepend(ETH_HEADER_LEN).and_then(|h| h.first_chunk_mut()) {
            ether::write_eth_header(h, dst, src, ETHERTYPE_IPV4);
        }
        self.push_frame(buf);
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
        sent
    }

    /// Drops every frame not yet sent (the end of shutdown).
    pub fn discard_tx(&mut self) {
        self.tx.clear();
        self.io.batch_discarded();
    }

    /// Builds an IP packet of `len` bytes with `f` and sends it; used for
    /// packets the core crafts itself (TIME_WAIT ACKs, challenge ACKs,
    /// keep-alive probes, cookie SYN-ACKs).
    pub fn build_ip(&mut self, len: usize, f: impl FnOnce(&mut [u8])) {
        let buf = self.io.alloc();
        self.finish_tx(buf, len, None, f);
    }

    /// Builds a packet of `len` bytes with `f` into `buf` and sends it
    /// (for `conn`, if a connection's); without a buffer (or one too
    /// small), into scratch, counted as a loss.
    pub fn finish_tx<R>(
        &mut self,
        buf: Option<PacketBuf>,
        len: usize,
        conn: Option<ConnTx<'_>>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        match buf.filter(|b| len <= b.capacity()) {
            Some(mut buf) => {
                buf.set_len(len);
                let r = f(buf.data_mut());
                self.send_ip(buf, conn);
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
