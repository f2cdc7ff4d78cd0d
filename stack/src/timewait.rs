//! Compact TIME_WAIT: a closed connection's 4-tuple and expiry, nothing
//! more.
//!
//! smoltcp keeps a socket (and its buffers) in TIME-WAIT for a fixed 10 s.
//! The core instead frees the socket as soon as the connection reaches
//! TIME-WAIT and remembers the tuple here for the configured duration.
//! Because the duration is the same for every entry, expiry order is
//! insertion order: a FIFO holds `(tuple, expiry)` and a map answers
//! "is this tuple in TIME_WAIT". An entry removed early (a new SYN took the
//! tuple) stays in the FIFO as a stale record and is skipped when it
//! reaches the front. Both are sized at start; when the table is full the
//! oldest entry leaves early (counted), which is what TIME_WAIT's bound on
//! memory means in practice.
//!
//! What a TIME_WAIT entry answers (RFC 9293 3.10.7.4, RFC 1337):
//! - a retransmitted FIN (the peer lost our last ACK): an ACK crafted from
//!   the segment, seq = its ACK number, ack = its seq + length + 1;
//! - a SYN: the caller may let it replace the entry (a new connection);
//! - an RST: ignored (RFC 1337: no TIME_WAIT assassination);
//! - anything else: ignored.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};

use crate::flow::{FlowKey, FlowTable};

/// The TIME_WAIT table of one core.
#[derive(Debug)]
pub struct TimeWaitTable {
    map: FlowTable<u64>,
    fifo: VecDeque<(FlowKey, u64)>,
    max: usize,
    duration_ms: u64,
    evicted: u64,
}

/// What to do with a segment that hit a TIME_WAIT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWaitAction {
    /// Send this ACK.
    Ack {
        /// Our sequence number (their ACK number).
        seq: u32,
        /// Our acknowledgement (their seq + length + 1).
        ack: u32,
    },
    /// A new connection request for the tuple.
    Syn,
    /// Nothing to do.
    Ignore,
}

impl TimeWaitTable {
    /// A table for up to `max` entries lasting `duration_ms`.
    pub fn new(max: usize, duration_ms: u64, hash_key: (u64, u64)) -> TimeWaitTable {
        TimeWaitTable {
            map: FlowTable::with_capacity(max, hash_key),
            fifo: VecDeque::with_capacity(max * 2),
            max,
            duration_ms,
            evicted: 0,
        }
    }

    /// Entries in TIME_WAIT.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no tuple is in TIME_WAIT.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries that left early because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// True if the tuple is in TIME_WAIT.
    pub fn contains(&self, k: &FlowKey) -> bool {
        self.map.get(k).is_some()
    }

    /// Puts a tuple in TIME_WAIT from `now_ms`. With a zero duration
    /// nothing is kept.
    pub fn insert(&mut self, k: FlowKey, now_ms: u64) {
        if self.duration_ms == 0 {
            return;
        }
        while self.map.len() >= self.max || self.fifo.len() >= self.fifo.capacity() {
            let Some((old, exp)) = self.fifo.pop_front() else { break };
            if self.map.get(&old) == Some(exp) {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
        let expiry = now_ms + self.duration_ms;
        self.map.insert(k, expiry);
        self.fifo.push_back((k, expiry));
    }

    /// Removes a tuple (a new connection took it).
    pub fn remove(&mut self, k: &FlowKey) -> bool {
        self.map.remove(k).is_some()
    }

    /// Drops entries whose time is up.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(k, exp)) = self.fifo.front() {
            if exp > now_ms {
                break;
            }
            self.fifo.pop_front();
            if self.map.get(&k) == Some(exp) {
                self.map.remove(&k);
            }
        }
    }

    /// When the oldest entry expires.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.fifo.front().map(|&(_, e)| e)
    }

    /// Decides what a segment (IP packet `ip`, from `src` to `dst`) that hit
    /// a TIME_WAIT entry calls for; segments with a bad checksum are ignored
    /// when `caps` asks for them to be verified (the stack's core passes
    /// none: it verified the segment on arrival).
    pub fn classify(ip: &[u8], caps: &ChecksumCapabilities) -> TimeWaitAction {
        let Ok(ipp) = Ipv4Packet::new_checked(ip) else { return TimeWaitAction::Ignore };
        let Ok(iprepr) = Ipv4Repr::parse(&ipp, caps) else { return TimeWaitAction::Ignore };
        let Ok(tcp) = TcpPacket::new_checked(ipp.payload()) else { return TimeWaitAction::Ignore };
        let (src, dst) = (IpAddress::Ipv4(iprepr.src_addr), IpAddress::Ipv4(iprepr.dst_addr));
        let Ok(repr) = TcpRepr::parse(&tcp, &src, &dst, caps) else { return TimeWaitAction::Ignore };
        match (repr.control, repr.ack_number) {
            (TcpControl::Rst, _) => TimeWaitAction::Ignore,
            (TcpControl::Syn, None) => TimeWaitAction::Syn,
            (TcpControl::Fin, Some(ack)) => {
                TimeWaitAction::Ack { seq: ack.0 as u32, ack: (repr.seq_number + repr.payload.len() + 1).0 as u32 }
            }
            _ => TimeWaitAction::Ignore,
        }
    }

    /// Length of the ACK [`emit_ack`](Self::emit_ack) writes.
    pub const ACK_LEN: usize = 40;

    /// Writes an IPv4 ACK from `local` to the tuple's remote end into `buf`
    /// (at least [`ACK_LEN`](Self::ACK_LEN) bytes), with the checksums
    /// `caps` asks for (the stack's core asks for none: they are settled
    /// when the packet leaves).
    pub fn emit_ack(buf: &mut [u8], local: Ipv4Addr, k: &FlowKey, seq: u32, ack: u32, caps: &ChecksumCapabilities) {
        Self::emit_ack_with_window(buf, local, k, seq, ack, 0, caps);
    }

    /// [`emit_ack`](Self::emit_ack) with a window field.
    pub fn emit_ack_with_window(
        buf: &mut [u8],
        local: Ipv4Addr,
        k: &FlowKey,
        seq: u32,
        ack: u32,
        window: u16,
        caps: &ChecksumCapabilities,
    ) {
        let tcp = TcpRepr {
            src_port: k.local_port,
            dst_port: k.remote_port,
            control: TcpControl::None,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: Some(TcpSeqNumber(ack as i32)),
            window_len: window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: local,
            dst_addr: k.remote_ip,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut ipp = Ipv4Packet::new_unchecked(&mut buf[..Self::ACK_LEN]);
        ip.emit(&mut ipp, caps);
        let mut tp = TcpPacket::new_unchecked(ipp.payload_mut());
        tcp.emit(&mut tp, &IpAddress::Ipv4(local), &IpAddress::Ipv4(k.remote_ip), caps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(p: u16) -> FlowKey {
        FlowKey { remote_ip: Ipv4Addr::new(10, 0, 0, 2), remote_port: p, local_port: 80 }
    }

    #[test]
    fn entries_expire_in_order_and_early_removal_is_skipped() {
        let mut t = TimeWaitTable::new(8, 100, (1, 2));
        t.insert(k(1), 0);
        t.insert(k(2), 10);
        assert!(t.remove(&k(1)));
        t.insert(k(1), 20);
        t.expire(110);
        assert!(t.contains(&k(1)), "re-inserted entry must survive its stale record");
        assert!(!t.contains(&k(2)));
        assert_eq!(t.next_expiry_ms(), Some(120));
        t.expire(120);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_evicts_the_oldest() {
        let mut t = TimeWaitTable::new(4, 1000, (1, 2));
        for p in 0..6 {
            t.insert(k(p), u64::from(p));
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.evicted(), 2);
        assert!(!t.contains(&k(0)) && !t.contains(&k(1)) && t.contains(&k(5)));
    }

    #[test]
    fn zero_duration_keeps_nothing() {
        let mut t = TimeWaitTable::new(4, 0, (1, 2));
        t.insert(k(1), 0);
        assert!(t.is_empty());
    }

    #[test]
    fn a_retransmitted_fin_gets_an_ack_built_from_it() {
        // Build a FIN|ACK from the remote end with smoltcp, then classify it.
        let local = Ipv4Addr::new(10, 0, 0, 1);
        let key = k(4000);
        let mut fin = [0u8; 40];
        TimeWaitTable::emit_ack(
            &mut fin,
            key.remote_ip,
            &FlowKey { remote_ip: local, remote_port: 80, local_port: 4000 },
            500,
            900,
            &ChecksumCapabilities::default(),
        );
        // Turn the ACK into FIN|ACK and fix the checksum.
        {
            let mut ipp = Ipv4Packet::new_unchecked(&mut fin[..]);
            let mut tp = TcpPacket::new_unchecked(ipp.payload_mut());
            tp.set_fin(true);
            tp.fill_checksum(&IpAddress::Ipv4(key.remote_ip), &IpAddress::Ipv4(local));
        }
        let caps = ChecksumCapabilities::default();
        assert_eq!(TimeWaitTable::classify(&fin, &caps), TimeWaitAction::Ack { seq: 900, ack: 501 });
        // A corrupted one is ignored.
        let mut bad = fin;
        bad[30] ^= 0x40;
        assert_eq!(TimeWaitTable::classify(&bad, &caps), TimeWaitAction::Ignore);
        // Our ACK parses back with the right numbers.
        let mut ack = [0u8; 40];
        TimeWaitTable::emit_ack(&mut ack, local, &key, 900, 501, &caps);
        let ipp = Ipv4Packet::new_checked(&ack[..]).unwrap();
        let tp = TcpPacket::new_checked(ipp.payload()).unwrap();
        assert!(tp.verify_checksum(&IpAddress::Ipv4(local), &IpAddress::Ipv4(key.remote_ip)));
        assert_eq!((tp.seq_number().0, tp.ack_number().0, tp.ack(), tp.dst_port()), (900, 501, true, 4000));
    }
}
