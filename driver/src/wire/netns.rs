//! A network namespace that lives as long as a value: what tests and
//! examples with the Linux kernel as a peer put their TAP device or veth
//! pair into, so that their traffic never leaves it.
//!
//! Made and removed with `ip netns add` / `ip netns del` (iproute2), so
//! that `ip netns exec <name> …` works on it too. Code that must run inside
//! it uses [`Netns::run`] (see [`in_netns`]).

use super::WireError;
use super::tap::in_netns;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// Why the Linux kernel cannot be a peer here, or `None` when it can: the
/// process is not root, the `ip` command is missing, or (when `need_tun`)
/// `/dev/net/tun` is missing. Kernel-peer tests print this and skip.
pub fn kernel_peer_unavailable(need_tun: bool) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs"
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("not running as root (network namespaces, TAP devices and AF_PACKET need it)".into());
    }
    if need_tun && !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (modprobe tun)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing or broken".into()),
    }
}

/// A network namespace, deleted (with every interface inside it) when the
/// value is dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

fn run(cmd: &mut Command) -> Result<Output, WireError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| WireError::Io(format!("running {shown}: {e} — is iproute2 installed?")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(WireError::Io(format!("{shown} failed ({}): {}", out.status, stderr.trim())));
    }
    Ok(out)
}

impl Netns {
    /// Creates a namespace named `<prefix>-<pid>-<serial>`, unique among
    /// the namespaces this process makes and unlikely to collide with any
    /// other.
    pub fn new(prefix: &str) -> Result<Netns, WireError> {
        let name = format!("{prefix}-{}-{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        // Loopback up, so that the kernel inside behaves like a normal host.
        ns.ip(&["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>` and returns its standard output.
    pub fn ip(&self, args: &[&str]) -> Result<String, WireError> {
        let out = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs `program args…` inside the namespace
    /// (`ip netns exec`), for the caller to spawn or run.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }

    /// Moves the interface `iface` of the caller's namespace into this one
    /// (it goes down on the way).
    pub fn adopt(&self, iface: &str) -> Result<(), WireError> {
        run(Command::new("ip").args(["link", "set", "dev", iface, "netns", &self.name]))?;
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace; see [`in_netns`].
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, WireError> {
        in_netns(&self.name, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its virtual interfaces (veth, TAP).
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}
