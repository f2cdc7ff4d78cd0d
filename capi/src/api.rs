//! The `extern "C"` functions of `mtcp_api.h` and `mtcp_epoll.h`. Each one
//! checks C's pointers and lengths (null: `EFAULT`; a short `addrlen` or
//! `optlen`: `EINVAL`), converts them, and calls the safe layer
//! (`table.rs`, or the process-wide state in `lib.rs`); failures return
//! `-1` (or NULL) with errno set. Nothing here panics across the C
//! boundary: a panic in the safe layer is caught and becomes `EIO`.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libc::{in_addr_t, iovec, sockaddr, sockaddr_in, socklen_t, ssize_t};

use crate::conf::MtcpConfig;
use crate::errno::{self, Errno, Res, ret};
use crate::table::{Defaults, Reg, Table};
use crate::{Local, MtcpConf, MtcpContext, Shared, signal};

/// C's `struct mtcp_epoll_event` (the union is 8 bytes, 8-aligned).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MtcpEpollEvent {
    /// `MTCP_EPOLL*` bits.
    pub events: u32,
    /// `mtcp_epoll_data_t`.
    pub data: u64,
}

/// Most iovecs one call takes (Linux's `IOV_MAX`).
const IOV_MAX: c_int = 1024;

/// Runs `f`, turning a panic into `EIO` so that it never unwinds into C.
fn guard<T>(f: impl FnOnce() -> Res<T>) -> Res<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(Errno(libc::EIO)))
}

fn ok_i32(r: Res<()>) -> c_int {
    ret(r.map(|()| 0))
}

/// # Safety
/// `addr`, if not null, points at `len` readable bytes.
unsafe fn read_sockaddr(addr: *const sockaddr, len: socklen_t) -> Res<SocketAddrV4> {
    if addr.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    if (len as usize) < std::mem::size_of::<sockaddr_in>() {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: at least a sockaddr_in's bytes are readable (checked above);
    // read unaligned, as C may pass any buffer.
    let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
    if i32::from(sin.sin_family) != libc::AF_INET {
        return Err(Errno(libc::EAFNOSUPPORT));
    }
    Ok(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// # Safety
/// `addr` and `len`, if not null, point at writable memory of `*len` bytes
/// and a `socklen_t`.
unsafe fn write_sockaddr(a: SocketAddrV4, addr: *mut sockaddr, len: *mut socklen_t) -> Res<()> {
    if addr.is_null() || len.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    let size = std::mem::size_of::<sockaddr_in>();
    // SAFETY: `len` is not null and the caller's.
    if (unsafe { *len } as usize) < size {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: a zeroed sockaddr_in is valid.
    let mut sin: sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = a.port().to_be();
    sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    // SAFETY: `*len` bytes at `addr` are writable, at least `size`.
    unsafe {
        std::ptr::write_unaligned(addr.cast::<sockaddr_in>(), sin);
        *len = size as socklen_t;
    }
    Ok(())
}

/// # Safety
/// `buf`, if not null, points at `len` bytes valid for `'a`.
unsafe fn bytes<'a>(buf: *const c_char, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if buf.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) })
}

/// # Safety
/// As [`bytes`], writable.
unsafe fn bytes_mut<'a>(buf: *mut c_char, len: usize) -> Res<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })
}

/// # Safety
/// `iov`, if not null, points at `n` iovecs whose buffers are valid.
unsafe fn iovecs<'a>(iov: *const iovec, n: c_int) -> Res<&'a [iovec]> {
    if !(0..=IOV_MAX).contains(&n) {
        return Err(Errno(libc::EINVAL));
    }
    if n == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(iov, n as usize) })
}

fn mctx_addr(mctx: *mut MtcpContext) -> usize {
    mctx as usize
}

fn table_call<T>(mctx: *mut MtcpContext, f: impl FnOnce(&mut Table) -> Res<T>) -> Res<T> {
    guard(|| crate::with_local(mctx_addr(mctx), |l| f(&mut l.table)))
}

// ---------------------------------------------------------------- setup

/// `mtcp_init`: reads the config and starts the stack.
///
/// # Safety
/// `config_file`, if not null, is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_init(config_file: *const c_char) -> c_int {
    if config_file.is_null() {
        errno::set(Errno(libc::EINVAL));
        return -1;
    }
    // SAFETY: as the caller promises.
    let path = unsafe { CStr::from_ptr(config_file) }.to_string_lossy().into_owned();
    ok_i32(guard(|| init(Path::new(&path))))
}

fn init(path: &Path) -> Res<()> {
    if crate::with_global(|g| g.serving.is_some()) {
        eprintln!("mtcp_init: already initialised (call mtcp_destroy first)");
        return Err(Errno(libc::EEXIST));
    }
    let name = path.display().to_string();
    let conf = MtcpConfig::load(path).map_err(|e| {
        eprintln!("mtcp_init: {e}");
        Errno(libc::EINVAL)
    })?;
    for n in &conf.notices {
        eprintln!("mtcp_init: notice: {n}");
    }
    let base = crate::with_global(|g| g.settings).unwrap_or_default();
    let settings = conf.settings(base);
    let cfg = conf.host_config(&name, &settings).map_err(|e| {
        eprintln!("mtcp_init: {e}");
        Errno(libc::EINVAL)
    })?;
    let defaults = Defaults::of(&cfg.stack);
    let host = ixtcp_host::Host::start(cfg).map_err(|e| {
        eprintln!("mtcp_init: starting the NIC and stack: {e}");
        Errno::from(e)
    })?;
    let serving = host.serve().map_err(|e| {
        eprintln!("mtcp_init: starting the runtime: {e}");
        Errno::from(e)
    })?;
    crate::with_global(|g| {
        g.settings = Some(settings);
        g.stat_print = conf.stat_print;
        g.defaults = Some(defaults);
        g.serving = Some(serving);
    });
    Ok(())
}

/// `mtcp_destroy`: destroys this thread's contexts and stops the stack.
/// Contexts still live on other threads keep it running (a message says
/// so): destroy them first, as mTCP's applications do.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_destroy() {
    let _ = guard(|| {
        drop(crate::take_all_locals());
        let (serving, stat_print) = {
            let mut g = crate::global();
            let Some(g) = g.as_mut() else { return Err(Errno(libc::EINVAL)) };
            if !g.contexts.is_empty() {
                eprintln!(
                    "mtcp_destroy: {} contexts are still live on other threads; destroy them first",
                    g.contexts.len()
                );
                return Err(Errno(libc::EBUSY));
            }
            (g.serving.take(), g.stat_print)
        };
        let Some(serving) = serving else { return Err(Errno(libc::EINVAL)) };
        let stats = serving.stats();
        let joined = serving.join();
        if stat_print {
            println!("ixtcp stack counters:");
            for (name, value) in stats.total().fields() {
                println!("  {name} {value}");
            }
        }
        crate::with_global(|g| {
            g.settings = None;
            g.defaults = None;
        });
        joined.map_err(Errno::from)
    });
}

/// `mtcp_getconf`: the settings (before `mtcp_init`: the defaults, or
/// what `mtcp_setconf` gave).
///
/// # Safety
/// `conf`, if not null, points at a writable `struct mtcp_conf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_getconf(conf: *mut MtcpConf) -> c_int {
    if conf.is_null() {
        errno::set(Errno(libc::EINVAL));
        return -1;
    }
    let s = crate::with_global(|g| g.settings).unwrap_or_default();
    // SAFETY: as the caller promises.
    unsafe { *conf = MtcpConf::from(s) };
    0
}

/// `mtcp_setconf`: before `mtcp_init`; fields of 0 or less are left as
/// they are (as in mTCP). `EBUSY` while the stack runs.
///
/// # Safety
/// `conf`, if not null, points at a `struct mtcp_conf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_setconf(conf: *const MtcpConf) -> c_int {
    if conf.is_null() {
        errno::set(Errno(libc::EINVAL));
        return -1;
    }
    // SAFETY: as the caller promises.
    let c = unsafe { *conf };
    ok_i32(crate::with_global(|g| {
        if g.serving.is_some() {
            return Err(Errno(libc::EBUSY));
        }
        if c.num_cores > 16 {
            return Err(Errno(libc::EINVAL));
        }
        let mut s = g.settings.unwrap_or_default();
        let set = |field: &mut i32, v: i32| {
            if v > 0 {
                *field = v;
            }
        };
        set(&mut s.num_cores, c.num_cores);
        set(&mut s.max_concurrency, c.max_concurrency);
        set(&mut s.max_num_buffers, c.max_num_buffers);
        set(&mut s.rcvbuf_size, c.rcvbuf_size);
        set(&mut s.sndbuf_size, c.sndbuf_size);
        set(&mut s.tcp_timewait, c.tcp_timewait);
        set(&mut s.tcp_timeout, c.tcp_timeout);
        g.settings = Some(s);
        Ok(())
    }))
}

/// `mtcp_core_affinitize`: pins the calling thread to `cpu`.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_core_affinitize(cpu: c_int) -> c_int {
    if !(0..libc::CPU_SETSIZE).contains(&cpu) {
        errno::set(Errno(libc::EINVAL));
        return -1;
    }
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in its bounds
    // (checked above); sched_setaffinity reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return -1;
    }
    0
}

/// `mtcp_create_context`: attaches the calling thread to core `cpu`.
/// NULL with `EPERM` before `mtcp_init`, `EINVAL` for a core the stack does
/// not have, `EEXIST` if the core already has a context.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_create_context(cpu: c_int) -> *mut MtcpContext {
    match guard(|| create_context(cpu)) {
        Ok(p) => p,
        Err(e) => {
            errno::set(e);
            std::ptr::null_mut()
        }
    }
}

fn create_context(cpu: c_int) -> Res<*mut MtcpContext> {
    let (attached, limit, defaults) = crate::with_global(|g| {
        let serving = g.serving.as_ref().ok_or(Errno(libc::EPERM))?;
        let core = usize::try_from(cpu).ok().filter(|&c| c < serving.cores()).ok_or(Errno(libc::EINVAL))?;
        let attached = serving.attach(core)?;
        let limit = g.settings.unwrap_or_default().max_concurrency.max(1) as usize * 3;
        let defaults = g.defaults.ok_or(Errno(libc::EPERM))?;
        Ok::<_, Errno>((attached, limit, defaults))
    })?;
    let table = Table::new((*attached).clone(), limit, defaults)?;
    let wake = table.interrupt().handle();
    let shared = Arc::new(Shared::default());
    let local = Local { c: Box::new(MtcpContext { cpu }), table, shared: Arc::clone(&shared), attached };
    let addr = crate::push_local(local);
    crate::with_global(|g| g.contexts.push((addr, shared)));
    signal::watch(addr, wake);
    Ok(addr as *mut MtcpContext)
}

/// `mtcp_destroy_context`: closes what the context left open and finishes
/// its core (the stack lingers so that closed connections complete).
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_destroy_context(mctx: *mut MtcpContext) {
    let _ = guard(|| match crate::take_local(mctx_addr(mctx)) {
        Some(local) => {
            drop(local);
            Ok(())
        }
        None => Err(Errno(libc::EINVAL)),
    })
    .map_err(errno::set);
}

/// `mtcp_register_signal`: the previous handler, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_register_signal(signum: c_int, handler: signal::Handler) -> signal::Handler {
    match signal::register(signum, handler) {
        Ok(old) => old,
        Err(e) => {
            errno::set(e);
            None
        }
    }
}

/// `mtcp_pipe`: `pipeid[0]` the read end, `pipeid[1]` the write end.
///
/// # Safety
/// `pipeid`, if not null, points at two writable ints.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_pipe(mctx: *mut MtcpContext, pipeid: *mut c_int) -> c_int {
    if pipeid.is_null() {
        errno::set(Errno(libc::EFAULT));
        return -1;
    }
    let r = guard(|| {
        crate::with_local(mctx_addr(mctx), |l| {
            let (rid, w) = l.table.pipe()?;
            let wid = match l.table.pipe_write_id() {
                Ok(id) => id,
                Err(e) => {
                    let _ = l.table.close(rid);
                    return Err(e);
                }
            };
            l.shared.pipes.lock().unwrap_or_else(|p| p.into_inner()).insert(wid, w);
            Ok((rid, wid))
        })
    });
    match r {
        Ok((rid, wid)) => {
            // SAFETY: as the caller promises.
            unsafe {
                *pipeid = rid;
                *pipeid.add(1) = wid;
            }
            0
        }
        Err(e) => {
            errno::set(e);
            -1
        }
    }
}

// ---------------------------------------------------------------- sockets

/// `mtcp_socket`.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_socket(mctx: *mut MtcpContext, domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    ret(table_call(mctx, |t| t.socket(domain, ty, protocol)))
}

/// `mtcp_bind`.
///
/// # Safety
/// `addr`, if not null, points at `addrlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_bind(
    mctx: *mut MtcpContext,
    sockid: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        // SAFETY: as the caller promises.
        let a = unsafe { read_sockaddr(addr, addrlen) }?;
        t.bind(sockid, a)
    }))
}

/// `mtcp_listen`.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_listen(mctx: *mut MtcpContext, sockid: c_int, backlog: c_int) -> c_int {
    ok_i32(table_call(mctx, |t| t.listen(sockid, backlog)))
}

/// `mtcp_accept`. `addr` may be null (then `addrlen` is not looked at).
///
/// # Safety
/// `addr` and `addrlen`, if not null, are writable, `*addrlen` bytes at
/// `addr`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_accept(
    mctx: *mut MtcpContext,
    sockid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    ret(table_call(mctx, |t| {
        if !addr.is_null() {
            if addrlen.is_null() {
                return Err(Errno(libc::EFAULT));
            }
            // SAFETY: not null; the caller's.
            if (unsafe { *addrlen } as usize) < std::mem::size_of::<sockaddr_in>() {
                return Err(Errno(libc::EINVAL));
            }
        }
        let (id, peer) = t.accept(sockid)?;
        if !addr.is_null() {
            // SAFETY: as the caller promises; checked above.
            unsafe { write_sockaddr(peer, addr, addrlen) }?;
        }
        Ok(id)
    }))
}

/// `mtcp_init_rss`: ixtcp's stack already picks, for every connect, a
/// local port whose RSS hash brings the answers to the calling core, so
/// this only checks its arguments: one source address, this host's (or
/// `INADDR_ANY`).
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_init_rss(
    mctx: *mut MtcpContext,
    saddr_base: in_addr_t,
    num_addr: c_int,
    daddr: in_addr_t,
    dport: in_addr_t,
) -> c_int {
    let _ = (daddr, dport);
    ok_i32(guard(|| {
        crate::with_local(mctx_addr(mctx), |_| Ok(()))?;
        let ours = crate::with_global(|g| g.serving.as_ref().map(|s| s.ip())).ok_or(Errno(libc::EACCES))?;
        let base = Ipv4Addr::from(u32::from_be(saddr_base));
        if num_addr != 1 || !(base.is_unspecified() || base == ours) {
            return Err(Errno(libc::EINVAL));
        }
        Ok(())
    }))
}

/// `mtcp_connect`: `-1`/`EINPROGRESS` on a non-blocking socket.
///
/// # Safety
/// `addr`, if not null, points at `addrlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_connect(
    mctx: *mut MtcpContext,
    sockid: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        // SAFETY: as the caller promises.
        let a = unsafe { read_sockaddr(addr, addrlen) }?;
        t.connect(sockid, a)
    }))
}

/// `mtcp_close` (sockets, listeners, epolls, both pipe ends; a pipe's write
/// end from any thread).
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_close(mctx: *mut MtcpContext, sockid: c_int) -> c_int {
    ok_i32(guard(|| {
        let local = crate::with_local(mctx_addr(mctx), |l| {
            if l.table.is_pipe_write(sockid)? {
                l.table.forget_pipe_write(sockid);
                Ok(true)
            } else {
                l.table.close(sockid).map(|()| false)
            }
        });
        match local {
            Ok(false) => Ok(()),
            Ok(true) => close_pipe_writer(mctx, sockid).ok_or(Errno(libc::EBADF)),
            // Another thread's context: only its pipes' write ends.
            Err(Errno(libc::EPERM)) => close_pipe_writer(mctx, sockid).ok_or(Errno(libc::EPERM)),
            Err(e) => Err(e),
        }
    }))
}

/// Closes the write end `id` of the context at `mctx` (from any thread);
/// `None` if it is not one.
fn close_pipe_writer(mctx: *mut MtcpContext, id: c_int) -> Option<()> {
    let shared = crate::shared_of(mctx_addr(mctx))?;
    let w = shared.pipes.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    w.map(|w| w.close())
}

/// `mtcp_abort`: resets a stream.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_abort(mctx: *mut MtcpContext, sockid: c_int) -> c_int {
    ok_i32(table_call(mctx, |t| t.abort(sockid)))
}

/// `mtcp_getsockname`.
///
/// # Safety
/// As `mtcp_accept`'s `addr` and `addrlen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_getsockname(
    mctx: *mut MtcpContext,
    sockid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        let a = t.sockname(sockid)?;
        // SAFETY: as the caller promises.
        unsafe { write_sockaddr(a, addr, addrlen) }
    }))
}

/// `mtcp_getpeername`.
///
/// # Safety
/// As `mtcp_accept`'s `addr` and `addrlen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_getpeername(
    mctx: *mut MtcpContext,
    sockid: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        let a = t.peername(sockid)?;
        // SAFETY: as the caller promises.
        unsafe { write_sockaddr(a, addr, addrlen) }
    }))
}

/// `mtcp_setsock_nonblock`.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_setsock_nonblock(mctx: *mut MtcpContext, sockid: c_int) -> c_int {
    ok_i32(table_call(mctx, |t| t.set_nonblock(sockid, true)))
}

/// `mtcp_socket_ioctl`: `FIONREAD` and `FIONBIO`, both through an `int`.
///
/// # Safety
/// `argp`, if not null, points at a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_socket_ioctl(
    mctx: *mut MtcpContext,
    sockid: c_int,
    request: c_int,
    argp: *mut c_void,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        if argp.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        let arg = argp.cast::<c_int>();
        match request as libc::c_ulong {
            libc::FIONREAD => {
                let n = t.readable_bytes(sockid)?;
                // SAFETY: as the caller promises.
                unsafe { arg.write_unaligned(n.min(i32::MAX as usize) as c_int) };
                Ok(())
            }
            libc::FIONBIO => {
                // SAFETY: as the caller promises.
                let on = unsafe { arg.read_unaligned() } != 0;
                t.set_nonblock(sockid, on)
            }
            _ => {
                // The id must still be open for EINVAL to be the answer.
                t.readable_bytes(sockid).or_else(|e| if e.0 == libc::EBADF { Err(e) } else { Ok(0) })?;
                Err(Errno(libc::EINVAL))
            }
        }
    }))
}

/// `mtcp_getsockopt` of an int option (`SO_ERROR`, `TCP_NODELAY`,
/// `SO_KEEPALIVE`, `SO_SNDBUF`, `SO_RCVBUF`).
///
/// # Safety
/// `optval` and `optlen`, if not null, are writable, `*optlen` bytes at
/// `optval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_getsockopt(
    mctx: *mut MtcpContext,
    sockid: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        if optval.is_null() || optlen.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: not null; the caller's.
        if (unsafe { *optlen } as usize) < std::mem::size_of::<c_int>() {
            return Err(Errno(libc::EINVAL));
        }
        let v = t.getsockopt(sockid, level, optname)?;
        // SAFETY: at least an int's bytes are writable.
        unsafe {
            optval.cast::<c_int>().write_unaligned(v);
            *optlen = std::mem::size_of::<c_int>() as socklen_t;
        }
        Ok(())
    }))
}

/// `mtcp_setsockopt` of an int option (`TCP_NODELAY`, `SO_SNDBUF`,
/// `SO_RCVBUF`, `SO_KEEPALIVE`; others `ENOPROTOOPT`).
///
/// # Safety
/// `optval`, if not null, points at `optlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_setsockopt(
    mctx: *mut MtcpContext,
    sockid: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        if optval.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        if (optlen as usize) < std::mem::size_of::<c_int>() {
            return Err(Errno(libc::EINVAL));
        }
        // SAFETY: at least an int's bytes are readable.
        let v = unsafe { optval.cast::<c_int>().read_unaligned() };
        t.setsockopt(sockid, level, optname, v)
    }))
}

// ---------------------------------------------------------------- data

/// `mtcp_read`.
///
/// # Safety
/// `buf`, if not null, points at `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_read(mctx: *mut MtcpContext, sockid: c_int, buf: *mut c_char, len: usize) -> ssize_t {
    // SAFETY: as the caller promises.
    unsafe { mtcp_recv(mctx, sockid, buf, len, 0) }
}

/// `mtcp_recv`: `flags` 0 or `MSG_PEEK` (others `EOPNOTSUPP`).
///
/// # Safety
/// As [`mtcp_read`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_recv(
    mctx: *mut MtcpContext,
    sockid: c_int,
    buf: *mut c_char,
    len: usize,
    flags: c_int,
) -> ssize_t {
    ret(table_call(mctx, |t| {
        if flags & !libc::MSG_PEEK != 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        // SAFETY: as the caller promises.
        let b = unsafe { bytes_mut(buf, len) }?;
        t.read(sockid, &mut [b], flags & libc::MSG_PEEK != 0).map(|n| n as ssize_t)
    }))
}

/// `mtcp_readv`.
///
/// # Safety
/// `iov`, if not null, points at `numiov` iovecs of writable buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_readv(mctx: *mut MtcpContext, sockid: c_int, iov: *const iovec, numiov: c_int) -> c_int {
    ret(table_call(mctx, |t| {
        // SAFETY: as the caller promises.
        let iov = unsafe { iovecs(iov, numiov) }?;
        let mut bufs = Vec::with_capacity(iov.len());
        for v in iov {
            // SAFETY: as the caller promises.
            bufs.push(unsafe { bytes_mut(v.iov_base.cast(), v.iov_len) }?);
        }
        t.read(sockid, &mut bufs, false).map(|n| n.min(i32::MAX as usize) as c_int)
    }))
}

/// Writes through the table, or to a pipe's write end (from any thread).
fn write_any(mctx: *mut MtcpContext, sockid: c_int, bufs: &[&[u8]]) -> Res<usize> {
    guard(|| {
        let local = crate::with_local(mctx_addr(mctx), |l| {
            if l.table.is_pipe_write(sockid)? { Ok(None) } else { l.table.write(sockid, bufs).map(Some) }
        });
        match local {
            Ok(Some(n)) => Ok(n),
            Ok(None) => crate::pipe_writer(mctx_addr(mctx), sockid).ok_or(Errno(libc::EBADF))?.write(bufs),
            // Another thread's context: only its pipes' write ends.
            Err(Errno(libc::EPERM)) => {
                crate::pipe_writer(mctx_addr(mctx), sockid).ok_or(Errno(libc::EPERM))?.write(bufs)
            }
            Err(e) => Err(e),
        }
    })
}

/// `mtcp_write`.
///
/// # Safety
/// `buf`, if not null, points at `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_write(mctx: *mut MtcpContext, sockid: c_int, buf: *const c_char, len: usize) -> ssize_t {
    // SAFETY: as the caller promises.
    let b = match unsafe { bytes(buf, len) } {
        Ok(b) => b,
        Err(e) => return ret(Err(e)),
    };
    ret(write_any(mctx, sockid, &[b]).map(|n| n as ssize_t))
}

/// `mtcp_writev`.
///
/// # Safety
/// `iov`, if not null, points at `numiov` iovecs of readable buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_writev(mctx: *mut MtcpContext, sockid: c_int, iov: *const iovec, numiov: c_int) -> c_int {
    let r = (|| {
        // SAFETY: as the caller promises.
        let iov = unsafe { iovecs(iov, numiov) }?;
        let mut bufs = Vec::with_capacity(iov.len());
        for v in iov {
            // SAFETY: as the caller promises.
            bufs.push(unsafe { bytes(v.iov_base.cast(), v.iov_len) }?);
        }
        write_any(mctx, sockid, &bufs).map(|n| n.min(i32::MAX as usize) as c_int)
    })();
    ret(r)
}

// ---------------------------------------------------------------- epoll

/// `mtcp_epoll_create`: `size` must be positive (and is otherwise unused).
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_epoll_create(mctx: *mut MtcpContext, size: c_int) -> c_int {
    ret(table_call(mctx, |t| if size <= 0 { Err(Errno(libc::EINVAL)) } else { t.epoll_create() }))
}

/// `mtcp_epoll_create1`: `flags` 0 or `EPOLL_CLOEXEC`.
#[unsafe(no_mangle)]
pub extern "C" fn mtcp_epoll_create1(mctx: *mut MtcpContext, flags: c_int) -> c_int {
    ret(table_call(
        mctx,
        |t| if flags & !libc::EPOLL_CLOEXEC != 0 { Err(Errno(libc::EINVAL)) } else { t.epoll_create() },
    ))
}

/// `mtcp_epoll_ctl`.
///
/// # Safety
/// `event`, if not null, points at a `struct mtcp_epoll_event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_epoll_ctl(
    mctx: *mut MtcpContext,
    epid: c_int,
    op: c_int,
    sockid: c_int,
    event: *mut MtcpEpollEvent,
) -> c_int {
    ok_i32(table_call(mctx, |t| {
        // SAFETY: as the caller promises.
        let reg = (!event.is_null()).then(|| unsafe { event.read_unaligned() });
        t.epoll_ctl(epid, op, sockid, reg.map(|r| Reg { events: r.events, data: r.data }))
    }))
}

/// `mtcp_epoll_wait`: `timeout` in ms, `-1` without limit; `-1`/`EINTR`
/// when a registered signal arrived and nothing else is ready.
///
/// # Safety
/// `events`, if not null, points at `maxevents` writable events.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mtcp_epoll_wait(
    mctx: *mut MtcpContext,
    epid: c_int,
    events: *mut MtcpEpollEvent,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    ret(table_call(mctx, |t| {
        if events.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        if maxevents <= 0 {
            return Err(Errno(libc::EINVAL));
        }
        let timeout = (timeout >= 0).then(|| Duration::from_millis(timeout as u64));
        let w = t.epoll_wait(epid, maxevents as usize, timeout)?;
        if w.ready.is_empty() && w.interrupted {
            return Err(Errno(libc::EINTR));
        }
        for (i, &(bits, data)) in w.ready.iter().enumerate() {
            // SAFETY: `i < maxevents`, as the table returns at most that
            // many; the caller's buffer.
            unsafe { events.add(i).write_unaligned(MtcpEpollEvent { events: bits, data }) };
        }
        Ok(w.ready.len() as c_int)
    }))
}

thread_local! {
    static EVENT_STRING: std::cell::RefCell<std::ffi::CString> = std::cell::RefCell::new(std::ffi::CString::default());
}

/// `EventToString`: the names of the bits of `event`, in a buffer of the
/// calling thread that the next call overwrites.
#[unsafe(no_mangle)]
pub extern "C" fn EventToString(event: u32) -> *mut c_char {
    use crate::table::ev;
    let names = [
        (ev::IN, "IN"),
        (0x002, "PRI"),
        (ev::OUT, "OUT"),
        (ev::ERR, "ERR"),
        (ev::HUP, "HUP"),
        (0x040, "RDNORM"),
        (0x080, "RDBAND"),
        (0x100, "WRNORM"),
        (0x200, "WRBAND"),
        (0x400, "MSG"),
        (ev::RDHUP, "RDHUP"),
        (ev::ONESHOT, "ONESHOT"),
        (ev::ET, "ET"),
    ];
    let text: Vec<&str> = names.iter().filter(|(b, _)| event & b != 0).map(|(_, n)| *n).collect();
    let text = if text.is_empty() { "NONE".to_string() } else { text.join("|") };
    EVENT_STRING.with(|s| {
        let mut s = s.borrow_mut();
        *s = std::ffi::CString::new(text).unwrap_or_default();
        s.as_ptr().cast_mut()
    })
}
