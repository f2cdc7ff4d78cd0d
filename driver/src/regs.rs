//! 82599 register map: BAR0 offsets and bit fields, named as in the datasheet
//! (82599 10 GbE Controller Datasheet rev 3.3, chapter 8, "Programming
//! Interface"). Indexed registers are `const fn`s of the queue or table index.
//!
//! Only the registers the driver and the model use are here; this is not a
//! dump of the whole register file.
#![allow(non_snake_case)]

/// Device Control Register (8.2.3.1.1).
pub const CTRL: u32 = 0x00000;
/// Device Status Register (8.2.3.1.2).
pub const STATUS: u32 = 0x00008;
/// Extended Device Control Register (8.2.3.1.3).
pub const CTRL_EXT: u32 = 0x00018;
/// Extended SDP Control (8.2.3.1.4): the software-definable pins; on
/// SFP+ boards SDP3 drives the module's TX_DISABLE.
pub const ESDP: u32 = 0x00020;
/// Security Rx Control (ixgbe_type.h IXGBE_SECRXCTRL).
pub const SECRXCTRL: u32 = 0x08D00;
/// Security Rx Status (ixgbe_type.h IXGBE_SECRXSTAT).
pub const SECRXSTAT: u32 = 0x08D04;
/// EEPROM/Flash Control Register (8.2.3.2.1).
pub const EEC: u32 = 0x10010;
/// Extended Interrupt Cause Register, clear on read (8.2.3.5.1).
pub const EICR: u32 = 0x00800;
/// Extended Interrupt Mask Set/Read (8.2.3.5.3).
pub const EIMS: u32 = 0x00880;
/// Extended Interrupt Mask Clear, write 1 to clear (8.2.3.5.4).
pub const EIMC: u32 = 0x00888;
/// Receive DMA Control (8.2.3.8.8).
pub const RDRXCTL: u32 = 0x02F00;
/// Receive Control (8.2.3.8.10).
pub const RXCTRL: u32 = 0x03000;
/// Good Packets Received Count, clear on read (8.2.3.23.26).
pub const GPRC: u32 = 0x04074;
/// Good Packets Transmitted Count, clear on read (8.2.3.23.32).
pub const GPTC: u32 = 0x04080;
/// Good Octets Received Count, low 32 bits (8.2.3.23.27).
pub const GORCL: u32 = 0x04088;
/// Good Octets Received Count, high 4 bits; reading it clears the pair.
pub const GORCH: u32 = 0x0408C;
/// Good Octets Transmitted Count, low 32 bits (8.2.3.23.33).
pub const GOTCL: u32 = 0x04090;
/// Good Octets Transmitted Count, high 4 bits; reading it clears the pair.
pub const GOTCH: u32 = 0x04094;
/// Missed Packets Count for packet buffer 0, clear on read (8.2.3.23.4).
pub const MPC0: u32 = 0x03FA0;
/// Receive Length Error Count (8.2.3.23.11) — frames shorter than 60 or
/// longer than the maximum.
pub const RLEC: u32 = 0x04040;
/// MAC Core Control 0 (8.2.3.22.8).
pub const HLREG0: u32 = 0x04240;
/// Max Frame Size (8.2.3.22.13): MFS in bits 31:16, the largest frame
/// (FCS included) received or sent while HLREG0.JUMBOEN is set.
pub const MAXFRS: u32 = 0x04268;
/// Auto-Negotiation Control (8.2.3.22.19).
pub const AUTOC: u32 = 0x042A0;
/// Link Status (8.2.3.22.20).
pub const LINKS: u32 = 0x042A4;
/// Auto-Negotiation Control 2 (8.2.3.22.21).
pub const AUTOC2: u32 = 0x042A8;
/// Auto-Negotiation Link Partner Link Control Word 1 (8.2.3.22.23); bits
/// 19:16 hold the auto-negotiation state.
pub const ANLP1: u32 = 0x042B0;
/// DCB Transmit Descriptor Plane Control and Status (8.2.3.10.2).
pub const RTTDCS: u32 = 0x04900;
/// DMA Tx Control (8.2.3.9.2).
pub const DMATXCTL: u32 = 0x04A80;
/// Receive Checksum Control (8.2.3.7.5).
pub const RXCSUM: u32 = 0x05000;
/// Filter Control (8.2.3.7.1).
pub const FCTRL: u32 = 0x05080;
/// Multiple Receive Queues Command (8.2.3.7.12).
pub const MRQC: u32 = 0x05818;
/// DMA Tx TCP Max Allow Size Requests (8.2.3.9.1).
pub const DTXMXSZRQ: u32 = 0x08100;
/// Multiple Transmit Queues Command (8.2.3.9.15).
pub const MTQC: u32 = 0x08120;

/// Number of RX/TX queues the 82599 has.
pub const MAX_QUEUES: u16 = 128;
/// Number of unicast receive address registers (RAL/RAH pairs) modelled.
pub const NUM_RAR: u32 = 16;
/// Receive address registers the 82599 has (8.2.3.7.9: 128 pairs).
pub const RAR_ENTRIES: u32 = 128;
/// Entries of the multicast table array (8.2.3.7.7: 128 words of 32 bits).
pub const MTA_ENTRIES: u32 = 128;

/// Multicast Table Array (8.2.3.7.7), `i` in 0..128.
pub const fn MTA(i: u32) -> u32 {
    0x05200 + 4 * i
}

/// Receive Descriptor Base Address Low (8.2.3.8.1).
pub const fn RDBAL(n: u32) -> u32 {
    if n < 64 { 0x01000 + 0x40 * n } else { 0x0D000 + 0x40 * (n - 64) }
}
/// Receive Descriptor Base Address High (8.2.3.8.2).
pub const fn RDBAH(n: u32) -> u32 {
    RDBAL(n) + 0x04
}
/// Receive Descriptor Length in bytes (8.2.3.8.3).
pub const fn RDLEN(n: u32) -> u32 {
    RDBAL(n) + 0x08
}
/// Receive Descriptor Head (8.2.3.8.4).
pub const fn RDH(n: u32) -> u32 {
    RDBAL(n) + 0x10
}
/// Split Receive Control (8.2.3.8.7). Queues 0–15 have an alias at 0x02100.
pub const fn SRRCTL(n: u32) -> u32 {
    if n < 16 { 0x02100 + 4 * n } else { RDBAL(n) + 0x14 }
}
/// Receive Descriptor Tail (8.2.3.8.5).
pub const fn RDT(n: u32) -> u32 {
    RDBAL(n) + 0x18
}
/// Receive Descriptor Control (8.2.3.8.6).
pub const fn RXDCTL(n: u32) -> u32 {
    RDBAL(n) + 0x28
}
/// Rx DCA Control (8.2.3.11.1). Queues 0–15 have an alias at 0x02200.
pub const fn DCA_RXCTRL(n: u32) -> u32 {
    if n < 16 { 0x02200 + 4 * n } else { RDBAL(n) + 0x0C }
}
/// Receive Packet Buffer Size (8.2.3.8.9), `i` in 0..8.
pub const fn RXPBSIZE(i: u32) -> u32 {
    0x03C00 + 4 * i
}
/// Transmit Packet Buffer Size (8.2.3.9.13), `i` in 0..8.
pub const fn TXPBSIZE(i: u32) -> u32 {
    0x0CC00 + 4 * i
}
/// Receive Address Low (8.2.3.7.9). Entries 0–15 are reached through the
/// legacy window at 0x05400, as Intel's drivers do; the rest at 0x0A200.
pub const fn RAL(i: u32) -> u32 {
    if i < 16 { 0x05400 + 8 * i } else { 0x0A200 + 8 * i }
}
/// Receive Address High (8.2.3.7.10); see [`RAL`].
pub const fn RAH(i: u32) -> u32 {
    RAL(i) + 4
}
/// Redirection Table (8.2.3.7.13), `i` in 0..32, four one-byte entries each.
pub const fn RETA(i: u32) -> u32 {
    0x05C00 + 4 * i
}
/// RSS Random Key (8.2.3.7.14), `i` in 0..10.
pub const fn RSSRK(i: u32) -> u32 {
    0x05C80 + 4 * i
}
/// Transmit Descriptor Base Address Low (8.2.3.9.5).
pub const fn TDBAL(n: u32) -> u32 {
    0x06000 + 0x40 * n
}
/// Transmit Descriptor Base Address High (8.2.3.9.6).
pub const fn TDBAH(n: u32) -> u32 {
    TDBAL(n) + 0x04
}
/// Transmit Descriptor Length in bytes (8.2.3.9.7).
pub const fn TDLEN(n: u32) -> u32 {
    TDBAL(n) + 0x08
}
/// Transmit Descriptor Head (8.2.3.9.8).
pub const fn TDH(n: u32) -> u32 {
    TDBAL(n) + 0x10
}
/// Transmit Descriptor Tail (8.2.3.9.9).
pub const fn TDT(n: u32) -> u32 {
    TDBAL(n) + 0x18
}
/// Transmit Descriptor Control (8.2.3.9.10).
pub const fn TXDCTL(n: u32) -> u32 {
    TDBAL(n) + 0x28
}
/// Queue Packets Received Count (8.2.3.23.71), `i` in 0..16 (statistics
/// register index; queues map to sets through [`RQSMR`]/[`TQSM`], whose
/// reset value sends every queue to set 0, so the driver programs them 1:1).
pub const fn QPRC(i: u32) -> u32 {
    0x01030 + 0x40 * i
}
/// Queue Packets Transmitted Count (8.2.3.23.72), `i` in 0..16. At
/// 0x06030 + 0x40 i, inside each transmit queue's register block, as
/// ixgbe_type.h has it and as Linux, DPDK and FreeBSD read it on the 82599
/// (this driver had 0x08680 + 4 i before).
pub const fn QPTC(i: u32) -> u32 {
    0x06030 + 0x40 * i
}
/// Queue Bytes Received Count low (8.2.3.23.73), `i` in 0..16.
pub const fn QBRC_L(i: u32) -> u32 {
    0x01034 + 0x40 * i
}
/// Queue Bytes Received Count high.
pub const fn QBRC_H(i: u32) -> u32 {
    0x01038 + 0x40 * i
}
/// Queue Bytes Transmitted Count low (8.2.3.23.74), `i` in 0..16.
pub const fn QBTC_L(i: u32) -> u32 {
    0x08700 + 8 * i
}
/// Queue Bytes Transmitted Count high.
pub const fn QBTC_H(i: u32) -> u32 {
    0x08704 + 8 * i
}
/// Queue Packets Received Drop Count (8.2.3.23.75), `i` in 0..16.
pub const fn QPRDC(i: u32) -> u32 {
    0x01430 + 0x40 * i
}

/// Receive Queue Statistic Mapping (datasheet 8.2.3.23), `i` in 0..32: the
/// per-queue statistics set (0..16) of queues `4i..4i+4`, one nibble per
/// byte (bits 3:0, 11:8, 19:16, 27:24). Reset value 0: every queue counts in
/// set 0.
pub const fn RQSMR(i: u32) -> u32 {
    0x02300 + 4 * i
}
/// Transmit Queue Statistic Mapping (the 82599's location, datasheet
/// 8.2.3.23), `i` in 0..32; same layout as [`RQSMR`].
pub const fn TQSM(i: u32) -> u32 {
    0x08600 + 4 * i
}

/// CTRL bits.
pub mod ctrl {
    /// Link reset, self-clearing.
    pub const LNK_RST: u32 = 1 << 3;
    /// Device reset, self-clearing.
    pub const RST: u32 = 1 << 26;
    /// Both reset bits, as written for a global reset (4.6.3.2).
    pub const RST_MASK: u32 = LNK_RST | RST;
    /// PCIe master disable (GIO_DIS in ixgbe_type.h): the device stops
    /// issuing new master requests; STATUS.GIO says when the last is done.
    pub const GIO_DIS: u32 = 1 << 2;
}

/// STATUS bits.
pub mod status {
    /// PCIe master enable status: set while master requests may be
    /// outstanding; clears after CTRL.GIO_DIS once they are all done.
    pub const GIO: u32 = 1 << 19;
}

/// SECRXCTRL bits.
pub mod secrxctrl {
    /// Stop the receive data path in the security block (the receive-enable
    /// erratum sequence sets it around RXCTRL.RXEN).
    pub const RX_DIS: u32 = 1 << 1;
}

/// SECRXSTAT bits.
pub mod secrxstat {
    /// The security receive path is empty and stopped (after RX_DIS).
    pub const SECRX_RDY: u32 = 1 << 0;
}

/// CTRL_EXT bits.
pub mod ctrl_ext {
    /// No snoop disable.
    pub const NS_DIS: u32 = 1 << 16;
}

/// EEC bits.
pub mod eec {
    /// EEPROM auto-read done.
    pub const ARD: u32 = 1 << 9;
}

/// RDRXCTL bits.
pub mod rdrxctl {
    /// Strip the Ethernet CRC; must match HLREG0.RXCRCSTRP.
    pub const CRCSTRIP: u32 = 1 << 1;
    /// DMA initialisation done.
    pub const DMAIDONE: u32 = 1 << 3;
    /// RSC first-size field, must be 0.
    pub const RSCFRSTSIZE: u32 = 0x003E_0000;
    /// RSC coalescing on ACK change, must be 1.
    pub const RSCACKC: u32 = 1 << 25;
    /// FCoE write fix, must be 1.
    pub const FCOE_WRFIX: u32 = 1 << 26;
}

/// RXCTRL bits.
pub mod rxctrl {
    /// Receive enable.
    pub const RXEN: u32 = 1 << 0;
}

/// HLREG0 bits.
pub mod hlreg0 {
    /// Append the CRC on transmit.
    pub const TXCRCEN: u32 = 1 << 0;
    /// Strip the CRC on receive.
    pub const RXCRCSTRP: u32 = 1 << 1;
    /// Jumbo frames.
    pub const JUMBOEN: u32 = 1 << 2;
    /// Pad short frames to 64 bytes (60 plus CRC) on transmit.
    pub const TXPADEN: u32 = 1 << 10;
    /// MAC loopback.
    pub const LPBK: u32 = 1 << 15;
}

/// MAXFRS fields.
pub mod maxfrs {
    /// MFS, bits 31:16.
    pub const MFS_SHIFT: u32 = 16;
    /// Mask of MFS in place.
    pub const MFS_MASK: u32 = 0xFFFF << MFS_SHIFT;
}

/// ESDP bits.
pub mod esdp {
    /// SDP3 data value; on SFP+ boards 1 switches the transmit laser off.
    pub const SDP3: u32 = 1 << 3;
    /// SDP3 direction: 1 = output.
    pub const SDP3_DIR: u32 = 1 << 11;
}

/// AUTOC2 bits.
pub mod autoc2 {
    /// Link disabled by the NVM (bits 30:28); Linux clears them before a
    /// pipeline reset.
    pub const LINK_DISABLE_MASK: u32 = 0x7 << 28;
}

/// ANLP1 bits.
pub mod anlp1 {
    /// Auto-negotiation state, bits 19:16; 0 until AN has left its idle state.
    pub const AN_STATE_MASK: u32 = 0xF << 16;
}

/// AUTOC bits.
pub mod autoc {
    /// Restart auto-negotiation, self-clearing.
    pub const AN_RESTART: u32 = 1 << 12;
    /// Position of the link mode select field.
    pub const LMS_SHIFT: u32 = 13;
    /// Link mode select, bits 15:13.
    pub const LMS_MASK: u32 = 0x7 << 13;
    /// Link mode: 10 GbE serial link (KX4/KX/KR, SFI).
    pub const LMS_10G_SERIAL: u32 = 0x3 << 13;
    /// 10G PMA/PMD for parallel interfaces, bits 8:7.
    pub const PMA_PMD_10G_MASK: u32 = 0x3 << 7;
    /// 10G PMA/PMD: XAUI.
    pub const PMA_PMD_10G_XAUI: u32 = 0;
}

/// LINKS bits.
pub mod links {
    /// Link up.
    pub const UP: u32 = 1 << 30;
    /// Link speed, bits 29:28.
    pub const SPEED_MASK: u32 = 0x3 << 28;
    /// 10 Gb/s.
    pub const SPEED_10G: u32 = 0x3 << 28;
    /// 1 Gb/s.
    pub const SPEED_1G: u32 = 0x2 << 28;
    /// 100 Mb/s.
    pub const SPEED_100M: u32 = 0x1 << 28;
}

/// RTTDCS bits.
pub mod rttdcs {
    /// Disable the TX descriptor arbiter.
    pub const ARBDIS: u32 = 1 << 6;
}

/// DMATXCTL bits.
pub mod dmatxctl {
    /// Transmit enable.
    pub const TE: u32 = 1 << 0;
}

/// RXCSUM bits.
pub mod rxcsum {
    /// IP payload checksum enable.
    pub const IPPCSE: u32 = 1 << 12;
    /// Packet checksum disable: the descriptor carries the RSS hash instead.
    pub const PCSD: u32 = 1 << 13;
}

/// FCTRL bits.
pub mod fctrl {
    /// Store bad packets.
    pub const SBP: u32 = 1 << 1;
    /// Multicast promiscuous enable.
    pub const MPE: u32 = 1 << 8;
    /// Unicast promiscuous enable.
    pub const UPE: u32 = 1 << 9;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 10;
}

/// RAH bits.
pub mod rah {
    /// Address valid.
    pub const AV: u32 = 1 << 31;
}

/// SRRCTL bits.
pub mod srrctl {
    /// Packet buffer size in 1 KiB units, bits 4:0.
    pub const BSIZEPKT_MASK: u32 = 0x1F;
    /// Shift from bytes to BSIZEPKT units.
    pub const BSIZEPKT_SHIFT: u32 = 10;
    /// Header buffer size in 64-byte units, bits 13:8.
    pub const BSIZEHDR_MASK: u32 = 0x3F << 8;
    /// Descriptor type, bits 27:25.
    pub const DESCTYPE_MASK: u32 = 0x7 << 25;
    /// Advanced descriptor, one buffer.
    pub const DESCTYPE_ADV_ONEBUF: u32 = 0x1 << 25;
    /// Drop packets when no descriptor is free.
    pub const DROP_EN: u32 = 1 << 28;
}

/// RXDCTL and TXDCTL bits.
pub mod dctl {
    /// Queue enable.
    pub const ENABLE: u32 = 1 << 25;
    /// Prefetch threshold, bits 6:0.
    pub const PTHRESH_MASK: u32 = 0x7F;
    /// Host threshold, bits 14:8.
    pub const HTHRESH_MASK: u32 = 0x7F << 8;
    /// Write-back threshold, bits 22:16.
    pub const WTHRESH_MASK: u32 = 0x7F << 16;
}

/// DCA_RXCTRL bits.
pub mod dca_rxctrl {
    /// Bit 12 must be cleared (reserved, set at reset).
    pub const RESERVED_BIT12: u32 = 1 << 12;
}

/// MRQC values.
pub mod mrqc {
    /// Multiple receive queue enable mode, bits 3:0.
    pub const MRQE_MASK: u32 = 0xF;
    /// RSS only.
    pub const RSSEN: u32 = 0x1;
    /// Hash TCP/IPv4: source, destination address and ports.
    pub const IPV4_TCP: u32 = 1 << 16;
    /// Hash IPv4: source and destination address.
    pub const IPV4: u32 = 1 << 17;
    /// Hash IPv6 with extension headers and TCP.
    pub const IPV6_EX_TCP: u32 = 1 << 18;
    /// Hash IPv6 with extension headers.
    pub const IPV6_EX: u32 = 1 << 19;
    /// Hash IPv6.
    pub const IPV6: u32 = 1 << 20;
    /// Hash TCP/IPv6.
    pub const IPV6_TCP: u32 = 1 << 21;
    /// Hash UDP/IPv4.
    pub const IPV4_UDP: u32 = 1 << 22;
    /// Hash UDP/IPv6.
    pub const IPV6_UDP: u32 = 1 << 23;
    /// Hash UDP/IPv6 with extension headers.
    pub const IPV6_EX_UDP: u32 = 1 << 24;
}

/// Interrupt mask written to EIMC to mask every cause. Bit 31 is reserved,
/// so it is not written.
pub const IRQ_CLEAR_MASK: u32 = 0x7FFF_FFFF;

/// The size of BAR0 on the 82599 (512 KiB of registers).
pub const BAR0_LEN: usize = 0x8_0000;

/// The smallest BAR0 this driver accepts. Every register it touches lies
/// below 0x2_0000 (the highest, EEC, is at 0x1_0010); the 82599 exposes
/// 128 KiB or 512 KiB depending on its EEPROM, the X540 2 MiB. A smaller
/// BAR (sysfs `resource0` or a VFIO region) is not an ixgbe register file.
pub const MIN_BAR0_LEN: usize = 0x2_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_offsets_match_the_datasheet() {
        assert_eq!(RDBAL(0), 0x01000);
        assert_eq!(RDT(1), 0x01058);
        assert_eq!(RXDCTL(63), 0x01028 + 0x40 * 63);
        assert_eq!(RDBAL(64), 0x0D000);
        assert_eq!(SRRCTL(3), 0x0210C);
        assert_eq!(SRRCTL(16), 0x01414);
        assert_eq!(DCA_RXCTRL(2), 0x02208);
        assert_eq!(TDT(2), 0x06098);
        assert_eq!(TXDCTL(0), 0x06028);
        assert_eq!(RETA(31), 0x05C7C);
        assert_eq!(RSSRK(9), 0x05CA4);
        assert_eq!(RAL(0), 0x05400);
        assert_eq!(RAH(15), 0x0547C);
        assert_eq!(RAL(16), 0x0A280);
    }

    #[test]
    fn statistics_and_link_offsets_match_ixgbe_type_h() {
        assert_eq!(QPTC(0), 0x06030);
        assert_eq!(QPTC(15), 0x06030 + 0x40 * 15);
        assert_eq!(QPRC(1), 0x01070);
        assert_eq!(QBTC_L(1), 0x08708);
        assert_eq!(QPRDC(2), 0x014B0);
        assert_eq!(MTA(127), 0x053FC);
        assert_eq!(RAL(127), 0x0A200 + 8 * 127);
        assert_eq!((ESDP, AUTOC2, ANLP1), (0x00020, 0x042A8, 0x042B0));
    }
}
