//! `mtcp_pipe`: a byte pipe whose read end an mtcp epoll watches, for
//! handing work to a core's thread from any other thread.
//!
//! The bytes sit in a bounded queue shared by both ends; the read end owns
//! a sockapi [`Waker`] (the epoll source) and the write end one of its
//! [`WakeHandle`]s, so a write from any thread wakes the reader's
//! `mtcp_epoll_wait`. The reader clears the wake when it has emptied the
//! queue; a write that comes after that wakes it again, so no byte waits
//! unseen. Both ends are non-blocking: an empty pipe reads `EAGAIN` (0 once
//! the write end is closed) and a full one writes `EAGAIN`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ixtcp_sockapi::{WakeHandle, Waker};

use crate::errno::{Errno, Res};

/// Bytes a pipe holds before writes return `EAGAIN` (Linux's default pipe
/// size).
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// What both ends share.
#[derive(Debug)]
pub struct PipeShared {
    bytes: Mutex<VecDeque<u8>>,
    wake: WakeHandle,
    writer_closed: AtomicBool,
    reader_closed: AtomicBool,
}

/// The read end: lives in its context's table.
#[derive(Debug)]
pub struct PipeReader {
    /// The epoll source.
    pub waker: Waker,
    shared: Arc<PipeShared>,
}

/// The write end: usable from any thread.
#[derive(Debug, Clone)]
pub struct PipeWriter {
    shared: Arc<PipeShared>,
}

/// A new pipe whose read end wakes `waker`'s context.
pub fn pipe(waker: Waker) -> (PipeReader, PipeWriter) {
    let shared = Arc::new(PipeShared {
        bytes: Mutex::new(VecDeque::new()),
        wake: waker.handle(),
        writer_closed: AtomicBool::new(false),
        reader_closed: AtomicBool::new(false),
    });
    (PipeReader { waker, shared: Arc::clone(&shared) }, PipeWriter { shared })
}

fn lock(q: &Mutex<VecDeque<u8>>) -> std::sync::MutexGuard<'_, VecDeque<u8>> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

impl PipeReader {
    /// Reads into `bufs` in order; 0 once the writer closed and the pipe is
    /// empty, `EAGAIN` while it is empty and open.
    pub fn read(&self, bufs: &mut [&mut [u8]]) -> Res<usize> {
        let mut q = lock(&self.shared.bytes);
        if q.is_empty() {
            if self.shared.writer_closed.load(Ordering::Acquire) {
                return Ok(0);
            }
            self.waker.take();
            return Err(Errno(libc::EAGAIN));
        }
        let mut n = 0;
        for dst in bufs.iter_mut() {
            let k = dst.len().min(q.len());
            for (d, b) in dst[..k].iter_mut().zip(q.drain(..k)) {
                *d = b;
            }
            n += k;
        }
        // Emptied while open: not readable until the next write. Under the
        // lock, so a write's wake comes after this take.
        if q.is_empty() && !self.shared.writer_closed.load(Ordering::Acquire) {
            self.waker.take();
        }
        Ok(n)
    }

    /// Bytes waiting (`FIONREAD`).
    pub fn available(&self) -> usize {
        lock(&self.shared.bytes).len()
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.shared.reader_closed.store(true, Ordering::Release);
        lock(&self.shared.bytes).clear();
    }
}

impl PipeWriter {
    /// Appends what fits of `bufs`; `EAGAIN` when full, `EPIPE` once the
    /// read end is closed.
    pub fn write(&self, bufs: &[&[u8]]) -> Res<usize> {
        if self.shared.reader_closed.load(Ordering::Acquire) {
            return Err(Errno(libc::EPIPE));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let n = {
            let mut q = lock(&self.shared.bytes);
            let mut room = PIPE_CAPACITY.saturating_sub(q.len());
            if room == 0 {
                return Err(Errno(libc::EAGAIN));
            }
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(room);
                q.extend(&b[..k]);
                room -= k;
                n += k;
            }
            n
        };
        self.shared.wake.wake();
        Ok(n)
    }

    /// Closes the write end: the reader sees the end of the stream.
    pub fn close(&self) {
        self.shared.writer_closed.store(true, Ordering::Release);
        self.shared.wake.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ixtcp_sockapi::{Context, Epoll, Events, Interest, Token, Trigger};
    use std::time::Duration;

    fn ctx() -> Context {
        Context::inline(ixtcp_sockapi::testing::TestNet::new().engine([10, 0, 0, 1].into()))
    }

    #[test]
    fn a_write_from_another_thread_wakes_the_readers_epoll_and_bytes_arrive_in_order() {
        let ctx = ctx();
        let (r, w) = pipe(Waker::new(&ctx).unwrap());
        let ep = Epoll::new(&ctx).unwrap();
        ep.add(&r.waker, Token(3), Interest::READABLE, Trigger::LEVEL).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut [&mut buf]), Err(Errno(libc::EAGAIN)));
        std::thread::spawn(move || {
            assert_eq!(w.write(&[b"ab", b"cd"]), Ok(4));
            w.close();
        })
        .join()
        .unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_eq!(r.available(), 4);
        let (mut a, mut b) = ([0u8; 3], [0u8; 3]);
        assert_eq!(r.read(&mut [&mut a, &mut b]), Ok(4));
        assert_eq!((&a, &b[..1]), (b"abc", &b"d"[..]));
        // Closed and empty: the end of the stream, and still readable.
        assert_eq!(r.read(&mut [&mut buf]), Ok(0));
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    }

    #[test]
    fn a_full_pipe_says_eagain_and_a_closed_reader_epipe() {
        let ctx = ctx();
        let (r, w) = pipe(Waker::new(&ctx).unwrap());
        let big = vec![7u8; PIPE_CAPACITY + 10];
        assert_eq!(w.write(&[&big]), Ok(PIPE_CAPACITY));
        assert_eq!(w.write(&[b"x"]), Err(Errno(libc::EAGAIN)));
        assert_eq!(w.write(&[]), Ok(0));
        drop(r);
        assert_eq!(w.write(&[b"x"]), Err(Errno(libc::EPIPE)));
    }
}
