//! Finding, checking and mapping an ixgbe-family controller through sysfs.
//!
//! A [`PciDevice`] is a directory under `/sys/bus/pci/devices` (the root is
//! a parameter, so tests run against a fake tree). It reads the ids, checks
//! that the device is one this driver can run ([`PciDevice::check_ixgbe`]),
//! takes it away from the kernel driver, turns on bus mastering and maps
//! BAR0 from `resource0` as an [`Mmio`].
//!
//! Which ids are accepted, and why the others are refused, is in
//! [`board`](crate::board).
//!
//! [`open_ixgbe`] does all of that in one call and picks the DMA memory that
//! matches the access path: with an IOMMU group the device is driven through
//! VFIO and DMA addresses are IOVAs ([`VfioDma`]); without one it is driven
//! through sysfs and DMA addresses are physical addresses of hugepages
//! ([`HugepageDma`]). See
//! docs/reference/82599.md, "Reaching the device from user space".
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::dma::{DmaAllocator, DmaError, DmaRegion};
use crate::hugepage::HugepageDma;
use crate::io::{MappedBar, Mmio};
use crate::vfio::{VfioDevice, VfioDma, VfioError};

/// Where Linux lists PCI devices.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// Intel's PCI vendor id.
pub const INTEL_VENDOR_ID: u16 = 0x8086;

/// PCI base class of network controllers (class code bits 23:16).
pub const NETWORK_CLASS: u8 = 0x02;

/// Offset of the 16-bit command register in PCI configuration space.
pub const PCI_COMMAND: u64 = 0x04;

/// Bus Master Enable, bit 2 of the command register: without it the device
/// cannot read descriptors or write packets (PCI Local Bus spec. 6.2.2).
pub const PCI_COMMAND_BUS_MASTER: u16 = 1 << 2;

pub use crate::regs::MIN_BAR0_LEN;

pub use crate::board::{IxgbeModel, Media, REFUSED_DEVICES, SUPPORTED_DEVICES, supported_model};

/// Errors of finding, checking and mapping a PCI device.
#[derive(Debug)]
pub enum PciError {
    /// The text is not a PCI address.
    BadAddress {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No device directory for the address.
    NoDevice {
        /// The device's address.
        address: PciAddress,
        /// The directory looked for.
        path: PathBuf,
    },
    /// A sysfs file could not be read, written or opened.
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
    /// A sysfs file held something unexpected.
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
    },
    /// The vendor is not Intel.
    NotIntel {
        /// The device's address.
        address: PciAddress,
        /// Its vendor id.
        vendor: u16,
    },
    /// The device id is not in [`SUPPORTED_DEVICES`].
    Unsupported {
        /// The device's address.
        address: PciAddress,
        /// Its device id.
        device: u16,
    },
    /// An ixgbe controller this driver knows but does not bring up (its
    /// medium needs a link setup the driver does not implement).
    UnsupportedBoard {
        /// The device's address.
        address: PciAddress,
        /// Which controller it is.
        model: &'static IxgbeModel,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The class code is not a network controller.
    NotNetwork {
        /// The device's address.
        address: PciAddress,
        /// Its 24-bit class code.
        class: u32,
    },
    /// `resource0` (or the VFIO BAR0 region) is smaller than a register file.
    Bar0TooSmall {
        /// The file (or VFIO region) mapped.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// VFIO mode was chosen but the device is not bound to vfio-pci.
    NotBoundToVfio {
        /// The device's address.
        address: PciAddress,
        /// The driver it is bound to, if any.
        driver: Option<String>,
    },
    /// VFIO mode was asked for but the device has no IOMMU group.
    NoIommuGroup {
        /// The device's address.
        address: PciAddress,
    },
    /// A VFIO step failed.
    Vfio(VfioError),
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::BadAddress { input, reason } => write!(
                f,
                "{input:?} is not a PCI address ({reason}); expected DDDD:BB:DD.F or BB:DD.F, as `lspci -D` prints"
            ),
            PciError::NoDevice { address, path } => write!(
                f,
                "no PCI device {address}: {} does not exist; list devices with `lspci -D` or scripts/bind.sh --status",
                path.display()
            ),
            PciError::Io { what, path, err } => {
                write!(f, "cannot {what} {}: {err}", path.display())?;
                if err.kind() == io::ErrorKind::PermissionDenied {
                    write!(f, "; run as root")?;
                }
                Ok(())
            }
            PciError::Parse { path, content } => {
                write!(f, "unexpected content {content:?} in {}", path.display())
            }
            PciError::NotIntel { address, vendor } => {
                write!(f, "device {address} has vendor {vendor:#06x}, not Intel ({INTEL_VENDOR_ID:#06x}): not an 82599")
            }
            PciError::Unsupported { address, device } => write!(
                f,
                "device {address} is an Intel device with id {device:#06x}, which is not an ixgbe controller this \
                 driver supports; supported (82599 SFP+ boards): {}",
                crate::board::supported_list()
            ),
            PciError::UnsupportedBoard { address, model, reason } => write!(
                f,
                "device {address} is an {} ({:#06x}) with {} media, which this driver does not bring up: {reason}; \
                 supported (82599 SFP+ boards): {}",
                model.name,
                model.device_id,
                model.media,
                crate::board::supported_list()
            ),
            PciError::NotNetwork { address, class } => {
                write!(f, "device {address} has class {class:#08x}, not a network controller (0x02xxxx)")
            }
            PciError::Bar0TooSmall { path, size } => write!(
                f,
                "BAR0 at {} is {size:#x} bytes, smaller than the {MIN_BAR0_LEN:#x} bytes of an ixgbe register file",
                path.display()
            ),
            PciError::NotBoundToVfio { address, driver } => {
                match driver {
                    Some(d) => write!(f, "device {address} is bound to {d}, not vfio-pci")?,
                    None => write!(f, "device {address} is bound to no driver, not vfio-pci")?,
                }
                write!(f, "; bind it with `scripts/bind.sh vfio-pci {address}`, or use the sysfs access mode")
            }
            PciError::NoIommuGroup { address } => write!(
                f,
                "device {address} has no IOMMU group, so VFIO cannot drive it; enable the IOMMU \
                 (intel_iommu=on or amd_iommu=on) or use the sysfs access mode"
            ),
            PciError::Vfio(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PciError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PciError::Io { err, .. } => Some(err),
            PciError::Vfio(e) => Some(e),
            _ => None,
        }
    }
}

impl From<VfioError> for PciError {
    fn from(e: VfioError) -> Self {
        PciError::Vfio(e)
    }
}

/// A PCI address: domain, bus, device, function (`0000:03:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// The address from its parts; `None` if `device > 31` or `function > 7`.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<PciAddress> {
        (device < 32 && function < 8).then_some(PciAddress { domain, bus, device, function })
    }
    /// The PCI domain (segment).
    pub fn domain(&self) -> u32 {
        self.domain
    }
    /// The bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }
    /// The device (slot) number, 0..=31.
    pub fn device(&self) -> u8 {
        self.device
    }
    /// The function number, 0..=7.
    pub fn function(&self) -> u8 {
        self.function
    }
}

impl fmt::Display for PciAddress {
    /// The form sysfs uses for directory names: lower-case hex,
    /// `dddd:bb:dd.f`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

impl FromStr for PciAddress {
    type Err = PciError;

    /// Parses `DDDD:BB:DD.F` or the short `BB:DD.F` (domain 0).
    fn from_str(s: &str) -> Result<PciAddress, PciError> {
        let bad = |reason| PciError::BadAddress { input: s.to_string(), reason };
        let hex = |t: &str, max_digits: usize, what| {
            if t.is_empty() || t.len() > max_digits || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(what));
            }
            u32::from_str_radix(t, 16).map_err(|_| bad(what))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, slot_fn) = match parts.as_slice() {
            [bus, slot_fn] => (0, *bus, *slot_fn),
            [domain, bus, slot_fn] => (hex(domain, 8, "domain must be 1 to 8 hex digits")?, *bus, *slot_fn),
            _ => return Err(bad("wrong number of ':'")),
        };
        let bus = hex(bus, 2, "bus must be 1 or 2 hex digits")?;
        let (slot, function) = slot_fn.split_once('.').ok_or_else(|| bad("missing '.' before the function"))?;
        let slot = hex(slot, 2, "device must be 1 or 2 hex digits")?;
        let function = hex(function, 1, "function must be one digit 0-7")?;
        if slot > 31 {
            return Err(bad("device number above 0x1f"));
        }
        if function > 7 {
            return Err(bad("function number above 7"));
        }
        // The casts cannot truncate: bus has at most 2 hex digits, slot <= 31
        // and function <= 7 were checked above.
        Ok(PciAddress { domain, bus: bus as u8, device: slot as u8, function: function as u8 })
    }
}

/// How [`open_ixgbe`] reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    /// VFIO when the device has an IOMMU group, sysfs otherwise (what ixy.rs
    /// does: with the IOMMU on, physical addresses would fault).
    #[default]
    Auto,
    /// `resource0` and hugepages with physical addresses. Needs root, and
    /// the IOMMU off or in passthrough mode (`iommu=pt`).
    Sysfs,
    /// VFIO: the device bound to vfio-pci, DMA through the IOMMU.
    Vfio,
}

/// The access path that [`PciDevice::choose_access`] settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Through sysfs, with physical addresses.
    Sysfs,
    /// Through VFIO, with this IOMMU group.
    Vfio {
        /// The device's IOMMU group number.
        group: u32,
    },
}

/// A PCI device as sysfs shows it.
#[derive(Debug, Clone)]
pub struct PciDevice {
    address: PciAddress,
    dir: PathBuf,
}

impl PciDevice {
    /// The device at `address` under `sysfs_root` (normally
    /// [`SYSFS_PCI_DEVICES`]). Fails if its directory does not exist.
    pub fn open(address: PciAddress, sysfs_root: &Path) -> Result<PciDevice, PciError> {
        let dir = sysfs_root.join(address.to_string());
        if !dir.is_dir() {
            return Err(PciError::NoDevice { address, path: dir });
        }
        Ok(PciDevice { address, dir })
    }

    /// The device's address.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The device's sysfs directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The vendor id (sysfs `vendor`).
    pub fn vendor_id(&self) -> Result<u16, PciError> {
        let path = self.dir.join("vendor");
        let v = read_hex(&path)?;
        u16::try_from(v).map_err(|_| PciError::Parse { path, content: format!("{v:#x}") })
    }

    /// The device id (sysfs `device`).
    pub fn device_id(&self) -> Result<u16, PciError> {
        let path = self.dir.join("device");
        let v = read_hex(&path)?;
        u16::try_from(v).map_err(|_| PciError::Parse { path, content: format!("{v:#x}") })
    }

    /// The 24-bit class code (sysfs `class`): base class, sub-class,
    /// programming interface.
    pub fn class(&self) -> Result<u32, PciError> {
        let path = self.dir.join("class");
        let v = read_hex(&path)?;
        if v > 0xff_ffff {
            return Err(PciError::Parse { path, content: format!("{v:#x}") });
        }
        Ok(v)
    }

    /// Checks that this is an Intel network controller whose device id is in
    /// [`SUPPORTED_DEVICES`], and returns its model.
    pub fn check_ixgbe(&self) -> Result<&'static IxgbeModel, PciError> {
        let vendor = self.vendor_id()?;
        if vendor != INTEL_VENDOR_ID {
            return Err(PciError::NotIntel { address: self.address, vendor });
        }
        let device = self.device_id()?;
        let model = match (supported_model(device), crate::board::refused_model(device)) {
            (Some(model), _) => model,
            (None, Some((model, reason))) => {
                return Err(PciError::UnsupportedBoard { address: self.address, model, reason });
            }
            (None, None) => return Err(PciError::Unsupported { address: self.address, device }),
        };
        let class = self.class()?;
        if (class >> 16) as u8 != NETWORK_CLASS {
            return Err(PciError::NotNetwork { address: self.address, class });
        }
        Ok(model)
    }

    /// The name of the kernel driver bound to the device, if any.
    pub fn driver(&self) -> Result<Option<String>, PciError> {
        let link = self.dir.join("driver");
        match fs::read_link(&link) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(PciError::Io { what: "read the driver link", path: link, err }),
        }
    }

    /// Unbinds the kernel driver, if one is bound, by writing the address to
    /// `<dev>/driver/unbind`; returns the name of the driver that was bound.
    pub fn unbind_driver(&self) -> Result<Option<String>, PciError> {
        let Some(driver) = self.driver()? else {
            return Ok(None);
        };
        let unbind = self.dir.join("driver").join("unbind");
        // Without `create`: a sysfs attribute exists or the kernel lacks it.
        OpenOptions::new()
            .write(true)
            .open(&unbind)
            .and_then(|mut f| f.write_all(self.address.to_string().as_bytes()))
            .map_err(|err| PciError::Io { what: "write to", path: unbind, err })?;
        Ok(Some(driver))
    }

    /// Sets Bus Master Enable in the command register through the sysfs
    /// `config` file, keeping the other bits (PCI 6.2.2;
    /// docs/reference/82599.md). Returns the
    /// command register as written.
    pub fn enable_bus_master(&self) -> Result<u16, PciError> {
        let path = self.dir.join("config");
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|err| PciError::Io {
            what: "open",
            path: path.clone(),
            err,
        })?;
        set_bus_master(&file).map_err(|err| PciError::Io { what: "update the command register in", path, err })
    }

    /// Maps BAR0 from `resource0` (read-write, `MAP_SHARED`, so that stores
    /// reach the device) as an [`Mmio`] that unmaps when its last clone goes.
    pub fn map_resource0(&self) -> Result<Mmio, PciError> {
        let path = self.dir.join("resource0");
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|err| PciError::Io {
            what: "open",
            path: path.clone(),
            err,
        })?;
        let size = file.metadata().map_err(|err| PciError::Io { what: "stat", path: path.clone(), err })?.len();
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        if len < MIN_BAR0_LEN {
            return Err(PciError::Bar0TooSmall { path, size });
        }
        let bar = MappedBar::map(Arc::new(file), 0, len).map_err(|err| PciError::Io { what: "mmap", path, err })?;
        Ok(Mmio::new(Arc::new(bar)))
    }

    /// The device's IOMMU group, if it has one (the `iommu_group` link).
    pub fn iommu_group(&self) -> Result<Option<u32>, PciError> {
        let link = self.dir.join("iommu_group");
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(PciError::Io { what: "read the IOMMU group link", path: link, err }),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        name.parse().map(Some).map_err(|_| PciError::Parse { path: link, content: target.display().to_string() })
    }

    /// Resolves `mode` into the access path to use: [`AccessMode::Auto`]
    /// picks VFIO when the device has an IOMMU group.
    pub fn choose_access(&self, mode: AccessMode) -> Result<Access, PciError> {
        match (mode, self.iommu_group()?) {
            (AccessMode::Sysfs, _) | (AccessMode::Auto, None) => Ok(Access::Sysfs),
            (AccessMode::Vfio | AccessMode::Auto, Some(group)) => Ok(Access::Vfio { group }),
            (AccessMode::Vfio, None) => Err(PciError::NoIommuGroup { address: self.address }),
        }
    }
}

/// DMA memory for a device opened by [`open_ixgbe`]: hugepages with physical
/// addresses on sysfs, IOMMU-mapped hugepages under VFIO.
#[derive(Clone)]
pub enum IxgbeDma {
    /// Sysfs access.
    Hugepage(HugepageDma),
    /// VFIO access.
    Vfio(VfioDma),
}

impl DmaAllocator for IxgbeDma {
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
        match self {
            IxgbeDma::Hugepage(h) => h.alloc(size),
            IxgbeDma::Vfio(v) => v.alloc(size),
        }
    }
}

/// An ixgbe controller ready for the driver's init sequence: BAR0 mapped,
/// bus mastering on, and the matching DMA allocator.
pub struct IxgbeHardware {
    /// The device's address.
    pub address: PciAddress,
    /// Which controller it is.
    pub model: &'static IxgbeModel,
    /// How it is reached.
    pub access: Access,
    /// Its register file.
    pub mmio: Mmio,
    /// Where its DMA memory comes from.
    pub dma: IxgbeDma,
    /// The kernel driver that was unbound (sysfs access only), to rebind
    /// with `scripts/bind.sh <driver> <address>` afterwards.
    pub unbound_driver: Option<String>,
}

/// Opens the ixgbe controller at `address`: checks its ids, chooses the
/// access path (`mode`), and maps BAR0.
///
/// On the sysfs path the kernel driver is unbound (the device disappears
/// from `ip link`) and bus mastering is set through `config`. On the VFIO
/// path the device must already be bound to vfio-pci
/// (`scripts/bind.sh vfio-pci <address>`).
pub fn open_ixgbe(address: PciAddress, sysfs_root: &Path, mode: AccessMode) -> Result<IxgbeHardware, PciError> {
    let dev = PciDevice::open(address, sysfs_root)?;
    let model = dev.check_ixgbe()?;
    let access = dev.choose_access(mode)?;
    match access {
        Access::Sysfs => {
            let unbound_driver = dev.unbind_driver()?;
            dev.enable_bus_master()?;
            let mmio = dev.map_resource0()?;
            Ok(IxgbeHardware {
                address,
                model,
                access,
                mmio,
                dma: IxgbeDma::Hugepage(HugepageDma::new()),
                unbound_driver,
            })
        }
        Access::Vfio { group } => {
            let driver = dev.driver()?;
            if driver.as_deref() != Some("vfio-pci") {
                return Err(PciError::NotBoundToVfio { address, driver });
            }
            let vfio = VfioDevice::open(&address.to_string(), group)?;
            let (config, base) = vfio.config_space()?;
            set_bus_master_at(config, base).map_err(|err| VfioError::Ioctl {
                what: format!("updating the command register of {address} through the VFIO config region"),
                err,
            })?;
            let mmio = vfio.map_bar0()?;
            Ok(IxgbeHardware { address, model, access, mmio, dma: IxgbeDma::Vfio(vfio.dma()), unbound_driver: None })
        }
    }
}

/// Reads a sysfs hex attribute such as `"0x8086\n"`.
fn read_hex(path: &Path) -> Result<u32, PciError> {
    let text = fs::read_to_string(path).map_err(|err| PciError::Io { what: "read", path: path.to_path_buf(), err })?;
    let t = text.trim();
    let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    u32::from_str_radix(digits, 16).map_err(|_| PciError::Parse { path: path.to_path_buf(), content: t.to_string() })
}

/// Sets Bus Master Enable in the command register of a configuration space
/// reachable at file offset `base` (0 for sysfs `config`, the config
/// region's offset for VFIO). Returns the value written.
fn set_bus_master_at(file: &File, base: u64) -> io::Result<u16> {
    let mut cmd = [0u8; 2];
    file.read_exact_at(&mut cmd, base + PCI_COMMAND)?;
    let value = u16::from_le_bytes(cmd) | PCI_COMMAND_BUS_MASTER;
    file.write_all_at(&value.to_le_bytes(), base + PCI_COMMAND)?;
    Ok(value)
}

fn set_bus_master(file: &File) -> io::Result<u16> {
    set_bus_master_at(file, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_addresses() {
        let a: PciAddress = "0000:03:00.0".parse().unwrap();
        assert_eq!((a.domain(), a.bus(), a.device(), a.function()), (0, 3, 0, 0));
        assert_eq!(a.to_string(), "0000:03:00.0");
        let b: PciAddress = "03:00.1".parse().unwrap();
        assert_eq!(b.to_string(), "0000:03:00.1");
        let c: PciAddress = "0001:AF:1f.7".parse().unwrap();
        assert_eq!(c.to_string(), "0001:af:1f.7");
        let d: PciAddress = "10000:00:00.0".parse().unwrap();
        assert_eq!(d.to_string(), "10000:00:00.0");
    }

    #[test]
    fn rejects_junk_addresses() {
        for junk in ["", "03:00", "0000:03:00", "0000:03:20.0", "0000:03:00.8", "zz:00.0", "0000:003:00.0", "1:2:3:4.0"]
        {
            let err = junk.parse::<PciAddress>().unwrap_err();
            assert!(matches!(err, PciError::BadAddress { .. }), "{junk:?} gave {err}");
            assert!(err.to_string().contains("not a PCI address"), "{err}");
        }
    }

    #[test]
    fn address_parts_are_range_checked() {
        assert!(PciAddress::new(0, 3, 31, 7).is_some());
        assert!(PciAddress::new(0, 3, 32, 0).is_none());
        assert!(PciAddress::new(0, 3, 0, 8).is_none());
    }

    #[test]
    fn supported_table_holds_the_sfp_parts_and_refuses_the_others() {
        for id in [0x10FB, 0x154D, 0x1557] {
            assert!(supported_model(id).is_some(), "{id:#x}");
        }
        for id in [0x10F7, 0x10F9, 0x1517, 0x151C, 0x1528, 0x1560] {
            assert!(supported_model(id).is_none(), "{id:#x} has no link setup here");
            assert!(crate::board::refused_model(id).is_some(), "{id:#x} is refused by name");
        }
    }

    #[test]
    fn bus_master_sets_bit_2_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let mut cfg = vec![0u8; 64];
        cfg[4..6].copy_from_slice(&0x0402u16.to_le_bytes());
        fs::write(&path, &cfg).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert_eq!(set_bus_master(&file).unwrap(), 0x0406);
        let after = fs::read(&path).unwrap();
        assert_eq!(&after[4..6], &0x0406u16.to_le_bytes());
        assert_eq!(&after[..4], &cfg[..4]);
        assert_eq!(&after[6..], &cfg[6..]);
    }
}
