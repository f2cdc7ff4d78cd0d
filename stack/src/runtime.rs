//! The runtime: one pinned thread per stack core, and graceful shutdown.
//!
//! Each thread owns its [`StackCore`] (and so its queue pair) and runs the
//! loop: read the clock, `poll_with` the application's per-core closure,
//! publish counters now and then. Nothing is shared between the threads
//! but the neighbour table (inside the cores), the stop flag and the
//! counter mirrors.
//!
//! Shutdown ([`Runtime::shutdown`]): every core stops accepting and closes
//! its connections with FIN, keeps polling until they are gone (or the
//! drain deadline passes, after which the rest are reset), drops what it
//! could not send, and hands its core back, queue pair included, so the
//! caller can stop the queues (drop them) and the device. After a crash
//! nothing of this runs; the next start calls `Device::init`, which resets
//! the controller, so no stale ring or DMA address survives.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use ixtcp_driver::time::Clock;

use crate::config::StackConfig;
use crate::core::{CoreSetup, StackCore};
use crate::error::StackError;
use crate::ether::MacAddr;
use crate::io::PacketIo;
use crate::neighbor::NeighborTable;
use crate::pcap::PcapFile;
use crate::rss::RssView;
use crate::secret::HostSecret;
use crate::stats::{CoreStats, StatsMirror};

/// The capture file of core `index` of `cores`: `path` itself for one
/// core, `path.N` otherwise (merge them with `mergecap`).
pub fn pcap_path(path: &Path, index: u16, cores: u16) -> PathBuf {
    if cores <= 1 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{index}"));
    PathBuf::from(s)
}

/// Builds one core per queue pair, sharing one neighbour table. `rss` is
/// the NIC's setup (its `queue` is ignored); `seed` is for deterministic
/// tests only (`None` in production: randomness from the OS).
pub fn build_cores<P: PacketIo>(
    cfg: Arc<StackConfig>,
    mac: MacAddr,
    rss: &RssView,
    queues: Vec<P>,
    now_ns: u64,
    seed: Option<u64>,
) -> Result<Vec<StackCore<P>>, StackError> {
    if queues.len() != usize::from(cfg.cores) {
        return Err(StackError::Device(format!(
            "{} queue pairs for {} cores: the device must have one queue pair per core",
            queues.len(),
            cfg.cores
        )));
    }
    let table = NeighborTable::new(cfg.neighbor_capacity, cfg.neighbor_ttl_ms);
    let secret = HostSecret::new(seed)?;
    queues
        .into_iter()
        .enumerate()
        .map(|(i, io)| {
            let index = i as u16;
            let pcap = match &cfg.pcap {
                Some(p) => {
                    let path = pcap_path(p, index, cfg.cores);
                    Some(
                        PcapFile::create(&path)
                            .map_err(|e| StackError::Device(format!("pcap file {}: {e}", path.display())))?,
                    )
                }
                None => None,
            };
            let setup = CoreSetup {
                index,
                io,
                mac,
                neighbors: Arc::clone(&table),
                rss: rss.for_queue(index),
                seed,
                pcap,
                secret,
            };
            StackCore::new(Arc::clone(&cfg), setup, now_ns)
        })
        .collect()
}

/// How the runtime runs its threads.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Pin thread `i` to CPU `i` (modulo the CPUs there are).
    pub pin: bool,
    /// How long shutdown waits for connections to close before resetting
    /// them, in the clock's nanoseconds.
    pub drain_timeout_ns: u64,
    /// Publish counters every this many iterations.
    pub stats_every: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { pin: true, drain_timeout_ns: 5_000_000_000, stats_every: 1024 }
    }
}

/// Running stack cores, one thread each.
pub struct Runtime<P: PacketIo + Send + 'static> {
    threads: Vec<JoinHandle<StackCore<P>>>,
    stop: Arc<AtomicBool>,
    mirrors: Vec<Arc<StatsMirror>>,
}

impl<P: PacketIo + Send + 'static> std::fmt::Debug for Runtime<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("cores", &self.threads.len()).finish()
    }
}

impl<P: PacketIo + Send + 'static> Runtime<P> {
    /// Starts one thread per core. `app(i)` makes core `i`'s per-iteration
    /// application work, run between ingress and egress.
    pub fn start<F>(
        cores: Vec<StackCore<P>>,
        clock: Arc<dyn Clock>,
        opts: RuntimeOptions,
        mut app: impl FnMut(u16) -> F,
    ) -> Result<Runtime<P>, StackError>
    where
        F: FnMut(&mut StackCore<P>) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = if opts.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let mut threads = Vec::new();
        let mut mirrors = Vec::new();
        for mut core in cores {
            let index = core.index();
            let mirror = Arc::new(StatsMirror::default());
            let mut work = app(index);
            let (stop, clock, mirror2, opts) =
                (Arc::clone(&stop), Arc::clone(&clock), Arc::clone(&mirror), opts.clone());
            let cpu = (!cpus.is_empty()).then(|| cpus[usize::from(index) % cpus.len()]);
            let t = std::thread::Builder::new()
                .name(format!("ixtcp-core-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        // Best effort: an unpinned core still works.
                        let _ = core_affinity::set_for_current(cpu);
                    }
                    let mut n: u32 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        core.poll_with(clock.now_ns(), &mut work);
                        n = n.wrapping_add(1);
                        if n % opts.stats_every.max(1) == 0 {
                            mirror2.publish(&core.stats());
                        }
                    }
                    drain(&mut core, &*clock, opts.drain_timeout_ns, &mut work);
                    mirror2.publish(&core.stats());
                    core
                })
                .map_err(|e| StackError::Device(format!("spawning core thread {index}: {e}")))?;
            threads.push(t);
            mirrors.push(mirror);
        }
        Ok(Runtime { threads, stop, mirrors })
    }

    /// The counters each core last published.
    pub fn stats(&self) -> Vec<CoreStats> {
        self.mirrors.iter().map(|m| m.load()).collect()
    }

    /// Asks every core to begin shutting down, without waiting (so several
    /// runtimes can drain at once); [`shutdown`](Self::shutdown) then waits.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Graceful shutdown: every core stops accepting, closes with FIN,
    /// drains, and is handed back (with its queue pair). A core whose
    /// thread panicked is reported as an error.
    pub fn shutdown(self) -> Result<Vec<StackCore<P>>, StackError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut cores = Vec::new();
        for (i, t) in self.threads.into_iter().enumerate() {
            cores.push(t.join().map_err(|_| StackError::Device(format!("core thread {i} panicked")))?);
        }
        Ok(cores)
    }
}

/// The end of a core's life: stop accepting, FIN everything, poll until
/// drained or the deadline, reset the rest, drop what is unsent.
pub fn drain<P: PacketIo>(
    core: &mut StackCore<P>,
    clock: &dyn Clock,
    timeout_ns: u64,
    app: &mut impl FnMut(&mut StackCore<P>),
) {
    core.begin_shutdown();
    let deadline = clock.now_ns().saturating_add(timeout_ns);
    while !core.is_drained() && clock.now_ns() < deadline {
        core.poll_with(clock.now_ns(), &mut *app);
        let _ = core.drain_events().count();
    }
    if !core.is_drained() {
        core.abort_all();
        for _ in 0..4 {
            core.poll(clock.now_ns());
        }
    }
    core.discard_pending();
}
