//! Linux errno values for the C calls: [`Errno`] is what the safe layer
//! returns, [`set`] puts it where C's `errno` reads it.

use std::io;

/// A Linux errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// The safe layer's result.
pub type Res<T> = Result<T, Errno>;

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        Errno::of(&e)
    }
}

impl Errno {
    /// The errno a sockets user expects for `e`.
    pub fn of(e: &io::Error) -> Errno {
        if let Some(raw) = e.raw_os_error() {
            return Errno(raw);
        }
        use io::ErrorKind as K;
        Errno(match e.kind() {
            K::WouldBlock => libc::EAGAIN,
            K::NotConnected => libc::ENOTCONN,
            K::ConnectionRefused => libc::ECONNREFUSED,
            K::ConnectionReset => libc::ECONNRESET,
            K::ConnectionAborted => libc::ECONNABORTED,
            K::TimedOut => libc::ETIMEDOUT,
            K::BrokenPipe => libc::EPIPE,
            K::AddrInUse => libc::EADDRINUSE,
            K::AddrNotAvailable => libc::EADDRNOTAVAIL,
            K::InvalidInput => libc::EINVAL,
            K::OutOfMemory => libc::ENFILE,
            K::AlreadyExists => libc::EEXIST,
            K::PermissionDenied => libc::EACCES,
            K::NotFound => libc::ENOENT,
            K::Interrupted => libc::EINTR,
            _ => libc::EIO,
        })
    }
}

/// Sets the calling thread's `errno`.
pub fn set(e: Errno) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e.0 };
}

/// `Ok(v)` as `v`, an error as `-1` with errno set: the C convention.
pub fn ret<T: From<i8>>(r: Res<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            set(e);
            T::from(-1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_the_linux_values_sockets_users_expect() {
        assert_eq!(Errno::from(io::Error::from(io::ErrorKind::WouldBlock)), Errno(libc::EAGAIN));
        assert_eq!(Errno::from(io::Error::from(io::ErrorKind::ConnectionRefused)), Errno(libc::ECONNREFUSED));
        assert_eq!(Errno::from(io::Error::from_raw_os_error(libc::EPERM)), Errno(libc::EPERM));
        assert_eq!(Errno::from(io::Error::other("x")), Errno(libc::EIO));
    }

    #[test]
    fn ret_sets_errno_and_returns_minus_one() {
        assert_eq!(ret::<i32>(Err(Errno(libc::EBADF))), -1);
        // SAFETY: as in `set`.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EBADF);
        assert_eq!(ret::<isize>(Ok(5)), 5);
    }
}
