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

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

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

    /// Takes the next frame that has arrived into `buf` (replacing its
    /// contents) and returns true, or returns false when none is waiting.
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool;
}

impl<W: Wire + ?Sized> Wire for Box<W> {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        (**self).transmit(frame)
    }
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        (**self).receive(buf)
    }
}

type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;

/// One end of an unlimited, loss-free in-memory cable.
#[derive(Debug)]
pub struct QueueWire {
    tx: Queue,
    rx: Queue,
}

impl QueueWire {
    /// Two ends of one cable: what one transmits the other receives.
    pub fn pair() -> (QueueWire, QueueWire) {
        let a: Queue = Arc::default();
        let b: Queue = Arc::default();
        (QueueWire { tx: Arc::clone(&a), rx: Arc::clone(&b) }, QueueWire { tx: b, rx: a })
    }

    /// Frames sent towards this end and not yet received.
    pub fn pending(&self) -> usize {
        self.rx.lock().map(|q| q.len()).unwrap_or(0)
    }
}

impl Wire for QueueWire {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        self.tx.lock().map_err(|_| WireError::Io("peer panicked".into()))?.push_back(frame.to_vec());
        Ok(())
    }

    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        let Ok(mut q) = self.rx.lock() else { return false };
        match q.pop_front() {
            Some(frame) => {
                *buf = frame;
                true
            }
            None => false,
        }
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
}
