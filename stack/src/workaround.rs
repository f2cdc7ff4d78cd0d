//! The TCP rewrites and checks that work around smoltcp 0.14, in one place.
//!
//! Each one acts on a segment at the seam between the wire and smoltcp,
//! through the headers the core read once ([`TcpHeader`]), and keeps the
//! TCP checksum valid (`ether::tcp_add`, RFC 1624):
//!
//! - [`SeqMap`]: smoltcp picks its own initial sequence number and has no
//!   way to create an established socket. The stack's ISNs (RFC 6528, or a
//!   SYN cookie) are shown on the wire by adding a fixed offset to every
//!   sequence number sent ([`SeqMap::outgoing`]) and subtracting it from
//!   every acknowledgement received ([`SeqMap::incoming`]); a connection
//!   made from a SYN cookie swallows smoltcp's SYN-ACK, which the peer
//!   already had from the cookie.
//! - [`fix_stale_ack`]: pure ACKs whose sequence number smoltcp rewound
//!   after a retransmission timeout are moved up so the peer's smoltcp
//!   does not drop their acknowledgement.
//! - [`rst_out_of_place`], [`syn_on_synchronized`]: RFC 5961's stricter
//!   acceptance of RST and SYN on a synchronized connection, which smoltcp
//!   does not implement (the core drops such segments and sends the
//!   challenge ACK).

use smoltcp::socket::tcp::State;

use crate::ether::{TcpField, TcpHeader, tcp_add, tcp_flags};

/// A connection's sequence-number mapping: the ISN it must show on the
/// wire and, once its first SYN has left, `wire - smoltcp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeqMap {
    /// The ISN the wire must see (RFC 6528, or a SYN cookie).
    pub isn: u32,
    /// `wire - smoltcp`, fixed when the first SYN is sent.
    pub off: Option<u32>,
    /// Fix the offset from the next SYN but do not send it (the SYN-ACK of
    /// a connection made from a SYN cookie: the peer already has ours).
    pub swallow_syn: bool,
    /// Added to the core's millisecond clock to make this connection's
    /// TCP timestamps (`tcp_timestamps`; see `HostSecret::ts_offset`).
    pub ts_offset: u32,
}

impl SeqMap {
    /// A segment smoltcp sent (`ip`, its headers `h`): the first SYN fixes
    /// the offset; every segment's sequence number is moved to the wire's
    /// space. Returns true if the segment must not be sent (the swallowed
    /// SYN-ACK of a cookie connection).
    pub fn outgoing(&mut self, ip: &mut [u8], h: &mut TcpHeader) -> bool {
        let mut swallow = false;
        if self.off.is_none() && h.has(tcp_flags::SYN) {
            self.off = Some(self.isn.wrapping_sub(h.seq));
            swallow = std::mem::take(&mut self.swallow_syn);
        }
        if let Some(off) = self.off {
            tcp_add(ip, h, TcpField::Seq, off);
        }
        swallow
    }

    /// A segment for smoltcp: its acknowledgement, if any, moved back from
    /// the wire's sequence space to smoltcp's.
    pub fn incoming(&self, ip: &mut [u8], h: &mut TcpHeader) {
        if let Some(off) = self.off
            && h.has(tcp_flags::ACK)
        {
            tcp_add(ip, h, TcpField::Ack, off.wrapping_neg());
        }
    }
}

/// Works around a smoltcp 0.14 stall (seen with loss in both directions).
///
/// After a retransmission timeout smoltcp rewinds its send sequence to
/// SND.UNA, and the pure ACKs it then sends carry that old sequence
/// number. The peer's smoltcp finds a zero-length segment below RCV.NXT
/// "not acceptable" (RFC 9293 3.10.7.4) and drops it *with its ACK field*.
/// When both ends time out at once, each one's ACKs are dropped by the
/// other, and both retransmit forever. Linux never sends such a segment
/// (its ACKs carry SND.NXT), so this only bites smoltcp against smoltcp.
///
/// The fix, applied before smoltcp sees a segment of a known connection: a
/// segment without payload, SYN, FIN or RST whose sequence number lies more
/// than one below the acknowledgement we last sent (`our_ack`: our RCV.NXT
/// as the peer knows it) gets that acknowledgement as its sequence number
/// (its checksum, verified on arrival by `crate::csum`, adjusted
/// incrementally). Its ACK then counts. Keep-alives (exactly one below)
/// are left alone so they are still answered.
///
/// Only segments at most [`STALE_ACK_WINDOW`] behind are mended: a rewind
/// never goes back further than the data in flight, which a receive window
/// bounds, and a blind attacker must still guess a sequence number that
/// close to be heard (the same odds as guessing one inside the window).
/// Returns true if the segment was rewritten.
pub(crate) fn fix_stale_ack(ip: &mut [u8], h: &mut TcpHeader, our_ack: u32) -> bool {
    if h.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0 || !h.has(tcp_flags::ACK) || h.payload_len != 0
    {
        return false;
    }
    let behind = our_ack.wrapping_sub(h.seq) as i32;
    if behind <= 1 || behind > STALE_ACK_WINDOW {
        return false;
    }
    tcp_add(ip, h, TcpField::Seq, our_ack.wrapping_sub(h.seq));
    true
}

/// How far behind our last acknowledgement a pure ACK may be and still be
/// mended by [`fix_stale_ack`]: the largest window smoltcp advertises with
/// the default scale (1 MiB).
pub(crate) const STALE_ACK_WINDOW: i32 = 1 << 20;

/// RFC 5961 3.2 for a synchronized connection: an RST resets it only when
/// its sequence number is exactly RCV.NXT (here: the acknowledgement we
/// last sent, `our_ack`). smoltcp accepts an RST anywhere in the receive
/// window, which gives a blind attacker odds of window/2^32 per guess
/// instead of 1/2^32. Such an RST is dropped; inside the window it draws
/// the challenge ACK the RFC asks for (`StackCore::challenge_ack`), which
/// a peer that really reset answers with an RST at exactly our
/// acknowledgement, which is accepted.
pub(crate) fn rst_out_of_place(h: &TcpHeader, our_ack: u32, state: State) -> bool {
    if !h.has(tcp_flags::RST) || matches!(state, State::Listen | State::SynSent | State::SynReceived) {
        return false;
    }
    h.seq != our_ack
}

/// RFC 5961 4.2: any SYN on a synchronized connection, in the window or
/// not, draws a challenge ACK and is dropped (smoltcp would answer a SYN in
/// the window with an RST of its own, or take it as a retransmission).
pub(crate) fn syn_on_synchronized(h: &TcpHeader, state: State) -> bool {
    let synchronized = !matches!(state, State::Listen | State::SynSent | State::SynReceived | State::Closed);
    synchronized && h.has(tcp_flags::SYN)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ixtcp_testkit::frames::{TcpSeg, tcp_ip};
    use smoltcp::wire::{IpAddress, TcpPacket};

    use super::*;

    const ACK: u8 = tcp_flags::ACK;
    const SYN: u8 = tcp_flags::SYN;
    const FIN: u8 = tcp_flags::FIN;
    const RST: u8 = tcp_flags::RST;
    const PSH: u8 = 0x08;
    const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// A crafted segment: its bytes (IPv4 first, checksums valid) and the
    /// headers read from them, as the core has them.
    #[derive(Debug, Clone)]
    struct Seg {
        ip: Vec<u8>,
        h: TcpHeader,
    }

    fn build(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Seg {
        let ip =
            tcp_ip(&TcpSeg { src: REMOTE, dst: LOCAL, sport: 5555, dport: 80, seq, ack, flags, window: 1000, payload });
        let h = TcpHeader::parse(&ip).unwrap();
        Seg { ip, h }
    }

    /// `seg!(FLAGS, seq S, ack A)`, optionally `, len N` bytes of payload.
    macro_rules! seg {
        ($flags:expr, seq $seq:expr, ack $ack:expr) => {
            build($flags, $seq, $ack, &[])
        };
        ($flags:expr, seq $seq:expr, ack $ack:expr, len $len:expr) => {
            build($flags, $seq, $ack, &[0x5a; $len])
        };
    }

    /// `rewrite!(f, seg!(..) => seg!(..))`: `f(&mut ip, &mut h)` turns the
    /// first segment into exactly the second (bytes, checksum, and the
    /// header the core carries along); `=> same` leaves it untouched.
    /// Evaluates to what `f` returned.
    macro_rules! rewrite {
        ($f:expr, $seg:expr => same) => {{
            let mut s = $seg;
            let before = s.clone();
            let r = $f(&mut s.ip, &mut s.h);
            assert_eq!((s.ip, s.h), (before.ip, before.h), "segment left alone");
            r
        }};
        ($f:expr, $seg:expr => $want:expr) => {{
            let (mut s, want) = ($seg, $want);
            let r = $f(&mut s.ip, &mut s.h);
            let t = TcpPacket::new_checked(&s.ip[20..]).unwrap();
            assert!(t.verify_checksum(&IpAddress::Ipv4(REMOTE), &IpAddress::Ipv4(LOCAL)), "checksum kept valid");
            assert_eq!(s.h, want.h, "header read once follows the rewrite");
            assert_eq!(s.ip, want.ip, "rewritten segment");
            r
        }};
    }

    #[test]
    fn stale_pure_ack_gets_our_acknowledgement_as_its_sequence() {
        let fix = |ip: &mut Vec<u8>, h: &mut TcpHeader| fix_stale_ack(ip, h, 1000);
        assert!(rewrite!(fix, seg!(ACK, seq 900, ack 77) => seg!(ACK, seq 1000, ack 77)));
        // Exactly STALE_ACK_WINDOW behind is still mended; across the wrap.
        let far = 1000u32.wrapping_sub(STALE_ACK_WINDOW as u32);
        assert!(rewrite!(fix, seg!(ACK, seq far, ack 77) => seg!(ACK, seq 1000, ack 77)));
        let wrap = |ip: &mut Vec<u8>, h: &mut TcpHeader| fix_stale_ack(ip, h, 5);
        assert!(rewrite!(wrap, seg!(ACK, seq u32::MAX - 10, ack 1) => seg!(ACK, seq 5, ack 1)));
    }

    #[test]
    fn stale_ack_fix_leaves_everything_else_alone() {
        let fix = |ip: &mut Vec<u8>, h: &mut TcpHeader| fix_stale_ack(ip, h, 1000);
        // In order, or ahead (a later segment after loss).
        assert!(!rewrite!(fix, seg!(ACK, seq 1000, ack 77) => same));
        assert!(!rewrite!(fix, seg!(ACK, seq 1500, ack 77) => same));
        // A keep-alive probe (one below) must still draw its answer.
        assert!(!rewrite!(fix, seg!(ACK, seq 999, ack 77) => same));
        // Too far behind: a blind guess, not a rewind.
        let beyond = 1000u32.wrapping_sub(STALE_ACK_WINDOW as u32 + 1);
        assert!(!rewrite!(fix, seg!(ACK, seq beyond, ack 77) => same));
        // Data, FIN, RST, SYN, or no ACK at all: smoltcp judges those.
        assert!(!rewrite!(fix, seg!(ACK | PSH, seq 900, ack 77, len 10) => same));
        assert!(!rewrite!(fix, seg!(ACK | FIN, seq 900, ack 77) => same));
        assert!(!rewrite!(fix, seg!(ACK | RST, seq 900, ack 77) => same));
        assert!(!rewrite!(fix, seg!(ACK | SYN, seq 900, ack 77) => same));
        assert!(!rewrite!(fix, seg!(0, seq 900, ack 0) => same));
    }

    #[test]
    fn rst_counts_only_at_exactly_our_acknowledgement_once_synchronized() {
        for st in [State::Established, State::FinWait1, State::FinWait2, State::CloseWait, State::LastAck] {
            assert!(!rst_out_of_place(&seg!(RST, seq 1000, ack 0).h, 1000, st), "{st}");
            assert!(!rst_out_of_place(&seg!(RST | ACK, seq 1000, ack 5).h, 1000, st), "{st}");
            assert!(rst_out_of_place(&seg!(RST, seq 1001, ack 0).h, 1000, st), "{st}: in the window");
            assert!(rst_out_of_place(&seg!(RST, seq 999, ack 0).h, 1000, st), "{st}: below");
            // Not an RST: not this check's business.
            assert!(!rst_out_of_place(&seg!(ACK, seq 1001, ack 5).h, 1000, st), "{st}");
        }
        // Before synchronization smoltcp's own rules apply.
        for st in [State::Listen, State::SynSent, State::SynReceived] {
            assert!(!rst_out_of_place(&seg!(RST, seq 1001, ack 0).h, 1000, st), "{st}");
        }
    }

    #[test]
    fn syn_is_refused_only_on_a_synchronized_connection() {
        for st in [State::Established, State::CloseWait, State::TimeWait, State::FinWait2] {
            assert!(syn_on_synchronized(&seg!(SYN, seq 1, ack 0).h, st), "{st}");
            assert!(syn_on_synchronized(&seg!(SYN | ACK, seq 1, ack 9).h, st), "{st}");
            assert!(!syn_on_synchronized(&seg!(ACK, seq 1, ack 9).h, st), "{st}");
        }
        for st in [State::Listen, State::SynSent, State::SynReceived, State::Closed] {
            assert!(!syn_on_synchronized(&seg!(SYN, seq 1, ack 0).h, st), "{st}");
        }
    }

    #[test]
    fn seq_map_fixes_its_offset_at_the_first_syn_and_maps_both_ways() {
        let mut m = SeqMap { isn: 50_000, ..SeqMap::default() };
        // smoltcp's SYN-ACK with its own ISN 100 goes out with ours.
        let mut out = |ip: &mut Vec<u8>, h: &mut TcpHeader| m.outgoing(ip, h);
        assert!(!rewrite!(out, seg!(SYN | ACK, seq 100, ack 7) => seg!(SYN | ACK, seq 50_000, ack 7)));
        // Later segments keep the offset, whatever their flags.
        assert!(!rewrite!(out, seg!(ACK | PSH, seq 101, ack 7, len 4) => seg!(ACK | PSH, seq 50_001, ack 7, len 4)));
        assert!(!rewrite!(out, seg!(ACK | SYN, seq 100, ack 7) => seg!(ACK | SYN, seq 50_000, ack 7)));
        assert_eq!(m.off, Some(50_000 - 100));
        // The peer's acknowledgements go back to smoltcp's space; a
        // segment without ACK carries none to map.
        let inc = |ip: &mut Vec<u8>, h: &mut TcpHeader| m.incoming(ip, h);
        rewrite!(inc, seg!(ACK, seq 7, ack 50_005) => seg!(ACK, seq 7, ack 105));
        rewrite!(inc, seg!(RST, seq 7, ack 50_005) => same);
    }

    #[test]
    fn seq_map_leaves_segments_alone_until_a_syn_and_swallows_a_cookie_syn_ack() {
        let mut m = SeqMap { isn: 9, ..SeqMap::default() };
        let inc = |ip: &mut Vec<u8>, h: &mut TcpHeader| m.incoming(ip, h);
        rewrite!(inc, seg!(ACK, seq 7, ack 50) => same);
        let mut out = |ip: &mut Vec<u8>, h: &mut TcpHeader| m.outgoing(ip, h);
        assert!(!rewrite!(out, seg!(RST | ACK, seq 3, ack 50) => same));
        assert_eq!(m.off, None);
        // A cookie connection: smoltcp's SYN-ACK is mapped and swallowed,
        // only that one.
        let mut m = SeqMap { isn: 1 << 31, swallow_syn: true, ..SeqMap::default() };
        let mut out = |ip: &mut Vec<u8>, h: &mut TcpHeader| m.outgoing(ip, h);
        assert!(rewrite!(out, seg!(SYN | ACK, seq 5, ack 7) => seg!(SYN | ACK, seq 1 << 31, ack 7)));
        assert!(!rewrite!(out, seg!(ACK, seq 6, ack 7) => seg!(ACK, seq (1 << 31) + 1, ack 7)));
        assert!(!m.swallow_syn);
    }
}
