//! The numbers two sides of a boundary must agree on, defined once: the kernel and xtask (exit
//! statuses, the core limit, the log-stress protocol), the kernel and `linker.ld` (the core limit
//! and the page size, passed to the linker by `kernel/build.rs`), and the crates that hand pages to
//! each other (the page size).
//!
//! A leaf crate (no dependencies, `no_std`), so anything can import it without a cycle: `arch`,
//! `runtime`, `virtio`, `kernel` and its build script, and `xtask` on the host.
#![no_std]

/// The translation granule: the MMU maps 4 KiB pages (arch's page tables), the frame allocator
/// hands out 4 KiB frames, stack guards are one such page, and virtio DMA regions are counted in
/// them. The GC heap's own page is a different, larger unit (`tricolor_gc::sizeclass::HEAP_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;

/// The most cores tricolor manages: the size of every per-core table, the upper bound of `cores=`
/// and of xtask's `--smp`, and the number of stack slots `linker.ld` reserves (`kernel/build.rs`
/// passes it to the linker as `__max_cores`). 16: QEMU `virt` starts more than 8 only with a GICv3
/// (a GICv2 CPU interface has 8 target bits), which the kernel drives; the per-core tables and
/// stacks grow with it (about 170 KiB a core: linker.ld's stack slot and the per-core block).
pub const MAX_CORES: usize = 16;

/// Exit statuses the kernel hands QEMU through semihosting (QEMU exits with them); xtask's test
/// runners check them. A byte, because that is what a process exit status is.
pub mod rng;

pub mod exit {
    /// The run did what it was asked (a test passed, the demo was quit).
    pub const SUCCESS: u8 = 0;
    /// A kernel test failed.
    pub const TEST_FAILED: u8 = 1;
    /// The command line or the device tree was rejected.
    pub const BAD_CONFIG: u8 = 2;
    /// An exception was taken before the kernel installed its handler (the arch crate's default).
    pub const EARLY_EXCEPTION: u8 = 3;
    /// A fatal exception (fault, stack overflow) was reported.
    pub const FAULT: u8 = 4;
    /// A Rust panic.
    pub const PANIC: u8 = 5;
}

/// The `log-stress` scenario: every core logs this many lines, each
/// `log-stress core=C line=L` followed by [`LOG_STRESS_TAIL`]; xtask checks that every line of
/// every core arrived whole.
pub const LOG_STRESS_LINES: usize = 200;
/// The end of every log-stress line (long enough that two cores' lines would visibly splice).
pub const LOG_STRESS_TAIL: &str = " payload=0123456789abcdefghijklmnopqrstuvwxyz end";
