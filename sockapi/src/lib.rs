//! ixtcp-sockapi: the socket-like API that applications on ixtcp are written
//! against — mTCP's API (`mtcp_socket`, `bind`, `listen`, `accept`,
//! `connect`, `read`, `write`, `close`, `epoll_*`) in the form of Rust's
//! `std::net` and mio.
//!
//! # Layers and who owns what
//!
//! ```text
//!  application thread (per core)            stack side (per core)
//!  ─────────────────────────────            ─────────────────────────────────
//!  Context ── TcpListener, TcpStream,       Pump ── E: Engine (one core)
//!          ── UdpSocket
//!          ── Epoll (several allowed)          applies jobs between ingress
//!     │ jobs, in batches ─────────────────▶    and egress; moves bytes between
//!     │ ◀─────── socket keys, in batches       the engine and the per-connection
//!     └─ per-connection buffers (ConnBuf, shared) ────────┘
//!        and per-UDP-socket datagram queues (UdpBuf): behind a mutex
//!        threaded, a RefCell inline (no lock on the inline data path)
//! ```
//!
//! The files, one concern each:
//!
//! | file | what it holds |
//! |---|---|
//! | `engine.rs` | the [`Engine`] trait and its vocabulary (the stack's own [`ConnId`], `Readiness`, `CloseReason`, `TcpState`) |
//! | `stack_engine.rs` | [`StackEngine`]: the real stack core as an engine |
//! | `context.rs` | [`Context`]: one core's socket table, epolls and link to its stack side |
//! | `net.rs` | [`TcpListener`], [`TcpStream`] |
//! | `udp.rs` | [`UdpSocket`], [`RecvMeta`] (datagram boundaries, truncation), [`UdpStats`] |
//! | `epoll.rs` | [`Epoll`], [`Events`], [`Interest`], [`Trigger`] (the API) |
//! | `waker.rs` | [`Waker`], [`WakeHandle`]: waking a context's wait from another thread |
//! | `readiness.rs` | the readiness mechanism: what makes a socket ready, change tracking, registrations, dispatch, filtering |
//! | `buffers.rs` | the per-connection, per-listener and per-UDP-socket buffers both sides share |
//! | `share.rs` | how a runtime shares them: `Arc<Mutex<_>>` threaded, `Rc<RefCell<_>>` inline |
//! | `job.rs` | the jobs the application sends to its stack side |
//! | `pump.rs` | the stack side: applies jobs, moves bytes, reports changed sockets |
//! | `batch.rs` | the threaded runtime's channels, in recycled vectors |
//! | `runtime.rs` | [`Runtime`]: threads, pinning, shutdown; [`Started`]: cores attached from the application's own threads |
//!
//! - [`Engine`] is what sockapi needs from one stack core (listen, accept,
//!   connect, send, recv, shutdown, close, abort, state, options, UDP
//!   bind/send/receive, events, ingress/egress). The real per-core stack implements it; so does the
//!   in-memory `testing::TestEngine` (feature `test-utils`).
//! - [`StackEngine`] is the real stack (one `ixtcp_stack::StackCore`)
//!   as an engine. Bringing up a NIC and its stack cores under a runtime is
//!   the `ixtcp-host` crate's business, not this one's.
//! - A [`Context`] (mTCP's `mctx`) is one core's application side. Its
//!   sockets and epolls are usable only from the thread that owns it (it is
//!   not `Send`), and handles made from one context are refused by another
//!   (`InvalidInput`).
//! - Application calls become jobs (connect, listen, close, abort, "sync
//!   this connection" after a read or write) that travel to the stack side
//!   in batches; the stack side answers with a batch of socket keys whose
//!   readiness may have changed, and [`Epoll`] turns those into events.
//! - Bytes do not travel in jobs: each connection has a receive and a send
//!   buffer shared by the two sides. `write` copies into the send buffer and
//!   the stack moves it into the engine at its next iteration (inline, with
//!   nothing of the connection's still in the send buffer, `write` hands
//!   the bytes to the engine itself, and only what the engine has no room
//!   for is buffered); the stack moves received bytes from the engine's
//!   buffer straight into the receive buffer, where `read` finds them (one
//!   copy between the stack's buffer and the application's). Inline, a
//!   connect is applied at once, with the jobs queued before it.
//!
//! Two runtimes run this same code ([`Runtime`], [`Mode`]):
//!
//! - **Threaded** (mTCP's model): per core a stack thread that loops over
//!   the engine and an application thread; jobs and events cross over
//!   crossbeam channels, one batch per stack iteration, and an application
//!   blocked in [`Epoll::wait`] sleeps on the event channel until a batch
//!   arrives — once per batch, not per event, and without spinning.
//! - **Inline** (run to completion): one thread per core; `Epoll::wait`
//!   runs the stack itself: queued jobs, egress, ingress, then returns
//!   events, so the application's reply to a request leaves in the same
//!   iteration as the ACK of the request. [`Context::inline`] makes such a
//!   context on the current thread without a runtime.
//!
//! # The readiness contract
//!
//! This follows mio's and Linux epoll's:
//!
//! - **Readiness is a hint.** An event says an operation *may* succeed now.
//!   Events can be spurious (the socket turns out not to be ready; the call
//!   returns `WouldBlock`), and several changes may be merged into one
//!   event. Always be prepared for `WouldBlock`.
//! - **Edge-triggered registrations** ([`Trigger::EDGE`]) report a socket
//!   once per change: new data arrived, buffer room freed after the send
//!   buffer had been full, handshake completed, FIN, reset. After an event,
//!   read (or write, or accept) **until it returns `WouldBlock`**; a socket
//!   left with unread data is not reported again until more arrives.
//! - **Level-triggered registrations** ([`Trigger::LEVEL`]) report a socket
//!   in every wait while the condition holds: unread data or end of stream,
//!   room in the send buffer, a connection in the accept queue.
//! - **One-shot** ([`Trigger::oneshot`]) disables a registration after one
//!   event until [`Epoll::modify`] re-arms it.
//! - Adding or modifying a registration of a socket that is already ready
//!   reports it in the next wait, whatever the trigger.
//! - Error and hang-up are reported whatever the interest. A failed
//!   connection (refused, reset, timed out) is readable, writable,
//!   read-closed, hung up and in error; [`TcpStream::take_error`] or the
//!   next read or write returns the error once.
//! - **Threads.** Everything in this crate is called from the thread that
//!   owns the [`Context`]; the only `Send` pieces are the engines (moved to
//!   their core's thread by the runtime) and [`StopHandle`].
//! - Sockets are non-blocking by default, as in mTCP and mio;
//!   `set_nonblocking(false)` makes reads, writes and accepts wait.
//!
//! # Errors
//!
//! Every call returns `std::io::Error` with the kind a sockets user expects:
//! `ConnectionRefused`, `ConnectionReset`, `TimedOut` (connection failures),
//! `BrokenPipe` (writing after shutdown or after a reset was reported),
//! `AddrInUse`, `AddrNotAvailable`, `NotConnected` (not yet connected, or
//! the handle was closed), `WouldBlock`, `InvalidInput` (a handle of
//! another context, IPv6, a zero buffer size). Misuse is an error, never a
//! panic.
//!
//! # Close semantics (as on Linux)
//!
//! - [`TcpStream::close`] with unread received data resets the connection.
//! - Otherwise close sends everything still buffered, then FIN.
//! - [`TcpStream::shutdown`] with `Shutdown::Write` half-closes: FIN after
//!   the buffered data, reading goes on.
//! - [`TcpStream::abort`] resets at once.
//!
//! # Example: an echo exchange over the test engine
//!
//! ```
//! use ixtcp_sockapi::{Context, Epoll, Events, Interest, TcpListener, TcpStream, Token, Trigger};
//! use ixtcp_sockapi::testing::TestNet;
//! use std::io::{ErrorKind, Read, Write};
//! use std::time::Duration;
//!
//! let ctx = Context::inline(TestNet::new().engine([10, 0, 0, 1].into()));
//! let addr = "10.0.0.1:7".parse().unwrap();
//! let listener = TcpListener::bind(&ctx, addr)?;
//! let epoll = Epoll::new(&ctx)?;
//! epoll.add(&listener, Token(0), Interest::READABLE, Trigger::EDGE)?;
//! let mut client = TcpStream::connect(&ctx, addr)?;
//! epoll.add(&client, Token(1), Interest::WRITABLE, Trigger::EDGE.oneshot())?;
//!
//! let mut events = Events::with_capacity(8);
//! let mut server = None;
//! let mut reply = Vec::new();
//! while reply.len() < 5 {
//!     epoll.wait(&mut events, Some(Duration::from_secs(5)))?;
//!     for ev in &events {
//!         match ev.token() {
//!             Token(0) => {
//!                 // Edge-triggered: accept until WouldBlock.
//!                 loop {
//!                     match listener.accept() {
//!                         Ok((s, _)) => {
//!                             epoll.add(&s, Token(2), Interest::READABLE, Trigger::EDGE)?;
//!                             server = Some(s);
//!                         }
//!                         Err(e) if e.kind() == ErrorKind::WouldBlock => break,
//!                         Err(e) => return Err(e),
//!                     }
//!                 }
//!             }
//!             Token(1) => {
//!                 client.write_all(b"hello")?;
//!                 epoll.modify(&client, Token(3), Interest::READABLE, Trigger::EDGE)?;
//!             }
//!             Token(2) => {
//!                 let mut s = server.as_ref().unwrap();
//!                 let mut buf = [0; 64];
//!                 loop {
//!                     match s.read(&mut buf) {
//!                         Ok(0) => break,
//!                         Ok(n) => { s.write_all(&buf[..n])?; }
//!                         Err(e) if e.kind() == ErrorKind::WouldBlock => break,
//!                         Err(e) => return Err(e),
//!                     }
//!                 }
//!             }
//!             _ => {
//!                 let mut buf = [0; 64];
//!                 loop {
//!                     match client.read(&mut buf) {
//!                         Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
//!                         Ok(_) => break,
//!                         Err(e) if e.kind() == ErrorKind::WouldBlock => break,
//!                         Err(e) => return Err(e),
//!                     }
//!                 }
//!             }
//!         }
//!     }
//! }
//! assert_eq!(reply, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod buffers;
mod context;
pub mod engine;
mod epoll;
mod job;
mod net;
mod pump;
mod readiness;
mod runtime;
mod share;
mod slab;
pub mod stack_engine;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
mod udp;
mod waker;

pub use context::{Context, StopHandle};
pub use engine::{ConnId, Engine, EngineError, KeepAlive, ListenerId};
pub use epoll::{Epoll, Event, Events, Interest, Source, SourceId, Token, Trigger};
pub use net::{DEFAULT_BACKLOG, TcpListener, TcpStream};
pub use runtime::{Attached, Builder, Mode, Runtime, Started};
pub use stack_engine::StackEngine;
pub use udp::{RecvMeta, UdpSocket, UdpStats};
pub use waker::{WakeHandle, Waker};
