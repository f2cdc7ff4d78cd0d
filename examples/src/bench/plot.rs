//! `bench --plot FILE.svg`: one bar per workload, the ratio of ixtcp's
//! per-core figure to the kernel's, with a line at 1× and both figures
//! written under each bar. Plain SVG written here: a chart this simple does
//! not need a plotting library and its font handling.

use std::fmt::Write as _;

use super::{Report, fmt_figure};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart as an SVG document.
pub fn svg(report: &Report) -> String {
    let rows = &report.rows;
    let (w, h) = (160.0 * rows.len().max(1) as f64 + 120.0, 520.0);
    let (left, top, bottom) = (70.0, 60.0, 150.0);
    let plot_h = h - top - bottom;
    let max = rows.iter().filter_map(|r| r.ratio()).fold(1.0f64, f64::max) * 1.15;
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="16" text-anchor="middle">ixtcp vs Linux kernel, per server core (ratio)</text>"#,
        w / 2.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="42" text-anchor="middle" fill="#555">{}</text>"##,
        w / 2.0,
        escape(&report.machine)
    );
    // Axis and grid.
    let steps = (max.ceil() as usize).clamp(1, 20);
    let step = (max / steps as f64).max(0.5).ceil();
    let mut v = 0.0;
    while v <= max {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}×</text>"##,
            w - 30.0,
            left - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let one = y(1.0);
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{one:.1}" x2="{:.1}" y2="{one:.1}" stroke="#c00" stroke-dasharray="6 4"/>"##,
        w - 30.0
    );
    let slot = (w - left - 30.0) / rows.len().max(1) as f64;
    for (i, r) in rows.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        if let Some(ratio) = r.ratio() {
            let (yy, bw) = (y(ratio), slot * 0.55);
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{yy:.1}" width="{bw:.1}" height="{:.1}" fill="#2a6fb0"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{ratio:.2}×</text>"##,
                cx - bw / 2.0,
                y(0.0) - yy,
                yy - 5.0
            );
        } else {
            let _ = writeln!(
                s,
                r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#888">no ratio</text>"##,
                y(0.0) - 5.0
            );
        }
        let label =
            |m: &Option<super::Measured>| m.as_ref().map_or("–".to_string(), |m| fmt_figure(m.per_core, r.unit));
        let lines = [r.title.clone(), format!("ixtcp {}", label(&r.ixtcp)), format!("kernel {}", label(&r.kernel))];
        for (j, line) in lines.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                y(0.0) + 18.0 + 15.0 * j as f64,
                escape(line)
            );
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::{Measured, Params, Row, Split, Workload};
    use super::*;

    #[test]
    fn svg_has_a_bar_per_ratio_and_escapes_text() {
        let m = |x| Some(Measured::of(x));
        let report = Report {
            loopback_mtu: None,
            machine: "CPU <test> & co".into(),
            split: Split::halves(2, None),
            params: Params::quick(),
            rows: vec![
                Row {
                    workload: Workload::Bulk,
                    title: "bulk".into(),
                    mtu: Some(1500),
                    unit: "Gbit/s",
                    ixtcp: m(3.0),
                    kernel: m(1.5),
                    notes: vec![],
                    round_ratios: vec![],
                },
                Row {
                    workload: Workload::EchoIdle,
                    title: "idle".into(),
                    mtu: None,
                    unit: "transactions/s",
                    ixtcp: None,
                    kernel: m(1.0),
                    notes: vec![],
                    round_ratios: vec![],
                },
            ],
        };
        let s = svg(&report);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("2.00×"));
        assert!(s.contains("no ratio"));
        assert!(s.contains("CPU &lt;test&gt; &amp; co"));
        assert_eq!(s.matches("<rect").count(), 2, "background and one bar");
    }
}
