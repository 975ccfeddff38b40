//! One collection cycle at a time: the [`CycleLock`], and waits that say so when they last
//! ([`wait_while`]).
//!
//! The platform serialises whole cycles with a [`CycleLock`]: not just the collector's
//! `collect` (which has its own inner lock) but what the platform does around it (the kernel
//! spawns mark workers during the mark and waits for them to leave, then runs its after-cycle
//! check). Two kinds of caller take it:
//! - **Explicit** ones ([`CycleLock::hold`]): a collection someone asked for, a check that must
//!   run between cycles. They wait for the running cycle to finish.
//! - **Triggered** ones ([`CycleLock::try_hold`]): a cycle started by heap growth or torture
//!   mode. They never wait: when a cycle runs, or an explicit caller waits to run one (whose cycle
//!   serves their trigger too), they give up.
//!
//! # Invariants
//! - At most one closure runs under the lock at a time (`held` is swapped to true by whoever
//!   enters and stored false by the same caller when its closure ends, panics included).
//! - A waiter is never starved by triggered callers: from the moment it counts itself in
//!   `waiters` until it gets the lock, `try_hold` takes no new hold; only other waiters (and the
//!   holder it waits for) can go first. Waiters among themselves race (no FIFO).
//! - The holder's writes happen before the next holder's closure (Release on unlock, Acquire on
//!   lock).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::platform::Platform;

/// A wait logs a line once it has lasted this long ([`WaitWatch`])...
pub const WAIT_FIRST_LOG_NS: u64 = 5_000_000_000;
/// ...and then again every this long.
pub const WAIT_LOG_EVERY_NS: u64 = 10_000_000_000;

/// When a wait that should be short is due a log line: once [`WAIT_FIRST_LOG_NS`] after it
/// started, then every [`WAIT_LOG_EVERY_NS`]. A hang then leaves a diagnosis in the log instead
/// of silence.
#[derive(Clone, Copy, Debug)]
pub struct WaitWatch {
    start: u64,
    next: u64,
}

impl WaitWatch {
    /// A wait that started at `now` (nanoseconds, any monotonic clock).
    pub fn new(now: u64) -> Self {
        WaitWatch { start: now, next: now.saturating_add(WAIT_FIRST_LOG_NS) }
    }

    /// If the wait, still going on at `now`, is due a log line: how long it has lasted.
    pub fn due(&mut self, now: u64) -> Option<u64> {
        if now < self.next {
            return None;
        }
        self.next = now.saturating_add(WAIT_LOG_EVERY_NS);
        Some(now - self.start)
    }
}

/// Waits while `waiting()`, giving the core to its other tasks between looks
/// ([`Platform::yield_task`]). Once the wait lasts ([`WaitWatch`]), calls `stalled(waited_ns)`,
/// which should log what it waits for ([`Platform::warn`]). The clock is read only once the
/// first look found the wait not over.
pub fn wait_while<P: Platform>(mut waiting: impl FnMut() -> bool, mut stalled: impl FnMut(u64)) {
    if !waiting() {
        return;
    }
    let mut watch = WaitWatch::new(P::now_ns());
    while waiting() {
        P::yield_task();
        if let Some(waited) = watch.due(P::now_ns()) {
            stalled(waited);
        }
    }
}

/// Serialises collection cycles, explicit callers first (see the module doc).
pub struct CycleLock {
    /// Set while a closure runs under the lock. Ordering: the swap that sets it is Acquire and
    /// the store that clears it Release, so one holder's writes (its whole cycle) are visible to
    /// the next; a failed swap orders nothing (the caller just tries again or gives up).
    held: AtomicBool,
    /// Callers in [`CycleLock::hold`] that have not got the lock yet. Ordering: Relaxed. It
    /// guards no data: `try_hold` only reads it to decide whether to try. A stale zero lets a
    /// triggered cycle go before a waiter that just arrived, which is as if the waiter came a
    /// moment later; a stale nonzero skips one trigger, whose allocation triggers again. Read
    /// coherence still makes a waiter's count visible to every later look (the property the
    /// waiter-priority test relies on), just not at a bounded time.
    waiters: AtomicUsize,
    /// The core the holder took the lock on, plus one (0: not held). Diagnostic only, for a
    /// waiter's log line; the holder's task may have moved since. Ordering: Relaxed, it orders
    /// nothing and a stale value only misnames the holder in a log line.
    holder: AtomicUsize,
}

/// The lock, held as a value ([`CycleLock::try_take`]): let go when dropped, on whichever task
/// or core that happens (a cycle that moves to another task takes it along). Also what clears
/// `held` when a closure under the lock ends, including by unwinding (host tests).
#[must_use = "the lock is let go as soon as this is dropped"]
pub struct CycleLockHeld<'a>(&'a CycleLock);

impl Drop for CycleLockHeld<'_> {
    fn drop(&mut self) {
        self.0.holder.store(0, Ordering::Relaxed);
        // Ordering: Release, pairs with the next holder's Acquire swap (see `held`).
        self.0.held.store(false, Ordering::Release);
    }
}

impl CycleLock {
    /// An unheld lock with no waiters.
    pub const fn new() -> Self {
        CycleLock { held: AtomicBool::new(false), waiters: AtomicUsize::new(0), holder: AtomicUsize::new(0) }
    }

    /// Runs `f` holding the lock, waiting (yielding this core, [`Platform::yield_task`]) while
    /// another holder finishes. Triggered callers defer to this one while it waits. A wait that
    /// lasts logs which core holds the lock ([`wait_while`]).
    pub fn hold<P: Platform, R>(&self, f: impl FnOnce() -> R) -> R {
        // Ordering: Relaxed, see `waiters`.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        wait_while::<P>(
            // Ordering: Acquire on success, see `held`.
            || self.held.swap(true, Ordering::Acquire),
            |waited| {
                P::warn(format_args!(
                    "gc: waited {} s for the cycle lock, held from core {} ({} waiting)",
                    waited / 1_000_000_000,
                    self.holder().map_or(-1, |core| core as isize),
                    self.waiters()
                ))
            },
        );
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        self.run::<P, R>(f)
    }

    /// Runs `f` holding the lock if it is free and no caller waits in [`CycleLock::hold`];
    /// otherwise returns `None` at once without running `f`.
    pub fn try_hold<P: Platform, R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let _held = self.try_take::<P>()?;
        Some(f())
    }

    /// Takes the lock if it is free and no caller waits in [`CycleLock::hold`], as a value that
    /// lets it go when dropped; `None` at once otherwise.
    pub fn try_take<P: Platform>(&self) -> Option<CycleLockHeld<'_>> {
        // Ordering: Relaxed, see `waiters`; Acquire on success, see `held`.
        if self.waiters.load(Ordering::Relaxed) != 0 || self.held.swap(true, Ordering::Acquire) {
            return None;
        }
        Some(self.taken::<P>())
    }

    /// `f` with the lock taken by the caller.
    fn run<P: Platform, R>(&self, f: impl FnOnce() -> R) -> R {
        let _unlock = self.taken::<P>();
        f()
    }

    /// The caller has just set `held`.
    fn taken<P: Platform>(&self) -> CycleLockHeld<'_> {
        // Ordering: Relaxed, see `holder`.
        self.holder.store(P::current_core_index() + 1, Ordering::Relaxed);
        CycleLockHeld(self)
    }

    /// Whether a closure runs under the lock now (a snapshot).
    pub fn is_held(&self) -> bool {
        // Ordering: Relaxed; a snapshot that orders nothing.
        self.held.load(Ordering::Relaxed)
    }

    /// The core the current holder took the lock on, if known (a snapshot, for diagnostics).
    pub fn holder(&self) -> Option<usize> {
        // Ordering: Relaxed, see `holder`.
        self.holder.load(Ordering::Relaxed).checked_sub(1)
    }

    /// How many callers wait in [`CycleLock::hold`] (a snapshot).
    pub fn waiters(&self) -> usize {
        // Ordering: Relaxed, see `waiters`.
        self.waiters.load(Ordering::Relaxed)
    }
}

impl Default for CycleLock {
    fn default() -> Self {
        Self::new()
    }
}
