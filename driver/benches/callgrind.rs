//! A fixed workload for `valgrind --tool=callgrind`: 60-byte frames sent
//! with `tx_batch` on one linked 82599 model and received with `rx_batch`
//! on the other, in batches of 32. Instruction counts are repeatable where
//! time is not; `scripts/callgrind.sh` runs this and prints instructions per
//! packet for `rx_batch`, `tx_batch` and the model.
//!
//! Two workloads: `plain` (the default) sends non-IP frames without any
//! offload; `offload` sends TCP/IPv4 frames that ask for the IPv4 and TCP
//! checksums to be inserted (the model then computes both, and the
//! receiving model checks them), and fails unless every frame arrives with
//! both verdicts good.
//!
//! Run: `scripts/callgrind.sh` (or `cargo bench -p ixtcp-driver --bench callgrind [-- offload]` for a plain run).

use std::time::Duration;

use std::sync::Arc;

use ixtcp_driver::device::{Device, DeviceConfig};
use ixtcp_driver::io::RegisterIo;
use ixtcp_driver::mempool::{Mempool, PacketBuf};
use ixtcp_driver::model::{Model82599, ModelConfig};
use ixtcp_driver::offload::{CsumStatus, L4Proto, TxOffload};
use ixtcp_driver::queue::{RxQueue, TxQueue};
use ixtcp_driver::wire::QueueWire;

const PACKETS: usize = 200_000;
const BATCH: usize = 32;
const FRAME: usize = 60;

/// A TCP/IPv4 frame of [`FRAME`] bytes (6 bytes of payload) as software
/// hands it over for checksum offload: the IPv4 checksum zero, the TCP
/// checksum field holding the folded pseudo-header sum.
fn tcp_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; FRAME];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (FRAME - 14) as u16;
    let tcp_len = ip_len - 20;
    let (sip, dip) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&sip);
    ip[16..20].copy_from_slice(&dip);
    let tcp = &mut f[34..];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    tcp[20..].copy_from_slice(b"hello\n");
    let mut sum: u32 = [sip, dip]
        .iter()
        .map(|a| u32::from(u16::from_be_bytes([a[0], a[1]])) + u32::from(u16::from_be_bytes([a[2], a[3]])))
        .sum();
    sum += 6 + u32::from(tcp_len);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    tcp[16..18].copy_from_slice(&(sum as u16).to_be_bytes());
    f
}

// The driver's calls, each in a function of its own that is never inlined
// into `main`: with one codegen unit the compiler inlines `rx_batch`,
// `tx_batch` and the mempool's calls into their caller, and the script
// then could not tell their instructions from the loop's. It classifies
// these by name (`callgrind::driver_*`): what they inline counts for them.

#[inline(never)]
fn driver_tx<R: RegisterIo>(tx: &mut TxQueue<R>, bufs: &mut Vec<PacketBuf>) -> usize {
    tx.tx_batch(bufs)
}

#[inline(never)]
fn driver_rx<R: RegisterIo>(rx: &mut RxQueue<R>, out: &mut Vec<PacketBuf>) -> usize {
    rx.rx_batch(out, BATCH)
}

#[inline(never)]
fn driver_alloc(pool: &Arc<Mempool>) -> Option<PacketBuf> {
    pool.alloc()
}

#[inline(never)]
fn driver_free(out: &mut Vec<PacketBuf>) {
    out.clear();
}

fn main() {
    let offload = match std::env::args().nth(1).as_deref() {
        None | Some("plain") | Some("--bench") => false,
        Some("offload") => true,
        Some(other) => {
            eprintln!("unknown workload {other:?}: give `plain` (the default) or `offload`");
            std::process::exit(2);
        }
    };
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
    let (frame, request) = if offload {
        let Ok(request) = TxOffload::ipv4(14, 20, Some(L4Proto::Tcp)) else { unreachable!("14/20 are in range") };
        (tcp_frame(mac_b, mac_a), request)
    } else {
        let mut frame = vec![0u8; FRAME];
        frame[..6].copy_from_slice(&mac_b);
        frame[6..12].copy_from_slice(&mac_a);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        (frame, TxOffload::NONE)
    };
    let (mut bufs, mut out) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
    let (mut sent, mut received, mut good) = (0, 0, 0);
    while received < PACKETS {
        while bufs.len() < BATCH {
            let Some(mut buf) = driver_alloc(&tx.pool) else { break };
            buf.copy_from(&frame);
            if offload {
                buf.set_tx_offload(request);
            }
            bufs.push(buf);
        }
        sent += driver_tx(&mut tx.tx, &mut bufs);
        mb.pump();
        received += driver_rx(&mut rx.rx, &mut out);
        if offload {
            good += out
                .iter()
                .filter(|b| (b.rx_checksum().ip(), b.rx_checksum().l4()) == (CsumStatus::Good, CsumStatus::Good))
                .count();
        }
        driver_free(&mut out);
    }
    println!(
        "{} workload: sent {sent} received {received} in batches of {BATCH}",
        if offload { "offload" } else { "plain" }
    );
    if offload && good != received {
        eprintln!("only {good} of {received} frames arrived with good IPv4 and TCP checksums");
        std::process::exit(1);
    }
}
