//! Reading mTCP's configuration file (`mtcp_init(config_file)`) into a
//! [`HostConfig`].
//!
//! The format is mTCP's: one `key = value` per line (the `=` may be left
//! out: key and value are split at spaces, tabs and `=`), `#` starts a
//! comment. The keys:
//!
//! | key | what ixtcp does with it |
//! |---|---|
//! | `num_cores` | stack cores (= NIC queue pairs), 1..=16 |
//! | `max_concurrency` | most connections per core |
//! | `max_num_buffers` | accepted and reported by `mtcp_getconf`; ixtcp sizes buffers per connection |
//! | `rcvbuf`, `sndbuf` | each connection's receive and send buffer, bytes (one set alone sets both, as in mTCP) |
//! | `tcp_timeout` | abort a connection silent this many seconds (`-1` or `0`: never) |
//! | `tcp_timewait` | seconds a closed 4-tuple stays in TIME_WAIT (`0`: not kept) |
//! | `stat_print` | print the stack's counters at `mtcp_destroy` |
//! | `port` | the NIC, as ixtcp names one: `tap:NAME`, `packet:IFACE`, `pci:ADDR`, `vfio:ADDR`; or `model`, an 82599 model with nothing plugged in (no packet leaves: for trying the API and for tests) |
//! | `address` | `A.B.C.D/N`: this host's address and prefix (mTCP took it from the kernel's interface) |
//! | `gateway` | `A.B.C.D`, optional |
//! | `mac` | the station MAC, optional (default: the NIC's) |
//! | `cc` | congestion control: `reno`, `cubic` or `none` |
//! | `pcap` | ixtcp's own: write every frame the stack sends and receives to this pcap file (`FILE.N` for core N when there are several) |
//!
//! Keys that only meant something to mTCP's packet I/O back ends (`io`,
//! `num_mem_ch`, `core_mask`, `multiprocess`, `onvm_*`) are accepted with a
//! one-line notice. Anything else fails `mtcp_init` with the line, the key
//! and what ixtcp expects; so does a DPDK or netmap port name such as
//! `dpdk0`.
//!
//! mTCP's static tables are read from `config/arp.conf` and
//! `config/route.conf` in the config file's directory when present:
//! `ARP_ENTRY n` then `A.B.C.D/32 MAC` lines (static neighbours), and
//! `ROUTES n` then `A.B.C.D/N DEV` lines, of which ixtcp (one port, one
//! subnet) takes a `/0` entry as the gateway and accepts entries for its own
//! subnet; a route to any other network is refused.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ixtcp_host::{HostConfig, Nic};
use ixtcp_sockapi::Mode;
use ixtcp_stack::config::StaticNeighbor;
use ixtcp_stack::{Congestion, MacAddr, StackConfig};

/// The fields of C's `struct mtcp_conf`, on the Rust side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Stack cores.
    pub num_cores: i32,
    /// Most connections per core.
    pub max_concurrency: i32,
    /// mTCP's socket buffer count (recorded only).
    pub max_num_buffers: i32,
    /// Receive buffer per connection, bytes.
    pub rcvbuf_size: i32,
    /// Send buffer per connection, bytes.
    pub sndbuf_size: i32,
    /// TIME_WAIT, seconds.
    pub tcp_timewait: i32,
    /// Idle timeout, seconds (`-1` or `0`: none).
    pub tcp_timeout: i32,
}

impl Default for Settings {
    fn default() -> Settings {
        let stack = StackConfig::default();
        Settings {
            num_cores: std::thread::available_parallelism().map_or(1, |n| n.get().min(16)) as i32,
            max_concurrency: 10_000,
            max_num_buffers: 10_000,
            rcvbuf_size: stack.socket_rx_buffer as i32,
            sndbuf_size: stack.socket_tx_buffer as i32,
            tcp_timewait: 0,
            tcp_timeout: 30,
        }
    }
}

/// Why a configuration was refused: where, which key, and what ixtcp
/// expects there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// The file (or `<text>`).
    pub file: String,
    /// 1-based line, 0 when the problem is not on one line.
    pub line: usize,
    /// The message, naming the key.
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for ConfError {}

/// What a configuration file said, before it is applied to [`Settings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtcpConfig {
    /// `num_cores`.
    pub num_cores: Option<i32>,
    /// `max_concurrency`.
    pub max_concurrency: Option<i32>,
    /// `max_num_buffers`.
    pub max_num_buffers: Option<i32>,
    /// `rcvbuf`.
    pub rcvbuf: Option<i32>,
    /// `sndbuf`.
    pub sndbuf: Option<i32>,
    /// `tcp_timeout`, seconds.
    pub tcp_timeout: Option<i32>,
    /// `tcp_timewait`, seconds.
    pub tcp_timewait: Option<i32>,
    /// `stat_print` given.
    pub stat_print: bool,
    /// `port`.
    pub port: Option<Nic>,
    /// `address`.
    pub address: Option<(Ipv4Addr, u8)>,
    /// `gateway` (or a `/0` route).
    pub gateway: Option<Ipv4Addr>,
    /// `mac`.
    pub mac: Option<MacAddr>,
    /// `cc`.
    pub congestion: Option<Congestion>,
    /// `pcap`.
    pub pcap: Option<PathBuf>,
    /// Entries of `arp.conf`.
    pub neighbors: Vec<StaticNeighbor>,
    /// Routes of `route.conf`, checked against `address` when applied.
    pub routes: Vec<(Ipv4Addr, u8, usize)>,
    /// One line per key accepted without effect.
    pub notices: Vec<String>,
}

/// Keys of mTCP's I/O back ends that mean nothing on ixtcp.
const BACKEND_KEYS: [&str; 7] =
    ["io", "num_mem_ch", "core_mask", "multiprocess", "onvm_serv", "onvm_inst", "onvm_dest"];

const PORT_EXPECTED: &str =
    "an ixtcp NIC: tap:NAME, packet:IFACE, pci:ADDR or vfio:ADDR (e.g. port = pci:0000:03:00.0), or model";

fn parse_int(file: &str, line: usize, key: &str, value: &str, min: i64, max: i64) -> Result<i32, ConfError> {
    let err = || ConfError {
        file: file.into(),
        line,
        message: format!("{key} = {value}: expected a whole number in {min}..={max}"),
    };
    let n: i64 = value.parse().map_err(|_| err())?;
    if n < min || n > max {
        return Err(err());
    }
    Ok(n as i32)
}

/// `A.B.C.D/N`.
pub fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((ip, len))
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

impl MtcpConfig {
    /// Reads the main file's text (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<MtcpConfig, ConfError> {
        let mut c = MtcpConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let mut words = body.split([' ', '\t', '=']).filter(|w| !w.is_empty());
            let key = words.next().unwrap_or("");
            let values: Vec<&str> = words.collect();
            let err = |message: String| ConfError { file: file.into(), line, message };
            let Some(&value) = values.first() else {
                return Err(err(format!("{key} has no value (expected `{key} = VALUE`)")));
            };
            match key {
                "num_cores" => c.num_cores = Some(parse_int(file, line, key, value, 1, 16)?),
                "max_concurrency" => c.max_concurrency = Some(parse_int(file, line, key, value, 1, 1 << 22)?),
                "max_num_buffers" => c.max_num_buffers = Some(parse_int(file, line, key, value, 1, 1 << 22)?),
                "rcvbuf" => c.rcvbuf = Some(parse_int(file, line, key, value, 1024, (1 << 30) - 1)?),
                "sndbuf" => c.sndbuf = Some(parse_int(file, line, key, value, 1024, (1 << 30) - 1)?),
                "tcp_timeout" => c.tcp_timeout = Some(parse_int(file, line, key, value, -1, 86_400)?),
                "tcp_timewait" => c.tcp_timewait = Some(parse_int(file, line, key, value, 0, 600)?),
                "stat_print" => c.stat_print = true,
                "port" => {
                    if values.len() > 1 {
                        return Err(err(format!(
                            "port = {}: ixtcp drives one port per process; expected one {PORT_EXPECTED}",
                            values.join(" ")
                        )));
                    }
                    let nic: Nic =
                        value.parse().map_err(|_| err(format!("port = {value}: expected {PORT_EXPECTED}")))?;
                    c.port = Some(nic);
                }
                "address" => {
                    c.address = Some(parse_prefix(value).ok_or_else(|| {
                        err(format!("address = {value}: expected A.B.C.D/N (e.g. address = 10.0.0.1/24)"))
                    })?)
                }
                "gateway" => {
                    c.gateway = Some(
                        value
                            .parse()
                            .map_err(|_| err(format!("gateway = {value}: expected an IPv4 address A.B.C.D")))?,
                    )
                }
                "mac" => c.mac = Some(value.parse().map_err(|e| err(format!("mac = {value}: {e}")))?),
                "cc" => {
                    c.congestion = Some(match value {
                        "reno" => Congestion::Reno,
                        "cubic" => Congestion::Cubic,
                        "none" => Congestion::None,
                        _ => return Err(err(format!("cc = {value}: expected reno, cubic or none"))),
                    })
                }
                "pcap" => c.pcap = Some(PathBuf::from(value)),
                k if BACKEND_KEYS.contains(&k) || k.starts_with("onvm_") => {
                    c.notices.push(format!("{file}:{line}: {k} is for mTCP's DPDK/netmap back ends; ixtcp ignores it"));
                }
                _ => {
                    return Err(err(format!(
                        "unknown key {key:?}: expected one of num_cores, max_concurrency, max_num_buffers, rcvbuf, \
                         sndbuf, tcp_timeout, tcp_timewait, stat_print, port, address, gateway, mac, cc, pcap"
                    )));
                }
            }
        }
        Ok(c)
    }

    /// Reads mTCP's `arp.conf`: `ARP_ENTRY n`, then `A.B.C.D/32 MAC` lines.
    pub fn parse_arp(&mut self, file: &str, text: &str) -> Result<(), ConfError> {
        for (line, fields) in table_lines(text) {
            let err = |message: String| ConfError { file: file.into(), line, message };
            if fields[0] == "ARP_ENTRY" {
                continue;
            }
            let [addr, mac] = fields[..] else {
                return Err(err(format!("expected `A.B.C.D/32 MAC`, found {:?}", fields.join(" "))));
            };
            let (ip, len) = parse_prefix(addr)
                .or_else(|| addr.parse().ok().map(|ip| (ip, 32)))
                .ok_or_else(|| err(format!("{addr}: expected A.B.C.D/32")))?;
            if len != 32 {
                return Err(err(format!("{addr}: ixtcp takes static entries for one host each (/32)")));
            }
            let mac: MacAddr = mac.parse().map_err(|e| err(format!("{e}")))?;
            self.neighbors.push(StaticNeighbor { ip, mac });
        }
        Ok(())
    }

    /// Reads mTCP's `route.conf`: `ROUTES n`, then `A.B.C.D/N DEV` lines.
    pub fn parse_routes(&mut self, file: &str, text: &str) -> Result<(), ConfError> {
        for (line, fields) in table_lines(text) {
            let err = |message: String| ConfError { file: file.into(), line, message };
            if fields[0] == "ROUTES" {
                continue;
            }
            let [addr, _dev] = fields[..] else {
                return Err(err(format!("expected `A.B.C.D/N DEVICE`, found {:?}", fields.join(" "))));
            };
            let (ip, len) = parse_prefix(addr).ok_or_else(|| err(format!("{addr}: expected A.B.C.D/N")))?;
            if len == 0 {
                self.gateway.get_or_insert(ip);
            } else {
                self.routes.push((ip, len, line));
            }
        }
        Ok(())
    }

    /// Reads `path` and the `config/arp.conf` and `config/route.conf` next
    /// to it, if present.
    pub fn load(path: &Path) -> Result<MtcpConfig, ConfError> {
        let name = path.display().to_string();
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| ConfError {
                file: p.display().to_string(),
                line: 0,
                message: format!("cannot read the config file: {e}"),
            })
        };
        let mut c = MtcpConfig::parse(&name, &read(path)?)?;
        let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let arp = dir.join("config").join("arp.conf");
        if arp.is_file() {
            c.parse_arp(&arp.display().to_string(), &read(&arp)?)?;
        }
        let route = dir.join("config").join("route.conf");
        if route.is_file() {
            c.parse_routes(&route.display().to_string(), &read(&route)?)?;
        }
        Ok(c)
    }

    /// What `mtcp_getconf` reports after init: `base` (from
    /// `mtcp_setconf`, or the defaults) with this file's keys on top.
    pub fn settings(&self, base: Settings) -> Settings {
        let mut s = base;
        if let Some(v) = self.num_cores {
            s.num_cores = v;
        }
        if let Some(v) = self.max_concurrency {
            s.max_concurrency = v;
        }
        if let Some(v) = self.max_num_buffers {
            s.max_num_buffers = v;
        }
        // One buffer size given: both take it, as mTCP does.
        match (self.rcvbuf, self.sndbuf) {
            (Some(r), Some(w)) => (s.rcvbuf_size, s.sndbuf_size) = (r, w),
            (Some(v), None) | (None, Some(v)) => (s.rcvbuf_size, s.sndbuf_size) = (v, v),
            (None, None) => {}
        }
        if let Some(v) = self.tcp_timeout {
            s.tcp_timeout = v;
        }
        if let Some(v) = self.tcp_timewait {
            s.tcp_timewait = v;
        }
        s
    }

    /// The host these settings and this file describe (threaded, mTCP's
    /// model). `file` names the config in errors.
    pub fn host_config(&self, file: &str, s: &Settings) -> Result<HostConfig, ConfError> {
        let err = |message: String| ConfError { file: file.into(), line: 0, message };
        let nic = self.port.clone().ok_or_else(|| err(format!("no `port` key: expected port = {PORT_EXPECTED}")))?;
        let (ip, prefix) = self
            .address
            .ok_or_else(|| err("no `address` key: expected address = A.B.C.D/N (this host's address)".into()))?;
        let mut stack = StackConfig::new(ip, prefix);
        stack.gateway = self.gateway;
        stack.mac = self.mac;
        stack.static_neighbors = self.neighbors.clone();
        for &(net, len, line) in &self.routes {
            let ours = len >= prefix && (u32::from(net) & mask(prefix)) == (u32::from(ip) & mask(prefix));
            if !ours {
                return Err(ConfError {
                    file: format!("{}/config/route.conf", Path::new(file).parent().unwrap_or(Path::new(".")).display()),
                    line,
                    message: format!(
                        "route {net}/{len} is not on this host's subnet {ip}/{prefix}: ixtcp has one subnet and a \
                         gateway (give the gateway as `gateway = A.B.C.D` or a /0 route)"
                    ),
                });
            }
        }
        let range = |key: &str, v: i32, lo: i32, hi: i32| {
            if (lo..=hi).contains(&v) { Ok(v) } else { Err(err(format!("{key} = {v}: expected {lo}..={hi}"))) }
        };
        stack.cores = range("num_cores", s.num_cores, 1, 16)? as u16;
        stack.max_connections = range("max_concurrency", s.max_concurrency, 1, 1 << 22)? as usize;
        stack.socket_rx_buffer = range("rcvbuf", s.rcvbuf_size, 1024, (1 << 30) - 1)? as usize;
        stack.socket_tx_buffer = range("sndbuf", s.sndbuf_size, 1024, (1 << 30) - 1)? as usize;
        stack.time_wait_ms = range("tcp_timewait", s.tcp_timewait, 0, 600)? as u64 * 1000;
        stack.idle_timeout_ms = range("tcp_timeout", s.tcp_timeout, -1, 86_400)?.max(0) as u64 * 1000;
        if let Some(cc) = self.congestion {
            stack.congestion = cc;
        }
        stack.pcap = self.pcap.clone();
        stack.validate().map_err(|e| err(format!("the stack refuses these settings: {e}")))?;
        let mut host = match nic {
            // Hardware polls without pause, as mTCP's DPDK threads do.
            Nic::Pci(_) | Nic::Vfio(_) => HostConfig::new(stack, nic, Mode::Threaded),
            // A model (behind TAP or AF_PACKET) shares the machine with
            // its peer: it naps when idle.
            _ => HostConfig { nic, ..HostConfig::model(stack, Mode::Threaded) },
        };
        host.linger = Duration::from_secs(1);
        Ok(host)
    }
}

/// The non-empty, non-comment lines of an mTCP table file, split at
/// whitespace, with their line numbers.
fn table_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let body = raw.split('#').next().unwrap_or("").trim();
        (!body.is_empty()).then(|| (i + 1, body.split_whitespace().collect()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of mTCP's epserver.conf, with an ixtcp port and address.
    const EPSERVER: &str = "############### mtcp configuration file ###############
# The underlying I/O module
#io = psio
io = dpdk

# No. of cores setting
#num_cores = 8
num_cores = 2
num_mem_ch = 4

#port = dpdk0
port = tap:ixmtcp0
address = 10.90.0.1/24
gateway = 10.90.0.254

# Maximum concurrency per core
max_concurrency = 10000
max_num_buffers = 10000
rcvbuf = 8192
sndbuf = 8192
tcp_timeout = 30
tcp_timewait = 0
stat_print = dpdk0
";

    #[test]
    fn an_epserver_shaped_config_becomes_a_host() {
        let c = MtcpConfig::parse("epserver.conf", EPSERVER).unwrap();
        assert_eq!(c.port, Some(Nic::Tap("ixmtcp0".into())));
        assert_eq!(c.notices.len(), 2, "{:?}", c.notices);
        assert!(c.notices[0].contains("io is for mTCP's DPDK/netmap back ends"), "{:?}", c.notices);
        let s = c.settings(Settings::default());
        assert_eq!((s.num_cores, s.rcvbuf_size, s.sndbuf_size, s.tcp_timeout), (2, 8192, 8192, 30));
        let host = c.host_config("epserver.conf", &s).unwrap();
        assert_eq!(host.stack.ip, Ipv4Addr::new(10, 90, 0, 1));
        assert_eq!(host.stack.gateway, Some(Ipv4Addr::new(10, 90, 0, 254)));
        assert_eq!((host.stack.cores, host.stack.max_connections), (2, 10_000));
        assert_eq!(
            (host.stack.socket_rx_buffer, host.stack.time_wait_ms, host.stack.idle_timeout_ms),
            (8192, 0, 30_000)
        );
        assert_eq!(host.mode, Mode::Threaded);
        assert!(c.stat_print);
    }

    #[test]
    fn keys_without_spaces_or_equals_and_trailing_comments_read_as_mtcp_reads_them() {
        let c =
            MtcpConfig::parse("x", "rcvbuf\t16384 # comment\nport=pci:0000:03:00.0\naddress 10.0.0.2/16\n").unwrap();
        assert_eq!(c.rcvbuf, Some(16384));
        assert_eq!(c.port, Some(Nic::Pci("0000:03:00.0".into())));
        assert_eq!(c.address, Some((Ipv4Addr::new(10, 0, 0, 2), 16)));
        let p = MtcpConfig::parse("x", "pcap = /tmp/x.pcap").unwrap();
        assert_eq!(p.pcap, Some(PathBuf::from("/tmp/x.pcap")));
        // rcvbuf alone sets both, as in mTCP.
        let s = c.settings(Settings::default());
        assert_eq!((s.rcvbuf_size, s.sndbuf_size), (16384, 16384));
        let host = c.host_config("x", &s).unwrap();
        assert_eq!(host.idle_wait, None, "hardware polls");
    }

    #[test]
    fn setconf_values_are_the_base_and_file_keys_win() {
        let base = Settings { num_cores: 1, ..Settings::default() };
        let c = MtcpConfig::parse("x", "port = tap:a\naddress = 10.0.0.1/24\n").unwrap();
        assert_eq!(c.settings(base).num_cores, 1);
        let c = MtcpConfig::parse("x", "num_cores = 3\n").unwrap();
        assert_eq!(c.settings(base).num_cores, 3);
        // The unplugged model is a port too (tests, trying the API).
        assert_eq!(MtcpConfig::parse("x", "port = model").unwrap().port, Some(Nic::Model));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line_and_the_keys_ixtcp_knows() {
        let e = MtcpConfig::parse("app.conf", "port = tap:a\n\nrcvbuff = 8192\n").unwrap_err();
        assert_eq!(e.line, 3);
        let text = e.to_string();
        assert!(text.starts_with("app.conf:3: unknown key \"rcvbuff\""), "{text}");
        assert!(text.contains("rcvbuf"), "{text}");
    }

    #[test]
    fn a_dpdk_port_is_refused_naming_what_ixtcp_expects() {
        for bad in ["port = dpdk0", "port = xge0", "port = dpdk0 dpdk1"] {
            let e = MtcpConfig::parse("c", bad).unwrap_err().to_string();
            assert!(e.contains("port = dpdk0") || e.contains("port = xge0"), "{e}");
            assert!(e.contains("tap:NAME, packet:IFACE, pci:ADDR or vfio:ADDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("num_cores = 0", "num_cores = 0"),
            ("num_cores = lots", "num_cores = lots"),
            ("rcvbuf = 64", "rcvbuf = 64"),
            ("tcp_timewait = -3", "tcp_timewait = -3"),
            ("address = 10.0.0.1", "address = 10.0.0.1"),
            ("address = 10.0.0.1/40", "address = 10.0.0.1/40"),
            ("gateway = ten", "gateway = ten"),
            ("mac = 02:00", "mac = 02:00"),
            ("cc = vegas", "cc = vegas"),
            ("sndbuf", "sndbuf has no value"),
        ] {
            let e = MtcpConfig::parse("c", text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn a_config_without_port_or_address_cannot_start_a_host() {
        let c = MtcpConfig::parse("c", "address = 10.0.0.1/24").unwrap();
        assert!(c.host_config("c", &Settings::default()).unwrap_err().message.contains("no `port` key"));
        let c = MtcpConfig::parse("c", "port = tap:x").unwrap();
        assert!(c.host_config("c", &Settings::default()).unwrap_err().message.contains("no `address` key"));
        // The stack's own checks come through with the key.
        let c = MtcpConfig::parse("c", "port = tap:x\naddress = 10.0.0.1/24\ngateway = 10.9.0.1").unwrap();
        let e = c.host_config("c", &Settings::default()).unwrap_err().message;
        assert!(e.contains("gateway"), "{e}");
        // Settings from mtcp_setconf are range-checked too.
        let c = MtcpConfig::parse("c", "port = tap:x\naddress = 10.0.0.1/24").unwrap();
        let e = c.host_config("c", &Settings { sndbuf_size: 10, ..Settings::default() }).unwrap_err().message;
        assert!(e.contains("sndbuf = 10"), "{e}");
    }

    #[test]
    fn arp_and_route_tables_in_mtcps_shape_become_neighbours_and_a_gateway() {
        let mut c = MtcpConfig::parse("c", "port = tap:x\naddress = 10.0.0.5/24").unwrap();
        c.parse_arp(
            "arp.conf",
            "# static\nARP_ENTRY 2\n10.0.0.1/32 02:00:00:00:00:01\n10.0.0.2/32 02:00:00:00:00:02\n",
        )
        .unwrap();
        c.parse_routes("route.conf", "ROUTES 2\n10.0.0.1/24 dpdk0\n10.0.0.254/0 dpdk0\n").unwrap();
        let host = c.host_config("dir/c", &Settings::default()).unwrap();
        assert_eq!(host.stack.static_neighbors.len(), 2);
        assert_eq!(host.stack.static_neighbors[1].mac, "02:00:00:00:00:02".parse().unwrap());
        assert_eq!(host.stack.gateway, Some(Ipv4Addr::new(10, 0, 0, 254)));

        let mut other = MtcpConfig::parse("c", "port = tap:x\naddress = 10.0.0.5/24").unwrap();
        other.parse_routes("route.conf", "ROUTES 1\n10.0.1.1/24 dpdk1\n").unwrap();
        let e = other.host_config("dir/c", &Settings::default()).unwrap_err().to_string();
        assert!(e.contains("route 10.0.1.1/24 is not on this host's subnet"), "{e}");

        let e = c.parse_arp("arp.conf", "ARP_ENTRY 1\n10.0.0.0/24 02:00:00:00:00:01\n").unwrap_err().to_string();
        assert!(e.starts_with("arp.conf:2:") && e.contains("/32"), "{e}");
        let e = c.parse_arp("arp.conf", "10.0.0.9/32\n").unwrap_err().to_string();
        assert!(e.contains("expected `A.B.C.D/32 MAC`"), "{e}");
        let e = c.parse_routes("route.conf", "10.0.0.0 dpdk0\n").unwrap_err().to_string();
        assert!(e.contains("expected A.B.C.D/N"), "{e}");
    }

    #[test]
    fn load_reads_the_tables_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("app.conf"), "port = tap:x\naddress = 10.1.0.1/24\n").unwrap();
        std::fs::write(dir.path().join("config/arp.conf"), "ARP_ENTRY 1\n10.1.0.9/32 02:00:00:00:00:09\n").unwrap();
        std::fs::write(dir.path().join("config/route.conf"), "ROUTES 1\n10.1.0.254/0 dpdk0\n").unwrap();
        let c = MtcpConfig::load(&dir.path().join("app.conf")).unwrap();
        assert_eq!(c.neighbors.len(), 1);
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 1, 0, 254)));
        let e = MtcpConfig::load(&dir.path().join("missing.conf")).unwrap_err().to_string();
        assert!(e.contains("missing.conf") && e.contains("cannot read"), "{e}");
    }
}
