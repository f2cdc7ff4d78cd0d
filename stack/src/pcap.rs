//! Packet capture in the classic pcap format, at the Ethernet level.
//!
//! The file format is written by smoltcp's [`PcapSink`] (global header,
//! record headers), so what tcpdump, tshark and Wireshark read is smoltcp's
//! own writer's output. Two deliberate differences from wrapping the phy
//! adapter in smoltcp's `PcapWriter`:
//!
//! - The capture is taken where frames enter and leave the queue pair, with
//!   link type Ethernet, so it holds what smoltcp never sees: ARP, our
//!   TIME_WAIT ACKs, frames dropped before smoltcp, and the real MACs.
//! - The sink never panics: smoltcp's `PcapSink` impl for `std::io::Write`
//!   panics on a write error (disk full); ours records the first error,
//!   stops capturing and lets the stack run on. It also does not flush per
//!   packet (smoltcp calls `flush` after every record): the core flushes once
//!   per loop iteration that wrote something.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use smoltcp::phy::{PcapLinkType, PcapSink};
use smoltcp::time::Instant;

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
}
