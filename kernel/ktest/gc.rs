//! Collector scenarios in QEMU: cycles with mutators rewiring a graph on every core (each barrier
//! mode), the negative control that the verifier must catch, and checked mode's report of a GC
//! pointer stored outside the heap.

use super::scenario;
use super::yield_until;
use crate::gc::{self, Kernel};
use crate::registry::Entry;
use crate::workload::{self, graph, Repeat};
use crate::{exit, kprintln, percore, stw, tasks};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_gc::BarrierMode;
use tricolor_kernel::cmdline::Config;

crate::register!(SCENARIOS);
const SCENARIOS: &[Entry] = &[
    scenario("gc-cycle", "GC cycles while every core mutates a graph (mode from gc.mode=)", gc_cycle),
    scenario("gc-negative", "negative control: concurrent mark with the barrier off must be caught by the verifier", gc_negative),
    scenario("gc-trigger", "no explicit collections: cycles start from heap growth (gc.percent=) while cores mutate", gc_trigger),
    scenario("gc-checked", "checked mode reports a GC pointer stored into a static buffer", gc_checked),
    scenario("gc-blind-stack", "planted: the only reference to a node sits on a stack the root scan skips; the census must report it", gc_blind_stack),
    scenario("gc-blind-memory", "planted: the only reference to a node sits in kernel memory the collector never scans; the verifier must report it", gc_blind_memory),
    scenario("gc-masked-wait", "the driver, IRQs masked, waits for the cycle lock behind another core's cycle: that cycle must still stop it", gc_masked_wait),
    scenario("gc-moved-cycle", "a cycle started on the driver's task moves to an idle core mid-mark; the driver, a mutator again, hides a node on its stack; nothing is lost", gc_moved_cycle),
    scenario("stw-retry", "a core keeps preemption off past the stop-the-world deadline: the retry is counted and reported", stw_retry),
];

const CYCLES: u64 = 12;
/// The window between mark start and the first scan (see `gc::collect_with_mark_delay`).
const MARK_DELAY_US: u64 = 2000;

/// What a run of cycles saw.
struct Outcome {
    cycles: u64,
    /// From every cycle in the run, the driver's and the ones mutators triggered.
    findings: gc::Findings,
    /// Misses in the driver's own cycles only (for the report: the rest were triggered).
    driver_misses: u64,
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
    // IRQs on before the mutators start (a cycle they trigger must be able to stop this core).
    let irqs = IrqGuard::unmask();
    workload::start(&[&graph::WORKLOAD], config, Repeat::Once).unwrap_or_else(|why| {
        kprintln!("gc scenario: cannot spawn a mutator: {why}");
        exit::exit(exit::TEST_FAILED)
    });
    let before = gc::Findings::now();
    let mut outcome = Outcome {
        cycles: 0,
        findings: gc::Findings::default(),
        driver_misses: 0,
        corrupt: 0,
        poison_failures: 0,
        reachable: 0,
    };
    for _ in 0..cycles {
        yield_until(5, || false);
        let report = gc::collect_with_mark_delay(MARK_DELAY_US);
        let (reachable, corrupt, poisoned) = gc::between_cycles(|| {
            stw::stop_the_world(|| {
                let (reachable, corrupt) = graph::check_reachable();
                (reachable, corrupt, gc::collector().heap.check_poisoned())
            })
        })
        .map(|(r, _)| r)
        .unwrap_or_else(|e| panic!("cannot stop the world for the check: {:#b}", e.missing));
        outcome.cycles += 1;
        outcome.driver_misses += report.verifier_misses as u64;
        gc::explain_findings();
        outcome.findings = gc::Findings::now().since(before);
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
        if stop_at_first_miss && outcome.findings.failures() > 0 {
            break;
        }
    }
    workload::stop();
    crate::tasks::stop_ticks();
    drop(irqs);
    outcome.corrupt += graph::CORRUPT.load(Ordering::Relaxed) as usize;
    outcome.findings = gc::Findings::now().since(before);
    outcome
}

fn print_stats(mode: &str) {
    let s = gc::collector().stats::<Kernel>();
    kprintln!(
        "gc stats [{mode}]: cycles {} pauses {} max {} ns mean {} ns; barriers {} flushes {} shaded {}; allocs {} (refused {}), stores {}; verifier misses {} unscanned stacks {} stop-the-world retries {}",
        s.cycles,
        s.pauses,
        s.pause_max_ns,
        s.pause_mean_ns,
        s.barriers,
        s.flushes,
        s.objects_shaded,
        graph::ALLOCS.load(Ordering::Relaxed),
        graph::ALLOC_FAILURES.load(Ordering::Relaxed),
        graph::STORES.load(Ordering::Relaxed),
        s.verifier_misses,
        s.unscanned,
        stw::retries(),
    );
}

fn gc_cycle(config: &Config<'_>) -> ! {
    // gc.mode=unsafe-off-during-mark is allowed: the run must then fail (xtask checks that a
    // broken barrier fails this test, through misses from any cycle, the driver's or triggered);
    // it runs until the first finding, as the negative control does.
    let mode = config.gc_mode;
    let negative = mode == BarrierMode::UnsafeOffDuringMark;
    let outcome =
        if negative { run_cycles(config, NEGATIVE_MAX_CYCLES, true) } else { run_cycles(config, CYCLES, false) };
    let checked_reports = tricolor_gc::take_checked_reports::<Kernel>();
    print_stats(mode.name());
    kprintln!(
        "gc-cycle: {} cycles in mode {} on {} cores: {} verifier misses ({} in the driver's cycles, the rest in {} triggered ones) and {} unscanned stacks, {} corrupt, {} poison failures, {} false checked reports, {} stop-the-world retries, {} reachable at the end",
        outcome.cycles,
        mode.name(),
        percore::online_count(),
        outcome.findings.misses,
        outcome.driver_misses,
        gc::TRIGGERED_CYCLES.load(Ordering::Relaxed),
        outcome.findings.unscanned,
        outcome.corrupt,
        outcome.poison_failures,
        checked_reports.len(),
        outcome.findings.stw_retries,
        outcome.reachable
    );
    let ok = outcome.cycles == CYCLES
        && outcome.findings.failures() == 0
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
    if outcome.findings.misses > 0 {
        kprintln!(
            "gc-negative: negative control caught: {} reachable objects missed, found by the verifier in cycle {}",
            outcome.findings.misses,
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
    let node = match gc::collector().alloc::<Kernel, graph::Node>() {
        Ok(node) => node,
        Err(_) => exit::exit(exit::TEST_FAILED),
    };
    // The planted bug: a barriered store of a GC pointer into a static word.
    tricolor_gc::write_pointer::<Kernel>(&NOT_A_ROOT, node.addr());
    let slot = &NOT_A_ROOT as *const AtomicUsize as usize;
    let reports = tricolor_gc::take_checked_reports::<Kernel>();
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
    {
        // IRQs on before the mutators start (a cycle they trigger must be able to stop this core).
        let _irqs = IrqGuard::unmask();
        workload::start(&[&graph::WORKLOAD], config, Repeat::Once).unwrap_or_else(|why| {
            kprintln!("gc-trigger: cannot spawn a mutator: {why}");
            exit::exit(exit::TEST_FAILED)
        });
        yield_until(TRIGGER_TIMEOUT_MS, || gc::TRIGGERED_CYCLES.load(Ordering::Relaxed) - before >= TRIGGER_CYCLES);
        workload::stop();
        crate::tasks::stop_ticks();
    }
    let triggered = gc::TRIGGERED_CYCLES.load(Ordering::Relaxed) - before;
    let (reachable, corrupt) = stw::stop_the_world(graph::check_reachable).map(|(r, _)| r).unwrap_or((0, usize::MAX));
    let corrupt = corrupt + graph::CORRUPT.load(Ordering::Relaxed) as usize;
    let stats = gc::collector().stats::<Kernel>();
    print_stats("trigger");
    kprintln!(
        "gc-trigger: {triggered} cycles started by heap growth (GOGC {}%), {} verifier misses, {} unscanned stacks, {corrupt} corrupt, heap {} of {} KiB in use, {reachable} reachable",
        config.gc_percent,
        stats.verifier_misses,
        stats.unscanned,
        stats.heap_in_use >> 10,
        stats.heap_size >> 10
    );
    let ok = triggered >= TRIGGER_CYCLES && stats.verifier_misses == 0 && stats.unscanned == 0 && corrupt == 0;
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}

/// Set by a planted scenario's helper task when its part is done; cleared to let it finish.
static PLANTED: AtomicUsize = AtomicUsize::new(0);
const PLANTED_READY: usize = 1;
const PLANTED_FINISH: usize = 2;
const PLANTED_DONE: usize = 3;

/// Cycles a planted scenario runs at most before calling the blind spot undetected.
const PLANTED_CYCLES: usize = 6;

fn require_verifier(config: &Config<'_>, name: &str, cores: usize) {
    if !gc::is_ready() || !config.gc_verify || percore::online_count() < cores {
        kprintln!("{name}: needs the collector with gc.verify=on and at least {cores} cores");
        exit::exit(exit::BAD_CONFIG);
    }
}

/// Allocates a node, retrying while the heap is full; `None` if it stays full.
fn node() -> Option<tricolor_gc::Gc<graph::Node>> {
    let n = gc::alloc::<graph::Node>().ok()?;
    graph::stamp(n, 0x51de);
    Some(n)
}

/// The hider: holds the only reference to a node on its own stack, after taking that stack out
/// of the stack registry (so the root scan, which finds a running task's stack there, skips it),
/// and keeps its core busy (no timer ticks run here) so that a cycle's mark start always finds
/// it running. It yields only to the cycle's mark worker on its core.
fn hider(_: usize) {
    let Some(n) = node() else {
        PLANTED.store(PLANTED_DONE, Ordering::Release);
        return;
    };
    let kept = core::hint::black_box(n);
    // Both scans lose this stack: the concurrent mark's list, and the registry through which the
    // stop-the-world scans (the verifier's) find a running task's stack.
    // SAFETY: the current task is alive while it runs.
    let me = unsafe { tricolor_runtime::this_p().current() }.map(|t| t.id().0);
    gc::scan::skip_for_test(me);
    tasks::hide_own_stack_from_registry(true);
    PLANTED.store(PLANTED_READY, Ordering::Release);
    while PLANTED.load(Ordering::Acquire) != PLANTED_FINISH {
        core::hint::black_box(&kept);
        if gc::mark_workers_running() > 0 {
            tasks::yield_now();
        }
        cpu::relax();
    }
    tasks::hide_own_stack_from_registry(false);
    gc::scan::skip_for_test(None);
    HIDDEN_NODE_INTACT.store(usize::from(graph::node_intact(kept)), Ordering::Relaxed);
    PLANTED.store(PLANTED_DONE, Ordering::Release);
}

static HIDDEN_NODE_INTACT: AtomicUsize = AtomicUsize::new(0);

fn gc_blind_stack(config: &Config<'_>) -> ! {
    require_verifier(config, "gc-blind-stack", 2);
    let last = percore::online_count() - 1;
    let spawn = tasks::Spawn { name: "hider", stack_bytes: 16 * 1024, pinned: Some(last), growable_from: None };
    if tasks::spawn(spawn, hider, 0).is_err()
        || !yield_until(10_000, || PLANTED.load(Ordering::Acquire) == PLANTED_READY)
    {
        kprintln!("gc-blind-stack: the hider did not start");
        exit::exit(exit::TEST_FAILED);
    }
    let before = gc::Findings::now();
    let mut unscanned = alloc::vec::Vec::new();
    let mut misses = alloc::vec::Vec::new();
    for _ in 0..PLANTED_CYCLES {
        gc::collect();
        unscanned.extend(gc::collector().take_unscanned::<Kernel>());
        misses.extend(gc::collector().take_misses::<Kernel>());
        if !unscanned.is_empty() {
            break;
        }
    }
    PLANTED.store(PLANTED_FINISH, Ordering::Release);
    yield_until(10_000, || PLANTED.load(Ordering::Acquire) == PLANTED_DONE);
    let found = gc::Findings::now().since(before);
    let named = unscanned.iter().find(|u| u.entry.name == "hider" && u.part == tricolor_gc::RootPart::Stack);
    match named {
        Some(u) => {
            kprintln!(
                "gc-blind-stack: caught: task '{}' stack [{:#x}, {:#x}) {}; {} findings, {} misses (first: {:?}), node {}",
                u.entry.name,
                u.entry.stack.lo,
                u.entry.stack.hi,
                u.point.describe(),
                found.unscanned,
                found.misses,
                misses.first().map(|m| m.cause),
                if HIDDEN_NODE_INTACT.load(Ordering::Relaxed) == 1 { "kept intact" } else { "LOST" }
            );
            let kept = HIDDEN_NODE_INTACT.load(Ordering::Relaxed) == 1;
            exit::exit(if kept && found.misses > 0 { exit::SUCCESS } else { exit::TEST_FAILED })
        }
        None => {
            kprintln!("gc-blind-stack: NOT caught: {PLANTED_CYCLES} cycles, no census finding for the hider's stack");
            exit::exit(exit::TEST_FAILED)
        }
    }
}

/// A kernel word outside the GC heap and `.gcroots`: the collector never scans it.
static UNSCANNED_WORD: AtomicUsize = AtomicUsize::new(0);

/// The planter: allocates a node and hides the only reference to it in [`UNSCANNED_WORD`] (a
/// plain store, no barrier), then exits, so no stack or register of its keeps a copy.
fn planter(_: usize) {
    if let Some(n) = node() {
        UNSCANNED_WORD.store(n.addr(), Ordering::Relaxed);
    }
    PLANTED.store(PLANTED_READY, Ordering::Release);
}

/// The loader: once a mark is under way and its own stack has been scanned, loads the hidden
/// word onto its stack and holds it until the cycle has ended (the verifier then finds it there;
/// loaded before the scan, the scan would have kept it).
fn loader(_: usize) {
    let c = gc::collector();
    while c.phase() != tricolor_gc::Phase::Mark || !gc::scan::current_scanned() {
        tasks::yield_now();
        cpu::relax();
    }
    let cycles = c.stats.cycles.get();
    let held = core::hint::black_box(UNSCANNED_WORD.load(Ordering::Relaxed));
    while c.stats.cycles.get() == cycles {
        core::hint::black_box(&held);
        tasks::yield_now();
        cpu::relax();
    }
    PLANTED.store(PLANTED_DONE, Ordering::Release);
}

fn gc_blind_memory(config: &Config<'_>) -> ! {
    require_verifier(config, "gc-blind-memory", 1);
    let last = percore::online_count() - 1;
    let spawn = |name, entry: fn(usize)| {
        tasks::spawn(tasks::Spawn { name, stack_bytes: 16 * 1024, pinned: Some(last), growable_from: None }, entry, 0)
    };
    if spawn("planter", planter).is_err() || !yield_until(10_000, || PLANTED.load(Ordering::Acquire) == PLANTED_READY) {
        kprintln!("gc-blind-memory: the planter did not run");
        exit::exit(exit::TEST_FAILED);
    }
    // This task must hold no copy of the hidden word when the mark starts (its stack is scanned
    // then): only test whether there is one, and read it after the cycle.
    if UNSCANNED_WORD.load(Ordering::Relaxed) == 0 || spawn("loader", loader).is_err() {
        kprintln!("gc-blind-memory: cannot plant the node");
        exit::exit(exit::TEST_FAILED);
    }
    let before = gc::Findings::now();
    let report = gc::collect_with_mark_delay(MARK_DELAY_US);
    yield_until(10_000, || PLANTED.load(Ordering::Acquire) == PLANTED_DONE);
    let misses = gc::collector().take_misses::<Kernel>();
    let found = gc::Findings::now().since(before);
    let header = UNSCANNED_WORD.load(Ordering::Relaxed) - core::mem::size_of::<usize>();
    let caught = misses.iter().find(|m| m.object == header);
    UNSCANNED_WORD.store(0, Ordering::Relaxed);
    match caught {
        Some(m) if m.cause == tricolor_gc::MissCause::UnreachableAtMarkStart => {
            kprintln!(
                "gc-blind-memory: caught: node {:#x} reached through stack word {:#x}: {} ({} misses in cycle {})",
                m.object,
                m.slot,
                m.cause.describe(),
                found.misses,
                report.cycle
            );
            exit::exit(exit::SUCCESS)
        }
        other => {
            kprintln!(
                "gc-blind-memory: NOT caught: {} misses, none for the hidden node {header:#x} as unreachable at mark start ({other:?})",
                found.misses
            );
            exit::exit(exit::TEST_FAILED)
        }
    }
}

/// How long the spinner keeps preemption off: past one stop-the-world deadline, short of two.
const SPIN_PAST_DEADLINE_MS: u64 = stw::STOP_TIMEOUT_MS + 500;

/// Keeps its core from reaching a safe point (preemption off) past the stop deadline.
fn spinner(_: usize) {
    let _no_preempt = tricolor_runtime::this_p().preempt.disable();
    PLANTED.store(PLANTED_READY, Ordering::Release);
    let until = cpu::counter() + cpu::counter_frequency() * SPIN_PAST_DEADLINE_MS / 1000;
    while cpu::counter() < until {
        cpu::relax();
    }
    PLANTED.store(PLANTED_DONE, Ordering::Release);
}

fn stw_retry(_: &Config<'_>) -> ! {
    if percore::online_count() < 2 {
        kprintln!("stw-retry: needs at least 2 cores");
        exit::exit(exit::BAD_CONFIG);
    }
    let last = percore::online_count() - 1;
    let spawn = tasks::Spawn { name: "spinner", stack_bytes: 16 * 1024, pinned: Some(last), growable_from: None };
    if tasks::spawn(spawn, spinner, 0).is_err()
        || !yield_until(10_000, || PLANTED.load(Ordering::Acquire) == PLANTED_READY)
    {
        kprintln!("stw-retry: the spinner did not start");
        exit::exit(exit::TEST_FAILED);
    }
    let before = stw::retries();
    let ((), times) = stw::stop_the_world_retrying(|| ());
    let retries = stw::retries() - before;
    kprintln!(
        "stw-retry: {retries} stop-the-world retries counted (the stop took {} ms to reach every safe point)",
        times.stop_ns / 1_000_000
    );
    if gc::is_ready() {
        print_stats("stw-retry");
    }
    exit::exit(if retries >= 1 { exit::SUCCESS } else { exit::TEST_FAILED })
}

/// The other core's cycle (`gc_masked_wait`) has returned.
static OTHER_CYCLE_DONE: AtomicBool = AtomicBool::new(false);
/// Its mark's delay: long enough for the driver to mask IRQs and queue for the lock meanwhile.
const OTHER_CYCLE_DELAY_US: u64 = 50_000;

fn other_cycle(_: usize) {
    gc::collect_with_mark_delay(OTHER_CYCLE_DELAY_US);
    // Release: the driver's Acquire load sees the cycle complete.
    OTHER_CYCLE_DONE.store(true, Ordering::Release);
}

/// A cycle runs on another core (spawned there, like a triggered cycle on an idle core); this
/// core masks IRQs and asks for a cycle of its own, so it waits for the cycle lock with no stop
/// or request interrupt able to reach it. The running cycle's flush handshake, stack scans and
/// mark-termination stop need this core all the same: the collector's wait must answer them
/// (`stw::park_if_requested`, `safepoint::run_here`), or the stop misses its deadline ten times
/// and panics (what a stress run's last `collect` did behind a cycle a mutator had triggered).
fn gc_masked_wait(_: &Config<'_>) -> ! {
    if percore::online_count() < 2 || !gc::is_ready() {
        kprintln!("gc-masked-wait: needs 2 cores and a collector");
        exit::exit(exit::BAD_CONFIG);
    }
    let (retries, parks) = (stw::retries(), stw::waiting_parks());
    {
        let _irqs = IrqGuard::unmask();
        let spawn = tasks::Spawn { name: "other-cycle", stack_bytes: 64 * 1024, pinned: Some(1), growable_from: None };
        if tasks::spawn(spawn, other_cycle, 0).is_err() || !yield_until(10_000, gc::cycle_running) {
            kprintln!("gc-masked-wait: the other core's cycle did not start");
            exit::exit(exit::TEST_FAILED);
        }
    }
    // IRQs masked from here: only the collector's wait can let the other cycle stop this core.
    let report = gc::collect();
    // Acquire pairs with the other task's Release store.
    let other_done = OTHER_CYCLE_DONE.load(Ordering::Acquire);
    let (retries, parks) = (stw::retries() - retries, stw::waiting_parks() - parks);
    kprintln!(
        "gc-masked-wait: the other core's cycle {}, this core's cycle {} done; parked from the masked wait {parks} times, {retries} stop retries, {} verifier misses",
        if other_done { "done" } else { "NOT done" },
        report.cycle,
        report.verifier_misses
    );
    let ok = other_done && parks >= 1 && retries == 0 && report.verifier_misses == 0;
    kprintln!("gc-masked-wait: {}", if ok { "ok" } else { "FAILED" });
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}

/// The root of [`gc_moved_cycle`]'s two nodes.
#[unsafe(link_section = ".gcroots")]
static MOVE_ROOT: tricolor_gc::GcSlot<graph::Node> = tricolor_gc::GcSlot::null();

/// A cycle that moves (`gc::try_collect_movable`): started on this task with the other cores
/// idle, it moves to one of them at its first drain and this task goes back to being a mutator
/// while it marks. As one, it moves the only heap pointer to a node B onto its own stack (already
/// scanned: the cycle scanned its starting task first) and clears the field, the hazard the
/// barrier's deletion half exists for. The verifier must find nothing lost, B must be intact after
/// the cycle, and the cycle must have moved.
fn gc_moved_cycle(config: &Config<'_>) -> ! {
    require_verifier(config, "gc-moved-cycle", 2);
    // IRQs on: the moved cycle's stops must be able to stop this core.
    let _irqs = IrqGuard::unmask();
    let (Some(a), Some(b)) = (node(), node()) else {
        kprintln!("gc-moved-cycle: cannot allocate");
        exit::exit(exit::TEST_FAILED)
    };
    a.set_left(Some(b));
    MOVE_ROOT.set::<Kernel>(Some(a));
    for _ in 0..64 {
        core::hint::black_box(node()); // garbage
    }
    let c = gc::collector();
    let before = gc::Findings::now();
    let moved_before = gc::MOVED_CYCLES.load(Ordering::Relaxed);
    let cycles = c.stats.cycles.get();
    let moved = gc::try_collect_movable();
    let marking = c.phase() == tricolor_gc::Phase::Mark;
    let held = core::hint::black_box(a.left());
    a.set_left(None);
    gc::wait_for_triggered_cycle();
    let found = gc::Findings::now().since(before);
    let counted = gc::MOVED_CYCLES.load(Ordering::Relaxed) - moved_before;
    let intact = held.is_some_and(graph::node_intact);
    kprintln!(
        "gc-moved-cycle: moved {moved:?} (counted {counted}), still marking after the move: {marking}, cycles {}, findings {} (misses {}), node {}",
        c.stats.cycles.get() - cycles,
        found.failures(),
        found.misses,
        if intact { "kept intact" } else { "LOST" }
    );
    MOVE_ROOT.set::<Kernel>(None);
    let ok =
        moved == Some(true) && counted == 1 && c.stats.cycles.get() == cycles + 1 && found.failures() == 0 && intact;
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}
