//! A TAP device as a wire, so the Linux kernel is the model's peer; and
//! [`in_netns`], to do something inside a network namespace.
//!
//! Unsafe code here is limited to the `ioctl`s on the TUN file and on a
//! socket, the `socket` call and `setns`; reads and writes go through
//! `std::fs::File`, which does one `read(2)`/`write(2)` per call.
//!
//! # Namespaces
//!
//! A TAP device can be created in one network namespace and moved into
//! another (`ip link set <tap> netns <ns>`); the file descriptor stays
//! attached to it and keeps carrying frames. Moving a device takes it down,
//! so bring it up afterwards, inside the namespace. Calls that name the
//! interface ([`TapWire::set_up`]) act in the calling thread's namespace:
//! wrap them in [`in_netns`]. Deleting the namespace destroys the device
//! even while the file is open (it does not return to the original
//! namespace); writes then fail with EIO and reads find nothing.
//!
//! While the interface is down, writes fail with EIO rather than being
//! dropped silently.
#![allow(unsafe_code)]

use super::{Wire, WireError};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// `_IOW('T', 202, int)`: attach the file to a TUN/TAP interface.
const TUNSETIFF: u32 = 0x4004_54ca;
/// `ifr_flags` for TUNSETIFF: a TAP (Ethernet) device …
const IFF_TAP: i16 = 0x0002;
/// … without the 4-byte packet-information header before each frame.
const IFF_NO_PI: i16 = 0x1000;
/// Read / write an interface's flags (`ifr_flags`).
const SIOCGIFFLAGS: u32 = 0x8913;
const SIOCSIFFLAGS: u32 = 0x8914;
/// Read / set an interface's MTU (`ifr_mtu`).
const SIOCGIFMTU: u32 = 0x8921;
const SIOCSIFMTU: u32 = 0x8922;
/// Read an interface's hardware address (`ifr_hwaddr`).
const SIOCGIFHWADDR: u32 = 0x8927;
/// `IFF_UP` in `ifr_flags`.
const IFF_UP: i16 = 0x0001;
/// Interface names are at most 15 bytes and a NUL.
pub(crate) const IFNAMSIZ: usize = 16;
/// Where `ip netns add` keeps the namespace handles.
const NETNS_RUN_DIR: &str = "/var/run/netns";
/// The largest frame a TAP read can return (no offloads are enabled).
const READ_BUF_LEN: usize = 65_536;

/// `struct ifreq` (40 bytes on 64-bit Linux): the name, then a union whose
/// largest member (`struct ifmap`) is 24 bytes. Only the leading bytes of
/// the union are used, as `ifr_flags` or `ifr_hwaddr`.
#[repr(C)]
pub(crate) struct IfReq {
    pub(crate) name: [u8; IFNAMSIZ],
    pub(crate) data: [u8; 24],
}

const _: () = assert!(size_of::<IfReq>() == 40);

impl IfReq {
    /// An ifreq naming `name`, which [`check_ifname`] has accepted.
    pub(crate) fn named(name: &str) -> IfReq {
        let mut req = IfReq { name: [0; IFNAMSIZ], data: [0; 24] };
        let n = name.len().min(IFNAMSIZ - 1);
        req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        req
    }

    fn flags(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn set_flags(&mut self, flags: i16) {
        self.data[..2].copy_from_slice(&flags.to_ne_bytes());
    }

    fn mtu(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }

    fn set_mtu(&mut self, mtu: i32) {
        self.data[..4].copy_from_slice(&mtu.to_ne_bytes());
    }

    pub(crate) fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// Checks that `name` fits an interface name (1..=15 bytes, no NUL, `/`
/// or whitespace).
pub(crate) fn check_ifname(name: &str) -> Result<(), WireError> {
    let bad = name.bytes().any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace());
    if name.is_empty() || name.len() >= IFNAMSIZ || bad {
        return Err(WireError::Io(format!(
            "interface name {name:?} is invalid: use 1 to {} bytes without '/', NUL or spaces",
            IFNAMSIZ - 1
        )));
    }
    Ok(())
}

/// `ioctl(fd, request, req)` with an ifreq argument.
pub(crate) fn ioctl_ifreq(fd: BorrowedFd<'_>, request: u32, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor for the duration of the call and
    // `req` points to a writable 40-byte `struct ifreq`, the argument every
    // request used here reads and writes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, req as *mut IfReq) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A new socket of `domain`/`ty`, non-blocking and close-on-exec.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open and owned by
    // no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Hints for the errors a user can fix.
pub(crate) fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => " — run as root or grant CAP_NET_ADMIN (and CAP_NET_RAW for AF_PACKET)",
        Some(libc::ENODEV) => {
            " — no such interface in this network namespace: create it, or call this inside its namespace (in_netns)"
        }
        Some(libc::ENETDOWN) => " — the interface is down: bring it up (set_up, or ip link set dev <name> up)",
        _ => "",
    }
}

/// A TAP device: frames the model transmits are received by the kernel's
/// network stack on the TAP interface, and frames the kernel sends out of
/// that interface are received by the model.
///
/// Frames are whole Ethernet frames without FCS and without the TUN packet
/// information header (`IFF_NO_PI`). The file is non-blocking: a
/// [`receive`](Wire::receive) with nothing waiting returns false at once.
#[derive(Debug)]
pub struct TapWire {
    file: File,
    name: String,
    scratch: Box<[u8]>,
}

impl TapWire {
    /// Attaches to the TAP device `name` in the calling thread's network
    /// namespace, creating it if it does not exist. A device created here is
    /// removed when the `TapWire` is dropped; an existing persistent one
    /// (`ip tuntap add mode tap name <name>`) stays.
    ///
    /// Attaching gives the device its carrier. If it is already up, the
    /// kernel activates its transmit queue a moment later (asynchronously,
    /// within milliseconds), and frames the kernel sends in between are
    /// dropped: protocols retry, and tests should too.
    pub fn open(name: &str) -> Result<TapWire, WireError> {
        check_ifname(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| {
                let fix = match e.kind() {
                    io::ErrorKind::NotFound => {
                        " — load the tun module (modprobe tun) or create the node (mknod /dev/net/tun c 10 200)"
                    }
                    _ => hint(&e),
                };
                WireError::Io(format!("opening /dev/net/tun: {e}{fix}"))
            })?;
        let mut req = IfReq::named(name);
        req.set_flags(IFF_TAP | IFF_NO_PI);
        ioctl_ifreq(file.as_fd(), TUNSETIFF, &mut req).map_err(|e| {
            let fix = match e.raw_os_error() {
                Some(libc::EBUSY) => {
                    " — the device is attached to another file already: close it or choose another name"
                }
                Some(libc::EINVAL) => {
                    " — an interface of that name exists and is not a TAP without packet info \
                     (IFF_TAP|IFF_NO_PI): delete it or choose another name"
                }
                _ => hint(&e),
            };
            WireError::Io(format!("attaching to TAP device {name} (TUNSETIFF): {e}{fix}"))
        })?;
        Ok(TapWire { file, name: req.name(), scratch: vec![0; READ_BUF_LEN].into_boxed_slice() })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MAC address of the kernel's side of the TAP interface (the
    /// source of the frames the kernel sends, and the address it answers
    /// ARP with). Asked through the TUN file itself, so it works from any
    /// namespace, also after the device has moved (verified on Linux 6.18).
    pub fn mac(&self) -> Result<[u8; 6], WireError> {
        let mut req = IfReq::named(&self.name);
        ioctl_ifreq(self.file.as_fd(), SIOCGIFHWADDR, &mut req)
            .map_err(|e| WireError::Io(format!("reading the MAC address of {}: {e}{}", self.name, hint(&e))))?;
        // ifr_hwaddr is a struct sockaddr: 2 bytes of family, then the address.
        let mut mac = [0; 6];
        mac.copy_from_slice(&req.data[2..8]);
        Ok(mac)
    }

    /// Brings the interface up (`SIOCSIFFLAGS` with `IFF_UP`), by name, in
    /// the calling thread's network namespace: after moving the device into
    /// a namespace, call this inside [`in_netns`].
    pub fn set_up(&self) -> Result<(), WireError> {
        set_up(&self.name)
    }

    /// Sets the interface's MTU (`SIOCSIFMTU`), by name, in the calling
    /// thread's namespace (as [`set_up`](Self::set_up)): the kernel then
    /// sends and accepts frames of `mtu` + 14 bytes, so give it the stack's
    /// `mtu` (jumbo frames: 9000).
    pub fn set_mtu(&self, mtu: u32) -> Result<(), WireError> {
        let err = |e: io::Error| {
            let fix = if e.raw_os_error() == Some(libc::EINVAL) { " — a TAP takes 68..=65521" } else { hint(&e) };
            WireError::Io(format!("setting the MTU of {} to {mtu}: {e}{fix}", self.name))
        };
        let value = i32::try_from(mtu).map_err(|_| err(io::Error::from_raw_os_error(libc::EINVAL)))?;
        let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(err)?;
        let mut req = IfReq::named(&self.name);
        req.set_mtu(value);
        ioctl_ifreq(sock.as_fd(), SIOCSIFMTU, &mut req).map_err(err)
    }

    /// The interface's MTU (`SIOCGIFMTU`), by name, in the calling thread's
    /// namespace.
    pub fn mtu(&self) -> Result<u32, WireError> {
        let err = |e: io::Error| WireError::Io(format!("reading the MTU of {}: {e}{}", self.name, hint(&e)));
        let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(err)?;
        let mut req = IfReq::named(&self.name);
        ioctl_ifreq(sock.as_fd(), SIOCGIFMTU, &mut req).map_err(err)?;
        Ok(req.mtu().max(0) as u32)
    }
}

/// Brings the interface `name` up in the calling thread's namespace.
pub(crate) fn set_up(name: &str) -> Result<(), WireError> {
    let err = |e: io::Error| WireError::Io(format!("bringing {name} up: {e}{}", hint(&e)));
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(err)?;
    let mut req = IfReq::named(name);
    ioctl_ifreq(sock.as_fd(), SIOCGIFFLAGS, &mut req).map_err(err)?;
    req.set_flags(req.flags() | IFF_UP);
    ioctl_ifreq(sock.as_fd(), SIOCSIFFLAGS, &mut req).map_err(err)
}

impl AsFd for TapWire {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Wire for TapWire {
    /// One `write(2)` per frame; `Busy` when the kernel would block.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        match (&self.file).write(frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(n) => Err(WireError::Io(format!("TAP {}: wrote {n} of {} bytes", self.name, frame.len()))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(WireError::Busy),
            Err(e) => {
                let fix = match e.raw_os_error() {
                    Some(libc::EIO) => {
                        " — the interface is down (bring it up: set_up inside its namespace) \
                         or gone (its namespace was deleted)"
                    }
                    Some(libc::EINVAL) => " — a frame needs at least a 14-byte Ethernet header",
                    _ => hint(&e),
                };
                Err(WireError::Io(format!("writing a {}-byte frame to TAP {}: {e}{fix}", frame.len(), self.name)))
            }
        }
    }

    /// One non-blocking `read(2)`; false when nothing is waiting (or on an
    /// error, which a poll-mode caller can only retry).
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        match (&self.file).read(&mut self.scratch) {
            Ok(n) if n > 0 => {
                buf.clear();
                buf.extend_from_slice(&self.scratch[..n]);
                true
            }
            _ => false,
        }
    }
}

/// Runs `f` on a helper thread that has entered the network namespace
/// `name` (a namespace made by `ip netns add`, i.e. a handle in
/// `/var/run/netns/`), and returns its result.
///
/// Only that thread moves: the caller's own namespace is untouched. What
/// `f` creates keeps its namespace after `f` returns: a socket or TAP
/// opened inside belongs to `name` and may be used from any thread.
/// A panic in `f` is resumed on the calling thread.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, WireError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(WireError::Io(format!("network namespace name {name:?} is invalid")));
    }
    let path: PathBuf = [NETNS_RUN_DIR, name].iter().collect();
    let handle = File::open(&path).map_err(|e| {
        let fix = match e.kind() {
            io::ErrorKind::NotFound => " — create it first with `ip netns add`",
            _ => hint(&e),
        };
        WireError::Io(format!("opening network namespace {}: {e}{fix}", path.display()))
    })?;
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            // SAFETY: `handle` is an open namespace file for the duration
            // of the call; setns changes only this thread's namespace.
            let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return Err(WireError::Io(format!("entering network namespace {name}: {e}{}", hint(&e))));
            }
            Ok(f())
        });
        worker.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_system_call() {
        for bad in ["", "sixteen-bytes-xx", "a/b", "a b"] {
            let e = TapWire::open(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("is invalid"), "{bad:?}: {e}");
        }
        assert!(check_ifname("fifteen-bytes-x").is_ok());
    }

    #[test]
    fn ifreq_carries_name_and_flags() {
        let mut r = IfReq::named("tap0");
        r.set_flags(IFF_TAP | IFF_NO_PI);
        assert_eq!(r.name(), "tap0");
        assert_eq!(r.flags(), 0x1002);
        r.set_mtu(9000);
        assert_eq!(r.mtu(), 9000);
    }

    #[test]
    fn in_netns_rejects_bad_and_missing_namespaces() {
        assert!(in_netns("../etc", || ()).is_err());
        let e = in_netns("ixtcp-no-such-namespace", || ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("ip netns add"), "{e}");
    }
}
