//! Collector scenarios in QEMU: cycles with mutators rewiring a graph on every core (each barrier
//! mode), the negative control that the verifier must catch, and checked mode's report of a GC
//! pointer stored outside the heap.

use super::{yield_until, Scenario};
use crate::gc::{self, workload, Kernel};
use crate::{exit, kprintln, percore, stw};
use core::sync::atomic::{AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_gc::BarrierMode;
use tricolor_kernel::cmdline::Config;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "gc-cycle",
        about: "GC cycles while every core mutates a graph (mode from gc.mode=)",
        run: gc_cycle,
    },
    Scenario {
        name: "gc-negative",
        about: "negative control: concurrent mark with the barrier off must be caught by the verifier",
        run: gc_negative,
    },
    Scenario {
        name: "gc-trigger",
        about: "no explicit collections: cycles start from heap growth (gc.percent=) while cores mutate",
        run: gc_trigger,
    },
    Scenario {
        name: "gc-checked",
        about: "checked mode reports a GC pointer stored into a static buffer",
        run: gc_checked,
    },
];

const CYCLES: u64 = 12;
/// The window between mark start and the first scan (see `gc::collect_with_mark_delay`).
const MARK_DELAY_US: u64 = 2000;

/// What a run of cycles saw.
struct Outcome {
    cycles: u64,
    misses: usize,
    corrupt: usize,
    poison_failures: usize,
    reachable: usize,
}

/// Runs `cycles` collections while a mutator task runs on every core, checking the reachable
/// graph and the poisoning of freed memory after each one.
fn run_cycles(config: &Config<'_>, cycles: u64, stop_at_first_miss: bool) -> Outcome {
    if !gc::is_ready() {
        kprintln!("gc scenario: no collector (see the boot log)");
        exit::exit(exit::TEST_FAILED);
    }
    let cores = workload::start_mutators(config.seed).unwrap_or_else(|why| {
        kprintln!("gc scenario: cannot spawn a mutator: {why}");
        exit::exit(exit::TEST_FAILED)
    });
    let masked = cpu::mask_irqs();
    cpu::restore_irqs(false);
    let mut outcome = Outcome { cycles: 0, misses: 0, corrupt: 0, poison_failures: 0, reachable: 0 };
    for _ in 0..cycles {
        yield_until(5, || false);
        let report = gc::collect_with_mark_delay(MARK_DELAY_US);
        let (reachable, corrupt, poisoned) = gc::between_cycles(|| {
            stw::stop_the_world(|| {
                let (reachable, corrupt) = workload::check_reachable();
                (reachable, corrupt, gc::collector().heap.check_poisoned())
            })
        })
        .map(|(r, _)| r)
        .unwrap_or_else(|e| panic!("cannot stop the world for the check: {:#b}", e.missing));
        outcome.cycles += 1;
        outcome.misses += report.verifier_misses;
        gc::explain_misses();
        outcome.corrupt += corrupt;
        outcome.reachable = reachable;
        if let Err(addr) = poisoned {
            outcome.poison_failures += 1;
            log::error!("freed memory at {addr:#x} is not poisoned");
        }
        log::info!(
            "gc cycle {}: marked {} KiB, freed {} KiB ({} objects), pauses {} / {} ns, misses {}, reachable {reachable}, corrupt {corrupt}",
            report.cycle,
            report.marked_bytes >> 10,
            report.freed_bytes >> 10,
            report.freed_objects,
            report.pause_ns[0],
            report.pause_ns[1],
            report.verifier_misses
        );
        if stop_at_first_miss && outcome.misses > 0 {
            break;
        }
    }
    workload::stop_mutators(cores);
    cpu::restore_irqs(masked);
    outcome.corrupt += workload::CORRUPT.load(Ordering::Relaxed) as usize;
    outcome
}

fn print_stats(mode: &str) {
    let s = gc::collector().stats::<Kernel>();
    kprintln!(
        "gc stats [{mode}]: cycles {} pauses {} max {} ns mean {} ns; barriers {} flushes {} shaded {}; allocs {} (refused {}), stores {}",
        s.cycles,
        s.pauses,
        s.pause_max_ns,
        s.pause_mean_ns,
        s.barriers,
        s.flushes,
        s.objects_shaded,
        workload::ALLOCS.load(Ordering::Relaxed),
        workload::ALLOC_FAILURES.load(Ordering::Relaxed),
        workload::STORES.load(Ordering::Relaxed),
    );
}

fn gc_cycle(config: &Config<'_>) -> ! {
    let mode = config.gc_mode;
    if mode == BarrierMode::UnsafeOffDuringMark {
        kprintln!("gc-cycle: gc.mode=unsafe-off-during-mark is the negative control; use test=gc-negative");
        exit::exit(exit::BAD_CONFIG);
    }
    let outcome = run_cycles(config, CYCLES, false);
    let checked_reports = tricolor_gc::take_checked_reports();
    print_stats(mode.name());
    kprintln!(
        "gc-cycle: {} cycles in mode {} on {} cores: {} verifier misses, {} corrupt, {} poison failures, {} false checked reports, {} reachable at the end",
        outcome.cycles,
        mode.name(),
        percore::online_count(),
        outcome.misses,
        outcome.corrupt,
        outcome.poison_failures,
        checked_reports.len(),
        outcome.reachable
    );
    let ok = outcome.cycles == CYCLES
        && outcome.misses == 0
        && outcome.corrupt == 0
        && outcome.poison_failures == 0
        && checked_reports.is_empty();
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}

/// Cycles the negative control may take to show a miss before it counts as undetected.
const NEGATIVE_MAX_CYCLES: u64 = 40;

fn gc_negative(config: &Config<'_>) -> ! {
    if config.gc_mode != BarrierMode::UnsafeOffDuringMark || !config.gc_verify {
        kprintln!("gc-negative: needs gc.mode=unsafe-off-during-mark gc.verify=on");
        exit::exit(exit::BAD_CONFIG);
    }
    let outcome = run_cycles(config, NEGATIVE_MAX_CYCLES, true);
    print_stats("negative control");
    if outcome.misses > 0 {
        kprintln!(
            "gc-negative: negative control caught: {} reachable objects missed, found by the verifier in cycle {}",
            outcome.misses,
            outcome.cycles
        );
        exit::exit(exit::SUCCESS)
    }
    kprintln!(
        "gc-negative: NOT caught: {} cycles with the barrier off during marking and no miss found",
        outcome.cycles
    );
    exit::exit(exit::TEST_FAILED)
}

/// A word outside the GC heap and outside `.gcroots`: a GC pointer must never be stored here.
static NOT_A_ROOT: AtomicUsize = AtomicUsize::new(0);

fn gc_checked(_: &Config<'_>) -> ! {
    if !gc::is_ready() {
        exit::exit(exit::TEST_FAILED);
    }
    gc::set_mode(BarrierMode::Checked);
    let node = match gc::collector().alloc::<Kernel, workload::Node>() {
        Ok(node) => node,
        Err(_) => exit::exit(exit::TEST_FAILED),
    };
    // The planted bug: a barriered store of a GC pointer into a static word.
    tricolor_gc::write_pointer::<Kernel>(&NOT_A_ROOT, node.addr());
    let slot = &NOT_A_ROOT as *const AtomicUsize as usize;
    let reports = tricolor_gc::take_checked_reports();
    match reports.iter().find(|r| r.slot == slot && r.object == node.addr()) {
        Some(r) => {
            kprintln!(
                "gc-checked: reported slot {:#x} (object {:#x}, {}) stored at {}",
                r.slot,
                r.object,
                r.type_name,
                r.caller
            );
            exit::exit(exit::SUCCESS)
        }
        None => {
            kprintln!("gc-checked: no report for the store into {slot:#x} ({} other reports)", reports.len());
            exit::exit(exit::TEST_FAILED)
        }
    }
}

/// Cycles the trigger scenario waits for (heap growth alone must start them), and how long at
/// most (generous: a loaded host slows the mutators, not the logic).
const TRIGGER_CYCLES: u64 = 3;
const TRIGGER_TIMEOUT_MS: u64 = 30_000;

fn gc_trigger(config: &Config<'_>) -> ! {
    if !gc::is_ready() {
        exit::exit(exit::TEST_FAILED);
    }
    let before = gc::TRIGGERED_CYCLES.load(Ordering::Relaxed);
    let cores = workload::start_mutators(config.seed).unwrap_or_else(|why| {
        kprintln!("gc-trigger: cannot spawn a mutator: {why}");
        exit::exit(exit::TEST_FAILED)
    });
    let masked = cpu::mask_irqs();
    cpu::restore_irqs(false);
    yield_until(TRIGGER_TIMEOUT_MS, || gc::TRIGGERED_CYCLES.load(Ordering::Relaxed) - before >= TRIGGER_CYCLES);
    workload::stop_mutators(cores);
    cpu::restore_irqs(masked);
    let triggered = gc::TRIGGERED_CYCLES.load(Ordering::Relaxed) - before;
    let (reachable, corrupt) =
        stw::stop_the_world(workload::check_reachable).map(|(r, _)| r).unwrap_or((0, usize::MAX));
    let corrupt = corrupt + workload::CORRUPT.load(Ordering::Relaxed) as usize;
    let stats = gc::collector().stats::<Kernel>();
    print_stats("trigger");
    kprintln!(
        "gc-trigger: {triggered} cycles started by heap growth (GOGC {}%), {} verifier misses, {corrupt} corrupt, heap {} of {} KiB in use, {reachable} reachable",
        config.gc_percent,
        stats.verifier_misses,
        stats.heap_in_use >> 10,
        stats.heap_size >> 10
    );
    let ok = triggered >= TRIGGER_CYCLES && stats.verifier_misses == 0 && corrupt == 0;
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}
