//! Advanced receive and transmit descriptors (82599 datasheet 7.1.6 and
//! 7.2.3.2). Each is 16 bytes, little-endian, in a ring in DMA memory.
//!
//! The structs document the layouts and are used by tests and the model to
//! build descriptors; the rings themselves are accessed word by word through
//! [`crate::dma::DmaRegion`] at the offsets in the `field` modules, because
//! the device writes them concurrently.

/// Size of every descriptor in bytes.
pub const DESC_SIZE: usize = 16;

/// Advanced receive descriptor, read format (driver → device).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvRxRead {
    /// Device address of the packet buffer.
    pub pkt_addr: u64,
    /// Device address of the header buffer. Bit 0 overlaps DD in the
    /// write-back format, so writing 0 here re-arms the descriptor.
    pub hdr_addr: u64,
}

/// Advanced receive descriptor, write-back format (device → driver).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvRxWriteback {
    /// RSS type (bits 3:0) and packet type (bits 15:4).
    pub pkt_info: u16,
    /// Header length and split-header flag.
    pub hdr_info: u16,
    /// RSS hash when RXCSUM.PCSD is set.
    pub rss: u32,
    /// Status (bits 19:0) and errors (bits 31:20).
    pub status_error: u32,
    /// Bytes written to the packet buffer (CRC stripped).
    pub length: u16,
    /// VLAN tag.
    pub vlan: u16,
}

/// Advanced transmit data descriptor, read format.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvTxRead {
    /// Device address of the data.
    pub buffer_addr: u64,
    /// DTALEN (15:0), MAC (19:18), DTYP (23:20), DCMD (31:24).
    pub cmd_type_len: u32,
    /// STA (3:0), IDX (6:4), CC (7), POPTS (13:8), PAYLEN (31:14).
    pub olinfo_status: u32,
}

/// Advanced transmit context descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvTxContext {
    /// IPLEN (8:0), MACLEN (15:9), VLAN (31:16).
    pub vlan_macip_lens: u32,
    /// IPsec SA index / FCoE fields.
    pub seqnum_seed: u32,
    /// TUCMD (19:9), DTYP (23:20), DEXT (29).
    pub type_tucmd_mlhl: u32,
    /// IDX (6:4), L4LEN (15:8), MSS (31:16).
    pub mss_l4len_idx: u32,
}

const _: () = assert!(std::mem::size_of::<AdvRxRead>() == DESC_SIZE);
const _: () = assert!(std::mem::size_of::<AdvRxWriteback>() == DESC_SIZE);
const _: () = assert!(std::mem::size_of::<AdvTxRead>() == DESC_SIZE);
const _: () = assert!(std::mem::size_of::<AdvTxContext>() == DESC_SIZE);

/// Byte offsets inside a descriptor.
pub mod field {
    /// RX read: packet buffer address (u64).
    pub const RX_PKT_ADDR: usize = 0;
    /// RX read: header buffer address (u64).
    pub const RX_HDR_ADDR: usize = 8;
    /// RX write-back: pkt_info (u16) and hdr_info (u16) as one u32.
    pub const RX_WB_INFO: usize = 0;
    /// RX write-back: RSS hash (u32).
    pub const RX_WB_RSS: usize = 4;
    /// RX write-back: status and errors (u32).
    pub const RX_WB_STATUS_ERROR: usize = 8;
    /// RX write-back: length (u16, low half) and VLAN (u16, high half) as
    /// one u32.
    pub const RX_WB_LENGTH_VLAN: usize = 12;
    /// TX read: buffer address (u64).
    pub const TX_BUFFER_ADDR: usize = 0;
    /// TX read: command, type and length (u32).
    pub const TX_CMD_TYPE_LEN: usize = 8;
    /// TX read: offload info and status (u32); TX write-back: status, DD in
    /// bit 0.
    pub const TX_OLINFO_STATUS: usize = 12;
}

/// RX write-back status bits (7.1.6.2).
pub mod rx_status {
    /// Descriptor done.
    pub const DD: u32 = 1 << 0;
    /// End of packet.
    pub const EOP: u32 = 1 << 1;
    /// VLAN packet.
    pub const VP: u32 = 1 << 3;
    /// UDP checksum calculated.
    pub const UDPCS: u32 = 1 << 4;
    /// L4 (TCP/UDP) checksum calculated.
    pub const L4CS: u32 = 1 << 5;
    /// IPv4 checksum calculated.
    pub const IPCS: u32 = 1 << 6;
    /// Frame error (RXE).
    pub const ERR_RXE: u32 = 1 << 29;
    /// TCP/UDP checksum error.
    pub const ERR_TCPE: u32 = 1 << 30;
    /// IPv4 header checksum error.
    pub const ERR_IPE: u32 = 1 << 31;
}

/// RX write-back RSS types (`pkt_info` bits 3:0).
pub mod rss_type {
    /// No hash computed.
    pub const NONE: u16 = 0;
    /// Hash over TCP/IPv4 (addresses and ports).
    pub const TCP_IPV4: u16 = 1;
    /// Hash over IPv4 addresses.
    pub const IPV4: u16 = 2;
    /// Hash over UDP/IPv4.
    pub const UDP_IPV4: u16 = 7;
}

/// RX write-back packet type bits (`pkt_info` bits 15:4).
pub mod pkt_type {
    /// IPv4 header present.
    pub const IPV4: u16 = 0x10;
    /// TCP header present.
    pub const TCP: u16 = 0x100;
    /// UDP header present.
    pub const UDP: u16 = 0x200;
}

/// TX `cmd_type_len` bits (7.2.3.2.4).
pub mod tx_cmd {
    /// Data length mask (15:0).
    pub const DTALEN_MASK: u32 = 0xFFFF;
    /// Descriptor type field (23:20).
    pub const DTYP_MASK: u32 = 0xF << 20;
    /// Descriptor type: advanced data.
    pub const DTYP_DATA: u32 = 0x3 << 20;
    /// Descriptor type: advanced context.
    pub const DTYP_CTXT: u32 = 0x2 << 20;
    /// End of packet.
    pub const EOP: u32 = 1 << 24;
    /// Insert FCS.
    pub const IFCS: u32 = 1 << 25;
    /// Report status: write DD back when done.
    pub const RS: u32 = 1 << 27;
    /// Descriptor extension: advanced format.
    pub const DEXT: u32 = 1 << 29;
    /// VLAN insertion.
    pub const VLE: u32 = 1 << 30;
    /// TCP segmentation.
    pub const TSE: u32 = 1 << 31;
}

/// TX `olinfo_status` bits.
pub mod tx_olinfo {
    /// Descriptor done (write-back).
    pub const DD: u32 = 1 << 0;
    /// Context index shift (6:4).
    pub const IDX_SHIFT: u32 = 4;
    /// Check context: use the context at IDX.
    pub const CC: u32 = 1 << 7;
    /// Insert the IPv4 header checksum.
    pub const IXSM: u32 = 1 << 8;
    /// Insert the TCP/UDP checksum.
    pub const TXSM: u32 = 1 << 9;
    /// Payload length shift (31:14).
    pub const PAYLEN_SHIFT: u32 = 14;
}

/// TX context descriptor `type_tucmd_mlhl` bits.
pub mod tx_ctx {
    /// IPv4 packet.
    pub const TUCMD_IPV4: u32 = 1 << 10;
    /// L4 type TCP (L4T = 01).
    pub const TUCMD_L4T_TCP: u32 = 1 << 11;
    /// L4 type mask (12:11).
    pub const TUCMD_L4T_MASK: u32 = 0x3 << 11;
    /// MACLEN shift in `vlan_macip_lens`.
    pub const MACLEN_SHIFT: u32 = 9;
    /// IPLEN mask in `vlan_macip_lens`.
    pub const IPLEN_MASK: u32 = 0x1FF;
}

impl AdvTxRead {
    /// A single-descriptor data packet of `len` bytes at `addr`, with FCS
    /// insertion and status report: the command ixy uses.
    pub fn data(addr: u64, len: u16) -> AdvTxRead {
        AdvTxRead {
            buffer_addr: addr,
            cmd_type_len: tx_cmd::EOP | tx_cmd::RS | tx_cmd::IFCS | tx_cmd::DEXT | tx_cmd::DTYP_DATA | u32::from(len),
            olinfo_status: u32::from(len) << tx_olinfo::PAYLEN_SHIFT,
        }
    }

    /// Little-endian bytes as they sit in the ring.
    pub fn to_bytes(&self) -> [u8; DESC_SIZE] {
        let mut b = [0u8; DESC_SIZE];
        b[0..8].copy_from_slice(&self.buffer_addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.cmd_type_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.olinfo_status.to_le_bytes());
        b
    }
}

impl AdvRxWriteback {
    /// Decodes a write-back descriptor from its 16 ring bytes.
    pub fn from_bytes(b: &[u8; DESC_SIZE]) -> AdvRxWriteback {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        AdvRxWriteback {
            pkt_info: u16_at(0),
            hdr_info: u16_at(2),
            rss: u32_at(4),
            status_error: u32_at(8),
            length: u16_at(12),
            vlan: u16_at(14),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ixy_data_command_matches_the_reference_constant() {
        let d = AdvTxRead::data(0x1000, 60);
        assert_eq!(d.cmd_type_len, 0x2B30_0000 | 60);
        assert_eq!(d.olinfo_status, 60 << 14);
        assert_eq!(&d.to_bytes()[0..8], &0x1000u64.to_le_bytes());
    }

    #[test]
    fn writeback_decodes_fields() {
        let mut b = [0u8; 16];
        b[0] = 0x11; // TCP/IPv4 RSS type, IPv4 packet type bit
        b[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        b[8] = 0x3;
        b[12..14].copy_from_slice(&1514u16.to_le_bytes());
        let wb = AdvRxWriteback::from_bytes(&b);
        assert_eq!(wb.pkt_info & 0xF, rss_type::TCP_IPV4);
        assert_eq!(wb.rss, 0xdead_beef);
        assert_eq!(wb.status_error, rx_status::DD | rx_status::EOP);
        assert_eq!(wb.length, 1514);
    }
}
