//! The tricolor kernel binary: hardware wiring on top of the host-testable library.
//!
//! - `boot`: the Rust entry points the boot assembly jumps to, and the boot sequence.
//! - `percore`: each core's block reached through TPIDR_EL1: the runtime's `P` at offset 0, the
//!   collector's `GcCore` at `PERCORE_GC_OFFSET`.
//! - `console`: PL011 UART, the `log` backend, whole-line output from many cores; the receive
//!   interrupt and the shell task of the interactive console.
//! - `demo`: the default boot: a mixed workload on every core, the live GC dashboard, the console.
//! - `devicetree`: what the machine is (RAM, UART, CPUs, PSCI, bootargs), from the DTB.
//! - `memory` (`mem/ram.rs`, beside the library's host-tested allocators in `mem/`): the frame
//!   allocator and `#[global_allocator]` over the RAM the DTB reports.
//! - `smp`: secondary-core bring-up with PSCI and cross-core calls.
//! - `stacks`: the per-core boot, system and exception stacks linker.ld lays out.
//! - `stw`: stop-the-world: every other core parked at a safe point.
//! - `sync`: the kernel's lock (a spin lock that disables preemption while held).
//! - `tasks`: spawning, the idle loop, timer preemption.
//! - `timeline`: the per-core event recorder of GC states (pause, mark, flush, sweep, idle, ...).
//! - `vm`: the MMU tables: identity map with unmapped guard pages under every stack.
//! - `fault`: the exception handler and the decoded fault report.
//! - `irq`: the GIC, interrupt handlers, dispatch.
//! - `gpu`: the VirtIO GPU display (framebuffer sources, test pattern, `[VIRTIO PERF]`).
//! - `workload`: the mutators that hammer the collector (graph, GCBench, churn, large objects,
//!   a GC-heap framebuffer), started on every core by one runner.
//! - `registry`: what `test=` and `suite=` can name; the test tree registers there.
//! - `ktest` (`kernel/ktest/`, feature `ktest`): unit tests, scenarios, benches, stress suites.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod demo;
#[cfg(target_os = "none")]
mod devicetree;
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod fault;
#[cfg(target_os = "none")]
mod gc;
#[cfg(target_os = "none")]
mod gpu;
#[cfg(target_os = "none")]
mod irq;
/// The kernel's tests (`kernel/ktest/`, cargo feature `ktest`): they register themselves with
/// `registry`; nothing else in the kernel refers to them.
#[cfg(all(target_os = "none", feature = "ktest"))]
#[path = "../ktest/mod.rs"]
mod ktest;
/// The library's allocators (`mem/`) wired to the machine's RAM; it lives in `mem/` with them.
#[cfg(target_os = "none")]
#[path = "mem/ram.rs"]
mod memory;
#[cfg(target_os = "none")]
mod percore;
#[cfg(target_os = "none")]
mod registry;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stacks;
#[cfg(target_os = "none")]
mod stw;
#[cfg(target_os = "none")]
mod sync;
#[cfg(target_os = "none")]
mod tasks;
#[cfg(target_os = "none")]
mod timeline;
#[cfg(target_os = "none")]
mod vm;
#[cfg(target_os = "none")]
mod workload;

#[cfg(target_os = "none")]
extern crate alloc;

/// On the host this binary is only a placeholder so `cargo test` can build the workspace; the
/// kernel itself is built for `aarch64-unknown-none-softfloat` by `cargo xtask`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("tricolor is a bare-metal kernel: boot it with `cargo xtask run`");
    std::process::exit(1);
}
