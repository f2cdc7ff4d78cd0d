//! The packet I/O of one queue pair, as the stack core sees it.
//!
//! [`PacketIo`] is the seam between the stack and whatever moves frames:
//! the driver's queue pair on the 82599 (or its model), or an in-memory
//! NIC in tests (`crate::sim`, behind the `test-utils` feature). Everything
//! above it is the same code.

use std::sync::Arc;

use ixtcp_driver::device::QueuePair;
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::mempool::{Mempool, PacketBuf};

/// Batch receive and transmit of whole Ethernet frames for one core.
pub trait PacketIo {
    /// Appends up to `max` received frames (Ethernet header first) to `out`;
    /// returns how many.
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize;

    /// Hands frames from the front of `batch` to the hardware, removes the
    /// ones taken and returns their number; what is left did not fit.
    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize;

    /// A free buffer with headroom for an Ethernet header, or `None` when
    /// the pool is empty.
    fn alloc(&mut self) -> Option<PacketBuf>;

    /// The pool the buffers come from (leak accounting).
    fn pool(&self) -> &Arc<Mempool>;

    /// Whether the hardware inserts IPv4 and TCP/UDP checksums for buffers
    /// that ask it to (`PacketBuf::set_tx_offload`) and reports its check of
    /// received ones (`PacketBuf::rx_checksum`). Without it the stack
    /// computes and verifies every checksum itself. No default: a wrapper
    /// must pass on what it wraps, not lose the offload silently.
    fn checksum_offload(&self) -> bool;
}

impl<T: PacketIo + ?Sized> PacketIo for Box<T> {
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        (**self).rx_batch(out, max)
    }
    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize {
        (**self).tx_batch(batch)
    }
    fn alloc(&mut self) -> Option<PacketBuf> {
        (**self).alloc()
    }
    fn pool(&self) -> &Arc<Mempool> {
        (**self).pool()
    }
    fn checksum_offload(&self) -> bool {
        (**self).checksum_offload()
    }
}

/// The driver's queue pair: RX queue, TX queue and the mempool that feeds
/// them, owned by one core.
impl<R: RegisterIo> PacketIo for QueuePair<R> {
    #[inline]
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.rx.rx_batch(out, max)
    }
    #[inline]
    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize {
        self.tx.tx_batch(batch)
    }
    #[inline]
    fn alloc(&mut self) -> Option<PacketBuf> {
        self.pool.alloc()
    }
    fn pool(&self) -> &Arc<Mempool> {
        &self.pool
    }
    /// The 82599 offloads both (datasheet 7.2.4, 7.1.11).
    fn checksum_offload(&self) -> bool {
        true
    }
}
