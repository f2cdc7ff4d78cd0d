//! Path MTU discovery (RFC 1191): "fragmentation needed" lowers the
//! segment size of the connections to a destination.
//!
//! smoltcp 0.14 sizes a TCP socket's segments (and the MSS option of its
//! SYN) from the MTU of the `Interface` that polls it, read from the
//! device once, when the interface is made; the peer's MSS is private to
//! the socket. Every ixtcp connection has a socket set of its own, so a
//! core can poll each connection through whichever interface it likes:
//! besides its main interface, a core keeps up to [`MAX_IFACES`] more,
//! made on demand, each with one lowered MTU and otherwise the main one's
//! address. A connection whose path MTU was lowered is polled (ingress,
//! egress, `poll_at`) through the matching one; smoltcp cuts what it sends
//! from then on, retransmissions too (it resends by sequence range), to
//! the new size.
//!
//! - **Believed** only for an in-window quote (RFC 5927, checked by
//!   `crate::icmp`). The next-hop MTU (bytes 6..8 of the ICMP header) is
//!   clamped up to [`FLOOR`]; 0 (a router older than RFC 1191) means the
//!   next plateau of RFC 1191's table below the quoted packet's total
//!   length. A value that is not below the connection's current path MTU
//!   is ignored (`pmtu_ignored`): ICMP only ever lowers it.
//! - **Per destination**: the lowered value is remembered for the remote
//!   address in a bounded table ([`DEST_MAX`] entries, the oldest evicted)
//!   for [`AGE_MS`] of the stack's clock (RFC 1191's 10 minutes, counted
//!   from the last lowering); the core's other connections to it are
//!   lowered at once, and new ones (connect, a passive open, a SYN cookie)
//!   start at it, their SYN's MSS option included. A connection keeps its
//!   lowered value for its life: RFC 1191 allows raising it only by
//!   probing, which the stack does not do.
//! - **Interfaces**: when all [`MAX_IFACES`] are made, a new value takes
//!   the largest one below it, which is always there: the last one made is
//!   the floor's. A smaller segment than needed costs a little
//!   throughput; a larger one would be dropped on the path.
//! - **Retransmission** comes at the RTO: smoltcp offers no way to resend
//!   at once, and a fast retransmit forced by forged duplicate ACKs would
//!   cut the congestion window for a loss that was not congestion.

use std::net::Ipv4Addr;

use rand::RngCore;
use smoltcp::iface::{Config, Interface};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::config::MTU_RANGE;
use crate::core::StackCore;
use crate::io::PacketIo;
use crate::phy::Phy;
use crate::port::Port;

/// The lowest path MTU the stack uses: the floor of the configured MTU
/// (`config::MTU_RANGE`), 576, the datagram every IPv4 host must accept
/// (RFC 791). Linux goes down to 552 (`min_pmtu`) and then clears DF; the
/// stack always sends DF, and never runs an interface below the range its
/// configuration accepts.
pub(crate) const FLOOR: u16 = MTU_RANGE.0 as u16;

/// Interfaces of lowered MTU a core makes at most, besides its main one.
pub(crate) const MAX_IFACES: usize = 8;

/// Destinations a core remembers a lowered path MTU for, at most.
pub(crate) const DEST_MAX: usize = 64;

/// How long a learned path MTU holds for new connections, ms (RFC 1191
/// 6.3: ten minutes).
pub(crate) const AGE_MS: u64 = 600_000;

/// RFC 1191 section 7's plateaus, highest first.
const PLATEAUS: [u16; 11] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// The highest plateau below `len` (68, the IPv4 minimum, below all).
pub(crate) fn plateau_below(len: u16) -> u16 {
    PLATEAUS.iter().copied().find(|&p| p < len).unwrap_or(68)
}

/// The path MTU a "fragmentation needed" makes of `current`: the next-hop
/// MTU `reported` (0: the plateau below `quoted_len`, the quoted packet's
/// total length), at least [`FLOOR`]; `None` if that is not lower.
pub(crate) fn lowered(reported: u16, quoted_len: u16, current: u16) -> Option<u16> {
    let mtu = if reported == 0 { plateau_below(quoted_len) } else { reported };
    let mtu = mtu.max(FLOOR);
    (mtu < current).then_some(mtu)
}

/// A connection's path: the interface that polls it (0: the main one)
/// and that interface's MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnPath {
    pub slot: u8,
    pub mtu: u16,
}

impl ConnPath {
    /// The main interface's path, of the configured MTU.
    pub fn full(mtu: usize) -> ConnPath {
        ConnPath { slot: 0, mtu: mtu.min(usize::from(u16::MAX)) as u16 }
    }
}

/// Lowered path MTUs per destination, each with when it was learned (ms).
#[derive(Debug, Default)]
pub(crate) struct DestTable {
    entries: Vec<(Ipv4Addr, u16, u64)>,
}

impl DestTable {
    /// The path MTU learned for `ip` within [`AGE_MS`] of `now_ms`; an
    /// older entry is dropped.
    pub fn get(&mut self, ip: Ipv4Addr, now_ms: u64) -> Option<u16> {
        let i = self.entries.iter().position(|e| e.0 == ip)?;
        if now_ms.saturating_sub(self.entries[i].2) >= AGE_MS {
            self.entries.swap_remove(i);
            return None;
        }
        Some(self.entries[i].1)
    }

    /// Records `mtu` for `ip` at `now_ms` if it is lower than what the
    /// table holds (the clock restarts then); full, the oldest entry goes.
    pub fn learn(&mut self, ip: Ipv4Addr, mtu: u16, now_ms: u64) {
        let known = self.get(ip, now_ms);
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == ip) {
            if known.is_some_and(|k| mtu < k) {
                *e = (ip, mtu, now_ms);
            }
            return;
        }
        if self.entries.len() >= DEST_MAX {
            if let Some(i) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.2).map(|(i, _)| i) {
                self.entries.swap_remove(i);
            }
        } else if self.entries.capacity() == 0 {
            self.entries.reserve_exact(DEST_MAX);
        }
        self.entries.push((ip, mtu, now_ms));
    }

    /// Entries held (expired ones too, until looked up).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Which interface a path MTU of `want` takes, given the MTUs of those
/// made (`made`): `Ok(i)` an existing one (of exactly `want`, or, when no
/// more may be made, the largest below it), `Err(mtu)` one to make, of
/// `mtu` (`want`, or the floor when only one more may be made).
pub(crate) fn choose(made: &[u16], want: u16) -> Result<usize, u16> {
    if let Some(i) = made.iter().position(|&m| m == want) {
        return Ok(i);
    }
    let has_floor = made.contains(&FLOOR);
    match made.len() {
        n if n + 1 < MAX_IFACES || (n + 1 == MAX_IFACES && has_floor) => Err(want),
        n if n + 1 == MAX_IFACES => Err(FLOOR),
        _ => made.iter().enumerate().filter(|(_, m)| **m <= want).max_by_key(|(_, m)| **m).map(|(i, _)| i).ok_or(FLOOR),
    }
}

/// A core's path MTU state: the destinations' values and the interfaces
/// of lowered MTU.
#[derive(Default)]
pub(crate) struct PathMtus {
    pub dests: DestTable,
    ifaces: Vec<(u16, Interface)>,
}

impl PathMtus {
    /// The interface of `slot`: `main` for 0.
    pub fn iface<'a>(&'a mut self, main: &'a mut Interface, slot: u8) -> &'a mut Interface {
        match usize::from(slot).checked_sub(1).and_then(|i| self.ifaces.get_mut(i)) {
            Some((_, i)) => i,
            None => main,
        }
    }
}

/// An interface for `port` reporting `mtu`, with the address `ip/prefix`,
/// smoltcp's randomness seeded with `seed`.
pub(crate) fn new_interface<P: PacketIo>(
    port: &mut Port<P>,
    mtu: usize,
    ip: Ipv4Addr,
    prefix: u8,
    seed: u64,
    now: Instant,
) -> Interface {
    let mut icfg = Config::new(HardwareAddress::Ip);
    icfg.random_seed = seed;
    let mut iface = Interface::new(icfg, &mut Phy::new(port).with_mtu(mtu), now);
    iface.update_ip_addrs(|a| {
        // Cannot fail: a fresh interface has room for one address.
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix));
    });
    iface
}

impl<P: PacketIo> StackCore<P> {
    /// The path a new connection to `remote` starts on: the lowered one
    /// learned for it, if still fresh, else the main interface's.
    pub(crate) fn path_to(&mut self, remote: Ipv4Addr) -> ConnPath {
        match self.pmtu.dests.get(remote, self.now_ms()) {
            Some(mtu) if usize::from(mtu) < self.cfg.mtu => self.path_of(mtu),
            _ => ConnPath::full(self.cfg.mtu),
        }
    }

    /// The path of MTU `want` (or the largest below it the interfaces
    /// allow; see [`choose`]), making its interface if needed.
    fn path_of(&mut self, want: u16) -> ConnPath {
        let mut made = [0u16; MAX_IFACES];
        let n = self.pmtu.ifaces.len().min(MAX_IFACES);
        for (m, (mtu, _)) in made.iter_mut().zip(&self.pmtu.ifaces) {
            *m = *mtu;
        }
        let i = match choose(&made[..n], want) {
            Ok(i) => i,
            Err(mtu) => {
                let seed = self.rng.next_u64();
                let iface =
                    new_interface(&mut self.port, usize::from(mtu), self.ip, self.cfg.prefix_len, seed, self.now);
                self.pmtu.ifaces.push((mtu, iface));
                self.port.stats.pmtu_interfaces += 1;
                self.pmtu.ifaces.len() - 1
            }
        };
        // At most MAX_IFACES, so the slot fits.
        ConnPath { slot: (i + 1) as u8, mtu: self.pmtu.ifaces[i].0 }
    }

    /// "Fragmentation needed" with next-hop MTU `reported`, quoting a
    /// packet of `quoted_len` bytes, in the window of connection `idx`:
    /// lowers its path MTU, and that of the core's other connections to
    /// the same destination, and remembers it for the destination.
    pub(crate) fn frag_needed(&mut self, idx: usize, reported: u16, quoted_len: u16) {
        let c = &self.conns[idx];
        let (Some(key), current) = (c.key, c.path.mtu) else { return };
        let Some(mtu) = lowered(reported, quoted_len, current) else {
            self.port.stats.pmtu_ignored += 1;
            return;
        };
        let now = self.now_ms();
        self.pmtu.dests.learn(key.remote_ip, mtu, now);
        let path = self.path_of(mtu);
        self.port.stats.pmtu_lowered += 1;
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.key.is_some_and(|k| k.remote_ip == key.remote_ip) && c.path.mtu > path.mtu {
                c.path = path;
                if i != idx {
                    self.port.stats.pmtu_lowered_others += 1;
                }
                // Its next deadline is the new interface's to say.
                self.mark_dirty(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plateau_is_the_next_one_below_the_length() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(1493), 1492);
        assert_eq!(plateau_below(9000), 8166);
        assert_eq!(plateau_below(65535), 32000);
        assert_eq!(plateau_below(600), 508);
        assert_eq!(plateau_below(68), 68);
        assert_eq!(plateau_below(0), 68);
    }

    #[test]
    fn only_a_lower_value_lowers_and_the_floor_holds() {
        assert_eq!(lowered(1000, 1500, 1500), Some(1000));
        assert_eq!(lowered(1500, 1500, 1500), None, "equal: ignored");
        assert_eq!(lowered(1400, 1500, 1000), None, "ICMP never raises it");
        assert_eq!(lowered(300, 1500, 1500), Some(FLOOR), "clamped to the floor");
        assert_eq!(lowered(1, 1500, FLOOR), None, "already at the floor");
        assert_eq!(lowered(0, 1500, 1500), Some(1492), "RFC 1191 plateau");
        assert_eq!(lowered(0, 1492, 1492), Some(1006));
        assert_eq!(lowered(0, 1006, 1006), Some(FLOOR), "508 is below the floor");
        assert_eq!(lowered(0, 9000, 1500), None, "a plateau above the current value");
    }

    #[test]
    fn the_table_lowers_only_ages_out_and_stays_bounded() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let mut t = DestTable::default();
        assert_eq!(t.get(ip, 0), None);
        t.learn(ip, 1000, 5_000);
        assert_eq!(t.get(ip, 5_000), Some(1000));
        t.learn(ip, 1200, 6_000);
        assert_eq!(t.get(ip, 6_000), Some(1000), "never raised");
        assert_eq!(t.get(ip, 5_000 + AGE_MS - 1), Some(1000));
        t.learn(ip, 800, 100_000);
        assert_eq!(t.get(ip, 5_000 + AGE_MS), Some(800), "the clock restarted at the lowering");
        assert_eq!(t.get(ip, 100_000 + AGE_MS), None, "ten minutes later: gone");
        assert_eq!(t.len(), 0);
        t.learn(ip, 900, 200_000);
        assert_eq!(t.get(ip, 200_000), Some(900), "learned afresh after ageing out");
        // Full: the oldest entry makes room.
        let mut t = DestTable::default();
        for i in 0..DEST_MAX as u32 {
            t.learn(Ipv4Addr::from(0x0a01_0000 + i), 1000, 1_000 + u64::from(i));
        }
        assert_eq!(t.len(), DEST_MAX);
        t.learn(ip, 700, 9_000);
        assert_eq!(t.len(), DEST_MAX);
        assert_eq!(t.get(Ipv4Addr::from(0x0a01_0000), 9_000), None, "the oldest went");
        assert_eq!(t.get(Ipv4Addr::from(0x0a01_0001), 9_000), Some(1000));
        assert_eq!(t.get(ip, 9_000), Some(700));
    }

    #[test]
    fn interfaces_are_bounded_and_a_value_never_gets_a_larger_one() {
        let mut made: Vec<u16> = Vec::new();
        for want in [1400, 1300, 1200, 1100, 1000, 900, 800] {
            match choose(&made, want) {
                Err(m) => {
                    assert_eq!(m, want);
                    made.push(m);
                }
                Ok(i) => panic!("{want} took {i}"),
            }
        }
        assert_eq!(choose(&made, 1000), Ok(4), "an existing one is shared");
        // The last one may be made: the floor's, whatever was asked.
        assert_eq!(choose(&made, 700), Err(FLOOR));
        made.push(FLOOR);
        assert_eq!(made.len(), MAX_IFACES);
        assert_eq!(choose(&made, 1250), Ok(2), "1200, the largest below");
        assert_eq!(choose(&made, 700), Ok(MAX_IFACES - 1), "the floor's");
        assert_eq!(choose(&made, 1450), Ok(0));
        // With the floor made early, the eighth may be any value.
        let made = [FLOOR, 1400, 1300, 1200, 1100, 1000, 900];
        assert_eq!(choose(&made, 700), Err(700));
    }
}
