//! fwd: forwards every frame received on one port out of the other, in both
//! directions, one thread per queue pair, and prints the rates each second.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin fwd -- --nic model --seconds 5
//! sudo target/release/fwd --nic pci:0000:03:00.0 --nic2 pci:0000:03:00.1 --seconds 10
//! ```
//!
//! On `--nic model` both ports are models, each plugged into a generator
//! that offers 60-byte frames (at 1 Gbit/s of line rate by default, see
//! `--offered-gbit`) and counts what the forwarder sends back out.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ixtcp_driver::device::{Device, DeviceConfig, DeviceHandle};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::Model82599;
use ixtcp_driver::queue::QueuePair;
use ixtcp_driver::time::MonotonicClock;
use ixtcp_driver::wire::{GeneratorWire, Wire};
use ixtcp_examples::frame::{self, DST_MAC, SRC_MAC};
use ixtcp_examples::stats::{Counts, Rate};
use ixtcp_examples::{DeviceUser, ExampleError, NicArgs, NicSpec};

#[derive(Debug, Parser)]
#[command(about = "Forward frames between two ports")]
struct Args {
    #[command(flatten)]
    nic: NicArgs,
    /// The second port: same forms as --nic (defaults to another model).
    #[arg(long, default_value = "model")]
    nic2: NicSpec,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// With --nic model: the rate each port's generator offers, in Gbit/s
    /// of line rate (10 = 14.88 Mpps of 60-byte frames). The model runs on
    /// the same CPUs as the forwarder, so offering more than the machine can
    /// model only measures the model.
    #[arg(long, default_value_t = 1.0)]
    offered_gbit: f64,
    /// Frames per rx_batch call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    batch: u16,
}

/// A generator offering 60-byte frames at `gbit` Gbit/s of line rate.
fn generator(gbit: f64) -> impl FnOnce() -> Box<dyn Wire> {
    move || {
        let clock = Arc::new(MonotonicClock::new());
        let (wire, _counters) = GeneratorWire::repeat(frame::udp_frame(60, SRC_MAC, DST_MAC));
        Box::new(wire.paced((gbit * 1e9) as u64, clock))
    }
}

/// Forwards from `from` to `to`; returns frames forwarded. Frames the TX
/// ring cannot take are dropped, as a router does.
fn forward<A: RegisterIo, B: RegisterIo>(
    from: &mut QueuePair<A>,
    to: &mut QueuePair<B>,
    bufs: &mut Vec<ixtcp_driver::mempool::PacketBuf>,
    batch: usize,
) -> u64 {
    from.rx.rx_batch(bufs, batch);
    let sent = to.tx.tx_batch(bufs);
    bufs.clear();
    sent as u64
}

struct First {
    args: Args,
}

struct Second<A: RegisterIo> {
    args: Args,
    first: Device<A>,
}

impl DeviceUser for First {
    type Output = ();
    fn run<R: RegisterIo>(self, device: Device<R>, model: Option<&Model82599>) -> Result<(), ExampleError> {
        let mut nic2 = self.args.nic.clone();
        nic2.nic = self.args.nic2.clone();
        // A forwarder takes every frame, whatever its destination.
        let config = DeviceConfig { promiscuous: true, ..nic2.device_config() };
        let offered = generator(self.args.offered_gbit);
        ixtcp_examples::open_sharing_dma(&nic2, config, offered, model, Second { args: self.args, first: device })
    }
}

fn counts_rx<R: RegisterIo>(h: &DeviceHandle<R>) -> (Counts, Counts) {
    let s = h.stats();
    (Counts { packets: s.rx_packets, bytes: s.rx_bytes }, Counts { packets: s.tx_packets, bytes: s.tx_bytes })
}

impl<A: RegisterIo> DeviceUser for Second<A> {
    type Output = ();
    fn run<B: RegisterIo>(self, device: Device<B>, _model: Option<&Model82599>) -> Result<(), ExampleError> {
        let (h1, q1) = self.first.into_queues();
        let (h2, q2) = device.into_queues();
        if q1.len() != q2.len() {
            return Err(ExampleError::Other("both ports need the same number of queues".into()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let batch = usize::from(self.args.batch);
        let threads: Vec<_> = q1
            .into_iter()
            .zip(q2)
            .map(|(mut a, mut b)| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut bufs = Vec::with_capacity(batch);
                    let mut forwarded = 0;
                    while !stop.load(Ordering::Relaxed) {
                        forwarded += forward(&mut a, &mut b, &mut bufs, batch);
                        forwarded += forward(&mut b, &mut a, &mut bufs, batch);
                    }
                    forwarded
                })
            })
            .collect();
        let interrupted = ixtcp_examples::interrupted();
        let start = Instant::now();
        let limit = (self.args.seconds > 0).then(|| Duration::from_secs(self.args.seconds));
        let (mut t0, mut c1, mut c2) = (Instant::now(), counts_rx(&h1), counts_rx(&h2));
        while limit.is_none_or(|l| start.elapsed() < l) && !interrupted.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if t0.elapsed() >= Duration::from_secs(1) {
                let (t, n1, n2) = (Instant::now(), counts_rx(&h1), counts_rx(&h2));
                let dt = t - t0;
                println!(
                    "[{:5.1}s] port 1 RX {}  TX {} | port 2 RX {}  TX {}",
                    start.elapsed().as_secs_f64(),
                    Rate::between(c1.0, n1.0, dt),
                    Rate::between(c1.1, n1.1, dt),
                    Rate::between(c2.0, n2.0, dt),
                    Rate::between(c2.1, n2.1, dt),
                );
                (t0, c1, c2) = (t, n1, n2);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for t in threads {
            total += t.join().map_err(|_| ExampleError::Other("forwarding thread panicked".into()))?;
        }
        let secs = start.elapsed().as_secs_f64();
        let (s1, s2) = (h1.stats(), h2.stats());
        let dropped =
            |s: &ixtcp_driver::device::DeviceStats| s.rx_missed + s.queues.iter().map(|q| q.rx_dropped).sum::<u64>();
        println!(
            "forwarded {total} frames in {secs:.1} s ({:.3} Mpps); dropped for want of a descriptor: port 1 {} port 2 {}",
            total as f64 / secs / 1e6,
            dropped(&s1),
            dropped(&s2)
        );
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let nic = args.nic.clone();
    let config = DeviceConfig { promiscuous: true, ..nic.device_config() };
    let offered = args.offered_gbit.clamp(0.001, 10.0);
    if let Err(e) = ixtcp_examples::open(&nic, config, generator(offered), First { args }) {
        ixtcp_examples::exit_with(&e);
    }
}
