//! Tests of URL parsing, response parsing, and the client session against
//! the server session over in-memory scripts.

use super::*;
use crate::http::server::{HttpCore, HttpServer, Limits};
use crate::http::site::{BUILTIN_PAGE, Site, SiteConfig};
use crate::session::testing::Script;

#[test]
fn urls_parse_and_bad_ones_say_why() {
    let u: Url = "http://10.0.0.1:8080/a/b?c=d".parse().unwrap();
    assert_eq!(u.addr, "10.0.0.1:8080".parse().unwrap());
    assert_eq!((u.host.as_str(), u.path.as_str()), ("10.0.0.1:8080", "/a/b?c=d"));
    let u: Url = "http://127.0.0.1".parse().unwrap();
    assert_eq!((u.addr.port(), u.path.as_str()), (80, "/"));
    assert_eq!("http://localhost:81/".parse::<Url>().unwrap().addr, "127.0.0.1:81".parse().unwrap());
    for (bad, why) in [
        ("https://10.0.0.1/", "only http://"),
        ("10.0.0.1/", "only http://"),
        ("http://example.com/", "IPv4 address"),
        ("http://10.0.0.1:0/", "port"),
        ("http://10.0.0.1:99999/", "port"),
        ("http://10.0.0.1/a b", "spaces"),
    ] {
        let e = bad.parse::<Url>().unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn requests_are_well_formed() {
    let mut v = Vec::new();
    request(false, "h:1", "/x", true, &mut v);
    assert_eq!(v, b"GET /x HTTP/1.1\r\nHost: h:1\r\nUser-Agent: ixtcp-http_load\r\nConnection: close\r\n\r\n");
    let mut hs = [httparse::EMPTY_HEADER; 8];
    assert!(httparse::Request::new(&mut hs).parse(&v).unwrap().is_complete());
}

#[test]
fn responses_parse_across_any_split() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    for split in 1..resp.len() {
        let mut p = ResponseParser::new();
        let mut buf = Vec::new();
        let mut done = Vec::new();
        for part in [&resp[..split], &resp[split..]] {
            buf.extend_from_slice(part);
            loop {
                let (used, d) = p.parse(&buf, false, None).unwrap();
                buf.drain(..used);
                match d {
                    Some(d) => done.push(d),
                    None if used == 0 => break,
                    None => {}
                }
            }
        }
        assert_eq!(done.len(), 2, "split at {split}");
        assert_eq!((done[0].status, done[0].length, done[0].checksum), (200, 5, Some(Fnv::of(b"hello"))));
        assert_eq!((done[1].status, done[1].length), (404, 0));
    }
}

#[test]
fn head_204_and_close_delimited_bodies() {
    let mut p = ResponseParser::new();
    let (_, d) = p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, None).unwrap();
    assert_eq!(d.unwrap().length, 0);
    let (_, d) = p.parse(b"HTTP/1.1 204 No Content\r\n\r\n", false, None).unwrap();
    assert_eq!(d.unwrap().status, 204);
    let (used, d) = p.parse(b"HTTP/1.0 200 OK\r\n\r\nabc", false, Some(b"abc")).unwrap();
    assert_eq!((used, d), (22, None));
    let d = p.eof(Some(b"abc")).unwrap();
    assert_eq!((d.length, d.close, d.differs_at), (3, true, None));
    assert!(ResponseParser::new().eof(None).is_none());
}

#[test]
fn wrong_bodies_and_bad_heads_are_caught() {
    let mut p = ResponseParser::new();
    let (_, d) = p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelLo", false, Some(b"hello")).unwrap();
    assert_eq!(d.unwrap().differs_at, Some(3));
    let (_, d) = p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhel", false, Some(b"hello")).unwrap();
    assert_eq!(d.unwrap().differs_at, Some(3));
    let (_, d) = p.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!", false, Some(b"hello")).unwrap();
    assert_eq!(d.unwrap().differs_at, Some(5));
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"SMTP ready\r\n\r\n",
    ] {
        assert!(ResponseParser::new().parse(bad, false, None).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

/// Runs a client session against a server session, moving bytes between
/// them in pieces of `piece` bytes, until both are idle or one closes.
fn converse(client: &mut HttpClient, server: &mut HttpServer, piece: usize) -> (Tally, Tally, Step) {
    let (mut ct, mut st) = (Tally::default(), Tally::default());
    let (mut cs, mut ss) = (Script::new(), Script::new());
    let now = Instant::now();
    let mut step = client.drive(&mut cs, &mut ct, now);
    for _ in 0..10_000 {
        for c in std::mem::take(&mut cs.output).chunks(piece) {
            ss.feed(c);
        }
        let sstep = server.drive(&mut ss, &mut st, now);
        if sstep == Step::Close {
            ss.eof = true;
        }
        for c in std::mem::take(&mut ss.output).chunks(piece) {
            cs.feed(c);
        }
        if sstep == Step::Close {
            cs.eof = true;
        }
        step = client.drive(&mut cs, &mut ct, now);
        if step == Step::Close || (cs.input.is_empty() && cs.output.is_empty() && ss.input.is_empty()) {
            break;
        }
    }
    (ct, st, step)
}

fn server(root: Option<&std::path::Path>) -> HttpServer {
    let site = Site::new(SiteConfig { root: root.map(Into::into), ..SiteConfig::default() }).unwrap();
    HttpServer::new(HttpCore::new(site, Limits::default()))
}

fn target(path: &str, status: u16, body: Option<&[u8]>) -> Target {
    Target { path: path.into(), head: false, expect: Expect { status, body: body.map(Arc::from) } }
}

#[test]
fn keep_alive_pipelined_client_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("one"), b"1").unwrap();
    std::fs::write(dir.path().join("zero"), b"").unwrap();
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![
            target("/big", 200, Some(&big)),
            target("/one", 200, Some(b"1")),
            target("/zero", 200, Some(b"")),
            target("/nope", 404, None),
            target("/../x", 403, None),
        ]
        .into(),
        keep_alive: true,
        pipeline: 4,
    });
    let budget = Rc::new(Cell::new(23));
    let mut c = HttpClient::new(plan, Rc::clone(&budget), 0, Instant::now());
    let mut s = server(Some(dir.path()));
    let (ct, st, step) = converse(&mut c, &mut s, 1000);
    assert_eq!(step, Step::Close, "the budget ran out");
    assert_eq!(ct.failure_line(), "none", "{:?}", ct.first_failures);
    assert_eq!(ct.transactions, 23);
    assert_eq!(st.transactions, 23);
    assert_eq!(budget.get(), 0);
}

#[test]
fn one_request_per_connection() {
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/", 200, Some(BUILTIN_PAGE.as_bytes()))].into(),
        keep_alive: false,
        pipeline: 1,
    });
    let budget = Rc::new(Cell::new(5));
    let mut c = HttpClient::new(plan, Rc::clone(&budget), 0, Instant::now());
    let (ct, _, step) = converse(&mut c, &mut server(None), 7);
    assert_eq!((step, ct.transactions, ct.total_failures(), budget.get()), (Step::Close, 1, 0, 4));
}

#[test]
fn a_wrong_status_or_body_is_a_mismatch() {
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/", 200, Some(b"not the page"))].into(),
        keep_alive: true,
        pipeline: 1,
    });
    let mut c = HttpClient::new(plan, Rc::new(Cell::new(3)), 0, Instant::now());
    let (ct, _, step) = converse(&mut c, &mut server(None), 100);
    assert_eq!((step, ct.transactions, ct.failures(Failure::Mismatch)), (Step::Close, 0, 1));

    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/missing", 200, None)].into(),
        keep_alive: true,
        pipeline: 1,
    });
    let mut c = HttpClient::new(plan, Rc::new(Cell::new(3)), 0, Instant::now());
    let (ct, _, _) = converse(&mut c, &mut server(None), 100);
    assert!(ct.first_failures[0].contains("status 404, expected 200"), "{:?}", ct.first_failures);
}

#[test]
fn a_server_closing_early_is_counted() {
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/", 200, None)].into(),
        keep_alive: true,
        pipeline: 1,
    });
    let mut c = HttpClient::new(plan, Rc::new(Cell::new(3)), 0, Instant::now());
    let mut s = Script::new();
    let mut t = Tally::default();
    assert_eq!(c.drive(&mut s, &mut t, Instant::now()), Step::Wait);
    s.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    s.eof = true;
    assert_eq!(c.drive(&mut s, &mut t, Instant::now()), Step::Close);
    assert_eq!(t.failures(Failure::Closed), 1);
}

/// A session made new with `restart` (after a keep-alive run through a
/// large body, and after one cut off in the middle of a response) does
/// what a new one does: the same requests, transactions and bytes.
#[test]
fn a_restarted_client_is_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("page"), b"a small page").unwrap();
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/big", 200, Some(&big)), target("/page", 200, Some(b"a small page"))].into(),
        keep_alive: true,
        pipeline: 2,
    });
    let summary = |t: &Tally| (t.transactions, t.bytes_in, t.bytes_out, t.failure_line());
    let budget = Rc::new(Cell::new(6));
    let mut used = HttpClient::new(Arc::clone(&plan), Rc::clone(&budget), 0, Instant::now());
    let (ct, _, step) = converse(&mut used, &mut server(Some(dir.path())), 1000);
    assert_eq!((step, ct.transactions, ct.total_failures()), (Step::Close, 6, 0));
    // Cut off inside a body: requests in flight, the parser mid-response.
    budget.set(3);
    used.restart(1, Instant::now());
    let (mut s, mut t) = (Script::new(), Tally::default());
    assert_eq!(used.drive(&mut s, &mut t, Instant::now()), Step::Wait);
    s.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    s.eof = true;
    assert_eq!(used.drive(&mut s, &mut t, Instant::now()), Step::Close);
    assert_eq!(t.failures(Failure::Closed), 1);
    for first in [0, 1] {
        budget.set(5);
        used.restart(first, Instant::now());
        let again = converse(&mut used, &mut server(Some(dir.path())), 700);
        budget.set(5);
        let mut fresh = HttpClient::new(Arc::clone(&plan), Rc::clone(&budget), first, Instant::now());
        let new = converse(&mut fresh, &mut server(Some(dir.path())), 700);
        assert_eq!((again.2, summary(&again.0)), (new.2, summary(&new.0)), "first target {first}");
        assert_eq!(summary(&again.1), summary(&new.1), "the server saw the same");
        assert_eq!(again.0.transactions, 5);
    }
}

/// A server session renewed after a keep-alive run and after a request cut
/// off in its middle serves the next connection as a new one would.
#[test]
fn a_renewed_server_is_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let plan = Arc::new(ClientPlan {
        host: "x".into(),
        targets: vec![target("/big", 200, Some(&big)), target("/nope", 404, None)].into(),
        keep_alive: true,
        pipeline: 2,
    });
    let summary = |t: &Tally| (t.transactions, t.bytes_in, t.bytes_out, t.failure_line());
    let mut used = server(Some(dir.path()));
    let client = |n| HttpClient::new(Arc::clone(&plan), Rc::new(Cell::new(n)), 0, Instant::now());
    let (ct, st, _) = converse(&mut client(4), &mut used, 900);
    assert_eq!((ct.transactions, st.transactions, ct.total_failures()), (4, 4, 0));
    // Cut off inside a request head, with the end of stream seen.
    assert!(used.renew());
    let (mut s, mut t) = (Script::new(), Tally::default());
    s.feed(b"GET /big HTTP/1.1\r\nHo");
    s.eof = true;
    assert_eq!(used.drive(&mut s, &mut t, Instant::now()), Step::Close);
    assert!(used.renew());
    let again = converse(&mut client(5), &mut used, 700);
    let new = converse(&mut client(5), &mut server(Some(dir.path())), 700);
    assert_eq!((again.2, summary(&again.0), summary(&again.1)), (new.2, summary(&new.0), summary(&new.1)));
    assert_eq!(again.1.transactions, 5);
}
