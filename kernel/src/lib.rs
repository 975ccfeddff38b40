//! tricolor's kernel: the pieces that need no hardware live here, in a library that also builds and
//! tests on the host; the hardware wiring is the binary (`main.rs`), built for aarch64 by xtask.
//!
//! - [`cmdline`]: the typed kernel command line.
//! - [`mem`]: the physical page allocator and the kernel heap.
#![cfg_attr(not(test), no_std)]

pub mod cmdline;
pub mod mem;
