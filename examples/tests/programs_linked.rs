//! The programs over two linked 82599 models, no root needed:
//! - httpd (in process, `program::serve_http`) driven by http_load's client
//!   (`program::load_http`): files of 0 B, 1 B, 100 KiB and 10 MiB, with
//!   and without keep-alive, every body compared with the file; pipelined
//!   requests answered in order; bad requests get their status; `..` is
//!   refused;
//! - the `echo_client` binary with `--nic model` (its in-process echo
//!   server on a linked model), persistent and new-connection, each in
//!   both runtimes;
//! - the `http_load` binary with `--nic model --root --expect-dir`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use ixtcp_examples::http::client::{ClientPlan, Expect, Target};
use ixtcp_examples::program::{HttpLoad, load_http, run_linked, serve_http};
use ixtcp_examples::reactor::{Gauge, Until};
use ixtcp_host::{HostConfig, LinkedHosts};
use ixtcp_sockapi::{Context, Mode, TcpStream};
use ixtcp_stack::StackConfig;

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);

/// The test files: name and size.
const FILES: [(&str, usize); 4] = [("empty", 0), ("one", 1), ("hundred-k", 100 * 1024), ("ten-m", 10 * 1024 * 1024)];

fn write_site(dir: &Path) {
    for (name, size) in FILES {
        // Contents that differ at every offset and between files.
        let body: Vec<u8> =
            (0..size).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ name.len() as u8).collect();
        std::fs::write(dir.join(name), body).expect("write test file");
    }
    std::fs::write(dir.join("index.html"), b"<p>index</p>\n").expect("write index");
}

fn hosts(mode: Mode) -> LinkedHosts {
    let cfg = |ip: Ipv4Addr| HostConfig::model(StackConfig::new(ip, 24), mode);
    LinkedHosts::start(cfg(*SERVER.ip()), cfg(Ipv4Addr::new(10, 0, 0, 2))).expect("start linked hosts")
}

/// One response read from a blocking stream: status and body.
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no status in {head:?}"))?;
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
            let start = end + 4;
            while pending.len() < start + len {
                let n = s.read(&mut buf).map_err(|e| format!("reading a body: {e}"))?;
                if n == 0 {
                    return Err("end of stream inside a body".into());
                }
                pending.extend_from_slice(&buf[..n]);
            }
            let body = pending[start..start + len].to_vec();
            pending.drain(..start + len);
            return Ok((status, body));
        }
        let n = s.read(&mut buf).map_err(|e| format!("reading a head: {e}"))?;
        if n == 0 {
            return Err(format!("end of stream before a response ({} bytes pending)", pending.len()));
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

fn connect(ctx: &Context) -> Result<TcpStream, String> {
    let s = TcpStream::connect(ctx, SocketAddr::V4(SERVER)).map_err(|e| format!("connect: {e}"))?;
    // Blocking: the first write waits for the handshake.
    s.set_nonblocking(false);
    Ok(s)
}

/// Requests sent in one write must be answered in order.
fn pipelined(ctx: &Context, root: &Path) -> Result<(), String> {
    let mut s = connect(ctx)?;
    let names = ["one", "hundred-k", "empty", "one"];
    let mut req = Vec::new();
    for n in names {
        req.extend_from_slice(format!("GET /{n} HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n").as_bytes());
    }
    s.write_all(&req).map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    for n in names {
        let (status, body) = read_response(&mut s, &mut pending)?;
        let want = std::fs::read(root.join(n)).map_err(|e| e.to_string())?;
        if status != 200 || body != want {
            return Err(format!("pipelined /{n}: status {status}, {} bytes, want 200 and {}", body.len(), want.len()));
        }
    }
    Ok(())
}

/// Bad requests get the status that names what is wrong.
fn bad_requests(ctx: &Context) -> Result<(), String> {
    let cases: [(&[u8], u16); 7] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"DELETE /one HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
        (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ];
    for (req, want) in cases {
        let mut s = connect(ctx)?;
        s.write_all(req).map_err(|e| e.to_string())?;
        let (status, _) = read_response(&mut s, &mut Vec::new())?;
        if status != want {
            return Err(format!("{:?}: status {status}, want {want}", String::from_utf8_lossy(req)));
        }
    }
    Ok(())
}

/// Threaded runtime.
#[test]
fn httpd_over_linked_models_serves_files_pipelines_and_refuses_bad_requests() {
    httpd_over_linked_models(Mode::Threaded);
}

/// The same over the inline runtime. Regression: it once lost a readable
/// edge part-way through responses larger than the 64 KiB socket buffer
/// (sockapi deduplicated a second notification within one batch number).
#[test]
fn httpd_over_linked_models_inline() {
    httpd_over_linked_models(Mode::Inline);
}

fn httpd_over_linked_models(mode: Mode) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    write_site(root);
    let targets: Vec<Target> = FILES
        .iter()
        .map(|(name, _)| Target {
            path: format!("/{name}"),
            head: false,
            expect: Expect { status: 200, body: Some(Arc::from(std::fs::read(root.join(name)).expect("read"))) },
        })
        .collect();
    let server_gauges = vec![Arc::new(Gauge::default())];
    let start = Instant::now();
    let (servers, clients) = run_linked(
        hosts(mode),
        &server_gauges,
        |ctx, until| serve_http(ctx, SERVER, Some(root), until, &server_gauges[0]),
        |ctx| {
            let mut all = ixtcp_examples::session::Tally::default();
            for keep_alive in [true, false] {
                let plan = Arc::new(ClientPlan {
                    host: SERVER.to_string(),
                    targets: targets.clone().into(),
                    keep_alive,
                    pipeline: 1,
                });
                // Every file twice, over two connections.
                let load = HttpLoad { server: SERVER, plan, requests: 8, conns: 2 };
                let until = Until::flag(Arc::new(AtomicBool::new(false)));
                let t = load_http(ctx, &load, (0, 1), &until, &Gauge::default())?;
                assert_eq!(t.failure_line(), "none", "keep-alive {keep_alive}: {:?}", t.first_failures);
                assert_eq!(t.transactions, 8, "keep-alive {keep_alive}");
                assert!(t.bytes_in > 2 * (10 << 20), "keep-alive {keep_alive}: {} bytes", t.bytes_in);
                all.merge(&t);
            }
            pipelined(ctx, root).map_err(std::io::Error::other)?;
            bad_requests(ctx).map_err(std::io::Error::other)?;
            Ok(all)
        },
    )
    .expect("run hosts");
    for r in servers.into_iter().chain(clients) {
        r.expect("every core's application succeeded");
    }
    eprintln!("httpd over linked models: {:.1} s", start.elapsed().as_secs_f64());
}

fn run_bin(name: &str, path: &str, args: &[&str]) -> String {
    let out = Command::new(path).args(args).output().expect("run the program");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

#[test]
fn echo_client_against_echo_server_over_linked_models_both_modes_both_runtimes() {
    for new_conn in [false, true] {
        for threaded in [false, true] {
            let mut args = vec!["--seconds", "0.7", "--conns", "8", "--size", "1000", "--seed", "7"];
            if new_conn {
                args.push("--new-conn");
            }
            if threaded {
                args.push("--threaded");
            }
            let out = run_bin("echo_client", env!("CARGO_BIN_EXE_echo_client"), &args);
            assert!(out.contains("failures: none"), "{args:?}:\n{out}");
            assert!(out.contains("latency over"), "{args:?}:\n{out}");
            assert!(out.contains("p99.9"), "{args:?}:\n{out}");
            assert!(out.contains("echo_client stack counters:"), "{args:?}:\n{out}");
        }
    }
}

#[test]
fn udp_echo_client_and_server_over_linked_models_both_runtimes_two_cores() {
    for threaded in [false, true] {
        let mut args = vec!["--seconds", "0.7", "--conns", "8", "--size", "1472", "--cores", "2", "--seed", "3"];
        if threaded {
            args.push("--threaded");
        }
        let out = run_bin("udp_echo_client", env!("CARGO_BIN_EXE_udp_echo_client"), &args);
        assert!(out.contains("failures: none"), "{args:?}:\n{out}");
        assert!(out.contains("core 1:"), "both cores ran flows: {args:?}:\n{out}");
        assert!(out.contains("p99.9"), "{args:?}:\n{out}");
        assert!(!out.contains("rx_udp_misdirected"), "every reply came back to its core: {args:?}:\n{out}");
        let mut server_args = vec!["--seconds", "0.5"];
        if threaded {
            server_args.push("--threaded");
        }
        let out = run_bin("udp_echo_server", env!("CARGO_BIN_EXE_udp_echo_server"), &server_args);
        assert!(out.contains("udp_echo_server stack counters:"), "{out}");
        assert!(out.contains("built-in client"), "{out}");
        assert!(!out.contains("failures: Mismatch"), "{out}");
    }
}

#[test]
fn http_load_binary_checks_every_body_against_the_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_site(dir.path());
    let d = dir.path().to_str().expect("utf-8 temp dir");
    let urls = ["http://10.0.0.1/empty", "http://10.0.0.1/one", "http://10.0.0.1/hundred-k", "http://10.0.0.1/"];
    for extra in [&["--keep-alive", "--pipeline", "4"][..], &[][..]] {
        let mut args: Vec<&str> = urls.to_vec();
        // Threaded: see httpd_over_linked_models_inline.
        args.extend(["--requests", "200", "--conns", "4", "--root", d, "--expect-dir", d, "--threaded"]);
        args.extend(extra);
        let out = run_bin("http_load", env!("CARGO_BIN_EXE_http_load"), &args);
        assert!(out.contains("total: 200 transactions"), "{args:?}:\n{out}");
        assert!(out.contains("failures: none"), "{args:?}:\n{out}");
    }
    // A body that differs from the file is caught.
    let exp = tempfile::tempdir().expect("temp dir");
    std::fs::write(exp.path().join("one"), b"not the same").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_http_load"))
        .args(["http://10.0.0.1/one", "--requests", "3", "--threaded", "--root", d, "--expect-dir"])
        .arg(exp.path())
        .output()
        .expect("run http_load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("mismatch 3"), "{stdout}");
}
