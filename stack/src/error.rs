//! Errors of the stack's API.

use std::fmt;
use std::net::SocketAddrV4;

use crate::config::ConfigError;
use crate::conn::CloseReason;

/// What went wrong, in terms a sockets user knows (the sockapi crate maps
/// these onto `std::io::ErrorKind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The handle refers to a connection that no longer exists.
    StaleHandle,
    /// Nothing can be done right now (send buffer full, nothing to read);
    /// an event will say when.
    WouldBlock,
    /// The connection is not (or no longer) open for this operation.
    NotConnected,
    /// The peer refused the connection (RST to our SYN).
    ConnectionRefused,
    /// The connection was reset.
    ConnectionReset,
    /// The connection timed out.
    TimedOut,
    /// The core has no free socket (`max_connections`).
    NoSocket,
    /// The 4-tuple or port is in use.
    AddrInUse(SocketAddrV4),
    /// No local port maps to this core for that peer.
    PortsExhausted,
    /// An explicit local port whose replies RSS would deliver to another
    /// core (mTCP answers EINVAL).
    WrongCore {
        /// The port asked for.
        port: u16,
        /// The core its replies would reach.
        lands_on: u16,
        /// This core.
        this_core: u16,
    },
    /// Not a usable destination (unspecified, broadcast, our own address).
    InvalidAddress(SocketAddrV4),
    /// Off-subnet and no gateway configured.
    NoRoute(SocketAddrV4),
    /// Port 0 or already listening.
    InvalidPort(u16),
    /// No listener on that port.
    NotListening(u16),
    /// The core is shutting down.
    ShuttingDown,
    /// A per-connection option value that makes no sense.
    InvalidOption(&'static str),
    /// The device or runtime failed.
    Device(String),
}

impl StackError {
    /// The error a closed connection reports.
    pub(crate) fn from_reason(r: Option<CloseReason>) -> StackError {
        match r {
            Some(CloseReason::Refused) => StackError::ConnectionRefused,
            Some(CloseReason::Reset) => StackError::ConnectionReset,
            Some(CloseReason::TimedOut) => StackError::TimedOut,
            Some(CloseReason::Normal) | None => StackError::NotConnected,
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::Config(e) => write!(f, "{e}"),
            StackError::StaleHandle => write!(f, "connection handle is stale (the connection was closed and freed)"),
            StackError::WouldBlock => write!(f, "operation would block"),
            StackError::NotConnected => write!(f, "connection not open for this operation"),
            StackError::ConnectionRefused => write!(f, "connection refused by peer"),
            StackError::ConnectionReset => write!(f, "connection reset"),
            StackError::TimedOut => write!(f, "connection timed out"),
            StackError::NoSocket => write!(f, "no free socket on this core: raise max_connections"),
            StackError::AddrInUse(a) => write!(f, "address {a} in use"),
            StackError::PortsExhausted => {
                write!(f, "no free local port maps to this core: widen ephemeral_first..ephemeral_last")
            }
            StackError::WrongCore { port, lands_on, this_core } => write!(
                f,
                "local port {port}: replies would reach core {lands_on}, not core {this_core}; \
                 connect from that core or let the stack pick the port"
            ),
            StackError::InvalidAddress(a) => write!(f, "{a} is not a usable destination"),
            StackError::NoRoute(a) => write!(f, "no route to {a}: it is off-subnet and no gateway is configured"),
            StackError::InvalidPort(p) => write!(f, "port {p} is zero or already listening"),
            StackError::NotListening(p) => write!(f, "nothing listens on port {p}"),
            StackError::ShuttingDown => write!(f, "the stack core is shutting down"),
            StackError::InvalidOption(what) => write!(f, "invalid option: {what}"),
            StackError::Device(m) => write!(f, "device: {m}"),
        }
    }
}

impl std::error::Error for StackError {}

impl From<ConfigError> for StackError {
    fn from(e: ConfigError) -> Self {
        StackError::Config(e)
    }
}
