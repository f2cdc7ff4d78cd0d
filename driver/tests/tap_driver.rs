//! The driver on the model, with the model's port plugged into a TAP device
//! inside a network namespace this test creates: the Linux kernel is the
//! peer. Frames the driver transmits reach the kernel (a raw socket in the
//! namespace sees them, and the kernel answers), and frames the kernel sends
//! reach the driver's receive queue. Traffic goes only to 10.78.0.0/24,
//! which exists only inside the namespace. Skips, saying why, without root,
//! `/dev/net/tun` or `ip` (fails instead under `IXTCP_REQUIRE_PEER=1`).
#![forbid(unsafe_code)]

mod wire_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceConfig, QueuePair};
use ixtcp_driver::mempool::PacketBuf;
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::wire::{Netns, PacketWire, TapWire, Wire, WireError};
use wire_support::*;

const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const DRIVER_IP: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);

/// The driver's queue pair seen as a wire: `transmit` goes through
/// `tx_batch` and the model's transmit path onto the TAP device; `receive`
/// pumps the model and takes a frame from `rx_batch`. This lets the
/// kernel-peer helpers drive the whole driver path.
struct DriverPort {
    model: Model82599,
    queues: QueuePair<ModelRegs>,
    received: Vec<PacketBuf>,
}

impl Wire for DriverPort {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let mut buf = self.queues.pool.alloc().ok_or(WireError::Busy)?;
        if !buf.copy_from(frame) {
            return Err(WireError::TooLong { len: frame.len(), max: buf.capacity() });
        }
        let mut batch = vec![buf];
        match self.queues.tx.tx_batch(&mut batch) {
            1 => Ok(()),
            _ => Err(WireError::Busy),
        }
    }

    fn receive(&mut self, out: &mut Vec<u8>) -> bool {
        if self.received.is_empty() {
            self.model.pump();
            self.queues.rx.rx_batch(&mut self.received, 32);
            // Oldest first.
            self.received.reverse();
        }
        match self.received.pop() {
            Some(buf) => {
                out.clear();
                out.extend_from_slice(buf.data());
                true
            }
            None => false,
        }
    }
}

#[test]
fn driver_exchanges_frames_with_the_kernel_through_a_tap_device() {
    if !peer::kernel_peer("driver_exchanges_frames_with_the_kernel_through_a_tap_device", Needs::TAP) {
        return;
    }
    let ns = Netns::new("ixtcp-drv").unwrap();
    let name = ifname("ixdrv", 0);
    let tap = TapWire::open(&name).unwrap();
    let kernel_mac = tap.mac().unwrap();
    ns.adopt(&name).unwrap();
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", &name]).unwrap();
    ns.run(|| tap.set_up()).unwrap().unwrap();
    // A raw socket in the namespace, to see what the driver puts on the wire.
    let mut sniffer = ns.run(|| PacketWire::open(&name)).unwrap().unwrap();

    let model = Model82599::new(ModelConfig::default());
    model.attach(Box::new(tap));
    let device = Device::init(model.regs(), &model.dma(), DeviceConfig::default()).unwrap();
    let mac = device.mac();
    let (handle, mut queues) = device.into_queues();
    let queues = queues.remove(0);
    let pool = queues.pool.clone();
    let mut port = DriverPort { model: model.clone(), queues, received: Vec::new() };

    // Driver -> kernel: an ARP request for the kernel's address, sent by the
    // driver, is seen by the raw socket and answered by the kernel; the
    // answer comes back up through the model's RX path into rx_batch.
    let request =
        Arp { op: ARP_REQUEST, sender_mac: mac, sender_ip: DRIVER_IP, target_mac: [0; 6], target_ip: KERNEL_IP };
    let frame = request.frame(BROADCAST);
    let mut seen_by_kernel_side = false;
    let mut answer = None;
    for _ in 0..15 {
        port.transmit(&frame).unwrap();
        let mut sniffed = Vec::new();
        for _ in 0..50 {
            if sniffer.receive(&mut sniffed) && sniffed[..frame.len()] == frame[..] {
                seen_by_kernel_side = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        answer = wait_for(
            &mut port,
            Duration::from_millis(200),
            |f| Arp::parse(f).filter(|a| a.op == ARP_REPLY && a.sender_ip == KERNEL_IP && f[..6] == mac),
            |_, _| {},
        );
        if answer.is_some() {
            break;
        }
    }
    assert!(seen_by_kernel_side, "the raw socket in the namespace never saw the driver's frame");
    let answer = answer.expect("no ARP reply from the kernel reached the driver");
    assert_eq!((answer.sender_mac, answer.target_mac, answer.target_ip), (kernel_mac, mac, DRIVER_IP));

    // Kernel -> driver -> kernel: a UDP socket in the namespace sends to the
    // driver's address; the test answers the kernel's ARP request and echoes
    // the datagram, both through tx_batch.
    let mut host = FakeHost::new(mac, DRIVER_IP);
    assert!(udp_round_trip(&ns, &mut port, &mut host), "UDP echo through the driver failed");
    assert_eq!(host.udp_echoed, 1);

    let stats = handle.stats();
    assert!(stats.tx_packets >= 2 && stats.rx_packets >= 2, "{stats:?}");
    assert!(model.faults().is_empty(), "{:?}", model.faults());
    drop(port);
    drop(handle);
    assert_eq!(pool.free_count(), pool.capacity() as usize, "buffers leaked");
}
