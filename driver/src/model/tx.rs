//! Transmit path (82599 datasheet 7.2): from descriptors between TDH and TDT
//! to frames on the wire.
//!
//! A TDT write runs this synchronously (so does enabling a queue or
//! DMATXCTL.TE, and `pump`, which retries a frame the wire refused as
//! busy). Advanced context descriptors fill one of the queue's two context
//! slots; advanced data descriptors are gathered up to EOP, then the
//! checksum offloads the first data descriptor asked for are applied, short
//! frames are padded (HLREG0.TXPADEN) and the frame goes to the wire, or
//! back into the receive path with MAC loopback (HLREG0.LPBK).
//!
//! DD is written back into data descriptors once their buffers have been
//! read, as TXDCTL.WTHRESH says: per descriptor with RS (WTHRESH 0), or in
//! bursts of WTHRESH descriptors whatever their RS bits, with no timer
//! flush (see `write_back`). A frame the wire refuses as busy stays in the
//! transmit packet buffer (its descriptors are done) and the queue fetches
//! nothing more until it has gone out.

use std::sync::atomic::{Ordering, fence};

use super::counters::Cast;
use super::fault::ModelFault;
use super::iommu::{Desc, IommuTable};
use super::offload;
use super::state::{State, TxContext, TxRing};
use crate::desc::{field, tx_cmd, tx_olinfo};
use crate::regs::{self, hlreg0};
use crate::wire::WireError;

/// Shortest frame without FCS after padding (64 bytes with FCS).
const MIN_FRAME: usize = 60;
/// The shortest packet the 82599 takes: PAYLEN in the data descriptor must
/// be at least 17 (Linux pads every frame to 17 bytes for this reason
/// before it reaches the ring).
const MIN_SENDABLE: usize = 17;

/// What a run over a queue's descriptors reads once: the registers that
/// only a register write (which cannot happen during the run) changes.
#[derive(Clone, Copy)]
struct Run {
    hlreg0: u32,
    /// [`State::max_frame`].
    max_frame: usize,
    /// TXDCTL.WTHRESH of the queue.
    wthresh: u32,
}

/// What one descriptor did to the queue.
enum Step {
    /// Go on with the next descriptor.
    Next,
    /// A whole packet is ready in the queue's `partial.data`; the number
    /// of bytes fetched from host memory for it.
    Packet(usize),
    /// A fault halted the queue.
    Halt,
}

impl State {
    /// Processes queue `q`'s descriptors from TDH to TDT; returns frames
    /// sent.
    pub(crate) fn transmit(&mut self, io: &IommuTable, q: usize) -> usize {
        let sent = self.run_queue(io, q);
        if sent != 0 {
            // The burst is complete: the wire hands it on.
            if let Some(wire) = self.wire.as_mut() {
                wire.flush();
            }
        }
        // Only a held frame is left to do once the queue has run.
        let bit = 1u128 << q;
        if self.tx[q].held.is_some() {
            self.tx_pending |= bit
        } else {
            self.tx_pending &= !bit
        }
        sent
    }

    fn run_queue(&mut self, io: &IommuTable, q: usize) -> usize {
        if self.reg(regs::DMATXCTL) & regs::dmatxctl::TE == 0 {
            return 0;
        }
        let run = Run {
            hlreg0: self.reg(regs::HLREG0),
            max_frame: self.max_frame(),
            wthresh: (self.reg(regs::TXDCTL(q as u32)) & regs::dctl::WTHRESH_MASK) >> 16,
        };
        let (tdh, tdt) = (regs::TDH(q as u32), regs::TDT(q as u32));
        let mut sent = 0;
        // A frame the wire refused last time goes first (on a queue that
        // still runs).
        let ring = &mut self.tx[q];
        let runs = ring.enabled && !ring.faulted;
        if let Some(frame) = ring.held.take_if(|_| runs) {
            // Nothing was fetched while it was held: no packet was being
            // gathered, and the frame goes out from the gathering buffer.
            ring.partial.data = frame;
            let host_bytes = ring.held_host_bytes;
            if !self.send(io, q, run, host_bytes, &mut sent) {
                return sent;
            }
        }
        // Nothing in the run writes TDT (only software does, and it waits
        // for the lock), and only the run writes TDH: both are read once.
        let (mut head, tail) = (self.reg(tdh), self.reg(tdt));
        loop {
            let ring = &self.tx[q];
            if !ring.enabled || ring.faulted {
                return sent;
            }
            let (base, entries) = (ring.base, ring.entries);
            if head == tail {
                return sent;
            }
            let step = self.step(io, q, run, base + 16 * u64::from(head), head);
            if matches!(step, Step::Halt) {
                return sent;
            }
            // TDH stays inside the ring: checked when the queue was enabled
            // and moved only here (a write while enabled halts the queue).
            head = if head + 1 == entries { 0 } else { head + 1 };
            self.set_ring_reg(tdh, head);
            if let Step::Packet(host_bytes) = step
                && !self.send(io, q, run, host_bytes, &mut sent)
            {
                return sent;
            }
        }
    }

    /// Puts the finished frame in the queue's `partial.data` on the wire
    /// (or into the receive path with MAC loopback), counting it in `sent`;
    /// false when the wire refused it as busy and it is held (nothing more
    /// is fetched then). The wire takes the frame's buffer itself and
    /// leaves another in its place, which gathers the next packet.
    #[inline(always)]
    fn send(&mut self, io: &IommuTable, q: usize, run: Run, host_bytes: usize, sent: &mut usize) -> bool {
        let State { wire, tx, stats, .. } = self;
        let frame = &mut tx[q].partial.data;
        let (cast, len) = (Cast::of(frame), frame.len());
        if run.hlreg0 & hlreg0::LPBK != 0 {
            stats.transmitted(q as u16, cast, len, host_bytes);
            let mut frame = std::mem::take(frame);
            self.receive_frame(io, &mut frame);
            self.tx[q].partial.data = frame;
            *sent += 1;
            return true;
        }
        let result = match wire.as_mut() {
            // The frame moves onto the wire as it is, without another copy.
            Some(wire) => wire.transmit_buf(frame),
            // No cable: the frame leaves the MAC and is lost.
            None => Ok(()),
        };
        match result {
            Ok(()) => stats.transmitted(q as u16, cast, len, host_bytes),
            Err(WireError::Busy) => {
                let ring = &mut tx[q];
                (ring.held, ring.held_host_bytes) = (Some(std::mem::take(&mut ring.partial.data)), host_bytes);
                return false;
            }
            // The wire dropped it (too long for it, or its OS side failed):
            // as a frame lost on the line, not counted as sent.
            Err(_) => {}
        }
        *sent += 1;
        true
    }

    /// Processes the descriptor at device address `desc`, ring index `index`.
    fn step(&mut self, io: &IommuTable, q: usize, run: Run, desc: u64, index: u32) -> Step {
        let queue = q as u16;
        // The descriptor is visible: the driver wrote it before the TDT
        // write that handed it over, and that write went through the lock.
        let d = io.desc_with(&mut self.tx[q].desc_memo, desc);
        let words = (
            d.load_u64(field::TX_BUFFER_ADDR),
            d.load_u32(field::TX_CMD_TYPE_LEN),
            d.load_u32(field::TX_OLINFO_STATUS),
        );
        let (Some(addr), Some(cmd), Some(olinfo)) = words else {
            self.fault(ModelFault::DmaOutOfBounds { addr: desc, len: 16, what: "tx descriptor ring", queue });
            return Step::Halt;
        };
        let dtyp = (cmd & tx_cmd::DTYP_MASK) >> 20;
        if cmd & tx_cmd::DEXT == 0 {
            // Legacy descriptors (7.2.3.2.2) are not supported.
            self.fault(ModelFault::UnknownDescriptorType { queue, dtyp: 0x100 | dtyp });
            return Step::Halt;
        }
        let bad = |reason| ModelFault::BadTxDescriptor { queue, index, reason };
        match cmd & tx_cmd::DTYP_MASK {
            tx_cmd::DTYP_CTXT => {
                // 7.2.3.2.3: a context descriptor; `addr` holds
                // vlan_macip_lens (low word), `olinfo` mss_l4len_idx.
                if self.tx[q].partial.started {
                    self.fault(bad("context descriptor between the data descriptors of one packet"));
                    return Step::Halt;
                }
                let idx = ((olinfo >> tx_olinfo::IDX_SHIFT) & 0x7) as usize;
                let Some(slot) = self.tx[q].ctx.get_mut(idx) else {
                    self.fault(bad("context index (IDX) above 1: the 82599 has two contexts per queue"));
                    return Step::Halt;
                };
                *slot = Some(TxContext { vlan_macip_lens: addr as u32, type_tucmd_mlhl: cmd, mss_l4len_idx: olinfo });
                Step::Next
            }
            tx_cmd::DTYP_DATA => self.data_descriptor(io, q, run, (desc, &d), index, addr, cmd, olinfo),
            _ => {
                self.fault(ModelFault::UnknownDescriptorType { queue, dtyp });
                Step::Halt
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn data_descriptor(
        &mut self,
        io: &IommuTable,
        q: usize,
        run: Run,
        desc: (u64, &Desc<'_>),
        index: u32,
        addr: u64,
        cmd: u32,
        olinfo: u32,
    ) -> Step {
        let queue = q as u16;
        if cmd & tx_cmd::TSE != 0 {
            self.fault(ModelFault::Unsupported { queue, rx: false, what: "TCP segmentation offload (DCMD.TSE)" });
            return Step::Halt;
        }
        if cmd & tx_cmd::VLE != 0 {
            self.fault(ModelFault::Unsupported { queue, rx: false, what: "VLAN tag insertion (DCMD.VLE)" });
            return Step::Halt;
        }
        let len = (cmd & tx_cmd::DTALEN_MASK) as usize;
        if len == 0 {
            self.fault(ModelFault::BadTxDescriptor { queue, index, reason: "zero-length data buffer (DTALEN 0)" });
            return Step::Halt;
        }
        let max = run.max_frame;
        let ring = &mut self.tx[q];
        let partial = &mut ring.partial;
        if !partial.started {
            // The first data descriptor of a packet carries PAYLEN and the
            // offload requests (7.2.3.2.4). The buffer is reused.
            partial.data.clear();
            (partial.started, partial.olinfo, partial.first_index) = (true, olinfo, index);
        }
        let so_far = partial.data.len() + len;
        if so_far > max {
            self.fault(ModelFault::TxPacketTooLong { queue, len: so_far, max });
            return Step::Halt;
        }
        if !io.read_into_with(&mut ring.buf_memo, addr, len, &mut partial.data) {
            self.fault(ModelFault::DmaOutOfBounds { addr, len, what: "tx buffer", queue });
            return Step::Halt;
        }
        self.write_back(io, q, run.wthresh, desc, cmd & tx_cmd::RS != 0);
        if cmd & tx_cmd::EOP == 0 {
            return Step::Next;
        }
        self.tx[q].partial.started = false;
        self.finish(q, run)
    }

    /// Descriptor write-back (7.2.3.5.1, 8.2.3.9.10) of the data descriptor
    /// at `desc`, whose buffer has been read. With TXDCTL.WTHRESH = 0 the
    /// device writes DD back into each descriptor that has RS set. With
    /// WTHRESH > 0 it ignores RS and writes back in bursts: nothing until
    /// WTHRESH descriptors are pending, then all of them. The 82599 also
    /// flushes pending write-backs when the queue's interrupt throttling
    /// timer fires, but with interrupts masked (as this driver runs) no
    /// timer runs, so the model never flushes: the last descriptors of a
    /// burst stay without DD until more traffic follows.
    fn write_back(&mut self, io: &IommuTable, q: usize, wthresh: u32, desc: (u64, &Desc<'_>), rs: bool) {
        let pending = &mut self.tx[q].wb_pending;
        let (desc, d) = desc;
        if wthresh == 0 && !rs {
            return;
        }
        if pending.is_empty() && wthresh <= 1 {
            // The common case (nothing pending, and this descriptor due
            // alone: it has RS under WTHRESH 0, or it makes a burst of 1):
            // written back through the translation it was read with.
            // Release as below.
            fence(Ordering::Release);
            d.store_u32(field::TX_OLINFO_STATUS, tx_olinfo::DD);
            return;
        }
        pending.push(desc);
        if wthresh != 0 && pending.len() < wthresh as usize {
            return;
        }
        // Release: the buffers have been read before DD tells the driver it
        // may reuse them. The write-back format has only the status word
        // (DD) in bytes 12..16.
        fence(Ordering::Release);
        for desc in pending.drain(..) {
            io.desc(desc).store_u32(field::TX_OLINFO_STATUS, tx_olinfo::DD);
        }
    }

    /// Checks PAYLEN, applies the offloads and pads the packet gathered in
    /// the queue's `partial.data`, in place.
    fn finish(&mut self, q: usize, run: Run) -> Step {
        let queue = q as u16;
        let TxRing { partial, ctx, .. } = &mut self.tx[q];
        let (index, olinfo, frame) = (partial.first_index, partial.olinfo, &mut partial.data);
        let host_bytes = frame.len();
        let paylen = (olinfo >> tx_olinfo::PAYLEN_SHIFT) as usize;
        let fault = if paylen != frame.len() {
            // 7.2.3.2.4: without TSO, PAYLEN is the whole packet's length.
            let reason = "PAYLEN differs from the bytes in the packet's data descriptors";
            Some(ModelFault::BadTxDescriptor { queue, index, reason })
        } else if olinfo & (tx_olinfo::IXSM | tx_olinfo::TXSM) == 0 {
            // Most frames ask for no offload: no call for them.
            None
        } else {
            offload::apply(frame, ctx, olinfo).err().map(|e| e.fault(queue, index))
        };
        let fault = fault.or_else(|| {
            (frame.len() < MIN_SENDABLE).then_some(ModelFault::TxFrameTooShort { queue, index, len: frame.len() })
        });
        if let Some(fault) = fault {
            self.fault(fault);
            return Step::Halt;
        }
        if run.hlreg0 & hlreg0::TXPADEN != 0 && frame.len() < MIN_FRAME {
            frame.resize(MIN_FRAME, 0);
        }
        Step::Packet(host_bytes)
    }
}
