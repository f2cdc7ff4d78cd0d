//! Shared command-line handling for the ixtcp examples: the flags every
//! program takes (`--nic`, `--queues`, ring sizes, `--seconds`), opening the
//! NIC they name, and the thread that runs the software model.
//!
//! A program that works on a device implements [`DeviceUser`]; [`open`]
//! brings up whatever `--nic` names — the model, the model plugged into a
//! TAP device or an AF_PACKET socket, or a real 82599 through sysfs or VFIO —
//! and hands the initialised [`Device`] to it. The same program code runs on
//! the model and on hardware.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod echo;
pub mod frame;
pub mod http;
pub mod kernel;
pub mod latency;
pub mod nic;
pub mod program;
pub mod reactor;
pub mod report;
pub mod session;
pub mod sockets;
pub mod stats;
pub mod udp_echo;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceConfig};
use ixtcp_driver::error::DriverError;
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::pci::{self, AccessMode, PciAddress};
use ixtcp_driver::wire::{PacketWire, TapWire, Wire, WireError};

pub use nic::NicSpec;

/// Flags shared by every example that drives a NIC.
#[derive(Debug, Clone, clap::Args)]
pub struct NicArgs {
    /// model | tap:NAME | packet:IFACE | pci:ADDR | vfio:ADDR
    #[arg(long, default_value = "model")]
    pub nic: NicSpec,
    /// Queue pairs (one per core), 1..=16.
    #[arg(long, default_value_t = 1)]
    pub queues: u16,
    /// Descriptors per RX ring (power of two, 64..=4096).
    #[arg(long, default_value_t = 512)]
    pub rx_ring: u16,
    /// Descriptors per TX ring (power of two, 64..=4096).
    #[arg(long, default_value_t = 512)]
    pub tx_ring: u16,
    /// Where PCI devices are found (for tests against a fake tree).
    #[arg(long, default_value = pci::SYSFS_PCI_DEVICES, hide = true)]
    pub sysfs_root: PathBuf,
}

impl NicArgs {
    /// The device configuration these flags describe.
    pub fn device_config(&self) -> DeviceConfig {
        DeviceConfig {
            num_queues: self.queues,
            rx_ring_size: self.rx_ring,
            tx_ring_size: self.tx_ring,
            mempool_entries: (u32::from(self.rx_ring) + u32::from(self.tx_ring)).max(4096),
            ..DeviceConfig::default()
        }
    }
}

/// Why an example could not start.
#[derive(Debug)]
pub enum ExampleError {
    /// The device could not be initialised.
    Driver(DriverError),
    /// The PCI device could not be opened.
    Pci(pci::PciError),
    /// The TAP device or interface could not be opened.
    Wire(WireError),
    /// Anything else, already worded for the user.
    Other(String),
}

impl fmt::Display for ExampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExampleError::Driver(e) => write!(f, "device init failed: {e}"),
            ExampleError::Pci(e) => write!(f, "{e}"),
            ExampleError::Wire(e) => write!(f, "{e}"),
            ExampleError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ExampleError {}

impl From<DriverError> for ExampleError {
    fn from(e: DriverError) -> Self {
        ExampleError::Driver(e)
    }
}
impl From<pci::PciError> for ExampleError {
    fn from(e: pci::PciError) -> Self {
        ExampleError::Pci(e)
    }
}
impl From<WireError> for ExampleError {
    fn from(e: WireError) -> Self {
        ExampleError::Wire(e)
    }
}

/// A program that runs on an initialised device, whatever its register
/// access (model or MMIO).
pub trait DeviceUser {
    /// What the program returns.
    type Output;
    /// Runs on `device`. `model` is the model behind it, if any (its pump
    /// thread is already running).
    fn run<R: RegisterIo>(self, device: Device<R>, model: Option<&Model82599>) -> Result<Self::Output, ExampleError>;
}

/// Calls `Model82599::pump` on a thread of its own until dropped: the model's
/// "hardware" side, which moves frames from the wire into the RX rings and
/// retries transmissions the wire refused.
pub struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pump {
    /// Starts pumping `model`.
    pub fn start(model: &Model82599) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (model.clone(), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("model-pump".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if m.pump() == 0 {
                        // Nothing arrived: do not hog a core the driver threads need.
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            })
            .ok();
        Pump { stop, thread }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens what `args.nic` names and runs `user` on it. For `--nic model`, the
/// port is plugged into what `model_peer` returns.
pub fn open<U: DeviceUser>(
    args: &NicArgs,
    config: DeviceConfig,
    model_peer: impl FnOnce() -> Box<dyn Wire>,
    user: U,
) -> Result<U::Output, ExampleError> {
    open_sharing_dma(args, config, model_peer, None, user)
}

/// Like [`open`]; a model made here shares its DMA domain with `share_dma`
/// (see `Model82599::new_sharing_dma`), so buffers move between the ports.
pub fn open_sharing_dma<U: DeviceUser>(
    args: &NicArgs,
    config: DeviceConfig,
    model_peer: impl FnOnce() -> Box<dyn Wire>,
    share_dma: Option<&Model82599>,
    user: U,
) -> Result<U::Output, ExampleError> {
    let wire: Box<dyn Wire> = match &args.nic {
        NicSpec::Model => model_peer(),
        NicSpec::Tap(name) => {
            let tap = TapWire::open(name)?;
            tap.set_up()?;
            Box::new(tap)
        }
        NicSpec::Packet(iface) => Box::new(PacketWire::open(iface)?),
        NicSpec::Pci(addr) | NicSpec::Vfio(addr) => {
            let mode = if matches!(args.nic, NicSpec::Pci(_)) { AccessMode::Sysfs } else { AccessMode::Vfio };
            let address: PciAddress = addr.parse()?;
            let hw = pci::open_ixgbe(address, &args.sysfs_root, mode)?;
            eprintln!("{}: {} ({:?})", hw.address, hw.model.name, hw.access);
            let device = Device::init(hw.mmio.clone(), &hw.dma, config)?;
            return user.run(device, None);
        }
    };
    let model = match share_dma {
        Some(other) => Model82599::new_sharing_dma(ModelConfig::default(), other),
        None => Model82599::new(ModelConfig::default()),
    };
    model.attach(wire);
    let device = Device::init(model.regs(), &model.dma(), config)?;
    let _pump = Pump::start(&model);
    user.run(device, Some(&model))
}

/// Set when Ctrl-C was pressed or the process got SIGTERM or SIGHUP
/// (ctrlc's `termination` feature); programs poll it to stop cleanly, so the
/// device is dropped, which stops its DMA before the hugepages are freed.
pub fn interrupted() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::Relaxed)) {
            eprintln!("warning: cannot catch Ctrl-C or SIGTERM ({e}); the program stops only when its time is up");
        }
        flag
    }))
}

/// Prints `error` as the program's last words and exits with status 1.
pub fn exit_with(error: &dyn std::error::Error) -> ! {
    eprintln!("error: {error}");
    std::process::exit(1)
}
