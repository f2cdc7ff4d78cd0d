//! The HTTP client side: URLs, requests, incremental response parsing with
//! validation, and the load generator's session.
//!
//! Every response is checked: the status must be the expected one, the
//! body must have the length the headers announce, and the body must be
//! the expected bytes when those are known (tests give them; `http_load
//! --expect-file` reads them) or otherwise identical (length and FNV-1a
//! checksum) to the first response this connection got for the same
//! target, so a server that serves different bytes under load is caught.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use super::Fnv;
use crate::echo::first_difference;
use crate::session::{Failure, InputBuf, Session, Step, Tally, write_pending};

/// An `http://` URL with an IPv4 address (ixtcp has no DNS resolver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Where to connect.
    pub addr: SocketAddrV4,
    /// The `Host` header: the authority as written.
    pub host: String,
    /// The request target: path and query, at least `/`.
    pub path: String,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl FromStr for Url {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Url, UrlError> {
        let bad = |why: &str| UrlError(format!("bad URL {s:?}: {why} (expected http://A.B.C.D[:PORT]/PATH)"));
        let rest = s.strip_prefix("http://").ok_or_else(|| bad("only http:// is supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("the port is not a number from 1 to 65535"))?),
            None => (authority, 80),
        };
        if port == 0 {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        let ip = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse::<Ipv4Addr>().map_err(|_| bad("the host must be an IPv4 address; names are not resolved"))?
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the path has spaces or control characters; percent-encode them"));
        }
        Ok(Url { addr: SocketAddrV4::new(ip, port), host: authority.to_string(), path: path.to_string() })
    }
}

/// A GET (or HEAD) request for `path`; `close` adds `Connection: close`.
pub fn request(head: bool, host: &str, path: &str, close: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if head { b"HEAD " } else { b"GET " });
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: ixtcp-http_load\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What a complete response was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Status code.
    pub status: u16,
    /// Body length.
    pub length: u64,
    /// FNV-1a of the body; `None` when the parse was given the expected
    /// body, which it then compares byte for byte instead (`differs_at`).
    pub checksum: Option<u64>,
    /// The server will close the connection after it.
    pub close: bool,
    /// Where the body first differed from the expected bytes, if it did.
    pub differs_at: Option<u64>,
}

#[derive(Debug)]
enum State {
    Head,
    Body { remaining: Option<u64> },
}

/// Parses responses one after the other from the bytes of a connection.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    status: u16,
    close: bool,
    length: u64,
    fnv: Fnv,
    differs_at: Option<u64>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser::new()
    }
}

/// Largest response header section accepted.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

impl ResponseParser {
    /// A parser waiting for a response head.
    pub fn new() -> ResponseParser {
        ResponseParser { state: State::Head, status: 0, close: false, length: 0, fnv: Fnv::default(), differs_at: None }
    }

    /// Parses from `buf`; returns the bytes consumed and the response if it
    /// completed. `head_request` says the response answers a HEAD (no
    /// body); `expected` is the body it should have, if known.
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_request: bool,
        expected: Option<&[u8]>,
    ) -> Result<(usize, Option<Completed>), String> {
        let mut used = 0;
        if let State::Head = self.state {
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut r = httparse::Response::new(&mut headers);
            let n = match r.parse(buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok((0, None)),
                Ok(httparse::Status::Partial) => return Err(format!("response head over {MAX_RESPONSE_HEAD} bytes")),
                Err(e) => return Err(format!("unparsable response: {e}")),
            };
            let status = r.code.unwrap_or(0);
            let http10 = r.version == Some(0);
            let (mut length, mut close, mut keep_alive) = (None, false, false);
            for h in r.headers.iter() {
                // Only the headers looked at are decoded (`Date`, `Server`, ... are not).
                let value = || String::from_utf8_lossy(h.value);
                if h.name.eq_ignore_ascii_case("content-length") {
                    let value = value();
                    let n = value.trim().parse::<u64>().map_err(|_| format!("bad Content-Length {value:?}"))?;
                    if length.is_some_and(|m| m != n) {
                        return Err("two different Content-Length headers".into());
                    }
                    length = Some(n);
                } else if h.name.eq_ignore_ascii_case("connection") {
                    for t in value().split(',') {
                        close |= t.trim().eq_ignore_ascii_case("close");
                        keep_alive |= t.trim().eq_ignore_ascii_case("keep-alive");
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err("chunked responses are not supported by this client".into());
                }
            }
            let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
            let remaining = if no_body { Some(0) } else { length };
            *self = ResponseParser {
                state: State::Body { remaining },
                status,
                close: close || (http10 && !keep_alive) || remaining.is_none(),
                length: 0,
                fnv: Fnv::default(),
                differs_at: None,
            };
            used = n;
        }
        let State::Body { remaining } = &mut self.state else { return Ok((used, None)) };
        let avail = &buf[used..];
        let take = remaining.map_or(avail.len(), |r| (r.min(avail.len() as u64)) as usize);
        let chunk = &avail[..take];
        if let Some(exp) = expected
            && self.differs_at.is_none()
        {
            let at = self.length as usize;
            let exp_part = exp.get(at..).unwrap_or(&[]);
            if chunk.len() > exp_part.len() {
                self.differs_at = Some(exp.len() as u64);
            } else if let Some(d) = first_difference(&exp_part[..chunk.len()], chunk) {
                self.differs_at = Some((at + d) as u64);
            }
        }
        if expected.is_none() {
            self.fnv.update(chunk);
        }
        self.length += take as u64;
        used += take;
        if let Some(r) = remaining {
            *r -= take as u64;
            if *r == 0 {
                return Ok((used, Some(self.finish(expected))));
            }
        }
        Ok((used, None))
    }

    /// End of stream: completes a response whose body runs to the close;
    /// `None` if a response was cut short (or none had started).
    pub fn eof(&mut self, expected: Option<&[u8]>) -> Option<Completed> {
        match self.state {
            State::Body { remaining: None } => Some(self.finish(expected)),
            _ => None,
        }
    }

    /// True while in the middle of a response.
    pub fn in_response(&self) -> bool {
        matches!(self.state, State::Body { .. })
    }

    fn finish(&mut self, expected: Option<&[u8]>) -> Completed {
        let mut differs_at = self.differs_at;
        if let Some(exp) = expected
            && differs_at.is_none()
            && self.length != exp.len() as u64
        {
            differs_at = Some(self.length);
        }
        let checksum = expected.is_none().then_some(self.fnv.0);
        let done = Completed { status: self.status, length: self.length, checksum, close: self.close, differs_at };
        self.state = State::Head;
        done
    }
}

/// What a response to a target must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The status.
    pub status: u16,
    /// The exact body; none: the same as the first response for this
    /// target on the connection.
    pub body: Option<Arc<[u8]>>,
}

/// One request a client cycles through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The request target.
    pub path: String,
    /// HEAD instead of GET.
    pub head: bool,
    /// The response it must get.
    pub expect: Expect,
}

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// The `Host` header.
    pub host: String,
    /// Requests to cycle through, in order.
    pub targets: Arc<[Target]>,
    /// Keep the connection for many requests; otherwise one request per
    /// connection (with `Connection: close`).
    pub keep_alive: bool,
    /// Requests sent before waiting for responses (1: no pipelining).
    pub pipeline: usize,
}

/// One connection of the load generator.
#[derive(Debug)]
pub struct HttpClient {
    plan: Arc<ClientPlan>,
    /// Requests this core may still send (shared by its connections).
    budget: Rc<Cell<u64>>,
    next: usize,
    out: Vec<u8>,
    out_pos: usize,
    inflight: VecDeque<(usize, Instant)>,
    sent: u64,
    opened: Option<Instant>,
    input: InputBuf,
    parser: ResponseParser,
    first: Vec<Option<(u16, u64, Option<u64>)>>,
    server_closes: bool,
}

impl HttpClient {
    /// A connection following `plan`, taking requests from `budget`,
    /// starting with target `first_target`; `opened` is when the
    /// connection was started (the first request's latency counts from it).
    pub fn new(plan: Arc<ClientPlan>, budget: Rc<Cell<u64>>, first_target: usize, opened: Instant) -> HttpClient {
        let n = plan.targets.len().max(1);
        HttpClient {
            plan,
            budget,
            next: first_target % n,
            out: Vec::new(),
            out_pos: 0,
            inflight: VecDeque::new(),
            sent: 0,
            opened: Some(opened),
            input: InputBuf::new(MAX_RESPONSE_HEAD),
            parser: ResponseParser::new(),
            first: vec![None; n],
            server_closes: false,
        }
    }

    /// This session made new for another connection, as
    /// [`new`](Self::new) with the same plan and budget, keeping the memory
    /// of its buffers.
    pub fn restart(&mut self, first_target: usize, opened: Instant) {
        self.next = first_target % self.plan.targets.len().max(1);
        self.out.clear();
        self.out_pos = 0;
        self.inflight.clear();
        self.sent = 0;
        self.opened = Some(opened);
        self.input.consume(usize::MAX);
        self.parser = ResponseParser::new();
        self.first.iter_mut().for_each(|f| *f = None);
        self.server_closes = false;
    }

    fn fill(&mut self, now: Instant) {
        let depth = if self.plan.keep_alive { self.plan.pipeline.max(1) } else { 1 };
        while self.inflight.len() < depth
            && !self.server_closes
            && (self.plan.keep_alive || self.sent == 0)
            && self.budget.get() > 0
            && !self.plan.targets.is_empty()
        {
            self.budget.set(self.budget.get() - 1);
            let t = &self.plan.targets[self.next];
            if self.out_pos == self.out.len() {
                self.out.clear();
                self.out_pos = 0;
            }
            request(t.head, &self.plan.host, &t.path, !self.plan.keep_alive, &mut self.out);
            let started = self.opened.take().unwrap_or(now);
            self.inflight.push_back((self.next, started));
            self.sent += 1;
            self.next = (self.next + 1) % self.plan.targets.len();
        }
    }

    /// Checks a completed response against its target; false ends the
    /// connection.
    fn check(&mut self, done: Completed, tally: &mut Tally, now: Instant) -> bool {
        let Some((idx, started)) = self.inflight.pop_front() else { return false };
        let target = &self.plan.targets[idx];
        if done.status != target.expect.status {
            let (got, want, path) = (done.status, target.expect.status, target.path.clone());
            tally.fail(Failure::Mismatch, || format!("{path}: status {got}, expected {want}"));
            return false;
        }
        if let Some(at) = done.differs_at {
            let path = target.path.clone();
            tally.fail(Failure::Mismatch, || format!("{path}: body differs from the expected one at byte {at}"));
            return false;
        }
        if target.expect.body.is_none() && !target.head {
            let seen = (done.status, done.length, done.checksum);
            match self.first[idx] {
                None => self.first[idx] = Some(seen),
                Some(f) if f == seen => {}
                Some(f) => {
                    let path = target.path.clone();
                    tally.fail(Failure::Mismatch, || {
                        format!(
                            "{path}: {} bytes (checksum {:x}) after {} bytes (checksum {:x})",
                            seen.1,
                            seen.2.unwrap_or_default(),
                            f.1,
                            f.2.unwrap_or_default()
                        )
                    });
                    return false;
                }
            }
        }
        tally.complete(started, now);
        if done.close {
            self.server_closes = true;
        }
        true
    }

    fn expected(&self) -> (bool, Option<Arc<[u8]>>) {
        match self.inflight.front() {
            Some(&(i, _)) => {
                let t = &self.plan.targets[i];
                (t.head, t.expect.body.clone())
            }
            None => (false, None),
        }
    }

    fn fail(&mut self, tally: &mut Tally, kind: Failure, what: impl FnOnce() -> String) -> Step {
        tally.fail(kind, what);
        self.inflight.clear();
        Step::Close
    }
}

impl Session for HttpClient {
    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, now: Instant) -> Step {
        loop {
            self.fill(now);
            if let Err(e) = write_pending(stream, &self.out, &mut self.out_pos, tally) {
                return self.fail(tally, Failure::of(&e), || format!("sending a request: {e}"));
            }
            if self.inflight.is_empty() {
                return Step::Close;
            }
            // Parse what is buffered.
            let mut progressed = false;
            loop {
                let (head, expected) = self.expected();
                let parsed = self.parser.parse(self.input.data(), head, expected.as_deref());
                match parsed {
                    Err(e) => return self.fail(tally, Failure::Malformed, || e),
                    Ok((used, done)) => {
                        self.input.consume(used);
                        match done {
                            Some(d) => {
                                if !self.check(d, tally, now) {
                                    self.inflight.clear();
                                    return Step::Close;
                                }
                                progressed = true;
                                if self.server_closes && !self.inflight.is_empty() {
                                    let n = self.inflight.len();
                                    return self.fail(tally, Failure::Closed, || {
                                        format!("the server closed with {n} requests unanswered")
                                    });
                                }
                                if self.inflight.is_empty() {
                                    break;
                                }
                            }
                            None if used == 0 => break,
                            None => {}
                        }
                    }
                }
            }
            if progressed {
                continue;
            }
            match self.input.read_from(stream, tally) {
                Ok(Some(0)) => {
                    let (_, expected) = self.expected();
                    if let Some(d) = self.parser.eof(expected.as_deref()) {
                        self.check(d, tally, now);
                        self.inflight.clear();
                        return Step::Close;
                    }
                    let n = self.inflight.len();
                    return self.fail(tally, Failure::Closed, || format!("end of stream with {n} requests unanswered"));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Step::Wait,
                Err(e) => return self.fail(tally, Failure::of(&e), || format!("receiving: {e}")),
            }
        }
    }

    fn abandon(&mut self, tally: &mut Tally, why: Failure) {
        let n = self.inflight.len();
        if n > 0 {
            tally.fail(why, || format!("{n} requests unanswered"));
        }
        self.inflight.clear();
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
