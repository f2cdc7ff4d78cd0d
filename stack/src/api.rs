//! The application's side of a stack core: listen, accept, connect, send,
//! receive, close, and graceful shutdown.
//!
//! These are plain methods on [`StackCore`], called on the core's own
//! thread: from inside [`StackCore::poll_with`]'s closure (so replies
//! leave with the ACKs ingress owes), or between iterations. The sockapi
//! crate turns its jobs into these calls and [`Event`](crate::Event)s into
//! its readiness events.
//!
//! Readiness contract: events are edge-triggered, one per change of a
//! connection's [`Readiness`] and one per arrival of data (also when
//! earlier data is still unread, as Linux's edge-triggered epoll reports
//! each arrival). After a `READABLE` event, read until
//! [`StackError::WouldBlock`]; after `WRITABLE`, write until it. An
//! `Acceptable` event comes once until the accept queue has been drained
//! (accept until `None`). A connection handed out by `accept` may already
//! hold data: look at its [`StackCore::readiness`] once, as events only
//! report later changes. Events may be spurious (the state moved on since);
//! an operation's `WouldBlock` is the truth.

use std::net::SocketAddrV4;
use std::sync::Arc;

use smoltcp::socket::tcp::{RecvError, SendError, State};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use crate::conn::{CloseReason, ConnId, ConnStatus, KeepAlive, Phase, Readiness};
use crate::core::{Cause, StackCore};
use crate::error::StackError;
use crate::flow::FlowKey;
use crate::io::PacketIo;

/// The longest per-connection user timeout (as `user_timeout_ms` allows).
const MAX_USER_TIMEOUT_MS: u64 = 86_400_000;

/// A connection's TCP state (smoltcp's, re-exported).
pub type TcpState = State;

impl<P: PacketIo> StackCore<P> {
    /// Listens on `port` on this core with `backlog` (or the configured
    /// default). Call it on every core: RSS spreads SYNs over all of them.
    pub fn listen(&mut self, port: u16, backlog: Option<usize>) -> Result<(), StackError> {
        if self.shutting_down {
            return Err(StackError::ShuttingDown);
        }
        let backlog = backlog.unwrap_or(self.cfg.backlog).max(1);
        if port == 0 || !self.listeners.add(port, backlog) {
            return Err(StackError::InvalidPort(port));
        }
        Ok(())
    }

    /// Stops listening on `port`; connections not yet accepted are reset.
    pub fn unlisten(&mut self, port: u16) -> Result<(), StackError> {
        let (slot, _) = self.listeners.remove(port).ok_or(StackError::NotListening(port))?;
        for idx in 0..self.conns.len() {
            let c = &mut self.conns[idx];
            if c.phase == Phase::Embryonic && c.listener == Some(slot) {
                c.listener = None;
                c.in_accept_queue = false;
                c.sock_mut().abort();
                c.aborted = true;
                self.mark_dirty(idx);
            }
        }
        Ok(())
    }

    /// Ports this core listens on.
    pub fn listening_ports(&self) -> Vec<u16> {
        self.listeners.ports()
    }

    /// The oldest established connection on `port` not yet accepted.
    pub fn accept(&mut self, port: u16) -> Option<ConnId> {
        let li = self.listeners.find(port)?;
        let l = self.listeners.get_mut(li)?;
        let Some(idx) = l.accept_queue.pop_front() else {
            l.announced = false;
            return None;
        };
        l.pending = l.pending.saturating_sub(1);
        if l.accept_queue.is_empty() {
            l.announced = false;
        }
        let idx = idx as usize;
        let c = &mut self.conns[idx];
        c.listener = None;
        c.in_accept_queue = false;
        c.phase = Phase::App;
        c.note_seen();
        Some(c.id(idx as u32))
    }

    /// Opens a connection to `remote` from this core. Without `local_port`
    /// the stack picks one whose replies RSS brings back to this core; an
    /// explicit port that RSS would send elsewhere is refused
    /// ([`StackError::WrongCore`]), as in mTCP.
    pub fn connect(&mut self, remote: SocketAddrV4, local_port: Option<u16>) -> Result<ConnId, StackError> {
        if self.shutting_down {
            return Err(StackError::ShuttingDown);
        }
        let rip = *remote.ip();
        if rip.is_unspecified() || rip.is_broadcast() || rip.is_multicast() || rip == self.ip || remote.port() == 0 {
            return Err(StackError::InvalidAddress(remote));
        }
        if self.port.next_hop(rip).is_none() {
            return Err(StackError::NoRoute(remote));
        }
        let ip = self.ip;
        let lport = match local_port {
            Some(p) => {
                let q = self.rss.queue_of(rip, remote.port(), ip, p);
                if q != self.rss.queue {
                    return Err(StackError::WrongCore { port: p, lands_on: q, this_core: self.rss.queue });
                }
                let key = FlowKey { remote_ip: rip, remote_port: remote.port(), local_port: p };
                if p == 0 || self.flows.get(&key).is_some() || self.tw.contains(&key) {
                    return Err(StackError::AddrInUse(SocketAddrV4::new(ip, p)));
                }
                p
            }
            None => {
                let (rss, flows, tw) = (&self.rss, &self.flows, &self.tw);
                self.picker
                    .pick(|p| {
                        let key = FlowKey { remote_ip: rip, remote_port: remote.port(), local_port: p };
                        rss.is_ours(rip, remote.port(), ip, p)
                            && flows.get(&key).is_none()
                            && !tw.contains(&key)
                            && self.listeners.find(p).is_none()
                    })
                    .ok_or(StackError::PortsExhausted)?
            }
        };
        let idx = self.take_conn().ok_or(StackError::NoSocket)?;
        let cfg = Arc::clone(&self.cfg);
        let path = self.path_to(rip);
        let c = &mut self.conns[idx];
        c.configure(&cfg);
        c.path = path;
        let r = c.sock_mut().connect(
            self.iface.context(),
            IpEndpoint::new(IpAddress::Ipv4(rip), remote.port()),
            IpListenEndpoint { addr: Some(IpAddress::Ipv4(ip)), port: lport },
        );
        if r.is_err() {
            self.free.push(idx as u32);
            return Err(StackError::InvalidAddress(remote));
        }
        // The connect timeout runs until the handshake completes.
        c.sock_mut().set_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        let key = FlowKey { remote_ip: rip, remote_port: remote.port(), local_port: lport };
        c.seq.isn = self.secret.isn((ip, lport), (rip, remote.port()), self.now_ns);
        c.seq.ts_offset = self.secret.ts_offset((ip, lport), (rip, remote.port()));
        c.key = Some(key);
        c.phase = Phase::App;
        c.last_state = State::SynSent;
        c.last_ready = Readiness::default();
        c.rx_seen = 0;
        let id = c.id(idx as u32);
        self.flows.insert(key, idx as u32);
        self.port.stats.conns_open += 1;
        self.port.stats.conns_opened_active += 1;
        self.mark_dirty(idx);
        Ok(id)
    }

    /// Writes as much of `data` as the send buffer takes.
    /// `Err(WouldBlock)` when it takes nothing (or the handshake is still
    /// running).
    #[inline]
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, StackError> {
        let idx = self.slot_of(id)?;
        let c = &mut self.conns[idx];
        let s = c.sock_mut();
        if !s.may_send() {
            return match s.state() {
                State::SynSent | State::SynReceived => Err(StackError::WouldBlock),
                _ => Err(StackError::from_reason(c.reason)),
            };
        }
        if data.is_empty() {
            return Ok(0);
        }
        match s.send_slice(data) {
            Ok(0) => {
                c.note_seen();
                self.port.stats.send_buffer_full += 1;
                Err(StackError::WouldBlock)
            }
            Ok(n) => {
                c.note_seen();
                if n < data.len() {
                    self.port.stats.send_buffer_full += 1;
                }
                self.mark_dirty(idx);
                Ok(n)
            }
            Err(SendError::InvalidState) => Err(StackError::from_reason(c.reason)),
        }
    }

    /// Reads into `buf`. `Ok(0)`: the peer closed and everything was read.
    /// `Err(WouldBlock)`: nothing yet.
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, StackError> {
        self.recv_more(id, buf).map(|(n, _)| n)
    }

    /// [`recv`](Self::recv), and whether the connection is still readable
    /// after it (more bytes, the end of the stream or a failure for the
    /// next read): a reader that takes bytes straight from here knows
    /// without asking again whether to come back before the next event.
    pub fn recv_more(&mut self, id: ConnId, buf: &mut [u8]) -> Result<(usize, bool), StackError> {
        let idx = self.slot_of(id)?;
        let c = &mut self.conns[idx];
        let s = c.sock_mut();
        let r = match s.recv_slice(buf) {
            Ok(0) if !buf.is_empty() => Err(StackError::WouldBlock),
            Ok(n) => {
                // The window may have opened: let egress consider an update.
                self.mark_dirty(idx);
                Ok(n)
            }
            Err(RecvError::Finished) => Ok(0),
            Err(RecvError::InvalidState) => match s.state() {
                State::SynSent | State::SynReceived => Err(StackError::WouldBlock),
                _ => Err(StackError::from_reason(c.reason)),
            },
        };
        let c = &mut self.conns[idx];
        c.note_seen();
        let more = c.last_ready.contains(Readiness::READABLE);
        r.map(|n| (n, more))
    }

    /// Hands up to `max` received bytes to `sink`, straight from the
    /// socket's receive buffer (in at most two pieces, as the ring wraps),
    /// and returns how many. `Ok(0)`: the peer closed and everything was
    /// read. `Err(WouldBlock)`: nothing yet. Like [`recv`](Self::recv)
    /// without a buffer of the caller's in between.
    #[inline]
    pub fn recv_with(&mut self, id: ConnId, max: usize, mut sink: impl FnMut(&[u8])) -> Result<usize, StackError> {
        let idx = self.slot_of(id)?;
        let c = &mut self.conns[idx];
        let s = c.sock_mut();
        let mut total = 0;
        // Two pieces at most (the ring wraps once); the third call says empty.
        let r = loop {
            if total == max {
                break Ok(total);
            }
            let left = max - total;
            let got = s.recv(|buf| {
                let n = buf.len().min(left);
                sink(&buf[..n]);
                (n, n)
            });
            match got {
                Ok(0) if total == 0 && max > 0 => break Err(StackError::WouldBlock),
                Ok(0) => break Ok(total),
                Ok(n) => total += n,
                // Bytes first; the end of the stream is the next call's answer.
                Err(_) if total > 0 => break Ok(total),
                Err(RecvError::Finished) => break Ok(0),
                Err(RecvError::InvalidState) => match s.state() {
                    State::SynSent | State::SynReceived => break Err(StackError::WouldBlock),
                    _ => break Err(StackError::from_reason(c.reason)),
                },
            }
        };
        if total > 0 {
            // The window may have opened: let egress consider an update.
            self.mark_dirty(idx);
        }
        let c = &mut self.conns[idx];
        c.note_seen();
        r
    }

    /// Disables (`true`) or enables Nagle's algorithm on one connection
    /// (the configured `nodelay` is every new connection's default).
    pub fn set_nodelay(&mut self, id: ConnId, nodelay: bool) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        self.conns[idx].sock_mut().set_nagle_enabled(!nodelay);
        Ok(())
    }

    /// Whether Nagle's algorithm is off on this connection.
    pub fn nodelay(&self, id: ConnId) -> Result<bool, StackError> {
        Ok(!self.conns[self.slot_of(id)?].sock().nagle_enabled())
    }

    /// Sends keep-alives on one connection after `interval_ms` of silence
    /// (`None`: never); the configured `keepalive_ms` is the default. A zero
    /// interval is refused, as it would flood the peer.
    pub fn set_keepalive(&mut self, id: ConnId, interval_ms: Option<u64>) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        if interval_ms == Some(0) {
            return Err(StackError::InvalidOption("keep-alive interval 0"));
        }
        self.conns[idx].keepalive = None;
        self.conns[idx].sock_mut().set_keep_alive(interval_ms.map(Duration::from_millis));
        // The socket's next timer may now be earlier.
        self.mark_dirty(idx);
        Ok(())
    }

    /// This connection's user timeout (RFC 5482, Linux's
    /// `TCP_USER_TIMEOUT`): reset it when the peer has been silent for
    /// `ms` while data or our FIN is unacknowledged; 0: never. Replaces the
    /// configured `user_timeout_ms` for this connection.
    pub fn set_user_timeout(&mut self, id: ConnId, ms: u64) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        if ms > MAX_USER_TIMEOUT_MS {
            return Err(StackError::InvalidOption("user timeout above 24 h"));
        }
        self.conns[idx].user_timeout_ms = Some(ms);
        // Re-arm smoltcp's timeout with the new value now.
        self.after(idx, Cause::App);
        self.mark_dirty(idx);
        Ok(())
    }

    /// This connection's user timeout, ms (0: never).
    pub fn user_timeout(&self, id: ConnId) -> Result<u64, StackError> {
        let c = &self.conns[self.slot_of(id)?];
        Ok(c.user_timeout_ms.unwrap_or(self.cfg.user_timeout_ms))
    }

    /// Keep-alive probes by the stack on one connection, with Linux's idle
    /// time, interval and count (see [`KeepAlive`]); `None` turns them
    /// off. Replaces any [`set_keepalive`](Self::set_keepalive) interval
    /// (smoltcp's keep-alive is turned off). The idle time counts from now
    /// or the peer's next segment.
    pub fn set_keepalive_probes(&mut self, id: ConnId, ka: Option<KeepAlive>) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        if let Some(k) = ka {
            k.validate().map_err(StackError::InvalidOption)?;
        }
        let now = self.now_ms();
        let c = &mut self.conns[idx];
        c.keepalive = ka;
        c.heard_ms = now;
        c.probes = 0;
        c.sock_mut().set_keep_alive(None);
        self.mark_dirty(idx);
        Ok(())
    }

    /// The keep-alive probes set on this connection, if any.
    pub fn keepalive_probes(&self, id: ConnId) -> Result<Option<KeepAlive>, StackError> {
        Ok(self.conns[self.slot_of(id)?].keepalive)
    }

    /// The keep-alive interval of this connection, ms.
    pub fn keepalive(&self, id: ConnId) -> Result<Option<u64>, StackError> {
        Ok(self.conns[self.slot_of(id)?].sock().keep_alive().map(|d| d.total_millis()))
    }

    /// Bytes waiting to be read.
    pub fn recv_queue(&self, id: ConnId) -> Result<usize, StackError> {
        Ok(self.conns[self.slot_of(id)?].sock().recv_queue())
    }

    /// Bytes written and not yet acknowledged.
    pub fn send_queue(&self, id: ConnId) -> Result<usize, StackError> {
        Ok(self.conns[self.slot_of(id)?].sock().send_queue())
    }

    /// Closes our sending side (FIN after what is queued); reading goes on.
    pub fn shutdown_write(&mut self, id: ConnId) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        self.conns[idx].sock_mut().close();
        self.mark_dirty(idx);
        self.after(idx, Cause::App);
        Ok(())
    }

    /// Closes the connection and gives up the handle: queued data is sent,
    /// then FIN; anything still arriving is discarded. The stack frees the
    /// socket when TCP is done (TIME_WAIT keeps only the 4-tuple).
    pub fn close(&mut self, id: ConnId) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        let orphan = Duration::from_millis(self.cfg.orphan_timeout_ms);
        let c = &mut self.conns[idx];
        c.phase = Phase::Orphan;
        let s = c.sock_mut();
        s.close();
        s.set_timeout(Some(orphan));
        if s.state() == State::Closed {
            self.free_slot(idx);
            return Ok(());
        }
        self.mark_dirty(idx);
        self.after(idx, Cause::App);
        Ok(())
    }

    /// Resets the connection (RST) and gives up the handle.
    pub fn abort(&mut self, id: ConnId) -> Result<(), StackError> {
        let idx = self.slot_of(id)?;
        let c = &mut self.conns[idx];
        c.phase = Phase::Orphan;
        if c.sock().state() == State::Closed {
            self.free_slot(idx);
            return Ok(());
        }
        c.sock_mut().abort();
        c.aborted = true;
        c.reason.get_or_insert(CloseReason::Reset);
        self.port.stats.conns_reset += 1;
        self.mark_dirty(idx);
        Ok(())
    }

    /// The connection's TCP state.
    pub fn state(&self, id: ConnId) -> Result<TcpState, StackError> {
        Ok(self.conns[self.slot_of(id)?].sock().state())
    }

    /// The connection's readiness now.
    pub fn readiness(&self, id: ConnId) -> Result<Readiness, StackError> {
        Ok(self.conns[self.slot_of(id)?].readiness())
    }

    /// State, readiness and close reason in one lookup.
    #[inline]
    pub fn status(&self, id: ConnId) -> Result<ConnStatus, StackError> {
        Ok(self.conns[self.slot_of(id)?].status())
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self, id: ConnId) -> Result<Option<CloseReason>, StackError> {
        Ok(self.conns[self.slot_of(id)?].reason)
    }

    /// (local, remote) addresses.
    pub fn endpoints(&self, id: ConnId) -> Result<(SocketAddrV4, SocketAddrV4), StackError> {
        let c = &self.conns[self.slot_of(id)?];
        let ((la, lp), (ra, rp)) = c.endpoints().ok_or(StackError::NotConnected)?;
        Ok((SocketAddrV4::new(la, lp), SocketAddrV4::new(ra, rp)))
    }

    /// Graceful shutdown, step 1: stop accepting (listeners closed, SYNs no
    /// longer answered, connections not yet accepted reset) and close every
    /// connection with FIN. Handles held by the application become stale.
    /// Keep polling until [`is_drained`](Self::is_drained), then (or after a
    /// deadline) [`abort_all`](Self::abort_all).
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        for port in self.listeners.ports() {
            let _ = self.unlisten(port);
        }
        let orphan = Duration::from_millis(self.cfg.orphan_timeout_ms);
        for idx in 0..self.conns.len() {
            let c = &mut self.conns[idx];
            if c.phase == Phase::App {
                c.phase = Phase::Orphan;
                c.sock_mut().close();
                c.sock_mut().set_timeout(Some(orphan));
                self.mark_dirty(idx);
            }
        }
    }

    /// True once shutdown began and every connection is gone and every
    /// frame sent.
    pub fn is_drained(&self) -> bool {
        self.shutting_down
            && self.free.len() == self.conns.len()
            && self.port.tx.is_empty()
            && self.port.resolver.pending.is_empty()
    }

    /// Resets every remaining connection (the end of a drain deadline).
    pub fn abort_all(&mut self) {
        for idx in 0..self.conns.len() {
            let c = &mut self.conns[idx];
            if c.phase != Phase::Free {
                c.phase = Phase::Orphan;
                if c.sock().state() == State::Closed {
                    self.free_slot(idx);
                    continue;
                }
                c.sock_mut().abort();
                c.aborted = true;
                self.mark_dirty(idx);
            }
        }
    }

    /// Drops everything not yet sent and every TIME_WAIT entry, returning
    /// all buffers to the pool (the very end of shutdown).
    pub fn discard_pending(&mut self) {
        self.port.discard_tx();
        self.port.resolver.pending.clear();
    }
}
