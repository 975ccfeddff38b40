//! Per-core state. The runtime's `P` (stacks, preemption counter, current task, the GC's slot) is
//! reached through TPIDR_EL1; the kernel adds what bring-up needs (MPIDR, online flag).

use crate::stacks;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tricolor_kernel::cmdline::MAX_CORES;
use tricolor_runtime::p::P;

/// Backing store for each core's `P`, written once by that core in `init_this_core`.
struct PSlots([UnsafeCell<MaybeUninit<P>>; MAX_CORES]);
// SAFETY: slot `i` is only written by core `i`, once, before anything reads it through TPIDR_EL1.
unsafe impl Sync for PSlots {}
static P_SLOTS: PSlots = PSlots([const { UnsafeCell::new(MaybeUninit::uninit()) }; MAX_CORES]);

static MPIDR: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static ONLINE: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Called first thing on each core: builds its `P` (system and exception stacks from linker.ld),
/// installs it in TPIDR_EL1, and registers the core's stacks for fault reports.
pub fn init_this_core(id: usize) {
    MPIDR[id].store(tricolor_arch::cpu::mpidr(), Ordering::Relaxed);
    let [boot, system, exception] = stacks::of_core(id);
    // SAFETY: the system stack is mapped (vm::init ran on the boot core before any secondary
    // starts; the boot core paints its own before vm::init, with the MMU off, which is equally
    // fine) and nothing has run on it yet.
    unsafe { system.paint() };
    // SAFETY: each core initialises only its own slot, exactly once, here; no reference to the
    // slot exists yet.
    let slot = unsafe { &mut *P_SLOTS.0[id].get() };
    let p = P::init_in(slot, id, system, exception);
    tricolor_runtime::install_p(p);
    for stack in [boot, system, exception] {
        stacks::register(&stack);
    }
}

/// Core `id`'s `P` (after it initialised it).
pub fn p_of(id: usize) -> Option<&'static P> {
    // SAFETY: a core's slot is initialised before it marks itself online and never changes after.
    is_online(id).then(|| unsafe { (*P_SLOTS.0[id].get()).assume_init_ref() })
}

/// This core's logical index (0 before `init_this_core`: only the boot core runs that early).
#[inline]
pub fn id() -> usize {
    if tricolor_arch::cpu::percore_pointer() == 0 {
        return 0;
    }
    tricolor_runtime::this_p().core()
}

/// MPIDR of a core (0 until it or the boot core set it).
pub fn mpidr(id: usize) -> u64 {
    MPIDR[id].load(Ordering::Relaxed)
}

/// Records the MPIDR the boot core is about to start `id` with.
pub fn set_mpidr(id: usize, mpidr: u64) {
    MPIDR[id].store(mpidr, Ordering::Relaxed);
}

/// True once `id` has finished its bring-up.
pub fn is_online(id: usize) -> bool {
    // Acquire pairs with the Release in mark_online: the core's setup is visible.
    ONLINE[id].load(Ordering::Acquire)
}

/// Number of cores online.
pub fn online_count() -> usize {
    (0..MAX_CORES).filter(|&c| is_online(c)).count()
}

/// Marks this core online (after its stacks, vectors, MMU, interrupts and `P` are set).
pub fn mark_online() {
    ONLINE[id()].store(true, Ordering::Release);
}
