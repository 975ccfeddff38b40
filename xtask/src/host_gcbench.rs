//! `cargo xtask gcbench-host`: Boehm's GCBench on the host (the `gcbench` example of the gc crate,
//! std threads standing in for cores) at 1 and 2 threads, barrier modes buffered and direct. It
//! collects the `BENCH host-gcbench` lines into `results/host_gcbench.csv`. These are wall-clock
//! numbers of this machine, unlike `cargo xtask bench`'s instruction counts: they compare
//! collectors run on one machine, and they vary with its load.

use crate::args::Args;
use crate::bench::{self, BenchLine};
use crate::Result;
use std::process::{Command, Stdio};

/// Thread counts measured (the development machine has 2 cores).
const THREADS: [usize; 2] = [1, 2];
/// Barrier modes measured.
const MODES: [&str; 2] = ["buffered", "direct"];
/// The CSV's columns: every field of the example's `BENCH host-gcbench` line, in its order. (The
/// example prints the line only after its verification passed.)
const COLUMNS: [&str; 11] = [
    "threads",
    "size",
    "mode",
    "heap_mib",
    "percent",
    "total_ms",
    "gc_ms",
    "cycles",
    "max_pause_us",
    "mean_pause_us",
    "allocs",
];

/// `gcbench-host [--quick]`: size `full` (Boehm's), or `quick`.
pub fn run(args: &mut Args) -> Result {
    let size = if args.flag("--quick") { "quick" } else { "full" };
    args.finish()?;
    let mut lines = Vec::new();
    for threads in THREADS {
        for mode in MODES {
            lines.push(run_one(threads, mode, size)?);
        }
    }
    let results = crate::cargo::workspace_root().join("results");
    std::fs::create_dir_all(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let path = results.join("host_gcbench.csv");
    std::fs::write(&path, bench::csv(&lines, "host-gcbench", &COLUMNS)?)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote {}", path.display());
    for l in &lines {
        let get = |k| l.get(k).unwrap_or("?");
        println!(
            "gcbench-host: threads {} {:<8} total {:>9} ms  gc {:>9} ms  {:>3} cycles  max pause {:>8} us",
            get("threads"),
            get("mode"),
            get("total_ms"),
            get("gc_ms"),
            get("cycles"),
            get("max_pause_us")
        );
    }
    Ok(())
}

/// One run of the example (release build); its one `BENCH host-gcbench` line.
fn run_one(threads: usize, mode: &str, size: &str) -> Result<BenchLine> {
    let threads = threads.to_string();
    let args = [
        "run",
        "--quiet",
        "--release",
        "-p",
        "tricolor-gc",
        "--features",
        "host",
        "--example",
        "gcbench",
        "--",
        "--threads",
        &threads,
        "--size",
        size,
        "--mode",
        mode,
    ];
    println!("xtask: $ cargo {}", args.join(" "));
    // stderr passes through: cargo's build progress, and the example's reason when it fails.
    let output = Command::new("cargo")
        .args(args)
        .current_dir(crate::cargo::workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        return Err(format!("gcbench (threads {threads}, mode {mode}, size {size}) failed ({})", output.status));
    }
    let mut lines: Vec<BenchLine> = bench::parse(&stdout).into_iter().filter(|l| l.kind == "host-gcbench").collect();
    match (lines.pop(), lines.is_empty()) {
        (Some(line), true) => Ok(line),
        _ => Err(format!("gcbench (threads {threads}, mode {mode}) printed no single BENCH host-gcbench line")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_line_fills_every_column() {
        // As `tricolor_gc::gcbench::Report::bench_line` prints it.
        let out =
            "summary\nBENCH host-gcbench threads=2 size=quick mode=direct heap_mib=13 percent=100 total_ms=105.0 \
                   gc_ms=55.5 cycles=27 max_pause_us=5.2 mean_pause_us=1.5 allocs=1129830\n";
        let csv = bench::csv(&bench::parse(out), "host-gcbench", &COLUMNS).unwrap();
        assert_eq!(
            csv,
            "threads,size,mode,heap_mib,percent,total_ms,gc_ms,cycles,max_pause_us,mean_pause_us,allocs\n\
             2,quick,direct,13,100,105.0,55.5,27,5.2,1.5,1129830\n"
        );
    }
}
