//! C programs of the project's own, written against `mtcp_api.h` and
//! `mtcp_epoll.h`, compiled here with `cc` exactly as an mTCP application
//! would be (`cc app.c -I include -L lib -lmtcp -lpthread`) against the
//! library this test build made, laid out by `scripts/build-capi.sh
//! --no-build`:
//!
//! - `errors.c`: every call's error paths (before `mtcp_init`, bad and
//!   stale contexts, bad and closed ids, wrong families, null pointers,
//!   short lengths, unknown options), the pipe across threads and a signal
//!   interrupting a wait, on an unplugged model: needs nothing.
//! - `echo_server.c` (epserver's shape: a pthread and a context per core)
//!   on a TAP device inside a network namespace this test creates, with
//!   the kernel as 100 concurrent clients, every byte verified.
//! - `echo_client.c` (epwget's shape) on TAP against an echo server of the
//!   kernel's in the namespace: 100 connections, every byte verified by
//!   the C program.
//!
//! The TAP tests skip with `SKIPPED <test>: <reason>` without root or
//! /dev/net/tun, and fail instead under `IXTCP_REQUIRE_PEER=1`. They are
//! also skipped (the same way) when no C compiler is found.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ixtcp_driver::wire::Netns;
use ixtcp_testkit::in_ns::{InNs, kernel_echo_clients, plug_kernel_in, text};
use ixtcp_testkit::peer::{self, Needs};
use ixtcp_testkit::seed::Seeded;

/// Where cargo put this test build's `libmtcp.a` / `libmtcp.so`: `deps/`,
/// next to this test binary (`cargo test` does not copy them up into the
/// profile directory as `cargo build` does).
fn built_libs() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("target/<profile>/deps/<test>").to_path_buf()
}

/// The C compiler, or why there is none.
fn cc() -> Result<String, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(cc),
        _ => Err(format!("no C compiler ({cc} --version failed; scripts/setup.sh installs gcc)")),
    }
}

/// The library laid out by scripts/build-capi.sh in `dir`, and `program`
/// compiled against it; returns the executable.
fn build(dir: &Path, cc: &str, program: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let out = dir.join("capi");
    if !out.join("lib/libmtcp.so").exists() {
        let status = Command::new(root.join("scripts/build-capi.sh"))
            .args(["--no-build", "--from"])
            .arg(built_libs())
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run scripts/build-capi.sh");
        assert!(status.success(), "scripts/build-capi.sh --no-build failed");
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{program}.c"));
    let exe = dir.join(program);
    let built = Command::new(cc)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-I")
        .arg(out.join("include"))
        .arg("-L")
        .arg(out.join("lib"))
        .args(["-lmtcp", "-lpthread"])
        .output()
        .expect("run cc");
    assert!(
        built.status.success(),
        "cc {program}.c failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    exe
}

/// Runs the built program (it finds libmtcp.so next to the headers).
fn program(dir: &Path, exe: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.args(args).env("LD_LIBRARY_PATH", dir.join("capi/lib"));
    c
}

#[test]
fn c_error_paths_of_every_call_on_an_unplugged_model() {
    let cc = match cc() {
        Ok(cc) => cc,
        Err(why) => {
            peer::skip("c_error_paths_of_every_call_on_an_unplugged_model", &why, peer::REQUIRE_PEER);
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = build(dir.path(), &cc, "errors");
    let good = dir.path().join("good.conf");
    std::fs::write(&good, "# an unplugged model\nport = model\naddress = 10.99.0.1/24\nio = dpdk\n").unwrap();
    let unknown = dir.path().join("unknown.conf");
    std::fs::write(&unknown, "port = model\naddress = 10.99.0.1/24\nrcvbuff = 8192\n").unwrap();
    let dpdk = dir.path().join("dpdk.conf");
    std::fs::write(&dpdk, "port = dpdk0\naddress = 10.99.0.1/24\n").unwrap();
    let out = program(dir.path(), &exe, &[good.to_str().unwrap(), unknown.to_str().unwrap(), dpdk.to_str().unwrap()])
        .output()
        .expect("run errors");
    let all = text(&out);
    eprintln!("{all}");
    assert!(out.status.success(), "{all}");
    assert!(all.contains("checks passed"), "{all}");
    // mtcp_init's messages name the key and what ixtcp expects.
    assert!(all.contains("unknown key \"rcvbuff\""), "{all}");
    assert!(all.contains("port = dpdk0: expected an ixtcp NIC: tap:NAME"), "{all}");
    assert!(all.contains("io is for mTCP's DPDK/netmap back ends; ixtcp ignores it"), "{all}");
}

fn start_in(ns: &Netns, dir: &Path, exe: &Path, args: &[&str]) -> InNs {
    let mut all = vec![exe.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let child = ns
        .command("env", &[])
        .arg(format!("LD_LIBRARY_PATH={}", dir.join("capi/lib").display()))
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program in the namespace");
    InNs::new(child)
}

fn seeded() -> Seeded {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    Seeded::new(now)
}

#[test]
fn c_epoll_echo_server_on_tap_echoes_100_kernel_connections() {
    const TEST: &str = "c_epoll_echo_server_on_tap_echoes_100_kernel_connections";
    if !peer::kernel_peer(TEST, Needs::TAP) {
        return;
    }
    let cc = cc().unwrap_or_else(|why| panic!("{why}"));
    let seeded = seeded();
    let seed = seeded.seed;
    let mut rng = seeded.fresh_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = build(dir.path(), &cc, "echo_server");
    let conf = dir.path().join("server.conf");
    std::fs::write(
        &conf,
        "# epserver.conf's shape\nio = dpdk\nnum_mem_ch = 4\nnum_cores = 2\nport = tap:ixcecho0\n\
         address = 10.86.0.1/24\nmax_concurrency = 256\nrcvbuf = 65536\nsndbuf = 65536\ntcp_timeout = 30\n\
         tcp_timewait = 0\nstat_print = tap\n",
    )
    .unwrap();
    let ns = Netns::new("ixtcp-cecho").expect("create a network namespace");
    let server = start_in(&ns, dir.path(), &exe, &[conf.to_str().unwrap(), "7"]);
    plug_kernel_in(&ns, "ixcecho0", "10.86.0.2/24");

    let verified = ns
        .run(move || kernel_echo_clients(SocketAddr::from(([10, 86, 0, 1], 7)), 100, &mut rng))
        .expect("run the client in the namespace")
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(verified >= 100);

    let out = server.interrupt();
    let all = text(&out);
    eprintln!("{all}");
    assert!(all.contains("accepted 100 connections"), "seed {seed}:\n{all}");
    assert!(all.contains(&format!("echoed {verified} bytes")), "seed {seed}:\n{all}");
    // stat_print: the counters at mtcp_destroy.
    assert!(all.contains("conns_opened_passive 100"), "seed {seed}:\n{all}");
}

/// An echo server of the kernel's: accepts `n` connections (for at most a
/// minute, so that a failed client cannot hang the test) and echoes each
/// until its peer closes.
fn kernel_echo(listener: TcpListener, n: usize) -> std::io::Result<usize> {
    let mut handles = Vec::with_capacity(n);
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while handles.len() < n {
        let mut s = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        s.set_nonblocking(false)?;
        handles.push(std::thread::spawn(move || -> std::io::Result<usize> {
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut buf = [0u8; 16384];
            let mut total = 0;
            loop {
                let k = s.read(&mut buf)?;
                if k == 0 {
                    return Ok(total);
                }
                s.write_all(&buf[..k])?;
                total += k;
            }
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.join().expect("echo thread")?;
    }
    Ok(total)
}

#[test]
fn c_echo_client_on_tap_verifies_100_connections_to_a_kernel_server() {
    const TEST: &str = "c_echo_client_on_tap_verifies_100_connections_to_a_kernel_server";
    if !peer::kernel_peer(TEST, Needs::TAP) {
        return;
    }
    let cc = cc().unwrap_or_else(|why| panic!("{why}"));
    let seed = seeded().seed;
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = build(dir.path(), &cc, "echo_client");
    let conf = dir.path().join("client.conf");
    std::fs::write(&conf, "port = tap:ixcclient0\naddress = 10.87.0.1/24\nmax_concurrency = 256\n").unwrap();
    let ns = Netns::new("ixtcp-cclient").expect("create a network namespace");
    std::thread::scope(|scope| {
        // Listening on the wildcard address before the TAP device exists.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = scope.spawn(|| {
            ns.run(move || {
                let l = TcpListener::bind("0.0.0.0:7")?;
                let _ = ready_tx.send(());
                kernel_echo(l, 100)
            })
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the kernel server listens");
        let client =
            start_in(&ns, dir.path(), &exe, &[conf.to_str().unwrap(), "10.87.0.2", "7", "100", &seed.to_string()]);
        plug_kernel_in(&ns, "ixcclient0", "10.87.0.2/24");
        let out = client.wait();
        let all = text(&out);
        eprintln!("{all}");
        assert!(out.status.success(), "seed {seed}: the C client failed ({}):\n{all}", out.status);
        assert!(all.contains("over 100 connections"), "seed {seed}:\n{all}");
        let echoed = server.join().expect("server thread").expect("run in the namespace").expect("kernel echo");
        assert!(all.contains(&format!("verified {echoed} bytes")), "seed {seed}: kernel echoed {echoed}:\n{all}");
    });
}
