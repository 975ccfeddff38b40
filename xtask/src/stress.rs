//! `cargo xtask stress`: the GC stress matrix over the kernel's stress suites (`suite=`, see
//! kernel/ktest/stress.rs over kernel/src/workload/). Every core count x barrier mode x seed boots one suite (seeds rotate
//! through the suites, and every third round of seeds runs in torture mode) with the verifier on;
//! every run must come back `verdict=clean`. Then the negative control: the barrier-exercising
//! suites with the barrier off during concurrent marking, which the checks must catch on at least
//! 95 % of seeds (a verifier that never fires would make every clean run meaningless).
//!
//! Runs go `--jobs` at a time, each with a timeout, with a progress line per run, a summary
//! table, and `results/stress_runs.csv` (one row per run). `--ci` is the subset `cargo xtask
//! test` runs; `--replay "<kernel command line>" --smp N` reboots one failed run.

use crate::args::Args;
use crate::qemu::{self, Machine};
use crate::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tricolor_abi::MAX_CORES;

/// Longest one run may take (GCBench-quick at smp 4 under a loaded host is the slowest).
const TIMEOUT: Duration = Duration::from_secs(240);

/// The barrier modes a clean run may use (the unsafe one is only for the negative control). The
/// full matrix runs them all; Go 1.9's `direct-systemstack` shades with `direct`'s code, on the
/// system stack, so what it adds to check is the switch inside every barrier. The CI subset
/// (`Options::ci`) leaves it to the matrix.
const MODES: &[&str] = &["off", "buffered", "direct", "checked", "direct-systemstack"];

/// The negative control needs concurrent mutators to race the marker.
const NEGATIVE_SMP: usize = 4;
/// Collections a negative-control run may take to show a miss (it stops at the first).
const NEGATIVE_CYCLES: u64 = 40;

/// The least share of seeds on which the negative control must be caught, in percent.
const DETECTION_THRESHOLD_PERCENT: u64 = 95;

/// The largest share of runs, in percent, that may have needed a stop-the-world retry (a core that
/// took longer than the kernel's 2 s deadline to reach a safe point). A retry is a finding, not a
/// failure of its run: an overloaded host can starve a vCPU that long. Above this share it is no
/// longer the host: the matrix fails.
const RETRY_SHARE_LIMIT_PERCENT: u64 = 5;

/// Console lines shown when a run fails: the first error lines and the last lines.
const ERROR_LINES: usize = 12;
const TAIL_LINES: usize = 12;

/// How xtask runs one kernel suite.
#[derive(Debug)]
pub struct SuiteSpec {
    pub name: &'static str,
    /// GC heap for it (large objects allocate fast; GCBench has a known peak).
    pub heap: &'static str,
    /// `gc.torture=` on torture rounds: a cycle every this many allocations.
    pub torture: u64,
    /// Whether the suite overwrites pointers to old objects, so the negative control applies.
    pub negative: bool,
    /// Needs the VirtIO GPU.
    pub gpu: bool,
}

pub const SUITES: &[SuiteSpec] = &[
    SuiteSpec { name: "graph", heap: "32M", torture: 2000, negative: true, gpu: false },
    SuiteSpec { name: "churn", heap: "16M", torture: 1000, negative: true, gpu: false },
    SuiteSpec { name: "large", heap: "96M", torture: 40, negative: true, gpu: false },
    SuiteSpec { name: "gcbench-quick", heap: "32M", torture: 20_000, negative: false, gpu: false },
    SuiteSpec { name: "framebuffer", heap: "32M", torture: 2000, negative: true, gpu: true },
];

fn spec(name: &str) -> Option<&'static SuiteSpec> {
    SUITES.iter().find(|s| s.name == name)
}

/// What to run.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub seeds: u64,
    pub smp: Vec<usize>,
    pub modes: Vec<String>,
    pub suites: Vec<String>,
    pub negative_seeds: u64,
    pub cycles: u64,
    pub jobs: usize,
}

/// What the command asks for: the matrix, one slice of it, the merge of slices, the slices run
/// here with GNU parallel, or one replayed boot.
#[derive(Debug, PartialEq)]
pub enum Command {
    Matrix(Options),
    /// `--shard I/N [--out FILE]`: the I-th of N slices; its CSV goes to FILE.
    Shard {
        options: Options,
        shard: Shard,
        out: PathBuf,
    },
    /// `--merge DIR`: the slices' CSVs in DIR joined into one summary and verdict.
    Merge {
        options: Options,
        dir: PathBuf,
    },
    /// `--parallel N`: N slices run on this host by GNU parallel, then merged.
    Parallel {
        options: Options,
        shards: usize,
    },
    Replay {
        append: String,
        smp: usize,
    },
}

/// One slice of the matrix: the runs whose position in the plan is `index - 1` modulo `count`,
/// so every slice gets a like mix of suites, core counts, torture rounds and negative controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` with 1 <= I <= N.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || format!("--shard {text}: want I/N with 1 <= I <= N (e.g. 3/8)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// `results/stress_shard_I_of_N.csv`.
    pub fn default_file(&self) -> PathBuf {
        PathBuf::from(format!("results/stress_shard_{}_of_{}.csv", self.index, self.count))
    }
}

/// The runs of one slice, in plan order.
pub fn slice(runs: Vec<Run>, shard: Shard) -> Vec<Run> {
    runs.into_iter().enumerate().filter(|(i, _)| shard.contains(*i)).map(|(_, r)| r).collect()
}

impl Options {
    /// The subset `cargo xtask test` runs: every suite once in the two concurrent barrier modes at
    /// 4 cores, and the negative control once per suite it applies to.
    pub fn ci() -> Self {
        Options {
            seeds: SUITES.len() as u64,
            smp: vec![4],
            modes: vec!["buffered".into(), "direct".into()],
            suites: SUITES.iter().map(|s| s.name.to_string()).collect(),
            negative_seeds: SUITES.iter().filter(|s| s.negative).count() as u64,
            cycles: 6,
            jobs: 2,
        }
    }
}

impl Command {
    /// `[--seeds N] [--smp 1,4] [--modes ...] [--suites ...] [--negative-seeds N] [--cycles N]
    /// [--jobs N] [--quick | --ci]` or `--replay "<append>" [--smp N]`; explicit options override
    /// the presets.
    pub fn parse(args: &mut Args) -> Result<Self> {
        let quick = args.flag("--quick");
        let ci = args.flag("--ci");
        let replay = args.value("--replay")?;
        let shard = args.value("--shard")?.map(|s| Shard::parse(&s)).transpose()?;
        let out = args.value("--out")?.map(PathBuf::from);
        let merge = args.value("--merge")?.map(PathBuf::from);
        let parallel = args.value("--parallel")?;
        let values = [
            args.value("--seeds")?,
            args.value("--smp")?,
            args.value("--modes")?,
            args.value("--suites")?,
            args.value("--negative-seeds")?,
            args.value("--cycles")?,
            args.value("--jobs")?,
        ];
        args.finish()?;
        let modes = [replay.is_some(), shard.is_some(), merge.is_some(), parallel.is_some()];
        if modes.iter().filter(|&&m| m).count() > 1 {
            return Err("--replay, --shard, --merge and --parallel exclude each other".into());
        }
        if out.is_some() && shard.is_none() {
            return Err("--out names a shard's CSV: it needs --shard I/N".into());
        }
        if let Some(append) = replay {
            let smp = values[1].as_deref().map(parse_smp_list).transpose()?.map_or(4, |list| list[0]);
            return Ok(Command::Replay { append, smp });
        }
        let options = Options::from_values(quick, ci, values)?;
        Ok(match (shard, merge, parallel) {
            (Some(shard), _, _) => Command::Shard { options, shard, out: out.unwrap_or_else(|| shard.default_file()) },
            (_, Some(dir), _) => Command::Merge { options, dir },
            (_, _, Some(n)) => {
                let shards =
                    n.parse().ok().filter(|&n| n > 0).ok_or(format!("--parallel {n}: not a positive number"))?;
                Command::Parallel { options, shards }
            }
            _ => Command::Matrix(options),
        })
    }
}

impl Options {
    fn from_values(quick: bool, ci: bool, values: [Option<String>; 7]) -> Result<Self> {
        let [seeds, smp, modes, suites, negative_seeds, cycles, jobs] = values;
        let mut o = if ci {
            Options::ci()
        } else {
            Options {
                seeds: if quick { SUITES.len() as u64 } else { 10 },
                smp: if quick { vec![4] } else { vec![1, 4] },
                modes: MODES.iter().map(|m| m.to_string()).collect(),
                suites: SUITES.iter().map(|s| s.name.to_string()).collect(),
                negative_seeds: 0,
                cycles: 8,
                jobs: 2,
            }
        };
        let positive = |flag: &str, s: String| -> Result<u64> {
            s.parse::<u64>().ok().filter(|&n| n > 0).ok_or(format!("{flag} {s}: not a positive number"))
        };
        if let Some(s) = seeds {
            o.seeds = positive("--seeds", s)?;
        }
        if let Some(list) = smp {
            o.smp = parse_smp_list(&list)?;
        }
        if let Some(list) = modes {
            o.modes = parse_list("--modes", &list, MODES)?;
        }
        if let Some(list) = suites {
            let names: Vec<&str> = SUITES.iter().map(|s| s.name).collect();
            o.suites = parse_list("--suites", &list, &names)?;
        }
        if let Some(s) = cycles {
            o.cycles = positive("--cycles", s)?;
        }
        if let Some(s) = jobs {
            o.jobs = positive("--jobs", s)? as usize;
        }
        o.negative_seeds = match negative_seeds {
            Some(s) => s.parse().map_err(|_| format!("--negative-seeds {s}: not a number"))?,
            None if ci => o.negative_seeds,
            None => o.seeds,
        };
        Ok(o)
    }
}

impl Options {
    /// The flags that give these options (what a slice's command line repeats).
    pub fn to_args(&self) -> Vec<String> {
        let list = |v: &[String]| v.join(",");
        let smp: Vec<String> = self.smp.iter().map(|n| n.to_string()).collect();
        [
            ("--seeds", self.seeds.to_string()),
            ("--smp", list(&smp)),
            ("--modes", list(&self.modes)),
            ("--suites", list(&self.suites)),
            ("--negative-seeds", self.negative_seeds.to_string()),
            ("--cycles", self.cycles.to_string()),
            ("--jobs", self.jobs.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

fn parse_smp_list(list: &str) -> Result<Vec<usize>> {
    list.split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_CORES).contains(n))
                .ok_or(format!("--smp: bad core count '{s}' (1..={MAX_CORES})"))
        })
        .collect()
}

fn parse_list(flag: &str, list: &str, valid: &[&str]) -> Result<Vec<String>> {
    list.split(',')
        .map(|m| {
            let m = m.trim();
            if valid.contains(&m) {
                Ok(m.to_string())
            } else {
                Err(format!("{flag}: unknown value '{m}' (one of {})", valid.join(",")))
            }
        })
        .collect()
}

/// One boot of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub name: String,
    pub suite: &'static str,
    pub mode: String,
    pub smp: usize,
    pub seed: u64,
    pub torture: u64,
    /// The negative control: passing means `verdict=caught`.
    pub negative: bool,
    pub append: String,
    pub gpu: bool,
}

impl Run {
    fn new(spec: &'static SuiteSpec, mode: &str, smp: usize, seed: u64, torture: u64, cycles: u64) -> Run {
        let negative = mode == "unsafe-off-during-mark";
        let kind = if negative { "negative" } else { mode };
        let torture_tag = if torture > 0 { "/torture" } else { "" };
        Run {
            name: format!("smp{smp}/{kind}/{}/seed{seed}{torture_tag}", spec.name),
            suite: spec.name,
            mode: mode.to_string(),
            smp,
            seed,
            torture,
            negative,
            append: format!(
                "suite={} seed={seed} gc.mode={mode} gc.verify=on gc.heap={} suite.cycles={cycles} gc.torture={torture}",
                spec.name, spec.heap
            ),
            gpu: spec.gpu,
        }
    }
}

/// The runs of `options`: seed `s` runs suite `s mod n`; every third round of seeds (seeds
/// `2n+1..=3n`, ...) is a torture round. Then the negative control over the suites it applies to.
pub fn plan(options: &Options) -> Vec<Run> {
    let suites: Vec<&'static SuiteSpec> = options.suites.iter().filter_map(|n| spec(n)).collect();
    let mut runs = Vec::new();
    if suites.is_empty() {
        return runs;
    }
    let pick = |list: &[&'static SuiteSpec], seed: u64| {
        let n = list.len() as u64;
        let spec = list[((seed - 1) % n) as usize];
        let torture = if ((seed - 1) / n) % 3 == 2 { spec.torture } else { 0 };
        (spec, torture)
    };
    for &smp in &options.smp {
        for mode in &options.modes {
            for seed in 1..=options.seeds {
                let (spec, torture) = pick(&suites, seed);
                runs.push(Run::new(spec, mode, smp, seed, torture, options.cycles));
            }
        }
    }
    let negative: Vec<&'static SuiteSpec> = suites.iter().copied().filter(|s| s.negative).collect();
    if !negative.is_empty() {
        for seed in 1..=options.negative_seeds {
            let spec = negative[((seed - 1) % negative.len() as u64) as usize];
            runs.push(Run::new(spec, "unsafe-off-during-mark", NEGATIVE_SMP, seed, 0, NEGATIVE_CYCLES));
        }
    }
    runs
}

/// The kernel's final line: `stress result: key=value ...`.
pub fn parse_result(output: &str) -> Option<BTreeMap<String, String>> {
    let line = output.lines().rev().find_map(|l| l.split_once("stress result: ").map(|(_, rest)| rest))?;
    let fields: BTreeMap<String, String> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fields.contains_key("verdict").then_some(fields)
}

/// How one run went.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// `clean`, `caught`, `FAILED`, `NOT-CAUGHT`, or why there was no result line.
    pub what: String,
    pub cycles: u64,
    pub misses: u64,
    /// Task stacks the root census found unscanned.
    pub unscanned: u64,
    pub corrupt: u64,
    /// Stop-the-world attempts that missed their deadline and were retried.
    pub stw_retries: u64,
    pub seconds: f64,
}

/// Judges a run from its exit status and result line.
pub fn judge(run: &Run, status: Option<i32>, timed_out: bool, output: &str, seconds: f64) -> Verdict {
    let fields = parse_result(output);
    let number = |key: &str| fields.as_ref().and_then(|f| f.get(key)).and_then(|v| v.parse().ok()).unwrap_or(0);
    let corrupt = number("corrupt") + number("mutator_corrupt") + number("poison");
    let (passed, what) = match (&fields, timed_out) {
        (_, true) => (false, format!("timed out after {} s", TIMEOUT.as_secs())),
        (None, false) => (false, format!("exit status {status:?} and no result line")),
        (Some(f), false) => {
            let verdict = f["verdict"].clone();
            let wanted = if run.negative { "caught" } else { "clean" };
            let consistent = f.get("suite").map(String::as_str) == Some(run.suite)
                && f.get("mode") == Some(&run.mode)
                && f.get("cores") == Some(&run.smp.to_string());
            match (verdict == wanted, status, consistent) {
                (true, Some(0), true) => (true, verdict),
                (true, _, false) => (false, format!("{verdict}, but the kernel ran another suite, mode or core count")),
                (true, status, true) => (false, format!("{verdict} with exit status {status:?}")),
                (false, ..) => (false, verdict),
            }
        }
    };
    Verdict {
        passed,
        what,
        cycles: number("cycles"),
        misses: number("misses"),
        unscanned: number("unscanned"),
        corrupt,
        stw_retries: number("stw_retries"),
        seconds,
    }
}

fn tail(output: &str, lines: usize) -> String {
    let all: Vec<&str> = output.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What to show of a failed run: its first error lines (where the failure began) and its tail.
fn failure_excerpt(output: &str) -> String {
    let errors: Vec<&str> =
        output.lines().filter(|l| ["ERROR", "PANIC", "FAIL"].iter().any(|w| l.contains(w))).take(ERROR_LINES).collect();
    format!("{}\n  ...\n{}", errors.join("\n"), tail(output, TAIL_LINES))
}

fn machine(elf: &Path, smp: usize, append: &str, gpu: bool) -> Machine {
    Machine { smp, append: append.to_string(), gpu, ..Machine::new(elf) }
}

/// Boots every run, `jobs` at a time, printing a line per run (and a failed run's console tail).
fn execute(elf: &Path, runs: &[Run], jobs: usize) -> Result<Vec<Verdict>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Verdict>>>> = Mutex::new(vec![None; runs.len()]);
    let print = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, runs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(run) = runs.get(i) else { break };
                let machine = machine(elf, run.smp, &run.append, run.gpu);
                let verdict = qemu::run_captured_dumping_hangs(&machine, TIMEOUT).map(|outcome| {
                    let v =
                        judge(run, outcome.status, outcome.timed_out, &outcome.output, outcome.elapsed.as_secs_f64());
                    let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                    let _line = print.lock().unwrap_or_else(|e| e.into_inner());
                    let status = if v.passed { "ok" } else { "FAILED" };
                    let retries = match v.stw_retries {
                        0 => String::new(),
                        n => format!(", {n} stop-the-world retries"),
                    };
                    println!(
                        "[{k}/{}] stress {} ... {status}: {} ({} cycles{retries}, {:.1} s)",
                        runs.len(),
                        run.name,
                        v.what,
                        v.cycles,
                        v.seconds
                    );
                    if !v.passed {
                        println!("----- first errors and last lines -----\n{}", failure_excerpt(&outcome.output));
                        let hang = outcome.hang_dump.as_ref().map(|dump| format!("{HANG_DUMP}\n{dump}"));
                        if let Some(hang) = &hang {
                            println!("{hang}");
                        }
                        save_failed_log(&run.name, &outcome.output, hang.as_deref());
                        println!("----- replay: cargo xtask stress --replay \"{}\" --smp {}", run.append, run.smp);
                    }
                    v
                });
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(verdict);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(|r| r.expect("every run ran")).collect()
}

/// Heads gdb's account of a run that timed out, after its console.
const HANG_DUMP: &str = "----- timed out: gdb at the timeout (tasks, then every core's backtrace) -----";

/// Where a failed run's whole console (and a hang's gdb dump) is kept.
const FAILED_LOGS: &str = "results/stress_failed";

/// Keeps a failed run's whole output, then its hang dump if any, in
/// `FAILED_LOGS/<run name>.log` (the summary shows only an excerpt), and says where.
fn save_failed_log(name: &str, output: &str, hang: Option<&str>) {
    let dir = crate::cargo::workspace_root().join(FAILED_LOGS);
    let path = dir.join(format!("{}.log", name.replace('/', "_")));
    let text = match hang {
        Some(hang) => format!("{output}\n{hang}\n"),
        None => output.to_string(),
    };
    match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, text)) {
        Ok(()) => println!("----- whole console: {}", path.display()),
        Err(e) => println!("----- cannot keep the whole console in {}: {e}", path.display()),
    }
}

/// `caught` of `total` as a whole percentage, rounded down (0 for no runs).
fn detection_percent(caught: u64, total: u64) -> u64 {
    (caught * 100).checked_div(total).unwrap_or(0)
}

/// Whether `caught` of `total` reaches the threshold, exactly (no rounding): caught/total >= 95/100.
/// No runs at all detect nothing.
fn detection_sufficient(caught: u64, total: u64) -> bool {
    total > 0 && caught * 100 >= DETECTION_THRESHOLD_PERCENT * total
}

/// One row of the summary.
#[derive(Debug, Default, PartialEq)]
struct Row {
    runs: u64,
    passed: u64,
    failed: u64,
    cycles: u64,
    misses: u64,
    unscanned: u64,
    corrupt: u64,
    /// Runs that needed a stop-the-world retry.
    retried: u64,
}

/// Rows keyed by "smpN/mode/suite" (the negative control under mode "negative").
fn summarize(runs: &[Run], verdicts: &[Verdict]) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (run, v) in runs.iter().zip(verdicts) {
        let kind = if run.negative { "negative" } else { &run.mode };
        let row = rows.entry(format!("smp{}/{kind}/{}", run.smp, run.suite)).or_default();
        row.runs += 1;
        row.passed += u64::from(v.passed);
        row.failed += u64::from(!v.passed);
        row.cycles += v.cycles;
        row.misses += v.misses;
        row.unscanned += v.unscanned;
        row.corrupt += v.corrupt;
        row.retried += u64::from(v.stw_retries > 0);
    }
    rows
}

fn summary_table(rows: &BTreeMap<String, Row>) -> String {
    let mut table = format!(
        "{:<34} {:>5} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8} {:>7}\n",
        "smp/mode/suite", "runs", "passed", "failed", "cycles", "misses", "unscanned", "corrupt", "retried"
    );
    for (key, row) in rows {
        table += &format!(
            "{key:<34} {:>5} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8} {:>7}\n",
            row.runs, row.passed, row.failed, row.cycles, row.misses, row.unscanned, row.corrupt, row.retried
        );
    }
    table
}

/// The header of results/stress_runs.csv and of every slice's CSV.
const CSV_HEADER: &str =
    "name,suite,smp,mode,seed,torture,negative,passed,verdict,cycles,misses,corrupt,seconds,unscanned,stw_retries";

fn csv(runs: &[Run], verdicts: &[Verdict]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for (r, v) in runs.iter().zip(verdicts) {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{},{}\n",
            r.name,
            r.suite,
            r.smp,
            r.mode,
            r.seed,
            r.torture,
            r.negative,
            v.passed,
            v.what.replace(',', ";"),
            v.cycles,
            v.misses,
            v.corrupt,
            v.seconds,
            v.unscanned,
            v.stw_retries
        );
    }
    out
}

/// Whether the share of runs that needed a stop-the-world retry is within
/// [`RETRY_SHARE_LIMIT_PERCENT`], exactly (no rounding).
fn retries_acceptable(retried: u64, total: u64) -> bool {
    retried * 100 <= RETRY_SHARE_LIMIT_PERCENT * total
}

/// Runs the matrix and the negative control, prints the summary, writes the CSV; fails if any
/// clean run failed or the detection rate is under the threshold.
pub fn run(elf: &Path, options: &Options) -> Result {
    let runs = plan(options);
    println!("stress: {} runs, {} at a time (timeout {} s each)", runs.len(), options.jobs, TIMEOUT.as_secs());
    let verdicts = execute(elf, &runs, options.jobs)?;
    write_csv(Path::new(RUNS_CSV), &runs, &verdicts)?;
    report(&runs, &verdicts)
}

/// Where `run` and `merge` write the whole matrix's rows.
const RUNS_CSV: &str = "results/stress_runs.csv";

fn write_csv(path: &Path, runs: &[Run], verdicts: &[Verdict]) -> Result {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, csv(runs, verdicts)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Runs one slice and writes its CSV to `out`. Fails if a clean run of the slice failed; the
/// negative control's detection rate is a property of the whole matrix, judged by `--merge`.
pub fn run_shard(elf: &Path, options: &Options, shard: Shard, out: &Path) -> Result {
    let all = plan(options);
    let total = all.len();
    let runs = slice(all, shard);
    println!(
        "stress: shard {}/{}: {} of {total} runs, {} at a time",
        shard.index,
        shard.count,
        runs.len(),
        options.jobs
    );
    let verdicts = execute(elf, &runs, options.jobs)?;
    println!();
    print!("{}", summary_table(&summarize(&runs, &verdicts)));
    write_csv(out, &runs, &verdicts)?;
    let failed: Vec<&str> =
        runs.iter().zip(&verdicts).filter(|(r, v)| !r.negative && !v.passed).map(|(r, _)| r.name.as_str()).collect();
    println!(
        "shard {}/{}: merge the slices with `cargo xtask stress {} --merge <dir>`",
        shard.index,
        shard.count,
        options.to_args().join(" ")
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "stress shard {}/{}: {} runs failed: {}",
            shard.index,
            shard.count,
            failed.len(),
            failed.join(", ")
        ))
    }
}

/// Joins the slices' CSVs in `dir` (every `*.csv` there) into the whole matrix's verdict, as an
/// unsharded run would give it, and writes results/stress_runs.csv. `options` must be the
/// slices' options: their plan says which runs must be there.
pub fn merge(options: &Options, dir: &Path) -> Result {
    let runs = plan(options);
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("--merge {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("--merge {}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "csv") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    let verdicts = merge_files(&runs, &files)?;
    println!("stress: merged {} runs from {} slice files in {}", runs.len(), files.len(), dir.display());
    write_csv(Path::new(RUNS_CSV), &runs, &verdicts)?;
    report(&runs, &verdicts)
}

/// `stress_shard_I_of_N` in a file name: (I, N).
fn shard_in_name(name: &str) -> Option<(usize, usize)> {
    let rest = &name[name.rfind("stress_shard_")? + "stress_shard_".len()..];
    let (i, rest) = rest.split_once("_of_")?;
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// The verdicts of `runs` (the whole plan, in order) from slice files (name, contents). Every
/// run must come from exactly one row: a run in no file is a missing slice, a run in two is a
/// slice merged twice, a row the plan lacks comes from other options.
pub fn merge_files(runs: &[Run], files: &[(String, String)]) -> Result<Vec<Verdict>> {
    let position: BTreeMap<&str, usize> = runs.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();
    let mut merged: Vec<Option<(Verdict, &str)>> = vec![None; runs.len()];
    if files.is_empty() {
        return Err("--merge: no .csv files to merge".into());
    }
    for (file, text) in files {
        let mut lines = text.lines();
        if lines.next() != Some(CSV_HEADER) {
            return Err(format!("{file}: not a stress CSV (header must be {CSV_HEADER})"));
        }
        for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row = parse_row(line).ok_or_else(|| format!("{file}:{}: malformed row {line:?}", n + 2))?;
            let &i = position.get(row.name.as_str()).ok_or_else(|| {
                format!(
                    "{file}: run {} is not in this matrix ({} runs): were the slices run with other options?",
                    row.name,
                    runs.len()
                )
            })?;
            let run = &runs[i];
            let planned = (run.suite, run.smp, run.mode.as_str(), run.seed, run.torture, run.negative);
            if (row.suite.as_str(), row.smp, row.mode.as_str(), row.seed, row.torture, row.negative) != planned {
                return Err(format!("{file}: run {} does not match this matrix's run of that name", row.name));
            }
            if let Some((_, other)) = &merged[i] {
                return Err(format!("run {} is in {other} and in {file}: a slice was merged twice", row.name));
            }
            merged[i] = Some((row.verdict, file.as_str()));
        }
    }
    let missing: Vec<usize> = (0..runs.len()).filter(|&i| merged[i].is_none()).collect();
    if let Some(&first) = missing.first() {
        // Name the missing slices when the files say how many there are.
        let counts: Vec<usize> = files.iter().filter_map(|(f, _)| shard_in_name(f).map(|(_, n)| n)).collect();
        let slices = match counts.first() {
            Some(&n) if counts.iter().all(|&c| c == n) => {
                let mut absent: Vec<usize> = missing.iter().map(|i| i % n + 1).collect();
                absent.sort_unstable();
                absent.dedup();
                let which: Vec<String> = absent.iter().map(|i| format!("{i}/{n}")).collect();
                let plural = if which.len() > 1 { "slices" } else { "slice" };
                format!(" ({plural} {} missing or incomplete)", which.join(", "))
            }
            _ => String::new(),
        };
        return Err(format!(
            "{} of {} runs have no row{slices}; first: {}",
            missing.len(),
            runs.len(),
            runs[first].name
        ));
    }
    Ok(merged.into_iter().map(|m| m.expect("every run merged").0).collect())
}

/// One CSV row.
struct CsvRow {
    name: String,
    suite: String,
    smp: usize,
    mode: String,
    seed: u64,
    torture: u64,
    negative: bool,
    verdict: Verdict,
}

fn parse_row(line: &str) -> Option<CsvRow> {
    let f: Vec<&str> = line.split(',').collect();
    let [name, suite, smp, mode, seed, torture, negative, passed, what, cycles, misses, corrupt, seconds, unscanned, stw_retries] =
        f[..]
    else {
        return None;
    };
    let bool_field = |s: &str| s.parse::<bool>().ok();
    Some(CsvRow {
        name: name.to_string(),
        suite: suite.to_string(),
        smp: smp.parse().ok()?,
        mode: mode.to_string(),
        seed: seed.parse().ok()?,
        torture: torture.parse().ok()?,
        negative: bool_field(negative)?,
        verdict: Verdict {
            passed: bool_field(passed)?,
            what: what.to_string(),
            cycles: cycles.parse().ok()?,
            misses: misses.parse().ok()?,
            corrupt: corrupt.parse().ok()?,
            seconds: seconds.parse().ok()?,
            unscanned: unscanned.parse().ok()?,
            stw_retries: stw_retries.parse().ok()?,
        },
    })
}

/// The whole matrix's summary and verdict (an unsharded run and a merge share it): the table,
/// the negative control's detection rate; fails if any clean run failed or the rate is under
/// the threshold.
pub fn report(runs: &[Run], verdicts: &[Verdict]) -> Result {
    let rows = summarize(runs, verdicts);
    println!();
    print!("{}", summary_table(&rows));
    let pairs = || runs.iter().zip(verdicts);
    let failures: Vec<&str> = pairs().filter(|(r, v)| !r.negative && !v.passed).map(|(r, _)| r.name.as_str()).collect();
    let negatives = pairs().filter(|(r, _)| r.negative).count() as u64;
    let caught = pairs().filter(|(r, v)| r.negative && v.passed).count() as u64;
    if negatives > 0 {
        println!(
            "negative control (barrier off during marking): caught on {caught} of {negatives} seeds ({} %)",
            detection_percent(caught, negatives)
        );
    }
    let clean = runs.len() as u64 - negatives - failures.len() as u64;
    println!(
        "clean runs: {clean} of {} with 0 verifier misses, unscanned stacks, corruption or poison failures",
        runs.len() as u64 - negatives
    );
    let retried = verdicts.iter().filter(|v| v.stw_retries > 0).count() as u64;
    let retries: u64 = verdicts.iter().map(|v| v.stw_retries).sum();
    println!(
        "stop-the-world retries: {retried} of {} runs needed one ({retries} retries in all; at most {RETRY_SHARE_LIMIT_PERCENT} % of runs may)",
        runs.len()
    );
    let detected = negatives == 0 || detection_sufficient(caught, negatives);
    let retries_ok = retries_acceptable(retried, runs.len() as u64);
    if failures.is_empty() && detected && retries_ok {
        return Ok(());
    }
    let mut why = Vec::new();
    if !failures.is_empty() {
        why.push(format!("{} runs failed: {}", failures.len(), failures.join(", ")));
    }
    if !detected {
        why.push(format!(
            "the negative control was caught on {caught} of {negatives} seeds, under {DETECTION_THRESHOLD_PERCENT} %"
        ));
    }
    if !retries_ok {
        why.push(format!(
            "{retried} of {} runs needed a stop-the-world retry, over {RETRY_SHARE_LIMIT_PERCENT} %",
            runs.len()
        ));
    }
    Err(format!("stress failed: {}", why.join("; ")))
}

/// `--parallel N`: N slices on this host, driven by GNU parallel exactly as the README shows for
/// several hosts (`--sshloginfile`), into results/stress_shards/, then merged.
pub fn run_parallel_local(options: &Options, shards: usize) -> Result {
    crate::setup::parallel()?;
    let dir = Path::new("results/stress_shards");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut args: Vec<String> = ["--halt", "never", "--jobs", &shards.to_string(), "--line-buffer", "--tag"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["cargo", "xtask", "stress"].map(String::from));
    args.extend(options.to_args());
    args.extend([
        "--shard".into(),
        format!("{{}}/{shards}"),
        "--out".into(),
        format!("{}/stress_shard_{{}}_of_{shards}.csv", dir.display()),
        ":::".into(),
    ]);
    args.extend((1..=shards).map(|i| i.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Err(e) = crate::cargo::run("parallel", &args) {
        // A slice whose runs failed still wrote its CSV: the merge gives the verdict.
        println!("xtask: {e}; merging what the slices wrote");
    }
    merge(options, dir)
}

/// Boots one run's command line and shows its console.
pub fn replay(elf: &Path, append: &str, smp: usize) -> Result {
    let gpu = append.split_whitespace().any(|w| w.strip_prefix("suite=").and_then(spec).is_some_and(|s| s.gpu));
    let outcome = qemu::run_captured(&machine(elf, smp, append, gpu), TIMEOUT)?;
    print!("{}", outcome.output);
    match (outcome.timed_out, outcome.status) {
        (false, Some(0)) => Ok(()),
        (true, _) => Err(format!("timed out after {} s", TIMEOUT.as_secs())),
        (false, status) => Err(format!("the kernel exited with status {status:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "[   3.000001] INFO  c0 stress stats: ...\n\
        stress result: suite=graph seed=3 mode=buffered cores=4 torture=0 cycles=9 misses=0 corrupt=0 mutator_corrupt=0 poison=0 finish=ok peak_reachable=5123 verdict=clean\n";

    fn run_for(suite: &str, mode: &str) -> Run {
        Run::new(spec(suite).unwrap(), mode, 4, 3, 0, 8)
    }

    #[test]
    fn result_line_parses_into_fields() {
        let f = parse_result(CLEAN).expect("the clean line parses");
        assert_eq!(f["suite"], "graph");
        assert_eq!(f["cycles"], "9");
        assert_eq!(f["verdict"], "clean");
        assert_eq!(parse_result("no such line\n"), None);
        assert_eq!(parse_result("stress result: suite=graph cycles=3\n"), None, "no verdict: truncated");
    }

    #[test]
    fn judge_passes_clean_and_fails_everything_else() {
        let run = run_for("graph", "buffered");
        assert!(judge(&run, Some(0), false, CLEAN, 1.0).passed);
        let failed = CLEAN.replace("misses=0", "misses=3").replace("verdict=clean", "verdict=FAILED");
        let v = judge(&run, Some(1), false, &failed, 1.0);
        assert!(!v.passed);
        assert_eq!((v.what.as_str(), v.misses), ("FAILED", 3));
        assert!(!judge(&run, Some(1), false, CLEAN, 1.0).passed, "clean line but a failing exit status");
        assert!(!judge(&run, None, true, CLEAN, 1.0).passed, "timed out");
        assert!(!judge(&run, Some(0), false, "PANIC\n", 1.0).passed, "no result line");
        assert!(!judge(&run_for("graph", "direct"), Some(0), false, CLEAN, 1.0).passed, "another mode ran");
        assert!(!judge(&run_for("churn", "buffered"), Some(0), false, CLEAN, 1.0).passed, "another suite ran");
        let corrupt = CLEAN.replace("mutator_corrupt=0", "mutator_corrupt=2").replace("poison=0", "poison=1");
        assert_eq!(judge(&run, Some(1), false, &corrupt, 1.0).corrupt, 3);
    }

    #[test]
    fn negative_runs_pass_only_when_caught() {
        let run = run_for("churn", "unsafe-off-during-mark");
        assert!(run.negative);
        let caught = CLEAN
            .replace("suite=graph", "suite=churn")
            .replace("mode=buffered", "mode=unsafe-off-during-mark")
            .replace("misses=0", "misses=4")
            .replace("verdict=clean", "verdict=caught");
        assert!(judge(&run, Some(0), false, &caught, 1.0).passed);
        let missed = caught.replace("verdict=caught", "verdict=NOT-CAUGHT");
        let v = judge(&run, Some(1), false, &missed, 1.0);
        assert_eq!((v.passed, v.what.as_str()), (false, "NOT-CAUGHT"));
    }

    #[test]
    fn plan_rotates_suites_adds_torture_rounds_and_the_negative_control() {
        let options = Options {
            seeds: 15,
            smp: vec![1, 4],
            modes: vec!["buffered".into()],
            suites: SUITES.iter().map(|s| s.name.to_string()).collect(),
            negative_seeds: 8,
            cycles: 5,
            jobs: 1,
        };
        let runs = plan(&options);
        assert_eq!(runs.len(), 2 * 15 + 8);
        let n = SUITES.len();
        for (i, run) in runs[..15].iter().enumerate() {
            assert_eq!(run.suite, SUITES[i % n].name, "seed {}", run.seed);
            assert_eq!(run.torture > 0, i >= 2 * n, "seeds of the third round torture");
            assert!(run.append.contains(&format!("seed={} ", run.seed)) && run.append.contains("gc.verify=on"));
        }
        let negative = &runs[30..];
        assert!(negative.iter().all(|r| r.negative && r.smp == NEGATIVE_SMP && spec(r.suite).unwrap().negative));
        assert!(negative.iter().all(|r| r.append.contains("gc.mode=unsafe-off-during-mark")));
        assert!(runs.iter().filter(|r| r.suite == "framebuffer").all(|r| r.gpu));
    }

    fn options(flags: &[&str]) -> Result<Command> {
        let mut args = Args::from(flags.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        Command::parse(&mut args)
    }

    #[test]
    fn options_presets_overrides_and_replay() {
        let Command::Matrix(default) = options(&[]).unwrap() else { panic!("matrix") };
        assert_eq!((default.seeds, default.smp.clone(), default.negative_seeds), (10, vec![1, 4], 10));
        let Command::Matrix(ci) = options(&["--ci"]).unwrap() else { panic!("matrix") };
        assert_eq!(ci, Options::ci());
        let Command::Matrix(custom) =
            options(&["--quick", "--seeds", "7", "--modes", "off,checked", "--suites", "graph"]).unwrap()
        else {
            panic!("matrix")
        };
        assert_eq!((custom.seeds, custom.negative_seeds, custom.smp.clone()), (7, 7, vec![4]));
        assert_eq!(custom.suites, ["graph"]);
        assert!(options(&["--seeds", "0"]).is_err());
        assert!(options(&["--smp", "1,x"]).is_err());
        assert!(options(&["--modes", "unsafe-off-during-mark"]).is_err());
        assert!(options(&["--suites", "nope"]).is_err());
        assert_eq!(
            options(&["--replay", "suite=graph seed=2", "--smp", "1"]).unwrap(),
            Command::Replay { append: "suite=graph seed=2".into(), smp: 1 }
        );
    }

    #[test]
    fn summary_groups_by_smp_mode_and_suite() {
        let runs =
            [run_for("graph", "buffered"), run_for("graph", "buffered"), run_for("churn", "unsafe-off-during-mark")];
        let ok = Verdict {
            passed: true,
            what: "clean".into(),
            cycles: 8,
            misses: 0,
            unscanned: 0,
            corrupt: 0,
            stw_retries: 0,
            seconds: 1.0,
        };
        let bad = Verdict { passed: false, what: "FAILED".into(), misses: 2, unscanned: 1, corrupt: 1, ..ok.clone() };
        let retried = Verdict { stw_retries: 2, ..ok.clone() };
        let rows = summarize(&runs, &[retried, bad, ok]);
        assert_eq!(
            rows["smp4/buffered/graph"],
            Row { runs: 2, passed: 1, failed: 1, cycles: 16, misses: 2, unscanned: 1, corrupt: 1, retried: 1 }
        );
        assert_eq!(rows["smp4/negative/churn"].passed, 1);
        let table = summary_table(&rows);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(2).unwrap().split_whitespace().eq([
            "smp4/negative/churn",
            "1",
            "1",
            "0",
            "8",
            "0",
            "0",
            "0",
            "0"
        ]));
    }

    #[test]
    fn census_findings_and_retries_are_read_from_the_result_line() {
        let run = run_for("graph", "buffered");
        let v = judge(&run, Some(0), false, &CLEAN.replace("poison=0", "poison=0 stw_retries=3"), 1.0);
        assert_eq!((v.passed, v.stw_retries), (true, 3), "a retry alone does not fail the run");
        let line = CLEAN.replace("misses=0", "misses=0 unscanned=2").replace("verdict=clean", "verdict=FAILED");
        let v = judge(&run, Some(1), false, &line, 1.0);
        assert_eq!((v.passed, v.unscanned), (false, 2));
        let row = csv(&[run], &[v]).lines().nth(1).unwrap().to_string();
        assert!(row.ends_with(",2,0"), "unscanned and retries are the last columns: {row}");
    }

    #[test]
    fn retry_share_limit_is_exact() {
        assert!(retries_acceptable(0, 0));
        assert!(retries_acceptable(5, 100), "exactly 5 %");
        assert!(!retries_acceptable(6, 100));
        assert!(!retries_acceptable(1, 10), "10 %");
        assert!(retries_acceptable(1, 20));
    }

    #[test]
    fn detection_threshold_is_exact() {
        assert!(detection_sufficient(10, 10));
        assert!(!detection_sufficient(9, 10), "90 % is under 95 %");
        assert!(detection_sufficient(19, 20), "exactly 95 %");
        assert!(!detection_sufficient(18, 20));
        assert!(!detection_sufficient(0, 0), "no runs detect nothing");
        assert_eq!(detection_percent(9, 10), 90);
        assert_eq!(detection_percent(0, 0), 0);
    }

    fn matrix() -> Options {
        Options {
            seeds: 15,
            smp: vec![1, 4],
            modes: vec!["buffered".into(), "direct".into()],
            suites: SUITES.iter().map(|s| s.name.to_string()).collect(),
            negative_seeds: 8,
            cycles: 5,
            jobs: 1,
        }
    }

    /// Made-up verdicts: run i fails when `fail(i)`; one decimal of seconds, as the CSV keeps.
    fn verdicts(runs: &[Run], fail: impl Fn(usize) -> bool) -> Vec<Verdict> {
        (0..runs.len())
            .map(|i| {
                let passed = !fail(i);
                let what = match (runs[i].negative, passed) {
                    (true, true) => "caught",
                    (true, false) => "NOT-CAUGHT",
                    (false, true) => "clean",
                    (false, false) => "FAILED",
                };
                Verdict {
                    passed,
                    what: what.into(),
                    cycles: i as u64 % 9,
                    misses: u64::from(!passed),
                    corrupt: 0,
                    seconds: i as f64 / 10.0,
                    unscanned: i as u64 % 2,
                    stw_retries: i as u64 % 3,
                }
            })
            .collect()
    }

    /// The slice files an N-way run writes, under their default names.
    fn slice_files(runs: &[Run], verdicts: &[Verdict], n: usize) -> Vec<(String, String)> {
        (1..=n)
            .map(|index| {
                let shard = Shard { index, count: n };
                let keep: Vec<usize> = (0..runs.len()).filter(|&i| shard.contains(i)).collect();
                let r: Vec<Run> = keep.iter().map(|&i| runs[i].clone()).collect();
                let v: Vec<Verdict> = keep.iter().map(|&i| verdicts[i].clone()).collect();
                (shard.default_file().display().to_string(), csv(&r, &v))
            })
            .collect()
    }

    #[test]
    fn shards_parse_and_partition_the_plan() {
        assert_eq!(Shard::parse("3/8").unwrap(), Shard { index: 3, count: 8 });
        for bad in ["0/8", "9/8", "3", "a/b", "1/0", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let runs = plan(&matrix());
        for n in 1..=7 {
            let slices: Vec<Vec<Run>> = (1..=n).map(|index| slice(runs.clone(), Shard { index, count: n })).collect();
            let mut names: Vec<&str> = slices.iter().flatten().map(|r| r.name.as_str()).collect();
            assert_eq!(names.len(), runs.len(), "n {n}: every run once");
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), runs.len(), "n {n}: no run twice");
            let sizes: Vec<usize> = slices.iter().map(Vec::len).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "n {n}: {sizes:?}");
        }
        // Every slice of four mixes suites and carries negative controls.
        let third = slice(runs, Shard { index: 3, count: 4 });
        assert!(third.iter().any(|r| r.negative) && third.iter().any(|r| r.suite != third[0].suite));
    }

    #[test]
    fn merging_every_slice_gives_the_unsharded_verdict() {
        let runs = plan(&matrix());
        for fail in [
            (|_| false) as fn(usize) -> bool,
            |i| i == 7,
            // Three of the eight negative controls (the last runs) not caught: under the threshold.
            |i| i >= 68 - 3,
        ] {
            let v = verdicts(&runs, fail);
            let unsharded = report(&runs, &v);
            for n in [1, 3, 4, 68, 70] {
                let merged = merge_files(&runs, &slice_files(&runs, &v, n)).expect("all slices");
                assert_eq!(merged, v, "n {n}");
                assert_eq!(report(&runs, &merged), unsharded, "n {n}");
                assert_eq!(summary_table(&summarize(&runs, &merged)), summary_table(&summarize(&runs, &v)));
            }
        }
        assert!(report(&runs, &verdicts(&runs, |i| i == 7)).unwrap_err().contains("1 runs failed"));
        assert_eq!(runs.len(), 60 + 8);
        assert!(report(&runs, &verdicts(&runs, |i| i >= 65)).unwrap_err().contains("caught on 5 of 8 seeds"));
    }

    #[test]
    fn a_missing_slice_fails_and_is_named() {
        let runs = plan(&matrix());
        let mut files = slice_files(&runs, &verdicts(&runs, |_| false), 4);
        files.remove(2);
        let why = merge_files(&runs, &files).unwrap_err();
        assert!(why.contains("17 of 68 runs have no row (slice 3/4 missing or incomplete)"), "{why}");
        // An incomplete slice (a row lost) is missing runs too.
        let mut files = slice_files(&runs, &verdicts(&runs, |_| false), 4);
        let text = &mut files[1].1;
        *text = text.lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(merge_files(&runs, &files).unwrap_err().contains("slice 2/4"));
        assert!(merge_files(&runs, &[]).unwrap_err().contains("no .csv files"));
    }

    #[test]
    fn a_duplicated_slice_fails() {
        let runs = plan(&matrix());
        let mut files = slice_files(&runs, &verdicts(&runs, |_| false), 4);
        files.push(("results/copy/stress_shard_2_of_4.csv".into(), files[1].1.clone()));
        let why = merge_files(&runs, &files).unwrap_err();
        assert!(
            why.contains("is in results/stress_shard_2_of_4.csv and in results/copy/stress_shard_2_of_4.csv"),
            "{why}"
        );
        assert!(why.contains("a slice was merged twice"), "{why}");
    }

    #[test]
    fn slices_of_other_options_or_other_files_fail() {
        let runs = plan(&matrix());
        let files = slice_files(&runs, &verdicts(&runs, |_| false), 2);
        let other = plan(&Options { seeds: 5, ..matrix() });
        assert!(merge_files(&other, &files).unwrap_err().contains("is not in this matrix"));
        let renamed = plan(&Options { cycles: 5, modes: vec!["buffered".into(), "direct".into()], ..matrix() });
        assert!(merge_files(&renamed, &files).is_ok(), "same plan");
        let mut bad = files.clone();
        bad[0].1 = bad[0].1.replacen("name,suite", "nom,suite", 1);
        assert!(merge_files(&runs, &bad).unwrap_err().contains("not a stress CSV"));
        let mut bad = files;
        bad[0].1 = bad[0].1.replacen(",true,", ",maybe,", 1);
        assert!(merge_files(&runs, &bad).unwrap_err().contains("malformed row"));
    }

    #[test]
    fn shard_merge_and_parallel_options() {
        let Command::Matrix(m) = options(&["--seeds", "4", "--smp", "1", "--modes", "direct", "--jobs", "3"]).unwrap()
        else {
            panic!("matrix")
        };
        let flags = m.to_args();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        assert_eq!(options(&flags).unwrap(), Command::Matrix(m));
        assert!(matches!(
            options(&["--shard", "2/3"]).unwrap(),
            Command::Shard { shard: Shard { index: 2, count: 3 }, ref out, .. } if out == Path::new("results/stress_shard_2_of_3.csv")
        ));
        assert!(
            matches!(options(&["--shard", "1/2", "--out", "x.csv"]).unwrap(), Command::Shard { ref out, .. } if out == Path::new("x.csv"))
        );
        assert!(matches!(options(&["--merge", "d"]).unwrap(), Command::Merge { .. }));
        assert!(matches!(options(&["--parallel", "3"]).unwrap(), Command::Parallel { shards: 3, .. }));
        assert!(options(&["--out", "x.csv"]).is_err());
        assert!(options(&["--shard", "1/2", "--merge", "d"]).is_err());
        assert!(options(&["--parallel", "0"]).is_err());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\n", 5), "a");
    }

    #[test]
    fn failure_excerpt_leads_with_errors() {
        let output = "boot\nERROR first miss\n".to_string() + &"cycle\n".repeat(40) + "stress result: verdict=FAILED\n";
        let excerpt = failure_excerpt(&output);
        assert!(excerpt.starts_with("ERROR first miss"), "{excerpt}");
        assert!(excerpt.ends_with("verdict=FAILED"), "{excerpt}");
        assert!(excerpt.lines().count() <= ERROR_LINES + 1 + TAIL_LINES);
    }
}
