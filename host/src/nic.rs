//! Bringing up a NIC for the stack: [`Nic`] names one (the 82599 model,
//! the model plugged into a TAP device or an AF_PACKET socket, or a real
//! 82599 through sysfs or VFIO), and [`NicDevice::open`] resets and
//! initialises it with the driver and hands out one queue pair per core.
//!
//! The queue pairs are type-erased ([`NicQueue`]) so that one runtime type
//! serves the model and the hardware; the cost is one indirect call per
//! batch and per buffer allocation, nothing per byte.
//!
//! A model has no hardware of its own that moves frames from the wire into
//! its receive rings: [`Model82599::pump`] does it. Here each core's queue
//! pumps the model before it reads its ring, so no extra thread is needed
//! and a frame is picked up by the first core that polls after it arrived
//! (the model writes it into the ring RSS chose, whichever core pumped).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceHandle, QueuePair};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::mempool::{Mempool, PacketBuf};
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::pci::{self, AccessMode, IxgbeHardware, PciAddress};
use ixtcp_driver::rss::Toeplitz;
use ixtcp_driver::wire::{PacketWire, TapWire, Wire};
use ixtcp_stack::{MacAddr, PacketIo, RssView, StackConfig};

/// Which NIC to drive, as `--nic` spells it: `model`, `tap:NAME`,
/// `packet:IFACE`, `pci:ADDR`, `vfio:ADDR`.
///
/// ```
/// use ixtcp_host::Nic;
/// let nic: Nic = "pci:0000:03:00.0".parse()?;
/// assert_eq!(nic, Nic::Pci("0000:03:00.0".into()));
/// assert_eq!(nic.to_string(), "pci:0000:03:00.0");
/// assert!("usb:1".parse::<Nic>().is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Nic {
    /// The software 82599; its port is plugged into whatever wire the
    /// caller gives ([`NicDevice::open`]), or nothing.
    Model,
    /// The model, plugged into TAP device NAME (the Linux kernel as peer).
    Tap(String),
    /// The model, plugged into an existing interface through AF_PACKET.
    Packet(String),
    /// A real 82599 through sysfs (`resource0`) and hugepages.
    Pci(String),
    /// A real 82599 through VFIO and the IOMMU.
    Vfio(String),
}

impl FromStr for Nic {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Nic> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bad NIC {s:?}: expected model, tap:NAME, packet:IFACE, pci:ADDR or vfio:ADDR \
                     (e.g. pci:0000:03:00.0)"
                ),
            )
        };
        if s == "model" {
            return Ok(Nic::Model);
        }
        let (kind, arg) = s.split_once(':').ok_or_else(bad)?;
        // Interface names are at most 15 bytes (IFNAMSIZ - 1).
        match kind {
            "tap" if !arg.is_empty() && arg.len() < 16 => Ok(Nic::Tap(arg.into())),
            "packet" if !arg.is_empty() && arg.len() < 16 => Ok(Nic::Packet(arg.into())),
            "pci" if !arg.is_empty() => Ok(Nic::Pci(arg.into())),
            "vfio" if !arg.is_empty() => Ok(Nic::Vfio(arg.into())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Nic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nic::Model => write!(f, "model"),
            Nic::Tap(n) => write!(f, "tap:{n}"),
            Nic::Packet(n) => write!(f, "packet:{n}"),
            Nic::Pci(a) => write!(f, "pci:{a}"),
            Nic::Vfio(a) => write!(f, "vfio:{a}"),
        }
    }
}

/// One core's queue pair, whatever the NIC.
pub type NicQueue = Box<dyn PacketIo + Send>;

/// A model's queue pair that pumps the model before reading its ring.
struct PumpedQueue {
    queue: QueuePair<ModelRegs>,
    model: Model82599,
}

impl PacketIo for PumpedQueue {
    fn rx_batch(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.model.pump();
        self.queue.rx_batch(out, max)
    }
    fn tx_batch(&mut self, batch: &mut Vec<PacketBuf>) -> usize {
        self.queue.tx_batch(batch)
    }
    fn alloc(&mut self) -> Option<PacketBuf> {
        PacketIo::alloc(&mut self.queue)
    }
    fn pool(&self) -> &Arc<Mempool> {
        PacketIo::pool(&self.queue)
    }
    fn checksum_offload(&self) -> bool {
        PacketIo::checksum_offload(&self.queue)
    }
}

/// The device's control plane, whatever its register access.
trait Control: Send {
    fn shutdown(&self);
}

impl<R: RegisterIo + Send> Control for DeviceHandle<R> {
    fn shutdown(&self) {
        DeviceHandle::shutdown(self);
    }
}

/// An initialised NIC: its queue pairs (until taken), its MAC and RSS
/// setup, and what must outlive the queues (the control handle, the model
/// or the mapped hardware). Dropping it stops the device.
pub struct NicDevice {
    queues: Vec<NicQueue>,
    pools: Vec<Arc<Mempool>>,
    mac: MacAddr,
    rss: RssView,
    // Field order is drop order: stop the device, then let go of the model
    // or the hardware mapping.
    control: Box<dyn Control>,
    model: Option<Model82599>,
    _hardware: Option<IxgbeHardware>,
}

impl fmt::Debug for NicDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NicDevice").field("mac", &self.mac).field("queues", &self.queues.len()).finish()
    }
}

/// Where real devices are found, for [`NicDevice::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// sysfs PCI device directory (a fake tree in tests).
    pub sysfs_root: PathBuf,
    /// How long device init waits for the link.
    pub link_timeout: Duration,
    /// The model's EEPROM MAC (models only).
    pub model_mac: [u8; 6],
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            sysfs_root: PathBuf::from(pci::SYSFS_PCI_DEVICES),
            link_timeout: Duration::from_secs(10),
            model_mac: ModelConfig::default().mac,
        }
    }
}

fn other(what: impl fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

impl NicDevice {
    /// Opens `nic` with one queue pair per core of `cfg` (rings and mempool
    /// sizes from it too). For [`Nic::Model`], the port is plugged into
    /// `model_wire` (none: unplugged).
    pub fn open(nic: &Nic, cfg: &StackConfig, model_wire: Option<Box<dyn Wire>>) -> io::Result<NicDevice> {
        NicDevice::open_with(nic, cfg, model_wire, &OpenOptions::default())
    }

    /// [`open`](Self::open) with explicit [`OpenOptions`].
    pub fn open_with(
        nic: &Nic,
        cfg: &StackConfig,
        model_wire: Option<Box<dyn Wire>>,
        opts: &OpenOptions,
    ) -> io::Result<NicDevice> {
        let mut dc = cfg.device_config();
        dc.link_timeout = opts.link_timeout;
        let wire: Option<Box<dyn Wire>> = match nic {
            Nic::Model => model_wire,
            Nic::Tap(name) => {
                let tap = TapWire::open(name).map_err(other)?;
                // The kernel's side takes and sends frames of the stack's
                // MTU (jumbo frames too).
                tap.set_mtu(cfg.mtu as u32).map_err(other)?;
                tap.set_up().map_err(other)?;
                Some(Box::new(tap))
            }
            Nic::Packet(iface) => Some(Box::new(PacketWire::open(iface).map_err(other)?)),
            Nic::Pci(addr) | Nic::Vfio(addr) => {
                let mode = if matches!(nic, Nic::Pci(_)) { AccessMode::Sysfs } else { AccessMode::Vfio };
                let address: PciAddress = addr.parse().map_err(other)?;
                let hw = pci::open_ixgbe(address, &opts.sysfs_root, mode).map_err(other)?;
                let device = Device::init(hw.mmio.clone(), &hw.dma, dc).map_err(other)?;
                let (rss, mac) = rss_and_mac(&device);
                let (handle, queues) = device.into_queues();
                let queues: Vec<NicQueue> = queues.into_iter().map(|q| Box::new(q) as NicQueue).collect();
                let pools = pools_of(&queues);
                return Ok(NicDevice {
                    queues,
                    pools,
                    mac,
                    rss,
                    control: Box::new(handle),
                    model: None,
                    _hardware: Some(hw),
                });
            }
        };
        let model = Model82599::new(ModelConfig { mac: opts.model_mac, ..ModelConfig::default() });
        if let Some(w) = wire {
            model.attach(w);
        }
        let device = Device::init(model.regs(), &model.dma(), dc)
            .map_err(|e| other(format!("{e} (model faults: {:?})", model.faults())))?;
        let (rss, mac) = rss_and_mac(&device);
        let (handle, queues) = device.into_queues();
        let queues: Vec<NicQueue> =
            queues.into_iter().map(|queue| Box::new(PumpedQueue { queue, model: model.clone() }) as NicQueue).collect();
        let pools = pools_of(&queues);
        Ok(NicDevice { queues, pools, mac, rss, control: Box::new(handle), model: Some(model), _hardware: None })
    }

    /// The station MAC.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The RSS setup the device was programmed with.
    pub fn rss(&self) -> &RssView {
        &self.rss
    }

    /// The model behind the device, if it is one (for its faults).
    pub fn model(&self) -> Option<&Model82599> {
        self.model.as_ref()
    }

    /// The packet buffer pool of each queue pair, in queue order (they stay
    /// readable after the queues were taken: a pool whose free count is its
    /// capacity has every buffer back).
    pub fn pools(&self) -> &[Arc<Mempool>] {
        &self.pools
    }

    /// Takes the queue pairs (pair `i` for core `i`); afterwards none are left.
    pub fn take_queues(&mut self) -> Vec<NicQueue> {
        std::mem::take(&mut self.queues)
    }

    /// Stops the device: receive off, every queue disabled (idempotent;
    /// dropping does it too).
    pub fn shutdown(&self) {
        self.control.shutdown();
    }
}

fn pools_of(queues: &[NicQueue]) -> Vec<Arc<Mempool>> {
    queues.iter().map(|q| Arc::clone(q.pool())).collect()
}

fn rss_and_mac<R: RegisterIo>(device: &Device<R>) -> (RssView, MacAddr) {
    let rss = RssView {
        toeplitz: Arc::new(Toeplitz::new(&device.config().rss_key)),
        reta: device.config().effective_reta(),
        queue: 0,
    };
    (rss, MacAddr(device.mac()))
}
