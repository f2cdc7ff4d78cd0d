//! pktgen: sends 60-byte UDP frames as fast as it can on every queue and
//! prints TX/RX rates every second from the device's statistics registers.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin pktgen -- --nic model --seconds 5
//! sudo target/release/pktgen --nic pci:0000:03:00.0 --queues 4 --seconds 10
//! ```
//!
//! On `--nic model` the port is plugged into a sink that swallows every
//! frame, so the figure is the cost of the driver plus the model per packet.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ixtcp_driver::device::Device;
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::model::Model82599;
use ixtcp_driver::queue::QueuePair;
use ixtcp_driver::wire::SinkWire;
use ixtcp_examples::frame::{self, DST_MAC};
use ixtcp_examples::stats::{Counts, Rate};
use ixtcp_examples::{DeviceUser, ExampleError, NicArgs};

#[derive(Debug, Parser)]
#[command(about = "Send minimum-size frames as fast as possible and report the rate")]
struct Args {
    #[command(flatten)]
    nic: NicArgs,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Frame size without FCS, 60..=1514.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(60..=1514))]
    size: u16,
    /// Packets per tx_batch call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    batch: u16,
    /// Afterwards, send the same frames for as long from one thread through
    /// the Linux kernel (an AF_PACKET socket on a veth interface in a
    /// network namespace made for it, one sendto per frame) and print the
    /// ratio. Needs root.
    #[arg(long)]
    compare_kernel: bool,
}

/// Frames per second the kernel sends through an AF_PACKET socket onto one
/// end of a veth pair in a namespace of its own, from one thread, for
/// `seconds`. The other end drops them at once (they are addressed to
/// another MAC): the kernel's counterpart of the sink.
fn kernel_baseline(seconds: u64, size: usize) -> Result<f64, ExampleError> {
    use ixtcp_driver::wire::{Netns, PacketWire, Wire, netns::kernel_peer_unavailable};
    if let Some(why) = kernel_peer_unavailable(false) {
        return Err(ExampleError::Other(format!("cannot measure the kernel: {why}")));
    }
    let ns = Netns::new("ixtcp-pktgen")?;
    ns.ip(&["link", "add", "ixpg0", "type", "veth", "peer", "name", "ixpg1"])?;
    ns.ip(&["link", "set", "dev", "ixpg0", "up"])?;
    ns.ip(&["link", "set", "dev", "ixpg1", "up"])?;
    let template = frame::udp_frame(size, frame::SRC_MAC, DST_MAC);
    let sent = ns.run(move || -> Result<u64, ExampleError> {
        let mut wire = PacketWire::open("ixpg0")?;
        let mut frame = template;
        let (start, limit) = (Instant::now(), Duration::from_secs(seconds.max(1)));
        let mut sent = 0u64;
        while start.elapsed() < limit {
            for _ in 0..256 {
                frame::set_sequence(&mut frame, sent as u32);
                if wire.transmit(&frame).is_ok() {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    })??;
    Ok(sent as f64 / seconds.max(1) as f64)
}

struct Pktgen {
    args: Args,
}

/// What one queue's thread did.
#[derive(Debug, Default)]
struct QueueSummary {
    sent: u64,
    received: u64,
}

fn queue_loop<R: RegisterIo>(
    mut qp: QueuePair<R>,
    src_mac: [u8; 6],
    size: usize,
    batch: usize,
    stop: &AtomicBool,
) -> QueueSummary {
    let mut template = frame::udp_frame(size, src_mac, DST_MAC);
    let mut tx = Vec::with_capacity(batch);
    let mut rx = Vec::with_capacity(batch);
    let mut seq = 0u32;
    let mut summary = QueueSummary::default();
    while !stop.load(Ordering::Relaxed) {
        while tx.len() < batch {
            let Some(mut buf) = qp.pool.alloc() else { break };
            frame::set_sequence(&mut template, seq);
            if buf.copy_from(&template) {
                seq = seq.wrapping_add(1);
                tx.push(buf);
            }
        }
        summary.sent += qp.tx.tx_batch(&mut tx) as u64;
        summary.received += qp.rx.rx_batch(&mut rx, batch) as u64;
        rx.clear();
    }
    summary
}

impl DeviceUser for Pktgen {
    type Output = ();

    fn run<R: RegisterIo>(self, device: Device<R>, _model: Option<&Model82599>) -> Result<(), ExampleError> {
        let link = device.link();
        println!("link {link:?}, MAC {:02x?}, {} queue(s)", device.mac(), device.num_queues());
        let mac = device.mac();
        let (handle, queues) = device.into_queues();
        let stop = Arc::new(AtomicBool::new(false));
        let interrupted = ixtcp_examples::interrupted();
        let (size, batch) = (usize::from(self.args.size), usize::from(self.args.batch));
        let threads: Vec<_> = queues
            .into_iter()
            .map(|qp| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || queue_loop(qp, mac, size, batch, &stop))
            })
            .collect();

        let start = Instant::now();
        let mut last = (Instant::now(), handle.stats());
        let limit = (self.args.seconds > 0).then(|| Duration::from_secs(self.args.seconds));
        while limit.is_none_or(|l| start.elapsed() < l) && !interrupted.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.0.elapsed() >= Duration::from_secs(1) {
                let now = (Instant::now(), handle.stats());
                let dt = now.0 - last.0;
                let tx = Rate::between(
                    Counts { packets: last.1.tx_packets, bytes: last.1.tx_bytes },
                    Counts { packets: now.1.tx_packets, bytes: now.1.tx_bytes },
                    dt,
                );
                let rx = Rate::between(
                    Counts { packets: last.1.rx_packets, bytes: last.1.rx_bytes },
                    Counts { packets: now.1.rx_packets, bytes: now.1.rx_bytes },
                    dt,
                );
                println!("[{:5.1}s] TX {tx}   RX {rx}", start.elapsed().as_secs_f64());
                last = now;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = QueueSummary::default();
        for (i, t) in threads.into_iter().enumerate() {
            let s = t.join().map_err(|_| ExampleError::Other(format!("queue {i} thread panicked")))?;
            println!("queue {i}: sent {} received {}", s.sent, s.received);
            total.sent += s.sent;
            total.received += s.received;
        }
        let stats = handle.stats();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "total: {} frames sent in {secs:.1} s ({:.3} Mpps average); device counted TX {} RX {} missed {}",
            total.sent,
            total.sent as f64 / secs / 1e6,
            stats.tx_packets,
            stats.rx_packets,
            stats.rx_missed
        );
        if self.args.compare_kernel {
            let ours = total.sent as f64 / secs;
            let kernel = kernel_baseline(self.args.seconds.clamp(1, 10), size)?;
            println!(
                "kernel (AF_PACKET sendto onto a veth, 1 thread): {:.3} Mpps; ixtcp/kernel = {:.1}x",
                kernel / 1e6,
                ours / kernel
            );
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let nic = args.nic.clone();
    let config = nic.device_config();
    let result = ixtcp_examples::open(&nic, config, || Box::new(SinkWire::new().0), Pktgen { args });
    if let Err(e) = result {
        ixtcp_examples::exit_with(&e);
    }
}
