//! `--nic`: which NIC the examples drive. The type is sockapi's
//! [`Nic`](ixtcp_host::Nic), so that the socket programs hand it
//! straight to `sockapi::host`, and pktgen and fwd parse the same forms.
//!
//! - `model`: the software 82599; what its port is plugged into depends on
//!   the program (a sink for pktgen, another model for the benchmarks and
//!   the socket programs; see docs/PROGRAMS.md).
//! - `tap:NAME`: the model, with its port plugged into TAP device NAME
//!   (created if missing, brought up), so the Linux kernel is the peer.
//! - `packet:IFACE`: the model, plugged into an existing interface through
//!   an AF_PACKET socket (a veth in a network namespace, say).
//! - `pci:ADDR`: a real 82599 through sysfs (`resource0`) and hugepages.
//! - `vfio:ADDR`: a real 82599 through VFIO and the IOMMU.

pub use ixtcp_host::Nic as NicSpec;

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
