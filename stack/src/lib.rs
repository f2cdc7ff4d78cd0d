//! # ixtcp-stack
//!
//! A per-core TCP/IP stack for the ixtcp poll-mode driver, with smoltcp as
//! the TCP engine and everything around it (demultiplexing, Ethernet, ARP,
//! timers, TIME_WAIT, RSS-aware port choice) built for many connections on
//! many cores.
//!
//! ## Layers, bottom up
//!
//! - [`io`]: [`PacketIo`], the packet I/O of one queue pair (the driver's
//!   queue pair, or the in-memory NIC of `sim` in tests; that module is
//!   compiled only with the `test-utils` feature).
//! - [`ether`], [`neighbor`], `phy`: Ethernet II and ARP are ours; smoltcp
//!   runs with `Medium::Ip`. The phy adapter is smoltcp's `Device` over the
//!   queue pair: zero-copy receive (Ethernet header stripped in place),
//!   transmit into mempool buffers with the Ethernet header written into
//!   the headroom. The [`NeighborTable`] is shared by a host's cores and
//!   read without locks.
//! - [`flow`]: 4-tuple → connection, so that smoltcp sees one socket per
//!   call instead of scanning them all; [`timer`]: a timing wheel fed by
//!   each connection's `poll_at`; [`timewait`]: TIME_WAIT as tuple + expiry.
//! - `conn`, `listen`, [`rss`]: connection slots (one socket in its own
//!   `SocketSet` each, reused), listeners with backlogs, and the choice of
//!   local ports whose replies RSS brings back to the calling core.
//! - [`StackCore`] (`core`, `api`): one value per queue pair; `poll` runs
//!   one loop iteration; the application API (listen, accept, connect,
//!   send, recv, close) and edge-triggered [`Event`]s.
//! - [`cores`]: bringing up one core per queue pair (the runtime that runs
//!   them is sockapi's, started by the `ixtcp-host` crate).
//! - [`config`], [`stats`], [`pcap`].
//!
//! ## Who owns what, on which thread
//!
//! A [`StackCore`] owns its queue pair, mempool, smoltcp `Interface`, flow
//! table, connections, timers, TIME_WAIT table and counters, and is used by
//! one thread at a time (it is `Send`, not `Sync`). The runtime (sockapi's)
//! runs each core on a thread of its own, pinned to a CPU when `cpus` says
//! so; deterministic tests drive several cores of two hosts, and the wire
//! between them, from one thread with a virtual clock. The
//! only thing shared between cores is the host's [`NeighborTable`]: lock-free
//! reads on the packet path, rare writes from ARP input. Counters are plain
//! integers owned by the core, published to other threads through a
//! [`StatsMirror`] by the runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod arp;
pub mod config;
mod conn;
pub mod cookie;
mod core;
pub mod cores;
mod csum;
mod error;
pub mod ether;
pub mod flow;
pub mod io;
mod listen;
pub mod neighbor;
pub mod pcap;
mod phy;
mod port;
pub mod rss;
pub mod secret;
mod sent;
#[cfg(any(test, feature = "test-utils"))]
pub mod sim;
pub mod stats;
pub mod timer;
pub mod timewait;
mod workaround;

pub use crate::api::TcpState;
pub use crate::config::{ConfigError, Congestion, StackConfig};
pub use crate::conn::{CloseReason, ConnId, Event, KeepAlive, Readiness};
pub use crate::core::{CoreSetup, PollOutcome, SocketCensus, StackCore};
pub use crate::error::StackError;
pub use crate::ether::MacAddr;
pub use crate::io::PacketIo;
pub use crate::neighbor::NeighborTable;
pub use crate::rss::RssView;
pub use crate::secret::HostSecret;
pub use crate::stats::{CoreStats, StatsMirror};
