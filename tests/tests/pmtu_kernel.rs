//! Path MTU discovery against the Linux kernel as the router: the stack
//! on a TAP device in one namespace this test creates, whose kernel
//! forwards to a second namespace over a veth whose router side has MTU
//! 1200. The server there announces MSS 1460 (its side of the veth has
//! 1500), so the stack's first full-size segments reach the narrow hop,
//! and the router's kernel answers "fragmentation needed" saying 1200.
//! The stack must cut its segments to that and deliver every byte of a
//! 256 KiB transfer. Traffic goes only to 10.87.1.0/24 and 10.87.2.0/24,
//! which exist only inside the two namespaces; both are deleted at the
//! end. Skips, saying why, without root, `/dev/net/tun` or `ip` (fails
//! instead under `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ixtcp_driver::wire::Netns;
use ixtcp_host::{Host, HostConfig, Nic};
use ixtcp_sockapi::{Mode, TcpStream};
use ixtcp_stack::StackConfig;
use ixtcp_testkit::peer::{self, Needs};
use ixtcp_testkit::seed::Seeded;
use rand::RngCore;

const STACK: Ipv4Addr = Ipv4Addr::new(10, 87, 1, 1);
const ROUTER_TAP: &str = "10.87.1.2/24";
const ROUTER_VETH: &str = "10.87.2.1/24";
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 87, 2, 2), 9);

#[test]
fn the_kernels_fragmentation_needed_cuts_a_transfer_to_a_narrow_hop() {
    let test = "the_kernels_fragmentation_needed_cuts_a_transfer_to_a_narrow_hop";
    if !peer::kernel_peer(test, Needs::TAP) {
        return;
    }
    let mut seeded = Seeded::new(0x1191);
    let seed = seeded.seed;
    let router = Netns::new("ixtcp-pmtu-r").expect("router namespace");
    let server = Netns::new("ixtcp-pmtu-s").expect("server namespace");
    // The narrow hop: a veth from the router to the server, 1200 on the
    // router's side.
    let (vr, vs) = (peer::ifname("ixpmr", 0), peer::ifname("ixpms", 0));
    router.ip(&["link", "add", &vr, "type", "veth", "peer", "name", &vs]).expect("make the veth");
    router.ip(&["link", "set", "dev", &vs, "netns", server.name()]).expect("move its end to the server");
    router.ip(&["link", "set", "dev", &vr, "mtu", "1200"]).expect("the narrow MTU");
    router.ip(&["addr", "add", ROUTER_VETH, "dev", &vr]).expect("address the router's veth");
    router.ip(&["link", "set", "dev", &vr, "up"]).expect("router veth up");
    server.ip(&["addr", "add", &format!("{}/24", SERVER.ip()), "dev", &vs]).expect("address the server");
    server.ip(&["link", "set", "dev", &vs, "up"]).expect("server veth up");
    server.ip(&["route", "add", "10.87.1.0/24", "via", "10.87.2.1"]).expect("the server's way back");
    let fwd = router.command("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]).status().expect("run sysctl");
    assert!(fwd.success(), "the router forwards");

    // The server: the kernel reads everything one connection sends.
    let listener =
        server.run(|| std::net::TcpListener::bind(SERVER)).expect("enter the server namespace").expect("bind");
    let reader = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });

    let tap = peer::ifname("ixpmt", 0);
    let stack = StackConfig { cores: 1, gateway: Some(Ipv4Addr::new(10, 87, 1, 2)), ..StackConfig::new(STACK, 24) };
    let cfg = HostConfig::new(stack, Nic::Tap(tap.clone()), Mode::Threaded);
    let host = router.run(|| Host::start(cfg)).expect("enter the router namespace").expect("start the host on TAP");
    router.ip(&["addr", "add", ROUTER_TAP, "dev", &tap]).expect("address the router's TAP side");
    router.ip(&["link", "set", "dev", &tap, "up"]).expect("bring the TAP up");
    let stats = host.stats();

    let mut payload = vec![0u8; 256 * 1024];
    seeded.rng.fill_bytes(&mut payload);
    let sent = host
        .run(|ctx| -> std::io::Result<()> {
            let mut s = TcpStream::connect(ctx, SERVER.into())?;
            s.set_nonblocking(false);
            s.write_all(&payload)?;
            s.shutdown(std::net::Shutdown::Write)
        })
        .expect("host run");
    assert!(sent[0].is_ok(), "seed {seed}: the transfer: {:?}", sent[0]);
    let got = reader.join().expect("reader thread").expect("the server's read");
    assert_eq!(got.len(), payload.len(), "seed {seed}: bytes the server got");
    assert!(got == payload, "seed {seed}: the bytes differ");
    let s = stats.total();
    assert!(s.icmp_frag_needed >= 1, "seed {seed}: the router's kernel said fragmentation needed: {s:?}");
    assert_eq!(s.pmtu_lowered, 1, "seed {seed}: lowered once, to 1200: {s:?}");
    assert_eq!(s.icmp_errors_out_of_window, 0, "seed {seed}: {s:?}");
    drop(server);
    drop(router);
}
