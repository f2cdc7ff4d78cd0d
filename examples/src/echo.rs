//! The echo protocol and bulk transfer: sessions for both ends.
//!
//! - [`EchoServer`] sends back every byte it receives, in order, and stops
//!   reading while the peer is not taking its replies (so a client that
//!   never reads cannot make the server buffer without bound).
//! - [`EchoClient`] sends a message of `size` bytes, waits for all of it to
//!   come back, compares every byte, and starts the next one (persistent
//!   mode) or ends the session (one transaction per connection). Each
//!   message has its own contents, derived from the connection's seed and
//!   the transaction number, so bytes of another message or another
//!   connection are caught, not only corrupted ones.
//! - [`BulkSource`] writes as fast as the connection takes bytes;
//!   [`BulkSink`] reads and counts them.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::session::{Failure, Session, Step, Tally, read_some, write_pending};

/// The contents of message `txn` of the connection seeded `seed`: `len`
/// bytes from a xorshift generator, so they differ between messages.
pub fn message(seed: u64, txn: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(len, 0);
    // splitmix64 of (seed, txn) so that neighbouring seeds do not start alike.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ txn.wrapping_add(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    x |= 1;
    // One generator step per 8 bytes, stored whole (the load generator
    // makes a message per transaction: appending byte runs cost more than
    // the echo's own socket calls).
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Where `got` first differs from `expected`, if anywhere (lengths aside).
pub fn first_difference(expected: &[u8], got: &[u8]) -> Option<usize> {
    if expected[..got.len().min(expected.len())] == got[..got.len().min(expected.len())] {
        return None;
    }
    expected.iter().zip(got).position(|(a, b)| a != b)
}

/// Echoes every byte back.
///
/// The buffer starts small and doubles (up to [`EchoServer::BUFFER`]) when
/// a read fills it, so ten thousand idle connections cost little memory.
#[derive(Debug)]
pub struct EchoServer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for EchoServer {
    fn default() -> Self {
        EchoServer::new()
    }
}

impl EchoServer {
    /// Most bytes read per call, and the most held while the peer is not
    /// reading.
    pub const BUFFER: usize = 16 * 1024;
    const FIRST_BUFFER: usize = 1024;

    /// A new session.
    pub fn new() -> EchoServer {
        EchoServer { buf: Vec::new(), start: 0, end: 0 }
    }
}

impl Session for EchoServer {
    fn renew(&mut self) -> bool {
        self.start = 0;
        self.end = 0;
        // A buffer a bulk peer grew is let go: a new connection may idle.
        if self.buf.len() > Self::FIRST_BUFFER {
            self.buf = Vec::new();
        }
        true
    }

    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, _now: Instant) -> Step {
        loop {
            if self.start < self.end {
                match write_pending(stream, &self.buf[..self.end], &mut self.start, tally) {
                    Ok(true) => {}
                    Ok(false) => return Step::Wait,
                    Err(_) => return Step::Close,
                }
            }
            if self.buf.is_empty() {
                self.buf.resize(Self::FIRST_BUFFER, 0);
            }
            match read_some(stream, &mut self.buf, tally) {
                Ok(Some(0)) | Err(_) => return Step::Close,
                Ok(Some(n)) => {
                    self.start = 0;
                    self.end = n;
                    if n == self.buf.len() && n < Self::BUFFER {
                        self.buf.resize(n * 2, 0);
                    }
                }
                Ok(None) => return Step::Wait,
            }
        }
    }
}

/// Sends messages and verifies their echoes.
#[derive(Debug)]
pub struct EchoClient {
    seed: u64,
    size: usize,
    one_shot: bool,
    txn: u64,
    msg: Vec<u8>,
    sent: usize,
    received: usize,
    started: Option<Instant>,
    buf: Box<[u8]>,
}

impl EchoClient {
    /// A session sending `size`-byte messages with contents derived from
    /// `seed`; with `one_shot` it ends after the first verified echo.
    /// `opened` is when the connection was started: the first transaction's
    /// latency counts from there (so it includes the handshake).
    pub fn new(seed: u64, size: usize, one_shot: bool, opened: Instant) -> EchoClient {
        let mut msg = Vec::new();
        message(seed, 0, size.max(1), &mut msg);
        EchoClient {
            seed,
            size: size.max(1),
            one_shot,
            txn: 0,
            msg,
            sent: 0,
            received: 0,
            started: Some(opened),
            buf: vec![0; size.clamp(1, 64 * 1024)].into_boxed_slice(),
        }
    }

    /// This session made new for another connection, as
    /// [`new`](Self::new) with the same size and mode, keeping the memory
    /// of its buffers.
    pub fn restart(&mut self, seed: u64, opened: Instant) {
        message(seed, 0, self.size, &mut self.msg);
        self.seed = seed;
        self.txn = 0;
        self.sent = 0;
        self.received = 0;
        self.started = Some(opened);
    }

    /// Transactions this session completed.
    pub fn completed(&self) -> u64 {
        self.txn
    }

    fn fail(&mut self, tally: &mut Tally, kind: Failure, what: impl FnOnce() -> String) -> Step {
        tally.fail(kind, what);
        self.started = None;
        Step::Close
    }
}

impl Session for EchoClient {
    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, now: Instant) -> Step {
        loop {
            let started = *self.started.get_or_insert(now);
            match write_pending(stream, &self.msg, &mut self.sent, tally) {
                Ok(_) => {}
                Err(e) => return self.fail(tally, Failure::of(&e), || format!("sending: {e}")),
            }
            // Read what has come back; never more than is outstanding.
            while self.received < self.sent {
                let want = (self.sent - self.received).min(self.buf.len());
                match read_some(stream, &mut self.buf[..want], tally) {
                    Ok(Some(0)) => {
                        let (r, s) = (self.received, self.size);
                        return self.fail(tally, Failure::Closed, || format!("end of stream after {r} of {s} bytes"));
                    }
                    Ok(Some(n)) => {
                        let expected = &self.msg[self.received..self.received + n];
                        if let Some(at) = first_difference(expected, &self.buf[..n]) {
                            let at = self.received + at;
                            let txn = self.txn;
                            return self.fail(tally, Failure::Mismatch, || {
                                format!("echoed byte {at} of message {txn} differs")
                            });
                        }
                        self.received += n;
                    }
                    Ok(None) => return Step::Wait,
                    Err(e) => return self.fail(tally, Failure::of(&e), || format!("receiving: {e}")),
                }
            }
            if self.received < self.size {
                return Step::Wait;
            }
            tally.complete(started, now);
            self.txn += 1;
            if self.one_shot {
                self.started = None;
                return Step::Close;
            }
            message(self.seed, self.txn, self.size, &mut self.msg);
            self.sent = 0;
            self.received = 0;
            self.started = Some(now);
        }
    }

    fn abandon(&mut self, tally: &mut Tally, why: Failure) {
        if self.started.take().is_some() {
            let txn = self.txn;
            tally.fail(why, || format!("message {txn} unfinished"));
        }
    }
}

/// Writes a fixed buffer as fast as the connection takes it.
#[derive(Debug)]
pub struct BulkSource {
    chunk: Box<[u8]>,
    pos: usize,
}

impl Default for BulkSource {
    fn default() -> Self {
        BulkSource::new()
    }
}

impl BulkSource {
    /// A source writing 64 KiB at a time.
    pub fn new() -> BulkSource {
        let mut chunk = Vec::new();
        message(1, 1, 64 * 1024, &mut chunk);
        BulkSource { chunk: chunk.into_boxed_slice(), pos: 0 }
    }
}

impl Session for BulkSource {
    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, _now: Instant) -> Step {
        // A peer that talks or closes ends the transfer.
        let mut scratch = [0u8; 256];
        match read_some(stream, &mut scratch, tally) {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return Step::Close,
        }
        loop {
            match write_pending(stream, &self.chunk, &mut self.pos, tally) {
                Ok(true) => self.pos = 0,
                Ok(false) => return Step::Wait,
                Err(_) => return Step::Close,
            }
        }
    }
}

/// Reads and counts bytes until the peer closes.
#[derive(Debug)]
pub struct BulkSink {
    buf: Box<[u8]>,
}

impl Default for BulkSink {
    fn default() -> Self {
        BulkSink::new()
    }
}

impl BulkSink {
    /// A sink reading 64 KiB at a time.
    pub fn new() -> BulkSink {
        BulkSink { buf: vec![0; 64 * 1024].into_boxed_slice() }
    }
}

impl Session for BulkSink {
    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, _now: Instant) -> Step {
        loop {
            match read_some(stream, &mut self.buf, tally) {
                Ok(Some(0)) => return Step::Close,
                Ok(Some(_)) => {}
                Ok(None) => return Step::Wait,
                Err(e) => {
                    tally.fail(Failure::of(&e), || format!("bulk receive: {e}"));
                    return Step::Close;
                }
            }
        }
    }
}

/// An io::Error for a mismatch found while verifying (used by blocking
/// clients in tests and programs).
pub fn mismatch_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::Script;

    #[test]
    fn messages_differ_between_transactions_and_seeds_but_repeat_exactly() {
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        message(7, 0, 64, &mut a);
        message(7, 1, 64, &mut b);
        message(8, 0, 64, &mut c);
        message(7, 0, 64, &mut d);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, d);
        message(7, 0, 13, &mut d);
        assert_eq!(d.len(), 13);
        assert_eq!(&a[..13], &d[..]);
        // The bytes are the generator's words in little-endian order, the
        // last one cut: the definition, a byte at a time.
        for len in 0..40 {
            let mut x = 7u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 3u64.wrapping_add(0xD1B5_4A32_D192_ED03);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            x |= 1;
            let mut want = Vec::new();
            while want.len() < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                want.extend(x.to_le_bytes().into_iter().take(len - want.len()));
            }
            message(7, 3, len, &mut d);
            assert_eq!(d, want, "length {len}");
        }
    }

    /// A session made new with `restart` (after a finished transaction
    /// and after a failed one) sends and checks what a new one does.
    #[test]
    fn a_restarted_client_is_a_new_one() {
        let now = Instant::now();
        let run = |c: &mut EchoClient, echo: &[u8]| {
            let mut s = Script::new();
            s.feed(echo);
            let mut t = Tally::default();
            let step = c.drive(&mut s, &mut t, now);
            (step, s.output, t.transactions, t.bytes_in, t.bytes_out, t.failure_line())
        };
        let msg = |seed| {
            let mut m = Vec::new();
            message(seed, 0, 100, &mut m);
            m
        };
        let mut used = EchoClient::new(3, 100, true, now);
        let first = run(&mut used, &msg(3));
        assert_eq!((first.0, first.2), (Step::Close, 1));
        used.restart(4, now);
        let failed = run(&mut used, &[0xEE; 100]);
        assert_eq!((failed.0, failed.2), (Step::Close, 0), "a wrong echo fails");
        used.restart(5, now);
        let mut fresh = EchoClient::new(5, 100, true, now);
        let (a, b) = (run(&mut used, &msg(5)), run(&mut fresh, &msg(5)));
        assert_eq!(a, b);
        assert_eq!((a.0, &a.1, a.2), (Step::Close, &msg(5), 1));
        assert_eq!(used.completed(), 1);
    }

    /// A renewed server session echoes the next connection's bytes as a
    /// new one would, and lets go of a buffer a bulk peer grew.
    #[test]
    fn a_renewed_server_is_a_new_one() {
        let now = Instant::now();
        let mut used = EchoServer::new();
        let mut s = Script::new();
        s.feed(&[7u8; 5000]);
        s.write_room = 100;
        let mut t = Tally::default();
        assert_eq!(used.drive(&mut s, &mut t, now), Step::Wait, "the peer is not reading");
        assert!(used.buf.len() > EchoServer::FIRST_BUFFER);
        assert!(used.renew());
        assert_eq!((used.start, used.end, used.buf.len()), (0, 0, 0));
        let run = |e: &mut EchoServer| {
            let mut s = Script::new();
            s.feed(b"hello");
            s.eof = true;
            let mut t = Tally::default();
            (e.drive(&mut s, &mut t, now), s.output, t.bytes_in, t.bytes_out)
        };
        assert_eq!(run(&mut used), run(&mut EchoServer::new()));
        assert_eq!(run(&mut used).1, b"hello");
    }

    #[test]
    fn first_difference_finds_the_byte() {
        assert_eq!(first_difference(b"abcdef", b"abc"), None);
        assert_eq!(first_difference(b"abcdef", b"abX"), Some(2));
    }

    #[test]
    fn server_echoes_in_order_and_stops_reading_when_writes_block() {
        let mut s = Script::new();
        s.feed(b"hello ");
        s.feed(b"world");
        s.write_room = 3;
        let mut server = EchoServer::new();
        let mut t = Tally::default();
        let now = Instant::now();
        assert_eq!(server.drive(&mut s, &mut t, now), Step::Wait);
        assert_eq!(s.output, b"hel");
        assert_eq!(s.input.len(), 1, "must not read while the reply is stuck");
        s.write_room = usize::MAX;
        s.eof = true;
        assert_eq!(server.drive(&mut s, &mut t, now), Step::Close);
        assert_eq!(s.output, b"hello world");
        assert_eq!(t.bytes_in, 11);
        assert_eq!(t.bytes_out, 11);
    }

    /// Runs a client against an echoing script: whatever it wrote comes
    /// back in pieces of `piece` bytes.
    fn echo_round(client: &mut EchoClient, s: &mut Script, t: &mut Tally, piece: usize) -> Step {
        let now = Instant::now();
        let mut step = client.drive(s, t, now);
        for _ in 0..100 {
            if step == Step::Close || s.output.is_empty() {
                break;
            }
            let out: Vec<u8> = std::mem::take(&mut s.output);
            for c in out.chunks(piece) {
                s.feed(c);
            }
            step = client.drive(s, t, now);
        }
        step
    }

    #[test]
    fn client_verifies_echoes_in_pieces_and_counts_transactions() {
        let mut s = Script::new();
        let mut t = Tally::default();
        let mut c = EchoClient::new(3, 100, false, Instant::now());
        // Persistent: it keeps going; stop after a few rounds.
        let step = echo_round(&mut c, &mut s, &mut t, 7);
        assert_eq!(step, Step::Wait);
        assert!(c.completed() >= 50, "{}", c.completed());
        assert_eq!(t.transactions, c.completed());
        assert_eq!(t.total_failures(), 0);
        assert_eq!(t.latency.count(), t.transactions);
    }

    #[test]
    fn one_shot_client_closes_after_one_echo() {
        let mut s = Script::new();
        let mut t = Tally::default();
        let mut c = EchoClient::new(3, 64, true, Instant::now());
        assert_eq!(echo_round(&mut c, &mut s, &mut t, 64), Step::Close);
        assert_eq!(t.transactions, 1);
        assert_eq!(t.total_failures(), 0);
    }

    #[test]
    fn client_catches_a_corrupted_byte_and_an_early_close() {
        let now = Instant::now();
        let mut t = Tally::default();
        let mut s = Script::new();
        let mut c = EchoClient::new(3, 16, false, now);
        assert_eq!(c.drive(&mut s, &mut t, now), Step::Wait);
        let mut back = std::mem::take(&mut s.output);
        back[9] ^= 1;
        s.feed(&back);
        assert_eq!(c.drive(&mut s, &mut t, now), Step::Close);
        assert_eq!(t.failures(Failure::Mismatch), 1);
        assert!(t.first_failures[0].contains("byte 9"), "{:?}", t.first_failures);

        let mut s = Script::new();
        let mut c = EchoClient::new(3, 16, false, now);
        assert_eq!(c.drive(&mut s, &mut t, now), Step::Wait);
        s.feed(&s.output.clone()[..4]);
        s.eof = true;
        assert_eq!(c.drive(&mut s, &mut t, now), Step::Close);
        assert_eq!(t.failures(Failure::Closed), 1);
    }

    #[test]
    fn abandoning_counts_only_an_unfinished_transaction() {
        let now = Instant::now();
        let mut t = Tally::default();
        let mut c = EchoClient::new(1, 8, true, now);
        c.abandon(&mut t, Failure::Timeout);
        assert_eq!(t.failures(Failure::Timeout), 1);
        c.abandon(&mut t, Failure::Timeout);
        assert_eq!(t.failures(Failure::Timeout), 1);
    }

    #[test]
    fn bulk_source_fills_the_connection_and_sink_counts() {
        let now = Instant::now();
        let mut t = Tally::default();
        let mut s = Script::new();
        s.write_room = 100_000;
        assert_eq!(BulkSource::new().drive(&mut s, &mut t, now), Step::Wait);
        assert_eq!(t.bytes_out, 100_000);
        let mut sink_stream = Script::new();
        sink_stream.feed(&s.output);
        sink_stream.eof = true;
        let mut t2 = Tally::default();
        assert_eq!(BulkSink::new().drive(&mut sink_stream, &mut t2, now), Step::Close);
        assert_eq!(t2.bytes_in, 100_000);
    }
}
