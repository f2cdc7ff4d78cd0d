//! The flags every ixtcp program takes, in one place:
//! `--nic`, `--ip ADDR/PREFIX`, `--gateway`, `--cores`, `--cpus LIST`,
//! `--config FILE` (the stack's TOML; flags given on the command line
//! override it), `--pcap FILE`, `--stats` and `--threaded`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;

use ixtcp_driver::pci;
use ixtcp_host::HostConfig;
use ixtcp_sockapi::Mode;
use ixtcp_stack::StackConfig;

use crate::{ExampleError, NicArgs, NicSpec};

/// An IPv4 address with its prefix length, `10.0.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 1..=32.
    pub prefix: u8,
}

impl FromStr for IpPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<IpPrefix, String> {
        let bad = || format!("bad --ip {s:?}: expected ADDR/PREFIX such as 10.0.0.1/24");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr = a.parse().map_err(|_| bad())?;
        let prefix = p.parse::<u8>().ok().filter(|p| (1..=32).contains(p)).ok_or_else(bad)?;
        Ok(IpPrefix { addr, prefix })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Flags shared by the programs that run the TCP stack.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// model | tap:NAME | packet:IFACE | pci:ADDR | vfio:ADDR
    #[arg(long, default_value = "model")]
    pub nic: NicSpec,
    /// Our address and prefix length (overrides the config file).
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub ip: Option<IpPrefix>,
    /// Next hop for destinations outside the subnet.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<Ipv4Addr>,
    /// Cores, one queue pair each (1..=16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub cores: Option<u16>,
    /// The CPU of each core, one per core (`--cpus 2,3`; the stack's `cpus`
    /// key). Default: on a NIC with a peer outside this process, core i on
    /// the i-th CPU the process may use, when there are enough; on the
    /// model, not pinned.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// The stack's configuration file (TOML; see the README for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write a capture of every frame (FILE for one core, FILE.N for core N).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Print per-core statistics once a second.
    #[arg(long)]
    pub stats: bool,
    /// A stack thread and an application thread per core (mTCP's model)
    /// instead of both on one thread (run to completion, the default).
    #[arg(long)]
    pub threaded: bool,
    /// Where PCI devices are found (for tests against a fake tree).
    #[arg(long, default_value = pci::SYSFS_PCI_DEVICES, hide = true)]
    pub sysfs_root: PathBuf,
}

impl StackArgs {
    /// The server a load generator talks to: `given` (its `--server`), or
    /// on `--nic model`, where the program runs the server itself on a
    /// linked model, `on_model`; on any other NIC `--server` is required.
    pub fn server(&self, given: Option<SocketAddrV4>, on_model: SocketAddrV4) -> Result<SocketAddrV4, ExampleError> {
        match given {
            Some(s) => Ok(s),
            None if self.nic == NicSpec::Model => Ok(on_model),
            None => Err(ExampleError::Other(format!("--server ADDR:PORT is required with --nic {}", self.nic))),
        }
    }

    /// The stack configuration: the file's (or the defaults), then the
    /// flags on top; `default_ip` when neither gives an address.
    pub fn stack_config(&self, default_ip: IpPrefix) -> Result<StackConfig, ExampleError> {
        let mut cfg = match &self.config {
            Some(path) => StackConfig::from_file(path).map_err(|e| ExampleError::Other(e.to_string()))?,
            None => StackConfig::default(),
        };
        match self.ip {
            Some(ip) => {
                cfg.ip = ip.addr;
                cfg.prefix_len = ip.prefix;
            }
            None if cfg.ip.is_unspecified() => {
                cfg.ip = default_ip.addr;
                cfg.prefix_len = default_ip.prefix;
            }
            None => {}
        }
        if let Some(g) = self.gateway {
            cfg.gateway = Some(g);
        }
        if let Some(c) = self.cores {
            cfg.cores = c;
        }
        if let Some(c) = &self.cpus {
            cfg.cpus = Some(c.clone());
        }
        if let Some(p) = &self.pcap {
            cfg.pcap = Some(p.clone());
        }
        cfg.validate().map_err(|e| ExampleError::Other(e.to_string()))?;
        Ok(cfg)
    }

    /// The sockapi runtime these flags ask for.
    pub fn mode(&self) -> Mode {
        if self.threaded { Mode::Threaded } else { Mode::Inline }
    }

    /// The host these flags describe: [`stack_config`](Self::stack_config)
    /// on `--nic` in [`mode`](Self::mode). A model naps briefly when idle
    /// (it shares the machine with its peer); hardware polls without pause.
    /// Pinned as [`cpus`](Self::cpus) says.
    pub fn host_config(&self, default_ip: IpPrefix) -> Result<HostConfig, ExampleError> {
        let mut stack = self.stack_config(default_ip)?;
        if stack.cpus.is_none() && self.nic != NicSpec::Model {
            stack.cpus = own_cpus(stack.cores);
        }
        let mut cfg = match self.nic {
            NicSpec::Pci(_) | NicSpec::Vfio(_) => HostConfig::new(stack, self.nic.clone(), self.mode()),
            _ => HostConfig { nic: self.nic.clone(), ..HostConfig::model(stack, self.mode()) },
        };
        cfg.open.sysfs_root = self.sysfs_root.clone();
        Ok(cfg)
    }

    /// The NIC flags for [`open`](crate::open), with one queue per core.
    pub fn nic_args(&self, cfg: &StackConfig) -> NicArgs {
        NicArgs {
            nic: self.nic.clone(),
            queues: cfg.cores,
            rx_ring: cfg.rx_ring_size,
            tx_ring: cfg.tx_ring_size,
            sysfs_root: self.sysfs_root.clone(),
        }
    }
}

/// One CPU per core, the first `cores` this process may run on, when it
/// may run on that many: the cores of a host whose peer is outside this
/// process then each own a CPU.
fn own_cpus(cores: u16) -> Option<Vec<usize>> {
    let ids = core_affinity::get_core_ids()?;
    (ids.len() >= usize::from(cores)).then(|| ids.iter().take(usize::from(cores)).map(|c| c.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        stack: StackArgs,
    }

    const DEFAULT: IpPrefix = IpPrefix { addr: Ipv4Addr::new(10, 0, 0, 1), prefix: 24 };

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stack.toml");
        std::fs::write(&file, "ip = \"10.1.0.1\"\nprefix_len = 16\ncores = 2\nnodelay = false\n").unwrap();
        let f = file.to_str().unwrap();
        let cli = Cli::try_parse_from(["x", "--config", f, "--cores", "1", "--gateway", "10.1.0.254"]).unwrap();
        let cfg = cli.stack.stack_config(DEFAULT).unwrap();
        assert_eq!((cfg.ip, cfg.prefix_len, cfg.cores), (Ipv4Addr::new(10, 1, 0, 1), 16, 1));
        assert_eq!(cfg.gateway, Some(Ipv4Addr::new(10, 1, 0, 254)));
        assert!(!cfg.nodelay);
        let cli = Cli::try_parse_from(["x", "--config", f, "--ip", "192.168.7.2/30"]).unwrap();
        let cfg = cli.stack.stack_config(DEFAULT).unwrap();
        assert_eq!((cfg.ip, cfg.prefix_len, cfg.cores), (Ipv4Addr::new(192, 168, 7, 2), 30, 2));
        let cfg = Cli::try_parse_from(["x"]).unwrap().stack.stack_config(DEFAULT).unwrap();
        assert_eq!((cfg.ip, cfg.prefix_len), (DEFAULT.addr, 24));
    }

    #[test]
    fn cpus_pin_the_cores_and_the_model_is_not_pinned_by_default() {
        let cli = Cli::try_parse_from(["x", "--cores", "2", "--cpus", "1,0"]).unwrap();
        assert_eq!(cli.stack.stack_config(DEFAULT).unwrap().cpus, Some(vec![1, 0]));
        let model = Cli::try_parse_from(["x", "--cores", "2"]).unwrap();
        assert_eq!(model.stack.host_config(DEFAULT).unwrap().stack.cpus, None);
        // A TAP device's peer is the kernel: the cores own CPUs when there
        // are enough of them.
        let tap = Cli::try_parse_from(["x", "--nic", "tap:t0"]).unwrap();
        let first = core_affinity::get_core_ids().unwrap()[0].id;
        assert_eq!(tap.stack.host_config(DEFAULT).unwrap().stack.cpus, Some(vec![first]));
        // One CPU per core, each its own: the error names the key.
        for args in [&["x", "--cores", "2", "--cpus", "3"][..], &["x", "--cores", "2", "--cpus", "3,3"][..]] {
            let e = Cli::try_parse_from(args).unwrap().stack.stack_config(DEFAULT).unwrap_err().to_string();
            assert!(e.contains("cpus"), "{args:?}: {e}");
        }
    }

    #[test]
    fn bad_flags_and_files_say_what_to_fix() {
        for (args, want) in [
            (&["x", "--ip", "10.0.0.1"][..], "ADDR/PREFIX"),
            (&["x", "--ip", "10.0.0.1/40"][..], "ADDR/PREFIX"),
            (&["x", "--cores", "0"][..], "--cores"),
            (&["x", "--nic", "eth0"][..], "expected model, tap:NAME"),
        ] {
            let e = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let cli = Cli::try_parse_from(["x", "--config", file.to_str().unwrap()]).unwrap();
        let e = cli.stack.stack_config(DEFAULT).unwrap_err().to_string();
        assert!(e.contains("no_such_key"), "{e}");
        let cli = Cli::try_parse_from(["x", "--config", "/no/such/file.toml"]).unwrap();
        let e = cli.stack.stack_config(DEFAULT).unwrap_err().to_string();
        assert!(e.contains("/no/such/file.toml"), "{e}");
    }

    #[test]
    fn a_load_generator_needs_server_except_on_the_model() {
        let given: SocketAddrV4 = "10.9.0.1:80".parse().unwrap();
        let local: SocketAddrV4 = "10.0.0.1:7".parse().unwrap();
        let model = Cli::try_parse_from(["x"]).unwrap().stack;
        assert_eq!(model.server(Some(given), local).unwrap(), given);
        assert_eq!(model.server(None, local).unwrap(), local);
        let tap = Cli::try_parse_from(["x", "--nic", "tap:t0"]).unwrap().stack;
        assert_eq!(tap.server(Some(given), local).unwrap(), given);
        let e = tap.server(None, local).unwrap_err().to_string();
        assert!(e.contains("--server ADDR:PORT is required with --nic tap:t0"), "{e}");
    }
}
