//! What an application does on one connection, independent of the socket
//! layer under it.
//!
//! A [`Session`] is a state machine over a non-blocking byte stream (anything
//! `Read + Write` that answers `WouldBlock`): the event loop of
//! [`reactor`](crate::reactor) calls [`Session::drive`] whenever the
//! connection may have become readable or writable, and the session reads
//! and writes until the stream says `WouldBlock` (the edge-triggered
//! contract of mio and of ixtcp's sockapi alike). The same session code
//! runs over ixtcp and over Linux kernel sockets, so the benchmark compares
//! stacks, not applications.
//!
//! A session counts what it did in a [`Tally`]: transactions, bytes,
//! latencies and failures by kind.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Instant;

use crate::latency::Latency;

/// What the event loop should do with a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Wait for the next readiness event.
    Wait,
    /// The session is finished: close the connection (a client opens a new
    /// one if it has work left).
    Close,
}

/// Why a client's transaction or connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The connection could not be opened (refused, unreachable, timed out).
    Connect,
    /// The peer reset the connection.
    Reset,
    /// The peer closed the connection before the reply was complete.
    Closed,
    /// Nothing happened on the connection for the timeout.
    Timeout,
    /// The reply was malformed (an unparsable HTTP response, say).
    Malformed,
    /// The reply was well formed but wrong (an unexpected status, a body
    /// different from the expected one, echoed bytes that differ).
    Mismatch,
    /// Any other I/O error.
    Io,
}

impl Failure {
    /// Every kind, in the order reports list them.
    pub const ALL: [Failure; 7] = [
        Failure::Connect,
        Failure::Reset,
        Failure::Closed,
        Failure::Timeout,
        Failure::Malformed,
        Failure::Mismatch,
        Failure::Io,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::Closed => "closed-early",
            Failure::Timeout => "timeout",
            Failure::Malformed => "malformed",
            Failure::Mismatch => "mismatch",
            Failure::Io => "io",
        }
    }

    /// The failure an I/O error stands for.
    pub fn of(e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => Failure::Connect,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                Failure::Reset
            }
            io::ErrorKind::TimedOut => Failure::Timeout,
            io::ErrorKind::UnexpectedEof => Failure::Closed,
            _ => Failure::Io,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one core's sessions did.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Completed transactions (echo round trips, HTTP responses).
    pub transactions: u64,
    /// Application bytes received.
    pub bytes_in: u64,
    /// Application bytes sent.
    pub bytes_out: u64,
    /// Connections opened (accepted, or connected successfully).
    pub connections: u64,
    /// Latency of each completed transaction.
    pub latency: Latency,
    failures: [u64; Failure::ALL.len()],
    /// The first few failures, described, for the report.
    pub first_failures: Vec<String>,
}

impl Tally {
    /// Most failure descriptions kept.
    const KEEP_DESCRIPTIONS: usize = 5;

    /// Counts a failure of `kind`, keeping its description if it is one
    /// of the first few.
    pub fn fail(&mut self, kind: Failure, what: impl FnOnce() -> String) {
        self.failures[kind.index()] += 1;
        if self.first_failures.len() < Self::KEEP_DESCRIPTIONS {
            self.first_failures.push(format!("{kind}: {}", what()));
        }
    }

    /// Failures of `kind`.
    pub fn failures(&self, kind: Failure) -> u64 {
        self.failures[kind.index()]
    }

    /// Failures of every kind.
    pub fn total_failures(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// Records a completed transaction that started at `started`.
    pub fn complete(&mut self, started: Instant, now: Instant) {
        self.transactions += 1;
        self.latency.record(now.saturating_duration_since(started));
    }

    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.transactions += other.transactions;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.connections += other.connections;
        self.latency.merge(&other.latency);
        for (a, b) in self.failures.iter_mut().zip(other.failures.iter()) {
            *a += b;
        }
        for d in &other.first_failures {
            if self.first_failures.len() < Self::KEEP_DESCRIPTIONS {
                self.first_failures.push(d.clone());
            }
        }
    }

    /// "reset 3, timeout 1" (or "none").
    pub fn failure_line(&self) -> String {
        let parts: Vec<String> = Failure::ALL
            .iter()
            .filter(|k| self.failures(**k) > 0)
            .map(|k| format!("{} {}", k.name(), self.failures(*k)))
            .collect();
        if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
    }
}

/// An application's work on one connection.
pub trait Session {
    /// Reads and writes on `stream` until it says `WouldBlock` or the
    /// session has nothing left to do. Errors and protocol violations are
    /// counted in `tally`, and end in [`Step::Close`].
    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, now: Instant) -> Step;

    /// Called when the connection is being closed by the event loop for a
    /// reason of its own (timeout, hang-up seen before the session noticed),
    /// so that a client can count an unfinished transaction.
    fn abandon(&mut self, _tally: &mut Tally, _why: Failure) {}

    /// Makes this session, whose connection the event loop closed after
    /// [`drive`](Self::drive) said [`Step::Close`], what the loop's factory
    /// would make for its next connection, keeping the memory it holds.
    /// False (the default) when it cannot: the loop makes a new one.
    fn renew(&mut self) -> bool {
        false
    }
}

/// Writes as much of `buf[*pos..]` as the stream takes; `Ok(true)` once all
/// of it is written, `Ok(false)` on `WouldBlock`.
pub fn write_pending<S: Write>(stream: &mut S, buf: &[u8], pos: &mut usize, tally: &mut Tally) -> io::Result<bool> {
    while *pos < buf.len() {
        match stream.write(&buf[*pos..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the connection took no bytes")),
            Ok(n) => {
                *pos += n;
                tally.bytes_out += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One `read` that retries on `Interrupted`; `Ok(None)` for `WouldBlock`.
pub fn read_some<S: Read>(stream: &mut S, buf: &mut [u8], tally: &mut Tally) -> io::Result<Option<usize>> {
    loop {
        match stream.read(buf) {
            Ok(n) => {
                tally.bytes_in += n as u64;
                return Ok(Some(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bytes a connection's [`InputBuf`] starts with: a request or response
/// head of the usual size fits, and making it costs a 4 KiB zeroing instead
/// of one of the limit (64 KiB for the load generator, where that zeroing
/// was a quarter of its time on new connections).
pub const INITIAL_INPUT: usize = 4 * 1024;

/// A connection's input: bytes read and not yet consumed, in a buffer that
/// starts at [`INITIAL_INPUT`] and doubles, up to its limit, when a read
/// needs room or fills what was free (a long body then gets larger reads).
#[derive(Debug)]
pub struct InputBuf {
    buf: Vec<u8>,
    len: usize,
    max: usize,
}

impl InputBuf {
    /// An empty buffer that holds at most `max` bytes (at least one).
    pub fn new(max: usize) -> InputBuf {
        let max = max.max(1);
        InputBuf { buf: vec![0; INITIAL_INPUT.min(max)], len: 0, max }
    }

    /// The bytes held.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// True when no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the limit is reached: a read would have nowhere to go.
    pub fn is_full(&self) -> bool {
        self.len == self.max
    }

    /// Bytes of memory the buffer holds now.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Drops the first `n` bytes held (at most all of them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }

    fn grow(&mut self) {
        let to = (self.buf.len() * 2).min(self.max);
        self.buf.resize(to, 0);
    }

    /// One [`read_some`] into the free room, made first if there is none and
    /// the limit allows; `Ok(Some(0))` is the end of the stream. Call it
    /// only while [`is_full`](Self::is_full) is false (a full buffer reads
    /// nothing, which would look like the end of the stream).
    pub fn read_from<S: Read>(&mut self, stream: &mut S, tally: &mut Tally) -> io::Result<Option<usize>> {
        if self.len == self.buf.len() && self.buf.len() < self.max {
            self.grow();
        }
        let free = self.buf.len() - self.len;
        let got = read_some(stream, &mut self.buf[self.len..], tally)?;
        if let Some(n) = got {
            self.len += n;
            if n > 0 && n == free && self.buf.len() < self.max {
                self.grow();
            }
        }
        Ok(got)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A scripted in-memory stream for session tests.

    use std::collections::VecDeque;
    use std::io::{self, Read, Write};

    /// Reads come from `input` in the chunks given (an empty chunk is a
    /// `WouldBlock`; when the chunks run out: `WouldBlock`, or end of
    /// stream if `eof`); writes go to `output`, at most `write_room` bytes
    /// before `WouldBlock` (refilled with `room`).
    #[derive(Debug, Default)]
    pub struct Script {
        pub input: VecDeque<Vec<u8>>,
        pub eof: bool,
        pub output: Vec<u8>,
        pub write_room: usize,
    }

    impl Script {
        pub fn new() -> Script {
            Script { write_room: usize::MAX, ..Script::default() }
        }
        pub fn feed(&mut self, bytes: &[u8]) {
            self.input.push_back(bytes.to_vec());
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.input.pop_front() {
                Some(chunk) if chunk.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
                Some(mut chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        chunk.drain(..n);
                        self.input.push_front(chunk);
                    }
                    Ok(n)
                }
                None if self.eof => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.write_room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.write_room);
            self.write_room -= n;
            self.output.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind_and_described() {
        let mut t = Tally::default();
        t.fail(Failure::Reset, || "peer reset".into());
        t.fail(Failure::Reset, || "again".into());
        t.fail(Failure::Timeout, || "slow".into());
        assert_eq!(t.failures(Failure::Reset), 2);
        assert_eq!(t.total_failures(), 3);
        assert_eq!(t.failure_line(), "reset 2, timeout 1");
        let mut u = Tally::default();
        u.merge(&t);
        assert_eq!(u.failures(Failure::Timeout), 1);
        assert_eq!(u.first_failures[0], "reset: peer reset");
        assert_eq!(Tally::default().failure_line(), "none");
    }

    #[test]
    fn io_errors_map_to_failure_kinds() {
        assert_eq!(Failure::of(&io::ErrorKind::ConnectionRefused.into()), Failure::Connect);
        assert_eq!(Failure::of(&io::ErrorKind::ConnectionReset.into()), Failure::Reset);
        assert_eq!(Failure::of(&io::ErrorKind::TimedOut.into()), Failure::Timeout);
        assert_eq!(Failure::of(&io::ErrorKind::Other.into()), Failure::Io);
    }

    #[test]
    fn input_starts_small_grows_to_its_limit_and_keeps_what_is_unconsumed() {
        let mut s = testing::Script::new();
        let mut t = Tally::default();
        let mut b = InputBuf::new(3 * INITIAL_INPUT);
        assert_eq!(b.capacity(), INITIAL_INPUT);
        // A read that fills the free room doubles it for the next one.
        let big: Vec<u8> = (0..3 * INITIAL_INPUT + 100).map(|i| i as u8).collect();
        s.feed(&big);
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(INITIAL_INPUT));
        assert_eq!(b.capacity(), 2 * INITIAL_INPUT);
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(INITIAL_INPUT));
        assert_eq!(b.capacity(), 3 * INITIAL_INPUT, "never past the limit");
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(INITIAL_INPUT));
        assert!(b.is_full());
        assert_eq!(b.data(), &big[..3 * INITIAL_INPUT]);
        assert_eq!(t.bytes_in, 3 * INITIAL_INPUT as u64);
        b.consume(10);
        assert_eq!(b.len(), 3 * INITIAL_INPUT - 10);
        assert_eq!(&b.data()[..4], &big[10..14]);
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(10));
        assert_eq!(b.data()[b.len() - 10..], big[3 * INITIAL_INPUT..3 * INITIAL_INPUT + 10]);
        b.consume(usize::MAX);
        assert!(b.is_empty());
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(90));
        assert_eq!(b.data(), &big[3 * INITIAL_INPUT + 10..]);
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), None, "WouldBlock");
        s.eof = true;
        assert_eq!(b.read_from(&mut s, &mut t).unwrap(), Some(0), "end of stream");
        // A limit below the initial size is the size.
        assert_eq!(InputBuf::new(1024).capacity(), 1024);
        assert_eq!(InputBuf::new(0).capacity(), 1);
    }
}
