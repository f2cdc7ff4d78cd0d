//! ixtcp-capi: mTCP's C API over ixtcp, built as `libmtcp.a` and
//! `libmtcp.so` so that an mTCP application builds against ixtcp without a
//! change to its source (`cc app.c -I target/capi/include -L
//! target/capi/lib -lmtcp -lpthread`, after `scripts/build-capi.sh`).
//!
//! | file | what it holds |
//! |---|---|
//! | `include/mtcp_api.h`, `include/mtcp_epoll.h` | the C headers, written for ixtcp |
//! | `conf.rs` | reading mTCP's config file (and `config/arp.conf`, `config/route.conf`) into a host |
//! | `table.rs` | one context's ids (sockets, listeners, epolls, pipes) and every call in safe Rust |
//! | `pipe.rs` | `mtcp_pipe`: a pipe an epoll watches, writable from any thread |
//! | `signal.rs` | `mtcp_register_signal`: the handler, and waking every context's wait |
//! | `errno.rs` | Linux errno values |
//! | `api.rs` | the `extern "C"` functions: pointers in, errno out |
//! | this file | the process-wide state: settings, the running host, the contexts |
//!
//! How the pieces meet:
//!
//! - `mtcp_init` reads the config, starts an [`ixtcp_host::Host`] in
//!   sockapi's threaded runtime (a stack thread per core, as mTCP) and
//!   keeps it [serving](ixtcp_host::Host::serve) until `mtcp_destroy`.
//! - `mtcp_create_context(cpu)`, called from the application's own thread,
//!   attaches that thread to core `cpu` ([`ixtcp_host::Serving::attach`]);
//!   the context and its id table live in a thread-local list, and the
//!   `mctx_t` handed to C is the address of a boxed `struct mtcp_context`
//!   of that list. A call finds its context by comparing addresses, never
//!   by dereferencing what C passed, so a stale or made-up `mctx_t` is an
//!   `EINVAL`, and one of another thread an `EPERM`.
//! - A pipe's write end is the one thing usable from any thread: it is
//!   kept in the context's [`Shared`] part, found through the process-wide
//!   list of contexts.
//!
//! `unsafe` is in `api.rs`, `errno.rs` and `signal.rs` only (C's pointers,
//! errno, sigaction); sockapi and the stack stay `forbid(unsafe_code)`.

#![warn(missing_docs)]

pub mod api;
pub mod conf;
pub mod errno;
pub mod pipe;
pub mod signal;
pub mod table;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ixtcp_host::Serving;
use ixtcp_sockapi::Attached;

use crate::conf::Settings;
use crate::errno::{Errno, Res};
use crate::pipe::PipeWriter;
use crate::table::Table;

/// C's `struct mtcp_context`.
#[repr(C)]
#[derive(Debug)]
pub struct MtcpContext {
    /// The core.
    pub cpu: i32,
}

/// C's `struct mtcp_conf`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MtcpConf {
    /// Cores.
    pub num_cores: i32,
    /// Connections per core.
    pub max_concurrency: i32,
    /// mTCP's buffer count.
    pub max_num_buffers: i32,
    /// Receive buffer, bytes.
    pub rcvbuf_size: i32,
    /// Send buffer, bytes.
    pub sndbuf_size: i32,
    /// TIME_WAIT, seconds.
    pub tcp_timewait: i32,
    /// Idle timeout, seconds.
    pub tcp_timeout: i32,
}

impl From<Settings> for MtcpConf {
    fn from(s: Settings) -> MtcpConf {
        MtcpConf {
            num_cores: s.num_cores,
            max_concurrency: s.max_concurrency,
            max_num_buffers: s.max_num_buffers,
            rcvbuf_size: s.rcvbuf_size,
            sndbuf_size: s.sndbuf_size,
            tcp_timewait: s.tcp_timewait,
            tcp_timeout: s.tcp_timeout,
        }
    }
}

/// What is known of a context from any thread.
#[derive(Debug, Default)]
pub struct Shared {
    /// Open pipe write ends, by id.
    pub pipes: Mutex<HashMap<i32, PipeWriter>>,
}

/// The process-wide state.
#[derive(Default)]
pub struct Global {
    /// `mtcp_setconf`'s values, or after init the ones in effect.
    pub settings: Option<Settings>,
    /// The running host, between `mtcp_init` and `mtcp_destroy`.
    pub serving: Option<Serving>,
    /// `stat_print` was in the config.
    pub stat_print: bool,
    /// Socket defaults of the running stack.
    pub defaults: Option<crate::table::Defaults>,
    /// Every live context: its `mctx_t` address and shared part.
    pub contexts: Vec<(usize, Arc<Shared>)>,
}

static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

/// The process-wide state, locked.
pub fn global() -> MutexGuard<'static, Option<Global>> {
    GLOBAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the process-wide state (made on first use).
pub fn with_global<T>(f: impl FnOnce(&mut Global) -> T) -> T {
    let mut g = global();
    f(g.get_or_insert_with(Global::default))
}

/// One context, owned by the thread that made it. Field order is drop
/// order: the sockets close before the core is finished. Dropping it (by
/// `mtcp_destroy_context`, `mtcp_destroy`, or the thread's end) takes it
/// off the process-wide list first.
pub struct Local {
    /// What C's `mctx_t` points at.
    pub c: Box<MtcpContext>,
    /// Its ids.
    pub table: Table,
    /// Its shared part.
    pub shared: Arc<Shared>,
    /// The attached core.
    pub attached: Attached,
}

impl Drop for Local {
    fn drop(&mut self) {
        let addr = addr_of(&self.c);
        signal::unwatch(addr);
        with_global(|g| g.contexts.retain(|(a, _)| *a != addr));
        for (_, w) in self.shared.pipes.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            w.close();
        }
    }
}

thread_local! {
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// The address C sees for a context.
pub fn addr_of(c: &MtcpContext) -> usize {
    c as *const MtcpContext as usize
}

/// Adds a context made on this thread.
pub fn push_local(local: Local) -> usize {
    let a = addr_of(&local.c);
    LOCALS.with(|l| l.borrow_mut().push(local));
    a
}

/// Removes this thread's context at `mctx`, if it is one.
pub fn take_local(mctx: usize) -> Option<Local> {
    LOCALS.with(|l| {
        let mut l = l.borrow_mut();
        let i = l.iter().position(|x| addr_of(&x.c) == mctx)?;
        Some(l.remove(i))
    })
}

/// Removes every context of this thread.
pub fn take_all_locals() -> Vec<Local> {
    LOCALS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Runs `f` on this thread's context at `mctx`: `EINVAL` for a null or
/// unknown one, `EPERM` for one of another thread.
pub fn with_local<T>(mctx: usize, f: impl FnOnce(&mut Local) -> Res<T>) -> Res<T> {
    if mctx == 0 {
        return Err(Errno(libc::EINVAL));
    }
    let found = LOCALS.with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else { return Some(Err(Errno(libc::EBUSY))) };
        l.iter_mut().find(|x| addr_of(&x.c) == mctx).map(f)
    });
    match found {
        Some(r) => r,
        None if shared_of(mctx).is_some() => Err(Errno(libc::EPERM)),
        None => Err(Errno(libc::EINVAL)),
    }
}

/// The shared part of the live context at `mctx`, from any thread.
pub fn shared_of(mctx: usize) -> Option<Arc<Shared>> {
    let g = global();
    g.as_ref()?.contexts.iter().find(|(a, _)| *a == mctx).map(|(_, s)| Arc::clone(s))
}

/// The pipe write end `id` of the context at `mctx`, from any thread.
pub fn pipe_writer(mctx: usize, id: i32) -> Option<PipeWriter> {
    let shared = shared_of(mctx)?;
    let pipes = shared.pipes.lock().unwrap_or_else(|p| p.into_inner());
    pipes.get(&id).cloned()
}
