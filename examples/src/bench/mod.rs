//! The per-core benchmark: the same workloads on ixtcp (two linked 82599
//! models in one process) and on Linux kernel sockets (loopback), with the
//! same application code, the same core split and the same durations, in
//! one run; the ratio is the figure that counts.
//!
//! - [`Workload`]: what is measured and in which unit.
//! - [`apps`]: the server and client side of each workload over any
//!   [`Reactor`](crate::reactor::Reactor).
//! - [`ixtcp_side`]: the ixtcp run (two hosts over linked models, one
//!   inline stack core per core of the split, pinned).
//! - [`kernel_side`]: the kernel run (threads pinned to the split's cores).
//! - [`cpu`]: the NIC model's share of the server cores (ixtcp rows).
//! - [`Report`]: the table, JSON and SVG.
//!
//! Per-core figures are the aggregate rate divided by the number of server
//! cores (the client side has as many cores or fewer).

pub mod apps;
pub mod cpu;
pub mod ixtcp_side;
pub mod kernel_side;
pub mod plot;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::reactor::Gauge;
use crate::report::si;

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 64-byte echo over 64 persistent connections.
    EchoPersistent,
    /// 64-byte echo, a new connection per transaction.
    EchoNewConn,
    /// HTTP GET of a small file over keep-alive connections.
    HttpKeepAlive,
    /// HTTP GET of a small file, a new connection per request.
    HttpNewConn,
    /// One-way bulk transfer.
    Bulk,
    /// 64-byte echo over 64 connections while 10 000 idle ones are open.
    EchoIdle,
    /// 64-byte UDP echo, 64 flows with one datagram in flight each.
    UdpEcho,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 7] = [
        Workload::EchoPersistent,
        Workload::EchoNewConn,
        Workload::HttpKeepAlive,
        Workload::HttpNewConn,
        Workload::Bulk,
        Workload::EchoIdle,
        Workload::UdpEcho,
    ];

    /// A description for the table.
    pub fn title(self, p: &Params) -> String {
        match self {
            Workload::EchoPersistent => format!("echo {} B, {} persistent conns", p.size, p.conns),
            Workload::EchoNewConn => format!("echo {} B, new conn per transaction", p.size),
            Workload::HttpKeepAlive => format!("HTTP keep-alive, {} B file", crate::http::site::BUILTIN_PAGE.len()),
            Workload::HttpNewConn => "HTTP new conn per request".to_string(),
            Workload::Bulk => "bulk transfer".to_string(),
            Workload::EchoIdle => format!("echo {} B, {} conns + {} idle", p.size, p.conns, p.idle),
            Workload::UdpEcho => format!("UDP echo {} B, {} flows", p.size, p.conns),
        }
    }

    /// The row title at `mtu` (bulk rows run at several MTUs and name it).
    pub fn title_at(self, p: &Params, mtu: Option<usize>) -> String {
        match mtu {
            Some(mtu) => format!("{}, MTU {mtu}", self.title(p)),
            None => self.title(p),
        }
    }

    /// The MTUs this workload runs at, out of `mtus` (`None`: the stack's
    /// default; only bulk moves frames big enough to care).
    pub fn mtus(self, mtus: &[usize]) -> Vec<Option<usize>> {
        match self {
            Workload::Bulk => mtus.iter().copied().map(Some).collect(),
            _ => vec![None],
        }
    }

    /// The unit of the figure.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Bulk => "Gbit/s",
            Workload::HttpKeepAlive | Workload::HttpNewConn => "requests/s",
            _ => "transactions/s",
        }
    }

    /// The figure from a gauge delta over `secs`.
    fn figure(self, transactions: u64, bytes_in: u64, secs: f64) -> f64 {
        match self {
            Workload::Bulk => bytes_in as f64 * 8.0 / secs / 1e9,
            _ => transactions as f64 / secs,
        }
    }
}

/// Durations and sizes of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
    /// Active connections per workload (spread over the client cores).
    pub conns: usize,
    /// Echo message size.
    pub size: usize,
    /// Idle connections in the idle workload.
    pub idle: usize,
    /// Keep measuring past `measure` until the clients have completed this
    /// many transactions (bulk: received this many KiB), for at most a
    /// minute more: on a machine busy with other work the clients may get
    /// no CPU for a whole short window, and a run that measured nothing
    /// says nothing. 0: the window is exactly `measure`.
    pub min_transactions: u64,
}

impl Params {
    /// The default run: every workload in well under a minute per stack.
    pub fn full() -> Params {
        Params {
            warmup: Duration::from_millis(1000),
            measure: Duration::from_secs(3),
            conns: 64,
            size: 64,
            idle: 10_000,
            min_transactions: 0,
        }
    }

    /// `--quick`, for CI: short phases and 1 000 idle connections.
    pub fn quick() -> Params {
        Params {
            warmup: Duration::from_millis(200),
            measure: Duration::from_millis(600),
            idle: 1000,
            min_transactions: 100,
            ..Params::full()
        }
    }
}

/// Which cores serve and which load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Cores of the server side.
    pub server: Vec<usize>,
    /// Cores of the client side.
    pub client: Vec<usize>,
    /// Pin each side's threads to its cores and let them poll without
    /// pause (the benchmark). Tests leave this off: they share the machine's
    /// cores with other tests, so their threads float and nap when idle.
    pub pin: bool,
}

impl Split {
    /// Half the machine each (the server gets the odd one out); on a
    /// one-core machine both sides share core 0.
    pub fn halves(total: usize, server_cores: Option<usize>) -> Split {
        let total = total.max(1);
        if total == 1 {
            return Split { server: vec![0], client: vec![0], pin: true };
        }
        let s = server_cores.unwrap_or(total.div_ceil(2)).clamp(1, total - 1);
        Split { server: (0..s).collect(), client: (s..total).collect(), pin: true }
    }

    /// Like [`halves`](Self::halves), with no pinning and napping when idle
    /// (for tests; see [`Split::pin`]).
    pub fn floating(total: usize) -> Split {
        Split { pin: false, ..Split::halves(total, None) }
    }
}

/// One stack's result for one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Aggregate rate in the workload's unit.
    pub total: f64,
    /// Per server core.
    pub per_core: f64,
    /// Failures counted by the clients during the whole run.
    pub failures: u64,
    /// Median latency, µs (none for bulk).
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// ixtcp only: the fraction of the server cores' time spent inside the
    /// NIC model (the software 82599 and its link), measured over the same
    /// window ([`cpu`]); what an 82599 does in silicon.
    pub nic_share: Option<f64>,
    /// ixtcp only, pinned runs: a cache line's round trip between the first
    /// server and the first client core, in ns, measured just before and
    /// just after the run ([`cpu::cache_line_round_trip_ns`]); every frame
    /// on the in-memory link crosses between those cores, so the NIC share
    /// follows it, and two figures far apart mean the cores moved during
    /// the run.
    pub core_rtt_ns: Option<[f64; 2]>,
}

#[cfg(test)]
impl Measured {
    /// `x` per second on one core, nothing else measured (the tables' tests).
    pub(crate) fn of(x: f64) -> Measured {
        Measured { total: x, per_core: x, failures: 0, p50_us: None, p99_us: None, nic_share: None, core_rtt_ns: None }
    }
}

/// The core round trip's table cell: one figure when before and after agree
/// within a quarter, both when the cores moved in between.
fn rtt_cell(rtt: Option<[f64; 2]>) -> String {
    match rtt {
        None => "–".to_string(),
        Some([before, after]) if (after - before).abs() <= before.max(after) / 4.0 => format!("{before:.0} ns"),
        Some([before, after]) => format!("{before:.0} → {after:.0} ns"),
    }
}

/// A row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The workload.
    pub workload: Workload,
    /// Its description (bulk rows name their MTU).
    pub title: String,
    /// The MTU of both ixtcp hosts, for the rows that set one (bulk).
    pub mtu: Option<usize>,
    /// The unit.
    pub unit: &'static str,
    /// ixtcp's result (none if not run or failed).
    pub ixtcp: Option<Measured>,
    /// The kernel's result.
    pub kernel: Option<Measured>,
    /// Why a side has no result.
    pub notes: Vec<String>,
    /// With more than one round (`bench --rounds N`): each round's ratio,
    /// both stacks measured back to back in that round. `ixtcp` and
    /// `kernel` are then each stack's median round.
    pub round_ratios: Vec<f64>,
}

/// The median of a stack's rounds by per-core figure (of an even number,
/// the upper of the middle two); none for no rounds.
pub fn median(mut rounds: Vec<Measured>) -> Option<Measured> {
    rounds.sort_by(|a, b| a.per_core.total_cmp(&b.per_core));
    let mid = rounds.len() / 2;
    rounds.into_iter().nth(mid)
}

impl Row {
    /// ixtcp per core / kernel per core.
    pub fn ratio(&self) -> Option<f64> {
        match (&self.ixtcp, &self.kernel) {
            (Some(a), Some(b)) if b.per_core > 0.0 => Some(a.per_core / b.per_core),
            _ => None,
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine: CPU model and count, kernel.
    pub machine: String,
    /// The core split.
    pub split: Split,
    /// Durations and sizes.
    pub params: Params,
    /// One row per workload (bulk: one per MTU).
    pub rows: Vec<Row>,
    /// The loopback interface's MTU, which the kernel rows run at.
    pub loopback_mtu: Option<usize>,
}

pub(crate) fn fmt_figure(x: f64, unit: &str) -> String {
    if unit == "Gbit/s" { format!("{x:.2} Gbit/s") } else { format!("{}/s", si(x)) }
}

impl Report {
    /// The table printed at the end of a run (Markdown, so it can go into
    /// docs as it is).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Per server core; server cores {:?}, client cores {:?}; {:.1} s measured after {:.1} s warm-up.",
            self.split.server,
            self.split.client,
            self.params.measure.as_secs_f64(),
            self.params.warmup.as_secs_f64()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| workload | ixtcp | Linux kernel | ratio | NIC model share | core round trip |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let cell = |m: &Option<Measured>| match m {
                Some(m) if m.failures > 0 => format!("{} ({} failures)", fmt_figure(m.per_core, r.unit), m.failures),
                Some(m) => fmt_figure(m.per_core, r.unit),
                None => "–".to_string(),
            };
            let ratio = match (r.ratio(), r.round_ratios.len()) {
                (None, _) => "–".to_string(),
                (Some(x), 0 | 1) => format!("{x:.2}x"),
                (Some(x), _) => {
                    let lo = r.round_ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = r.round_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!("{x:.2}x ({lo:.2}–{hi:.2})")
                }
            };
            let share =
                r.ixtcp.as_ref().and_then(|m| m.nic_share).map_or("–".to_string(), |x| format!("{:.0}%", x * 100.0));
            let rtt = rtt_cell(r.ixtcp.as_ref().and_then(|m| m.core_rtt_ns));
            let _ =
                writeln!(out, "| {} | {} | {} | {ratio} | {share} | {rtt} |", r.title, cell(&r.ixtcp), cell(&r.kernel));
        }
        if self.rows.iter().any(|r| r.round_ratios.len() > 1) {
            let _ = writeln!(
                out,
                "\nRounds: each row gives each stack's median round and the ratio of the two medians; in \
                 brackets the lowest and highest ratio of a single round (both stacks back to back)."
            );
        }
        let _ = writeln!(
            out,
            "\nNIC model share: of the ixtcp server cores' time in the same window, the part spent inside \
             the software 82599 (its pump, DMA, register handling and the in-memory link). On hardware \
             the 82599's silicon does this work; the rest is the stack, the driver and the application."
        );
        if self.rows.iter().any(|r| r.ixtcp.as_ref().is_some_and(|m| m.core_rtt_ns.is_some())) {
            let _ = writeln!(
                out,
                "\nCore round trip: a cache line from the first server core to the first client core and \
                 back, measured just before the ixtcp run (and after it, shown too when the two differ by more \
                 than a quarter: the cores moved meanwhile). Each frame on the in-memory link is written on \
                 one of those cores and read on the other, inside the model, so the NIC model share rises \
                 with this figure (a VM's host may move a vCPU between runs)."
            );
        }
        if self.rows.iter().any(|r| r.mtu.is_some()) {
            let _ = writeln!(
                out,
                "\nMTU: the ixtcp hosts' `mtu`; the kernel rows run over loopback at {} whatever the row says \
                 (the bench leaves the host's loopback as it is).",
                self.loopback_mtu.map_or("its MTU (unreadable here)".to_string(), |m| format!("its MTU of {m}"))
            );
        }
        for r in &self.rows {
            for n in &r.notes {
                let _ = writeln!(out, "\n{}: {n}", r.title);
            }
        }
        out
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// The MTU of this namespace's loopback interface (the kernel side's).
pub fn loopback_mtu() -> Option<usize> {
    std::fs::read_to_string("/sys/class/net/lo/mtu").ok()?.trim().parse().ok()
}

/// A short description of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or("?".into(), |s| s.trim().to_string());
    format!("{cpu}, {cores} cores, Linux {kernel}")
}

/// Waits out the warm-up, then measures the client gauges' progress over
/// the measuring window; `progress` is called about every 100 ms with the
/// fraction done. `probe` is read when the window opens and when it closes
/// (both readings are returned after the figures).
pub fn measure<P>(
    w: Workload,
    gauges: &[Arc<Gauge>],
    params: &Params,
    server_cores: usize,
    mut probe: impl FnMut() -> P,
    mut progress: impl FnMut(f64),
) -> (f64, f64, P, P) {
    let read = |gs: &[Arc<Gauge>]| {
        gs.iter().fold((0u64, 0u64), |(t, b), g| {
            (t + g.transactions.load(Ordering::Relaxed), b + g.bytes_in.load(Ordering::Relaxed))
        })
    };
    let total = params.warmup + params.measure;
    let start = Instant::now();
    let tick = |start: Instant, until: Instant, progress: &mut dyn FnMut(f64)| {
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
            progress(start.elapsed().as_secs_f64() / total.as_secs_f64());
        }
    };
    tick(start, start + params.warmup, &mut progress);
    let (t0, b0, at0, p0) = {
        let (t, b) = read(gauges);
        (t, b, Instant::now(), probe())
    };
    tick(start, at0 + params.measure, &mut progress);
    let (mut t1, mut b1) = read(gauges);
    let give_up = Instant::now() + Duration::from_secs(60);
    let enough = |t: u64, b: u64| t - t0 >= params.min_transactions || (b - b0) / 1024 >= params.min_transactions;
    while !enough(t1, b1) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
        (t1, b1) = read(gauges);
    }
    let secs = at0.elapsed().as_secs_f64().max(1e-9);
    let p1 = probe();
    let total = w.figure(t1 - t0, b1 - b0, secs);
    (total, total / server_cores.max(1) as f64, p0, p1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(Split::halves(1, None), Split { server: vec![0], client: vec![0], pin: true });
        assert_eq!(Split::halves(2, None), Split { server: vec![0], client: vec![1], pin: true });
        assert_eq!(Split::halves(5, None), Split { server: vec![0, 1, 2], client: vec![3, 4], pin: true });
        assert_eq!(Split::halves(4, Some(9)), Split { server: vec![0, 1, 2], client: vec![3], pin: true });
    }

    #[test]
    fn table_has_ratios_and_dashes() {
        let m = |x| Some(Measured::of(x));
        let report = Report {
            machine: "test".into(),
            loopback_mtu: Some(65536),
            split: Split::halves(2, None),
            params: Params::quick(),
            rows: vec![
                Row {
                    workload: Workload::EchoPersistent,
                    title: Workload::EchoPersistent.title(&Params::quick()),
                    mtu: None,
                    unit: Workload::EchoPersistent.unit(),
                    ixtcp: m(800_000.0),
                    kernel: m(200_000.0),
                    notes: vec![],
                    round_ratios: vec![],
                },
                Row {
                    workload: Workload::Bulk,
                    title: "bulk transfer".into(),
                    mtu: None,
                    unit: "Gbit/s",
                    ixtcp: None,
                    kernel: m(12.5),
                    notes: vec!["ixtcp: not run".into()],
                    round_ratios: vec![],
                },
            ],
        };
        let t = report.table();
        assert!(t.contains("| echo 64 B, 64 persistent conns | 800.0k/s | 200.0k/s | 4.00x |"), "{t}");
        assert!(t.contains("| bulk transfer | – | 12.50 Gbit/s | – |"), "{t}");
        assert!(t.contains("bulk transfer: ixtcp: not run"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(j["rows"][0]["workload"], "echo-persistent");
        assert_eq!(j["rows"][0]["kernel"]["per_core"], 200_000.0);
    }

    #[test]
    fn rounds_give_the_median_and_the_spread_of_ratios() {
        let m = Measured::of;
        assert_eq!(median(vec![m(3.0), m(1.0), m(2.0)]).map(|r| r.per_core), Some(2.0));
        assert_eq!(median(vec![m(4.0), m(1.0), m(2.0), m(3.0)]).map(|r| r.per_core), Some(3.0), "the upper middle");
        assert!(median(vec![]).is_none());
        let p = Params::quick();
        let row = Row {
            workload: Workload::EchoPersistent,
            title: Workload::EchoPersistent.title(&p),
            mtu: None,
            unit: Workload::EchoPersistent.unit(),
            ixtcp: Some(m(600_000.0)),
            kernel: Some(m(100_000.0)),
            notes: vec![],
            round_ratios: vec![5.5, 6.0, 7.25],
        };
        let report = Report {
            machine: "test".into(),
            loopback_mtu: None,
            split: Split::halves(2, None),
            params: p,
            rows: vec![row],
        };
        let t = report.table();
        assert!(t.contains("| 600.0k/s | 100.0k/s | 6.00x (5.50–7.25) |"), "{t}");
        assert!(t.contains("Rounds: each row gives each stack's median round"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(j["rows"][0]["round_ratios"][2], 7.25);
    }

    #[test]
    fn table_has_the_nic_share_and_names_each_bulk_mtu() {
        let p = Params::quick();
        let measured = |x, nic_share: Option<f64>| Measured {
            nic_share,
            core_rtt_ns: nic_share.map(|_| [61.4, 58.0]),
            ..Measured::of(x)
        };
        let bulk = |mtu: usize, ixtcp: Option<Measured>, notes: Vec<String>| Row {
            workload: Workload::Bulk,
            title: Workload::Bulk.title_at(&p, Some(mtu)),
            mtu: Some(mtu),
            unit: Workload::Bulk.unit(),
            ixtcp,
            kernel: Some(measured(10.0, None)),
            notes,
            round_ratios: vec![],
        };
        let report = Report {
            machine: "test".into(),
            split: Split::halves(2, None),
            params: p.clone(),
            rows: vec![
                bulk(1500, Some(measured(2.5, Some(0.414))), vec![]),
                bulk(9000, None, vec!["ixtcp: skipped, needs mtu 9000 support".into()]),
            ],
            loopback_mtu: Some(65536),
        };
        let t = report.table();
        assert!(t.contains("| workload | ixtcp | Linux kernel | ratio | NIC model share | core round trip |"), "{t}");
        assert!(t.contains("| bulk transfer, MTU 1500 | 2.50 Gbit/s | 10.00 Gbit/s | 0.25x | 41% | 61 ns |"), "{t}");
        assert!(t.contains("| bulk transfer, MTU 9000 | – | 10.00 Gbit/s | – | – | – |"), "{t}");
        assert!(t.contains("Core round trip: a cache line"), "the round trip is explained: {t}");
        assert!(t.contains("bulk transfer, MTU 9000: ixtcp: skipped, needs mtu 9000 support"), "{t}");
        assert!(t.contains("silicon"), "the share is explained: {t}");
        assert!(t.contains("loopback at its MTU of 65536"), "{t}");
        assert_eq!(Workload::Bulk.mtus(&[1500, 9000]), vec![Some(1500), Some(9000)]);
        assert_eq!(Workload::EchoPersistent.mtus(&[1500, 9000]), vec![None]);
        let j: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(j["rows"][1]["mtu"], 9000);
        assert_eq!(j["rows"][0]["ixtcp"]["nic_share"], 0.414);
        assert_eq!(j["rows"][0]["ixtcp"]["core_rtt_ns"][0], 61.4);
        assert_eq!(rtt_cell(Some([320.0, 61.0])), "320 → 61 ns", "the cores moved during the run");
        assert_eq!(rtt_cell(None), "–");
    }
}
