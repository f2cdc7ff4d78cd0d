//! Checksum offload: the checksums the model inserts on transmit and
//! reports on receive, against the testkit's software checksums of the same
//! frames (many seeded random ones), and every offload fault.

use rand::{Rng, RngCore};

use super::*;
use crate::desc::{rx_status, tx_cmd, tx_ctx, tx_olinfo};
use ixtcp_testkit::seed::Seeded;

const ENTRIES: u32 = 64;

/// A random TCP or UDP frame with correct checksums and `opt_words` words
/// of IPv4 options (a no-op option repeated, then end of list).
fn random_frame(rng: &mut impl RngCore, udp: bool, opt_words: usize) -> Vec<u8> {
    let mut payload = vec![0u8; rng.random_range(0..1400)];
    rng.fill_bytes(&mut payload);
    let a = ip(10, rng.random(), rng.random(), rng.random());
    let b = ip(192, 168, rng.random(), rng.random());
    let mut f = ipv4_frame(PEER_MAC, (a, rng.random()), (b, rng.random()), udp, &payload);
    frames::set_ipv4_ident(&mut f, rng.random());
    if opt_words > 0 {
        let mut opts = vec![1u8; 4 * opt_words];
        opts[4 * opt_words - 1] = 0;
        f.splice(34..34, opts);
        f[14] = 0x45 + opt_words as u8;
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = frames::checksum(&f[14..34 + 4 * opt_words]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
    }
    f
}

/// What software leaves for the device: IPv4 checksum zero, the
/// pseudo-header sum in the transport checksum field.
fn prepared(good: &[u8], iplen: usize, udp: bool) -> Vec<u8> {
    let mut f = good.to_vec();
    f[24..26].copy_from_slice(&[0, 0]);
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let l4 = 14 + iplen;
    let pseudo = frames::pseudo_header_sum(src, dst, f[23], f.len() - l4);
    let at = l4 + if udp { 6 } else { 16 };
    f[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
    f
}

/// Context descriptor words: (vlan_macip_lens, type_tucmd_mlhl, mss_l4len_idx).
fn context(maclen: u32, iplen: u32, l4t: u32, idx: u32) -> (u32, u32, u32) {
    (
        maclen << tx_ctx::MACLEN_SHIFT | iplen,
        tx_ctx::TUCMD_IPV4 | l4t | tx_cmd::DTYP_CTXT | tx_cmd::DEXT,
        idx << tx_olinfo::IDX_SHIFT,
    )
}

/// Puts a context descriptor at `i` and a data descriptor for `frame`
/// asking for `popts` with context `idx` at `i + 1`, and hands both over.
fn send_offloaded(rig: &Rig, tx: &Tx, i: u32, ctx: (u32, u32, u32), frame: &[u8], popts: u32, idx: u32) {
    let at = i as usize * DESC_SIZE;
    tx.ring.store_u32(at, ctx.0);
    tx.ring.store_u32(at + 4, 0);
    tx.ring.store_u32(at + 8, ctx.1);
    tx.ring.store_u32(at + 12, ctx.2);
    let d = (i + 1) % ENTRIES;
    let addr = tx.fill(d, frame);
    let olinfo = (frame.len() as u32) << tx_olinfo::PAYLEN_SHIFT | popts | tx_olinfo::CC | idx << tx_olinfo::IDX_SHIFT;
    let cmd = tx_cmd::DEXT | tx_cmd::DTYP_DATA | tx_cmd::IFCS | tx_cmd::EOP | tx_cmd::RS | frame.len() as u32;
    tx.put(d, AdvTxRead { buffer_addr: addr, cmd_type_len: cmd, olinfo_status: olinfo });
    rig.wr(r::TDT(tx.q), (d + 1) % ENTRIES);
}

const BOTH: u32 = tx_olinfo::IXSM | tx_olinfo::TXSM;

#[test]
fn inserted_checksums_equal_software_checksums_of_random_frames() {
    let mut s = Seeded::new(0x0ff1_0ad5);
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, ENTRIES);
    for n in 0..300u32 {
        let udp = s.rng.random_bool(0.3);
        let opt_words = if s.rng.random_bool(0.2) { s.rng.random_range(1..=10) } else { 0 };
        let good = random_frame(&mut s.rng, udp, opt_words);
        let iplen = 20 + 4 * opt_words;
        let l4t = if udp { 0 } else { tx_ctx::TUCMD_L4T_TCP };
        let idx = n % 2;
        let i = (2 * n) % ENTRIES;
        send_offloaded(&rig, &tx, i, context(14, iplen as u32, l4t, idx), &prepared(&good, iplen, udp), BOTH, idx);
        let out = rig.sent().unwrap_or_else(|| panic!("frame {n} not sent (seed {})", s.seed));
        assert_eq!(out[..good.len()], good[..], "frame {n}, udp {udp}, {opt_words} option words (seed {})", s.seed);
    }
    rig.assert_no_faults();
}

#[test]
fn ixsm_alone_leaves_the_transport_checksum_as_it_is() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, ENTRIES);
    let good = tcp_frame((ip(10, 0, 0, 2), 1), (ip(10, 0, 0, 1), 2), b"ip only");
    let mut f = good.clone();
    f[24..26].copy_from_slice(&[0, 0]);
    send_offloaded(&rig, &tx, 0, context(14, 20, 0, 0), &f, tx_olinfo::IXSM, 0);
    assert_eq!(rig.sent().unwrap()[..good.len()], good[..]);
    rig.assert_no_faults();
}

/// One offload rule broken: the frame and context as the driver wrote
/// them, and the words the fault's reason must contain.
struct Broken {
    name: &'static str,
    frame: Vec<u8>,
    ctx: (u32, u32, u32),
    popts: u32,
    idx: u32,
    reason: &'static str,
}

#[test]
fn each_offload_rule_broken_faults_with_its_reason() {
    let good = tcp_frame((ip(10, 0, 0, 2), 1000), (ip(10, 0, 0, 1), 80), b"twelve bytes");
    let ok = prepared(&good, 20, false);
    let tcp = context(14, 20, tx_ctx::TUCMD_L4T_TCP, 0);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = ok.clone();
        f(&mut v);
        v
    };
    let cases = vec![
        Broken {
            name: "no context in slot 1",
            frame: ok.clone(),
            ctx: tcp,
            popts: BOTH,
            idx: 1,
            reason: "without a context",
        },
        Broken {
            name: "MACLEN 18",
            frame: ok.clone(),
            ctx: context(18, 20, tx_ctx::TUCMD_L4T_TCP, 0),
            popts: BOTH,
            idx: 0,
            reason: "MACLEN",
        },
        Broken {
            name: "IPLEN 24",
            frame: ok.clone(),
            ctx: context(14, 24, tx_ctx::TUCMD_L4T_TCP, 0),
            popts: BOTH,
            idx: 0,
            reason: "IPLEN",
        },
        Broken {
            name: "IXSM with an IPv6 context",
            frame: ok.clone(),
            ctx: (tcp.0, tcp.1 & !tx_ctx::TUCMD_IPV4, tcp.2),
            popts: BOTH,
            idx: 0,
            reason: "IPv6",
        },
        Broken {
            name: "not IPv4",
            frame: with(&|f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
            ctx: tcp,
            popts: BOTH,
            idx: 0,
            reason: "does not carry IPv4",
        },
        Broken {
            name: "UDP context on TCP",
            frame: ok.clone(),
            ctx: context(14, 20, 0, 0),
            popts: BOTH,
            idx: 0,
            reason: "L4T",
        },
        Broken {
            name: "reserved L4T",
            frame: ok.clone(),
            ctx: context(14, 20, 3 << 11, 0),
            popts: BOTH,
            idx: 0,
            reason: "reserved L4T",
        },
        Broken { name: "fragment", frame: with(&|f| f[20] |= 0x20), ctx: tcp, popts: BOTH, idx: 0, reason: "fragment" },
        Broken {
            name: "trailing bytes",
            frame: with(&|f| f.extend_from_slice(&[0; 6])),
            ctx: tcp,
            popts: BOTH,
            idx: 0,
            reason: "after the IPv4 total length",
        },
        Broken {
            name: "IPv4 checksum not cleared",
            frame: good.clone(),
            ctx: tcp,
            popts: BOTH,
            idx: 0,
            reason: "non-zero IPv4 header checksum",
        },
        Broken {
            name: "no pseudo-header seed",
            frame: with(&|f| f[50..52].copy_from_slice(&[0, 0])),
            ctx: tcp,
            popts: BOTH,
            idx: 0,
            reason: "pseudo-header sum",
        },
        Broken {
            name: "IPv4 header past the frame",
            frame: ok[..30].to_vec(),
            ctx: tcp,
            popts: tx_olinfo::IXSM,
            idx: 0,
            reason: "outside the packet",
        },
    ];
    for c in cases {
        let mut rig = Rig::new();
        rig.init();
        let tx = rig.tx_queue(0, ENTRIES);
        send_offloaded(&rig, &tx, 0, c.ctx, &c.frame, c.popts, c.idx);
        match &rig.faults()[..] {
            [ModelFault::BadTxDescriptor { queue: 0, index: 1, reason }] => {
                assert!(reason.contains(c.reason), "{}: reason {reason:?} lacks {:?}", c.name, c.reason)
            }
            other => panic!("{}: faults {other:?}", c.name),
        }
        assert_eq!(rig.sent(), None, "{}: nothing may leave", c.name);
    }
}

#[test]
fn sctp_and_ipv6_transport_offloads_are_reported_as_not_modelled() {
    let good = tcp_frame((ip(10, 0, 0, 2), 1000), (ip(10, 0, 0, 1), 80), b"x");
    let ok = prepared(&good, 20, false);
    let tcp = context(14, 20, tx_ctx::TUCMD_L4T_TCP, 0);
    for (ctx, what) in [(context(14, 20, 2 << 11, 0), "SCTP"), ((tcp.0, tcp.1 & !tx_ctx::TUCMD_IPV4, tcp.2), "IPv6")] {
        let rig = Rig::new();
        rig.init();
        let tx = rig.tx_queue(0, ENTRIES);
        send_offloaded(&rig, &tx, 0, ctx, &ok, tx_olinfo::TXSM, 0);
        assert!(
            matches!(&rig.faults()[..], [ModelFault::Unsupported { queue: 0, rx: false, what: w }] if w.contains(what)),
            "{what}: {:?}",
            rig.faults()
        );
    }
}

#[test]
fn a_context_does_not_survive_the_queue_being_disabled() {
    let mut rig = Rig::new();
    rig.init();
    let tx = rig.tx_queue(0, ENTRIES);
    let good = tcp_frame((ip(10, 0, 0, 2), 1), (ip(10, 0, 0, 1), 2), b"a");
    let f = prepared(&good, 20, false);
    send_offloaded(&rig, &tx, 0, context(14, 20, tx_ctx::TUCMD_L4T_TCP, 0), &f, BOTH, 0);
    assert!(rig.sent().is_some());
    rig.regs.clear_bits(r::TXDCTL(0), r::dctl::ENABLE);
    let tx = rig.tx_queue(0, ENTRIES);
    // Only a data descriptor this time, relying on the old context.
    let addr = tx.fill(0, &f);
    let olinfo = (f.len() as u32) << tx_olinfo::PAYLEN_SHIFT | BOTH | tx_olinfo::CC;
    let cmd = tx_cmd::DEXT | tx_cmd::DTYP_DATA | tx_cmd::IFCS | tx_cmd::EOP | tx_cmd::RS | f.len() as u32;
    tx.put(0, AdvTxRead { buffer_addr: addr, cmd_type_len: cmd, olinfo_status: olinfo });
    rig.wr(r::TDT(0), 1);
    assert!(
        matches!(&rig.faults()[..], [ModelFault::BadTxDescriptor { reason, .. }] if reason.contains("without a context"))
    );
}

/// The status bits a software check of `frame` says the device must write:
/// IPCS for every IPv4 header, IPE when it is wrong; L4CS for TCP and UDP
/// (with a non-zero UDP checksum) outside fragments, TCPE when wrong.
fn expected_status(frame: &[u8]) -> u32 {
    let mut s = rx_status::IPCS;
    if frames::checksum(&frame[14..34]) != 0 {
        s |= rx_status::ERR_IPE;
    }
    let fragment = u16::from_be_bytes([frame[20], frame[21]]) & 0x3FFF != 0;
    let proto = frame[23];
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let udp_zero = proto == 17 && frame[40..42] == [0, 0];
    if !fragment && (proto == 6 || proto == 17) && !udp_zero {
        s |= rx_status::L4CS;
        if proto == 17 {
            s |= rx_status::UDPCS;
        }
        let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        if frames::l4_checksum(src, dst, proto, &frame[34..14 + total]) != 0 {
            s |= rx_status::ERR_TCPE;
        }
    }
    s
}

#[test]
fn receive_status_matches_a_software_check_of_random_frames() {
    let mut s = Seeded::new(0x5ec_0ad5);
    let mut rig = Rig::new();
    rig.init();
    let rx = rig.rx_queue(0, ENTRIES, 2);
    let mut counts = [0usize; 4];
    for n in 0..400u32 {
        let udp = s.rng.random_bool(0.3);
        let mut f = random_frame(&mut s.rng, udp, 0);
        let fix_ip = |f: &mut Vec<u8>| {
            f[24..26].copy_from_slice(&[0, 0]);
            let sum = frames::checksum(&f[14..34]);
            f[24..26].copy_from_slice(&sum.to_be_bytes());
        };
        match s.rng.random_range(0..6) {
            // Intact.
            0 | 1 => {}
            // A flipped bit in the IP identification: the header is wrong.
            2 => f[18] ^= 1 << s.rng.random_range(0..8),
            // A flipped bit after the IP header: the segment is wrong.
            3 => {
                let at = s.rng.random_range(34..f.len());
                f[at] ^= 1 << s.rng.random_range(0..8);
            }
            // A fragment (more fragments set), header checksum fixed: only
            // the header is checked.
            4 => {
                f[20] |= 0x20;
                fix_ip(&mut f);
            }
            // Another protocol (ICMP), header fixed: transport unchecked.
            _ => {
                f[23] = 1;
                fix_ip(&mut f);
            }
        }
        let want = expected_status(&f);
        counts[usize::from(want & rx_status::ERR_IPE != 0) + 2 * usize::from(want & rx_status::ERR_TCPE != 0)] += 1;
        let mut to_us = f.clone();
        to_us[..6].copy_from_slice(&MAC);
        assert_eq!(rig.inject(&to_us), 1);
        let i = n % ENTRIES;
        let wb = rx.desc(i);
        assert_eq!(wb.status_error & !(rx_status::DD | rx_status::EOP), want, "frame {n} (seed {})", s.seed);
        rx.arm(i);
        rig.wr(r::RDT(0), i);
    }
    // Every verdict occurred.
    assert!(counts.iter().take(3).all(|&c| c > 10), "{counts:?} (seed {})", s.seed);
    rig.assert_no_faults();
}
