//! The two channels of the threaded runtime (jobs to the stack thread,
//! socket keys back), carrying batches in vectors that go round: the
//! receiver hands each emptied vector back, and the sender fills a returned
//! one for its next batch. In steady state no batch allocates.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};
use std::time::Duration;

/// The sending end of a batch pipe.
#[derive(Debug)]
pub(crate) struct BatchTx<T> {
    to: Sender<Vec<T>>,
    spares: Receiver<Vec<T>>,
}

/// The receiving end of a batch pipe.
#[derive(Debug)]
pub(crate) struct BatchRx<T> {
    from: Receiver<Vec<T>>,
    spares: Sender<Vec<T>>,
}

/// The other end is gone (its thread ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

/// A pipe for batches of `T`.
pub(crate) fn pipe<T>() -> (BatchTx<T>, BatchRx<T>) {
    let (to, from) = unbounded();
    let (spares_tx, spares) = unbounded();
    (BatchTx { to, spares }, BatchRx { from, spares: spares_tx })
}

impl<T> BatchTx<T> {
    /// Sends what `batch` holds (nothing when it is empty), leaving an
    /// empty vector in its place: one the receiver handed back, if any.
    pub fn send(&self, batch: &mut Vec<T>) -> Result<(), Gone> {
        if batch.is_empty() {
            return Ok(());
        }
        let spare = self.spares.try_recv().unwrap_or_default();
        self.to.send(std::mem::replace(batch, spare)).map_err(|_| Gone)
    }

    /// Sends an empty batch (a wake-up), in a returned vector if there is one.
    pub fn send_empty(&self) -> Result<(), Gone> {
        self.to.send(self.spares.try_recv().unwrap_or_default()).map_err(|_| Gone)
    }
}

impl<T> BatchRx<T> {
    /// A batch if one is there; `Err(true)` if the sender is gone.
    pub fn try_recv(&self) -> Result<Vec<T>, bool> {
        self.from.try_recv().map_err(|e| matches!(e, TryRecvError::Disconnected))
    }

    /// The next batch, waiting for it; `Err(Gone)` if the sender is gone.
    pub fn recv(&self) -> Result<Vec<T>, Gone> {
        self.from.recv().map_err(|_| Gone)
    }

    /// The next batch, waiting at most `timeout`; `Err(true)` if the
    /// sender is gone, `Err(false)` on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<T>, bool> {
        self.from.recv_timeout(timeout).map_err(|e| matches!(e, RecvTimeoutError::Disconnected))
    }

    /// Hands a processed batch's vector back to the sender, emptied.
    pub fn recycle(&self, mut batch: Vec<T>) {
        batch.clear();
        if batch.capacity() > 0 {
            // The sender being gone only means nobody needs it any more.
            let _ = self.spares.send(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_go_round() {
        let (tx, rx) = pipe::<u32>();
        let mut batch = Vec::with_capacity(8);
        batch.extend([1, 2, 3]);
        let first = batch.as_ptr();
        tx.send(&mut batch).unwrap();
        assert!(batch.is_empty());
        let got = rx.try_recv().unwrap();
        assert_eq!(got, [1, 2, 3]);
        rx.recycle(got);
        // The next batch is filled in the vector that came back.
        batch.push(4);
        tx.send(&mut batch).unwrap();
        assert_eq!(batch.as_ptr(), first, "the returned vector is the one refilled");
        assert_eq!(rx.try_recv().unwrap(), [4]);
    }

    #[test]
    fn empty_batches_are_not_sent_unless_asked() {
        let (tx, rx) = pipe::<u32>();
        tx.send(&mut Vec::new()).unwrap();
        assert_eq!(rx.try_recv(), Err(false));
        tx.send_empty().unwrap();
        assert_eq!(rx.try_recv(), Ok(Vec::new()));
    }

    #[test]
    fn a_gone_end_is_reported() {
        let (tx, rx) = pipe::<u32>();
        drop(rx);
        assert_eq!(tx.send(&mut vec![1]), Err(Gone));
        let (tx, rx) = pipe::<u32>();
        drop(tx);
        assert_eq!(rx.try_recv(), Err(true));
        assert_eq!(rx.recv(), Err(Gone));
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(true));
    }
}
