//! Ending the run: the exit statuses are `tricolor_abi::exit` (xtask's test runners check the same
//! constants), handed to QEMU through semihosting.

pub use tricolor_abi::exit::{BAD_CONFIG, FAULT, PANIC, SUCCESS, TEST_FAILED};

/// Ends the run with `code`.
pub fn exit(code: u8) -> ! {
    tricolor_arch::semihosting::exit(code)
}
