//! What the kernel-peer tests of programs share: a program running inside
//! a network namespace the test made, the kernel's side of its TAP device,
//! and the kernel as a hundred echo clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use ixtcp_driver::wire::Netns;
use rand::Rng;

/// A program running inside a namespace (spawned by the test through
/// [`Netns::command`]), killed if the test fails before it stops.
#[derive(Debug)]
pub struct InNs {
    child: Option<Child>,
}

impl InNs {
    /// Takes charge of a program the test has spawned.
    pub fn new(child: Child) -> InNs {
        InNs { child: Some(child) }
    }

    /// Ctrl-C, then the program's output; it must exit with success.
    pub fn interrupt(mut self) -> Output {
        let child = self.child.take().expect("running");
        // `ip netns exec` execs the program, so the pid is the program's.
        let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
        assert!(kill.success(), "kill -INT failed");
        let out = child.wait_with_output().expect("wait for the program");
        assert!(out.status.success(), "the program did not stop cleanly ({}):\n{}", out.status, text(&out));
        out
    }

    /// Waits for the program to end by itself; its output.
    pub fn wait(mut self) -> Output {
        self.child.take().expect("running").wait_with_output().expect("wait for the program")
    }
}

impl Drop for InNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A program's stdout and stderr, as text.
pub fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Waits for the program to create `tap` inside `ns`, then gives the
/// kernel's side `addr` and brings it up.
pub fn plug_kernel_in(ns: &Netns, tap: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while ns.ip(&["link", "show", "dev", tap]).is_err() {
        assert!(Instant::now() < deadline, "the program never created {tap}");
        std::thread::sleep(Duration::from_millis(20));
    }
    ns.ip(&["addr", "add", addr, "dev", tap]).expect("address the TAP device");
    ns.ip(&["link", "set", "dev", tap, "up"]).expect("bring the TAP device up");
}

/// The kernel as `n` echo clients of `server` (run it inside the
/// namespace, through [`Netns::run`]): all connect, then each sends a
/// message of 1 to 32 KiB of `rng`'s bytes before any reads, so all are in
/// flight at once (they fit in both sides' buffers, so no write waits for
/// a read), then each reads its echo back and checks every byte. Returns
/// the bytes verified, or what went wrong.
pub fn kernel_echo_clients(server: SocketAddr, n: usize, rng: &mut impl Rng) -> Result<usize, String> {
    // The first connection may race the server's ARP and listener.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        match TcpStream::connect_timeout(&server, Duration::from_secs(5)) {
            Ok(s) => conns.push(s),
            Err(e) if conns.is_empty() && Instant::now() < deadline => {
                eprintln!("connect: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("connection {}: {e}", conns.len() + 1)),
        }
    }
    let mut messages = Vec::with_capacity(conns.len());
    for (i, c) in conns.iter_mut().enumerate() {
        let size = rng.random_range(1..=32 * 1024);
        let msg: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        c.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        c.write_all(&msg).map_err(|e| format!("connection {i}: write: {e}"))?;
        messages.push(msg);
    }
    let mut bytes = 0;
    for (i, (c, msg)) in conns.iter_mut().zip(&messages).enumerate() {
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).map_err(|e| format!("connection {i}: read {} bytes: {e}", msg.len()))?;
        if let Some(at) = back.iter().zip(msg).position(|(a, b)| a != b) {
            return Err(format!("connection {i}: byte {at} of {} differs", msg.len()));
        }
        bytes += msg.len();
    }
    Ok(bytes)
}
