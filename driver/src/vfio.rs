//! Driving the device through VFIO: BAR0, the config space and IOMMU-mapped DMA.
//!
//! With the IOMMU on, the device can only reach memory that has been mapped
//! for it, and it sees that memory at IO virtual addresses (IOVAs) rather
//! than physical ones. VFIO (Documentation/driver-api/vfio.rst) exposes this
//! to user space in three layers (the VFIO steps of
//! docs/reference/82599.md):
//!
//! - a **container** (`/dev/vfio/vfio`) holds one IOMMU address space;
//! - a **group** (`/dev/vfio/<n>`) is the unit the IOMMU can isolate; every
//!   device in it must be bound to vfio-pci (or to nothing) before the
//!   group is *viable*, and it is attached to the container;
//! - a **device** fd, from the group, gives the config space and BARs as
//!   regions at offsets in the fd.
//!
//! One container serves every device of the process, so that all of them
//! share one IOVA space and a DMA region can be used by any of them. It
//! lives in a process-wide `Mutex<Option<…>>` (opened on first use, never
//! closed); groups, once attached, stay open for the life of the process,
//! because a group can be opened only once and closing it detaches it.
//!
//! DMA memory is hugepage memory mapped into the IOMMU with
//! `VFIO_IOMMU_MAP_DMA`, at an IOVA equal to its virtual address (as ixy
//! does): unique within the process and needing no IOVA allocator. The
//! catch: an IOMMU whose address width is narrower than user-space
//! addresses (47 bits) refuses such mappings; the error says so.
//!
//! The ioctl numbers and structures below are those of `linux/vfio.h`,
//! written out here: every VFIO ioctl is `_IO(';', 100 + n)` (no size or
//! direction bits; `argsz` carries the size).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::dma::{DmaAllocator, DmaError, DmaRegion, DmaRelease};
use crate::hugepage::HugeMapping;
use crate::io::{MappedBar, Mmio};
use crate::regs::MIN_BAR0_LEN;

/// Where VFIO's character devices live.
pub const DEV_VFIO: &str = "/dev/vfio";

/// `VFIO_TYPE`: the ioctl type byte, `';'`.
const VFIO_TYPE: u32 = b';' as u32;
/// `VFIO_BASE`: the first VFIO ioctl number.
const VFIO_BASE: u32 = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: direction and size bits are zero.
const fn vfio_io(n: u32) -> libc::Ioctl {
    ((VFIO_TYPE << 8) | (VFIO_BASE + n)) as libc::Ioctl
}

const VFIO_GET_API_VERSION: libc::Ioctl = vfio_io(0);
const VFIO_CHECK_EXTENSION: libc::Ioctl = vfio_io(1);
const VFIO_SET_IOMMU: libc::Ioctl = vfio_io(2);
const VFIO_GROUP_GET_STATUS: libc::Ioctl = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = vfio_io(6);
const VFIO_DEVICE_GET_REGION_INFO: libc::Ioctl = vfio_io(8);
const VFIO_IOMMU_MAP_DMA: libc::Ioctl = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: libc::Ioctl = vfio_io(14);

/// The only VFIO API version there is.
const VFIO_API_VERSION: libc::c_int = 0;
/// The type1 IOMMU backend (x86 IOMMUs, ARM SMMU).
const VFIO_TYPE1_IOMMU: libc::c_ulong = 1;
/// Type1 with stricter unmap semantics; preferred when offered.
const VFIO_TYPE1V2_IOMMU: libc::c_ulong = 3;

/// `vfio_group_status.flags`: every device in the group is bound to
/// vfio-pci or to no driver.
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// `vfio_group_status.flags`: the group is attached to a container.
const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;

/// `vfio_region_info.flags`: the region may be mmapped.
const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;

/// `vfio_iommu_type1_dma_map.flags`: the device may read / write.
const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;

/// Region indices of vfio-pci: BARs 0–5, then the ROM, then config space.
const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_region_info` (without its capability chain).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug, Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` (without the dirty-bitmap data).
#[repr(C)]
#[derive(Debug, Default)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

const _: () = assert!(size_of::<GroupStatus>() == 8);
const _: () = assert!(size_of::<RegionInfo>() == 32);
const _: () = assert!(size_of::<DmaMap>() == 32);
const _: () = assert!(size_of::<DmaUnmap>() == 24);

/// `argsz` of a structure: its size, which always fits in a `u32`.
const fn argsz<T>() -> u32 {
    size_of::<T>() as u32
}

/// Errors of the VFIO access path.
#[derive(Debug)]
pub enum VfioError {
    /// The container device could not be opened.
    NoContainer {
        /// Usually `/dev/vfio/vfio`.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
    /// The kernel speaks another VFIO API version.
    ApiVersion(i32),
    /// The kernel offers no type1 IOMMU backend.
    NoType1,
    /// The group device could not be opened.
    Group {
        /// `/dev/vfio/<group>`.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
    /// Some device in the group is still bound to a host driver.
    NotViable {
        /// The group number.
        group: u32,
    },
    /// An ioctl failed.
    Ioctl {
        /// Which one, on what.
        what: String,
        /// The OS error.
        err: io::Error,
    },
    /// BAR0 cannot be used.
    Bar0(String),
}

impl fmt::Display for VfioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VfioError::NoContainer { path, err } => write!(
                f,
                "cannot open the VFIO container {}: {err}; load vfio-pci (`modprobe vfio-pci`), enable the IOMMU \
                 (intel_iommu=on or amd_iommu=on), or use the sysfs access mode",
                path.display()
            ),
            VfioError::ApiVersion(v) => {
                write!(f, "the kernel's VFIO API version is {v}, this driver speaks version {VFIO_API_VERSION}")
            }
            VfioError::NoType1 => write!(f, "the kernel's VFIO has no type1 IOMMU backend"),
            VfioError::Group { path, err } => {
                write!(f, "cannot open the IOMMU group {}: {err}", path.display())?;
                match err.kind() {
                    io::ErrorKind::NotFound => {
                        write!(f, "; bind the device to vfio-pci first (scripts/bind.sh vfio-pci ADDRESS)")
                    }
                    io::ErrorKind::PermissionDenied => {
                        write!(f, "; run as root or give your user access to {}", path.display())
                    }
                    _ if err.raw_os_error() == Some(libc::EBUSY) => {
                        write!(f, "; another process has the group open")
                    }
                    _ => Ok(()),
                }
            }
            VfioError::NotViable { group } => write!(
                f,
                "IOMMU group {group} is not viable: every device in it must be bound to vfio-pci or to no driver \
                 (see /sys/kernel/iommu_groups/{group}/devices and scripts/bind.sh)"
            ),
            VfioError::Ioctl { what, err } => write!(f, "{what} failed: {err}"),
            VfioError::Bar0(why) => write!(f, "cannot map BAR0 through VFIO: {why}"),
        }
    }
}

impl std::error::Error for VfioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VfioError::NoContainer { err, .. } | VfioError::Group { err, .. } | VfioError::Ioctl { err, .. } => {
                Some(err)
            }
            _ => None,
        }
    }
}

/// Calls `ioctl(file, request, arg)`, turning -1 into the OS error.
///
/// # Safety
/// `arg` must be what `request` expects: an integer, or a pointer to a live,
/// correctly laid-out structure that the kernel may read and write.
unsafe fn ioctl(file: &File, request: libc::Ioctl, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the fd is open (borrowed from `file`); `arg` is as the caller
    // promised.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), request, arg) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// The process's VFIO container and the groups attached to it.
struct VfioState {
    container: Arc<File>,
    iommu_type: libc::c_ulong,
    iommu_set: bool,
    groups: HashMap<u32, File>,
}

/// The one container of the process; see the module docs.
static STATE: Mutex<Option<VfioState>> = Mutex::new(None);

/// Opens the container at `path` and checks the API version and type1
/// support; returns it with the IOMMU type to set.
fn open_container(path: &Path) -> Result<(File, libc::c_ulong), VfioError> {
    let container = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| VfioError::NoContainer { path: path.to_path_buf(), err })?;
    let what = |ioctl: &str| format!("{ioctl} on {}", path.display());
    // SAFETY: VFIO_GET_API_VERSION takes no argument.
    let version = unsafe { ioctl(&container, VFIO_GET_API_VERSION, 0) }
        .map_err(|err| VfioError::Ioctl { what: what("VFIO_GET_API_VERSION"), err })?;
    if version != VFIO_API_VERSION {
        return Err(VfioError::ApiVersion(version));
    }
    for iommu_type in [VFIO_TYPE1V2_IOMMU, VFIO_TYPE1_IOMMU] {
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension number by value.
        let offered = unsafe { ioctl(&container, VFIO_CHECK_EXTENSION, iommu_type) }
            .map_err(|err| VfioError::Ioctl { what: what("VFIO_CHECK_EXTENSION"), err })?;
        if offered > 0 {
            return Ok((container, iommu_type));
        }
    }
    Err(VfioError::NoType1)
}

/// Opens group `group` under `dir`, checks it is viable and attaches it to
/// `container`.
fn open_group(dir: &Path, group: u32, container: &File) -> Result<File, VfioError> {
    let path = dir.join(group.to_string());
    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|err| VfioError::Group { path, err })?;
    let mut status = GroupStatus { argsz: argsz::<GroupStatus>(), flags: 0 };
    // SAFETY: VFIO_GROUP_GET_STATUS writes a `vfio_group_status`, which
    // `status` is, with `argsz` set.
    unsafe { ioctl(&file, VFIO_GROUP_GET_STATUS, &raw mut status as libc::c_ulong) }
        .map_err(|err| VfioError::Ioctl { what: format!("VFIO_GROUP_GET_STATUS on group {group}"), err })?;
    if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
        return Err(VfioError::NotViable { group });
    }
    if status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET == 0 {
        let fd: libc::c_int = container.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads an `int` holding the
        // container fd; `fd` lives across the call.
        unsafe { ioctl(&file, VFIO_GROUP_SET_CONTAINER, &raw const fd as libc::c_ulong) }
            .map_err(|err| VfioError::Ioctl { what: format!("VFIO_GROUP_SET_CONTAINER for group {group}"), err })?;
    }
    Ok(file)
}

/// A device opened through VFIO.
pub struct VfioDevice {
    /// The name VFIO knows the device by: its PCI address as sysfs spells
    /// it (`0000:03:00.0`).
    name: String,
    device: Arc<File>,
    container: Arc<File>,
}

impl fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDevice").field("name", &self.name).finish_non_exhaustive()
    }
}

impl VfioDevice {
    /// Opens the device named `name` (its PCI address as sysfs spells it,
    /// `0000:03:00.0`), in IOMMU group `group`, through
    /// [`DEV_VFIO`]: sets up the process's container on first use, attaches
    /// the group, and selects the type1 IOMMU once (VFIO steps 1–6
    /// in docs/reference/82599.md). The device must be bound to vfio-pci.
    pub fn open(name: &str, group: u32) -> Result<VfioDevice, VfioError> {
        VfioDevice::open_in(Path::new(DEV_VFIO), name, group)
    }

    /// As [`VfioDevice::open`], with the VFIO device directory at `dir`.
    fn open_in(dir: &Path, name: &str, group: u32) -> Result<VfioDevice, VfioError> {
        // A poisoned lock means a panic elsewhere while holding it; the state
        // is only ever replaced whole, so it is still consistent.
        let mut guard = STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = match guard.as_mut() {
            Some(state) => state,
            None => {
                let (container, iommu_type) = open_container(&dir.join("vfio"))?;
                guard.insert(VfioState {
                    container: Arc::new(container),
                    iommu_type,
                    iommu_set: false,
                    groups: HashMap::new(),
                })
            }
        };
        if !state.groups.contains_key(&group) {
            let file = open_group(dir, group, &state.container)?;
            state.groups.insert(group, file);
        }
        if !state.iommu_set {
            // Only valid once a group is attached, hence here.
            // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
            unsafe { ioctl(&state.container, VFIO_SET_IOMMU, state.iommu_type) }
                .map_err(|err| VfioError::Ioctl { what: "VFIO_SET_IOMMU".into(), err })?;
            state.iommu_set = true;
        }
        let group_file = state.groups.get(&group).ok_or_else(|| VfioError::Ioctl {
            what: format!("looking up group {group}"),
            err: io::Error::from(io::ErrorKind::NotFound),
        })?;
        let c_name = CString::new(name).map_err(|_| VfioError::Ioctl {
            what: "building the device name".into(),
            err: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated device name;
        // `name` lives across the call.
        let fd = unsafe { ioctl(group_file, VFIO_GROUP_GET_DEVICE_FD, c_name.as_ptr() as libc::c_ulong) }
            .map_err(|err| VfioError::Ioctl { what: format!("VFIO_GROUP_GET_DEVICE_FD for {name}"), err })?;
        // SAFETY: on success the ioctl returned a new fd that nothing else owns.
        let device = unsafe { File::from_raw_fd(fd) };
        Ok(VfioDevice { name: name.to_string(), device: Arc::new(device), container: Arc::clone(&state.container) })
    }

    /// The device's name (its PCI address).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        let mut info = RegionInfo { argsz: argsz::<RegionInfo>(), index, ..RegionInfo::default() };
        // SAFETY: VFIO_DEVICE_GET_REGION_INFO reads and writes a
        // `vfio_region_info`, which `info` is, with `argsz` and `index` set;
        // the kernel writes no capabilities past `argsz`.
        unsafe { ioctl(&self.device, VFIO_DEVICE_GET_REGION_INFO, &raw mut info as libc::c_ulong) }.map_err(|err| {
            VfioError::Ioctl { what: format!("VFIO_DEVICE_GET_REGION_INFO({index}) for {}", self.name), err }
        })?;
        Ok(info)
    }

    /// The device's configuration space: the device fd and the offset of
    /// its config region in it, where software sets Bus Master Enable
    /// (VFIO step 7) as it would in the sysfs `config` file.
    pub fn config_space(&self) -> Result<(&File, u64), VfioError> {
        let config = self.region_info(VFIO_PCI_CONFIG_REGION_INDEX)?;
        Ok((&self.device, config.offset))
    }

    /// Maps BAR0 (VFIO step 8) as an [`Mmio`]. The mapping keeps the device
    /// fd open for as long as any clone of the `Mmio` lives.
    pub fn map_bar0(&self) -> Result<Mmio, VfioError> {
        let bar = self.region_info(VFIO_PCI_BAR0_REGION_INDEX)?;
        if bar.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err(VfioError::Bar0(format!("vfio-pci does not allow mmap of BAR0 of {}", self.name)));
        }
        let len = usize::try_from(bar.size).unwrap_or(usize::MAX);
        if len < MIN_BAR0_LEN {
            return Err(VfioError::Bar0(format!(
                "BAR0 of {} is {:#x} bytes, smaller than the {MIN_BAR0_LEN:#x} bytes of an ixgbe register file",
                self.name, bar.size
            )));
        }
        let mapped = MappedBar::map(Arc::clone(&self.device), bar.offset, len)
            .map_err(|e| VfioError::Bar0(format!("mmap of {len:#x} bytes failed: {e}")))?;
        Ok(Mmio::new(Arc::new(mapped)))
    }

    /// The DMA allocator of the device's container.
    pub fn dma(&self) -> VfioDma {
        VfioDma { container: Arc::clone(&self.container) }
    }
}

/// DMA memory mapped into the IOMMU of the process's VFIO container.
///
/// Each region is hugepage memory (rounded up to whole 2 MiB pages), zeroed
/// and locked, mapped for device reads and writes at IOVA = virtual address.
/// Regions may exceed 2 MiB: the IOMMU makes them contiguous for the device.
/// Dropping a region unmaps it from the IOMMU, then from the process.
#[derive(Clone)]
pub struct VfioDma {
    container: Arc<File>,
}

impl fmt::Debug for VfioDma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VfioDma").finish_non_exhaustive()
    }
}

impl DmaAllocator for VfioDma {
    fn alloc(&self, size: usize) -> Result<DmaRegion, DmaError> {
        if size == 0 {
            return Err(DmaError::BadSize { size, reason: "zero-sized region" });
        }
        let mapping = HugeMapping::new(size)?;
        let vaddr = mapping.ptr().as_ptr() as u64;
        let iova = vaddr;
        let len = mapping.len();
        let mut map = DmaMap {
            argsz: argsz::<DmaMap>(),
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr,
            iova,
            size: len as u64,
        };
        // SAFETY: VFIO_IOMMU_MAP_DMA reads a `vfio_iommu_type1_dma_map`,
        // which `map` is, with `argsz` set; it pins `vaddr..vaddr+size`, our
        // own live mapping.
        unsafe { ioctl(&self.container, VFIO_IOMMU_MAP_DMA, &raw mut map as libc::c_ulong) }.map_err(|e| {
            DmaError::Os {
                what: format!(
                    "VFIO_IOMMU_MAP_DMA of {len:#x} bytes at IOVA {iova:#x} (if the IOMMU's address width is below \
                     47 bits it cannot map user-space addresses)"
                ),
                err: e.to_string(),
            }
        })?;
        let virt = mapping.ptr();
        let release =
            Box::new(VfioRelease { container: Arc::clone(&self.container), iova, len, mapping: Some(mapping) });
        // SAFETY: `virt` starts a fresh, zeroed, locked, writable mapping of
        // `len >= size` bytes, 2 MiB-aligned, owned only by `release`, which
        // unmaps it from the IOMMU and then the process; the device sees it
        // at `iova` through the mapping just made.
        Ok(unsafe { DmaRegion::from_raw_parts(virt, size, iova, release) })
    }
}

/// Unmaps a VFIO DMA region: from the IOMMU first, so the device can no
/// longer reach it, then from the process.
struct VfioRelease {
    container: Arc<File>,
    iova: u64,
    len: usize,
    mapping: Option<HugeMapping>,
}

impl DmaRelease for VfioRelease {
    fn release(&mut self, _virt: NonNull<u8>, _len: usize, _iova: u64) {
        let mut unmap = DmaUnmap { argsz: argsz::<DmaUnmap>(), flags: 0, iova: self.iova, size: self.len as u64 };
        // SAFETY: VFIO_IOMMU_UNMAP_DMA reads and writes a
        // `vfio_iommu_type1_dma_unmap`, which `unmap` is, with `argsz` set.
        // If it fails, the pages stay pinned by VFIO until the container is
        // closed, so unmapping them from the process below is still safe:
        // they cannot be reused while the device may reach them.
        let _ = unsafe { ioctl(&self.container, VFIO_IOMMU_UNMAP_DMA, &raw mut unmap as libc::c_ulong) };
        drop(self.mapping.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_vfio_h() {
        // _IO(';', 100 + n) = 0x3b00 | (100 + n).
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3b68);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 15212);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 15217);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
    }

    #[test]
    fn structure_layouts_match_linux_vfio_h() {
        assert_eq!(std::mem::offset_of!(RegionInfo, index), 8);
        assert_eq!(std::mem::offset_of!(RegionInfo, size), 16);
        assert_eq!(std::mem::offset_of!(RegionInfo, offset), 24);
        assert_eq!(std::mem::offset_of!(DmaMap, vaddr), 8);
        assert_eq!(std::mem::offset_of!(DmaMap, iova), 16);
        assert_eq!(std::mem::offset_of!(DmaMap, size), 24);
        assert_eq!(std::mem::offset_of!(DmaUnmap, iova), 8);
        assert_eq!(std::mem::offset_of!(DmaUnmap, size), 16);
        assert_eq!(argsz::<RegionInfo>(), 32);
    }

    #[test]
    fn a_missing_container_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = VfioDevice::open_in(dir.path(), "0000:03:00.0", 7).unwrap_err();
        assert!(matches!(err, VfioError::NoContainer { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().join("vfio").display().to_string()), "{msg}");
        assert!(msg.contains("modprobe vfio-pci"), "{msg}");
    }

    #[test]
    fn a_container_that_is_not_vfio_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vfio"), b"").unwrap();
        let err = open_container(&dir.path().join("vfio")).unwrap_err();
        assert!(matches!(err, VfioError::Ioctl { .. }), "{err}");
        assert!(err.to_string().contains("VFIO_GET_API_VERSION"), "{err}");
    }

    #[test]
    fn group_errors_give_hints() {
        let e = VfioError::Group { path: "/dev/vfio/12".into(), err: io::Error::from(io::ErrorKind::NotFound) };
        assert!(e.to_string().contains("scripts/bind.sh vfio-pci"), "{e}");
        let e = VfioError::NotViable { group: 12 };
        assert!(e.to_string().contains("/sys/kernel/iommu_groups/12/devices"), "{e}");
    }
}
