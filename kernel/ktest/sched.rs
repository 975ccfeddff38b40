//! Scheduler tests on the real machine: timer preemption switches tasks, disabling preemption
//! prevents it, and what a yield costs.

use super::unit;
use super::{ensure, spin_until};
use crate::registry::Entry;
use crate::{percore, smp, tasks};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_kernel::cmdline::Config;

crate::register!(TESTS);
const TESTS: &[Entry] = &[
    unit("preemption_switches_tasks", "timer ticks switch between tasks on one core", preemption_switches_tasks),
    unit(
        "preempt_disable_prevents_switches",
        "no switch while preemption is disabled; the tick is deferred",
        preempt_disable_prevents_switches,
    ),
    unit("yield_round_trip_cost", "a yield between two tasks takes a bounded time", yield_round_trip_cost),
    unit(
        "stop_the_world_parks_every_core",
        "stop-the-world parks every other core at a safe point",
        stop_the_world_parks_every_core,
    ),
    unit(
        "task_stack_grows_by_mapping",
        "a growable task stack maps pages on guard faults",
        task_stack_grows_by_mapping,
    ),
    unit("task_stack_high_water_mark", "a fixed task stack's painted high-water mark", task_stack_high_water_mark),
    unit(
        "stop_the_world_waits_for_preempt_disabled_window",
        "a stop waits until a preemption-disabled window ends",
        stop_waits_for_window,
    ),
];

const QUANTUM_US: u64 = 1000;

static PROGRESS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static SAW_OTHER_MOVE: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static STOP: AtomicBool = AtomicBool::new(false);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn reset() {
    PROGRESS.iter().chain(SAW_OTHER_MOVE.iter()).for_each(|c| c.store(0, Ordering::Relaxed));
    STOP.store(false, Ordering::Relaxed);
    FINISHED.store(0, Ordering::Relaxed);
}

/// Spins without ever yielding, counting how often the other spinner moved meanwhile: with both on
/// one core, that can only happen if this task was preempted.
fn spinner(me: usize) {
    let other = 1 - me;
    let mut last = PROGRESS[other].load(Ordering::Relaxed);
    while !STOP.load(Ordering::Relaxed) {
        PROGRESS[me].fetch_add(1, Ordering::Relaxed);
        let now = PROGRESS[other].load(Ordering::Relaxed);
        if now != last {
            SAW_OTHER_MOVE[me].fetch_add(1, Ordering::Relaxed);
            last = now;
        }
    }
    FINISHED.fetch_add(1, Ordering::Release);
}

/// The core the test tasks are pinned to: the last one (core 0 itself on a single core, where the
/// test's own flow is preempted along with them).
fn test_core() -> usize {
    percore::online_count() - 1
}

/// Starts ticks everywhere, runs `body` with IRQs enabled on the calling core, stops ticks, waits
/// for `tasks` finished tasks and reaps them.
fn with_ticks(tasks_to_finish: usize, body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    smp::run_on_all(|_| tasks::start_tick(QUANTUM_US));
    let irqs = IrqGuard::unmask();
    let result = body();
    STOP.store(true, Ordering::Relaxed);
    let finished = spin_until(5000, || FINISHED.load(Ordering::Acquire) == tasks_to_finish);
    tasks::stop_ticks();
    spin_until(50, || tasks::reap() > 0 || FINISHED.load(Ordering::Relaxed) == 0);
    drop(irqs);
    ensure!(finished, "test tasks did not finish");
    result
}

fn spawn_pinned(name: &'static str, entry: fn(usize), arg: usize) -> Result<(), String> {
    let options = tasks::Spawn { name, stack_bytes: 16 * 1024, pinned: Some(test_core()), growable_from: None };
    tasks::spawn(options, entry, arg).map(|_| ()).map_err(String::from)
}

fn preemption_switches_tasks(_: &Config<'_>) -> Result<(), String> {
    reset();
    with_ticks(2, || {
        spawn_pinned("spin-a", spinner, 0)?;
        spawn_pinned("spin-b", spinner, 1)?;
        let switched = spin_until(5000, || SAW_OTHER_MOVE.iter().all(|c| c.load(Ordering::Relaxed) >= 3));
        let seen = [SAW_OTHER_MOVE[0].load(Ordering::Relaxed), SAW_OTHER_MOVE[1].load(Ordering::Relaxed)];
        ensure!(switched, "two never-yielding tasks on core {} saw each other move {seen:?} times", test_core());
        Ok(())
    })
}

static WINDOW_OTHER_PROGRESS: AtomicU64 = AtomicU64::new(u64::MAX);
static WINDOW_DEFERRED: AtomicU64 = AtomicU64::new(0);

/// Holds preemption off for 30 quanta and records how far the other spinner got meanwhile.
fn holder(_: usize) {
    let p = tricolor_runtime::this_p();
    let deferred_before = p.preempt.deferred_ticks();
    let guard = p.preempt.disable();
    let before = PROGRESS[1].load(Ordering::Relaxed);
    spin_until(30, || false);
    // A loaded host can deschedule this vCPU for the whole 30 ms, so no tick lands in it: keep the
    // window open (up to 2 s) until one does, so the check tests deferral, not the host's load.
    spin_until(2000, || p.preempt.deferred_ticks() != deferred_before);
    let after = PROGRESS[1].load(Ordering::Relaxed);
    let deferred = p.preempt.deferred_ticks() - deferred_before;
    drop(guard);
    WINDOW_OTHER_PROGRESS.store(after - before, Ordering::Relaxed);
    WINDOW_DEFERRED.store(deferred, Ordering::Relaxed);
    spinner(0);
}

fn preempt_disable_prevents_switches(_: &Config<'_>) -> Result<(), String> {
    reset();
    WINDOW_OTHER_PROGRESS.store(u64::MAX, Ordering::Relaxed);
    with_ticks(2, || {
        spawn_pinned("spin-b", spinner, 1)?;
        spawn_pinned("holder", holder, 0)?;
        let done = spin_until(5000, || {
            WINDOW_OTHER_PROGRESS.load(Ordering::Relaxed) != u64::MAX && PROGRESS[0].load(Ordering::Relaxed) > 0
        });
        ensure!(done, "the holder task never finished its window");
        let during = WINDOW_OTHER_PROGRESS.load(Ordering::Relaxed);
        let deferred = WINDOW_DEFERRED.load(Ordering::Relaxed);
        ensure!(during == 0, "the other task advanced {during} times while preemption was disabled");
        ensure!(deferred > 0, "no tick was deferred in a window of up to 2 s at a 1 ms quantum");
        let switched = spin_until(5000, || SAW_OTHER_MOVE.iter().all(|c| c.load(Ordering::Relaxed) >= 2));
        ensure!(switched, "after re-enabling, the tasks never preempted each other");
        Ok(())
    })
}

const ROUND_TRIPS: u64 = 2000;
static YIELDS_DONE: AtomicU64 = AtomicU64::new(0);

fn ping_pong(_: usize) {
    for _ in 0..ROUND_TRIPS {
        YIELDS_DONE.fetch_add(1, Ordering::Relaxed);
        tasks::yield_now();
    }
    FINISHED.fetch_add(1, Ordering::Release);
}

fn yield_round_trip_cost(_: &Config<'_>) -> Result<(), String> {
    reset();
    YIELDS_DONE.store(0, Ordering::Relaxed);
    let start = cpu::counter();
    let core = test_core();
    if core == 0 {
        // On one core the test's own flow would take part in the round-robin; measure elsewhere.
        return Ok(());
    }
    spawn_pinned("ping", ping_pong, 0)?;
    spawn_pinned("pong", ping_pong, 1)?;
    let done = spin_until(10_000, || FINISHED.load(Ordering::Acquire) == 2);
    let ticks = cpu::counter() - start;
    spin_until(50, || tasks::reap() > 0);
    ensure!(done, "ping-pong tasks did not finish ({} yields)", YIELDS_DONE.load(Ordering::Relaxed));
    let switches = 2 * ROUND_TRIPS;
    let ns = ticks as u128 * 1_000_000_000 / cpu::counter_frequency() as u128 / switches as u128;
    log::info!(
        "context switch by yield: {ns} ns each ({switches} switches on core {core}, includes spawn and wake-up)"
    );
    Ok(())
}

static STW_COUNTERS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
const MAX: usize = tricolor_abi::MAX_CORES;

fn count_forever(core: usize) {
    while !STOP.load(Ordering::Relaxed) {
        STW_COUNTERS[core].fetch_add(1, Ordering::Relaxed);
    }
    FINISHED.fetch_add(1, Ordering::Release);
}

fn stop_the_world_parks_every_core(_: &Config<'_>) -> Result<(), String> {
    reset();
    let others: alloc::vec::Vec<usize> = (1..percore::online_count()).collect();
    with_ticks(others.len(), || {
        for &core in &others {
            let options =
                tasks::Spawn { name: "counter", stack_bytes: 16 * 1024, pinned: Some(core), growable_from: None };
            tasks::spawn(options, count_forever, core).map_err(String::from)?;
        }
        let moving = spin_until(5000, || others.iter().all(|&c| STW_COUNTERS[c].load(Ordering::Relaxed) > 0));
        ensure!(moving, "counter tasks never started");
        let (mut worst_ns, mut longest_stopped_ns) = (0, 0);
        for round in 0..20 {
            let snapshot = |c: usize| STW_COUNTERS[c].load(Ordering::Relaxed);
            let result = crate::stw::stop_the_world(|| {
                let before: alloc::vec::Vec<u64> = others.iter().map(|&c| snapshot(c)).collect();
                spin_until(2, || false);
                let frozen = others.iter().zip(&before).all(|(&c, &b)| snapshot(c) == b);
                let parked = others.iter().all(|&c| crate::stw::parked_sp(c) != 0);
                (frozen, parked)
            });
            let ((frozen, parked), times) =
                result.map_err(|e| alloc::format!("round {round}: cores {:#b} never stopped", e.missing))?;
            ensure!(parked, "round {round}: a core has no safe-point SP while stopped");
            ensure!(frozen, "round {round}: a counter task moved while the world was stopped");
            worst_ns = worst_ns.max(times.stop_ns);
            longest_stopped_ns = longest_stopped_ns.max(times.stopped_ns);
            let resumed = spin_until(2000, || others.iter().all(|&c| snapshot(c) > 0));
            ensure!(resumed, "round {round}: tasks did not resume");
        }
        log::info!(
            "stop-the-world: {} other cores parked in at most {worst_ns} ns over 20 stops (world held for up to {longest_stopped_ns} ns)",
            others.len()
        );
        Ok(())
    })
}

static IN_WINDOW: AtomicBool = AtomicBool::new(false);
static WINDOW_END: AtomicU64 = AtomicU64::new(0);

/// Holds preemption off for 20 ms (like a write barrier's window, only longer), then spins.
fn window_holder(_: usize) {
    let guard = tricolor_runtime::this_p().preempt.disable();
    IN_WINDOW.store(true, Ordering::Release);
    spin_until(20, || false);
    WINDOW_END.store(cpu::counter(), Ordering::Release);
    drop(guard);
    while !STOP.load(Ordering::Relaxed) {
        tricolor_arch::cpu::relax();
    }
    FINISHED.fetch_add(1, Ordering::Release);
}

fn stop_waits_for_window(_: &Config<'_>) -> Result<(), String> {
    if percore::online_count() < 2 {
        return Ok(()); // needs a second core to hold the window
    }
    reset();
    IN_WINDOW.store(false, Ordering::Relaxed);
    WINDOW_END.store(0, Ordering::Relaxed);
    with_ticks(1, || {
        spawn_pinned("window", window_holder, 0)?;
        ensure!(spin_until(5000, || IN_WINDOW.load(Ordering::Acquire)), "the window task never started");
        let (stopped_at, _) = crate::stw::stop_the_world(cpu::counter).map_err(|e| {
            let states: alloc::vec::Vec<_> = (0..percore::online_count())
                .map(|c| {
                    percore::p_of(c).map(|p| {
                        (
                            p.preempt.depth(),
                            p.preempt.is_pending(),
                            crate::irq::count(c),
                            tasks::IDLE_LOOPS[c].load(Ordering::Relaxed),
                            p.current_ptr() as usize,
                        )
                    })
                })
                .collect();
            alloc::format!("cores {:#b} never stopped; (depth, pending, irqs) per core: {states:?}", e.missing)
        })?;
        let window_end = WINDOW_END.load(Ordering::Acquire);
        ensure!(window_end != 0, "the world stopped while the holder was still in its window");
        ensure!(stopped_at >= window_end, "stopped at {stopped_at}, before the window ended at {window_end}");
        Ok(())
    })
}

/// Recurses `depth` frames of 512 bytes deep.
#[inline(never)]
fn recurse_to(depth: usize) -> usize {
    let frame = core::hint::black_box([depth as u8; 512]);
    if depth == 0 {
        0
    } else {
        recurse_to(depth - 1) + frame[depth % 512] as usize
    }
}

static MAPPED_AFTER: AtomicUsize = AtomicUsize::new(0);
static MAPPED_BEFORE: AtomicUsize = AtomicUsize::new(0);

fn grower(depth: usize) {
    let task = tricolor_runtime::current_task().expect("a task is running");
    let reservation = task.reservation().expect("spawned growable");
    MAPPED_BEFORE.store(reservation.mapped_bytes(), Ordering::Relaxed);
    core::hint::black_box(recurse_to(depth));
    MAPPED_AFTER.store(reservation.mapped_bytes(), Ordering::Relaxed);
    FINISHED.fetch_add(1, Ordering::Release);
}

fn task_stack_grows_by_mapping(_: &Config<'_>) -> Result<(), String> {
    reset();
    let grown_before = tasks::GROWN_PAGES.load(Ordering::Relaxed);
    let options =
        tasks::Spawn { name: "grower", stack_bytes: 512 * 1024, pinned: Some(test_core()), growable_from: Some(4096) };
    tasks::spawn(options, grower, 200).map_err(String::from)?;
    let irqs = IrqGuard::unmask();
    let done = spin_until(5000, || {
        tasks::yield_now();
        FINISHED.load(Ordering::Acquire) == 1
    });
    drop(irqs);
    spin_until(50, || tasks::reap() > 0);
    ensure!(done, "the growing task did not finish");
    let (before, after) = (MAPPED_BEFORE.load(Ordering::Relaxed), MAPPED_AFTER.load(Ordering::Relaxed));
    let grown = tasks::GROWN_PAGES.load(Ordering::Relaxed) - grown_before;
    log::info!("growable stack: {before} bytes mapped at start, {after} after 200 frames of 512 bytes ({grown} pages mapped on faults)");
    ensure!(before == 4096, "started with {before} bytes mapped");
    ensure!(after >= 100 * 1024, "only {after} bytes mapped after a 100 KiB-deep recursion");
    ensure!(grown as usize * 4096 == after - before, "{grown} pages grown but {} bytes added", after - before);
    Ok(())
}

fn shallow_task(depth: usize) {
    core::hint::black_box(recurse_to(depth));
    FINISHED.fetch_add(1, Ordering::Release);
}

fn task_stack_high_water_mark(_: &Config<'_>) -> Result<(), String> {
    reset();
    let options =
        tasks::Spawn { name: "painted", stack_bytes: 32 * 1024, pinned: Some(test_core()), growable_from: None };
    let task = tasks::spawn(options, shallow_task, 20).map_err(String::from)?;
    let irqs = IrqGuard::unmask();
    let done = spin_until(5000, || {
        tasks::yield_now();
        FINISHED.load(Ordering::Acquire) == 1 && tasks::stack_high_water(&task).is_some()
    });
    drop(irqs);
    ensure!(done, "the task did not finish");
    let used = tasks::stack_high_water(&task).unwrap_or(0);
    drop(task);
    spin_until(50, || tasks::reap() > 0);
    ensure!((20 * 512..32 * 1024).contains(&used), "high-water mark {used} bytes for 20 frames of 512 bytes in 32 KiB");
    Ok(())
}
