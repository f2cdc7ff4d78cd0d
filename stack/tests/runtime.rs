//! The runtime: pinned threads, the monotonic clock, graceful shutdown.
//! Real threads and real time: only outcomes are asserted, never timings.
mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Host, base_config, mac};
use ixtcp_driver::time::{Clock, MonotonicClock};
use ixtcp_stack::runtime::{Runtime, RuntimeOptions};
use ixtcp_stack::sim::{SimIo, SimLink, SimPort};
use ixtcp_stack::{ConnId, Event, StackCore, StackError};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn assert_send<T: Send>() {}

#[test]
fn cores_on_pinned_threads_echo_and_shut_down_gracefully() {
    assert_send::<StackCore<SimIo>>();
    let cores_n = 2u16;
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
    let mut nics = Vec::new();
    let mut runtimes = Vec::new();
    let verified = Arc::new(AtomicUsize::new(0));
    for (h, ip) in [A, B].into_iter().enumerate() {
        // Seeded from the OS, as in production.
        let Host { nic, cores, .. } = Host::start(base_config(ip, cores_n), mac(h as u8 + 1), None, clock.now_ns());
        nics.push(nic);
        let verified = Arc::clone(&verified);
        let rt = Runtime::start(cores, Arc::clone(&clock), RuntimeOptions::default(), move |index| {
            let verified = Arc::clone(&verified);
            let mut started = false;
            let mut echo: HashMap<ConnId, Vec<u8>> = HashMap::new();
            let mut got: HashMap<ConnId, usize> = HashMap::new();
            move |c: &mut StackCore<SimIo>| {
                let ids: Vec<ConnId> = c
                    .drain_events()
                    .filter_map(|e| match e {
                        Event::Conn { id, .. } => Some(id),
                        _ => None,
                    })
                    .collect();
                if h == 1 {
                    if !started {
                        let _ = c.listen(7, None);
                        started = true;
                    }
                    while let Some(id) = c.accept(7) {
                        echo.insert(id, Vec::new());
                    }
                    let mut buf = [0u8; 4096];
                    for (&id, pending) in echo.iter_mut() {
                        while let Ok(n) = c.recv(id, &mut buf) {
                            if n == 0 {
                                break;
                            }
                            pending.extend_from_slice(&buf[..n]);
                        }
                        if let Ok(n) = c.send(id, pending) {
                            pending.drain(..n);
                        }
                    }
                } else {
                    if !started && c.stats().polls > 1000 {
                        for _ in 0..5 {
                            let id = c.connect(SocketAddrV4::new(B, 7), None).unwrap();
                            got.insert(id, 0);
                        }
                        started = true;
                    }
                    let msg = [index as u8 ^ 0x5a; 1000];
                    let mut buf = [0u8; 4096];
                    for id in ids {
                        let Some(n) = got.get_mut(&id) else { continue };
                        if *n == 0 && c.send(id, &msg).is_ok() {
                            *n = 1;
                        }
                        let mut total = *n - 1;
                        loop {
                            match c.recv(id, &mut buf) {
                                Ok(k) if k > 0 => {
                                    assert!(buf[..k].iter().all(|&b| b == msg[0]));
                                    total += k;
                                }
                                Ok(_) | Err(StackError::WouldBlock) => break,
                                Err(e) => panic!("client: {e}"),
                            }
                        }
                        if *n > 0 {
                            if total == msg.len() && *n - 1 < msg.len() {
                                verified.fetch_add(1, Ordering::Relaxed);
                            }
                            *n = total + 1;
                        }
                    }
                }
            }
        })
        .unwrap();
        runtimes.push(rt);
    }
    // The wire, on its own thread.
    let stop_wire = Arc::new(AtomicBool::new(false));
    let wire = {
        let (a, b) = (Arc::clone(&nics[0]) as Arc<dyn SimPort>, Arc::clone(&nics[1]) as Arc<dyn SimPort>);
        let stop = Arc::clone(&stop_wire);
        std::thread::spawn(move || {
            let mut link = SimLink::new(a, b);
            while !stop.load(Ordering::Relaxed) {
                if link.pump() == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while verified.load(Ordering::Relaxed) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(verified.load(Ordering::Relaxed), 10, "echo did not complete: {:?}", runtimes[0].stats());
    // Both sides shut down at once: every connection ends with FIN.
    for rt in &runtimes {
        rt.request_stop();
    }
    let mut all = Vec::new();
    for rt in runtimes {
        all.push(rt.shutdown().unwrap());
    }
    stop_wire.store(true, Ordering::Relaxed);
    wire.join().unwrap();
    for (h, cores) in all.iter().enumerate() {
        let mut closed = 0;
        for c in cores {
            let s = c.stats();
            let n = c.socket_census();
            assert_eq!(n.free, n.slots, "host {h} core {}: {n:?}", c.index());
            assert_eq!(s.conns_reset, 0, "host {h}: drained with FIN, not RST: {s:?}");
            closed += s.conns_closed;
        }
        assert_eq!(closed, 10, "host {h}");
    }
    // Every buffer is back in its pool once the cores are dropped.
    drop(all);
    for nic in &nics {
        assert!(nic.free_buffers().iter().all(|&f| f == 8192), "{:?}", nic.free_buffers());
    }
}
