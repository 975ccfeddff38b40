//! `cargo xtask compare`: GCBench on Boehm GC (C), on Go and on tricolor's host collector, side by
//! side on this machine: the same benchmark (Boehm's sizes, a node of two pointers and two 64-bit
//! payload words), pinned to the same CPUs, each run `--runs` times. One table of min / median /
//! max per figure, `results/compare.csv` (one row per run) and `results/compare.svg` (medians).
//!
//! Every figure comes from the runtime that ran: Boehm's collection events, Go's runtime/metrics
//! (and its gctrace for the GC wall time), tricolor's own counters and its mutators' measurements.
//! `bench/gcbench/boehm.c` and `bench/gcbench/gcbench.go` say how each of theirs is obtained.
//!
//! `--profile` runs tricolor's GCBench under `valgrind --tool=callgrind` instead and derives
//! instructions per allocation, per marked object and per swept span from the inclusive costs of
//! the allocation, drain and sweep functions (`results/profile.csv`).

use crate::args::Args;
use crate::bench::{self, BenchLine, Panel};
use crate::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A figure of the table: its key in the BENCH lines and the CSV, and its row label.
struct Figure {
    key: &'static str,
    label: &'static str,
}

/// Rows of the table, in order. Each peer's BENCH line uses these keys.
const FIGURES: [Figure; 9] = [
    Figure { key: "total_ms", label: "wall time (ms)" },
    Figure { key: "cpu_ms", label: "CPU time (ms)" },
    Figure { key: "gc_ms", label: "GC time: cycles in progress (ms)" },
    Figure { key: "blocked_max_us", label: "longest mutator block (us)" },
    Figure { key: "pause_p99_us", label: "pause p99 (us)" },
    Figure { key: "pause_max_us", label: "pause max (us)" },
    Figure { key: "peak_heap_mib", label: "peak heap (MiB)" },
    Figure { key: "cycles", label: "cycles" },
    Figure { key: "peak_rss_mib", label: "peak RSS (MiB)" },
];

/// One runtime's runs: its name in the table and a BENCH line per run.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub runs: Vec<BenchLine>,
}

/// Min, median (lower middle for an even count) and max of `values`, or `None` if empty.
pub fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some((v[0], v[(v.len() - 1) / 2], v[v.len() - 1]))
}

impl Series {
    /// The values of `key` over the runs (runs that lack it are left out).
    fn values(&self, key: &str) -> Vec<f64> {
        self.runs.iter().filter_map(|l| l.get(key)?.parse().ok()).collect()
    }

    /// The median of `key`, if every run has it.
    pub fn median(&self, key: &str) -> Option<f64> {
        let v = self.values(key);
        (v.len() == self.runs.len()).then(|| min_median_max(&v)).flatten().map(|(_, m, _)| m)
    }
}

/// A number as the table writes it: three significant digits, at most one decimal.
fn number(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table: a row per figure, a column per runtime, each cell `min / median / max` (one value
/// when they are equal, `-` where the runtime does not report the figure).
pub fn table(series: &[Series]) -> String {
    let cells: Vec<Vec<String>> = FIGURES
        .iter()
        .map(|f| {
            series
                .iter()
                .map(|s| match min_median_max(&s.values(f.key)) {
                    None => "-".to_string(),
                    Some((a, m, b)) if a == b => number(m),
                    Some((a, m, b)) => format!("{} / {} / {}", number(a), number(m), number(b)),
                })
                .collect()
        })
        .collect();
    let label_width = FIGURES.iter().map(|f| f.label.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..series.len())
        .map(|k| cells.iter().map(|row| row[k].len()).chain([series[k].name.len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<label_width$}", "");
    for (s, w) in series.iter().zip(&widths) {
        let _ = write!(out, " | {:>w$}", s.name);
    }
    out.push('\n');
    let _ = write!(out, "{}", "-".repeat(label_width));
    for w in &widths {
        let _ = write!(out, "-+-{}", "-".repeat(*w));
    }
    out.push('\n');
    for (f, row) in FIGURES.iter().zip(&cells) {
        let _ = write!(out, "{:<label_width$}", f.label);
        for (c, w) in row.iter().zip(&widths) {
            let _ = write!(out, " | {c:>w$}");
        }
        out.push('\n');
    }
    out
}

/// `results/compare.csv`: a row per run of every runtime, a column per figure (empty where the
/// runtime does not report it).
pub fn csv(series: &[Series]) -> String {
    let mut out = String::from("runtime,run");
    for f in &FIGURES {
        out += ",";
        out += f.key;
    }
    out.push('\n');
    for s in series {
        for (i, run) in s.runs.iter().enumerate() {
            let _ = write!(out, "{},{}", s.name, i + 1);
            for f in &FIGURES {
                let _ = write!(out, ",{}", run.get(f.key).unwrap_or(""));
            }
            out.push('\n');
        }
    }
    out
}

/// The GC wall time of a Go run, from the runtime's `GODEBUG=gctrace=1` lines on stderr: the sum
/// of every cycle's `a+b+c ms clock` (stop-the-world sweep termination, concurrent mark and scan,
/// stop-the-world mark termination), and the number of cycles traced.
pub fn go_gctrace(stderr: &str) -> (f64, usize) {
    let mut total = 0.0;
    let mut cycles = 0;
    for line in stderr.lines().filter(|l| l.starts_with("gc ")) {
        let Some(clock) = line.split(": ").nth(1).and_then(|rest| rest.split(" ms clock").next()) else {
            continue;
        };
        let parts: Option<Vec<f64>> = clock.split('+').map(|p| p.trim().parse().ok()).collect();
        if let Some(parts) = parts {
            total += parts.iter().sum::<f64>();
            cycles += 1;
        }
    }
    (total, cycles)
}

/// What the comparison runs.
struct Options {
    runs: usize,
    cpus: String,
    size: String,
    /// Tricolor's heap: `None` for Boehm's peak heap (equal heap), else `--heap` as given.
    heap: Option<String>,
    /// Tricolor's GOGC, or `off` (cycles start only at its heap limit, as Boehm's at its heap's).
    percent: String,
    poison: bool,
    profile: bool,
    /// `--profile` another build of the gcbench example (e.g. an older commit's).
    binary: Option<PathBuf>,
}

impl Options {
    fn parse(args: &mut Args) -> Result<Options> {
        let runs = match args.value("--runs")? {
            Some(v) => v.parse().ok().filter(|&n| n > 0).ok_or_else(|| format!("--runs {v}: not a count"))?,
            None => 3,
        };
        let cpus = args.value("--cpus")?.unwrap_or_else(|| "0,1".into());
        if cpus.is_empty() || !cpus.chars().all(|c| c.is_ascii_digit() || c == ',' || c == '-') {
            return Err(format!("--cpus {cpus}: not a CPU list like 0,1 or 0-1"));
        }
        let size = args.value("--size")?.unwrap_or_else(|| "full".into());
        if !["full", "quick", "tiny"].contains(&size.as_str()) {
            return Err(format!("--size {size}: not full, quick or tiny"));
        }
        let heap = args.value("--heap")?;
        let percent = args.value("--percent")?.unwrap_or_else(|| "off".into());
        if percent != "off" && percent.parse::<u32>().is_err() {
            return Err(format!("--percent {percent}: not a percentage or off"));
        }
        // Off by default: poisoning is a debugging aid (the stress suites' poison check needs it),
        // like Go's GODEBUG=clobberfree=1, which Go also leaves off; Boehm GC writes freed memory
        // once (it clears it), as tricolor does without poison (it zeroes at allocation).
        let poison = args.flag("--poison");
        let profile = args.flag("--profile");
        let binary = args.value("--binary")?.map(PathBuf::from);
        if binary.is_some() && !profile {
            return Err("--binary goes with --profile".into());
        }
        args.finish()?;
        Ok(Options { runs, cpus, size, heap, percent, poison, profile, binary })
    }

    fn cpu_count(&self) -> usize {
        self.cpu_list().len()
    }

    /// The CPUs of `--cpus` (taskset's list syntax: `0,1`, `0-3`, `0,2-3`).
    fn cpu_list(&self) -> Vec<usize> {
        self.cpus
            .split(',')
            .flat_map(|r| match r.split_once('-') {
                Some((a, b)) => a.parse::<usize>().unwrap_or(0)..=b.parse::<usize>().unwrap_or(0),
                None => {
                    let c = r.parse::<usize>().unwrap_or(0);
                    c..=c
                }
            })
            .collect()
    }
}

fn out_dir() -> PathBuf {
    crate::cargo::workspace_root().join("target").join("compare")
}

/// Runs `program args` with `env`, pinned with taskset to `cpus`; its stdout and stderr.
fn run_pinned(cpus: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(String, String)> {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("xtask: $ {} taskset -c {cpus} {} {}", shown.join(" "), program.display(), args.join(" "));
    let out = Command::new("taskset")
        .arg("-c")
        .arg(cpus)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start taskset: {e}"))?;
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    if !out.status.success() {
        return Err(format!("{} failed ({}):\n{stdout}{stderr}", program.display(), out.status));
    }
    Ok((stdout, stderr))
}

/// The one BENCH line of `kind` in `stdout`.
fn one_line(stdout: &str, kind: &str, what: &str) -> Result<BenchLine> {
    let mut lines: Vec<BenchLine> = bench::parse(stdout).into_iter().filter(|l| l.kind == kind).collect();
    match (lines.pop(), lines.is_empty()) {
        (Some(line), true) => Ok(line),
        _ => Err(format!("{what} printed no single BENCH {kind} line:\n{stdout}")),
    }
}

fn set(line: &mut BenchLine, key: &str, value: String) {
    line.fields.retain(|(k, _)| k != key);
    line.fields.push((key.to_string(), value));
}

/// Builds tricolor's example for `--profile` (feature `profile-boundaries`: `Collector::alloc`
/// kept out of line, so that callgrind can attribute allocation), in a target directory of its own
/// so that the benchmark build stays as it is; its path.
fn build_profiled() -> Result<PathBuf> {
    build_example("host,profile-boundaries", &out_dir().join("profile-target"))
}

/// Builds tricolor's GCBench example with `features` into `target_dir`; its path.
fn build_example(features: &str, target_dir: &Path) -> Result<PathBuf> {
    let dir_arg = target_dir.to_string_lossy();
    crate::cargo::run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "tricolor-gc",
            "--features",
            features,
            "--example",
            "gcbench",
            "--target-dir",
            &dir_arg,
        ],
    )?;
    Ok(target_dir.join("release/examples/gcbench"))
}

/// Builds the two peers and tricolor's example; their paths.
fn build() -> Result<(PathBuf, PathBuf, PathBuf)> {
    let root = crate::cargo::workspace_root();
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let boehm = dir.join("boehm-gcbench");
    let c_source = root.join("bench/gcbench/boehm.c");
    crate::cargo::run("cc", &["-O2", "-Wall", "-o", &boehm.to_string_lossy(), &c_source.to_string_lossy(), "-lgc"])?;
    let go = dir.join("go-gcbench");
    let go_source = root.join("bench/gcbench/gcbench.go");
    println!("xtask: $ go build -o {} {}", go.display(), go_source.display());
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&go)
        .arg(&go_source)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "auto")
        .status()
        .map_err(|e| format!("cannot run go: {e}"))?;
    if !status.success() {
        return Err(format!("go build failed ({status})"));
    }
    Ok((boehm, go, build_example("host", &root.join("target"))?))
}

/// `compare [--runs N] [--cpus LIST] [--size S] [--heap H] [--percent P] [--poison] [--profile]`.
pub fn run(args: &mut Args) -> Result {
    let o = Options::parse(args)?;
    crate::setup::compare_tools(o.profile)?;
    if let Some(binary) = &o.binary {
        return profile(&o, binary);
    }
    if o.profile {
        return profile(&o, &build_profiled()?);
    }
    let (boehm, go, tricolor) = build()?;
    let gomaxprocs = o.cpu_count().to_string();
    println!(
        "compare: GCBench size {} (full: Boehm's stretch 18, long-lived 16, 500000 doubles, depths 4..16 step 2), \
         {} run(s) each, all pinned to CPUs {} (taskset); one mutator thread everywhere",
        o.size, o.runs, o.cpus
    );
    // Rounds of all four, so that a change in the host's load affects every runtime alike. The
    // first Boehm run gives tricolor's heap (Boehm's peak heap repeats from run to run).
    let boehm_run = || -> Result<BenchLine> {
        let (stdout, _) = run_pinned(&o.cpus, &boehm, &[&o.size], &[])?;
        print!("{stdout}");
        one_line(&stdout, "peer-gcbench", "boehm-gcbench")
    };
    let mut boehm_runs = vec![boehm_run()?];
    let heap = match &o.heap {
        Some(h) => h.clone(),
        None => {
            let peak: f64 =
                boehm_runs[0].get("peak_heap_mib").and_then(|v| v.parse().ok()).ok_or("Boehm reported no peak heap")?;
            format!("{}M", peak.ceil() as u64)
        }
    };
    let gogc = "100";
    let mut go_runs = Vec::new();
    let mut off_runs = Vec::new();
    let mut buffered_runs = Vec::new();
    for round in 0..o.runs {
        if round > 0 {
            boehm_runs.push(boehm_run()?);
        }
        let env = [("GOMAXPROCS", gomaxprocs.as_str()), ("GOGC", gogc), ("GODEBUG", "gctrace=1")];
        let (stdout, stderr) = run_pinned(&o.cpus, &go, &[&o.size], &env)?;
        print!("{stdout}");
        let mut line = one_line(&stdout, "peer-gcbench", "go-gcbench")?;
        let (gc_ms, traced) = go_gctrace(&stderr);
        set(&mut line, "gc_ms", format!("{gc_ms:.1}"));
        set(&mut line, "gctrace_cycles", traced.to_string());
        go_runs.push(line);
        for (mode, runs) in [("off", &mut off_runs), ("buffered", &mut buffered_runs)] {
            let mut args = vec!["--size", &o.size, "--mode", mode, "--heap", &heap, "--percent", &o.percent];
            if !o.poison {
                args.push("--no-poison");
            }
            let (stdout, _) = run_pinned(&o.cpus, &tricolor, &args, &[])?;
            print!("{stdout}");
            let mut line = one_line(&stdout, "host-gcbench", "tricolor's gcbench")?;
            // The table's names for tricolor's figures.
            let max_pause = line.get("max_pause_us").unwrap_or_default().to_string();
            set(&mut line, "pause_max_us", max_pause);
            runs.push(line);
        }
    }
    let noise = noise_probe(&o, &tricolor)?;
    let boehm = Series { name: "Boehm".into(), runs: boehm_runs };
    let series = [
        boehm,
        Series { name: "Go".into(), runs: go_runs },
        Series { name: "tricolor off".into(), runs: off_runs },
        Series { name: "tricolor buffered".into(), runs: buffered_runs },
    ];
    report(&o, &series, &heap, &noise)
}

/// How long the probe spins on each CPU.
const NOISE_PROBE_MS: &str = "2000";

/// Runs the example's noise probe on every CPU of the set at once (each pinned to its CPU), as the
/// benchmarks ran: one line per CPU saying how often and how long the machine took it away.
fn noise_probe(o: &Options, tricolor: &Path) -> Result<Vec<String>> {
    let cpus = o.cpu_list();
    println!(
        "xtask: $ taskset -c CPU {} --noise-probe {NOISE_PROBE_MS}   (CPU in {:?}, at once)",
        tricolor.display(),
        cpus
    );
    let children: Vec<_> = cpus
        .iter()
        .map(|cpu| {
            Command::new("taskset")
                .arg("-c")
                .arg(cpu.to_string())
                .arg(tricolor)
                .args(["--noise-probe", NOISE_PROBE_MS])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start taskset: {e}"))
        })
        .collect::<Result<_>>()?;
    let mut lines = Vec::new();
    for (cpu, child) in cpus.iter().zip(children) {
        let out = child.wait_with_output().map_err(|e| format!("noise probe on CPU {cpu}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let l = one_line(&stdout, "noise-probe", "the noise probe")?;
        let f = |k: &str| l.get(k).unwrap_or("?").to_string();
        lines.push(format!(
            "  CPU {cpu}: {} gaps over 100 us ({} over 1 ms), longest {} us, {} ms lost of {} ms",
            f("gaps_over_100us"),
            f("gaps_over_1ms"),
            f("longest_gap_us"),
            f("lost_ms"),
            f("spun_ms")
        ));
    }
    Ok(lines)
}

fn field<'a>(s: &'a Series, key: &str) -> &'a str {
    s.runs.first().and_then(|l| l.get(key)).unwrap_or("?")
}

/// Prints the parameters, the table, how each figure was obtained and the targets; writes
/// the CSV and the plot.
fn report(o: &Options, series: &[Series], heap: &str, noise: &[String]) -> Result {
    let [boehm, go, off, buffered] = series else { unreachable!("four series") };
    println!();
    println!("compare: parameters, the same for all: size {}, one mutator thread, CPUs {} (taskset)", o.size, o.cpus);
    println!(
        "  Boehm GC {}: {} marker thread(s) (GC_get_parallel() + 1; GC_MARKERS overrides), {}-byte nodes (GC_size; \
         the extra byte for interior pointers rounds 32 up), default heap growth",
        field(boehm, "version"),
        field(boehm, "markers"),
        field(boehm, "node_bytes")
    );
    println!(
        "  Go {}: GOMAXPROCS {}, GOGC 100, {}-byte nodes (no header)",
        field(go, "version"),
        field(go, "gomaxprocs"),
        field(go, "node_bytes")
    );
    println!(
        "  tricolor: a mutator thread and a collector thread, each pinned to a CPU of its own (a thread stands for \
         a core; --no-pin unpins), heap {heap}{}, GOGC {}, cycles start before the heap is full (a reserve for \
         allocation during the cycle), mutators assist a concurrent mark in proportion to their allocation, freed \
         memory {}, 48-byte nodes (8-byte header, class 48); modes off (the whole mark stops the world and both \
         threads mark, as Boehm's 2 markers do) and buffered",
        if o.heap.is_none() { " (Boehm's peak heap, rounded up: equal heap)" } else { "" },
        o.percent,
        if o.poison {
            "poisoned (--poison)"
        } else {
            "NOT poisoned (tricolor's --no-poison: a debugging aid, off like Go's clobberfree; --poison turns it on)"
        }
    );
    println!();
    print!("{}", table(series));
    println!();
    println!(
        "the machine's noise floor (a thread spinning on each CPU after the runs: every pause and block above can \
         grow by as much):"
    );
    for line in noise {
        println!("{line}");
    }
    println!();
    println!("how each figure was obtained:");
    println!(
        "  Boehm: wall and CPU (CLOCK_PROCESS_CPUTIME_ID) from the start of the stretch tree to the last tree; \
         GC time and the longest block from GC_EVENT_START..END (the only mutator runs every collection), \
         pauses from GC_EVENT_PRE_STOP_WORLD..POST_START_WORLD, peak heap GC_get_heap_size() at every GC_EVENT_END \
         and at the end, cycles counted by the events, peak RSS getrusage"
    );
    println!(
        "  Go: wall, CPU (getrusage); GC time the sum of gctrace's 'ms clock' per cycle; pauses from runtime/metrics \
         /gc/pauses:seconds (bucket upper bounds, <= 1/16 over); cycles /gc/cycles/total:gc-cycles; peak heap the \
         most of /memory/classes/heap/{{objects,unused}} (HeapInuse) sampled after every cycle (a finalizer) and at \
         the end; the mutator's blocked time is not measurable from inside Go (-)"
    );
    println!(
        "  tricolor: wall and CPU (CLOCK_PROCESS_CPUTIME_ID) over the same span; GC time the sum of collect() calls on \
         the collector thread; longest block measured at the mutator (stop-the-world parks and whole waits for a \
         full heap); pauses the stop-the-world closures (mark setup, mark termination); peak heap the most pages \
         ever in spans; peak RSS VmHWM (the heap region is poisoned at start, so all of it is resident)"
    );
    let results = crate::cargo::workspace_root().join("results");
    std::fs::create_dir_all(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let path = results.join("compare.csv");
    std::fs::write(&path, csv(series)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote {}", path.display());
    plot(&results.join("compare.svg"), series)?;
    println!();
    for line in targets(boehm, go, off, buffered) {
        println!("{line}");
    }
    Ok(())
}

/// The targets on the medians, each with its numbers and whether it is met.
pub fn targets(boehm: &Series, go: &Series, off: &Series, buffered: &Series) -> Vec<String> {
    let m = |s: &Series, k: &str| s.median(k).unwrap_or(f64::NAN);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let (b_total, g_total) = (m(boehm, "total_ms"), m(go, "total_ms"));
    let (o_total, t_total) = (m(off, "total_ms"), m(buffered, "total_ms"));
    let b_heap = m(boehm, "peak_heap_mib");
    let heap_ok = |s: &Series| m(s, "peak_heap_mib") <= 1.1 * b_heap;
    let g_pause = m(go, "pause_max_us");
    let t_block = m(buffered, "blocked_max_us");
    vec![
        format!(
            "target: tricolor off total {:.1} ms <= Boehm {:.1} ms: {}",
            o_total,
            b_total,
            verdict(o_total <= b_total)
        ),
        format!(
            "target: tricolor buffered total {:.1} ms <= Go {:.1} ms and <= 1.5 x Boehm = {:.1} ms: {}",
            t_total,
            g_total,
            1.5 * b_total,
            verdict(t_total <= g_total && t_total <= 1.5 * b_total)
        ),
        format!(
            "target: peak heap off {:.2} / buffered {:.2} MiB <= 1.1 x Boehm = {:.2} MiB: {}",
            m(off, "peak_heap_mib"),
            m(buffered, "peak_heap_mib"),
            1.1 * b_heap,
            verdict(heap_ok(off) && heap_ok(buffered))
        ),
        format!(
            "target: tricolor buffered longest mutator block {:.1} us <= Go max pause {:.1} us: {}",
            t_block,
            g_pause,
            verdict(t_block <= g_pause)
        ),
    ]
}

/// `results/compare.svg`: medians of the times, of the longest block and pause, and of the heap.
fn plot(path: &Path, series: &[Series]) -> Result {
    let bars = |columns: &[(&str, &str)]| bench::Bars {
        categories: series.iter().map(|s| s.name.clone()).collect(),
        series: columns
            .iter()
            .map(|(name, key)| (name.to_string(), series.iter().map(|s| s.median(key).unwrap_or(0.0)).collect()))
            .collect(),
    };
    bench::bar_charts(
        path,
        vec![
            Panel {
                title: "GCBench: time (medians)",
                y_desc: "ms",
                bars: bars(&[("wall", "total_ms"), ("CPU", "cpu_ms"), ("GC", "gc_ms")]),
            },
            Panel {
                title: "longest mutator block, max pause (medians)",
                y_desc: "us",
                bars: bars(&[("mutator blocked", "blocked_max_us"), ("pause max", "pause_max_us")]),
            },
            Panel {
                title: "peak heap and RSS (medians)",
                y_desc: "MiB",
                bars: bars(&[("heap", "peak_heap_mib"), ("RSS", "peak_rss_mib")]),
            },
        ],
    )
}

/// A function's inclusive cost from `callgrind_annotate --tree=caller --inclusive=yes` output.
/// With inlining, callgrind_annotate splits a function into one `file:function` entry per source
/// file its code came from, and their inclusive costs overlap; the entry that callers call (the
/// one with `<` caller lines above its `*` line) holds the whole call cost. Summed over such
/// entries of exactly `name`.
pub fn inclusive(tree: &str, name: &str) -> Option<u64> {
    let function = |line: &str| -> Option<(u64, String)> {
        let (cost, rest) = line.trim_start().split_once(' ')?;
        let rest = rest.trim_start().strip_prefix('(')?.split_once(')')?.1.trim_start();
        let rest = rest.strip_prefix("* ").or_else(|| rest.strip_prefix("< "))?.trim_start();
        let (_, f) = rest.split_once(':')?;
        let f = f.split(" [").next()?.split(" (").next()?.trim();
        Some((cost.replace(',', "").parse().ok()?, f.to_string()))
    };
    let mut total = None;
    let mut callers = 0;
    for line in tree.lines() {
        let marker = line.trim_start().split_once(')').map(|(_, r)| r.trim_start());
        match marker {
            Some(r) if r.starts_with("< ") => callers += 1,
            Some(r) if r.starts_with("* ") => {
                if let Some((cost, f)) = function(line) {
                    if callers > 0 && f == name {
                        *total.get_or_insert(0) += cost;
                    }
                }
                callers = 0;
            }
            _ => callers = 0,
        }
    }
    total
}

/// The cost of the calls from `caller` to `callee` in `callgrind_annotate --tree=caller` output
/// (the `<` lines naming `caller` above `callee`'s `*` line), 0 if there are none.
pub fn call_cost(tree: &str, callee: &str, caller: &str) -> u64 {
    let name = |line: &str, marker: &str| -> Option<(u64, String)> {
        let (cost, rest) = line.trim_start().split_once(' ')?;
        let rest = rest.trim_start().strip_prefix('(')?.split_once(')')?.1.trim_start();
        let rest = rest.strip_prefix(marker)?.trim_start();
        let (_, f) = rest.split_once(':')?;
        let f = f.split(" [").next()?.split(" (").next()?.trim();
        Some((cost.replace(',', "").parse().ok()?, f.to_string()))
    };
    let mut total = 0;
    let mut pending = 0;
    for line in tree.lines() {
        if let Some((cost, f)) = name(line, "< ") {
            if f == caller {
                pending += cost;
            }
        } else if let Some((_, f)) = name(line, "* ") {
            if f == callee {
                total += pending;
            }
            pending = 0;
        } else {
            pending = 0;
        }
    }
    total
}

/// Where allocation sweeps (a refill's lazy sweep, inlined into the slow path or not); the rest of
/// the sweeping is the sweep walk's (`Heap::sweep_chunk`: the collector's, and an allocator's that
/// helps it from outside `Collector::alloc`).
const REFILL_FNS: [&str; 2] = ["tricolor_gc::heap::Heap::alloc_small_slow", "tricolor_gc::heap::Heap::refill"];

/// Functions whose inclusive costs the profile divides.
const ALLOC_FN: &str = "tricolor_gc::collector::Collector::alloc";
const DRAIN_FN: &str = "tricolor_gc::mark::drain";
/// Mark assists' bounded drain.
const DRAIN_SOME_FN: &str = "tricolor_gc::mark::drain_some";
const SWEEP_FN: &str = "tricolor_gc::heap::Heap::sweep_claimed";

/// `compare --profile`: tricolor's GCBench (mode off: marking is not interleaved with the
/// mutator, so the counts repeat) under callgrind.
fn profile(o: &Options, tricolor: &Path) -> Result {
    let dir = out_dir();
    // `--binary` builds nothing here, so nothing made the directory yet.
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut csv = String::from(
        "mode,poison,instructions,allocs,marked_objects,spans_swept,per_alloc,per_alloc_without_sweep,per_marked_object,per_span_swept\n",
    );
    for mode in ["off", "buffered"] {
        let tag = if o.binary.is_some() { "-binary" } else { "" };
        let cg = dir.join(format!("callgrind-{mode}{tag}.out"));
        let mut args: Vec<String> =
            ["--tool=callgrind".into(), format!("--callgrind-out-file={}", cg.display())].into();
        args.push(tricolor.display().to_string());
        // The default heap of the example when none is given (GOGC off needs one).
        let heap = o.heap.clone().unwrap_or_else(|| "36M".into());
        args.extend(["--size", &o.size, "--mode", mode, "--percent", &o.percent, "--heap", &heap].map(String::from));
        if !o.poison {
            args.push("--no-poison".into());
        }
        // glibc's memset uses `rep stosb` above 2 KiB, which callgrind counts as one instruction
        // per byte; the threshold moved out of reach, it counts the vector stores instead.
        let tunables = "glibc.cpu.x86_rep_stosb_threshold=0x7fffffffffffffff";
        println!("xtask: $ GLIBC_TUNABLES={tunables} valgrind {}", args.join(" "));
        let out = Command::new("valgrind")
            .args(&args)
            .env("GLIBC_TUNABLES", tunables)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("valgrind failed ({}):\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
        let line = one_line(&stdout, "host-gcbench", "tricolor's gcbench under callgrind")?;
        let annotate = Command::new("callgrind_annotate")
            .args(["--tree=caller", "--inclusive=yes", "--threshold=100"])
            .arg(&cg)
            .output()
            .map_err(|e| format!("cannot run callgrind_annotate: {e}"))?;
        let annotate = String::from_utf8_lossy(&annotate.stdout);
        let total = annotate
            .lines()
            .find(|l| l.contains("PROGRAM TOTALS"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.replace(',', "").parse::<u64>().ok())
            .ok_or("callgrind_annotate printed no PROGRAM TOTALS")?;
        let cost = |f: &str| inclusive(&annotate, f).ok_or_else(|| format!("callgrind saw no function {f}"));
        let count = |k: &str| line.get(k).and_then(|v| v.parse::<u64>().ok()).ok_or(format!("BENCH line lacks {k}"));
        let (allocs, marked, swept) = (count("allocs")?, count("marked_objects")?, count("spans_swept")?);
        // Assists scan in `drain_some` (absent from a build without them, or a run without one).
        // `drain` is `drain_some` unbounded: what it calls of it is in both inclusive costs once.
        let bounded = inclusive(&annotate, DRAIN_SOME_FN).unwrap_or(0);
        let drain = cost(DRAIN_FN)? + bounded - call_cost(&annotate, DRAIN_SOME_FN, DRAIN_FN).min(bounded);
        let (alloc, sweep) = (cost(ALLOC_FN)?, cost(SWEEP_FN)?);
        let sweep_in_alloc: u64 = REFILL_FNS.iter().map(|f| call_cost(&annotate, SWEEP_FN, f)).sum();
        let per = |c: u64, n: u64| c as f64 / n.max(1) as f64;
        println!(
            "profile: mode {mode}: {total} instructions; {:.1} per allocation ({ALLOC_FN}, {allocs} allocations; \
             {:.1} without the sweeping its refills do), {:.1} per marked object ({DRAIN_FN} and {DRAIN_SOME_FN}, {marked} objects), {:.1} per swept span \
             ({SWEEP_FN}, {swept} spans)",
            per(alloc, allocs),
            per(alloc - sweep_in_alloc, allocs),
            per(drain, marked),
            per(sweep, swept)
        );
        let _ = writeln!(
            csv,
            "{mode},{},{total},{allocs},{marked},{swept},{:.2},{:.2},{:.2},{:.2}",
            if o.poison { "on" } else { "off" },
            per(alloc, allocs),
            per(alloc - sweep_in_alloc, allocs),
            per(drain, marked),
            per(sweep, swept)
        );
    }
    let results = crate::cargo::workspace_root().join("results");
    std::fs::create_dir_all(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let path = results.join(if o.binary.is_some() { "profile_binary.csv" } else { "profile.csv" });
    std::fs::write(&path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, lines: &str) -> Series {
        Series { name: name.into(), runs: bench::parse(lines) }
    }

    #[test]
    fn medians_take_the_middle_run() {
        assert_eq!(min_median_max(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(min_median_max(&[4.0, 1.0, 3.0, 2.0]), Some((1.0, 2.0, 4.0)), "lower middle of an even count");
        assert_eq!(min_median_max(&[]), None);
        let s = series("x", "BENCH a total_ms=5\nBENCH a total_ms=9\nBENCH a total_ms=7\n");
        assert_eq!(s.median("total_ms"), Some(7.0));
        assert_eq!(s.median("cpu_ms"), None, "missing in every run");
        let partial = series("x", "BENCH a total_ms=5\nBENCH a cpu_ms=1\n");
        assert_eq!(partial.median("cpu_ms"), None, "missing in one run");
    }

    #[test]
    fn the_table_has_a_row_per_figure_and_dashes_for_what_a_runtime_lacks() {
        let a = series(
            "Boehm",
            "BENCH p total_ms=390.1 cycles=35\nBENCH p total_ms=400.5 cycles=35\nBENCH p total_ms=380 cycles=36\n",
        );
        let b =
            series("Go", "BENCH p total_ms=805 blocked_max_us=nope\nBENCH p total_ms=936.4\nBENCH p total_ms=1551.6\n");
        let t = table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2 + FIGURES.len());
        assert!(lines[0].contains("Boehm") && lines[0].contains("Go"));
        let wall = lines.iter().find(|l| l.starts_with("wall time")).unwrap();
        assert!(wall.contains("380 / 390 / 400"), "{wall}");
        assert!(wall.contains("805 / 936 / 1552"), "{wall}");
        let cycles = lines.iter().find(|l| l.starts_with("cycles")).unwrap();
        assert!(cycles.contains("35 / 35 / 36") && cycles.trim_end().ends_with('-'), "{cycles}");
        let blocked = lines.iter().find(|l| l.starts_with("longest mutator block")).unwrap();
        assert!(blocked.trim_end().ends_with('-'), "an unparsable value is no value: {blocked}");
    }

    #[test]
    fn csv_has_a_row_per_run() {
        let a = series("Boehm", "BENCH p total_ms=1 cpu_ms=2\nBENCH p total_ms=3\n");
        let text = csv(&[a]);
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows[0].starts_with("runtime,run,total_ms,cpu_ms,gc_ms,"));
        assert_eq!(rows.len(), 3);
        assert!(rows[1].starts_with("Boehm,1,1,2,"));
        assert!(rows[2].starts_with("Boehm,2,3,,"));
        assert_eq!(rows[1].split(',').count(), 2 + FIGURES.len());
    }

    #[test]
    fn gctrace_clock_times_add_up() {
        let stderr = "gc 1 @0.010s 4%: 0.20+17+0.003 ms clock, 0.41+1.2/0.97/0+0.007 ms cpu, 3->7->7 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\n\
            some other line\n\
            gc 2 @0.040s 7%: 0.011+46+0.10 ms clock, 0.022+0/9.6/0+0.20 ms cpu, 12->18->18 MB, 14 MB goal, 2 P\n\
            gc 3 @0.05s 7%: garbled ms clock\n";
        let (ms, cycles) = go_gctrace(stderr);
        assert_eq!(cycles, 2);
        assert!((ms - (0.20 + 17.0 + 0.003 + 0.011 + 46.0 + 0.10)).abs() < 1e-9, "{ms}");
        assert_eq!(go_gctrace(""), (0.0, 0));
    }

    #[test]
    fn inclusive_costs_come_from_the_entry_callers_call() {
        let tree = "\
 1,940,510,659 (47.96%)  < gc/src/collector.rs:tricolor_gc::gcbench::Shared::collector_main (67x)
         2,412 ( 0.00%)  < gc/src/collector.rs:tricolor_gc::collector::Collector::mark_termination (67x) [/t/gcbench]
 1,940,513,071 (47.96%)  *  /w/gc/src/mark.rs:tricolor_gc::mark::drain

   756,796,893 (18.70%)  *  gc/src/mark.rs:tricolor_gc::mark::drain [/t/gcbench]

    29,126,960 ( 0.72%)  < gc/src/gcbench.rs:tricolor_gc::gcbench::Bench::populate (416,992x) [/t/gcbench]
 1,071,372,348 (26.48%)  *  /w/gc/src/collector.rs:tricolor_gc::collector::Collector::alloc

   502,936,432 (12.43%)  *  gc/src/heap.rs:tricolor_gc::collector::Collector::alloc
    13,067,108 ( 0.32%)  < gc/src/heap.rs:tricolor_gc::heap::Heap::alloc_small_slow (21,445x)
    86,794,508 ( 2.14%)  *  gc/src/heap.rs:tricolor_gc::heap::Heap::sweep_claimed_x [/t/gcbench]
";
        assert_eq!(inclusive(tree, DRAIN_FN), Some(1_940_513_071), "not the caller-less inlined part");
        assert_eq!(inclusive(tree, ALLOC_FN), Some(1_071_372_348));
        assert_eq!(inclusive(tree, SWEEP_FN), None, "no prefix matches");
        assert_eq!(call_cost(tree, DRAIN_FN, "tricolor_gc::gcbench::Shared::collector_main"), 1_940_510_659);
        assert_eq!(call_cost(tree, DRAIN_FN, "tricolor_gc::collector::Collector::mark_termination"), 2_412);
        assert_eq!(call_cost(tree, ALLOC_FN, "tricolor_gc::gcbench::Shared::collector_main"), 0);
        assert_eq!(
            call_cost(tree, "tricolor_gc::heap::Heap::sweep_claimed_x", "tricolor_gc::heap::Heap::alloc_small_slow"),
            13_067_108
        );
    }

    #[test]
    fn targets_compare_medians() {
        let boehm = series("Boehm", "BENCH p total_ms=400 peak_heap_mib=34\n");
        let go = series("Go", "BENCH p total_ms=800 pause_max_us=1000\n");
        let off = series("off", "BENCH p total_ms=390 peak_heap_mib=36\n");
        let buffered = series("buffered", "BENCH p total_ms=700 peak_heap_mib=38 blocked_max_us=1200\n");
        let t = targets(&boehm, &go, &off, &buffered);
        assert!(t[0].ends_with(": met"), "{}", t[0]);
        assert!(t[1].ends_with("NOT met"), "700 > 1.5 x 400: {}", t[1]);
        assert!(t[2].ends_with("NOT met"), "38 > 37.4: {}", t[2]);
        assert!(t[3].ends_with("NOT met"), "{}", t[3]);
    }

    #[test]
    fn cpu_lists_count_cpus() {
        let o = |cpus: &str| Options {
            runs: 1,
            cpus: cpus.into(),
            size: "full".into(),
            heap: None,
            percent: "off".into(),
            poison: true,
            profile: false,
            binary: None,
        };
        assert_eq!(o("0,1").cpu_count(), 2);
        assert_eq!(o("0-3").cpu_count(), 4);
        assert_eq!(o("1").cpu_count(), 1);
        assert_eq!(o("0,2-3").cpu_list(), [0, 2, 3]);
        let parse =
            |s: &str| Options::parse(&mut Args::from(s.split_whitespace().map(String::from).collect::<Vec<_>>()));
        let p = parse("--runs 5 --cpus 0 --size quick").unwrap();
        assert_eq!((p.runs, p.cpus.as_str(), p.size.as_str(), p.poison), (5, "0", "quick", false));
        assert!(parse("--poison").unwrap().poison);
        assert!(parse("--runs 0").is_err());
        assert!(parse("--size huge").is_err());
        assert!(parse("--cpus a").is_err());
        assert!(parse("--bogus").is_err());
        assert!(parse("--binary x").is_err(), "only with --profile");
        assert!(parse("--percent 50").is_ok() && parse("--percent half").is_err());
    }
}
