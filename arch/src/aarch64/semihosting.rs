//! ARM semihosting: the one way a guest can hand QEMU an exit status (QEMU runs with
//! `-semihosting`). Without `-semihosting` the `hlt` traps; tricolor always runs with it.

const SYS_WRITE0: u64 = 0x04;
const SYS_EXIT: u64 = 0x18;
/// ADP_Stopped_ApplicationExit: "the application exited", with the status in the next word.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Ends the QEMU run with `code` as QEMU's exit status (one of `tricolor_abi::exit`).
pub fn exit(code: u8) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, u64::from(code)];
    loop {
        // SAFETY: SYS_EXIT with a parameter block (AArch64 form): x1 points at two valid words that
        // live for the duration of the call. The call does not return when semihosting is on.
        unsafe {
            core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
        }
    }
}

/// Writes a NUL-terminated string to the host's stderr: a console for the earliest failures, before
/// the UART is known.
pub fn write0(message: &core::ffi::CStr) {
    // SAFETY: SYS_WRITE0 reads the NUL-terminated string x1 points at; the CStr guarantees the NUL.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") SYS_WRITE0 => _, in("x1") message.as_ptr(), options(nostack));
    }
}
