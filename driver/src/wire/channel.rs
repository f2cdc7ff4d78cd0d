//! The handoff between the two ends of one direction of an in-memory wire
//! ([`QueueWire`](super::QueueWire), [`Link`](super::Link)): one producer
//! (the sending end), one consumer (the receiving end), and no lock either
//! end takes per frame.
//!
//! - The sender gathers items in a batch and publishes it whole (when it
//!   holds [`BATCH`] items, or when the sender flushes: the model does at
//!   the end of every transmit burst), so that the cross-thread queue
//!   operations happen once per batch, not once per frame.
//! - `ring`: a bounded lock-free queue (crossbeam's `ArrayQueue`) that
//!   carries the batches from the sender to the receiver in order;
//!   `batches` carries the emptied batch vectors back.
//! - `spare`: emptied frame buffers going back to the sender in bundles of
//!   [`BUNDLE`], so steady traffic reuses the same buffers and allocates
//!   nothing; `bundles` carries the emptied bundle vectors back.
//! - `overflow`: batches behind a mutex for the rare case that finds the
//!   ring full (a sender far ahead of a receiver that does not poll), so an
//!   in-memory wire never refuses or loses a frame for lack of room. Once a
//!   batch went there, every later one follows it there until the receiver
//!   has taken them all, which keeps the order.
//!
//! - `bell`: the receiving end's [`Doorbell`], once one is given: the
//!   sender rings it after each batch it publishes, so the receiver can
//!   tell that nothing arrived without touching the queues.
//!
//! Ordering argument: the sender puts a batch into `ring` only while
//! `overflowing` is false; only the sender sets it (under the mutex, with
//! the batch it queues there) and only the receiver clears it (under the
//! mutex, after taking every batch from `ring` and then from `overflow`).
//! So while it is set, everything in `ring` is older than everything in
//! `overflow`, and the receiver takes them in that order.

use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use super::Doorbell;

/// Items the sender gathers before it publishes them without being asked.
pub(crate) const BATCH: usize = 32;

/// Batches the ring holds before the sender spills into the overflow queue
/// (with full batches, more than a pump takes at once,
/// [`PUMP_BATCH`](crate::model::PUMP_BATCH)).
pub(crate) const RING_SLOTS: usize = 256;

/// Emptied buffers kept for the sender; beyond this they are freed.
pub(crate) const SPARE_BUFFERS: usize = 1024;

/// Emptied buffers handed back to the sender at once.
pub(crate) const BUNDLE: usize = 32;

/// A bundle of emptied frame buffers.
type Bundle = Vec<Vec<u8>>;

struct Channel<T> {
    ring: ArrayQueue<Vec<T>>,
    /// Items published and not yet taken by the receiver (changed once per
    /// batch on each side).
    queued: AtomicUsize,
    overflowing: AtomicBool,
    overflow: Mutex<VecDeque<Vec<T>>>,
    batches: ArrayQueue<Vec<T>>,
    spare: ArrayQueue<Bundle>,
    bundles: ArrayQueue<Bundle>,
    /// Rung after every published batch; set at most once.
    bell: OnceLock<Arc<Doorbell>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on the other end's thread leaves the queue itself intact.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sending end of one direction.
pub(crate) struct Sender<T> {
    chan: Arc<Channel<T>>,
    /// Items sent and not yet published.
    batch: Vec<T>,
    /// Emptied buffers from the last bundle taken.
    stash: Bundle,
}

/// The receiving end of one direction.
pub(crate) struct Receiver<T> {
    chan: Arc<Channel<T>>,
    /// Items of the batches taken, not yet handed out, in reverse order
    /// (the next one last), so that taking one is a `pop`: a published
    /// batch becomes this vector itself, reversed, without its items being
    /// moved one by one.
    staged: Vec<T>,
    /// Emptied buffers gathered for the next bundle.
    returning: Bundle,
}

/// A new direction: its sending and receiving ends.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Channel {
        ring: ArrayQueue::new(RING_SLOTS),
        queued: AtomicUsize::new(0),
        overflowing: AtomicBool::new(false),
        overflow: Mutex::new(VecDeque::new()),
        batches: ArrayQueue::new(RING_SLOTS + 2),
        spare: ArrayQueue::new(SPARE_BUFFERS / BUNDLE),
        bundles: ArrayQueue::new(SPARE_BUFFERS / BUNDLE + 2),
        bell: OnceLock::new(),
    });
    let sender = Sender { chan: Arc::clone(&chan), batch: Vec::with_capacity(BATCH), stash: Vec::new() };
    (sender, Receiver { chan, staged: Vec::new(), returning: Vec::with_capacity(BUNDLE) })
}

impl<T> Sender<T> {
    /// Queues `item` behind everything sent before; never refuses. It
    /// reaches the receiver with its batch: at the latest at the next
    /// [`flush`](Self::flush).
    #[inline]
    pub(crate) fn send(&mut self, item: T) {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Publishes the items sent since the last flush.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self.chan.batches.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        let batch = std::mem::replace(&mut self.batch, next);
        let chan = &*self.chan;
        // Counted before it is visible, so the receiver never subtracts
        // more than was added (one RMW per batch).
        chan.queued.fetch_add(batch.len(), Ordering::Relaxed);
        // Acquire pairs with the receiver's release when it clears the flag:
        // having seen it clear, the overflow queue is empty.
        let batch = if chan.overflowing.load(Ordering::Acquire) {
            batch
        } else {
            match chan.ring.push(batch) {
                Ok(()) => {
                    chan.ring_bell();
                    return;
                }
                Err(batch) => batch,
            }
        };
        let mut overflow = lock(&chan.overflow);
        overflow.push_back(batch);
        // Under the mutex, so the receiver sees the flag and the batch
        // together; Relaxed suffices as the mutex orders them.
        chan.overflowing.store(true, Ordering::Relaxed);
        drop(overflow);
        chan.ring_bell();
    }

    /// An emptied buffer given back by the receiver, or a new empty one.
    #[inline]
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        match self.stash.pop() {
            Some(buf) => buf,
            None => self.next_bundle(),
        }
    }

    /// `buffer` with an empty stash: takes the next bundle the receiver
    /// gave back (once per [`BUNDLE`] buffers).
    #[cold]
    #[inline(never)]
    fn next_bundle(&mut self) -> Vec<u8> {
        let Some(bundle) = self.chan.spare.pop() else { return Vec::new() };
        let emptied = std::mem::replace(&mut self.stash, bundle);
        // The receiver fills it again; if it has enough, it is freed.
        let _ = self.chan.bundles.push(emptied);
        self.stash.pop().unwrap_or_default()
    }
}

impl<T> Channel<T> {
    /// Tells the receiver's doorbell (if any) that a batch was published;
    /// called after the batch is visible.
    #[inline]
    fn ring_bell(&self) {
        if let Some(bell) = self.bell.get() {
            bell.ring();
        }
    }
}

/// Moves a published batch's items to the end of `staged` (in order) and
/// gives the emptied vector back to the sender.
fn stage<T>(chan: &Channel<T>, staged: &mut Vec<T>, mut batch: Vec<T>) {
    chan.queued.fetch_sub(batch.len(), Ordering::Relaxed);
    staged.append(&mut batch);
    let _ = chan.batches.push(batch);
}

impl<T> Receiver<T> {
    /// The oldest published item not yet received.
    #[inline]
    pub(crate) fn recv(&mut self) -> Option<T> {
        if let Some(item) = self.staged.pop() {
            return Some(item);
        }
        self.take_batches()
    }

    /// `recv` with nothing staged: takes the next published batch (or,
    /// while the sender spills, every batch) and hands out its first item.
    fn take_batches(&mut self) -> Option<T> {
        let Receiver { chan, staged, .. } = self;
        debug_assert!(staged.is_empty());
        match chan.ring.pop() {
            Some(batch) => {
                // The batch becomes the staging vector; the old, empty one
                // goes back to the sender.
                chan.queued.fetch_sub(batch.len(), Ordering::Relaxed);
                let empty = std::mem::replace(staged, batch);
                let _ = chan.batches.push(empty);
            }
            None => {
                if !chan.overflowing.load(Ordering::Acquire) {
                    return None;
                }
                // The slow path: the ring (everything in it is older than
                // the overflow queue while the flag is set), then the
                // overflow queue, then the flag cleared, all under the mutex
                // the sender spills under.
                let mut overflow = lock(&chan.overflow);
                while let Some(batch) = chan.ring.pop() {
                    stage(chan, staged, batch);
                }
                while let Some(batch) = overflow.pop_front() {
                    stage(chan, staged, batch);
                }
                // Release: a sender that sees the flag clear sees the queue
                // empty.
                chan.overflowing.store(false, Ordering::Release);
            }
        }
        staged.reverse();
        staged.pop()
    }

    /// The item the next [`recv`](Self::recv) returns, if it is already
    /// taken from the sender's batches.
    #[inline]
    pub(crate) fn peek(&self) -> Option<&T> {
        self.staged.last()
    }

    /// Has the sender ring `bell` after each batch it publishes from now
    /// on. A channel takes one doorbell for its lifetime: false (and `bell`
    /// is never rung by it) if it already has one.
    pub(crate) fn ring_on_publish(&self, bell: Arc<Doorbell>) -> bool {
        self.chan.bell.set(bell).is_ok()
    }

    /// Whether items taken from the sender's batches wait here (published
    /// items still in the queues are not counted: the doorbell tells of
    /// those).
    pub(crate) fn holds_items(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Items published and not yet received.
    pub(crate) fn len(&self) -> usize {
        self.staged.len() + self.chan.queued.load(Ordering::Relaxed)
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
        let (mut tx, mut rx) = channel::<u32>();
        let n = (RING_SLOTS * BATCH * 2 + 5) as u32;
        for i in 0..n {
            tx.send(i);
        }
        assert_eq!(rx.len(), n as usize - 5, "the last partial batch waits for a flush");
        tx.flush();
        assert_eq!(rx.len(), n as usize);
        assert!(rx.chan.overflowing.load(Ordering::Relaxed), "the ring filled up");
        // Take part, then send more while the overflow queue is in use.
        for i in 0..10 {
            assert_eq!(rx.recv(), Some(i));
        }
        assert_eq!(rx.peek(), Some(&10), "the next item, left in place");
        for i in n..n + 10 {
            tx.send(i);
        }
        tx.flush();
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, (10..n + 10).collect::<Vec<_>>());
        assert_eq!(rx.len(), 0);
        // Back on the ring once the overflow queue has been emptied.
        tx.send(7);
        assert_eq!(rx.recv(), None, "not flushed yet");
        tx.flush();
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
        let (mut tx, mut rx) = channel::<u64>();
        const N: u64 = 50_000;
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i);
                if i % 7 == 0 {
                    tx.flush();
                }
            }
            tx.flush();
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
