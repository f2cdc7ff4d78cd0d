//! Device and queue statistics against the frames actually sent and
//! received, and the clear-on-read registers accumulated correctly.

mod common;

use common::*;
use ixtcp_driver::device::QueueId;
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::regs;
use ixtcp_driver::rss::{self, Reta, Toeplitz};

const QUEUES: u16 = 4;

#[test]
fn statistics_match_the_traffic_and_accumulate_across_reads() {
    let (mut a, mut b) = linked_pair(small_config(QUEUES));
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let reta = Reta::round_robin(QUEUES);
    let mut seeded = Seeded::new(99);
    let mut rx = Vec::new();
    // Expected per queue: (packets, host bytes).
    let mut want = [(0u64, 0u64); QUEUES as usize];
    let mut wire_bytes = 0u64;
    let mut total = 0u64;
    for round in 0..6 {
        for q in 0..QUEUES {
            let qi = usize::from(q);
            let flow = flow_to_queue(q, &reta, &t);
            let lens: Vec<usize> =
                (0..10 + round).map(|_| rand::Rng::random_range(&mut seeded.rng, 60..=1514)).collect();
            let mut bufs: Vec<PacketBuf> =
                lens.iter().map(|&l| buf(&a.pools[qi], &tcp_frame(MAC_A, MAC_B, flow, l, l as u32))).collect();
            assert_eq!(a.queues[qi].tx.tx_batch(&mut bufs), lens.len());
            want[qi].0 += lens.len() as u64;
            want[qi].1 += lens.iter().sum::<usize>() as u64;
            // GORC/GOTC count the frame with its 4-byte CRC.
            wire_bytes += lens.iter().map(|&l| l as u64 + 4).sum::<u64>();
            total += lens.len() as u64;
        }
        b.model.pump();
        for q in b.queues.iter_mut() {
            drain(q, &mut rx);
        }
        rx.clear();
        // Read the counters in the middle of the traffic (odd rounds) to
        // check that each read's values are added, not lost or doubled.
        if round % 2 == 1 {
            let sa = a.handle.stats();
            let sb = b.handle.stats();
            assert_eq!(sa.tx_packets, total);
            assert_eq!(sb.rx_packets, total);
            // The registers were cleared by that read.
            assert_eq!(a.model.regs().read32(regs::GPTC), 0);
            assert_eq!(b.model.regs().read32(regs::GPRC), 0);
            assert_eq!(b.model.regs().read32(regs::QPRC(0)), 0);
        }
    }
    let sa = a.handle.stats();
    let sb = b.handle.stats();
    assert_eq!((sa.tx_packets, sa.tx_bytes), (total, wire_bytes));
    assert_eq!((sb.rx_packets, sb.rx_bytes), (total, wire_bytes));
    assert_eq!((sa.rx_packets, sb.tx_packets), (0, 0));
    assert_eq!((sb.rx_missed, sb.rx_length_errors), (0, 0));
    assert_eq!(sa.queues.len(), usize::from(QUEUES));
    for (q, &(packets, bytes)) in want.iter().enumerate() {
        assert_eq!((sa.queues[q].tx_packets, sa.queues[q].tx_bytes), (packets, bytes), "A queue {q}");
        assert_eq!((sb.queues[q].rx_packets, sb.queues[q].rx_bytes), (packets, bytes), "B queue {q}");
        assert_eq!(sb.queues[q].rx_dropped, 0);
        // The software counters agree with the device's.
        assert_eq!((a.queues[q].tx.stats().packets, a.queues[q].tx.stats().bytes), (packets, bytes));
        assert_eq!((b.queues[q].rx.stats().packets, b.queues[q].rx.stats().bytes), (packets, bytes));
        // Per-queue reads see the same totals (nothing new arrived).
        assert_eq!(b.handle.queue_stats(QueueId(q as u16)), Some(sb.queues[q]));
    }
    // No traffic since: a further read changes nothing.
    assert_eq!(a.handle.stats(), sa);
    assert_eq!(b.handle.stats(), sb);
    assert_eq!(b.handle.queue_stats(QueueId(QUEUES)), None);
    a.finish();
    b.finish();
}

#[test]
fn queue_stats_accumulate_between_full_reads() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let flow = flow_to_queue(0, &Reta::round_robin(1), &Toeplitz::new(&rss::SYMMETRIC_KEY));
    let mut rx = Vec::new();
    for i in 1..=3u64 {
        let mut bufs = vec![buf(&a.pools[0], &tcp_frame(MAC_A, MAC_B, flow, 100, 0))];
        a.queues[0].tx.tx_batch(&mut bufs);
        b.model.pump();
        drain(&mut b.queues[0], &mut rx);
        // Alternate between the per-queue read and the full read: both feed
        // the same totals.
        let s = if i % 2 == 1 { b.handle.queue_stats(QueueId(0)).unwrap() } else { b.handle.stats().queues[0] };
        assert_eq!((s.rx_packets, s.rx_bytes), (i, 100 * i));
    }
    rx.clear();
    a.queues[0].tx.clean();
    a.finish();
    b.finish();
}

#[test]
fn short_frames_are_padded_on_the_wire() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let mut frame = vec![0u8; 42];
    frame[..6].copy_from_slice(&[0xff; 6]); // broadcast, like an ARP request
    frame[6..12].copy_from_slice(&MAC_A);
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    let mut bufs = vec![buf(&a.pools[0], &frame)];
    assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), 1);
    b.model.pump();
    let mut rx = Vec::new();
    assert_eq!(b.queues[0].rx.rx_batch(&mut rx, 4), 1);
    assert_eq!(rx[0].len(), 60);
    assert_eq!(&rx[0].data()[..42], &frame[..]);
    assert!(rx[0].data()[42..].iter().all(|&x| x == 0));
    let sa = a.handle.stats();
    assert_eq!((sa.tx_packets, sa.tx_bytes), (1, 64));
    assert_eq!(sa.queues[0].tx_bytes, 42, "QBTC counts the bytes fetched from memory");
    rx.clear();
    a.queues[0].tx.clean();
    a.finish();
    b.finish();
}
