//! The driver's error type: what went wrong during configuration and
//! initialisation, worded so that the message says what to fix.
//!
//! The data path (`rx_batch`, `tx_batch`) never returns errors: a full ring
//! or an empty mempool is a counter and a short batch.

use std::fmt;
use std::time::Duration;

use crate::dma::DmaError;
use crate::mempool::MempoolError;

/// Errors of [`Device::init`](crate::device::Device::init) and of
/// [`DeviceConfig::validate`](crate::device::DeviceConfig::validate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// A configuration field has a value the driver or the 82599 cannot use.
    Config {
        /// The `DeviceConfig` field at fault.
        field: &'static str,
        /// Why, and what values are accepted.
        reason: String,
    },
    /// A register bit the datasheet says the device sets (or clears) by
    /// itself did not change in time: the device is absent, wedged, or not
    /// an 82599.
    Timeout {
        /// The step that was waiting.
        what: &'static str,
        /// The register polled.
        register: &'static str,
        /// How long the driver waited.
        waited: Duration,
    },
    /// The link did not come up within `DeviceConfig::link_timeout`.
    LinkDown {
        /// How long the driver waited.
        waited: Duration,
        /// LINKS, AUTOC and ESDP when it gave up, for the bring-up
        /// checklist (docs/HARDWARE.md).
        links: u32,
        /// See `links`.
        autoc: u32,
        /// See `links`.
        esdp: u32,
    },
    /// A descriptor ring's memory does not meet the 82599's alignment rule
    /// (128 bytes, datasheet 8.2.3.8.1 and 8.2.3.9.5).
    RingAlignment {
        /// Which ring ("rx" or "tx").
        ring: &'static str,
        /// The queue it belongs to.
        queue: u16,
        /// The device address the allocator returned.
        iova: u64,
    },
    /// A packet buffer pool could not be created.
    Mempool(MempoolError),
    /// Descriptor ring memory could not be allocated.
    Dma(DmaError),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Config { field, reason } => write!(f, "invalid DeviceConfig.{field}: {reason}"),
            DriverError::Timeout { what, register, waited } => write!(
                f,
                "timed out after {waited:?} waiting for {what} (register {register}); \
                 check that the device is an 82599, bound to this process and not in use elsewhere"
            ),
            DriverError::LinkDown { waited, links, autoc, esdp } => write!(
                f,
                "link still down after {waited:?} (LINKS {links:#010x}, AUTOC {autoc:#010x}, ESDP {esdp:#010x}); \
                 check the SFP+ module, the cable and the link partner (docs/HARDWARE.md), \
                 or raise DeviceConfig.link_timeout (Duration::ZERO skips the wait)"
            ),
            DriverError::RingAlignment { ring, queue, iova } => write!(
                f,
                "{ring} ring of queue {queue} at device address {iova:#x} is not 128-byte aligned; \
                 the DMA allocator must return aligned memory"
            ),
            DriverError::Mempool(e) => write!(f, "cannot create packet buffer pool: {e}"),
            DriverError::Dma(e) => write!(f, "cannot allocate descriptor ring: {e}"),
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::Mempool(e) => Some(e),
            DriverError::Dma(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MempoolError> for DriverError {
    fn from(e: MempoolError) -> Self {
        DriverError::Mempool(e)
    }
}

impl From<DmaError> for DriverError {
    fn from(e: DmaError) -> Self {
        DriverError::Dma(e)
    }
}

impl DriverError {
    /// The `DeviceConfig` field a configuration error names, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DriverError::Config { field, .. } => Some(field),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_and_the_register() {
        let e = DriverError::Config { field: "num_queues", reason: "0 is not in 1..=16".into() };
        assert_eq!(e.to_string(), "invalid DeviceConfig.num_queues: 0 is not in 1..=16");
        assert_eq!(e.field(), Some("num_queues"));
        let t = DriverError::Timeout { what: "EEPROM auto-read", register: "EEC", waited: Duration::from_millis(5) };
        assert!(t.to_string().contains("EEC"));
        assert_eq!(t.field(), None);
    }
}
