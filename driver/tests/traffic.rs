//! Frames across two linked models: every size, every queue, byte-exact,
//! many ring wraps; RSS distribution and symmetry.

mod common;

use std::collections::HashMap;

use common::*;
use ixtcp_driver::device::{DeviceConfig, QueueId};
use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::rss::{self, Reta, Toeplitz};
use ixtcp_driver::wire::{QueueWire, Wire};

const QUEUES: u16 = 4;

#[test]
fn every_frame_size_crosses_on_every_queue_byte_exact() {
    let (mut a, mut b) = linked_pair(small_config(QUEUES));
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let reta = Reta::round_robin(QUEUES);
    let sizes: Vec<usize> = (60..=1514).collect();
    let mut rx = Vec::new();
    for q in 0..QUEUES {
        let flow = flow_to_queue(q, &reta, &t);
        let qi = usize::from(q);
        // Send from A's queue q (any TX queue would do), in chunks that fit
        // the ring, and receive on B's queue the flow hashes to.
        for chunk in sizes.chunks(48) {
            let expected: Vec<Vec<u8>> =
                chunk.iter().map(|&len| tcp_frame(MAC_A, MAC_B, flow, len, len as u32 + u32::from(q))).collect();
            let mut bufs: Vec<PacketBuf> = expected.iter().map(|f| buf(&a.pools[qi], f)).collect();
            assert_eq!(a.queues[qi].tx.tx_batch(&mut bufs), chunk.len());
            assert!(bufs.is_empty());
            assert_eq!(b.model.pump(), chunk.len());
            for other in 0..usize::from(QUEUES) {
                if other != qi {
                    assert_eq!(b.queues[other].rx.rx_batch(&mut rx, 64), 0, "frame for queue {q} on {other}");
                }
            }
            assert_eq!(drain(&mut b.queues[qi], &mut rx), chunk.len());
            for (got, want) in rx.drain(..).zip(&expected) {
                assert_eq!(got.len(), want.len());
                assert!(got.data() == &want[..], "queue {q}: frame of {} bytes differs", want.len());
            }
            a.queues[qi].tx.clean();
        }
        // 1455 frames through a 64-descriptor ring: more than 20 wraps.
        assert_eq!(b.queues[qi].rx.stats().packets, sizes.len() as u64);
        assert!(sizes.len() / b.queues[qi].rx.ring_size() >= 10);
        assert_eq!(a.queues[qi].tx.stats().packets, sizes.len() as u64);
        assert_eq!(a.queues[qi].tx.in_flight(), 0);
    }
    a.finish();
    b.finish();
}

#[test]
fn both_directions_and_bidirectional_traffic_work_at_once() {
    let (mut a, mut b) = linked_pair(small_config(QUEUES));
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let reta = Reta::round_robin(QUEUES);
    let mut seeded = Seeded::new(7);
    let mut rx = Vec::new();
    for round in 0..200u32 {
        let flow = Flow::random(&mut seeded.rng);
        let q = usize::from(flow.queue(&t, &reta));
        let len = 60 + (round as usize * 7) % 1400;
        // A -> B on the flow, B -> A on its reverse: same queue index.
        let ab = tcp_frame(MAC_A, MAC_B, flow, len, round);
        let ba = tcp_frame(MAC_B, MAC_A, flow.reversed(), len, round + 1000);
        let mut out = vec![buf(&a.pools[q], &ab)];
        assert_eq!(a.queues[q].tx.tx_batch(&mut out), 1);
        let mut back = vec![buf(&b.pools[q], &ba)];
        assert_eq!(b.queues[q].tx.tx_batch(&mut back), 1);
        b.model.pump();
        a.model.pump();
        assert_eq!(b.queues[q].rx.rx_batch(&mut rx, 8), 1, "seed {} round {round}", seeded.seed);
        assert!(rx.pop().unwrap().data() == &ab[..]);
        assert_eq!(a.queues[q].rx.rx_batch(&mut rx, 8), 1, "reverse of round {round}");
        assert!(rx.pop().unwrap().data() == &ba[..]);
    }
    for side in [&mut a, &mut b] {
        for q in side.queues.iter_mut() {
            q.tx.clean();
            assert_eq!(q.tx.in_flight(), 0);
        }
    }
    a.finish();
    b.finish();
}

#[test]
fn rss_spreads_random_flows_evenly_and_consistently() {
    let (mut a, mut b) = linked_pair(small_config(QUEUES));
    let mut seeded = Seeded::new(0x5eed);
    let flows: Vec<Flow> = (0..10_000).map(|_| Flow::random(&mut seeded.rng)).collect();
    let mut arrived: HashMap<Flow, QueueId> = HashMap::new();
    let mut per_queue = [0usize; QUEUES as usize];
    let mut rx = Vec::new();
    // Each flow twice (second pass checks stability); the reverse
    // direction once, from B to A, to check symmetry.
    for pass in 0..2 {
        for chunk in flows.chunks(40) {
            let mut bufs: Vec<PacketBuf> = chunk
                .iter()
                .enumerate()
                .map(|(i, &f)| buf(&a.pools[0], &tcp_frame(MAC_A, MAC_B, f, 60, i as u32)))
                .collect();
            assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), chunk.len());
            b.model.pump();
            let mut got = 0;
            for q in b.queues.iter_mut() {
                rx.clear();
                got += drain(q, &mut rx);
                for frame in &rx {
                    let d = frame.data();
                    let flow = Flow {
                        src: std::net::Ipv4Addr::new(d[26], d[27], d[28], d[29]),
                        dst: std::net::Ipv4Addr::new(d[30], d[31], d[32], d[33]),
                        sport: u16::from_be_bytes([d[34], d[35]]),
                        dport: u16::from_be_bytes([d[36], d[37]]),
                    };
                    if pass == 0 {
                        per_queue[usize::from(q.id.0)] += 1;
                        arrived.insert(flow, q.id);
                    } else {
                        assert_eq!(arrived.get(&flow), Some(&q.id), "seed {}: flow {flow:?} moved", seeded.seed);
                    }
                }
            }
            assert_eq!(got, chunk.len());
            a.queues[0].tx.clean();
        }
    }
    let even = flows.len() as f64 / f64::from(QUEUES);
    for (q, &n) in per_queue.iter().enumerate() {
        let dev = (n as f64 - even).abs() / even;
        assert!(
            dev <= 0.15,
            "seed {}: queue {q} got {n} of {} flows ({:.1}% off even)",
            seeded.seed,
            flows.len(),
            dev * 100.0
        );
    }
    // Reverse direction, B -> A: the same queue index on A.
    for chunk in flows.chunks(40) {
        let mut bufs: Vec<PacketBuf> = chunk
            .iter()
            .enumerate()
            .map(|(i, &f)| buf(&b.pools[0], &tcp_frame(MAC_B, MAC_A, f.reversed(), 60, i as u32)))
            .collect();
        assert_eq!(b.queues[0].tx.tx_batch(&mut bufs), chunk.len());
        a.model.pump();
        for q in a.queues.iter_mut() {
            rx.clear();
            drain(q, &mut rx);
            for frame in &rx {
                let d = frame.data();
                // Reverse the reversed tuple to find the original flow.
                let flow = Flow {
                    src: std::net::Ipv4Addr::new(d[30], d[31], d[32], d[33]),
                    dst: std::net::Ipv4Addr::new(d[26], d[27], d[28], d[29]),
                    sport: u16::from_be_bytes([d[36], d[37]]),
                    dport: u16::from_be_bytes([d[34], d[35]]),
                };
                assert_eq!(arrived.get(&flow), Some(&q.id), "seed {}: reverse of {flow:?}", seeded.seed);
            }
        }
        b.queues[0].tx.clean();
    }
    drop(rx);
    a.finish();
    b.finish();
}

/// The small test config with 9 000-byte-MTU jumbo frames: MAXFRS 9018
/// and 16 KiB buffers.
fn jumbo_config(num_queues: u16) -> DeviceConfig {
    DeviceConfig { max_frame_size: 9018, buf_size: 16384, ..small_config(num_queues) }
}

#[test]
fn jumbo_frames_cross_byte_exact_on_every_queue() {
    let (mut a, mut b) = linked_pair(jumbo_config(QUEUES));
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let reta = Reta::round_robin(QUEUES);
    let sizes = [1514, 1515, 4000, 8192, 9013, 9014];
    let mut rx = Vec::new();
    for q in 0..QUEUES {
        let qi = usize::from(q);
        let flow = flow_to_queue(q, &reta, &t);
        let expected: Vec<Vec<u8>> =
            sizes.iter().map(|&len| tcp_frame(MAC_A, MAC_B, flow, len, len as u32 + u32::from(q))).collect();
        let mut bufs: Vec<PacketBuf> = expected.iter().map(|f| buf(&a.pools[qi], f)).collect();
        assert_eq!(a.queues[qi].tx.tx_batch(&mut bufs), sizes.len());
        assert_eq!(b.model.pump(), sizes.len());
        assert_eq!(drain(&mut b.queues[qi], &mut rx), sizes.len(), "queue {q}");
        for (got, want) in rx.drain(..).zip(&expected) {
            assert!(got.data() == &want[..], "queue {q}: jumbo frame of {} bytes differs", want.len());
        }
        a.queues[qi].tx.clean();
    }
    // A frame above the MAC's limit never reaches the ring: dropped by
    // tx_batch and counted.
    let flow = flow_to_queue(0, &reta, &t);
    let mut too_long = vec![buf(&a.pools[0], &tcp_frame(MAC_A, MAC_B, flow, 9015, 1))];
    assert_eq!(a.queues[0].tx.max_len(), 9014);
    assert_eq!(a.queues[0].tx.tx_batch(&mut too_long), 0);
    assert_eq!(a.queues[0].tx.stats().errors, 1);
    let stats = b.handle.stats();
    assert_eq!(stats.rx_length_errors, 0);
    assert_eq!(stats.rx_packets, sizes.len() as u64 * u64::from(QUEUES));
    a.finish();
    b.finish();
}

/// A device of `config` plugged into a raw wire end the test sends on.
fn side_on_raw_wire(config: DeviceConfig) -> (Side, QueueWire) {
    let s = side(MAC_B, config);
    let (port, peer) = QueueWire::pair();
    s.model.attach(Box::new(port));
    (s, peer)
}

#[test]
fn frames_above_max_frame_size_are_dropped_and_counted() {
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let flow = flow_to_queue(0, &Reta::round_robin(1), &t);
    // Standard frames: 1514 bytes (1518 with FCS) is the largest taken.
    // Jumbo: 9014 (9018 with FCS) with MAXFRS 9018, whatever the buffer.
    for (config, largest) in [(small_config(1), 1514), (jumbo_config(1), 9014)] {
        let (mut s, mut peer) = side_on_raw_wire(config);
        let fits = tcp_frame(MAC_A, MAC_B, flow, largest, 1);
        let too_long = tcp_frame(MAC_A, MAC_B, flow, largest + 1, 2);
        peer.transmit(&too_long).unwrap();
        peer.transmit(&fits).unwrap();
        peer.transmit(&too_long).unwrap();
        s.model.pump();
        let mut rx = Vec::new();
        assert_eq!(drain(&mut s.queues[0], &mut rx), 1, "max {largest}: only the frame that fits arrives");
        assert!(rx[0].data() == &fits[..]);
        let stats = s.handle.stats();
        assert_eq!(stats.rx_length_errors, 2, "max {largest}: RLEC counts both long frames");
        assert_eq!(stats.rx_packets, 1);
        assert_eq!(s.queues[0].rx.stats().errors, 0, "dropped by the MAC, never written to a buffer");
        drop(rx);
        s.finish();
    }
}
/// What software hands the device for offload: IPv4 checksum zero, the
/// pseudo-header sum in the TCP checksum field.
fn prepared_for_offload(good: &[u8]) -> Vec<u8> {
    let mut f = good.to_vec();
    f[24..26].copy_from_slice(&[0, 0]);
    let src = std::net::Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = std::net::Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let pseudo = ixtcp_testkit::frames::pseudo_header_sum(src, dst, 6, f.len() - 34);
    f[50..52].copy_from_slice(&pseudo.to_be_bytes());
    f
}

#[test]
fn offloaded_checksums_arrive_right_and_the_receiver_reports_its_verdict() {
    use ixtcp_driver::offload::{CsumStatus, L4Proto, RxChecksum, TxOffload};
    let (mut a, mut b) = linked_pair(small_config(1));
    let mut seeded = Seeded::new(0x0ff1);
    let offload = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap();
    let mut rx = Vec::new();
    for round in 0..100u32 {
        let flow = Flow::random(&mut seeded.rng);
        let len = 54 + (round as usize * 13) % 1460;
        let good = tcp_frame(MAC_A, MAC_B, flow, len, round);
        let mut out = vec![buf(&a.pools[0], &prepared_for_offload(&good))];
        out[0].set_tx_offload(offload);
        // Every fourth frame goes out without offload with a broken TCP
        // checksum: the receiver must flag it.
        let broken = round % 4 == 3;
        if broken {
            let mut bad = good.clone();
            bad[50] ^= 0x40;
            out = vec![buf(&a.pools[0], &bad)];
        }
        assert_eq!(a.queues[0].tx.tx_batch(&mut out), 1);
        b.model.pump();
        assert_eq!(b.queues[0].rx.rx_batch(&mut rx, 8), 1, "seed {} round {round}", seeded.seed);
        let got = rx.pop().unwrap();
        let l4 = if broken { CsumStatus::Bad } else { CsumStatus::Good };
        assert_eq!(got.rx_checksum(), RxChecksum::new(CsumStatus::Good, l4), "round {round}");
        if !broken {
            // Frames under 60 bytes arrive padded.
            assert!(got.data()[..good.len()] == good[..], "seed {} round {round}: frame differs", seeded.seed);
        }
        a.queues[0].tx.clean();
    }
    // One context descriptor for the whole run: the parameters never changed.
    assert_eq!(a.queues[0].tx.stats().contexts, 1);
    assert!(a.model.faults().is_empty(), "{:?}", a.model.faults());
    a.finish();
    b.finish();
}
