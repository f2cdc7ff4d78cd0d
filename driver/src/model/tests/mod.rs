//! Tests of the model, driving it through its registers and DMA memory the
//! way a driver would, with small helpers that set queues up by hand (no
//! driver code involved). Frames are built and checksummed with the
//! testkit's frames (smoltcp's wire types), independent of the model's code;
//! only bytes cross between them (the testkit links its own copy of this
//! crate).

mod board;
mod concurrency;
mod dirty;
mod faults;
mod idle;
mod init_order;
mod iova;
mod offload;
mod regs;
mod rx;
mod tx;
mod writeback;

use std::net::Ipv4Addr;

use super::{Model82599, ModelConfig, ModelDma, ModelFault, ModelRegs};
use crate::desc::{AdvRxWriteback, AdvTxRead, DESC_SIZE};
use crate::dma::{DmaAllocator, DmaRegion};
use crate::io::RegisterIo;
use crate::regs as r;
use crate::wire::{QueueWire, Wire};
use ixtcp_testkit::frames::{self, ACK, PSH, TcpSeg, UdpDatagram};

pub(super) const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
pub(super) const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// A model plugged into one end of a queue wire, the test holding the other.
pub(super) struct Rig {
    pub model: Model82599,
    pub regs: ModelRegs,
    pub dma: ModelDma,
    pub peer: QueueWire,
}

impl Rig {
    pub fn new() -> Rig {
        Rig::with_config(ModelConfig::default())
    }

    pub fn with_config(config: ModelConfig) -> Rig {
        let model = Model82599::new(config);
        let (port, peer) = QueueWire::pair();
        model.attach(Box::new(port));
        Rig { regs: model.regs(), dma: model.dma(), model, peer }
    }

    pub fn rd(&self, offset: u32) -> u32 {
        self.regs.read32(offset)
    }

    pub fn wr(&self, offset: u32, value: u32) {
        self.regs.write32(offset, value)
    }

    /// The global part of an ixy-style init: reset, CRC strip on both
    /// sides, the bits 4.6.7 requires (CTRL_EXT.NS_DIS, RDRXCTL RSCACKC and
    /// FCOE_WRFIX), accept broadcast, receive and transmit enabled.
    pub fn init(&self) {
        self.reset();
        self.regs.set_bits(r::HLREG0, r::hlreg0::RXCRCSTRP | r::hlreg0::TXPADEN);
        self.regs.set_bits(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
        self.rx_required_bits();
        self.regs.set_bits(r::FCTRL, r::fctrl::BAM);
        self.wr(r::DMATXCTL, r::dmatxctl::TE);
        self.enable_rx();
    }

    /// The bits 4.6.7 requires before RXEN: CTRL_EXT.NS_DIS, RDRXCTL
    /// RSCACKC and FCOE_WRFIX (RSCFRSTSIZE resets to 0).
    pub fn rx_required_bits(&self) {
        self.regs.set_bits(r::RDRXCTL, r::rdrxctl::RSCACKC | r::rdrxctl::FCOE_WRFIX);
        self.regs.set_bits(r::CTRL_EXT, r::ctrl_ext::NS_DIS);
    }

    /// A global reset as the datasheet wants it: receive and every queue
    /// stopped, PCIe master disabled, then 1 ms (on the model's clock) of
    /// silence after CTRL.RST.
    pub fn reset(&self) {
        self.regs.clear_bits(r::RXCTRL, r::rxctrl::RXEN);
        for q in 0..u32::from(r::MAX_QUEUES) {
            self.regs.clear_bits(r::RXDCTL(q), r::dctl::ENABLE);
            self.regs.clear_bits(r::TXDCTL(q), r::dctl::ENABLE);
        }
        self.regs.set_bits(r::CTRL, r::ctrl::GIO_DIS);
        assert_eq!(self.rd(r::STATUS) & r::status::GIO, 0);
        self.regs.set_bits(r::CTRL, r::ctrl::RST_MASK);
        self.regs.delay(std::time::Duration::from_millis(1));
    }

    /// RXCTRL.RXEN set with the receive-enable erratum sequence.
    pub fn enable_rx(&self) {
        self.regs.set_bits(r::SECRXCTRL, r::secrxctrl::RX_DIS);
        while self.rd(r::SECRXSTAT) & r::secrxstat::SECRX_RDY == 0 {}
        self.regs.set_bits(r::RXCTRL, r::rxctrl::RXEN);
        self.regs.clear_bits(r::SECRXCTRL, r::secrxctrl::RX_DIS);
    }

    /// RSS over `queues` queues with `key`, TCP/IPv4 and IPv4 hashing.
    pub fn enable_rss(&self, key: &crate::rss::RssKey, queues: u16) {
        self.regs.set_bits(r::RXCSUM, r::rxcsum::PCSD);
        for i in 0..10 {
            self.wr(r::RSSRK(i), crate::rss::rssrk_register(key, i as usize));
        }
        let reta = crate::rss::Reta::round_robin(queues);
        for i in 0..32 {
            self.wr(r::RETA(i), reta.register(i as usize));
        }
        self.wr(r::MRQC, r::mrqc::RSSEN | r::mrqc::IPV4 | r::mrqc::IPV4_TCP | r::mrqc::IPV4_UDP);
    }

    /// Sends `frame` from the peer and pumps it in.
    pub fn inject(&mut self, frame: &[u8]) -> usize {
        self.peer.transmit(frame).unwrap();
        self.model.pump()
    }

    /// The next frame the model put on the wire.
    pub fn sent(&mut self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        self.peer.receive(&mut buf).then_some(buf)
    }

    pub fn faults(&self) -> Vec<ModelFault> {
        self.model.faults()
    }

    pub fn assert_no_faults(&self) {
        assert_eq!(self.model.faults(), vec![]);
    }

    /// Allocates a receive ring of `entries` with one `buf_size` buffer per
    /// descriptor, programs queue `q` (advanced one-buffer, DROP_EN) and
    /// enables it with the whole ring given to the device (RDT = N - 1).
    pub fn rx_queue(&self, q: u32, entries: u32, buf_kib: u32) -> Rx {
        let rx = Rx::alloc(&self.dma, q, entries, buf_kib);
        self.program_rx(&rx, r::srrctl::DROP_EN);
        self.wr(r::RXDCTL(q), r::dctl::ENABLE);
        self.wr(r::RDT(q), entries - 1);
        rx
    }

    /// Writes the ring registers and SRRCTL for `rx` and clears the
    /// reserved bit 12 of DCA_RXCTRL, without enabling.
    pub fn program_rx(&self, rx: &Rx, extra_srrctl: u32) {
        let q = rx.q;
        self.regs.clear_bits(r::DCA_RXCTRL(q), r::dca_rxctrl::RESERVED_BIT12);
        self.wr(r::SRRCTL(q), r::srrctl::DESCTYPE_ADV_ONEBUF | rx.buf_kib | extra_srrctl);
        self.wr(r::RDBAL(q), rx.ring.iova() as u32);
        self.wr(r::RDBAH(q), (rx.ring.iova() >> 32) as u32);
        self.wr(r::RDLEN(q), rx.entries * DESC_SIZE as u32);
        self.wr(r::RDH(q), 0);
        self.wr(r::RDT(q), 0);
    }

    /// Allocates and enables transmit queue `q` with `entries` descriptors
    /// and a 2 KiB buffer per descriptor.
    pub fn tx_queue(&self, q: u32, entries: u32) -> Tx {
        let ring = self.dma.alloc(entries as usize * DESC_SIZE).unwrap();
        let bufs = self.dma.alloc(entries as usize * 2048).unwrap();
        self.wr(r::TDBAL(q), ring.iova() as u32);
        self.wr(r::TDBAH(q), (ring.iova() >> 32) as u32);
        self.wr(r::TDLEN(q), entries * DESC_SIZE as u32);
        self.wr(r::TDH(q), 0);
        self.wr(r::TDT(q), 0);
        self.wr(r::TXDCTL(q), r::dctl::ENABLE);
        Tx { q, ring, bufs, entries, next: 0 }
    }
}

/// Reads bytes from a region through aligned word loads (no unsafe in
/// tests). The hosts this runs on are little-endian.
pub(super) fn read_bytes(region: &DmaRegion, off: usize, len: usize) -> Vec<u8> {
    (off..off + len).map(|i| (region.load_u32(i & !3) >> (8 * (i & 3))) as u8).collect()
}

/// Writes bytes into a region through aligned word read-modify-writes.
pub(super) fn write_bytes(region: &DmaRegion, off: usize, data: &[u8]) {
    for (k, &b) in data.iter().enumerate() {
        let i = off + k;
        let shift = 8 * (i & 3);
        let w = region.load_u32(i & !3);
        region.store_u32(i & !3, (w & !(0xFF << shift)) | (u32::from(b) << shift));
    }
}

/// A receive queue set up by hand.
pub(super) struct Rx {
    pub q: u32,
    pub ring: DmaRegion,
    pub bufs: DmaRegion,
    pub entries: u32,
    pub buf_kib: u32,
}

impl Rx {
    pub fn alloc(dma: &ModelDma, q: u32, entries: u32, buf_kib: u32) -> Rx {
        let ring = dma.alloc(entries as usize * DESC_SIZE).unwrap();
        let bufs = dma.alloc(entries as usize * buf_kib as usize * 1024).unwrap();
        let rx = Rx { q, ring, bufs, entries, buf_kib };
        for i in 0..entries {
            rx.arm(i);
        }
        rx
    }

    pub fn buf_size(&self) -> usize {
        self.buf_kib as usize * 1024
    }

    /// Gives descriptor `i` its buffer again (read format, DD clear).
    pub fn arm(&self, i: u32) {
        let at = i as usize * DESC_SIZE;
        self.ring.store_u64(at, self.bufs.iova() + (i as usize * self.buf_size()) as u64);
        self.ring.store_u64(at + 8, 0);
    }

    pub fn desc(&self, i: u32) -> AdvRxWriteback {
        let bytes = read_bytes(&self.ring, i as usize * DESC_SIZE, DESC_SIZE);
        AdvRxWriteback::from_bytes(&bytes.try_into().unwrap())
    }

    pub fn data(&self, i: u32, len: usize) -> Vec<u8> {
        read_bytes(&self.bufs, i as usize * self.buf_size(), len)
    }
}

/// A transmit queue set up by hand; `next` is the next free descriptor.
pub(super) struct Tx {
    pub q: u32,
    pub ring: DmaRegion,
    pub bufs: DmaRegion,
    pub entries: u32,
    pub next: u32,
}

impl Tx {
    /// Writes descriptor `i`.
    pub fn put(&self, i: u32, d: AdvTxRead) {
        let at = i as usize * DESC_SIZE;
        self.ring.store_u64(at, d.buffer_addr);
        self.ring.store_u32(at + 8, d.cmd_type_len);
        self.ring.store_u32(at + 12, d.olinfo_status);
    }

    /// The device address of descriptor `i`'s buffer, after copying `data`
    /// into it.
    pub fn fill(&self, i: u32, data: &[u8]) -> u64 {
        write_bytes(&self.bufs, i as usize * 2048, data);
        self.bufs.iova() + u64::from(i) * 2048
    }

    /// The status word (bytes 12..16) of descriptor `i`.
    pub fn status(&self, i: u32) -> u32 {
        self.ring.load_u32(i as usize * DESC_SIZE + 12)
    }

    /// Queues `frame` as one data descriptor (EOP, RS) and writes TDT.
    pub fn send(&mut self, rig: &Rig, frame: &[u8]) -> u32 {
        let i = self.next;
        let addr = self.fill(i, frame);
        self.put(i, AdvTxRead::data(addr, frame.len() as u16));
        self.next = (i + 1) % self.entries;
        rig.wr(r::TDT(self.q), self.next);
        i
    }
}

/// An Ethernet/IPv4/TCP (or UDP) frame from `PEER_MAC` to `dst_mac` with
/// correct checksums, built with the testkit's frames (smoltcp's wire
/// types, independent of the model's code). The IP identification is
/// 0x1234; the TCP segment is PSH|ACK with sequence number 1 and a full
/// window.
pub(super) fn ipv4_frame(
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    udp: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = if udp {
        let d = UdpDatagram { src: src.0, dst: dst.0, sport: src.1, dport: dst.1, payload };
        frames::udp_frame(dst_mac, PEER_MAC, &d)
    } else {
        let seg = TcpSeg {
            src: src.0,
            dst: dst.0,
            sport: src.1,
            dport: dst.1,
            seq: 1,
            ack: 0,
            flags: PSH | ACK,
            window: 0xFFFF,
            payload,
        };
        frames::ethernet(dst_mac, PEER_MAC, frames::ETHERTYPE_IPV4, &frames::tcp_ip(&seg))
    };
    frames::set_ipv4_ident(&mut f, 0x1234);
    f
}

/// A TCP/IPv4 frame to the model's MAC.
pub(super) fn tcp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    ipv4_frame(MAC, src, dst, false, payload)
}

pub(super) fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

/// A non-IP frame (an ARP-sized runt of 42 bytes, bytes 1 to 28 after the
/// ARP EtherType) to `dst`.
pub(super) fn runt(dst: [u8; 6]) -> Vec<u8> {
    let body: Vec<u8> = (1..=28).collect();
    frames::ethernet(dst, PEER_MAC, frames::ETHERTYPE_ARP, &body)
}
