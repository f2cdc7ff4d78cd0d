//! The two channels of the threaded runtime (jobs to the stack thread,
//! socket keys back), carrying batches in vectors that go round: the
//! receiver hands each emptied vector back, and the sender fills a returned
//! one for its next batch. In steady state no batch allocates.

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender, TryRecvError, unbounded};
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

    /// The next batch, waiting at most `timeout`; `Err(true)` if the
    /// sender is gone, `Err(false)` on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<T>, bool> {
        self.from.recv_timeout(timeout).map_err(|e| matches!(e, RecvTimeoutError::Disconnected))
    }

    /// The next batch, or a token on `wake`, whichever comes first, waiting
    /// at most `timeout` (`None`: no limit). `Ok(None)`: woken; `Err(true)`:
    /// the sender is gone; `Err(false)`: timed out.
    pub fn recv_or_wake(&self, wake: &Receiver<()>, timeout: Option<Duration>) -> Result<Option<Vec<T>>, bool> {
        let mut sel = Select::new();
        let batches = sel.recv(&self.from);
        let wakes = sel.recv(wake);
        let op = match timeout {
            Some(t) => sel.select_timeout(t).map_err(|_| false)?,
            None => sel.select(),
        };
        match op.index() {
            i if i == batches => op.recv(&self.from).map(Some).map_err(|_| true),
            i if i == wakes => {
                // The token is taken with the wakers (`CtxWake::take_any`);
                // the wake channel's sender lives with the context.
                let _ = op.recv(wake);
                Ok(None)
            }
            _ => unreachable!("a select over two operations returned a third"),
        }
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
    use crossbeam_channel::bounded;

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
        assert_eq!(rx.recv_or_wake(&bounded::<()>(1).1, None), Err(true));
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(true));
    }

    #[test]
    fn a_wait_ends_with_a_batch_a_wake_or_the_timeout() {
        let (tx, rx) = pipe::<u32>();
        let (wake_tx, wake) = bounded::<()>(1);
        assert_eq!(rx.recv_or_wake(&wake, Some(Duration::from_millis(1))), Err(false));
        wake_tx.send(()).unwrap();
        assert_eq!(rx.recv_or_wake(&wake, None), Ok(None));
        // The token was taken: the next wait times out again.
        assert_eq!(rx.recv_or_wake(&wake, Some(Duration::from_millis(1))), Err(false));
        tx.send(&mut vec![5, 6]).unwrap();
        assert_eq!(rx.recv_or_wake(&wake, None), Ok(Some(vec![5, 6])));
    }
}
