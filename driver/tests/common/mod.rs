//! Helpers shared by the driver's integration tests: models, linked pairs,
//! and TCP/IPv4 frames aimed at a chosen RSS queue (built with the
//! testkit's frames); the seeded RNG is the testkit's.
// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use ixtcp_driver::device::{Device, DeviceConfig, QueuePair};
use ixtcp_driver::mempool::{Mempool, PacketBuf};
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::rss::{Reta, Toeplitz};
use ixtcp_driver::wire::QueueWire;
use ixtcp_testkit::frames::{self, ACK, ETHERTYPE_IPV4, PSH, TCP_HEADERS, TcpSeg};
use rand::Rng;

pub use ixtcp_testkit::seed::Seeded;

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0xa, 0x01];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0xb, 0x02];

/// A config for tests: small rings (so tests wrap them often), no long
/// link wait.
pub fn small_config(num_queues: u16) -> DeviceConfig {
    DeviceConfig {
        num_queues,
        rx_ring_size: 64,
        tx_ring_size: 64,
        mempool_entries: 256,
        link_timeout: std::time::Duration::from_secs(1),
        ..DeviceConfig::default()
    }
}

pub fn model(mac: [u8; 6]) -> Model82599 {
    Model82599::new(ModelConfig { mac, ..ModelConfig::default() })
}

pub fn init(m: &Model82599, config: DeviceConfig) -> Device<ModelRegs> {
    match Device::init(m.regs(), &m.dma(), config) {
        Ok(d) => d,
        Err(e) => panic!("init failed: {e}; model faults: {:?}", m.faults()),
    }
}

/// One side of a linked pair, split into queues.
pub struct Side {
    pub model: Model82599,
    pub handle: ixtcp_driver::device::DeviceHandle<ModelRegs>,
    pub queues: Vec<QueuePair<ModelRegs>>,
    pub pools: Vec<Arc<Mempool>>,
}

impl Side {
    /// Drops queues and handle, then checks that every buffer went home,
    /// every DMA region was released, and the model saw no fault.
    pub fn finish(self) {
        let Side { model, handle, queues, pools } = self;
        drop(queues);
        drop(handle);
        for (i, p) in pools.iter().enumerate() {
            assert_eq!(p.free_count(), p.capacity() as usize, "queue {i}: buffers leaked");
        }
        drop(pools);
        assert_eq!(model.dma_regions(), 0, "DMA regions still registered");
        assert_eq!(model.faults(), vec![], "model faults");
    }
}

pub fn side(mac: [u8; 6], config: DeviceConfig) -> Side {
    let model = model(mac);
    let (handle, queues) = init(&model, config).into_queues();
    let pools = queues.iter().map(|q| Arc::clone(&q.pool)).collect();
    Side { model, handle, queues, pools }
}

/// Two devices joined by a loss-free cable.
pub fn linked_pair(config: DeviceConfig) -> (Side, Side) {
    let a = side(MAC_A, config.clone());
    let b = side(MAC_B, config);
    let (wa, wb) = QueueWire::pair();
    a.model.attach(Box::new(wa));
    b.model.attach(Box::new(wb));
    (a, b)
}

/// A TCP/IPv4 flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

impl Flow {
    pub fn reversed(self) -> Flow {
        Flow { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport }
    }

    pub fn queue(self, t: &Toeplitz, reta: &Reta) -> u16 {
        reta.queue(t.hash_ipv4_ports(self.src, self.dst, self.sport, self.dport))
    }

    pub fn random(rng: &mut impl Rng) -> Flow {
        Flow {
            src: Ipv4Addr::from(rng.random::<u32>()),
            dst: Ipv4Addr::from(rng.random::<u32>()),
            sport: rng.random_range(1024..u16::MAX),
            dport: rng.random_range(1..u16::MAX),
        }
    }
}

/// A flow from 10.0.0.1 to 10.0.0.2 whose hash lands on `queue`.
pub fn flow_to_queue(queue: u16, reta: &Reta, t: &Toeplitz) -> Flow {
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    (1024..u16::MAX)
        .map(|sport| Flow { src, dst, sport, dport: 80 })
        .find(|f| f.queue(t, reta) == queue)
        .expect("some port lands on every queue")
}

/// An Ethernet + IPv4 + TCP frame of exactly `len` bytes (>= 54) for
/// `flow`, from `src_mac` to `dst_mac`, with valid checksums; the IP
/// identification and the sequence number are `tag` and the payload is
/// derived from it, so frames are distinguishable.
pub fn tcp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], flow: Flow, len: usize, tag: u32) -> Vec<u8> {
    assert!(len >= TCP_HEADERS);
    let payload: Vec<u8> =
        (0..len - TCP_HEADERS).map(|i| (tag as usize).wrapping_mul(31).wrapping_add(i) as u8).collect();
    let seg = TcpSeg {
        src: flow.src,
        dst: flow.dst,
        sport: flow.sport,
        dport: flow.dport,
        seq: tag,
        ack: 0,
        flags: PSH | ACK,
        window: 0xffff,
        payload: &payload,
    };
    let mut f = frames::ethernet(dst_mac, src_mac, ETHERTYPE_IPV4, &frames::tcp_ip(&seg));
    frames::set_ipv4_ident(&mut f, tag as u16);
    f
}

/// A buffer from `pool` holding `bytes`.
pub fn buf(pool: &Arc<Mempool>, bytes: &[u8]) -> PacketBuf {
    let mut b = pool.alloc().expect("pool has a free buffer");
    assert!(b.copy_from(bytes));
    b
}

/// Receives everything waiting on `q` (several batches).
pub fn drain(q: &mut QueuePair<ModelRegs>, out: &mut Vec<PacketBuf>) -> usize {
    let mut total = 0;
    loop {
        let n = q.rx.rx_batch(out, 32);
        if n == 0 {
            return total;
        }
        total += n;
    }
}
