//! bench: the per-core benchmark. Runs each workload on ixtcp (server and
//! clients over two linked 82599 models in this process) and then on Linux
//! kernel sockets over 127.0.0.1 (epoll servers and clients written here,
//! the same application code), with the same core split, and prints a table
//! of per-core figures and their ratio.
//!
//! ```text
//! cargo run --release -p ixtcp-examples --bin bench                      # no NIC, no root, under 2 minutes
//! cargo run --release -p ixtcp-examples --bin bench -- --quick --json bench.json --plot bench.svg
//! cargo run --release -p ixtcp-examples --bin bench -- --workload echo-persistent --stack kernel
//! ```
//!
//! There is no hardware variant: both ends of the ixtcp run live in this
//! process, on models, so that the figures compare stacks rather than NICs.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use ixtcp_examples::bench::ixtcp_side;
use ixtcp_examples::bench::kernel_side::{self, IdleGuard};
use ixtcp_examples::bench::{Params, Report, Row, Split, Workload, loopback_mtu, machine, median, plot};
use ixtcp_examples::kernel::raise_fd_limit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Stacks {
    Both,
    Ixtcp,
    Kernel,
}

#[derive(Debug, Parser)]
#[command(about = "ixtcp vs the Linux kernel, per core, same workloads, one run")]
struct Args {
    /// Short phases and 1 000 idle connections (for CI; figures are rough).
    #[arg(long)]
    quick: bool,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the ratios as an SVG chart in FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Run only these workloads (repeat the flag; default: all).
    #[arg(long, value_enum)]
    workload: Vec<Workload>,
    /// Which stacks to run.
    #[arg(long, value_enum, default_value_t = Stacks::Both)]
    stack: Stacks,
    /// Cores for the server side (the rest load it; default: half).
    #[arg(long, value_name = "N")]
    server_cores: Option<usize>,
    /// Seconds measured per workload and stack (after the warm-up).
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
    /// Idle connections for the idle workload.
    #[arg(long, value_name = "N")]
    idle: Option<usize>,
    /// MTU of the ixtcp hosts for the bulk workload, one row each (repeat
    /// the flag; default 1500 and 9000, with --quick 1500 only). An MTU the
    /// stack's configuration refuses is skipped with a note saying why.
    #[arg(long, value_name = "BYTES")]
    mtu: Vec<usize>,
    /// Run each workload this many times, both stacks back to back in each
    /// round (ixtcp first in odd rounds, the kernel first in even ones), and
    /// report each stack's median round with the spread of the rounds'
    /// ratios: on a shared or virtual machine one round can be off by half.
    /// An odd N gives a true median (of an even one, the upper middle).
    #[arg(long, value_name = "N", default_value_t = 1)]
    rounds: usize,
    /// Internal: hold idle kernel connections for the parent (ADDR:PORT/N).
    #[arg(long, hide = true)]
    hold_idle: Option<String>,
}

/// The progress line, rewritten in place on stderr when it is a terminal;
/// otherwise one line per step.
struct Progress {
    step: usize,
    steps: usize,
    start: Instant,
    tty: bool,
}

impl Progress {
    fn show(&self, what: &str, fraction: f64) {
        let mut e = std::io::stderr();
        if !self.tty {
            if fraction == 0.0 {
                let _ = writeln!(e, "[{}/{}] {what}", self.step, self.steps);
            }
            return;
        }
        let _ = write!(
            e,
            "\r\x1b[2K[{}/{}] {what} {:3.0}%  ({:.0} s elapsed)",
            self.step,
            self.steps,
            (fraction * 100.0).min(100.0),
            self.start.elapsed().as_secs_f64()
        );
        let _ = e.flush();
    }
}

/// One stack's run of a row: its figures, with its failures (or why it
/// could not run) noted on the row as `stack: …`.
fn measured(
    stack: &str,
    res: std::io::Result<(ixtcp_examples::bench::Measured, Vec<ixtcp_examples::session::Tally>)>,
    notes: &mut Vec<String>,
) -> Option<ixtcp_examples::bench::Measured> {
    match res {
        Ok((m, tallies)) => {
            if m.failures > 0 {
                let first: Vec<String> = tallies.iter().flat_map(|t| t.first_failures.clone()).take(3).collect();
                notes.push(format!("{stack}: {} failures, first: {}", m.failures, first.join("; ")));
            }
            Some(m)
        }
        Err(e) => {
            notes.push(format!("{stack}: failed: {e}"));
            None
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.hold_idle {
        if let Err(e) = kernel_side::hold_idle_main(spec) {
            ixtcp_examples::exit_with(&e);
        }
        return;
    }
    let mut params = if args.quick { Params::quick() } else { Params::full() };
    if let Some(s) = args.seconds {
        if !(s.is_finite() && s > 0.0 && s <= 3600.0) {
            ixtcp_examples::exit_with(&ixtcp_examples::ExampleError::Other(format!(
                "--seconds {s}: give a number of seconds between 0 and 3600"
            )));
        }
        params.measure = std::time::Duration::from_secs_f64(s);
    }
    if let Some(n) = args.idle {
        params.idle = n;
    }
    if !(1..=100).contains(&args.rounds) {
        ixtcp_examples::exit_with(&ixtcp_examples::ExampleError::Other(format!(
            "--rounds {}: give a number of rounds from 1 to 100",
            args.rounds
        )));
    }
    let workloads = if args.workload.is_empty() { Workload::ALL.to_vec() } else { args.workload.clone() };
    let mtus = match (args.mtu.is_empty(), args.quick) {
        (false, _) => args.mtu.clone(),
        (true, true) => vec![1500],
        (true, false) => vec![1500, 9000],
    };
    // One row per workload, bulk once per MTU.
    let cases: Vec<(Workload, Option<usize>)> =
        workloads.iter().flat_map(|&w| w.mtus(&mtus).into_iter().map(move |m| (w, m))).collect();
    let total_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let split = Split::halves(total_cores, args.server_cores);

    // Ten thousand idle connections need both ends' descriptors; hold the
    // client ends in a child process when this one may not have them all.
    let fd_limit = raise_fd_limit();
    let exe = std::env::current_exe().ok();
    let hold_idle = move |addr, n: usize| -> std::io::Result<IdleGuard> {
        match &exe {
            Some(exe) if fd_limit < 2 * n as u64 + 4096 => IdleGuard::in_child(exe, addr, n),
            _ => IdleGuard::in_process(addr, n),
        }
    };

    let run_ixtcp = args.stack != Stacks::Kernel;
    let run_kernel = args.stack != Stacks::Ixtcp;
    let steps = cases.len() * args.rounds * (usize::from(run_ixtcp) + usize::from(run_kernel));
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = Progress { step: 0, steps, start: Instant::now(), tty };
    let mut rows = Vec::new();
    eprintln!("bench: {}; server cores {:?}, client cores {:?}", machine(), split.server, split.client);
    for &(w, mtu) in &cases {
        let mut row = Row {
            workload: w,
            title: w.title_at(&params, mtu),
            mtu,
            unit: w.unit(),
            ixtcp: None,
            kernel: None,
            notes: Vec::new(),
            round_ratios: Vec::new(),
        };
        let ixtcp_refused = mtu.and_then(ixtcp_side::mtu_refused);
        if let (true, Some(why)) = (run_ixtcp, &ixtcp_refused) {
            let mtu = mtu.unwrap_or_default();
            row.notes.push(format!("ixtcp: skipped, needs mtu {mtu} support in the stack ({why})"));
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let (mut a, mut b) = (None, None);
            // Alternate which stack goes first, so a machine that slows
            // down (or speeds up) over a run favours neither.
            for ixtcp_turn in if round % 2 == 0 { [true, false] } else { [false, true] } {
                if ixtcp_turn && run_ixtcp {
                    progress.step += 1;
                    if ixtcp_refused.is_some() {
                        continue;
                    }
                    let label = format!("ixtcp:  {}", row.title);
                    progress.show(&label, 0.0);
                    let res = ixtcp_side::run(w, &split, &params, mtu, &mut |f| progress.show(&label, f));
                    a = measured("ixtcp", res, &mut row.notes).or(a);
                } else if !ixtcp_turn && run_kernel {
                    progress.step += 1;
                    let label = format!("kernel: {}", row.title);
                    progress.show(&label, 0.0);
                    let res = kernel_side::run(w, &split, &params, &hold_idle, &mut |f| progress.show(&label, f));
                    b = measured("kernel", res, &mut row.notes).or(b);
                }
            }
            if let (Some(a), Some(b)) = (&a, &b)
                && b.per_core > 0.0
                && args.rounds > 1
            {
                row.round_ratios.push(a.per_core / b.per_core);
            }
            ours.extend(a);
            theirs.extend(b);
        }
        row.ixtcp = median(ours);
        row.kernel = median(theirs);
        rows.push(row);
    }
    if progress.tty {
        eprint!("\r\x1b[2K");
    }
    let report = Report { machine: machine(), split, params, rows, loopback_mtu: loopback_mtu() };
    println!("{}", report.machine);
    println!("{}", report.table());
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, report.json())
    {
        ixtcp_examples::exit_with(&ixtcp_examples::ExampleError::Other(format!("--json {}: {e}", path.display())));
    }
    if let Some(path) = &args.plot
        && let Err(e) = std::fs::write(path, plot::svg(&report))
    {
        ixtcp_examples::exit_with(&ixtcp_examples::ExampleError::Other(format!("--plot {}: {e}", path.display())));
    }
}
