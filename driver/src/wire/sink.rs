//! Wires with only one interesting direction: a [`SinkWire`] swallows what
//! is transmitted (pktgen's far end), a [`GeneratorWire`] delivers an
//! endless stream of frames (the `fwd` example's traffic source).
//!
//! Both count through atomics behind a cloneable handle, so another thread
//! (a benchmark's reporter) can read the counters while the wire is owned by
//! the model's thread. Both may be paced to a line rate with the same
//! arithmetic as the [`Link`](super::link::Link) ([`Pacer`], [`wire_bytes`]).

use super::link::{Pacer, TEN_GIGABIT, wire_bytes};
use super::{Wire, WireError};
use crate::time::Clock;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
struct SinkCounts {
    frames: AtomicU64,
    bytes: AtomicU64,
    busy: AtomicU64,
}

/// Read side of a [`SinkWire`]'s counters.
#[derive(Debug, Clone)]
pub struct SinkCounters(Arc<SinkCounts>);

impl SinkCounters {
    /// Frames swallowed.
    pub fn frames(&self) -> u64 {
        self.0.frames.load(Ordering::Relaxed)
    }

    /// Bytes (frame lengths, without FCS) swallowed.
    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }

    /// Transmissions refused because the paced backlog was full.
    pub fn busy(&self) -> u64 {
        self.0.busy.load(Ordering::Relaxed)
    }
}

/// A wire that swallows and counts every transmitted frame and never
/// receives anything: the far end of a pktgen run.
pub struct SinkWire {
    counts: Arc<SinkCounts>,
    pacing: Option<(Pacer, Arc<dyn Clock>)>,
}

impl fmt::Debug for SinkWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkWire")
            .field("counts", &self.counts)
            .field("pacer", &self.pacing.as_ref().map(|(p, _)| p))
            .finish()
    }
}

impl SinkWire {
    /// An unlimited sink: every frame is accepted at once.
    pub fn new() -> (SinkWire, SinkCounters) {
        let counts = Arc::new(SinkCounts::default());
        (SinkWire { counts: Arc::clone(&counts), pacing: None }, SinkCounters(counts))
    }

    /// A sink that accepts frames at `rate_bps` line rate only, refusing
    /// with [`WireError::Busy`] while more than `max_backlog` of wire time
    /// is queued, exactly as a [`Link`](super::link::Link) end does.
    pub fn paced(rate_bps: u64, max_backlog: Duration, clock: Arc<dyn Clock>) -> (SinkWire, SinkCounters) {
        let counts = Arc::new(SinkCounts::default());
        let pacing = Some((Pacer::new(Some(rate_bps), max_backlog), clock));
        (SinkWire { counts: Arc::clone(&counts), pacing }, SinkCounters(counts))
    }

    /// A sink paced to 10 Gbit/s with the default backlog of
    /// [`LinkConfig::ten_gig`](super::link::LinkConfig::ten_gig).
    pub fn ten_gig(clock: Arc<dyn Clock>) -> (SinkWire, SinkCounters) {
        SinkWire::paced(TEN_GIGABIT, super::link::LinkConfig::ten_gig().max_backlog, clock)
    }

    /// The counters, as returned by the constructor.
    pub fn counters(&self) -> SinkCounters {
        SinkCounters(Arc::clone(&self.counts))
    }
}

impl Wire for SinkWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        if let Some((pacer, clock)) = self.pacing.as_mut() {
            if let Err(e) = pacer.try_book(clock.now_ns(), frame.len()) {
                self.counts.busy.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        self.counts.frames.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn receive(&mut self, _buf: &mut Vec<u8>) -> bool {
        false
    }
}

#[derive(Debug, Default)]
struct GeneratorCounts {
    generated_frames: AtomicU64,
    generated_bytes: AtomicU64,
    transmitted_frames: AtomicU64,
    transmitted_bytes: AtomicU64,
}

/// Read side of a [`GeneratorWire`]'s counters.
#[derive(Debug, Clone)]
pub struct GeneratorCounters(Arc<GeneratorCounts>);

impl GeneratorCounters {
    /// Frames delivered to the receiver.
    pub fn generated_frames(&self) -> u64 {
        self.0.generated_frames.load(Ordering::Relaxed)
    }

    /// Bytes delivered to the receiver.
    pub fn generated_bytes(&self) -> u64 {
        self.0.generated_bytes.load(Ordering::Relaxed)
    }

    /// Frames the receiver transmitted back onto the wire (swallowed).
    pub fn transmitted_frames(&self) -> u64 {
        self.0.transmitted_frames.load(Ordering::Relaxed)
    }

    /// Bytes the receiver transmitted back onto the wire (swallowed).
    pub fn transmitted_bytes(&self) -> u64 {
        self.0.transmitted_bytes.load(Ordering::Relaxed)
    }
}

type Source = Box<dyn FnMut(u64, &mut Vec<u8>) + Send>;

struct GeneratorPacing {
    rate: u128,
    clock: Arc<dyn Clock>,
    /// When the next frame's last bit arrives, in 1/rate ns (as in
    /// [`Pacer`]), once the next frame has been made.
    next_arrival: u128,
}

/// A wire that delivers a stream of frames to its receiver (a given frame
/// repeated, or frames made by a closure), optionally paced to a line rate,
/// and swallows and counts whatever is transmitted onto it: traffic source
/// and sink of the `fwd` example.
///
/// When paced, frame `n` arrives when its last bit would have arrived on a
/// saturated line starting at the time [`paced`](GeneratorWire::paced) was
/// called. A receiver that polls late finds all the frames that arrived in
/// the meantime waiting, as a real port would: it must keep up or drop
/// them (the model counts those as missed packets).
pub struct GeneratorWire {
    source: Source,
    /// The next frame, made ahead when pacing needs its length.
    next: Option<Vec<u8>>,
    seq: u64,
    limit: Option<u64>,
    pacing: Option<GeneratorPacing>,
    counts: Arc<GeneratorCounts>,
}

impl fmt::Debug for GeneratorWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratorWire")
            .field("seq", &self.seq)
            .field("limit", &self.limit)
            .field("paced", &self.pacing.is_some())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl GeneratorWire {
    /// Delivers `frame` over and over.
    pub fn repeat(frame: Vec<u8>) -> (GeneratorWire, GeneratorCounters) {
        GeneratorWire::from_fn(move |_, buf| {
            buf.clear();
            buf.extend_from_slice(&frame);
        })
    }

    /// Delivers the frames `make(n, buf)` writes into `buf` (replacing its
    /// contents) for n = 0, 1, 2, ….
    pub fn from_fn(make: impl FnMut(u64, &mut Vec<u8>) + Send + 'static) -> (GeneratorWire, GeneratorCounters) {
        let counts = Arc::new(GeneratorCounts::default());
        let wire = GeneratorWire {
            source: Box::new(make),
            next: None,
            seq: 0,
            limit: None,
            pacing: None,
            counts: Arc::clone(&counts),
        };
        (wire, GeneratorCounters(counts))
    }

    /// Stops after `frames` frames.
    pub fn with_limit(mut self, frames: u64) -> GeneratorWire {
        self.limit = Some(frames);
        self
    }

    /// Paces delivery to `rate_bps` (counting preamble, padding, FCS and
    /// inter-frame gap as the link does), starting now on `clock`.
    /// A rate of zero means unpaced.
    pub fn paced(mut self, rate_bps: u64, clock: Arc<dyn Clock>) -> GeneratorWire {
        self.pacing = (rate_bps > 0).then(|| {
            let rate = u128::from(rate_bps);
            let start = u128::from(clock.now_ns()) * rate;
            GeneratorPacing { rate, clock, next_arrival: start }
        });
        self.next = None;
        self
    }

    /// The counters, as returned by the constructor.
    pub fn counters(&self) -> GeneratorCounters {
        GeneratorCounters(Arc::clone(&self.counts))
    }

    /// When the next frame becomes deliverable (`Some(0)` when unpaced), or
    /// `None` when the limit has been reached.
    pub fn next_arrival_ns(&mut self) -> Option<u64> {
        if self.limit.is_some_and(|l| self.seq >= l) {
            return None;
        }
        match self.pacing.is_some() {
            false => Some(0),
            true => {
                self.make_next();
                let p = self.pacing.as_ref()?;
                u64::try_from(p.next_arrival.div_ceil(p.rate)).ok()
            }
        }
    }

    /// Makes the next frame ahead of time and books its wire time.
    fn make_next(&mut self) {
        if self.next.is_some() {
            return;
        }
        let mut frame = Vec::new();
        (self.source)(self.seq, &mut frame);
        if let Some(p) = self.pacing.as_mut() {
            p.next_arrival += u128::from(wire_bytes(frame.len())) * 8 * 1_000_000_000;
        }
        self.next = Some(frame);
    }
}

impl Wire for GeneratorWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.counts.transmitted_frames.fetch_add(1, Ordering::Relaxed);
        self.counts.transmitted_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.limit.is_some_and(|l| self.seq >= l) {
            return false;
        }
        match self.pacing.as_ref() {
            None => (self.source)(self.seq, buf),
            Some(_) => {
                self.make_next();
                let Some(p) = self.pacing.as_ref() else { return false };
                if u128::from(p.clock.now_ns()) * p.rate < p.next_arrival {
                    return false;
                }
                let Some(mut frame) = self.next.take() else { return false };
                std::mem::swap(buf, &mut frame);
            }
        }
        self.seq += 1;
        self.counts.generated_frames.fetch_add(1, Ordering::Relaxed);
        self.counts.generated_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::VirtualClock;

    #[test]
    fn sink_counts_and_never_receives() {
        let (mut sink, counters) = SinkWire::new();
        for len in [60usize, 100, 1514] {
            sink.transmit(&vec![0; len]).unwrap_or(());
        }
        assert_eq!((counters.frames(), counters.bytes(), counters.busy()), (3, 1674, 0));
        assert!(!sink.receive(&mut Vec::new()));
        assert_eq!(sink.counters().frames(), 3);
    }

    #[test]
    fn paced_sink_accepts_line_rate_only() {
        let clock = VirtualClock::new();
        let (mut sink, counters) = SinkWire::paced(TEN_GIGABIT, Duration::from_nanos(1000), Arc::new(clock.clone()));
        let frame = [0u8; 60];
        // Offer frames every nanosecond for 10 µs: the line stays saturated
        // and a frame is accepted while at most 1000 ns are queued ahead of
        // it; frame k (from 0) starts at 67.2 k ns, so by 9 999 ns those
        // with 67.2 k <= 10 999 got in.
        for _ in 0..10_000 {
            while sink.transmit(&frame).is_ok() {}
            clock.advance(Duration::from_nanos(1));
        }
        assert_eq!(counters.frames(), 10_999 * 10 / 672 + 1);
        assert!(counters.busy() > 0);
    }

    #[test]
    fn generator_repeats_counts_and_stops_at_its_limit() {
        let (g, counters) = GeneratorWire::repeat(vec![7; 64]);
        let mut g = g.with_limit(3);
        let mut buf = Vec::new();
        let mut n = 0;
        while g.receive(&mut buf) {
            assert_eq!(buf, [7; 64]);
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(g.next_arrival_ns(), None);
        g.transmit(&[1; 100]).unwrap_or(());
        assert_eq!(counters.generated_frames(), 3);
        assert_eq!(counters.generated_bytes(), 192);
        assert_eq!((counters.transmitted_frames(), counters.transmitted_bytes()), (1, 100));
    }

    #[test]
    fn generator_from_fn_numbers_its_frames() {
        let (mut g, _) = GeneratorWire::from_fn(|n, buf| {
            buf.clear();
            buf.extend_from_slice(&n.to_be_bytes());
        });
        let mut buf = Vec::new();
        for want in 0u64..5 {
            assert!(g.receive(&mut buf));
            assert_eq!(buf, want.to_be_bytes());
        }
    }

    #[test]
    fn paced_generator_delivers_at_line_rate() {
        let clock = VirtualClock::new();
        clock.advance(Duration::from_micros(5));
        let (g, counters) = GeneratorWire::repeat(vec![0; 60]);
        let mut g = g.paced(TEN_GIGABIT, Arc::new(clock.clone()));
        let mut buf = Vec::new();
        assert!(!g.receive(&mut buf));
        assert_eq!(g.next_arrival_ns(), Some(5_068)); // 5000 + 67.2, rounded up
        clock.advance(Duration::from_millis(1));
        while g.receive(&mut buf) {}
        // Frames whose last bit arrived by 1 ms after the start.
        assert_eq!(counters.generated_frames(), 1_000_000 * 10 / 672);
    }
}
