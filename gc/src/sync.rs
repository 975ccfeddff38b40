//! The collector's spin lock: `spin`'s mutex, waiting with the architecture's spin hint.
//!
//! On aarch64 the wait is the `yield` hint, not `isb` (what `core::hint::spin_loop` emits there):
//! under QEMU's `-icount`, vCPUs run round-robin on one host thread and `yield` ends the waiting
//! vCPU's turn, so the lock's holder gets to run. With `isb` each waiter burns its whole turn: with
//! three cores waiting on the mark's global work list, its holder crawled through a few
//! instructions per round (a gcbench-quick run at gc.percent=50 made no progress for minutes).

/// Waits with `yield` on aarch64, the CPU's spin hint elsewhere.
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `yield` is a hint with no architectural effect on memory, registers or flags.
        unsafe {
            core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
        };
        #[cfg(not(target_arch = "aarch64"))]
        core::hint::spin_loop();
    }
}

/// The collector's lock type (every lock in the gc crate).
pub type Mutex<T> = spin::mutex::Mutex<T, YieldRelax>;
