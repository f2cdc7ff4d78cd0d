//! ixtcp-host: what a program or a test needs to run the stack on a NIC,
//! kept out of the socket API so that sockapi knows nothing of PCI, VFIO,
//! TAP devices or the 82599 model.
//!
//! - [`Nic`] names a NIC as `--nic` spells it (`model`, `tap:NAME`,
//!   `packet:IFACE`, `pci:ADDR`, `vfio:ADDR`); [`NicDevice`] resets and
//!   initialises it with the driver and hands out one queue pair per core
//!   ([`NicQueue`]).
//! - [`Host`] is a NIC, one stack core per queue pair (built by
//!   `ixtcp_stack::cores::build_cores`) and sockapi's
//!   [`Runtime`](ixtcp_sockapi::Runtime) with one
//!   [`Context`](ixtcp_sockapi::Context) per core, in either
//!   [`Mode`](ixtcp_sockapi::Mode); [`HostConfig`] says how, including the
//!   CPUs the cores are pinned to (`stack.cpus`).
//! - [`LinkedHosts`] is two hosts in one process over two 82599 models
//!   joined by an in-memory link (tests, examples, the benchmark);
//!   [`Stepped`] the same pair driven step by step on a virtual clock.
//!
//! Dependencies run one way: driver, stack, sockapi, then this crate;
//! none of the three depends on it.
//!
//! ```
//! use ixtcp_host::{HostConfig, LinkedHosts};
//! use ixtcp_sockapi::{Mode, TcpListener, TcpStream};
//! use ixtcp_stack::StackConfig;
//! use std::io::{Read, Write};
//!
//! let server = HostConfig::model(StackConfig::new([10, 0, 0, 1].into(), 24), Mode::Inline);
//! let client = HostConfig::model(StackConfig::new([10, 0, 0, 2].into(), 24), Mode::Inline);
//! let hosts = LinkedHosts::start(server, client)?;
//! let (served, replies) = hosts.run(
//!     |ctx| {
//!         let l = TcpListener::bind(ctx, "10.0.0.1:7".parse().unwrap())?;
//!         l.set_nonblocking(false);
//!         let (mut s, _) = l.accept()?;
//!         s.set_nonblocking(false);
//!         let mut buf = [0; 5];
//!         s.read_exact(&mut buf)?;
//!         s.write_all(&buf)?;
//!         Ok::<_, std::io::Error>(buf)
//!     },
//!     |ctx| {
//!         // The server may not listen yet: retry while refused.
//!         let mut c = loop {
//!             let mut c = TcpStream::connect(ctx, "10.0.0.1:7".parse().unwrap())?;
//!             c.set_nonblocking(false);
//!             match c.write_all(b"hello") {
//!                 Ok(()) => break c,
//!                 Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
//!                 Err(e) => return Err(e),
//!             }
//!         };
//!         let mut buf = [0; 5];
//!         c.read_exact(&mut buf)?;
//!         Ok::<_, std::io::Error>(buf)
//!     },
//! )?;
//! assert_eq!(&served[0].as_ref().unwrap(), &b"hello");
//! assert_eq!(&replies[0].as_ref().unwrap(), &b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Stopping: [`Host::run`] returns when every core's application has
//! returned; each core then closes what its application left open
//! (listeners first, streams with FIN after their data), runs its stack
//! until no connection is left or the linger ([`HostConfig::linger`])
//! passes, resets whatever is still open, and lets its queue pair go (every
//! buffer back in its pool, see [`HostStats::buffers`]); only when every
//! core's threads have ended is the device stopped (receive off, queues
//! disabled). [`LinkedHosts::run`] asks the server to stop once the
//! client's applications have all returned.
//!
//! Pinning: `stack.cpus` names a CPU per core, and the runtime runs that
//! core's threads there; without it the OS places them (the default, right
//! for models that share the machine with their peer).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod host;
mod linked;
mod nic;

pub use host::{Host, HostConfig, HostStats, Serving, TimeSource};
pub use linked::{LinkedHosts, Stepped};
pub use nic::{Nic, NicDevice, NicQueue, OpenOptions};
