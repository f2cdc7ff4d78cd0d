//! `mtcp_register_signal`: the application's handler for a signal, and
//! interrupting every context's `mtcp_epoll_wait` when it arrives (mTCP's
//! waits return `-1`/`EINTR` then, which is how `epserver` and friends see
//! Ctrl-C).
//!
//! A signal handler may do almost nothing safely, so the one installed here
//! runs the application's handler and writes one byte to a self-pipe
//! (`write(2)` is async-signal-safe). A watcher thread, started with the
//! first registration, reads that pipe and wakes each context's interrupt
//! waker; each epoll of a context watches that waker.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

use ixtcp_sockapi::WakeHandle;

/// Signals a handler can be registered for (1..NSIG).
const NSIG: usize = 65;

/// The application's handler per signal (0: none).
static HANDLERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];

/// The self-pipe's write end (-1 until made).
static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

/// The interrupt wakers of the live contexts, by context address.
static INTERRUPTS: Mutex<Vec<(usize, WakeHandle)>> = Mutex::new(Vec::new());

static WATCHER: Once = Once::new();

/// A C signal handler.
pub type Handler = Option<extern "C" fn(i32)>;

/// Lets `ctx`'s waits be interrupted by registered signals.
pub fn watch(ctx: usize, wake: WakeHandle) {
    INTERRUPTS.lock().unwrap_or_else(|p| p.into_inner()).push((ctx, wake));
}

/// Forgets `ctx` (destroyed).
pub fn unwatch(ctx: usize) {
    INTERRUPTS.lock().unwrap_or_else(|p| p.into_inner()).retain(|(c, _)| *c != ctx);
}

extern "C" fn on_signal(signum: i32) {
    if let Some(slot) = usize::try_from(signum).ok().and_then(|s| HANDLERS.get(s)) {
        let h = slot.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: only addresses of `extern "C" fn(i32)` are stored.
            let f: extern "C" fn(i32) = unsafe { std::mem::transmute::<usize, extern "C" fn(i32)>(h) };
            f(signum);
        }
    }
    let fd = PIPE_WR.load(Ordering::Acquire);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: writing one byte from a live buffer to our own pipe;
        // async-signal-safe. A full pipe already has a wake queued.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Makes the self-pipe and starts the watcher, once.
fn start_watcher() -> bool {
    WATCHER.call_once(|| {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        // The handler must never block on a full pipe.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
        let rd = fds[0];
        let spawned = std::thread::Builder::new().name("ixtcp-mtcp-signals".into()).spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: reading into a live buffer of its length.
                let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return;
                }
                for (_, w) in INTERRUPTS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    w.wake();
                }
            }
        });
        if spawned.is_ok() {
            PIPE_WR.store(fds[1], Ordering::Release);
        }
    });
    PIPE_WR.load(Ordering::Acquire) >= 0
}

/// Registers `handler` for `signum` and returns the previous one (none the
/// first time). `EINVAL` for a signal that cannot be caught.
pub fn register(signum: i32, handler: Handler) -> Result<Handler, crate::errno::Errno> {
    let bad = crate::errno::Errno(libc::EINVAL);
    let slot = usize::try_from(signum).ok().filter(|&s| s > 0).and_then(|s| HANDLERS.get(s)).ok_or(bad)?;
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(bad);
    }
    if !start_watcher() {
        return Err(crate::errno::Errno(libc::EMFILE));
    }
    // SAFETY: a zeroed sigaction is a valid starting value; the handler is
    // an `extern "C" fn(i32)`.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(i32) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signum, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(crate::errno::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)));
    }
    let new = handler.map_or(0, |f| f as usize);
    let old = slot.swap(new, Ordering::AcqRel);
    // SAFETY: only addresses of `extern "C" fn(i32)` are stored.
    Ok((old != 0).then(|| unsafe { std::mem::transmute::<usize, extern "C" fn(i32)>(old) }))
}
