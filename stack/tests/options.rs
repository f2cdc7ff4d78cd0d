//! Per-connection options (Nagle, keep-alive) over the in-memory NIC.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use ixtcp_stack::sim::SimImpairments;
use ixtcp_stack::{ConnId, StackError};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn established_pair(w: &mut World) -> (ConnId, ConnId) {
    w.core(1, 0).listen(7, None).unwrap();
    let client = w.core(0, 0).connect(SocketAddrV4::new(B, 7), None).unwrap();
    let mut server = None;
    let end = w.now_ns + 1_000_000_000;
    while server.is_none() && w.now_ns < end {
        w.step(&mut |h, c| {
            let _ = c.drain_events().count();
            if h == 1 && server.is_none() {
                server = c.accept(7);
            }
        });
    }
    assert!(server.is_some(), "no connection accepted");
    (client, server.unwrap())
}

#[test]
fn nodelay_and_keepalive_are_per_connection_and_reset_with_the_slot() {
    let mut w = World::pair(
        Host::new(base_config(A, 1), mac(1), 1),
        Host::new(base_config(B, 1), mac(2), 2),
        SimImpairments::default(),
        1,
    );
    let (client, _server) = established_pair(&mut w);
    let c = w.core(0, 0);
    let default_nodelay = c.config().nodelay;
    assert_eq!(c.nodelay(client), Ok(default_nodelay));
    c.set_nodelay(client, !default_nodelay).unwrap();
    assert_eq!(c.nodelay(client), Ok(!default_nodelay));
    assert_eq!(c.keepalive(client), Ok(None));
    c.set_keepalive(client, Some(30_000)).unwrap();
    assert_eq!(c.keepalive(client), Ok(Some(30_000)));
    assert!(matches!(c.set_keepalive(client, Some(0)), Err(StackError::InvalidOption(_))));
    c.set_keepalive(client, None).unwrap();
    assert_eq!(c.keepalive(client), Ok(None));
    c.set_nodelay(client, !default_nodelay).unwrap();
    // A released handle is refused; the next connection in the slot starts
    // from the configured defaults again.
    c.abort(client).unwrap();
    assert_eq!(c.set_nodelay(client, true), Err(StackError::StaleHandle));
    assert_eq!(c.keepalive(client), Err(StackError::StaleHandle));
    for _ in 0..10 {
        w.step(&mut |_, c| {
            let _ = c.drain_events().count();
        });
    }
    let next = w.core(0, 0).connect(SocketAddrV4::new(B, 7), None).unwrap();
    assert_eq!(w.core(0, 0).nodelay(next), Ok(default_nodelay));
    assert_eq!(w.core(0, 0).keepalive(next), Ok(None));
}

#[test]
fn keepalive_probes_an_idle_connection() {
    let mut w = World::pair(
        Host::new(base_config(A, 1), mac(1), 3),
        Host::new(base_config(B, 1), mac(2), 4),
        SimImpairments::default(),
        3,
    );
    let (client, _server) = established_pair(&mut w);
    w.core(0, 0).set_keepalive(client, Some(100)).unwrap();
    let before = w.hosts[0].stats().tx_packets;
    let start = w.now_ns;
    while w.now_ns < start + 1_000_000_000 {
        w.step(&mut |_, c| {
            let _ = c.drain_events().count();
        });
    }
    let probes = w.hosts[0].stats().tx_packets - before;
    // One probe per 100 ms of silence, each answered: about ten in a second.
    assert!((5..=20).contains(&probes), "{probes} keep-alives in 1 s at 100 ms");
}
