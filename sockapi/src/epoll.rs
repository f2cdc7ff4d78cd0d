//! Readiness notification: [`Epoll`], in mio's vocabulary ([`Token`],
//! [`Interest`], [`Events`]) with Linux epoll's modes ([`Trigger`]).

use std::io;
use std::time::Duration;

use crate::context::{Block, Context, EpollState};
use crate::engine::Readiness;
use crate::readiness::{Reg, Take};
use crate::slab::Key;

/// Identifies a registration in the events [`Epoll::wait`] returns; chosen by
/// the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// Which readiness a registration asks for. Error and hang-up are always
/// reported, whatever the interest.
///
/// ```
/// use ixtcp_sockapi::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// assert!(!Interest::READABLE.is_writable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Data to read, end of stream, or (for a listener) a connection to accept.
    pub const READABLE: Interest = Interest(1);
    /// Room to write (or the handshake completed, for a connecting stream).
    pub const WRITABLE: Interest = Interest(2);

    /// True if readable readiness is asked for.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// True if writable readiness is asked for.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

/// When a registration reports: level- or edge-triggered, optionally one-shot.
///
/// - **Level** (`EPOLLLT`): every `wait` reports the socket while the
///   condition holds (unread data, room to write).
/// - **Edge** (`EPOLLET`): a `wait` reports the socket once per change (new
///   data arrived, room freed after the buffer was full, handshake done, FIN,
///   error); after an event, read or write until `WouldBlock` before waiting
///   again, or the next event may never come.
/// - **One-shot** (`EPOLLONESHOT`): after one event the registration is
///   disabled until [`Epoll::modify`] re-arms it.
///
/// ```
/// use ixtcp_sockapi::Trigger;
/// let t = Trigger::EDGE.oneshot();
/// assert!(t.is_edge() && t.is_oneshot());
/// assert!(!Trigger::LEVEL.is_edge());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trigger {
    edge: bool,
    oneshot: bool,
}

impl Trigger {
    /// Level-triggered.
    pub const LEVEL: Trigger = Trigger { edge: false, oneshot: false };
    /// Edge-triggered.
    pub const EDGE: Trigger = Trigger { edge: true, oneshot: false };

    /// The same trigger, one-shot.
    pub fn oneshot(self) -> Trigger {
        Trigger { oneshot: true, ..self }
    }

    /// True for edge-triggered.
    pub fn is_edge(self) -> bool {
        self.edge
    }

    /// True for one-shot.
    pub fn is_oneshot(self) -> bool {
        self.oneshot
    }
}

/// One readiness event: the registration's token and what is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    ready: Readiness,
}

impl Event {
    /// The token given at registration.
    pub fn token(&self) -> Token {
        self.token
    }

    /// A read would not block: data, end of stream, an error, or (listener) a
    /// connection to accept.
    pub fn is_readable(&self) -> bool {
        self.ready.contains(Readiness::READABLE)
    }

    /// A write would not block: room in the send buffer, or an error.
    pub fn is_writable(&self) -> bool {
        self.ready.contains(Readiness::WRITABLE)
    }

    /// The peer closed its direction (FIN, `EPOLLRDHUP`); reads return 0
    /// once the buffered data is read. Reported with readable interest.
    pub fn is_read_closed(&self) -> bool {
        self.ready.contains(Readiness::READ_CLOSED)
    }

    /// Both directions are closed, or the connection was reset (`EPOLLHUP`).
    pub fn is_hang_up(&self) -> bool {
        self.ready.contains(Readiness::HUP)
    }

    /// The connection failed (`EPOLLERR`); `TcpStream::take_error` or the
    /// next read or write returns the error.
    pub fn is_error(&self) -> bool {
        self.ready.contains(Readiness::ERROR)
    }
}

/// A buffer of events filled by [`Epoll::wait`]; at most `capacity` per wait.
///
/// ```
/// use ixtcp_sockapi::Events;
/// let events = Events::with_capacity(64);
/// assert!(events.is_empty());
/// assert_eq!(events.capacity(), 64);
/// ```
#[derive(Debug, Clone)]
pub struct Events {
    list: Vec<Event>,
    cap: usize,
}

impl Events {
    /// Room for `capacity` events per wait.
    pub fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity), cap: capacity }
    }

    /// The most events one wait returns.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The events of the last wait.
    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Number of events of the last wait.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True if the last wait returned no event.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forget the events.
    pub fn clear(&mut self) {
        self.list.clear();
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// Identity of a socket for [`Epoll`]: its context and slot. Opaque; every
/// `TcpStream` and `TcpListener` has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId {
    pub(crate) ctx: u64,
    pub(crate) key: Key,
}

/// Something an [`Epoll`] can watch: [`TcpStream`](crate::TcpStream), [`UdpSocket`](crate::UdpSocket) and
/// [`TcpListener`](crate::TcpListener).
pub trait Source {
    /// The socket's identity.
    fn source_id(&self) -> SourceId;
}

/// Waits for readiness on the sockets of one [`Context`] (mTCP's
/// `mtcp_epoll_*`, Linux's `epoll`). A context may have several.
///
/// ```
/// use ixtcp_sockapi::{Context, Epoll, Events, Interest, TcpListener, TcpStream, Token, Trigger};
/// use ixtcp_sockapi::testing::TestNet;
/// use std::time::Duration;
///
/// let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
/// let listener = TcpListener::bind(&ctx, "10.0.0.1:7".parse().unwrap())?;
/// let epoll = Epoll::new(&ctx)?;
/// epoll.add(&listener, Token(0), Interest::READABLE, Trigger::LEVEL)?;
/// let client = TcpStream::connect(&ctx, "10.0.0.1:7".parse().unwrap())?;
///
/// let mut events = Events::with_capacity(16);
/// epoll.wait(&mut events, Some(Duration::from_secs(5)))?;
/// let ev = events.iter().next().expect("listener readable");
/// assert_eq!(ev.token(), Token(0));
/// let (server_side, peer) = listener.accept()?;
/// assert_eq!(peer, client.local_addr()?);
/// # drop(server_side);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Epoll {
    ctx: Context,
    key: Key,
}

impl Epoll {
    /// The context this epoll belongs to.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// A new epoll on `ctx`.
    pub fn new(ctx: &Context) -> io::Result<Epoll> {
        let key = ctx
            .state()?
            .epolls
            .insert(EpollState::default())
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "too many epolls"))?;
        Ok(Epoll { ctx: ctx.clone(), key })
    }

    fn check(&self, id: SourceId) -> io::Result<()> {
        if id.ctx == self.ctx.inner.id {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidInput, "socket belongs to another context"))
        }
    }

    /// Watch `source` for `interest`, reporting `token`. A socket that is
    /// already ready is reported by the next wait, whatever the trigger.
    ///
    /// Errors: `InvalidInput` for a socket of another context, `NotConnected`
    /// for a closed one, `AlreadyExists` if it is already registered here.
    pub fn add<S: Source + ?Sized>(
        &self,
        source: &S,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        let id = source.source_id();
        self.check(id)?;
        let mut guard = self.ctx.state()?;
        let st = &mut *guard;
        if st.epolls.get(self.key).is_none() {
            return Err(closed_epoll());
        }
        let seq = st.next_reg_seq;
        st.next_reg_seq += 1;
        let sock = st.socks.get_mut(id.key).ok_or_else(crate::net::closed)?;
        if sock.regs.iter().any(|r| r.epoll == self.key) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "socket already registered with this epoll"));
        }
        let reg = Reg::new(self.key, seq, token, interest, trigger);
        let ready = reg.ready_now(sock.readiness().0);
        sock.regs.push(reg);
        if ready {
            st.notify(id.key);
        }
        Ok(())
    }

    /// Change a registration; also re-arms a one-shot one. Errors as `add`,
    /// and `NotFound` if the socket is not registered here.
    pub fn modify<S: Source + ?Sized>(
        &self,
        source: &S,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> io::Result<()> {
        let id = source.source_id();
        self.check(id)?;
        let mut guard = self.ctx.state()?;
        let st = &mut *guard;
        let sock = st.socks.get_mut(id.key).ok_or_else(crate::net::closed)?;
        let (ready, _) = sock.readiness();
        let reg = sock.regs.iter_mut().find(|r| r.epoll == self.key).ok_or_else(not_registered)?;
        reg.modify(token, interest, trigger);
        if reg.ready_now(ready) {
            st.notify(id.key);
        }
        Ok(())
    }

    /// Stop watching `source`. Errors as `modify`.
    pub fn delete<S: Source + ?Sized>(&self, source: &S) -> io::Result<()> {
        let id = source.source_id();
        self.check(id)?;
        let mut st = self.ctx.state()?;
        let sock = st.socks.get_mut(id.key).ok_or_else(crate::net::closed)?;
        let at = sock.regs.iter().position(|r| r.epoll == self.key).ok_or_else(not_registered)?;
        sock.regs.swap_remove(at);
        Ok(())
    }

    /// Wait until at least one registered socket is ready or `timeout`
    /// passes (`None`: no timeout; `Some(ZERO)`: just poll), and fill
    /// `events` (cleared first). Returns the number of events; 0 on timeout,
    /// or at once after the runtime was asked to stop.
    ///
    /// Inline, this call runs the stack: queued jobs, egress, ingress, as
    /// often as needed. Threaded, it sends the queued jobs as one batch and
    /// sleeps until the stack sends a batch of events.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.list.clear();
        if events.cap == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "Events has no capacity"));
        }
        self.ctx.drive(Block::No)?;
        // The deadline is on the context's clock (virtual in simulations,
        // where waiting moves time instead of sleeping), counted from the
        // iteration just run: inline, the time its ingress read, so a wait
        // that finds events at once reads the clock only there.
        let deadline =
            timeout.map(|t| self.ctx.iteration_ns().saturating_add(t.as_nanos().min(u128::from(u64::MAX)) as u64));
        loop {
            let n = self.collect(events)?;
            if n > 0 || self.ctx.is_stopped() {
                return Ok(n);
            }
            // Against the last iteration's reading (inline, the drive just
            // run read the clock; threaded this reads it): a deadline passed
            // during that drive's nap ends the wait one iteration later,
            // which costs a poll and saves a clock read per empty poll.
            if let Some(d) = deadline {
                if self.ctx.iteration_ns() >= d {
                    return Ok(0);
                }
            }
            self.ctx.drive(Block::Until(deadline))?;
        }
    }

    fn collect(&self, events: &mut Events) -> io::Result<usize> {
        let mut guard = self.ctx.state()?;
        let st = &mut *guard;
        let mut ready = match st.epolls.get_mut(self.key) {
            Some(ep) => std::mem::take(&mut ep.ready),
            None => return Err(closed_epoll()),
        };
        for _ in 0..ready.len() {
            if events.list.len() >= events.cap {
                break;
            }
            let Some((key, seq)) = ready.pop_front() else { break };
            let Some(sock) = st.socks.get_mut(key) else { continue };
            let (now, changes) = sock.readiness();
            let Some(reg) = sock.regs.iter_mut().find(|r| r.epoll == self.key && r.seq == seq) else { continue };
            match reg.take(now, changes) {
                Take::Skip => {}
                Take::Report(r) => events.list.push(Event { token: reg.token, ready: r }),
                Take::ReportAndKeep(r) => {
                    events.list.push(Event { token: reg.token, ready: r });
                    ready.push_back((key, seq));
                }
            }
        }
        if let Some(ep) = st.epolls.get_mut(self.key) {
            ep.ready = ready;
        }
        Ok(events.list.len())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        if let Ok(mut st) = self.ctx.state() {
            st.epolls.remove(self.key);
            let key = self.key;
            for (_, sock) in st.socks.iter_mut() {
                sock.regs.retain(|r| r.epoll != key);
            }
        }
    }
}

fn closed_epoll() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "epoll is closed")
}

fn not_registered() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "socket is not registered with this epoll")
}
