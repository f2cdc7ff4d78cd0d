//! UDP (RFC 768) in the stack core: a per-core table of bound ports, each
//! with a bounded queue of received datagrams, and sending through the
//! same port/ARP path as TCP.
//!
//! - **Ports**: every core has its own table, and every core may bind the
//!   same port: with the 82599 hashing UDP 4-tuples (MRQC `IPV4_UDP`), the
//!   datagrams of one flow always reach the same core, so a server binds
//!   its port on every core. A datagram that reaches a core whose 4-tuple
//!   RSS would send elsewhere is counted (`rx_udp_misdirected`) and still
//!   taken.
//! - **Input** (`StackCore::ingress_udp`): a datagram for our address has
//!   its IPv4 header checksum checked (`crate::csum`), then its header
//!   (8 bytes), length field (at least 8, at most the IP payload; Ethernet
//!   padding and any bytes beyond the length field are ignored) and
//!   checksum (zero: none was computed); a bad one is counted by cause and
//!   dropped. A datagram for a bound port is copied into that port's queue
//!   (`udp_rx_queue` datagrams; one more is dropped and counted); the
//!   first datagram on an empty queue raises `Event::Udp` (one event per
//!   emptied queue keeps a burst from filling the event vector); for an
//!   unbound port, ICMP port unreachable goes back (`crate::icmp`: rate
//!   limited, never for a broadcast, multicast or fragment).
//! - **Output** (`udp_send_to`): one datagram per call, built into a
//!   mempool buffer with its checksum left to `crate::csum` (the NIC's
//!   offload when on, computed in software otherwise), no fragmentation:
//!   a datagram larger than `mtu - 28` bytes is refused.
//! - **Errors in**: ICMP destination unreachable quoting a datagram a
//!   bound port sent is kept on the port (`udp_take_error`, the latest
//!   one) and raises `Event::Udp`; see `crate::icmp`.
//! - **Memory**: queued datagrams are copies in buffers the table keeps
//!   and reuses, so a warm core's receive path does not allocate.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddrV4;

use ixtcp_driver::mempool::PacketBuf;

use crate::core::StackCore;
use crate::csum;
use crate::error::StackError;
use crate::ether::{self, IPPROTO_UDP, IPV4_HEADER_LEN, Ipv4Packet};
use crate::icmp::CODE_PORT_UNREACHABLE;
use crate::io::PacketIo;

/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// A bound UDP port of one core, as [`crate::ConnId`] is a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpId {
    /// Slot in the core's UDP table.
    pub index: u32,
    /// Bumped every time the slot is unbound.
    pub generation: u32,
}

impl fmt::Display for UdpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "udp#{}.{}", self.index, self.generation)
    }
}

/// What [`StackCore::udp_recv_from`] took: one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRecv {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's whole length: more than `len` if it was truncated
    /// (the rest is gone, as with `recv_from` and `MSG_TRUNC` on Linux).
    pub datagram_len: usize,
    /// Who sent it.
    pub from: SocketAddrV4,
}

impl UdpRecv {
    /// True if the buffer given was shorter than the datagram.
    pub fn truncated(&self) -> bool {
        self.datagram_len > self.len
    }
}

/// An ICMP error about a datagram a bound port sent, as
/// [`StackCore::udp_take_error`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpError {
    /// The destination the quoted datagram was sent to.
    pub to: SocketAddrV4,
    /// The destination unreachable code (3: port unreachable).
    pub code: u8,
}

/// One slot of the table.
#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    port: Option<u16>,
    queue: VecDeque<(SocketAddrV4, Vec<u8>)>,
    dropped: u64,
    /// The latest ICMP error about a datagram from this port, not yet taken.
    error: Option<UdpError>,
}

/// A core's UDP ports.
#[derive(Debug, Default)]
pub(crate) struct UdpTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_port: HashMap<u16, u32>,
    /// Emptied datagram buffers, reused for the next ones.
    spare: Vec<Vec<u8>>,
}

impl UdpTable {
    fn slot(&self, id: UdpId) -> Result<&Slot, StackError> {
        match self.slots.get(id.index as usize) {
            Some(s) if s.generation == id.generation && s.port.is_some() => Ok(s),
            _ => Err(StackError::StaleHandle),
        }
    }

    fn slot_mut(&mut self, id: UdpId) -> Result<&mut Slot, StackError> {
        match self.slots.get_mut(id.index as usize) {
            Some(s) if s.generation == id.generation && s.port.is_some() => Ok(s),
            _ => Err(StackError::StaleHandle),
        }
    }

    fn bind(&mut self, port: u16) -> UdpId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[index as usize];
        s.port = Some(port);
        s.dropped = 0;
        s.error = None;
        self.by_port.insert(port, index);
        UdpId { index, generation: s.generation }
    }

    fn unbind(&mut self, id: UdpId) -> Result<(), StackError> {
        let s = self.slot_mut(id)?;
        let port = s.port.take();
        s.generation = s.generation.wrapping_add(1);
        let drained: Vec<Vec<u8>> = s.queue.drain(..).map(|(_, d)| d).collect();
        self.spare.extend(drained);
        if let Some(p) = port {
            self.by_port.remove(&p);
        }
        self.free.push(id.index);
        Ok(())
    }

    /// Queues `data` from `from` for `port`'s slot, if bound.
    fn deliver(&mut self, port: u16, from: SocketAddrV4, data: &[u8], cap: usize) -> Delivery {
        let Some(&i) = self.by_port.get(&port) else { return Delivery::NoPort };
        let s = &mut self.slots[i as usize];
        if s.queue.len() >= cap {
            s.dropped += 1;
            return Delivery::Full;
        }
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(data);
        s.queue.push_back((from, b));
        match s.queue.len() {
            1 => Delivery::First(UdpId { index: i, generation: s.generation }),
            _ => Delivery::Queued,
        }
    }

    /// Records an ICMP error with `code` about a datagram `port` sent to
    /// `to`; the port's id if it is bound.
    pub(crate) fn record_error(&mut self, port: u16, to: SocketAddrV4, code: u8) -> Option<UdpId> {
        let &i = self.by_port.get(&port)?;
        let s = &mut self.slots[i as usize];
        s.error = Some(UdpError { to, code });
        Some(UdpId { index: i, generation: s.generation })
    }
}

/// What became of a datagram for a port.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Queued on an empty queue: the owner is told (`Event::Udp`).
    First(UdpId),
    /// Queued behind others: the owner was told when the first came.
    Queued,
    /// The queue was full: dropped, counted on the port.
    Full,
    /// Nobody bound the port.
    NoPort,
}

/// The datagram of a checked IPv4 packet: `(src port, dst port, datagram)`
/// (header and payload, cut at its length field), or the counter to bump.
fn parse(p: &Ipv4Packet<'_>) -> Result<(u16, u16, usize), Bad> {
    let d = p.payload();
    if d.len() < UDP_HEADER_LEN {
        return Err(Bad::Truncated);
    }
    let len = usize::from(u16::from_be_bytes([d[4], d[5]]));
    if len < UDP_HEADER_LEN || len > d.len() {
        return Err(Bad::Length);
    }
    Ok((u16::from_be_bytes([d[0], d[1]]), u16::from_be_bytes([d[2], d[3]]), len))
}

/// Why a datagram was refused.
enum Bad {
    Truncated,
    Length,
}

impl<P: PacketIo> StackCore<P> {
    /// Binds UDP `port` on this core (0: a free port of the ephemeral
    /// range). Each core has its own table: binding the same port on every
    /// core is how a server takes all its flows.
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpId, StackError> {
        if self.shutting_down {
            return Err(StackError::ShuttingDown);
        }
        let port = if port == 0 {
            let udp = &self.udp;
            let (first, last) = (self.cfg.ephemeral_first, self.cfg.ephemeral_last);
            (first..=last).find(|p| !udp.by_port.contains_key(p)).ok_or(StackError::PortsExhausted)?
        } else {
            port
        };
        if self.udp.by_port.contains_key(&port) {
            return Err(StackError::AddrInUse(SocketAddrV4::new(self.ip, port)));
        }
        Ok(self.udp.bind(port))
    }

    /// Binds a free port of the ephemeral range whose datagrams from `peer`
    /// the NIC's RSS hash sends to this core: what a client talking to one
    /// peer binds, so the replies come back to the core it sends from.
    pub fn udp_bind_for_peer(&mut self, peer: SocketAddrV4) -> Result<UdpId, StackError> {
        if self.shutting_down {
            return Err(StackError::ShuttingDown);
        }
        let (first, last) = (self.cfg.ephemeral_first, self.cfg.ephemeral_last);
        let (udp, rss, me) = (&self.udp, &self.rss, self.ip);
        let port = (first..=last)
            .find(|&p| !udp.by_port.contains_key(&p) && rss.is_ours(*peer.ip(), peer.port(), me, p))
            .ok_or(StackError::PortsExhausted)?;
        Ok(self.udp.bind(port))
    }

    /// Unbinds a port; its queued datagrams are dropped, and datagrams for
    /// it get port unreachable from now on.
    pub fn udp_unbind(&mut self, id: UdpId) -> Result<(), StackError> {
        self.udp.unbind(id)
    }

    /// The port `id` is bound to.
    pub fn udp_local_port(&self, id: UdpId) -> Result<u16, StackError> {
        self.udp.slot(id)?.port.ok_or(StackError::StaleHandle)
    }

    /// Datagrams waiting in `id`'s queue.
    pub fn udp_pending(&self, id: UdpId) -> Result<usize, StackError> {
        Ok(self.udp.slot(id)?.queue.len())
    }

    /// Datagrams dropped because `id`'s queue was full, since it was bound.
    pub fn udp_dropped(&self, id: UdpId) -> Result<u64, StackError> {
        Ok(self.udp.slot(id)?.dropped)
    }

    /// Takes the latest ICMP error about a datagram `id` sent (destination
    /// unreachable quoting it; see `crate::icmp`), if one came since the
    /// last call.
    pub fn udp_take_error(&mut self, id: UdpId) -> Result<Option<UdpError>, StackError> {
        Ok(self.udp.slot_mut(id)?.error.take())
    }

    /// The largest datagram payload `udp_send_to` takes: the MTU less the
    /// IPv4 and UDP headers (the stack does not fragment).
    pub fn udp_max_payload(&self) -> usize {
        self.cfg.mtu - IPV4_HEADER_LEN - UDP_HEADER_LEN
    }

    /// Takes the oldest datagram of `id` into `buf`: datagram boundaries
    /// are kept, one datagram per call; a datagram longer than `buf` is
    /// cut (see [`UdpRecv::truncated`]). `WouldBlock` when none is queued.
    pub fn udp_recv_from(&mut self, id: UdpId, buf: &mut [u8]) -> Result<UdpRecv, StackError> {
        let s = self.udp.slot_mut(id)?;
        let Some((from, data)) = s.queue.pop_front() else { return Err(StackError::WouldBlock) };
        let len = data.len().min(buf.len());
        buf[..len].copy_from_slice(&data[..len]);
        let got = UdpRecv { len, datagram_len: data.len(), from };
        self.udp.spare.push(data);
        Ok(got)
    }

    /// Sends `data` as one datagram from `id`'s port to `to`; returns its
    /// length. `WouldBlock` when the TX batch or the mempool is full (try
    /// after the next `egress`); a datagram longer than
    /// [`udp_max_payload`](Self::udp_max_payload) is refused
    /// (`InvalidOption`), as are destinations no host has
    /// (`InvalidAddress`) and off-subnet ones without a gateway (`NoRoute`).
    pub fn udp_send_to(&mut self, id: UdpId, to: SocketAddrV4, data: &[u8]) -> Result<usize, StackError> {
        let port = self.udp_local_port(id)?;
        if self.shutting_down {
            return Err(StackError::ShuttingDown);
        }
        if to.port() == 0 || *to.ip() == self.ip || ether::is_special(*to.ip(), self.ip, self.cfg.netmask()) {
            return Err(StackError::InvalidAddress(to));
        }
        if data.len() > self.udp_max_payload() {
            return Err(StackError::InvalidOption("UDP datagram longer than the MTU less 28 bytes (no fragmentation)"));
        }
        if self.port.next_hop(*to.ip()).is_none() {
            return Err(StackError::NoRoute(to));
        }
        if self.port.tx_room() == 0 {
            return Err(StackError::WouldBlock);
        }
        let Some(buf) = self.port.io.alloc() else {
            self.port.stats.drop_mempool_empty += 1;
            return Err(StackError::WouldBlock);
        };
        let udp_len = UDP_HEADER_LEN + data.len();
        let len = IPV4_HEADER_LEN + udp_len;
        let (me, ident) = (self.ip, self.icmp.next_ident());
        self.port.finish_tx(Some(buf), len, None, |b| {
            // At most the MTU, below 2^16.
            ether::write_ipv4_header(b, len as u16, ident, IPPROTO_UDP, me, *to.ip());
            let u = &mut b[IPV4_HEADER_LEN..];
            u[0..2].copy_from_slice(&port.to_be_bytes());
            u[2..4].copy_from_slice(&to.port().to_be_bytes());
            u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            // Filled by `csum::finish_tx` (or the NIC).
            u[6..8].copy_from_slice(&[0, 0]);
            u[UDP_HEADER_LEN..].copy_from_slice(data);
        });
        self.port.stats.tx_udp += 1;
        Ok(data.len())
    }

    /// A UDP datagram in a checked, unfragmented IPv4 packet (`buf`, IP
    /// header first); `link_multicast`: the frame went to a broadcast or
    /// multicast MAC.
    pub(crate) fn ingress_udp(&mut self, buf: PacketBuf, link_multicast: bool) {
        let Ok(p) = Ipv4Packet::new_checked(buf.data()) else {
            self.port.stats.drop_malformed += 1;
            return;
        };
        let (src, dst) = (p.src(), p.dst());
        if dst != self.ip {
            if ether::is_special(dst, self.ip, self.cfg.netmask()) {
                self.port.stats.drop_udp_broadcast += 1;
            } else {
                self.port.stats.drop_not_ours += 1;
            }
            return;
        }
        if !csum::check_ip_header(buf.data(), buf.rx_checksum(), self.port.csum_offload, &mut self.port.stats) {
            return;
        }
        let (sport, dport, len) = match parse(&p) {
            Ok(h) => h,
            Err(Bad::Truncated) => {
                self.port.stats.drop_udp_truncated += 1;
                return;
            }
            Err(Bad::Length) => {
                self.port.stats.drop_udp_bad_length += 1;
                return;
            }
        };
        let datagram = &p.payload()[..len];
        if !csum::udp_ok(src, dst, datagram, buf.rx_checksum(), self.port.csum_offload) {
            self.port.stats.drop_udp_checksum += 1;
            return;
        }
        if !self.answerable(src) {
            self.port.stats.drop_bad_source += 1;
            return;
        }
        if !self.rss.is_ours(src, sport, dst, dport) {
            self.port.stats.rx_udp_misdirected += 1;
        }
        let from = SocketAddrV4::new(src, sport);
        match self.udp.deliver(dport, from, &datagram[UDP_HEADER_LEN..], self.cfg.udp_rx_queue) {
            Delivery::First(id) => {
                self.port.stats.rx_udp += 1;
                self.push_event(crate::conn::Event::Udp { id });
            }
            Delivery::Queued => self.port.stats.rx_udp += 1,
            Delivery::Full => self.port.stats.drop_udp_queue_full += 1,
            Delivery::NoPort => {
                self.port.stats.drop_udp_no_port += 1;
                if !link_multicast {
                    self.send_unreachable(buf.data(), CODE_PORT_UNREACHABLE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_full_queue_drops_and_unbinding_recycles_the_slot() {
        let mut t = UdpTable::default();
        let id = t.bind(53);
        let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000);
        assert_eq!(t.deliver(53, from, b"a", 2), Delivery::First(id), "the first on an empty queue is news");
        assert_eq!(t.deliver(53, from, b"bb", 2), Delivery::Queued);
        assert_eq!(t.deliver(53, from, b"ccc", 2), Delivery::Full);
        assert_eq!(t.deliver(54, from, b"x", 2), Delivery::NoPort);
        assert_eq!(t.slot(id).map(|s| (s.queue.len(), s.dropped)), Ok((2, 1)));
        t.unbind(id).unwrap();
        assert_eq!(t.spare.len(), 2, "the queued buffers are kept for reuse");
        assert_eq!(t.deliver(53, from, b"a", 2), Delivery::NoPort);
        assert_eq!(t.record_error(53, from, 3), None, "an error for a port nobody holds is nobody's");
        assert!(t.slot(id).is_err());
        let again = t.bind(53);
        assert_eq!((again.index, again.generation), (id.index, id.generation + 1));
        assert_eq!(t.record_error(53, from, 3), Some(again));
        assert_eq!(t.slot(again).map(|s| s.error), Ok(Some(UdpError { to: from, code: 3 })));
    }
}
