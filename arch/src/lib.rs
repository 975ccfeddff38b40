//! tricolor's architecture layer: everything that is aarch64-specific and nothing that is policy.
//!
//! - [`esr`]: decoding of the exception syndrome (pure; tested on the host).
//! - [`gicv3`]: GICv3 affinity, SGI and redistributor-walk arithmetic (pure; tested on the host).
//! - [`pagetable`]: the translation tables (pure; tested on the host).
//! - `aarch64` (only when building for aarch64): boot entry and exception vectors (assembly),
//!   the trap frame and handler registration, PSCI, semihosting, the generic counter, and the one
//!   owner of each register the rest of the kernel and the runtime use: the IRQ mask (`irqmask`),
//!   TPIDR_EL1 (`percore`), SP and MPIDR (`cpu`).
//!
//! Depends on no other tricolor crate but `tricolor-abi`: the runtime and the kernel build on it,
//! never the other way round.
//!
//! The kernel owns what happens on an exception; this crate saves the state, decodes it, and calls
//! the handler the kernel registered.
#![cfg_attr(not(test), no_std)]

pub mod esr;
pub mod gicv3;
pub mod pagetable;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
