//! The handoff between the two ends of one direction of an in-memory wire
//! ([`QueueWire`](super::QueueWire), [`Link`](super::Link)): one producer
//! (the sending end), one consumer (the receiving end), and no lock either
//! end takes per frame.
//!
//! - `ring`: a bounded lock-free queue (crossbeam's `ArrayQueue`) that
//!   carries items from the sender to the receiver in order.
//! - `spare`: the same in the other direction, carrying emptied frame
//!   buffers back to the sender in bundles of [`BUNDLE`] (one queue
//!   operation per bundle, not per buffer), so steady traffic reuses the
//!   same buffers and allocates nothing; `bundles` carries the emptied
//!   bundle vectors back to the receiver for the same reason.
//! - `overflow`: a queue behind a mutex for the rare burst that finds the
//!   ring full (a sender far ahead of a receiver that does not poll), so
//!   that an in-memory wire never refuses or loses a frame for lack of room.
//!   Once an item went there, every later one follows it there until the
//!   receiver has taken them all, which keeps the order.
//!
//! Ordering argument: the sender puts an item into `ring` only while
//! `overflowing` is false; only the sender sets it (under the mutex, with
//! the item it queues there) and only the receiver clears it (under the
//! mutex, after taking every item from `ring` and then from `overflow`).
//! So while it is set, everything in `ring` is older than everything in
//! `overflow`, and the receiver takes them in that order.

use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Items the ring holds before the sender spills into the overflow queue:
/// more than a pump takes at once ([`PUMP_BATCH`](crate::model::PUMP_BATCH)).
pub(crate) const RING_SLOTS: usize = 4096;

/// Emptied buffers kept for the sender; beyond this they are freed.
pub(crate) const SPARE_BUFFERS: usize = 1024;

/// Emptied buffers handed back to the sender at once.
pub(crate) const BUNDLE: usize = 32;

/// A bundle of emptied frame buffers.
type Bundle = Vec<Vec<u8>>;

struct Channel<T> {
    ring: ArrayQueue<T>,
    overflowing: AtomicBool,
    overflow: Mutex<VecDeque<T>>,
    spare: ArrayQueue<Bundle>,
    bundles: ArrayQueue<Bundle>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the other end's thread leaves the queue itself intact.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sending end of one direction.
pub(crate) struct Sender<T> {
    chan: Arc<Channel<T>>,
    /// Emptied buffers from the last bundle taken.
    stash: Bundle,
}

/// The receiving end of one direction.
pub(crate) struct Receiver<T> {
    chan: Arc<Channel<T>>,
    /// Items taken from the ring and the overflow queue in one go on the
    /// slow path, not yet handed out.
    staged: VecDeque<T>,
    /// Emptied buffers gathered for the next bundle.
    returning: Bundle,
}

/// A new direction: its sending and receiving ends.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Channel {
        ring: ArrayQueue::new(RING_SLOTS),
        overflowing: AtomicBool::new(false),
        overflow: Mutex::new(VecDeque::new()),
        spare: ArrayQueue::new(SPARE_BUFFERS / BUNDLE),
        bundles: ArrayQueue::new(SPARE_BUFFERS / BUNDLE + 2),
    });
    let sender = Sender { chan: Arc::clone(&chan), stash: Vec::new() };
    (sender, Receiver { chan, staged: VecDeque::new(), returning: Vec::with_capacity(BUNDLE) })
}

impl<T> Sender<T> {
    /// Queues `item` behind everything sent before; never refuses.
    #[inline]
    pub(crate) fn send(&self, item: T) {
        let chan = &*self.chan;
        // Acquire pairs with the receiver's release when it clears the flag:
        // having seen it clear, the overflow queue is empty.
        let item = if chan.overflowing.load(Ordering::Acquire) {
            item
        } else {
            match chan.ring.push(item) {
                Ok(()) => return,
                Err(item) => item,
            }
        };
        let mut overflow = lock(&chan.overflow);
        overflow.push_back(item);
        // Under the mutex, so the receiver sees the flag and the item
        // together; Relaxed suffices as the mutex orders them.
        chan.overflowing.store(true, Ordering::Relaxed);
    }

    /// An emptied buffer given back by the receiver, or a new empty one.
    #[inline]
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        if let Some(buf) = self.stash.pop() {
            return buf;
        }
        let Some(bundle) = self.chan.spare.pop() else { return Vec::new() };
        let emptied = std::mem::replace(&mut self.stash, bundle);
        // The receiver fills it again; if it has enough, it is freed.
        let _ = self.chan.bundles.push(emptied);
        self.stash.pop().unwrap_or_default()
    }
}

impl<T> Receiver<T> {
    /// The oldest item not yet received.
    #[inline]
    pub(crate) fn recv(&mut self) -> Option<T> {
        if let Some(item) = self.staged.pop_front() {
            return Some(item);
        }
        let chan = &*self.chan;
        if let Some(item) = chan.ring.pop() {
            return Some(item);
        }
        if !chan.overflowing.load(Ordering::Acquire) {
            return None;
        }
        // The slow path: the ring (everything in it is older than the
        // overflow queue while the flag is set), then the overflow queue,
        // then the flag cleared, all under the mutex the sender spills under.
        let mut overflow = lock(&chan.overflow);
        while let Some(item) = chan.ring.pop() {
            self.staged.push_back(item);
        }
        self.staged.append(&mut overflow);
        // Release: a sender that sees the flag clear sees the queue empty.
        chan.overflowing.store(false, Ordering::Release);
        drop(overflow);
        self.staged.pop_front()
    }

    /// Items sent and not yet received.
    pub(crate) fn len(&self) -> usize {
        let chan = &*self.chan;
        let spilled = if chan.overflowing.load(Ordering::Acquire) { lock(&chan.overflow).len() } else { 0 };
        self.staged.len() + chan.ring.len() + spilled
    }

    /// Gives an emptied frame buffer back to the sender, with the next
    /// bundle (freed if the sender already has enough).
    #[inline]
    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        self.returning.push(buf);
        if self.returning.len() >= BUNDLE {
            let next = self.chan.bundles.pop().unwrap_or_else(|| Vec::with_capacity(BUNDLE));
            let full = std::mem::replace(&mut self.returning, next);
            let _ = self.chan.spare.push(full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_order_through_the_overflow_queue() {
        let (tx, mut rx) = channel::<u32>();
        let n = RING_SLOTS as u32 * 2 + 5;
        for i in 0..n {
            tx.send(i);
        }
        assert_eq!(rx.len(), n as usize);
        // Take part, then send more while the overflow queue is in use.
        for i in 0..10 {
            assert_eq!(rx.recv(), Some(i));
        }
        for i in n..n + 10 {
            tx.send(i);
        }
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, (10..n + 10).collect::<Vec<_>>());
        assert_eq!(rx.len(), 0);
        // Back on the ring once the overflow queue has been emptied.
        tx.send(7);
        assert!(!rx.chan.overflowing.load(Ordering::Relaxed));
        assert_eq!(rx.recv(), Some(7));
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn buffers_come_back_to_the_sender_in_bundles() {
        let (mut tx, mut rx) = channel::<()>();
        assert_eq!(tx.buffer().capacity(), 0, "nothing given back yet");
        let mut ptrs = Vec::new();
        for i in 0..BUNDLE {
            let mut b = Vec::with_capacity(100);
            b.extend_from_slice(&[1, 2, 3]);
            ptrs.push(b.as_ptr());
            rx.recycle(b);
            assert_eq!(tx.buffer().capacity() != 0, i + 1 == BUNDLE, "buffer {i}: only whole bundles go back");
        }
        let mut back: Vec<_> = (1..BUNDLE).map(|_| tx.buffer()).collect();
        assert!(back.iter().all(|b| b.is_empty() && b.capacity() >= 100), "emptied, capacity kept");
        back.retain(|b| !ptrs.contains(&b.as_ptr()));
        assert!(back.is_empty(), "the very buffers given back");
        assert_eq!(rx.chan.bundles.len(), 1, "the emptied bundle vector waits for the receiver");
        for _ in 0..SPARE_BUFFERS * 2 {
            rx.recycle(Vec::with_capacity(1));
        }
        assert_eq!(rx.chan.spare.len(), SPARE_BUFFERS / BUNDLE, "extra buffers are freed, not kept");
    }

    #[test]
    fn two_threads_see_every_item_once_in_order() {
        let (tx, mut rx) = channel::<u64>();
        const N: u64 = 50_000;
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i);
            }
        });
        let mut next = 0;
        while next < N {
            if let Some(i) = rx.recv() {
                assert_eq!(i, next);
                next += 1;
            } else {
                std::thread::yield_now();
            }
        }
        sender.join().unwrap();
        assert_eq!(rx.recv(), None);
    }
}
