//! Waking a context's [`Epoll::wait`](crate::Epoll::wait) from another
//! thread: a [`Waker`] is a source that an epoll watches like a socket, and
//! its [`WakeHandle`]s (`Send`, cheap to clone) make it readable from any
//! thread. It is what an application uses to hand work to a core's thread,
//! and what a C layer builds mTCP's `mtcp_pipe` on. Like an `eventfd`, wakes
//! add up until [`Waker::take`] clears them: a level-triggered registration
//! reports it readable until then, an edge-triggered one once per wake.
//!
//! How a wake reaches the waiting thread: the handle marks its waker pending,
//! then the context (one flag for all its wakers, so a context without
//! wakes pays one atomic load per loop iteration), then sends a token on
//! the context's wake channel. Threaded, `Epoll::wait` waits on that channel
//! together with the stack's event batches; inline, the loop sees the flag
//! at its next iteration (an idle nap is the longest a wake waits). The
//! context then queues every pending waker on the epolls it is registered
//! with.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::context::{Context, SockKind};
use crate::epoll::{Source, SourceId};
use crate::slab::Key;

/// A context's side of its wakers: one flag for "some waker of this context
/// was woken", and the channel that interrupts a threaded wait.
#[derive(Debug)]
pub(crate) struct CtxWake {
    any: AtomicBool,
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl CtxWake {
    pub fn new() -> CtxWake {
        // One token is enough: a full channel already has a wake-up queued.
        let (tx, rx) = bounded(1);
        CtxWake { any: AtomicBool::new(false), tx, rx }
    }

    /// The channel a threaded wait listens on besides the stack's.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// True (once) if a waker was woken since the last call; empties the
    /// wake channel.
    pub fn take_any(&self) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        // Cleared before the wakers are looked at: a wake that comes after
        // this sets it again, so none is lost.
        self.any.store(false, Ordering::Release);
        while self.rx.try_recv().is_ok() {}
        true
    }
}

/// One waker's state, shared with its handles.
#[derive(Debug)]
pub(crate) struct WakerShared {
    pending: AtomicBool,
    /// Wakes so far: the readable change counter of edge-triggered
    /// registrations.
    wakes: AtomicU64,
    ctx: Arc<CtxWake>,
}

impl WakerShared {
    /// Whether it is woken, and its wake count.
    pub fn state(&self) -> (bool, u64) {
        (self.pending.load(Ordering::Acquire), self.wakes.load(Ordering::Acquire))
    }
}

/// A source an [`Epoll`](crate::Epoll) can watch that becomes readable when
/// one of its [`WakeHandle`]s is woken, from any thread. Belongs to the
/// context it was made on (not `Send`, like the context); dropping it
/// removes it from every epoll.
///
/// ```
/// use ixtcp_sockapi::{Context, Epoll, Events, Interest, Token, Trigger, Waker, testing::TestNet};
/// use std::time::Duration;
///
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let waker = Waker::new(&ctx)?;
/// let ep = Epoll::new(&ctx)?;
/// ep.add(&waker, Token(7), Interest::READABLE, Trigger::LEVEL)?;
/// let handle = waker.handle();
/// std::thread::spawn(move || handle.wake()).join().unwrap();
/// let mut events = Events::with_capacity(4);
/// assert_eq!(ep.wait(&mut events, Some(Duration::from_secs(1)))?, 1);
/// assert_eq!(events.iter().next().unwrap().token(), Token(7));
/// assert!(waker.take());
/// assert_eq!(ep.wait(&mut events, Some(Duration::ZERO))?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Waker {
    ctx: Context,
    key: Key,
    shared: Arc<WakerShared>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").field("ctx", &self.ctx).field("pending", &self.shared.state().0).finish()
    }
}

/// Wakes its [`Waker`] from any thread. Cheap to clone; outliving the
/// waker (or its context) is harmless: a wake then does nothing.
#[derive(Debug, Clone)]
pub struct WakeHandle {
    shared: Arc<WakerShared>,
}

impl Waker {
    /// A new waker on `ctx`, not woken. `OutOfMemory` if the context's
    /// socket table is full; `WouldBlock` if called from inside a call on
    /// the same context.
    pub fn new(ctx: &Context) -> io::Result<Waker> {
        let shared = Arc::new(WakerShared {
            pending: AtomicBool::new(false),
            wakes: AtomicU64::new(0),
            ctx: Arc::clone(&ctx.inner.wake),
        });
        let key = {
            let mut st = ctx.state()?;
            let key = st
                .insert_sock(SockKind::Waker { shared: Arc::clone(&shared) })
                .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "the context's socket table is full"))?;
            st.wakers.push(key);
            key
        };
        Ok(Waker { ctx: ctx.clone(), key, shared })
    }

    /// A handle that wakes this waker from any thread.
    pub fn handle(&self) -> WakeHandle {
        WakeHandle { shared: Arc::clone(&self.shared) }
    }

    /// Clears the wake, as a read of an `eventfd` does; true if it was
    /// woken.
    pub fn take(&self) -> bool {
        self.shared.pending.swap(false, Ordering::AcqRel)
    }

    /// True if woken and not yet taken.
    pub fn is_woken(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire)
    }
}

impl WakeHandle {
    /// Makes the waker readable and wakes its context's wait. Wakes before
    /// the next [`Waker::take`] count as one for level-triggered
    /// registrations; edge-triggered ones see each.
    pub fn wake(&self) {
        self.shared.wakes.fetch_add(1, Ordering::AcqRel);
        self.shared.pending.store(true, Ordering::Release);
        let ctx = &self.shared.ctx;
        ctx.any.store(true, Ordering::Release);
        // Full: a wake-up is already on its way.
        let _ = ctx.tx.try_send(());
    }
}

impl Source for Waker {
    fn source_id(&self) -> SourceId {
        SourceId { ctx: self.ctx.inner.id, key: self.key }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        if let Ok(mut st) = self.ctx.state() {
            st.remove_sock(self.key);
            st.wakers.retain(|&k| k != self.key);
        }
    }
}
