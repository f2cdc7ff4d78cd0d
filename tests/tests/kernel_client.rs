//! The whole stack in one process — sockapi's threaded runtime, the stack
//! core, the driver on the 82599 model — with its port plugged into a TAP
//! device inside a network namespace this test creates, and a Linux
//! `std::net::TcpStream` from that namespace as the client. Traffic goes
//! only to 10.86.0.0/24, which exists only inside the namespace. Skips,
//! saying why, without root, `/dev/net/tun` or `ip` (fails instead under
//! `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use ixtcp_driver::wire::Netns;
use ixtcp_sockapi::host::{Host, HostConfig};
use ixtcp_sockapi::nic::Nic;
use ixtcp_sockapi::{Mode, TcpListener};
use ixtcp_stack::StackConfig;
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

#[test]
fn kernel_client_echoes_through_the_threaded_runtime_over_tap() {
    if !peer::kernel_peer("kernel_client_echoes_through_the_threaded_runtime_over_tap", Needs::TAP) {
        return;
    }
    let mut seeded = Seeded::new(0x7a9);
    let seed = seeded.seed;
    let ns = Netns::new("ixtcp-e2e").expect("namespace");
    let tap = peer::ifname("ixe2e", 0);
    let stack = StackConfig { cores: 1, ..StackConfig::new(*SERVER.ip(), 24) };
    let cfg = HostConfig::new(stack, Nic::Tap(tap.clone()), Mode::Threaded);
    // Made inside the namespace, so the TAP device is born there.
    let host = ns.run(|| Host::start(cfg)).expect("enter namespace").expect("start the host on TAP");
    ns.ip(&["addr", "add", "10.86.0.2/24", "dev", &tap]).expect("address the kernel side");
    ns.ip(&["link", "set", "dev", &tap, "up"]).expect("bring the TAP up");

    let mut payload = vec![0u8; 256 * 1024];
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
    let back = client.join().expect("client thread").unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(served[0].as_ref().map_err(|e| e.to_string()), Ok(&expected.len()), "seed {seed}");
    assert!(
        back == expected,
        "seed {seed}: echoed {} bytes, not the {} sent (or different)",
        back.len(),
        expected.len()
    );
}
