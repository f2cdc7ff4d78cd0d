//! Whether the Linux kernel can be a test's peer on this machine, and what
//! a test does when something it needs is missing.
//!
//! Tests with the kernel as a peer make a network namespace of their own
//! and send traffic only to its addresses; that takes root, iproute2's
//! `ip`, and for TAP devices `/dev/net/tun` (some also run curl or
//! hping3). Where
//! these are missing the test is skipped: it prints
//! `SKIPPED <test>: <reason>` and returns early, and so passes. CI runs as
//! root and sets `IXTCP_REQUIRE_PEER=1`: there a skip is a failure, so a
//! broken environment cannot pass for a green run.
//!
//! ```no_run
//! use ixtcp_testkit::peer::{self, Needs};
//!
//! # fn body() {
//! if !peer::kernel_peer("my_tap_test", Needs::TAP) {
//!     return;
//! }
//! // ... the test proper ...
//! # }
//! ```

use std::io::Write;
use std::process::Command;

/// Set to `1`, a kernel-peer test that cannot run fails instead of skipping.
pub const REQUIRE_PEER: &str = "IXTCP_REQUIRE_PEER";

/// What a kernel-peer test needs besides root and `ip`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// `/dev/net/tun`, for TAP devices.
    pub tun: bool,
    /// The `curl` command, run inside the namespace.
    pub curl: bool,
    /// The `hping3` command (a SYN flood), run inside the namespace.
    pub hping3: bool,
}

impl Needs {
    /// Root and `ip` only: veth pairs and AF_PACKET sockets.
    pub const NETNS: Needs = Needs { tun: false, curl: false, hping3: false };
    /// A TAP device as well.
    pub const TAP: Needs = Needs { tun: true, curl: false, hping3: false };
    /// A TAP device and curl.
    pub const TAP_AND_CURL: Needs = Needs { tun: true, curl: true, hping3: false };
    /// A TAP device, curl and hping3.
    pub const TAP_CURL_AND_HPING3: Needs = Needs { tun: true, curl: true, hping3: true };
}

/// Why the kernel cannot be a peer with `needs` here, or `None` when it can.
pub fn kernel_peer_unavailable(needs: Needs) -> Option<String> {
    ixtcp_driver::wire::netns::kernel_peer_unavailable(needs.tun).or_else(|| {
        let curl = || Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
        // `hping3 --version` exits with 0 and needs no privileges.
        let hping3 = || Command::new("hping3").arg("--version").output().is_ok_and(|o| o.status.success());
        if needs.curl && !curl() {
            Some("curl is missing (scripts/setup.sh installs it)".to_string())
        } else if needs.hping3 && !hping3() {
            Some("hping3 is missing (scripts/setup.sh installs it)".to_string())
        } else {
            None
        }
    })
}

/// True when the kernel can be `test`'s peer with `needs`. Otherwise the
/// test is skipped (see [`skip`]): false, and the test should return.
pub fn kernel_peer(test: &str, needs: Needs) -> bool {
    match kernel_peer_unavailable(needs) {
        None => true,
        Some(why) => skip(test, &why, REQUIRE_PEER),
    }
}

/// Whether the switch `var` (such as [`REQUIRE_PEER`]) is on: set to `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v.trim() == "1")
}

/// The message of a skip, or of the panic when `var` asks for no skips.
fn verdict(test: &str, why: &str, var: &str, required: bool) -> Result<String, String> {
    if required {
        Err(format!("{test} was required to run ({var}=1) but cannot: {why}"))
    } else {
        Ok(format!("SKIPPED {test}: {why}"))
    }
}

/// Skips `test` because of `why`: prints `SKIPPED <test>: <why>` to stderr
/// and returns false, so that the caller can `return` from the test. When
/// the switch `var` is on ([`required`]) it panics instead, saying that the
/// test was required to run.
///
/// The line goes straight to the process's stderr, past the test harness's
/// capture, so that skips show in the log of a passing run too.
pub fn skip(test: &str, why: &str, var: &str) -> bool {
    match verdict(test, why, var, required(var)) {
        Ok(line) => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            false
        }
        Err(message) => panic!("{message}"),
    }
}

/// A network interface name for this process, unique per `n` and at most
/// 15 bytes (the kernel's limit): `prefix`, the pid, then `n`.
pub fn ifname(prefix: &str, n: u32) -> String {
    let name = format!("{prefix}{}{n}", std::process::id() % 100_000);
    name[..name.len().min(15)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_reported_or_refused_as_the_switch_says() {
        assert_eq!(verdict("t", "no root", REQUIRE_PEER, false), Ok("SKIPPED t: no root".to_string()));
        let refused = verdict("t", "no root", REQUIRE_PEER, true).unwrap_err();
        assert!(refused.contains("t was required to run") && refused.contains("IXTCP_REQUIRE_PEER=1"), "{refused}");
        assert!(refused.ends_with("no root"), "{refused}");
    }

    #[test]
    fn a_switch_that_is_not_set_is_off() {
        assert!(!required("IXTCP_TESTKIT_SWITCH_NOBODY_SETS"));
    }

    #[test]
    fn interface_names_fit_the_kernels_limit() {
        for n in [0, 7, 4_000_000_000] {
            let name = ifname("ixlongprefix", n);
            assert!(name.len() <= 15 && name.starts_with("ixlongprefix"), "{name}");
        }
        assert_ne!(ifname("ixa", 0), ifname("ixa", 1));
    }

    #[test]
    fn the_kernel_peer_check_agrees_with_the_drivers() {
        let driver = ixtcp_driver::wire::netns::kernel_peer_unavailable(true);
        let ours = kernel_peer_unavailable(Needs::TAP);
        assert_eq!(driver, ours);
    }
}
