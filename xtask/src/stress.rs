//! `cargo xtask stress`: the GC stress matrix. Boots `test=gc-cycle` for every core count x barrier
//! mode x seed, then the negative control (`test=gc-negative`, barrier off during marking) for every
//! seed at 4 cores, and judges both from the kernel's final lines: every gc-cycle run must come back
//! clean, and the verifier must catch the broken barrier on at least 95 % of the seeds (a verifier
//! that never fires would make every clean gc-cycle run meaningless).
//!
//! Not part of `cargo xtask test`: a full matrix is 90 boots, far too slow for CI.

use crate::args::Args;
use crate::qemu::{self, Machine};
use crate::Result;
use std::path::Path;
use std::time::Duration;

/// A gc-cycle run is 12 collections under TCG; this only catches hangs and livelocks.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Collections per gc-cycle run (kernel/src/ktest/gc.rs `CYCLES`).
const CYCLES: u64 = 12;

/// The barrier modes gc-cycle accepts (the unsafe one is only for the negative control).
const MODES: &[&str] = &["off", "buffered", "direct", "checked"];

/// The negative control needs concurrent mutators to race the marker.
const NEGATIVE_SMP: usize = 4;

/// The least share of seeds on which the negative control must be caught, in percent.
const DETECTION_THRESHOLD_PERCENT: u64 = 95;

/// Console lines shown when a run fails.
const TAIL_LINES: usize = 40;

/// What to run.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub seeds: u64,
    pub smp: Vec<usize>,
    pub modes: Vec<String>,
}

impl Options {
    /// `[--seeds N] [--smp 1,4] [--modes off,buffered,direct,checked] [--quick]`; explicit options
    /// override `--quick`'s defaults (2 seeds, smp 4 only).
    pub fn parse(args: &mut Args) -> Result<Self> {
        let quick = args.flag("--quick");
        let (seeds, smp, modes) = (args.value("--seeds")?, args.value("--smp")?, args.value("--modes")?);
        args.finish()?;
        Self::from_values(quick, seeds, smp, modes)
    }

    fn from_values(quick: bool, seeds: Option<String>, smp: Option<String>, modes: Option<String>) -> Result<Self> {
        let seeds = match seeds {
            Some(s) => s.parse::<u64>().ok().filter(|&n| n > 0).ok_or(format!("--seeds {s}: not a positive number"))?,
            None if quick => 2,
            None => 10,
        };
        let smp = match smp {
            Some(list) => parse_smp_list(&list)?,
            None if quick => vec![4],
            None => vec![1, 4],
        };
        let modes = match modes {
            Some(list) => parse_mode_list(&list)?,
            None => MODES.iter().map(|m| m.to_string()).collect(),
        };
        Ok(Self { seeds, smp, modes })
    }
}

fn parse_smp_list(list: &str) -> Result<Vec<usize>> {
    list.split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=8).contains(n))
                .ok_or(format!("--smp: bad core count '{s}' (1..=8)"))
        })
        .collect()
}

fn parse_mode_list(list: &str) -> Result<Vec<String>> {
    list.split(',')
        .map(|m| {
            let m = m.trim();
            if MODES.contains(&m) {
                Ok(m.to_string())
            } else {
                Err(format!("--modes: unknown mode '{m}' (one of {})", MODES.join(",")))
            }
        })
        .collect()
}

/// The numbers in gc-cycle's final line:
/// `gc-cycle: 12 cycles in mode M on N cores: X verifier misses, Y corrupt, Z poison failures,
/// W false checked reports, R reachable at the end`.
#[derive(Debug, PartialEq)]
pub struct CycleReport {
    pub cycles: u64,
    pub mode: String,
    pub cores: usize,
    pub misses: u64,
    pub corrupt: u64,
    pub poison_failures: u64,
    pub false_checked: u64,
    pub reachable: u64,
}

/// Parses the last gc-cycle final line in `output`.
fn parse_cycle_report(output: &str) -> Option<CycleReport> {
    let line = output.lines().rev().find_map(|l| l.split_once("gc-cycle: ").map(|(_, rest)| rest))?;
    let (cycles, rest) = line.split_once(" cycles in mode ")?;
    let (mode, rest) = rest.split_once(" on ")?;
    let (cores, rest) = rest.split_once(" cores: ")?;
    let (misses, rest) = rest.split_once(" verifier misses, ")?;
    let (corrupt, rest) = rest.split_once(" corrupt, ")?;
    let (poison_failures, rest) = rest.split_once(" poison failures, ")?;
    let (false_checked, rest) = rest.split_once(" false checked reports, ")?;
    let reachable = rest.strip_suffix(" reachable at the end")?;
    Some(CycleReport {
        cycles: cycles.parse().ok()?,
        mode: mode.to_string(),
        cores: cores.parse().ok()?,
        misses: misses.parse().ok()?,
        corrupt: corrupt.parse().ok()?,
        poison_failures: poison_failures.parse().ok()?,
        false_checked: false_checked.parse().ok()?,
        reachable: reachable.trim_end().parse().ok()?,
    })
}

/// A gc-cycle run passes if it exited 0 and its line reports every cycle, the right mode and core
/// count, and no miss, corruption, poison failure or false checked report.
fn judge_cycle(report: &CycleReport, mode: &str, smp: usize) -> Result {
    let problems: Vec<String> = [
        (report.cycles != CYCLES).then(|| format!("{} of {CYCLES} cycles", report.cycles)),
        (report.mode != mode).then(|| format!("ran mode {}, asked for {mode}", report.mode)),
        (report.cores != smp).then(|| format!("{} cores online of {smp}", report.cores)),
        (report.misses != 0).then(|| format!("{} verifier misses", report.misses)),
        (report.corrupt != 0).then(|| format!("{} corrupt", report.corrupt)),
        (report.poison_failures != 0).then(|| format!("{} poison failures", report.poison_failures)),
        (report.false_checked != 0).then(|| format!("{} false checked reports", report.false_checked)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// What gc-negative's final line says.
#[derive(Debug, PartialEq)]
pub enum NegativeReport {
    /// `gc-negative: negative control caught: M reachable objects missed, found by the verifier in cycle C`
    Caught { missed: u64, cycle: u64 },
    /// `gc-negative: NOT caught: C cycles with the barrier off during marking and no miss found`
    NotCaught { cycles: u64 },
}

fn parse_negative_report(output: &str) -> Option<NegativeReport> {
    let line = output.lines().rev().find_map(|l| l.split_once("gc-negative: ").map(|(_, rest)| rest))?;
    if let Some(rest) = line.strip_prefix("negative control caught: ") {
        let (missed, rest) = rest.split_once(" reachable objects missed, found by the verifier in cycle ")?;
        return Some(NegativeReport::Caught { missed: missed.parse().ok()?, cycle: rest.trim_end().parse().ok()? });
    }
    let rest = line.strip_prefix("NOT caught: ")?;
    let (cycles, _) = rest.split_once(" cycles with the barrier off")?;
    Some(NegativeReport::NotCaught { cycles: cycles.parse().ok()? })
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

/// One row of the summary: a core count and mode over all seeds.
#[derive(Debug, Default, PartialEq)]
struct Row {
    runs: u64,
    passed: u64,
    failed: u64,
    misses: u64,
    corrupt: u64,
}

fn command_line(test: &str, mode: &str, seed: u64) -> String {
    format!("test={test} gc.mode={mode} gc.verify=on gc.heap=16M seed={seed}")
}

fn tail(output: &str, lines: usize) -> String {
    let all: Vec<&str> = output.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn report_failure(name: &str, why: &str, machine: &Machine, outcome: &qemu::Outcome) {
    println!("stress {name} ... FAILED ({:.1} s): {why}", outcome.elapsed.as_secs_f64());
    println!("----- last {TAIL_LINES} console lines of {name} -----\n{}", tail(&outcome.output, TAIL_LINES));
    println!("----- replay: qemu-system-aarch64 ... -smp {} -append \"{}\"", machine.smp, machine.append);
    println!("-----         cargo xtask run --smp {} --append \"{}\"", machine.smp, machine.append);
}

/// A gc-cycle run's verdict: its report, or why it failed with whatever report it printed (so a
/// failed run's counts still reach the table).
type CycleVerdict = std::result::Result<CycleReport, (String, Option<CycleReport>)>;

/// Boots one gc-cycle run and judges it.
fn run_cycle(machine: &Machine, mode: &str) -> Result<(qemu::Outcome, CycleVerdict)> {
    let outcome = qemu::run_captured(machine, TIMEOUT)?;
    let report = parse_cycle_report(&outcome.output);
    let verdict = if outcome.timed_out {
        Err((format!("timed out after {} s", TIMEOUT.as_secs()), report))
    } else {
        match report {
            None => Err((format!("exit status {:?} and no gc-cycle line", outcome.status), None)),
            Some(report) => match (judge_cycle(&report, mode, machine.smp), outcome.status) {
                (Ok(()), Some(0)) => Ok(report),
                (Ok(()), status) => Err((format!("exit status {status:?} with a clean line"), Some(report))),
                (Err(why), status) => Err((format!("{why} (exit status {status:?})"), Some(report))),
            },
        }
    };
    Ok((outcome, verdict))
}

/// Runs the whole stress matrix and the negative control, prints the summary, fails if any
/// gc-cycle run failed or the detection rate is under the threshold.
pub fn run(elf: &Path, options: &Options) -> Result {
    let mut rows: Vec<((usize, String), Row)> = Vec::new();
    let mut failures = Vec::new();
    for &smp in &options.smp {
        for mode in &options.modes {
            let mut row = Row::default();
            for seed in 1..=options.seeds {
                let name = format!("smp{smp}/{mode}/seed{seed}");
                let machine =
                    Machine { smp, append: command_line("gc-cycle", mode, seed), gpu: false, ..Machine::new(elf) };
                let (outcome, verdict) = run_cycle(&machine, mode)?;
                row.runs += 1;
                match verdict {
                    Ok(report) => {
                        row.passed += 1;
                        row.misses += report.misses;
                        row.corrupt += report.corrupt;
                        println!("stress {name} ... ok ({:.1} s)", outcome.elapsed.as_secs_f64());
                    }
                    Err((why, report)) => {
                        row.failed += 1;
                        if let Some(report) = report {
                            row.misses += report.misses;
                            row.corrupt += report.corrupt;
                        }
                        report_failure(&name, &why, &machine, &outcome);
                        failures.push(name);
                    }
                }
            }
            rows.push(((smp, mode.clone()), row));
        }
    }

    let mut caught = 0;
    for seed in 1..=options.seeds {
        let name = format!("smp{NEGATIVE_SMP}/negative/seed{seed}");
        let machine = Machine {
            smp: NEGATIVE_SMP,
            append: command_line("gc-negative", "unsafe-off-during-mark", seed),
            gpu: false,
            ..Machine::new(elf)
        };
        let outcome = qemu::run_captured(&machine, TIMEOUT)?;
        let secs = outcome.elapsed.as_secs_f64();
        match (parse_negative_report(&outcome.output), outcome.status, outcome.timed_out) {
            (Some(NegativeReport::Caught { missed, cycle }), Some(0), false) => {
                caught += 1;
                println!("stress {name} ... caught ({missed} missed in cycle {cycle}, {secs:.1} s)");
            }
            (Some(NegativeReport::NotCaught { cycles }), _, false) => {
                println!("stress {name} ... NOT caught in {cycles} cycles ({secs:.1} s)");
                println!("-----         replay: cargo xtask run --smp {NEGATIVE_SMP} --append \"{}\"", machine.append);
            }
            (_, status, timed_out) => {
                let why = if timed_out {
                    format!("timed out after {} s", TIMEOUT.as_secs())
                } else {
                    format!("exit status {status:?} without a verdict line")
                };
                report_failure(&name, &why, &machine, &outcome);
            }
        }
    }
    let total = options.seeds;
    println!("negative control: caught {caught} of {total} seeds ({} %)", detection_percent(caught, total));

    println!();
    print!("{}", summary_table(&rows));

    let detection_ok = detection_sufficient(caught, total);
    match (failures.is_empty(), detection_ok) {
        (true, true) => Ok(()),
        (passed, detected) => {
            let mut why = Vec::new();
            if !passed {
                why.push(format!("{} gc-cycle runs failed: {}", failures.len(), failures.join(", ")));
            }
            if !detected {
                why.push(format!(
                    "the negative control was caught on {caught} of {total} seeds, under {DETECTION_THRESHOLD_PERCENT} %"
                ));
            }
            Err(format!("stress failed: {}", why.join("; ")))
        }
    }
}

fn summary_table(rows: &[((usize, String), Row)]) -> String {
    let mut table = format!(
        "{:<16} {:>6} {:>7} {:>7} {:>16} {:>8}\n",
        "smp/mode", "runs", "passed", "failed", "verifier misses", "corrupt"
    );
    for ((smp, mode), row) in rows {
        table += &format!(
            "{:<16} {:>6} {:>7} {:>7} {:>16} {:>8}\n",
            format!("smp{smp}/{mode}"),
            row.runs,
            row.passed,
            row.failed,
            row.misses,
            row.corrupt
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "[   3.000001] INFO  c0 gc stats: ...\n\
        gc-cycle: 12 cycles in mode buffered on 4 cores: 0 verifier misses, 0 corrupt, 0 poison failures, 0 false checked reports, 5123 reachable at the end\n";

    #[test]
    fn cycle_line_parses_every_number() {
        let report = parse_cycle_report(CLEAN).expect("the clean line parses");
        assert_eq!(
            report,
            CycleReport {
                cycles: 12,
                mode: "buffered".into(),
                cores: 4,
                misses: 0,
                corrupt: 0,
                poison_failures: 0,
                false_checked: 0,
                reachable: 5123
            }
        );
        let bad = CLEAN.replace("0 verifier misses, 0 corrupt", "3 verifier misses, 7 corrupt");
        let report = parse_cycle_report(&bad).unwrap();
        assert_eq!((report.misses, report.corrupt), (3, 7));
    }

    #[test]
    fn cycle_line_rejects_truncated_or_garbled_lines() {
        assert_eq!(parse_cycle_report("no such line\n"), None);
        let truncated = CLEAN.split(", 0 false checked").next().unwrap();
        assert_eq!(parse_cycle_report(truncated), None);
        assert_eq!(parse_cycle_report(&CLEAN.replace("4 cores", "x cores")), None);
    }

    #[test]
    fn judge_flags_every_bad_count() {
        let ok = parse_cycle_report(CLEAN).unwrap();
        assert_eq!(judge_cycle(&ok, "buffered", 4), Ok(()));
        assert!(judge_cycle(&ok, "direct", 4).unwrap_err().contains("asked for direct"));
        assert!(judge_cycle(&ok, "buffered", 1).unwrap_err().contains("4 cores online of 1"));
        for (from, to, complaint) in [
            ("12 cycles", "11 cycles", "11 of 12 cycles"),
            ("0 verifier misses", "2 verifier misses", "2 verifier misses"),
            ("0 corrupt", "1 corrupt", "1 corrupt"),
            ("0 poison failures", "4 poison failures", "4 poison failures"),
            ("0 false checked", "9 false checked", "9 false checked reports"),
        ] {
            let report = parse_cycle_report(&CLEAN.replace(from, to)).unwrap();
            assert!(judge_cycle(&report, "buffered", 4).unwrap_err().contains(complaint), "{from} -> {to}");
        }
    }

    #[test]
    fn negative_line_parses_both_verdicts() {
        let caught = "gc verifier: reachable object 0x1 ...\n\
            gc-negative: negative control caught: 17 reachable objects missed, found by the verifier in cycle 3\n";
        assert_eq!(parse_negative_report(caught), Some(NegativeReport::Caught { missed: 17, cycle: 3 }));
        let missed = "gc-negative: NOT caught: 40 cycles with the barrier off during marking and no miss found\n";
        assert_eq!(parse_negative_report(missed), Some(NegativeReport::NotCaught { cycles: 40 }));
        assert_eq!(parse_negative_report("gc-negative: needs gc.mode=unsafe-off-during-mark gc.verify=on\n"), None);
        assert_eq!(parse_negative_report("PANIC on core 0\n"), None);
    }

    #[test]
    fn detection_threshold_is_exact() {
        assert!(detection_sufficient(10, 10));
        assert!(!detection_sufficient(9, 10), "90 % is under 95 %");
        assert!(detection_sufficient(19, 20), "exactly 95 %");
        assert!(!detection_sufficient(18, 20));
        assert!(!detection_sufficient(1, 2));
        assert!(detection_sufficient(2, 2));
        assert!(!detection_sufficient(0, 0), "no runs detect nothing");
        assert_eq!(detection_percent(9, 10), 90);
        assert_eq!(detection_percent(2, 3), 66);
        assert_eq!(detection_percent(0, 0), 0);
    }

    fn options(quick: bool, seeds: Option<&str>, smp: Option<&str>, modes: Option<&str>) -> Result<Options> {
        let owned = |v: Option<&str>| v.map(String::from);
        Options::from_values(quick, owned(seeds), owned(smp), owned(modes))
    }

    #[test]
    fn options_defaults_quick_and_overrides() {
        let all: Vec<String> = MODES.iter().map(|m| m.to_string()).collect();
        assert_eq!(
            options(false, None, None, None).unwrap(),
            Options { seeds: 10, smp: vec![1, 4], modes: all.clone() }
        );
        assert_eq!(options(true, None, None, None).unwrap(), Options { seeds: 2, smp: vec![4], modes: all });
        let custom = options(true, Some("5"), Some("1,2"), Some("off,checked")).unwrap();
        assert_eq!(custom, Options { seeds: 5, smp: vec![1, 2], modes: vec!["off".into(), "checked".into()] });
        assert!(options(false, Some("0"), None, None).is_err());
        assert!(options(false, None, Some("1,x"), None).is_err());
        assert!(options(false, None, Some("9"), None).is_err());
        assert!(options(false, None, None, Some("unsafe-off-during-mark")).is_err());
    }

    #[test]
    fn table_has_a_row_per_smp_and_mode() {
        let rows = vec![
            ((1, "off".to_string()), Row { runs: 2, passed: 2, failed: 0, misses: 0, corrupt: 0 }),
            ((4, "direct".to_string()), Row { runs: 2, passed: 1, failed: 1, misses: 3, corrupt: 1 }),
        ];
        let table = summary_table(&rows);
        let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], ["smp1/off", "2", "2", "0", "0", "0"]);
        assert_eq!(lines[2], ["smp4/direct", "2", "1", "1", "3", "1"]);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\n", 5), "a");
    }
}
