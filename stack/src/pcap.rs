//! Packet capture in the classic pcap format, at the Ethernet level:
//! [`Pcap`], a wrapper over any [`PacketIo`] that records every frame
//! received and every frame handed to the transmit queue (the shape of
//! smoltcp's `phy::PcapWriter`, one layer lower), and [`PcapFile`], the
//! file it writes.
//!
//! The file format is written by smoltcp's [`PcapSink`] (global header,
//! record headers), so what tcpdump, tshark and Wireshark read is smoltcp's
//! own writer's output. Three deliberate differences from wrapping the phy
//! adapter in smoltcp's `PcapWriter`:
//!
//! - The capture is taken where frames enter and leave the queue pair, with
//!   link type Ethernet, so it holds what smoltcp never sees: ARP, our
//!   TIME_WAIT ACKs, frames dropped before smoltcp, and the real MACs.
//! - The sink never panics: smoltcp's `PcapSink` impl for `std::io::Write`
//!   panics on a write error (disk full); ours records the first error,
//!   stops capturing and lets the stack run on. It also does not flush per
//!   packet (smoltcp calls `flush` after every record): the wrapper flushes
//!   once per `tx_batch` that had something to send.
//! - Without a file the wrapper costs one branch per batch, not per frame
//!   (`Pcap::new(io, None)`), so the stack keeps it in place always.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use std::sync::Arc;

use ixtcp_driver::mempool::{Mempool, PacketBuf};
use smoltcp::phy::{PcapLinkType, PcapSink};
use smoltcp::time::Instant;

use crate::io::PacketIo;

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapFile {
    out: Option<BufWriter<File>>,
    error: Option<String>,
    dirty: bool,
    records: u64,
}

impl PcapSink for PcapFile {
    fn write(&mut self, data: &[u8]) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.write_all(data)
        {
            self.error = Some(e.to_string());
            self.out = None;
        }
        self.dirty = true;
    }

    fn flush(&mut self) {
        // Deferred to `flush_now`, once per loop iteration.
    }
}

impl PcapFile {
    /// Creates (truncates) `path` and writes the global header.
    pub fn create(path: &Path) -> std::io::Result<PcapFile> {
        let file = File::create(path)?;
        let mut p =
            PcapFile { out: Some(BufWriter::with_capacity(1 << 16, file)), error: None, dirty: false, records: 0 };
        p.global_header(PcapLinkType::Ethernet);
        Ok(p)
    }

    /// Appends one frame.
    pub fn record(&mut self, now: Instant, frame: &[u8]) {
        if self.out.is_some() {
            self.packet(now, frame);
            self.records += 1;
        }
    }

    /// Writes buffered records to the file.
    pub fn flush_now(&mut self) {
        if self.dirty {
            self.dirty = false;
            if let Some(out) = self.out.as_mut()
                && let Err(e) = Write::flush(out)
            {
                self.error = Some(e.to_string());
                self.out = None;
            }
        }
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The first I/O error, after which capture stopped.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Drop for PcapFile {
    fn drop(&mut self) {
        self.flush_now();
    }
}

/// A [`PacketIo`] that records what passes through it into a
/// [`PcapFile`], if it has one. Received frames are recorded as
/// `rx_batch` returns them; frames to send when first offered to
/// `tx_batch` (those it leaves stay at the front of the batch, by
/// `PacketIo`'s contract, and are not recorded twice). Timestamps are the
/// core's clock, given with [`set_now`](Self::set_now).
#[derive(Debug)]
pub struct Pcap<P> {
    inner: P,
    file: Option<PcapFile>,
    now: Instant,
    /// Frames at the front of the last batch that `tx_batch` left there,
    /// already recorded.
    recorded_left: usize,
}

impl<P: PacketIo> Pcap<P> {
    /// Wraps `inner`; with `file` `None` nothing is recorded.
    pub fn new(inner: P, file: Option<PcapFile>) -> Pcap<P> {
        Pcap { inner, file, now: Instant::from_micros(0), recorded_left: 0 }
    }

    /// The time the next records carry.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The wrapped I/O.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Unwraps the I/O (the file, if any, is flushed and closed).
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// The capture file, if any.
    pub fn file(&self) -> Option<&PcapFile> {
        self.file.as_ref()
    }

    /// Tells the wrapper that the caller emptied its TX batch without
    /// sending it (so the next batch starts unrecorded).
    pub fn batch_discarded(&mut self) {
        self.recorded_left = 0;
    }
}

impl<P: PacketIo> PacketIo for Pcap<P> {
    #[inline]
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        let start = out.len();
        let n = self.inner.rx_batch(out, max);
        if let Some(f) = self.file.as_mut() {
            for b in &out[start..] {
                f.record(self.now, b.data());
            }
        }
        n
    }

    #[inline]
    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize {
        let Some(f) = self.file.as_mut() else { return self.inner.tx_batch(batch) };
        for b in batch.iter().skip(self.recorded_left) {
            f.record(self.now, b.data());
        }
        let n = self.inner.tx_batch(batch);
        self.recorded_left = batch.len();
        f.flush_now();
        n
    }

    #[inline]
    fn alloc(&mut self) -> Option<PacketBuf> {
        self.inner.alloc()
    }

    fn pool(&self) -> &Arc<Mempool> {
        self.inner.pool()
    }

    fn checksum_offload(&self) -> bool {
        self.inner.checksum_offload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_has_pcap_header_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        {
            let mut p = PcapFile::create(&path).unwrap();
            p.record(Instant::from_micros(1_500_000), &[0xab; 60]);
            p.record(Instant::from_micros(2_000_001), &[0xcd; 42]);
            p.flush_now();
            assert_eq!(p.records(), 2);
        }
        let b = std::fs::read(&path).unwrap();
        let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        assert_eq!(u32_at(0), 0xa1b2_c3d4, "magic");
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 2, "major");
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 4, "minor");
        assert_eq!(u32_at(20), 1, "link type Ethernet");
        // First record: ts 1 s + 500000 us, 60 bytes captured and on the wire.
        assert_eq!((u32_at(24), u32_at(28), u32_at(32), u32_at(36)), (1, 500_000, 60, 60));
        assert_eq!(b[40], 0xab);
        let second = 24 + 16 + 60;
        assert_eq!((u32_at(second), u32_at(second + 4), u32_at(second + 8)), (2, 1, 42));
        assert_eq!(b.len(), second + 16 + 42);
    }

    #[test]
    fn wrapper_records_each_frame_once_and_nothing_without_a_file() {
        use crate::ether::MacAddr;
        use crate::sim::{SimNic, SimPort};

        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let frame = |tag: u8| {
            let mut f = vec![tag; 60];
            f[..6].copy_from_slice(&mac.0);
            f
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.pcap");
        // A TX ring of two: a batch of three leaves one behind.
        let (nic, mut ios) = SimNic::new(mac, 1, 2, 16).unwrap();
        let mut p = Pcap::new(ios.remove(0), Some(PcapFile::create(&path).unwrap()));
        p.set_now(Instant::from_micros(3_000_000));
        nic.push(&frame(1));
        let mut rx = Vec::new();
        assert_eq!(p.rx_batch(&mut rx, 8), 1);
        let mut tx = std::mem::take(&mut rx);
        for tag in [2, 3] {
            let mut b = p.alloc().unwrap();
            b.reset(0);
            assert!(b.copy_from(&frame(tag)));
            tx.push(b);
        }
        assert_eq!(p.tx_batch(&mut tx), 2);
        assert_eq!(tx.len(), 1);
        assert_eq!(p.file().map(PcapFile::records), Some(4), "one received, three offered");
        let mut wire = Vec::new();
        nic.pull(&mut |f| wire.push(f[6]));
        assert_eq!(wire, [1, 2]);
        let mut b = p.alloc().unwrap();
        b.reset(0);
        assert!(b.copy_from(&frame(4)));
        tx.push(b);
        assert_eq!(p.tx_batch(&mut tx), 2);
        assert_eq!(p.file().map(PcapFile::records), Some(5), "the frame left behind is not recorded again");
        drop(p);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len(), 24 + 5 * (16 + 60));
        let tags: Vec<u8> = (0..5).map(|i| b[24 + i * 76 + 16 + 6]).collect();
        assert_eq!(tags, [1, 1, 2, 3, 4]);
        assert_eq!(u32::from_ne_bytes([b[24], b[25], b[26], b[27]]), 3, "the core's clock");

        // No file: frames pass through untouched, nothing recorded.
        let (nic, mut ios) = SimNic::new(mac, 1, 4, 16).unwrap();
        let mut p = Pcap::new(ios.remove(0), None);
        nic.push(&frame(7));
        let mut rx = Vec::new();
        assert_eq!(p.rx_batch(&mut rx, 8), 1);
        assert_eq!(p.tx_batch(&mut rx), 1);
        assert!(p.file().is_none());
        let mut wire = Vec::new();
        nic.pull(&mut |f| wire.push(f[6]));
        assert_eq!(wire, [7]);
    }
}
