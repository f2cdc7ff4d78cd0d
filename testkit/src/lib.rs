//! # ixtcp-testkit
//!
//! What the tests of the ixtcp crates share, so that each piece exists once:
//!
//! - [`seed`]: the seed of a randomised test, from `IXTCP_SEED` or the
//!   test's default, printed when the test starts and again when it fails;
//!   a ChaCha8 RNG from it.
//! - [`frames`]: Ethernet, ARP, IPv4, TCP and UDP frames built and read with
//!   smoltcp's wire types, and the Internet checksum for tests that check
//!   raw bytes.
//! - [`peer`]: whether the Linux kernel can be a test's peer on this machine
//!   (root, `ip`, `/dev/net/tun`, curl), and what a test does when it cannot:
//!   skip with a `SKIPPED` line, or fail when `IXTCP_REQUIRE_PEER=1`.
//! - [`hugepages`]: 2 MiB hugepages for the tests that need them, reserved
//!   by the test itself as root; a skip fails when `IXTCP_REQUIRE_HUGEPAGES=1`.
//! - [`in_ns`]: a program running inside a test's network namespace, the
//!   kernel's side of its TAP device, and the kernel as a hundred echo
//!   clients, for the kernel-peer tests of programs.
//! - [`hosts`]: a host of stack cores over the 82599 model and the driver,
//!   or over the stack's in-memory NIC, built in one place.
//!
//! A dev-dependency only (`publish = false`). It depends on the driver and
//! the stack, so a crate's own `#[cfg(test)]` modules that use it see a
//! second copy of that crate: only byte slices and std types may cross.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod frames;
pub mod hosts;
pub mod hugepages;
pub mod in_ns;
pub mod peer;
pub mod seed;
