//! The HTTP server session: one per connection.
//!
//! Requests are parsed with httparse from a fixed input buffer as bytes
//! arrive, so a request split over many reads and many requests in one
//! read (pipelining) are both handled; responses are queued and sent in
//! request order. Small responses are coalesced into one buffer (one write
//! for many pipelined replies); large bodies are written from the cache or
//! streamed from disk as the connection takes them.
//!
//! Rules, after RFC 9112:
//! - HTTP/1.1 keeps the connection open unless the request says
//!   `Connection: close`; HTTP/1.0 closes it unless the request says
//!   `Connection: keep-alive` (then the reply says so too).
//! - An HTTP/1.1 request without `Host` is a 400. A request body
//!   (`Content-Length`) is read and dropped; one larger than
//!   [`Limits::max_body`] gets 413 and the connection is closed. A header
//!   section larger than [`Limits::max_header`] gets 431. A
//!   `Transfer-Encoding` in a request gets 501 (request bodies are not
//!   decoded, so the next request could not be found).
//! - GET and HEAD only; any other method gets 405 with `Allow: GET, HEAD`
//!   and the connection stays usable.
//! - Bad syntax gets 400 and the connection is closed; so does every other
//!   error after which the request stream cannot be trusted.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::path::{PathError, resolve};
use super::site::{Body, Lookup, Site};
use super::{http_date, reason};
use crate::session::{InputBuf, Session, Step, Tally, write_pending};

/// Size limits of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request line plus headers, bytes.
    pub max_header: usize,
    /// Largest request body accepted (and dropped), bytes.
    pub max_body: u64,
    /// Most responses queued per connection before reading stops.
    pub max_queued: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_header: 16 * 1024, max_body: 1024 * 1024, max_queued: 64 }
    }
}

/// What the server cores share per core: the site and a cached date.
#[derive(Debug)]
pub struct HttpCore {
    site: Site,
    limits: Limits,
    date_secs: u64,
    date: String,
    /// Until when `date` is still the wall clock's second, on the
    /// monotonic clock the event loop reads anyway (`None`: look again).
    date_until: Option<Instant>,
    wall_clock: fn() -> SystemTime,
    /// Responses sent per status code class (index 2 = 2xx, …).
    pub status_classes: [u64; 6],
}

impl HttpCore {
    /// One core's server state over `site`.
    pub fn new(site: Site, limits: Limits) -> Rc<RefCell<HttpCore>> {
        HttpCore::with_wall_clock(site, limits, SystemTime::now)
    }

    /// Like [`new`](Self::new), with the `Date` header from `wall_clock`
    /// instead of the system's (a harness that must replay exactly).
    pub fn with_wall_clock(site: Site, limits: Limits, wall_clock: fn() -> SystemTime) -> Rc<RefCell<HttpCore>> {
        Rc::new(RefCell::new(HttpCore {
            site,
            limits,
            date_secs: u64::MAX,
            date: String::new(),
            date_until: None,
            wall_clock,
            status_classes: [0; 6],
        }))
    }

    /// The `Date` header's value at `now` (the event loop's time of this
    /// iteration). The wall clock is read once per second of it, not per
    /// response: when it is read, the time left to its next whole second
    /// says until when the value holds.
    fn date(&mut self, now: Instant) -> &str {
        if self.date_until.is_none_or(|until| now >= until) {
            let wall = (self.wall_clock)();
            let since = wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            if since.as_secs() != self.date_secs {
                self.date_secs = since.as_secs();
                self.date = http_date(wall);
            }
            let left = Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(since.subsec_nanos())));
            self.date_until = now.checked_add(left);
        }
        &self.date
    }
}

/// Room for a response head's fixed parts (status line, `Server`, `Date`,
/// `Content-Type`, `Content-Length`, the connection header).
const HEAD_ROOM: usize = 160;

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Bodies up to this size are copied behind their header (one write).
const COALESCE_MAX: usize = 16 * 1024;

#[derive(Debug)]
enum BodyCursor {
    Memory(Arc<[u8]>, usize),
    File { file: std::fs::File, remaining: u64 },
}

#[derive(Debug)]
struct Response {
    bytes: Vec<u8>,
    pos: usize,
    body: Option<BodyCursor>,
}

/// One connection's server side.
#[derive(Debug)]
pub struct HttpServer {
    core: Rc<RefCell<HttpCore>>,
    limits: Limits,
    input: InputBuf,
    /// Request body bytes still to drop.
    discard: u64,
    out: VecDeque<Response>,
    /// Buffer for streaming a file body.
    chunk: Vec<u8>,
    chunk_pos: usize,
    /// No more requests will be parsed; close once `out` is sent.
    closing: bool,
    read_closed: bool,
    /// The event loop's time of the request being answered.
    now: Option<Instant>,
}

enum Parsed {
    Queued,
    NeedMore,
}

impl HttpServer {
    /// A new connection served by `core`.
    pub fn new(core: Rc<RefCell<HttpCore>>) -> HttpServer {
        let limits = core.borrow().limits;
        HttpServer {
            core,
            limits,
            input: InputBuf::new(limits.max_header),
            discard: 0,
            out: VecDeque::new(),
            chunk: Vec::new(),
            chunk_pos: 0,
            closing: false,
            read_closed: false,
            now: None,
        }
    }

    /// Queues a response; an in-memory one joins the previous one if that
    /// has no separate body, so pipelined replies leave in one write.
    fn queue(&mut self, mut head: Vec<u8>, body: Option<BodyCursor>) {
        let body = match body {
            Some(BodyCursor::Memory(b, 0)) if b.len() <= COALESCE_MAX => {
                head.extend_from_slice(&b);
                None
            }
            other => other,
        };
        if let Some(last) = self.out.back_mut()
            && last.body.is_none()
            && last.pos == 0
        {
            last.bytes.extend_from_slice(&head);
            last.body = body;
            return;
        }
        self.out.push_back(Response { bytes: head, pos: 0, body });
    }

    fn head(&self, status: u16, len: u64, ctype: &str, keep_alive: bool, http10: bool, extra: &str) -> Vec<u8> {
        let mut core = self.core.borrow_mut();
        if let Some(c) = core.status_classes.get_mut(usize::from(status / 100)) {
            *c += 1;
        }
        let connection = match (keep_alive, http10) {
            (false, _) => "Connection: close\r\n",
            (true, true) => "Connection: keep-alive\r\n",
            (true, false) => "",
        };
        // Pieces appended, not `format!`: this runs once per response, and
        // formatting machinery and its reallocations were a fifth of the
        // server's instructions per keep-alive request.
        let reason = reason(status);
        let now = self.now.unwrap_or_else(Instant::now);
        let date = core.date(now);
        // With room for a body that `queue` copies behind the head.
        let body_room = len.min(COALESCE_MAX as u64) as usize;
        let mut head =
            Vec::with_capacity(HEAD_ROOM + reason.len() + date.len() + ctype.len() + extra.len() + body_room);
        head.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(&mut head, u64::from(status));
        head.push(b' ');
        head.extend_from_slice(reason.as_bytes());
        head.extend_from_slice(b"\r\nServer: ixtcp-httpd\r\nDate: ");
        head.extend_from_slice(date.as_bytes());
        head.extend_from_slice(b"\r\nContent-Type: ");
        head.extend_from_slice(ctype.as_bytes());
        head.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(&mut head, len);
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(connection.as_bytes());
        head.extend_from_slice(extra.as_bytes());
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Queues an error page; `close` ends the connection after it.
    fn error(&mut self, status: u16, detail: &str, head_only: bool, keep_alive: bool, http10: bool, extra: &str) {
        let keep_alive = keep_alive && !self.closing;
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>{status} {r}</title></head>\n<body><h1>{status} {r}</h1>\n<p>{detail}</p>\n</body></html>\n",
            r = reason(status)
        );
        let head = self.head(status, body.len() as u64, "text/html; charset=utf-8", keep_alive, http10, extra);
        let body = (!head_only).then(|| BodyCursor::Memory(Arc::from(body.into_bytes()), 0));
        self.queue(head, body);
        if !keep_alive {
            self.closing = true;
        }
    }

    /// Parses one request from the input and queues its response.
    fn parse_one(&mut self, now: Instant, tally: &mut Tally) -> Parsed {
        self.now = Some(now);
        if self.discard > 0 {
            let n = self.discard.min(self.input.len() as u64) as usize;
            self.consume(n);
            self.discard -= n as u64;
            if self.discard > 0 {
                return Parsed::NeedMore;
            }
        }
        if self.input.is_empty() {
            return Parsed::NeedMore;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let header_len = match req.parse(self.input.data()) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if !self.input.is_full() => return Parsed::NeedMore,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                self.closing = true;
                let max = self.limits.max_header;
                self.error(431, &format!("The request header section exceeds {max} bytes."), false, false, false, "");
                tally.transactions += 1;
                return Parsed::Queued;
            }
            Err(e) => {
                self.closing = true;
                self.error(400, &format!("The request could not be parsed ({e})."), false, false, false, "");
                tally.transactions += 1;
                return Parsed::Queued;
            }
        };
        let http10 = req.version == Some(0);
        let method = req.method.unwrap_or("");
        // Resolved now, while the request borrows the input; answered in
        // its turn below, after the checks that come first.
        let resolved = resolve(req.path.unwrap_or(""));
        let head_only = method == "HEAD";
        let method_allowed = method == "GET" || head_only;
        let mut close_token = false;
        let mut keep_alive_token = false;
        let mut host = false;
        let mut content_length: Option<u64> = None;
        let mut bad_length = false;
        let mut transfer_encoding = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in String::from_utf8_lossy(h.value).split(',') {
                    let token = token.trim();
                    close_token |= token.eq_ignore_ascii_case("close");
                    keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("host") {
                host = true;
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let parsed = std::str::from_utf8(h.value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok());
                match (parsed, content_length) {
                    (Some(n), None) => content_length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => bad_length = true,
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
            }
        }
        self.consume(header_len);
        tally.transactions += 1;
        let keep_alive = if http10 { keep_alive_token && !close_token } else { !close_token };

        if transfer_encoding {
            self.closing = true;
            self.error(501, "Request bodies with a transfer coding are not supported.", head_only, false, http10, "");
            return Parsed::Queued;
        }
        if bad_length {
            self.closing = true;
            self.error(400, "The Content-Length header is not a number.", head_only, false, http10, "");
            return Parsed::Queued;
        }
        let body_len = content_length.unwrap_or(0);
        if body_len > self.limits.max_body {
            self.closing = true;
            let max = self.limits.max_body;
            self.error(413, &format!("Request bodies are limited to {max} bytes."), head_only, false, http10, "");
            return Parsed::Queued;
        }
        self.discard = body_len;
        if !http10 && !host {
            self.closing = true;
            self.error(400, "An HTTP/1.1 request needs a Host header.", head_only, false, http10, "");
            return Parsed::Queued;
        }
        if !method_allowed {
            let extra = "Allow: GET, HEAD\r\n";
            self.error(405, "Only GET and HEAD are served here.", false, keep_alive, http10, extra);
            return Parsed::Queued;
        }
        let resolved = match resolved {
            Ok(r) => r,
            Err(e) => {
                let (status, close) = match e {
                    PathError::Escape => (403, false),
                    PathError::Malformed(_) => (400, true),
                };
                if close {
                    self.closing = true;
                }
                self.error(status, &e.to_string(), head_only, keep_alive && !close, http10, "");
                return Parsed::Queued;
            }
        };
        let found = self.core.borrow_mut().site.lookup(&resolved, now);
        match found {
            Lookup::Found { body, len, content_type } => {
                let head = self.head(200, len, content_type, keep_alive, http10, "");
                let body = match body {
                    _ if head_only || len == 0 => None,
                    Body::Memory(b) => Some(BodyCursor::Memory(b, 0)),
                    Body::File(file) => Some(BodyCursor::File { file, remaining: len }),
                };
                self.queue(head, body);
                if !keep_alive {
                    self.closing = true;
                }
            }
            Lookup::NotFound => {
                self.error(404, "There is no such file here.", head_only, keep_alive, http10, "");
            }
            Lookup::Forbidden => {
                self.error(403, "This file may not be served.", head_only, keep_alive, http10, "");
            }
            Lookup::Failed => {
                self.error(500, "The file could not be read.", head_only, keep_alive, http10, "");
            }
        }
        Parsed::Queued
    }

    fn consume(&mut self, n: usize) {
        self.input.consume(n);
    }

    /// Writes queued responses; `Ok(true)` when all are sent.
    fn flush<S: Write>(&mut self, stream: &mut S, tally: &mut Tally) -> std::io::Result<bool> {
        while let Some(r) = self.out.front_mut() {
            if !write_pending(stream, &r.bytes, &mut r.pos, tally)? {
                return Ok(false);
            }
            let body_sent = match &mut r.body {
                None => true,
                Some(BodyCursor::Memory(b, pos)) => write_pending(stream, b, pos, tally)?,
                Some(BodyCursor::File { file, remaining }) => loop {
                    if self.chunk_pos < self.chunk.len()
                        && !write_pending(stream, &self.chunk, &mut self.chunk_pos, tally)?
                    {
                        break false;
                    }
                    if *remaining == 0 {
                        break true;
                    }
                    let want = (*remaining).min(64 * 1024) as usize;
                    self.chunk.resize(want, 0);
                    let n = file.read(&mut self.chunk)?;
                    if n == 0 {
                        // The file shrank while being sent: the reply cannot be finished.
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    self.chunk.truncate(n);
                    self.chunk_pos = 0;
                    *remaining -= n as u64;
                },
            };
            if !body_sent {
                return Ok(false);
            }
            self.chunk.clear();
            self.chunk_pos = 0;
            self.out.pop_front();
        }
        Ok(true)
    }
}

impl Session for HttpServer {
    /// New for the next connection of the same [`HttpCore`] (the factory a
    /// server loop has makes them all with one core).
    fn renew(&mut self) -> bool {
        self.limits = self.core.borrow().limits;
        self.input.consume(usize::MAX);
        self.discard = 0;
        self.out.clear();
        self.chunk.clear();
        self.chunk_pos = 0;
        self.closing = false;
        self.read_closed = false;
        self.now = None;
        true
    }

    fn drive<S: Read + Write>(&mut self, stream: &mut S, tally: &mut Tally, now: Instant) -> Step {
        loop {
            let sent_all = match self.flush(stream, tally) {
                Ok(all) => all,
                Err(_) => return Step::Close,
            };
            if sent_all && self.closing {
                return Step::Close;
            }
            let mut queued = false;
            while !self.closing && self.out.len() < self.limits.max_queued {
                match self.parse_one(now, tally) {
                    Parsed::Queued => queued = true,
                    Parsed::NeedMore => break,
                }
            }
            if self.read_closed && !self.closing {
                // The client sent its last request; a partial one is dropped.
                self.closing = true;
                continue;
            }
            if queued && sent_all {
                continue;
            }
            if self.closing || self.out.len() >= self.limits.max_queued {
                // Nothing more to read for now: wait until the replies drain.
                return Step::Wait;
            }
            if self.input.is_full() {
                // parse_one answers a full buffer with 431; never read into nothing.
                return Step::Close;
            }
            match self.input.read_from(stream, tally) {
                Ok(Some(0)) => self.read_closed = true,
                Ok(Some(_)) => {}
                Ok(None) => return Step::Wait,
                Err(_) => return Step::Close,
            }
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
