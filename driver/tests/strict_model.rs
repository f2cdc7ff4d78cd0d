//! The driver against the stricter parts of the model: device addresses
//! that are not virtual addresses (also in the hugepage layout), transmit
//! write-back by TXDCTL.WTHRESH, and what the device is left doing after
//! the driver is gone.

mod common;

use common::*;
use ixtcp_driver::device::{Device, DeviceConfig};
use ixtcp_driver::dma::DmaAllocator;
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::model::Model82599;
use ixtcp_driver::regs;
use ixtcp_driver::rss::{self, Reta, Toeplitz};
use ixtcp_driver::wire::QueueWire;

/// Two linked devices whose memory comes from `dma_of(model)`.
fn linked_with(dma_of: impl Fn(&Model82599) -> Box<dyn DmaAllocator>, config: DeviceConfig) -> (Side, Side) {
    let make = |mac| {
        let model = common::model(mac);
        let dev = match Device::init(model.regs(), &*dma_of(&model), config.clone()) {
            Ok(d) => d,
            Err(e) => panic!("init failed: {e}; model faults: {:?}", model.faults()),
        };
        let (handle, queues) = dev.into_queues();
        let pools = queues.iter().map(|q| std::sync::Arc::clone(&q.pool)).collect();
        Side { model, handle, queues, pools }
    };
    let (a, b) = (make(MAC_A), make(MAC_B));
    let (wa, wb) = QueueWire::pair();
    a.model.attach(Box::new(wa));
    b.model.attach(Box::new(wb));
    (a, b)
}

/// Sends `count` frames of every length in `lens` from each of A's queues
/// to the queue of B the flow hashes to, and checks them byte for byte.
fn cross(a: &mut Side, b: &mut Side, lens: &[usize]) {
    let t = Toeplitz::new(&rss::SYMMETRIC_KEY);
    let queues = a.queues.len() as u16;
    let reta = Reta::round_robin(queues);
    let mut rx = Vec::new();
    for q in 0..queues {
        let qi = usize::from(q);
        let flow = flow_to_queue(q, &reta, &t);
        for chunk in lens.chunks(40) {
            let want: Vec<Vec<u8>> = chunk.iter().map(|&len| tcp_frame(MAC_A, MAC_B, flow, len, len as u32)).collect();
            let mut bufs: Vec<PacketBuf> = want.iter().map(|f| buf(&a.pools[qi], f)).collect();
            assert_eq!(a.queues[qi].tx.tx_batch(&mut bufs), chunk.len());
            assert_eq!(b.model.pump(), chunk.len());
            assert_eq!(drain(&mut b.queues[qi], &mut rx), chunk.len());
            for (got, want) in rx.drain(..).zip(&want) {
                assert!(got.data() == &want[..], "queue {q}: a frame of {} bytes differs", want.len());
            }
            a.queues[qi].tx.clean();
            assert_eq!(a.queues[qi].tx.in_flight(), 0);
        }
    }
}

#[test]
fn the_driver_uses_device_addresses_in_the_hugepage_layout() {
    // Mempools of 2100 entries of 2 KiB: three 2 MiB regions (1024 entries
    // per page). The pool hands entries out in FIFO order, so sending more
    // frames than it holds puts buffers of every page into both rings.
    let config = DeviceConfig { mempool_entries: 2100, ..small_config(2) };
    let (mut a, mut b) = linked_with(|m| Box::new(m.hugepage_dma()), config);
    let lens: Vec<usize> = (60..=1514).step_by(7).collect();
    for _ in 0..11 {
        cross(&mut a, &mut b, &lens);
    }
    a.finish();
    b.finish();
}

#[test]
fn jumbo_buffers_keep_to_the_hugepage_layout() {
    // 16 KiB entries for 9000-byte MTU frames: 128 per 2 MiB page, so 300
    // entries take three pages; a 9014-byte frame in an entry that crossed
    // a page boundary would fault. 320 frames each way: with the pool's
    // FIFO order, buffers of every page go through both rings.
    let config = DeviceConfig { mempool_entries: 300, max_frame_size: 9018, buf_size: 16384, ..small_config(1) };
    let (mut a, mut b) = linked_with(|m| Box::new(m.hugepage_dma()), config);
    for _ in 0..80 {
        cross(&mut a, &mut b, &[60, 1514, 8000, 9014]);
    }
    a.finish();
    b.finish();
}

#[test]
fn the_driver_uses_device_addresses_behind_an_iommu() {
    let (mut a, mut b) = linked_with(|m| Box::new(m.dma()), small_config(2));
    cross(&mut a, &mut b, &[60, 61, 1000, 1514]);
    a.finish();
    b.finish();
}

/// Sends `n` frames on A's queue 0 and cleans; returns what stays in flight.
fn stranded_after_burst(a: &mut Side, b: &mut Side, n: usize) -> usize {
    let flow = flow_to_queue(0, &Reta::round_robin(1), &Toeplitz::new(&rss::SYMMETRIC_KEY));
    let mut bufs: Vec<PacketBuf> =
        (0..n).map(|i| buf(&a.pools[0], &tcp_frame(MAC_A, MAC_B, flow, 100, i as u32))).collect();
    assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), n);
    assert_eq!(b.model.pump(), n, "every frame was sent");
    let mut rx = Vec::new();
    assert_eq!(drain(&mut b.queues[0], &mut rx), n);
    a.queues[0].tx.clean();
    a.queues[0].tx.in_flight()
}

#[test]
fn the_old_wthresh_of_four_strands_the_end_of_a_burst() {
    let (mut a, mut b) = linked_pair(small_config(1));
    // The driver's old TXDCTL: WTHRESH 4 (ixy's and DPDK's vector value).
    let r = a.model.regs();
    let txdctl = r.read32(regs::TXDCTL(0)) & !regs::dctl::WTHRESH_MASK;
    r.write32(regs::TXDCTL(0), txdctl | 4 << 16);
    assert_eq!(stranded_after_burst(&mut a, &mut b, 10), 2, "10 = 2 bursts of 4 + 2 never written back");
    assert_eq!(stranded_after_burst(&mut a, &mut b, 1), 3, "the next frame does not complete a burst either");
    // The test's end would wait forever on hardware; here the queue's drop
    // disables it without DD, and the buffers come back with the ring.
    a.finish();
    b.finish();
}

#[test]
fn the_drivers_wthresh_returns_every_buffer() {
    let (mut a, mut b) = linked_pair(small_config(1));
    let wthresh = (a.model.regs().read32(regs::TXDCTL(0)) & regs::dctl::WTHRESH_MASK) >> 16;
    assert!(wthresh <= 1, "WTHRESH {wthresh}");
    for n in [1, 10, 31, 33, 63] {
        assert_eq!(stranded_after_burst(&mut a, &mut b, n), 0, "a burst of {n}");
    }
    a.finish();
    b.finish();
}

#[test]
fn init_sets_the_bits_receive_needs_in_the_order_the_model_checks() {
    let m = model(MAC_A);
    let dev = init(&m, small_config(4));
    let r = m.regs();
    assert_ne!(r.read32(regs::CTRL_EXT) & regs::ctrl_ext::NS_DIS, 0);
    let rdrxctl = r.read32(regs::RDRXCTL);
    assert_eq!(rdrxctl & regs::rdrxctl::RSCFRSTSIZE, 0);
    let want = regs::rdrxctl::RSCACKC | regs::rdrxctl::FCOE_WRFIX;
    assert_eq!(rdrxctl & want, want);
    for q in 0..4 {
        assert_eq!(r.read32(regs::DCA_RXCTRL(q)) & regs::dca_rxctrl::RESERVED_BIT12, 0, "queue {q}");
    }
    // TE before the queues, tails after their enables, MTQC under ARBDIS:
    // any slip would be a fault.
    assert_eq!(m.faults(), vec![]);
    drop(dev);
}

#[test]
fn init_on_a_device_left_running_comes_up_clean() {
    use ixtcp_driver::model::{DIRTY_QUEUES, ModelConfig};
    let a = Model82599::left_running(ModelConfig { mac: MAC_A, ..ModelConfig::default() });
    let b = common::model(MAC_B);
    let (wa, wb) = QueueWire::pair();
    a.attach(Box::new(wa));
    b.attach(Box::new(wb));
    let config = small_config(2);
    let side = |model: Model82599| {
        let (handle, queues) = init(&model, config.clone()).into_queues();
        let pools = queues.iter().map(|q| std::sync::Arc::clone(&q.pool)).collect();
        Side { model, handle, queues, pools }
    };
    let (mut a, mut b) = (side(a), side(b));
    // No fault: no DMA into the stale rings, every disable and the reset in
    // the right order.
    assert_eq!(a.model.faults(), vec![]);
    assert_eq!(a.model.reset_count(), 1);
    // The stale transmit work was never sent.
    assert_eq!(b.model.pump(), 0, "frames from the stale rings reached the wire");
    let r = a.model.regs();
    for q in 2..DIRTY_QUEUES {
        assert_eq!(r.read32(regs::RXDCTL(q)) & regs::dctl::ENABLE, 0, "old rx queue {q} stays off");
        assert_eq!(r.read32(regs::TXDCTL(q)) & regs::dctl::ENABLE, 0, "old tx queue {q} stays off");
    }
    assert_eq!(r.read32(regs::RAH(1)) & regs::rah::AV, 0, "old filters gone");
    cross(&mut a, &mut b, &[60, 100, 1514]);
    a.finish();
    b.finish();
}

/// Receive off and not one of the 128 queues enabled: the device writes and
/// reads no memory any more.
fn assert_dma_stopped(m: &Model82599) {
    let r = m.regs();
    assert_eq!(r.read32(regs::RXCTRL) & regs::rxctrl::RXEN, 0, "RXCTRL.RXEN");
    for q in 0..u32::from(regs::MAX_QUEUES) {
        assert_eq!(r.read32(regs::RXDCTL(q)) & regs::dctl::ENABLE, 0, "RXDCTL({q}).ENABLE");
        assert_eq!(r.read32(regs::TXDCTL(q)) & regs::dctl::ENABLE, 0, "TXDCTL({q}).ENABLE");
    }
}

/// A device on `m` with traffic in both directions through its rings, so
/// that dropping it has buffers in flight.
fn busy_device(m: &Model82599, peer: &mut QueueWire) -> Device<ixtcp_driver::model::ModelRegs> {
    use ixtcp_driver::wire::Wire;
    let (port, other) = QueueWire::pair();
    m.attach(Box::new(port));
    *peer = other;
    let mut dev = init(m, small_config(2));
    let flow = flow_to_queue(0, &Reta::round_robin(2), &Toeplitz::new(&rss::SYMMETRIC_KEY));
    for i in 0..5 {
        peer.transmit(&tcp_frame(MAC_B, MAC_A, flow, 100, i)).unwrap();
    }
    assert_eq!(m.pump(), 5);
    let q = &mut dev.queues_mut()[0];
    let mut bufs: Vec<PacketBuf> = (0..3).map(|i| buf(&q.pool, &tcp_frame(MAC_A, MAC_B, flow, 80, i))).collect();
    assert_eq!(q.tx.tx_batch(&mut bufs), 3);
    dev
}

#[test]
fn dropping_the_device_stops_all_dma() {
    let m = model(MAC_A);
    let (_, mut peer) = QueueWire::pair();
    let dev = busy_device(&m, &mut peer);
    drop(dev);
    assert_dma_stopped(&m);
    assert_eq!(m.dma_regions(), 0, "every ring and buffer freed, after the queues stopped");
    // Traffic after the drop touches no memory.
    use ixtcp_driver::wire::Wire;
    let flow = flow_to_queue(1, &Reta::round_robin(2), &Toeplitz::new(&rss::SYMMETRIC_KEY));
    peer.transmit(&tcp_frame(MAC_B, MAC_A, flow, 60, 0)).unwrap();
    m.pump();
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn dropping_the_handle_alone_stops_all_dma_while_the_queues_live() {
    let m = model(MAC_A);
    let (_, mut peer) = QueueWire::pair();
    let (handle, mut queues) = busy_device(&m, &mut peer).into_queues();
    drop(handle);
    assert_dma_stopped(&m);
    let mut out = Vec::new();
    assert_eq!(queues[0].rx.rx_batch(&mut out, 32), 0, "a stopped queue delivers nothing");
    drop(queues);
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn a_panic_unwinding_past_the_device_stops_all_dma() {
    let m = model(MAC_A);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (_, mut peer) = QueueWire::pair();
        let _dev = busy_device(&m, &mut peer);
        panic!("the application crashed with the device running");
    }));
    assert!(result.is_err());
    assert_dma_stopped(&m);
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(m.faults(), vec![]);
}
