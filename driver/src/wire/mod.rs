//! Wires: what the model's Ethernet port is plugged into.
//!
//! A [`Wire`] carries whole Ethernet frames (destination MAC through
//! payload, without the FCS) in both directions. The model transmits onto
//! it when the driver writes TDT and receives from it when pumped.
//!
//! - [`QueueWire`]: two ends joined by in-memory queues, no impairments;
//!   the simplest cable, for unit tests.
//! - [`link`]: the in-memory link between two models, optionally limited to
//!   10 Gbit/s line rate, with seeded impairments ([`impair`]).
//! - [`tap`]: a TAP device, so the Linux kernel is the peer.
//! - [`packet`]: an AF_PACKET socket on an existing interface (a veth).
//! - [`sink`]: swallows and counts everything (for pktgen), or generates an
//!   endless stream (for fwd).
//! - [`netns`]: a network namespace that lives as long as a value, for tests
//!   and examples with the kernel as a peer.
//!
//! All wires but the OS-facing ones read time only from a
//! [`Clock`](crate::time::Clock) they are given, so they replay exactly
//! under a virtual clock. Unsafe code is allowed in `tap` and `packet` only.

mod channel;
pub mod impair;
pub mod link;
pub mod netns;
pub mod packet;
pub mod sink;
pub mod tap;

pub use impair::Impairments;
pub use link::{Link, LinkConfig, LinkEnd, LinkStats};
pub use netns::Netns;
pub use packet::PacketWire;
pub use sink::{GeneratorCounters, GeneratorWire, SinkCounters, SinkWire};
pub use tap::{TapWire, in_netns};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a receiving end learns, without a lock, that frames may have arrived:
/// the sending side of an in-memory wire rings it after every batch it
/// publishes ([`Wire::ring_on_arrival`]). The model's idle pump reads it
/// with one load. A spurious ring costs one ordinary pump; a missed one
/// cannot happen (the flag is set after the frames are visible, and
/// cleared by [`take`](Self::take) before the receiver looks for them).
#[derive(Debug, Default)]
pub struct Doorbell {
    rung: AtomicBool,
}

impl Doorbell {
    /// Frames were published (or may have been).
    #[inline]
    pub fn ring(&self) {
        // Release: the frames published before this store are visible to a
        // receiver whose acquire load or `take` reads it.
        self.rung.store(true, Ordering::Release);
    }

    /// Whether it was rung since the last [`take`](Self::take).
    #[inline]
    pub fn is_rung(&self) -> bool {
        // Acquire: pairs with the release in `ring`.
        self.rung.load(Ordering::Acquire)
    }

    /// Clears it, returning whether it was rung. Call it before looking
    /// for the frames, so one published meanwhile rings it again.
    #[inline]
    pub fn take(&self) -> bool {
        // AcqRel: acquire pairs with `ring`; the clear is ordered before
        // the queue reads that follow it.
        self.rung.swap(false, Ordering::AcqRel)
    }
}

/// Errors a wire reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The wire cannot take the frame now (line-rate backlog full); keep it
    /// and offer it again later.
    Busy,
    /// The frame is larger than the wire carries.
    TooLong {
        /// Length offered.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The OS side of the wire failed.
    Io(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Busy => write!(f, "wire busy: transmit backlog full"),
            WireError::TooLong { len, max } => write!(f, "frame of {len} bytes longer than the wire's {max}"),
            WireError::Io(e) => write!(f, "wire I/O error: {e}"),
        }
    }
}

impl std::error::Error for WireError {}

/// One end of a cable.
pub trait Wire: Send {
    /// Offers one frame (no FCS). `Err(WireError::Busy)` means not now;
    /// other errors mean the frame is dropped.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError>;

    /// Offers the frame held in `frame`, as [`transmit`](Wire::transmit)
    /// does, for a caller that owns its buffer and sends in bursts: an
    /// in-memory wire takes the buffer itself and gives back an emptied one
    /// in exchange, so the frame is not copied, and may hold the frame back
    /// with others of the burst until [`flush`](Wire::flush). After `Ok(())`
    /// (and after an error other than [`WireError::Busy`]) `frame` holds a
    /// buffer whose contents are unspecified, for the caller to reuse; after
    /// `Busy` it still holds the frame. The default copies through
    /// [`transmit`](Wire::transmit).
    fn transmit_buf(&mut self, frame: &mut Vec<u8>) -> Result<(), WireError> {
        self.transmit(frame)
    }

    /// Hands on every frame [`transmit_buf`](Wire::transmit_buf) held back
    /// (the model calls it at the end of each transmit burst). The default
    /// does nothing.
    fn flush(&mut self) {}

    /// Takes the next frame that has arrived into `buf` (replacing its
    /// contents) and returns true, or returns false when none is waiting.
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool;

    /// Asks the wire to ring `bell` whenever frames arrive for this end,
    /// from now on (and it may ring it spuriously). Returns false if it
    /// cannot (the default: an OS-facing or generated wire), and then the
    /// receiver must call [`receive`](Wire::receive) to know.
    fn ring_on_arrival(&mut self, bell: Arc<Doorbell>) -> bool {
        let _ = bell;
        false
    }

    /// Whether frames that arrived before the last ring wait inside this
    /// end (taken off the queue but not yet received, or still on the line
    /// under a line-rate or latency model), so that only
    /// [`receive`](Wire::receive) can tell when they are due. True by
    /// default (nothing known).
    fn holds_frames(&self) -> bool {
        true
    }
}

impl<W: Wire + ?Sized> Wire for Box<W> {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        (**self).transmit(frame)
    }
    fn transmit_buf(&mut self, frame: &mut Vec<u8>) -> Result<(), WireError> {
        (**self).transmit_buf(frame)
    }
    fn flush(&mut self) {
        (**self).flush()
    }
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        (**self).receive(buf)
    }
    fn ring_on_arrival(&mut self, bell: Arc<Doorbell>) -> bool {
        (**self).ring_on_arrival(bell)
    }
    fn holds_frames(&self) -> bool {
        (**self).holds_frames()
    }
}

/// One end of an unlimited, loss-free in-memory cable. Each direction is a
/// single-producer/single-consumer handoff (see `channel`): no lock per
/// frame, and buffers travel back to the sender, so steady traffic does not
/// allocate.
pub struct QueueWire {
    tx: channel::Sender<Vec<u8>>,
    rx: channel::Receiver<Vec<u8>>,
}

impl fmt::Debug for QueueWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWire").field("pending", &self.pending()).finish()
    }
}

impl QueueWire {
    /// Two ends of one cable: what one transmits the other receives.
    pub fn pair() -> (QueueWire, QueueWire) {
        let (a_tx, a_rx) = channel::channel();
        let (b_tx, b_rx) = channel::channel();
        (QueueWire { tx: a_tx, rx: b_rx }, QueueWire { tx: b_tx, rx: a_rx })
    }

    /// Frames sent towards this end and not yet received.
    pub fn pending(&self) -> usize {
        self.rx.len()
    }
}

impl Wire for QueueWire {
    #[inline]
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let mut buf = self.tx.buffer();
        buf.extend_from_slice(frame);
        self.tx.send(buf);
        self.tx.flush();
        Ok(())
    }

    #[inline]
    fn transmit_buf(&mut self, frame: &mut Vec<u8>) -> Result<(), WireError> {
        let spare = self.tx.buffer();
        self.tx.send(std::mem::replace(frame, spare));
        Ok(())
    }

    fn flush(&mut self) {
        self.tx.flush();
    }

    #[inline]
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.rx.recv() {
            Some(frame) => {
                self.rx.recycle(std::mem::replace(buf, frame));
                true
            }
            None => false,
        }
    }

    fn ring_on_arrival(&mut self, bell: Arc<Doorbell>) -> bool {
        self.rx.ring_on_publish(bell)
    }

    fn holds_frames(&self) -> bool {
        self.rx.holds_items()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_wire_carries_frames_both_ways_in_order() {
        let (mut a, mut b) = QueueWire::pair();
        a.transmit(b"one").unwrap();
        a.transmit(b"two").unwrap();
        b.transmit(b"back").unwrap();
        let mut buf = Vec::new();
        assert!(b.receive(&mut buf));
        assert_eq!(buf, b"one");
        assert!(b.receive(&mut buf));
        assert_eq!(buf, b"two");
        assert!(!b.receive(&mut buf));
        assert!(a.receive(&mut buf));
        assert_eq!(buf, b"back");
    }

    #[test]
    fn queue_wire_takes_owned_buffers_without_copying() {
        let (mut a, mut b) = QueueWire::pair();
        let mut frame = b"owned".to_vec();
        let ptr = frame.as_ptr();
        a.transmit_buf(&mut frame).unwrap();
        assert_eq!(b.pending(), 0, "held back with its burst");
        a.flush();
        assert_eq!(b.pending(), 1);
        let mut buf = Vec::with_capacity(64);
        assert!(b.receive(&mut buf));
        assert_eq!((buf.as_slice(), buf.as_ptr()), (&b"owned"[..], ptr), "the very buffer sent");
        assert_eq!(b.pending(), 0);
    }
}
