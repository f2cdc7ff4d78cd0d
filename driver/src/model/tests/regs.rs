//! Reset, link, interrupt and plain registers.

use super::*;

#[test]
fn reset_loads_mac_sets_done_bits_and_self_clears() {
    let rig = Rig::new();
    rig.wr(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    rig.rx_required_bits();
    rig.enable_rx();
    assert_ne!(rig.rd(r::RXCTRL) & r::rxctrl::RXEN, 0);
    rig.wr(r::FCTRL, r::fctrl::UPE);
    rig.wr(r::RAL(0), 0);
    rig.reset();
    // Self-clearing: the reset is done by the time it is read back.
    assert_eq!(rig.rd(r::CTRL) & r::ctrl::RST_MASK, 0);
    assert_ne!(rig.rd(r::EEC) & r::eec::ARD, 0);
    assert_ne!(rig.rd(r::RDRXCTL) & r::rdrxctl::DMAIDONE, 0);
    assert_eq!(rig.rd(r::RAL(0)), u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]));
    assert_eq!(rig.rd(r::RAH(0)), u32::from(u16::from_le_bytes([MAC[4], MAC[5]])) | r::rah::AV);
    // Power-on values came back.
    assert_eq!(rig.rd(r::RXCTRL), 0);
    assert_eq!(rig.rd(r::FCTRL), 0);
    assert_ne!(rig.rd(r::DCA_RXCTRL(3)) & r::dca_rxctrl::RESERVED_BIT12, 0);
    assert_eq!(rig.rd(r::SRRCTL(5)) & r::srrctl::BSIZEPKT_MASK, 2);
    assert_eq!(rig.model.reset_count(), 1);
    assert_eq!(rig.model.mac(), MAC);
    assert_eq!(rig.model.device_id(), 0x10FB);
    rig.assert_no_faults();
}

#[test]
fn status_bits_cannot_be_cleared_by_software() {
    let rig = Rig::new();
    rig.wr(r::EEC, 0);
    rig.wr(r::RDRXCTL, r::rdrxctl::CRCSTRIP);
    assert_ne!(rig.rd(r::EEC) & r::eec::ARD, 0);
    assert_eq!(rig.rd(r::RDRXCTL), r::rdrxctl::CRCSTRIP | r::rdrxctl::DMAIDONE);
}

#[test]
fn link_comes_up_at_10g_after_an_restart_and_polls() {
    let rig = Rig::with_config(ModelConfig { link_up_after_polls: 3, ..ModelConfig::default() });
    for _ in 0..10 {
        assert_eq!(rig.rd(r::LINKS) & r::links::UP, 0, "down before AN restart");
    }
    // An SFP+ board: the laser on (SDP3 an output driven low) and SFI.
    rig.wr(r::ESDP, r::esdp::SDP3_DIR);
    let autoc = (rig.rd(r::AUTOC) & !r::autoc::LMS_MASK) | r::autoc::LMS_10G_SERIAL;
    rig.wr(r::AUTOC, autoc);
    rig.wr(r::AUTOC, autoc | r::autoc::AN_RESTART);
    assert_eq!(rig.rd(r::AUTOC), autoc, "AN_RESTART self-clears");
    for _ in 0..3 {
        assert_eq!(rig.rd(r::LINKS) & r::links::UP, 0);
    }
    let links = rig.rd(r::LINKS);
    assert_ne!(links & r::links::UP, 0);
    assert_eq!(links & r::links::SPEED_MASK, r::links::SPEED_10G);
    // A reset takes the link down until the next AN restart.
    rig.reset();
    assert_eq!(rig.rd(r::LINKS) & r::links::UP, 0);
}

#[test]
fn eicr_is_clear_on_read_and_eims_eimc_manage_the_mask() {
    let rig = Rig::new();
    rig.wr(super::super::regfile::off::EICS, 0x5);
    assert_eq!(rig.rd(r::EICR), 0x5);
    assert_eq!(rig.rd(r::EICR), 0, "clear on read");
    rig.wr(r::EIMS, 0xF0);
    rig.wr(r::EIMS, 0x0F);
    assert_eq!(rig.rd(r::EIMS), 0xFF);
    rig.wr(r::EIMC, r::IRQ_CLEAR_MASK);
    assert_eq!(rig.rd(r::EIMS), 0);
    // Link up raises LSC.
    rig.wr(r::ESDP, r::esdp::SDP3_DIR);
    rig.wr(r::AUTOC, r::autoc::LMS_10G_SERIAL | r::autoc::AN_RESTART);
    while rig.rd(r::LINKS) & r::links::UP == 0 {}
    assert_eq!(rig.rd(r::EICR), 1 << 20);
}

#[test]
fn unmodelled_registers_read_back_and_aliases_share_storage() {
    let rig = Rig::new();
    rig.wr(r::RXPBSIZE(0), 0x2_0000);
    rig.wr(r::DTXMXSZRQ, 0xFFF);
    rig.wr(0x1_2345 * 4, 0xdead_beef);
    assert_eq!(rig.rd(r::RXPBSIZE(0)), 0x2_0000);
    assert_eq!(rig.rd(r::DTXMXSZRQ), 0xFFF);
    assert_eq!(rig.rd(0x1_2345 * 4), 0xdead_beef);
    // SRRCTL(3) also sits at 0x01014 + 0x40 * 3; RAL(2) at 0x0A200 + 16.
    rig.wr(0x01014 + 0x40 * 3, 0x0200_0004);
    assert_eq!(rig.rd(r::SRRCTL(3)), 0x0200_0004);
    rig.wr(0x0A200 + 16, 0x1234_5678);
    assert_eq!(rig.rd(r::RAL(2)), 0x1234_5678);
    // Statistics are read-only.
    rig.wr(r::GPRC, 77);
    assert_eq!(rig.rd(r::GPRC), 0);
    rig.assert_no_faults();
}

#[test]
fn queue_enable_reads_back_when_the_ring_is_valid() {
    let rig = Rig::new();
    rig.init();
    let _rx = rig.rx_queue(2, 64, 2);
    let _tx = rig.tx_queue(5, 64);
    assert_ne!(rig.rd(r::RXDCTL(2)) & r::dctl::ENABLE, 0);
    assert_ne!(rig.rd(r::TXDCTL(5)) & r::dctl::ENABLE, 0);
    assert_eq!(rig.rd(r::RDT(2)), 63);
    rig.assert_no_faults();
}
