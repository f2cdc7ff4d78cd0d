//! Device initialisation on the 82599 model: link, queue enables, RSS
//! registers, configuration errors, shutdown and teardown.

mod common;

use std::time::Duration;

use common::*;
use ixtcp_driver::device::{Device, DeviceConfig, DriverError, LinkStatus, QueueId};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::regs::{self, dctl, mrqc};
use ixtcp_driver::rss::{self, Reta};

fn check_programmed(m: &Model82599, config: &DeviceConfig) {
    let r = m.regs();
    let n = u32::from(config.num_queues);
    for q in 0..n {
        assert_ne!(r.read32(regs::RXDCTL(q)) & dctl::ENABLE, 0, "RXDCTL({q}).ENABLE");
        assert_ne!(r.read32(regs::TXDCTL(q)) & dctl::ENABLE, 0, "TXDCTL({q}).ENABLE");
        assert_eq!(r.read32(regs::RDLEN(q)), u32::from(config.rx_ring_size) * 16);
        assert_eq!(r.read32(regs::TDLEN(q)), u32::from(config.tx_ring_size) * 16);
        assert_eq!(r.read32(regs::RDT(q)), u32::from(config.rx_ring_size) - 1, "RX ring handed over, off by one");
        let srrctl = r.read32(regs::SRRCTL(q));
        assert_eq!(srrctl & regs::srrctl::BSIZEPKT_MASK, config.buf_size / 1024);
        assert_eq!(srrctl & regs::srrctl::DESCTYPE_MASK, regs::srrctl::DESCTYPE_ADV_ONEBUF);
        assert_ne!(srrctl & regs::srrctl::DROP_EN, 0);
    }
    // Queues beyond the configured ones stay off.
    assert_eq!(r.read32(regs::RXDCTL(n)) & dctl::ENABLE, 0);
    assert_eq!(r.read32(regs::TXDCTL(n)) & dctl::ENABLE, 0);
    assert_eq!(
        r.read32(regs::MRQC),
        mrqc::RSSEN | mrqc::IPV4 | mrqc::IPV4_TCP | mrqc::IPV4_UDP | mrqc::IPV6 | mrqc::IPV6_TCP
    );
    // Linux's 0x00330001 plus UDP/IPv4 4-tuples (bit 22, issue 11).
    assert_eq!(r.read32(regs::MRQC), 0x0073_0001);
    let key: [u32; 10] = std::array::from_fn(|i| r.read32(regs::RSSRK(i as u32)));
    assert_eq!(rss::key_from_registers(&key), config.rss_key);
    let reta: [u32; 32] = std::array::from_fn(|i| r.read32(regs::RETA(i as u32)));
    assert_eq!(Reta::from_registers(&reta), config.effective_reta());
    assert_ne!(r.read32(regs::RXCSUM) & regs::rxcsum::PCSD, 0, "RXCSUM.PCSD");
    assert_ne!(r.read32(regs::RXCTRL) & regs::rxctrl::RXEN, 0, "RXCTRL.RXEN");
    assert_ne!(r.read32(regs::DMATXCTL) & regs::dmatxctl::TE, 0, "DMATXCTL.TE");
    assert_ne!(r.read32(regs::FCTRL) & regs::fctrl::BAM, 0, "FCTRL.BAM");
    assert_eq!(r.read32(regs::FCTRL) & (regs::fctrl::UPE | regs::fctrl::MPE), 0, "not promiscuous");
    let crc = regs::hlreg0::RXCRCSTRP | regs::hlreg0::TXCRCEN | regs::hlreg0::TXPADEN;
    assert_eq!(r.read32(regs::HLREG0) & crc, crc);
}

#[test]
fn init_reaches_link_up_with_every_queue_enabled() {
    for n in [1u16, 4, 16] {
        let m = model(MAC_A);
        let config = DeviceConfig { num_queues: n, ..small_config(n) };
        let dev = init(&m, config.clone());
        assert_eq!(dev.link(), LinkStatus { up: true, speed_mbps: 10_000 }, "{n} queues");
        assert_eq!(dev.num_queues(), n);
        assert_eq!(dev.mac(), MAC_A);
        assert_eq!(dev.config(), &config);
        check_programmed(&m, &config);
        assert_eq!(m.reset_count(), 1);
        let (handle, queues) = dev.into_queues();
        assert_eq!(queues.len(), usize::from(n));
        for (i, q) in queues.iter().enumerate() {
            assert_eq!(q.id, QueueId(i as u16));
            assert_eq!(q.rx.id(), q.id);
            assert_eq!(q.tx.id(), q.id);
            assert_eq!(q.rx.ring_size(), 64);
            assert_eq!(q.tx.ring_size(), 64);
            // The RX ring holds one buffer per descriptor.
            assert_eq!(q.pool.free_count(), 256 - 64);
        }
        drop(handle);
        drop(queues);
        assert_eq!(m.dma_regions(), 0);
        assert_eq!(m.faults(), vec![]);
    }
}

#[test]
fn init_waits_after_the_reset_and_applies_the_rx_enable_erratum_on_the_model_clock() {
    let m = model(MAC_A);
    let dev = init(&m, small_config(1));
    // The model's clock moved only by the driver's delays: 1 ms of quiet
    // after CTRL.RST and 50 ms of settling, at least.
    let ns = ixtcp_driver::time::Clock::now_ns(&m.clock());
    assert!(ns >= 51_000_000, "init took {ns} ns of device time");
    // The erratum sequence left the security Rx path running again.
    assert_eq!(m.regs().read32(regs::SECRXCTRL) & regs::secrxctrl::RX_DIS, 0);
    assert_ne!(m.regs().read32(regs::RXCTRL) & regs::rxctrl::RXEN, 0);
    drop(dev);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn default_config_inits_with_full_size_rings() {
    let m = model(MAC_A);
    let dev = init(&m, DeviceConfig { num_queues: 2, ..DeviceConfig::default() });
    check_programmed(&m, dev.config());
    drop(dev);
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn a_custom_reta_key_and_mac_are_programmed() {
    let m = model(MAC_A);
    let mut entries = [0u8; 128];
    entries.iter_mut().enumerate().for_each(|(i, e)| *e = (i % 3) as u8 + 1);
    let config = DeviceConfig {
        rss_key: rss::VERIFICATION_KEY,
        reta: Some(Reta::from_entries(entries)),
        mac: Some(MAC_B),
        promiscuous: true,
        ..small_config(4)
    };
    let dev = init(&m, config);
    let r = m.regs();
    let key: [u32; 10] = std::array::from_fn(|i| r.read32(regs::RSSRK(i as u32)));
    assert_eq!(rss::key_from_registers(&key), rss::VERIFICATION_KEY);
    assert_eq!(r.read32(regs::RETA(0)), 0x0103_0201);
    assert_eq!(dev.mac(), MAC_B);
    assert_eq!(r.read32(regs::RAL(0)), u32::from_le_bytes([2, 0, 0, 0]));
    assert_eq!(r.read32(regs::RAH(0)), 0xb | 0x02 << 8 | regs::rah::AV);
    let promisc = regs::fctrl::UPE | regs::fctrl::MPE;
    assert_eq!(r.read32(regs::FCTRL) & promisc, promisc);
    dev.handle().set_promiscuous(false);
    assert_eq!(r.read32(regs::FCTRL) & promisc, 0);
    assert_ne!(r.read32(regs::FCTRL) & regs::fctrl::BAM, 0);
    dev.handle().set_promiscuous(true);
    assert_eq!(r.read32(regs::FCTRL) & promisc, promisc);
    drop(dev);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn config_errors_name_the_field_and_touch_nothing() {
    let cases: [(DeviceConfig, &str); 6] = [
        (DeviceConfig { num_queues: 0, ..small_config(1) }, "num_queues"),
        (DeviceConfig { num_queues: 17, ..small_config(1) }, "num_queues"),
        (DeviceConfig { rx_ring_size: 96, ..small_config(1) }, "rx_ring_size"),
        (DeviceConfig { buf_size: 1024, ..small_config(1) }, "buf_size"),
        (DeviceConfig { mempool_entries: 64, ..small_config(1) }, "mempool_entries"),
        (DeviceConfig { reta: Some(Reta::round_robin(8)), ..small_config(4) }, "reta"),
    ];
    for (config, field) in cases {
        let m = model(MAC_A);
        let err = Device::init(m.regs(), &m.dma(), config).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.to_string().contains(field), "{err}");
        assert_eq!(m.reset_count(), 0, "a bad config must not reset the device");
        assert_eq!(m.dma_regions(), 0);
    }
}

#[test]
fn link_that_never_comes_up_is_an_error_and_cleans_up() {
    let m = Model82599::new(ModelConfig { link_up_after_polls: u32::MAX, ..ModelConfig::default() });
    let config = DeviceConfig { link_timeout: Duration::from_millis(30), ..small_config(2) };
    let err = Device::init(m.regs(), &m.dma(), config.clone()).unwrap_err();
    assert!(matches!(err, DriverError::LinkDown { .. }), "{err}");
    assert!(err.to_string().contains("link"), "{err}");
    // Everything was disabled and released again.
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(m.regs().read32(regs::RXDCTL(0)) & dctl::ENABLE, 0);
    assert_eq!(m.faults(), vec![]);
    // A zero timeout does not wait and does not fail.
    let dev = Device::init(m.regs(), &m.dma(), DeviceConfig { link_timeout: Duration::ZERO, ..config }).unwrap();
    assert!(!dev.link().up);
}

#[test]
fn shutdown_disables_receive_and_queues_which_still_drop_cleanly() {
    let m = model(MAC_A);
    let (handle, mut queues) = init(&m, small_config(4)).into_queues();
    let pools: Vec<_> = queues.iter().map(|q| q.pool.clone()).collect();
    handle.shutdown();
    let r = m.regs();
    assert_eq!(r.read32(regs::RXCTRL) & regs::rxctrl::RXEN, 0);
    for q in 0..4 {
        assert_eq!(r.read32(regs::RXDCTL(q)) & dctl::ENABLE, 0);
        assert_eq!(r.read32(regs::TXDCTL(q)) & dctl::ENABLE, 0);
    }
    // After shutdown the batch functions are no-ops.
    let mut out = Vec::new();
    assert_eq!(queues[0].rx.rx_batch(&mut out, 32), 0);
    let mut bufs = vec![buf(&pools[0], &[0u8; 60])];
    assert_eq!(queues[0].tx.tx_batch(&mut bufs), 0);
    drop(bufs);
    // The handle goes first; the queues outlive it and drop safely.
    drop(handle);
    drop(queues);
    for p in &pools {
        assert_eq!(p.free_count(), p.capacity() as usize);
    }
    drop(pools);
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn queues_dropped_before_the_handle_disable_themselves() {
    let m = model(MAC_A);
    let (handle, queues) = init(&m, small_config(2)).into_queues();
    drop(queues);
    let r = m.regs();
    for q in 0..2 {
        assert_eq!(r.read32(regs::RXDCTL(q)) & dctl::ENABLE, 0);
        assert_eq!(r.read32(regs::TXDCTL(q)) & dctl::ENABLE, 0);
    }
    assert_eq!(m.dma_regions(), 0);
    assert_eq!(handle.stats().rx_packets, 0);
    drop(handle);
    assert_eq!(m.faults(), vec![]);
}
