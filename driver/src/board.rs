//! Which ixgbe boards exist, what medium each port drives, and which of them
//! this driver brings up.
//!
//! The link setup depends on the medium (datasheet 4.6.4, Linux
//! `ixgbe_get_media_type_82599`): an SFP+ cage is a 10 Gb/s serial (SFI)
//! link whose optics the driver switches on through SDP3; a backplane (KX4,
//! KX, KR) needs clause 73 auto-negotiation in AUTOC; CX4 and XAUI are
//! parallel 10G links without auto-negotiation; a copper port (T3 LOM, the
//! X540) has a PHY programmed over MDIO. The driver implements the first
//! only, so it accepts only the 82599 SFP+ ids ([`SUPPORTED_DEVICES`]) and
//! refuses the others by name ([`REFUSED_DEVICES`]) instead of programming
//! a link mode that never comes up. The model reads the same tables, so a
//! test can run the init sequence once per accepted id.

use std::fmt;

/// What a port is physically attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// An SFP+ cage (SR/LR optics or direct-attach copper): 10 Gb/s SFI,
    /// transmit laser on SDP3 (Linux `ixgbe_media_type_fiber`).
    SfpFibre,
    /// Fixed fibre optics without laser control through SDP3 (82599 LS,
    /// `ixgbe_media_type_fiber_lco`).
    FibreLco,
    /// A QSFP+ cage split into four 10G ports (X520-Q1,
    /// `ixgbe_media_type_fiber_qsfp`).
    QsfpFibre,
    /// A backplane: KX4, KX or KR with clause 73 auto-negotiation, or XAUI
    /// to a LOM (`ixgbe_media_type_backplane`).
    Backplane,
    /// CX4 copper (`ixgbe_media_type_cx4`).
    Cx4,
    /// A 10GBASE-T copper PHY behind the MAC (82599 T3 LOM, X540), set up
    /// over MDIO (`ixgbe_media_type_copper`).
    Copper,
}

impl Media {
    /// True for the media whose transmit laser sits on SDP3 and must be
    /// switched on (Linux installs its laser functions for these only).
    pub fn has_sdp3_laser(self) -> bool {
        self == Media::SfpFibre
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Media::SfpFibre => "SFP+ (10G SFI)",
            Media::FibreLco => "fixed fibre optics (LCO)",
            Media::QsfpFibre => "QSFP+ fibre",
            Media::Backplane => "backplane (KX4/KX/KR or XAUI)",
            Media::Cx4 => "CX4 copper",
            Media::Copper => "10GBASE-T copper PHY",
        })
    }
}

/// One ixgbe-family controller id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IxgbeModel {
    /// PCI device id.
    pub device_id: u16,
    /// What the id denotes (ixgbe_type.h's name, without the prefix).
    pub name: &'static str,
    /// The medium its port drives.
    pub media: Media,
}

const fn model(device_id: u16, name: &'static str, media: Media) -> IxgbeModel {
    IxgbeModel { device_id, name, media }
}

/// The 82599 physical functions this driver brings up: the SFP+ boards
/// (X520-DA/SR/LR and the LOMs with SFP+ cages), whose link is 10G SFI with
/// the laser on SDP3. Ids and media as in Linux's ixgbe_type.h and
/// `ixgbe_get_media_type_82599`.
pub const SUPPORTED_DEVICES: &[IxgbeModel] = &[
    model(0x10FB, "82599 SFP+", Media::SfpFibre),
    model(0x1507, "82599 SFP+ EM", Media::SfpFibre),
    model(0x1529, "82599 SFP+ FCoE", Media::SfpFibre),
    model(0x154A, "82599 SFP+ SF QP (X520-4)", Media::SfpFibre),
    model(0x154D, "82599 SFP+ SF2", Media::SfpFibre),
    model(0x1557, "82599EN SFP+", Media::SfpFibre),
];

/// ixgbe ids this driver knows but refuses, each with the reason it would
/// not get a link (or would be misprogrammed).
pub const REFUSED_DEVICES: &[(IxgbeModel, &str)] = &[
    (model(0x10F7, "82599 KX4", Media::Backplane), BACKPLANE),
    (model(0x10F8, "82599 combo backplane", Media::Backplane), BACKPLANE),
    (model(0x10FC, "82599 XAUI LOM", Media::Backplane), BACKPLANE),
    (model(0x1514, "82599 KX4 mezzanine", Media::Backplane), BACKPLANE),
    (model(0x1517, "82599 KR", Media::Backplane), BACKPLANE),
    (model(0x152A, "82599 backplane FCoE", Media::Backplane), BACKPLANE),
    (
        model(0x10F9, "82599 CX4", Media::Cx4),
        "CX4 needs a parallel 10G link mode (AUTOC.LMS = 10G without AN, PMA CX4)",
    ),
    (
        model(0x151C, "82599 T3 LOM", Media::Copper),
        "its 10GBASE-T PHY is set up over MDIO, which this driver does not do",
    ),
    (model(0x154F, "82599 LS", Media::FibreLco), "its optics are not switched through SDP3 and its link setup differs"),
    (model(0x1558, "82599 QSFP+ SF QP (X520-Q1)", Media::QsfpFibre), "QSFP+ module setup is not implemented"),
    (model(0x1528, "X540-T", Media::Copper), X540),
    (model(0x1560, "X540-T1", Media::Copper), X540),
];

const BACKPLANE: &str = "a backplane needs KX4/KX/KR auto-negotiation (AUTOC.LMS = KX4/KX/KR), not the SFI mode this \
                         driver programs";
const X540: &str = "the X540 has a 384 KB receive packet buffer (this driver programs the 82599's 512 KB) and a \
                    10GBASE-T PHY the driver does not set up";

/// The supported model with `device_id`, if any.
pub fn supported_model(device_id: u16) -> Option<&'static IxgbeModel> {
    SUPPORTED_DEVICES.iter().find(|m| m.device_id == device_id)
}

/// A known but refused model with `device_id` and why it is refused.
pub fn refused_model(device_id: u16) -> Option<&'static (IxgbeModel, &'static str)> {
    REFUSED_DEVICES.iter().find(|(m, _)| m.device_id == device_id)
}

/// The medium of any known ixgbe id, supported or not.
pub fn media_of(device_id: u16) -> Option<Media> {
    supported_model(device_id).map(|m| m.media).or_else(|| refused_model(device_id).map(|(m, _)| m.media))
}

/// The supported ids with their names, for error messages:
/// `0x10fb (82599 SFP+), …`.
pub fn supported_list() -> String {
    SUPPORTED_DEVICES.iter().map(|m| format!("{:#06x} ({})", m.device_id, m.name)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_supported_ones_are_sfp() {
        let mut ids: Vec<u16> = SUPPORTED_DEVICES.iter().map(|m| m.device_id).collect();
        ids.extend(REFUSED_DEVICES.iter().map(|(m, _)| m.device_id));
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "an id is listed twice");
        assert!(SUPPORTED_DEVICES.iter().all(|m| m.media == Media::SfpFibre && m.media.has_sdp3_laser()));
        assert!(supported_model(0x10ED).is_none() && refused_model(0x10ED).is_none(), "virtual functions are not ours");
        assert_eq!(media_of(0x1528), Some(Media::Copper));
        assert_eq!(media_of(0x10FB), Some(Media::SfpFibre));
        assert!(supported_list().starts_with("0x10fb (82599 SFP+), 0x1507"), "{}", supported_list());
    }
}
