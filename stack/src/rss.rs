//! RSS as the stack uses it: which core a 4-tuple's packets reach, and
//! the choice of local ports for active opens so that replies come back to
//! the core that sent the SYN.
//!
//! The 82599 hashes a received TCP/IPv4 packet over (source address,
//! destination address, source port, destination port) with the Toeplitz
//! function and picks a queue through the 128-entry redirection table. For
//! a connection we open, the replies have source = the peer and
//! destination = us, so core `i` may use local port `p` only if
//! `reta.queue(hash(peer_ip, our_ip, peer_port, p)) == i`. mTCP keeps
//! per-core pools of such ports; since the hash depends on the peer, the
//! pool here is computed lazily: each core walks the ephemeral range from
//! its own cursor and takes the first port that maps to it and whose tuple
//! is free. With N cores about N ports are hashed per connect.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ixtcp_driver::rss::{Reta, SYMMETRIC_KEY, Toeplitz};

/// What a core needs to know about the NIC's RSS setup.
#[derive(Debug, Clone)]
pub struct RssView {
    /// The hash, with the key the NIC was programmed with.
    pub toeplitz: Arc<Toeplitz>,
    /// The redirection table the NIC was programmed with.
    pub reta: Reta,
    /// This core's queue.
    pub queue: u16,
}

impl RssView {
    /// The default setup of the driver: symmetric key, round-robin table
    /// over `queues` queues.
    pub fn symmetric(queues: u16, queue: u16) -> RssView {
        RssView { toeplitz: Arc::new(Toeplitz::new(&SYMMETRIC_KEY)), reta: Reta::round_robin(queues), queue }
    }

    /// The same setup seen from another queue.
    pub fn for_queue(&self, queue: u16) -> RssView {
        RssView { toeplitz: Arc::clone(&self.toeplitz), reta: self.reta, queue }
    }

    /// The queue that packets from `remote` to `local` reach.
    #[inline]
    pub fn queue_of(&self, remote_ip: Ipv4Addr, remote_port: u16, local_ip: Ipv4Addr, local_port: u16) -> u16 {
        self.reta.queue(self.toeplitz.hash_ipv4_ports(remote_ip, local_ip, remote_port, local_port))
    }

    /// True if replies to `local_port` from `remote` land on this core.
    #[inline]
    pub fn is_ours(&self, remote_ip: Ipv4Addr, remote_port: u16, local_ip: Ipv4Addr, local_port: u16) -> bool {
        self.queue_of(remote_ip, remote_port, local_ip, local_port) == self.queue
    }
}

/// The per-core cursor over the ephemeral port range.
#[derive(Debug, Clone)]
pub(crate) struct PortPicker {
    first: u16,
    last: u16,
    next: u16,
}

impl PortPicker {
    pub fn new(first: u16, last: u16, start: u16) -> PortPicker {
        let span = u32::from(last - first) + 1;
        let next = first + (u32::from(start) % span) as u16;
        PortPicker { first, last, next }
    }

    /// The first port from the cursor that `ok` accepts, advancing the
    /// cursor past it; `None` after one full turn.
    pub fn pick(&mut self, mut ok: impl FnMut(u16) -> bool) -> Option<u16> {
        let span = u32::from(self.last - self.first) + 1;
        for _ in 0..span {
            let p = self.next;
            self.next = if p == self.last { self.first } else { p + 1 };
            if ok(p) {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_hash_back_to_the_picking_core() {
        let (us, peer) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        for cores in [1u16, 2, 4, 8] {
            for core in 0..cores {
                let rss = RssView::symmetric(cores, core);
                let mut picker = PortPicker::new(32768, 60999, 77 * core);
                for _ in 0..50 {
                    let p = picker.pick(|p| rss.is_ours(peer, 80, us, p)).unwrap();
                    // The symmetric key: our outgoing direction hashes alike.
                    let out = rss.reta.queue(rss.toeplitz.hash_ipv4_ports(us, peer, p, 80));
                    assert_eq!(out, core);
                    assert_eq!(rss.queue_of(peer, 80, us, p), core);
                }
            }
        }
    }

    #[test]
    fn picker_wraps_and_gives_up_after_one_turn() {
        let mut p = PortPicker::new(100, 103, 2);
        assert_eq!(p.pick(|_| true), Some(102));
        assert_eq!(p.pick(|_| true), Some(103));
        assert_eq!(p.pick(|_| true), Some(100));
        let mut n = 0;
        assert_eq!(
            p.pick(|_| {
                n += 1;
                false
            }),
            None
        );
        assert_eq!(n, 4);
    }
}
