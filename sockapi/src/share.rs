//! How a runtime shares the buffers of `crate::buffers` between its
//! application side and its stack side.
//!
//! Threaded, the two sides run on two threads: a buffer is an
//! `Arc<Mutex<_>>`, locked by each side for one short critical section.
//! Inline, both run on the application's thread, one after the other: a
//! buffer is an `Rc<RefCell<_>>`, and a read, a write, a sync or a
//! readiness check takes no lock and no atomic instruction. The stack side
//! ([`crate::pump::Pump`]) is generic over [`Share`]; the application side
//! (one `Context` type for both runtimes) holds a [`Shared`], which says
//! which of the two its buffer is.
//!
//! Neither side holds a buffer across a call into the other (see
//! `crate::buffers`), so a `RefCell` is never borrowed twice, as a mutex is
//! never locked twice.

use std::cell::{RefCell, RefMut};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::buffers::{Accepted, ConnBuf, ListenBuf, UdpBuf, lock};
use crate::readiness::Changes;

/// A way of sharing a buffer between the two sides of a runtime.
pub(crate) trait Share: Sized + 'static {
    /// A buffer both sides hold.
    type Cell<T: 'static>: Clone;
    /// One side's access to it.
    type Guard<'a, T: 'static>: DerefMut<Target = T>;
    /// The application runs on the stack side's thread and reads received
    /// bytes straight from the engine (`AnyPump::recv_now`); a sync then
    /// only notes that there is something to read.
    const DIRECT_READS: bool;
    fn cell<T: 'static>(value: T) -> Self::Cell<T>;
    fn lock<T: 'static>(cell: &Self::Cell<T>) -> Self::Guard<'_, T>;
    /// True if `cell` is its buffer's only holder.
    fn sole<T: 'static>(cell: &Self::Cell<T>) -> bool;
    /// The buffers a threaded job carries, as this runtime's: `None`
    /// inline, whose sockets are opened by direct calls instead
    /// (`AnyPump::open_now`), since an inline buffer cannot cross threads.
    fn conn_from(cell: ConnCell<Threaded>) -> Option<ConnCell<Self>>;
    fn listen_from(cell: ListenCell<Threaded>) -> Option<ListenCell<Self>>;
    fn udp_from(cell: UdpCell<Threaded>) -> Option<UdpCell<Self>>;
}

/// A connection's buffers, as runtime `S` shares them.
pub(crate) type ConnCell<S> = <S as Share>::Cell<ConnBuf>;
/// A listener's accept queue, whose connections come with their buffers.
pub(crate) type ListenCell<S> = <S as Share>::Cell<ListenBuf<ConnCell<S>>>;
/// A UDP socket's datagram queues.
pub(crate) type UdpCell<S> = <S as Share>::Cell<UdpBuf>;

/// The threaded runtime's sharing: the two sides run on two threads.
#[derive(Debug)]
pub(crate) enum Threaded {}

/// The inline runtime's sharing: both sides run on one thread.
#[derive(Debug)]
pub(crate) enum Local {}

impl Share for Threaded {
    type Cell<T: 'static> = Arc<Mutex<T>>;
    type Guard<'a, T: 'static> = MutexGuard<'a, T>;
    const DIRECT_READS: bool = false;
    fn cell<T: 'static>(value: T) -> Arc<Mutex<T>> {
        Arc::new(Mutex::new(value))
    }
    fn lock<T: 'static>(cell: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
        lock(cell)
    }
    fn sole<T: 'static>(cell: &Arc<Mutex<T>>) -> bool {
        Arc::strong_count(cell) == 1
    }
    fn conn_from(cell: ConnCell<Threaded>) -> Option<ConnCell<Threaded>> {
        Some(cell)
    }
    fn listen_from(cell: ListenCell<Threaded>) -> Option<ListenCell<Threaded>> {
        Some(cell)
    }
    fn udp_from(cell: UdpCell<Threaded>) -> Option<UdpCell<Threaded>> {
        Some(cell)
    }
}

impl Share for Local {
    type Cell<T: 'static> = Rc<RefCell<T>>;
    type Guard<'a, T: 'static> = RefMut<'a, T>;
    const DIRECT_READS: bool = true;
    fn cell<T: 'static>(value: T) -> Rc<RefCell<T>> {
        Rc::new(RefCell::new(value))
    }
    fn lock<T: 'static>(cell: &Rc<RefCell<T>>) -> RefMut<'_, T> {
        cell.borrow_mut()
    }
    fn sole<T: 'static>(cell: &Rc<RefCell<T>>) -> bool {
        Rc::strong_count(cell) == 1
    }
    fn conn_from(_: ConnCell<Threaded>) -> Option<ConnCell<Local>> {
        None
    }
    fn listen_from(_: ListenCell<Threaded>) -> Option<ListenCell<Local>> {
        None
    }
    fn udp_from(_: UdpCell<Threaded>) -> Option<UdpCell<Local>> {
        None
    }
}

/// The application side's handle on a buffer: inline or threaded, as its
/// context's runtime is (`L` and `T` differ only for a listener's queue,
/// whose connections come with buffers of the same kind).
#[derive(Debug)]
pub(crate) enum Shared<L: 'static, T: 'static> {
    Local(Rc<RefCell<L>>),
    Threaded(Arc<Mutex<T>>),
}

impl<L, T> Clone for Shared<L, T> {
    fn clone(&self) -> Self {
        match self {
            Shared::Local(c) => Shared::Local(Rc::clone(c)),
            Shared::Threaded(c) => Shared::Threaded(Arc::clone(c)),
        }
    }
}

/// A connection's buffers, application side.
pub(crate) type ConnRef = Shared<ConnBuf, ConnBuf>;
/// A UDP socket's queues, application side.
pub(crate) type UdpRef = Shared<UdpBuf, UdpBuf>;
/// A listener's accept queue, application side.
pub(crate) type ListenRef = Shared<ListenBuf<ConnCell<Local>>, ListenBuf<ConnCell<Threaded>>>;

/// Access to a [`Shared`] buffer of one type.
pub(crate) enum Guard<'a, T: 'static> {
    Local(RefMut<'a, T>),
    Threaded(MutexGuard<'a, T>),
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Guard::Local(g) => g,
            Guard::Threaded(g) => g,
        }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Guard::Local(g) => g,
            Guard::Threaded(g) => g,
        }
    }
}

impl<T: 'static> Shared<T, T> {
    /// A new buffer, shared as an inline (`local`) or a threaded runtime does.
    pub fn new(local: bool, value: T) -> Self {
        if local { Shared::Local(Local::cell(value)) } else { Shared::Threaded(Threaded::cell(value)) }
    }

    pub fn lock(&self) -> Guard<'_, T> {
        match self {
            Shared::Local(c) => Guard::Local(c.borrow_mut()),
            Shared::Threaded(c) => Guard::Threaded(lock(c)),
        }
    }
}

/// What an application's accept took from a listener's queue.
pub(crate) struct Taken {
    pub conn: crate::engine::ConnId,
    pub buf: ConnRef,
    /// The stack holds more than the queue had room for: ask for them.
    pub ask_more: bool,
}

impl ListenRef {
    /// A new accept queue for `backlog` connections.
    pub fn new(local: bool, backlog: usize) -> Self {
        if local {
            Shared::Local(Local::cell(ListenBuf::new(backlog)))
        } else {
            Shared::Threaded(Threaded::cell(ListenBuf::new(backlog)))
        }
    }

    /// Connections queued, and the queue's change counters.
    pub fn queued(&self) -> (usize, Changes) {
        match self {
            Shared::Local(c) => c.borrow().queued(),
            Shared::Threaded(c) => lock(c).queued(),
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Shared::Local(c) => c.borrow().closed,
            Shared::Threaded(c) => lock(c).closed,
        }
    }

    /// Marks the listener closed by the application; false if it was already.
    pub fn close(&self) -> bool {
        let was = match self {
            Shared::Local(c) => std::mem::replace(&mut c.borrow_mut().closed, true),
            Shared::Threaded(c) => std::mem::replace(&mut lock(c).closed, true),
        };
        !was
    }

    /// The first queued connection: `Err(())` if the listener is closed,
    /// `Ok(None)` if none is queued.
    pub fn take(&self) -> Result<Option<Taken>, ()> {
        fn take<B>(q: &mut ListenBuf<B>, wrap: fn(B) -> ConnRef) -> Result<Option<Taken>, ()> {
            if q.closed {
                return Err(());
            }
            let Some(Accepted { conn, buf }) = q.queue.pop_front() else { return Ok(None) };
            let ask_more = q.more && !q.more_queued;
            q.more_queued |= ask_more;
            Ok(Some(Taken { conn, buf: wrap(buf), ask_more }))
        }
        match self {
            Shared::Local(c) => take(&mut c.borrow_mut(), Shared::Local),
            Shared::Threaded(c) => take(&mut lock(c), Shared::Threaded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ConnId;

    #[test]
    fn an_inline_buffer_is_not_behind_a_mutex_and_a_threaded_one_is() {
        let (inline, threaded) = (ConnRef::new(true, ConnBuf::new(1, 1)), ConnRef::new(false, ConnBuf::new(1, 1)));
        assert!(matches!(inline, Shared::Local(_)));
        assert!(matches!(threaded, Shared::Threaded(_)));
        inline.lock().established = true;
        assert!(inline.clone().lock().established, "a clone is the same buffer");
        assert!(!threaded.lock().established);
    }

    #[test]
    fn a_listener_queue_hands_out_its_connections_in_order_then_says_closed() {
        for local in [true, false] {
            let q = ListenRef::new(local, 4);
            let conn = |i| ConnId { index: i, generation: 1 };
            match &q {
                Shared::Local(c) => {
                    let mut b = c.borrow_mut();
                    for i in 0..2 {
                        b.queue.push_back(Accepted { conn: conn(i), buf: Local::cell(ConnBuf::new(1, 1)) });
                    }
                    b.more = true;
                }
                Shared::Threaded(c) => {
                    let mut b = lock(c);
                    for i in 0..2 {
                        b.queue.push_back(Accepted { conn: conn(i), buf: Threaded::cell(ConnBuf::new(1, 1)) });
                    }
                    b.more = true;
                }
            }
            assert_eq!(q.queued().0, 2);
            let first = q.take().unwrap().unwrap();
            assert_eq!(first.conn, conn(0));
            assert!(first.ask_more, "the first take asks for more");
            assert_eq!(matches!(first.buf, Shared::Local(_)), local, "the buffer is of the listener's kind");
            let second = q.take().unwrap().unwrap();
            assert_eq!(second.conn, conn(1));
            assert!(!second.ask_more, "asked once until the stack answers");
            assert!(q.take().unwrap().is_none());
            assert!(q.close());
            assert!(!q.close(), "closed once");
            assert!(q.is_closed() && q.take().is_err());
        }
    }
}
