//! GC stress suites, selected with `suite=<name>` (and `seed=`, `suite.cycles=`, `gc.torture=`):
//! a mutator task on every core hammers the collector with one workload while cycles run, and
//! with `gc.verify=on` every cycle, whoever starts it, is followed by a stop-the-world integrity
//! check:
//!
//! - the verifier's re-mark (`gc.verify=on`) reports reachable objects the concurrent mark missed;
//! - the suite walks everything reachable from its roots and recomputes payload checksums;
//! - every freed byte of the heap must still hold the poison pattern.
//!
//! Without `gc.verify=on` a suite is a benchmark: the run ends with one `BENCH gc_pause` line per
//! cycle and a `BENCH gc_summary` line (GC time, stop-the-world time, elapsed time).
//!
//! A failure prints the seed and the command that replays the run. With
//! `gc.mode=unsafe-off-during-mark` the run is the negative control: it succeeds when the checks
//! catch the broken barrier, and stops at the first catch.

use crate::gc::{self, Kernel};
use crate::registry::{Entry, Kind, Run};
use crate::workload::{self, Length, Repeat, Workload};
use crate::{exit, kprintln, tasks};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_gc::{BarrierMode, CycleReport};
use tricolor_kernel::cmdline::Config;

/// One `suite=` entry per workload: `$run` drives `$workload`.
macro_rules! suites {
    ($($run:ident => $workload:path),* $(,)?) => {
        $(fn $run(config: &Config<'_>) -> ! {
            run(&$workload, config)
        })*
        const SUITES: &[Entry] = &[$(Entry { kind: Kind::Suite, name: $workload.name, about: $workload.about, run: Run::Exit($run) }),*];
    };
}

suites! {
    graph => workload::graph::WORKLOAD,
    gcbench => workload::gcbench::WORKLOAD,
    gcbench_quick => workload::gcbench::WORKLOAD_QUICK,
    churn => workload::churn::WORKLOAD,
    large => workload::large::WORKLOAD,
    framebuffer => workload::framebuffer::WORKLOAD,
}
crate::register!(SUITES);

/// Failures found by the checks after each cycle, and the cycles checked.
struct Tally {
    cycles: AtomicU64,
    misses: AtomicU64,
    /// Stacks the root census found unscanned.
    unscanned: AtomicU64,
    corrupt: AtomicU64,
    poison: AtomicU64,
    reachable: AtomicU64,
}

static TALLY: Tally = Tally {
    cycles: AtomicU64::new(0),
    misses: AtomicU64::new(0),
    unscanned: AtomicU64::new(0),
    corrupt: AtomicU64::new(0),
    poison: AtomicU64::new(0),
    reachable: AtomicU64::new(0),
};

impl Tally {
    fn failures(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
            + self.unscanned.load(Ordering::Relaxed)
            + self.corrupt.load(Ordering::Relaxed)
            + self.poison.load(Ordering::Relaxed)
            + workload::seen().0
    }
}

/// The running suite's workload (for the after-cycle check, which is a plain `fn`).
static CURRENT: AtomicPtr<Workload> = AtomicPtr::new(core::ptr::null_mut());

fn current() -> &'static Workload {
    // SAFETY: `run` stores a pointer to one of the `'static` workloads before installing the
    // check and never clears it; the check is the only reader.
    unsafe { &*CURRENT.load(Ordering::Acquire) }
}

/// Every cycle's pauses: (cycle, mark setup ns, longest mark termination ns), for the pause
/// distribution the experiments plot.
static PAUSES: spin::Mutex<alloc::vec::Vec<CycleReport>> = spin::Mutex::new(alloc::vec::Vec::new());
/// Whether the after-cycle integrity checks run (`gc.verify=on`). Without them a suite is a
/// benchmark: nothing but the collector stops the world.
static CHECKS: AtomicBool = AtomicBool::new(true);

/// Runs after every cycle (installed with `gc::set_after_cycle`), holding the cycle lock.
fn after_cycle(report: &CycleReport) {
    PAUSES.lock().push(*report);
    if !CHECKS.load(Ordering::Relaxed) {
        TALLY.cycles.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let suite = current();
    // The collector's stop (it retries a missed deadline before reporting a hang).
    let (census, poisoned) =
        <Kernel as tricolor_gc::Platform>::stop_the_world(|| ((suite.check)(), gc::collector().heap.check_poisoned()));
    let (explained, unscanned) = gc::explain_findings();
    let misses = report.verifier_misses.max(explained) as u64;
    let unscanned = report.unscanned.max(unscanned) as u64;
    TALLY.cycles.fetch_add(1, Ordering::Relaxed);
    TALLY.misses.fetch_add(misses, Ordering::Relaxed);
    TALLY.unscanned.fetch_add(unscanned, Ordering::Relaxed);
    TALLY.corrupt.fetch_add(census.corrupt as u64, Ordering::Relaxed);
    TALLY.reachable.fetch_max(census.reachable as u64, Ordering::Relaxed);
    if let Err(addr) = poisoned {
        TALLY.poison.fetch_add(1, Ordering::Relaxed);
        log::error!("stress: freed memory at {addr:#x} is not poisoned");
    }
    log::info!(
        "stress cycle {}: marked {} KiB, freed {} KiB, pauses {} / {} ns, misses {misses}, unscanned {unscanned}, reachable {}, corrupt {}",
        report.cycle,
        report.marked_bytes >> 10,
        report.freed_bytes >> 10,
        report.pause_ns[0],
        report.pause_ns[1],
        census.reachable,
        census.corrupt
    );
}

/// The window between mark start and the first scan in the driver's cycles: mutators get time to
/// rewire grey objects' children, which is what makes a barrier bug show (see
/// `gc::collect_with_mark_delay`).
const MARK_DELAY_US: u64 = 2000;
/// The command line that replays this run (`cargo xtask stress --replay`).
fn replay_line(config: &Config<'_>, suite: &Workload) -> alloc::string::String {
    alloc::format!(
        "suite={} seed={} suite.cycles={} gc.mode={} gc.heap={}K gc.wbbuf={} gc.percent={} gc.torture={} gc.verify={}",
        suite.name,
        config.seed,
        config.suite_cycles,
        config.gc_mode.name(),
        config.gc_heap >> 10,
        config.gc_wbbuf,
        config.gc_percent,
        config.gc_torture,
        if config.gc_verify { "on" } else { "off" }
    )
}

/// Runs `suite` as a stress suite (its mutator on every core, the checks after every cycle) and
/// exits with its verdict.
fn run(suite: &'static Workload, config: &Config<'_>) -> ! {
    if !gc::is_ready() {
        kprintln!("stress: no collector (see the boot log)");
        exit::exit(exit::TEST_FAILED);
    }
    let negative = config.gc_mode == BarrierMode::UnsafeOffDuringMark;
    if negative && !suite.exercises_barrier {
        kprintln!(
            "stress: suite {} never overwrites pointers to old objects: no negative control possible",
            suite.name
        );
        exit::exit(exit::BAD_CONFIG);
    }
    kprintln!("stress: suite {} ({}), {}", suite.name, suite.about, replay_line(config, suite));
    if !config.gc_verify {
        kprintln!("stress: gc.verify=off: no integrity checks, this run is a measurement");
    }
    CURRENT.store(core::ptr::from_ref(suite).cast_mut(), Ordering::Release);
    CHECKS.store(config.gc_verify, Ordering::Relaxed);
    PAUSES.lock().clear();
    gc::set_after_cycle(Some(after_cycle));
    let before = gc::Findings::now();
    let start = cpu::counter();
    let (mutators_end, run_stats);
    let cores = {
        // The boot flow runs masked; IRQs on before the mutators start (a cycle one of them
        // triggers must be able to stop this core at once), and the drive waits for ticks and wakes.
        let _irqs = IrqGuard::unmask();
        let cores = match workload::start(&[suite], config, Repeat::Once) {
            Ok(cores) => cores,
            Err(why) => {
                kprintln!("stress: suite {} cannot start: {why}", suite.name);
                exit::exit(exit::TEST_FAILED);
            }
        };
        drive(config, suite, negative);
        mutators_end = workload::last_finish_counter();
        // A cycle the mutators' allocations triggered runs on a task of its own and may outlast
        // them: let it finish (IRQs still on, so it can stop this core) before the totals.
        gc::wait_for_triggered_cycle();
        run_stats = gc::collector().stats::<Kernel>();
        if config.timeline_dump {
            // The measured run ends with the last mutator's return; dumped now, before the cycle
            // below (with no mutator left, its mark workers and the idle tasks take turns by the
            // hundred thousand and would overwrite the run in the rings).
            crate::timeline::dump(start, mutators_end.max(start));
        }
        workload::stop();
        // A mutator stopped just now may have triggered one more cycle before it returned.
        gc::wait_for_triggered_cycle();
        tasks::stop_ticks();
        cores
    };
    // One more checked cycle with every mutator gone: nothing is in flight, so it must be clean.
    if !(negative && TALLY.failures() > 0) {
        gc::collect();
    }
    gc::set_after_cycle(None);
    let finish = (suite.finish)();
    let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / cpu::counter_frequency() as u128) as u64;
    let elapsed_ns = ns(cpu::counter() - start);
    // From the start to the last mutator's return (0 if one never returned: a `Cycles` suite's
    // mutators are stopped, and `stop` sets the time they saw it).
    let run_ns = ns(mutators_end.saturating_sub(start));
    let run_gc_ns =
        run_stats.ns_mark_setup + run_stats.ns_concurrent_mark + run_stats.ns_mark_termination + run_stats.ns_sweep;
    report(config, suite, cores, negative, finish, (elapsed_ns, run_ns, run_gc_ns), gc::Findings::now().since(before))
}

/// Longest a suite may wait for cycles it does not start itself (torture mode, GCBench) with no
/// progress; xtask's per-run timeout is the outer bound.
const IDLE_TIMEOUT_MS: u64 = 60_000;

/// Runs (or waits for) the suite's collections.
fn drive(config: &Config<'_>, suite: &Workload, negative: bool) {
    let caught = || negative && TALLY.failures() > 0;
    match suite.length {
        Length::Cycles if config.gc_torture == 0 => {
            for _ in 0..config.suite_cycles {
                tasks::yield_until(5, || false);
                gc::collect_with_mark_delay(MARK_DELAY_US);
                if caught() {
                    break;
                }
            }
        }
        Length::Cycles => {
            // Torture mode: the mutators' allocations start every cycle.
            let mut seen = TALLY.cycles.load(Ordering::Relaxed);
            while TALLY.cycles.load(Ordering::Relaxed) < config.suite_cycles && !caught() {
                tasks::yield_until(IDLE_TIMEOUT_MS, || TALLY.cycles.load(Ordering::Relaxed) != seen);
                let now = TALLY.cycles.load(Ordering::Relaxed);
                if now == seen {
                    kprintln!("stress: no cycle in {IDLE_TIMEOUT_MS} ms (gc.torture={})", config.gc_torture);
                    break;
                }
                seen = now;
            }
        }
        Length::Work => {
            // Between looks the driver sleeps until the core's next interrupt (the tick) instead of
            // spinning: once this core's mutator is done, a spinning driver would run for as long
            // as the slowest other core, and under -icount its instructions would count in the
            // run's (the barrier-overhead measurement reads them). It counts as idle meanwhile
            // (`tasks::wait_as_idle`), so a cycle beside it here takes nothing from the program.
            tasks::wait_as_idle(|| workload::all_finished() || caught());
        }
    }
}

fn report(
    config: &Config<'_>,
    suite: &Workload,
    cores: usize,
    negative: bool,
    finish: Result<(), alloc::string::String>,
    (elapsed_ns, run_ns, run_gc_ns): (u64, u64, u64),
    findings: gc::Findings,
) -> ! {
    // Every cycle counts: the after-cycle checks tally each cycle they see, and the collector's
    // own counters cover any cycle they might not (the larger of the two is reported).
    TALLY.misses.fetch_max(findings.misses, Ordering::Relaxed);
    TALLY.unscanned.fetch_max(findings.unscanned, Ordering::Relaxed);
    let stats = gc::collector().stats::<Kernel>();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    kprintln!(
        "stress stats: cycles {} (torture {}), pauses {} max {} ns mean {} ns, barriers {} flushes {}, allocs {} refused {}, stop-the-world retries {}, {} us",
        stats.cycles,
        gc::TORTURE_CYCLES.load(Ordering::Relaxed),
        stats.pauses,
        stats.pause_max_ns,
        stats.pause_mean_ns,
        stats.barriers,
        stats.flushes,
        stats.allocs,
        workload::seen().1,
        findings.stw_retries,
        elapsed_ns / 1000
    );
    for r in PAUSES.lock().iter() {
        // The longer of the two pauses names the core that reached its safe point last.
        let longer = if r.pause_ns[0] >= r.pause_ns[1] { &r.safepoint[0] } else { &r.safepoint[1] };
        kprintln!(
            "BENCH gc_pause suite={} cycle={} setup_ns={} termination_ns={} setup_ttsp_ns={} termination_ttsp_ns={} last_core={} last_pc={:#x} last_site={} heap_goal={} heap_trigger={} started_at={} peak_heap={} restarts={} mark_ns={} mark_wait_ns={} wait_stacks_ns={} term_phases={}/{}/{}/{}",
            suite.name,
            r.cycle,
            r.pause_ns[0],
            r.pause_ns[1],
            r.safepoint[0].to_safepoint_ns,
            r.safepoint[1].to_safepoint_ns,
            longer.last_core,
            longer.last_pc,
            if longer.deferred { "deferred" } else { "interrupted" },
            r.heap_goal,
            r.heap_trigger,
            r.started_at,
            r.peak_heap,
            r.mark_restarts,
            r.mark_ns,
            r.mark_wait_ns,
            r.mark_wait_stacks_ns,
            r.termination_phases_ns[0],
            r.termination_phases_ns[1],
            r.termination_phases_ns[2],
            r.termination_phases_ns[3]
        );
    }
    let gc_ns = stats.ns_mark_setup + stats.ns_concurrent_mark + stats.ns_mark_termination + stats.ns_sweep;
    kprintln!(
        "BENCH gc_summary suite={} cores={cores} percent={} heap_mib={} elapsed_ns={} run_ns={run_ns} run_gc_ns={run_gc_ns} gc_ns={gc_ns} stw_ns={} cycles={} pause_max_ns={} allocs={} assists={} assist_bytes={} assist_ns={} barriers={} flushes={} handoffs={}",
        suite.name,
        config.gc_percent,
        config.gc_heap >> 20,
        elapsed_ns,
        stats.pauses * stats.pause_mean_ns,
        stats.cycles,
        stats.pause_max_ns,
        stats.allocs,
        stats.assists,
        stats.assist_bytes,
        stats.ns_assist,
        stats.barriers,
        stats.flushes,
        stats.handoffs
    );
    if let Err(why) = &finish {
        kprintln!("stress: end-of-run check failed: {why}");
    }
    let failures = TALLY.failures() + u64::from(finish.is_err());
    let verdict = match (negative, failures) {
        (false, 0) => "clean",
        (false, _) => "FAILED",
        (true, 0) => "NOT-CAUGHT",
        (true, _) => "caught",
    };
    kprintln!(
        "stress result: suite={} seed={} mode={} cores={cores} torture={} cycles={} misses={} unscanned={} corrupt={} mutator_corrupt={} poison={} stw_retries={} finish={} peak_reachable={} handoffs={} verdict={verdict}",
        suite.name,
        config.seed,
        config.gc_mode.name(),
        config.gc_torture,
        load(&TALLY.cycles),
        load(&TALLY.misses),
        load(&TALLY.unscanned),
        load(&TALLY.corrupt),
        workload::seen().0,
        load(&TALLY.poison),
        findings.stw_retries,
        if finish.is_ok() { "ok" } else { "failed" },
        load(&TALLY.reachable),
        stats.handoffs
    );
    if verdict == "FAILED" || verdict == "NOT-CAUGHT" {
        kprintln!("stress: replay: cargo xtask stress --replay \"{}\" --smp {cores}", replay_line(config, suite));
    }
    let ok = matches!(verdict, "clean" | "caught") && load(&TALLY.cycles) > 0;
    exit::exit(if ok { exit::SUCCESS } else { exit::TEST_FAILED })
}
