//! Transmit path (82599 datasheet 7.2).

use super::iommu::IommuTable;
use super::state::State;

impl State {
    /// Processes queue `q`'s descriptors from TDH to TDT.
    pub(crate) fn transmit(&mut self, _io: &IommuTable, _q: usize) {}
}
