//! smoltcp's [`Device`] over one core's [`Port`]: the RX and TX tokens.
//!
//! A [`Phy`] is made for each smoltcp call and lives only for it, the way
//! smoltcp's middleware devices wrap another: it borrows the port, holds
//! the one received packet the call is for, and, for a connection's call,
//! that connection's sequence mapping and record of what it sent, which
//! every segment it transmits updates as it leaves (`Port::send_ip`).
//!
//! - Receive is zero copy: the core strips the Ethernet header in place
//!   (`trim_front(14)`) and hands the buffer to [`Phy::with_rx`]; the RX
//!   token lends that buffer's bytes to smoltcp and returns it to the
//!   mempool when consumed.
//! - Transmit builds the IP packet straight into a mempool buffer at its
//!   default headroom and passes it to `Port::send_ip`.
//! - A full TX batch or an empty mempool makes `transmit` return `None`:
//!   smoltcp then keeps the data and tries again later, so nothing is lost
//!   to local back-pressure.
//! - smoltcp is told to compute and verify neither IPv4 nor TCP checksums:
//!   the port settles them after the last rewrite (`crate::csum`).

use ixtcp_driver::mempool::PacketBuf;
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::io::PacketIo;
use crate::port::{ConnTx, Port};
use crate::sent::Sent;
use crate::workaround::SeqMap;

/// smoltcp's device for one call: the port, the packet received for the
/// call (if any) and the connection the call is for (if any).
pub(crate) struct Phy<'a, P: PacketIo> {
    port: &'a mut Port<P>,
    rx: Option<PacketBuf>,
    conn: Option<ConnTx<'a>>,
    /// The MTU the device reports (the port's unless `with_mtu`).
    mtu: usize,
}

impl<'a, P: PacketIo> Phy<'a, P> {
    /// A device with nothing to receive and no connection (egress of a
    /// stray reply, or building the interface).
    pub fn new(port: &'a mut Port<P>) -> Phy<'a, P> {
        let mtu = port.mtu;
        Phy { port, rx: None, conn: None, mtu }
    }

    /// Reports `mtu` instead of the port's (at most it): for building an
    /// interface of a lowered path MTU (`crate::pmtu`), which smoltcp
    /// reads from the device once, when the interface is made.
    pub fn with_mtu(mut self, mtu: usize) -> Phy<'a, P> {
        self.mtu = mtu.min(self.port.mtu);
        self
    }

    /// Gives smoltcp `buf` (an IP packet) to receive.
    pub fn with_rx(mut self, buf: PacketBuf) -> Phy<'a, P> {
        self.rx = Some(buf);
        self
    }

    /// Makes the call one connection's: what it sends maps its sequence
    /// numbers with `seq` and is recorded in `sent`.
    pub fn for_conn(mut self, seq: &'a mut SeqMap, sent: &'a mut Sent) -> Phy<'a, P> {
        self.conn = Some(ConnTx { seq, sent });
        self
    }
}

/// Lends the received packet to smoltcp.
pub(crate) struct PhyRx(PacketBuf);

impl RxToken for PhyRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.data())
    }
}

/// Builds one packet into a mempool buffer and sends it.
pub(crate) struct PhyTx<'p, 'a, P: PacketIo> {
    phy: &'p mut Phy<'a, P>,
    buf: Option<PacketBuf>,
}

impl<P: PacketIo> TxToken for PhyTx<'_, '_, P> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, len: usize, f: F) -> R {
        // The token from `receive` carries no buffer yet (most received
        // packets need no immediate reply): allocate now.
        let buf = self.buf.take().or_else(|| self.phy.port.io.alloc());
        let Phy { port, conn, .. } = self.phy;
        let conn = conn.as_mut().map(ConnTx::reborrow);
        port.finish_tx(buf, len, conn, f)
    }
}

impl<'a, P: PacketIo> Device for Phy<'a, P> {
    type RxToken<'t>
        = PhyRx
    where
        Self: 't;
    type TxToken<'t>
        = PhyTx<'t, 'a, P>
    where
        Self: 't;

    fn receive(&mut self, _now: Instant) -> Option<(PhyRx, PhyTx<'_, 'a, P>)> {
        let rx = self.rx.take()?;
        // A reply (RST, challenge ACK) that finds the batch full is dropped
        // and counted in `Port::push_frame`; TCP recovers.
        Some((PhyRx(rx), PhyTx { phy: self, buf: None }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<PhyTx<'_, 'a, P>> {
        if self.port.tx.len() + 1 > self.port.tx_cap {
            return None;
        }
        match self.port.io.alloc() {
            Some(buf) => Some(PhyTx { phy: self, buf: Some(buf) }),
            None => {
                self.port.stats.drop_mempool_empty += 1;
                None
            }
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = None;
        // The stack settles IPv4 and TCP checksums itself, at the edge
        // (`crate::csum`): the NIC's offload or its own code, after every
        // rewrite of a segment. smoltcp computes and verifies neither;
        // ICMP and UDP stay its own.
        caps.checksum.ipv4 = Checksum::None;
        caps.checksum.tcp = Checksum::None;
        caps
    }
}
