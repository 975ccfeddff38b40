//! Boehm's GCBench (binary trees) on the host, threads standing in for cores: the command line
//! over `tricolor_gc::gcbench` (the host driver of `tricolor_gc::workload::gcbench`, which the
//! kernel's suites run too).
//!
//! `cargo run --release -p tricolor-gc --features host --example gcbench -- [--threads N]
//! [--size full|quick|tiny] [--mode buffered|direct|off|checked] [--heap BYTES-or-M]
//! [--percent GOGC|off] [--verify] [--no-poison] [--no-pin]`
//!
//! Prints a summary and one `BENCH host-gcbench ...` line; exits 1 if the heap runs out or the
//! verification fails, 2 on a bad command line.
//!
//! `gcbench --noise-probe MS` runs no benchmark: it spins for `MS` milliseconds and prints one
//! `BENCH noise-probe ...` line saying how often and for how long the thread lost its CPU (the
//! noise floor of every pause measured on this machine; `cargo xtask compare` runs it on each CPU).

use std::process::ExitCode;

use tricolor_gc::gcbench::{self, Params, Size, PERCENT_OFF};
use tricolor_gc::BarrierMode;

/// The usage text.
const USAGE: &str = "\
usage: gcbench [--threads N] [--size full|quick|tiny] [--mode buffered|direct|off|checked]
               [--heap BYTES|<n>K|<n>M|<n>G] [--percent GOGC] [--verify] [--no-poison] [--no-pin]
       gcbench --noise-probe MS
  --threads N   mutator threads, each running the whole benchmark (default 1)
  --size S      full: Boehm's sizes (stretch 18, long-lived 16, 500000 doubles, depths 4..16);
                quick: 14, 12, 50000, 4..10; tiny: 8, 6, 1000, 4..6 (default full)
  --mode M      write-barrier mode (default buffered)
  --heap H      GC heap size (default: computed from the size, threads and percent)
  --percent P   collect when the heap reaches live * (100 + P) / 100 (default 100), or before
                the heap is full (its size less a reserve for allocation during a cycle);
                off: only the latter (needs --heap)
  --verify      run the mark verifier at every mark termination (adds to the pauses)
  --no-poison   do not poison freed memory (sweeping then writes no object memory; the poison
                check of the stress suites needs it on, so only benchmarks use this)
  --no-pin      leave the threads' placement to the OS (by default, with a CPU for every
                thread, each mutator and the collector thread get one of their own)
  --noise-probe MS  no benchmark: spin MS milliseconds and report the gaps in the thread's
                running (how often the machine took its CPU away, and the longest time)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(at) = args.iter().position(|a| a == "--noise-probe") {
        return match args.get(at + 1).and_then(|v| v.parse::<u64>().ok()).filter(|_| args.len() == 2) {
            Some(ms) => {
                println!("{}", noise_probe(std::time::Duration::from_millis(ms)));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("gcbench: --noise-probe takes a number of milliseconds and nothing else\n\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    let params = match parse_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gcbench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match gcbench::run(&params) {
        Ok(report) => {
            println!("{}", report.summary());
            println!("{}", report.bench_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "gcbench: FAILED ({} thread(s), size {}, mode {}, heap {} bytes): {e}",
                params.threads,
                params.size.name(),
                params.mode.name(),
                params.heap_bytes()
            );
            ExitCode::FAILURE
        }
    }
}

/// Spin for `d`, reading the clock, and report every gap between two readings over 100 µs: the
/// times the thread did not run (another thread, the kernel, or the hypervisor took its CPU).
fn noise_probe(d: std::time::Duration) -> String {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let (mut last, mut over_100us, mut over_1ms, mut longest, mut lost) =
        (start, 0u64, 0u64, Duration::ZERO, Duration::ZERO);
    while last - start < d {
        let now = Instant::now();
        let gap = now - last;
        if gap > Duration::from_micros(100) {
            over_100us += 1;
            over_1ms += u64::from(gap > Duration::from_millis(1));
            longest = longest.max(gap);
            lost += gap;
        }
        last = now;
    }
    format!(
        "BENCH noise-probe spun_ms={} gaps_over_100us={over_100us} gaps_over_1ms={over_1ms} longest_gap_us={:.0} lost_ms={:.1}",
        d.as_millis(),
        longest.as_secs_f64() * 1e6,
        lost.as_secs_f64() * 1e3
    )
}

/// Parse the command line (without the program name).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Params, String> {
    let mut p = Params::new(Size::Full);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--verify" {
            p.verify = true;
            continue;
        }
        if arg == "--no-poison" {
            p.poison = false;
            continue;
        }
        if arg == "--no-pin" {
            p.pin = false;
            continue;
        }
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--threads" => {
                let v = value()?;
                p.threads = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| format!("--threads {v}: not a count"))?;
            }
            "--size" => {
                let v = value()?;
                p.size = Size::from_name(&v).ok_or_else(|| format!("--size {v}: not full, quick or tiny"))?;
            }
            "--mode" => {
                let v = value()?;
                p.mode = BarrierMode::from_name(&v)
                    .filter(|m| *m != BarrierMode::UnsafeOffDuringMark)
                    .ok_or_else(|| format!("--mode {v}: not buffered, direct, off or checked"))?;
            }
            "--heap" => {
                let v = value()?;
                p.heap_bytes = Some(parse_bytes(&v).ok_or_else(|| format!("--heap {v}: not a size"))?);
            }
            "--percent" => {
                let v = value()?;
                p.percent = if v == "off" {
                    PERCENT_OFF
                } else {
                    v.parse().map_err(|_| format!("--percent {v}: not a percentage or off"))?
                };
            }
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    Ok(p)
}

/// `123`, `64K`, `64M`, `2G` (binary units; `KiB`/`MiB`/`GiB` and `KB`/`MB`/`GB` too).
fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: usize = number.parse().ok()?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let args = |s: &str| parse_args(s.split_whitespace().map(String::from));
        assert_eq!(args("").unwrap(), Params::new(Size::Full));
        assert_eq!(args("--percent off").unwrap().percent, PERCENT_OFF);
        assert!(!args("--no-poison").unwrap().poison);
        assert!(args("").unwrap().pin);
        assert!(!args("--no-pin").unwrap().pin);
        let p = args("--threads 2 --size quick --mode direct --heap 64M --percent 50 --verify").unwrap();
        assert_eq!(
            p,
            Params {
                threads: 2,
                size: Size::Quick,
                mode: BarrierMode::Direct,
                heap_bytes: Some(64 << 20),
                percent: 50,
                verify: true,
                ..Params::new(Size::Full)
            }
        );
        assert_eq!(args("--heap 12345").unwrap().heap_bytes, Some(12345));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("8k"), Some(8 << 10));
        for bad in ["--threads 0", "--size huge", "--mode unsafe-off-during-mark", "--heap 12Q", "--percent", "--x"] {
            assert!(args(bad).is_err(), "{bad}");
        }
    }
}
