//! The whole stack in one process — sockapi's threaded runtime, the stack
//! core, the driver on the 82599 model — with its port plugged into a TAP
//! device inside a network namespace this test creates, and a Linux
//! `std::net::TcpStream` from that namespace as the client. Traffic goes
//! only to 10.86.0.0/24, which exists only inside the namespace. With
//! `mtu = 9000` the TAP gets that MTU too, and the stack's capture shows
//! 9 014-byte frames going both ways. Skips,
//! saying why, without root, `/dev/net/tun` or `ip` (fails instead under
//! `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ixtcp_driver::wire::Netns;
use ixtcp_host::{Host, HostConfig, Nic};
use ixtcp_sockapi::{Mode, TcpListener};
use ixtcp_stack::StackConfig;
use ixtcp_testkit::frames;
use ixtcp_testkit::peer::{self, Needs};
use ixtcp_testkit::seed::Seeded;
use rand::RngCore;

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 86, 0, 1), 7);

/// Accepts one connection and echoes it until the peer closes.
fn echo_one(ctx: &ixtcp_sockapi::Context) -> std::io::Result<usize> {
    let listener = TcpListener::bind(ctx, SERVER.into())?;
    listener.set_nonblocking(false);
    let (mut s, _) = listener.accept()?;
    s.set_nonblocking(false);
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        s.write_all(&buf[..n])?;
        total += n;
    }
}

/// Starts a host of `stack` on a new TAP device inside a new namespace,
/// addresses the kernel's side 10.86.0.2/24, and echoes `len` random bytes
/// of a kernel client through it, checking every byte; returns the
/// kernel's view of the TAP (`ip link show`).
fn kernel_echo(test: &str, stack: StackConfig, tap_index: u32, len: usize, seed: u64) -> String {
    let mut seeded = Seeded::new(seed);
    let seed = seeded.seed;
    let ns = Netns::new("ixtcp-e2e").expect("namespace");
    let tap = peer::ifname("ixe2e", tap_index);
    let cfg = HostConfig::new(stack, Nic::Tap(tap.clone()), Mode::Threaded);
    // Made inside the namespace, so the TAP device is born there.
    let host = ns.run(|| Host::start(cfg)).expect("enter namespace").expect("start the host on TAP");
    ns.ip(&["addr", "add", "10.86.0.2/24", "dev", &tap]).expect("address the kernel side");
    ns.ip(&["link", "set", "dev", &tap, "up"]).expect("bring the TAP up");
    let link = ns.ip(&["link", "show", "dev", &tap]).expect("show the TAP");

    let mut payload = vec![0u8; len];
    seeded.rng.fill_bytes(&mut payload);
    let expected = payload.clone();
    let client = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        // The server may not listen yet: retry while refused.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match ns.run(|| std::net::TcpStream::connect_timeout(&SERVER.into(), Duration::from_secs(2))) {
                Ok(Ok(s)) => break s,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => return Err(format!("connect: {other:?}")),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        let mut reader = s.try_clone().map_err(|e| e.to_string())?;
        let writer = std::thread::spawn(move || {
            s.write_all(&payload)?;
            s.shutdown(std::net::Shutdown::Write)
        });
        let mut back = Vec::new();
        reader.read_to_end(&mut back).map_err(|e| format!("read: {e}"))?;
        writer.join().map_err(|_| "writer panicked".to_string())?.map_err(|e| format!("write: {e}"))?;
        drop(ns);
        Ok(back)
    });
    let served = host.run(echo_one).expect("host run");
    let back = client.join().expect("client thread").unwrap_or_else(|e| panic!("{test}, seed {seed}: {e}"));
    assert_eq!(served[0].as_ref().map_err(|e| e.to_string()), Ok(&expected.len()), "{test}, seed {seed}");
    assert!(
        back == expected,
        "{test}, seed {seed}: echoed {} bytes, not the {} sent (or different)",
        back.len(),
        expected.len()
    );
    link
}

#[test]
fn kernel_client_echoes_through_the_threaded_runtime_over_tap() {
    let test = "kernel_client_echoes_through_the_threaded_runtime_over_tap";
    if !peer::kernel_peer(test, Needs::TAP) {
        return;
    }
    let stack = StackConfig { cores: 1, ..StackConfig::new(*SERVER.ip(), 24) };
    let link = kernel_echo(test, stack, 0, 256 * 1024, 0x7a9);
    assert!(link.contains("mtu 1500"), "the TAP keeps the standard MTU: {link}");
}

/// The IPv4 frames in a classic pcap file (little-endian, as smoltcp's
/// writer makes it on this host), with their source addresses.
fn ipv4_frames(pcap: &[u8]) -> Vec<(Ipv4Addr, Vec<u8>)> {
    let u32_at = |i: usize| u32::from_le_bytes(pcap[i..i + 4].try_into().unwrap()) as usize;
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "pcap magic");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32_at(at + 8);
        assert_eq!(len, u32_at(at + 12), "a frame was cut short in the capture");
        let frame = &pcap[at + 16..(at + 16 + len).min(pcap.len())];
        if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] {
            out.push((Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]), frame.to_vec()));
        }
        at += 16 + len;
    }
    out
}

#[test]
fn kernel_client_moves_jumbo_frames_both_ways_over_tap() {
    let test = "kernel_client_moves_jumbo_frames_both_ways_over_tap";
    if !peer::kernel_peer(test, Needs::TAP) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("jumbo.pcap");
    let stack = StackConfig {
        cores: 1,
        mtu: 9000,
        mempool_size: 2048,
        socket_rx_buffer: 256 * 1024,
        socket_tx_buffer: 256 * 1024,
        pcap: Some(pcap.clone()),
        tcp_timestamps: true,
        ..StackConfig::new(*SERVER.ip(), 24)
    };
    let len = 4 << 20;
    let link = kernel_echo(test, stack, 1, len, 0x9000);
    assert!(link.contains("mtu 9000"), "the TAP's MTU follows the stack's: {link}");
    // The capture holds every frame the stack received and sent: full
    // 9014-byte frames went both ways, and most of the data in them; both
    // sides put RFC 7323 timestamps on every segment (Linux offers them by
    // default, and so did we).
    let frames = ipv4_frames(&std::fs::read(&pcap).expect("read the capture"));
    let kernel = Ipv4Addr::new(10, 86, 0, 2);
    for (from, what) in [(kernel, "from the kernel"), (*SERVER.ip(), "from ixtcp")] {
        let sent: Vec<&Vec<u8>> = frames.iter().filter(|(src, _)| *src == from).map(|(_, f)| f).collect();
        let largest = sent.iter().map(|f| f.len()).max().unwrap_or(0);
        assert_eq!(largest, 9014, "largest frame {what}: {largest} bytes");
        let jumbo_bytes: usize = sent.iter().map(|f| f.len()).filter(|&l| l > 1514).sum();
        assert!(jumbo_bytes > len / 2, "{jumbo_bytes} bytes in frames above 1514 {what}");
        // RSTs (the answer to a connect that came before the listener)
        // carry none: RFC 7323 section 3.2 exempts them.
        let not_rst = |f: &&&Vec<u8>| frames::parse_tcp(f).is_some_and(|t| t.flags & frames::RST == 0);
        let options: Vec<_> = sent.iter().filter(not_rst).filter_map(|f| frames::parse_tcp_options(f)).collect();
        assert!(!options.is_empty(), "no TCP segment {what}");
        let without = options.iter().filter(|o| o.timestamp.is_none()).count();
        assert_eq!(without, 0, "{without} of {} segments {what} without timestamps", options.len());
    }
}
