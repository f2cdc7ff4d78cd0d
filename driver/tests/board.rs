//! The init sequence on each accepted board, and what the older sequence
//! (no laser, SFI forced on every id, no filter clearing, 14-byte frames
//! straight to the ring) does on the model. A `Tamper` register file stands
//! for the old driver: it drops or rewrites the writes the fix added.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ixtcp_driver::board::{Media, REFUSED_DEVICES, SUPPORTED_DEVICES};
use ixtcp_driver::device::{Device, DeviceConfig, DriverError, LinkStatus};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::{Model82599, ModelConfig, ModelFault, ModelRegs};
use ixtcp_driver::regs;

/// A register write the tamperer lets through (`Some`, possibly changed)
/// or swallows (`None`).
type Rewrite = fn(u32, u32) -> Option<u32>;

/// The model's registers with some writes rewritten, and every write
/// recorded.
#[derive(Clone)]
struct Tamper {
    inner: ModelRegs,
    rewrite: Rewrite,
    writes: Arc<Mutex<Vec<(u32, u32)>>>,
}

impl Tamper {
    fn new(m: &Model82599, rewrite: Rewrite) -> Tamper {
        Tamper { inner: m.regs(), rewrite, writes: Arc::default() }
    }

    fn writes_to(&self, offset: u32) -> Vec<u32> {
        self.writes.lock().unwrap().iter().filter(|(o, _)| *o == offset).map(|&(_, v)| v).collect()
    }
}

impl RegisterIo for Tamper {
    fn read32(&self, offset: u32) -> u32 {
        self.inner.read32(offset)
    }
    fn write32(&self, offset: u32, value: u32) {
        self.writes.lock().unwrap().push((offset, value));
        if let Some(v) = (self.rewrite)(offset, value) {
            self.inner.write32(offset, v);
        }
    }
    fn delay(&self, d: Duration) {
        self.inner.delay(d)
    }
}

fn board(device_id: u16) -> Model82599 {
    Model82599::new(ModelConfig { device_id, mac: MAC_A, ..ModelConfig::default() })
}

fn short_wait() -> DeviceConfig {
    DeviceConfig { link_timeout: Duration::from_millis(50), ..small_config(1) }
}

#[test]
fn every_accepted_board_inits_with_its_laser_on_and_link_up() {
    for model in SUPPORTED_DEVICES {
        assert_eq!(model.media, Media::SfpFibre);
        let m = board(model.device_id);
        let dev = init(&m, small_config(2));
        assert_eq!(dev.link(), LinkStatus { up: true, speed_mbps: 10_000 }, "{}", model.name);
        let r = m.regs();
        let esdp = r.read32(regs::ESDP);
        assert_eq!(esdp & (regs::esdp::SDP3 | regs::esdp::SDP3_DIR), regs::esdp::SDP3_DIR, "{}: laser on", model.name);
        assert_eq!(r.read32(regs::AUTOC) & regs::autoc::LMS_MASK, regs::autoc::LMS_10G_SERIAL, "{}", model.name);
        drop(dev);
        assert_eq!(m.faults(), vec![], "{}", model.name);
    }
}

#[test]
fn without_the_laser_write_the_link_stays_down() {
    // The old driver never touched ESDP.
    let m = board(0x10FB);
    let io = Tamper::new(&m, |o, v| (o != regs::ESDP).then_some(v));
    let err = Device::init(io, &m.dma(), short_wait()).unwrap_err();
    let esdp = regs::esdp::SDP3_DIR | regs::esdp::SDP3;
    assert!(matches!(err, DriverError::LinkDown { esdp: e, .. } if e == esdp), "{err}");
    assert!(err.to_string().contains("ESDP 0x00000808"), "the error shows the laser's pin: {err}");
    assert_eq!(m.faults(), vec![ModelFault::LaserOff { esdp }]);
}

#[test]
fn sfi_mode_on_a_board_of_another_media_never_links() {
    // The old driver accepted these ids and forced 10G serial (SFI) on all.
    for (model, _) in REFUSED_DEVICES.iter().filter(|(m, _)| !matches!(m.media, Media::FibreLco | Media::QsfpFibre)) {
        let m = board(model.device_id);
        let err = Device::init(m.regs(), &m.dma(), short_wait()).unwrap_err();
        assert!(matches!(err, DriverError::LinkDown { .. }), "{}: {err}", model.name);
        let fault = ModelFault::LinkModeMismatch { device_id: model.device_id, media: Some(model.media), lms: 3 };
        assert_eq!(m.faults(), vec![fault], "{}", model.name);
    }
    // And a wrong link mode on an SFP+ board does the same.
    let m = board(0x10FB);
    let kx4 = |o, v: u32| Some(if o == regs::AUTOC { (v & !regs::autoc::LMS_MASK) | 0x4 << 13 } else { v });
    let err = Device::init(Tamper::new(&m, kx4), &m.dma(), short_wait()).unwrap_err();
    assert!(matches!(err, DriverError::LinkDown { .. }), "{err}");
    assert!(matches!(m.faults()[..], [ModelFault::LinkModeMismatch { lms: 4, .. }]), "{:?}", m.faults());
}

#[test]
fn init_resets_the_pipeline_after_the_autoc_write() {
    let m = board(0x10FB);
    let io = Tamper::new(&m, |_, v| Some(v));
    let dev = Device::init(io.clone(), &m.dma(), small_config(1)).unwrap();
    let autoc = io.writes_to(regs::AUTOC);
    let restarts: Vec<u32> = autoc.iter().copied().filter(|v| v & regs::autoc::AN_RESTART != 0).collect();
    // LMS bit 2 toggled with AN_RESTART, then the real mode with AN_RESTART.
    let lms = |v: u32| (v & regs::autoc::LMS_MASK) >> regs::autoc::LMS_SHIFT;
    assert_eq!(restarts.iter().map(|&v| lms(v)).collect::<Vec<_>>(), vec![3 ^ 4, 3], "{autoc:x?}");
    drop(dev);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn init_clears_stale_filters_and_validates_rar0() {
    let m = board(0x10FB);
    let io = Tamper::new(&m, |_, v| Some(v));
    let stale = |m: &Model82599| {
        let r = m.regs();
        let rar = (1..regs::RAR_ENTRIES).filter(|&i| r.read32(regs::RAH(i)) & regs::rah::AV != 0).count();
        let mta = (0..regs::MTA_ENTRIES).filter(|&i| r.read32(regs::MTA(i)) != 0).count();
        (rar, mta)
    };
    // What a reset leaves behind: a valid stale address and multicast bits.
    m.regs().write32(regs::CTRL, regs::ctrl::GIO_DIS);
    m.regs().write32(regs::CTRL, regs::ctrl::GIO_DIS | regs::ctrl::RST_MASK);
    m.regs().delay(Duration::from_millis(1));
    assert_ne!(stale(&m), (0, 0));
    let dev = Device::init(io.clone(), &m.dma(), small_config(1)).unwrap();
    assert_eq!(stale(&m), (0, 0));
    // The EEPROM's address went back into RAR(0) with AV, not just read.
    let rah0 = u32::from(u16::from_le_bytes([MAC_A[4], MAC_A[5]])) | regs::rah::AV;
    assert_eq!(io.writes_to(regs::RAH(0)), vec![rah0]);
    assert_eq!(dev.mac(), MAC_A);
    drop(dev);
    assert_eq!(m.faults(), vec![]);
}

#[test]
fn frames_of_14_to_16_bytes_are_padded_to_17_before_the_ring() {
    let (mut a, mut b) = linked_pair(small_config(1));
    for (i, len) in [14usize, 15, 16, 17].into_iter().enumerate() {
        let mut frame = vec![0xEEu8; len];
        frame[..6].copy_from_slice(&MAC_B);
        let mut bufs = vec![buf(&a.pools[0], &frame)];
        assert_eq!(a.queues[0].tx.tx_batch(&mut bufs), 1, "{len} bytes");
        b.model.pump();
        let mut rx = Vec::new();
        assert_eq!(b.queues[0].rx.rx_batch(&mut rx, 4), 1, "{len} bytes");
        let data = rx[0].data();
        assert_eq!(data.len(), 60);
        assert_eq!(&data[..len], &frame[..]);
        assert!(data[len..].iter().all(|&x| x == 0), "{len}: zero padding");
        // The device fetched 17 bytes for each (the totals since init).
        let stats = a.handle.stats();
        assert_eq!(stats.queues[0].tx_bytes, 17 * (i as u64 + 1), "{len} bytes");
    }
    a.queues[0].tx.clean();
    a.finish();
    b.finish();
}
