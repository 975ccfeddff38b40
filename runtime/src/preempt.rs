//! Disabling preemption: a nested per-core counter, and a tick that arrives meanwhile deferred
//! to the moment preemption is enabled again.
//!
//! The write barrier's window — from reading the barrier flag, through taking `wbBuf` slots, to
//! the pointer store — must not be split by a task switch. Stop-the-world parks a core wherever
//! preemption is enabled, so a task switched out inside the window would let the world stop, and
//! the collector change phase (the mark setup turning the barrier on, mark termination draining
//! every wbBuf and turning it off), between its flag read and its store: the store would then run
//! under the other phase's decision (unrecorded while marking, or recorded into a buffer already
//! drained). The slots taken also belong to this core's wbBuf, which a task resumed elsewhere must
//! not fill. Neither may a stretch of code running on the core's system stack be split (the next
//! task of this core would reuse the stack under its frames). Such code takes a
//! [`PreemptGuard`]; guards nest. (The kernel's barrier fast path keeps its window atomic another
//! way, with no counter: its IRQ entry restarts an interrupted window, kernel/src/gc/barrier.rs.
//! The barrier's slow paths and the host's barrier still take the guard.) A timer tick that finds the counter non-zero does not switch
//! tasks: it sets `pending`, and the outermost guard's drop calls the kernel's deferred-preemption
//! hook, which yields. So a deferred tick costs a delay, never a lost preemption.
//!
//! Why plain loads and stores (not atomic read-modify-writes) are enough for the counter: only the
//! owning core writes it, and an interrupt that lands between the load and the store of an
//! increment either leaves the counter as it found it (interrupt handlers' guards are balanced)
//! or, when it is a tick that preempts (the counter was still 0), switches this task out and
//! later back in *on this same core* (a preempted task is never stolen, see `runq`), after the
//! other tasks have left the counter at 0 again. On aarch64 that makes `disable` a load, an add
//! and a store; no exclusive-monitor loop, no interrupt masking.
//!
//! The compiler fences keep the critical section's memory accesses between the increment and the
//! decrement *as observed by this core's interrupt handlers*, which is all that is needed: other
//! cores do not look at this counter to decide anything.

use core::marker::PhantomData;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What a timer tick should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Preemption is enabled: switch tasks now.
    Preempt,
    /// Preemption is disabled: the switch is deferred to the outermost guard's drop.
    Deferred,
}

/// A core's preemption-disable state. Lives in the core's `P`.
pub struct Preempt {
    depth: AtomicU32,
    pending: AtomicBool,
    deferred_ticks: AtomicU64,
    hook: spin::Once<fn()>,
}

impl Default for Preempt {
    fn default() -> Self {
        Self::new()
    }
}

impl Preempt {
    /// Byte offset of the nesting depth (a `u32`) in a `Preempt`, for assembly that disables
    /// preemption with the same plain load, add and store as [`Preempt::disable`] (the kernel's
    /// barrier flush stub, kernel/src/gc/barrier.rs) and enables it with
    /// [`Preempt::enable_after_raw_disable`].
    pub const DEPTH_OFFSET: usize = core::mem::offset_of!(Preempt, depth);

    /// Preemption enabled, nothing pending, no hook.
    pub const fn new() -> Preempt {
        Preempt {
            depth: AtomicU32::new(0),
            pending: AtomicBool::new(false),
            deferred_ticks: AtomicU64::new(0),
            hook: spin::Once::new(),
        }
    }

    /// Sets the function the outermost guard's drop calls when a tick was deferred (the kernel's
    /// "yield because of a deferred preemption"). It runs in the context that dropped the guard,
    /// with preemption enabled. Only the first call has an effect.
    pub fn set_deferred_hook(&self, hook: fn()) {
        self.hook.call_once(|| hook);
    }

    /// Disables preemption until the returned guard is dropped. Nests.
    #[inline(always)]
    pub fn disable(&self) -> PreemptGuard<'_> {
        // Relaxed load/store: only this core writes the counter; see the module comment.
        let d = self.depth.load(Ordering::Relaxed);
        self.depth.store(d + 1, Ordering::Relaxed);
        // Signal fence: the guarded code's accesses stay after the increment as seen by this
        // core's interrupt handlers (the only observers that matter).
        compiler_fence(Ordering::SeqCst);
        PreemptGuard { preempt: self, _not_send: PhantomData }
    }

    #[inline(always)]
    fn enable(&self) {
        // Signal fence: the guarded code's accesses stay before the decrement.
        compiler_fence(Ordering::SeqCst);
        // Relaxed: as in `disable`.
        let d = self.depth.load(Ordering::Relaxed);
        debug_assert!(d > 0, "preemption enabled more often than disabled");
        self.depth.store(d - 1, Ordering::Relaxed);
        if d == 1 {
            // Signal fence: the pending check happens after the counter is 0, so a tick either
            // saw 0 (and preempted by itself) or set `pending` before we look at it.
            compiler_fence(Ordering::SeqCst);
            self.take_pending();
        }
    }

    /// Ends a disable that assembly did by hand (depth + 1 at [`Preempt::DEPTH_OFFSET`], as
    /// [`Preempt::disable`] does it): exactly a guard's drop, so the outermost one runs a tick
    /// deferred meanwhile. Call it on this `P`'s core, once per such disable.
    #[inline(always)]
    pub fn enable_after_raw_disable(&self) {
        self.enable();
    }

    #[cold]
    #[inline(never)]
    fn run_deferred(&self) {
        if let Some(hook) = self.hook.get() {
            hook();
        }
    }

    #[inline(always)]
    fn take_pending(&self) {
        // Relaxed: `pending` is set and cleared on this core only (by its tick handler and by
        // this code); the compiler fences above order it against the counter. A tick between the
        // load and the swap sees depth 0, preempts by itself and clears `pending`; the swap then
        // reads false and we do not yield twice.
        if self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Relaxed) {
            self.run_deferred();
        }
    }

    /// Called by the timer tick handler on this core: whether to switch tasks now.
    pub fn on_tick(&self) -> Tick {
        // Relaxed: see the module comment; the tick runs on the core that owns the counter.
        if self.depth.load(Ordering::Relaxed) == 0 {
            self.pending.store(false, Ordering::Relaxed);
            Tick::Preempt
        } else {
            self.pending.store(true, Ordering::Relaxed);
            self.deferred_ticks.fetch_add(1, Ordering::Relaxed);
            Tick::Deferred
        }
    }

    /// Current nesting depth (0: preemption enabled).
    pub fn depth(&self) -> u32 {
        // Relaxed: a snapshot (exact when read on the owning core).
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether a tick is waiting for preemption to be enabled.
    pub fn is_pending(&self) -> bool {
        // Relaxed: a snapshot.
        self.pending.load(Ordering::Relaxed)
    }

    /// Ticks that found preemption disabled (statistics).
    pub fn deferred_ticks(&self) -> u64 {
        // Relaxed: a statistic.
        self.deferred_ticks.load(Ordering::Relaxed)
    }
}

/// Preemption stays disabled on this core while this lives. Not `Send`: it must be dropped on
/// the core that created it (and a task holding one cannot be switched out, so it does not move).
#[must_use = "preemption is enabled again as soon as the guard is dropped"]
pub struct PreemptGuard<'a> {
    preempt: &'a Preempt,
    _not_send: PhantomData<*const ()>,
}

impl Drop for PreemptGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.preempt.enable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn guards_nest() {
        let p = Preempt::new();
        assert_eq!(p.depth(), 0);
        let a = p.disable();
        let b = p.disable();
        assert_eq!(p.depth(), 2);
        drop(b);
        assert_eq!(p.depth(), 1);
        drop(a);
        assert_eq!(p.depth(), 0);
    }

    #[test]
    fn tick_preempts_only_when_enabled() {
        let p = Preempt::new();
        assert_eq!(p.on_tick(), Tick::Preempt);
        assert!(!p.is_pending());
        let g = p.disable();
        assert_eq!(p.on_tick(), Tick::Deferred);
        assert!(p.is_pending());
        drop(g);
        assert!(!p.is_pending(), "the outermost enable takes the deferred tick");
        assert_eq!(p.deferred_ticks(), 1);
    }

    #[test]
    fn deferred_tick_runs_the_hook_once_at_the_outermost_enable() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn hook() {
            CALLS.fetch_add(1, Ordering::SeqCst);
        }
        let p = Preempt::new();
        p.set_deferred_hook(hook);
        let outer = p.disable();
        let inner = p.disable();
        assert_eq!(p.on_tick(), Tick::Deferred);
        assert_eq!(p.on_tick(), Tick::Deferred, "a second tick while disabled");
        drop(inner);
        assert_eq!(CALLS.load(Ordering::SeqCst), 0, "still disabled at depth 1");
        drop(outer);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1, "two deferred ticks, one yield");
        // Disabling and enabling again without a tick does not call it.
        drop(p.disable());
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn hook_runs_with_preemption_enabled() {
        static DEPTH_IN_HOOK: AtomicUsize = AtomicUsize::new(usize::MAX);
        static P: Preempt = Preempt::new();
        fn hook() {
            DEPTH_IN_HOOK.store(P.depth() as usize, Ordering::SeqCst);
        }
        P.set_deferred_hook(hook);
        let g = P.disable();
        P.on_tick();
        drop(g);
        assert_eq!(DEPTH_IN_HOOK.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn tick_while_enabled_clears_a_stale_pending() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn hook() {
            CALLS.fetch_add(1, Ordering::SeqCst);
        }
        let p = Preempt::new();
        p.set_deferred_hook(hook);
        // The tick that found the counter 0 switched tasks itself: nothing left to defer.
        p.pending.store(true, Ordering::Relaxed);
        assert_eq!(p.on_tick(), Tick::Preempt);
        drop(p.disable());
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn without_a_hook_a_deferred_tick_is_dropped_quietly() {
        let p = Preempt::new();
        let g = p.disable();
        p.on_tick();
        drop(g);
        assert!(!p.is_pending());
        assert_eq!(p.depth(), 0);
    }
}
