//! Exit statuses the kernel hands QEMU through semihosting; xtask's test runner checks them.

/// The run did what it was asked (a test passed, or the boot scenario completed).
pub const SUCCESS: u32 = 0;
/// A kernel test failed.
pub const TEST_FAILED: u32 = 1;
/// The command line or the device tree was rejected.
pub const BAD_CONFIG: u32 = 2;
/// A fatal exception (fault, stack overflow) was reported.
pub const FAULT: u32 = 4;
/// A Rust panic.
pub const PANIC: u32 = 5;

/// Ends the run with `code`.
pub fn exit(code: u32) -> ! {
    tricolor_arch::semihosting::exit(code)
}
