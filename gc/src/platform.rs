//! The collector's view of the machine: cores, stacks, time, stop-the-world; the per-core state
//! [`GcCore`] lives in `gccore.rs` and is re-exported here.
//!
//! The gc crate knows nothing about aarch64. Everything it needs from the kernel (or from the host
//! test harness, where threads stand in for cores) comes through [`Platform`], a trait of static
//! functions so that the barrier fast path, which calls `Platform::disable_preemption`, inlines.

use core::marker::PhantomData;
use core::panic::Location;
use core::sync::atomic::AtomicUsize;

use tricolor_timeline::State;

use crate::census::{CensusEntry, RootOwner};
use crate::collector::Collector;
pub(crate) use crate::gccore::NO_SPAN;
pub use crate::gccore::{GcCore, GCCORE_WBBUF_OFFSET};

/// A range of words to scan conservatively (a parked task's stack, its saved registers).
/// `lo` and `hi` are addresses; `lo` is rounded up and `hi` down to word alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanRange {
    /// Lowest address (inclusive).
    pub lo: usize,
    /// Highest address (exclusive).
    pub hi: usize,
}

/// How long a stop-the-world took to reach every safe point (part of its pause: a pause runs from
/// the stop request until the world runs again), and who was last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StopReport {
    /// The pause: from the request until the release that lets the world run again (0 if the
    /// platform cannot tell; the collector then times the whole call).
    pub pause_ns: u64,
    /// From the request to the last core parked.
    pub to_safepoint_ns: u64,
    /// The core that parked last.
    pub last_core: usize,
    /// Where it was stopped (a PC; 0 if unknown).
    pub last_pc: usize,
    /// It had preemption off when asked and parked when that ended (else it was interrupted).
    pub deferred: bool,
}

/// What the collector needs from the machine. Implemented once by the kernel (per-core state via
/// TPIDR_EL1, IPIs for stop-the-world) and by the host test harness (threads, a safe-point
/// handshake).
pub trait Platform: Sized + Sync + 'static {
    /// The guard returned by [`Platform::disable_preemption`]; preemption is back on when it drops.
    type NoPreempt;

    /// Number of cores (each has a [`GcCore`]).
    fn core_count() -> usize;
    /// Index of the core running the caller, `< core_count()`. Only stable while preemption is
    /// disabled (a task may migrate otherwise).
    fn current_core_index() -> usize;
    /// The per-core GC state of core `index`.
    fn core(index: usize) -> &'static GcCore;
    /// The current core's GC state.
    #[inline(always)]
    fn current_core() -> &'static GcCore {
        Self::core(Self::current_core_index())
    }
    /// The one collector this platform runs.
    fn collector() -> &'static Collector;

    /// Disable preemption (and migration) until the guard drops. Covers the barrier's window from
    /// reading `WRITE_BARRIER` to the store; nesting must be allowed.
    fn disable_preemption() -> Self::NoPreempt;
    /// The barriered store `*slot = new` ([`crate::barrier::write_pointer`] calls it). The
    /// default is the portable path, [`crate::barrier::write_pointer_guarded`], whose window is a
    /// preemption-disabled section. A platform may replace it with an equivalent that keeps the
    /// rules of [`crate::barrier`] at a lower cost (the kernel's restartable assembly windows,
    /// kernel/src/gc/barrier.rs); `caller` is only for checked-mode reports, so a replacement
    /// should pass it to a slow path only.
    #[inline(always)]
    fn write_pointer(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
        crate::barrier::write_pointer_guarded::<Self>(slot, new, caller)
    }
    /// Run `f` on the current core's system stack (the wbBuf flush runs there, so the caller's
    /// stack pays only for the barrier fast path). The host just calls `f`.
    fn systemstack<R>(f: impl FnOnce() -> R) -> R;
    /// Monotonic time in nanoseconds.
    fn now_ns() -> u64;
    /// Run `f` with every other core parked at a safe point (not inside a barrier window, not
    /// inside an allocation), with the parked cores' memory effects visible to `f` and `f`'s
    /// visible to them when they resume. Returns once the world runs again.
    fn stop_the_world<R>(f: impl FnOnce() -> R) -> R;
    /// Inside a [`Platform::stop_the_world`] closure: run `f` on the calling core and, where the
    /// platform can, on the parked cores too, each as that core (its [`GcCore`], its own grey
    /// buffer), and return once every call has returned. `off` mode's whole-mark pause uses it to
    /// mark with every core, as Boehm GC's parallel markers do. `f` must be safe to run on
    /// several cores at once and must not rely on any other call having started; a parked core
    /// that joins runs it at most once per call. The default runs it on the calling core only.
    fn help_while_stopped(f: &(dyn Fn() + Sync)) {
        f()
    }
    /// What the last [`Platform::stop_the_world`] spent reaching every safe point, and which core
    /// came last. Platforms that cannot tell report zeros.
    fn last_stop() -> StopReport {
        StopReport::default()
    }
    /// Report every range to scan conservatively (task stacks, saved registers), each with the
    /// task it belongs to. Called only while the world is stopped: mark setup in `off` mode (the
    /// whole mark is one pause), the verifier's snapshot and re-mark.
    fn for_each_stack_range(visit: &mut dyn FnMut(ScanRange, RootOwner));
    /// Mark setup, world stopped, concurrent modes: note every task whose stack and registers the
    /// concurrent mark must scan (every task alive now, less the exempt ones; see `census`).
    fn begin_stack_scans();
    /// During the concurrent mark, from the collecting task: scan the noted stacks that can be
    /// scanned now, each while its task is held at a safe point, through
    /// [`Collector::scan_stack`], and have the others scanned at their tasks' next safe points.
    /// True once every noted task is scanned or gone.
    fn scan_stacks(c: &Collector) -> bool;
    /// Whether the collecting task's work takes no time from the program right now: the platform
    /// runs the cycle on a task of its own on a core that has nothing else ready (the kernel
    /// hands a triggered cycle to an idle core's task). The collector's drains are then recorded
    /// as [`State::IdleMark`] instead of [`State::Mark`], and its sweep chunks as
    /// [`State::IdleSweep`] instead of [`State::Sweep`], like an idle core's (Go's idle mark
    /// workers and background sweeper). Asked with preemption disabled, before each bounded
    /// drain or chunk. The default (a cycle runs on the task that asked for it, a mutator): never.
    fn cycle_displaces_nothing() -> bool {
        false
    }
    /// The body of a short wait for other cores (the collector waiting for them to answer a
    /// request, for the mark to settle): a spin hint that lets an emulator run the other cores.
    fn relax();
    /// The body of a longer wait that other tasks of this core may be needed to end (a mutator's
    /// assist waiting for the markers): give the core to them. Defaults to [`Platform::relax`].
    fn yield_task() {
        Self::relax();
    }
    /// A diagnostic line for the log: a wait that should be short has lasted (the cycle lock's,
    /// see [`crate::cyclelock::wait_while`]), so that a hang says what it waits for. The default
    /// drops it.
    fn warn(message: core::fmt::Arguments<'_>) {
        let _ = message;
    }
    /// Mark termination's first step, the world running: every core runs
    /// [`Collector::flush_this_core`] at its next safe point (idle cores woken for it), and this
    /// returns once all have (Go's `forEachP` flushing every P's wbBuf). The default stops the
    /// world to do it, for platforms that do not care about that pause.
    fn flush_handshake(c: &Collector) {
        Self::stop_the_world(|| {
            c.flush_all::<Self>();
        });
    }
    /// The root census (see [`crate::census`]): every task alive now, from the task table and
    /// each core's current task, *not* from whatever `for_each_stack_range` consults to find
    /// stacks, with its exemption if it has one. Called only while the world is stopped, and only
    /// with the verifier on.
    fn root_census(visit: &mut dyn FnMut(CensusEntry));
    /// The calling core starts doing `state` (the per-core event recorder, `tricolor_timeline`);
    /// returns what it was doing, which the caller passes back here when it is done. The
    /// collector calls it where its work begins and ends ([`InState`]); the default records
    /// nothing.
    #[inline(always)]
    fn event(state: State) -> State {
        let _ = state;
        State::Mutator
    }
}

/// The calling core is in `state` until the guard drops, then back in the state it was in
/// ([`Platform::event`]). Declare it after any preemption guard of the same scope, so that it
/// drops first: a state is entered and left on the same core, inside the same window.
#[must_use = "the core leaves the state as soon as the guard is dropped"]
pub(crate) struct InState<P: Platform> {
    previous: State,
    _platform: PhantomData<P>,
}

impl<P: Platform> InState<P> {
    #[inline(always)]
    pub(crate) fn enter(state: State) -> Self {
        InState { previous: P::event(state), _platform: PhantomData }
    }
}

impl<P: Platform> Drop for InState<P> {
    #[inline(always)]
    fn drop(&mut self) {
        P::event(self.previous);
    }
}
