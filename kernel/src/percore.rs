//! Per-core data, reached through TPIDR_EL1 so finding it costs one register read.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tricolor_kernel::cmdline::MAX_CORES;

/// What each core knows about itself.
pub struct PerCore {
    /// Logical index: 0 is the boot core, then device-tree order.
    pub id: usize,
    /// MPIDR affinity, as PSCI and the device tree name the core.
    pub mpidr: AtomicU64,
    /// Set (Release) by the core itself once it runs Rust code with its own stacks.
    pub online: AtomicBool,
}

static CORES: [PerCore; MAX_CORES] = {
    let mut cores = [const { PerCore { id: 0, mpidr: AtomicU64::new(0), online: AtomicBool::new(false) } }; MAX_CORES];
    let mut i = 0;
    while i < MAX_CORES {
        cores[i].id = i;
        i += 1;
    }
    cores
};

/// Called first thing on each core: points TPIDR_EL1 at its `PerCore`.
pub fn init_this_core(id: usize) {
    let core = &CORES[id];
    core.mpidr.store(tricolor_arch::cpu::mpidr(), Ordering::Relaxed);
    tricolor_arch::cpu::set_percore_pointer(core as *const PerCore as usize);
}

/// This core's data.
#[inline]
pub fn this() -> &'static PerCore {
    let ptr = tricolor_arch::cpu::percore_pointer();
    if ptr == 0 {
        // Before init_this_core: only the boot core runs this early.
        return &CORES[0];
    }
    // SAFETY: TPIDR_EL1 is only ever set by init_this_core, to an element of the static CORES.
    unsafe { &*(ptr as *const PerCore) }
}

/// This core's logical index.
#[inline]
pub fn id() -> usize {
    this().id
}

/// A core by logical index.
pub fn get(id: usize) -> &'static PerCore {
    &CORES[id]
}

/// Number of cores that have marked themselves online.
pub fn online_count() -> usize {
    // Acquire pairs with the Release in mark_online: a core counted here has finished its setup.
    CORES.iter().filter(|c| c.online.load(Ordering::Acquire)).count()
}

/// Marks this core online (after its stacks, vectors and per-core pointer are set).
pub fn mark_online() {
    this().online.store(true, Ordering::Release);
}
