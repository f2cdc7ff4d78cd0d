//! Tests of the server session over a scripted stream.

use super::*;
use crate::http::site::{BUILTIN_PAGE, SiteConfig};
use crate::session::testing::Script;
use std::collections::HashMap;

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Splits `bytes` into responses; `head_only[i]` says response i answers a HEAD.
fn replies(mut bytes: &[u8], head_only: &[bool]) -> Vec<Reply> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(bytes).expect("well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response: {:?}", String::from_utf8_lossy(bytes)),
        };
        let headers: HashMap<String, String> = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let len: usize = headers["content-length"].parse().unwrap();
        let status = r.code.unwrap();
        let body_len = if head_only.get(out.len()).copied().unwrap_or(false) { 0 } else { len };
        out.push(Reply { status, headers, body: bytes[n..n + body_len].to_vec() });
        bytes = &bytes[n + body_len..];
    }
    out
}

fn server_with(root: Option<&std::path::Path>) -> HttpServer {
    let site = Site::new(SiteConfig { root: root.map(Into::into), cache_file_max: 4096, ..SiteConfig::default() });
    HttpServer::new(HttpCore::new(site.unwrap(), Limits { max_header: 1024, max_body: 100, max_queued: 64 }))
}

fn run(server: &mut HttpServer, s: &mut Script) -> Step {
    server.drive(s, &mut Tally::default(), Instant::now())
}

fn site_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"first file").unwrap();
    std::fs::write(dir.path().join("b.css"), b"body{}").unwrap();
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), big).unwrap();
    dir
}

#[test]
fn get_keeps_an_http11_connection_open() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(run(&mut srv, &mut s), Step::Wait);
    let r = replies(&s.output, &[]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, BUILTIN_PAGE.as_bytes());
    assert_eq!(r[0].headers["content-type"], "text/html; charset=utf-8");
    assert!(r[0].headers["date"].ends_with(" GMT"));
    assert!(!r[0].headers.contains_key("connection"));
}

#[test]
fn head_sends_the_length_without_the_body() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(run(&mut srv, &mut s), Step::Wait);
    let r = replies(&s.output, &[true, true]);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].headers["content-length"], BUILTIN_PAGE.len().to_string());
    assert!(r[0].body.is_empty());
    assert_eq!(r[1].status, 404);
    assert!(r[1].body.is_empty());
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(run(&mut srv, &mut s), Step::Close);
    let r = replies(&s.output, &[]);
    assert_eq!((r.len(), r[0].status), (1, 200));
    assert_eq!(r[0].headers["connection"], "close");

    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert_eq!(run(&mut srv, &mut s), Step::Wait);
    assert_eq!(replies(&s.output, &[])[0].headers["connection"], "keep-alive");

    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(run(&mut srv, &mut s), Step::Close);
    assert_eq!(replies(&s.output, &[]).len(), 1, "nothing after Connection: close");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = site_dir();
    let mut srv = server_with(Some(dir.path()));
    let mut s = Script::new();
    s.feed(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /b.css HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(run(&mut srv, &mut s), Step::Wait);
    let r = replies(&s.output, &[]);
    let got: Vec<(u16, &[u8])> = r.iter().map(|r| (r.status, &r.body[..])).collect();
    assert_eq!(got[0], (200, &b"first file"[..]));
    assert_eq!(got[1], (200, &b"body{}"[..]));
    assert_eq!(got[2].0, 404);
    assert_eq!(got[3], (200, &b""[..]));
    assert_eq!(got[4], (200, &b"first file"[..]));
    assert_eq!(r[1].headers["content-type"], "text/css; charset=utf-8");
}

#[test]
fn a_request_arriving_byte_by_byte_is_parsed() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    for b in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
        s.feed(&[*b]);
        s.feed(b"");
    }
    let mut t = Tally::default();
    for _ in 0..100 {
        if srv.drive(&mut s, &mut t, Instant::now()) != Step::Wait || s.input.is_empty() {
            break;
        }
    }
    assert_eq!(replies(&s.output, &[])[0].status, 200);
    assert_eq!(t.transactions, 1);
}

#[test]
fn bad_requests_get_the_right_status() {
    let cases: &[(&[u8], u16, Step)] = &[
        (b"GARBAGE\r\n\r\n", 400, Step::Close),
        (b"GET / HTTP/1.1\r\n\r\n", 400, Step::Close),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, Step::Close),
        (b"GET /..%2fx HTTP/1.1\r\nHost: x\r\n\r\n", 400, Step::Close),
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403, Step::Wait),
        (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403, Step::Wait),
        (b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 404, Step::Wait),
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, Step::Wait),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413, Step::Close),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, Step::Close),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501, Step::Close),
    ];
    for (req, status, step) in cases {
        let mut srv = server_with(None);
        let mut s = Script::new();
        s.feed(req);
        let what = String::from_utf8_lossy(req);
        assert_eq!(run(&mut srv, &mut s), *step, "{what}");
        let r = replies(&s.output, &[]);
        assert_eq!(r.len(), 1, "{what}");
        assert_eq!(r[0].status, *status, "{what}");
        let body = String::from_utf8_lossy(&r[0].body);
        assert!(body.contains(&format!("<h1>{status} {}</h1>", reason(*status))), "{what}: {body}");
        if *status == 405 {
            assert_eq!(r[0].headers["allow"], "GET, HEAD");
        }
        if *step == Step::Close {
            assert_eq!(r[0].headers["connection"], "close", "{what}");
        }
    }
}

#[test]
fn a_too_large_header_gets_431() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 2000));
    s.feed(&req);
    assert_eq!(run(&mut srv, &mut s), Step::Close);
    assert_eq!(replies(&s.output, &[])[0].status, 431);
}

#[test]
fn method_not_allowed_drops_the_body_and_serves_the_next_request() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello");
    s.feed(b" worldGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut t = Tally::default();
    assert_eq!(srv.drive(&mut s, &mut t, Instant::now()), Step::Wait);
    let r = replies(&s.output, &[]);
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), vec![405, 200]);
}

#[test]
fn large_files_stream_through_a_slow_connection() {
    let dir = site_dir();
    let mut srv = server_with(Some(dir.path()));
    let mut s = Script::new();
    s.feed(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut t = Tally::default();
    let mut rounds = 0;
    loop {
        s.write_room = 7000;
        let step = srv.drive(&mut s, &mut t, Instant::now());
        assert_eq!(step, Step::Wait);
        rounds += 1;
        if s.write_room > 0 || rounds > 1000 {
            break;
        }
    }
    assert!(rounds > 40, "{rounds}");
    let r = replies(&s.output, &[]);
    let expected: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].body, expected);
    assert_eq!(r[0].headers["content-type"], "application/octet-stream");
    assert_eq!(r[1].body, b"first file");
}

#[test]
fn end_of_input_finishes_replies_then_closes() {
    let mut srv = server_with(None);
    let mut s = Script::new();
    s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo");
    s.eof = true;
    assert_eq!(run(&mut srv, &mut s), Step::Close);
    assert_eq!(replies(&s.output, &[]).len(), 1);
}

#[test]
fn decimals_are_written_exactly() {
    for n in [0u64, 7, 10, 99, 100, 1_234_567, u64::MAX] {
        let mut out = b"x".to_vec();
        push_decimal(&mut out, n);
        assert_eq!(out, format!("x{n}").into_bytes());
    }
}

#[test]
fn the_head_is_byte_for_byte_the_documented_one() {
    fn fixed() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }
    let site = Site::new(SiteConfig::default()).unwrap();
    let mut server = HttpServer::new(HttpCore::with_wall_clock(site, Limits::default(), fixed));
    let head = server.head(405, 1234, "text/plain", true, true, "Allow: GET, HEAD\r\n");
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "HTTP/1.1 405 Method Not Allowed\r\nServer: ixtcp-httpd\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Content-Type: text/plain\r\nContent-Length: 1234\r\nConnection: keep-alive\r\nAllow: GET, HEAD\r\n\r\n"
    );
    server.now = Some(Instant::now());
    let head = server.head(200, 0, "text/html", false, false, "");
    assert!(String::from_utf8(head).unwrap().ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
}

#[test]
fn the_wall_clock_is_read_once_per_second_of_event_loop_time() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static READS: AtomicU64 = AtomicU64::new(0);
    fn counted() -> SystemTime {
        // 0.25 s into a second: the value holds for 0.75 s of loop time.
        READS.fetch_add(1, Ordering::Relaxed);
        SystemTime::UNIX_EPOCH + Duration::from_millis(784_111_777_250)
    }
    let site = Site::new(SiteConfig::default()).unwrap();
    let core = HttpCore::with_wall_clock(site, Limits::default(), counted);
    let t0 = Instant::now();
    let mut core = core.borrow_mut();
    for ms in [0, 1, 500, 749] {
        assert_eq!(core.date(t0 + Duration::from_millis(ms)), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
    assert_eq!(READS.load(Ordering::Relaxed), 1, "read again within the second");
    core.date(t0 + Duration::from_millis(750));
    assert_eq!(READS.load(Ordering::Relaxed), 2, "not read again at the next second");
}
