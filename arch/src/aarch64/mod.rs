//! Orientation: the aarch64 half of the arch crate. `boot.s` and `vectors.s` are the only
//! assembly files; the Rust modules here give the rest of the kernel typed access to what they set
//! up, and are the only code outside the runtime's own mechanisms (context switch, `systemstack`,
//! the task entry) that touches system registers:
//!
//! - [`cpu`]: MPIDR, SP, the general-purpose registers for a root scan, the generic counter, the
//!   wait hints (`yield`, `wfi`, `sev`).
//! - [`irqmask`]: PSTATE.I, the IRQ mask: the one RAII guard and the two unscoped calls.
//! - [`percore`]: TPIDR_EL1, this core's per-core block.
//! - [`exception`], [`gic`] (GICv2), [`gic_v3`], [`mmu`], [`psci`], [`semihosting`], [`timer`].

pub mod cpu;
pub mod exception;
pub mod gic;
pub mod gic_v3;
pub mod irqmask;
pub mod mmu;
pub mod percore;
pub mod psci;
pub mod semihosting;
pub mod timer;

core::arch::global_asm!(include_str!("boot.s"));
core::arch::global_asm!(include_str!("vectors.s"));

unsafe extern "C" {
    /// First instruction run by a secondary core after PSCI CPU_ON (see boot.s).
    fn _secondary_entry();
}

/// Physical address a PSCI CPU_ON call should start a secondary core at.
/// The kernel runs identity-mapped, so the link address is the physical address.
pub fn secondary_entry_address() -> u64 {
    _secondary_entry as *const () as usize as u64
}
