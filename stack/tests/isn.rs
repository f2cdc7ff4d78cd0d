//! Initial sequence numbers, as a peer sees them on the wire, with every
//! core seeded from the OS (`CoreSetup::seed: None`, as in production):
//! two runs differ, and 10 000 SYNs from one core show no pattern that
//! simple tests find (repeats, constant or small increments, biased bits
//! or bytes, correlation between neighbours, a linear congruential
//! relation). These are statistical checks with thresholds at five or
//! more standard deviations; they cannot prove unpredictability (see
//! docs/RELIABILITY.md for what smoltcp's generator is).
mod common;

use std::collections::HashSet;
use std::net::SocketAddrV4;

use common::model::{IPS, ModelWorld, model_config};
use ixtcp_driver::wire::link::LinkConfig;
use ixtcp_stack::StackConfig;
use ixtcp_testkit::frames::{self, ACK, SYN};

/// ISNs of `n` active opens from host 0's core to a closed port of host 1
/// (each is refused at once, so the slot is reused).
fn isns(n: usize) -> Vec<u32> {
    let mut w = ModelWorld::new(LinkConfig::ten_gig(), None, |i| StackConfig {
        max_connections: 256,
        ..model_config(IPS[i], 1)
    });
    w.injector.capture(true);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ids: Vec<_> = (0..100).map(|_| w.core(0, 0).connect(SocketAddrV4::new(IPS[1], 9), None).unwrap()).collect();
        w.run_for(5_000_000, &mut |_, c| {
            let _ = c.drain_events().count();
        });
        for id in ids {
            w.core(0, 0).close(id).unwrap();
        }
        out.extend(
            w.injector
                .take()
                .iter()
                .filter_map(|f| frames::parse_tcp(f))
                .filter(|s| s.flags & (SYN | ACK) == SYN && s.src == IPS[0])
                .map(|s| s.seq),
        );
    }
    out.truncate(n);
    out
}

#[test]
fn two_runs_start_from_different_isns() {
    let (a, b) = (isns(100), isns(100));
    assert_ne!(a[0], b[0]);
    let common: HashSet<u32> =
        a.iter().copied().collect::<HashSet<_>>().intersection(&b.iter().copied().collect()).copied().collect();
    assert!(common.is_empty(), "runs share ISNs: {common:?}");
}

fn inverse_mod_2_32(a: u32) -> Option<u32> {
    // Newton's iteration for odd a: x = x (2 - a x), doubling the bits.
    if a % 2 == 0 {
        return None;
    }
    let mut x = a;
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(x)));
    }
    Some(x)
}

#[test]
fn ten_thousand_isns_show_no_predictable_pattern() {
    let n = 10_000;
    let v = isns(n);
    let report = |what: &str| format!("{what}; first ISNs {:?}", &v[..8]);

    // Repeats: about 0.012 expected among 10 000 uniform 32-bit values.
    let distinct: HashSet<u32> = v.iter().copied().collect();
    assert!(n - distinct.len() <= 2, "{}", report("repeated ISNs"));

    // Increments: not constant, not small (a clock- or counter-driven ISN
    // moves by small steps; uniform deltas are below 2^24 one time in 256).
    let deltas: Vec<u32> = v.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
    let distinct_deltas: HashSet<u32> = deltas.iter().copied().collect();
    assert!(distinct_deltas.len() >= n - 10, "{}", report("repeating increments"));
    let small = deltas.iter().filter(|&&d| !(1 << 24..=u32::MAX - (1 << 24)).contains(&d)).count();
    assert!(small <= 150, "{}", report(&format!("{small} small increments")));

    // Every bit is set half of the time (5 sigma: ±250 of 5000).
    for bit in 0..32 {
        let ones = v.iter().filter(|&&x| x >> bit & 1 == 1).count();
        assert!((4750..=5250).contains(&ones), "{}", report(&format!("bit {bit} set {ones} times")));
    }

    // Each byte position is uniform: chi-square over 256 bins (255
    // degrees of freedom: mean 255, sd 22.6; limit at 6 sd).
    for shift in [0, 8, 16, 24] {
        let mut bins = [0u32; 256];
        for &x in &v {
            bins[(x >> shift & 0xff) as usize] += 1;
        }
        let e = n as f64 / 256.0;
        let chi2: f64 = bins.iter().map(|&o| (f64::from(o) - e).powi(2) / e).sum();
        assert!(chi2 < 390.0, "{}", report(&format!("byte at bit {shift}: chi-square {chi2:.0}")));
    }

    // Neighbours are uncorrelated (sd of r is 0.01).
    let f: Vec<f64> = v.iter().map(|&x| f64::from(x) / 4_294_967_296.0).collect();
    let mean = f.iter().sum::<f64>() / n as f64;
    let var: f64 = f.iter().map(|x| (x - mean).powi(2)).sum();
    let cov: f64 = f.windows(2).map(|p| (p[0] - mean) * (p[1] - mean)).sum();
    let r = cov / var;
    assert!(r.abs() < 0.05, "{}", report(&format!("serial correlation {r:.3}")));

    // No linear congruential relation x[i+1] = a x[i] + c (mod 2^32): fit
    // a and c on three neighbours, predict the fourth.
    let mut predicted = 0;
    for q in v.windows(4) {
        let Some(inv) = inverse_mod_2_32(q[1].wrapping_sub(q[0])) else { continue };
        let a = q[2].wrapping_sub(q[1]).wrapping_mul(inv);
        let c = q[1].wrapping_sub(a.wrapping_mul(q[0]));
        if a.wrapping_mul(q[2]).wrapping_add(c) == q[3] {
            predicted += 1;
        }
    }
    assert!(predicted <= 2, "{}", report(&format!("an LCG fit predicted {predicted} ISNs")));
}

/// The SYNs host 0 sent (captured), as (local port, ISN).
fn syns(w: &mut ModelWorld) -> Vec<(u16, u32)> {
    w.injector
        .take()
        .iter()
        .filter_map(|f| frames::parse_tcp(f))
        .filter(|s| s.flags & (SYN | ACK) == SYN && s.src == IPS[0])
        .map(|s| (s.sport, s.seq))
        .collect()
}

/// Opens connections from host 0 to closed port 9 of host 1 from `ports`,
/// all inside one step (one reading of the core's clock); returns that
/// reading and the SYNs seen once they were refused.
fn open_from(w: &mut ModelWorld, ports: &[u16]) -> (u64, Vec<(u16, u32)>) {
    let t = w.now_ns();
    let mut ids = Vec::new();
    w.step(&mut |h, c| {
        if h == 0 && ids.is_empty() {
            for &p in ports {
                ids.push(c.connect(SocketAddrV4::new(IPS[1], 9), Some(p)).unwrap());
            }
        }
    });
    w.run_for(5_000_000, &mut |_, c| {
        let _ = c.drain_events().count();
    });
    for id in ids {
        w.core(0, 0).close(id).unwrap();
    }
    (t, syns(w))
}

#[test]
fn rfc_6528_isns_hide_other_tuples_and_advance_by_the_4us_clock_on_one() {
    let seeded = ixtcp_testkit::seed::Seeded::new(0x6528);
    let seed = seeded.seed;
    let mut w = ModelWorld::new(LinkConfig::ten_gig(), Some(seed), |i| StackConfig {
        max_connections: 256,
        ..model_config(IPS[i], 1)
    });
    w.injector.capture(true);
    // Back to back: pairs of connections opened in the same instant from
    // neighbouring ports. With a global counter or PRNG stepping by a
    // pattern, their difference would be constant or small; with
    // ISN = M + F(tuple), it is F(a) - F(b): unpredictable.
    let mut diffs = Vec::new();
    let mut base = 40_000u16;
    while diffs.len() < 2_000 {
        let ports: Vec<u16> = (0..100).map(|i| base + i).collect();
        base += 100;
        let (_, seen) = open_from(&mut w, &ports);
        assert_eq!(seen.len(), ports.len(), "seed {seed}: {seen:?}");
        for p in seen.chunks(2) {
            diffs.push(p[1].1.wrapping_sub(p[0].1));
        }
    }
    let distinct: HashSet<u32> = diffs.iter().copied().collect();
    assert!(diffs.len() - distinct.len() <= 2, "seed {seed}: repeated differences");
    // |d| < 2^24 has odds 2^-7 for a uniform d: about 16 of 2 000.
    let small = diffs.iter().filter(|&&d| !(1 << 24..=u32::MAX - (1 << 24)).contains(&d)).count();
    assert!(small <= 60, "seed {seed}: {small} small differences between neighbouring tuples");
    for bit in 0..32 {
        // 5 sigma of 1 000 is 112.
        let ones = diffs.iter().filter(|&&d| d >> bit & 1 == 1).count();
        assert!((888..=1112).contains(&ones), "seed {seed}: bit {bit} of the differences set {ones} times");
    }

    // The same 4-tuple again, a moment later: its ISN is ahead by exactly
    // the 4 µs clock M (F is the same), so old segments of the first
    // incarnation fall behind the new one.
    let (t1, a) = open_from(&mut w, &[50_000]);
    w.run_for(123_456_789, &mut |_, c| {
        let _ = c.drain_events().count();
    });
    let (t2, b) = open_from(&mut w, &[50_000]);
    assert_eq!((a.len(), b.len()), (1, 1), "seed {seed}: {a:?} {b:?}");
    let m = (t2 / 4_000).wrapping_sub(t1 / 4_000) as u32;
    assert_eq!(b[0].1.wrapping_sub(a[0].1), m, "seed {seed}: ISNs {:#x} then {:#x}", a[0].1, b[0].1);
    assert!(m > 30_000, "the clock moved: {m}");
}
