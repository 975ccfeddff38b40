//! Orientation: this core's identity (MPIDR), its stack pointer and general-purpose registers as a
//! root scan needs them, the generic counter, and the hints a waiting core uses (`yield`, `wfi`,
//! `sev`). The IRQ mask is [`crate::irqmask`]; TPIDR_EL1 is [`crate::percore`].

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, MPIDR_EL1};
use tock_registers::interfaces::Readable;

/// This core's MPIDR affinity fields (Aff3..Aff0), the id PSCI and the device tree use.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// The link register as the calling function entered: its return address, for reports of where
/// a function was called from. Only meaningful at the top of an `#[inline(never)]` function,
/// before any call clobbers x30.
#[inline(always)]
pub fn return_address() -> usize {
    let lr: usize;
    // SAFETY: copies x30 into a register; touches no memory, flags or stack.
    unsafe { core::arch::asm!("mov {}, x30", out(reg) lr, options(nomem, nostack, preserves_flags)) };
    lr
}

/// Ticks of the generic counter since reset.
#[inline]
pub fn counter() -> u64 {
    // ISB so the read is not speculated ahead of the code that precedes it: timestamps around a
    // measured region must bracket it.
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// Generic counter frequency in Hz.
pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Nanoseconds since reset according to the generic counter.
pub fn uptime_ns() -> u64 {
    let freq = counter_frequency().max(1);
    (counter() as u128 * 1_000_000_000 / freq as u128) as u64
}

/// The general-purpose registers x0..x30 as they are now, returned into the caller's frame.
///
/// A conservative root scan must see every pointer a stopped task holds. Pointers in callee-saved
/// registers are in no trap frame when a core stops outside an interrupt, and dead caller-saved
/// registers can still hold stale pointers that a later trap frame would capture; spilling all of
/// them into a stack frame that the scan covers settles both.
#[inline(always)]
pub fn spill_general_registers() -> [u64; 32] {
    let mut spilled = [0u64; 32];
    // SAFETY: stores x0..x30 into a local array of 32 words. The operand register is overwritten
    // with the array's address first, which is harmless: it then holds no pointer of interest.
    unsafe {
        core::arch::asm!(
            "stp x0, x1, [{0}]", "stp x2, x3, [{0}, #16]", "stp x4, x5, [{0}, #32]",
            "stp x6, x7, [{0}, #48]", "stp x8, x9, [{0}, #64]", "stp x10, x11, [{0}, #80]",
            "stp x12, x13, [{0}, #96]", "stp x14, x15, [{0}, #112]", "stp x16, x17, [{0}, #128]",
            "stp x18, x19, [{0}, #144]", "stp x20, x21, [{0}, #160]", "stp x22, x23, [{0}, #176]",
            "stp x24, x25, [{0}, #192]", "stp x26, x27, [{0}, #208]", "stp x28, x29, [{0}, #224]",
            "str x30, [{0}, #240]",
            in(reg) spilled.as_mut_ptr(), options(nostack, preserves_flags)
        )
    };
    spilled
}

/// Zeroes the caller-saved registers x0..x18. Where they are dead (between calls, by the AAPCS64)
/// they may still hold another function's internal addresses; a trap frame or a spill would then
/// hand those to a conservative root scan as if they were live pointers.
#[inline(always)]
pub fn clear_caller_saved_registers() {
    // SAFETY: every register written is declared clobbered, so the compiler keeps nothing live in
    // them across this block.
    unsafe {
        core::arch::asm!(
            "mov x0, xzr", "mov x1, xzr", "mov x2, xzr", "mov x3, xzr", "mov x4, xzr", "mov x5, xzr",
            "mov x6, xzr", "mov x7, xzr", "mov x8, xzr", "mov x9, xzr", "mov x10, xzr", "mov x11, xzr",
            "mov x12, xzr", "mov x13, xzr", "mov x14, xzr", "mov x15, xzr", "mov x16, xzr",
            "mov x17, xzr", "mov x18, xzr",
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
            out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _, out("x18") _,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// The current stack pointer (the caller's SP, as this function is always inlined).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies SP into a register. `nomem`: touches no memory, and a stack pointer is only
    // compared with stack bounds, never used to order accesses.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// The body of every loop that waits for another core: the `yield` hint. Rust's
/// `core::hint::spin_loop` emits `isb` on aarch64, which QEMU's round-robin (`-icount`) scheduler
/// does not treat as a reason to run another vCPU, so a spinning core would starve the one it
/// waits for; `yield` makes QEMU switch vCPUs, and on hardware it is the architectural spin hint.
#[inline(always)]
pub fn relax() {
    // SAFETY: a hint instruction with no architectural effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Sleeps until an interrupt is pending (even a masked one: call it with IRQs masked after the last
/// check for work, then unmask, so a wake-up raised in between is not lost). QEMU really halts
/// the vCPU here, unlike `wfe`, which it treats as a yield.
#[inline]
pub fn wait_for_interrupt() {
    aarch64_cpu::asm::wfi();
}

/// Signals an event to every core: ends a `wfe` (only boot.s's park loop waits in one).
#[inline]
pub fn send_event() {
    aarch64_cpu::asm::sev();
}

/// A `spin` relax strategy that waits with [`relax`], so a core contending for a lock held by
/// another vCPU lets QEMU run that vCPU.
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        relax();
    }
}
