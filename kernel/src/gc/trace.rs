//! Per-cycle measurements around the collector, without changing it: `gc::cycle` calls [`begin`]
//! and [`end`], the platform's stop-the-world and stack walk report what they see
//! ([`on_stop_the_world`], [`note_stack_range`]) and mark workers report their drain time
//! ([`add_worker_mark`]). From those, each cycle gets a [`CycleTrace`]: printed as a gctrace line
//! when `gc.trace=1` (or the console's `gctrace on`), kept as the last cycle for `stats`, and
//! folded into a pause histogram for the dashboard. README.md ("gc.trace") says field by field
//! where each number comes from.
//!
//! Only one cycle runs at a time (gc's cycle lock), so the per-cycle accumulators below have one
//! writer per cycle; they are atomics so that mark workers on other cores can add to them.

use super::Kernel;
use crate::sync::Lock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tricolor_arch::cpu;
use tricolor_gc::{CycleReport, Phase, Platform};
use tricolor_kernel::gctrace::CycleTrace;
use tricolor_kernel::screen::layout::{pause_bucket, PAUSE_BUCKETS};

// Ordering for every atomic in this module: Relaxed. They are statistics; the cycle lock (Acquire
// and Release in tricolor_gc::CycleLock, gc::CYCLES) orders one cycle's writes before the next
// cycle's reads, and a reader elsewhere (stats, the dashboard) may see a value one update old.

/// Print a gctrace line per cycle.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Set when the current cycle's mark termination began (its first stop-the-world while marking).
static TERM_STARTED: AtomicBool = AtomicBool::new(false);
/// Heap in use when mark termination began.
static TERM_START_HEAP: AtomicU64 = AtomicU64::new(0);
/// Stack bytes the mark setup scanned this cycle.
static STACK_BYTES: AtomicU64 = AtomicU64::new(0);
/// Mark-worker drain time this cycle, all cores.
static WORKER_NS: AtomicU64 = AtomicU64::new(0);
/// Idle cores' drain time this cycle (`gc::idle_mark`), all cores.
static IDLE_NS: AtomicU64 = AtomicU64::new(0);
/// GC CPU time of all cycles (the gctrace percentage's numerator).
static TOTAL_GC_CPU_NS: AtomicU64 = AtomicU64::new(0);
/// Cycles started on request (`gc`, tests) and by the pacer (heap growth, a full heap, torture).
static FORCED: AtomicU64 = AtomicU64::new(0);
static PACED: AtomicU64 = AtomicU64::new(0);
/// Pauses by [`pause_bucket`].
static PAUSES: [AtomicU64; PAUSE_BUCKETS] = [const { AtomicU64::new(0) }; PAUSE_BUCKETS];
/// The last cycle's trace.
static LAST: Lock<Option<CycleTrace>> = Lock::new(None);
/// Bytes of the `.gcroots` section (set at init).
static GLOBAL_BYTES: AtomicU64 = AtomicU64::new(0);

/// Turns the gctrace lines on or off.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether gctrace lines are printed.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The global root bytes every cycle scans.
pub fn set_global_bytes(bytes: u64) {
    GLOBAL_BYTES.store(bytes, Ordering::Relaxed);
}

/// The platform is stopping the world: if the collector is marking, this is mark termination.
pub fn on_stop_the_world() {
    let Some(c) = super::COLLECTOR.get() else { return };
    if c.phase() == Phase::Mark && !TERM_STARTED.swap(true, Ordering::Relaxed) {
        TERM_START_HEAP.store(c.heap.in_use() as u64, Ordering::Relaxed);
    }
}

/// The platform handed the collector a stack range to scan.
pub fn note_stack_range(bytes: usize) {
    if super::COLLECTOR.get().is_some_and(|c| c.phase() == Phase::Mark) {
        STACK_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A mark worker drained grey objects for `ns`.
pub fn add_worker_mark(ns: u64) {
    WORKER_NS.fetch_add(ns, Ordering::Relaxed);
}

/// An idle core drained grey objects for `ns` (Go's idle mark workers, gctrace's `g`).
pub fn add_idle_mark(ns: u64) {
    IDLE_NS.fetch_add(ns, Ordering::Relaxed);
}

/// What [`begin`] saw.
pub struct Start {
    t0: u64,
    heap: u64,
    goal: u64,
    mark_setup_ns: u64,
    concurrent_ns: u64,
    termination_ns: u64,
    /// When the world restarted after mark setup (the mark hook ran).
    marking_from: u64,
}

/// A cycle is about to start on this core (the cycle lock is held).
pub fn begin() -> Start {
    let c = super::collector();
    TERM_STARTED.store(false, Ordering::Relaxed);
    STACK_BYTES.store(0, Ordering::Relaxed);
    WORKER_NS.store(0, Ordering::Relaxed);
    IDLE_NS.store(0, Ordering::Relaxed);
    let t0 = cpu::uptime_ns();
    Start {
        t0,
        heap: c.heap.in_use() as u64,
        goal: c.heap_goal() as u64,
        mark_setup_ns: c.stats.ns_mark_setup.get(),
        concurrent_ns: c.stats.ns_concurrent_mark.get(),
        termination_ns: c.stats.ns_mark_termination.get(),
        marking_from: t0,
    }
}

impl Start {
    /// The world restarted after mark setup (called from the collector's mark hook).
    pub fn marking(&mut self) {
        self.marking_from = cpu::uptime_ns();
    }
}

/// The cycle `report` (started by [`begin`]) is over: account it, and print it if enabled.
pub fn end(start: Start, report: &CycleReport, forced: bool) {
    let c = super::collector();
    let now = cpu::uptime_ns();
    let procs = <Kernel as Platform>::core_count() as u64;
    let setup_and_sweep_term = start.marking_from.saturating_sub(start.t0);
    // Sweep termination runs on the collecting core beside the mutators (Go's runs with the world
    // stopped): only the mark setup stop-the-world (stopping included) costs every core.
    let setup_stw = (c.stats.ns_mark_setup.get() - start.mark_setup_ns).min(setup_and_sweep_term);
    let sweep_term = setup_and_sweep_term - setup_stw;
    let concurrent = c.stats.ns_concurrent_mark.get() - start.concurrent_ns;
    let termination = c.stats.ns_mark_termination.get() - start.termination_ns;
    let workers = WORKER_NS.load(Ordering::Relaxed);
    // The collecting task's own concurrent mark: an assist when a mutator's allocation started the
    // cycle (it pays for its allocation), background work when the cycle was asked for.
    let (assist, background) = if forced { (0, concurrent + workers) } else { (concurrent, workers) };
    let idle = IDLE_NS.load(Ordering::Relaxed);
    let cpu_ns = [sweep_term + setup_stw * procs, assist, background, idle, termination * procs];
    let gc_cpu: u64 = cpu_ns.iter().sum();
    let total = TOTAL_GC_CPU_NS.fetch_add(gc_cpu, Ordering::Relaxed) + gc_cpu;
    let cpu_percent = (total as u128 * 100 / (now as u128 * procs as u128).max(1)) as u64;
    let heap_at_term = if TERM_STARTED.load(Ordering::Relaxed) {
        TERM_START_HEAP.load(Ordering::Relaxed)
    } else {
        // `off` mode: marking and its termination were the mark setup pause.
        start.heap
    };
    let trace = CycleTrace {
        cycle: report.cycle,
        start_ns: start.t0,
        cpu_percent,
        clock_ns: [setup_and_sweep_term, concurrent, termination],
        cpu_ns,
        heap_bytes: [start.heap, heap_at_term, report.marked_bytes],
        goal_bytes: start.goal,
        stack_bytes: STACK_BYTES.load(Ordering::Relaxed),
        global_bytes: GLOBAL_BYTES.load(Ordering::Relaxed),
        procs,
        forced,
    };
    for pause in report.pause_ns.into_iter().filter(|&p| p > 0) {
        PAUSES[pause_bucket(pause)].fetch_add(1, Ordering::Relaxed);
    }
    (if forced { &FORCED } else { &PACED }).fetch_add(1, Ordering::Relaxed);
    *LAST.lock() = Some(trace);
    if enabled() {
        crate::kprintln!("{trace}");
    }
}

/// The last cycle's trace.
pub fn last() -> Option<CycleTrace> {
    *LAST.lock()
}

/// Pauses so far, by [`pause_bucket`].
pub fn pause_histogram() -> [u64; PAUSE_BUCKETS] {
    core::array::from_fn(|i| PAUSES[i].load(Ordering::Relaxed))
}

/// Cycles started on request and by the pacer.
pub fn forced_and_paced() -> (u64, u64) {
    (FORCED.load(Ordering::Relaxed), PACED.load(Ordering::Relaxed))
}
