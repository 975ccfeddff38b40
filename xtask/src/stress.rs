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
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tricolor_abi::MAX_CORES;

/// Longest one run may take (GCBench-quick at smp 4 under a loaded host is the slowest).
const TIMEOUT: Duration = Duration::from_secs(240);

/// The barrier modes a clean run may use (the unsafe one is only for the negative control).
const MODES: &[&str] = &["off", "buffered", "direct", "checked"];

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

/// What the command asks for: the matrix, or one replayed boot.
#[derive(Debug, PartialEq)]
pub enum Command {
    Matrix(Options),
    Replay { append: String, smp: usize },
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
        if let Some(append) = replay {
            let smp = values[1].as_deref().map(parse_smp_list).transpose()?.map_or(4, |list| list[0]);
            return Ok(Command::Replay { append, smp });
        }
        Options::from_values(quick, ci, values).map(Command::Matrix)
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
                let verdict = qemu::run_captured(&machine, TIMEOUT).map(|outcome| {
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

fn csv(runs: &[Run], verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("name,suite,smp,mode,seed,torture,negative,passed,verdict,cycles,misses,corrupt,seconds,unscanned,stw_retries\n");
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
    let rows = summarize(&runs, &verdicts);
    println!();
    print!("{}", summary_table(&rows));
    std::fs::create_dir_all("results").map_err(|e| format!("cannot create results/: {e}"))?;
    std::fs::write("results/stress_runs.csv", csv(&runs, &verdicts))
        .map_err(|e| format!("cannot write results/stress_runs.csv: {e}"))?;
    println!("wrote results/stress_runs.csv");

    let pairs = || runs.iter().zip(&verdicts);
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
