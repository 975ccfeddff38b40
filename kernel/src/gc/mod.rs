//! The collector in the kernel.
//!
//! - The [`Kernel`] platform: what `tricolor_gc` needs from the machine (per-core state through
//!   TPIDR_EL1: each core's `GcCore` sits in its per-core block at `percore::PERCORE_GC_OFFSET`;
//!   preemption guards, `systemstack`, stop-the-world, the task stacks to scan), and the write
//!   barrier's restartable assembly windows (`barrier`).
//! - Set-up from the command line (`gc.heap=`, `gc.mode=`, `gc.wbbuf=`, `gc.percent=`,
//!   `gc.verify=`): the heap is a contiguous run of frames, the `.gcroots` section is registered.
//! - [`collect`]: one cycle on the calling core, with mark workers spawned on the other cores for
//!   the concurrent mark.

pub mod barrier;
pub mod coretime;
pub mod trace;

pub mod safepoint;
pub mod scan;

use crate::{memory, percore, stw, tasks};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::Once;
use tricolor_abi::PAGE_SIZE;
use tricolor_arch::{cpu, irqmask};
use tricolor_gc::{
    AllocError, BarrierMode, CensusEntry, Collector, Cycle, CycleLock, CycleLockHeld, CycleProgress, CycleReport,
    Exemption, Gc, GcCore, Phase, Platform, RootOwner, ScanRange, Trace,
};
use tricolor_kernel::cmdline::Config;
use tricolor_runtime::preempt::PreemptGuard;

pub(crate) static COLLECTOR: Once<Collector> = Once::new();
/// Cores the collector knows (fixed after boot: the cores that came online).
static CORES: AtomicUsize = AtomicUsize::new(1);

unsafe extern "C" {
    static __gcroots_start: u8;
    static __gcroots_end: u8;
}

/// The kernel as the collector's platform.
pub struct Kernel;

impl Platform for Kernel {
    type NoPreempt = PreemptGuard<'static>;

    fn core_count() -> usize {
        CORES.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn current_core_index() -> usize {
        tricolor_runtime::this_p().core()
    }

    #[inline(always)]
    fn core(index: usize) -> &'static GcCore {
        percore::gc_core(index)
    }

    /// TPIDR_EL1 plus `PERCORE_GC_OFFSET` (the barrier's fast path takes this on every store).
    #[inline(always)]
    fn current_core() -> &'static GcCore {
        percore::this_gc_core()
    }

    fn collector() -> &'static Collector {
        COLLECTOR.get().expect("gc::init ran at boot")
    }

    #[inline(always)]
    fn disable_preemption() -> PreemptGuard<'static> {
        tricolor_runtime::this_p().preempt.disable()
    }

    /// The restartable assembly window (`barrier`), not the guarded default.
    #[inline(always)]
    fn write_pointer(
        slot: &core::sync::atomic::AtomicUsize,
        new: usize,
        caller: &'static core::panic::Location<'static>,
    ) {
        barrier::write_pointer(slot, new, caller)
    }

    fn systemstack<R>(f: impl FnOnce() -> R) -> R {
        tricolor_runtime::systemstack(f)
    }

    fn now_ns() -> u64 {
        cpu::uptime_ns()
    }

    fn stop_the_world<R>(f: impl FnOnce() -> R) -> R {
        trace::on_stop_the_world();
        stw::stop_the_world_retrying(f).0
    }

    fn last_stop() -> tricolor_gc::StopReport {
        let last = stw::last_stop();
        tricolor_gc::StopReport {
            pause_ns: last.pause_ns,
            to_safepoint_ns: last.to_safepoint_ns,
            last_core: last.core,
            last_pc: last.pc,
            deferred: last.site == stw::ParkSite::Deferred,
        }
    }

    fn for_each_stack_range(visit: &mut dyn FnMut(ScanRange, RootOwner)) {
        // At mark start (phase Mark) the dead parts of stopped stacks are zeroed, so later
        // conservative scans find no stale pointers; the verifier (phase MarkTermination) skips
        // the collecting core's own stack, which holds the collector's frames, not a mutator's.
        let verifying = collector().phase() == Phase::MarkTermination;
        tasks::for_each_root_range(!verifying, verifying, &is_mark_worker, &mut |lo, hi, owner| {
            trace::note_stack_range(hi - lo);
            visit(ScanRange { lo, hi }, owner)
        });
    }

    fn begin_stack_scans() {
        scan::begin(collector().stats.cycles.get() + 1);
    }

    fn scan_stacks(c: &Collector) -> bool {
        scan::scan_some(c)
    }

    /// Every collector wait yields through here, a safe point: with IRQs masked (a driver's
    /// explicit cycle behind another core's) the requests' interrupts cannot reach this core, and
    /// what it waits for may need it to flush, scan or park, so it answers them here.
    fn yield_task() {
        if irqmask::irqs_masked() {
            safepoint::run_here();
            stw::park_if_requested();
        }
        tasks::yield_now();
        cpu::relax();
    }

    fn warn(message: core::fmt::Arguments<'_>) {
        log::warn!("{message}");
    }

    fn relax() {
        // The `yield` hint: QEMU switches vCPUs on it (`isb` would burn the turn). Not a task
        // yield: the waits are short (other cores answering a request), and a yield would hand
        // this core to a mutator for a whole quantum.
        cpu::relax();
    }

    /// A triggered cycle's own task (`start_background_cycle` put it on an idle core) with
    /// nothing else ready on its core: its marking is an idle core's (see `idle_mark`).
    fn cycle_displaces_nothing() -> bool {
        tasks::alone_here_as(COLLECTOR_TASK)
    }

    fn flush_handshake(c: &Collector) {
        safepoint::flush_handshake(c);
    }

    fn root_census(visit: &mut dyn FnMut(CensusEntry)) {
        let verifying = collector().phase() == Phase::MarkTermination;
        tasks::root_census(&|task, current_here| exemption(task, current_here, verifying), visit);
    }

    #[inline]
    fn event(state: tricolor_timeline::State) -> tricolor_timeline::State {
        crate::timeline::enter(state)
    }
}

/// Whether the caller could be switched out now (the collector's lock discipline check): the
/// timer preempts, IRQs are open and the preemption counter is zero.
fn preemptible() -> bool {
    tasks::ticks_running() && !tricolor_arch::irqmask::irqs_masked() && tricolor_runtime::this_p().preempt.depth() == 0
}

fn is_mark_worker(task: &tricolor_runtime::task::Task) -> bool {
    task.name().as_str() == MARK_WORKER
}

/// The kernel's exemptions from the root census (the others, tasks that never ran, are found by
/// `tasks::root_census`): the mark workers, and at verification the collecting core's own task,
/// whose stack is the collector's (the same tasks `for_each_stack_range` leaves out).
fn exemption(task: &tricolor_runtime::task::Task, current_here: bool, verifying: bool) -> Option<Exemption> {
    if is_mark_worker(task) {
        Some(Exemption::MarkWorker)
    } else if verifying && current_here {
        Some(Exemption::Collector)
    } else {
        None
    }
}

/// The collector (after `init`).
pub fn collector() -> &'static Collector {
    Kernel::collector()
}

/// True once the GC heap exists.
pub fn is_ready() -> bool {
    COLLECTOR.get().is_some()
}

/// Why the collector could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// Not enough free RAM for the heap.
    NoFrames(tricolor_kernel::mem::frames::OutOfFrames),
    /// The heap's mapping at `vm::GC_HEAP_VA` could not be built.
    Map(tricolor_arch::pagetable::MapError),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::NoFrames(why) => write!(f, "{why}"),
            InitError::Map(why) => write!(f, "cannot map the heap: {why:?}"),
        }
    }
}

/// Creates the GC heap from the command line. Runs on the boot core after every core is online
/// (setting the barrier mode stops the world).
pub fn init(config: &Config<'_>) -> Result<(), InitError> {
    let pages = config.gc_heap.div_ceil(PAGE_SIZE);
    // 2 MiB alignment: the heap then starts on a block boundary (no effect on correctness).
    let frames = memory::alloc_pages(pages, 512).map_err(InitError::NoFrames)?;
    let base = crate::vm::map_gc_heap(frames, pages * PAGE_SIZE).map_err(InitError::Map)?;
    CORES.store(percore::online_count(), Ordering::Relaxed);
    let gc_config = tricolor_gc::Config {
        percent: config.gc_percent,
        wbbuf_entries: config.gc_wbbuf,
        verify: config.gc_verify,
        ..tricolor_gc::Config::default()
    };
    // SAFETY: the frames are ours alone (just allocated, never freed), mapped at `base`.
    let collector = COLLECTOR.call_once(|| unsafe { Collector::new(base as *mut u8, pages * PAGE_SIZE, gc_config) });
    // SAFETY: linker.ld brackets the `.gcroots` section, which holds only `GcSlot`s (word-sized
    // atomics) that live for the whole run.
    unsafe {
        collector.roots.register_section(
            (&raw const __gcroots_start).cast::<core::sync::atomic::AtomicUsize>(),
            (&raw const __gcroots_end).cast::<core::sync::atomic::AtomicUsize>(),
        )
    };
    collector.heap.set_poison(config.gc_poison);
    collector.set_handoff(config.gc_handoff);
    collector.set_mode::<Kernel>(config.gc_mode);
    stw::set_park_hook(flush_at_park);
    set_torture(config.gc_torture);
    set_pacer(config.gc_pacer);
    trace::set_enabled(config.gc_trace);
    VERIFY.store(config.gc_verify, Ordering::Relaxed);
    if config.gc_verify {
        // The verifier's runs also check the collector's lock discipline (`tricolor_gc::sync`);
        // the run's exit reports what broke it.
        tricolor_gc::set_preemptible_check(Some(preemptible));
    }
    trace::set_global_bytes((&raw const __gcroots_end as usize - &raw const __gcroots_start as usize) as u64);
    log::info!(
        "gc: {} MiB heap at {base:#x} (RAM {frames:#x}), mode {}, wbBuf {} entries{}, GOGC {}%{}, verifier {}, torture {}{}",
        config.gc_heap >> 20,
        config.gc_mode.name(),
        config.gc_wbbuf,
        if config.gc_handoff { "" } else { " (no hand-off)" },
        config.gc_percent,
        if config.gc_pacer { "" } else { " (pacer off)" },
        if config.gc_verify { "on" } else { "off" },
        config.gc_torture,
        if config.gc_poison { "" } else { ", freed memory not poisoned" }
    );
    Ok(())
}

/// What fails a run, counted over every cycle since boot, explicit or triggered (a test compares
/// two readings with [`Findings::since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Reachable objects the verifier found unmarked.
    pub misses: u64,
    /// Task stacks or saved registers the root census found unscanned.
    pub unscanned: u64,
    /// Stops that missed a deadline and were retried (see `stw::stop_the_world_retrying`): not a
    /// failure of the run by itself, but reported, and the stress matrix bounds their share.
    pub stw_retries: u64,
}

impl Findings {
    /// The counts now.
    pub fn now() -> Findings {
        let s = &collector().stats;
        Findings { misses: s.verifier_misses.get(), unscanned: s.unscanned.get(), stw_retries: stw::retries() as u64 }
    }

    /// What was found since `earlier`.
    pub fn since(self, earlier: Findings) -> Findings {
        Findings {
            misses: self.misses - earlier.misses,
            unscanned: self.unscanned - earlier.unscanned,
            stw_retries: self.stw_retries - earlier.stw_retries,
        }
    }

    /// Misses and unscanned stacks: each one fails a run.
    pub fn failures(&self) -> u64 {
        self.misses + self.unscanned
    }
}

/// Logs where each verifier miss recorded since the last call was found (a task's saved register,
/// a stack) and returns how many misses and census findings there were (the collector has logged
/// each already).
pub fn explain_findings() -> (usize, usize) {
    let misses = collector().take_misses::<Kernel>();
    for miss in &misses {
        if let Some((name, state, word)) = tasks::saved_register_at(miss.slot) {
            log::error!(
                "  miss {:#x}: slot {:#x} is saved register word {word} of task '{name}' ({state:?})",
                miss.object,
                miss.slot
            );
        }
        if let Some((stack, _)) = crate::stacks::STACKS.find(miss.slot) {
            log::error!(
                "  miss {:#x}: slot {:#x} is on the {} stack '{}' [{:#x}, {:#x})",
                miss.object,
                miss.slot,
                stack.kind,
                stack.name,
                stack.lo,
                stack.hi
            );
        }
        // The code addresses among the words around the slot (return addresses of the frames
        // there, most likely): `gdb-multiarch -batch <kernel> -ex 'info symbol ADDR'` names them.
        if let Some(around) = &miss.around {
            let code: alloc::vec::Vec<_> = around.words().filter(|&(_, w)| is_kernel_code(w)).collect();
            if !code.is_empty() {
                let mut text = alloc::string::String::new();
                for (addr, word) in code {
                    let _ = core::fmt::Write::write_fmt(&mut text, format_args!(" {word:#x} (at {addr:#x})"));
                }
                log::error!("  miss {:#x}: code addresses near its slot:{text}", miss.object);
            }
        }
    }
    (misses.len(), collector().take_unscanned::<Kernel>().len())
}

/// Whether `word` is an address in the kernel's code (linker.ld's `.text`).
pub fn is_kernel_code(word: usize) -> bool {
    unsafe extern "C" {
        static __image_start: u8;
        static __text_end: u8;
    }
    // Their addresses only: the symbols mark the section's bounds, nothing is read.
    (&raw const __image_start as usize..&raw const __text_end as usize).contains(&word)
}

/// The park hook (`stw::set_park_hook`): during the mark, a parking core flushes its own wbBuf
/// and publishes its grey objects, so mark termination's pause finds the buffers empty.
fn flush_at_park() {
    if let Some(c) = COLLECTOR.get() {
        if c.phase() == Phase::Mark {
            // A safe point with IRQs masked: the core's wbBuf and work buffer are not in use.
            // On the system stack, like every flush (see `scan::scan_current`).
            tricolor_runtime::systemstack(|| c.flush_this_core::<Kernel>());
        }
    }
}

/// Switches the barrier mode between cycles.
pub fn set_mode(mode: BarrierMode) {
    collector().set_mode::<Kernel>(mode);
}

/// Whether the verifier runs (as last set by `gc.verify=` or [`set_verify`]; the collector keeps
/// the switch itself, this is its readable copy). Relaxed: a setting, no data behind it.
static VERIFY: AtomicBool = AtomicBool::new(false);

/// Turns the verifier on or off (from the next mark termination).
pub fn set_verify(on: bool) {
    collector().set_verify(on);
    VERIFY.store(on, Ordering::Relaxed);
}

/// Whether the verifier runs.
pub fn verify_enabled() -> bool {
    VERIFY.load(Ordering::Relaxed)
}

/// The name of the collector's mark-worker tasks (their stacks are not roots).
pub(crate) const MARK_WORKER: &str = "mark-worker";

/// Shades a new task's argument if a mark is running (see `scan`: the one way a pointer moves
/// between stacks without the heap).
pub fn shade_spawn_argument(arg: usize) {
    if let Some(c) = COLLECTOR.get() {
        c.shade_root::<Kernel>(arg);
    }
}

/// Mark workers running (for the final wait of a cycle).
static WORKERS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How many mark workers are running (spawned for a cycle's mark and not yet gone).
pub fn mark_workers_running() -> usize {
    WORKERS_RUNNING.load(Ordering::Acquire)
}

/// Dedicated mark workers for a cycle on `cores` cores, the collecting task included: a quarter of
/// the cores, at least one (Go's `gcBackgroundUtilization`, 25 %). The other cores' mutators keep
/// running; they assist in proportion to what they allocate, and idle cores mark ([`idle_mark`]).
pub fn dedicated_workers(cores: usize) -> usize {
    cores.div_ceil(4).max(1)
}

/// How long an idle core waits for grey objects, with the `yield` hint, before its idle loop
/// polls its devices and comes back (see [`idle_mark`]).
const IDLE_MARK_WAIT_NS: u64 = 100_000;

/// Called by a core's idle loop with nothing to run: while a cycle marks, drain grey objects in
/// bounded stretches (on the system stack, so no heap address lingers in the idle task's stack)
/// until a task becomes runnable. When there are none to take, it waits up to
/// [`IDLE_MARK_WAIT_NS`] for a draining marker to hand some over (the list's hunger flag, which
/// `balance` clears), spinning with the `yield` hint rather than halting: nothing would wake a
/// halted core when work appears (Go's `enlistWorker` wakes an idle P), and a core asleep until
/// its next tick left the collecting core to mark alone (a run's tail: two idle cores marked 3.9
/// of the 15.9 ms they idled beside it). Returns whether a mark is still running, so that the
/// idle loop comes back here instead of halting.
pub fn idle_mark(runnable: impl Fn() -> bool) -> bool {
    let Some(c) = COLLECTOR.get() else { return false };
    while c.phase() == Phase::Mark && !runnable() {
        let t = cpu::uptime_ns();
        let scanned = Kernel::systemstack(|| {
            // Marking that takes no time from the program (nothing else is ready): its own state,
            // left out of utilisation like `Idle`, which the idle task comes back to.
            let _marking = crate::timeline::during(tricolor_timeline::State::IdleMark);
            c.mark_worker::<Kernel>()
        });
        trace::add_idle_mark(cpu::uptime_ns() - t);
        if scanned == 0 {
            let until = cpu::uptime_ns() + IDLE_MARK_WAIT_NS;
            while c.grey_list_starved() && c.phase() == Phase::Mark && !runnable() && cpu::uptime_ns() < until {
                cpu::relax();
            }
            if c.grey_list_starved() {
                break;
            }
        }
    }
    c.phase() == Phase::Mark
}

/// Called by a core's idle loop with nothing to run and no mark running: while a cycle sweeps,
/// sweep chunks of its walk (Go's background sweeper on the cores the program leaves idle) until
/// the walk is handed out or a task becomes runnable, so that the collecting task, often a
/// mutator's, is done sooner. Returns whether it swept anything.
pub fn idle_sweep(runnable: impl Fn() -> bool) -> bool {
    let Some(c) = COLLECTOR.get() else { return false };
    let mut swept = false;
    // `idle_sweep_chunk` is false once no sweep runs or its walk is handed out.
    while !runnable() && c.idle_sweep_chunk::<Kernel>() {
        swept = true;
    }
    swept
}

/// A dedicated mark worker for one cycle: drains grey objects while the mark phase lasts.
fn mark_worker(_: usize) {
    let c = collector();
    // The whole task is GC work (its yields switch to other tasks, which restore their own state).
    crate::timeline::enter(tricolor_timeline::State::MarkWorker);
    while c.phase() == Phase::Mark {
        let t = cpu::uptime_ns();
        let scanned = c.mark_worker::<Kernel>();
        trace::add_worker_mark(cpu::uptime_ns() - t);
        if scanned == 0 {
            // Nothing grey right now: let this core's mutators run, then look again.
            tasks::yield_now();
        }
    }
    WORKERS_RUNNING.fetch_sub(1, Ordering::Release);
}

/// One cycle at a time, explicit collections first ([`CycleLock`]): held around the collector's
/// cycle and this module's work around it (mark workers, the after-cycle check).
static CYCLES: CycleLock = CycleLock::new();
/// Cycles started by heap growth (the `gc.percent=` trigger), by torture mode or by an
/// exhausted heap.
pub static TRIGGERED_CYCLES: AtomicU64 = AtomicU64::new(0);
/// `gc.torture=`: a cycle every this many allocations (0: off), and the allocation count.
static TORTURE_EVERY: AtomicU64 = AtomicU64::new(0);
static TORTURE_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Cycles started by torture mode.
pub static TORTURE_CYCLES: AtomicU64 = AtomicU64::new(0);
/// A check run after every cycle (stress suites' integrity checks), as a `fn(&CycleReport)`
/// address (0: none). Runs on the collecting core, still holding the cycle lock.
static AFTER_CYCLE: AtomicUsize = AtomicUsize::new(0);

/// Installs (or with `None` removes) the check run after every cycle, whoever starts it.
pub fn set_after_cycle(check: Option<fn(&CycleReport)>) {
    AFTER_CYCLE.store(check.map_or(0, |f| f as usize), Ordering::Release);
}

/// Whether heap growth starts cycles (the `gc.percent=` trigger); off with `gc.pacer=off`, for
/// measurements whose cycles must come at the same allocations in every run (`gc.torture=`).
static PACER: AtomicBool = AtomicBool::new(true);

/// Turns the heap-growth trigger on or off (a full heap still collects).
pub fn set_pacer(on: bool) {
    // Ordering: Relaxed; a switch read at the next allocation, ordering nothing else.
    PACER.store(on, Ordering::Relaxed);
}

/// Sets torture mode: a collection every `every` GC allocations (0: off).
pub fn set_torture(every: u64) {
    TORTURE_EVERY.store(every, Ordering::Relaxed);
    TORTURE_ALLOCS.store(0, Ordering::Relaxed);
}

/// Allocates a zeroed `T` in the GC heap (black while marking). When the heap has grown past the
/// trigger (`gc.percent=` of the live heap after the last cycle), the allocating task then runs a
/// cycle itself, unless one is already running; when the heap is full, it collects (or lets the
/// running cycle finish) and retries. A heap still full after two more completed cycles is a
/// clear `Err` (requested size and heap state).
pub fn alloc<T: Trace>() -> Result<Gc<T>, AllocError> {
    let c = collector();
    let object = match c.alloc::<Kernel, T>() {
        Ok(object) => object,
        Err(_) => alloc_when_full::<T>()?,
    };
    // Outside the allocator's guard: pay this allocation's share of the running mark (`pacer`).
    c.assist_alloc::<Kernel>(T::TYPE.size);
    let torture = TORTURE_EVERY.load(Ordering::Relaxed);
    if torture != 0 && (TORTURE_ALLOCS.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(torture) {
        // `object` lives in this task's registers and stack: the cycle's root scan covers them.
        if !PACER.load(Ordering::Relaxed) {
            // A measurement (`gc.pacer=off`): every `torture`-th allocation gets its cycle, after
            // the running one if there is one, so that every run collects at the same counts.
            TRIGGERED_CYCLES.fetch_add(1, Ordering::Relaxed);
            CYCLES.hold::<Kernel, _>(|| cycle(0, false));
            TORTURE_CYCLES.fetch_add(1, Ordering::Relaxed);
        } else if try_collect().is_some() {
            TORTURE_CYCLES.fetch_add(1, Ordering::Relaxed);
        }
    } else if PACER.load(Ordering::Relaxed) && c.should_collect() && !start_background_cycle() {
        // A cycle is already under way: if it is still sweeping, help it.
        c.help_sweep::<Kernel>(T::TYPE.size);
    }
    Ok(object)
}

/// The name of the task a triggered cycle runs on.
pub(crate) const COLLECTOR_TASK: &str = "gc-cycle";

/// A triggered cycle's task exists (spawned, not yet done).
static BACKGROUND: AtomicBool = AtomicBool::new(false);

/// The heap crossed the trigger: run a cycle. With a core idle, the cycle gets a task of its own
/// there (Go's gcStart hands the mark to background workers and the allocating goroutine goes
/// on): the cores' mutators all keep running, and its marking takes no core from them (the tail
/// of a run, where some cores' work is done). With none idle it runs here, on this mutator's
/// task, as a dedicated marker does on a quarter of the cores (handed to a task sharing this core
/// a quantum at a time, it marked at half the pace, and the mutators' assists made up the rest:
/// MMU(10 ms) 63.3 → 61.3 %, assists 103 → 147 ms in `cargo xtask trace --suite gcbench-quick`),
/// until a core goes idle during its mark: the rest of the cycle then moves there
/// ([`try_collect_movable`]). False if a cycle is already under way.
fn start_background_cycle() -> bool {
    let Some(core) = tasks::idle_core() else {
        return try_collect_movable().is_some();
    };
    // AcqRel: one caller wins; the winner's spawn sees the flag set.
    if BACKGROUND.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return false;
    }
    let spawn = tasks::Spawn { name: COLLECTOR_TASK, stack_bytes: 64 * 1024, pinned: Some(core), growable_from: None };
    if tasks::spawn(spawn, background_cycle, 0).is_err() {
        BACKGROUND.store(false, Ordering::Release);
        return try_collect().is_some();
    }
    tasks::wake_others();
    true
}

/// Waits until no triggered cycle is under way (its task done): for a driver whose mutators have
/// all returned and that is about to mask IRQs or read the collector's totals (a cycle's
/// stop-the-world must be able to stop the waiting core: call with IRQs unmasked).
pub fn wait_for_triggered_cycle() {
    // Acquire pairs with the task's Release store: its cycle is complete.
    tricolor_gc::wait_while::<Kernel>(
        || BACKGROUND.load(Ordering::Acquire) || MOVED.load(Ordering::Acquire),
        |waited| log::warn!("gc: waited {} s for a triggered cycle to finish", waited / 1_000_000_000),
    );
}

/// The triggered cycle's task: the cycle, unless one ran meanwhile (a full heap's, an explicit
/// one) and the heap is below the trigger again.
fn background_cycle(_: usize) {
    if collector().should_collect() {
        try_collect();
    }
    // Release: the next trigger's spawn comes after this task's cycle.
    BACKGROUND.store(false, Ordering::Release);
}

/// The heap was full: run a cycle, or let the running one go on, and retry
/// ([`Collector::alloc_when_full`]).
fn alloc_when_full<T: Trace>() -> Result<Gc<T>, AllocError> {
    collector().alloc_when_full::<Kernel, T>(|| {
        if try_collect().is_none() {
            // A cycle is running elsewhere: let it (and this core's other tasks) go on.
            tasks::yield_now();
            cpu::relax();
        }
    })
}

/// Whether a collection cycle runs now (a snapshot).
pub fn cycle_running() -> bool {
    CYCLES.is_held()
}

/// Runs `f` while no collection cycle runs (waiting for a running one to finish): integrity
/// checks between cycles must not interleave with a cycle another core started.
pub fn between_cycles<R>(f: impl FnOnce() -> R) -> R {
    CYCLES.hold::<Kernel, _>(f)
}

/// A triggered cycle: runs one unless a cycle is already running or a task waits to run one
/// (whose cycle serves this trigger too). Deferring to waiters matters: mutators on every core
/// reaching the trigger one after another would otherwise take the cycle lock every time it is
/// let go, and starve the waiter (a stress driver waited 240 s for its first cycle while 447
/// triggered ones ran).
fn try_collect() -> Option<CycleReport> {
    CYCLES.try_hold::<Kernel, _>(|| {
        TRIGGERED_CYCLES.fetch_add(1, Ordering::Relaxed);
        cycle(0, false)
    })
}

/// Runs one collection cycle on the calling core, with a mark worker on every other core during
/// the concurrent mark (waits for a running cycle to finish first). Returns the cycle's report.
pub fn collect() -> CycleReport {
    collect_with_mark_delay(0)
}

/// [`collect`], but the concurrent mark starts `delay_us` after the world restarts: the roots are
/// shaded and nothing is scanned yet, so mutators get a window to rewire grey objects' children.
/// Stress suites use it to make a barrier bug (and the negative control) show up reliably.
pub fn collect_with_mark_delay(delay_us: u64) -> CycleReport {
    CYCLES.hold::<Kernel, _>(|| cycle(delay_us, true))
}

/// One cycle (the cycle lock held); `forced`: asked for, not started by the pacer.
fn cycle(delay_us: u64, forced: bool) -> CycleReport {
    let mut start = begin_cycle();
    let report = collector().collect_with_hook::<Kernel>(&mut mark_hook(&mut start, delay_us));
    end_cycle(start, &report, forced);
    report
}

/// Before a cycle, the cycle lock held: the scan list's room, this task's dead stack, the trace.
fn begin_cycle() -> trace::Start {
    scan::reserve();
    tasks::scrub_own_stack();
    trace::begin()
}

/// What a cycle does once the world runs again after its mark setup (the collector's mark hook):
/// the trace's mark start, the mark delay a stress suite asked for, and the dedicated mark
/// workers beyond the collecting task.
fn mark_hook(start: &mut trace::Start, delay_us: u64) -> impl FnMut() + '_ {
    let me = percore::id();
    move || {
        start.marking();
        if collector().phase() != Phase::Mark {
            return;
        }
        let until = cpu::counter() + cpu::counter_frequency() * delay_us / 1_000_000;
        while cpu::counter() < until {
            tasks::yield_now();
            cpu::relax();
        }
        let extra = dedicated_workers(Kernel::core_count()) - 1;
        for core in (0..Kernel::core_count()).filter(|&core| core != me).take(extra) {
            let spawn =
                tasks::Spawn { name: MARK_WORKER, stack_bytes: 16 * 1024, pinned: Some(core), growable_from: None };
            WORKERS_RUNNING.fetch_add(1, Ordering::Relaxed);
            if tasks::spawn(spawn, mark_worker, 0).is_err() {
                WORKERS_RUNNING.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// After a cycle, still holding the cycle lock: wait for the mark workers, account and print the
/// cycle, run the after-cycle check.
fn end_cycle(start: trace::Start, report: &CycleReport, forced: bool) {
    let c = collector();
    // Workers leave at the end of the mark phase; wait so the next cycle starts with none.
    // Acquire pairs with each worker's Release decrement: its marking is done.
    tricolor_gc::wait_while::<Kernel>(
        || WORKERS_RUNNING.load(Ordering::Acquire) != 0,
        |waited| {
            log::warn!(
                "gc: cycle {}: waited {} s for {} mark workers to leave (phase {:?})",
                report.cycle,
                waited / 1_000_000_000,
                WORKERS_RUNNING.load(Ordering::Relaxed),
                c.phase()
            )
        },
    );
    trace::end(start, report, forced);
    let check = AFTER_CYCLE.load(Ordering::Acquire);
    if check != 0 {
        // SAFETY: only `set_after_cycle` stores a nonzero value, and it stores a `fn(&CycleReport)`.
        let check: fn(&CycleReport) = unsafe { core::mem::transmute::<usize, fn(&CycleReport)>(check) };
        check(report);
    }
}

/// A cycle that moved to an idle core's task ([`try_collect_movable`]): what that task needs to
/// finish it. The cycle lock goes with it and is let go when the task is done.
struct MovedCycle {
    cycle: Cycle<'static>,
    start: trace::Start,
    held: CycleLockHeld<'static>,
}

/// A moved cycle's task exists (spawned, not yet done).
static MOVED: AtomicBool = AtomicBool::new(false);
/// Cycles that moved to an idle core's task.
pub static MOVED_CYCLES: AtomicU64 = AtomicU64::new(0);

/// A triggered cycle on this mutator's task ([`try_collect`]'s), which moves to a task of its own
/// on an idle core as soon as one is seen during its concurrent mark, so that this mutator goes
/// on: in a run's tail, a cycle started beside busy cores went on after they had finished, its
/// collecting core waiting for grey objects while one idle core drained a narrow part of the
/// graph (5-9 ms of a 12-17 ms mark), all of it taken from this core's mutator. `None` if a cycle
/// is already under way, else whether this one moved (then it may still be running: see
/// [`wait_for_triggered_cycle`]).
pub fn try_collect_movable() -> Option<bool> {
    let held = CYCLES.try_take::<Kernel>()?;
    TRIGGERED_CYCLES.fetch_add(1, Ordering::Relaxed);
    let c = collector();
    let mut start = begin_cycle();
    let mut target = None;
    let progress = c.collect_movable::<Kernel>(&mut mark_hook(&mut start, 0), &mut || {
        target = tasks::idle_core();
        target.is_some()
    });
    let cycle = match progress {
        CycleProgress::Done(report) => {
            end_cycle(start, &report, false);
            return Some(false);
        }
        CycleProgress::Moved(cycle) => cycle,
    };
    MOVED_CYCLES.fetch_add(1, Ordering::Relaxed);
    // Relaxed: only this function sets it, holding the cycle lock, and the task it spawns clears
    // it (Release) before it lets the lock go: it is false here.
    MOVED.store(true, Ordering::Relaxed);
    let moved = Box::into_raw(Box::new(MovedCycle { cycle, start, held }));
    let spawn = tasks::Spawn { name: COLLECTOR_TASK, stack_bytes: 64 * 1024, pinned: target, growable_from: None };
    if tasks::spawn(spawn, finish_moved_cycle, moved as usize).is_ok() {
        tasks::wake_others();
    } else {
        // No task for it: finish it here.
        finish_moved_cycle(moved as usize);
    }
    Some(true)
}

/// A moved cycle's task: the rest of the cycle ([`Collector::resume_cycle`]), then the cycle's
/// end as on the task that started it.
fn finish_moved_cycle(arg: usize) {
    // SAFETY: `try_collect_movable` passes a `Box<MovedCycle>` it gave up (`into_raw`), to this
    // function once.
    let moved = unsafe { Box::from_raw(arg as *mut MovedCycle) };
    let MovedCycle { cycle, start, held } = *moved;
    let report = collector().resume_cycle::<Kernel>(cycle);
    end_cycle(start, &report, false);
    // Release: whoever sees it clear (`wait_for_triggered_cycle`) sees the cycle complete.
    MOVED.store(false, Ordering::Release);
    drop(held);
}
