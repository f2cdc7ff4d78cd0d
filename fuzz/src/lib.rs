//! Fuzz targets for ixtcp, as plain functions of `&[u8]`, so that they run
//! under cargo-fuzz (`fuzz_targets/*.rs`, libFuzzer) and as ordinary tests
//! that replay the checked-in corpora and a deterministic stream of random
//! inputs (`tests/replay.rs`) alike.
//!
//! - [`stack_frames`]: frames into a stack core through the 82599 model's
//!   receive path, interleaved with application calls and time.
//! - [`model_regs`]: register reads and writes, DMA memory contents and
//!   frames into the model.
//! - [`http_request`]: request bytes into the HTTP server's parser and
//!   path normalisation (the examples crate's server session).
//! - [`sockapi_calls`]: socket API call sequences on an inline context
//!   over the in-memory test engine.
//!
//! Each target panics only when it finds a bug: a panic in the code under
//! test, or a broken invariant it checks (what the stack transmits is
//! well-formed; nothing is leaked once everything is torn down).
#![forbid(unsafe_code)]

pub mod http_request;
pub mod model_regs;
pub mod sockapi_calls;
pub mod stack_frames;

/// Reads an input as a sequence of small values; once it is exhausted,
/// every read returns zeros, so any input is a valid program.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Big-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// The Internet checksum of `data`, starting from `initial` (a pseudo
/// header's sum).
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

/// The sum of the TCP/UDP pseudo header.
pub fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let w = |b: [u8; 4]| u32::from(u16::from_be_bytes([b[0], b[1]])) + u32::from(u16::from_be_bytes([b[2], b[3]]));
    w(src) + w(dst) + u32::from(proto) + len as u32
}
