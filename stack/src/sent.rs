//! What the core learns from the segments a connection sends: the end of
//! its highest sequence space (SND.MAX), and with it the retransmission
//! count; the acknowledgement and window of the last segment.
//!
//! smoltcp reports none of these, so every segment a connection's socket
//! emits is looked at as it leaves (`Port::send_ip`, through the
//! connection's [`crate::phy::Phy`]), from the headers read once for it. The
//! core uses them for what smoltcp does not do: the stack's keep-alive
//! probes and RFC 5961 challenge ACKs (`<SEQ=SND.MAX><ACK=RCV.NXT>`), the
//! RST and stale-ACK checks of `crate::workaround` (RCV.NXT as the peer
//! last heard it), and the `tcp_retransmits` counter.

use crate::ether::{TcpHeader, tcp_flags};

/// One connection's record of what it sent, in the wire's sequence space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Acknowledgement number of the last segment sent with ACK: our
    /// RCV.NXT as the peer last heard it.
    pub ack: Option<u32>,
    /// Window field of that segment.
    pub win: u16,
    /// End of the highest sequence space sent (SND.MAX).
    pub snd_max: Option<u32>,
}

impl Sent {
    /// Records a segment as it leaves (after its sequence number was
    /// mapped to the wire); returns true if it is a retransmission: it
    /// occupies sequence space (data, SYN or FIN) that ends at or below
    /// what was already sent (a timeout, a fast retransmit, or a repeated
    /// SYN or FIN).
    pub fn record(&mut self, h: &TcpHeader) -> bool {
        if h.has(tcp_flags::ACK) {
            self.ack = Some(h.ack);
            self.win = h.window;
        }
        let len = h.seq_len();
        if len == 0 {
            return false;
        }
        let end = h.seq.wrapping_add(len);
        match self.snd_max {
            Some(hi) if (end.wrapping_sub(hi) as i32) <= 0 => true,
            _ => {
                self.snd_max = Some(end);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, len: u16) -> TcpHeader {
        TcpHeader {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 80,
            dst_port: 5555,
            seq,
            ack,
            flags,
            window: 700 + len,
            payload_len: len,
            ip_header_len: 20,
        }
    }

    const ACK: u8 = tcp_flags::ACK;

    #[test]
    fn new_data_moves_snd_max_and_resent_data_counts() {
        let mut s = Sent::default();
        assert!(!s.record(&seg(tcp_flags::SYN, 99, 0, 0)));
        assert_eq!(s, Sent { ack: None, win: 0, snd_max: Some(100) });
        assert!(!s.record(&seg(ACK, 100, 7, 10)));
        assert!(!s.record(&seg(ACK, 110, 8, 10)));
        assert_eq!(s, Sent { ack: Some(8), win: 710, snd_max: Some(120) });
        // The first segment again (a timeout), part of it, the SYN again.
        assert!(s.record(&seg(ACK, 100, 9, 10)));
        assert!(s.record(&seg(ACK, 105, 9, 5)));
        assert!(s.record(&seg(tcp_flags::SYN, 99, 0, 0)));
        assert_eq!(s.snd_max, Some(120));
        // Overlapping the end counts as new: SND.MAX moves on.
        assert!(!s.record(&seg(ACK, 115, 9, 10)));
        assert_eq!(s.snd_max, Some(125));
        // The FIN takes one, its repetition is a retransmission.
        assert!(!s.record(&seg(ACK | tcp_flags::FIN, 125, 9, 0)));
        assert!(s.record(&seg(ACK | tcp_flags::FIN, 125, 9, 0)));
        assert_eq!(s.snd_max, Some(126));
    }

    #[test]
    fn pure_acks_and_resets_take_no_sequence_space() {
        let mut s = Sent { ack: None, win: 0, snd_max: Some(1000) };
        assert!(!s.record(&seg(ACK, 1000, 5, 0)));
        assert!(!s.record(&seg(ACK, 10, 6, 0)), "a rewound pure ACK is no retransmission");
        assert!(!s.record(&seg(tcp_flags::RST | ACK, 10, 7, 0)));
        assert_eq!(s, Sent { ack: Some(7), win: 700, snd_max: Some(1000) });
        // An RST without ACK leaves the acknowledgement alone.
        assert!(!s.record(&seg(tcp_flags::RST, 1000, 0, 0)));
        assert_eq!(s.ack, Some(7));
    }

    #[test]
    fn snd_max_compares_across_the_wrap() {
        let mut s = Sent::default();
        assert!(!s.record(&seg(ACK, u32::MAX - 4, 1, 10)));
        assert_eq!(s.snd_max, Some(5));
        assert!(s.record(&seg(ACK, u32::MAX - 4, 1, 10)));
        assert!(!s.record(&seg(ACK, 5, 1, 1)));
        assert_eq!(s.snd_max, Some(6));
    }
}
