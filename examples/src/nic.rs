//! `--nic`: which NIC the examples drive.
//!
//! - `model`: the software 82599; what its port is plugged into depends on
//!   the program (a sink for pktgen, another model for the benchmarks).
//! - `tap:NAME`: the model, with its port plugged into TAP device NAME, so
//!   the Linux kernel is the peer.
//! - `packet:IFACE`: the model, plugged into an existing interface through
//!   an AF_PACKET socket (a veth in a network namespace, say).
//! - `pci:ADDR`: a real 82599 through sysfs (`resource0`) and hugepages.
//! - `vfio:ADDR`: a real 82599 through VFIO and the IOMMU.

use std::fmt;
use std::str::FromStr;

/// A parsed `--nic` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicSpec {
    /// The software model.
    Model,
    /// The model plugged into a TAP device.
    Tap(String),
    /// The model plugged into an interface through AF_PACKET.
    Packet(String),
    /// A real device through sysfs.
    Pci(String),
    /// A real device through VFIO.
    Vfio(String),
}

/// Why a `--nic` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpecError(String);

impl fmt::Display for NicSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad --nic value {:?}: expected model, tap:NAME, packet:IFACE, pci:ADDR or vfio:ADDR \
             (e.g. pci:0000:03:00.0)",
            self.0
        )
    }
}

impl std::error::Error for NicSpecError {}

impl FromStr for NicSpec {
    type Err = NicSpecError;

    fn from_str(s: &str) -> Result<NicSpec, NicSpecError> {
        let bad = || NicSpecError(s.to_string());
        if s == "model" {
            return Ok(NicSpec::Model);
        }
        let (kind, arg) = s.split_once(':').ok_or_else(bad)?;
        if arg.is_empty() {
            return Err(bad());
        }
        let arg = arg.to_string();
        match kind {
            "tap" if arg.len() < 16 => Ok(NicSpec::Tap(arg)),
            "packet" if arg.len() < 16 => Ok(NicSpec::Packet(arg)),
            "pci" => Ok(NicSpec::Pci(arg)),
            "vfio" => Ok(NicSpec::Vfio(arg)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for NicSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NicSpec::Model => write!(f, "model"),
            NicSpec::Tap(n) => write!(f, "tap:{n}"),
            NicSpec::Packet(n) => write!(f, "packet:{n}"),
            NicSpec::Pci(a) => write!(f, "pci:{a}"),
            NicSpec::Vfio(a) => write!(f, "vfio:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_round_trips() {
        for s in ["model", "tap:ixtcp0", "packet:veth0", "pci:0000:03:00.0", "vfio:03:00.0"] {
            let spec: NicSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!("pci:0000:03:00.0".parse::<NicSpec>().unwrap(), NicSpec::Pci("0000:03:00.0".into()));
    }

    #[test]
    fn refuses_junk_with_a_message_listing_the_forms() {
        for s in ["", "tap", "tap:", "eth0", "usb:1", "tap:averyveryverylongname"] {
            let err = s.parse::<NicSpec>().unwrap_err().to_string();
            assert!(err.contains("expected model, tap:NAME"), "{err}");
        }
    }
}
