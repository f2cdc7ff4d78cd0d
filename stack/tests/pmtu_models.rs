//! Path MTU discovery (RFC 1191) over two linked 82599 models: a router
//! on the link drops host 0's packets longer than its next hop takes and
//! answers each with "fragmentation needed"; host 0's connection must cut
//! its segments to the reported size and finish intact, and new
//! connections to the destination must start at that size until it ages
//! out. Every byte of every transfer is verified.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::model::{IPS, ModelWorld, Router, frag_needed_frame, model_config};
use ixtcp_driver::wire::link::LinkConfig;
use ixtcp_stack::{ConnId, StackError};
use ixtcp_testkit::frames;

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
const KIB: usize = 1024;

fn world(seed: u64) -> ModelWorld {
    let mut w = ModelWorld::new(LinkConfig::ten_gig(), Some(seed), |i| model_config(IPS[i], 1));
    w.run_for(2_000_000, &mut |_, _| {});
    w
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| ((i / 7) as u8).wrapping_mul(13).wrapping_add(i as u8).wrapping_add(salt)).collect()
}

/// Host 0 connects to host 1 on `port` and sends `total` bytes; host 1
/// reads them. `hook` runs on host 0 each step with the connection.
/// Panics unless every byte arrives intact within two minutes of virtual
/// time; both ends are closed after.
fn transfer(w: &mut ModelWorld, port: u16, total: usize, salt: u8, hook: &mut dyn FnMut(&mut ModelWorld)) {
    w.core(1, 0).listen(port, None).unwrap();
    let id = w.core(0, 0).connect(SocketAddrV4::new(IPS[1], port), None).unwrap();
    let data = pattern(total, salt);
    let (mut sent, mut got, mut server): (usize, Vec<u8>, Option<ConnId>) = (0, Vec::with_capacity(total), None);
    let deadline = w.now_ns() + 120_000_000_000;
    while got.len() < total && w.now_ns() < deadline {
        w.step(&mut |h, c| {
            c.drain_events().for_each(drop);
            if h == 0 {
                if sent < total {
                    match c.send(id, &data[sent..]) {
                        Ok(n) => sent += n,
                        Err(StackError::WouldBlock) => {}
                        Err(e) => panic!("send: {e}"),
                    }
                }
                return;
            }
            if server.is_none() {
                server = c.accept(port);
            }
            if let Some(s) = server {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = c.recv(s, &mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
            }
        });
        hook(w);
    }
    assert_eq!(got.len(), total, "bytes received (host 0 {:?})", w.stats(0));
    if let Some(at) = got.iter().zip(&data).position(|(a, b)| a != b) {
        panic!("byte {at} of {total} differs");
    }
    w.core(0, 0).close(id).unwrap();
    if let Some(s) = server {
        w.core(1, 0).close(s).unwrap();
    }
    w.core(1, 0).unlisten(port).unwrap();
    w.run_for(50_000_000, &mut |_, c| c.drain_events().for_each(drop));
}

/// What host 0 sent to host 1 over TCP, from the capture: (IP total
/// length, segment).
fn tcp_sent(frames_out: &[Vec<u8>]) -> Vec<(usize, frames::TcpSeen, Vec<u8>)> {
    frames_out
        .iter()
        .filter_map(|f| {
            let t = frames::parse_tcp(f)?;
            (t.src == IPS[0] && t.dst == IPS[1])
                .then(|| (usize::from(u16::from_be_bytes([f[16], f[17]])), t, f.clone()))
        })
        .collect()
}

/// Checks the segments of one connection (`dport`) in `segs`: the ones
/// longer than `limit` each carried new data, never a range sent before
/// (so every retransmission was cut). Returns how many there were and
/// the largest IP length of the others.
fn check_cut(segs: &[(usize, frames::TcpSeen, Vec<u8>)], dport: u16, limit: usize) -> (u64, usize) {
    let mut high: Option<u32> = None;
    let (mut big, mut largest) = (0u64, 0);
    for (len, t, _) in segs.iter().filter(|s| s.1.dport == dport) {
        let end = t.seq.wrapping_add(t.len as u32);
        if *len > limit {
            big += 1;
            if let Some(h) = high {
                assert!(
                    (t.seq.wrapping_sub(h) as i32) >= 0,
                    "a segment of {len} bytes resent seq {} (sent up to {h})",
                    t.seq
                );
            }
        } else {
            largest = largest.max(*len);
        }
        if t.len > 0 && high.is_none_or(|h| (end.wrapping_sub(h) as i32) > 0) {
            high = Some(end);
        }
    }
    (big, largest)
}

/// The MSS option of the SYN host 0 sent to `dport`.
fn syn_mss(segs: &[(usize, frames::TcpSeen, Vec<u8>)], dport: u16) -> u16 {
    let syn = segs.iter().find(|s| s.1.dport == dport && s.1.flags & frames::SYN != 0).expect("a SYN");
    frames::parse_tcp_options(&syn.2).and_then(|o| o.mss).expect("an MSS option")
}

#[test]
fn fragmentation_needed_cuts_a_live_transfer_and_new_connections_until_it_ages_out() {
    let mut w = world(31);
    w.injector.capture(true);
    w.injector.route(Some(Router { limit: 1000, report: 1000, ip: ROUTER, dropped: 0 }));
    // An idle connection to the same destination, open all along.
    w.core(1, 0).listen(91, None).unwrap();
    let idle = w.core(0, 0).connect(SocketAddrV4::new(IPS[1], 91), None).unwrap();
    w.run_for(5_000_000, &mut |_, c| c.drain_events().for_each(drop));
    transfer(&mut w, 80, 256 * KIB, 1, &mut |_| {});
    let dropped = w.injector.router_dropped();
    assert_eq!(w.stats(0).pmtu_lowered_others, 1, "the idle connection was lowered with it");
    // It sends at the lowered size at once: the router drops none of it.
    let mut left = 32 * KIB;
    let chunk = pattern(left, 9);
    while left > 0 {
        w.step(&mut |h, c| {
            c.drain_events().for_each(drop);
            if h == 0
                && let Ok(n) = c.send(idle, &chunk[..left])
            {
                left -= n;
            }
        });
    }
    w.run_for(50_000_000, &mut |_, c| c.drain_events().for_each(drop));
    assert_eq!(w.injector.router_dropped(), dropped);
    w.core(0, 0).abort(idle).unwrap();
    w.run_for(5_000_000, &mut |_, c| c.drain_events().for_each(drop));
    let segs = tcp_sent(&w.injector.take());
    assert_eq!(check_cut(&segs, 91, 1000), (0, 1000));
    assert!(dropped > 0, "full-size segments met the router");
    assert_eq!(check_cut(&segs, 80, 1000), (dropped, 1000), "cut to exactly the next hop's MTU");
    assert_eq!(syn_mss(&segs, 80), 1460, "the first connection started at full size");
    let s = w.stats(0);
    assert_eq!(s.pmtu_lowered, 1);
    assert_eq!(s.icmp_frag_needed, s.pmtu_lowered + s.pmtu_ignored, "{s:?}");
    assert_eq!(s.icmp_frag_needed, dropped, "every answer reached host 0");
    assert_eq!((s.pmtu_interfaces, s.icmp_errors_out_of_window), (1, 0));

    // A new connection to the destination starts at the lowered size: the
    // router drops nothing more.
    transfer(&mut w, 81, 64 * KIB, 2, &mut |_| {});
    let segs = tcp_sent(&w.injector.take());
    assert_eq!(w.injector.router_dropped(), dropped, "nothing too long sent");
    assert!(syn_mss(&segs, 81) <= 960, "its SYN announces MSS {}", syn_mss(&segs, 81));
    assert_eq!(check_cut(&segs, 81, 1000), (0, 1000));
    assert_eq!(w.stats(0).pmtu_lowered, 1);

    // So does a connection the destination opens: host 0's SYN-ACK
    // announces the lowered MSS.
    w.core(0, 0).listen(90, Some(1)).unwrap();
    let back = w.core(1, 0).connect(SocketAddrV4::new(IPS[0], 90), None).unwrap();
    w.run_for(5_000_000, &mut |_, c| c.drain_events().for_each(drop));
    let segs = tcp_sent(&w.injector.take());
    let syn_ack = segs.iter().find(|s| s.1.sport == 90 && s.1.flags & frames::SYN != 0).expect("a SYN-ACK");
    assert_eq!(frames::parse_tcp_options(&syn_ack.2).and_then(|o| o.mss), Some(960));
    // With the backlog of one held by that connection (not accepted), a
    // second one gets a SYN cookie: its SYN-ACK announces the lowered MSS
    // too.
    let second = w.core(1, 0).connect(SocketAddrV4::new(IPS[0], 90), None).unwrap();
    w.run_for(5_000_000, &mut |_, c| c.drain_events().for_each(drop));
    assert_eq!(w.stats(0).syn_cookies_sent, 1);
    let segs = tcp_sent(&w.injector.take());
    let cookie = segs.iter().find(|s| s.1.sport == 90 && s.1.flags & frames::SYN != 0).expect("a cookie SYN-ACK");
    assert_eq!(frames::parse_tcp_options(&cookie.2).and_then(|o| o.mss), Some(960));
    for id in [back, second] {
        w.core(1, 0).abort(id).unwrap();
    }
    w.core(0, 0).unlisten(90).unwrap();
    w.run_for(5_000_000, &mut |_, c| c.drain_events().for_each(drop));
    let _ = w.injector.take();

    // Ten minutes later the destination's entry has aged out: a new
    // connection is back at full size.
    w.injector.route(None);
    w.clock.advance(Duration::from_secs(600));
    // The core reads the clock when it polls: let it see the new time
    // before the connect.
    w.run_for(1_000_000, &mut |_, c| c.drain_events().for_each(drop));
    transfer(&mut w, 82, 64 * KIB, 3, &mut |_| {});
    let segs = tcp_sent(&w.injector.take());
    assert_eq!(syn_mss(&segs, 82), 1460);
    assert_eq!(check_cut(&segs, 82, 1500), (0, 1500), "full-size segments again");
    assert_eq!(w.stats(0).pmtu_interfaces, 1, "the interface of 1000 is kept, not made again");
}

#[test]
fn fragmentation_needed_out_of_window_or_not_lower_changes_nothing() {
    let mut w = world(32);
    w.injector.capture(true);
    let mut injected = 0;
    transfer(&mut w, 80, 256 * KIB, 4, &mut |w| {
        if injected > 0 {
            return;
        }
        // Once data flows: quote a data segment with its sequence number
        // half the space away, then one in the window saying 1500.
        let data = w.injector.take().into_iter().find(|f| frames::parse_tcp(f).is_some_and(|t| t.len > 1000));
        let Some(f) = data else { return };
        let mut ip = f[14..].to_vec();
        let seq = u32::from_be_bytes([ip[24], ip[25], ip[26], ip[27]]);
        assert!(w.injector.inject(&frag_needed_frame(ROUTER, 1500, &ip)));
        ip[24..28].copy_from_slice(&seq.wrapping_add(0x8000_0000).to_be_bytes());
        assert!(w.injector.inject(&frag_needed_frame(ROUTER, 600, &ip)));
        injected = 2;
    });
    assert_eq!(injected, 2);
    let s = w.stats(0);
    assert_eq!((s.icmp_errors_out_of_window, s.icmp_frag_needed, s.pmtu_ignored), (1, 1, 1), "{s:?}");
    assert_eq!((s.pmtu_lowered, s.pmtu_interfaces), (0, 0));
    let segs = tcp_sent(&w.injector.take());
    assert_eq!(check_cut(&segs, 80, 1500), (0, 1500), "still full size after both");
    // Nor does a new connection start any lower.
    transfer(&mut w, 81, 16 * KIB, 5, &mut |_| {});
    assert_eq!(syn_mss(&tcp_sent(&w.injector.take()), 81), 1460);
}

#[test]
fn a_next_hop_mtu_of_0_takes_the_plateaus_below_the_packet() {
    // An old router (no next-hop MTU) with a next hop of 1400: 1500 goes
    // to the plateau 1492, still too long, then to 1006.
    let mut w = world(33);
    w.injector.capture(true);
    w.injector.route(Some(Router { limit: 1400, report: 0, ip: ROUTER, dropped: 0 }));
    transfer(&mut w, 80, 256 * KIB, 6, &mut |_| {});
    let segs = tcp_sent(&w.injector.take());
    let s = w.stats(0);
    assert_eq!((s.pmtu_lowered, s.pmtu_interfaces), (2, 2), "{s:?}");
    let dropped = w.injector.router_dropped();
    let (full, at_1492) = check_cut(&segs, 80, 1492);
    assert!(full > 0 && at_1492 == 1492, "1500 first, then 1492 ({full} of 1500)");
    let n_1492 = segs.iter().filter(|s| s.0 == 1492).count() as u64;
    assert_eq!(full + n_1492, dropped, "the router dropped both sizes");
    let last_long = segs.iter().rposition(|s| s.0 > 1400).unwrap();
    let after: Vec<usize> = segs[last_long + 1..].iter().map(|s| s.0).collect();
    assert_eq!(after.iter().max(), Some(&1006), "then the next plateau, 1006");
    transfer(&mut w, 81, 16 * KIB, 7, &mut |_| {});
    assert!(syn_mss(&tcp_sent(&w.injector.take()), 81) <= 966);
}

#[test]
fn a_next_hop_mtu_below_the_floor_is_clamped_to_576() {
    let mut w = world(34);
    w.injector.capture(true);
    w.injector.route(Some(Router { limit: 576, report: 300, ip: ROUTER, dropped: 0 }));
    transfer(&mut w, 80, 256 * KIB, 8, &mut |_| {});
    let segs = tcp_sent(&w.injector.take());
    let dropped = w.injector.router_dropped();
    assert_eq!(check_cut(&segs, 80, 576), (dropped, 576), "576, not 300");
    let s = w.stats(0);
    assert_eq!((s.pmtu_lowered, s.icmp_frag_needed), (1, dropped), "{s:?}");
}
