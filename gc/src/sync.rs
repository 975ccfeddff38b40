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

use core::panic::Location;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// The collector's lock (every lock in the gc crate): `spin`'s mutex, with its discipline checked.
///
/// **Discipline: a collector lock is only taken where its taker cannot be switched out** (the
/// platform's preemption disabled, IRQs masked, or no scheduler yet). These are spin locks, and
/// some are taken from barrier and allocation paths with preemption off: a task preempted while
/// holding one leaves every such taker on its core spinning for it, forever if they share the
/// core (a stress run hung so: a checked-mode store spun in `Roots::contains_slot` for the lock a
/// preempted collecting task held). With a platform check installed
/// ([`set_preemptible_check`]), every `lock` and `try_lock` asks it, and a taking that could be
/// switched out is counted with its caller ([`preemptible_lockings`]): the kernel's tests and
/// stress runs fail on any.
pub struct Mutex<T> {
    inner: spin::mutex::Mutex<T, YieldRelax>,
}

/// A held [`Mutex`].
pub type MutexGuard<'a, T> = spin::mutex::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex { inner: spin::mutex::Mutex::new(value) }
    }

    /// Takes the lock, spinning while another holds it.
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        check_discipline();
        self.inner.lock()
    }

    /// Takes the lock if it is free.
    #[track_caller]
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        check_discipline();
        self.inner.try_lock()
    }
}

/// The one exception to the discipline: a lock held across a whole collection cycle
/// (`Collector`'s cycle lock), preemptibly by design. It is sound only because no taker ever
/// holds it, or waits for it, with preemption off: a waiter that spins preemptibly is switched
/// out in time and lets the holder finish.
pub(crate) type CycleMutex<T> = spin::mutex::Mutex<T, YieldRelax>;

/// The platform's "could the caller be switched out now?" (a `fn() -> bool`; 0: none installed).
static PREEMPTIBLE_CHECK: AtomicUsize = AtomicUsize::new(0);
/// Lock takings that broke the discipline, and the first one's caller.
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
static FIRST_VIOLATION: AtomicPtr<Location<'static>> = AtomicPtr::new(core::ptr::null_mut());

/// Installs (or with `None` removes) the check every collector lock taking asks: true if the
/// caller could be switched out while it holds the lock.
pub fn set_preemptible_check(check: Option<fn() -> bool>) {
    // Ordering: Release, so a taker that sees the function sees what it reads (set at boot).
    PREEMPTIBLE_CHECK.store(check.map_or(0, |f| f as usize), Ordering::Release);
}

/// Collector lock takings so far that could have been switched out holding the lock, and where
/// the first one was.
pub fn preemptible_lockings() -> (u64, Option<&'static Location<'static>>) {
    // Ordering: Acquire pairs with the Release store of the first violation's location.
    let first = FIRST_VIOLATION.load(Ordering::Acquire);
    // SAFETY: only `check_discipline` stores a non-null value, a `&'static Location`.
    (VIOLATIONS.load(Ordering::Relaxed), unsafe { first.as_ref() })
}

#[track_caller]
#[inline]
fn check_discipline() {
    // Ordering: Acquire pairs with `set_preemptible_check`'s Release.
    let check = PREEMPTIBLE_CHECK.load(Ordering::Acquire);
    if check == 0 {
        return;
    }
    // SAFETY: only `set_preemptible_check` stores a nonzero value, and it stores a `fn() -> bool`.
    let preemptible: fn() -> bool = unsafe { core::mem::transmute::<usize, fn() -> bool>(check) };
    if preemptible() {
        // Ordering: Relaxed for the count (a tally); Release publishes the location.
        VIOLATIONS.fetch_add(1, Ordering::Relaxed);
        let here = Location::caller() as *const Location<'static> as *mut Location<'static>;
        let _ = FIRST_VIOLATION.compare_exchange(core::ptr::null_mut(), here, Ordering::Release, Ordering::Relaxed);
    }
}
