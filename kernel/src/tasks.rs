//! Kernel tasks: spawning with guarded stacks, the per-core idle loop, timer preemption, reaping.
//!
//! Scheduling policy lives in `tricolor_runtime` (round-robin per-core queues, idle cores steal
//! yielded tasks, preempted tasks never migrate); this module wires it to the timer and the page
//! allocator. Each core's boot flow becomes its idle task.

use crate::{irq, memory, percore, stacks, vm};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use hashbrown::HashMap;
use spin::{Mutex, Once};
use tricolor_arch::{cpu, timer};
use tricolor_kernel::mem::PAGE_SIZE;
use tricolor_runtime::context::Context;
use tricolor_runtime::runq::{RunQueues, StealPolicy};
use tricolor_runtime::sched::SwitchReason;
use tricolor_runtime::stack::registry::StackSlot;
use tricolor_runtime::stack::{Stack, StackKind};
use tricolor_runtime::task::{Task, TaskId};
use tricolor_runtime::{schedule, this_p};

static QUEUES: Once<RunQueues> = Once::new();
/// Timer period in counter ticks (0 = preemption not started).
static QUANTUM_TICKS: AtomicU64 = AtomicU64::new(0);

/// What to free when a task is reaped: its stack pages and registry slot.
struct StackRecord {
    base: usize,
    pages: usize,
    slot: StackSlot,
}
static STACK_RECORDS: Mutex<Option<HashMap<TaskId, StackRecord>>> = Mutex::new(None);

/// The run queues (after `init`).
pub fn queues() -> &'static RunQueues {
    QUEUES.get().expect("tasks::init ran at boot")
}

/// Creates the run queues; called once on the boot core.
pub fn init(cores: usize) {
    QUEUES.call_once(|| RunQueues::new(cores, StealPolicy::WhenIdle));
    *STACK_RECORDS.lock() = Some(HashMap::new());
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
    p.adopt_current(Arc::new(Task::adopt_boot(p.core(), boot)));
    p.preempt.set_deferred_hook(deferred_preemption);
}

/// Starts the periodic tick on the calling core (IRQs stay as the caller has them).
pub fn start_tick(quantum_us: u64) {
    let ticks = (cpu::counter_frequency() * quantum_us / 1_000_000).max(1);
    QUANTUM_TICKS.store(ticks, Ordering::Relaxed);
    timer::arm(ticks);
}

fn on_tick(_: u32, _: &mut tricolor_arch::exception::TrapFrame) {
    let quantum = QUANTUM_TICKS.load(Ordering::Relaxed);
    if quantum == 0 {
        timer::disarm();
        return;
    }
    timer::arm(quantum);
    if let tricolor_runtime::preempt::Tick::Preempt = this_p().preempt.on_tick() {
        // Runs on the interrupted task's stack (IRQs are taken on SP_EL0), so switching here
        // leaves the interrupted state in that task's frame until it is resumed.
        schedule(queues(), SwitchReason::Preempt);
    }
}

/// Called when the outermost preemption guard drops after a deferred tick.
fn deferred_preemption() {
    if crate::stw::requested() {
        let masked = cpu::mask_irqs();
        crate::stw::park_here();
        cpu::restore_irqs(masked);
    }
    schedule(queues(), SwitchReason::Preempt);
}

/// Gives up the core to the next runnable task (if any).
pub fn yield_now() {
    schedule(queues(), SwitchReason::Yield);
}

/// How to run a new task.
pub struct Spawn {
    pub name: &'static str,
    pub stack_bytes: usize,
    /// Run only on this core.
    pub pinned: Option<usize>,
}

/// The first Rust code of every task (through the runtime's entry trampoline).
extern "C" fn task_start(entry: usize, arg: usize) -> ! {
    tricolor_runtime::begin_task(queues());
    // SAFETY: `spawn` passes a `fn(usize)` as `entry`.
    let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(entry) };
    f(arg);
    tricolor_runtime::exit_current(queues())
}

/// Spawns `entry(arg)` as a task on a stack of `stack_bytes` (rounded up to pages) with an
/// unmapped guard page below it, queued on `pinned` or on the calling core.
pub fn spawn(options: Spawn, entry: fn(usize), arg: usize) -> Result<Arc<Task>, &'static str> {
    let pages = options.stack_bytes.div_ceil(PAGE_SIZE) + 1;
    let base = memory::alloc_pages(pages, 1).map_err(|_| "out of memory for a task stack")?;
    let guard = base;
    vm::unmap_live(guard).map_err(|_| "cannot unmap the guard page")?;
    let (lo, hi) = (base + PAGE_SIZE, base + pages * PAGE_SIZE);
    let stack = Stack::new(StackKind::Task, lo, hi, PAGE_SIZE, options.pinned, options.name);
    let context = Context::for_entry(
        hi,
        tricolor_runtime::task_entry_address(),
        task_start as *const () as usize,
        entry as *const () as usize,
        arg,
    );
    let mut task = Task::new(options.name, stack, context);
    if let Some(core) = options.pinned {
        task = task.pinned_to(core);
    }
    let task = Arc::new(task);
    let slot = stacks::register(&stack);
    STACK_RECORDS.lock().as_mut().expect("tasks::init ran").insert(task.id(), StackRecord { base, pages, slot });
    let core = options.pinned.unwrap_or_else(percore::id);
    let masked = cpu::mask_irqs();
    queues().enqueue(core, Arc::clone(&task));
    cpu::restore_irqs(masked);
    if core != percore::id() {
        cpu::send_event();
    }
    Ok(task)
}

/// Frees the stacks of exited tasks. Returns how many were reaped.
pub fn reap() -> usize {
    let mut reaped = 0;
    loop {
        let masked = cpu::mask_irqs();
        let exited = queues().take_exited();
        cpu::restore_irqs(masked);
        let Some(task) = exited else { break };
        let record = STACK_RECORDS.lock().as_mut().expect("tasks::init ran").remove(&task.id());
        if let Some(StackRecord { base, pages, slot }) = record {
            stacks::STACKS.unregister(slot);
            // Identity-map the guard again before the pages go back to the allocator.
            vm::map_live(base, base, tricolor_arch::pagetable::Attributes::RAM_RWX).expect("guard remap");
            memory::free_pages(base, pages);
        }
        reaped += 1;
    }
    reaped
}

/// Idle-loop iterations per core (a liveness statistic).
pub static IDLE_LOOPS: [AtomicU64; tricolor_kernel::cmdline::MAX_CORES] =
    [const { AtomicU64::new(0) }; tricolor_kernel::cmdline::MAX_CORES];

/// The idle loop every secondary core ends in (the boot core enters it when it has no test to
/// run): runs cross-core calls, hands the core to runnable tasks, sleeps until an event.
pub fn idle_loop(mut poll: impl FnMut()) -> ! {
    cpu::restore_irqs(false);
    loop {
        IDLE_LOOPS[percore::id()].fetch_add(1, Ordering::Relaxed);
        poll();
        // Whatever `poll` ran (a cross-core call) may have left IRQs masked: idle takes them.
        cpu::restore_irqs(false);
        yield_now();
        if percore::id() == 0 {
            reap();
        }
        cpu::wait_for_event();
    }
}

/// Stops the periodic tick on every core (each disarms at its next tick).
pub fn stop_ticks() {
    QUANTUM_TICKS.store(0, Ordering::Relaxed);
}
