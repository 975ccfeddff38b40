//! Kernel tasks: spawning with guarded stacks, the per-core idle loop, timer preemption, reaping.
//!
//! Scheduling policy lives in `tricolor_runtime` (round-robin per-core queues, idle cores steal
//! yielded tasks, preempted tasks never migrate); this module wires it to the timer and the page
//! allocator. Each core's boot flow becomes its idle task.

use crate::sync::Lock as Mutex;
use crate::{irq, memory, percore, stacks, timeline, vm};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use hashbrown::HashMap;
use spin::Once;
use tricolor_abi::PAGE_SIZE;
use tricolor_arch::irqmask::{self, IrqGuard};
use tricolor_arch::{cpu, timer};
use tricolor_gc::{CensusEntry, Exemption, RootOwner, RootPart, ScanRange};
use tricolor_kernel::slice;
use tricolor_runtime::context::Context;
use tricolor_runtime::runq::{RunQueues, StealPolicy};
use tricolor_runtime::sched::SwitchReason;
use tricolor_runtime::stack::growth::{Growth, StackReservation};
use tricolor_runtime::stack::registry::StackSlot;
use tricolor_runtime::stack::{Stack, StackKind};
use tricolor_runtime::task::{Task, TaskId};
use tricolor_runtime::{schedule, this_p};

static QUEUES: Once<RunQueues> = Once::new();
/// The preemption quantum in counter ticks (0 = the tick not started).
static QUANTUM_TICKS: AtomicU64 = AtomicU64::new(0);

/// What to free when a task is reaped.
enum StackRecord {
    /// Contiguous pages, the lowest one an unmapped guard.
    Fixed { base: usize, pages: usize, slot: StackSlot },
    /// A reservation in the growable-stack arena: free whatever got mapped.
    Growable { slot: StackSlot },
}

/// Where growable stacks are reserved: virtual addresses no RAM or device uses (256 GiB up).
const STACK_ARENA: usize = 0x40_0000_0000;
static NEXT_RESERVATION: Mutex<usize> = Mutex::new(STACK_ARENA);
static STACK_RECORDS: Mutex<Option<HashMap<TaskId, StackRecord>>> = Mutex::new(None);
/// Every task not yet reaped (idle tasks included): what the collector walks for roots.
static LIVE: Mutex<Option<HashMap<TaskId, Arc<Task>>>> = Mutex::new(None);

/// The run queues (after `init`).
pub fn queues() -> &'static RunQueues {
    QUEUES.get().expect("tasks::init ran at boot")
}

/// Creates the run queues; called once on the boot core.
pub fn init(cores: usize) {
    QUEUES.call_once(|| RunQueues::new(cores, StealPolicy::WhenIdle));
    *STACK_RECORDS.lock() = Some(HashMap::new());
    *LIVE.lock() = Some(HashMap::new());
    install_tick_handler();
}

/// Makes the timer interrupt drive preemption (tests that borrow the timer put it back).
pub fn install_tick_handler() {
    irq::register(irq::timer_irq(), on_tick);
}

/// Makes the calling core's boot flow its idle task (every core, at bring-up).
pub fn adopt_boot_flow() {
    let [boot, _, _] = stacks::of_core(percore::id());
    let p = this_p();
    let idle = Arc::new(Task::adopt_boot(p.core(), boot));
    LIVE.lock().as_mut().expect("tasks::init ran").insert(idle.id(), Arc::clone(&idle));
    p.adopt_current(idle);
    p.preempt.set_deferred_hook(deferred_preemption);
}

/// `tick.slice=` in µs (0: the timer fires once per quantum). Set at boot, before any tick.
static SLICE_US: AtomicU64 = AtomicU64::new(0);
/// The timer's period in counter ticks: the quantum, or the slice if shorter.
static SLICE_TICKS: AtomicU64 = AtomicU64::new(0);
/// Per core, with `tick.slice=`: the counter value at its last preemption tick (a core takes
/// one tick per round of slices, so the quantum is measured, not counted in slices).
static QUANTUM_START: [AtomicU64; tricolor_abi::MAX_CORES] = [const { AtomicU64::new(0) }; tricolor_abi::MAX_CORES];

/// Sets `tick.slice=` (boot, before [`start_tick`]).
pub fn set_tick_slice_us(us: u64) {
    SLICE_US.store(us, Ordering::Relaxed);
}

/// The `tick.slice=` length in counter ticks once the tick started (0: no slices).
pub fn slice_ticks() -> u64 {
    SLICE_TICKS.load(Ordering::Relaxed)
}

/// Starts the periodic tick on the calling core (IRQs stay as the caller has them): preemption
/// once per quantum, the timer once per `tick.slice=` if that is shorter.
pub fn start_tick(quantum_us: u64) {
    let per_us = |us: u64| (cpu::counter_frequency() * us / 1_000_000).max(1);
    let quantum = per_us(quantum_us);
    let slice = match SLICE_US.load(Ordering::Relaxed) {
        0 => quantum,
        us => per_us(us).min(quantum),
    };
    QUANTUM_TICKS.store(quantum, Ordering::Relaxed);
    SLICE_TICKS.store(slice, Ordering::Relaxed);
    if slice < quantum {
        // Every core's timer at the same instants (see `tricolor_kernel::slice`).
        let now = cpu::counter();
        QUANTUM_START[percore::id()].store(now, Ordering::Relaxed);
        timer::arm_at(slice::next_slice(now, slice));
    } else {
        timer::arm(slice);
    }
}

fn on_tick(_: u32, frame: &mut tricolor_arch::exception::TrapFrame) {
    let quantum = QUANTUM_TICKS.load(Ordering::Relaxed);
    if quantum == 0 {
        timer::disarm();
        return;
    }
    let slice = SLICE_TICKS.load(Ordering::Relaxed);
    if slice < quantum {
        // `tick.slice=` (measurements under -icount, `tricolor_kernel::slice`): a core that does
        // not own this slice ends its vCPU turn here (the `yield` hint), so the owner runs the
        // slice, unless it ran none of its code since before its own last slice (`Frozen::keeps_slice`).
        let now = cpu::counter();
        let core = percore::id();
        let keep = timeline::on_slice_tick(frame, now, slice);
        if !keep && slice::owner(now / slice, percore::online_count()) != core {
            cpu::relax();
        }
        // The next slice boundary, the same on every core, from the time after the yield: armed
        // before it, the boundary had often passed by the time this vCPU ran again, so it took the
        // next tick right at the exception return, in a slice it did not own, and yielded again.
        timer::arm_at(slice::next_slice(cpu::counter(), slice));
        // Relaxed: only this core's timer handler touches its start (IRQs masked here).
        let start = &QUANTUM_START[core];
        if now.wrapping_sub(start.load(Ordering::Relaxed)) < quantum {
            return; // a slice, not a quantum: nothing to preempt
        }
        start.store(now, Ordering::Relaxed);
    } else {
        timer::arm(slice);
    }
    if let tricolor_runtime::preempt::Tick::Preempt = this_p().preempt.on_tick() {
        // A safe point, and `on_tick` just cleared `pending`, which a stop request or a
        // collector request that came inside a preemption-disabled window also set (their
        // handlers defer to the window's end): answer them here, as the deferred hook would have.
        // Without this a tick landing between a window's last decrement and its look at
        // `pending` took the deferred stop with it, and the core never parked (the unit test
        // `stop_the_world_waits_for_preempt_disabled_window`: "cores 0b1000 never stopped",
        // about one run in twenty, on bedd6bb as well).
        answer_deferred_requests(frame.elr as usize, crate::stw::ParkSite::Interrupted);
        // Runs on the interrupted task's stack (IRQs are taken on SP_EL0), so switching here
        // leaves the interrupted state in that task's frame until it is resumed.
        switch(SwitchReason::Preempt);
    }
}

/// Called when the outermost preemption guard drops after a deferred tick.
#[inline(never)]
fn deferred_preemption() {
    // Where the guard dropped: this hook's return address (reports name the code that kept a
    // stop waiting). First, before any call clobbers x30.
    let site = cpu::return_address();
    answer_deferred_requests(site, crate::stw::ParkSite::Deferred);
    switch(SwitchReason::Preempt);
}

/// At a safe point that a deferred tick leads to (the outermost preemption guard's drop, or a
/// tick that found preemption enabled again): the collector's requests that arrived inside the
/// window (a stack scan, a wbBuf flush), then a requested stop, parking at `pc` as `site`.
fn answer_deferred_requests(pc: usize, site: crate::stw::ParkSite) {
    crate::gc::safepoint::run_here();
    if crate::stw::requested() {
        // Masked already in the tick handler; the guard restores that.
        let _irqs = IrqGuard::mask();
        crate::stw::park_here(pc, site);
    }
}

/// [`schedule`], with the core's recorded state following the task: the state this task is in
/// (a mark worker's, a collecting task's) stays in this frame while it is switched out, and
/// comes back when it runs again, on whichever core; the task switched to restores its own.
fn switch(reason: SwitchReason) {
    let mine = timeline::current();
    schedule(queues(), reason);
    timeline::leave(mine);
}

/// Spins (with the `yield` hint) until `done()` or `ms` milliseconds of counter time pass;
/// returns `done()`. For waits on other cores.
pub fn spin_until(ms: u64, done: impl Fn() -> bool) -> bool {
    wait_until(ms, done, || {})
}

/// Like [`spin_until`], but gives this core to other tasks between checks: for waits on tasks that
/// may share this core.
pub fn yield_until(ms: u64, done: impl Fn() -> bool) -> bool {
    wait_until(ms, done, yield_now)
}

fn wait_until(ms: u64, done: impl Fn() -> bool, between: impl Fn()) -> bool {
    let deadline = cpu::counter() + cpu::counter_frequency() * ms / 1000;
    while !done() && cpu::counter() < deadline {
        between();
        cpu::relax();
    }
    done()
}

/// Gives up the core to the next runnable task (if any).
pub fn yield_now() {
    switch(SwitchReason::Yield);
}

/// How to run a new task.
pub struct Spawn {
    pub name: &'static str,
    pub stack_bytes: usize,
    /// Run only on this core.
    pub pinned: Option<usize>,
    /// `Some(initial)`: reserve `stack_bytes` of address space but map only `initial` bytes; the
    /// stack grows a page at a time on guard faults, never moving.
    pub growable_from: Option<usize>,
}

/// The first Rust code of every task (through the runtime's entry trampoline).
extern "C" fn task_start(entry: usize, arg: usize) -> ! {
    tricolor_runtime::begin_task(queues());
    // A new task starts as a mutator, whatever the task that switched to it was doing.
    timeline::leave(tricolor_timeline::State::Mutator);
    // SAFETY: `spawn` passes a `fn(usize)` as `entry`.
    let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(entry) };
    f(arg);
    tricolor_runtime::exit_current(queues())
}

/// Spawns `entry(arg)` as a task on a stack of `stack_bytes` (rounded up to pages) with an
/// unmapped guard page below it, queued on `pinned` or on the calling core.
pub fn spawn(options: Spawn, entry: fn(usize), arg: usize) -> Result<Arc<Task>, &'static str> {
    // Free what exited tasks left behind first: whichever core spawns also reaps, so a busy boot
    // core (which would otherwise reap from its idle loop) cannot let exited stacks pile up.
    reap();
    let entry_context = |hi: usize| {
        let start = task_start as *const () as usize;
        Context::for_entry(hi, tricolor_runtime::task_entry_address(), start, entry as *const () as usize, arg)
    };
    let (task, fixed_pages) = match options.growable_from {
        None => {
            let pages = options.stack_bytes.div_ceil(PAGE_SIZE) + 1;
            let base = memory::alloc_pages(pages, 1).map_err(|_| "out of memory for a task stack")?;
            vm::unmap_live(base).map_err(|_| "cannot unmap the guard page")?;
            let (lo, hi) = (base + PAGE_SIZE, base + pages * PAGE_SIZE);
            let stack = Stack::new(StackKind::Task, lo, hi, PAGE_SIZE, options.pinned, options.name);
            // SAFETY: the pages were just allocated to us and nothing runs on them yet.
            unsafe { stack.paint() };
            (Task::new(options.name, stack, entry_context(hi)), Some((base, pages)))
        }
        Some(initial) => {
            let reservation = reserve_growable(options.stack_bytes, initial)?;
            let stack = reservation.as_stack(options.name);
            (Task::new(options.name, stack, entry_context(stack.hi)).with_reservation(reservation), None)
        }
    };
    let task = Arc::new(match options.pinned {
        Some(core) => task.pinned_to(core),
        None => task,
    });
    let Some(slot) = stacks::try_register(task.stack()) else {
        // Undo the stack allocation; the task never existed.
        free_stack(&task, fixed_pages);
        return Err("too many live stacks (the stack registry is full)");
    };
    let record = match fixed_pages {
        Some((base, pages)) => StackRecord::Fixed { base, pages, slot },
        None => StackRecord::Growable { slot },
    };
    STACK_RECORDS.lock().as_mut().expect("tasks::init ran").insert(task.id(), record);
    LIVE.lock().as_mut().expect("tasks::init ran").insert(task.id(), Arc::clone(&task));
    // A pointer handed to a task spawned during the mark moves between stacks without the heap:
    // shade it (the new task's stack is black, it is not in this cycle's scan list).
    crate::gc::shade_spawn_argument(arg);
    let core = options.pinned.unwrap_or_else(percore::id);
    {
        // The run queues are also touched by this core's tick handler (a preempting `schedule`).
        let _irqs = IrqGuard::mask();
        queues().enqueue(core, Arc::clone(&task));
    }
    if core != percore::id() {
        wake_others();
    }
    Ok(task)
}

/// Bytes of a fixed task stack ever used (its high-water mark); `None` for a growable stack (its
/// mapped size is its high-water mark) or a task still running.
pub fn stack_high_water(task: &Task) -> Option<usize> {
    if task.reservation().is_some() || task.state() != tricolor_runtime::task::TaskState::Exited {
        return None;
    }
    // SAFETY: the stack is painted (spawn), mapped until reap(), and its task has exited, so
    // nothing writes to it.
    Some(unsafe { task.stack().high_water_mark() })
}

/// Returns a task's stack memory: `fixed_pages` (base, count) for a fixed stack, whose guard page
/// is identity-mapped again before the pages go back to the allocator; `None` for a growable
/// stack, whose mapped pages are unmapped and freed.
fn free_stack(task: &Task, fixed_pages: Option<(usize, usize)>) {
    match fixed_pages {
        Some((base, pages)) => {
            vm::map_live(base, base, tricolor_arch::pagetable::Attributes::RAM_RWX).expect("guard remap");
            memory::free_pages(base, pages);
        }
        None => {
            if let Some(reservation) = task.reservation() {
                let hi = reservation.mapped_lo() + reservation.mapped_bytes();
                vm::unmap_range_live(reservation.mapped_lo(), hi, |pa| memory::free_pages(pa, 1));
            }
        }
    }
}

/// Frees the stacks of exited tasks. Returns how many were reaped.
pub fn reap() -> usize {
    let mut reaped = 0;
    loop {
        let exited = {
            let _irqs = IrqGuard::mask();
            queues().take_exited()
        };
        let Some(task) = exited else { break };
        LIVE.lock().as_mut().expect("tasks::init ran").remove(&task.id());
        let record = STACK_RECORDS.lock().as_mut().expect("tasks::init ran").remove(&task.id());
        match record {
            Some(StackRecord::Fixed { base, pages, slot }) => {
                stacks::STACKS.unregister(slot);
                free_stack(&task, Some((base, pages)));
            }
            Some(StackRecord::Growable { slot }) => {
                stacks::STACKS.unregister(slot);
                free_stack(&task, None);
            }
            None => {}
        }
        reaped += 1;
    }
    reaped
}

/// Idle-loop iterations per core (a liveness statistic).
pub static IDLE_LOOPS: [AtomicU64; tricolor_abi::MAX_CORES] = [const { AtomicU64::new(0) }; tricolor_abi::MAX_CORES];

/// The idle loop every secondary core ends in (the boot core enters it when it has no test to
/// run): runs cross-core calls, hands the core to runnable tasks, sleeps until an event.
///
/// `poll` runs the core's pending work; `pending` says whether more has arrived. The core sleeps
/// in `wfi` (QEMU halts the vCPU, leaving the host CPU to others) and is woken by an interrupt:
/// the timer, or [`wake_others`] after work was posted for it.
///
/// The IRQ mask here is explicit, not an `IrqGuard`: the loop does not restore a mask it found,
/// it ends every step with IRQs unmasked whatever the code before it left (the boot flow arrives
/// masked, a cross-core call may return masked), because an idle core must take interrupts.
pub fn idle_loop(mut poll: impl FnMut(), pending: impl Fn() -> bool) -> ! {
    irqmask::unmask_irqs();
    let core = percore::id();
    // Release: a collector that sees the flag (`in_idle_loop`) sees a task that from now on runs
    // only this loop.
    IN_IDLE_LOOP[core].store(true, Ordering::Release);
    // The idle task is idle whether it polls or halts: it runs only when other tasks yield to
    // it, and MMU counts it as neither mutator nor GC time. Its state stays with it across its
    // yields (`switch`).
    timeline::enter(tricolor_timeline::State::Idle);
    loop {
        IDLE_LOOPS[core].fetch_add(1, Ordering::Relaxed);
        // Relaxed: a placement hint (`idle_core`), never a guarantee.
        IDLING[core].store(false, Ordering::Relaxed);
        poll();
        // Whatever `poll` ran (a cross-core call) may have left IRQs masked: idle takes them.
        irqmask::unmask_irqs();
        yield_now();
        // Back here: nothing else was ready.
        IDLING[core].store(true, Ordering::Relaxed);
        if core == 0 {
            reap();
        }
        // Check for work with IRQs masked, then sleep: a wake-up SGI raised after the check stays
        // pending and ends the `wfi` at once instead of being taken (and lost) before it. The
        // unmask after the `wfi` takes it.
        // Nothing to run: help a running mark first (Go's idle mark workers).
        // Then a running sweep.
        let runnable = || !queues().queue(core).is_empty();
        if crate::gc::idle_mark(runnable) || crate::gc::idle_sweep(runnable) {
            continue;
        }
        irqmask::mask_irqs();
        if !pending() && queues().queue(core).is_empty() {
            cpu::wait_for_interrupt();
        }
        irqmask::unmask_irqs();
    }
}

/// Whether the calling task is named `name` and no task that could run on its core instead is
/// ready: this core's queue holds only its idle task, and no other core's queue a task this core
/// could steal. What the caller does now then takes no time from any other task (the triggered
/// cycle's task on a core of its own, whose marking is idle-core marking: `gc`). Call with
/// preemption disabled, so that the answer is about the core the caller goes on running on; a
/// task made ready later shows at the next call.
pub fn alone_here_as(name: &str) -> bool {
    let current = this_p().current_ptr();
    if current.is_null() {
        return false;
    }
    // SAFETY: the current task is the caller, alive while it runs.
    if unsafe { &*current }.name().as_str() != name {
        return false;
    }
    let me = percore::id();
    // The run queues' locks are also taken by this core's tick handler (a preempting `schedule`).
    let _irqs = IrqGuard::mask();
    (0..percore::online_count())
        .all(|core| queues().queue(core).all(|t| counts_as_idle(t) || (core != me && !t.stealable())))
}

/// Per core: its idle task is what runs (it found nothing else ready), as far as it knows.
static IDLING: [AtomicBool; tricolor_abi::MAX_CORES] = [const { AtomicBool::new(false) }; tricolor_abi::MAX_CORES];

/// A core other than this one that looks idle (its idle task runs and its run queue is empty), if
/// any: where to put work that should not take a core from a mutator. A hint: the core may have
/// been given a task since.
pub fn idle_core() -> Option<usize> {
    let me = percore::id();
    (0..percore::online_count())
        .find(|&core| core != me && IDLING[core].load(Ordering::Relaxed) && queues().queue(core).is_empty())
}

/// Per core: its idle task has entered [`idle_loop`], which it never leaves.
static IN_IDLE_LOOP: [AtomicBool; tricolor_abi::MAX_CORES] =
    [const { AtomicBool::new(false) }; tricolor_abi::MAX_CORES];

/// Whether `task` is a core's idle task running [`idle_loop`]: it runs no mutator code from then
/// on. (A boot flow before that, such as the boot core's running a test's driver, is a mutator.)
pub fn in_idle_loop(task: &Task) -> bool {
    task.name().as_str() == "idle" && task.affinity().is_some_and(|core| IN_IDLE_LOOP[core].load(Ordering::Acquire))
}

/// Whether `task` runs no mutator code now: it is in [`idle_loop`], or waits in
/// [`wait_as_idle`]. For accounting only ([`alone_here_as`]): a waiter's stack is still scanned
/// as a mutator's (taken out of its queue), since it goes back to being one.
fn counts_as_idle(task: &Task) -> bool {
    // Acquire: pairs with `wait_as_idle`'s Release store.
    in_idle_loop(task) || IDLE_WAITERS.iter().any(|w| core::ptr::eq(w.load(Ordering::Acquire), task))
}

/// Per core: the task waiting there in [`wait_as_idle`] (null: none).
static IDLE_WAITERS: [AtomicPtr<Task>; tricolor_abi::MAX_CORES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; tricolor_abi::MAX_CORES];

/// Waits until `done()`, between looks giving the core to any other ready task and else
/// sleeping until its next interrupt: for a driver that only waits for the tasks it started (a
/// stress suite's mutators). Meanwhile it counts as idle, in the timeline (MMU leaves it out) and
/// for the collector: a cycle on this core beside it displaces no mutator ([`alone_here_as`]).
/// Before this, the driver's looks (a few µs at every tick) were charged as mutator time and made
/// the triggered cycle it shared core 0 with look like a mutator's: in the tail of gcbench-quick
/// core 0 marked for 10 ms beside a "mutator" with 0.75 ms of time (MMU(1 ms) 0 % in one run).
/// (Running the idle loop's rounds here instead, idle marking included, and offering the core to
/// triggered cycles ([`idle_core`]) was tried: the driver's core then stood still for up to 18 ms
/// and one run could not stop the world.) Call with IRQs unmasked.
pub fn wait_as_idle(done: impl Fn() -> bool) {
    let me = this_p().current_ptr().cast_mut();
    let slot = &IDLE_WAITERS[percore::id()];
    let _idle = timeline::during(tricolor_timeline::State::Idle);
    // A slot taken (a second waiter began on this core): wait all the same, counted as before.
    // Release: a collector that sees the task here sees the state it entered.
    let registered = slot.compare_exchange(core::ptr::null_mut(), me, Ordering::Release, Ordering::Relaxed).is_ok();
    while !done() {
        yield_now();
        if !done() {
            cpu::wait_for_interrupt();
        }
    }
    if registered {
        // Release: as above.
        slot.store(core::ptr::null_mut(), Ordering::Release);
    }
}

/// Wakes every other core from `idle_loop`'s `wfi` (after posting work for one of them).
pub fn wake_others() {
    irq::send_to_others(irq::SGI_WAKE);
    cpu::send_event();
}

/// Whether the periodic tick is running (started and not stopped).
pub fn ticks_running() -> bool {
    QUANTUM_TICKS.load(Ordering::Relaxed) != 0
}

/// Stops the periodic tick on every core (each disarms at its next tick).
pub fn stop_ticks() {
    QUANTUM_TICKS.store(0, Ordering::Relaxed);
}

/// Reserves `reserve` bytes (plus a guard page) of the growable-stack arena and maps the top
/// `initial` bytes.
fn reserve_growable(reserve: usize, initial: usize) -> Result<StackReservation, &'static str> {
    let reserve = reserve.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let initial_pages = initial.div_ceil(PAGE_SIZE).clamp(1, reserve / PAGE_SIZE);
    let res_lo = {
        let mut next = NEXT_RESERVATION.lock();
        let res_lo = *next + PAGE_SIZE; // one guard page under every reservation
        if res_lo + reserve > vm::GC_HEAP_VA {
            return Err("the growable-stack arena is used up (it ends where the GC heap is mapped)");
        }
        *next = res_lo + reserve;
        res_lo
    };
    let hi = res_lo + reserve;
    vm::prepare_live(res_lo, reserve).map_err(|_| "cannot build page tables for a stack reservation")?;
    for page in (hi - initial_pages * PAGE_SIZE..hi).step_by(PAGE_SIZE) {
        let frame = memory::alloc_pages(1, 1).map_err(|_| "out of memory for a task stack")?;
        vm::map_live(page, frame, tricolor_arch::pagetable::Attributes::RAM_DATA)
            .map_err(|_| "cannot map a stack page")?;
    }
    Ok(StackReservation::new(res_lo, hi, initial_pages, 1))
}

/// Why a growth fault could not be served.
pub enum GrowthFailure {
    /// The fault is not in the current task's reservation: not ours to handle.
    NotGrowth,
    /// Growth needed a lock the faulting code holds, or memory ran out.
    Blocked(&'static str),
}

/// The fault handler's hook: if `far` is below the current task's mapped stack and inside its
/// reservation, map the missing pages and let the faulting instruction retry.
pub fn grow_current_stack(far: usize) -> Result<(), GrowthFailure> {
    // SAFETY: runs on this core in an exception taken from the current task, which cannot be
    // freed while it runs.
    let task = unsafe { this_p().current() }.ok_or(GrowthFailure::NotGrowth)?;
    let reservation = task.reservation().ok_or(GrowthFailure::NotGrowth)?;
    let Growth::Grow { map_page_at, pages } = reservation.on_fault(far) else {
        return Err(GrowthFailure::NotGrowth);
    };
    for i in 0..pages {
        let frame =
            memory::try_alloc_page().ok_or(GrowthFailure::Blocked("no free page (or the frame allocator is held)"))?;
        let va = map_page_at + i * PAGE_SIZE;
        match vm::try_map_live(va, frame) {
            Some(Ok(())) => {}
            Some(Err(_)) | None => {
                memory::free_pages(frame, 1);
                return Err(GrowthFailure::Blocked("the page tables are held by the faulting code"));
            }
        }
    }
    reservation.grown(map_page_at, pages);
    GROWN_PAGES.fetch_add(pages as u64, Ordering::Relaxed);
    Ok(())
}

/// A planted blind spot for the root census's tests: removes the calling task's stack from the
/// stack registry (the scan finds a running task's stack there), or with `hidden == false` puts
/// it back. The task table still lists the task. Only for tests: a task whose stack is not
/// registered is reported unscanned by every verified cycle.
pub fn hide_own_stack_from_registry(hidden: bool) {
    // SAFETY: the current task is alive while it runs.
    let Some(task) = (unsafe { this_p().current() }) else { return };
    let mut records = STACK_RECORDS.lock();
    let Some(record) = records.as_mut().expect("tasks::init ran").get_mut(&task.id()) else { return };
    let slot = match record {
        StackRecord::Fixed { slot, .. } | StackRecord::Growable { slot } => slot,
    };
    if hidden {
        stacks::STACKS.unregister(*slot);
    } else {
        *slot = stacks::register(task.stack());
    }
}

/// Pages mapped by stack growth since boot.
pub static GROWN_PAGES: AtomicU64 = AtomicU64::new(0);

/// The owner id of a scanned range that belongs to no task (task ids start at 1).
const NO_TASK: u64 = 0;

/// The readable part of a task's stack: `[lowest mapped address, top)`.
pub fn mapped_stack(task: &Task) -> (usize, usize) {
    let stack = task.stack();
    (task.reservation().map_or(stack.lo, |r| r.mapped_lo()), stack.hi)
}

/// Whether a switched-out task never ran: its saved SP is still its stack top (the entry context
/// `spawn` built), so its stack holds nothing and only its saved registers (entry point and
/// argument) can hold a reference.
fn never_ran(task: &Task) -> bool {
    // SAFETY: callers pass a task that is not running, with the world stopped.
    unsafe { task.saved_context() }.sp as usize == task.stack().hi
}

/// Every memory range that may hold a task's live pointers, for a conservative root scan, each
/// with its owner: the in-use part of every task's stack (from its SP at the safe point, or its
/// saved SP, to the top) and the saved registers of tasks that are switched out. Call only with
/// the world stopped (`stw`), from the stopping core.
///
/// `scrub_dead`: also zero the dead part of every stopped stack, `[lowest mapped, SP)`. A
/// conservative scan must not find pointers that were stale before the scan: a frame pushed later
/// can leave a slot uninitialised, and the stale value would then look live to a later scan (the
/// collector's verifier reported such ghosts). The collector asks for it at mark start.
/// `skip_own`: leave out the calling core's own stack (it runs the collector, not a mutator).
/// `holds_no_roots`: tasks to leave out entirely (the collector's own mark workers, whose stacks
/// hold heap-internal addresses such as span bases, not mutator pointers).
///
/// This walk finds a running task's stack through the stack registry (from the SP its core
/// parked at); [`root_census`] lists the same tasks from the task table, so a stack this walk
/// cannot find is reported, not silently skipped.
pub fn for_each_root_range(
    scrub_dead: bool,
    skip_own: bool,
    holds_no_roots: &dyn Fn(&Task) -> bool,
    visit: &mut dyn FnMut(usize, usize, RootOwner),
) {
    // This core's registers may hold pointers that are on no stack yet: spill them into this
    // frame, which the scan of this core's stack below covers.
    let spilled = cpu::spill_general_registers();
    core::hint::black_box(&spilled);
    let me = percore::id();
    for core in (0..tricolor_abi::MAX_CORES).filter(|&c| percore::is_online(c)) {
        if core == me && skip_own {
            continue;
        }
        let Some(current) = percore::p_of(core).map(|p| p.current_ptr()).filter(|t| !t.is_null()) else {
            continue; // no task yet: the census lists none either
        };
        // SAFETY: a core's current task is alive while it runs (and the core is parked or us).
        let task = unsafe { &*current };
        if holds_no_roots(task) {
            continue;
        }
        let sp = if core == me { cpu::stack_pointer() } else { crate::stw::parked_sp(core) };
        let Some((stack, _)) = stacks::STACKS.find(sp) else { continue };
        if scrub_dead && core != me {
            // The core is parked: its current task runs nothing below its parked SP.
            scrub(mapped_stack(task).0.max(stack.lo), sp);
        }
        // The range covers the task's stack only if it is that stack (a core parked on some other
        // stack, say its system stack, leaves the task's own stack to the census to report).
        let own = stack.lo == task.stack().lo && stack.hi == task.stack().hi;
        visit(sp, stack.hi, RootOwner { task: if own { task.id().0 } else { NO_TASK }, part: RootPart::Stack });
    }
    let live = LIVE.lock();
    for task in live.as_ref().expect("tasks::init ran").values() {
        if task.state() != tricolor_runtime::task::TaskState::Ready || holds_no_roots(task) {
            continue; // running ones are covered above; exited ones hold nothing live
        }
        // SAFETY: a Ready task is not running, and with the world stopped nothing resumes it.
        let context = unsafe { task.saved_context() };
        // Only the register words x19..x28, fp, lr and sp: the struct's tail padding is whatever the
        // heap cell held before (stale pointers the verifier would report), and d8-d15 hold
        // nothing on the soft-float kernel.
        let saved = task.context_ptr() as usize;
        let id = task.id().0;
        visit(
            saved,
            saved + tricolor_runtime::context::CONTEXT_SP + 8,
            RootOwner { task: id, part: RootPart::SavedRegisters },
        );
        let sp = context.sp as usize;
        let (lowest, top) = mapped_stack(task);
        if sp < lowest || sp > top {
            continue; // a saved SP outside its own stack: the census reports the stack unscanned
        }
        if scrub_dead {
            scrub(lowest, sp);
        }
        visit(sp, top, RootOwner { task: id, part: RootPart::Stack });
    }
}

/// The root census (see `tricolor_gc::census`): every task not yet reaped, from the task table
/// and each core's current task, never from the stack registry [`for_each_root_range`] uses.
/// `exempt(task, current_here)` names a task's exemption (`current_here`: it is the calling
/// core's current task); tasks that never ran are exempt from the stack scan here. Call only with
/// the world stopped.
pub fn root_census(exempt: &dyn Fn(&Task, bool) -> Option<Exemption>, visit: &mut dyn FnMut(CensusEntry)) {
    let me = percore::id();
    let running: alloc::vec::Vec<(usize, *const Task)> = (0..tricolor_abi::MAX_CORES)
        .filter(|&c| percore::is_online(c))
        .filter_map(|c| percore::p_of(c).map(|p| (c, p.current_ptr())))
        .filter(|(_, t)| !t.is_null())
        .collect();
    let live = LIVE.lock();
    for task in live.as_ref().expect("tasks::init ran").values() {
        let on_core = running.iter().find(|(_, t)| core::ptr::eq(*t, Arc::as_ptr(task))).map(|&(c, _)| c);
        if on_core.is_none() && task.state() == tricolor_runtime::task::TaskState::Exited {
            continue; // its stack holds nothing live (it is freed once reaped)
        }
        let exemption = exempt(task, on_core == Some(me))
            .or_else(|| (on_core.is_none() && never_ran(task)).then_some(Exemption::NeverRan));
        let (lo, hi) = mapped_stack(task);
        visit(CensusEntry {
            task: task.id().0,
            name: alloc::string::String::from(task.name().as_str()),
            stack: ScanRange { lo, hi },
            running: on_core.is_some(),
            exempt: exemption,
        });
    }
}

/// Calls `visit` for every task not yet reaped (under the task table's lock: keep it short).
pub fn for_each_live(visit: &mut dyn FnMut(&Arc<Task>)) {
    let live = LIVE.lock();
    for task in live.as_ref().expect("tasks::init ran").values() {
        visit(task);
    }
}

/// If `addr` lies in a live task's saved registers: the task's name, state and the register
/// (word index into `Context`: 0..=9 are x19..x28, 10 fp, 11 lr, 12 sp). For diagnostics.
pub fn saved_register_at(
    addr: usize,
) -> Option<(tricolor_runtime::name::Name, tricolor_runtime::task::TaskState, usize)> {
    let live = LIVE.lock();
    live.as_ref()?.values().find_map(|task| {
        let base = task.context_ptr() as usize;
        (base..base + core::mem::size_of::<Context>())
            .contains(&addr)
            .then(|| (*task.name(), task.state(), (addr - base) / 8))
    })
}

/// Zeroes the dead stack memory `[lo, sp)` of a task that is not running (or of the caller's
/// own stack, below its frames).
pub fn scrub(lo: usize, sp: usize) {
    if sp > lo {
        // SAFETY: [lo, sp) is mapped stack memory below the SP of a stopped task: nothing live.
        unsafe { core::ptr::write_bytes(lo as *mut u8, 0, sp - lo) };
    }
}

/// Zeroes the calling task's own dead stack below its SP (less a margin for the calls this
/// function makes), with IRQs masked so no interrupt frame lands in the range meanwhile.
#[inline(never)]
pub fn scrub_own_stack() {
    const MARGIN: usize = 1024;
    let _irqs = IrqGuard::mask();
    let sp = cpu::stack_pointer();
    if let Some((stack, _)) = stacks::STACKS.find(sp) {
        // SAFETY: the running task is this one; it is alive.
        let lowest =
            unsafe { this_p().current() }.and_then(|t| t.reservation().map(|r| r.mapped_lo())).unwrap_or(stack.lo);
        if sp > lowest + MARGIN {
            scrub(lowest, sp - MARGIN);
        }
    }
}
