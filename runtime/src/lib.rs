//! tricolor's runtime: the per-core state `P`, stacks, tasks and the machinery that runs code on
//! the right stack (`systemstack`). This crate holds the *logic*; the kernel wires it to the
//! hardware (timer, GIC, page tables) at integration.
//!
//! Table of contents:
//! - [`name`]: short fixed-capacity names for stacks and tasks (no allocation, fault-handler safe).
//! - [`stack`]: `Stack { lo, hi, guard }`, painting and high-water marks, the registry the
//!   exception handler consults to name an overflowed stack, and growable stacks
//!   ([`stack::growth`]): a reserved range mapped page by page on guard faults, never copied.
//! - [`context`]: the callee-saved register file a task is switched out with.
//! - [`task`]: the task control block.
//! - [`runq`]: per-core run queues, round-robin, optional stealing.
//! - [`preempt`]: the nested preemption-disable counter with a deferred tick.
//! - [`p`]: the per-core state `P` (reachable through TPIDR_EL1 on aarch64).
//! - [`sched`]: the scheduling decision around a context switch (pure bookkeeping; the switch
//!   itself is the arch's).
//! - `arch` (aarch64 only): `this_p`, `systemstack`, `switch_context`, the task entry trampoline,
//!   `schedule`. Only the assembly of these mechanisms lives here; system registers (TPIDR_EL1,
//!   the IRQ mask, SP) are `tricolor_arch`'s, which this crate depends on and which depends on no
//!   tricolor crate but `tricolor-abi`.
//!
//! Everything except `arch` is plain Rust tested on the host (and under Miri).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod context;
pub mod name;
pub mod p;
pub mod preempt;
pub mod runq;
pub mod sched;
pub mod stack;
pub mod task;

#[cfg(target_arch = "aarch64")]
#[path = "arch/aarch64/mod.rs"]
mod arch;
#[cfg(target_arch = "aarch64")]
pub use arch::*;

/// Index of a core, 0-based, dense (the order the device tree lists the CPUs in).
pub type CoreId = usize;
