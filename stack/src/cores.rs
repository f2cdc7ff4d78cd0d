//! Bringing up a host's stack cores: one [`StackCore`] per queue pair of
//! the NIC, all sharing one neighbour table and one host secret, each with
//! its capture file when `pcap` is set. Who runs the cores afterwards (a
//! runtime's threads, a test's loop) is not this module's business: the
//! runtime is sockapi's, started by the host crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::StackConfig;
use crate::core::{CoreSetup, StackCore};
use crate::error::StackError;
use crate::ether::MacAddr;
use crate::io::PacketIo;
use crate::neighbor::NeighborTable;
use crate::pcap::PcapFile;
use crate::rss::RssView;
use crate::secret::HostSecret;

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
