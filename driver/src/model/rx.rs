//! Receive path (82599 datasheet 7.1).

use super::iommu::IommuTable;
use super::state::State;

impl State {
    /// Moves frames from the wire into the rings and retries held
    /// transmissions; returns frames moved.
    pub(crate) fn pump(&mut self, _io: &IommuTable) -> usize {
        0
    }

    /// Delivers frames waiting in the receive packet buffer.
    pub(crate) fn drain_rx_fifo(&mut self, _io: &IommuTable) {}
}
