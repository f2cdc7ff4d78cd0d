//! The readiness mechanism, all of it: what makes a socket ready, how a
//! change is recorded, how the stack side reports a changed socket, and how
//! an epoll registration turns a report into an event (or not).
//!
//! The pieces, in the order a change travels:
//!
//! 1. Whichever side changes a socket's buffers (the stack moving bytes in
//!    or out, the application shutting down) bumps its [`Changes`]
//!    counters under the buffer's lock, together with the change itself.
//! 2. The stack side reports the socket's key to the application at most
//!    once per batch ([`Notified`]).
//! 3. The application queues the key on every epoll the socket is
//!    registered with, once while queued ([`Reg::should_queue`]).
//! 4. A wait looks at each queued socket's readiness *now*
//!    ([`stream`]/[`listener`]), masks it by the registration's interest
//!    ([`filter`]) and decides ([`Reg::take`]): an edge-triggered
//!    registration reports only if the counters moved since its last
//!    report; a level-triggered one reports and stays queued while ready;
//!    a one-shot one disarms after reporting.
//!
//! Because step 4 reads the state when the wait runs, a report is a hint
//! (the socket may have been drained since: the call says `WouldBlock`),
//! several changes merge into one event, and no change is lost between a
//! report and the application's read: a change bumps the counters after
//! the data is in place, so either the read sees the data or the next wait
//! sees the counters move. The contract these rules give is the one
//! written in the crate's documentation; each of its points has a unit
//! test below.

use crate::engine::Readiness;
use crate::epoll::{Interest, Token, Trigger};
use crate::slab::Key;

/// A socket's change counters: bumped on every change that may make it
/// readable (data, end of stream, failure, read shutdown) or writable (room
/// freed, connected, failure, write shutdown). Edge-triggered registrations
/// compare them with the values they last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    read: u64,
    write: u64,
}

impl Changes {
    /// Something that may make the socket readable happened.
    pub fn readable(&mut self) {
        self.read = self.read.wrapping_add(1);
    }

    /// Something that may make the socket writable happened.
    pub fn writable(&mut self) {
        self.write = self.write.wrapping_add(1);
    }

    /// Record the directions that changed; true if any did.
    pub fn record(&mut self, read: bool, write: bool) -> bool {
        if read {
            self.readable();
        }
        if write {
            self.writable();
        }
        read || write
    }

    /// The counters of a source that only ever becomes readable, after
    /// `reads` such changes (a [`Waker`](crate::Waker)'s wakes).
    pub fn with_reads(reads: u64) -> Changes {
        Changes { read: reads, write: 0 }
    }

    /// True if a change that `interest` cares about happened between
    /// `earlier` and `self`.
    fn moved_since(self, earlier: Changes, interest: Interest) -> bool {
        (interest.is_readable() && self.read != earlier.read) || (interest.is_writable() && self.write != earlier.write)
    }
}

/// What a stream's readiness depends on: the flags of its buffers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamState {
    /// Received bytes wait to be read.
    pub unread: bool,
    /// The send buffer has room.
    pub room: bool,
    /// The handshake completed.
    pub established: bool,
    /// The peer's FIN arrived (after everything before it).
    pub peer_fin: bool,
    /// The application shut down writing.
    pub write_shut: bool,
    /// The application shut down reading.
    pub read_shut: bool,
    /// The connection failed (refused, reset, timed out).
    pub failed: bool,
    /// A failure not yet reported by a call.
    pub error: bool,
}

/// A stream's readiness, by Linux's `tcp_poll` rules: readable with unread
/// data or at end of stream; writable once connected with room (or after a
/// write shutdown, when writes fail at once); a failed connection is
/// readable, writable, read-closed and hung up.
pub(crate) fn stream(s: StreamState) -> Readiness {
    let mut r = Readiness::EMPTY;
    let read_over = s.peer_fin || s.read_shut || s.failed;
    if s.unread || read_over {
        r |= Readiness::READABLE;
    }
    if s.failed || (s.established && (s.room || s.write_shut)) {
        r |= Readiness::WRITABLE;
    }
    if read_over {
        r |= Readiness::READ_CLOSED;
    }
    if s.failed || (s.peer_fin && s.write_shut) {
        r |= Readiness::HUP;
    }
    if s.error {
        r |= Readiness::ERROR;
    }
    r
}

/// A UDP socket's readiness: readable with a datagram queued, writable with
/// room in its send queue; a pending ICMP error makes it readable,
/// writable and in error, so that the call that reports it is made.
pub(crate) fn datagram(unread: bool, room: bool, error: bool) -> Readiness {
    let mut r = Readiness::EMPTY;
    if unread || error {
        r |= Readiness::READABLE;
    }
    if room || error {
        r |= Readiness::WRITABLE;
    }
    if error {
        r |= Readiness::ERROR;
    }
    r
}

/// A listener is readable while its accept queue holds a connection.
pub(crate) fn listener(queued: usize) -> Readiness {
    if queued > 0 { Readiness::READABLE } else { Readiness::EMPTY }
}

/// The part of `ready` a registration with `interest` reports: error and
/// hang-up whatever the interest.
pub(crate) fn filter(ready: Readiness, interest: Interest) -> Readiness {
    let mut mask = Readiness::HUP | Readiness::ERROR;
    if interest.is_readable() {
        mask |= Readiness::READABLE | Readiness::READ_CLOSED;
    }
    if interest.is_writable() {
        mask |= Readiness::WRITABLE;
    }
    Readiness(ready.0 & mask.0)
}

/// The stack side's per-socket memory of the batch it was last reported
/// in, so that a socket changed several times in one batch is reported
/// once.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notified(u64);

impl Notified {
    /// True the first time it is asked in `batch` (batches count from 1).
    pub fn first_in(&mut self, batch: u64) -> bool {
        let first = self.0 != batch;
        self.0 = batch;
        first
    }
}

/// One registration of a socket with an epoll.
#[derive(Debug, Clone)]
pub(crate) struct Reg {
    /// The epoll.
    pub epoll: Key,
    /// Distinguishes this registration from an earlier one of the same
    /// socket with the same epoll (deleted, added again), whose queue
    /// entries must not count for it.
    pub seq: u64,
    pub token: Token,
    interest: Interest,
    trigger: Trigger,
    /// False once a one-shot registration has reported, until re-armed.
    armed: bool,
    /// The socket is in the epoll's ready list for this registration.
    queued: bool,
    /// The counters at the last report (edge-triggered); `None` until then,
    /// so that a socket ready when registered is reported.
    seen: Option<Changes>,
}

/// What a wait does with a queued socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Nothing to report; the socket leaves the ready list.
    Skip,
    /// Report these bits; the socket leaves the ready list.
    Report(Readiness),
    /// Report these bits and keep the socket queued (level-triggered: it
    /// is looked at again in the next wait).
    ReportAndKeep(Readiness),
}

impl Reg {
    pub fn new(epoll: Key, seq: u64, token: Token, interest: Interest, trigger: Trigger) -> Reg {
        Reg { epoll, seq, token, interest, trigger, armed: true, queued: false, seen: None }
    }

    /// `epoll_ctl(MOD)`: new token, interest and trigger, armed again; the
    /// socket is reported in the next wait if it is ready now.
    pub fn modify(&mut self, token: Token, interest: Interest, trigger: Trigger) {
        self.token = token;
        self.interest = interest;
        self.trigger = trigger;
        self.armed = true;
        self.seen = None;
    }

    /// Whether `ready` is worth queueing the socket for at registration
    /// (add or modify).
    pub fn ready_now(&self, ready: Readiness) -> bool {
        !filter(ready, self.interest).is_empty()
    }

    /// The socket was reported changed: true if it should be put in the
    /// epoll's ready list (armed and not already there), and marks it
    /// queued.
    pub fn should_queue(&mut self) -> bool {
        if self.armed && !self.queued {
            self.queued = true;
            true
        } else {
            false
        }
    }

    /// A wait looks at the queued socket, whose readiness is `ready` with
    /// counters `now`.
    pub fn take(&mut self, ready: Readiness, now: Changes) -> Take {
        let r = filter(ready, self.interest);
        let edge = self.trigger.is_edge();
        let unchanged = edge && self.seen.is_some_and(|seen| !now.moved_since(seen, self.interest));
        if r.is_empty() || !self.armed || unchanged {
            // Not ready (a spurious report); or, edge-triggered, nothing
            // new since the last event (an earlier event already covered
            // the change that queued it).
            self.queued = false;
            return Take::Skip;
        }
        if edge {
            self.seen = Some(now);
        }
        if self.trigger.is_oneshot() {
            self.armed = false;
            self.queued = false;
            Take::Report(r)
        } else if edge {
            self.queued = false;
            Take::Report(r)
        } else {
            Take::ReportAndKeep(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Interest = Interest::READABLE;
    const W: Interest = Interest::WRITABLE;
    const RD: Readiness = Readiness::READABLE;
    const WR: Readiness = Readiness::WRITABLE;

    fn key() -> Key {
        Key { index: 0, generation: 1 }
    }

    fn reg(interest: Interest, trigger: Trigger) -> Reg {
        let mut r = Reg::new(key(), 1, Token(7), interest, trigger);
        assert!(r.should_queue(), "a new registration can be queued");
        r
    }

    fn changed(read: u64, write: u64) -> Changes {
        Changes { read, write }
    }

    // "Readiness is a hint": a queued socket that is not ready when the
    // wait looks gives no event, and leaves the list.
    #[test]
    fn spurious_report_gives_no_event() {
        for trigger in [Trigger::EDGE, Trigger::LEVEL, Trigger::EDGE.oneshot()] {
            let mut r = reg(R, trigger);
            assert_eq!(r.take(Readiness::EMPTY, changed(1, 0)), Take::Skip, "{trigger:?}");
            assert!(r.should_queue(), "skipped, so it can be queued again ({trigger:?})");
        }
    }

    // "Several changes may be merged into one event": the wait reports the
    // state it finds, once, however many changes queued the socket.
    #[test]
    fn changes_merge_into_one_event() {
        let mut r = reg(R | W, Trigger::EDGE);
        let mut c = Changes::default();
        c.record(true, false);
        c.record(true, true);
        assert!(!r.should_queue(), "already queued: the second change does not queue it twice");
        assert_eq!(r.take(RD | WR, c), Take::Report(RD | WR));
    }

    // Edge-triggered: once per change; a socket left with unread data is
    // not reported again until more arrives.
    #[test]
    fn edge_reports_once_per_change() {
        let mut r = reg(R, Trigger::EDGE);
        let mut c = changed(1, 0);
        assert_eq!(r.take(RD, c), Take::Report(RD));
        // Queued again without a change (e.g. a duplicate notification).
        assert!(r.should_queue());
        assert_eq!(r.take(RD, c), Take::Skip, "still readable but unchanged: no event");
        c.readable();
        assert!(r.should_queue());
        assert_eq!(r.take(RD, c), Take::Report(RD), "new data: a new event");
    }

    // Edge-triggered: a change in a direction the registration does not
    // ask for is no edge for it.
    #[test]
    fn edge_ignores_changes_outside_the_interest() {
        let mut r = reg(R, Trigger::EDGE);
        let c = changed(1, 0);
        assert_eq!(r.take(RD | WR, c), Take::Report(RD));
        assert!(r.should_queue());
        assert_eq!(r.take(RD | WR, changed(1, 5)), Take::Skip, "only the send side moved");
        let mut w = reg(W, Trigger::EDGE);
        assert_eq!(w.take(RD | WR, c), Take::Report(WR));
        assert!(w.should_queue());
        assert_eq!(w.take(RD | WR, changed(9, 0)), Take::Skip, "only the receive side moved");
    }

    // Level-triggered: reported in every wait while the condition holds,
    // then dropped from the list once it does not.
    #[test]
    fn level_reports_while_ready() {
        let mut r = reg(R, Trigger::LEVEL);
        let c = changed(1, 0);
        for _ in 0..3 {
            assert_eq!(r.take(RD, c), Take::ReportAndKeep(RD), "unchanged, still reported");
        }
        assert_eq!(r.take(Readiness::EMPTY, c), Take::Skip);
        assert!(r.should_queue());
    }

    // One-shot: disabled after one event until modify re-arms it.
    #[test]
    fn oneshot_disarms_until_modify() {
        for trigger in [Trigger::EDGE.oneshot(), Trigger::LEVEL.oneshot()] {
            let mut r = reg(R, trigger);
            let mut c = changed(1, 0);
            assert_eq!(r.take(RD, c), Take::Report(RD));
            c.readable();
            assert!(!r.should_queue(), "disarmed: a change does not queue it ({trigger:?})");
            r.modify(Token(8), R, trigger);
            assert!(r.ready_now(RD));
            assert!(r.should_queue());
            assert_eq!(r.take(RD, c), Take::Report(RD), "re-armed ({trigger:?})");
            assert_eq!(r.token, Token(8));
        }
    }

    // Adding or modifying a registration of a socket that is already ready
    // reports it in the next wait, whatever the trigger — even with no
    // change since an earlier report.
    #[test]
    fn registering_a_ready_socket_reports_it() {
        let c = changed(4, 4);
        for trigger in [Trigger::EDGE, Trigger::LEVEL, Trigger::EDGE.oneshot()] {
            let mut r = reg(R, trigger);
            assert!(r.ready_now(RD));
            assert!(!r.ready_now(WR), "not ready for its interest: not queued at add");
            assert!(matches!(r.take(RD, c), Take::Report(_) | Take::ReportAndKeep(_)));
        }
        let mut r = reg(R, Trigger::EDGE);
        assert_eq!(r.take(RD, c), Take::Report(RD));
        r.modify(Token(7), R, Trigger::EDGE);
        assert!(r.should_queue());
        assert_eq!(r.take(RD, c), Take::Report(RD), "modify forgets the last report");
    }

    // Error and hang-up are reported whatever the interest.
    #[test]
    fn error_and_hangup_ignore_interest() {
        let bad = Readiness::ERROR | Readiness::HUP;
        assert_eq!(filter(bad | RD | WR, R), bad | RD);
        assert_eq!(filter(bad | RD | WR, W), bad | WR);
        assert_eq!(filter(RD | Readiness::READ_CLOSED, W), Readiness::EMPTY);
        let mut r = reg(W, Trigger::EDGE);
        assert_eq!(r.take(bad, changed(1, 1)), Take::Report(bad));
    }

    // A failed connection is readable, writable, read-closed, hung up and
    // in error (until the error is taken).
    #[test]
    fn failed_stream_is_everything() {
        let failed = StreamState { failed: true, error: true, ..StreamState::default() };
        let all = RD | WR | Readiness::READ_CLOSED | Readiness::HUP | Readiness::ERROR;
        assert_eq!(stream(failed), all);
        let taken = StreamState { error: false, ..failed };
        assert_eq!(stream(taken), RD | WR | Readiness::READ_CLOSED | Readiness::HUP);
    }

    // Readable: unread data or end of stream; writable: room once
    // connected; hang-up once both directions are closed.
    #[test]
    fn stream_rules() {
        let open = StreamState { established: true, room: true, ..StreamState::default() };
        assert_eq!(stream(open), WR);
        assert_eq!(stream(StreamState { room: false, ..open }), Readiness::EMPTY, "send buffer full");
        assert_eq!(stream(StreamState { established: false, ..open }), Readiness::EMPTY, "still connecting");
        assert_eq!(stream(StreamState { unread: true, ..open }), RD | WR);
        let fin = StreamState { peer_fin: true, ..open };
        assert_eq!(stream(fin), RD | WR | Readiness::READ_CLOSED, "end of stream reads as 0");
        let both = StreamState { write_shut: true, room: false, ..fin };
        assert_eq!(stream(both), RD | WR | Readiness::READ_CLOSED | Readiness::HUP);
        let rshut = StreamState { read_shut: true, ..open };
        assert_eq!(stream(rshut), RD | WR | Readiness::READ_CLOSED);
        assert_eq!(listener(0), Readiness::EMPTY);
        assert_eq!(listener(3), RD);
    }

    #[test]
    fn datagram_rules() {
        assert_eq!(datagram(false, true, false), WR);
        assert_eq!(datagram(true, true, false), RD | WR);
        assert_eq!(datagram(true, false, false), RD, "send queue full");
        assert_eq!(datagram(false, false, false), Readiness::EMPTY);
        assert_eq!(datagram(false, false, true), RD | WR | Readiness::ERROR, "an error is reported by any call");
    }

    #[test]
    fn notified_once_per_batch() {
        let mut n = Notified::default();
        assert!(n.first_in(1));
        assert!(!n.first_in(1));
        assert!(n.first_in(2));
        assert!(!n.first_in(2));
    }

    #[test]
    fn record_says_whether_anything_changed() {
        let mut c = Changes::default();
        assert!(!c.record(false, false));
        assert_eq!(c, Changes::default());
        assert!(c.record(false, true));
        assert_eq!(c, changed(0, 1));
        assert!(c.record(true, true));
        assert_eq!(c, changed(1, 2));
    }
}
