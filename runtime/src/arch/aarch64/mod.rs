//! Orientation: the aarch64 half of the runtime: the assembly of the runtime's own mechanisms,
//! running a closure on the system stack (`systemstack`), switching task register files
//! (`switch_context`) and the first-run trampoline of a task, plus the scheduler's entry points
//! around the switch. Everything it decides is decided by the portable modules (`sched`, `runq`,
//! `preempt`); this file only moves registers. System registers are the arch crate's: this core's
//! `P` is found through TPIDR_EL1 with `tricolor_arch::percore`, IRQs are masked with
//! `tricolor_arch::irqmask`, SP is read with `tricolor_arch::cpu::stack_pointer`.
//!
//! Conventions the kernel must keep:
//! - TPIDR_EL1 (`tricolor_arch::percore::install_block`, once per core at boot, before anything
//!   calls `this_p`) points to a block that lives for the whole run and whose first field, at
//!   offset 0, is this core's `P`, initialised before the block is installed.
//! - Never keep a `&P` from `this_p()` across a yield: a task that yields may resume on another
//!   core. (Across a *preemption* it stays valid: preempted tasks resume on their own core.)
//! - A task's start function (see [`task_entry_trampoline`]) calls [`begin_task`] first.

use alloc::sync::Arc;
use core::arch::naked_asm;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::sync::atomic::{compiler_fence, Ordering};

use tricolor_arch::irqmask::{self, IrqGuard};

use crate::context::{Context, CONTEXT_FP, CONTEXT_SP, CONTEXT_X19};
use crate::p::{PStats, P};
use crate::runq::RunQueues;
use crate::sched::{finish_switch, prepare_switch, SwitchReason};
use crate::task::Task;

/// This core's `P`.
///
/// # Panics
/// If the kernel has not installed this core's per-core block yet.
#[inline(always)]
pub fn this_p() -> &'static P {
    let block = tricolor_arch::percore::block();
    if block.is_null() {
        p_not_installed();
    }
    // SAFETY: by this module's convention the block TPIDR_EL1 points to lives for the whole run and
    // holds this core's initialised `P` at offset 0 (the provenance, exposed at installation,
    // covers it); a `P` is only read through shared references (its mutable state is atomics).
    unsafe { &*block.cast::<P>() }
}

#[cold]
#[inline(never)]
fn p_not_installed() -> ! {
    panic!("this_p(): TPIDR_EL1 is 0, the kernel has not installed this core's per-core block");
}

/// The task running on this core (the caller itself, in task context).
pub fn current_task() -> Option<Arc<Task>> {
    // SAFETY: called on this core by the running task (or an interrupt handler nested in it),
    // which is `P::current`'s contract: the current task cannot be freed while it runs.
    unsafe { this_p().current() }
}

// ---------------------------------------------------------------------------------------------
// systemstack
// ---------------------------------------------------------------------------------------------

/// The closure and its result, in the caller's frame while `f` runs on the system stack.
#[repr(C)]
struct Call<F, R> {
    f: ManuallyDrop<F>,
    result: MaybeUninit<R>,
}

/// Runs on the system stack: takes the closure out of `call`, runs it, stores the result.
extern "C" fn call_on_system_stack<F: FnOnce() -> R, R>(call: *mut Call<F, R>) {
    // SAFETY: `call` points to the `Call` in `systemstack`'s frame, which outlives this call
    // (systemstack waits for the trampoline to return) and is not otherwise accessed meanwhile.
    let call = unsafe { &mut *call };
    // SAFETY: `f` is initialised in `systemstack` and taken exactly once, here.
    let f = unsafe { ManuallyDrop::take(&mut call.f) };
    call.result.write(f());
}

/// Runs `f` on this core's system stack and returns its result (Go's `systemstack`).
///
/// If the system stack is already in use on this core (a nested `systemstack`, or an interrupt
/// taken while on it) `f` just runs on the current stack: nesting costs nothing and never resets
/// SP into frames that are live. Preemption is disabled while on the system stack: the stack is
/// the core's, so a task switched out on it would have its frames overwritten by the next user
/// (and a task resumed on another core would run on this core's stack).
///
/// Caller-stack cost: the closure state `Call<F, R>` (size_of F plus size_of R) in the caller's
/// frame (this function is `inline(always)`), plus the 16 bytes the trampoline pushes (its
/// frame record: caller's x29 and x30). Nothing else: the trampoline switches SP before calling
/// anything. Checked on the release build for aarch64 (`--emit asm`) and under QEMU by painting
/// the caller's stack: a function whose body is `systemstack(|| work())` (closure state and
/// result 8 bytes) has a 32-byte frame (x30, x19 holding the P, the 8-byte `Call`, padding to 16)
/// and the whole call touches exactly 48 bytes below that function's caller's SP, however deep
/// `work` goes (11440 bytes for the same work called directly).
///
/// A panic in `f` (the kernel is built with panic=abort) runs the panic handler on the system
/// stack, which is what we want when the task stack is the one in trouble.
#[inline(always)]
pub fn systemstack<R, F: FnOnce() -> R>(f: F) -> R {
    let p = this_p();
    // Relaxed: `system_stack_busy` is only read and written on this core; the compiler fences
    // order it against the switch as seen by this core's interrupt handlers.
    if p.system_stack_busy.load(Ordering::Relaxed) {
        return f();
    }
    let _no_preempt = p.preempt.disable();
    p.system_stack_busy.store(true, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    PStats::bump(&p.stats.systemstack_switches);
    let mut call = Call { f: ManuallyDrop::new(f), result: MaybeUninit::<R>::uninit() };
    // SAFETY: `call_on_system_stack::<F, R>` is an `extern "C" fn(*mut Call<F, R>)` and `call`
    // is such a value, alive until the trampoline returns; the system stack's top is 16-byte
    // aligned (Stack::new) and unused (not busy, checked above, and preemption is disabled so
    // no other task of this core can start using it).
    unsafe {
        systemstack_switch(call_on_system_stack::<F, R> as *const (), (&raw mut call).cast(), p.system_stack().top())
    };
    compiler_fence(Ordering::SeqCst);
    p.system_stack_busy.store(false, Ordering::Relaxed);
    // SAFETY: `call_on_system_stack` wrote the result before returning (with panic=abort it
    // cannot have left without doing so).
    unsafe { call.result.assume_init() }
}

/// Calls `func(data)` with SP = `new_sp`, then restores SP and returns.
///
/// Caller-stack use: exactly 16 bytes, the frame record `stp x29, x30, [sp, #-16]!`. x29 then
/// holds the caller's SP for the way back: it is callee-saved, so `func` preserves it, and it
/// also links `func`'s frame record on the system stack to ours, so a backtrace walks from the
/// system stack into the task stack.
///
/// # Safety
/// `func` must be an `extern "C" fn(*mut u8)` (or take a compatible pointer type), `data` what it
/// expects, and `new_sp` the 16-byte aligned top of a mapped stack nobody else is using.
#[unsafe(naked)]
unsafe extern "C" fn systemstack_switch(func: *const (), data: *mut u8, new_sp: usize) {
    naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "mov sp, x2",
        "mov x3, x0",
        "mov x0, x1",
        "blr x3",
        "mov sp, x29",
        "ldp x29, x30, [sp], #16",
        "ret",
    )
}

// ---------------------------------------------------------------------------------------------
// Context switch
// ---------------------------------------------------------------------------------------------

// d8-d15 are callee-saved under AAPCS64 when the target has FP/SIMD. The kernel is built for the
// soft-float target (no FP/SIMD register ever holds program state, see xtask/src/kernel.rs), where
// the assembler rejects these instructions and there is nothing to save; a hard-float build saves
// them at `Context::d8_d15` (offset 104, checked in context.rs).
#[cfg(target_feature = "fp-armv8")]
macro_rules! save_fp_callee_saved {
    () => {
        "stp d8, d9, [x0, #104]\nstp d10, d11, [x0, #120]\nstp d12, d13, [x0, #136]\nstp d14, d15, [x0, #152]"
    };
}
#[cfg(target_feature = "fp-armv8")]
macro_rules! load_fp_callee_saved {
    () => {
        "ldp d8, d9, [x1, #104]\nldp d10, d11, [x1, #120]\nldp d12, d13, [x1, #136]\nldp d14, d15, [x1, #152]"
    };
}
#[cfg(not(target_feature = "fp-armv8"))]
macro_rules! save_fp_callee_saved {
    () => {
        "// no FP/SIMD state on the soft-float target"
    };
}
#[cfg(not(target_feature = "fp-armv8"))]
macro_rules! load_fp_callee_saved {
    () => {
        "// no FP/SIMD state on the soft-float target"
    };
}

/// Saves the callee-saved registers (x19-x30, SP, d8-d15) into `*from` and loads them from
/// `*to`, then returns — into whatever `to` was doing when it was saved (or into the task entry
/// trampoline, for a task that never ran). The caller-saved registers need no saving: this is a
/// function call, so the compiler already treats them as clobbered.
///
/// # Safety
/// `from` must be valid for writes and `to` for reads of a [`Context`]; `to` must hold a
/// context saved by this function or built by [`Context::for_entry`] with
/// [`task_entry_trampoline`], whose stack is mapped and not in use. Interrupts should be masked
/// (the scheduler's state is inconsistent between `prepare_switch` and `finish_switch`).
#[unsafe(naked)]
pub unsafe extern "C" fn switch_context(from: *mut Context, to: *const Context) {
    naked_asm!(
        // Save.
        "mov x9, sp",
        "stp x19, x20, [x0, #{x19}]",
        "stp x21, x22, [x0, #{x21}]",
        "stp x23, x24, [x0, #{x23}]",
        "stp x25, x26, [x0, #{x25}]",
        "stp x27, x28, [x0, #{x27}]",
        "stp x29, x30, [x0, #{fp}]",
        "str x9, [x0, #{sp}]",
        save_fp_callee_saved!(),
        // Load.
        "ldp x19, x20, [x1, #{x19}]",
        "ldp x21, x22, [x1, #{x21}]",
        "ldp x23, x24, [x1, #{x23}]",
        "ldp x25, x26, [x1, #{x25}]",
        "ldp x27, x28, [x1, #{x27}]",
        "ldp x29, x30, [x1, #{fp}]",
        "ldr x9, [x1, #{sp}]",
        load_fp_callee_saved!(),
        "mov sp, x9",
        // The caller-saved registers are dead for the task we return into (it called this
        // function), but they still hold the previous task's values. A conservative root scan
        // that later finds them in a trap frame would take another task's stale pointers (a
        // mark worker's span addresses, say) for live ones: clear them.
        "mov x0, xzr", "mov x1, xzr", "mov x2, xzr", "mov x3, xzr", "mov x4, xzr", "mov x5, xzr",
        "mov x6, xzr", "mov x7, xzr", "mov x8, xzr", "mov x9, xzr", "mov x10, xzr", "mov x11, xzr",
        "mov x12, xzr", "mov x13, xzr", "mov x14, xzr", "mov x15, xzr", "mov x16, xzr",
        "mov x17, xzr", "mov x18, xzr",
        "ret",
        x19 = const CONTEXT_X19,
        x21 = const CONTEXT_X19 + 16,
        x23 = const CONTEXT_X19 + 32,
        x25 = const CONTEXT_X19 + 48,
        x27 = const CONTEXT_X19 + 64,
        fp = const CONTEXT_FP,
        sp = const CONTEXT_SP,
    )
}

/// Where a new task's first `switch_context` "returns" to. Calls `start(arg0, arg1)` from
/// x19, x20, x21 as laid out by [`Context::for_entry`]; `start` must never return (a `brk`
/// catches it if it does). Its address is what [`task_entry_address`] gives.
///
/// `start` runs with interrupts masked (the switch was made with them masked) and must call
/// [`begin_task`] before anything else.
///
/// # Safety
/// Never call it: only `switch_context` enters it, with x19-x21 set by `Context::for_entry`.
#[unsafe(naked)]
pub unsafe extern "C" fn task_entry_trampoline() -> ! {
    naked_asm!(
        "mov x0, x20",
        "mov x1, x21",
        "blr x19",
        "brk #0x7a5", // start returned
    )
}

/// The address to pass as `trampoline` to [`Context::for_entry`].
pub fn task_entry_address() -> usize {
    task_entry_trampoline as *const () as usize
}

// ---------------------------------------------------------------------------------------------
// Scheduling glue
// ---------------------------------------------------------------------------------------------

/// Gives up the core for `reason` (`Yield` or `Preempt`; use [`exit_current`] to exit) and
/// returns when this task runs again — possibly on another core after a yield.
pub fn schedule(queues: &RunQueues, reason: SwitchReason) {
    assert!(reason != SwitchReason::Exit, "use exit_current");
    // The scheduler's state is inconsistent from `prepare_switch` to `finish_switch`: no interrupt
    // handler of this core may run in between. The guard lives in this task's frame across the
    // switch and restores, when the task runs again (on this core, or on another after a yield),
    // the mask it had when it gave up the core.
    let _irqs = IrqGuard::mask();
    if let Some(s) = prepare_switch(this_p(), queues, reason) {
        // SAFETY: `prepare_switch` returned the contexts of the task it parked in
        // `switching_from` and of the new current task, both kept alive by P; IRQs are masked.
        unsafe { switch_context(s.from, s.to) };
        // Running again, maybe on another core: ask TPIDR_EL1 again.
        finish_switch(this_p(), queues);
    }
}

/// Ends the running task. The next task's `finish_switch` parks it for
/// [`RunQueues::take_exited`].
pub fn exit_current(queues: &RunQueues) -> ! {
    // Not a guard: this task never runs again, so nothing here unmasks. The task switched to
    // unmasks (its `schedule` guard restores its own mask, or `begin_task` unmasks a new task's).
    irqmask::mask_irqs();
    // Nothing runnable: the idle task is out of its queue for a stack scan. Wait for it with
    // IRQs open (a stop-the-world request must still reach this core; a tick that finds a task
    // to run may switch this one out as preempted, and it comes back here).
    let s = loop {
        match prepare_switch(this_p(), queues, SwitchReason::Exit) {
            Some(s) => break s,
            None => {
                irqmask::unmask_irqs();
                tricolor_arch::cpu::relax();
                irqmask::mask_irqs();
            }
        }
    };
    // SAFETY: as in `schedule`. Nothing resumes an exited task, so this never returns.
    unsafe { switch_context(s.from, s.to) };
    unreachable!("an exited task was resumed");
}

/// First thing a new task's start function calls: completes the switch that started it (queues
/// or parks the task switched away from) and unmasks IRQs.
pub fn begin_task(queues: &RunQueues) {
    finish_switch(this_p(), queues);
    // Not a guard: the task starts with IRQs masked because the switch that started it ran masked,
    // and the mask was taken by the task that switched (its guard is in its own frame, restored
    // when it runs again). The new task has no earlier state to restore: it unmasks. The unmask is
    // a compiler barrier (`tricolor_arch::irqmask`), so `finish_switch`'s writes come before any
    // interrupt handler can run; the scheduler's state is consistent again after it.
    irqmask::unmask_irqs();
}
