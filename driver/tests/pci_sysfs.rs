//! PCI access over sysfs, against a fake sysfs tree in a temporary directory:
//! the library (`PciDevice`, `open_ixgbe`) and `scripts/bind.sh`.
//!
//! The fake tree has the shape of the real one, so the same tree serves the
//! Rust code (rooted at `<tmp>/bus/pci/devices`) and the script (rooted at
//! `SYSFS_ROOT=<tmp>`):
//!
//! ```text
//! <tmp>/bus/pci/drivers_probe
//! <tmp>/bus/pci/drivers/{ixgbe,vfio-pci}/{bind,unbind}
//! <tmp>/bus/pci/devices/0000:03:00.0/{vendor,device,class,config,resource0,driver_override}
//! <tmp>/bus/pci/devices/0000:03:00.0/driver -> ../../drivers/ixgbe
//! <tmp>/bus/pci/devices/0000:03:00.0/iommu_group -> <tmp>/kernel/iommu_groups/17   (optional)
//! ```

use std::fs;
use std::os::unix::fs::{FileExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::pci::{Access, AccessMode, IxgbeDma, MIN_BAR0_LEN, PciAddress, PciDevice, PciError, open_ixgbe};
use ixtcp_driver::regs::BAR0_LEN;

const ADDR: &str = "0000:03:00.0";

struct FakeSysfs {
    dir: tempfile::TempDir,
}

impl FakeSysfs {
    /// An Intel 82599 SFP+ (0x8086:0x10fb, class 0x020000) bound to ixgbe.
    fn new() -> FakeSysfs {
        let fake = FakeSysfs { dir: tempfile::tempdir().unwrap() };
        for driver in ["ixgbe", "vfio-pci"] {
            let d = fake.pci().join("drivers").join(driver);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("bind"), "").unwrap();
            fs::write(d.join("unbind"), "").unwrap();
        }
        fs::write(fake.pci().join("drivers_probe"), "").unwrap();
        let dev = fake.dev();
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("vendor"), "0x8086\n").unwrap();
        fs::write(dev.join("device"), "0x10fb\n").unwrap();
        fs::write(dev.join("class"), "0x020000\n").unwrap();
        fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        // Config space: vendor/device ids, then command = memory space
        // enable (bit 1) and a reserved-looking bit 10, status 0x0010.
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&0x8086u16.to_le_bytes());
        config[2..4].copy_from_slice(&0x10fbu16.to_le_bytes());
        config[4..6].copy_from_slice(&0x0402u16.to_le_bytes());
        config[6..8].copy_from_slice(&0x0010u16.to_le_bytes());
        fs::write(dev.join("config"), &config).unwrap();
        fs::File::create(dev.join("resource0")).unwrap().set_len(BAR0_LEN as u64).unwrap();
        fake.set_driver(Some("ixgbe"));
        fake
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn pci(&self) -> PathBuf {
        self.root().join("bus/pci")
    }
    fn devices(&self) -> PathBuf {
        self.pci().join("devices")
    }
    fn dev(&self) -> PathBuf {
        self.devices().join(ADDR)
    }
    fn write(&self, name: &str, text: &str) {
        fs::write(self.dev().join(name), text).unwrap();
    }
    fn set_driver(&self, driver: Option<&str>) {
        let link = self.dev().join("driver");
        let _ = fs::remove_file(&link);
        if let Some(d) = driver {
            symlink(format!("../../drivers/{d}"), &link).unwrap();
        }
    }
    fn set_iommu_group(&self, group: u32) {
        let target = self.root().join("kernel/iommu_groups").join(group.to_string());
        fs::create_dir_all(&target).unwrap();
        symlink(&target, self.dev().join("iommu_group")).unwrap();
    }
    fn open(&self) -> PciDevice {
        PciDevice::open(addr(), &self.devices()).unwrap()
    }
    fn read_driver_file(&self, driver: &str, name: &str) -> String {
        fs::read_to_string(self.pci().join("drivers").join(driver).join(name)).unwrap()
    }
}

fn addr() -> PciAddress {
    ADDR.parse().unwrap()
}

#[test]
fn a_supported_intel_nic_passes_the_check() {
    let fake = FakeSysfs::new();
    let dev = fake.open();
    assert_eq!(dev.vendor_id().unwrap(), 0x8086);
    assert_eq!(dev.device_id().unwrap(), 0x10fb);
    assert_eq!(dev.class().unwrap(), 0x020000);
    assert_eq!(dev.check_ixgbe().unwrap().device_id, 0x10fb);
    assert_eq!(dev.driver().unwrap().as_deref(), Some("ixgbe"));
}

#[test]
fn a_short_address_finds_the_same_device() {
    let fake = FakeSysfs::new();
    let short: PciAddress = "03:00.0".parse().unwrap();
    assert_eq!(PciDevice::open(short, &fake.devices()).unwrap().path(), fake.dev());
}

#[test]
fn another_vendor_is_refused() {
    let fake = FakeSysfs::new();
    fake.write("vendor", "0x10ec\n");
    let err = fake.open().check_ixgbe().unwrap_err();
    assert!(matches!(err, PciError::NotIntel { vendor: 0x10ec, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(ADDR) && msg.contains("0x10ec") && msg.contains("not Intel (0x8086)"), "{msg}");
}

#[test]
fn an_unsupported_device_id_is_refused_by_name() {
    let fake = FakeSysfs::new();
    fake.write("device", "0x1533\n"); // an I210, also Intel and a NIC
    let err = fake.open().check_ixgbe().unwrap_err();
    assert!(matches!(err, PciError::Unsupported { device: 0x1533, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("0x1533") && msg.contains("0x10fb"), "{msg}");
}

#[test]
fn every_known_board_without_a_link_setup_is_refused_naming_its_media() {
    use ixtcp_driver::board::{REFUSED_DEVICES, SUPPORTED_DEVICES};
    let fake = FakeSysfs::new();
    for (model, _) in REFUSED_DEVICES {
        fake.write("device", &format!("{:#06x}\n", model.device_id));
        let err = fake.open().check_ixgbe().unwrap_err();
        assert!(matches!(err, PciError::UnsupportedBoard { model: m, .. } if m == model), "{err:?}");
        let msg = err.to_string();
        let id = format!("{:#06x}", model.device_id);
        assert!(msg.contains(&id) && msg.contains(model.name) && msg.contains(&model.media.to_string()), "{msg}");
        assert!(msg.contains("0x10fb (82599 SFP+)"), "the error lists the supported boards: {msg}");
    }
    for model in SUPPORTED_DEVICES {
        fake.write("device", &format!("{:#06x}\n", model.device_id));
        assert_eq!(fake.open().check_ixgbe().unwrap(), model);
    }
}

#[test]
fn a_device_that_is_not_a_network_controller_is_refused() {
    let fake = FakeSysfs::new();
    fake.write("class", "0x010802\n");
    let err = fake.open().check_ixgbe().unwrap_err();
    assert!(matches!(err, PciError::NotNetwork { class: 0x010802, .. }), "{err:?}");
    assert!(err.to_string().contains("not a network controller"), "{err}");
}

#[test]
fn garbage_in_an_id_file_names_the_file() {
    let fake = FakeSysfs::new();
    fake.write("device", "ixgbe?\n");
    let err = fake.open().device_id().unwrap_err();
    assert!(matches!(err, PciError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains(&fake.dev().join("device").display().to_string()), "{err}");
}

#[test]
fn missing_files_are_named_in_the_error() {
    let fake = FakeSysfs::new();
    for name in ["vendor", "config", "resource0"] {
        fs::remove_file(fake.dev().join(name)).unwrap();
    }
    let dev = fake.open();
    let path_of = |name: &str| fake.dev().join(name).display().to_string();
    let err = dev.check_ixgbe().unwrap_err();
    assert!(err.to_string().contains(&path_of("vendor")), "{err}");
    let err = dev.enable_bus_master().unwrap_err();
    assert!(err.to_string().contains(&path_of("config")), "{err}");
    let err = dev.map_resource0().err().unwrap();
    assert!(err.to_string().contains(&path_of("resource0")), "{err}");

    let nowhere: PciAddress = "0000:42:00.0".parse().unwrap();
    let err = PciDevice::open(nowhere, &fake.devices()).unwrap_err();
    assert!(matches!(err, PciError::NoDevice { .. }), "{err:?}");
    assert!(err.to_string().contains("0000:42:00.0"), "{err}");
}

#[test]
fn unbind_writes_the_address_to_the_drivers_unbind_file() {
    let fake = FakeSysfs::new();
    let dev = fake.open();
    assert_eq!(dev.unbind_driver().unwrap().as_deref(), Some("ixgbe"));
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), ADDR);

    fake.set_driver(None);
    assert_eq!(dev.unbind_driver().unwrap(), None, "no driver: nothing to do");
}

#[test]
fn unbind_without_an_unbind_file_is_an_error_with_the_path() {
    let fake = FakeSysfs::new();
    fs::remove_file(fake.pci().join("drivers/ixgbe/unbind")).unwrap();
    let err = fake.open().unbind_driver().unwrap_err();
    assert!(matches!(&err, PciError::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound), "{err:?}");
    assert!(err.to_string().contains(&fake.dev().join("driver/unbind").display().to_string()), "{err}");
    assert!(!fake.pci().join("drivers/ixgbe/unbind").exists(), "sysfs attributes are never created");
}

#[test]
fn bus_mastering_sets_bit_2_of_the_command_register_only() {
    let fake = FakeSysfs::new();
    let before = fs::read(fake.dev().join("config")).unwrap();
    assert_eq!(fake.open().enable_bus_master().unwrap(), 0x0406);
    let after = fs::read(fake.dev().join("config")).unwrap();
    assert_eq!(u16::from_le_bytes([after[4], after[5]]), 0x0406);
    assert_eq!(&after[..4], &before[..4]);
    assert_eq!(&after[6..], &before[6..]);
    // Idempotent.
    assert_eq!(fake.open().enable_bus_master().unwrap(), 0x0406);
}

#[test]
fn resource0_is_mapped_shared() {
    let fake = FakeSysfs::new();
    let mmio = fake.open().map_resource0().unwrap();
    assert_eq!(mmio.len(), BAR0_LEN);
    // A store through the mapping reaches the file (MAP_SHARED) ...
    mmio.write32(0x8, 0xdead_beef);
    assert_eq!(mmio.read32(0x8), 0xdead_beef);
    let file = fs::File::open(fake.dev().join("resource0")).unwrap();
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, 0x8).unwrap();
    assert_eq!(u32::from_le_bytes(word), 0xdead_beef);
    // ... and a write to the file shows through the mapping.
    let file = fs::OpenOptions::new().write(true).open(fake.dev().join("resource0")).unwrap();
    file.write_all_at(&0x1234_5678u32.to_le_bytes(), (BAR0_LEN - 4) as u64).unwrap();
    assert_eq!(mmio.read32((BAR0_LEN - 4) as u32), 0x1234_5678);
    // Clones share the mapping, which outlives the first handle.
    let clone = mmio.clone();
    drop(mmio);
    assert_eq!(clone.read32(0x8), 0xdead_beef);
}

#[test]
fn a_resource0_too_small_for_the_registers_is_refused_with_its_size() {
    let fake = FakeSysfs::new();
    fs::File::create(fake.dev().join("resource0")).unwrap().set_len(0x1000).unwrap();
    let err = fake.open().map_resource0().err().unwrap();
    assert!(matches!(err, PciError::Bar0TooSmall { size: 0x1000, .. }), "{err:?}");
    assert!(err.to_string().contains("0x1000"), "{err}");
    const { assert!(MIN_BAR0_LEN <= BAR0_LEN) };
}

#[test]
fn auto_mode_chooses_vfio_when_there_is_an_iommu_group() {
    let fake = FakeSysfs::new();
    let dev = fake.open();
    assert_eq!(dev.iommu_group().unwrap(), None);
    assert_eq!(dev.choose_access(AccessMode::Auto).unwrap(), Access::Sysfs);
    let err = dev.choose_access(AccessMode::Vfio).unwrap_err();
    assert!(matches!(err, PciError::NoIommuGroup { .. }), "{err:?}");

    fake.set_iommu_group(17);
    assert_eq!(dev.iommu_group().unwrap(), Some(17));
    assert_eq!(dev.choose_access(AccessMode::Auto).unwrap(), Access::Vfio { group: 17 });
    assert_eq!(dev.choose_access(AccessMode::Vfio).unwrap(), Access::Vfio { group: 17 });
    assert_eq!(dev.choose_access(AccessMode::Sysfs).unwrap(), Access::Sysfs, "the caller may override");
}

#[test]
fn open_ixgbe_in_auto_mode_with_an_iommu_group_wants_vfio_pci() {
    let fake = FakeSysfs::new();
    fake.set_iommu_group(17);
    let err = open_ixgbe(addr(), &fake.devices(), AccessMode::Auto).err().unwrap();
    assert!(matches!(&err, PciError::NotBoundToVfio { driver: Some(d), .. } if d == "ixgbe"), "{err:?}");
    assert!(err.to_string().contains("scripts/bind.sh vfio-pci 0000:03:00.0"), "{err}");
    // Nothing was unbound on the way.
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), "");
}

#[test]
fn open_ixgbe_over_sysfs_unbinds_enables_bus_mastering_and_maps_bar0() {
    let fake = FakeSysfs::new();
    let hw = open_ixgbe(addr(), &fake.devices(), AccessMode::Auto).unwrap();
    assert_eq!(hw.access, Access::Sysfs);
    assert_eq!(hw.model.device_id, 0x10fb);
    assert_eq!(hw.unbound_driver.as_deref(), Some("ixgbe"));
    assert!(matches!(hw.dma, IxgbeDma::Hugepage(_)));
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), ADDR);
    let config = fs::read(fake.dev().join("config")).unwrap();
    assert_eq!(u16::from_le_bytes([config[4], config[5]]) & 0x4, 0x4);
    hw.mmio.write32(0x0, 0x0400_0000); // CTRL.RST, into the fake file
    assert_eq!(hw.mmio.read32(0x0), 0x0400_0000);
}

#[test]
fn open_ixgbe_refuses_other_devices_before_touching_them() {
    let fake = FakeSysfs::new();
    fake.write("vendor", "0x14e4\n");
    let err = open_ixgbe(addr(), &fake.devices(), AccessMode::Sysfs).err().unwrap();
    assert!(matches!(err, PciError::NotIntel { .. }), "{err:?}");
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), "");
}

// scripts/bind.sh against the same fake tree.

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}

fn bind_sh(fake: &FakeSysfs, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("bash").arg(script("bind.sh")).args(args).env("SYSFS_ROOT", fake.root()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bind_script_status_lists_ixgbe_nics_with_their_driver() {
    let fake = FakeSysfs::new();
    // A second device that is not ours must not be listed.
    let other = fake.devices().join("0000:00:03.0");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("vendor"), "0x1af4\n").unwrap();
    fs::write(other.join("device"), "0x1041\n").unwrap();
    fs::write(other.join("class"), "0x020000\n").unwrap();
    fake.set_iommu_group(17);

    let (ok, out, err) = bind_sh(&fake, &["--status"]);
    assert!(ok, "{err}");
    assert!(out.contains(ADDR) && out.contains("82599 SFP+") && out.contains("driver=ixgbe"), "{out}");
    assert!(out.contains("iommu_group=17"), "{out}");
    assert!(!out.contains("0000:00:03.0"), "{out}");
}

#[test]
fn bind_script_status_says_when_there_is_nothing() {
    let fake = FakeSysfs::new();
    fake.write("device", "0x1533\n");
    let (ok, out, _) = bind_sh(&fake, &["--status"]);
    assert!(ok);
    assert!(out.contains("no Intel ixgbe-family network controllers"), "{out}");
}

#[test]
fn bind_script_unbinds() {
    let fake = FakeSysfs::new();
    let (ok, out, err) = bind_sh(&fake, &["--unbind", "03:00.0"]);
    assert!(ok, "{err}");
    assert!(out.contains("unbound from ixgbe"), "{out}");
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), ADDR);
}

#[test]
fn bind_script_binds_to_vfio_pci_through_driver_override() {
    let fake = FakeSysfs::new();
    // The fake kernel does not act on the writes, so the device stays with
    // ixgbe and the script reports that the bind did not take: check the
    // writes it made, and that it says so.
    let (ok, _out, err) = bind_sh(&fake, &["vfio-pci", ADDR]);
    assert!(!ok);
    assert!(err.contains("did not bind to vfio-pci"), "{err}");
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), ADDR);
    assert_eq!(fs::read_to_string(fake.dev().join("driver_override")).unwrap(), "vfio-pci");
    assert_eq!(fs::read_to_string(fake.pci().join("drivers_probe")).unwrap(), ADDR);

    // Once the kernel has bound it, binding again is a no-op.
    fake.set_driver(Some("vfio-pci"));
    let (ok, out, err) = bind_sh(&fake, &["vfio-pci", ADDR]);
    assert!(ok, "{err}");
    assert!(out.contains("already bound to vfio-pci"), "{out}");
}

#[test]
fn bind_script_gives_the_device_back_to_ixgbe() {
    let fake = FakeSysfs::new();
    fake.set_driver(Some("vfio-pci"));
    fake.write("driver_override", "vfio-pci\n");
    let (ok, _out, err) = bind_sh(&fake, &["ixgbe", ADDR]);
    assert!(!ok, "the fake kernel does not bind");
    assert!(err.contains("did not bind to ixgbe"), "{err}");
    assert_eq!(fake.read_driver_file("vfio-pci", "unbind"), ADDR);
    assert_eq!(fs::read_to_string(fake.dev().join("driver_override")).unwrap(), "\n", "override cleared");
    assert_eq!(fake.read_driver_file("ixgbe", "bind"), ADDR);
}

#[test]
fn bind_script_refuses_junk_and_foreign_devices() {
    let fake = FakeSysfs::new();
    let (ok, _, err) = bind_sh(&fake, &["vfio-pci", "not-an-address"]);
    assert!(!ok && err.contains("not a PCI address"), "{err}");
    let (ok, _, err) = bind_sh(&fake, &["vfio-pci", "0000:42:00.0"]);
    assert!(!ok && err.contains("no PCI device 0000:42:00.0"), "{err}");
    fake.write("vendor", "0x10ec\n");
    let (ok, _, err) = bind_sh(&fake, &["vfio-pci", ADDR]);
    assert!(!ok && err.contains("not an Intel ixgbe-family"), "{err}");
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), "", "nothing was unbound");
}

#[test]
fn bind_script_will_not_take_an_interface_that_is_up() {
    let fake = FakeSysfs::new();
    let net = fake.dev().join("net/eth7");
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("operstate"), "up\n").unwrap();
    let (ok, _, err) = bind_sh(&fake, &["vfio-pci", ADDR]);
    assert!(!ok && err.contains("eth7"), "{err}");
    assert_eq!(fake.read_driver_file("ixgbe", "unbind"), "");
}

#[test]
fn setup_hugepages_script_reserves_and_is_idempotent() {
    let fake = FakeSysfs::new();
    let pool = fake.root().join("kernel/mm/hugepages/hugepages-2048kB");
    fs::create_dir_all(&pool).unwrap();
    fs::write(pool.join("nr_hugepages"), "0\n").unwrap();
    fs::write(pool.join("free_hugepages"), "0\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(script("setup-hugepages.sh"))
            .args(args)
            .env("SYSFS_ROOT", fake.root())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&["16"]);
    assert!(ok, "{out}");
    assert_eq!(fs::read_to_string(pool.join("nr_hugepages")).unwrap().trim(), "16");
    assert!(out.contains("reserved 16"), "{out}");
    let (ok, out) = run(&["8"]);
    assert!(ok && out.contains("nothing to do"), "{out}");
    assert_eq!(fs::read_to_string(pool.join("nr_hugepages")).unwrap().trim(), "16", "never lowered");
    let (ok, out) = run(&["lots"]);
    assert!(!ok && out.contains("not a number"), "{out}");
}
