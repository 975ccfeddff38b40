//! The kernel's write barrier: restartable assembly windows with no preemption counter.
//!
//! `tricolor_gc::barrier` states the rules every barrier keeps; this is the kernel's way of
//! keeping them at Go's price. Go makes the barrier sequence an unsafe point (the compiler emits
//! no safe point inside it, and an asynchronous preemption that lands there is refused); a
//! bare-metal kernel owns its interrupt entry, so it can do better than refuse: every window's PC
//! ranges are listed in the `.barrier_windows` linker section, and the IRQ entry, **before it
//! dispatches anything**, moves an interrupted PC that lies inside a window back to the window's
//! first instruction ([`rewind`], Linux's restartable sequences). Whatever the interrupt then does
//! (a preemption, a stop-the-world, a phase change, a stack scan, another task's barriers on this
//! core), the window runs again from its flag load: it is atomic against every safe point without
//! touching the preemption counter.
//!
//! One window, as [`write_pointer`] emits it (`slot` and `new` are the compiler's registers):
//!
//! ```text
//! A:  adrp t0, WRITE_BARRIER                  \
//!     ldr  t0, [t0, :lo12:WRITE_BARRIER]       | range A, inline: mode `off` pays these three
//!     cbnz t0, B                               |
//!     stlr new, [slot]                        /  the store, A's last instruction
//!   (the code after the store)
//!
//!   .text.tricolor_wb (out of line):
//! B:  mrs  t0, tpidr_el1                      \
//!     add  t0, t0, #(PERCORE_GC_OFFSET + GCCORE_WBBUF_OFFSET)    this core's wbBuf
//!     ldp  t1, t2, [t0]                        | next, end
//!     add  t3, t1, #2                          |
//!     cmp  t3, t2                              | room for two?
//!     b.hi FULL                                |
//!     add  t1, t0, t1, lsl #3                  | range B
//!     ldr  t2, [slot]                          | old
//!     stp  t2, new, [t1, #entries]             | the entries first,
//!     str  t3, [t0]                            | then `next`,
//!     stlr new, [slot]                        /  then the store, B's last instruction
//!     b    (the code after the store)
//! FULL: cbz t2, guarded; b flush               outside the windows
//! ```
//!
//! Both ranges rewind to A's first instruction. The invariants, where they hold here:
//! - **The store is each range's last instruction and everything before it is safe to repeat**:
//!   loads, a compare, the entry writes (into free entries, `next` not yet past them) and the bump
//!   (after it, a restart only records the pair twice). An interrupt after the store is outside
//!   the window and is not rewound.
//! - **Entries, then `next`, then the store**: `stp` before `str` before `stlr`, in program order
//!   on this core, which is the only order that matters: the buffer is read by this core (its
//!   flushes: between windows, or in an interrupt taken inside one, which is rewound first) or with
//!   the world stopped (whose handshake orders everything).
//! - **Rewind only at IRQ entry, before dispatch** (`fault::handle` calls [`rewind`] for kernel
//!   IRQs only): a synchronous exception inside a window is a bug to report at its real PC, and
//!   nothing a synchronous handler does is a safe point.
//! - **Inputs live until the store**: `slot` and `new` are `in` operands the assembly never
//!   writes, so a restart reads the same ones; the temporaries are outputs the restart rewrites.
//! - **Shading is not restart-safe, so it never runs in a window**: in `direct` and `checked` the
//!   collector makes every wbBuf always full (`end == 0`), the room check fails, and `cbz t2`
//!   sends the store to `tricolor_gc::barrier::write_pointer_guarded`, which shades (and checks)
//!   and stores under the preemption counter, as every store did before.
//! - **A full buffer leaves the window for the flush**: [`tricolor_wb_flush_full`] takes the
//!   preemption counter and moves to the core's system stack *before* anything is saved (16 bytes
//!   of the caller's stack: its frame record), flushes there, comes back and drops the counter;
//!   the window is then retried from the top. The task's stack stays scannable meanwhile: the
//!   compiler spilled what it keeps across the call into the caller's frame, and no safe point
//!   can reach the task while it is on the system stack (the counter is held).
//! - **Checked mode's caller `Location`** is an operand of the `guarded` branch only (an asm goto
//!   label block): the window neither loads nor passes it.

use core::panic::Location;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tricolor_abi::MAX_CORES;
use tricolor_arch::exception::TrapFrame;
use tricolor_gc::wbbuf::{WBBUF_END_OFFSET, WBBUF_ENTRIES_OFFSET, WBBUF_NEXT_OFFSET};
use tricolor_gc::GCCORE_WBBUF_OFFSET;
use tricolor_runtime::p::P;

use super::Kernel;
use crate::percore::PERCORE_GC_OFFSET;

/// This core's wbBuf from TPIDR_EL1: one `add` immediate.
const WBBUF_FROM_TPIDR: usize = PERCORE_GC_OFFSET + GCCORE_WBBUF_OFFSET;

const _: () = {
    assert!(WBBUF_FROM_TPIDR < 4096, "the window reaches its wbBuf with one add #imm12");
    assert!(WBBUF_NEXT_OFFSET == 0 && WBBUF_END_OFFSET == 8, "ldp next, end, [wbBuf]");
    assert!(WBBUF_ENTRIES_OFFSET <= 504 && WBBUF_ENTRIES_OFFSET.is_multiple_of(8), "stp's scaled imm7");
    // The flush stub's immediates: `ldr w` (scaled by 4), `ldrb`/`strb`, `ldr x` (scaled by 8).
    assert!(P::PREEMPT_DEPTH_OFFSET.is_multiple_of(4) && P::PREEMPT_DEPTH_OFFSET < 16384);
    assert!(P::SYSTEM_STACK_BUSY_OFFSET < 4096);
    assert!(P::SYSTEM_STACK_TOP_OFFSET.is_multiple_of(8) && P::SYSTEM_STACK_TOP_OFFSET < 32768);
};

/// One range of a window, as the assembly lists it in `.barrier_windows`: a PC in `[lo, hi)` is
/// inside the window and restarts at `restart`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowRange {
    /// First instruction of the range.
    pub lo: usize,
    /// One past the range's last instruction (its store).
    pub hi: usize,
    /// The window's first instruction (the flag load).
    pub restart: usize,
}

unsafe extern "C" {
    static mut __barrier_windows_start: WindowRange;
    static mut __barrier_windows_end: WindowRange;
}

/// Set once [`init`] has sorted the table; [`rewind`] searches only a sorted table.
static SORTED: AtomicBool = AtomicBool::new(false);

/// The debug switch for the window test's negative control: off, [`rewind`] leaves every PC
/// where it is (and the verifier must then catch the losses at the vulnerable offsets).
static REWIND_ENABLED: AtomicBool = AtomicBool::new(true);

/// Interrupted windows rewound, per core (statistics and tests).
static REWINDS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// The window table. Sorted by `lo` once [`init`] ran.
pub fn windows() -> &'static [WindowRange] {
    let start = &raw const __barrier_windows_start;
    let end = &raw const __barrier_windows_end;
    // SAFETY: linker.ld brackets `.barrier_windows`, which holds only `WindowRange`s (three
    // 8-aligned words each, emitted by `write_pointer`'s assembly); the table is written only by
    // `init`, on the boot core before any other core runs and before IRQs are unmasked, and read
    // afterwards.
    unsafe {
        let n = usize::try_from(end.offset_from(start)).expect("window table end before start");
        core::slice::from_raw_parts(start, n)
    }
}

/// Sorts the window table for [`rewind`]'s binary search. Call once, on the boot core, before
/// IRQs are unmasked and before other cores start.
pub fn init() {
    let start = &raw mut __barrier_windows_start;
    let end = &raw const __barrier_windows_end;
    // SAFETY: as in `windows`; nothing else reads or writes the table yet (boot core, IRQs
    // masked, no other core running), so this is the only reference.
    let table = unsafe {
        let n = usize::try_from(end.offset_from(start)).expect("window table end before start");
        core::slice::from_raw_parts_mut(start, n)
    };
    table.sort_unstable_by_key(|w| w.lo);
    debug_assert!(table.windows(2).all(|w| w[0].hi <= w[1].lo), "barrier windows overlap");
    // Ordering: Release, so a core that sees the flag (Acquire) sees the sorted table.
    SORTED.store(true, Ordering::Release);
}

/// The window range holding `pc`, if any.
#[inline]
pub fn window_at(pc: usize) -> Option<WindowRange> {
    // Ordering: Acquire, pairing with `init`'s Release (the sorted table).
    if !SORTED.load(Ordering::Acquire) {
        return None;
    }
    let table = windows();
    let i = table.partition_point(|w| w.lo <= pc);
    let w = *table.get(i.checked_sub(1)?)?;
    (pc < w.hi).then_some(w)
}

/// The IRQ entry's first step, before dispatch: an interrupted PC inside a barrier window goes
/// back to the window's first instruction, so the window runs again whole after whatever the
/// interrupt does. Only for IRQs taken from kernel code (the module's rules); also the window
/// test's simulated interrupt.
#[inline]
pub fn rewind(frame: &mut TrapFrame) {
    // Ordering: Relaxed: a debug switch, flipped by the window test between its runs.
    if !REWIND_ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Some(w) = window_at(frame.elr as usize) {
        frame.elr = w.restart as u64;
        // Ordering: Relaxed: a statistic.
        REWINDS[crate::percore::id()].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(feature = "ktest")]
/// Switches [`rewind`] on or off (the window test's negative control). On by default.
pub fn set_rewind_enabled(on: bool) {
    // Ordering: Relaxed: see `rewind`.
    REWIND_ENABLED.store(on, Ordering::Relaxed);
}

#[cfg(feature = "ktest")]
/// Windows rewound so far on `core`.
pub fn rewinds(core: usize) -> u64 {
    // Ordering: Relaxed: a statistic.
    REWINDS[core].load(Ordering::Relaxed)
}

/// The barriered store `*slot = new` (the kernel's `Platform::write_pointer`): one restartable
/// window (module docs), with the guarded path for the modes that shade and the flush for a full
/// buffer outside it.
#[inline(always)]
pub fn write_pointer(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    {
        // SAFETY: the window reads `WRITE_BARRIER` (a static) and this core's wbBuf, found from
        // TPIDR_EL1 (installed at bring-up, before any barrier runs) at the offsets the gc crate
        // and percore.rs export, writes only two free entries and `next` of that buffer (the
        // ownership rule of `GcCore`: no safe point splits a window, [`rewind`] restarts it) and
        // the slot, which `&AtomicUsize` makes valid for an atomic store. It uses no stack.
        // Ordering: `stlr` is the Release store `write_pointer_guarded` makes (its comment says
        // why mutators need Release); the flag, `next`/`end` and the old value are plain loads,
        // Relaxed as in the guarded path (the flag and the mode change only with the world
        // stopped; the buffer is this core's).
        unsafe {
            core::arch::asm!(
                "2:",
                "adrp {t0}, {flag}",
                "ldr {t0}, [{t0}, :lo12:{flag}]",
                "cbnz {t0}, 3f",
                "stlr {new}, [{slot}]",
                "4:",
                ".pushsection .text.tricolor_wb, \"ax\"",
                "3:",
                "mrs {t0}, tpidr_el1",
                "add {t0}, {t0}, #{buf}",
                "ldp {t1}, {t2}, [{t0}]",
                "add {t3}, {t1}, #2",
                "cmp {t3}, {t2}",
                "b.hi 5f",
                "add {t1}, {t0}, {t1}, lsl #3",
                "ldr {t2}, [{slot}]",
                "stp {t2}, {new}, [{t1}, #{entries}]",
                "str {t3}, [{t0}]",
                "stlr {new}, [{slot}]",
                "6:",
                "b 4b",
                "5:",
                "cbz {t2}, 7f",
                "b {full}",
                "7:",
                "b {guarded}",
                ".popsection",
                ".pushsection .barrier_windows, \"aw\"",
                ".balign 8",
                ".quad 2b, 4b, 2b",
                ".quad 3b, 6b, 2b",
                ".popsection",
                flag = sym tricolor_gc::WRITE_BARRIER,
                buf = const WBBUF_FROM_TPIDR,
                entries = const WBBUF_ENTRIES_OFFSET,
                slot = in(reg) slot.as_ptr(),
                new = in(reg) new,
                t0 = out(reg) _,
                t1 = out(reg) _,
                t2 = out(reg) _,
                t3 = out(reg) _,
                full = label { flush_and_retry(slot, new, caller) },
                guarded = label { guarded_store(slot, new, caller) },
                options(nostack),
            );
        }
    }
}

/// A window found its buffer full: flush it, then run the window again.
#[cold]
#[inline(never)]
fn flush_and_retry(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    // SAFETY: outside any window (a label of one), on a core whose TPIDR_EL1 is installed.
    unsafe { tricolor_wb_flush_full() };
    write_pointer(slot, new, caller);
}

/// The modes that shade (`direct`, `checked`): the guarded barrier, out of line.
#[cold]
#[inline(never)]
fn guarded_store(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    tricolor_gc::barrier::write_pointer_guarded::<Kernel>(slot, new, caller);
}

/// A window found its wbBuf full: flush it on this core's system stack under the preemption
/// counter (module docs), then return for the retry. The caller's stack holds only this stub's
/// frame record (16 bytes); the registers the flush saves go on the system stack. If the system
/// stack is already in use on this core (a nested call: a barrier in code that `systemstack`
/// runs, or in an interrupt handler taken there) the flush runs where it is, as `systemstack`
/// does.
///
/// # Safety
/// This core's TPIDR_EL1 holds its installed per-core block; the caller is outside any barrier
/// window.
#[unsafe(naked)]
unsafe extern "C" fn tricolor_wb_flush_full() {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "mrs x9, tpidr_el1",
        // Preemption off: `Preempt::disable`'s plain load, add and store (only this core writes
        // the counter; see runtime/src/preempt.rs for why no atomic read-modify-write is needed).
        "ldr w10, [x9, #{depth}]",
        "add w10, w10, #1",
        "str w10, [x9, #{depth}]",
        "ldrb w10, [x9, #{busy}]",
        "cbnz w10, 2f",
        // The system stack is free: mark it busy (as `systemstack` does, so a handler taken on it
        // stays where it is), then switch. Nothing is live on it: preemption is off, so no other
        // task of this core can be using it.
        "mov w10, #1",
        "strb w10, [x9, #{busy}]",
        "ldr x10, [x9, #{top}]",
        "mov sp, x10",
        "bl {flush}",
        // x29 is callee-saved: it still holds our frame on the caller's stack.
        "mov sp, x29",
        "mrs x9, tpidr_el1",
        "strb wzr, [x9, #{busy}]",
        "b 3f",
        "2:",
        "bl {flush}",
        "3:",
        "ldp x29, x30, [sp], #16",
        // Preemption back on, on the caller's stack (a tick deferred meanwhile yields there).
        "b {enable}",
        depth = const P::PREEMPT_DEPTH_OFFSET,
        busy = const P::SYSTEM_STACK_BUSY_OFFSET,
        top = const P::SYSTEM_STACK_TOP_OFFSET,
        flush = sym tricolor_wb_flush_on_system_stack,
        enable = sym tricolor_wb_preempt_enable,
    )
}

/// [`tricolor_wb_flush_full`]'s work, on the system stack with preemption off.
extern "C" fn tricolor_wb_flush_on_system_stack() {
    tricolor_gc::barrier::flush_full_window_buffer::<Kernel>();
}

/// [`tricolor_wb_flush_full`]'s last step: the guard drop that pairs with its raw disable.
extern "C" fn tricolor_wb_preempt_enable() {
    tricolor_runtime::this_p().preempt.enable_after_raw_disable();
}
