//! The collector's spin lock: `spin`'s mutex waiting with the `yield` hint on aarch64.
//!
//! `spin`'s default relax is `core::hint::spin_loop`, which is `isb` on aarch64: QEMU's
//! round-robin scheduler (`-icount`) does not take it as a reason to run another vCPU, so a core
//! contending for a lock held by a descheduled vCPU spun until its next interrupt (a 2 ms timer
//! tick): a wbBuf flush publishing to the global mark list showed in the per-core timeline as
//! 2 ms of flush. `yield` makes QEMU switch vCPUs and is the architectural spin hint on hardware
//! (the kernel's own lock does the same: `tricolor_arch::cpu::YieldRelax`). Elsewhere it is
//! `spin_loop`.

/// `spin`'s relax strategy with the `yield` hint.
pub struct YieldRelax;

impl spin::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        #[cfg(target_arch = "aarch64")]
        // SAFETY: a hint instruction with no architectural effect.
        unsafe {
            core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
        };
        #[cfg(not(target_arch = "aarch64"))]
        core::hint::spin_loop();
    }
}

/// A spin lock whose waiters relax with [`YieldRelax`].
pub type Mutex<T> = spin::mutex::Mutex<T, YieldRelax>;
