//! Orientation: PSTATE.I, this core's IRQ mask, and the one way tricolor changes it.
//!
//! A masked section is a critical section against *this core's* interrupt handlers: a handler can
//! only run between two instructions of the section if IRQs are unmasked there. Nothing here orders
//! anything against other cores (they need atomics or locks), and nothing needs to: an interrupt is
//! taken precisely, so the handler sees every memory access the interrupted code made before it.
//!
//! What must hold is that the *compiler* keeps the section's memory accesses between the mask and
//! the unmask. Every `msr daifset`/`msr daifclr` here is an `asm!` block **without** `nomem`: the
//! compiler must assume the block reads and writes any memory the program can reach, so it neither
//! moves a load or store of the section across it nor keeps a global cached in a register over it.
//! That makes each one a compiler barrier (the ordering `compiler_fence(SeqCst)` gives), and that is
//! what the section needs. With `nomem` the compiler may assume the `msr` touches no memory and
//! hoist a store above the mask, sink one below the unmask, or keep a value loaded before the mask
//! in a register: the access then happens with IRQs unmasked and a handler on this core sees, or
//! overwrites, a half-done update. That would break every masked section at once, silently, and only
//! at the optimisation levels that reorder.
//!
//! The mask written by `msr daifset` applies to the instructions that follow it (no ISB after it:
//! Linux's `arch_local_irq_disable` is the same single `msr daifset`). An interrupt already pending when IRQs are
//! unmasked is taken soon after the `msr daifclr`; code that must take it before masking again puts
//! a context synchronisation event (`isb`) in between (the GPU's interrupt wait does).
//!
//! - [`IrqGuard`]: the scoped form, for every section that ends where it began: it restores the mask
//!   it found when it drops. [`IrqGuard::mask`] is a critical section; [`IrqGuard::unmask`] is a
//!   window in code that runs masked (a boot flow, a test) for interrupts to come in.
//! - [`mask_irqs`] and [`unmask_irqs`]: for code whose mask does not end where it began, each caller
//!   says why (a new task unmasks what the switch that started it masked; the idle loop
//!   leaves every iteration unmasked whatever it found; an exiting task masks and never returns).

use core::marker::PhantomData;

use aarch64_cpu::registers::DAIF;
use tock_registers::interfaces::Readable;

/// PSTATE.I in DAIF.
const DAIF_I: u64 = 1 << 7;

/// True when IRQs are masked on this core.
#[inline(always)]
pub fn irqs_masked() -> bool {
    DAIF.get() & DAIF_I != 0
}

/// Masks IRQs on this core, whatever they were. A compiler barrier (see the module doc). Prefer
/// [`IrqGuard::mask`]; this is for a mask that is not undone in the same scope.
#[inline(always)]
pub fn mask_irqs() {
    // SAFETY: `msr daifset, #2` sets PSTATE.I; masking interrupts on this core is always allowed
    // (it only delays them). One instruction, so no interrupt can split it. Not `nomem`: it is the
    // compiler barrier the masked section relies on (module doc).
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Unmasks IRQs on this core, whatever they were. A compiler barrier (see the module doc). Prefer
/// [`IrqGuard`]; this is for an unmask that does not undo a mask of the same scope.
#[inline(always)]
pub fn unmask_irqs() {
    // SAFETY: `msr daifclr, #2` clears PSTATE.I. The caller has no section of its own open (that is
    // this function's contract with its callers, who say why); an interrupt taken from here on runs
    // the kernel's handler on the current stack. Not `nomem`: a compiler barrier (module doc).
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// The IRQ mask as it was when the guard was made, restored when it drops: IRQs masked again if
/// they were masked, unmasked if they were not. Guards nest (each restores what it found).
///
/// Not `Send`: the guard belongs to the flow of control that made it and drops in it. A task may
/// switch out while it holds one (the scheduler's own guard is held across `switch_context`):
/// every switch happens masked, and when the task runs again, on this core or after a yield on
/// another, its guard reinstates the mask the task had before it gave up the core, as the switch
/// reinstates its registers.
#[must_use = "the IRQ mask is restored as soon as the guard is dropped"]
pub struct IrqGuard {
    was_masked: bool,
    _not_send: PhantomData<*const ()>,
}

impl IrqGuard {
    /// Masks IRQs until the guard drops: a critical section against this core's interrupt
    /// handlers. The section's memory accesses stay inside it (module doc).
    #[inline(always)]
    pub fn mask() -> IrqGuard {
        let was_masked = irqs_masked();
        mask_irqs();
        IrqGuard { was_masked, _not_send: PhantomData }
    }

    /// Unmasks IRQs until the guard drops, then masks them again if they were masked: code that
    /// runs masked opens a window for interrupts (a test waiting for timer ticks).
    #[inline(always)]
    pub fn unmask() -> IrqGuard {
        let was_masked = irqs_masked();
        unmask_irqs();
        IrqGuard { was_masked, _not_send: PhantomData }
    }
}

impl Drop for IrqGuard {
    #[inline(always)]
    fn drop(&mut self) {
        // Either way one `msr` without `nomem`: the section's accesses stay before it.
        if self.was_masked {
            mask_irqs();
        } else {
            unmask_irqs();
        }
    }
}
