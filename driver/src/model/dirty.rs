//! A "dirty start": the device as a previous owner left it running, so that
//! a test can check that init stops and resets everything before it trusts
//! any of it.
//!
//! The state is what the Linux ixgbe driver (or a run of this driver that
//! died) leaves behind when the process or the kernel driver goes without
//! an orderly shutdown: receive enabled, transmit DMA on, four queue pairs
//! enabled on rings whose memory is gone (device addresses that were once
//! handed out and are unmapped now), transmit work pending on them,
//! interrupts unmasked, the laser switched off (ESDP.SDP3 set, as
//! `ixgbe_disable_tx_laser_multispeed_fiber` leaves it), extra receive
//! address filters (RAR 1 and 2) and multicast table bits (MTA, MCSTCTRL.MFE)
//! as Linux programs them, and the link up.

use super::{Model82599, ModelConfig, lock};
use crate::regs::{self, dctl, hlreg0, rdrxctl, srrctl};

/// Extended SDP control (8.2.3.1.4): SDP3 data in bit 3, its direction
/// (output) in bit 11. Multispeed fibre boards drive the TX laser's disable
/// line from SDP3.
const ESDP: u32 = 0x00020;
const ESDP_SDP3: u32 = 1 << 3;
const ESDP_SDP3_DIR: u32 = 1 << 11;
/// Multicast table array (8.2.3.7.7), 128 words.
const MTA: u32 = 0x05200;
/// Multicast control (8.2.3.7.5): MFE, bit 2, enables the MTA.
const MCSTCTRL: u32 = 0x05090;
const MCSTCTRL_MFE: u32 = 1 << 2;
/// CTRL_EXT.DRV_LOAD (bit 28): a driver claims the device.
const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;

/// Queue pairs the previous owner left enabled.
pub const DIRTY_QUEUES: u32 = 4;
/// Descriptors in each of their rings.
const DIRTY_RING: u32 = 512;

impl Model82599 {
    /// A device in the state a previous owner left running (see the module
    /// documentation): nothing of it may be trusted, and a frame arriving
    /// before the driver stops it would be written into freed memory (a
    /// `DmaOutOfBounds` fault here).
    pub fn left_running(config: ModelConfig) -> Model82599 {
        let model = Model82599::new(config);
        {
            let mut state = lock(&model.shared.state);
            let mut iommu = lock(&model.shared.iommu);
            let s = &mut *state;
            let ring_bytes = DIRTY_RING * 16;
            for q in 0..DIRTY_QUEUES {
                let qi = q as usize;
                // Device addresses that were mapped once and are not now.
                let rx_base = iommu.alloc_iova(ring_bytes as usize, 4096);
                let tx_base = iommu.alloc_iova(ring_bytes as usize, 4096);
                s.set_reg(regs::RDBAL(q), rx_base as u32);
                s.set_reg(regs::RDBAH(q), (rx_base >> 32) as u32);
                s.set_reg(regs::RDLEN(q), ring_bytes);
                s.set_reg(regs::RDH(q), 17);
                s.set_reg(regs::RDT(q), 16);
                s.set_reg(regs::SRRCTL(q), srrctl::DESCTYPE_ADV_ONEBUF | 2 | srrctl::DROP_EN);
                s.set_reg(regs::DCA_RXCTRL(q), 0);
                s.set_reg(regs::RXDCTL(q), dctl::ENABLE);
                s.rx[qi].enabled = true;
                s.rx[qi].base = rx_base;
                s.rx[qi].entries = DIRTY_RING;
                s.set_reg(regs::TDBAL(q), tx_base as u32);
                s.set_reg(regs::TDBAH(q), (tx_base >> 32) as u32);
                s.set_reg(regs::TDLEN(q), ring_bytes);
                // Thirty descriptors handed over and not yet fetched.
                s.set_reg(regs::TDH(q), 100);
                s.set_reg(regs::TDT(q), 130);
                s.set_reg(regs::TXDCTL(q), dctl::ENABLE | 1 << 16 | 8 << 8 | 32);
                s.tx[qi].enabled = true;
                s.tx[qi].base = tx_base;
                s.tx[qi].entries = DIRTY_RING;
                // The engine has not got round to that work yet.
                s.tx_pending |= 1 << qi;
            }
            let rdrxctl = rdrxctl::DMAIDONE | rdrxctl::CRCSTRIP | rdrxctl::RSCACKC | rdrxctl::FCOE_WRFIX;
            s.set_reg(regs::RDRXCTL, rdrxctl);
            s.set_reg(regs::HLREG0, hlreg0::TXCRCEN | hlreg0::RXCRCSTRP | hlreg0::TXPADEN);
            s.set_reg(regs::CTRL_EXT, regs::ctrl_ext::NS_DIS | CTRL_EXT_DRV_LOAD);
            s.set_reg(regs::RXCTRL, regs::rxctrl::RXEN);
            s.set_reg(regs::DMATXCTL, regs::dmatxctl::TE);
            s.set_reg(regs::EIMS, 0x7FFF_FFFF);
            s.set_reg(ESDP, ESDP_SDP3 | ESDP_SDP3_DIR);
            s.set_reg(regs::FCTRL, regs::fctrl::BAM);
            for (i, mac) in [[0x02, 0, 0, 0, 0x10, 0x01], [0x02, 0, 0, 0, 0x10, 0x02]].iter().enumerate() {
                let i = i as u32 + 1;
                s.set_reg(regs::RAL(i), u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
                s.set_reg(regs::RAH(i), u32::from_le_bytes([mac[4], mac[5], 0, 0]) | regs::rah::AV);
            }
            // Two multicast subscriptions' hash bits.
            s.set_reg(MTA + 4 * 0x10, 1 << 0);
            s.set_reg(MTA + 4 * 0x7F, 1 << 31);
            s.set_reg(MCSTCTRL, MCSTCTRL_MFE);
            s.link.restarted = true;
            s.link.up = true;
            s.link.polls = s.config.link_up_after_polls;
        }
        model
    }
}
