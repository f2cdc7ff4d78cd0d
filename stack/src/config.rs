//! Stack configuration: a plain struct with defaults, loadable from TOML,
//! validated so that every error names the field to fix.
//!
//! ```toml
//! ip = "10.0.0.1"
//! prefix_len = 24
//! gateway = "10.0.0.254"
//! cores = 2
//! socket_rx_buffer = 65536
//! time_wait_ms = 1000
//! [[static_neighbors]]
//! ip = "10.0.0.254"
//! mac = "02:00:00:00:00:fe"
//! ```

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ether::MacAddr;

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Congestion control run by every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// TCP Reno (RFC 5681): slow start, congestion avoidance, fast recovery.
    #[default]
    Reno,
    /// CUBIC (RFC 9438), smoltcp's implementation: grows the window by a
    /// cubic function of the time since the last loss, so a long fat path
    /// refills faster than with Reno's one segment per round trip.
    Cubic,
    /// None: the window is the peer's receive window only.
    None,
}

/// A neighbour known in advance: never expires, never overwritten by ARP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbor {
    /// The neighbour's IPv4 address.
    pub ip: Ipv4Addr,
    /// Its MAC address.
    pub mac: MacAddr,
}

/// Configuration of one host's stack (all cores).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackConfig {
    /// Our IPv4 address.
    pub ip: Ipv4Addr,
    /// Prefix length of our subnet (1..=32).
    pub prefix_len: u8,
    /// Next hop for destinations outside the subnet; none: off-subnet
    /// destinations are unreachable.
    pub gateway: Option<Ipv4Addr>,
    /// Our MAC address; none: the NIC's.
    pub mac: Option<MacAddr>,
    /// Number of cores, one queue pair each (1..=16, the 82599's RSS limit).
    pub cores: u16,
    /// The CPU each core runs on, core `i` on `cpus[i]` (its stack thread
    /// and, threaded, its application thread): as many as `cores`, each a
    /// different CPU. None: not pinned, the OS places the threads (right
    /// when client and server share the machine, as on the model).
    pub cpus: Option<Vec<usize>>,
    /// Receive descriptors per queue.
    pub rx_ring_size: u16,
    /// Transmit descriptors per queue.
    pub tx_ring_size: u16,
    /// Packet buffers per core's mempool.
    pub mempool_size: u32,
    /// Most frames taken from the RX ring per loop iteration.
    pub rx_burst: usize,
    /// IP MTU, 576..=9000. Above 1500 the NIC takes jumbo frames
    /// (HLREG0.JUMBOEN, MAXFRS) and every packet buffer grows to hold one
    /// (16 KiB for 9000; see [`buffer_size`](Self::buffer_size)); every
    /// host on the link must use the same MTU.
    pub mtu: usize,
    /// Receive buffer of each connection, bytes (the most it announces as
    /// its window). Default 16 KiB; raise it to the bandwidth-delay
    /// product for bulk transfers.
    pub socket_rx_buffer: usize,
    /// Send buffer of each connection, bytes. Default 16 KiB.
    pub socket_tx_buffer: usize,
    /// Most connections (sockets) per core, including those in SYN-RECEIVED.
    pub max_connections: usize,
    /// Build every socket and its buffers at start, so that no connection
    /// ever allocates; otherwise sockets are built on first use and reused.
    pub preallocate: bool,
    /// Default listen backlog: connections in SYN-RECEIVED plus those
    /// established and not yet accepted, per core.
    pub backlog: usize,
    /// How long a closed 4-tuple stays in TIME_WAIT, ms (0: not kept).
    pub time_wait_ms: u64,
    /// Capacity of the TIME_WAIT table per core; when full the oldest
    /// entry is dropped early (and counted).
    pub time_wait_max: usize,
    /// Neighbours known in advance.
    pub static_neighbors: Vec<StaticNeighbor>,
    /// Capacity of the shared neighbour table (rounded up to a power of two).
    pub neighbor_capacity: usize,
    /// Neighbours learned by ARP are asked again after this long, ms.
    pub neighbor_ttl_ms: u64,
    /// Packets per core that may wait for ARP resolution; more are dropped.
    pub arp_pending_max: usize,
    /// A packet waiting for resolution longer than this is dropped, ms.
    pub arp_pending_timeout_ms: u64,
    /// Interval between ARP requests for the same address, ms.
    pub arp_retry_ms: u64,
    /// Disable Nagle's algorithm.
    pub nodelay: bool,
    /// Delayed-ACK timeout, ms (0: ACK at once).
    pub ack_delay_ms: u64,
    /// Congestion control: `"reno"`, `"cubic"` or `"none"`
    /// (`congestion_control` is accepted as the key's other name).
    #[serde(alias = "congestion_control")]
    pub congestion: Congestion,
    /// Send TCP timestamps (RFC 7323) on connections whose peer offers
    /// them: each segment carries 12 more option bytes; the peer gets RTT
    /// samples per segment and PAWS. smoltcp echoes timestamps but neither
    /// measures RTT from them nor checks PAWS itself.
    pub tcp_timestamps: bool,
    /// First local port for active opens.
    pub ephemeral_first: u16,
    /// Last local port for active opens.
    pub ephemeral_last: u16,
    /// Give up a handshake that does not complete in this long, ms: an
    /// active open that gets no answer, and a passive one that stays in
    /// SYN-RECEIVED (a spoofed SYN's SYN-ACK is never answered).
    pub connect_timeout_ms: u64,
    /// Answer SYNs beyond a listener's backlog with SYN cookies (no state
    /// kept; see `ixtcp_stack::cookie`) instead of dropping them: Linux's
    /// `tcp_syncookies = 1`. On by default. A client beyond the backlog then
    /// sees its connect succeed before the server has room for it; the
    /// server takes it when its ACK or data arrives and there is room (a
    /// cookie ACK that finds the accept queue full is dropped and counted,
    /// and the client's retransmission completes it later), as with Linux.
    pub syn_cookies: bool,
    /// Challenge ACKs (RFC 5961) per second per core, on average: each
    /// second's budget is drawn between half and 1.5 times this (0: none).
    pub challenge_ack_limit: u32,
    /// Reset an established connection whose peer has sent nothing for this
    /// long while data (or our FIN) is unacknowledged, ms (0: never): the
    /// bound on retransmitting to a peer that has gone away (RFC 5482's
    /// user timeout; Linux bounds it with `tcp_retries2`, about 15 min).
    pub user_timeout_ms: u64,
    /// Abort a connection that hears nothing for this long, ms (0: never).
    pub idle_timeout_ms: u64,
    /// Send keep-alives after this much silence, ms (0: never).
    pub keepalive_ms: u64,
    /// A connection closed by the application but not by the peer (stuck in
    /// FIN-WAIT-2) is aborted after this long, ms.
    pub orphan_timeout_ms: u64,
    /// Most segments one connection may send per loop iteration before the
    /// others get their turn.
    pub egress_burst: usize,
    /// Leave IPv4 and TCP checksums to the NIC (the 82599's offload: it
    /// inserts them on transmit and verifies them on receive) when the
    /// packet I/O has it; off: the stack computes and verifies every one.
    pub checksum_offload: bool,
    /// ICMP rate limit per core, as Linux's `icmp_ratelimit`: a token
    /// bucket that gains one message per this many ms, ms (0: no limit).
    /// Applies to the ICMP types in `icmp_ratemask`.
    pub icmp_ratelimit_ms: u64,
    /// Most ICMP messages the bucket holds (sent at once after a quiet
    /// time); 6 is Linux's burst factor (`XRLIM_BURST_FACTOR`).
    pub icmp_ratelimit_burst: u32,
    /// ICMP types the rate limit applies to, bit N for type N (types 0 to
    /// 18), as Linux's `icmp_ratemask`. The default, Linux's 0x1818,
    /// limits destination unreachable (3), source quench (4), time
    /// exceeded (11) and parameter problem (12), and not echo replies (0):
    /// set bit 0 (0x1819) to limit those as well.
    pub icmp_ratemask: u32,
    /// Datagrams each bound UDP port holds until the application reads
    /// them; more are dropped (and counted).
    pub udp_rx_queue: usize,
    /// Write an Ethernet-level capture of every core to this file
    /// (`FILE` for one core, `FILE.N` for core N otherwise).
    pub pcap: Option<PathBuf>,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            ip: Ipv4Addr::UNSPECIFIED,
            prefix_len: 24,
            gateway: None,
            mac: None,
            cores: 1,
            cpus: None,
            rx_ring_size: 512,
            tx_ring_size: 512,
            mempool_size: 4096,
            rx_burst: 64,
            mtu: 1500,
            // Small, for many short connections: smoltcp's receive ring
            // does not go back to its start when it empties, so each
            // segment lands further on, and the rings of the connections
            // in use together are the memory their data passes through.
            // At 64 KiB, 64 echo connections walked 4 MiB (more than this
            // machine's 2 MiB L2): 16 KiB served 15 % more echo
            // transactions per second. Bulk transfers set more.
            socket_rx_buffer: 16 * 1024,
            socket_tx_buffer: 16 * 1024,
            max_connections: 1024,
            preallocate: false,
            backlog: 128,
            time_wait_ms: 2_000,
            time_wait_max: 16_384,
            static_neighbors: Vec::new(),
            neighbor_capacity: 1024,
            neighbor_ttl_ms: 300_000,
            arp_pending_max: 256,
            arp_pending_timeout_ms: 3_000,
            arp_retry_ms: 500,
            nodelay: true,
            ack_delay_ms: 0,
            congestion: Congestion::Reno,
            tcp_timestamps: false,
            ephemeral_first: 32_768,
            ephemeral_last: 60_999,
            connect_timeout_ms: 20_000,
            syn_cookies: true,
            challenge_ack_limit: 1_000,
            user_timeout_ms: 120_000,
            idle_timeout_ms: 0,
            keepalive_ms: 0,
            orphan_timeout_ms: 60_000,
            egress_burst: 32,
            checksum_offload: true,
            icmp_ratelimit_ms: 1_000,
            icmp_ratelimit_burst: 6,
            icmp_ratemask: 0x1818,
            udp_rx_queue: 256,
            pcap: None,
        }
    }
}

/// A configuration error: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A field has a value the stack cannot use.
    Invalid {
        /// The field's name, as in the TOML file.
        field: &'static str,
        /// What is wrong and what would be right.
        problem: String,
    },
    /// The TOML text could not be read into the struct (the message names
    /// the key and line).
    Parse(String),
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { field, problem } => write!(f, "config field `{field}`: {problem}"),
            ConfigError::Parse(m) => write!(f, "config: {m}"),
            ConfigError::Io { path, error } => write!(f, "config file {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, problem: problem.into() }
}

/// Smallest and largest [`StackConfig::mtu`].
pub const MTU_RANGE: (usize, usize) = (576, 9000);

/// Ethernet header plus FCS: what a frame adds to the IP MTU.
const ETH_OVERHEAD: usize = 18;

fn in_range<T: PartialOrd + fmt::Display + Copy>(field: &'static str, v: T, lo: T, hi: T) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(field, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

impl StackConfig {
    /// A default configuration for address `ip/prefix_len`.
    pub fn new(ip: Ipv4Addr, prefix_len: u8) -> StackConfig {
        StackConfig { ip, prefix_len, ..StackConfig::default() }
    }

    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<StackConfig, ConfigError> {
        let cfg: StackConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<StackConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.to_path_buf(), error: e.to_string() })?;
        StackConfig::from_toml_str(&text)
    }

    /// The subnet mask as an address.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// True if `addr` is on our subnet (reachable without the gateway).
    pub fn on_subnet(&self, addr: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask());
        u32::from(addr) & m == u32::from(self.ip) & m
    }

    /// Largest Ethernet frame of this MTU, FCS included, and never below
    /// the standard 1518 (the MAC's limit without jumbo frames).
    pub fn max_frame_size(&self) -> u32 {
        let frame = (self.mtu + ETH_OVERHEAD) as u32;
        frame.max(ixtcp_driver::device::STANDARD_MAX_FRAME)
    }

    /// Size of every packet buffer (mempool entry): a power of two, at
    /// least 2048, that holds a frame of [`max_frame_size`](Self::max_frame_size)
    /// received at its start and one built for sending behind the TX
    /// headroom. 2048 for an MTU of 1500, 16384 for 9000.
    pub fn buffer_size(&self) -> u32 {
        let tx = self.max_frame_size() + u32::from(ixtcp_driver::mempool::DEFAULT_HEADROOM);
        tx.next_power_of_two().max(ixtcp_driver::mempool::DEFAULT_ENTRY_SIZE)
    }

    /// The driver configuration this stack configuration implies (queues,
    /// rings, mempool and its buffer size, largest frame, MAC; the
    /// symmetric RSS key and a round-robin table).
    pub fn device_config(&self) -> ixtcp_driver::device::DeviceConfig {
        ixtcp_driver::device::DeviceConfig {
            num_queues: self.cores,
            rx_ring_size: self.rx_ring_size,
            tx_ring_size: self.tx_ring_size,
            mempool_entries: self.mempool_size,
            buf_size: self.buffer_size(),
            max_frame_size: self.max_frame_size(),
            mac: self.mac.map(|m| m.0),
            ..ixtcp_driver::device::DeviceConfig::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ip.is_unspecified() || self.ip.is_broadcast() || self.ip.is_multicast() || self.ip.is_loopback() {
            return Err(invalid("ip", format!("{} is not a usable unicast host address", self.ip)));
        }
        in_range("prefix_len", self.prefix_len, 1, 32)?;
        if let Some(gw) = self.gateway {
            if gw == self.ip {
                return Err(invalid("gateway", "is our own address"));
            }
            if !self.on_subnet(gw) {
                return Err(invalid("gateway", format!("{gw} is not on our subnet {}/{}", self.ip, self.prefix_len)));
            }
        }
        if let Some(mac) = self.mac
            && !mac.is_unicast()
        {
            return Err(invalid("mac", format!("{mac} is not a unicast address")));
        }
        in_range("cores", self.cores, 1, 16)?;
        if let Some(cpus) = &self.cpus {
            if cpus.len() != usize::from(self.cores) {
                return Err(invalid(
                    "cpus",
                    format!(
                        "{} CPUs for {} cores: give one CPU per core (e.g. cpus = {:?}), or leave cpus out to not pin",
                        cpus.len(),
                        self.cores,
                        (0..usize::from(self.cores)).collect::<Vec<_>>()
                    ),
                ));
            }
            if let Some((i, cpu)) = cpus.iter().enumerate().find(|(i, c)| cpus[..*i].contains(c)) {
                return Err(invalid(
                    "cpus",
                    format!("CPU {cpu} is given twice (entry {i}): each core needs a CPU of its own"),
                ));
            }
        }
        for (field, ring) in [("rx_ring_size", self.rx_ring_size), ("tx_ring_size", self.tx_ring_size)] {
            // The driver indexes rings with a mask: a power of two.
            if !(64..=4096).contains(&ring) || !ring.is_power_of_two() {
                return Err(invalid(field, format!("{ring} must be a power of two in 64..=4096")));
            }
        }
        let rings = u32::from(self.rx_ring_size) + u32::from(self.tx_ring_size);
        if self.mempool_size < rings + 64 {
            return Err(invalid(
                "mempool_size",
                format!(
                    "{} buffers cannot fill both rings ({rings}) and leave room to build packets",
                    self.mempool_size
                ),
            ));
        }
        in_range("rx_burst", self.rx_burst, 1, 1024)?;
        in_range("mtu", self.mtu, MTU_RANGE.0, MTU_RANGE.1)?;
        // Below 1 GiB: smoltcp announces a window scale of log2(capacity)
        // - 15, so 2^30 itself would ask for 15, beyond RFC 7323's 14.
        in_range("socket_rx_buffer", self.socket_rx_buffer, 1024, (1 << 30) - 1)?;
        in_range("socket_tx_buffer", self.socket_tx_buffer, 1024, 1 << 30)?;
        in_range("max_connections", self.max_connections, 1, 1 << 22)?;
        in_range("backlog", self.backlog, 1, 1 << 22)?;
        in_range("time_wait_ms", self.time_wait_ms, 0, 600_000)?;
        in_range("time_wait_max", self.time_wait_max, 1, 1 << 24)?;
        in_range("neighbor_capacity", self.neighbor_capacity, 16, 1 << 20)?;
        if self.static_neighbors.len() > self.neighbor_capacity / 2 {
            return Err(invalid("static_neighbors", "more entries than half of neighbor_capacity"));
        }
        for n in &self.static_neighbors {
            if !n.mac.is_unicast() {
                return Err(invalid("static_neighbors", format!("{} for {} is not unicast", n.mac, n.ip)));
            }
        }
        in_range("neighbor_ttl_ms", self.neighbor_ttl_ms, 1_000, 86_400_000)?;
        in_range("arp_pending_max", self.arp_pending_max, 0, 65_536)?;
        in_range("arp_pending_timeout_ms", self.arp_pending_timeout_ms, 1, 60_000)?;
        in_range("arp_retry_ms", self.arp_retry_ms, 1, 60_000)?;
        in_range("ack_delay_ms", self.ack_delay_ms, 0, 500)?;
        if self.ephemeral_first == 0 || self.ephemeral_first > self.ephemeral_last {
            return Err(invalid("ephemeral_first", "must be non-zero and not above ephemeral_last"));
        }
        if u32::from(self.ephemeral_last - self.ephemeral_first) + 1 < 16 * u32::from(self.cores) {
            return Err(invalid("ephemeral_last", "the ephemeral range is too small to give every core ports"));
        }
        in_range("connect_timeout_ms", self.connect_timeout_ms, 100, 600_000)?;
        in_range("challenge_ack_limit", self.challenge_ack_limit, 0, 1_000_000)?;
        in_range("user_timeout_ms", self.user_timeout_ms, 0, 86_400_000)?;
        in_range("egress_burst", self.egress_burst, 1, 4096)?;
        in_range("orphan_timeout_ms", self.orphan_timeout_ms, 1, 3_600_000)?;
        in_range("icmp_ratelimit_ms", self.icmp_ratelimit_ms, 0, 60_000)?;
        in_range("icmp_ratelimit_burst", self.icmp_ratelimit_burst, 1, 10_000)?;
        if self.icmp_ratemask >> 19 != 0 {
            return Err(invalid(
                "icmp_ratemask",
                format!(
                    "{:#x} has bits above 18: ICMP types run from 0 to 18 (Linux's default is 0x1818)",
                    self.icmp_ratemask
                ),
            ));
        }
        in_range("udp_rx_queue", self.udp_rx_queue, 1, 65_536)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_all_kinds_of_fields_loads() {
        let cfg = StackConfig::from_toml_str(
            r#"
            ip = "10.0.0.1"
            prefix_len = 16
            gateway = "10.0.255.254"
            mac = "02:00:00:00:00:01"
            cores = 4
            cpus = [2, 3, 4, 5]
            socket_rx_buffer = 8192
            congestion = "none"
            time_wait_ms = 0
            [[static_neighbors]]
            ip = "10.0.255.254"
            mac = "02:00:00:00:00:fe"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.cores, 4);
        assert_eq!(cfg.cpus, Some(vec![2, 3, 4, 5]));
        assert_eq!(StackConfig::default().cpus, None, "not pinned unless asked");
        assert_eq!(cfg.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert!(cfg.on_subnet(Ipv4Addr::new(10, 0, 9, 9)));
        assert!(!cfg.on_subnet(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(cfg.static_neighbors[0].mac.to_string(), "02:00:00:00:00:fe");
        assert_eq!(cfg.congestion, Congestion::None);
    }

    #[test]
    fn errors_name_the_field() {
        let base = StackConfig::new(Ipv4Addr::new(10, 0, 0, 1), 24);
        let cases: Vec<(&str, StackConfig)> = vec![
            ("ip", StackConfig { ip: Ipv4Addr::UNSPECIFIED, ..base.clone() }),
            ("prefix_len", StackConfig { prefix_len: 33, ..base.clone() }),
            ("gateway", StackConfig { gateway: Some(Ipv4Addr::new(192, 168, 0, 1)), ..base.clone() }),
            ("cores", StackConfig { cores: 17, ..base.clone() }),
            ("icmp_ratelimit_ms", StackConfig { icmp_ratelimit_ms: 60_001, ..base.clone() }),
            ("icmp_ratelimit_burst", StackConfig { icmp_ratelimit_burst: 0, ..base.clone() }),
            ("icmp_ratemask", StackConfig { icmp_ratemask: 1 << 19, ..base.clone() }),
            ("udp_rx_queue", StackConfig { udp_rx_queue: 0, ..base.clone() }),
            ("rx_ring_size", StackConfig { rx_ring_size: 100, ..base.clone() }),
            ("mempool_size", StackConfig { mempool_size: 100, ..base.clone() }),
            ("socket_tx_buffer", StackConfig { socket_tx_buffer: 10, ..base.clone() }),
            ("socket_rx_buffer", StackConfig { socket_rx_buffer: 1 << 30, ..base.clone() }),
            ("ephemeral_first", StackConfig { ephemeral_first: 5000, ephemeral_last: 4000, ..base.clone() }),
            ("mac", StackConfig { mac: Some(MacAddr::BROADCAST), ..base.clone() }),
            ("cpus", StackConfig { cpus: Some(vec![]), ..base.clone() }),
            ("cpus", StackConfig { cores: 2, cpus: Some(vec![3]), ..base.clone() }),
            ("cpus", StackConfig { cores: 2, cpus: Some(vec![3, 3]), ..base.clone() }),
        ];
        for (field, cfg) in cases {
            let err = cfg.validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { field: f, .. } if f == field), "{field}: {err}");
            assert!(err.to_string().contains(field));
        }
        base.validate().unwrap();
    }

    #[test]
    fn mtu_out_of_range_names_the_key_and_the_range() {
        let base = StackConfig::new(Ipv4Addr::new(10, 0, 0, 1), 24);
        for mtu in [575, 9001] {
            let err = StackConfig { mtu, ..base.clone() }.validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { field: "mtu", .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("`mtu`") && msg.contains(&mtu.to_string()) && msg.contains("576..=9000"), "{msg}");
        }
        for mtu in [576, 1500, 9000] {
            StackConfig { mtu, ..base.clone() }.validate().unwrap();
        }
        let err = StackConfig::from_toml_str("ip = \"10.0.0.1\"\nmtu = 9001\n").unwrap_err();
        assert!(err.to_string().contains("mtu") && err.to_string().contains("576..=9000"), "{err}");
    }

    #[test]
    fn the_mtu_sets_the_frame_and_buffer_sizes() {
        let base = StackConfig::new(Ipv4Addr::new(10, 0, 0, 1), 24);
        assert_eq!(base.mtu, 1500, "1500 stays the default");
        let sizes = |mtu| {
            let c = StackConfig { mtu, ..base.clone() };
            let d = c.device_config();
            d.validate().unwrap_or_else(|e| panic!("mtu {mtu}: {e}"));
            assert_eq!((d.buf_size, d.max_frame_size), (c.buffer_size(), c.max_frame_size()));
            (d.max_frame_size, d.buf_size)
        };
        assert_eq!(sizes(576), (1518, 2048));
        assert_eq!(sizes(1500), (1518, 2048));
        // 1501 + 18 + 64 bytes of TX headroom: the next power of two.
        assert_eq!(sizes(1501), (1519, 2048));
        assert_eq!(sizes(1966), (1984, 2048));
        assert_eq!(sizes(1967), (1985, 4096));
        assert_eq!(sizes(9000), (9018, 16384));
    }

    #[test]
    fn congestion_control_is_reno_cubic_or_none() {
        let load = |text: &str| StackConfig::from_toml_str(&format!("ip = \"10.0.0.1\"\n{text}\n"));
        assert_eq!(load("congestion = \"cubic\"").unwrap().congestion, Congestion::Cubic);
        assert_eq!(load("congestion_control = \"cubic\"").unwrap().congestion, Congestion::Cubic);
        assert_eq!(load("congestion_control = \"reno\"").unwrap().congestion, Congestion::Reno);
        assert_eq!(load("").unwrap().congestion, Congestion::Reno);
        let err = load("congestion_control = \"bbr\"").unwrap_err().to_string();
        assert!(err.contains("congestion_control") && err.contains("bbr"), "{err}");
        assert!(err.contains("reno") && err.contains("cubic"), "the error lists what is accepted: {err}");
        assert!(load("tcp_timestamps = true").unwrap().tcp_timestamps);
    }

    #[test]
    fn toml_errors_name_the_key() {
        let err = StackConfig::from_toml_str("ip = \"10.0.0.1\"\nbacklog = \"many\"\n").unwrap_err();
        assert!(err.to_string().contains("backlog"), "{err}");
        let err = StackConfig::from_toml_str("ip = \"10.0.0.1\"\nbaklog = 5\n").unwrap_err();
        assert!(err.to_string().contains("baklog"), "{err}");
        let err = StackConfig::from_toml_str("ip = \"10.0.0.1\"\nmac = \"nope\"\n").unwrap_err();
        assert!(err.to_string().contains("mac") || err.to_string().contains("nope"), "{err}");
        let err = StackConfig::from_file(Path::new("/nonexistent/ixtcp.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
    }
}
