//! The board around the MAC: media and link mode, the SFP+ laser, packet
//! buffer sizes, stale address filters after reset, the shortest frame.

use super::*;
use crate::board::{Media, REFUSED_DEVICES, SUPPORTED_DEVICES};
use crate::model::regfile::{STALE_MTA, STALE_RAR};

fn rig_for(device_id: u16) -> Rig {
    Rig::with_config(ModelConfig { device_id, link_up_after_polls: 0, ..ModelConfig::default() })
}

/// Restarts auto-negotiation with link mode `lms` and polls LINKS `polls`
/// times; true if any poll saw the link up.
fn restart_and_poll(rig: &Rig, lms: u32, polls: usize) -> bool {
    let autoc = (rig.rd(r::AUTOC) & !r::autoc::LMS_MASK) | lms << r::autoc::LMS_SHIFT;
    rig.wr(r::AUTOC, autoc | r::autoc::AN_RESTART);
    (0..polls).any(|_| rig.rd(r::LINKS) & r::links::UP != 0)
}

#[test]
fn an_sfp_port_comes_out_of_reset_dark_and_links_once_the_laser_is_on() {
    for model in SUPPORTED_DEVICES {
        let rig = rig_for(model.device_id);
        let esdp = rig.rd(r::ESDP);
        assert_eq!(esdp, r::esdp::SDP3_DIR | r::esdp::SDP3, "{}: laser off after reset", model.name);
        // The old driver: SFI mode but no ESDP write. Many polls, one fault.
        assert!(!restart_and_poll(&rig, 3, 100), "{}: no link while dark", model.name);
        assert_eq!(rig.model.take_faults(), vec![ModelFault::LaserOff { esdp }], "{}", model.name);
        // SDP3 low but as an input: the module's pull-up keeps it dark.
        rig.wr(r::ESDP, 0);
        assert!(!restart_and_poll(&rig, 3, 10));
        assert_eq!(rig.model.take_faults(), vec![ModelFault::LaserOff { esdp: 0 }]);
        rig.wr(r::ESDP, r::esdp::SDP3_DIR);
        assert!(restart_and_poll(&rig, 3, 2), "{}: link with the laser on", model.name);
        // Switching the laser off again drops the link.
        rig.wr(r::ESDP, r::esdp::SDP3_DIR | r::esdp::SDP3);
        assert_eq!(rig.rd(r::LINKS) & r::links::UP, 0);
        rig.model.take_faults();
    }
}

#[test]
fn a_link_mode_that_does_not_suit_the_media_keeps_the_link_down() {
    // SFP+ wants 10G serial (3), not KX4/KX/KR (4) or parallel 10G (1).
    let rig = rig_for(0x10FB);
    rig.wr(r::ESDP, r::esdp::SDP3_DIR);
    for lms in [1, 4] {
        assert!(!restart_and_poll(&rig, lms, 50));
        let media = Some(Media::SfpFibre);
        assert_eq!(rig.model.take_faults(), vec![ModelFault::LinkModeMismatch { device_id: 0x10FB, media, lms }]);
    }
    // The old driver forced SFI on every id: a backplane, CX4 or copper
    // board never got link that way.
    for (model, _) in REFUSED_DEVICES.iter().filter(|(m, _)| m.media != Media::SfpFibre) {
        let rig = rig_for(model.device_id);
        let fits = matches!(model.media, Media::FibreLco | Media::QsfpFibre);
        assert_eq!(restart_and_poll(&rig, 3, 20), fits, "{}", model.name);
        if !fits {
            let fault = ModelFault::LinkModeMismatch { device_id: model.device_id, media: Some(model.media), lms: 3 };
            assert_eq!(rig.model.take_faults(), vec![fault.clone()], "{}", model.name);
            assert!(fault.to_string().contains(&model.media.to_string()), "{fault}");
        }
    }
    // Each medium's own mode does link.
    assert!(restart_and_poll(&rig_for(0x10F7), 4, 2), "KX4 with KX4/KX/KR AN");
    assert!(restart_and_poll(&rig_for(0x10F9), 1, 2), "CX4 with 10G without AN");
}

#[test]
fn a_new_link_mode_without_an_restart_takes_the_link_down() {
    let rig = rig_for(0x10FB);
    rig.wr(r::ESDP, r::esdp::SDP3_DIR);
    assert!(restart_and_poll(&rig, 3, 2));
    let autoc = rig.rd(r::AUTOC);
    rig.wr(r::AUTOC, autoc ^ (0x4 << r::autoc::LMS_SHIFT));
    assert_eq!(rig.rd(r::LINKS) & r::links::UP, 0);
    assert_eq!(rig.rd(r::ANLP1) & r::anlp1::AN_STATE_MASK, 0, "AN idle until restarted");
    rig.wr(r::AUTOC, autoc | r::autoc::AN_RESTART);
    assert_ne!(rig.rd(r::ANLP1) & r::anlp1::AN_STATE_MASK, 0, "AN left idle");
    assert!((0..2).any(|_| rig.rd(r::LINKS) & r::links::UP != 0));
    rig.assert_no_faults();
}

#[test]
fn packet_buffer_sizes_beyond_the_device_refuse_rx_and_tx_enable() {
    let rig = Rig::new();
    rig.reset();
    rig.regs.set_bits(r::HLREG0, r::hlreg0::RXCRCSTRP);
    rig.regs.set_bits(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    rig.rx_required_bits();
    // The reset values (512 KB / 160 KB in buffer 0) fit; one more buffer
    // of 64 KB (ixy's habit of sizing PB 0 without zeroing the rest, or a
    // DCB split that forgets PB 0) does not.
    rig.wr(r::RXPBSIZE(1), 64 << 10);
    rig.wr(r::TXPBSIZE(3), 40 << 10);
    rig.enable_rx();
    assert_eq!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0, "RXEN refused");
    rig.wr(r::DMATXCTL, r::dmatxctl::TE);
    assert_eq!(rig.rd(r::DMATXCTL) & r::dmatxctl::TE, 0, "TE refused");
    assert_eq!(
        rig.faults(),
        vec![
            ModelFault::PacketBufferOvercommitted { rx: true, total_kb: 576, capacity_kb: 512 },
            ModelFault::PacketBufferOvercommitted { rx: false, total_kb: 200, capacity_kb: 160 },
        ]
    );
    rig.model.take_faults();
    rig.wr(r::RXPBSIZE(0), 448 << 10);
    rig.wr(r::TXPBSIZE(0), 120 << 10);
    rig.enable_rx();
    rig.wr(r::DMATXCTL, r::dmatxctl::TE);
    assert_ne!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0);
    assert_ne!(rig.rd(r::DMATXCTL) & r::dmatxctl::TE, 0);
    rig.assert_no_faults();
}

#[test]
fn a_reset_leaves_stale_receive_addresses_and_multicast_bits() {
    let rig = Rig::new();
    let [a, b, c, d, e, f] = STALE_RAR;
    for i in [1, 100] {
        assert_eq!(rig.rd(r::RAL(i)), u32::from_le_bytes([a, b, c, d]));
        assert_eq!(rig.rd(r::RAH(i)), u32::from_le_bytes([e, f, 0, 0]) | r::rah::AV);
    }
    assert!((0..r::MTA_ENTRIES).all(|i| rig.rd(r::MTA(i)) == STALE_MTA));
    // The stale entry is live: a frame to it is accepted.
    let mut rig = rig;
    rig.init();
    let _rx = rig.rx_queue(0, 8, 2);
    rig.inject(&ipv4_frame(STALE_RAR, (ip(10, 0, 0, 9), 9), (ip(10, 0, 0, 1), 80), false, b"not ours"));
    assert_eq!(rig.rd(r::RDH(0)), 1, "a frame to the stale address was received");
    rig.assert_no_faults();
}

#[test]
fn a_frame_shorter_than_17_bytes_halts_the_queue() {
    let mut rig = Rig::new();
    rig.init();
    let mut tx = rig.tx_queue(0, 64);
    // 17 bytes go out (padded to 60 on the wire).
    tx.send(&rig, &[0xAB; 17]);
    assert_eq!(rig.sent().map(|f| f.len()), Some(60));
    rig.assert_no_faults();
    let index = tx.send(&rig, &[0xAB; 16]);
    assert_eq!(rig.sent(), None);
    assert_eq!(rig.faults(), vec![ModelFault::TxFrameTooShort { queue: 0, index, len: 16 }]);
}
