//! `TapWire` with the Linux kernel as the peer, inside a network namespace
//! that each test creates and deletes (also on failure: `Netns` deletes it
//! on drop). Traffic goes only to addresses of that namespace (10.77.0.0/24
//! exists only there). Skips, saying why, without root, `/dev/net/tun` or
//! `ip` (fails instead under `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

mod wire_support;

use ixtcp_driver::wire::{Netns, TapWire, Wire};
use std::net::Ipv4Addr;
use std::time::Duration;
use wire_support::*;

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const FAKE_MAC: Mac = [0x02, 0x77, 0, 0, 0, 2];
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Sends ARP requests for the kernel's address through `wire` (one every
/// 200 ms, as a host retries: the kernel drops what it sends in the few
/// milliseconds after a TAP gets its carrier) and waits for the reply;
/// returns the MAC the kernel answered with.
fn kernel_answers_arp(wire: &mut TapWire) -> Option<Mac> {
    let request =
        Arp { op: ARP_REQUEST, sender_mac: FAKE_MAC, sender_ip: FAKE_IP, target_mac: [0; 6], target_ip: KERNEL_IP };
    (0..15).find_map(|_| {
        wire.transmit(&request.frame(BROADCAST)).unwrap();
        wait_for(
            wire,
            Duration::from_millis(200),
            |f| {
                Arp::parse(f)
                    .filter(|a| a.op == ARP_REPLY && a.sender_ip == KERNEL_IP)
                    .filter(|a| a.target_mac == FAKE_MAC && a.target_ip == FAKE_IP && f[..6] == FAKE_MAC)
                    .map(|a| a.sender_mac)
            },
            |_, _| {},
        )
    })
}

#[test]
fn tap_moved_into_a_namespace_carries_frames_both_ways() {
    if !peer::kernel_peer("tap_moved_into_a_namespace_carries_frames_both_ways", Needs::TAP) {
        return;
    }
    let ns = Netns::new("ixtcp-tap").unwrap();
    let name = ifname("ixtap", 0);
    // Created in this (the root) namespace, then moved: the fd stays valid.
    let mut tap = TapWire::open(&name).unwrap();
    assert_eq!(tap.name(), name);
    let mac = tap.mac().unwrap();
    assert!(mac != [0; 6] && mac[0] & 1 == 0, "kernel MAC {mac:02x?}");
    ns.adopt(&name).unwrap();
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", &name]).unwrap();
    ns.run(|| tap.set_up()).unwrap().unwrap();
    let shown = ns.ip(&["link", "show", "dev", &name]).unwrap();
    assert!(shown.contains(",UP") || shown.contains("<UP"), "{shown}");

    // Model -> kernel -> model: the kernel answers our ARP request.
    let answered = kernel_answers_arp(&mut tap);
    assert_eq!(answered, Some(mac), "no ARP reply from the kernel through {name}");

    // Kernel -> model -> kernel: a UDP socket in the namespace sends to a
    // fake host on the wire, which answers the kernel's ARP request and
    // echoes the datagram back.
    let mut host = FakeHost::new([0x02, 0x77, 0, 0, 0, 3], Ipv4Addr::new(10, 77, 0, 3));
    assert!(udp_round_trip(&ns, &mut tap, &mut host), "UDP echo through {name} failed");
    assert_eq!((host.arp_answered, host.udp_echoed), (1, 1));

    // The device goes away with its last file. The kernel unregisters it
    // asynchronously, so give it a moment.
    drop(tap);
    let gone = (0..200).any(|_| {
        let gone = ns.ip(&["link", "show", "dev", &name]).is_err();
        if !gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        gone
    });
    assert!(gone, "{name} outlived its TapWire by 2 s");
}

#[test]
fn tap_attaches_to_a_persistent_device_made_inside_the_namespace() {
    if !peer::kernel_peer("tap_attaches_to_a_persistent_device_made_inside_the_namespace", Needs::TAP) {
        return;
    }
    let ns = Netns::new("ixtcp-tap").unwrap();
    let name = ifname("ixtap", 1);
    ns.ip(&["tuntap", "add", "mode", "tap", "name", &name]).unwrap();
    ns.ip(&["addr", "add", "10.77.0.1/24", "dev", &name]).unwrap();
    ns.ip(&["link", "set", "dev", &name, "up"]).unwrap();
    let mut tap = ns.run(|| TapWire::open(&name)).unwrap().unwrap();
    let mac = ns.run(|| tap.mac()).unwrap().unwrap();
    assert_eq!(kernel_answers_arp(&mut tap), Some(mac), "no ARP reply through the persistent {name}");

    // A second file cannot attach to the same single-queue device.
    let again = ns.run(|| TapWire::open(&name)).unwrap();
    let e = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("TUNSETIFF") && e.contains("choose another name"), "{e}");

    // A persistent device stays when its file closes.
    drop(tap);
    assert!(ns.ip(&["link", "show", "dev", &name]).is_ok());
}

#[test]
fn tap_refuses_an_interface_that_is_not_a_tap() {
    if !peer::kernel_peer("tap_refuses_an_interface_that_is_not_a_tap", Needs::TAP) {
        return;
    }
    let ns = Netns::new("ixtcp-tap").unwrap();
    let e = ns.run(|| TapWire::open("lo")).unwrap().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("TUNSETIFF"), "{e}");
}

#[test]
fn tap_mtu_is_set_and_read_back_inside_the_namespace() {
    if !peer::kernel_peer("tap_mtu_is_set_and_read_back_inside_the_namespace", Needs::TAP) {
        return;
    }
    let ns = Netns::new("ixtcp-tap").unwrap();
    let name = ifname("ixtap", 2);
    let tap = ns.run(|| TapWire::open(&name)).unwrap().unwrap();
    assert_eq!(ns.run(|| tap.mtu()).unwrap().unwrap(), 1500, "a new TAP starts at 1500");
    ns.run(|| tap.set_mtu(9000)).unwrap().unwrap();
    assert_eq!(ns.run(|| tap.mtu()).unwrap().unwrap(), 9000);
    let shown = ns.ip(&["link", "show", "dev", &name]).unwrap();
    assert!(shown.contains("mtu 9000"), "{shown}");
    // Beyond what a TAP takes: the error says what was asked and the range.
    let e = ns.run(|| tap.set_mtu(70_000)).unwrap().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("70000") && e.contains("68..=65521"), "{e}");
    assert_eq!(ns.run(|| tap.mtu()).unwrap().unwrap(), 9000, "a refused MTU changes nothing");
}
