//! Transmit checksum offload (82599 datasheet 7.2.4 with the context of
//! 7.2.3.2.3 and the POPTS of 7.2.3.2.4), as the silicon applies it to a
//! gathered packet, and the rules a driver must keep for the result to be
//! right.
//!
//! The device takes the header lengths from the context (MACLEN, IPLEN),
//! not from the frame: a context that does not describe the frame makes
//! real hardware write a checksum into the wrong bytes, silently. The model
//! checks what the hardware trusts and faults instead, and it faults on
//! what software must prepare (a zero IPv4 checksum field, the
//! pseudo-header sum in the transport checksum field) whichever way the
//! silicon would treat it, so that a driver passing here is right on the
//! device.

use super::fault::ModelFault;
use super::packet::{ETH_HLEN, PROTO_TCP, PROTO_UDP, add_ne, fold_ne, pseudo_ne};
use super::state::TxContext;
use crate::desc::{tx_ctx, tx_olinfo};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
/// L4T = 10b: SCTP.
const L4T_SCTP: u32 = 2 << 11;

/// Why an offload could not be applied.
pub(crate) enum OffloadError {
    /// The driver broke a rule.
    Bad(&'static str),
    /// The model does not implement it.
    Unsupported(&'static str),
}

impl OffloadError {
    /// The fault reported for the packet whose first data descriptor is at
    /// ring index `index` of `queue`.
    pub(crate) fn fault(self, queue: u16, index: u32) -> ModelFault {
        match self {
            OffloadError::Bad(reason) => ModelFault::BadTxDescriptor { queue, index, reason },
            OffloadError::Unsupported(what) => ModelFault::Unsupported { queue, rx: false, what },
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Applies the offloads the first data descriptor's `olinfo_status` asks
/// for (POPTS.IXSM, POPTS.TXSM) with the context at its IDX, in place.
/// Nothing to do without POPTS.
pub(crate) fn apply(frame: &mut [u8], contexts: &[Option<TxContext>; 2], olinfo: u32) -> Result<(), OffloadError> {
    let popts = olinfo & (tx_olinfo::IXSM | tx_olinfo::TXSM);
    if popts == 0 {
        return Ok(());
    }
    let idx = ((olinfo >> tx_olinfo::IDX_SHIFT) & 0x7) as usize;
    let Some(ctx) = contexts.get(idx).copied().flatten() else {
        return Err(OffloadError::Bad("checksum offload (IXSM/TXSM) without a context descriptor in slot IDX"));
    };
    let maclen = ((ctx.vlan_macip_lens >> tx_ctx::MACLEN_SHIFT) & 0x7F) as usize;
    let iplen = (ctx.vlan_macip_lens & tx_ctx::IPLEN_MASK) as usize;
    let tucmd = ctx.type_tucmd_mlhl;
    let (ixsm, txsm) = (popts & tx_olinfo::IXSM != 0, popts & tx_olinfo::TXSM != 0);
    if tucmd & tx_ctx::TUCMD_IPV4 == 0 {
        if ixsm {
            return Err(OffloadError::Bad("IXSM with a context for IPv6 (TUCMD.IPV4 clear)"));
        }
        return Err(OffloadError::Unsupported("IPv6 transport checksum offload (TUCMD.IPV4 clear)"));
    }
    // The Ethernet header: 14 bytes, 18 with one 802.1Q tag.
    let l2 = match be16(frame, 12) {
        Some(ETHERTYPE_VLAN) => ETH_HLEN + 4,
        Some(_) => ETH_HLEN,
        None => return Err(OffloadError::Bad("checksum offload on a frame shorter than an Ethernet header")),
    };
    if maclen != l2 {
        return Err(OffloadError::Bad(
            "MACLEN in the context does not match the frame's Ethernet header (14 bytes, 18 with a VLAN tag)",
        ));
    }
    let vihl = frame.get(maclen).copied();
    if be16(frame, l2 - 2) != Some(ETHERTYPE_IPV4) || vihl.map(|v| v >> 4) != Some(4) {
        return Err(OffloadError::Bad("TUCMD.IPV4 set in the context but the frame does not carry IPv4"));
    }
    let ihl = usize::from(vihl.unwrap_or(0) & 0xF) * 4;
    if iplen != ihl {
        return Err(OffloadError::Bad("IPLEN in the context does not match the frame's IPv4 header length (IHL)"));
    }
    if maclen + iplen > frame.len() {
        return Err(OffloadError::Bad("IPv4 header (MACLEN, IPLEN) outside the packet"));
    }
    if ixsm {
        let at = maclen + 10;
        if frame[at..at + 2] != [0, 0] {
            return Err(OffloadError::Bad("IXSM with a non-zero IPv4 header checksum field (software must clear it)"));
        }
        // Summed and stored in memory order (see `add_ne`).
        let sum = !fold_ne(add_ne(&frame[maclen..maclen + iplen], 0));
        frame[at..at + 2].copy_from_slice(&sum.to_ne_bytes());
    }
    if txsm {
        transport(frame, maclen, iplen, tucmd)?;
    }
    Ok(())
}

/// TXSM: the TCP or UDP checksum over the transport header and payload.
fn transport(frame: &mut [u8], maclen: usize, iplen: usize, tucmd: u32) -> Result<(), OffloadError> {
    let ip = maclen;
    let proto = frame[ip + 9];
    let (want_proto, udp) = match tucmd & tx_ctx::TUCMD_L4T_MASK {
        0 => (PROTO_UDP, true),
        tx_ctx::TUCMD_L4T_TCP => (PROTO_TCP, false),
        L4T_SCTP => return Err(OffloadError::Unsupported("SCTP CRC offload (L4T = SCTP)")),
        _ => return Err(OffloadError::Bad("reserved L4T value in the context")),
    };
    if proto != want_proto {
        return Err(OffloadError::Bad("L4T in the context does not match the IPv4 protocol field"));
    }
    if be16(frame, ip + 6).unwrap_or(0) & 0x3FFF != 0 {
        return Err(OffloadError::Bad("TXSM on an IPv4 fragment (the checksum covers the whole datagram)"));
    }
    let total = usize::from(be16(frame, ip + 2).unwrap_or(0));
    let l4 = ip + iplen;
    let csum_at = l4 + if udp { 6 } else { 16 };
    let l4_min = if udp { 8 } else { 20 };
    if total < iplen + l4_min || ip + total > frame.len() {
        return Err(OffloadError::Bad("L4 header (MACLEN, IPLEN, IPv4 total length) outside the packet"));
    }
    if ip + total != frame.len() {
        // The device sums to the end of the packet (PAYLEN), so trailing
        // bytes would be summed into the checksum.
        return Err(OffloadError::Bad("TXSM on a packet with bytes after the IPv4 total length"));
    }
    let l4_len = total - iplen;
    // Summed, compared and stored in memory order (see `add_ne`): equality
    // and the two zeros of one's complement do not depend on it.
    let pseudo = pseudo_ne(frame, ip, proto, l4_len);
    let seed = u16::from_ne_bytes([frame[csum_at], frame[csum_at + 1]]);
    // One's complement: 0x0000 and 0xFFFF are the same number.
    let norm = |v: u16| if v == 0xFFFF { 0 } else { v };
    if norm(seed) != norm(fold_ne(pseudo)) {
        return Err(OffloadError::Bad(
            "TXSM without the pseudo-header sum in the TCP/UDP checksum field (software must seed it)",
        ));
    }
    let mut sum = !fold_ne(add_ne(&frame[l4..], 0));
    if udp && sum == 0 {
        // UDP sends a computed zero as all ones (RFC 768).
        sum = 0xFFFF;
    }
    frame[csum_at..csum_at + 2].copy_from_slice(&sum.to_ne_bytes());
    Ok(())
}
