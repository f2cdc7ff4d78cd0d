//! A fixed workload for `valgrind --tool=callgrind`: 64-byte frames sent
//! with `tx_batch` on one linked 82599 model and received with `rx_batch`
//! on the other, in batches of 32. Instruction counts are repeatable where
//! time is not; `scripts/callgrind.sh` runs this and prints instructions per
//! packet for `rx_batch`, `tx_batch` and the model.
//!
//! Run: `scripts/callgrind.sh` (or `cargo bench -p ixtcp-driver --bench callgrind` for a plain run).

use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceConfig};
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::wire::QueueWire;

const PACKETS: usize = 200_000;
const BATCH: usize = 32;

fn main() {
    let mac_a = [0x02, 0, 0, 0, 0, 0xa];
    let mac_b = [0x02, 0, 0, 0, 0, 0xb];
    let config = DeviceConfig { link_timeout: Duration::from_secs(1), ..DeviceConfig::default() };
    let (ma, mb) = (
        Model82599::new(ModelConfig { mac: mac_a, ..ModelConfig::default() }),
        Model82599::new(ModelConfig { mac: mac_b, ..ModelConfig::default() }),
    );
    let (wa, wb) = QueueWire::pair();
    ma.attach(Box::new(wa));
    mb.attach(Box::new(wb));
    let (Ok(a), Ok(b)) =
        (Device::init(ma.regs(), &ma.dma(), config.clone()), Device::init(mb.regs(), &mb.dma(), config))
    else {
        eprintln!("device init on the model failed");
        std::process::exit(1);
    };
    let (_ha, mut qa) = a.into_queues();
    let (_hb, mut qb) = b.into_queues();
    let (tx, rx) = (&mut qa[0], &mut qb[0]);
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&mac_b);
    frame[6..12].copy_from_slice(&mac_a);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    let (mut bufs, mut out) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    let (mut sent, mut received) = (0, 0);
    while received < PACKETS {
        while bufs.len() < BATCH {
            let Some(mut buf) = tx.pool.alloc() else { break };
            buf.copy_from(&frame);
            bufs.push(buf);
        }
        sent += tx.tx.tx_batch(&mut bufs);
        mb.pump();
        received += rx.rx.rx_batch(&mut out, BATCH);
        out.clear();
    }
    println!("sent {sent} received {received} in batches of {BATCH}");
}
