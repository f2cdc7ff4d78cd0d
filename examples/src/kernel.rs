//! The Linux kernel's sockets as a [`Reactor`]: epoll through mio, the
//! baseline the benchmark compares ixtcp with.
//!
//! Set up the way a tuned epoll server is: one listening socket per core
//! with `SO_REUSEPORT` (the kernel spreads connections over them, as RSS
//! does for ixtcp), non-blocking sockets with `TCP_NODELAY`, edge-triggered
//! registrations, a large accept backlog.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::reactor::{LISTENER, Reactor, Ready};

/// One core's epoll instance.
pub struct Kernel {
    poll: Poll,
    events: Events,
    busy: bool,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kernel")
    }
}

impl Kernel {
    /// A new epoll instance that sleeps in `epoll_wait` until an event.
    pub fn new() -> io::Result<Kernel> {
        Ok(Kernel { poll: Poll::new()?, events: Events::with_capacity(1024), busy: false })
    }

    /// A new epoll instance that never sleeps: `epoll_wait` with a zero
    /// timeout, in a loop, as a poll-mode stack spins its cores. On a
    /// virtual machine a sleeping core can take a millisecond to wake, so
    /// this is the kernel at its best for request/response loads.
    pub fn busy_polling() -> io::Result<Kernel> {
        Ok(Kernel { busy: true, ..Kernel::new()? })
    }
}

/// A listening socket on `addr` with `SO_REUSEPORT`, non-blocking.
pub fn reuseport_listener(addr: SocketAddrV4, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(addr).into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Raises the open-file limit to its hard maximum (the benchmark holds
/// tens of thousands of sockets); returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft),
    }
}

impl Reactor for Kernel {
    type Stream = TcpStream;
    type Listener = TcpListener;

    fn listen(&mut self, addr: SocketAddrV4) -> io::Result<TcpListener> {
        let mut l = TcpListener::from_std(reuseport_listener(addr, 4096)?);
        self.poll.registry().register(&mut l, Token(LISTENER), Interest::READABLE)?;
        Ok(l)
    }

    fn accept(&mut self, listener: &TcpListener) -> io::Result<Option<TcpStream>> {
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nodelay(true)?;
                    return Ok(Some(s));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // The peer gave up before we accepted: take the next one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn connect(&mut self, addr: SocketAddrV4) -> io::Result<TcpStream> {
        let s = TcpStream::connect(SocketAddr::V4(addr))?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    fn connected(&mut self, stream: &TcpStream) -> io::Result<bool> {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn register(&mut self, stream: &mut TcpStream, token: usize) -> io::Result<()> {
        self.poll.registry().register(stream, Token(token), Interest::READABLE | Interest::WRITABLE)
    }

    fn close(&mut self, mut stream: TcpStream) {
        let _ = self.poll.registry().deregister(&mut stream);
    }

    fn wait(&mut self, out: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = if self.busy { Some(Duration::ZERO) } else { timeout };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        out.extend(self.events.iter().map(|e| Ready {
            token: e.token().0,
            readable: e.is_readable() || e.is_read_closed(),
            writable: e.is_writable(),
            closed: e.is_error() || (e.is_read_closed() && e.is_write_closed()),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::{EchoClient, EchoServer};
    use crate::reactor::{ClientLoop, ClientWork, Gauge, Until, run_clients, serve};
    use crate::session::Tally;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    struct Echoes {
        left: u64,
        size: usize,
        one_shot: bool,
    }

    impl ClientWork for Echoes {
        type Session = EchoClient;
        fn open(&mut self, now: Instant) -> Option<EchoClient> {
            if self.left == 0 {
                return None;
            }
            self.left -= 1;
            Some(EchoClient::new(self.left, self.size, self.one_shot, now))
        }
    }

    fn free_port() -> SocketAddrV4 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        match l.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        }
    }

    /// Echo server and clients on loopback, both loops, both modes.
    #[test]
    fn echo_over_loopback_in_both_modes() {
        let addr = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let until = Until::flag(Arc::clone(&stop));
        let server = std::thread::spawn(move || {
            let mut k = Kernel::new().unwrap();
            let mut t = Tally::default();
            serve(&mut k, addr, EchoServer::new, &until, &mut t, &Gauge::default()).map(|_| t)
        });
        std::thread::sleep(Duration::from_millis(50));
        for one_shot in [false, true] {
            let mut k = Kernel::new().unwrap();
            let mut t = Tally::default();
            let cfg = ClientLoop { server: addr, conns: 8, timeout: Duration::from_secs(5) };
            let mut work = Echoes { left: 40, size: 300, one_shot };
            // Until the 40 are done, however long this machine takes.
            let done = Arc::new(Gauge::default());
            let until = Until::transactions(Arc::new(AtomicBool::new(false)), Arc::clone(&done), 40);
            run_clients(&mut k, &cfg, &mut work, &until, &mut t, &done).unwrap();
            assert_eq!(t.failure_line(), "none", "{:?}", t.first_failures);
            assert!(t.transactions > 0);
            if one_shot {
                assert_eq!(t.transactions, 40, "one transaction per connection");
                assert_eq!(t.connections, 40);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let st = server.join().unwrap().unwrap();
        assert!(st.connections >= 48);
    }

    #[test]
    fn refused_connections_are_counted_and_the_loop_ends() {
        let addr = free_port();
        let mut k = Kernel::new().unwrap();
        let mut t = Tally::default();
        let cfg = ClientLoop { server: addr, conns: 2, timeout: Duration::from_secs(5) };
        let mut work = Echoes { left: 5, size: 10, one_shot: true };
        let until = Until::flag(Arc::new(AtomicBool::new(false)));
        run_clients(&mut k, &cfg, &mut work, &until, &mut t, &Gauge::default()).unwrap();
        assert_eq!(t.failures(crate::session::Failure::Connect), 5);
        assert_eq!(t.transactions, 0);
    }
}
