//! tricolor's architecture layer: everything that is aarch64-specific and nothing that is policy.
//!
//! - [`esr`]: decoding of the exception syndrome (pure; tested on the host).
//! - `aarch64` (only when building for aarch64): boot entry and exception vectors (assembly),
//!   the trap frame and handler registration, PSCI, semihosting, per-core registers, the generic
//!   counter.
//!
//! The kernel owns what happens on an exception; this crate saves the state, decodes it, and calls
//! the handler the kernel registered.
#![cfg_attr(not(test), no_std)]

pub mod esr;
pub mod pagetable;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
