//! Ending the run: the exit statuses are `tricolor_abi::exit` (xtask's test runners check the same
//! constants), handed to QEMU through semihosting.

pub use tricolor_abi::exit::{BAD_CONFIG, FAULT, PANIC, SUCCESS, TEST_FAILED};

/// Ends the run with `code`, or with [`TEST_FAILED`] instead of [`SUCCESS`] if the collector's
/// lock discipline was broken during the run (checked with the verifier on:
/// `tricolor_gc::preemptible_lockings`), which it reports.
pub fn exit(code: u8) -> ! {
    let (count, first) = tricolor_gc::preemptible_lockings();
    let code = if count == 0 {
        code
    } else {
        let at = first.map_or(alloc::string::String::from("?"), |l| alloc::format!("{}:{}", l.file(), l.line()));
        log::error!(
            "gc: {count} collector lock taking(s) could have been switched out holding the lock, first at {at}"
        );
        if code == SUCCESS {
            TEST_FAILED
        } else {
            code
        }
    };
    tricolor_arch::semihosting::exit(code)
}
