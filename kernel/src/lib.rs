//! tricolor's kernel: the pieces that need no hardware live here, in a library that also builds and
//! tests on the host; the hardware wiring is the binary (`main.rs`), built for aarch64 by xtask.
//!
//! - [`cmdline`]: the typed kernel command line.
//! - [`dtb`]: what the kernel reads from the device tree, from the DTB's bytes.
//! - [`mem`]: the physical page allocator and the kernel heap.
//! - [`shell`]: the serial console's input: the receive ring, line editing, the commands.
//! - [`gctrace`]: the per-cycle trace line in Go's `GODEBUG=gctrace=1` format.
//! - [`screen`]: the font and the GC dashboard's layout for any display size.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod dtb;
pub mod gctrace;
pub mod mem;
pub mod screen;
pub mod shell;
pub mod slice;
