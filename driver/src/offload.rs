//! Checksum offload as the 82599 does it: what a frame asks the transmit
//! path to insert (datasheet 7.2.4, 7.2.3.2.3-4) and what the receive path
//! found (7.1.11, write-back status 7.1.6.2).
//!
//! Both travel with the frame in its [`PacketBuf`](crate::mempool::PacketBuf):
//! software sets a [`TxOffload`] before `tx_batch`, and `rx_batch` records
//! the descriptor's verdict as an [`RxChecksum`]. The descriptor encoding
//! (context descriptors and their per-queue cache, POPTS bits) lives here
//! too, so `queue.rs` only calls it.

use std::fmt;

use crate::desc::{rx_status, tx_cmd, tx_ctx, tx_olinfo};

/// The largest MACLEN a context descriptor holds (7 bits).
pub const MAX_MACLEN: usize = 0x7F;
/// The largest IPLEN a context descriptor holds (9 bits).
pub const MAX_IPLEN: usize = 0x1FF;

/// The transport protocol whose checksum the device inserts (TUCMD.L4T).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// TCP: checksum at offset 16 of the TCP header.
    Tcp,
    /// UDP: checksum at offset 6 of the UDP header.
    Udp,
}

impl L4Proto {
    /// Offset of the checksum field inside the transport header.
    pub const fn checksum_offset(self) -> usize {
        match self {
            L4Proto::Tcp => 16,
            L4Proto::Udp => 6,
        }
    }

    /// Shortest transport header.
    pub const fn min_header(self) -> usize {
        match self {
            L4Proto::Tcp => 20,
            L4Proto::Udp => 8,
        }
    }
}

/// Why a [`TxOffload`] cannot be expressed in a context descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffloadError {
    /// MACLEN does not fit its 7 bits, or is shorter than an Ethernet header.
    MacLen(usize),
    /// IPLEN does not fit its 9 bits, or is shorter than an IPv4 header.
    IpLen(usize),
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::MacLen(n) => {
                write!(f, "MAC header length {n} is outside 14..={MAX_MACLEN} (the context descriptor's MACLEN field)")
            }
            OffloadError::IpLen(n) => {
                write!(f, "IPv4 header length {n} is outside 20..={MAX_IPLEN} (the context descriptor's IPLEN field)")
            }
        }
    }
}

impl std::error::Error for OffloadError {}

/// A checksum offload request for one IPv4 frame: insert the IPv4 header
/// checksum (POPTS.IXSM) and, with `l4`, the TCP or UDP checksum
/// (POPTS.TXSM). `Copy`, four bytes; [`TxOffload::NONE`] asks for nothing.
///
/// What software must leave in the frame (the model faults otherwise): the
/// IPv4 checksum field zero, and the transport checksum field holding the
/// pseudo-header sum (addresses, protocol, transport length; folded, not
/// complemented), as Linux's `CHECKSUM_PARTIAL` hands it to ixgbe. The
/// device then sums from the transport header to the end of the packet and
/// stores the complement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxOffload {
    maclen: u8,
    /// 0: none, 1: TCP, 2: UDP.
    l4: u8,
    /// 0 when no offload is asked for.
    iplen: u16,
}

impl TxOffload {
    /// No offload: the frame goes out as it is.
    pub const NONE: TxOffload = TxOffload { maclen: 0, l4: 0, iplen: 0 };

    /// IPv4 header checksum insertion, plus the `l4` checksum if given,
    /// for a frame whose IPv4 header starts at `maclen` and is `iplen`
    /// bytes long.
    pub fn ipv4(maclen: usize, iplen: usize, l4: Option<L4Proto>) -> Result<TxOffload, OffloadError> {
        if !(14..=MAX_MACLEN).contains(&maclen) {
            return Err(OffloadError::MacLen(maclen));
        }
        if !(20..=MAX_IPLEN).contains(&iplen) {
            return Err(OffloadError::IpLen(iplen));
        }
        let l4 = match l4 {
            None => 0,
            Some(L4Proto::Tcp) => 1,
            Some(L4Proto::Udp) => 2,
        };
        Ok(TxOffload { maclen: maclen as u8, l4, iplen: iplen as u16 })
    }

    /// True when nothing is asked for.
    pub fn is_none(self) -> bool {
        self.iplen == 0
    }

    /// MAC header length (bytes before the IPv4 header).
    pub fn maclen(self) -> usize {
        usize::from(self.maclen)
    }

    /// IPv4 header length.
    pub fn iplen(self) -> usize {
        usize::from(self.iplen)
    }

    /// The transport checksum asked for, if any.
    pub fn l4(self) -> Option<L4Proto> {
        match self.l4 {
            1 => Some(L4Proto::Tcp),
            2 => Some(L4Proto::Udp),
            _ => None,
        }
    }

    /// The request packed into a word (for the mempool's per-entry table).
    #[inline(always)]
    pub(crate) fn to_bits(self) -> u32 {
        u32::from(self.maclen) | u32::from(self.l4) << 8 | u32::from(self.iplen) << 16
    }

    /// The inverse of [`to_bits`](Self::to_bits).
    #[inline(always)]
    pub(crate) fn from_bits(bits: u32) -> TxOffload {
        TxOffload { maclen: bits as u8, l4: (bits >> 8) as u8, iplen: (bits >> 16) as u16 }
    }

    /// The shortest frame this request can describe: both headers.
    pub fn min_frame(self) -> usize {
        self.maclen() + self.iplen() + self.l4().map_or(0, L4Proto::min_header)
    }

    /// Context descriptor words (7.2.3.2.3) for context slot `idx`:
    /// `(vlan_macip_lens | seqnum_seed << 32, type_tucmd_mlhl, mss_l4len_idx)`.
    pub(crate) fn context_words(self, idx: u32) -> (u64, u32, u32) {
        let macip = (self.maclen() as u32) << tx_ctx::MACLEN_SHIFT | self.iplen() as u32;
        // TUCMD.IPV4: the L3 header is IPv4. L4T = 00 is UDP, 01 TCP; with
        // no transport offload (TXSM clear) L4T is not looked at.
        let l4t = if self.l4() == Some(L4Proto::Tcp) { tx_ctx::TUCMD_L4T_TCP } else { 0 };
        let tucmd = tx_cmd::DEXT | tx_cmd::DTYP_CTXT | tx_ctx::TUCMD_IPV4 | l4t;
        (u64::from(macip), tucmd, idx << tx_olinfo::IDX_SHIFT)
    }

    /// The POPTS, CC and IDX bits of a data descriptor's `olinfo_status`
    /// (7.2.3.2.4) that use context slot `idx`.
    pub(crate) fn olinfo_bits(self, idx: u32) -> u32 {
        let txsm = if self.l4().is_some() { tx_olinfo::TXSM } else { 0 };
        tx_olinfo::IXSM | txsm | tx_olinfo::CC | idx << tx_olinfo::IDX_SHIFT
    }
}

/// The driver's copy of a queue's two context slots (7.2.3.2.3: the 82599
/// keeps two per queue), so that a context descriptor is written only when
/// a frame asks for parameters neither slot holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ContextCache {
    /// Each slot's request as [`TxOffload::to_bits`], 0 for an empty slot
    /// (no request that needs a context packs to 0: its IPLEN is at least
    /// 20), so that a lookup is two word compares.
    slots: [u32; 2],
    /// The slot replaced next.
    victim: u8,
}

impl ContextCache {
    /// The slot for `off`, and whether a context descriptor must be written
    /// into it first (the slot is then taken for `off`).
    #[inline(always)]
    pub(crate) fn select(&mut self, off: TxOffload) -> (u32, bool) {
        let bits = off.to_bits();
        debug_assert!(bits != 0, "a request without offload takes no context slot");
        if self.slots[0] == bits {
            return (0, false);
        }
        if self.slots[1] == bits {
            return (1, false);
        }
        let i = self.victim;
        self.slots[usize::from(i)] = bits;
        self.victim = i ^ 1;
        (u32::from(i), true)
    }

    /// Forgets both slots (the device loses them when the queue is
    /// disabled or reset).
    pub(crate) fn clear(&mut self) {
        *self = ContextCache::default();
    }
}

/// What the device found checking one header's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsumStatus {
    /// Not checked (not IPv4, not TCP/UDP, a fragment, or a buffer that did
    /// not come from a NIC): software must verify it.
    #[default]
    Unchecked,
    /// Checked and correct.
    Good,
    /// Checked and wrong.
    Bad,
}

/// The receive checksum verdict of a frame, from its write-back descriptor
/// (7.1.6.2: IPCS/IPE for the IPv4 header, L4CS/TCPE for TCP and UDP).
/// One byte: the four status bits as `rx_batch` found them (bit 0 L4CS,
/// 1 IPCS, 2 TCPE, 3 IPE), decoded when asked, so that copying it costs
/// the receive path a shift and a mask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct RxChecksum(u8);

const L4_CHECKED: u8 = 1;
const IP_CHECKED: u8 = 2;
const L4_ERROR: u8 = 4;
const IP_ERROR: u8 = 8;

fn verdict(bits: u8, checked: u8, error: u8) -> CsumStatus {
    match (bits & checked != 0, bits & error != 0) {
        (false, _) => CsumStatus::Unchecked,
        (true, false) => CsumStatus::Good,
        (true, true) => CsumStatus::Bad,
    }
}

fn encode(s: CsumStatus, checked: u8, error: u8) -> u8 {
    match s {
        CsumStatus::Unchecked => 0,
        CsumStatus::Good => checked,
        CsumStatus::Bad => checked | error,
    }
}

impl RxChecksum {
    /// Nothing checked (the default).
    pub const UNCHECKED: RxChecksum = RxChecksum(0);

    /// A verdict on the IPv4 header and on the TCP/UDP checksum.
    pub fn new(ip: CsumStatus, l4: CsumStatus) -> RxChecksum {
        RxChecksum(encode(ip, IP_CHECKED, IP_ERROR) | encode(l4, L4_CHECKED, L4_ERROR))
    }

    /// Decodes the status/error word of a write-back descriptor.
    #[inline]
    pub fn from_status(status: u32) -> RxChecksum {
        // L4CS (bit 5) and IPCS (6) to bits 0 and 1, TCPE (30) and IPE (31)
        // to bits 2 and 3.
        const _: () = assert!(rx_status::L4CS == 1 << 5 && rx_status::IPCS == 1 << 6);
        const _: () = assert!(rx_status::ERR_TCPE == 1 << 30 && rx_status::ERR_IPE == 1 << 31);
        RxChecksum((((status >> 5) & 0x3) | ((status >> 28) & 0xC)) as u8)
    }

    /// The four raw bits (for the mempool's handle, which keeps them).
    #[inline(always)]
    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// The inverse of [`bits`](Self::bits); bits above the fourth are ignored.
    #[inline(always)]
    pub(crate) fn from_bits(bits: u8) -> RxChecksum {
        RxChecksum(bits & 0xF)
    }

    /// The IPv4 header checksum.
    pub fn ip(self) -> CsumStatus {
        verdict(self.0, IP_CHECKED, IP_ERROR)
    }

    /// The TCP or UDP checksum.
    pub fn l4(self) -> CsumStatus {
        verdict(self.0, L4_CHECKED, L4_ERROR)
    }
}

impl fmt::Debug for RxChecksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxChecksum").field("ip", &self.ip()).field("l4", &self.l4()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_outside_the_descriptor_fields_are_refused_with_the_range() {
        assert_eq!(TxOffload::ipv4(13, 20, None), Err(OffloadError::MacLen(13)));
        assert_eq!(TxOffload::ipv4(128, 20, None), Err(OffloadError::MacLen(128)));
        assert_eq!(TxOffload::ipv4(14, 19, None), Err(OffloadError::IpLen(19)));
        assert_eq!(TxOffload::ipv4(14, 512, None), Err(OffloadError::IpLen(512)));
        assert!(OffloadError::IpLen(512).to_string().contains("20..=511"));
        let t = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap();
        assert!(!t.is_none() && TxOffload::NONE.is_none() && TxOffload::default().is_none());
        assert_eq!((t.maclen(), t.iplen(), t.l4(), t.min_frame()), (14, 20, Some(L4Proto::Tcp), 54));
        let udp = TxOffload::ipv4(127, 511, Some(L4Proto::Udp)).unwrap();
        for r in [t, udp, TxOffload::ipv4(14, 20, None).unwrap(), TxOffload::NONE] {
            assert_eq!(TxOffload::from_bits(r.to_bits()), r);
        }
    }

    #[test]
    fn descriptor_words_follow_the_datasheet_layout() {
        let t = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap();
        let (macip, tucmd, idx) = t.context_words(1);
        assert_eq!(macip, 14 << 9 | 20);
        assert_eq!(tucmd, tx_cmd::DEXT | tx_cmd::DTYP_CTXT | 1 << 10 | 1 << 11);
        assert_eq!(idx, 1 << 4);
        assert_eq!(t.olinfo_bits(1), 1 << 8 | 1 << 9 | 1 << 7 | 1 << 4);
        let ip_only = TxOffload::ipv4(18, 24, None).unwrap();
        assert_eq!(ip_only.context_words(0).1 & tx_ctx::TUCMD_L4T_MASK, 0);
        assert_eq!(ip_only.olinfo_bits(0) & tx_olinfo::TXSM, 0);
    }

    #[test]
    fn the_cache_writes_a_context_only_for_parameters_it_does_not_hold() {
        let tcp = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)).unwrap();
        let udp = TxOffload::ipv4(14, 20, Some(L4Proto::Udp)).unwrap();
        let opts = TxOffload::ipv4(14, 24, Some(L4Proto::Tcp)).unwrap();
        let mut c = ContextCache::default();
        assert_eq!(c.select(tcp), (0, true));
        assert_eq!(c.select(tcp), (0, false));
        assert_eq!(c.select(udp), (1, true));
        assert_eq!(c.select(tcp), (0, false));
        assert_eq!(c.select(udp), (1, false));
        // A third set of parameters replaces the oldest slot.
        assert_eq!(c.select(opts), (0, true));
        assert_eq!(c.select(tcp), (1, true));
        c.clear();
        assert_eq!(c.select(tcp), (0, true));
    }

    #[test]
    fn status_bits_decode_into_verdicts() {
        use CsumStatus::{Bad, Good, Unchecked};
        let others = rx_status::DD | rx_status::EOP | rx_status::UDPCS | rx_status::ERR_RXE;
        assert_eq!(RxChecksum::from_status(others), RxChecksum::UNCHECKED);
        let good = RxChecksum::from_status(rx_status::IPCS | rx_status::L4CS);
        assert_eq!((good.ip(), good.l4()), (Good, Good));
        let bad = RxChecksum::from_status(rx_status::IPCS | rx_status::L4CS | rx_status::ERR_TCPE);
        assert_eq!((bad.ip(), bad.l4()), (Good, Bad));
        let ipe = RxChecksum::from_status(rx_status::IPCS | rx_status::ERR_IPE);
        assert_eq!((ipe.ip(), ipe.l4()), (Bad, Unchecked));
        // An error bit without its "checked" bit means nothing.
        let stray = RxChecksum::from_status(rx_status::ERR_TCPE | rx_status::ERR_IPE);
        assert_eq!((stray.ip(), stray.l4()), (Unchecked, Unchecked));
        // `new` builds what decoding finds.
        for ip in [Unchecked, Good, Bad] {
            for l4 in [Unchecked, Good, Bad] {
                let c = RxChecksum::new(ip, l4);
                assert_eq!((c.ip(), c.l4()), (ip, l4));
            }
        }
        assert_eq!(RxChecksum::new(Good, Bad), bad);
        assert_eq!(RxChecksum::from_bits(bad.bits() | 0xF0), bad);
        assert_eq!(format!("{bad:?}"), "RxChecksum { ip: Good, l4: Bad }");
    }
}
