//! The servers on a TAP device with the Linux kernel as the client, inside
//! a network namespace each test creates (and deletes): the program runs
//! in the namespace (`ip netns exec`), creates its TAP device there, and
//! the kernel's side of it gets an address of a /24 that exists only in
//! that namespace. Both servers are stopped with SIGINT (Ctrl-C) and must
//! exit cleanly with their summary.
//!
//! - httpd with `curl` as the client: files of 0 B, 1 B, 100 KiB and
//!   10 MiB, one connection for all (keep-alive) and one per file
//!   (`Connection: close`), each download's checksum compared with the
//!   file's;
//! - echo_server with a std::net client: 100 connections at once, random
//!   message sizes (seeded; the seed is printed, `IXTCP_SEED` sets it),
//!   every byte verified;
//! - httpd under a SYN flood from `hping3` with random sources: curl still
//!   connects and every download is right (SYN cookies are counted);
//! - udp_echo_server with the kernel's `ping -c 5` (5 replies), a Python
//!   UDP client exchanging 10 000 datagrams of random sizes (seeded), every
//!   byte verified, and a connected Python socket whose datagram to a
//!   closed port makes its `recv` fail with `ECONNREFUSED`.
//!
//! Skip with a message when not root, without /dev/net/tun, `ip`, curl,
//! (for the flood) hping3 or (for UDP) `ping` and python3, and fail
//! instead under `IXTCP_REQUIRE_PEER=1`.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ixtcp_driver::wire::Netns;
use ixtcp_examples::http::Fnv;
use ixtcp_testkit::in_ns::{InNs, kernel_echo_clients, plug_kernel_in};
use ixtcp_testkit::peer::{self, Needs};
use ixtcp_testkit::seed::Seeded;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Starts `program` inside `ns`, its output captured.
fn start_in(ns: &Netns, program: &str, args: &[&str]) -> InNs {
    InNs::new(
        ns.command(program, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program in the namespace"),
    )
}

const FILES: [(&str, usize); 4] = [("empty", 0), ("one", 1), ("hundred-k", 100 * 1024), ("ten-m", 10 * 1024 * 1024)];

fn fnv_of(path: &Path) -> (usize, u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes.len(), Fnv::of(&bytes))
}

#[test]
fn httpd_on_tap_serves_curl_in_a_namespace() {
    if !peer::kernel_peer("httpd_on_tap_serves_curl_in_a_namespace", Needs::TAP_AND_CURL) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("www");
    let got = dir.path().join("got");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::create_dir_all(&got).expect("mkdir");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (name, size) in FILES {
        let body: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        std::fs::write(root.join(name), body).expect("write file");
    }
    let ns = Netns::new("ixtcp-httpd").expect("create a network namespace");
    let httpd = start_in(
        &ns,
        env!("CARGO_BIN_EXE_httpd"),
        // The default (inline) runtime: responses of 100 KiB and 10 MiB
        // exercise writable edges past the 64 KiB socket buffer.
        &["--nic", "tap:ixhttp0", "--ip", "10.83.0.1/24", "--root", root.to_str().expect("utf-8"), "--stats"],
    );
    plug_kernel_in(&ns, "ixhttp0", "10.83.0.2/24");

    for keep_alive in [true, false] {
        let mut args: Vec<String> =
            ["-sS", "--fail", "-m", "20", "--retry", "3", "--retry-connrefused", "-w", "%{num_connects}\\n"]
                .map(String::from)
                .to_vec();
        if !keep_alive {
            args.extend(["-H".into(), "Connection: close".into()]);
        }
        for (name, _) in FILES {
            let out = got.join(format!("{name}.{keep_alive}"));
            args.extend(["-o".into(), out.to_str().expect("utf-8").into(), format!("http://10.83.0.1/{name}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ns.command("curl", &args).output().expect("run curl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "curl failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        let connects: u32 = stdout.lines().filter_map(|l| l.trim().parse::<u32>().ok()).sum();
        assert_eq!(connects, if keep_alive { 1 } else { FILES.len() as u32 }, "keep-alive {keep_alive}: {stdout}");
        for (name, size) in FILES {
            let want = fnv_of(&root.join(name));
            assert_eq!(want.0, size);
            assert_eq!(fnv_of(&got.join(format!("{name}.{keep_alive}"))), want, "{name}, keep-alive {keep_alive}");
        }
    }
    // `..` is refused, whatever the client does to the path.
    let out = ns
        .command("curl", &["-sS", "-m", "10", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("http://10.83.0.1/../../etc/passwd")
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");

    let out = httpd.interrupt();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("httpd stack counters:"), "{stdout}");
    assert!(stdout.contains("conns_opened_passive 6"), "{stdout}");
}

#[test]
fn echo_server_on_tap_echoes_100_connections_from_the_kernel() {
    if !peer::kernel_peer("echo_server_on_tap_echoes_100_connections_from_the_kernel", Needs::TAP) {
        return;
    }
    // A new seed each run unless IXTCP_SEED repeats one; printed either way.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let seeded = Seeded::new(now);
    let seed = seeded.seed;
    let mut rng = seeded.fresh_rng();
    let ns = Netns::new("ixtcp-echo").expect("create a network namespace");
    let server = start_in(&ns, env!("CARGO_BIN_EXE_echo_server"), &["--nic", "tap:ixecho0", "--ip", "10.84.0.1/24"]);
    plug_kernel_in(&ns, "ixecho0", "10.84.0.2/24");

    let verified = ns
        .run(move || kernel_echo_clients(SocketAddr::from(([10, 84, 0, 1], 7)), 100, &mut rng))
        .expect("run the client in the namespace")
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(verified >= 100);

    let out = server.interrupt();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("conns_opened_passive 100"), "seed {seed}:\n{stdout}");
}

/// hping3 inside the namespace, killed when dropped (on every exit path of
/// the test, a failed assertion included).
struct Flood(Child);

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A SYN flood with random (spoofed) sources at 20 000 SYN/s against the
/// port httpd serves, while curl fetches a page: every fetch connects and
/// brings the right bytes. The flood stays in the namespace: httpd has no
/// gateway, so its SYN-ACKs to spoofed sources off the /24 have no route
/// and are dropped, those on the /24 wait for an ARP answer nobody gives,
/// and the namespace has no default route and no forwarding. Asserts only
/// that the connections are made and the data is right, never how fast
/// (curl retries generously), so a loaded machine cannot fail it.
#[test]
fn httpd_on_tap_serves_curl_during_a_spoofed_syn_flood_from_hping3() {
    const TEST: &str = "httpd_on_tap_serves_curl_during_a_spoofed_syn_flood_from_hping3";
    if !peer::kernel_peer(TEST, Needs::TAP_CURL_AND_HPING3) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).expect("mkdir");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let body: Vec<u8> = (0..32 * 1024).map(|_| rng.random()).collect();
    std::fs::write(root.join("page"), &body).expect("write file");
    let want = (body.len(), Fnv::of(&body));

    let ns = Netns::new("ixtcp-flood").expect("create a network namespace");
    let httpd = start_in(
        &ns,
        env!("CARGO_BIN_EXE_httpd"),
        &["--nic", "tap:ixflood0", "--ip", "10.85.0.1/24", "--root", root.to_str().expect("utf-8"), "--stats"],
    );
    plug_kernel_in(&ns, "ixflood0", "10.85.0.2/24");
    let fetch = |n: usize| {
        let out = dir.path().join(format!("got.{n}"));
        let out_arg = out.to_str().expect("utf-8");
        // Generous: the first try may race the listener, and a SYN the
        // flood crowds out is retransmitted by the kernel within seconds.
        let args = ["-sS", "--fail", "-m", "60", "--retry", "5", "--retry-connrefused", "-o", out_arg];
        let res = ns.command("curl", &args).arg("http://10.85.0.1/page").output().expect("run curl");
        assert!(res.status.success(), "fetch {n} failed: {}", String::from_utf8_lossy(&res.stderr));
        assert_eq!(fnv_of(&out), want, "fetch {n}: wrong bytes");
    };
    // Up before the flood: the listener runs and ARP is resolved.
    fetch(0);
    let flood = ns
        .command("hping3", &["-S", "-p", "80", "--rand-source", "-i", "u50", "-q", "10.85.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Flood)
        .expect("start hping3");
    // Until the backlog is full of spoofed half-open connections.
    std::thread::sleep(Duration::from_secs(1));
    for n in 1..=5 {
        fetch(n);
    }
    let mut flood = flood;
    let still_flooding = flood.0.try_wait().expect("hping3 status").is_none();
    let stderr = if still_flooding {
        String::new()
    } else {
        let mut e = String::new();
        let _ = flood.0.stderr.take().map(|mut s| s.read_to_string(&mut e));
        e
    };
    assert!(still_flooding, "hping3 stopped during the test: {stderr}");
    drop(flood);

    let out = httpd.interrupt();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "  core N: name value, name value, ..." (non-zero counters), summed
    // over the cores.
    let counter = |name: &str| -> u64 {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("core ")?.split_once(": ").map(|(_, fields)| fields))
            .flat_map(|fields| fields.split(", "))
            .filter_map(|f| f.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .sum()
    };
    // The flood really filled the backlog: beyond it SYNs got cookies.
    assert!(counter("syn_cookies_sent") > 0, "no SYN cookie sent, so no flood reached the backlog:\n{stdout}");
    assert!(counter("conns_opened_passive") >= 6, "{stdout}");
}

/// The Python UDP client: `count` datagrams of seeded random sizes (1 to
/// 1472 bytes) to the server, one at a time, each echo compared byte for
/// byte (a lost one is sent again after a second, at most 5 times); then a
/// connected socket to a closed port, whose `recv` must raise
/// `ConnectionRefusedError`. Prints `verified N` and `refused`.
const UDP_CLIENT: &str = r#"
import random, socket, sys
host, port, closed, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
s.settimeout(1.0)
verified = 0
for i in range(count):
    msg = i.to_bytes(4, "big") + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 1468)))
    for attempt in range(6):
        if attempt == 5:
            sys.exit("datagram %d: no echo after 5 tries" % i)
        s.send(msg)
        try:
            back = s.recv(2048)
            while back[:4] != msg[:4] and int.from_bytes(back[:4], "big") < i:
                back = s.recv(2048)  # a late echo of an earlier try
            break
        except socket.timeout:
            continue
    if back != msg:
        sys.exit("datagram %d: the echo of %d bytes differs" % (i, len(msg)))
    verified += len(msg)
print("verified", count, verified)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect((host, closed))
c.settimeout(1.0)
for attempt in range(5):
    c.send(b"anyone?")
    try:
        c.recv(64)
        sys.exit("port %d answered" % closed)
    except ConnectionRefusedError:
        print("refused")
        break
    except socket.timeout:
        continue
else:
    sys.exit("no port unreachable from port %d" % closed)
"#;

fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

#[test]
fn udp_echo_server_on_tap_answers_ping_python_and_refuses_a_closed_port() {
    let test = "udp_echo_server_on_tap_answers_ping_python_and_refuses_a_closed_port";
    if !peer::kernel_peer(test, Needs::TAP) {
        return;
    }
    if !have("ping", "-V") || !have("python3", "--version") {
        peer::skip(test, "needs the ping command and python3", peer::REQUIRE_PEER);
        return;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let seed = Seeded::new(now).seed;
    let ns = Netns::new("ixtcp-udp").expect("create a network namespace");
    let server = start_in(
        &ns,
        env!("CARGO_BIN_EXE_udp_echo_server"),
        &["--nic", "tap:ixudp0", "--ip", "10.85.0.1/24", "--port", "7"],
    );
    plug_kernel_in(&ns, "ixudp0", "10.85.0.2/24");

    let out = ns
        .command("python3", &["-c", UDP_CLIENT, "10.85.0.1", "7", "9", "10000", &seed.to_string()])
        .output()
        .expect("run python3 in the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "seed {seed}: the UDP client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l.starts_with("verified 10000 ")), "seed {seed}: {stdout}");
    assert!(stdout.lines().any(|l| l == "refused"), "seed {seed}: {stdout}");

    let out = ns.command("ping", &["-c", "5", "-i", "0.2", "-W", "2", "10.85.0.1"]).output().expect("run ping");
    let ping = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed:\n{ping}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(ping.contains("5 packets transmitted, 5 received"), "{ping}");

    let out = server.interrupt();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("icmp_echo_replies 5"), "{stdout}");
    assert!(stdout.contains("icmp_port_unreachable_sent"), "{stdout}");
    assert!(stdout.contains("failures: none"), "{stdout}");
}
