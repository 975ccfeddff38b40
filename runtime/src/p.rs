//! `P`: the per-core state (Go's "p").
//!
//! One `P` per core, created at boot and never freed, reachable from its core through TPIDR_EL1
//! (`this_p()` on aarch64). It holds the core's system and exception stacks, its preemption
//! state, the task it is running and statistics. The collector's per-core state is not here: the
//! kernel's per-core block holds it beside the `P`, at a fixed offset from TPIDR_EL1
//! (`kernel/src/percore.rs`), so the runtime does not need to know the collector's types.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::preempt::Preempt;
use crate::stack::Stack;
use crate::task::Task;
use crate::CoreId;

/// Per-core counters. Relaxed atomics: they are statistics, ordered with nothing.
#[derive(Default, Debug)]
pub struct PStats {
    /// Task switches performed by this core.
    pub context_switches: AtomicU64,
    /// Switches caused by a timer tick.
    pub preemptions: AtomicU64,
    /// Switches caused by a task yielding.
    pub yields: AtomicU64,
    /// Tasks this core stole from another core's queue.
    pub steals: AtomicU64,
    /// `systemstack` calls that actually switched stacks.
    pub systemstack_switches: AtomicU64,
}

impl PStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        // Relaxed: a statistic; see the type's doc.
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A core's runtime state. See the module documentation.
#[repr(C)]
pub struct P {
    core: CoreId,
    system_stack: Stack,
    exception_stack: Stack,
    /// Preemption control for this core.
    pub preempt: Preempt,
    /// Statistics.
    pub stats: PStats,
    /// The running task (`Arc::into_raw`), or null before the boot flow is adopted.
    current: AtomicPtr<Task>,
    /// The task this core just switched away from, until `sched::finish_switch` hands it on.
    pub(crate) switching_from: AtomicPtr<Task>,
    /// Set while code runs on the system stack through `systemstack` (only this core writes it).
    /// An exception handler on another stack that calls `systemstack` meanwhile must not reset
    /// SP to the top of a system stack that is in use below the interrupted SP.
    pub(crate) system_stack_busy: AtomicBool,
}

// Every core reads other cores' `P`s (stop-the-world, the root scan, statistics): all its shared
// state is atomics or written once before the `P` is published.
static_assertions::assert_impl_all!(P: Send, Sync);

impl P {
    /// Byte offset of the preemption depth (a `u32`) in a `P`, for assembly that reaches this
    /// core's `P` through TPIDR_EL1 (the kernel's barrier flush stub).
    pub const PREEMPT_DEPTH_OFFSET: usize = core::mem::offset_of!(P, preempt) + Preempt::DEPTH_OFFSET;
    /// Byte offset of the system stack's top (`Stack::hi`, a `usize`) in a `P`, for assembly.
    pub const SYSTEM_STACK_TOP_OFFSET: usize =
        core::mem::offset_of!(P, system_stack) + core::mem::offset_of!(Stack, hi);
    /// Byte offset of the system-stack busy flag (an `AtomicBool`, one byte) in a `P`, for
    /// assembly, which must set and clear it as `systemstack` does.
    pub const SYSTEM_STACK_BUSY_OFFSET: usize = core::mem::offset_of!(P, system_stack_busy);

    /// Creates core `core`'s `P` directly in `place` (the kernel's static per-core block, which
    /// cannot be built by value: it is written by its own core at bring-up).
    pub fn init_in(
        place: &'static mut MaybeUninit<P>,
        core: CoreId,
        system_stack: Stack,
        exception_stack: Stack,
    ) -> &'static P {
        let p = place.as_mut_ptr();
        // SAFETY: `p` points to memory we own exclusively (`&'static mut`), properly aligned for
        // P. Each field is written exactly once through a raw place projection, which creates no
        // reference to the (still uninitialised) whole.
        unsafe {
            (&raw mut (*p).core).write(core);
            (&raw mut (*p).system_stack).write(system_stack);
            (&raw mut (*p).exception_stack).write(exception_stack);
            (&raw mut (*p).preempt).write(Preempt::new());
            (&raw mut (*p).stats).write(PStats::default());
            (&raw mut (*p).current).write(AtomicPtr::new(ptr::null_mut()));
            (&raw mut (*p).switching_from).write(AtomicPtr::new(ptr::null_mut()));
            (&raw mut (*p).system_stack_busy).write(AtomicBool::new(false));
        }
        // SAFETY: every field is initialised above.
        unsafe { place.assume_init_ref() }
    }

    /// [`P::init_in`] on a leaked heap allocation (never freed: a `P` lives as long as its core).
    pub fn leak_new(core: CoreId, system_stack: Stack, exception_stack: Stack) -> &'static P {
        P::init_in(Box::leak(Box::new_uninit()), core, system_stack, exception_stack)
    }

    /// The core this `P` belongs to.
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The stack `systemstack` runs on.
    pub fn system_stack(&self) -> &Stack {
        &self.system_stack
    }

    /// The stack exception handlers run on.
    pub fn exception_stack(&self) -> &Stack {
        &self.exception_stack
    }

    /// Runs `f` with this core's system stack marked busy, so every `systemstack` call inside
    /// `f` runs its closure in place on the current stack, exactly as a nested call does. For
    /// measurements only: the barrier-stack bench uses it to see how many bytes of the caller's
    /// stack the write-barrier flush would take without the switch. Call it on this `P`'s own
    /// core. Preemption is disabled meanwhile: the flag belongs to this core, so `f` must neither
    /// migrate nor let another task of this core run while it is set.
    pub fn without_systemstack<R>(&self, f: impl FnOnce() -> R) -> R {
        let _no_preempt = self.preempt.disable();
        // Relaxed, and no compiler fence (unlike `systemstack`): only this core touches the flag,
        // and an interrupt handler that sees either value is safe, because a set flag only makes
        // `systemstack` run its closure where it is instead of resetting SP.
        let was_busy = self.system_stack_busy.swap(true, Ordering::Relaxed);
        let result = f();
        self.system_stack_busy.store(was_busy, Ordering::Relaxed);
        result
    }

    /// Makes `task` the running task of this core (the boot flow, adopted as the idle task).
    ///
    /// # Panics
    /// If the core already has a current task.
    pub fn adopt_current(&self, task: Arc<Task>) {
        let raw = Arc::into_raw(task).cast_mut();
        // AcqRel: Release publishes the task's initialisation to readers of `current`; Acquire
        // is irrelevant here (the old value must be null) but keeps the RMW's two sides alike.
        let old = self.current.swap(raw, Ordering::AcqRel);
        assert!(old.is_null(), "core {} already has a task", self.core);
    }

    /// The running task, as a raw pointer (null before [`P::adopt_current`]).
    pub fn current_ptr(&self) -> *const Task {
        // Acquire: pairs with the Release stores of `current`, so the task's fields are visible.
        self.current.load(Ordering::Acquire)
    }

    /// The running task.
    ///
    /// # Safety
    /// Call it from the running task itself (on this core, in task or interrupt context) or with
    /// the world stopped: then the task cannot be switched away and freed concurrently.
    pub unsafe fn current(&self) -> Option<Arc<Task>> {
        let raw = self.current_ptr();
        if raw.is_null() {
            return None;
        }
        // SAFETY: `raw` came from `Arc::into_raw` and P holds that strong count; by the contract
        // it is not released while we take another.
        unsafe {
            Arc::increment_strong_count(raw);
            Some(Arc::from_raw(raw))
        }
    }

    /// Replaces the current task, returning the previous one (scheduler use only).
    pub(crate) fn replace_current(&self, next: Arc<Task>) -> Option<Arc<Task>> {
        let raw = Arc::into_raw(next).cast_mut();
        // AcqRel: Release publishes `next`'s state to readers of `current`; Acquire makes the
        // previous task's state visible before we take over its strong count.
        let old = self.current.swap(raw, Ordering::AcqRel);
        // SAFETY: a non-null `old` came from `Arc::into_raw`, and swapping it out of P transfers
        // P's strong count to us.
        (!old.is_null()).then(|| unsafe { Arc::from_raw(old) })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stack::StackKind;
    use crate::task::tests::test_task;

    /// Every `P` the tests made. A `P` is leaked by design (it lives as long as its core), and
    /// Miri's leak check reports leaked memory that no static reaches: a test that panics on
    /// purpose before its `P` is stored anywhere would be reported. Kept here, test `P`s (and
    /// the tasks they hold) stay reachable, and the leak check stays on for everything else.
    static TEST_PS: std::sync::Mutex<Vec<&'static P>> = std::sync::Mutex::new(Vec::new());

    pub(crate) fn test_p(core: CoreId) -> &'static P {
        let base = 0x100_0000 * (core + 1);
        let sys = Stack::new(StackKind::System, base, base + 0x4000, 0x1000, Some(core), "system");
        let exc = Stack::new(StackKind::Exception, base + 0x10_0000, base + 0x10_2000, 0x1000, Some(core), "exception");
        let p = P::leak_new(core, sys, exc);
        TEST_PS.lock().unwrap_or_else(|e| e.into_inner()).push(p);
        p
    }

    #[test]
    fn p_knows_its_core_and_stacks() {
        let p = test_p(2);
        assert_eq!(p.core(), 2);
        assert_eq!(p.system_stack().kind, StackKind::System);
        assert_eq!(p.exception_stack().kind, StackKind::Exception);
        assert_eq!(p.preempt.depth(), 0);
        assert!(p.current_ptr().is_null());
    }

    #[test]
    fn without_systemstack_sets_the_busy_flag_and_restores_it() {
        let p = test_p(3);
        let inside = p.without_systemstack(|| (p.system_stack_busy.load(Ordering::Relaxed), p.preempt.depth()));
        assert_eq!(inside, (true, 1), "busy and not preemptible inside");
        assert!(!p.system_stack_busy.load(Ordering::Relaxed));
        assert_eq!(p.preempt.depth(), 0);
        // Already busy (called on the system stack): stays busy afterwards.
        p.system_stack_busy.store(true, Ordering::Relaxed);
        p.without_systemstack(|| ());
        assert!(p.system_stack_busy.load(Ordering::Relaxed));
    }

    #[test]
    fn current_task_is_adopted_and_replaced() {
        let p = test_p(1);
        let a = Arc::new(test_task("a"));
        p.adopt_current(a.clone());
        assert_eq!(p.current_ptr(), Arc::as_ptr(&a));
        // SAFETY: single-threaded test; nothing switches tasks concurrently.
        let cur = unsafe { p.current() }.unwrap();
        assert_eq!(cur.id(), a.id());
        let b = Arc::new(test_task("b"));
        let old = p.replace_current(b.clone()).unwrap();
        assert_eq!(old.id(), a.id());
        drop(old);
        drop(cur);
        assert_eq!(Arc::strong_count(&a), 1, "P released a's count");
        assert_eq!(Arc::strong_count(&b), 2, "P holds one count of b");
    }
}
