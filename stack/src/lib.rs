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
//! - [`pcap`]: [`pcap::Pcap`], a wrapper over any `PacketIo` that records
//!   every frame received and sent into a pcap file (a branch per batch
//!   when there is no file), and the file itself.
//! - [`ether`]: Ethernet II, ARP, IPv4 and TCP header views whose
//!   `new_checked` constructors check every length once; a segment's TCP
//!   headers are read once into an [`ether::TcpHeader`] that travels with
//!   the buffer. smoltcp runs with `Medium::Ip`: everything below IP is ours.
//! - `port`, `arp`, [`neighbor`]: the link layer of a core (TX batch,
//!   next hop, the one path every IPv4 packet takes out, Ethernet framing
//!   into the headroom), the ARP protocol on it (answers, learning,
//!   requests, packets waiting for a neighbour), and the
//!   [`NeighborTable`], shared by a host's cores and read without locks.
//! - `phy`: smoltcp's `Device`, made per smoltcp call over the port:
//!   zero-copy receive (Ethernet header stripped in place), transmit into
//!   mempool buffers; for a connection's call it carries that connection's
//!   sequence mapping and record of what it sent.
//! - `workaround`, `sent`: the TCP rewrites and checks that work around
//!   smoltcp (ISN mapping and SYN-cookie replay, stale ACKs, RFC 5961 RST
//!   and SYN checks), and what each sent segment tells the core (SND.MAX,
//!   retransmissions, the last ACK and window).
//! - [`flow`]: 4-tuple → connection, so that smoltcp sees one socket per
//!   call instead of scanning them all; [`timer`]: a timing wheel fed by
//!   each connection's `poll_at`; [`timewait`]: TIME_WAIT as tuple + expiry.
//! - `conn`, `listen`, [`rss`]: connection slots (one socket in its own
//!   `SocketSet` each, reused), listeners with backlogs, and the choice of
//!   local ports whose replies RSS brings back to the calling core.
//! - `icmp`, [`udp`]: ICMP echo replies, port unreachable and the
//!   per-core ICMP rate limit; a per-core table of bound UDP ports with
//!   bounded receive queues, and `udp_send_to` through the same port/ARP
//!   path as TCP. Both check their own checksums (the NIC never checks
//!   ICMP's) and count every drop by cause.
//! - `pmtu`: path MTU discovery (RFC 1191): "fragmentation needed" moves
//!   a connection, and the core's others to that destination, to an
//!   interface of the lowered MTU; the value is remembered per destination
//!   for ten minutes.
//! - [`StackCore`] (`core`, `api`): one value per queue pair; `poll` runs
//!   one loop iteration; the application API (listen, accept, connect,
//!   send, recv, close; UDP bind, send_to, recv_from) and edge-triggered
//!   [`Event`]s (TCP only: a UDP port's queue is read with
//!   `udp_pending` / `udp_recv_from`).
//! - [`cores`]: bringing up one core per queue pair (the runtime that runs
//!   them is sockapi's, started by the `ixtcp-host` crate).
//! - [`config`], [`stats`].
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
mod icmp;
pub mod io;
mod listen;
pub mod neighbor;
pub mod pcap;
mod phy;
mod pmtu;
mod port;
pub mod rss;
pub mod secret;
mod sent;
#[cfg(any(test, feature = "test-utils"))]
pub mod sim;
pub mod stats;
pub mod timer;
pub mod timewait;
pub mod udp;
mod workaround;

pub use crate::api::TcpState;
pub use crate::config::{ConfigError, Congestion, StackConfig};
pub use crate::conn::{CloseReason, ConnId, ConnStatus, Event, KeepAlive, Readiness};
pub use crate::core::{CoreSetup, PollOutcome, SocketCensus, StackCore};
pub use crate::error::StackError;
pub use crate::ether::MacAddr;
pub use crate::io::PacketIo;
pub use crate::neighbor::NeighborTable;
pub use crate::rss::RssView;
pub use crate::secret::HostSecret;
pub use crate::stats::{CoreStats, StatsMirror};
pub use crate::udp::{UdpError, UdpId, UdpRecv};
