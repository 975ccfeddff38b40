//! The QEMU test matrix: each case boots the kernel once (smp 1 and 4) and checks the exit status
//! (the kernel's semihosting verdict) and the console output. Every run has a timeout, so a hung
//! kernel fails its case instead of hanging CI.

use crate::qemu::{self, Machine};
use crate::screenshot;
use crate::Result;
use std::path::Path;
use std::time::Duration;

/// Exit statuses (kernel/src/exit.rs).
const SUCCESS: i32 = 0;
const BAD_CONFIG: i32 = 2;
const FAULT: i32 = 4;
const PANIC: i32 = 5;

/// Generous: a boot takes well under a second under TCG; this only catches hangs.
const TIMEOUT: Duration = Duration::from_secs(60);

/// One QEMU boot and what it must produce.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    append: &'static str,
    exit: i32,
    /// Substrings the console must contain; `{smp}` is replaced by the core count.
    expect: &'static [&'static str],
    /// Extra checks on the whole output.
    check: Option<fn(&str, usize) -> Result>,
    /// Attach a `virtio-gpu-device` (1280x720).
    gpu: bool,
    /// Run only at this many cores or more (a negative control needs concurrency).
    min_smp: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "gc-cycle-off",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=off",
        exit: SUCCESS,
        expect: &["gc-cycle: 12 cycles in mode off on {smp} cores: 0 verifier misses, 0 corrupt, 0 poison failures, 0 false checked reports"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-buffered",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=buffered",
        exit: SUCCESS,
        expect: &["gc-cycle: 12 cycles in mode buffered on {smp} cores: 0 verifier misses, 0 corrupt, 0 poison failures, 0 false checked reports"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-direct",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=direct",
        exit: SUCCESS,
        expect: &["gc-cycle: 12 cycles in mode direct on {smp} cores: 0 verifier misses, 0 corrupt, 0 poison failures, 0 false checked reports"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-checked",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=checked",
        exit: SUCCESS,
        expect: &["gc-cycle: 12 cycles in mode checked on {smp} cores: 0 verifier misses, 0 corrupt, 0 poison failures, 0 false checked reports"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gc-negative-control",
        append: "test=gc-negative gc.mode=unsafe-off-during-mark gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-negative: negative control caught:", "gc verifier: reachable object 0x"],
        check: None,
        gpu: false,
        min_smp: 4,
    },
    Case {
        name: "gc-heap-growth-trigger",
        append: "test=gc-trigger gc.verify=on gc.heap=16M gc.percent=100",
        exit: SUCCESS,
        expect: &["cycles started by heap growth (GOGC 100%), 0 verifier misses, 0 corrupt"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "bench-barrier",
        append: "test=bench-barrier gc.heap=16M",
        exit: SUCCESS,
        expect: &["BENCH barrier mode=off ", "BENCH barrier mode=checked ", "BENCH wbbuf entries=4096 ", "bench-barrier: done"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gc-checked-report",
        append: "test=gc-checked",
        exit: SUCCESS,
        expect: &["gc checked: GC pointer 0x", "stored into non-GC slot 0x", "gc-checked: reported slot 0x", "kernel/src/ktest/gc.rs"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "boot",
        append: "test=boot",
        exit: SUCCESS,
        expect: &[
            "{smp} of {smp} cores online",
            "RAM: 1024 MiB at 0x40000000",
            "command line: \"test=boot\"",
            "ready in",
        ],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "unit",
        append: "test=unit",
        exit: SUCCESS,
        expect: &["kernel unit tests: ", " 0 failed"],
        check: Some(units_ran),
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "fault-report",
        append: "test=fault",
        exit: FAULT,
        expect: &[
            "FATAL EXCEPTION on core 0: data abort from the current EL in kernel code",
            "on a read of FAR 0x0000dead00000000",
            "ELR 0x",
            "x30 0x",
        ],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "panic-report",
        append: "test=panic",
        exit: PANIC,
        expect: &["PANIC on core 0", "deliberate panic"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "panic-on-system-stack",
        append: "test=panic-systemstack",
        exit: PANIC,
        expect: &["PANIC on core 0", "deliberate panic on the system stack", "running on the system stack 'system'"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "cmdline-unknown-key",
        append: "bogus=1",
        exit: BAD_CONFIG,
        expect: &["bad kernel command line \"bogus=1\": unknown key 'bogus'; valid keys: log=", "cores=1..=8"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "cmdline-bad-value",
        append: "cores=99",
        exit: BAD_CONFIG,
        expect: &["bad value '99' for 'cores' (expected 1..=8)"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "stress-suite-list",
        append: "suite=help",
        exit: SUCCESS,
        expect: &["stress suites", "graph", "churn", "large", "gcbench-quick", "framebuffer"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "stress-unknown-suite",
        append: "suite=nope",
        exit: BAD_CONFIG,
        expect: &["unknown suite 'nope'", "stress suites"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "stress-suite-and-test",
        append: "suite=graph test=unit",
        exit: BAD_CONFIG,
        expect: &["test= and suite= both given"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "stress-negative-without-old-pointers",
        append: "suite=gcbench-quick gc.mode=unsafe-off-during-mark gc.verify=on",
        exit: BAD_CONFIG,
        expect: &["no negative control possible"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "unknown-test",
        append: "test=nope",
        exit: BAD_CONFIG,
        expect: &["unknown test 'nope'"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "overflow-boot-stack",
        append: "test=overflow-boot",
        exit: FAULT,
        expect: &[
            "stack overflow: core 0, kind boot, stack 'boot' of core 0",
            "guard [0x",
            "translation fault (level 3) on a write",
        ],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "overflow-task-stack",
        append: "test=overflow-task",
        exit: FAULT,
        expect: &["kind task, task 'deep', stack [0x"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "overflow-growable-stack",
        append: "test=overflow-growable",
        exit: FAULT,
        expect: &["kind task, task 'grower', stack [0x", "guard [0x4000000000, 0x4000001000)"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "overflow-system-stack",
        append: "test=overflow-system",
        exit: FAULT,
        expect: &["stack overflow: core 0, kind system, stack 'system' of core 0"],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "overflow-exception-stack",
        append: "test=overflow-exception",
        exit: FAULT,
        expect: &[
            "in the exception handler itself (nested fault)",
            "stack overflow: core 0, kind exception, stack 'exception' of core 0",
        ],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "log-stress",
        append: "test=log-stress",
        exit: SUCCESS,
        expect: &["log-stress: {smp} cores"],
        check: Some(log_lines_whole),
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gpu-fb-static",
        append: "test=gpu-fb-static",
        exit: SUCCESS,
        expect: &[
            "framebuffer from static (3600 KiB",
            "gpu: test pattern drawn (1280x720, fb=static)",
            "[VIRTIO PERF] gpu-fb-static fence=acquire complete=poll fb=static size=1280x720",
            "gpu-fb-static: ok",
        ],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-fb-pages",
        append: "test=gpu-fb-pages",
        exit: SUCCESS,
        expect: &[
            "framebuffer from pages (3600 KiB",
            "gpu: test pattern drawn (1280x720, fb=pages)",
            "gpu-fb-pages: ok",
        ],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-fb-gc",
        append: "test=gpu-fb-gc",
        exit: SUCCESS,
        expect: &[
            "fb=gc: 3600 KiB pinned no-scan object at",
            "gpu-fb-gc: GC cycle 2 with the framebuffer attached",
            "gpu-fb-gc: ok: 1280x720 framebuffer from gc",
        ],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-irq-completion",
        append: "test=gpu-fb-static virtio.complete=irq",
        exit: SUCCESS,
        expect: &["fence=acquire complete=irq", "gpu-fb-static: ok"],
        check: Some(interrupts_taken),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-fence-after-progress",
        append: "test=gpu-fb-static virtio.fence=after-progress",
        exit: SUCCESS,
        expect: &[
            "virtio.fence=after-progress: seed 002's variant",
            "fence=after-progress complete=poll",
            "gpu-fb-static: ok",
        ],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-timeout",
        append: "test=gpu-timeout virtio.timeout=1",
        exit: SUCCESS,
        expect: &[
            "virtio-gpu: command 0x",
            "gpu-timeout: GPU command reported failed: timed out after 2 polls",
            "gpu-timeout: the kernel goes on",
        ],
        check: None,
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-missing",
        append: "test=gpu-missing",
        exit: SUCCESS,
        expect: &[
            "WARN  c0 gpu: no virtio-gpu device (32 virtio-mmio slots probed",
            "continuing without a display",
            "gpu-missing: no GPU, the kernel goes on",
        ],
        check: None,
        gpu: false,
        min_smp: 1,
    },
    Case {
        name: "gpu-bench",
        append: "test=gpu-bench",
        exit: SUCCESS,
        expect: &["is seed 002's variant", "gpu-bench: ok: 60 full (1280x720) and 60 dirty (400x80) frames"],
        check: Some(bench_lines_complete),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-demo",
        append: "test=gpu-demo",
        exit: SUCCESS,
        expect: &["gpu: test pattern drawn (1280x720, fb=static)", "[VIRTIO PERF] gpu-demo ", "gpu-demo: ok"],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
    Case {
        name: "gpu-dashboard",
        append: "test=gpu-dashboard gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            "gui: dashboard drawn (2048 heap pages, 16x16 px cells)",
            "[VIRTIO PERF] gpu-dashboard ",
            "gpu-dashboard: ok: 4 cycles, 1 full frame then",
        ],
        check: Some(perf_lines_clean),
        gpu: true,
        min_smp: 1,
    },
];

/// A case on a machine other than the default (1 GiB, 1280x720 display).
#[derive(Clone, Copy)]
struct MachineCase {
    case: Case,
    /// `-m`.
    memory: &'static str,
    /// The GPU's display size.
    display: (u32, u32),
}

/// Requests the machine cannot meet: the boot must stop with the reason and exit 2, like a bad
/// command line (before, the kernel logged an error, ran without a collector or fell back to
/// another framebuffer source, and exited 0).
const MACHINE_CASES: &[MachineCase] = &[
    MachineCase {
        case: Case {
            name: "refuse-gc-heap-over-ram",
            append: "test=boot gc.heap=512M",
            exit: BAD_CONFIG,
            expect: &[
                "tricolor: impossible request: gc.heap: a 512 MiB GC heap does not fit in this machine's 256 MiB of RAM",
                "contiguous pages (aligned to 512 pages) requested",
                "choose a smaller gc.heap=",
            ],
            check: None,
            gpu: false,
            min_smp: 1,
        },
        memory: "256M",
        display: (qemu::GPU_WIDTH, qemu::GPU_HEIGHT),
    },
    MachineCase {
        case: Case {
            name: "refuse-fb-gc-heap-too-small",
            append: "test=gpu-demo fb=gc gc.heap=2M",
            exit: BAD_CONFIG,
            expect: &[
                "tricolor: impossible request: fb=gc: cannot hold the 1280x720 display's 3600 KiB framebuffer",
                "the GC heap has no room for the framebuffer",
            ],
            check: Some(no_fallback),
            gpu: true,
            min_smp: 1,
        },
        memory: "1G",
        display: (qemu::GPU_WIDTH, qemu::GPU_HEIGHT),
    },
    MachineCase {
        case: Case {
            name: "refuse-fb-static-display-too-large",
            append: "test=gpu-demo fb=static",
            exit: BAD_CONFIG,
            expect: &[
                "tricolor: impossible request: fb=static: cannot hold the 1920x1080 display's 8100 KiB framebuffer",
                "larger than the 1280x720 static array",
            ],
            check: Some(no_fallback),
            gpu: true,
            min_smp: 1,
        },
        memory: "1G",
        display: (1920, 1080),
    },
    MachineCase {
        // Without fb= the default source may still fall back: nobody asked for it.
        case: Case {
            name: "fb-default-falls-back-for-a-large-display",
            append: "test=gpu-demo",
            exit: SUCCESS,
            expect: &["fb=static: the display is larger than the 1280x720 static array, falling back to pages", "gpu-demo: ok"],
            check: None,
            gpu: true,
            min_smp: 1,
        },
        memory: "1G",
        display: (1920, 1080),
    },
];

/// A refused request must not have been served from another source first.
fn no_fallback(output: &str, _smp: usize) -> Result {
    match output.lines().find(|l| l.contains("falling back")) {
        Some(line) => Err(format!("a named framebuffer source fell back: {line:?}")),
        None => Ok(()),
    }
}

/// The screenshot test (xtask/src/screenshot.rs): a plain boot's test pattern, checked pixel by
/// pixel in a `screendump` PNG. Runs at smp 4 only.
const SCREENSHOT_CASE: &str = "gpu-screenshot";

/// One `[VIRTIO PERF] <label> key=value ...` line.
struct PerfLine<'a> {
    label: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

impl PerfLine<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The integer part of a numeric field (0 if missing).
    fn number(&self, key: &str) -> u64 {
        self.get(key).and_then(|v| v.split('.').next()?.parse().ok()).unwrap_or(0)
    }
}

fn perf_lines(output: &str) -> Vec<PerfLine<'_>> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("[VIRTIO PERF] "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let label = words.next()?;
            Some(PerfLine { label, fields: words.filter_map(|w| w.split_once('=')).collect() })
        })
        .collect()
}

/// There are `[VIRTIO PERF]` lines, with frames, and none reports an error or a timeout.
fn perf_lines_clean(output: &str, _smp: usize) -> Result {
    let lines = perf_lines(output);
    if lines.is_empty() {
        return Err("no [VIRTIO PERF] line".into());
    }
    for line in &lines {
        for key in ["errors", "timeouts"] {
            if line.get(key) != Some("0") {
                return Err(format!("[VIRTIO PERF] {}: {key}={:?}, expected 0", line.label, line.get(key)));
            }
        }
        if line.number("frames") == 0 {
            return Err(format!("[VIRTIO PERF] {}: no frames", line.label));
        }
    }
    Ok(())
}

/// Interrupt completion really took device interrupts.
fn interrupts_taken(output: &str, smp: usize) -> Result {
    perf_lines_clean(output, smp)?;
    if perf_lines(output).iter().all(|l| l.number("irqs_total") == 0) {
        return Err("virtio.complete=irq but no device interrupt was taken (irqs_total=0)".into());
    }
    Ok(())
}

/// The bench printed a full-frame and a dirty-rectangle line for every fence strategy, each with
/// 60 frames, a frame rate and counted fences.
fn bench_lines_complete(output: &str, smp: usize) -> Result {
    perf_lines_clean(output, smp)?;
    let lines = perf_lines(output);
    for fence in ["acquire", "seqcst", "after-progress"] {
        for label in ["bench-full", "bench-dirty"] {
            let line = lines
                .iter()
                .find(|l| l.label == label && l.get("fence") == Some(fence))
                .ok_or_else(|| format!("no [VIRTIO PERF] {label} line for fence={fence}"))?;
            if line.number("frames") != 60 || line.number("fps") == 0 || line.number("fences") == 0 {
                return Err(format!("[VIRTIO PERF] {label} fence={fence}: want 60 frames, a frame rate and fences"));
            }
        }
    }
    Ok(())
}

/// Every unit test line must say ok, and there must be some.
fn units_ran(output: &str, _smp: usize) -> Result {
    let ran = output.lines().filter(|l| l.starts_with("test ")).count();
    let failed: Vec<_> = output.lines().filter(|l| l.starts_with("test ") && !l.ends_with(" ... ok")).collect();
    match (ran, failed.is_empty()) {
        (0, _) => Err("no kernel unit test ran".into()),
        (_, false) => Err(format!("failing kernel unit tests:\n{}", failed.join("\n"))),
        _ => Ok(()),
    }
}

/// Lines printed by the log-stress scenario (must match kernel/src/ktest/scenarios.rs).
const LOG_STRESS_LINES: usize = 200;
const LOG_STRESS_TAIL: &str = " payload=0123456789abcdefghijklmnopqrstuvwxyz end";

/// Every log-stress line must be whole (one record per line, nothing spliced in) and every core
/// must have printed all of its lines.
fn log_lines_whole(output: &str, smp: usize) -> Result {
    let mut per_core = vec![vec![false; LOG_STRESS_LINES]; smp];
    for line in output.lines().filter(|l| l.contains("log-stress core=")) {
        let parsed = parse_log_stress(line).ok_or_else(|| format!("garbled log line: {line:?}"))?;
        let (core, index) = parsed;
        let seen = per_core.get_mut(core).and_then(|c| c.get_mut(index)).ok_or_else(|| format!("bad ids: {line:?}"))?;
        if std::mem::replace(seen, true) {
            return Err(format!("line printed twice: {line:?}"));
        }
    }
    for (core, lines) in per_core.iter().enumerate() {
        let missing = lines.iter().filter(|&&seen| !seen).count();
        if missing > 0 {
            return Err(format!("core {core} is missing {missing} of {LOG_STRESS_LINES} lines"));
        }
    }
    Ok(())
}

/// `[   0.012345] INFO  cN log-stress core=N line=M payload=... end` -> (N, M), with the prefix's
/// core matching the message's.
fn parse_log_stress(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("] INFO  c")?;
    let (secs, micros) = stamp.trim().split_once('.')?;
    secs.parse::<u64>().ok()?;
    (micros.len() == 6 && micros.parse::<u32>().is_ok()).then_some(())?;
    let (prefix_core, rest) = rest.split_once(" log-stress core=")?;
    let (core, rest) = rest.split_once(" line=")?;
    let (index, tail) = rest.split_at(rest.find(' ')?);
    (tail == LOG_STRESS_TAIL && prefix_core == core).then_some(())?;
    Some((core.parse().ok()?, index.parse().ok()?))
}

/// Runs every case at smp 1 and 4 (those whose name contains `filter`), then prints a summary.
pub fn run_all(elf: &Path, filter: Option<&str>) -> Result {
    let (mut passed, mut failed) = (0, Vec::new());
    let default_machine = |case| MachineCase { case, memory: "1G", display: (qemu::GPU_WIDTH, qemu::GPU_HEIGHT) };
    let all: Vec<MachineCase> =
        CASES.iter().map(|c| default_machine(*c)).chain(MACHINE_CASES.iter().copied()).collect();
    for smp in [1, 4] {
        for MachineCase { case, memory, display } in
            all.iter().filter(|m| smp >= m.case.min_smp && filter.is_none_or(|f| m.case.name.contains(f)))
        {
            let name = format!("smp{smp}/{}", case.name);
            let machine = Machine {
                smp,
                append: case.append.to_string(),
                gpu: case.gpu,
                memory,
                display: *display,
                ..Machine::new(elf)
            };
            let outcome = qemu::run_captured(&machine, TIMEOUT)?;
            match verdict(case, smp, &outcome) {
                Ok(()) => {
                    passed += 1;
                    println!("qemu {name} ... ok ({:.2} s)", outcome.elapsed.as_secs_f64());
                }
                Err(why) => {
                    println!("qemu {name} ... FAILED: {why}");
                    println!("----- console of {name} -----\n{}\n----- end of {name} -----", outcome.output);
                    failed.push(name);
                }
            }
        }
    }
    if filter.is_none_or(|f| SCREENSHOT_CASE.contains(f)) {
        let name = format!("smp4/{SCREENSHOT_CASE}");
        match screenshot::test_pattern_case(elf) {
            Ok(elapsed) => {
                passed += 1;
                println!("qemu {name} ... ok ({:.2} s)", elapsed.as_secs_f64());
            }
            Err(why) => {
                println!("qemu {name} ... FAILED: {why}");
                failed.push(name);
            }
        }
    }
    println!("qemu: {passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("QEMU tests failed: {}", failed.join(", ")))
    }
}

fn verdict(case: &Case, smp: usize, outcome: &qemu::Outcome) -> Result {
    if outcome.timed_out {
        return Err(format!("timed out after {} s", TIMEOUT.as_secs()));
    }
    if outcome.status != Some(case.exit) {
        return Err(format!("exit status {:?}, expected {}", outcome.status, case.exit));
    }
    for expected in case.expect {
        let expected = expected.replace("{smp}", &smp.to_string());
        if !outcome.output.contains(&expected) {
            return Err(format!("console lacks {expected:?}"));
        }
    }
    case.check.map_or(Ok(()), |check| check(&outcome.output, smp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stress_parser_accepts_whole_lines_only() {
        let good = format!("[   0.012345] INFO  c2 log-stress core=2 line=17{LOG_STRESS_TAIL}");
        assert_eq!(parse_log_stress(&good), Some((2, 17)));
        let spliced =
            format!("[   0.012345] INFO  c2 log-stress core=2 line=17 payload=0123[   0.1] INFO{LOG_STRESS_TAIL}");
        assert_eq!(parse_log_stress(&spliced), None);
        let wrong_core = format!("[   0.012345] INFO  c1 log-stress core=2 line=17{LOG_STRESS_TAIL}");
        assert_eq!(parse_log_stress(&wrong_core), None);
    }

    #[test]
    fn log_check_counts_lines_per_core() {
        let lines: String = (0..LOG_STRESS_LINES)
            .map(|i| format!("[   0.000001] INFO  c0 log-stress core=0 line={i}{LOG_STRESS_TAIL}\n"))
            .collect();
        assert!(log_lines_whole(&lines, 1).is_ok());
        assert!(log_lines_whole(&lines, 2).unwrap_err().contains("core 1 is missing"));
        let doubled = format!("{lines}{}", lines.lines().next().unwrap());
        assert!(log_lines_whole(&doubled, 1).unwrap_err().contains("twice"));
    }

    const PERF_OK: &str = "[VIRTIO PERF] x fence=acquire frames=7 errors=0 timeouts=0 irqs_total=0 fps=10.5 fences=9\n";

    #[test]
    fn perf_checks_catch_errors_timeouts_and_missing_lines() {
        assert!(perf_lines_clean(PERF_OK, 1).is_ok());
        assert!(perf_lines_clean("nothing\n", 1).is_err());
        assert!(perf_lines_clean(&PERF_OK.replace("errors=0", "errors=1"), 1).unwrap_err().contains("errors"));
        assert!(perf_lines_clean(&PERF_OK.replace("timeouts=0", "timeouts=2"), 1).is_err());
        assert!(perf_lines_clean(&PERF_OK.replace("frames=7", "frames=0"), 1).is_err());
        assert!(interrupts_taken(PERF_OK, 1).unwrap_err().contains("irqs_total=0"));
        assert!(interrupts_taken(&PERF_OK.replace("irqs_total=0", "irqs_total=14"), 1).is_ok());
    }

    #[test]
    fn bench_check_wants_every_strategy_and_kind() {
        let line = |label: &str, fence: &str| {
            format!("[VIRTIO PERF] {label} fence={fence} frames=60 errors=0 timeouts=0 fps=99.10 fences=120\n")
        };
        let all: String = ["acquire", "seqcst", "after-progress"]
            .iter()
            .flat_map(|f| [line("bench-full", f), line("bench-dirty", f)])
            .collect();
        assert!(bench_lines_complete(&all, 1).is_ok());
        let missing = all.replace(&line("bench-dirty", "seqcst"), "");
        assert!(bench_lines_complete(&missing, 1).unwrap_err().contains("bench-dirty line for fence=seqcst"));
        let short = all.replace("frames=60", "frames=59");
        assert!(bench_lines_complete(&short, 1).is_err());
    }

    #[test]
    fn units_ran_rejects_failures_and_silence() {
        assert!(units_ran("test a ... ok\ntest b ... ok\n", 1).is_ok());
        assert!(units_ran("nothing\n", 1).is_err());
        assert!(units_ran("test a ... ok\ntest b ... FAILED: x\n", 1).is_err());
    }
}
