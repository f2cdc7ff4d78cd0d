//! Hosts for tests: stack cores over the 82599 model and the driver
//! ([`ModelHost`]), or over the stack's in-memory NIC ([`SimHost`]), built
//! in one place on `ixtcp_stack::cores::build_cores` so that every test
//! brings a host up the same way.
//!
//! A model host is what `Device::init` on a fresh [`Model82599`] gives:
//! the driver resets and programs the model, every queue pair becomes one
//! [`StackCore`], and all cores share one neighbour table. The model moves
//! frames only when pumped (`Model82599::pump`); the test's loop does it,
//! or the queues are wrapped so that reading them pumps
//! ([`ModelHost::start_with`]).
//!
//! sockapi's suites run their engines on a model host's cores and pump
//! the model at the start of each ingress. Programs do not use this module:
//! they bring a NIC up through `ixtcp_host::NicDevice`, which calls the
//! same `build_cores`.

use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceHandle, QueuePair};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::rss::Toeplitz;
use ixtcp_driver::wire::Wire;
use ixtcp_stack::cores::build_cores;
use ixtcp_stack::sim::{SimIo, SimNic};
use ixtcp_stack::{CoreStats, MacAddr, NeighborTable, PacketIo, RssView, StackConfig, StackCore};

/// A stack core on one of the model's queue pairs.
pub type ModelCore = StackCore<QueuePair<ModelRegs>>;

/// How long `Device::init` waits for the model's link: the model has it at
/// once, so a short wait only shortens failures.
pub const MODEL_LINK_TIMEOUT: Duration = Duration::from_secs(1);

/// The counters of `cores`, added up.
pub fn total_stats<P: PacketIo>(cores: &[StackCore<P>]) -> CoreStats {
    let mut s = CoreStats::default();
    for c in cores {
        s.add(&c.stats());
    }
    s
}

/// The RSS setup `device` was programmed with, as the stack sees it.
pub fn rss_view<R: RegisterIo>(device: &Device<R>) -> RssView {
    RssView {
        toeplitz: Arc::new(Toeplitz::new(&device.config().rss_key)),
        reta: device.config().effective_reta(),
        queue: 0,
    }
}

/// The driver's `Device::init` on `model` with the rings, queues and
/// mempool of `cfg` and [`MODEL_LINK_TIMEOUT`]; panics (with the model's
/// faults) if it fails.
pub fn init_model(model: &Model82599, cfg: &StackConfig) -> Device<ModelRegs> {
    let mut dc = cfg.device_config();
    dc.link_timeout = MODEL_LINK_TIMEOUT;
    Device::init(model.regs(), &model.dma(), dc).unwrap_or_else(|e| panic!("init: {e}; faults {:?}", model.faults()))
}

/// One host on the 82599 model: its stack cores, the driver's control
/// handle, the model, and the neighbour table the cores share.
///
/// Fields drop in order: the cores (and with them the queue pairs) first,
/// then the device handle, then the model. Dropping a host without any
/// shutdown is a crash as the device sees it; [`ModelHost::start`] on the
/// same model afterwards is a restart (the driver resets the device).
pub struct ModelHost<P: PacketIo = QueuePair<ModelRegs>> {
    /// One core per queue pair, core `i` on pair `i`.
    pub cores: Vec<StackCore<P>>,
    /// The driver's control handle (statistics, link, shutdown).
    pub handle: DeviceHandle<ModelRegs>,
    /// The model, for `pump`, faults and reset counts.
    pub model: Model82599,
    /// The neighbour table every core of the host shares.
    pub table: Arc<NeighborTable>,
}

impl ModelHost {
    /// A fresh model with EEPROM MAC `mac`, plugged into `wire` (or
    /// nothing), and the host on it: see [`start`](Self::start).
    pub fn new(
        mac: [u8; 6],
        wire: Option<Box<dyn Wire>>,
        cfg: StackConfig,
        seed: Option<u64>,
        now_ns: u64,
    ) -> ModelHost {
        let model = Model82599::new(ModelConfig { mac, ..ModelConfig::default() });
        if let Some(w) = wire {
            model.attach(w);
        }
        ModelHost::start(model, cfg, seed, now_ns)
    }

    /// Initialises the device on `model` ([`init_model`]) and builds one
    /// core per queue pair at `now_ns` (the clock's reading). `seed: None`
    /// seeds every core from the OS, as in production; `Some(s)` makes the
    /// cores deterministic.
    pub fn start(model: Model82599, cfg: StackConfig, seed: Option<u64>, now_ns: u64) -> ModelHost {
        ModelHost::start_with(model, cfg, seed, now_ns, |q| q)
    }
}

impl<P: PacketIo> ModelHost<P> {
    /// [`start`](ModelHost::start), with each queue pair passed through
    /// `wrap` before its core is built on it (to box it, or to make reading
    /// it pump the model).
    pub fn start_with(
        model: Model82599,
        cfg: StackConfig,
        seed: Option<u64>,
        now_ns: u64,
        wrap: impl FnMut(QueuePair<ModelRegs>) -> P,
    ) -> ModelHost<P> {
        let device = init_model(&model, &cfg);
        let mac = MacAddr(device.mac());
        let rss = rss_view(&device);
        let (handle, queues) = device.into_queues();
        let queues = queues.into_iter().map(wrap).collect();
        let cores = build_cores(Arc::new(cfg), mac, &rss, queues, now_ns, seed)
            .unwrap_or_else(|e| panic!("building the stack cores: {e}"));
        let table = Arc::clone(cores[0].neighbors());
        ModelHost { cores, handle, model, table }
    }

    /// The counters of every core, added up.
    pub fn stats(&self) -> CoreStats {
        total_stats(&self.cores)
    }
}

/// One host on the stack's in-memory NIC (`ixtcp_stack::sim`).
pub struct SimHost {
    /// The NIC, to join to a `SimLink` or a `SimRouter`.
    pub nic: Arc<SimNic>,
    /// One core per queue.
    pub cores: Vec<StackCore<SimIo>>,
    /// The neighbour table every core of the host shares.
    pub table: Arc<NeighborTable>,
}

impl SimHost {
    /// A deterministic host: `cfg.cores` queues of `cfg.rx_ring_size`
    /// entries and `cfg.mempool_size` buffers each, cores seeded with
    /// `seed`, built at time 0.
    pub fn new(cfg: StackConfig, mac: MacAddr, seed: u64) -> SimHost {
        SimHost::start(cfg, mac, Some(seed), 0)
    }

    /// A host whose cores are built at `now_ns`; `seed: None` seeds them
    /// from the OS. A capture file in `cfg.pcap` is created as in
    /// production.
    pub fn start(cfg: StackConfig, mac: MacAddr, seed: Option<u64>, now_ns: u64) -> SimHost {
        let (ring, size) = (usize::from(cfg.rx_ring_size), cfg.buffer_size());
        let (nic, ios) = SimNic::with_buffer_size(mac, cfg.cores, ring, cfg.mempool_size, size)
            .unwrap_or_else(|e| panic!("sim NIC: {e}"));
        let rss = RssView::symmetric(cfg.cores, 0);
        let cores = build_cores(Arc::new(cfg), mac, &rss, ios, now_ns, seed)
            .unwrap_or_else(|e| panic!("building the stack cores: {e}"));
        let table = Arc::clone(cores[0].neighbors());
        SimHost { nic, cores, table }
    }

    /// The counters of every core, added up.
    pub fn stats(&self) -> CoreStats {
        total_stats(&self.cores)
    }

    /// True when no core holds a socket, a flow or a connection that is not
    /// closed (TIME_WAIT tuples aside).
    pub fn all_free(&self) -> bool {
        self.cores.iter().all(|c| {
            let n = c.socket_census();
            n.free == n.slots && n.not_closed == 0 && n.flows == 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg(cores: u16) -> StackConfig {
        StackConfig {
            cores,
            rx_ring_size: 256,
            tx_ring_size: 256,
            mempool_size: 1024,
            ..StackConfig::new(Ipv4Addr::new(10, 0, 0, 1), 24)
        }
    }

    #[test]
    fn a_model_host_has_one_core_per_queue_sharing_one_table() {
        let host = ModelHost::new([2, 0, 0, 0, 0, 9], None, cfg(2), Some(1), 0);
        assert_eq!(host.cores.len(), 2);
        assert_eq!(host.handle.num_queues(), 2);
        for (i, c) in host.cores.iter().enumerate() {
            assert_eq!(usize::from(c.index()), i);
            assert_eq!(c.mac(), MacAddr([2, 0, 0, 0, 0, 9]));
            assert!(Arc::ptr_eq(c.neighbors(), &host.table));
        }
        assert_eq!(host.model.faults(), vec![]);
        // Restarting on the same model resets it again.
        let ModelHost { cores, handle, model, .. } = host;
        drop(cores);
        drop(handle);
        let resets = model.reset_count();
        let again = ModelHost::start(model, cfg(1), None, 5);
        assert!(again.model.reset_count() > resets);
        assert_eq!(again.cores.len(), 1);
    }

    #[test]
    fn a_sim_host_has_one_core_per_queue_sharing_one_table() {
        let host = SimHost::new(cfg(4), MacAddr([2, 0, 0, 0, 0, 1]), 3);
        assert_eq!(host.cores.len(), 4);
        assert!(host.cores.iter().all(|c| Arc::ptr_eq(c.neighbors(), &host.table)));
        assert!(host.all_free());
        assert_eq!(host.stats().rx_packets, 0);
        assert_eq!(host.nic.mac(), MacAddr([2, 0, 0, 0, 0, 1]));
    }
}
