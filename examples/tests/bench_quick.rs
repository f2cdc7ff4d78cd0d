//! `bench --quick` end to end: every workload runs on ixtcp (two linked
//! 82599 models) and on the kernel (loopback), the table, the JSON and
//! the SVG are written. Figures are not asserted (they depend on the
//! machine); only that each workload produced one without failures.

use std::process::Command;

#[test]
fn bench_quick_runs_every_workload_and_writes_json_and_svg() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.json");
    let svg = dir.path().join("bench.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--quick", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("| workload | ixtcp | Linux kernel | ratio |"), "{stdout}");
    assert!(stdout.contains("| UDP echo 64 B"), "the UDP echo row: {stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("json");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 7, "{report}");
    for row in rows {
        for side in ["ixtcp", "kernel"] {
            let m = &row[side];
            assert!(m["total"].as_f64().is_some_and(|x| x > 0.0), "{side}: {row}");
            assert_eq!(m["failures"], 0, "{side}: {row}");
        }
        assert!(row["notes"].as_array().is_some_and(|n| n.is_empty()), "{row}");
    }
    let svg = std::fs::read_to_string(&svg).expect("svg written");
    assert!(svg.starts_with("<svg"), "{svg}");
}
