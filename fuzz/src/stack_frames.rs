//! Frames into a stack core through the 82599 model's receive path.
//!
//! The device is initialised once per process (its reset takes 10 ms of
//! real time); every input gets a fresh [`StackCore`] on that device's
//! queue pair, a fresh neighbour table and the virtual clock at zero, and
//! hands the queue pair back at the end with its receive ring drained, so
//! inputs do not see each other's state (only the rings' positions carry
//! over).
//!
//! Invariants checked:
//! - every frame the stack transmits is well-formed: our MAC, IPv4 with a
//!   valid header checksum and our address, TCP, UDP or ICMP with a valid
//!   checksum (ICMP: an echo reply or a port unreachable, never sent to a
//!   broadcast or multicast address), or ARP;
//! - after `abort_all` and enough time for every timer, no socket, flow or
//!   timer is left.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use ixtcp_driver::device::{Device, DeviceHandle, QueuePair};
use ixtcp_driver::model::{Model82599, ModelConfig, ModelRegs};
use ixtcp_driver::rss::Toeplitz;
use ixtcp_driver::wire::{QueueWire, Wire};
use ixtcp_stack::config::StaticNeighbor;
use ixtcp_stack::{ConnId, CoreSetup, HostSecret, MacAddr, NeighborTable, PacketIo, RssView, StackConfig, StackCore};

use crate::{Input, checksum, pseudo_sum};

const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

fn config() -> StackConfig {
    StackConfig {
        rx_ring_size: 256,
        tx_ring_size: 256,
        mempool_size: 1024,
        rx_burst: 64,
        socket_rx_buffer: 4096,
        socket_tx_buffer: 4096,
        max_connections: 16,
        backlog: 4,
        time_wait_ms: 1_000,
        time_wait_max: 64,
        static_neighbors: vec![StaticNeighbor { ip: PEER, mac: PEER_MAC }],
        ..StackConfig::new(OURS, 24)
    }
}

struct Rig {
    model: Model82599,
    _handle: DeviceHandle<ModelRegs>,
    io: Option<QueuePair<ModelRegs>>,
    rss: RssView,
    mac: MacAddr,
    peer: QueueWire,
}

fn rig() -> Rig {
    let model = Model82599::new(ModelConfig::default());
    let (port, peer) = QueueWire::pair();
    model.attach(Box::new(port));
    let mut dc = config().device_config();
    dc.link_timeout = Duration::from_secs(2);
    let dev = match Device::init(model.regs(), &model.dma(), dc) {
        Ok(d) => d,
        Err(e) => panic!("device init on the model: {e}; faults {:?}", model.faults()),
    };
    let mac = MacAddr(dev.mac());
    let rss = RssView {
        toeplitz: Arc::new(Toeplitz::new(&dev.config().rss_key)),
        reta: dev.config().effective_reta(),
        queue: 0,
    };
    let (handle, mut queues) = dev.into_queues();
    let io = queues.pop();
    Rig { model, _handle: handle, io, rss, mac, peer }
}

thread_local! {
    static RIG: RefCell<Option<Rig>> = const { RefCell::new(None) };
}

/// Runs one input (see [`run_on`]).
pub fn run(data: &[u8]) {
    RIG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rig = slot.get_or_insert_with(rig);
        run_on(rig, data);
    });
}

/// What we last sent on a tuple (remote port, local port): for inputs that
/// answer with sequence numbers relative to it.
#[derive(Clone, Copy, Default)]
struct Last {
    seq_end: u32,
    ack: u32,
}

struct Session<'a> {
    rig: &'a mut Rig,
    core: StackCore<QueuePair<ModelRegs>>,
    now_ns: u64,
    ids: Vec<ConnId>,
    last: HashMap<(u16, u16), Last>,
    local_ports: Vec<u16>,
    buf: Vec<u8>,
}

impl Session<'_> {
    fn poll(&mut self) {
        let _ = self.rig.model.pump();
        let _ = self.core.poll(self.now_ns);
        let _ = self.core.drain_events().count();
        self.drain_output();
    }

    fn drain_output(&mut self) {
        let mut frame = Vec::new();
        while self.rig.peer.receive(&mut frame) {
            check_output(&frame, self.rig.mac, &mut self.last);
        }
    }

    fn inject(&mut self, frame: &[u8]) {
        let _ = self.rig.peer.transmit(frame);
        self.poll();
    }
}

/// Panics if the stack sent something malformed.
fn check_output(f: &[u8], mac: MacAddr, last: &mut HashMap<(u16, u16), Last>) {
    assert!(f.len() >= 60, "runt frame sent: {f:02x?}");
    assert_eq!(f[6..12], mac.0, "frame from another MAC");
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0806 => assert_eq!(f[14..22], [0, 1, 8, 0, 6, 4, 0, f[21]], "bad ARP header"),
        0x0800 => {
            let ip = &f[14..];
            assert_eq!(ip[0], 0x45, "IPv4 header");
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(total >= 28 && total <= ip.len(), "IPv4 length {total} in {} bytes", ip.len());
            assert_eq!(checksum(&ip[..20], 0), 0, "IPv4 header checksum");
            assert_eq!(ip[12..16], OURS.octets(), "source address");
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            match ip[9] {
                1 => {
                    let m = &ip[20..total];
                    assert_eq!(checksum(m, 0), 0, "ICMP checksum");
                    assert!(matches!((m[0], m[1]), (0, 0) | (3, 3)), "ICMP type {} code {} sent", m[0], m[1]);
                    assert!(!dst.is_broadcast() && !dst.is_multicast() && !dst.is_unspecified(), "ICMP to {dst}");
                    return;
                }
                17 => {
                    let u = &ip[20..total];
                    assert_eq!(usize::from(u16::from_be_bytes([u[4], u[5]])), u.len(), "UDP length");
                    let sum = pseudo_sum(OURS.octets(), dst.octets(), 17, u.len());
                    assert_eq!(checksum(u, sum), 0, "UDP checksum");
                    return;
                }
                p => assert_eq!(p, 6, "only TCP, UDP and ICMP are sent"),
            }
            assert!(total >= 40, "TCP in {total} bytes");
            let t = &ip[20..total];
            let sum = pseudo_sum([ip[12], ip[13], ip[14], ip[15]], [ip[16], ip[17], ip[18], ip[19]], 6, t.len());
            assert_eq!(checksum(t, sum), 0, "TCP checksum");
            let doff = usize::from(t[12] >> 4) * 4;
            assert!((20..=t.len()).contains(&doff), "TCP data offset {doff}");
            let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let (sport, dport) = (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]]));
            let len = (t.len() - doff) as u32 + u32::from(t[13] & 0x03 != 0);
            last.insert((dport, sport), Last { seq_end: be32(&t[4..8]).wrapping_add(len), ack: be32(&t[8..12]) });
        }
        other => panic!("frame with EtherType {other:#06x} sent"),
    }
}

/// An IPv4/TCP frame to us built from the input, with valid checksums
/// unless the input asks for a bad one.
fn segment(i: &mut Input, s: &Session) -> Vec<u8> {
    let src = match i.u8() % 8 {
        0 => Ipv4Addr::new(10, 0, 0, 3),
        1 => Ipv4Addr::from(i.u32()),
        2 => OURS,
        _ => PEER,
    };
    let sport = match i.u8() % 4 {
        0 => i.u16(),
        k => 1000 + u16::from(k),
    };
    let dport = match i.u8() % 6 {
        0 => 22,
        1 => i.u16(),
        2 => 81,
        3 => s.local_ports.get(usize::from(i.u8()) % s.local_ports.len().max(1)).copied().unwrap_or(80),
        _ => 80,
    };
    let last = s.last.get(&(sport, dport)).copied().unwrap_or_default();
    let mode = i.u8();
    let seq = match mode & 3 {
        0 => i.u32(),
        _ => last.ack.wrapping_add(i.u8() as i8 as u32),
    };
    let ack = match (mode >> 2) & 3 {
        0 => i.u32(),
        _ => last.seq_end.wrapping_add(i.u8() as i8 as u32),
    };
    let flags = i.u8();
    let window = i.u16();
    let opts_len = usize::from(i.u8() % 11) * 4;
    let opts = i.bytes(opts_len).to_vec();
    let opts_len = opts.len() / 4 * 4;
    let payload_len = usize::from(i.u16() % 1461);
    let payload = i.bytes(payload_len).to_vec();
    let corrupt = mode & 0x80 != 0 && mode & 0x40 != 0;
    let tcp_len = 20 + opts_len + payload.len();
    let mut p = vec![0u8; 20 + tcp_len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    p[6] = if mode & 0x20 != 0 { 0x40 } else { 0 };
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&OURS.octets());
    let c = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = (((20 + opts_len) / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&window.to_be_bytes());
    t[20..20 + opts_len].copy_from_slice(&opts[..opts_len]);
    t[20 + opts_len..].copy_from_slice(&payload);
    let sum = pseudo_sum(src.octets(), OURS.octets(), 6, tcp_len);
    let c = checksum(t, sum) ^ u16::from(corrupt);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + p.len());
    f.extend_from_slice(&s.rig.mac.0);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&[8, 0]);
    f.extend_from_slice(&p);
    f
}

/// An IPv4 packet to us (or to a broadcast address, from any source, as
/// a fragment, with a bad header checksum: as the input asks) carrying
/// `proto`'s `body`, in a frame to our MAC or to broadcast.
fn ip_frame(i: &mut Input, s: &Session, proto: u8, body: &[u8]) -> Vec<u8> {
    let mode = i.u8();
    let src = match mode & 7 {
        0 => Ipv4Addr::from(i.u32()),
        1 => Ipv4Addr::new(10, 0, 0, 255),
        2 => OURS,
        _ => PEER,
    };
    let dst = match (mode >> 3) & 7 {
        0 => Ipv4Addr::BROADCAST,
        1 => Ipv4Addr::new(10, 0, 0, 255),
        2 => Ipv4Addr::new(224, 0, 0, 1),
        _ => OURS,
    };
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
    if mode & 0x40 != 0 {
        p[6..8].copy_from_slice(&i.u16().to_be_bytes());
    }
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20], 0) ^ u16::from(mode & 0x80 != 0 && mode & 0x40 != 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(body);
    let mut f = Vec::with_capacity(14 + p.len());
    f.extend_from_slice(if i.u8().is_multiple_of(8) { &[0xff; 6] } else { &s.rig.mac.0 });
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&[8, 0]);
    f.extend_from_slice(&p);
    f.resize(f.len().max(60), 0);
    f
}

/// An ICMP message from the input (echo requests most of the time, any
/// type otherwise, or fragmentation needed quoting a segment of one of
/// our connections near what it last sent; truncated or with a bad
/// checksum when asked).
fn icmp(i: &mut Input, s: &Session) -> Vec<u8> {
    let mode = i.u8();
    let mut keys: Vec<(u16, u16)> = s.last.keys().copied().collect();
    keys.sort_unstable();
    if mode & 3 == 1 && !keys.is_empty() {
        let (peer_port, our_port) = keys[usize::from(i.u8()) % keys.len()];
        let seq = s.last[&(peer_port, our_port)].seq_end.wrapping_sub(u32::from(i.u16()));
        let mtu = match i.u8() % 4 {
            0 => 0,
            1 => i.u16(),
            _ => 500 + i.u16() % 1100,
        };
        let mut m = vec![3, 4, 0, 0, 0, 0];
        m.extend_from_slice(&mtu.to_be_bytes());
        m.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        m[10..12].copy_from_slice(&i.u16().to_be_bytes());
        m.extend_from_slice(&OURS.octets());
        m.extend_from_slice(&PEER.octets());
        m.extend_from_slice(&our_port.to_be_bytes());
        m.extend_from_slice(&peer_port.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        let c = checksum(&m, 0);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        return ip_frame(i, s, 1, &m);
    }
    let kind = if mode & 3 == 0 { i.u8() } else { 8 };
    let len = usize::from(i.u16() % 1481);
    let mut m = vec![kind, i.u8() % 4, 0, 0];
    m.extend_from_slice(i.bytes(len));
    m.resize(m.len().max(8), 0);
    let c = checksum(&m, 0) ^ u16::from(mode & 0x04 != 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    if mode & 0x08 != 0 {
        m.truncate(usize::from(mode >> 4));
    }
    ip_frame(i, s, 1, &m)
}

/// A UDP datagram from the input to a bound port or another, its length
/// field and checksum right unless asked otherwise.
fn udp(i: &mut Input, s: &Session) -> Vec<u8> {
    let mode = i.u8();
    let sport = 1000 + u16::from(i.u8() % 8);
    let dport = match mode & 3 {
        0 => i.u16(),
        1 => 54,
        _ => 53,
    };
    let len = usize::from(i.u16() % 1473);
    let mut u = vec![0u8; 8];
    u.extend_from_slice(i.bytes(len));
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    let field = if mode & 0x04 != 0 { i.u16() } else { u.len() as u16 };
    u[4..6].copy_from_slice(&field.to_be_bytes());
    let c = match (mode >> 3) & 3 {
        0 => 0,
        1 => i.u16(),
        _ => checksum(&u, pseudo_sum(PEER.octets(), OURS.octets(), 17, u.len())),
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    if mode & 0x20 != 0 {
        u.truncate(usize::from(i.u8() % 8));
    }
    ip_frame(i, s, 17, &u)
}

fn arp(i: &mut Input, s: &Session) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    let broadcast = i.u8().is_multiple_of(2);
    f.extend_from_slice(if broadcast { &[0xff; 6] } else { &s.rig.mac.0 });
    let sender_mac =
        if i.u8().is_multiple_of(4) { [i.u8(), i.u8(), i.u8(), i.u8(), i.u8(), i.u8()] } else { PEER_MAC.0 };
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1 + i.u8() % 3]);
    f.extend_from_slice(&sender_mac);
    let sender_ip = match i.u8() % 4 {
        0 => OURS,
        1 => Ipv4Addr::from(i.u32()),
        _ => Ipv4Addr::new(10, 0, 0, 2 + i.u8() % 8),
    };
    f.extend_from_slice(&sender_ip.octets());
    f.extend_from_slice(&[0; 6]);
    let target = if i.u8().is_multiple_of(4) { Ipv4Addr::from(i.u32()) } else { OURS };
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// Runs one input on `rig`. Operations (opcode byte modulo 13):
///
/// - 0: a raw frame (up to 1514 bytes; usually to our MAC);
/// - 1, 2: a TCP segment built from the input (addresses, ports, sequence
///   numbers raw or relative to what we last sent, flags, window,
///   options, payload; checksum good unless asked);
/// - 3: an ARP frame; 4: time passes (up to 65 s);
/// - 5: accept everything, read from every connection;
/// - 6: write to a connection; 7: close, abort or shut down one;
/// - 8: connect to the peer; 9: poll;
/// - 10: an ICMP message, 11: a UDP datagram (both built from the input:
///   sources and destinations, fragments, lengths, checksums good or
///   bad), to port 53 (bound), 54 or any;
/// - 12: read port 53's datagrams and answer each, or send one to the
///   peer, or unbind and bind again.
fn run_on(rig: &mut Rig, data: &[u8]) {
    let Some(io) = rig.io.take() else { return };
    let cfg = Arc::new(config());
    let setup = CoreSetup {
        index: 0,
        io,
        mac: rig.mac,
        neighbors: NeighborTable::new(cfg.neighbor_capacity, cfg.neighbor_ttl_ms),
        rss: rig.rss.for_queue(0),
        seed: Some(1),
        pcap: None,
        secret: HostSecret::from_seed(1),
    };
    let core = match StackCore::new(cfg, setup, 0) {
        Ok(c) => c,
        Err(e) => panic!("core: {e}"),
    };
    let mut s = Session {
        rig,
        core,
        now_ns: 1_000_000,
        ids: Vec::new(),
        last: HashMap::new(),
        local_ports: Vec::new(),
        buf: vec![0; 8192],
    };
    let _ = s.core.listen(80, None);
    let _ = s.core.listen(81, Some(1));
    let mut udp_id = s.core.udp_bind(53).ok();
    let mut i = Input::new(data);
    let mut ops = 0;
    while !i.is_empty() && ops < 2048 {
        ops += 1;
        match i.u8() % 13 {
            0 => {
                let len = usize::from(i.u16() % 1515);
                let mut f = i.bytes(len).to_vec();
                if !i.u8().is_multiple_of(4) && f.len() >= 6 {
                    f[..6].copy_from_slice(&s.rig.mac.0);
                }
                s.inject(&f);
            }
            1 | 2 => {
                let f = segment(&mut i, &s);
                s.inject(&f);
            }
            3 => {
                let f = arp(&mut i, &s);
                s.inject(&f);
            }
            4 => {
                s.now_ns += u64::from(i.u16()) * 1_000_000;
                s.poll();
            }
            5 => {
                for port in [80, 81] {
                    while let Some(id) = s.core.accept(port) {
                        s.ids.push(id);
                    }
                }
                for k in 0..s.ids.len() {
                    let id = s.ids[k];
                    while let Ok(n) = s.core.recv(id, &mut s.buf) {
                        if n == 0 {
                            break;
                        }
                    }
                }
                s.poll();
            }
            6 => {
                let k = usize::from(i.u8());
                let len = usize::from(i.u16() % 8192);
                if let Some(&id) = s.ids.get(k % s.ids.len().max(1)) {
                    let data = vec![0x5a; len];
                    let _ = s.core.send(id, &data);
                }
                s.poll();
            }
            7 => {
                let k = usize::from(i.u8());
                let how = i.u8() % 3;
                if !s.ids.is_empty() {
                    let id = s.ids[k % s.ids.len()];
                    match how {
                        0 => {
                            let _ = s.core.shutdown_write(id);
                        }
                        1 => {
                            let _ = s.core.close(id);
                            s.ids.retain(|&x| x != id);
                        }
                        _ => {
                            let _ = s.core.abort(id);
                            s.ids.retain(|&x| x != id);
                        }
                    }
                }
                s.poll();
            }
            8 => {
                let port = 1000 + u16::from(i.u8() % 4);
                if let Ok(id) = s.core.connect(SocketAddrV4::new(PEER, port), None) {
                    if let Ok((local, _)) = s.core.endpoints(id) {
                        s.local_ports.push(local.port());
                    }
                    s.ids.push(id);
                }
                s.poll();
            }
            10 => {
                let f = icmp(&mut i, &s);
                s.inject(&f);
            }
            11 => {
                let f = udp(&mut i, &s);
                s.inject(&f);
            }
            12 => {
                match (i.u8() % 3, udp_id) {
                    (0, Some(id)) => {
                        while let Ok(r) = s.core.udp_recv_from(id, &mut s.buf) {
                            let n = r.len;
                            let _ = s.core.udp_send_to(id, r.from, &s.buf[..n]);
                        }
                    }
                    (1, Some(id)) => {
                        let len = usize::from(i.u16() % 1500);
                        let data = vec![0xa5; len];
                        let _ = s.core.udp_send_to(id, SocketAddrV4::new(PEER, 1000 + u16::from(i.u8() % 4)), &data);
                    }
                    (_, Some(id)) => {
                        let _ = s.core.udp_unbind(id);
                        udp_id = s.core.udp_bind(53).ok();
                    }
                    (_, None) => udp_id = s.core.udp_bind(53).ok(),
                }
                s.poll();
            }
            _ => s.poll(),
        }
    }
    if let Some(id) = udp_id {
        let _ = s.core.udp_unbind(id);
    }
    // Tear down: reset everything, let every timer run out.
    for port in [80, 81] {
        let _ = s.core.unlisten(port);
    }
    s.core.abort_all();
    for _ in 0..200 {
        s.now_ns += 1_000_000_000;
        s.poll();
    }
    let n = s.core.socket_census();
    assert!(
        n.not_closed == 0 && n.flows == 0 && n.free == n.slots && n.time_wait == 0,
        "left behind after abort_all and 200 s: {n:?}; stats {:?}",
        s.core.stats()
    );
    let Session { rig, core, .. } = s;
    let mut io = core.into_io();
    let mut junk = Vec::new();
    while io.rx_batch(&mut junk, 256) > 0 {
        junk.clear();
    }
    let _ = rig.model.pump();
    while io.rx_batch(&mut junk, 256) > 0 {
        junk.clear();
    }
    let mut frame = Vec::new();
    while rig.peer.receive(&mut frame) {}
    rig.io = Some(io);
}
