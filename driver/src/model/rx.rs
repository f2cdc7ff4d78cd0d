//! Receive path (82599 datasheet 7.1): from a frame on the wire to a
//! written-back descriptor.
//!
//! Per frame: the MAC checks the length (7.1.1), the L2 filters accept or
//! drop it (FCTRL, RAL/RAH, 7.1.1.1), RSS picks the queue (7.1.2.8), and the
//! DMA engine writes it into the buffers of the descriptors at RDH and
//! writes the descriptors back (7.1.6.2), DD last. A frame whose queue has
//! no free descriptor is dropped (SRRCTL.DROP_EN) or waits in the receive
//! packet buffer, which holds `ModelConfig::rx_fifo_frames` frames; a frame
//! that finds the packet buffer full is missed.

use std::net::Ipv4Addr;
use std::sync::atomic::{Ordering, fence};

use super::PUMP_BATCH;
use super::counters::Cast;
use super::fault::ModelFault;
use super::iommu::{Desc, IommuTable};
use super::packet::{ETH_HLEN, Ipv4, ipv4_header_ok, l4_checksum_ok, parse_ipv4};
use super::state::{RxConf, RxRing, State};
use crate::desc::{field, pkt_type, rss_type, rx_status};
use crate::regs::{self, fctrl, mrqc, srrctl};

/// Shortest frame (without FCS) the MAC passes on; shorter frames are padded
/// with zeros first (TAP devices deliver runts that a real wire would have
/// padded).
const MIN_FRAME: usize = 60;

/// What became of a frame offered to the DMA engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Written to the ring.
    Done,
    /// Dropped (and counted, or faulted).
    Dropped,
    /// Its queue has no free descriptor and DROP_EN is clear: it must wait.
    Blocked,
}

/// What the classifier learned about a frame.
#[derive(Debug, Clone, Copy)]
struct Class {
    queue: u16,
    /// `pkt_info`: RSS type (3:0) and packet type (15:4).
    pkt_info: u16,
    /// The RSS field of the write-back: the hash with RXCSUM.PCSD, else the
    /// IP identification (and a zero fragment checksum).
    rss_field: u32,
    /// Checksum status and error bits for the last descriptor.
    csum_status: u32,
}

/// The L2 filters (7.1.1.1): broadcast needs FCTRL.BAM, multicast
/// FCTRL.MPE (the multicast table array is not modelled), unicast a valid
/// RAL/RAH match or FCTRL.UPE. `frame` holds at least an Ethernet header.
#[inline]
fn accept(conf: &RxConf, frame: &[u8], cast: Cast) -> bool {
    let f = conf.fctrl;
    match cast {
        Cast::Broadcast => f & fctrl::BAM != 0,
        Cast::Multicast => f & fctrl::MPE != 0,
        Cast::Unicast => {
            f & fctrl::UPE != 0 || {
                let mut dst = [0u8; 8];
                dst[..6].copy_from_slice(&frame[..6]);
                let dst = u64::from_le_bytes(dst);
                // RAR[0], the station address, first: the usual match.
                conf.rar.first() == Some(&dst) || conf.rar.contains(&dst)
            }
        }
    }
}

impl State {
    /// Retries held transmissions, delivers frames waiting in the packet
    /// buffer, then takes up to [`PUMP_BATCH`] frames from the wire. Returns
    /// frames moved.
    pub(crate) fn pump(&mut self, io: &IommuTable) -> usize {
        let mut moved = 0;
        // Only queues with work left (a refused frame) have anything to
        // retry: every other one was run to its tail (or halted) when TDT
        // was written.
        let mut held = self.tx_pending;
        while held != 0 {
            let q = held.trailing_zeros() as usize;
            held &= held - 1;
            moved += self.transmit(io, q);
        }
        self.drain_rx_fifo(io);
        let Some(mut wire) = self.wire.take() else { return moved };
        let mut buf = std::mem::take(&mut self.rx_buf);
        self.wire_drained = false;
        for _ in 0..PUMP_BATCH {
            if !wire.receive(&mut buf) {
                self.wire_drained = true;
                break;
            }
            moved += 1;
            self.receive_frame(io, &mut buf);
        }
        self.rx_buf = buf;
        // Nothing can attach another wire meanwhile: we hold the lock.
        self.wire = Some(wire);
        moved
    }

    /// One frame (without FCS) arriving at the MAC, from the wire or from
    /// MAC loopback. The buffer is the model's to change (a runt is padded
    /// in place) or to keep (a frame that waits in the packet buffer is
    /// moved there, leaving `frame` empty).
    pub(crate) fn receive_frame(&mut self, io: &IommuTable, frame: &mut Vec<u8>) {
        let conf = self.rx_conf();
        // 8.2.3.8.10: with RXEN clear the receiver takes nothing in.
        if !conf.rxen {
            return;
        }
        if frame.len() < ETH_HLEN {
            self.stats.undersize();
            return;
        }
        if frame.len() > conf.max_frame {
            self.stats.oversize();
            return;
        }
        let cast = Cast::of(frame);
        if !accept(conf, frame, cast) {
            return;
        }
        if frame.len() < MIN_FRAME {
            frame.resize(MIN_FRAME, 0);
        }
        // The packet buffer is a FIFO: while frames wait in it, a new one
        // queues behind them whatever its queue.
        if self.rx_fifo.is_empty() && self.deliver(io, frame, cast, true) != Delivery::Blocked {
            return;
        }
        if self.rx_fifo.len() < self.config.rx_fifo_frames {
            self.rx_fifo.push_back(std::mem::take(frame));
        } else {
            // 8.2.3.23.4: no room in the packet buffer.
            self.stats.missed();
        }
    }

    /// Delivers frames from the head of the packet buffer until one is
    /// blocked.
    pub(crate) fn drain_rx_fifo(&mut self, io: &IommuTable) {
        while let Some(frame) = self.rx_fifo.pop_front() {
            if self.deliver(io, &frame, Cast::of(&frame), false) == Delivery::Blocked {
                self.rx_fifo.push_front(frame);
                break;
            }
        }
    }

    /// Packet type, RSS and checksum status of a frame (7.1.2.8, 7.1.6.2,
    /// 7.1.11) under MRQC and RXCSUM.PCSD.
    fn classify(&mut self, frame: &[u8], mrqc_v: u32, pcsd: bool) -> Class {
        let ip = parse_ipv4(frame);
        // RSS decides the queue only in RSS-only mode, and only with PCSD
        // (the datasheet requires PCSD with RSS; like QEMU's igb the model
        // treats RSS as off without it). Other MRQE modes (VMDq, DCB) are
        // not modelled and behave as no RSS.
        let rss_on = mrqc_v & mrqc::MRQE_MASK == mrqc::RSSEN && pcsd;
        let mut ptype = 0u16;
        let mut csum_status = 0u32;
        let (mut rtype, mut hash) = (rss_type::NONE, 0u32);
        if let Some(ip) = &ip {
            ptype |= pkt_type::IPV4;
            csum_status |= rx_status::IPCS;
            if !ipv4_header_ok(frame, ip) {
                csum_status |= rx_status::ERR_IPE;
            }
            if let Some(l4) = ip.l4 {
                ptype |= if l4.tcp { pkt_type::TCP } else { pkt_type::UDP };
                if let Some(ok) = l4_checksum_ok(frame, ip) {
                    csum_status |= rx_status::L4CS;
                    if !l4.tcp {
                        csum_status |= rx_status::UDPCS;
                    }
                    if !ok {
                        csum_status |= rx_status::ERR_TCPE;
                    }
                }
            }
            if rss_on {
                (rtype, hash) = self.rss_hash(mrqc_v, ip);
            }
        }
        let queue = if rtype == rss_type::NONE { 0 } else { self.reta().queue(hash) };
        let rss_field = match (&ip, pcsd) {
            (_, true) => hash,
            (Some(ip), false) => u32::from(ip.id),
            (None, false) => 0,
        };
        Class { queue, pkt_info: rtype | ptype, rss_field, csum_status }
    }

    /// The RSS type and hash of an IPv4 packet under MRQC's field selection
    /// (7.1.2.8.1): TCP or UDP 4-tuple when selected and the packet is not
    /// a fragment, else the address pair when IPv4 is selected.
    fn rss_hash(&mut self, mrqc_v: u32, ip: &Ipv4) -> (u16, u32) {
        let (src, dst) = (Ipv4Addr::from(ip.src), Ipv4Addr::from(ip.dst));
        if let Some(l4) = ip.l4 {
            let (sel, t) =
                if l4.tcp { (mrqc::IPV4_TCP, rss_type::TCP_IPV4) } else { (mrqc::IPV4_UDP, rss_type::UDP_IPV4) };
            if mrqc_v & sel != 0 {
                return (t, self.toeplitz().hash_ipv4_ports(src, dst, l4.src_port, l4.dst_port));
            }
        }
        if mrqc_v & mrqc::IPV4 != 0 {
            return (rss_type::IPV4, self.toeplitz().hash_ipv4(src, dst));
        }
        (rss_type::NONE, 0)
    }

    /// Writes a frame into its queue's ring (7.1.6). `first` is false when
    /// the frame is retried from the packet buffer (RNBC counts it once).
    fn deliver(&mut self, io: &IommuTable, frame: &[u8], cast: Cast, first: bool) -> Delivery {
        let conf = self.rx_conf();
        let (mrqc, pcsd, strip) = (conf.mrqc, conf.pcsd, conf.strip);
        let class = self.classify(frame, mrqc, pcsd);
        let q = usize::from(class.queue);
        let ring = self.rx[q];
        if !ring.enabled || ring.faulted {
            // A queue that is off (or halted by a fault) drops its frames.
            self.stats.queue_drop(class.queue);
            return Delivery::Dropped;
        }
        let srr = self.reg(regs::SRRCTL(q as u32));
        let bsizepkt = srr & srrctl::BSIZEPKT_MASK;
        if bsizepkt == 0 || bsizepkt > 16 {
            self.fault(ModelFault::BadBufferSize { queue: class.queue, bsizepkt });
            return Delivery::Dropped;
        }
        let bsize = (bsizepkt << srrctl::BSIZEPKT_SHIFT) as usize;
        if strip {
            return self.write_frame(io, &class, ring, srr, bsize, (frame, cast), frame, first);
        }
        // With CRC stripping off the FCS lands in host memory too: the frame
        // and its FCS are put together in a scratch buffer kept for that.
        let mut with_fcs = std::mem::take(&mut self.rx_fcs_scratch);
        with_fcs.clear();
        with_fcs.extend_from_slice(frame);
        with_fcs.extend_from_slice(&super::packet::ethernet_fcs(frame));
        let done = self.write_frame(io, &class, ring, srr, bsize, (frame, cast), &with_fcs, first);
        self.rx_fcs_scratch = with_fcs;
        done
    }

    /// Writes `data` (the frame, with its FCS when it is not stripped) into
    /// the buffers of the descriptors at RDH of `ring`, of `bsize` bytes
    /// each, and writes them back; counts `frame` (of kind `cast`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn write_frame(
        &mut self,
        io: &IommuTable,
        class: &Class,
        ring: RxRing,
        srr: u32,
        bsize: usize,
        (frame, cast): (&[u8], Cast),
        data: &[u8],
        first: bool,
    ) -> Delivery {
        let q = u32::from(class.queue);
        // One buffer, the usual case, without a division.
        let needed = if data.len() <= bsize { 1 } else { data.len().div_ceil(bsize) as u32 };
        let (rdh, rdt) = (regs::RDH(q), regs::RDT(q));
        let (head, entries) = (self.reg(rdh), ring.entries);
        // An enabled ring that no fault halted has RDH and RDT inside it:
        // checked when it was enabled and on every tail write, and the
        // model moves RDH only within it (a head written while enabled
        // halts the queue).
        debug_assert!(head < entries && self.reg(rdt) < entries);
        if ring_distance(head, self.reg(rdt), entries) < needed {
            if first {
                self.stats.no_buffer();
            }
            if srr & srrctl::DROP_EN != 0 {
                self.stats.queue_drop(class.queue);
                return Delivery::Dropped;
            }
            return Delivery::Blocked;
        }
        // 7.1.6.2 write-back fields other than the status.
        let info = u64::from(class.pkt_info) | u64::from(class.rss_field) << 32;
        // The descriptors' contents are visible: the driver wrote them
        // before the RDT write that handed them over, and that write went
        // through the model's lock.
        if needed == 1 {
            // The common case: one buffer, one descriptor, each translated
            // once for the check and the write.
            let desc = ring.base + 16 * u64::from(head);
            let memos = &mut self.rx[usize::from(class.queue)];
            let d = io.desc_with(&mut memos.desc_memo, desc);
            let pkt_addr = d.load_u64(field::RX_PKT_ADDR);
            // The device may write up to the full buffer size (SRRCTL), so
            // all of it must be mapped.
            let buf = pkt_addr.and_then(|a| io.buffer_with(&mut memos.buf_memo, a, bsize));
            let Some(pkt_addr) = pkt_addr else {
                let what = "rx descriptor ring";
                self.fault(ModelFault::DmaOutOfBounds { addr: desc, len: 16, what, queue: class.queue });
                return Delivery::Dropped;
            };
            let Some(buf) = buf else {
                let what = "rx packet buffer";
                self.fault(ModelFault::DmaOutOfBounds { addr: pkt_addr, len: bsize, what, queue: class.queue });
                return Delivery::Dropped;
            };
            buf.write(data);
            write_back(&d, info, data.len(), rx_status::EOP | class.csum_status);
        } else if !self.write_chained(io, class, ring, head, needed, bsize, data, info) {
            return Delivery::Dropped;
        }
        let next = head + needed;
        self.set_ring_reg(rdh, if next >= entries { next - entries } else { next });
        self.stats.received(class.queue, cast, frame.len(), data.len());
        Delivery::Done
    }

    /// [`write_frame`](Self::write_frame) for a frame that spans `needed`
    /// descriptors from `head`: every descriptor and buffer is checked
    /// before anything is written, so a bad one never leaves half a packet
    /// in the ring. False (with the fault recorded) if one is bad.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn write_chained(
        &mut self,
        io: &IommuTable,
        class: &Class,
        ring: RxRing,
        head: u32,
        needed: u32,
        bsize: usize,
        data: &[u8],
        info: u64,
    ) -> bool {
        // `head + i` stays below twice the ring size: `needed` descriptors
        // are owned by the device, fewer than the ring holds.
        let desc_at = |i: u32| {
            let slot = head + i;
            ring.base + 16 * u64::from(if slot >= ring.entries { slot - ring.entries } else { slot })
        };
        for i in 0..needed {
            let desc = desc_at(i);
            let Some(pkt_addr) = io.desc(desc).load_u64(field::RX_PKT_ADDR) else {
                let what = "rx descriptor ring";
                self.fault(ModelFault::DmaOutOfBounds { addr: desc, len: 16, what, queue: class.queue });
                return false;
            };
            // The device may write up to the full buffer size (SRRCTL), so
            // all of it must be mapped.
            if io.buffer(pkt_addr, bsize).is_none() {
                let what = "rx packet buffer";
                self.fault(ModelFault::DmaOutOfBounds { addr: pkt_addr, len: bsize, what, queue: class.queue });
                return false;
            }
        }
        for (i, chunk) in data.chunks(bsize).enumerate() {
            let d = io.desc(desc_at(i as u32));
            let pkt_addr = d.load_u64(field::RX_PKT_ADDR).unwrap_or(0);
            // Checked in the loop above; an unmapped one writes nothing.
            let Some(buf) = io.buffer(pkt_addr, bsize) else { continue };
            buf.write(chunk);
            // EOP and the checksum status only on the last descriptor.
            let status = if i as u32 + 1 == needed { rx_status::EOP | class.csum_status } else { 0 };
            write_back(&d, info, chunk.len(), status);
        }
        true
    }
}

/// 7.1.6.2 write-back of one descriptor, in the order QEMU's igb uses:
/// every field with DD clear first, then DD behind a release fence, so a
/// driver that sees DD (and fences acquire) sees the rest and the data.
#[inline(always)]
fn write_back(d: &Desc<'_>, info: u64, len: usize, status: u32) {
    d.store_u64(field::RX_WB_INFO, info);
    d.store_u32(field::RX_WB_LENGTH_VLAN, len as u32);
    d.store_u32(field::RX_WB_STATUS_ERROR, status);
    // Release: the packet data and the fields above before DD.
    fence(Ordering::Release);
    d.store_u32(field::RX_WB_STATUS_ERROR, status | rx_status::DD);
}

/// Descriptors the device owns from `head` to `tail` in a ring of
/// `entries`, both inside the ring: `owned` without its division.
#[inline(always)]
fn ring_distance(head: u32, tail: u32, entries: u32) -> u32 {
    if tail >= head { tail - head } else { tail + entries - head }
}
