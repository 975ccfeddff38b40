//! `cargo xtask bench`: runs the kernel's measurements under `-icount shift=0,sleep=off` (virtual
//! time = instructions, so reruns give identical numbers), collects their `BENCH` lines into
//! `results/*.csv` and draws SVG plots next to them.

use crate::qemu::{self, Machine};
use crate::Result;
use plotters::prelude::*;
use std::path::Path;
use std::time::Duration;

/// One `BENCH <kind> key=value ...` line.
#[derive(Debug, PartialEq)]
pub struct BenchLine {
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

impl BenchLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("BENCH {} line lacks a number for {key}", self.kind))
    }
}

/// Every `BENCH` line in a console capture.
pub fn parse(output: &str) -> Vec<BenchLine> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("BENCH "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let kind = words.next()?.to_string();
            let fields = words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Some(BenchLine { kind, fields })
        })
        .collect()
}

/// CSV text for the lines of `kind`, with the given columns in order.
pub fn csv(lines: &[BenchLine], kind: &str, columns: &[&str]) -> Result<String> {
    let mut out = columns.join(",") + "\n";
    for line in lines.iter().filter(|l| l.kind == kind) {
        let row: Option<Vec<&str>> = columns.iter().map(|c| line.get(c)).collect();
        let row = row.ok_or_else(|| format!("BENCH {kind} line misses a column of {columns:?}"))?;
        out += &(row.join(",") + "\n");
    }
    Ok(out)
}

/// Runs every measurement and writes `results/`.
pub fn run(elf: &Path) -> Result {
    let machine = Machine {
        smp: 1,
        append: "test=bench-barrier gc.heap=16M".into(),
        gpu: false,
        icount: true,
        ..Machine::new(elf)
    };
    println!("xtask: bench-barrier under -icount (deterministic: instructions, not seconds)");
    let outcome = qemu::run_captured(&machine, Duration::from_secs(600))?;
    if outcome.status != Some(0) {
        return Err(format!("bench-barrier exited with {:?}:\n{}", outcome.status, outcome.output));
    }
    let lines = parse(&outcome.output);
    let results = crate::cargo::workspace_root().join("results");
    std::fs::create_dir_all(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let write = |name: &str, text: String| -> Result {
        let path = results.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("xtask: wrote {}", path.display());
        Ok(())
    };
    write(
        "barrier_modes.csv",
        csv(&lines, "barrier", &["mode", "wbbuf", "stores", "ns_per_store", "compiled_out_ns_per_store", "flushes"])?,
    )?;
    write("wbbuf_sweep.csv", csv(&lines, "wbbuf", &["entries", "stores", "ns_per_store", "flushes"])?)?;

    let modes: Vec<(String, f64)> = lines
        .iter()
        .filter(|l| l.kind == "barrier")
        .map(|l| Ok((l.get("mode").unwrap_or("?").to_string(), l.number("ns_per_store")?)))
        .collect::<Result<_>>()?;
    let baseline =
        lines.iter().find(|l| l.kind == "barrier").map(|l| l.number("compiled_out_ns_per_store")).transpose()?;
    let mut bars = modes.clone();
    if let Some(b) = baseline {
        bars.insert(0, ("compiled out".into(), b));
    }
    bar_chart(&results.join("barrier_modes.svg"), "cost per pointer store, barrier on (instructions)", &bars)?;
    let sweep: Vec<(f64, f64)> = lines
        .iter()
        .filter(|l| l.kind == "wbbuf")
        .map(|l| Ok((l.number("entries")?, l.number("ns_per_store")?)))
        .collect::<Result<_>>()?;
    line_chart(&results.join("wbbuf_sweep.svg"), "buffered barrier: cost per store vs wbBuf entries", &sweep)?;
    for (mode, ns) in &modes {
        println!("bench: barrier mode {mode:<9} {ns:>8.2} instructions per store");
    }
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> String {
    format!("plotting failed: {e}")
}

fn bar_chart(path: &Path, title: &str, bars: &[(String, f64)]) -> Result {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let top = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |(n, _)| n.clone()),
            _ => String::new(),
        })
        .y_desc("instructions per store")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)], BLUE.mix(0.6).filled())
        }))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

fn line_chart(path: &Path, title: &str, points: &[(f64, f64)]) -> Result {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let right = points.iter().map(|p| p.0).fold(2.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..right * 1.5).log_scale(), 0.0..top)
        .map_err(plot_error)?;
    chart.configure_mesh().x_desc("wbBuf entries").y_desc("instructions per store").draw().map_err(plot_error)?;
    chart.draw_series(LineSeries::new(points.iter().copied(), &RED)).map_err(plot_error)?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, RED.filled()))).map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "noise\nBENCH barrier mode=buffered wbbuf=512 stores=20000 ns_per_store=180.20 compiled_out_ns_per_store=6.01 flushes=79\n[ 0.1] INFO log\nBENCH wbbuf entries=2 stores=20000 ns_per_store=277.99 flushes=20000\n";

    #[test]
    fn parses_bench_lines_and_ignores_the_rest() {
        let lines = parse(SAMPLE);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].kind, "barrier");
        assert_eq!(lines[0].get("mode"), Some("buffered"));
        assert_eq!(lines[1].number("ns_per_store").unwrap(), 277.99);
        assert!(lines[1].number("missing").is_err());
    }

    #[test]
    fn csv_keeps_column_order_and_refuses_missing_columns() {
        let lines = parse(SAMPLE);
        assert_eq!(csv(&lines, "wbbuf", &["entries", "ns_per_store"]).unwrap(), "entries,ns_per_store\n2,277.99\n");
        assert!(csv(&lines, "wbbuf", &["entries", "nope"]).is_err());
    }
}
