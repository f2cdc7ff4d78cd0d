//! The in-memory link, driven deterministically by a virtual clock: pacing
//! to the exact line-rate formula, backlog refusals, latency, and seeded
//! impairments. Every assertion about random behaviour prints its seed.
#![forbid(unsafe_code)]

use ixtcp_driver::time::{Clock, MonotonicClock, VirtualClock};
use ixtcp_driver::wire::link::wire_bytes;
use ixtcp_driver::wire::{Impairments, Link, LinkConfig, LinkEnd, Wire, WireError};
use ixtcp_testkit::frames;
use std::sync::Arc;
use std::time::Duration;

fn clocked(config: LinkConfig) -> (VirtualClock, LinkEnd, LinkEnd) {
    let clock = VirtualClock::new();
    let (a, b) = Link::pair(config, Arc::new(clock.clone()));
    (clock, a, b)
}

/// A frame of `len` bytes (at least 18): broadcast header, EtherType
/// 0x88b5 (local experimental), then the frame's number and a pattern.
fn frame(id: u32, len: usize) -> Vec<u8> {
    let pattern = (18..len).map(|i| (i as u32 ^ id) as u8);
    let payload: Vec<u8> = id.to_be_bytes().into_iter().chain(pattern).collect();
    frames::ethernet(frames::BROADCAST, [0x02, 0, 0, 0, 0, 1], frames::ETHERTYPE_EXPERIMENTAL, &payload)
}

fn id_of(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

fn drain(end: &mut LinkEnd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while end.receive(&mut buf) {
        out.push(buf.clone());
    }
    out
}

#[test]
fn unlimited_link_delivers_in_order_at_once_both_ways() {
    let (_clock, mut a, mut b) = clocked(LinkConfig::unlimited());
    assert_eq!(b.next_arrival_ns(), None);
    for i in 0..100 {
        a.transmit(&frame(i, 60)).unwrap();
    }
    b.transmit(&frame(7, 1514)).unwrap();
    assert_eq!(b.next_arrival_ns(), Some(0));
    let got: Vec<u32> = drain(&mut b).iter().map(|f| id_of(f)).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(drain(&mut a), vec![frame(7, 1514)]);
    let s = a.stats();
    assert_eq!((s.sent_frames, s.delivered_frames, s.sent_bytes, s.delivered_bytes), (100, 100, 6000, 6000));
    assert_eq!(b.incoming_stats(), s);
}

#[test]
fn frames_longer_than_the_link_carries_are_refused() {
    let (_c, mut a, _b) = clocked(LinkConfig::unlimited());
    assert_eq!(a.transmit(&[0; 1515]), Err(WireError::TooLong { len: 1515, max: 1514 }));
    let (_c, mut a, _b) = clocked(LinkConfig { max_frame: 9014, ..LinkConfig::unlimited() });
    assert_eq!(a.transmit(&[0; 9014]), Ok(()));
}

/// Drives a saturated sender for `until_ns` of virtual time, advancing the
/// clock straight to each next event, and returns the time every frame was
/// received at.
fn saturate(len: usize, until_ns: u64) -> Vec<u64> {
    let config = LinkConfig { latency: Duration::ZERO, ..LinkConfig::ten_gig() };
    let (clock, mut a, mut b) = clocked(config);
    let mut sent = 0u32;
    let mut received = Vec::new();
    let mut buf = Vec::new();
    loop {
        while a.transmit(&frame(sent, len)).is_ok() {
            sent += 1;
        }
        assert!(a.transmit_ready_ns() > clock.now_ns(), "Busy although the backlog has room");
        let next = b.next_arrival_ns().unwrap_or(u64::MAX).min(a.transmit_ready_ns());
        if next > until_ns {
            return received;
        }
        clock.advance_to(next);
        while b.receive(&mut buf) {
            assert_eq!(id_of(&buf) as usize, received.len(), "out of order");
            received.push(clock.now_ns());
        }
    }
}

#[test]
fn ten_gig_carries_minimum_frames_at_exactly_14_88_mpps() {
    // 60 bytes + 24 of preamble, FCS and gap = 84 bytes = 67.2 ns: frame k
    // (from 0) has fully arrived at 67.2 (k + 1) ns.
    let times = saturate(60, 1_000_000);
    for (k, &t) in times.iter().enumerate() {
        assert_eq!(t, (672 * (k as u64 + 1)).div_ceil(10), "frame {k}");
    }
    // floor(1 ms / 67.2 ns): 14 880 frames in 1 ms, i.e. 14.88 Mpps.
    assert_eq!(times.len(), 14_880);
    // Shorter frames are padded and take the same time.
    assert_eq!(wire_bytes(42), wire_bytes(60));
}

#[test]
fn ten_gig_carries_full_frames_at_812_kpps() {
    // 1514 + 24 = 1538 bytes = 1230.4 ns per frame.
    let times = saturate(1514, 10_000_000);
    for (k, &t) in times.iter().enumerate() {
        assert_eq!(t, (12_304 * (k as u64 + 1)).div_ceil(10), "frame {k}");
    }
    assert_eq!(times.len(), 8_127); // floor(10 ms / 1230.4 ns): 812.7 kpps
}

#[test]
fn transmit_is_busy_beyond_the_backlog_and_accepts_again_later() {
    let config = LinkConfig { max_backlog: Duration::from_nanos(1000), ..LinkConfig::ten_gig() };
    let (clock, mut a, _b) = clocked(config);
    // Frame k starts at 67.2 k ns: it is accepted while 67.2 k <= 1000,
    // so frames 0..=14 are, and frame 15 (1008 ns queued ahead) is not.
    for k in 0..15 {
        assert_eq!(a.transmit(&frame(k, 60)), Ok(()), "frame {k}");
    }
    assert_eq!(a.transmit(&frame(15, 60)), Err(WireError::Busy));
    assert_eq!(a.backlog(), Duration::from_nanos(1008));
    assert_eq!(a.transmit_ready_ns(), 8);
    clock.advance_to(7);
    assert_eq!(a.transmit(&frame(15, 60)), Err(WireError::Busy));
    clock.advance_to(8);
    assert_eq!(a.transmit(&frame(15, 60)), Ok(()));
    let s = a.stats();
    assert_eq!((s.sent_frames, s.busy), (16, 2));
}

#[test]
fn latency_is_added_after_the_last_bit_has_left() {
    let config = LinkConfig { latency: Duration::from_micros(5), ..LinkConfig::ten_gig() };
    let (clock, mut a, mut b) = clocked(config);
    clock.advance_to(100);
    a.transmit(&frame(0, 60)).unwrap();
    a.transmit(&frame(1, 60)).unwrap();
    // Ends at 167.2 ns (rounded up to 168), plus 5 µs.
    assert_eq!(b.next_arrival_ns(), Some(5_168));
    clock.advance_to(5_167);
    assert!(drain(&mut b).is_empty());
    clock.advance_to(5_168);
    assert_eq!(drain(&mut b).len(), 1);
    assert_eq!(b.next_arrival_ns(), Some(5_235)); // 234.4 -> 235, plus 5 µs
    clock.advance_to(5_235);
    assert_eq!(drain(&mut b).len(), 1);
    assert_eq!(b.next_arrival_ns(), None);

    let (clock, mut a, b) = clocked(LinkConfig { latency: Duration::from_micros(1), ..LinkConfig::unlimited() });
    clock.advance_to(50);
    a.transmit(&frame(0, 60)).unwrap();
    assert_eq!(b.next_arrival_ns(), Some(1_050));
    assert_eq!(b.pending(), 1);
}

fn impaired(imp: Impairments) -> (VirtualClock, LinkEnd, LinkEnd) {
    clocked(LinkConfig::unlimited().with_impairments(imp))
}

/// Sends `n` frames through an impaired link and returns what arrived,
/// after letting every held frame go.
fn run(imp: Impairments, n: u32, len: usize) -> (Vec<Vec<u8>>, ixtcp_driver::wire::LinkStats) {
    let (clock, mut a, mut b) = impaired(imp);
    let mut got = Vec::new();
    for i in 0..n {
        a.transmit(&frame(i, len)).unwrap();
        got.extend(drain(&mut b));
    }
    while let Some(t) = b.next_arrival_ns() {
        clock.advance_to(t);
        got.extend(drain(&mut b));
    }
    (got, a.stats())
}

/// `observed` events out of `n` trials with probability `p` lie within
/// five standard deviations of the mean.
fn assert_rate(what: &str, observed: u64, n: u64, p: f64, seed: u64) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let rate = observed as f64 / n as f64;
    assert!(
        (observed as f64 - mean).abs() <= 5.0 * sigma,
        "seed {seed}: {what} {observed} of {n} ({rate:.5}), expected {p} ± {:.5}",
        5.0 * sigma / n as f64
    );
}

const N: u32 = 100_000;
const SEEDS: [u64; 3] = [1, 0xdead_beef, 20_240_601];

#[test]
fn loss_rate_matches_its_probability() {
    for seed in SEEDS {
        let (got, s) = run(Impairments { loss: 0.02, seed, ..Impairments::none() }, N, 64);
        assert_rate("lost", s.dropped, N.into(), 0.02, seed);
        assert_eq!(got.len() as u64, u64::from(N) - s.dropped, "seed {seed}");
        assert!(got.windows(2).all(|w| id_of(&w[0]) < id_of(&w[1])), "seed {seed}: loss alone reordered");
        assert_eq!((s.sent_frames, s.delivered_frames), (N.into(), got.len() as u64), "seed {seed}");
    }
}

#[test]
fn duplication_rate_matches_and_copies_follow_their_original() {
    for seed in SEEDS {
        let (got, s) = run(Impairments { duplicate: 0.01, seed, ..Impairments::none() }, N, 64);
        assert_rate("duplicated", s.duplicated, N.into(), 0.01, seed);
        let twins = got.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        assert_eq!(twins, s.duplicated, "seed {seed}");
        assert_eq!(got.len() as u64, u64::from(N) + s.duplicated, "seed {seed}");
    }
}

#[test]
fn reordered_frames_arrive_after_one_to_a_few_later_ones() {
    for seed in SEEDS {
        let (got, s) = run(Impairments { reorder: 0.05, seed, ..Impairments::none() }, N, 64);
        assert_rate("reordered", s.reordered, N.into(), 0.05, seed);
        let ids: Vec<u32> = got.iter().map(|f| id_of(f)).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "seed {seed}: a frame was lost or doubled");
        // A frame is late when a later-numbered one came before it; it may
        // have been overtaken by at most a few frames.
        let mut highest = 0;
        let mut late = 0u64;
        for (pos, &id) in ids.iter().enumerate() {
            if id < highest {
                late += 1;
                let overtaken = ids[..pos].iter().filter(|&&other| other > id).count();
                assert!(overtaken <= 3 * 4, "seed {seed}: frame {id} overtaken by {overtaken}");
            }
            highest = highest.max(id);
        }
        // Held frames at the very end are released by the hold timer and
        // come last, not late.
        assert!(late <= s.reordered && late + 4 >= s.reordered, "seed {seed}: {late} late, {} held", s.reordered);
    }
}

#[test]
fn corruption_flips_exactly_one_bit_after_the_ethernet_header() {
    for seed in SEEDS {
        let (got, s) = run(Impairments { corrupt: 0.03, seed, ..Impairments::none() }, N, 128);
        assert_rate("corrupted", s.corrupted, N.into(), 0.03, seed);
        assert_eq!(got.len(), N as usize, "seed {seed}");
        let mut corrupted = 0;
        for (i, f) in got.iter().enumerate() {
            let sent = frame(i as u32, 128);
            assert_eq!(f.len(), sent.len(), "seed {seed}");
            assert_eq!(f[..14], sent[..14], "seed {seed}: frame {i} header touched");
            let bits: u32 = f.iter().zip(&sent).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert!(bits <= 1, "seed {seed}: frame {i} has {bits} bits flipped");
            corrupted += u64::from(bits);
        }
        assert_eq!(corrupted, s.corrupted, "seed {seed}");
    }
}

fn everything(seed: u64) -> Impairments {
    Impairments { loss: 0.02, duplicate: 0.02, reorder: 0.02, corrupt: 0.02, seed }
}

#[test]
fn same_seed_replays_exactly_and_another_seed_does_not() {
    let seed = 42;
    let (first, s1) = run(everything(seed), 10_000, 100);
    let (again, s2) = run(everything(seed), 10_000, 100);
    assert!(first == again, "seed {seed}: two runs differ");
    assert_eq!(s1, s2, "seed {seed}");
    let (other, _) = run(everything(seed + 1), 10_000, 100);
    assert!(first != other, "seeds {seed} and {} gave the same run", seed + 1);
    let s = s1;
    assert_eq!(
        s.delivered_frames,
        s.sent_frames - s.dropped + s.duplicated,
        "seed {seed}: every frame accounted for: {s}"
    );
}

#[test]
fn each_direction_replays_whatever_the_other_does() {
    let seed = 9;
    let alone = run(everything(seed), 5_000, 100).0;
    let (clock, mut a, mut b) = impaired(everything(seed));
    let mut got = Vec::new();
    for i in 0..5_000 {
        a.transmit(&frame(i, 100)).unwrap();
        if i % 3 == 0 {
            b.transmit(&frame(i, 70)).unwrap();
            drain(&mut a);
        }
        got.extend(drain(&mut b));
    }
    while let Some(t) = b.next_arrival_ns() {
        clock.advance_to(t);
        got.extend(drain(&mut b));
    }
    assert!(got == alone, "seed {seed}: traffic the other way changed this direction");
}

#[test]
fn paced_impaired_link_driven_by_next_arrival() {
    // A virtual-time loop over a 10G link with impairments: every frame is
    // accounted for and time only moves to arrivals and ready times.
    let seed = 5;
    let config = LinkConfig::ten_gig().with_impairments(everything(seed));
    let (clock, mut a, mut b) = clocked(config);
    let mut sent = 0;
    let mut received = 0u64;
    let mut buf = Vec::new();
    while sent < 20_000 || b.next_arrival_ns().is_some() {
        while sent < 20_000 && a.transmit(&frame(sent, 1000)).is_ok() {
            sent += 1;
        }
        let ready = if sent < 20_000 { a.transmit_ready_ns() } else { u64::MAX };
        let next = b.next_arrival_ns().unwrap_or(u64::MAX).min(ready);
        clock.advance_to(next);
        while b.receive(&mut buf) {
            received += 1;
        }
    }
    let s = a.stats();
    assert_eq!(received, s.sent_frames - s.dropped + s.duplicated, "seed {seed}: {s}");
    // 20 000 frames of 1024 wire bytes at 10 Gbit/s take 16.384 ms, plus
    // latency, plus the final reorder hold at most.
    assert!(clock.now_ns() >= 16_384_000 && clock.now_ns() <= 16_384_000 + 1_000 + 1_000_000, "{}", clock.now_ns());
}

#[test]
fn ends_work_from_two_threads_on_the_monotonic_clock() {
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
    let (mut a, mut b) = Link::pair(LinkConfig::ten_gig(), clock);
    let sender = std::thread::spawn(move || {
        let mut i = 0;
        while i < 10_000 {
            match a.transmit(&frame(i, 200)) {
                Ok(()) => i += 1,
                Err(WireError::Busy) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
        a
    });
    let mut buf = Vec::new();
    let mut next = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while next < 10_000 && std::time::Instant::now() < deadline {
        if b.receive(&mut buf) {
            assert_eq!(id_of(&buf), next);
            next += 1;
        }
    }
    assert_eq!(next, 10_000);
    let a = sender.join().unwrap();
    assert_eq!(a.stats().sent_frames, 10_000);
}
