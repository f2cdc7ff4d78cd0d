//! # ixtcp-driver
//!
//! A poll-mode driver for the Intel 82599 10 GbE controller on SFP+ boards
//! (82599ES/EN, X520; see [`board`] for the ids) and a strict software model of the same controller, so
//! that the very same driver code runs on machines without the NIC.
//!
//! ## Layers
//!
//! - [`regs`], [`desc`]: the register map and descriptor layouts, with the
//!   datasheet's names.
//! - [`io`]: [`RegisterIo`](io::RegisterIo), the one choke point for register
//!   access; [`Mmio`](io::Mmio) on hardware, `model::ModelRegs` on the model.
//! - [`dma`], [`mempool`]: DMA memory and packet buffers carved from it;
//!   [`offload`]: the checksum offload a buffer asks for or was given.
//!   [`hugepage`] and [`vfio`] provide the memory on hardware; the model
//!   provides its own, registering each region like an IOMMU.
//! - [`pci`], [`vfio`]: finding, checking, binding and mapping the device;
//!   [`board`]: which device ids (and media) are brought up.
//! - [`device`]: the init sequence (datasheet 4.6.3 onwards), RSS and the split
//!   into per-queue values; [`queue`]: `rx_batch`/`tx_batch`; [`stats`]:
//!   counters accumulated from the clear-on-read registers.
//! - [`rss`]: the Toeplitz hash and redirection table, shared by the driver,
//!   the model and the stack.
//! - [`model`]: the software 82599; [`wire`]: what its port is plugged into
//!   (another model, a TAP device, an AF_PACKET socket).
//! - [`time`]: clocks, monotonic or virtual.
//!
//! ## Who owns what
//!
//! After [`device::Device::init`], `into_queues` hands out one queue pair per
//! core. A queue pair (RX queue, TX queue, mempool) is `Send` and is owned by
//! exactly one thread; nothing on the data path takes a lock. The device
//! handle that remains reads statistics and link state and may be shared.
//!
//! ## Unsafe code
//!
//! Denied at the root; allowed only in the files that touch MMIO, DMA
//! memory, PCI and VFIO (`io`, `dma`, `mempool`, `hugepage`, `vfio`,
//! and the model's DMA accessor), each block with a `// SAFETY:` line.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod desc;
pub mod device;
pub mod dma;
pub mod error;
pub mod hugepage;
pub mod io;
pub mod mempool;
pub mod model;
pub mod offload;
pub mod pci;
pub mod queue;
pub mod regs;
pub mod rss;
pub mod stats;
pub mod time;
pub mod vfio;
pub mod wire;
