//! The per-core event recorder on the machine: a collection cycle leaves the transitions it
//! should on every core, the totals account for every tick, and what one transition costs.

use super::{bench, ensure, unit};
use crate::registry::Entry;
use crate::{exit, gc, kprintln, percore, smp, tasks, timeline};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_kernel::cmdline::Config;
use tricolor_timeline::State;

crate::register!(TESTS);
const TESTS: &[Entry] = &[
    unit(
        "timeline_records_a_cycle",
        "a collection records mark, pause and sweep on its core, a pause on every other, and returns to the state before",
        timeline_records_a_cycle,
    ),
    unit(
        "timeline_idle_core_cycle_is_idle_marking",
        "a triggered cycle's task alone on its core records its drains as idle-mark and its sweep chunks as idle-sweep; the same cycle on a task of another name records neither",
        timeline_idle_core_cycle_is_idle_marking,
    ),
    unit(
        "timeline_totals_cover_every_tick",
        "each core's recorder accounts for every counter tick since boot, in exactly one state",
        timeline_totals_cover_every_tick,
    ),
    bench("bench-timeline", "instructions per recorded transition (BENCH timeline line; run under -icount)", bench_timeline),
    bench(
        "bench-turns",
        "how fairly -icount shares the machine between cores: the same loop on every core (BENCH turns lines; with tick.slice=)",
        bench_turns,
    ),
    bench(
        "bench-stalls",
        "the stall detector (tick.slice=): a core whose registers stay put is reported, a computing one is not (STALLS lines)",
        bench_stalls,
    ),
];

/// Every state core `core` entered since its `since`-th event.
fn states_since(core: usize, since: u64) -> Vec<State> {
    let s = timeline::snapshot(core);
    let skip = since.saturating_sub(s.first) as usize;
    s.events.iter().skip(skip).map(|e| e.state).collect()
}

fn timeline_records_a_cycle(_: &Config<'_>) -> Result<(), String> {
    ensure!(gc::is_ready(), "needs the collector");
    let me = percore::id();
    let cores = percore::online_count();
    let before: Vec<u64> = (0..cores).map(timeline::recorded).collect();
    let state_before = timeline::current();
    {
        // IRQs on: the other cores' stop requests and this core's own interrupts go on as usual.
        let _irqs = IrqGuard::unmask();
        gc::collect();
    }
    let mine = states_since(me, before[me]);
    for state in [State::Mark, State::Pause, State::Sweep] {
        ensure!(mine.contains(&state), "core {me} never entered {} during a cycle: {mine:?}", state.name());
    }
    ensure!(
        timeline::current() == state_before,
        "core {me} is in {} after the cycle, was in {} before",
        timeline::current().name(),
        state_before.name()
    );
    for core in (0..cores).filter(|&c| c != me) {
        let theirs = states_since(core, before[core]);
        ensure!(theirs.contains(&State::Pause), "core {core} recorded no pause during a cycle: {theirs:?}");
    }
    Ok(())
}

/// Set by [`cycle_task`] once its cycle is done.
static CYCLE_TASK_DONE: AtomicBool = AtomicBool::new(false);

fn cycle_task(_: usize) {
    gc::collect();
    // Release: pairs with the driver's Acquire load; the cycle's events are recorded before.
    CYCLE_TASK_DONE.store(true, Ordering::Release);
}

/// Runs one cycle on a task named `name` pinned to `core` (nothing else of the test's there), and
/// returns the states `core` entered meanwhile.
fn cycle_on_task(name: &'static str, core: usize) -> Result<Vec<State>, String> {
    CYCLE_TASK_DONE.store(false, Ordering::Relaxed);
    let before = timeline::recorded(core);
    let _irqs = IrqGuard::unmask();
    let spawn = tasks::Spawn { name, stack_bytes: 64 * 1024, pinned: Some(core), growable_from: None };
    tasks::spawn(spawn, cycle_task, 0).map_err(String::from)?;
    tasks::wake_others();
    ensure!(
        tasks::yield_until(10_000, || CYCLE_TASK_DONE.load(Ordering::Acquire)),
        "the cycle on task {name} (core {core}) did not finish"
    );
    Ok(states_since(core, before))
}

fn timeline_idle_core_cycle_is_idle_marking(_: &Config<'_>) -> Result<(), String> {
    ensure!(gc::is_ready(), "needs the collector");
    let cores = percore::online_count();
    if cores < 2 {
        // The case runs at 1 and 4 cores; a cycle on a core of its own needs a second one.
        kprintln!("timeline_idle_core_cycle_is_idle_marking: skipped on 1 core");
        return Ok(());
    }
    let core = cores - 1;
    let alone = cycle_on_task(gc::COLLECTOR_TASK, core)?;
    ensure!(alone.contains(&State::Mark), "core {core} ran a cycle without entering mark: {alone:?}");
    ensure!(
        alone.contains(&State::IdleMark),
        "the triggered cycle's task, alone on core {core}, recorded no idle-mark drain: {alone:?}"
    );
    ensure!(
        alone.contains(&State::IdleSweep),
        "the triggered cycle's task, alone on core {core}, recorded no idle-sweep chunk: {alone:?}"
    );
    // The negative: the cycle the same, its task a mutator's (any other name): its drains take
    // the core from the program, so they stay mark.
    let mutator = cycle_on_task("not-gc-cycle", core)?;
    ensure!(mutator.contains(&State::Mark), "core {core} ran a cycle without entering mark: {mutator:?}");
    ensure!(
        !mutator.contains(&State::IdleMark) && !mutator.contains(&State::IdleSweep),
        "a cycle on an ordinary task recorded idle-mark or idle-sweep on core {core}: {mutator:?}"
    );
    Ok(())
}

fn timeline_totals_cover_every_tick(_: &Config<'_>) -> Result<(), String> {
    for core in 0..percore::online_count() {
        // The recorder starts in mutator at tick 0, so its totals add up to the counter.
        let now = cpu::counter();
        let sum: u64 = timeline::totals_at(core, now).iter().sum();
        ensure!(sum == now, "core {core}: the totals add up to {sum} ticks, the counter says {now}");
    }
    Ok(())
}

/// Transitions per measurement.
const TRANSITIONS: u64 = 20_000;

fn bench_timeline(_: &Config<'_>) -> ! {
    if percore::online_count() != 1 {
        kprintln!("bench-timeline: numbers repeat run to run only with -smp 1 and -icount");
    }
    let ns = |ticks: u64| ticks as f64 * 1e9 / cpu::counter_frequency() as f64;
    let start = cpu::counter();
    for i in 0..TRANSITIONS {
        // Alternate, so every call is a transition (enter + leave, as a hook site does).
        core::hint::black_box(timeline::enter(if i % 2 == 0 { State::Sweep } else { State::Mutator }));
    }
    let transition = ns(cpu::counter() - start) / TRANSITIONS as f64;
    let start = cpu::counter();
    for _ in 0..TRANSITIONS {
        // Already in the state: the early exit (a task switch between two mutators takes it).
        core::hint::black_box(timeline::enter(State::Mutator));
    }
    let same = ns(cpu::counter() - start) / TRANSITIONS as f64;
    kprintln!(
        "BENCH timeline transitions={TRANSITIONS} ns_per_transition={transition:.2} ns_per_same_state={same:.2} capacity={}",
        timeline::capacity(percore::id())
    );
    exit::exit(exit::SUCCESS)
}

/// `bench-turns`: steps of work per core, and their loop's length.
const TURN_STEPS: usize = 2000;
const TURN_STEP_ITERATIONS: u64 = 1000;
/// Per core: the virtual time its steps took in all, the longest step, and steps that took over
/// four times the shortest (the core stood still meanwhile: another vCPU had the turn).
static TURNS: [[AtomicU64; 3]; MAX_CORES] = [const { [const { AtomicU64::new(0) }; 3] }; MAX_CORES];
static TURNS_DONE: AtomicUsize = AtomicUsize::new(0);

/// One core's part: the same fixed loop, step after step, IRQs on (the ticks run).
fn turn_steps(core: usize) {
    let _irqs = IrqGuard::unmask();
    let mut steps = [0u64; TURN_STEPS];
    let start = cpu::counter();
    let mut last = start;
    for step in steps.iter_mut() {
        let mut x = 0u64;
        for i in 0..TURN_STEP_ITERATIONS {
            x = core::hint::black_box(x.wrapping_add(i));
        }
        let now = cpu::counter();
        *step = now - last;
        last = now;
    }
    let shortest = steps.iter().copied().min().unwrap_or(0);
    let stalled = steps.iter().filter(|&&s| s > 4 * shortest).count() as u64;
    let longest = steps.iter().copied().max().unwrap_or(0);
    for (slot, value) in TURNS[core].iter().zip([last - start, longest, stalled]) {
        slot.store(value, Ordering::Relaxed);
    }
    // Release: the figures above are visible to the reader that sees the count.
    TURNS_DONE.fetch_add(1, Ordering::Release);
}

/// Under `-icount` the vCPUs take turns on one host thread, and the virtual clock counts all
/// their instructions: with fair, short turns every core's loop takes about `cores` times its
/// own length and no step waits long (`tricolor_kernel::slice` for what `tick.slice=` does).
fn bench_turns(config: &Config<'_>) -> ! {
    let cores = percore::online_count();
    smp::run_on_all(|_| tasks::start_tick(TURN_QUANTUM_US));
    for core in 0..cores {
        let spawn = tasks::Spawn { name: "turns", stack_bytes: 32 * 1024, pinned: Some(core), growable_from: None };
        if let Err(e) = tasks::spawn(spawn, turn_steps, core) {
            kprintln!("bench-turns: cannot spawn on core {core}: {e}");
            exit::exit(exit::TEST_FAILED);
        }
    }
    {
        let _irqs = IrqGuard::unmask();
        while TURNS_DONE.load(Ordering::Acquire) < cores {
            tasks::yield_now();
            cpu::relax();
        }
    }
    tasks::stop_ticks();
    let ns = |ticks: u64| ticks as f64 * 1e9 / cpu::counter_frequency() as f64;
    for (core, t) in TURNS.iter().enumerate().take(cores) {
        let [elapsed, longest, stalled] = [0, 1, 2].map(|i| t[i].load(Ordering::Relaxed));
        kprintln!(
            "BENCH turns core={core} cores={cores} slice_us={} steps={TURN_STEPS} elapsed_ns={:.0} longest_step_ns={:.0} stalled_steps={stalled}",
            config.tick_slice_us,
            ns(elapsed),
            ns(longest)
        );
    }
    exit::exit(exit::SUCCESS)
}

/// The preemption quantum of `bench-turns` (the workloads' own).
const TURN_QUANTUM_US: u64 = 2000;

/// `bench-stalls`: ends the spin on core 1.
static STALL_GO: AtomicBool = AtomicBool::new(false);
static STALL_DONE: AtomicUsize = AtomicUsize::new(0);
/// How long core 1 spins, in µs.
const STALL_SPIN_US: u64 = 4000;

/// Where core 1's one-instruction loop is (`stall_spin`), for the interrupt that ends it.
static SPIN_PC: AtomicU64 = AtomicU64::new(0);

/// Core 1: a branch to itself, preemption off, IRQs on: at every tick the same registers and
/// the same instruction, which is what the stall detector sees of a core QEMU runs none of the
/// code of. (A loop of two or more instructions is interrupted at any of them under `-icount`, so
/// its registers differ from tick to tick.) `SGI_TEST` ends it ([`end_spin`]).
fn stall_spin(_: usize) {
    let _irqs = IrqGuard::unmask();
    let _np = tricolor_runtime::this_p().preempt.disable();
    // SAFETY: stores the loop's address into `SPIN_PC` (a static `AtomicU64`, 8-byte aligned),
    // then branches to itself until `end_spin` moves the interrupted return address past the
    // branch; it clobbers only the named scratch register.
    unsafe {
        core::arch::asm!(
            "adr {pc}, 2f",
            "str {pc}, [{slot}]",
            "2: b 2b",
            pc = out(reg) _,
            slot = in(reg) SPIN_PC.as_ptr(),
        )
    };
    // Release: the reader that sees the count sees this core's part done.
    STALL_DONE.fetch_add(1, Ordering::Release);
}

/// `SGI_TEST`'s handler in `bench-stalls`: if it interrupted core 1's branch to itself, return
/// past it.
fn end_spin(_: u32, frame: &mut tricolor_arch::exception::TrapFrame) {
    let at = SPIN_PC.load(Ordering::Relaxed);
    if at != 0 && frame.elr == at {
        frame.elr += 4;
    }
}

/// Core 2: computing the whole time, its count in a register, so its registers change at every
/// tick. (A count kept in memory, as `black_box` does, would leave them unchanged: the detector
/// looks at registers only, see `tricolor_kernel::slice`.)
fn stall_compute(_: usize) {
    let _irqs = IrqGuard::unmask();
    let mut x = 0u64;
    while !STALL_GO.load(Ordering::Relaxed) {
        x = x.wrapping_add(1);
        // SAFETY: an empty template; it only makes the compiler keep `x` in a register, counted.
        unsafe { core::arch::asm!("/* {0} */", inout(reg) x, options(nomem, nostack, preserves_flags)) };
    }
    STALL_DONE.fetch_add(1, Ordering::Release);
}

/// The stall detector end to end (`tricolor_kernel::slice::Frozen`, `timeline::on_slice_tick`,
/// the `STALLS` lines xtask's MMU leaves out): with `tick.slice=`, core 1 branches to itself for
/// [`STALL_SPIN_US`] and must be reported stalled for most of it; core 2 computes and must not.
fn bench_stalls(config: &Config<'_>) -> ! {
    let cores = percore::online_count();
    if cores < 3 || config.tick_slice_us == 0 {
        kprintln!("bench-stalls: needs 3 cores and tick.slice= (have {cores}, slice {} us)", config.tick_slice_us);
        exit::exit(exit::TEST_FAILED);
    }
    crate::irq::register(crate::irq::SGI_TEST, end_spin);
    smp::run_on_all(|_| tasks::start_tick(TURN_QUANTUM_US));
    for (core, entry) in [(1, stall_spin as fn(usize)), (2, stall_compute)] {
        let spawn = tasks::Spawn { name: "stalls", stack_bytes: 16 * 1024, pinned: Some(core), growable_from: None };
        if let Err(e) = tasks::spawn(spawn, entry, 0) {
            kprintln!("bench-stalls: cannot spawn on core {core}: {e}");
            exit::exit(exit::TEST_FAILED);
        }
    }
    {
        let _irqs = IrqGuard::unmask();
        let until = cpu::counter() + cpu::counter_frequency() * STALL_SPIN_US / 1_000_000;
        while cpu::counter() < until {
            tasks::yield_now();
            cpu::relax();
        }
        STALL_GO.store(true, Ordering::Relaxed);
        while STALL_DONE.load(Ordering::Acquire) < 2 {
            // Until core 1 takes it at its branch (it may not have reached it yet).
            crate::irq::send_to(1, crate::irq::SGI_TEST);
            tasks::yield_now();
            cpu::relax();
        }
    }
    tasks::stop_ticks();
    kprintln!("BENCH stalls cores={cores} spin_us={STALL_SPIN_US} freq={}", cpu::counter_frequency());
    timeline::print_stalls(cores);
    exit::exit(exit::SUCCESS)
}
