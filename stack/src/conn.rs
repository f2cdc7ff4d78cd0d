//! Connections: a slab of slots, each owning one smoltcp socket in its own
//! one-socket `SocketSet`, reused for connection after connection.
//!
//! A slot's socket is built once (at start, or the first time the slot is
//! used) with buffers of the configured sizes and never leaves its set: a
//! reused socket keeps its buffers, and `listen`/`connect` reset its state.
//! Handles given to the application carry a generation, so a handle to a
//! connection that has ended and whose slot was reused is refused, never
//! confused with the new one.

use std::cell::Cell;
use std::fmt;
use std::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Duration;
use smoltcp::wire::IpListenEndpoint;

use crate::config::{Congestion, StackConfig};
use crate::flow::FlowKey;
use crate::sent::Sent;
use crate::workaround::SeqMap;

thread_local! {
    /// What [`tsval`] returns: the TSval of the connection whose socket the
    /// core is about to run, set by [`set_tsval`] before every call into
    /// it. smoltcp's timestamp generator is a plain `fn() -> u32`, with no
    /// way to reach the core's clock or the connection, hence a
    /// thread-local: a core runs its sockets on its own thread, and a test
    /// driving several cores from one thread sets it before each call too.
    static TSVAL: Cell<u32> = const { Cell::new(0) };
}

/// smoltcp's TCP timestamp generator (RFC 7323 TSval): a 1 ms clock.
fn tsval() -> u32 {
    TSVAL.with(Cell::get)
}

/// Sets the TSval the next smoltcp call on this thread sends: the core's
/// clock in ms plus the connection's offset.
pub(crate) fn set_tsval(now_ms: u64, offset: u32) {
    TSVAL.with(|c| c.set((now_ms as u32).wrapping_add(offset)));
}

/// Handle of a connection on one core: slot index and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Slot in the core's connection slab.
    pub index: u32,
    /// Bumped every time the slot is freed.
    pub generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// Readiness of a connection, as bits (mio/epoll vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Readiness(pub u8);

impl Readiness {
    /// No bit set.
    pub const EMPTY: Readiness = Readiness(0);
    /// Data to read, or end of stream (a read returns 0).
    pub const READABLE: Readiness = Readiness(1);
    /// Room in the send buffer.
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer closed its side (read will return 0 when drained).
    pub const READ_CLOSED: Readiness = Readiness(4);
    /// The connection is over (both sides closed, or reset).
    pub const HUP: Readiness = Readiness(8);
    /// Ended abnormally (refused, reset, timed out): see `CloseReason`.
    pub const ERROR: Readiness = Readiness(16);
    /// The handshake completed.
    pub const CONNECTED: Readiness = Readiness(32);

    /// True if every bit of `o` is set.
    pub fn contains(self, o: Readiness) -> bool {
        self.0 & o.0 == o.0
    }

    /// True if no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, o: Readiness) -> Readiness {
        Readiness(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Readiness {
    fn bitor_assign(&mut self, o: Readiness) {
        self.0 |= o.0;
    }
}

/// Keep-alive probes sent by the stack on one connection, as Linux's
/// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT`: the first probe after
/// `idle_ms` without hearing from the peer, then one every `interval_ms`;
/// after `count` unanswered probes the connection is reset
/// (`CloseReason::TimedOut`). Only while nothing is unacknowledged: then
/// the user timeout decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence from the peer before the first probe, ms.
    pub idle_ms: u64,
    /// Time between probes, ms.
    pub interval_ms: u64,
    /// Unanswered probes after which the connection is reset.
    pub count: u32,
}

impl KeepAlive {
    /// Longest idle time or interval: Linux's limit (32 767 s).
    pub const MAX_MS: u64 = 32_767_000;
    /// Most probes: Linux's limit.
    pub const MAX_COUNT: u32 = 127;

    /// Refuses values Linux refuses too: a zero or over-long time, no
    /// probes or too many.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.idle_ms == 0 || self.idle_ms > Self::MAX_MS {
            return Err("keep-alive idle time must be 1 ms ..= 32 767 s");
        }
        if self.interval_ms == 0 || self.interval_ms > Self::MAX_MS {
            return Err("keep-alive interval must be 1 ms ..= 32 767 s");
        }
        if self.count == 0 || self.count > Self::MAX_COUNT {
            return Err("keep-alive count must be 1 ..= 127");
        }
        Ok(())
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// FIN both ways.
    Normal,
    /// The peer answered our SYN with RST.
    Refused,
    /// The peer reset the connection, or we aborted it.
    Reset,
    /// No answer in time (connect or idle timeout).
    TimedOut,
}

/// A connection's TCP state, readiness and close reason, read together
/// ([`StackCore::status`](crate::StackCore::status)): what a socket layer
/// asks after each event, in one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStatus {
    /// The TCP state.
    pub state: State,
    /// Readiness now.
    pub ready: Readiness,
    /// Why it ended, if it has.
    pub reason: Option<CloseReason>,
}

/// Something the application should look at, produced during a loop
/// iteration. Readiness events are edge-triggered: one per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection's readiness changed to `ready`.
    Conn {
        /// The connection.
        id: ConnId,
        /// Its readiness now.
        ready: Readiness,
    },
    /// A listener has a connection to accept.
    Acceptable {
        /// The listening port.
        port: u16,
    },
    /// A bound UDP port has news: a datagram arrived on its empty queue
    /// (one event per emptied queue, not per datagram: whoever drains the
    /// queue hears again when the next one comes), or an ICMP error about a
    /// datagram it sent ([`StackCore::udp_take_error`](crate::StackCore::udp_take_error)).
    Udp {
        /// The port's handle.
        id: crate::udp::UdpId,
    },
}

/// Who owns a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In the free pool.
    Free,
    /// Opened by a listener, not yet accepted: the stack owns it.
    Embryonic,
    /// Held by the application.
    App,
    /// Released by the application (closed); the stack frees it when TCP is
    /// done with it.
    Orphan,
}

/// One connection slot.
pub(crate) struct Conn {
    pub set: SocketSet<'static>,
    pub handle: SocketHandle,
    pub generation: u32,
    pub phase: Phase,
    pub key: Option<FlowKey>,
    /// Listener slot while this connection counts against its backlog.
    pub listener: Option<usize>,
    pub in_accept_queue: bool,
    pub dirty: bool,
    pub established: bool,
    pub last_state: State,
    pub last_ready: Readiness,
    /// Bytes in the receive buffer when the connection was last looked at
    /// ([`note_seen`](Self::note_seen)): more than this at the next look
    /// means data arrived, an event even if readiness did not change.
    pub rx_seen: usize,
    pub reason: Option<CloseReason>,
    /// `abort` was called: a Closed state is our doing.
    pub aborted: bool,
    /// What the segments we sent said: the last acknowledgement (our
    /// RCV.NXT as the peer last heard it) and window, and SND.MAX.
    pub sent: Sent,
    /// SND.UNA on the wire: the highest acknowledgement the peer sent that
    /// acknowledged something (`None`: nothing acknowledged yet, SND.UNA
    /// is the ISS). For the RFC 5927 check of ICMP errors (`crate::icmp`).
    pub snd_una: Option<u32>,
    /// How this connection's sequence numbers map to the wire.
    pub seq: SeqMap,
    /// This connection's user timeout, ms (`None`: the configured
    /// `user_timeout_ms`).
    pub user_timeout_ms: Option<u64>,
    /// The stack's own keep-alive probes, if set on this connection.
    pub keepalive: Option<KeepAlive>,
    /// When the peer was last heard from, ms (for `keepalive`).
    pub heard_ms: u64,
    /// Keep-alive probes sent since then.
    pub probes: u32,
    /// The interface that polls it and its MTU (`crate::pmtu`).
    pub path: crate::pmtu::ConnPath,
}

impl Conn {
    pub fn new(rx: usize, tx: usize) -> Conn {
        let mut set = SocketSet::new(vec![SocketStorage::EMPTY]);
        let sock = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; rx]), tcp::SocketBuffer::new(vec![0; tx]));
        let handle = set.add(sock);
        Conn {
            set,
            handle,
            generation: 0,
            phase: Phase::Free,
            key: None,
            listener: None,
            in_accept_queue: false,
            dirty: false,
            established: false,
            last_state: State::Closed,
            last_ready: Readiness::default(),
            rx_seen: 0,
            reason: None,
            aborted: false,
            sent: Sent::default(),
            snd_una: None,
            seq: SeqMap::default(),
            user_timeout_ms: None,
            keepalive: None,
            heard_ms: 0,
            probes: 0,
            path: crate::pmtu::ConnPath::full(usize::from(u16::MAX)),
        }
    }

    pub fn sock(&self) -> &tcp::Socket<'static> {
        self.set.get::<tcp::Socket>(self.handle)
    }

    pub fn sock_mut(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.handle)
    }

    pub fn id(&self, index: u32) -> ConnId {
        ConnId { index, generation: self.generation }
    }

    /// Applies per-connection options before `listen`/`connect` (which
    /// reset the TCP state but not these).
    pub fn configure(&mut self, cfg: &StackConfig) {
        let s = self.sock_mut();
        s.set_nagle_enabled(!cfg.nodelay);
        s.set_ack_delay((cfg.ack_delay_ms > 0).then(|| Duration::from_millis(cfg.ack_delay_ms)));
        s.set_congestion_control(match cfg.congestion {
            Congestion::Reno => tcp::CongestionControl::Reno,
            Congestion::Cubic => tcp::CongestionControl::Cubic,
            Congestion::None => tcp::CongestionControl::None,
        });
        // Offered in our SYN (or SYN-ACK, if the peer's SYN had one);
        // smoltcp turns it off when the peer does not take part.
        s.set_tsval_generator(cfg.tcp_timestamps.then_some(tsval as smoltcp::wire::TcpTimestampGenerator));
        s.set_timeout((cfg.idle_timeout_ms > 0).then(|| Duration::from_millis(cfg.idle_timeout_ms)));
        s.set_keep_alive((cfg.keepalive_ms > 0).then(|| Duration::from_millis(cfg.keepalive_ms)));
        self.established = false;
        self.last_ready = Readiness::default();
        self.rx_seen = 0;
        self.reason = None;
        self.aborted = false;
        self.sent = Sent::default();
        self.snd_una = None;
        self.seq = SeqMap::default();
        self.in_accept_queue = false;
        self.listener = None;
        self.user_timeout_ms = None;
        self.keepalive = None;
        self.probes = 0;
        self.path = crate::pmtu::ConnPath::full(cfg.mtu);
    }

    /// Puts the socket back to CLOSED with no tuple and empty buffers,
    /// without sending anything.
    pub fn hard_reset(&mut self) {
        let s = self.sock_mut();
        if s.state() == State::Listen {
            s.close();
        } else if s.listen(IpListenEndpoint { addr: None, port: 1 }).is_ok() {
            // `listen` resets every TCP variable and clears the buffers;
            // `close` from LISTEN goes to CLOSED without a segment.
            s.close();
        } else {
            // Still synchronized: abort, and never egress it again (it is
            // about to be freed), so no RST leaves.
            s.abort();
            if s.listen(IpListenEndpoint { addr: None, port: 1 }).is_ok() {
                s.close();
            }
        }
        self.last_state = State::Closed;
    }

    /// The unacknowledged part of our sequence space on the wire,
    /// `[SND.UNA, SND.MAX)`, once anything was sent.
    pub fn unacked(&self) -> Option<(u32, u32)> {
        let hi = self.sent.snd_max?;
        Some((self.snd_una.unwrap_or(hi.wrapping_sub(1)), hi))
    }

    /// An acknowledgement `ack` (wire space) arrived: SND.UNA moves up if
    /// it acknowledges something new and nothing beyond SND.MAX.
    pub fn note_ack(&mut self, ack: u32) {
        if let Some((lo, hi)) = self.unacked()
            && (ack.wrapping_sub(lo) as i32) > 0
            && (hi.wrapping_sub(ack) as i32) >= 0
        {
            self.snd_una = Some(ack);
        }
    }

    /// Records what the application has been told (or has seen for
    /// itself, by its own call): the readiness now and the bytes waiting
    /// to be read. Events report changes from here on.
    pub fn note_seen(&mut self) {
        let s = self.sock();
        let (ready, queued) = (self.status_of(s).ready, s.recv_queue());
        (self.last_ready, self.rx_seen) = (ready, queued);
    }

    /// Readiness as the application sees it.
    pub fn readiness(&self) -> Readiness {
        self.status().ready
    }

    /// TCP state, readiness and close reason, from one look at the socket.
    pub fn status(&self) -> ConnStatus {
        self.status_of(self.sock())
    }

    /// [`status`](Self::status) with the socket already in hand (`s` is
    /// this connection's: each look-up in the set costs a bounds check and
    /// a downcast).
    pub fn status_of(&self, s: &tcp::Socket<'static>) -> ConnStatus {
        let state = s.state();
        let mut r = Readiness::EMPTY;
        if self.established {
            r |= Readiness::CONNECTED;
        }
        if s.can_recv() {
            r |= Readiness::READABLE;
        }
        if s.can_send() {
            r |= Readiness::WRITABLE;
        }
        if state == State::Established && self.reason.is_none() {
            // The common case, asked several times per transaction: none of
            // the closing and failure rules below applies.
            return ConnStatus { state, ready: r, reason: None };
        }
        // smoltcp's `may_recv` is false once the peer's FIN is in and the
        // buffer drained (or in any state past that); the handshake
        // states are not a closed peer.
        let peer_closed = self.established
            && !matches!(
                state,
                State::Established | State::FinWait1 | State::FinWait2 | State::SynSent | State::SynReceived
            )
            && !s.can_recv();
        if peer_closed {
            r |= Readiness::READ_CLOSED | Readiness::READABLE;
        }
        if matches!(state, State::Closed | State::TimeWait) && (self.established || self.reason.is_some()) {
            r |= Readiness::HUP | Readiness::READABLE;
        }
        if matches!(self.reason, Some(CloseReason::Refused | CloseReason::Reset | CloseReason::TimedOut)) {
            r |= Readiness::ERROR | Readiness::HUP;
        }
        ConnStatus { state, ready: r, reason: self.reason }
    }

    /// The local and remote endpoints, if connected.
    pub fn endpoints(&self) -> Option<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
        let s = self.sock();
        let (l, r) = (s.local_endpoint()?, s.remote_endpoint()?);
        let smoltcp::wire::IpAddress::Ipv4(la) = l.addr;
        let smoltcp::wire::IpAddress::Ipv4(ra) = r.addr;
        Some(((la, l.port), (ra, r.port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_applies_congestion_control_and_timestamps_at_every_reuse() {
        let mut conn = Conn::new(4096, 4096);
        let base = StackConfig::new(Ipv4Addr::new(10, 0, 0, 1), 24);
        for (congestion, want) in [
            (Congestion::Cubic, tcp::CongestionControl::Cubic),
            (Congestion::Reno, tcp::CongestionControl::Reno),
            (Congestion::None, tcp::CongestionControl::None),
        ] {
            conn.configure(&StackConfig { congestion, ..base.clone() });
            assert_eq!(conn.sock().congestion_control(), want);
        }
        conn.configure(&StackConfig { tcp_timestamps: true, ..base.clone() });
        assert!(conn.sock().timestamp_enabled());
        // A slot reused under a config without them does not keep them.
        conn.configure(&base);
        assert!(!conn.sock().timestamp_enabled());
    }

    #[test]
    fn tsval_is_the_clock_plus_the_connection_offset() {
        set_tsval(1_000, 5);
        assert_eq!(tsval(), 1_005);
        // 32-bit wrap-around, as RFC 7323 timestamps do.
        set_tsval(u64::from(u32::MAX), 2);
        assert_eq!(tsval(), 1);
    }
}
