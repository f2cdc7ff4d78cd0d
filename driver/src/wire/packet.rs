//! An AF_PACKET socket on an existing interface as a wire: frames the
//! model transmits leave through the interface, frames arriving at the
//! interface are received by the model. Typically one end of a veth pair
//! inside a network namespace, the kernel (or another program) on the other.
//!
//! The socket is created in the calling thread's network namespace; to use
//! an interface inside a namespace, open it within
//! [`in_netns`](super::tap::in_netns). It may be used from any thread after.
//!
//! Unsafe code here is limited to `bind`, `setsockopt`, `sendto` and
//! `recvfrom` on the socket.
#![allow(unsafe_code)]

use super::tap::{IfReq, check_ifname, hint, ioctl_ifreq, socket};
use super::{Wire, WireError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Read an interface's index (`ifr_ifindex`).
const SIOCGIFINDEX: u32 = 0x8933;
/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// `SOL_PACKET` options.
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_MR_PROMISC: u16 = 1;
/// Linux 4.20 and later: do not loop this socket's (or the host's)
/// transmissions back to it.
const PACKET_IGNORE_OUTGOING: i32 = 23;
/// `sll_pkttype` of a frame the host itself sent.
const PACKET_OUTGOING: u8 = 4;
/// Large enough for the biggest (GSO) frame a veth may hand over.
const READ_BUF_LEN: usize = 1 << 17;
/// Frames skipped (outgoing, truncated) per `receive` before giving up.
const MAX_SKIPS: usize = 64;

/// An AF_PACKET raw socket bound to one interface, in promiscuous mode.
#[derive(Debug)]
pub struct PacketWire {
    fd: OwnedFd,
    name: String,
    ifindex: i32,
    scratch: Box<[u8]>,
}

fn sockaddr_ll(ifindex: i32, protocol_be: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol_be,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a readable `T` of the length passed, which
    // is the option's expected type for every call in this file.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl PacketWire {
    /// Opens a raw socket on `iface` in the calling thread's network
    /// namespace: bound to the interface for every protocol, promiscuous
    /// (so frames to the model's MAC address are received), non-blocking,
    /// and not reading back frames sent on the interface by this host.
    pub fn open(iface: &str) -> Result<PacketWire, WireError> {
        check_ifname(iface)?;
        let err = |what: &str, e: io::Error| WireError::Io(format!("{what} on {iface}: {e}{}", hint(&e)));
        // Protocol 0 receives nothing until bind names the interface, so no
        // frame from another interface slips in before it.
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(|e| err("opening an AF_PACKET socket", e))?;

        let mut req = IfReq::named(iface);
        ioctl_ifreq(fd.as_fd(), SIOCGIFINDEX, &mut req).map_err(|e| err("looking up the interface index", e))?;
        let ifindex = i32::from_ne_bytes([req.data[0], req.data[1], req.data[2], req.data[3]]);

        let addr = sockaddr_ll(ifindex, ETH_P_ALL.to_be());
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err("binding the AF_PACKET socket", io::Error::last_os_error()));
        }

        let mreq =
            libc::packet_mreq { mr_ifindex: ifindex, mr_type: PACKET_MR_PROMISC, mr_alen: 0, mr_address: [0; 8] };
        setsockopt(fd.as_fd(), libc::SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| err("entering promiscuous mode", e))?;
        // Older kernels lack the option; `receive` skips outgoing frames anyway.
        let _ = setsockopt(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1i32);

        Ok(PacketWire { fd, name: iface.to_owned(), ifindex, scratch: vec![0; READ_BUF_LEN].into_boxed_slice() })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's index in its namespace.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

impl AsFd for PacketWire {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Wire for PacketWire {
    /// One `sendto(2)` per frame, out of the bound interface, with the
    /// frame's EtherType as the packet's protocol; `Busy` when the socket or
    /// the device queue is full.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let ethertype = match frame {
            [_, _, _, _, _, _, _, _, _, _, _, _, hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => {
                return Err(WireError::Io(format!(
                    "a {}-byte frame cannot go out on {}: a frame needs at least a 14-byte Ethernet header",
                    frame.len(),
                    self.name
                )));
            }
        };
        let addr = sockaddr_ll(self.ifindex, ethertype.to_be());
        // SAFETY: `frame` is readable for its length, `addr` is a valid
        // sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOBUFS) => Err(WireError::Busy),
            Some(libc::EMSGSIZE) => Err(WireError::Io(format!(
                "a {}-byte frame is longer than {} carries (its MTU plus 14)",
                frame.len(),
                self.name
            ))),
            _ => Err(WireError::Io(format!("sending a {}-byte frame on {}: {e}{}", frame.len(), self.name, hint(&e)))),
        }
    }

    /// One non-blocking `recvfrom(2)` (a few more if it has to skip frames
    /// this host sent itself or that were too long to read whole); false
    /// when nothing is waiting.
    fn receive(&mut self, buf: &mut Vec<u8>) -> bool {
        for _ in 0..MAX_SKIPS {
            let mut from = sockaddr_ll(0, 0);
            let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `scratch` is writable for its length; `from` and
            // `from_len` are a writable sockaddr_ll and its size. MSG_TRUNC
            // makes the call return the frame's full length, never more
            // bytes than the buffer holds.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.scratch.as_mut_ptr().cast(),
                    self.scratch.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            let Ok(n) = usize::try_from(n) else { return false };
            if from.sll_pkttype == PACKET_OUTGOING || n > self.scratch.len() {
                continue;
            }
            buf.clear();
            buf.extend_from_slice(&self.scratch[..n]);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_system_call() {
        let e = PacketWire::open("no/slashes").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("is invalid"), "{e}");
    }
}
