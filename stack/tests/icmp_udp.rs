//! ICMP and UDP on one core over the in-memory NIC: raw frames in, what
//! the core sends out, every field and both checksums checked with
//! testkit's own checksum code; then UDP between two linked hosts.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use ixtcp_stack::config::StaticNeighbor;
use ixtcp_stack::sim::{SimImpairments, SimPort};
use ixtcp_stack::{CoreStats, Event, MacAddr, StackConfig, StackError, UdpError, UdpId};
use ixtcp_testkit::frames::{self, UdpDatagram};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ICMP: u8 = 1;
const UDP: u8 = 17;
/// Flags/fragment field with More Fragments set.
const MF: u16 = 0x2000;

/// One host (A) of one core whose peer B is a static neighbour, fed raw
/// frames from B.
struct Bench {
    host: Host,
    now_ns: u64,
}

impl Bench {
    fn new(tweak: impl FnOnce(&mut StackConfig)) -> Bench {
        let mut cfg = base_config(A, 1);
        cfg.static_neighbors = vec![StaticNeighbor { ip: B, mac: mac(2) }];
        tweak(&mut cfg);
        let mut b = Bench { host: Host::new(cfg, mac(1), 7), now_ns: 1_000_000 };
        // The first poll sends core 0's gratuitous ARP: out of the way.
        let _ = b.exchange(&[]);
        b
    }

    /// Delivers `frames` to the core, polls it once, and returns the IPv4
    /// packets it sent (Ethernet header checked and cut).
    fn exchange(&mut self, frames_in: &[Vec<u8>]) -> Vec<Vec<u8>> {
        for f in frames_in {
            self.host.nic.push(f);
        }
        self.host.cores[0].poll(self.now_ns);
        let mut out = Vec::new();
        self.host.nic.pull(&mut |f| {
            if frames::ethertype(f) == 0x0800 {
                let (dst, src) = frames::macs(f).unwrap();
                assert_eq!((dst, src), (mac(2).0, mac(1).0), "sent to B's MAC from ours");
                out.push(f[14..].to_vec());
            }
        });
        out
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now_ns += ms * 1_000_000;
    }

    fn stats(&self) -> CoreStats {
        self.host.stats()
    }
}

/// An IPv4 packet (20-byte header, TTL 64, checksum right) around `payload`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6..8].copy_from_slice(&frag.to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = frames::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An ICMP message of `kind`/`code`, rest of header `rest`, with its
/// checksum right.
fn icmp(kind: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = frames::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn echo(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let [a, b] = id.to_be_bytes();
    let [c, d] = seq.to_be_bytes();
    icmp(8, 0, [a, b, c, d], data)
}

/// `ip` in a frame from B to `dst`, padded as a NIC would.
fn frame_to(dst: MacAddr, ip: &[u8]) -> Vec<u8> {
    frames::padded(frames::ethernet(dst, mac(2), 0x0800, ip))
}

fn frame(ip: &[u8]) -> Vec<u8> {
    frame_to(mac(1), ip)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Checks the IPv4 header the core sent (from A to B, `proto`, right
/// length and checksum) and returns its payload.
fn check_ip(p: &[u8], proto: u8) -> &[u8] {
    assert_eq!(p[0], 0x45, "version 4, no options");
    assert_eq!(usize::from(be16(p, 2)), p.len(), "total length");
    assert_eq!(be16(p, 6) & 0x3fff, 0, "not a fragment");
    assert_eq!(p[9], proto);
    assert!(p[8] > 0, "a TTL");
    assert_eq!((&p[12..16], &p[16..20]), (&A.octets()[..], &B.octets()[..]));
    assert_eq!(frames::checksum(&p[..20]), 0, "IPv4 header checksum");
    &p[20..]
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

#[test]
fn echo_requests_of_0_56_and_1472_bytes_are_answered_exactly() {
    let mut b = Bench::new(|_| {});
    for (i, len) in [0usize, 56, 1472].into_iter().enumerate() {
        let data = pattern(len, i as u8);
        let req = echo(0xbeef, i as u16 + 1, &data);
        let out = b.exchange(&[frame(&ipv4(B, A, ICMP, 0, &req))]);
        assert_eq!(out.len(), 1, "one reply to the {len}-byte request");
        let m = check_ip(&out[0], ICMP);
        assert_eq!(m.len(), 8 + len);
        assert_eq!((m[0], m[1]), (0, 0), "echo reply, code 0");
        assert_eq!(frames::checksum(m), 0, "ICMP checksum");
        assert_eq!(&m[4..8], &req[4..8], "identifier and sequence number");
        assert_eq!(&m[8..], &data[..], "data returned intact");
    }
    let s = b.stats();
    assert_eq!((s.icmp_echo_requests, s.icmp_echo_replies, s.icmp_rate_limited), (3, 3, 0));
}

#[test]
fn echo_replies_are_limited_when_the_mask_says_so_and_the_bucket_refills() {
    // Linux's default mask leaves echo replies alone.
    let mut b = Bench::new(|_| {});
    let reqs: Vec<Vec<u8>> = (0..20).map(|i| frame(&ipv4(B, A, ICMP, 0, &echo(1, i, b"x")))).collect();
    assert_eq!(b.exchange(&reqs).len(), 20);
    // Bit 0 set: a burst of 3, then one per 1000 ms.
    let mut b = Bench::new(|c| {
        c.icmp_ratemask = 0x1819;
        c.icmp_ratelimit_ms = 1_000;
        c.icmp_ratelimit_burst = 3;
    });
    let req = |i| frame(&ipv4(B, A, ICMP, 0, &echo(1, i, b"x")));
    assert_eq!(b.exchange(&[req(0), req(1), req(2), req(3), req(4)]).len(), 3, "the burst");
    assert_eq!(b.stats().icmp_rate_limited, 2);
    b.advance_ms(500);
    assert_eq!(b.exchange(&[req(5)]).len(), 0, "half a token");
    b.advance_ms(500);
    assert_eq!(b.exchange(&[req(6), req(7)]).len(), 1, "one token a second");
    b.advance_ms(10_000);
    let all: Vec<Vec<u8>> = (10..20).map(req).collect();
    assert_eq!(b.exchange(&all).len(), 3, "refilled to the burst, no more");
    let s = b.stats();
    assert_eq!((s.icmp_echo_requests, s.icmp_echo_replies, s.icmp_rate_limited), (18, 7, 11));
}

#[test]
fn malformed_or_unanswerable_icmp_is_counted_and_never_answered() {
    let mut b = Bench::new(|_| {});
    let good = echo(7, 7, b"ping");
    let mut bad_sum = good.clone();
    bad_sum[9] ^= 0x40;
    let mut bad_ip = ipv4(B, A, ICMP, 0, &good);
    bad_ip[8] ^= 1;
    let subnet_bcast = Ipv4Addr::new(10, 0, 0, 255);
    let cases: Vec<Vec<u8>> = vec![
        frame(&ipv4(B, A, ICMP, 0, &good[..4])),
        frame(&ipv4(B, A, ICMP, 0, &bad_sum)),
        frame(&ipv4(B, A, ICMP, MF, &good)),
        frame(&ipv4(B, A, ICMP, 1, &good)),
        frame(&bad_ip),
        frame_to(MacAddr::BROADCAST, &ipv4(B, subnet_bcast, ICMP, 0, &good)),
        frame_to(MacAddr::BROADCAST, &ipv4(B, Ipv4Addr::BROADCAST, ICMP, 0, &good)),
        frame_to(MacAddr::BROADCAST, &ipv4(B, A, ICMP, 0, &good)),
        frame(&ipv4(Ipv4Addr::UNSPECIFIED, A, ICMP, 0, &good)),
        frame(&ipv4(Ipv4Addr::new(224, 0, 0, 1), A, ICMP, 0, &good)),
        frame(&ipv4(subnet_bcast, A, ICMP, 0, &good)),
        frame(&ipv4(A, A, ICMP, 0, &good)),
        // An echo reply and an error about something we sent: read, not
        // answered (no ICMP error about an ICMP message).
        frame(&ipv4(B, A, ICMP, 0, &icmp(0, 0, [0, 7, 0, 7], b"ping"))),
        frame(&ipv4(B, A, ICMP, 0, &icmp(3, 3, [0; 4], &ipv4(A, B, UDP, 0, &[0; 8])))),
    ];
    assert!(b.exchange(&cases).is_empty(), "nothing answered");
    let s = b.stats();
    assert_eq!(s.drop_icmp_truncated, 1);
    assert_eq!(s.drop_icmp_checksum, 1);
    assert_eq!(s.drop_icmp_fragment, 2);
    assert_eq!(s.drop_ip_csum_sw, 1);
    assert_eq!(s.drop_icmp_broadcast, 3, "two broadcast addresses and one link broadcast");
    assert_eq!(s.drop_bad_source, 4);
    assert_eq!(s.icmp_ignored, 1, "the echo reply");
    assert_eq!(s.icmp_errors_no_conn, 1, "the error quoting a datagram from a port nobody bound");
    assert_eq!((s.icmp_echo_requests, s.icmp_echo_replies), (5, 0));
    // And a good one still is.
    assert_eq!(b.exchange(&[frame(&ipv4(B, A, ICMP, 0, &good))]).len(), 1);
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    frames::udp_ip(&UdpDatagram { src: B, dst: A, sport, dport, payload })
}

#[test]
fn a_closed_port_answers_port_unreachable_quoting_the_datagram() {
    let mut b = Bench::new(|_| {});
    let d = udp(4000, 9, &pattern(100, 3));
    let out = b.exchange(&[frame(&d)]);
    assert_eq!(out.len(), 1);
    let m = check_ip(&out[0], ICMP);
    assert_eq!((m[0], m[1]), (3, 3), "destination unreachable, port unreachable");
    assert_eq!(frames::checksum(m), 0, "ICMP checksum");
    assert_eq!(&m[4..8], &[0; 4], "unused");
    assert_eq!(&m[8..], &d[..28], "the IP header and the first 8 bytes of the datagram");
    let s = b.stats();
    assert_eq!((s.drop_udp_no_port, s.icmp_port_unreachable_sent), (1, 1));
}

#[test]
fn port_unreachable_is_rate_limited_and_never_sent_for_broadcasts_fragments_or_bad_sources() {
    let mut b = Bench::new(|c| c.icmp_ratelimit_burst = 2);
    let d = udp(4000, 9, b"hi");
    let burst: Vec<Vec<u8>> = (0..4).map(|_| frame(&d)).collect();
    assert_eq!(b.exchange(&burst).len(), 2, "the default mask limits unreachables");
    assert_eq!(b.stats().icmp_rate_limited, 2);
    b.advance_ms(10_000);
    let bcast = frames::udp_ip(&UdpDatagram { src: B, dst: Ipv4Addr::BROADCAST, sport: 68, dport: 67, payload: b"x" });
    let mut frag = d.clone();
    frag[6] = 0x20;
    let c = {
        frag[10..12].copy_from_slice(&[0, 0]);
        frames::checksum(&frag[..20])
    };
    frag[10..12].copy_from_slice(&c.to_be_bytes());
    let from_bcast =
        frames::udp_ip(&UdpDatagram { src: Ipv4Addr::new(10, 0, 0, 255), dst: A, sport: 1, dport: 9, payload: b"x" });
    let cases =
        vec![frame_to(MacAddr::BROADCAST, &bcast), frame_to(MacAddr::BROADCAST, &d), frame(&frag), frame(&from_bcast)];
    assert!(b.exchange(&cases).is_empty());
    let s = b.stats();
    assert_eq!(s.drop_udp_broadcast, 1);
    assert_eq!(s.drop_udp_fragment, 1);
    assert_eq!(s.drop_bad_source, 1);
    assert_eq!(s.drop_udp_no_port, 5, "four in the burst, one link broadcast");
    assert_eq!(s.icmp_port_unreachable_sent, 2);
}

#[test]
fn malformed_udp_is_counted_by_cause_and_dropped() {
    let mut b = Bench::new(|_| {});
    let id = b.host.cores[0].udp_bind(9).unwrap();
    let good = udp(4000, 9, b"hello");
    let truncated = ipv4(B, A, UDP, 0, &good[20..24]);
    let mut short_len = good.clone();
    short_len[24..26].copy_from_slice(&7u16.to_be_bytes());
    let mut long_len = good.clone();
    long_len[24..26].copy_from_slice(&14u16.to_be_bytes());
    let mut bad_sum = good.clone();
    bad_sum[30] ^= 1;
    let mut no_sum = good.clone();
    no_sum[26..28].copy_from_slice(&[0, 0]);
    let cases = vec![frame(&truncated), frame(&short_len), frame(&long_len), frame(&bad_sum), frame(&no_sum)];
    assert!(b.exchange(&cases).is_empty(), "no answer to any");
    let s = b.stats();
    assert_eq!((s.drop_udp_truncated, s.drop_udp_bad_length, s.drop_udp_checksum), (1, 2, 1));
    assert_eq!(s.rx_udp, 1, "a zero checksum means none was computed");
    let mut buf = [0u8; 16];
    let got = b.host.cores[0].udp_recv_from(id, &mut buf).unwrap();
    assert_eq!((&buf[..got.len], got.from), (&b"hello"[..], SocketAddrV4::new(B, 4000)));
    assert_eq!(b.host.cores[0].udp_recv_from(id, &mut buf), Err(StackError::WouldBlock));
}

#[test]
fn a_bound_port_queues_datagrams_up_to_its_bound_keeps_boundaries_and_says_when_it_cut_one() {
    let mut b = Bench::new(|c| c.udp_rx_queue = 4);
    let core = &mut b.host.cores[0];
    let id = core.udp_bind(53).unwrap();
    assert_eq!(core.udp_bind(53), Err(StackError::AddrInUse(SocketAddrV4::new(A, 53))));
    let dgrams: Vec<Vec<u8>> = (1..=6).map(|n| frame(&udp(1000 + n as u16, 53, &pattern(n * 10, n as u8)))).collect();
    assert!(b.exchange(&dgrams).is_empty());
    let core = &mut b.host.cores[0];
    assert_eq!((core.udp_pending(id), core.udp_dropped(id)), (Ok(4), Ok(2)));
    assert_eq!(b.stats().drop_udp_queue_full, 2);
    let core = &mut b.host.cores[0];
    for n in 1..=4usize {
        let mut buf = [0u8; 25];
        let got = core.udp_recv_from(id, &mut buf).unwrap();
        assert_eq!(got.from, SocketAddrV4::new(B, 1000 + n as u16));
        assert_eq!(got.datagram_len, n * 10);
        assert_eq!(got.truncated(), n * 10 > 25);
        assert_eq!(&buf[..got.len], &pattern(n * 10, n as u8)[..got.len]);
    }
    core.udp_unbind(id).unwrap();
    assert_eq!(core.udp_pending(id), Err(StackError::StaleHandle));
    // Unbound: port unreachable again.
    assert_eq!(b.exchange(&[frame(&udp(1, 53, b"x"))]).len(), 1);
}

#[test]
fn send_to_builds_a_datagram_with_both_checksums_and_refuses_what_it_cannot_send() {
    let mut b = Bench::new(|_| {});
    let core = &mut b.host.cores[0];
    let id: UdpId = core.udp_bind(0).unwrap();
    let port = core.udp_local_port(id).unwrap();
    assert!((core.config().ephemeral_first..=core.config().ephemeral_last).contains(&port));
    let max = core.udp_max_payload();
    assert_eq!(max, 1472);
    let to = SocketAddrV4::new(B, 7);
    assert_eq!(core.udp_send_to(id, to, &pattern(max, 9)), Ok(max));
    assert_eq!(core.udp_send_to(id, to, &[]), Ok(0));
    assert!(matches!(core.udp_send_to(id, to, &pattern(max + 1, 9)), Err(StackError::InvalidOption(_))));
    for bad in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 0, 0, 255), A, Ipv4Addr::new(224, 0, 0, 9)] {
        let to = SocketAddrV4::new(bad, 7);
        assert_eq!(core.udp_send_to(id, to, b"x"), Err(StackError::InvalidAddress(to)));
    }
    let off = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 7);
    assert_eq!(core.udp_send_to(id, off, b"x"), Err(StackError::NoRoute(off)));
    let out = b.exchange(&[]);
    assert_eq!(out.len(), 2);
    for (p, len) in out.iter().zip([max, 0]) {
        let u = check_ip(p, UDP);
        assert_eq!(u.len(), 8 + len);
        assert_eq!((be16(u, 0), be16(u, 2), usize::from(be16(u, 4))), (port, 7, 8 + len));
        assert_ne!(be16(u, 6), 0, "a checksum is sent");
        assert_eq!(frames::l4_checksum(A, B, UDP, u), 0, "UDP checksum");
        assert_eq!(&u[8..], &pattern(len, 9)[..]);
    }
    assert_eq!(b.stats().tx_udp, 2);
}

/// Datagrams of every length from 1 to 1472 bytes echoed between two
/// hosts of two cores each: every core binds the same ports, RSS spreads
/// the flows, and each flow stays on one core.
#[test]
fn udp_echo_of_1_to_1472_bytes_between_two_hosts_of_two_cores() {
    let mut w = World::pair(
        Host::new(base_config(A, 2), mac(1), 11),
        Host::new(base_config(B, 2), mac(2), 12),
        SimImpairments::default(),
        11,
    );
    const SERVER: u16 = 7;
    // Several client ports, so that the flows spread over the cores.
    let client_ports: Vec<u16> = (40_000..40_008).collect();
    let mut ids: Vec<Vec<(u16, UdpId)>> = vec![Vec::new(); 4];
    for core in 0..2 {
        let id = w.core(1, core).udp_bind(SERVER).unwrap();
        ids[2 + core].push((SERVER, id));
        for &p in &client_ports {
            let id = w.core(0, core).udp_bind(p).unwrap();
            ids[core].push((p, id));
        }
    }
    let total = 1472usize;
    let mut next = 1usize;
    let mut got = vec![false; total + 1];
    let mut received = 0usize;
    let mut flow_core = std::collections::HashMap::new();
    let end = w.now_ns + 10_000_000_000;
    while w.now_ns < end && received < total {
        w.step(&mut |h, c| {
            let slot = h * 2 + usize::from(c.index());
            let mut buf = [0u8; 2048];
            for &(port, id) in &ids[slot] {
                while let Ok(r) = c.udp_recv_from(id, &mut buf) {
                    assert!(!r.truncated());
                    if h == 1 {
                        assert_eq!(*flow_core.entry(r.from).or_insert(c.index()), c.index(), "a flow moved core");
                        c.udp_send_to(id, r.from, &buf[..r.len]).unwrap();
                    } else {
                        let len = r.len;
                        assert_eq!(&buf[..len], &pattern(len, len as u8)[..], "datagram of {len} bytes");
                        assert_eq!((r.from, port), (SocketAddrV4::new(B, SERVER), client_ports[len % 8]));
                        assert!(!got[len], "datagram {len} twice");
                        got[len] = true;
                        received += 1;
                    }
                }
            }
            // Core 0 of the client sends 32 datagrams per step.
            if slot == 0 {
                for _ in 0..32 {
                    if next > total {
                        break;
                    }
                    let (_, id) = ids[0][next % 8];
                    c.udp_send_to(id, SocketAddrV4::new(B, SERVER), &pattern(next, next as u8)).unwrap();
                    next += 1;
                }
            }
        });
    }
    let (a, s) = (w.hosts[0].stats(), w.hosts[1].stats());
    assert_eq!(received, total, "client {a:?}\nserver {s:?}");
    assert_eq!((a.rx_udp_misdirected, s.rx_udp_misdirected), (0, 0));
    assert_eq!((s.rx_udp, s.tx_udp, a.rx_udp, a.tx_udp), (total as u64, total as u64, total as u64, total as u64));
    let per_core: Vec<u64> = w.hosts[1].cores.iter().map(|c| c.stats().rx_udp).collect();
    assert!(per_core.iter().all(|&n| n > 0), "RSS spread the flows over both server cores: {per_core:?}");
}

/// Opens a connection from A to B:80 and returns it with the IP packet of
/// its SYN.
fn syn_sent(b: &mut Bench) -> (ixtcp_stack::ConnId, Vec<u8>) {
    let id = b.host.cores[0].connect(SocketAddrV4::new(B, 80), None).unwrap();
    let out = b.exchange(&[]);
    assert_eq!(out.len(), 1, "the SYN");
    (id, out[0].clone())
}

/// Destination unreachable with `code` from B quoting `ip`'s header and
/// first 8 bytes, with the quoted sequence number moved by `seq_delta`.
fn unreachable(code: u8, ip: &[u8], seq_delta: u32) -> Vec<u8> {
    let mut q = ip[..28].to_vec();
    let seq = u32::from_be_bytes([q[24], q[25], q[26], q[27]]).wrapping_add(seq_delta);
    q[24..28].copy_from_slice(&seq.to_be_bytes());
    frame(&ipv4(B, A, ICMP, 0, &icmp(3, code, [0, 0, 0x05, 0x78], &q)))
}

#[test]
fn a_hard_icmp_error_in_the_syns_window_fails_the_connect_and_others_are_ignored() {
    let mut b = Bench::new(|_| {});
    let (id, syn) = syn_sent(&mut b);
    // Out of window (a blind guess), a soft error, fragmentation needed:
    // the connect goes on.
    for (code, delta) in [(3, 1), (3, 0x8000_0000), (1, 0), (4, 0)] {
        assert!(b.exchange(&[unreachable(code, &syn, delta)]).is_empty());
        assert_eq!(b.host.cores[0].state(id), Ok(ixtcp_stack::TcpState::SynSent), "code {code} delta {delta}");
    }
    // Another tuple: no connection.
    let mut other = syn.clone();
    other[22] ^= 1;
    assert!(b.exchange(&[unreachable(3, &other, 0)]).is_empty());
    let s = b.stats();
    assert_eq!((s.icmp_errors_out_of_window, s.icmp_errors_no_conn), (2, 1));
    assert_eq!((s.icmp_unreachable_tcp, s.icmp_frag_needed), (2, 1));
    // Port unreachable quoting the SYN itself: refused, nothing sent back.
    assert!(b.exchange(&[unreachable(3, &syn, 0)]).is_empty(), "no RST, no ICMP");
    let core = &mut b.host.cores[0];
    assert_eq!(core.close_reason(id), Ok(Some(ixtcp_stack::CloseReason::Refused)));
    assert_eq!(core.send(id, b"x"), Err(StackError::ConnectionRefused));
    let s = b.stats();
    assert_eq!((s.conns_refused, s.icmp_unreachable_tcp), (1, 3));
    assert_eq!(b.host.cores[0].socket_census().flows, 0, "the tuple is free again");
    // Time passes: the closed connection sends nothing more.
    b.advance_ms(30_000);
    assert!(b.exchange(&[]).is_empty());
}

/// A datagram on an empty queue raises one `Event::Udp`, the ones behind
/// it none until the queue was drained; port unreachable quoting a
/// datagram a bound port sent is recorded on it (with the destination)
/// and raises the event too, and is never answered.
#[test]
fn udp_events_come_per_emptied_queue_and_unreachable_errors_are_recorded_on_the_port() {
    let mut b = Bench::new(|_| {});
    let core = &mut b.host.cores[0];
    let id = core.udp_bind(5353).unwrap();
    let _ = core.drain_events().count();
    let udp_events = |b: &mut Bench| {
        b.host.cores[0].drain_events().filter(|e| matches!(e, Event::Udp { id: i } if *i == id)).count()
    };
    assert!(b.exchange(&[frame(&udp(9, 5353, b"one")), frame(&udp(9, 5353, b"two"))]).is_empty());
    assert_eq!(udp_events(&mut b), 1, "two datagrams on an empty queue: one event");
    assert!(b.exchange(&[frame(&udp(9, 5353, b"three"))]).is_empty());
    assert_eq!(udp_events(&mut b), 0, "the queue was not drained: no news");
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        b.host.cores[0].udp_recv_from(id, &mut buf).unwrap();
    }
    assert!(b.exchange(&[frame(&udp(9, 5353, b"four"))]).is_empty());
    assert_eq!(udp_events(&mut b), 1, "drained, then a datagram: news again");

    let to = SocketAddrV4::new(B, 4000);
    b.host.cores[0].udp_send_to(id, to, b"hello?").unwrap();
    let sent = b.exchange(&[]);
    assert_eq!(sent.len(), 1);
    assert_eq!(b.host.cores[0].udp_take_error(id), Ok(None));
    let refused = frame(&ipv4(B, A, ICMP, 0, &icmp(3, 3, [0; 4], &sent[0])));
    assert!(b.exchange(&[refused]).is_empty(), "no ICMP error about an ICMP error");
    assert_eq!(udp_events(&mut b), 1);
    let s = b.stats();
    assert_eq!((s.icmp_unreachable_udp, s.icmp_ignored, s.icmp_port_unreachable_sent), (1, 0, 0));
    let core = &mut b.host.cores[0];
    assert_eq!(core.udp_take_error(id), Ok(Some(UdpError { to, code: 3 })));
    assert_eq!(core.udp_take_error(id), Ok(None), "taken once");
    core.udp_unbind(id).unwrap();
    assert_eq!(core.udp_take_error(id), Err(StackError::StaleHandle));
}
