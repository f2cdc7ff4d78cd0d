//! Arbitrary register access sequences into the 82599 model, with DMA
//! memory the "driver" allocates and fills, and frames from the wire.
//!
//! The model must report whatever the datasheet forbids as a fault and
//! never panic, whatever the sequence: misaligned or unknown offsets,
//! rings pointing anywhere, tails past the ring, descriptors full of
//! garbage, resets in the middle of traffic.
//!
//! Input: a sequence of operations, each an opcode byte and its operands
//! (see [`run`]).

use ixtcp_driver::dma::{DmaAllocator, DmaRegion};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::regs;
use ixtcp_driver::wire::{QueueWire, Wire};

use crate::Input;

/// Registers a driver programs, so that inputs hit them often.
fn known_register(i: &mut Input) -> u32 {
    let q = u32::from(i.u8() % 4);
    match i.u8() % 32 {
        0 => regs::CTRL,
        1 => regs::CTRL_EXT,
        2 => regs::EEC,
        3 => regs::RDRXCTL,
        4 => regs::RXCTRL,
        5 => regs::HLREG0,
        6 => regs::AUTOC,
        7 => regs::LINKS,
        8 => regs::DMATXCTL,
        9 => regs::RXCSUM,
        10 => regs::FCTRL,
        11 => regs::MRQC,
        12 => regs::MTQC,
        13 => regs::RDBAL(q),
        14 => regs::RDBAH(q),
        15 => regs::RDLEN(q),
        16 => regs::RDH(q),
        17 => regs::RDT(q),
        18 => regs::SRRCTL(q),
        19 => regs::RXDCTL(q),
        20 => regs::TDBAL(q),
        21 => regs::TDBAH(q),
        22 => regs::TDLEN(q),
        23 => regs::TDH(q),
        24 => regs::TDT(q),
        25 => regs::TXDCTL(q),
        26 => regs::RETA(q),
        27 => regs::RSSRK(q),
        28 => regs::RAL(q),
        29 => regs::RAH(q),
        30 => regs::GPRC,
        _ => regs::QPRC(q),
    }
}

/// Runs one input. Operations (opcode byte modulo 10):
///
/// - 0, 1: write a known register (0: a value from the input; 1: the low
///   or high half of a DMA region's address plus an offset);
/// - 2: write any offset (unaligned and out of BAR0 included);
/// - 3: read a known register; 4: read any offset;
/// - 5: allocate a DMA region (up to 64 KiB);
/// - 6: store a 64-bit word into a region (descriptor contents);
/// - 7: a frame from the wire (up to 2 KiB, often to the model's MAC);
/// - 8: pump the model; 9: take everything the model sent.
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let model = Model82599::new(ModelConfig::default());
    let (port, mut peer) = QueueWire::pair();
    model.attach(Box::new(port));
    let regs = model.regs();
    let dma = model.dma();
    let mut regions: Vec<DmaRegion> = Vec::new();
    let mut buf = Vec::new();
    let mut ops = 0;
    while !i.is_empty() && ops < 4096 {
        ops += 1;
        match i.u8() % 10 {
            0 => {
                let off = known_register(&mut i);
                regs.write32(off, i.u32());
            }
            1 => {
                let off = known_register(&mut i);
                let value = match regions.get(usize::from(i.u8()) % regions.len().max(1)) {
                    Some(r) => {
                        let addr = r.iova() + u64::from(i.u16());
                        if i.u8().is_multiple_of(2) { addr as u32 } else { (addr >> 32) as u32 }
                    }
                    None => i.u32(),
                };
                regs.write32(off, value);
            }
            2 => {
                let off = i.u32() % 0x2_0000 + u32::from(i.u8() % 2) * 0x10_0000;
                regs.write32(off, i.u32());
            }
            3 => {
                let off = known_register(&mut i);
                let _ = regs.read32(off);
            }
            4 => {
                let _ = regs.read32(i.u32());
            }
            5 => {
                if regions.len() < 16 {
                    let size = (usize::from(i.u16()) + 1).min(64 * 1024);
                    if let Ok(r) = dma.alloc(size) {
                        regions.push(r);
                    }
                }
            }
            6 => {
                let pick = usize::from(i.u8());
                let (off, value) = (usize::from(i.u16()) & !7, u64::from(i.u32()) << 32 | u64::from(i.u32()));
                if !regions.is_empty() {
                    let r = &regions[pick % regions.len()];
                    if r.contains(off, 8) && off + 8 <= r.len() {
                        r.store_u64(off, value);
                    }
                }
            }
            7 => {
                let len = usize::from(i.u16() % 2048);
                let mut frame = i.bytes(len).to_vec();
                if !i.u8().is_multiple_of(4) && frame.len() >= 6 {
                    frame[..6].copy_from_slice(&model.mac());
                }
                let _ = peer.transmit(&frame);
            }
            8 => {
                let _ = model.pump();
            }
            _ => while peer.receive(&mut buf) {},
        }
    }
    let _ = model.pump();
    while peer.receive(&mut buf) {}
    // Faults are the model doing its job; reading them must work too.
    let _ = model.take_faults();
    // Regions go before the model or after it, in any order: both fine.
    drop(model);
    drop(regions);
}
