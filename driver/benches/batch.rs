//! `tx_batch` → wire → `rx_batch` round trips between two linked 82599
//! models, per batch size. The figure includes the model's work (it runs
//! in-process, under a lock), so it bounds the driver's cost from above;
//! compare batch sizes with each other, not with hardware numbers.
//!
//! Run: `cargo bench -p ixtcp-driver --bench batch`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ixtcp_driver::device::{Device, DeviceConfig};
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::wire::QueueWire;

fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f
}

fn round_trip(c: &mut Criterion) {
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
    let Ok(a) = Device::init(ma.regs(), &ma.dma(), config.clone()) else { return };
    let Ok(b) = Device::init(mb.regs(), &mb.dma(), config) else { return };
    let (_ha, mut qa) = a.into_queues();
    let (_hb, mut qb) = b.into_queues();
    let (tx, rx) = (&mut qa[0], &mut qb[0]);
    let bytes = frame(mac_b, mac_a);
    let mut group = c.benchmark_group("tx_rx_round_trip");
    for batch in [1usize, 8, 32, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |bench, &batch| {
            let mut bufs = Vec::with_capacity(batch);
            let mut out = Vec::with_capacity(batch);
            bench.iter(|| {
                for _ in 0..batch {
                    if let Some(mut buf) = tx.pool.alloc() {
                        buf.copy_from(&bytes);
                        bufs.push(buf);
                    }
                }
                tx.tx.tx_batch(&mut bufs);
                bufs.clear();
                mb.pump();
                rx.rx.rx_batch(&mut out, batch);
                black_box(out.len());
                out.clear();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
