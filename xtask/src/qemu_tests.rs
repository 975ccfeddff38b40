//! The QEMU test matrix: each case boots the kernel once (smp 1 and 4) and checks the exit status
//! (the kernel's semihosting verdict) and the console output. Every run has a timeout, so a hung
//! kernel fails its case instead of hanging CI.

use crate::qemu::{self, DtbPatch, GicVersion, Machine};
use crate::screenshot;
use crate::Result;
use std::path::Path;
use std::time::Duration;
use tricolor_abi::exit::{BAD_CONFIG, FAULT, PANIC, SUCCESS, TEST_FAILED};
use tricolor_abi::{LOG_STRESS_LINES, LOG_STRESS_TAIL, MAX_CORES};

/// Generous: a boot takes well under a second under TCG; this only catches hangs.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The display hardware of a case.
#[derive(Clone, Copy)]
struct Hw {
    gpu: bool,
    display: (u32, u32),
    second_gpu: bool,
    legacy_mmio: bool,
    /// `-m`.
    memory: &'static str,
    /// `gic-version=`.
    gic: GicVersion,
    /// `virtualization=on` (entered at EL2).
    el2: bool,
    /// QEMU's device tree rewritten (`-dtb`).
    dtb_patch: Option<DtbPatch>,
    /// `-icount shift=0,sleep=off` (the benchmarks' clock).
    icount: bool,
}

const NO_GPU: Hw = Hw {
    gpu: false,
    display: (1280, 720),
    second_gpu: false,
    legacy_mmio: false,
    memory: "1G",
    gic: GicVersion::V2,
    el2: false,
    dtb_patch: None,
    icount: false,
};
/// `-machine virt,gic-version=3`, no GPU.
const GICV3: Hw = Hw { gic: GicVersion::V3, ..NO_GPU };
/// One `virtio-gpu-device` at 1280x720 on the modern transport.
const GPU: Hw = Hw { gpu: true, ..NO_GPU };
/// No GPU, under `-icount`.
const ICOUNT: Hw = Hw { icount: true, ..NO_GPU };

/// One QEMU boot and what it must produce.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    append: &'static str,
    /// The kernel's exit status (`tricolor_abi::exit`), QEMU's own.
    exit: u8,
    /// Substrings the console must contain; `{smp}` is replaced by the core count, `{max_cores}` by
    /// `tricolor_abi::MAX_CORES`.
    expect: &'static [&'static str],
    /// Extra checks on the whole output.
    check: Option<fn(&str, usize) -> Result>,
    /// The devices and transport QEMU gets.
    hw: Hw,
    /// Run only at this many cores or more (a negative control needs concurrency).
    min_smp: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "gc-cycle-off",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=off",
        exit: SUCCESS,
        expect: &[
            "gc-cycle: 12 cycles in mode off on {smp} cores: 0 verifier misses (0 in the driver's cycles",
            ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-buffered",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=buffered",
        exit: SUCCESS,
        expect: &[
            "gc-cycle: 12 cycles in mode buffered on {smp} cores: 0 verifier misses (0 in the driver's cycles",
            ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-direct",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=direct",
        exit: SUCCESS,
        expect: &[
            "gc-cycle: 12 cycles in mode direct on {smp} cores: 0 verifier misses (0 in the driver's cycles",
            ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-direct-systemstack",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=direct-systemstack",
        exit: SUCCESS,
        expect: &[
            "gc-cycle: 12 cycles in mode direct-systemstack on {smp} cores: 0 verifier misses (0 in the driver's cycles",
            ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-cycle-checked",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=checked",
        exit: SUCCESS,
        expect: &[
            "gc-cycle: 12 cycles in mode checked on {smp} cores: 0 verifier misses (0 in the driver's cycles",
            ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-negative-control",
        append: "test=gc-negative gc.mode=unsafe-off-during-mark gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-negative: negative control caught:", "gc verifier: reachable object 0x"],
        check: None,
        hw: NO_GPU,
        min_smp: 4,
    },
    Case {
        // Every cycle counts: with the barrier off during marking, misses from cycles the mutators
        // triggered fail the test as much as the driver's own.
        name: "gc-cycle-negative",
        append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=unsafe-off-during-mark",
        exit: TEST_FAILED,
        expect: &[" cycles in mode unsafe-off-during-mark on {smp} cores: ", "gc verifier: reachable object 0x"],
        check: Some(check_some_misses),
        hw: NO_GPU,
        min_smp: 4,
    },
    Case {
        // A hardware breakpoint at every instruction of one barrier window forces the dangerous
        // event there (a mark start, another barrier on the core); the IRQ-entry rewind must leave
        // no loss at any offset. Needs a second core for the collector.
        name: "gc-barrier-window",
        append: "test=gc-barrier-window gc.heap=16M",
        exit: SUCCESS,
        expect: &[" offsets, 0 misses in all, ", "gc-barrier-window: ok"],
        check: None,
        hw: NO_GPU,
        min_smp: 4,
    },
    Case {
        // Its negative control: the rewind switched off, the verifier must catch a loss at every
        // vulnerable offset and at no other (the scenario checks the histogram).
        name: "gc-barrier-window-negative",
        append: "test=gc-barrier-window-negative gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-barrier-window-negative: ok", "gc verifier: reachable object 0x"],
        check: None,
        hw: NO_GPU,
        min_smp: 4,
    },
    Case {
        name: "gc-blind-stack",
        append: "test=gc-blind-stack gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            "gc census: task 'hider' (id ",
            "alive at mark start but not scanned during the cycle: its Stack was never scanned",
            "unreachable from the scanned roots at mark start",
            "gc-blind-stack: caught: task 'hider' stack [0x",
            "node kept intact",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 2,
    },
    Case {
        name: "gc-moved-cycle",
        append: "test=gc-moved-cycle gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-moved-cycle: moved Some(true) (counted 1)", "findings 0 (misses 0), node kept intact"],
        check: None,
        hw: NO_GPU,
        min_smp: 2,
    },
    Case {
        name: "gc-blind-memory",
        append: "test=gc-blind-memory gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-blind-memory: caught: node 0x", "unreachable from the scanned roots at mark start"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        // A masked wait for the cycle lock behind another core's cycle: the collector's wait
        // must park for that cycle's stop (without it: ten missed deadlines and a panic).
        name: "gc-masked-wait",
        append: "test=gc-masked-wait gc.verify=on gc.heap=16M",
        exit: SUCCESS,
        expect: &["gc-masked-wait: the other core's cycle done", "gc-masked-wait: ok"],
        check: None,
        hw: NO_GPU,
        min_smp: 2,
    },
    Case {
        name: "stw-retry",
        append: "test=stw-retry gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            // The spinner keeps preemption off: the line names its core's depth.
            "not at a safe point after 2000 ms (attempt 1; core ",
            " preemption depth 1); trying again",
            "stw-retry: 1 stop-the-world retries counted",
            "stop-the-world retries 1",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 2,
    },
    Case {
        name: "gc-heap-growth-trigger",
        append: "test=gc-trigger gc.verify=on gc.heap=16M gc.percent=100",
        exit: SUCCESS,
        expect: &["cycles started by heap growth (GOGC 100%), 0 verifier misses, 0 unscanned stacks, 0 corrupt"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "bench-barrier",
        append: "test=bench-barrier gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            "BENCH barrier mode=off ",
            "BENCH barrier mode=checked ",
            "BENCH wbbuf entries=4096 ",
            "bench-barrier: done",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gc-checked-report",
        append: "test=gc-checked",
        exit: SUCCESS,
        expect: &[
            "gc checked: GC pointer 0x",
            "which the marker never scans",
            "gc-checked: reported slot 0x",
            "ktest/gc.rs:",
        ],
        check: None,
        hw: NO_GPU,
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
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "unit",
        append: "test=unit",
        exit: SUCCESS,
        expect: &["kernel unit tests: ", " 0 failed"],
        check: Some(units_ran),
        hw: NO_GPU,
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
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "panic-report",
        append: "test=panic",
        exit: PANIC,
        expect: &["PANIC on core 0", "deliberate panic"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "panic-on-system-stack",
        append: "test=panic-systemstack",
        exit: PANIC,
        expect: &["PANIC on core 0", "deliberate panic on the system stack", "running on the system stack 'system'"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "cmdline-unknown-key",
        append: "bogus=1",
        exit: BAD_CONFIG,
        expect: &[
            "bad kernel command line \"bogus=1\": unknown key 'bogus'; valid keys: log=",
            "cores=1..={max_cores}",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "cmdline-bad-value",
        append: "cores=99",
        exit: BAD_CONFIG,
        expect: &["bad value '99' for 'cores' (expected 1..={max_cores})"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "stress-suite-list",
        append: "suite=help",
        exit: SUCCESS,
        expect: &[
            "valid names (",
            "  suite     graph ",
            "  suite     churn ",
            "  suite     large ",
            "  suite     gcbench-quick ",
            "  suite     framebuffer ",
        ],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "stress-unknown-suite",
        append: "suite=nope",
        exit: BAD_CONFIG,
        expect: &["unknown suite 'nope'", "  suite     graph "],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "stress-suite-and-test",
        append: "suite=graph test=unit",
        exit: BAD_CONFIG,
        expect: &["test= and suite= both given"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        // The markers shade the full wbBufs the barrier hands them (`mark::Batches`), and the
        // verifier finds nothing missed.
        name: "stress-graph-handoff",
        append: "suite=graph seed=1 gc.mode=buffered gc.verify=on gc.heap=16M suite.cycles=6",
        exit: SUCCESS,
        expect: &["stress result: suite=graph seed=1 mode=buffered ", " misses=0 ", "verdict=clean"],
        check: Some(handed_off),
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        // Go's flush: each mutator shades its own full wbBuf, nothing is handed over.
        name: "stress-graph-no-handoff",
        append: "suite=graph seed=1 gc.mode=buffered gc.handoff=off gc.verify=on gc.heap=16M suite.cycles=6",
        exit: SUCCESS,
        expect: &["stress result: suite=graph seed=1 mode=buffered ", " misses=0 ", " handoffs=0 ", "verdict=clean"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "stress-negative-without-old-pointers",
        append: "suite=gcbench-quick gc.mode=unsafe-off-during-mark gc.verify=on",
        exit: BAD_CONFIG,
        expect: &["no negative control possible"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "unknown-test",
        append: "test=nope",
        exit: BAD_CONFIG,
        // Every kind of runnable is listed, from the one registry.
        expect: &[
            "unknown test 'nope'",
            "  unit test heap_backs_collections ",
            "  scenario  gc-cycle ",
            "  bench     bench-barrier ",
            "  suite     gcbench-quick ",
        ],
        check: None,
        hw: NO_GPU,
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
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "overflow-task-stack",
        append: "test=overflow-task",
        exit: FAULT,
        expect: &["kind task, task 'deep', stack [0x"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "overflow-growable-stack",
        append: "test=overflow-growable",
        exit: FAULT,
        expect: &["kind task, task 'grower', stack [0x", "guard [0x4000000000, 0x4000001000)"],
        check: None,
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "overflow-system-stack",
        append: "test=overflow-system",
        exit: FAULT,
        expect: &["stack overflow: core 0, kind system, stack 'system' of core 0"],
        check: None,
        hw: NO_GPU,
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
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "log-stress",
        append: "test=log-stress",
        exit: SUCCESS,
        expect: &["log-stress: {smp} cores"],
        check: Some(log_lines_whole),
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "icount-turns",
        append: "test=bench-turns tick.slice=25",
        exit: SUCCESS,
        expect: &["BENCH turns core=0 cores={smp} slice_us=25 "],
        check: Some(turns_fair),
        hw: ICOUNT,
        min_smp: 1,
    },
    Case {
        name: "icount-stall-detector",
        append: "test=bench-stalls tick.slice=25",
        exit: SUCCESS,
        expect: &["BENCH stalls cores={smp} spin_us="],
        check: Some(stalls_found),
        hw: ICOUNT,
        min_smp: 3,
    },
    Case {
        // The negative control of `icount-turns`: without the slice, QEMU's round-robin leaves
        // cores standing still for milliseconds, and the same check must say so.
        name: "icount-turns-unsliced",
        append: "test=bench-turns",
        exit: SUCCESS,
        expect: &["BENCH turns core=0 cores={smp} slice_us=0 "],
        check: Some(turns_unfair),
        hw: ICOUNT,
        min_smp: 2,
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
        hw: GPU,
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
        hw: GPU,
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
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-irq-completion",
        append: "test=gpu-fb-static virtio.complete=irq",
        exit: SUCCESS,
        expect: &["fence=acquire complete=irq", "gpu-fb-static: ok"],
        check: Some(interrupts_taken),
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-fence-after-progress",
        append: "test=gpu-fb-static virtio.fence=after-progress",
        exit: SUCCESS,
        expect: &[
            "virtio.fence=after-progress: relaxed used.idx polls",
            "fence=after-progress complete=poll",
            "gpu-fb-static: ok",
        ],
        check: Some(perf_lines_clean),
        hw: GPU,
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
        hw: GPU,
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
        hw: NO_GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-bench",
        append: "test=gpu-bench",
        exit: SUCCESS,
        expect: &["skips the barrier on empty polls", "gpu-bench: ok: 60 full (1280x720) and 60 dirty (400x80) frames"],
        check: Some(bench_lines_complete),
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-demo",
        append: "test=gpu-demo",
        exit: SUCCESS,
        expect: &["gpu: test pattern drawn (1280x720, fb=static)", "[VIRTIO PERF] gpu-demo ", "gpu-demo: ok"],
        check: Some(perf_lines_clean),
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-dashboard",
        append: "test=gpu-dashboard gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            "gui: dashboard drawn (2048 heap pages, 12x12 px cells, 1280x720 display, text scale 2",
            "[VIRTIO PERF] gpu-dashboard ",
            "gpu-dashboard: ok: 4 cycles, 1 full frame then",
        ],
        check: Some(perf_lines_clean),
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "gpu-dashboard-640x480",
        append: "test=gpu-dashboard gc.heap=16M",
        exit: SUCCESS,
        expect: &["640x480 display, text scale 1", "gpu-dashboard: ok: 4 cycles, 1 full frame then"],
        check: Some(perf_lines_clean),
        hw: Hw { display: (640, 480), ..GPU },
        min_smp: 4,
    },
    Case {
        name: "gpu-dashboard-1024x768",
        append: "test=gpu-dashboard gc.heap=16M",
        exit: SUCCESS,
        expect: &["1024x768 display, text scale 1", "gpu-dashboard: ok: 4 cycles, 1 full frame then"],
        check: Some(perf_lines_clean),
        hw: Hw { display: (1024, 768), ..GPU },
        min_smp: 4,
    },
    Case {
        name: "gpu-dashboard-1920x1080",
        append: "test=gpu-dashboard gc.heap=16M",
        exit: SUCCESS,
        expect: &[
            "fb=static: the display is larger than the 1280x720 static array, falling back to pages",
            "1920x1080 display, text scale 2",
            "gpu-dashboard: ok: 4 cycles, 1 full frame then",
        ],
        check: Some(perf_lines_clean),
        hw: Hw { display: (1920, 1080), ..GPU },
        min_smp: 4,
    },
    Case {
        name: "gpu-two-gpus",
        append: "test=gpu-fb-static",
        exit: SUCCESS,
        expect: &["gpu: another virtio-gpu at 0x", "gpu-fb-static: ok"],
        check: Some(one_line_for_the_second_gpu),
        hw: Hw { second_gpu: true, ..GPU },
        min_smp: 1,
    },
    Case {
        name: "gpu-legacy-transport",
        append: "test=gpu-missing",
        exit: SUCCESS,
        expect: &[
            "uses the legacy virtio-mmio transport (version 1), which tricolor does not drive: run QEMU with \
             -global virtio-mmio.force-legacy=false",
            "gpu-missing: no GPU, the kernel goes on",
        ],
        check: Some(one_warning_for_legacy),
        hw: Hw { legacy_mmio: true, ..GPU },
        min_smp: 1,
    },
];

/// Two GPUs: exactly one line about the one not driven.
fn one_line_for_the_second_gpu(output: &str, smp: usize) -> Result {
    perf_lines_clean(output, smp)?;
    match output.lines().filter(|l| l.contains("virtio-gpu at") && l.contains("not driven")).count() {
        1 => Ok(()),
        n => Err(format!("{n} lines about the GPU not driven, expected 1")),
    }
}

/// The legacy transport: one warning in all (not one per virtio-mmio slot).
fn one_warning_for_legacy(output: &str, _smp: usize) -> Result {
    let warnings: Vec<&str> =
        output.lines().filter(|l| l.contains("] WARN ") || l.contains("virtio-mmio 0x")).collect();
    match warnings.len() {
        1 => Ok(()),
        n => Err(format!("{n} warnings, expected the one about the legacy transport:\n{}", warnings.join("\n"))),
    }
}

/// Requests the machine cannot meet: the boot must stop with the reason and exit 2, like a bad
/// command line (before, the kernel logged an error, ran without a collector or fell back to
/// another framebuffer source, and exited 0).
const MACHINE_CASES: &[Case] = &[
    Case {
        name: "refuse-gc-heap-over-ram",
        append: "test=boot gc.heap=512M",
        exit: BAD_CONFIG,
        expect: &[
            "tricolor: impossible request: gc.heap: a 512 MiB GC heap does not fit in this machine's 256 MiB of RAM",
            "contiguous pages (aligned to 512 pages) requested",
            "choose a smaller gc.heap=",
        ],
        check: None,
        hw: Hw { memory: "256M", ..NO_GPU },
        min_smp: 1,
    },
    Case {
        name: "refuse-fb-gc-heap-too-small",
        append: "test=gpu-demo fb=gc gc.heap=2M",
        exit: BAD_CONFIG,
        expect: &[
            "tricolor: impossible request: fb=gc: cannot hold the 1280x720 display's 3600 KiB framebuffer",
            "the GC heap has no room for the framebuffer",
        ],
        check: Some(no_fallback),
        hw: GPU,
        min_smp: 1,
    },
    Case {
        name: "refuse-fb-static-display-too-large",
        append: "test=gpu-demo fb=static",
        exit: BAD_CONFIG,
        expect: &[
            "tricolor: impossible request: fb=static: cannot hold the 1920x1080 display's 8100 KiB framebuffer",
            "larger than the 1280x720 static array",
        ],
        check: Some(no_fallback),
        hw: Hw { display: (1920, 1080), ..GPU },
        min_smp: 1,
    },
    // Without fb= the default source may still fall back: nobody asked for it.
    Case {
        name: "fb-default-falls-back-for-a-large-display",
        append: "test=gpu-demo",
        exit: SUCCESS,
        expect: &[
            "fb=static: the display is larger than the 1280x720 static array, falling back to pages",
            "gpu-demo: ok",
        ],
        check: None,
        hw: Hw { display: (1920, 1080), ..GPU },
        min_smp: 1,
    },
];

/// The interrupt-controller matrix, each case at its own core count: GICv3 at smp 4 (boot, the
/// unit tests, also entered at EL2, a collector scenario, a stress suite, a device's SPI), the
/// 16-core machine only GICv3 can build, and a machine whose interrupt controller the kernel
/// cannot drive.
const GIC_CASES: &[(usize, Case)] = &[
    (
        4,
        Case {
            name: "gicv3-boot",
            append: "test=boot",
            exit: SUCCESS,
            expect: &["interrupt controller: GICv3", "{smp} of {smp} cores online", "ready in"],
            check: Some(no_warnings),
            hw: GICV3,
            min_smp: 1,
        },
    ),
    (
        4,
        Case {
            name: "gicv3-unit",
            append: "test=unit",
            exit: SUCCESS,
            expect: &["interrupt controller: GICv3", "kernel unit tests: ", " 0 failed"],
            check: Some(units_ran),
            hw: GICV3,
            min_smp: 1,
        },
    ),
    (
        4,
        // Entered at EL2: boot.s's drop to EL1 with the GIC's interrupts still taken at EL1. (Not a
        // test of boot.s's ICC_SRE_EL2 write: QEMU's SRE and Enable bits read as one anyway; with
        // the write removed this case still passes.)
        Case {
            name: "gicv3-el2-unit",
            append: "test=unit",
            exit: SUCCESS,
            expect: &["interrupt controller: GICv3", "{smp} of {smp} cores online", " 0 failed"],
            check: Some(units_ran),
            hw: Hw { el2: true, ..GICV3 },
            min_smp: 1,
        },
    ),
    (
        4,
        Case {
            name: "gicv3-gc-cycle",
            append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=buffered",
            exit: SUCCESS,
            expect: &[
                "gc-cycle: 12 cycles in mode buffered on {smp} cores: 0 verifier misses (0 in the driver's cycles",
                ") and 0 unscanned stacks, 0 corrupt, 0 poison failures, 0 false checked reports, 0 stop-the-world retries",
            ],
            check: None,
            hw: GICV3,
            min_smp: 1,
        },
    ),
    (
        4,
        Case {
            name: "gicv3-stress-churn",
            append: "suite=churn seed=2 gc.mode=direct gc.verify=on gc.heap=16M suite.cycles=8 gc.torture=0",
            exit: SUCCESS,
            expect: &["stress result: suite=churn seed=2 mode=direct cores={smp} ", " stw_retries=0 ", "verdict=clean"],
            check: None,
            hw: GICV3,
            min_smp: 1,
        },
    ),
    (
        // An SPI through the distributor: GICD_IROUTER routes the GPU's interrupt to core 0.
        4,
        Case {
            name: "gicv3-gpu-irq-completion",
            append: "test=gpu-fb-static virtio.complete=irq",
            exit: SUCCESS,
            expect: &["interrupt controller: GICv3", "complete=irq"],
            check: Some(interrupts_taken),
            hw: Hw { gpu: true, ..GICV3 },
            min_smp: 1,
        },
    ),
    (
        16,
        Case {
            name: "gicv3-boot",
            append: "test=boot",
            exit: SUCCESS,
            expect: &["interrupt controller: GICv3", "{smp} of {smp} cores online", "ready in"],
            check: Some(no_warnings),
            hw: GICV3,
            min_smp: 1,
        },
    ),
    (
        4,
        Case {
            name: "no-interrupt-controller",
            append: "test=boot",
            exit: SUCCESS,
            expect: &[
                "interrupt controller \"arm,gic-vX\" in the device tree: not a GICv2 or GICv3: no interrupts, so running on the boot core only",
                "1 of 1 cores online",
                "ready in",
            ],
            check: Some(one_warning),
            hw: Hw { dtb_patch: Some(unknown_interrupt_controller), ..GICV3 },
            min_smp: 1,
        },
    ),
];

/// QEMU's GICv3 renamed to a controller no driver knows (same length, so nothing else moves).
fn unknown_interrupt_controller(dtb: &[u8]) -> Result<Vec<u8>> {
    let (from, to) = (b"arm,gic-v3\0", b"arm,gic-vX\0");
    let at = dtb.windows(from.len()).position(|w| w == from).ok_or("no \"arm,gic-v3\" in QEMU's device tree")?;
    let mut patched = dtb.to_vec();
    patched[at..at + to.len()].copy_from_slice(to);
    Ok(patched)
}

/// Console lines at WARN or ERROR level.
fn warnings(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.contains("] WARN ") || l.contains("] ERROR ")).collect()
}

/// A clean boot warns about nothing.
fn no_warnings(output: &str, _smp: usize) -> Result {
    match warnings(output).as_slice() {
        [] => Ok(()),
        lines => Err(format!("{} warnings: {lines:?}", lines.len())),
    }
}

/// Exactly one warning: the machine's limitation said once, not a cascade after it.
fn one_warning(output: &str, _smp: usize) -> Result {
    match warnings(output).as_slice() {
        [_] => Ok(()),
        lines => Err(format!("{} warnings, expected 1: {lines:?}", lines.len())),
    }
}

/// A refused request must not have been served from another source first.
fn no_fallback(output: &str, _smp: usize) -> Result {
    match output.lines().find(|l| l.contains("falling back")) {
        Some(line) => Err(format!("a named framebuffer source fell back: {line:?}")),
        None => Ok(()),
    }
}

/// The screenshot test (xtask/src/screenshot.rs): the test pattern (`test=gpu-pattern`), checked
/// pixel by pixel in a `screendump` PNG. Runs at smp 4 only.
const SCREENSHOT_CASE: &str = "gpu-screenshot";
/// The same with the framebuffer in the GC heap, which is not identity-mapped: the device gets
/// its physical pages (`vm::phys_of`), and wrong ones would show as wrong pixels.
const SCREENSHOT_GC_CASE: &str = "gpu-screenshot-fb-gc";
/// The default boot with its console scripted and its dashboard screenshot
/// (xtask/src/demo_tests.rs). Runs at smp 4 only.
const DEMO_CASE: &str = "demo-console";
/// The demo's console typed into at length (xtask/src/demo_tests.rs): no byte is lost.
const TYPING_CASE: &str = "console-typing";
/// gdb-multiarch with xtask/gdb/tricolor.py attached to the running demo (xtask/src/gdb.rs).
const GDB_CASE: &str = "gdb-script";
/// A short `cargo xtask trace` of the demo.
const TRACE_CASE: &str = "trace-demo";

/// A case that drives its own QEMU session (screenshots, the console, gdb); returns its duration.
type SessionCase = fn(&Path) -> Result<std::time::Duration>;

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

/// `bench-turns` under `-icount`: whether every core got a fair share of the machine in short
/// turns (`tricolor_kernel::slice`): each core's loop took within 10 % of the others' time, and
/// no step waited longer than three rounds of slices (each core's slice once per round).
fn turns_verdict(output: &str, smp: usize) -> Result {
    let lines: Vec<_> = crate::bench::parse(output).into_iter().filter(|l| l.kind == "turns").collect();
    if lines.len() != smp {
        return Err(format!("{} BENCH turns lines for {smp} cores", lines.len()));
    }
    let field = |l: &crate::bench::BenchLine, key: &str| -> Result<f64> {
        l.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| format!("BENCH turns without {key}"))
    };
    let slice_ns = field(&lines[0], "slice_us")? * 1000.0;
    let mut elapsed = Vec::new();
    for l in &lines {
        elapsed.push(field(l, "elapsed_ns")?);
        let longest = field(l, "longest_step_ns")?;
        let bound = 3.0 * smp as f64 * slice_ns.max(25_000.0);
        if longest > bound {
            return Err(format!("a step waited {:.0} µs (bound {:.0} µs)", longest / 1000.0, bound / 1000.0));
        }
    }
    let (lo, hi) = elapsed.iter().fold((f64::MAX, 0f64), |(lo, hi), &e| (lo.min(e), hi.max(e)));
    if hi > lo * 1.1 {
        return Err(format!("the cores' loops took {:.1} to {:.1} ms: not a fair share", lo / 1e6, hi / 1e6));
    }
    Ok(())
}

/// `bench-stalls`: the spinning core 1 was reported stalled for at least half its spin, the
/// computing core 2 for none of it (the negative control: a detector that saw every core as
/// stalled, or none, fails).
fn stalls_found(output: &str, _smp: usize) -> Result {
    let line = crate::bench::parse(output).into_iter().find(|l| l.kind == "stalls").ok_or("no BENCH stalls line")?;
    let number = |key: &str| -> Result<f64> {
        line.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| format!("BENCH stalls without {key}"))
    };
    let (spin_us, freq) = (number("spin_us")?, number("freq")?);
    let stalls = tricolor_kernel::slice::parse_stalls(output)?.ok_or("no STALLS lines")?;
    let us = |core: usize| -> f64 {
        crate::trace::core_stalls(&stalls, core).iter().map(|(a, b)| (b - a) as f64).sum::<f64>() * 1e6 / freq
    };
    if us(1) < spin_us / 2.0 {
        return Err(format!("core 1 spun {spin_us:.0} µs with its registers unchanged, stalled only {:.0} µs", us(1)));
    }
    if us(2) > 0.0 {
        return Err(format!("core 2 computed the whole time and was reported stalled for {:.0} µs", us(2)));
    }
    Ok(())
}

fn turns_fair(output: &str, smp: usize) -> Result {
    turns_verdict(output, smp)
}

fn turns_unfair(output: &str, smp: usize) -> Result {
    match turns_verdict(output, smp) {
        Ok(()) => Err("without tick.slice the turns came out fair: the check cannot tell".into()),
        Err(_) => Ok(()),
    }
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

/// The stress result must count some wbBufs handed over to the markers.
fn handed_off(output: &str, _smp: usize) -> Result {
    let fields = crate::stress::parse_result(output).ok_or("no stress result line")?;
    let handoffs: u64 =
        fields.get("handoffs").and_then(|n| n.parse().ok()).ok_or("no handoffs= in the stress result")?;
    if handoffs == 0 {
        return Err("no wbBuf was handed over to the markers".into());
    }
    Ok(())
}

/// The gc-cycle line must report some verifier misses (the negative control's).
fn check_some_misses(output: &str, _smp: usize) -> Result {
    let line = output.lines().find(|l| l.starts_with("gc-cycle: ")).ok_or("no gc-cycle line")?;
    let misses: u64 = line
        .split_once(" cores: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no miss count in {line:?}"))?;
    if misses == 0 {
        return Err(format!("the broken barrier went unnoticed: {line:?}"));
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
/// The kernel built with its barriers compiled out (`no-barriers`), booted once: a gc-cycle run
/// asking for `buffered` must mark with the world stopped (no verifier miss although no barrier
/// records anything) and count no barrier at all.
const COMPILED_OUT_CASE: Case = Case {
    name: "gc-cycle-compiled-out",
    append: "test=gc-cycle gc.verify=on gc.heap=32M gc.percent=400 gc.mode=buffered",
    exit: SUCCESS,
    expect: &[
        "gc-cycle: 12 cycles in mode buffered on {smp} cores: 0 verifier misses (0 in the driver's cycles",
        "; barriers 0 flushes 0 shaded ",
    ],
    check: None,
    hw: NO_GPU,
    min_smp: 1,
};

/// Boots the no-barriers kernel `elf` with [`COMPILED_OUT_CASE`] on 4 cores.
pub fn run_compiled_out(elf: &Path) -> Result {
    let smp = 4;
    let case = &COMPILED_OUT_CASE;
    let machine = Machine { smp, append: case.append.to_string(), gpu: false, ..Machine::new(elf) };
    let outcome = qemu::run_captured(&machine, TIMEOUT)?;
    match verdict(case, smp, &outcome) {
        Ok(()) => {
            println!("qemu smp{smp}/{} ... ok ({:.2} s)", case.name, outcome.elapsed.as_secs_f64());
            Ok(())
        }
        Err(why) => Err(format!("qemu smp{smp}/{} ... FAILED: {why}\n{}", case.name, outcome.output)),
    }
}

pub fn run_all(elf: &Path, filter: Option<&str>) -> Result {
    let (mut passed, mut failed) = (0, Vec::new());
    let matrix = [1, 4].into_iter().flat_map(|smp| CASES.iter().chain(MACHINE_CASES).map(move |case| (smp, case)));
    let runs = matrix
        .chain(GIC_CASES.iter().map(|(smp, case)| (*smp, case)))
        .filter(|(smp, c)| *smp >= c.min_smp && filter.is_none_or(|f| c.name.contains(f)));
    for (smp, case) in runs {
        let name = format!("smp{smp}/{}", case.name);
        let outcome = qemu::run_captured(&machine_for(elf, case, smp), TIMEOUT)?;
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
    let sessions: [(&str, SessionCase); 6] = [
        (SCREENSHOT_CASE, screenshot::test_pattern_case),
        (SCREENSHOT_GC_CASE, screenshot::test_pattern_gc_case),
        (DEMO_CASE, crate::demo_tests::console_case),
        (TYPING_CASE, crate::demo_tests::typing_case),
        (GDB_CASE, crate::gdb::case),
        (TRACE_CASE, crate::trace::case),
    ];
    for (case, run) in sessions {
        if filter.is_some_and(|f| !case.contains(f)) {
            continue;
        }
        let name = format!("smp4/{case}");
        match run(elf) {
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

fn machine_for(elf: &Path, case: &Case, smp: usize) -> Machine {
    Machine {
        smp,
        append: case.append.to_string(),
        gpu: case.hw.gpu,
        display: case.hw.display,
        second_gpu: case.hw.second_gpu,
        legacy_mmio: case.hw.legacy_mmio,
        memory: case.hw.memory,
        gic: case.hw.gic,
        el2: case.hw.el2,
        dtb_patch: case.hw.dtb_patch,
        icount: case.hw.icount,
        ..Machine::new(elf)
    }
}

fn verdict(case: &Case, smp: usize, outcome: &qemu::Outcome) -> Result {
    if outcome.timed_out {
        return Err(format!("timed out after {} s", TIMEOUT.as_secs()));
    }
    if outcome.status != Some(i32::from(case.exit)) {
        return Err(format!("exit status {:?}, expected {}", outcome.status, case.exit));
    }
    for expected in case.expect {
        let expected = expected.replace("{smp}", &smp.to_string()).replace("{max_cores}", &MAX_CORES.to_string());
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
    fn display_hardware_checks_count_lines() {
        let second = "[   0.1] INFO  c0 gpu: another virtio-gpu at 0xa003e00 is not driven (tricolor drives ...)\n";
        assert!(one_line_for_the_second_gpu(&format!("{PERF_OK}{second}"), 1).is_ok());
        assert!(one_line_for_the_second_gpu(PERF_OK, 1).unwrap_err().contains("0 lines"));
        assert!(one_line_for_the_second_gpu(&format!("{PERF_OK}{second}{second}"), 1).is_err());
        let legacy = "[   0.1] WARN  c0 gpu: virtio-gpu at 0xa003e00 uses the legacy virtio-mmio transport\n";
        assert!(one_warning_for_legacy(legacy, 1).is_ok());
        let per_slot: String = (0..32).map(|i| format!("[   0.1] WARN  c0 virtio-mmio 0x{i:x}: legacy\n")).collect();
        assert!(one_warning_for_legacy(&per_slot, 1).unwrap_err().starts_with("32 warnings"));
    }

    #[test]
    fn the_interrupt_controller_patch_hides_the_gic() {
        let dtb = include_bytes!("../../fuzz/corpus/devicetree/qemu-virt-gicv3-smp16.dtb");
        let patched = unknown_interrupt_controller(dtb).unwrap();
        let info = tricolor_kernel::dtb::read(&patched).unwrap();
        assert_eq!(
            info.gic,
            Err(tricolor_kernel::dtb::NoGic::Unusable { compatible: "arm,gic-vX", why: "not a GICv2 or GICv3" })
        );
        assert_eq!(info.cpu_count, 16, "nothing else changed");
        assert!(unknown_interrupt_controller(b"no gic here").is_err());
    }

    #[test]
    fn warning_checks_count_warn_and_error_lines() {
        let warn = "[   0.1] WARN  c0 something\n";
        let error = "[   0.1] ERROR c0 broken\n";
        let info = "[   0.1] INFO  c0 fine, WARN in the text does not count\n";
        assert!(no_warnings(info, 1).is_ok());
        assert!(no_warnings(&format!("{info}{warn}"), 1).is_err());
        assert!(one_warning(&format!("{info}{warn}"), 1).is_ok());
        assert!(one_warning(&format!("{warn}{error}"), 1).unwrap_err().starts_with("2 warnings"));
        assert!(one_warning(info, 1).is_err());
    }

    #[test]
    fn units_ran_rejects_failures_and_silence() {
        assert!(units_ran("test a ... ok\ntest b ... ok\n", 1).is_ok());
        assert!(units_ran("nothing\n", 1).is_err());
        assert!(units_ran("test a ... ok\ntest b ... FAILED: x\n", 1).is_err());
    }
}
