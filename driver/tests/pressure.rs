//! Overload: a receiver that does not poll (full ring), an empty mempool, a
//! full transmit ring. Each must count, keep what it holds intact, recover,
//! and leak nothing.

mod common;

use common::*;
use ixtcp_driver::device::QueuePair;
use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::rss::{self, Reta, Toeplitz};

fn flow0(queues: u16) -> Flow {
    flow_to_queue(0, &Reta::round_robin(queues), &Toeplitz::new(&rss::SYMMETRIC_KEY))
}

/// Sends `frames` from A's queue 0, cleaning as needed; returns when all
/// are on the wire.
fn send_all(a: &mut Side, frames: &[Vec<u8>]) {
    let mut bufs: Vec<PacketBuf> = frames.iter().map(|f| buf(&a.pools[0], f)).collect();
    while !bufs.is_empty() {
        if a.queues[0].tx.tx_batch(&mut bufs) == 0 {
            a.queues[0].tx.clean();
        }
    }
    a.queues[0].tx.clean();
}

#[test]
fn a_full_rx_ring_drops_and_counts_without_corrupting_what_it_holds() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let flow = flow0(1);
    let ring = b.queues[0].rx.ring_size();
    // The device owns ring - 1 descriptors (RDT is one behind); send more.
    let frames: Vec<Vec<u8>> = (0..ring + 40).map(|i| tcp_frame(MAC_A, MAC_B, flow, 60 + i * 13, i as u32)).collect();
    send_all(&mut a, &frames);
    b.model.pump();
    let dropped = (frames.len() - (ring - 1)) as u64;
    let stats = b.handle.stats();
    assert_eq!(stats.rx_packets, (ring - 1) as u64);
    // SRRCTL.DROP_EN is set, so a frame without a descriptor is dropped by
    // its queue (QPRDC) rather than missed by the packet buffer (MPC).
    assert_eq!(stats.queues[0].rx_dropped, dropped);
    assert_eq!(stats.rx_missed, 0);
    let mut rx = Vec::new();
    assert_eq!(drain(&mut b.queues[0], &mut rx), ring - 1);
    for (got, want) in rx.iter().zip(&frames) {
        assert!(got.data() == &want[..], "frame of {} bytes corrupted", want.len());
    }
    rx.clear();
    // It recovers: the next frames arrive.
    send_all(&mut a, &frames[..10]);
    b.model.pump();
    assert_eq!(drain(&mut b.queues[0], &mut rx), 10);
    for (got, want) in rx.iter().zip(&frames) {
        assert!(got.data() == &want[..]);
    }
    rx.clear();
    assert_eq!(b.handle.stats().queues[0].rx_dropped, dropped);
    a.finish();
    b.finish();
}

#[test]
fn an_empty_mempool_shortens_the_batch_and_rx_recovers() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let flow = flow0(1);
    // Take every free buffer of B's pool.
    let pool = b.pools[0].clone();
    let mut held: Vec<PacketBuf> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(pool.free_count(), 0);
    let frames: Vec<Vec<u8>> = (0..20).map(|i| tcp_frame(MAC_A, MAC_B, flow, 200 + i, i as u32)).collect();
    send_all(&mut a, &frames);
    b.model.pump();
    // The frames are in the ring, but no descriptor can be refilled.
    let mut rx = Vec::new();
    assert_eq!(b.queues[0].rx.rx_batch(&mut rx, 32), 0);
    assert_eq!(b.queues[0].rx.stats().mempool_empty, 1);
    // Three buffers back: a batch of three, cut short.
    held.truncate(held.len() - 3);
    assert_eq!(b.queues[0].rx.rx_batch(&mut rx, 32), 3);
    assert_eq!(b.queues[0].rx.stats().mempool_empty, 2);
    // All back: the rest arrives, in order, intact.
    held.clear();
    assert_eq!(drain(&mut b.queues[0], &mut rx), 17);
    assert_eq!(rx.len(), 20);
    for (got, want) in rx.iter().zip(&frames) {
        assert!(got.data() == &want[..]);
    }
    rx.clear();
    assert_eq!(b.handle.stats().queues[0].rx_dropped, 0);
    drop((held, pool));
    a.finish();
    b.finish();
}

#[test]
fn a_full_tx_ring_returns_short_counts_and_recovers() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let flow = flow0(1);
    let ring = a.queues[0].tx.ring_size();
    let frames: Vec<Vec<u8>> = (0..150).map(|i| tcp_frame(MAC_A, MAC_B, flow, 64 + i, i as u32)).collect();
    let mut bufs: Vec<PacketBuf> = frames.iter().map(|f| buf(&a.pools[0], f)).collect();
    // At most ring - 1 descriptors in flight.
    assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), ring - 1);
    assert_eq!(bufs.len(), 150 - (ring - 1));
    assert_eq!(a.queues[0].tx.stats().ring_full, 1);
    assert_eq!(a.queues[0].tx.in_flight(), ring - 1);
    // The buffers left over are the next ones, in order.
    assert!(bufs[0].data() == &frames[ring - 1][..]);
    // The device sent them all (the model transmits on TDT), so the next
    // call cleans whole groups and goes on.
    let mut rounds = 0;
    while !bufs.is_empty() {
        a.queues[0].tx.tx_batch(&mut bufs);
        rounds += 1;
        assert!(rounds < 20, "TX does not make progress");
    }
    assert!(a.queues[0].tx.stats().ring_full >= 2);
    assert_eq!(a.queues[0].tx.stats().packets, 150);
    a.queues[0].tx.clean();
    assert_eq!(a.queues[0].tx.in_flight(), 0);
    b.model.pump();
    let mut rx = Vec::new();
    // B's ring holds 63 at a time: receive in rounds.
    let mut got = 0;
    while got < 150 {
        let n = drain(&mut b.queues[0], &mut rx);
        if n == 0 {
            break;
        }
        got += n;
    }
    // The wire delivered everything at once, so B's ring overflowed; what
    // it kept is in order and intact.
    let dropped = b.handle.stats().queues[0].rx_dropped;
    assert_eq!(got as u64 + dropped, 150);
    for (got, want) in rx.iter().zip(&frames) {
        assert!(got.data() == &want[..]);
    }
    rx.clear();
    a.finish();
    b.finish();
}

#[test]
fn tx_cleaning_leaves_small_groups_until_clean_is_called() {
    let (mut a, b) = linked_pair(small_config(1));
    let flow = flow0(1);
    let pool = a.pools[0].clone();
    let free = pool.free_count();
    let mut bufs: Vec<PacketBuf> = (0..40).map(|i| buf(&pool, &tcp_frame(MAC_A, MAC_B, flow, 80, i))).collect();
    assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), 40);
    // An empty batch does not clean.
    assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), 0);
    assert_eq!(a.queues[0].tx.in_flight(), 40);
    // A batch with work cleans one group of 32 first.
    let mut one = vec![buf(&pool, &tcp_frame(MAC_A, MAC_B, flow, 80, 99))];
    assert_eq!(a.queues[0].tx.tx_batch(&mut one), 1);
    assert_eq!(a.queues[0].tx.in_flight(), 9);
    assert_eq!(a.queues[0].tx.clean(), 9);
    assert_eq!(pool.free_count(), free);
    drop(pool);
    b.finish();
    a.finish();
}

#[test]
fn teardown_in_any_order_with_traffic_in_flight_never_faults() {
    for order in 0..4 {
        let (mut a, b) = linked_pair(small_config(2));
        let flow = flow0(2);
        let frames: Vec<Vec<u8>> = (0..30).map(|i| tcp_frame(MAC_A, MAC_B, flow, 300, i)).collect();
        // Frames in B's ring, frames still on the wire, buffers in flight
        // on A's TX ring.
        send_all(&mut a, &frames[..10]);
        b.model.pump();
        let mut bufs: Vec<PacketBuf> = frames[10..].iter().map(|f| buf(&a.pools[0], f)).collect();
        a.queues[0].tx.tx_batch(&mut bufs);
        let Side { model, handle, mut queues, pools } = b;
        match order {
            // Handle first, then the queues.
            0 => drop((handle, queues)),
            // Queues first (each disables itself), then the handle.
            1 => {
                drop(queues);
                drop(handle);
            }
            // The pool handle of a pair first: the rings keep it alive.
            2 => {
                let pair = queues.remove(0);
                let QueuePair { id: _, rx, tx, pool } = pair;
                drop(pool);
                drop(handle);
                drop(tx);
                drop(rx);
                drop(queues);
            }
            // TX before RX, handle last.
            _ => {
                for pair in queues {
                    let QueuePair { rx, tx, .. } = pair;
                    drop(tx);
                    drop(rx);
                }
                drop(handle);
            }
        }
        // The frames still on the wire meet disabled queues: dropped and
        // counted by the model, never written to freed memory.
        model.pump();
        for p in &pools {
            assert_eq!(p.free_count(), p.capacity() as usize, "order {order}");
        }
        drop(pools);
        assert_eq!(model.dma_regions(), 0, "order {order}");
        assert_eq!(model.faults(), vec![], "order {order}");
        a.finish();
    }
}

#[test]
fn queue_pairs_and_the_handle_can_move_to_other_threads() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>(_: &T) {}
    let (a, b) = linked_pair(small_config(2));
    send_sync(&a.handle);
    for q in &a.queues {
        send(q);
    }
    let Side { model, handle, queues, pools } = a;
    let handle = std::sync::Arc::new(handle);
    let workers: Vec<_> = queues
        .into_iter()
        .map(|mut q| {
            let h = std::sync::Arc::clone(&handle);
            std::thread::spawn(move || {
                let mut out = Vec::new();
                q.rx.rx_batch(&mut out, 8);
                h.stats();
                drop(q);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    Side { model, handle: std::sync::Arc::into_inner(handle).unwrap(), queues: Vec::new(), pools }.finish();
    b.finish();
}
