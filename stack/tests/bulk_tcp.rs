//! TCP for bulk over two linked 82599 models with a 500 µs link (1 ms
//! round trip) on the virtual clock: jumbo frames (mtu 9000), windows
//! above 64 KiB (window scaling), CUBIC and RFC 7323 timestamps, every
//! byte verified, and what crossed the wire checked frame by frame.
mod common;

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use common::model::{IPS, ModelWorld, model_config};
use common::{BulkApp, Pattern, conn_events};
use ixtcp_driver::wire::link::LinkConfig;
use ixtcp_stack::{Congestion, StackConfig};
use ixtcp_testkit::frames::{self, SYN};
use ixtcp_testkit::seed::Seeded;

/// One-way latency of the link.
const LATENCY: Duration = Duration::from_micros(500);
/// Bytes each way on the one connection.
const BYTES: usize = 4 << 20;
/// The most a connection without window scaling can have in flight.
const UNSCALED_WINDOW: u64 = 65_535;

struct Run {
    /// Virtual time from the connect to both streams finished, ns.
    elapsed_ns: u64,
    /// Every frame host 0 sent.
    sent: Vec<Vec<u8>>,
}

/// Host 0 connects to host 1 and each sends `BYTES` to the other over a
/// 10 Gbit/s link with [`LATENCY`]; both hosts use `tweak`'s config.
fn transfer(seed: u64, tweak: impl Fn(&mut StackConfig)) -> Run {
    let cfg = |i: usize| {
        let mut c = model_config(IPS[i], 1);
        tweak(&mut c);
        c
    };
    let max_frame = cfg(0).mtu + 14;
    let link = LinkConfig { latency: LATENCY, max_frame, ..LinkConfig::ten_gig() };
    let mut w = ModelWorld::new(link, Some(seed), cfg);
    w.injector.capture(true);
    let pattern = Arc::new(Pattern::new(seed));
    let mut apps = [BulkApp::new(Arc::clone(&pattern), BYTES, 1), BulkApp::new(pattern, BYTES, 1)];
    w.core(1, 0).listen(5000, None).unwrap();
    let start = w.now_ns();
    let id = w.core(0, 0).connect(SocketAddrV4::new(IPS[1], 5000), None).unwrap();
    let (local, _) = w.core(0, 0).endpoints(id).unwrap();
    apps[0].add(0, id, local.port(), true);
    let end = start + 60_000_000_000;
    while w.now_ns() < end && apps[0].finished + apps[1].finished < 2 {
        w.step(&mut |h, c| {
            let mut ids = conn_events(c);
            apps[h].accept_all(0, c, 5000, &mut ids);
            apps[h].service(0, c, &ids);
        });
    }
    let report = format!("seed {seed} (IXTCP_SEED={seed} replays); A {:?}; B {:?}", w.stats(0), w.stats(1));
    for app in &apps {
        assert!(app.errors.is_empty(), "{:?}; {report}", &app.errors[..app.errors.len().min(5)]);
    }
    assert_eq!(apps[0].finished + apps[1].finished, 2, "transfer did not finish; {report}");
    for h in 0..2 {
        assert_eq!(w.hosts[h].model.faults(), vec![], "host {h}: model faults; {report}");
        let s = w.stats(h);
        assert_eq!(s.drop_ring_full + s.drop_mempool_empty, 0, "host {h} dropped frames; {report}");
    }
    Run { elapsed_ns: w.now_ns() - start, sent: w.injector.take() }
}

/// Host 0's SYN, parsed.
fn syn_options(run: &Run) -> frames::TcpOptionsSeen {
    let syn =
        run.sent.iter().find(|f| frames::parse_tcp(f).is_some_and(|t| t.flags & SYN != 0)).expect("host 0 sent a SYN");
    frames::parse_tcp_options(syn).expect("the SYN parses")
}

/// The largest window host 0 advertised, in bytes (scaled by the shift its
/// SYN announced; RFC 7323: never on the SYN itself).
fn largest_window(run: &Run, shift: u8) -> u64 {
    run.sent
        .iter()
        .filter_map(|f| Some((frames::parse_tcp(f)?, frames::parse_tcp_options(f)?)))
        .filter(|(t, _)| t.flags & SYN == 0)
        .map(|(_, o)| u64::from(o.window) << shift)
        .max()
        .unwrap_or(0)
}

/// What a connection limited to a 64 KiB window could at best achieve:
/// one window per round trip.
fn unscaled_floor_ns() -> u64 {
    let rtt = 2 * LATENCY.as_nanos() as u64;
    (BYTES as u64).div_ceil(UNSCALED_WINDOW) * rtt
}

#[test]
fn jumbo_frames_and_a_one_mib_window_fill_a_long_path() {
    let seeded = Seeded::new(0x9000);
    let run = transfer(seeded.seed, |c| {
        c.mtu = 9000;
        c.mempool_size = 2048;
        c.socket_rx_buffer = 1 << 20;
        c.socket_tx_buffer = 1 << 20;
        c.congestion = Congestion::Cubic;
    });
    let syn = syn_options(&run);
    assert_eq!(syn.mss, Some(9000 - 40), "the MSS follows the MTU");
    // 1 MiB of receive buffer: 2^21 > capacity, a shift of 5 (smoltcp
    // scales so that the 16-bit field covers the buffer).
    assert_eq!(syn.window_scale, Some(5), "the SYN carries the window scale");
    assert_eq!(syn.timestamp, None, "timestamps are off by default");
    let longest = run.sent.iter().map(Vec::len).max().unwrap_or(0);
    assert_eq!(longest, 9014, "full jumbo frames crossed the link");
    let jumbo = run.sent.iter().filter(|f| f.len() > 1514).count();
    assert!(jumbo >= BYTES / 8960, "{jumbo} frames above 1514 bytes for {BYTES} bytes");
    let window = largest_window(&run, 5);
    assert!(window > UNSCALED_WINDOW, "largest advertised window {window} bytes");
    // Each side had far more than 64 KiB in flight: the transfer took less
    // than half of what one unscaled window per round trip allows.
    let floor = unscaled_floor_ns();
    assert!(run.elapsed_ns < floor / 2, "took {} µs; a 64 KiB window needs {} µs", run.elapsed_ns / 1000, floor / 1000);
    println!("mtu 9000, 1 MiB window, cubic: {} µs (64 KiB floor {} µs)", run.elapsed_ns / 1000, floor / 1000);
}

#[test]
fn a_window_above_64_kib_at_mtu_1500_with_timestamps() {
    let seeded = Seeded::new(0x1500);
    let run = transfer(seeded.seed, |c| {
        c.socket_rx_buffer = 512 << 10;
        c.socket_tx_buffer = 512 << 10;
        c.tcp_timestamps = true;
    });
    let syn = syn_options(&run);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.window_scale, Some(4));
    let (tsval, tsecr) = syn.timestamp.expect("the SYN offers timestamps");
    assert_eq!(tsecr, 0, "nothing to echo yet");
    assert_eq!(run.sent.iter().map(Vec::len).max(), Some(1514));
    // Once both offered them, every segment carries timestamps, and the
    // clock moves in milliseconds from the connection's own offset.
    let stamps: Vec<(u32, u32)> =
        run.sent.iter().filter_map(|f| frames::parse_tcp_options(f)).map(|o| o.timestamp.expect("TSopt")).collect();
    assert!(stamps.iter().skip(1).all(|&(_, ecr)| ecr != 0), "every segment after the SYN echoes the peer");
    let last = stamps.last().unwrap().0;
    let ms = u64::from(last.wrapping_sub(tsval));
    assert!(ms.abs_diff(run.elapsed_ns / 1_000_000) <= 2, "TSval advanced {ms} ms in {} µs", run.elapsed_ns / 1000);
    assert!(largest_window(&run, 4) > UNSCALED_WINDOW);
    let floor = unscaled_floor_ns();
    assert!(run.elapsed_ns < floor / 2, "took {} µs; a 64 KiB window needs {} µs", run.elapsed_ns / 1000, floor / 1000);
    println!(
        "mtu 1500, 512 KiB window, reno, timestamps: {} µs (64 KiB floor {} µs)",
        run.elapsed_ns / 1000,
        floor / 1000
    );
}

#[test]
fn without_window_scaling_one_window_per_round_trip_is_the_limit() {
    // The control for the two tests above: 65 535-byte buffers need no
    // scale (smoltcp announces a shift of 0) and the transfer cannot beat
    // one unscaled window per round trip.
    let seeded = Seeded::new(0xffff);
    let run = transfer(seeded.seed, |c| {
        c.socket_rx_buffer = 65_535;
        c.socket_tx_buffer = 65_535;
    });
    assert_eq!(syn_options(&run).window_scale, Some(0));
    assert!(largest_window(&run, 0) <= UNSCALED_WINDOW);
    let floor = unscaled_floor_ns();
    assert!(run.elapsed_ns >= floor, "took {} µs, under the {} µs floor", run.elapsed_ns / 1000, floor / 1000);
    println!("mtu 1500, 65 535-byte window, reno: {} µs (64 KiB floor {} µs)", run.elapsed_ns / 1000, floor / 1000);
}
