//! The in-memory link between two models: a cable with a line rate, a
//! latency, a transmit backlog limit and seeded impairments.
//!
//! # Time
//!
//! The link reads time from the [`Clock`] it is given: a
//! [`VirtualClock`](crate::time::VirtualClock) in deterministic tests, the
//! monotonic clock in examples. A frame leaves the sender when the wire is
//! free, occupies it for its wire time, and is delivered to the other end
//! once the clock reaches its arrival time, `departure end + latency`.
//! [`LinkEnd::next_arrival_ns`] tells a virtual-time loop when to advance
//! the clock to.
//!
//! # Line rate
//!
//! Wire time counts what an Ethernet frame really occupies: the preamble and
//! start-of-frame delimiter (8 bytes), the frame padded to the 60-byte
//! minimum, the FCS (4 bytes) and the inter-frame gap (12 bytes). A 60-byte
//! frame takes 84 bytes, 67.2 ns at 10 Gbit/s: 14 880 952 frames per second;
//! a 1514-byte frame takes 1538 bytes: 812 743 frames per second. Departure
//! times are kept exactly (as rationals), so no rounding accumulates.
//!
//! # Threads
//!
//! The two ends may live on different threads. Each direction is a
//! single-producer/single-consumer handoff (a bounded lock-free ring of
//! frame batches, buffers travelling back on another, see `channel`):
//! neither end takes a lock per frame, and steady traffic reuses the same
//! buffers. [`transmit`](Wire::transmit) hands its frame on at once;
//! [`transmit_buf`](Wire::transmit_buf) (the model's) with its burst, at
//! [`flush`](Wire::flush). The
//! sender books the wire and decides each frame's fate; the receiver keeps
//! the frames in flight and the reordered ones held back.

use super::channel;
use super::impair::{Fate, Impairer, Impairments, REORDER_MAX_HOLD, flip_bit};
use super::{Doorbell, Wire, WireError};
use crate::time::Clock;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Preamble and start-of-frame delimiter, in bytes.
pub const PREAMBLE_SFD_LEN: usize = 8;
/// Minimum inter-frame gap, in bytes.
pub const INTER_FRAME_GAP_LEN: usize = 12;
/// Frame check sequence, in bytes (not part of the frames a wire carries).
pub const FCS_LEN: usize = 4;
/// Shortest frame without FCS; shorter frames are padded on the wire.
pub const MIN_FRAME_LEN: usize = 60;
/// Longest standard frame without FCS (1500-byte MTU, no VLAN tag).
pub const MAX_FRAME_LEN: usize = 1514;
/// 10 Gbit/s.
pub const TEN_GIGABIT: u64 = 10_000_000_000;

/// Bytes of wire time a frame of `frame_len` bytes (without FCS) occupies:
/// padded to 60, plus preamble/SFD, FCS and inter-frame gap.
pub const fn wire_bytes(frame_len: usize) -> u64 {
    let padded = if frame_len < MIN_FRAME_LEN { MIN_FRAME_LEN } else { frame_len };
    (padded + PREAMBLE_SFD_LEN + FCS_LEN + INTER_FRAME_GAP_LEN) as u64
}

fn saturating_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Transmit pacing for one sender: when the wire is free again, and whether
/// the backlog of frames waiting for it has grown too long.
///
/// Times are kept in units of `1 / rate_bps` nanoseconds, so that a frame's
/// wire time (`bits × 10^9` of those units) is an exact integer and
/// back-to-back frames never accumulate rounding.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate_bps: Option<u64>,
    max_backlog_ns: u64,
    /// When the last booked frame's last bit leaves, in 1/rate ns.
    busy_until: u128,
}

impl Pacer {
    /// A pacer for `rate_bps` (`None` or `Some(0)`: unlimited, never busy)
    /// that refuses frames while more than `max_backlog` of wire time is
    /// queued ahead of them.
    pub fn new(rate_bps: Option<u64>, max_backlog: Duration) -> Pacer {
        Pacer { rate_bps: rate_bps.filter(|&r| r > 0), max_backlog_ns: saturating_ns(max_backlog), busy_until: 0 }
    }

    /// The line rate, `None` when unlimited.
    pub fn rate_bps(&self) -> Option<u64> {
        self.rate_bps
    }

    /// Wire time already queued ahead of a frame offered at `now_ns`, in
    /// nanoseconds (rounded up).
    pub fn backlog_ns(&self, now_ns: u64) -> u64 {
        match self.rate_bps {
            None => 0,
            Some(rate) => {
                let now = u128::from(now_ns) * u128::from(rate);
                let ns = self.busy_until.saturating_sub(now).div_ceil(u128::from(rate));
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }

    /// The earliest time at which [`try_book`](Pacer::try_book) accepts a
    /// frame again.
    pub fn ready_at_ns(&self) -> u64 {
        match self.rate_bps {
            None => 0,
            Some(rate) => {
                let rate = u128::from(rate);
                let limit = u128::from(self.max_backlog_ns) * rate;
                u64::try_from(self.busy_until.saturating_sub(limit).div_ceil(rate)).unwrap_or(u64::MAX)
            }
        }
    }

    /// Books the wire for a frame of `frame_len` bytes offered at `now_ns`
    /// and returns the time its last bit has left (rounded up to a whole
    /// nanosecond). `Err(WireError::Busy)` when the wire time queued ahead
    /// of it exceeds the maximum backlog; nothing is booked then.
    pub fn try_book(&mut self, now_ns: u64, frame_len: usize) -> Result<u64, WireError> {
        let Some(rate) = self.rate_bps else { return Ok(now_ns) };
        let rate = u128::from(rate);
        let now = u128::from(now_ns) * rate;
        let start = self.busy_until.max(now);
        if start - now > u128::from(self.max_backlog_ns) * rate {
            return Err(WireError::Busy);
        }
        self.busy_until = start + u128::from(wire_bytes(frame_len)) * 8 * 1_000_000_000;
        Ok(u64::try_from(self.busy_until.div_ceil(rate)).unwrap_or(u64::MAX))
    }
}

/// How a [`Link`] behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Line rate in bits per second; `None` is unlimited (frames take no
    /// wire time). `Some(0)` is treated as `None`.
    pub rate_bps: Option<u64>,
    /// Propagation delay added to every frame after its last bit has left.
    pub latency: Duration,
    /// Transmit refuses with [`WireError::Busy`] while more than this much
    /// wire time is queued ahead of the offered frame, like a NIC whose
    /// transmit FIFO is full. Irrelevant when the rate is unlimited.
    pub max_backlog: Duration,
    /// Seeded loss, duplication, reordering and corruption.
    pub impairments: Impairments,
    /// Longest frame (without FCS) the link carries; longer ones are refused
    /// with [`WireError::TooLong`].
    pub max_frame: usize,
}

impl LinkConfig {
    /// 10 Gbit/s line rate, 1 µs latency, a backlog of 131 072 ns (the
    /// 82599's 160 KiB transmit packet buffer at line rate), no
    /// impairments, standard 1514-byte frames.
    pub const fn ten_gig() -> LinkConfig {
        LinkConfig {
            rate_bps: Some(TEN_GIGABIT),
            latency: Duration::from_micros(1),
            max_backlog: Duration::from_nanos(131_072),
            impairments: Impairments::none(),
            max_frame: MAX_FRAME_LEN,
        }
    }

    /// Unlimited rate, no latency, no impairments, standard 1514-byte frames:
    /// what is sent is deliverable at once, in order.
    pub const fn unlimited() -> LinkConfig {
        LinkConfig {
            rate_bps: None,
            latency: Duration::ZERO,
            max_backlog: Duration::from_nanos(131_072),
            impairments: Impairments::none(),
            max_frame: MAX_FRAME_LEN,
        }
    }

    /// No line rate, no latency and no impairment: a frame is deliverable
    /// the moment it is sent, in sending order, so the link needs no clock.
    pub fn is_instant(&self) -> bool {
        matches!(self.rate_bps, None | Some(0)) && self.latency.is_zero() && self.impairments.is_none()
    }

    /// The same link with these impairments.
    pub const fn with_impairments(mut self, impairments: Impairments) -> LinkConfig {
        self.impairments = impairments;
        self
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::unlimited()
    }
}

/// Counters of one direction of a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames accepted for transmission.
    pub sent_frames: u64,
    /// Bytes (frame lengths, without FCS) accepted for transmission.
    pub sent_bytes: u64,
    /// Frames taken by the receiving end (duplicates count twice).
    pub delivered_frames: u64,
    /// Bytes taken by the receiving end.
    pub delivered_bytes: u64,
    /// Frames lost on the wire.
    pub dropped: u64,
    /// Frames delivered an extra time.
    pub duplicated: u64,
    /// Frames held back and overtaken.
    pub reordered: u64,
    /// Frames with one bit flipped.
    pub corrupted: u64,
    /// Transmissions refused because the backlog was full.
    pub busy: u64,
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} frames/{} B, delivered {} frames/{} B, dropped {}, duplicated {}, reordered {}, corrupted {}, busy {}",
            self.sent_frames,
            self.sent_bytes,
            self.delivered_frames,
            self.delivered_bytes,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.busy
        )
    }
}

/// The counters of one direction, shared by its two ends. Each field has
/// one writer (the sender for what it sends, the receiver for what it
/// takes), which adds with a plain load and store: no read-modify-write,
/// no lock. Readers on either end may see a frame counted as sent and not
/// yet as delivered.
#[derive(Debug, Default)]
struct SharedStats {
    sent_frames: AtomicU64,
    sent_bytes: AtomicU64,
    delivered_frames: AtomicU64,
    delivered_bytes: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    busy: AtomicU64,
}

/// Adds `n` to a counter only this thread writes.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl SharedStats {
    fn snapshot(&self) -> LinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStats {
            sent_frames: get(&self.sent_frames),
            sent_bytes: get(&self.sent_bytes),
            delivered_frames: get(&self.delivered_frames),
            delivered_bytes: get(&self.delivered_bytes),
            dropped: get(&self.dropped),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
            corrupted: get(&self.corrupted),
            busy: get(&self.busy),
        }
    }
}

/// A frame on its way, as the sender hands it to the receiving end.
#[derive(Debug)]
struct Sent {
    arrival_ns: u64,
    frame: Vec<u8>,
    /// `Some(n)`: reordered, held back until `n` later frames have passed.
    overtaken_by: Option<u32>,
}

#[derive(Debug)]
struct InFlight {
    arrival_ns: u64,
    frame: Vec<u8>,
}

#[derive(Debug)]
struct Held {
    frame: Vec<u8>,
    /// Later frames still to overtake this one.
    remaining: u32,
    /// Delivered at this time if not enough frames overtake it.
    deadline_ns: u64,
}

/// The sending half of one direction, owned by the end that transmits on
/// it: pacing, impairments, and the handoff to the other end.
struct TxSide {
    pacer: Pacer,
    latency_ns: u64,
    max_frame: usize,
    impairer: Option<Impairer>,
    stats: Arc<SharedStats>,
    chan: channel::Sender<Sent>,
}

/// The receiving half of one direction, owned by the end that receives
/// from it: frames taken from the handoff, ordered by arrival, and the
/// reordered ones held back.
///
/// The sender decides every frame's arrival time and fate; the receiver
/// replays, in sending order, what happens to the held frames when each
/// frame joins (`push`). It does so when it next looks (receive,
/// `next_arrival_ns`, `pending`), with no receive-side step in between, so
/// the outcome is what it would have been at the sending time.
struct RxSide {
    chan: channel::Receiver<Sent>,
    /// Ordered by arrival time (see `push`).
    in_flight: VecDeque<InFlight>,
    /// Reordered frames, in the order they were held (so also by deadline).
    held: VecDeque<Held>,
    stats: Arc<SharedStats>,
}

/// One direction: the sending half for one end, the receiving half for the
/// other.
fn direction(config: &LinkConfig, index: u64) -> (TxSide, RxSide) {
    let imp = &config.impairments;
    let stats = Arc::new(SharedStats::default());
    let (tx, rx) = channel::channel();
    let tx = TxSide {
        pacer: Pacer::new(config.rate_bps, config.max_backlog),
        latency_ns: saturating_ns(config.latency),
        max_frame: config.max_frame,
        impairer: (!imp.is_none()).then(|| Impairer::new(imp, index)),
        stats: Arc::clone(&stats),
        chan: tx,
    };
    let rx = RxSide { chan: rx, in_flight: VecDeque::new(), held: VecDeque::new(), stats };
    (tx, rx)
}

impl TxSide {
    /// Books the wire for a frame of `len` bytes and decides its fate;
    /// `Ok(None)` when it is lost on the way.
    fn admit(&mut self, now_ns: u64, len: usize) -> Result<Option<(u64, Fate)>, WireError> {
        if len > self.max_frame {
            return Err(WireError::TooLong { len, max: self.max_frame });
        }
        let end_ns = match self.pacer.try_book(now_ns, len) {
            Ok(end) => end,
            Err(e) => {
                add(&self.stats.busy, 1);
                return Err(e);
            }
        };
        add(&self.stats.sent_frames, 1);
        add(&self.stats.sent_bytes, len as u64);
        let arrival_ns = end_ns.saturating_add(self.latency_ns);
        let fate = match self.impairer.as_mut() {
            Some(imp) => imp.decide(len),
            None => Fate::default(),
        };
        if fate.lost {
            add(&self.stats.dropped, 1);
            return Ok(None);
        }
        Ok(Some((arrival_ns, fate)))
    }

    /// Sends the frame in `buf` (already admitted) with its fate applied.
    fn send(&mut self, arrival_ns: u64, fate: Fate, mut buf: Vec<u8>) {
        if let Some(at) = fate.corrupt_at {
            flip_bit(&mut buf, at);
            add(&self.stats.corrupted, 1);
        }
        if fate.duplicated {
            let mut copy = self.chan.buffer();
            copy.extend_from_slice(&buf);
            self.chan.send(Sent { arrival_ns, frame: copy, overtaken_by: None });
            add(&self.stats.duplicated, 1);
        }
        if fate.overtaken_by.is_some() {
            add(&self.stats.reordered, 1);
        }
        self.chan.send(Sent { arrival_ns, frame: buf, overtaken_by: fate.overtaken_by });
    }
}

impl RxSide {
    /// Takes every frame the sender has handed over.
    fn sync(&mut self) {
        while let Some(sent) = self.chan.recv() {
            self.accept(sent);
        }
    }

    /// One frame taken from the handoff joins the frames in flight, or the
    /// held ones if it was reordered.
    fn accept(&mut self, sent: Sent) {
        match sent.overtaken_by {
            Some(remaining) => {
                let deadline_ns = sent.arrival_ns.saturating_add(saturating_ns(REORDER_MAX_HOLD));
                self.held.push_back(Held { frame: sent.frame, remaining, deadline_ns });
            }
            None => self.push(sent.arrival_ns, sent.frame),
        }
    }

    /// Appends a frame arriving at `arrival_ns` and lets held frames go.
    ///
    /// Invariant: every frame in `in_flight` arrives no later than every
    /// held frame's deadline. Arrival times of pushed frames never decrease
    /// (departures are paced in order, the latency is fixed), and a held
    /// frame's deadline lies after its own arrival, so releasing the held
    /// frames whose deadline has passed before pushing keeps `in_flight`
    /// sorted.
    fn push(&mut self, arrival_ns: u64, frame: Vec<u8>) {
        while self.held.front().is_some_and(|h| h.deadline_ns < arrival_ns) {
            if let Some(h) = self.held.pop_front() {
                self.in_flight.push_back(InFlight { arrival_ns: h.deadline_ns, frame: h.frame });
            }
        }
        self.in_flight.push_back(InFlight { arrival_ns, frame });
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            h.remaining = h.remaining.saturating_sub(1);
            if h.remaining == 0 {
                if let Some(h) = self.held.remove(i) {
                    self.in_flight.push_back(InFlight { arrival_ns, frame: h.frame });
                }
            } else {
                i += 1;
            }
        }
    }

    /// Held frames whose deadline has come join the frames in flight.
    fn release_expired(&mut self, now_ns: u64) {
        while self.held.front().is_some_and(|h| h.deadline_ns <= now_ns) {
            if let Some(h) = self.held.pop_front() {
                self.in_flight.push_back(InFlight { arrival_ns: h.deadline_ns, frame: h.frame });
            }
        }
    }

    fn receive(&mut self, now_ns: u64, buf: &mut Vec<u8>) -> bool {
        if self.in_flight.is_empty() && self.held.is_empty() {
            // Nothing waits on this side: the next frame handed over, if it
            // is due and not held back, would join `in_flight` at its
            // front and leave it at once, so it goes out directly. Frames
            // behind it stay in the handoff, in order, until the next look.
            match self.chan.recv() {
                None => return false,
                Some(Sent { arrival_ns, frame, overtaken_by: None }) if arrival_ns <= now_ns => {
                    self.hand_out(frame, buf);
                    // The next frame was written on the sender's core: one
                    // load of its first byte now starts fetching it while
                    // this one is processed (nothing waits for the load).
                    if let Some(next) = self.chan.peek() {
                        std::hint::black_box(next.frame.first().copied());
                    }
                    return true;
                }
                Some(sent) => self.accept(sent),
            }
        }
        self.sync();
        self.release_expired(now_ns);
        if self.in_flight.front().is_none_or(|f| f.arrival_ns > now_ns) {
            return false;
        }
        let Some(f) = self.in_flight.pop_front() else { return false };
        self.hand_out(f.frame, buf);
        true
    }

    /// Delivers `frame` into `buf`, counting it; `buf`'s old buffer goes
    /// back to the sender.
    #[inline(always)]
    fn hand_out(&mut self, frame: Vec<u8>, buf: &mut Vec<u8>) {
        let old = std::mem::replace(buf, frame);
        add(&self.stats.delivered_frames, 1);
        add(&self.stats.delivered_bytes, buf.len() as u64);
        self.chan.recycle(old);
    }

    fn next_arrival_ns(&mut self) -> Option<u64> {
        self.sync();
        // By the invariant of `push`, frames in flight come before held ones.
        self.in_flight.front().map(|f| f.arrival_ns).or_else(|| self.held.front().map(|h| h.deadline_ns))
    }

    fn pending(&mut self) -> usize {
        self.sync();
        self.in_flight.len() + self.held.len()
    }
}

/// The in-memory link; [`Link::pair`] makes its two ends.
#[derive(Debug)]
pub struct Link;

impl Link {
    /// The two ends of a link configured by `config`, reading time from
    /// `clock`. End `.0` sends on direction 0 (its impairments use stream 0
    /// of the seed), end `.1` on direction 1.
    pub fn pair(config: LinkConfig, clock: Arc<dyn Clock>) -> (LinkEnd, LinkEnd) {
        let (a_tx, a_rx) = direction(&config, 0);
        let (b_tx, b_rx) = direction(&config, 1);
        (
            LinkEnd {
                tx: a_tx,
                rx: RefCell::new(b_rx),
                clock: Arc::clone(&clock),
                config,
                instant: config.is_instant(),
            },
            LinkEnd { tx: b_tx, rx: RefCell::new(a_rx), clock, config, instant: config.is_instant() },
        )
    }
}

/// One end of a [`Link`]. It may move to another thread (`Send`) but is not
/// shared between threads (`!Sync`): each end is one direction's only
/// sender and the other's only receiver.
pub struct LinkEnd {
    tx: TxSide,
    /// Also looked at through `&self` (`next_arrival_ns`, `pending`), which
    /// first takes what the sender handed over.
    rx: RefCell<RxSide>,
    clock: Arc<dyn Clock>,
    config: LinkConfig,
    /// No line rate, no latency, no impairment ([`LinkConfig::is_instant`]):
    /// every frame is due the moment it is sent, so neither direction needs
    /// the time. Such an end never reads its clock on the data path, which
    /// on the monotonic clock is a system call's worth per frame.
    instant: bool,
}

impl fmt::Debug for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkEnd").field("config", &self.config).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl LinkEnd {
    /// Counters of the direction this end transmits on (its frames towards
    /// the other end).
    pub fn stats(&self) -> LinkStats {
        self.tx.stats.snapshot()
    }

    /// Counters of the direction this end receives from.
    pub fn incoming_stats(&self) -> LinkStats {
        self.rx.borrow().stats.snapshot()
    }

    /// When the next frame towards this end becomes deliverable (it may be
    /// now or in the past), or `None` when nothing is in flight towards it.
    /// A virtual-time loop advances the clock straight to the smallest of
    /// these over all ends.
    pub fn next_arrival_ns(&self) -> Option<u64> {
        self.rx.borrow_mut().next_arrival_ns()
    }

    /// The earliest time at which [`transmit`](Wire::transmit) accepts a
    /// frame again (in the past when it accepts now).
    pub fn transmit_ready_ns(&self) -> u64 {
        self.tx.pacer.ready_at_ns()
    }

    /// Wire time queued on this end's transmit side at the clock's present
    /// time.
    pub fn backlog(&self) -> Duration {
        Duration::from_nanos(self.tx.pacer.backlog_ns(self.clock.now_ns()))
    }

    /// Frames in flight towards this end, deliverable or not.
    pub fn pending(&self) -> usize {
        self.rx.borrow_mut().pending()
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }
}

impl Wire for LinkEnd {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let now = self.clock.now_ns();
        if let Some((arrival_ns, fate)) = self.tx.admit(now, frame.len())? {
            let mut buf = self.tx.chan.buffer();
            buf.extend_from_slice(frame);
            self.tx.send(arrival_ns, fate, buf);
            self.tx.chan.flush();
        }
        Ok(())
    }

    /// Takes the caller's buffer onto the link and gives it an emptied one
    /// from the other end in exchange: the frame is not copied. It reaches
    /// the other end with its burst, at the latest at [`flush`](Wire::flush)
    /// (its arrival time is booked now).
    fn transmit_buf(&mut self, frame: &mut Vec<u8>) -> Result<(), WireError> {
        let tx = &mut self.tx;
        if tx.impairer.is_none() && tx.pacer.rate_bps.is_none() && frame.len() <= tx.max_frame {
            // The usual in-memory link: no line rate, no impairment. What
            // `admit` and `send` would do with nothing to book or decide:
            // count the frame and hand it over, due after the latency (at
            // once on an instant link, which needs no clock for that).
            let arrival_ns = if self.instant { 0 } else { self.clock.now_ns().saturating_add(tx.latency_ns) };
            add(&tx.stats.sent_frames, 1);
            add(&tx.stats.sent_bytes, frame.len() as u64);
            let spare = tx.chan.buffer();
            let frame = std::mem::replace(frame, spare);
            tx.chan.send(Sent { arrival_ns, frame, overtaken_by: None });
            return Ok(());
        }
        let now = self.clock.now_ns();
        if let Some((arrival_ns, fate)) = self.tx.admit(now, frame.len())? {
            let spare = self.tx.chan.buffer();
            self.tx.send(arrival_ns, fate, std::mem::replace(frame, spare));
        }
        Ok(())
    }

    fn flush(&mut self) {
        self.tx.chan.flush();
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        // On an instant link everything handed over is due (and nothing is
        // ever held back), whatever the time.
        let now = if self.instant { u64::MAX } else { self.clock.now_ns() };
        self.rx.get_mut().receive(now, buf)
    }

    fn ring_on_arrival(&mut self, bell: Arc<Doorbell>) -> bool {
        self.rx.get_mut().chan.ring_on_publish(bell)
    }

    /// Frames on the line (in flight or held back for reordering) wait
    /// here until their arrival time, which only `receive` reads the clock
    /// for.
    fn holds_frames(&self) -> bool {
        let rx = self.rx.borrow();
        rx.chan.holds_items() || !rx.in_flight.is_empty() || !rx.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::VirtualClock;

    #[test]
    fn wire_bytes_pads_and_adds_overhead() {
        assert_eq!(wire_bytes(0), 84);
        assert_eq!(wire_bytes(60), 84);
        assert_eq!(wire_bytes(61), 85);
        assert_eq!(wire_bytes(1514), 1538);
    }

    #[test]
    fn pacer_is_exact_over_many_frames() {
        let mut p = Pacer::new(Some(TEN_GIGABIT), Duration::from_secs(1));
        let mut end = 0;
        for _ in 0..1000 {
            end = p.try_book(0, 60).unwrap_or(0);
        }
        // 1000 × 67.2 ns, no drift.
        assert_eq!(end, 67_200);
        assert_eq!(p.backlog_ns(0), 67_200);
        assert_eq!(p.backlog_ns(67_200), 0);
    }

    #[test]
    fn pacer_refuses_only_beyond_the_backlog_and_reports_when_ready() {
        let mut p = Pacer::new(Some(TEN_GIGABIT), Duration::from_nanos(100));
        assert_eq!(p.try_book(0, 60), Ok(68)); // 67.2 rounded up
        assert_eq!(p.try_book(0, 60), Ok(135)); // 134.4, backlog ahead 67.2
        assert_eq!(p.try_book(0, 60), Err(WireError::Busy)); // 134.4 ahead > 100
        assert_eq!(p.ready_at_ns(), 35); // 134.4 - 100 = 34.4
        assert_eq!(p.try_book(34, 60), Err(WireError::Busy));
        assert_eq!(p.try_book(35, 60), Ok(202)); // 201.6
    }

    #[test]
    fn unlimited_pacer_never_waits() {
        let mut p = Pacer::new(None, Duration::ZERO);
        assert_eq!(p.try_book(5, 1514), Ok(5));
        assert_eq!(p.ready_at_ns(), 0);
        assert_eq!(Pacer::new(Some(0), Duration::ZERO).rate_bps(), None);
    }

    #[test]
    fn unimpaired_frames_keep_their_latency_order_and_counts_on_the_direct_path() {
        let clock = VirtualClock::new();
        let config = LinkConfig { latency: Duration::from_nanos(100), max_frame: 100, ..LinkConfig::unlimited() };
        let (mut a, mut b) = Link::pair(config, Arc::new(clock.clone()));
        let mut frame = vec![1; 60];
        a.transmit_buf(&mut frame).unwrap_or(());
        a.flush();
        clock.advance_to(50);
        let mut frame = vec![2; 60];
        a.transmit_buf(&mut frame).unwrap_or(());
        a.flush();
        let mut buf = Vec::new();
        assert!(!b.receive(&mut buf), "not due before the latency has passed");
        assert_eq!((b.pending(), b.next_arrival_ns()), (2, Some(100)));
        clock.advance_to(100);
        assert!(b.receive(&mut buf) && buf == [1; 60]);
        assert!(!b.receive(&mut buf), "the second is due at 150");
        clock.advance_to(150);
        assert!(b.receive(&mut buf) && buf == [2; 60]);
        // Nothing waits now: a due frame goes straight through.
        let mut frame = vec![3; 60];
        a.transmit_buf(&mut frame).unwrap_or(());
        a.flush();
        clock.advance_to(250);
        assert!(b.receive(&mut buf) && buf == [3; 60]);
        let mut long = vec![4; 101];
        assert_eq!(a.transmit_buf(&mut long), Err(WireError::TooLong { len: 101, max: 100 }));
        let (sent, got) = (a.stats(), b.incoming_stats());
        assert_eq!((sent.sent_frames, sent.sent_bytes, got.delivered_frames, got.delivered_bytes), (3, 180, 3, 180));
    }

    /// A clock that counts how often it is read.
    #[derive(Default)]
    struct CountingClock {
        now: std::sync::atomic::AtomicU64,
        reads: std::sync::atomic::AtomicU64,
    }

    impl Clock for CountingClock {
        fn now_ns(&self) -> u64 {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.now.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn an_instant_link_moves_frames_without_reading_the_clock_and_a_slow_one_keeps_time() {
        use std::sync::atomic::Ordering::Relaxed;
        assert!(LinkConfig::unlimited().is_instant());
        assert!(LinkConfig { rate_bps: Some(0), ..LinkConfig::unlimited() }.is_instant());
        assert!(!LinkConfig::ten_gig().is_instant());
        assert!(!LinkConfig { latency: Duration::from_nanos(1), ..LinkConfig::unlimited() }.is_instant());
        let lossy = Impairments { loss: 0.5, seed: 1, ..Impairments::none() };
        assert!(!LinkConfig::unlimited().with_impairments(lossy).is_instant());

        let clock = Arc::new(CountingClock::default());
        clock.now.store(1_000, Relaxed);
        let (mut a, mut b) = Link::pair(LinkConfig::unlimited(), clock.clone());
        let mut buf = Vec::new();
        for i in 0..10u8 {
            let mut frame = vec![i; 60];
            assert_eq!(a.transmit_buf(&mut frame), Ok(()));
            a.flush();
            assert!(b.receive(&mut buf) && buf == [i; 60], "frame {i} is due at once, in order");
        }
        assert_eq!(clock.reads.load(Relaxed), 0, "an instant link never needs the time");
        let (sent, got) = (a.stats(), b.incoming_stats());
        assert_eq!((sent.sent_frames, got.delivered_frames, got.delivered_bytes), (10, 10, 600));

        // With a latency the same path reads the clock and holds the frame.
        let config = LinkConfig { latency: Duration::from_nanos(100), ..LinkConfig::unlimited() };
        let (mut a, mut b) = Link::pair(config, clock.clone());
        let mut frame = vec![7; 60];
        assert_eq!(a.transmit_buf(&mut frame), Ok(()));
        a.flush();
        assert!(!b.receive(&mut buf), "due only at 1100");
        assert!(clock.reads.load(Relaxed) >= 2);
        clock.now.store(1_100, Relaxed);
        assert!(b.receive(&mut buf) && buf == [7; 60]);
    }

    #[test]
    fn reordered_frame_is_released_after_the_hold_on_a_quiet_link() {
        let clock = VirtualClock::new();
        let imp = Impairments { reorder: 1.0, seed: 3, ..Impairments::none() };
        let (mut a, mut b) = Link::pair(LinkConfig::unlimited().with_impairments(imp), Arc::new(clock.clone()));
        a.transmit(&[1; 60]).unwrap_or(());
        let mut buf = Vec::new();
        assert!(!b.receive(&mut buf));
        let hold = saturating_ns(REORDER_MAX_HOLD);
        assert_eq!(b.next_arrival_ns(), Some(hold));
        clock.advance_to(hold);
        assert!(b.receive(&mut buf));
        assert_eq!(buf, [1; 60]);
        assert_eq!(a.stats().reordered, 1);
    }
}
