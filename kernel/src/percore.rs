//! Per-core state: each core's [`PerCore`] block, reached through TPIDR_EL1
//! (`tricolor_arch::percore`), and what bring-up needs beside it (MPIDR, online flag).
//!
//! The block's layout is fixed (`#[repr(C)]`) so that code without Rust's field names, assembly
//! in particular, reaches its parts from TPIDR_EL1 by a constant offset:
//!
//! | offset from TPIDR_EL1 | what | reached by |
//! |---|---|---|
//! | 0 | the runtime's `P` (stacks, preemption counter, current task) | `tricolor_runtime::this_p()` |
//! | [`PERCORE_GC_OFFSET`] | the collector's `GcCore` (wbBuf, mark work, allocation cache) | [`this_gc_core`], `Kernel::current_core()` |
//!
//! The blocks are one static array: a `GcCore` holds a wbBuf of up to 4096 entries (32 KiB), too
//! big for a boot stack or an early heap, and a static needs no allocation before the heap exists.

use crate::stacks;
use core::cell::UnsafeCell;
use core::mem::{offset_of, MaybeUninit};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_gc::GcCore;
use tricolor_runtime::p::P;

/// One core's block. TPIDR_EL1 points at it from the core's bring-up on.
#[repr(C)]
pub struct PerCore {
    /// The runtime's `P`, first: TPIDR_EL1 is then also the address of the `P`, which is what
    /// `this_p()` reads it as. Written once, by its own core, in [`init_this_core`].
    p: UnsafeCell<MaybeUninit<P>>,
    /// The collector's per-core state, at [`PERCORE_GC_OFFSET`]. Initialised at compile time.
    gc: GcCore,
}

/// Byte offset of a core's `GcCore` from the address in its TPIDR_EL1: `mrs xN, tpidr_el1` then
/// `add xN, xN, #PERCORE_GC_OFFSET` is the core's `&GcCore` (pass it to `asm!` as a `const`
/// operand, never as a number written down).
pub const PERCORE_GC_OFFSET: usize = offset_of!(PerCore, gc);

// What the readers of TPIDR_EL1 assume about the layout, checked when the kernel compiles.
const _: () = {
    assert!(offset_of!(PerCore, p) == 0, "this_p() reads TPIDR_EL1 as the address of the P");
    assert!(PERCORE_GC_OFFSET.is_multiple_of(align_of::<GcCore>()), "GcCore misaligned in PerCore");
    // The 12-bit unsigned immediate of `add`: one instruction from TPIDR_EL1 to the GcCore.
    assert!(PERCORE_GC_OFFSET < 4096, "PERCORE_GC_OFFSET does not fit an `add` immediate");
};

impl PerCore {
    const fn new() -> PerCore {
        PerCore { p: UnsafeCell::new(MaybeUninit::uninit()), gc: GcCore::new() }
    }
}

// SAFETY: `p` is written once, by its own core, before the block is installed in that core's
// TPIDR_EL1 and before the core is marked online (Release, see `mark_online`), and only read after
// that; `gc` is `Sync` (its own ownership rule: own core with preemption off, or the world
// stopped).
unsafe impl Sync for PerCore {}

static PERCORE: [PerCore; MAX_CORES] = [const { PerCore::new() }; MAX_CORES];

static MPIDR: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static ONLINE: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// Called first thing on each core: builds its `P` (system and exception stacks from linker.ld),
/// installs its block in TPIDR_EL1, and registers the core's stacks for fault reports.
pub fn init_this_core(id: usize) {
    MPIDR[id].store(tricolor_arch::cpu::mpidr(), Ordering::Relaxed);
    let [boot, system, exception] = stacks::of_core(id);
    // SAFETY: the system stack is mapped (vm::init ran on the boot core before any secondary
    // starts; the boot core paints its own before vm::init, with the MMU off, which is equally
    // fine) and nothing has run on it yet.
    unsafe { system.paint() };
    let block = &PERCORE[id];
    // SAFETY: each core initialises only its own slot, exactly once, here; no reference to the
    // slot exists yet (nothing reads it before the block is installed or the core is online).
    let slot = unsafe { &mut *block.p.get() };
    P::init_in(slot, id, system, exception);
    // SAFETY: the block is a static (it lives for the whole run) and this core's own; its `P`, at
    // offset 0 as `this_p()` expects, was initialised just above and its `GcCore` at compile time;
    // this is the only installation on this core, before anything on it reads TPIDR_EL1.
    unsafe { tricolor_arch::percore::install_block(core::ptr::from_ref(block).cast()) };
    for stack in [boot, system, exception] {
        stacks::register(&stack);
    }
}

/// True once this core's block is in TPIDR_EL1 (only the boot core runs code before that).
#[inline(always)]
pub fn is_installed() -> bool {
    !tricolor_arch::percore::block().is_null()
}

/// Core `id`'s `P` (after it initialised it).
pub fn p_of(id: usize) -> Option<&'static P> {
    // SAFETY: a core's slot is initialised before it marks itself online and never changes after.
    is_online(id).then(|| unsafe { (*PERCORE[id].p.get()).assume_init_ref() })
}

/// Core `index`'s collector state (any core, online or not: it is initialised at compile time).
#[inline(always)]
pub fn gc_core(index: usize) -> &'static GcCore {
    &PERCORE[index].gc
}

/// This core's collector state: TPIDR_EL1 plus [`PERCORE_GC_OFFSET`], no core index involved.
/// Only after this core's bring-up (`init_this_core`; debug builds check).
#[inline(always)]
pub fn this_gc_core() -> &'static GcCore {
    let block = tricolor_arch::percore::block();
    debug_assert!(!block.is_null(), "this_gc_core() before this core's block is installed");
    // SAFETY: TPIDR_EL1 holds this core's `&PERCORE[i]` (init_this_core; its exposed provenance
    // covers the whole block), so `block + PERCORE_GC_OFFSET` is its `gc` field, a `GcCore`
    // initialised at compile time that lives for the whole run.
    unsafe { &*block.add(PERCORE_GC_OFFSET).cast::<GcCore>() }
}

/// This core's logical index (0 before `init_this_core`: only the boot core runs that early).
#[inline]
pub fn id() -> usize {
    if !is_installed() {
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
