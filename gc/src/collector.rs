//! The collector: configuration, allocation entry points and the cycle.
//!
//! A cycle (`Collector::collect`):
//! 1. sweep termination: finish sweeping the previous cycle;
//! 2. stop the world: phase = mark, barrier on for all cores, shade globals and stacks (scanned
//!    once: the hybrid barrier makes a rescan unnecessary), restart the world;
//! 3. concurrent mark: this core (and any core running [`Collector::mark_worker`]) drains grey
//!    objects while mutators run; allocation is black;
//! 4. stop the world, mark termination: flush every wbBuf, drain, re-check until no grey object
//!    and no buffered pointer is left; barrier off; optional verifier; new sweep generation;
//! 5. sweep concurrently with allocation (allocators sweep a span before using it).
//!
//! In `off` mode steps 2-4 happen in one stop-the-world pause.

use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use alloc::vec::Vec;

use crate::barrier::{self, wb_buf_flush1, BarrierMode, BARRIER_CHECKING, BARRIER_MARKING, WRITE_BARRIER};
use crate::census::{self, CensusEntry, CensusPoint, RootOwner, Unscanned};
use crate::heap::{AllocError, Heap, SweepResult};
use crate::mark::{self, GlobalWork};
use crate::object::{Gc, Trace};
use crate::pacer::{self, CycleFacts, Pacer};
use crate::platform::{InState, Platform, ScanRange, StopReport};
use crate::roots::Roots;
use crate::stats::{CycleStats, StatsSnapshot};
use crate::verify::{self, Miss};
use crate::wbbuf::{WbBuf, WBBUF_DEFAULT_ENTRIES};
use tricolor_timeline::State;

/// A pause as the platform measured it (request to release), or else `timed`, the collector's
/// own timing of the whole stop-the-world call.
fn pause_of(stop: StopReport, timed: u64) -> u64 {
    if stop.pause_ns != 0 {
        stop.pause_ns
    } else {
        timed
    }
}

/// Mark termination attempts that may hand newly found grey objects back to concurrent marking.
pub const MAX_MARK_RESTARTS: u32 = 4;

/// A mark assist starts once a core owes this many bytes of marking (`Collector::assist_alloc`):
/// one drain stretch's worth, so that small allocations do not each pay a drain's set-up.
pub const ASSIST_BATCH: u64 = 16 * 1024;
/// Bytes an allocator past the trigger allocates per chunk it sweeps of a running sweep
/// ([`Collector::help_sweep`]).
pub const SWEEP_HELP_BATCH: u64 = 16 * 1024;

/// Collector phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// No cycle running (sweeping may still be in progress on allocation).
    Idle = 0,
    /// Marking: barrier on (per mode), allocation black.
    Mark = 1,
    /// Mark termination (world stopped).
    MarkTermination = 2,
    /// Sweeping after a cycle.
    Sweep = 3,
}

/// When the running mark started, for the pacer's utilisation term (`pacer::CycleFacts`).
#[derive(Clone, Copy, Debug, Default)]
struct MarkClock {
    /// `Platform::now_ns` at mark setup.
    started_ns: u64,
    /// The cores' assist time then.
    assist_ns: u64,
}

/// Boot-time configuration (`gc.heap=`, `gc.percent=`, `gc.wbbuf=`, `gc.mode=`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// GOGC-like: collect when the heap in use reaches live * (100 + percent) / 100.
    pub percent: u32,
    /// The heap minimum at GOGC 100 (`pacer::HEAP_MINIMUM` by default): no goal below it ×
    /// percent/100, the first cycle's included.
    pub heap_minimum: usize,
    /// wbBuf entries per core (clamped to `[WBBUF_MIN_ENTRIES, WBBUF_MAX_ENTRIES]`).
    pub wbbuf_entries: usize,
    /// Run the verifier at every mark termination.
    pub verify: bool,
    /// Panic when the verifier finds a miss (otherwise: log, record, repair).
    pub panic_on_miss: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            percent: 100,
            heap_minimum: pacer::HEAP_MINIMUM,
            wbbuf_entries: WBBUF_DEFAULT_ENTRIES,
            verify: false,
            panic_on_miss: false,
        }
    }
}

/// What one cycle did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Cycle number (1-based).
    pub cycle: u64,
    /// Bytes marked (live at mark termination).
    pub marked_bytes: u64,
    /// Bytes freed by this cycle's sweep (done by the collecting core; allocators sweep some too).
    pub freed_bytes: u64,
    /// Objects freed likewise.
    pub freed_objects: u64,
    /// Pauses in ns, each from the stop request until the world runs again: mark setup, and the
    /// longest mark termination attempt; in `off` mode the first holds all.
    pub pause_ns: [u64; 2],
    /// For the same two pauses: the time to reach every safe point, and who was last.
    pub safepoint: [StopReport; 2],
    /// Reachable objects the verifier found unmarked (0 if the verifier is off).
    pub verifier_misses: usize,
    /// Task stacks or saved registers the census says should have been scanned and were not
    /// (0 if the verifier is off).
    pub unscanned: usize,
    /// The heap goal this cycle was paced for ([`crate::pacer`]).
    pub heap_goal: u64,
    /// The trigger it was planned to start at.
    pub heap_trigger: u64,
    /// Heap in use when it started (mark setup).
    pub started_at: u64,
    /// Heap in use at mark termination: the cycle's peak.
    pub peak_heap: u64,
    /// Mark terminations that found grey objects and went back to concurrent marking.
    pub mark_restarts: u32,
    /// The concurrent mark's length until the grey set and the stack scans were done (before the
    /// flush handshake), and the part of it the collecting core found no grey object to take.
    pub mark_ns: u64,
    pub mark_wait_ns: u64,
    pub mark_wait_stacks_ns: u64,
    /// Mark termination's parts (in its last pause): the final flush and drain, the verifier, the
    /// pacer, releasing the allocation caches.
    pub termination_phases_ns: [u64; 4],
}

/// A cycle past its mark setup that can go on on another task ([`Collector::collect_movable`]):
/// holds the cycle lock until it ends.
pub struct Cycle<'c> {
    mode: BarrierMode,
    report: CycleReport,
    /// Mark terminations so far that went back to concurrent marking.
    restarts: u32,
    /// The mark is over (in `off` mode, in the setup pause).
    terminated: bool,
    _lock: spin::mutex::MutexGuard<'c, ()>,
}

/// How far [`Collector::collect_movable`] took its cycle.
pub enum CycleProgress<'c> {
    /// The cycle ran to its end.
    Done(CycleReport),
    /// The cycle is to be finished elsewhere ([`Collector::resume_cycle`]).
    Moved(Cycle<'c>),
}

impl CycleProgress<'_> {
    /// The report of a cycle that was never asked to move (its `move_now` always false).
    fn unmoved(self) -> CycleReport {
        match self {
            CycleProgress::Done(report) => report,
            CycleProgress::Moved(_) => unreachable!("a cycle that may not move moved"),
        }
    }
}

/// A pinned no-scan buffer in the GC heap (a framebuffer): page aligned, zeroed, never freed
/// while pinned, never scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedBuf {
    /// Address of the first byte.
    pub addr: usize,
    /// Usable length (whole pages).
    pub len: usize,
    ptr: NonNull<u8>,
}

impl PinnedBuf {
    /// Pointer to the buffer (with the heap's provenance).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

/// The collector: the heap, its roots and the cycle state.
pub struct Collector {
    /// The heap.
    pub heap: Heap,
    /// Global roots.
    pub roots: Roots,
    pub(crate) work: GlobalWork,
    phase: AtomicU8,
    percent: AtomicU32,
    heap_minimum: usize,
    wbbuf_entries: AtomicUsize,
    /// The barrier's full-buffer flushes hand their records to the markers during a mark
    /// (`mark::Batches`); off, each flush shades its own (Go's way). On by default.
    handoff: AtomicBool,
    /// This mark's hand-offs are over: set at its flush handshake, cleared at the next mark
    /// setup. From the handshake on, a full wbBuf is shaded by the mutator that filled it (Go's
    /// flush, concurrent), so that the final stop finds no batch queued since the drain that
    /// preceded it: shading one there is work in the pause (measured: 8 µs of pause less
    /// time-to-safepoint at 4 cores, against 1.3 µs at 1 core).
    handoff_closed: AtomicBool,
    verify: AtomicBool,
    /// This cycle's mark start took the verifier's snapshot (`verify` was on then).
    snapshot_taken: AtomicBool,
    panic_on_miss: bool,
    trigger: AtomicUsize,
    /// The running (or next) cycle's heap goal ([`crate::pacer`]).
    goal: AtomicUsize,
    /// The pacer's state and the plan its goal and trigger come from; the cycle's facts as far
    /// as known (mark setup notes where it started).
    pacer: crate::sync::Mutex<(Pacer, CycleFacts, MarkClock)>,
    /// Bytes of marking an allocated byte owes during this mark, ×2^16 (`pacer`).
    assist_ratio: AtomicU64,
    /// This mark's schedule (set at its start, [`Collector::start_assists`]): the heap in use
    /// when it started, the marking expected and the allocation room it has for it. Marking is
    /// on schedule while `scanned × room ≥ expected × allocated`; assists are owed only behind it
    /// ([`Collector::behind_schedule`]).
    mark_started_at: AtomicUsize,
    mark_expected: AtomicUsize,
    mark_room: AtomicUsize,
    /// One cycle (or mode change) at a time: held across the whole cycle, preemptibly, so it is
    /// the lock discipline's exception (`sync::CycleMutex`); never taken with preemption off. A
    /// cycle that moves takes its guard along ([`Cycle`]): it is let go by the task that finishes
    /// the cycle, on whichever core (the unlock is one Release store).
    cycle_lock: crate::sync::CycleMutex<()>,
    /// Cycle counters.
    pub stats: CycleStats,
    misses: crate::sync::Mutex<Vec<Miss>>,
    /// The root census of the cycle being verified (see [`census`]).
    census: crate::sync::Mutex<CycleCensus>,
    unscanned: crate::sync::Mutex<Vec<Unscanned>>,
}

/// One cycle's root census: the tasks alive at mark start and every range scanned since, by
/// owner. Only kept with the verifier on.
#[derive(Default)]
struct CycleCensus {
    at_start: Vec<CensusEntry>,
    scanned: Vec<RootOwner>,
}

impl Collector {
    /// A collector over the heap region `[base, base + len)`.
    ///
    /// # Safety
    /// As [`Heap::new`]: the region is valid, exclusively the collector's, and outlives it.
    pub unsafe fn new(base: *mut u8, len: usize, config: Config) -> Self {
        // Before any cycle: the goal floor, a trigger below it (`pacer`).
        let first = Pacer::new().plan(0, config.percent, config.heap_minimum);
        Collector {
            // SAFETY: forwarded contract.
            heap: unsafe { Heap::new(base, len) },
            roots: Roots::new(),
            work: GlobalWork::new(),
            phase: AtomicU8::new(Phase::Idle as u8),
            percent: AtomicU32::new(config.percent),
            heap_minimum: config.heap_minimum,
            wbbuf_entries: AtomicUsize::new(WbBuf::clamp_entries(config.wbbuf_entries)),
            handoff: AtomicBool::new(true),
            handoff_closed: AtomicBool::new(false),
            verify: AtomicBool::new(config.verify),
            snapshot_taken: AtomicBool::new(false),
            panic_on_miss: config.panic_on_miss,
            trigger: AtomicUsize::new(first.trigger),
            goal: AtomicUsize::new(first.goal),
            pacer: crate::sync::Mutex::new((
                Pacer::new(),
                CycleFacts {
                    live_before: 0,
                    plan: first,
                    started_at: 0,
                    peak: 0,
                    live: 0,
                    mark_core_ns: 0,
                    assist_ns: 0,
                },
                MarkClock::default(),
            )),
            assist_ratio: AtomicU64::new(0),
            mark_started_at: AtomicUsize::new(0),
            mark_expected: AtomicUsize::new(0),
            mark_room: AtomicUsize::new(1),
            cycle_lock: crate::sync::CycleMutex::new(()),
            stats: CycleStats::new(),
            misses: crate::sync::Mutex::new(Vec::new()),
            census: crate::sync::Mutex::new(CycleCensus { at_start: Vec::new(), scanned: Vec::new() }),
            unscanned: crate::sync::Mutex::new(Vec::new()),
        }
    }

    /// Whether a marker found the grey list empty and no draining marker has handed it any
    /// since (see `GlobalWork`): an idle marker waits for this to clear before it looks at the
    /// list again, without taking the list's lock, which the draining markers need. A hint.
    pub fn grey_list_starved(&self) -> bool {
        self.work.starved()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Mark,
            2 => Phase::MarkTermination,
            3 => Phase::Sweep,
            _ => Phase::Idle,
        }
    }

    fn set_phase(&self, p: Phase) {
        // Ordering: Relaxed; the phase changes only with the world stopped (or, Sweep -> Idle,
        // where allocation does not care), and the STW handshake publishes it.
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// Turn the verifier on or off (takes effect at the next mark termination).
    pub fn set_verify(&self, on: bool) {
        self.verify.store(on, Ordering::Relaxed);
    }

    /// Set the GOGC-like percentage.
    pub fn set_percent(&self, percent: u32) {
        self.percent.store(percent, Ordering::Relaxed);
    }

    /// Prepare every core's wbBuf (size, mode). Call once at boot before mutators run, or any time
    /// between cycles; it stops the world.
    pub fn init_cores<P: Platform>(&self) {
        self.set_mode::<P>(barrier::mode());
    }

    /// Switch the barrier mode between cycles (stops the world). Pending buffered pointers are
    /// discarded: no cycle is marking.
    pub fn set_mode<P: Platform>(&self, mode: BarrierMode) {
        // Compiled out, no barrier records or checks anything: mark as `off` does.
        let mode = if barrier::COMPILED_OUT { BarrierMode::Off } else { mode };
        let _cycle = self.cycle_lock.lock();
        P::stop_the_world(|| {
            let entries = self.wbbuf_entries.load(Ordering::Relaxed);
            for i in 0..P::core_count() {
                // SAFETY: the world is stopped; no core uses its buffer.
                let buf = unsafe { P::core(i).wbbuf_mut() };
                if mode.barrier_while_marking() && mode != BarrierMode::Buffered {
                    // The modes that shade (or check) at every barrier never record: with no room,
                    // every barrier leaves the kernel's restartable window for the guarded path,
                    // where shading (not restart-safe) runs under the preemption counter
                    // (barrier.rs invariants).
                    buf.set_always_full();
                } else {
                    buf.set_entries(entries);
                }
            }
            barrier::set_mode_word(mode);
            let flag = if mode == BarrierMode::Checked { BARRIER_CHECKING } else { 0 };
            // Ordering: Relaxed, world stopped; the restart handshake publishes it.
            WRITE_BARRIER.store(flag, Ordering::Relaxed);
        });
    }

    /// Whether the barrier's full-buffer flushes hand their records over to the markers
    /// during a mark (`mark::Batches`) or shade them themselves (`gc.handoff=off`).
    pub fn set_handoff(&self, on: bool) {
        // Ordering: Relaxed; each flush reads it once, and either way is correct.
        self.handoff.store(on, Ordering::Relaxed);
    }

    /// See [`Collector::set_handoff`].
    pub fn hands_off_batches(&self) -> bool {
        // Ordering: as in `set_handoff`; a flush that reads `handoff_closed` late only hands
        // over a batch that the final stop then shades.
        self.handoff.load(Ordering::Relaxed) && !self.handoff_closed.load(Ordering::Relaxed)
    }

    /// Set the wbBuf size (entries) for every core (stops the world).
    pub fn set_wbbuf_entries<P: Platform>(&self, entries: usize) {
        self.wbbuf_entries.store(WbBuf::clamp_entries(entries), Ordering::Relaxed);
        self.set_mode::<P>(barrier::mode());
    }

    /// Allocate a zeroed `T`. Black if a cycle is marking.
    #[cfg_attr(feature = "profile-boundaries", inline(never))]
    pub fn alloc<P: Platform, T: Trace>(&self) -> Result<Gc<T>, AllocError> {
        self.try_alloc::<P, T>().ok_or_else(|| self.alloc_error::<P>(T::TYPE.size))
    }

    /// [`Collector::alloc`] without the error report (see `Heap::try_alloc_object`).
    fn try_alloc<P: Platform, T: Trace>(&self) -> Option<Gc<T>> {
        let (addr, delayed) = {
            let _np = P::disable_preemption();
            let black = self.phase() == Phase::Mark;
            let core = P::current_core();
            let addr = self.heap.try_alloc_object::<P>(core, T::TYPE, black)?;
            (addr, self.heap.take_delayed_zero(core))
        };
        if let Some((span, len)) = delayed {
            // In chunks on the system stack, preemptible between them: a stop or a tick waits for
            // one chunk at most, and an interrupt taken mid-chunk leaves its registers (addresses
            // inside the payload) on the system stack, not in this task's dead stack, where a
            // later frame could cover them for the conservative scans once the object is dead
            // (gc-cycle direct, smp 4: a miss through a mutator's stack word pointing 0x2b30 into
            // a dead Blob). `addr` stays live in this frame, so a stack scan meanwhile finds (and
            // keeps) the object.
            let mut done = 0;
            while done < len {
                let n = (len - done).min(crate::heap::LARGE_ZERO_INLINE);
                P::systemstack(|| self.heap.zero_payload(span, done, n));
                done += n;
            }
            self.heap.zeroed(span);
            core::hint::black_box(addr);
            // The publication barrier, as the allocator's for what it initialised.
            fence(Ordering::Release);
        }
        let ptr = NonNull::new(self.heap.ptr(addr).cast::<T>()).expect("heap address is not null");
        // SAFETY: a freshly allocated, zeroed `T` (all-zero is valid per `Trace`), header set.
        Some(unsafe { Gc::from_raw(ptr) })
    }

    /// Allocate a `T` after the heap was found full: call `make_room` (run a cycle, or let the
    /// running one go on) and retry, until two cycles have completed since the first retry. One
    /// is not enough: a cycle already running may have started its mark before the caller dropped
    /// its garbage, which then floats until the next. The last `Err` says what was asked and what
    /// the heap holds.
    ///
    /// While the last cycle still sweeps, a failed retry sweeps a chunk itself and tries again
    /// before it calls `make_room` (which may wait for the next mark): once a mark has
    /// terminated, room is a sweep away, and a waiter need not wait for the whole sweep.
    pub fn alloc_when_full<P: Platform, T: Trace>(&self, mut make_room: impl FnMut()) -> Result<Gc<T>, AllocError> {
        let failed_at = self.stats.cycles.get();
        loop {
            make_room();
            // Until the sweep ends: its sweepers free spans a chunk at a time, and the walk may be
            // handed out while they still hold chunks. Waiting for the collecting task (which may
            // share this core) to end the sweep, this gives the core away.
            loop {
                if let Some(object) = self.try_alloc::<P, T>() {
                    return Ok(object);
                }
                if self.phase() != Phase::Sweep {
                    break;
                }
                if !self.sweep_a_chunk::<P>() {
                    P::yield_task();
                }
            }
            if self.stats.cycles.get() >= failed_at + 2 {
                return Err(self.alloc_error::<P>(T::TYPE.size));
            }
        }
    }

    /// Allocate a pinned, page-aligned, zeroed no-scan buffer of at least `len` bytes.
    pub fn alloc_pinned<P: Platform>(&self, len: usize) -> Result<PinnedBuf, AllocError> {
        let _np = P::disable_preemption();
        let black = self.phase() == Phase::Mark;
        let addr = self.heap.alloc_pinned(len, black)?;
        let ptr = NonNull::new(self.heap.ptr(addr)).expect("heap address is not null");
        Ok(PinnedBuf { addr, len: len.max(1).next_multiple_of(crate::sizeclass::HEAP_PAGE_SIZE), ptr })
    }

    /// Unpin a buffer: from now on it is freed once unreachable.
    pub fn unpin<P: Platform>(&self, buf: &PinnedBuf) -> bool {
        // The pinned list's spin lock is also taken by marking (pinned buffers are roots): not
        // to be held by a task that can be preempted.
        let _np = P::disable_preemption();
        self.heap.unpin(buf.addr)
    }

    /// True if the heap has grown past the trigger (GOGC-like pacing).
    pub fn should_collect(&self) -> bool {
        self.heap.live() >= self.trigger.load(Ordering::Relaxed)
    }

    /// Current trigger in bytes in use.
    pub fn trigger(&self) -> usize {
        self.trigger.load(Ordering::Relaxed)
    }

    /// The running (or next) cycle's heap goal in bytes in use.
    pub fn heap_goal(&self) -> usize {
        self.goal.load(Ordering::Relaxed)
    }

    /// A mutator allocated `bytes` (outside the allocator's guard): while a cycle marks, it owes
    /// `bytes × ratio` of marking (`pacer`), kept per core and paid in bounded drains once it
    /// reaches [`ASSIST_BATCH`] bytes, each a preemption-disabled stretch of at most
    /// `mark::DRAIN_BUDGET_SLOTS` slots on the system stack. A debt the grey set cannot pay (none
    /// left to take) is dropped: the markers have the rest in hand. Returns bytes marked.
    pub fn assist_alloc<P: Platform>(&self, bytes: usize) -> u64 {
        if self.phase() != Phase::Mark {
            return 0;
        }
        let ratio = self.assist_ratio.load(Ordering::Relaxed);
        let owed = (bytes as u64).saturating_mul(ratio) >> 16;
        let debt = {
            // The core's tally has one writer at a time: its own core, preemption off.
            let _np = P::disable_preemption();
            let core = P::current_core();
            let debt = core.stats.assist_debt.get().saturating_add(owed);
            core.stats.assist_debt.set(if debt < ASSIST_BATCH { debt } else { 0 });
            debt
        };
        if debt < ASSIST_BATCH || !self.behind_schedule::<P>() {
            // Below a batch, or the markers are ahead of the mark's schedule: what they marked
            // pays this debt (Go's background scan credit), and the mutator goes on.
            return 0;
        }
        let t = P::now_ns();
        let mut paid = 0u64;
        while paid < debt && self.phase() == Phase::Mark {
            let step = P::systemstack(|| {
                let _np = P::disable_preemption();
                let _assisting = InState::<P>::enter(State::Assist);
                let core = P::current_core();
                let before = core.stats.bytes_marked.get();
                // SAFETY: this core with preemption disabled.
                let work = unsafe { core.work_mut() };
                let scanned =
                    mark::drain_some(self, core, work, usize::MAX, mark::DRAIN_BUDGET_SLOTS, mark::Batched::Leave);
                (scanned, core.stats.bytes_marked.get() - before)
            });
            if step.0 == 0 {
                // No grey object to take: the markers hold the rest. Past the goal, wait for them
                // (Go parks such an assist until background marking earns it credit): the heap
                // must not grow further unchecked. Below it, the debt is forgiven.
                if self.heap.live() < self.heap_goal() {
                    break;
                }
                P::yield_task();
                continue;
            }
            paid += step.1.max(1);
        }
        self.revise_assist_ratio::<P>();
        let _np = P::disable_preemption();
        let core = P::current_core();
        core.stats.assists.bump();
        core.stats.assist_bytes.add(paid);
        core.stats.ns_assist.add(P::now_ns() - t);
        paid
    }

    /// Whether the mark is behind its schedule (see `mark_started_at`): what all markers have
    /// scanned so far (the cores' marked bytes less the allocation since the start, which is
    /// black) against what the allocation since the start calls for. A debt is owed only then:
    /// ahead of the schedule the markers' work pays it, so assists come in only when the mark
    /// would otherwise end past its goal.
    fn behind_schedule<P: Platform>(&self) -> bool {
        // Ordering: Relaxed throughout; the schedule was published by the restart handshake and
        // the counters are tallies, a stale one only moves one decision by a batch.
        let started = self.mark_started_at.load(Ordering::Relaxed);
        let expected = self.mark_expected.load(Ordering::Relaxed) as u128;
        let room = self.mark_room.load(Ordering::Relaxed).max(1) as u128;
        let allocated = self.heap.live().saturating_sub(started);
        let marked: u64 = (0..P::core_count()).map(|i| P::core(i).stats.bytes_marked.get()).sum();
        let scanned = (marked as usize).saturating_sub(allocated) as u128;
        scanned * room < expected * allocated as u128
    }

    /// The verifier's misses recorded so far (taken and cleared).
    ///
    /// Preemption is off while the list's spin lock is held (so for each of these three): a
    /// task preempted holding it would leave the verifier, which takes it with the world stopped,
    /// spinning for a task that cannot run.
    pub fn take_misses<P: Platform>(&self) -> Vec<Miss> {
        let _np = P::disable_preemption();
        // A named guard, dropped before `_np`: the tail expression's temporary would outlive the
        // locals (edition 2021), so preemption came back, and a deferred stop parked this task,
        // with the lock still held (gc-cycle-compiled-out hung: the verifier spun for it).
        let mut misses = self.misses.lock();
        core::mem::take(&mut *misses)
    }

    /// The census findings (tasks not scanned) recorded so far (taken and cleared).
    pub fn take_unscanned<P: Platform>(&self) -> Vec<Unscanned> {
        let _np = P::disable_preemption();
        let mut unscanned = self.unscanned.lock(); // named: see `take_misses`
        core::mem::take(&mut *unscanned)
    }

    /// Scan one range of a task's stack or saved registers conservatively during the concurrent
    /// mark (the platform's `scan_stacks` calls it for each task, from any core, with
    /// preemption disabled on that core and the task held at a safe point). The shaded objects
    /// are published before this returns, so a platform that then records the task as scanned
    /// (Release) lets a collector that sees the record (Acquire) see the grey objects.
    pub fn scan_stack<P: Platform>(&self, range: ScanRange, owner: RootOwner) {
        let core = P::current_core();
        // SAFETY: this core with preemption disabled (the caller's contract).
        let work = unsafe { core.work_mut() };
        mark::scan_conservative(self, core, work, range);
        work.publish(&self.work);
        if self.verify.load(Ordering::Relaxed) {
            self.census.lock().scanned.push(owner);
        }
    }

    /// Shade `addr` if a mark is running and it is a GC object: for a pointer that moves from one
    /// stack to another without passing through the heap (a new task's argument).
    pub fn shade_root<P: Platform>(&self, addr: usize) {
        if self.phase() != Phase::Mark {
            return;
        }
        let _np = P::disable_preemption();
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        if let Some(obj) = self.heap.find_object_conservative(addr) {
            mark::shade_object(self, core, work, obj);
            work.publish(&self.work);
        }
    }

    /// Help mark: drain grey objects on this core, at most `mark::DRAIN_BUDGET_SLOTS` pointer
    /// slots' worth with preemption disabled, so a stop or a tick waits for at most that. Mark
    /// workers on other cores call this in a loop while `phase() == Phase::Mark`. Returns objects
    /// scanned (0: no grey object was left to take).
    pub fn mark_worker<P: Platform>(&self) -> usize {
        let _np = P::disable_preemption();
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        mark::drain_some(self, core, work, usize::MAX, mark::DRAIN_BUDGET_SLOTS, mark::Batched::Shade)
    }

    /// The collecting task's bounded drain during the concurrent mark ([`Collector::mark_worker`])
    /// on the system stack (it is a mutator too, and the addresses a drain handles, of garbage as
    /// well, must not stay in its dead stack for a later frame to cover: see `sweep`). Recorded
    /// as the cycle's [`State::Mark`], or as [`State::IdleMark`] while the platform says the
    /// marking displaces nothing ([`Platform::cycle_displaces_nothing`]): asked per drain with
    /// preemption off, so a task made ready on this core turns the next drain back into `Mark`.
    /// Returns the objects scanned and whether the drain displaced nothing.
    fn collector_drain<P: Platform>(&self) -> (usize, bool) {
        P::systemstack(|| {
            // The state's guard inside a preemption guard, so that it is entered and left on this
            // core (`mark_worker` nests its own).
            let _np = P::disable_preemption();
            let alone = P::cycle_displaces_nothing();
            let _idle = alone.then(|| InState::<P>::enter(State::IdleMark));
            (self.mark_worker::<P>(), alone)
        })
    }

    /// One core's share of a mark with the world stopped (`off` mode; see
    /// [`Platform::help_while_stopped`]): drain this core's buffer and the global list, and
    /// return once no grey object is left anywhere and no marker holds any. A marker that finds
    /// nothing to take while another still drains waits for it to hand some over (`balance`),
    /// watching the list's hunger flag rather than taking its lock, which the draining marker
    /// needs.
    fn drain_stopped<P: Platform>(&self) {
        /// Looks at the hunger flag between looks at the list.
        const IDLE_SPINS: u32 = 64;
        let core = P::current_core();
        loop {
            // SAFETY: the world is stopped and this thread is the only one marking as `core`
            // (`help_while_stopped`'s contract); the borrow ends with the call.
            mark::drain(self, core, unsafe { core.work_mut() });
            if self.quiescent::<P>() {
                return;
            }
            let mut spins = 0;
            while self.work.starved() && spins < IDLE_SPINS {
                core::hint::spin_loop();
                spins += 1;
            }
            P::relax();
        }
    }

    /// A mutator's mark assist (Go's `gcAssistAlloc`): if a cycle is marking, scan at most `budget`
    /// grey objects on this core, leaving the rest to the markers. Returns objects scanned.
    pub fn mark_assist<P: Platform>(&self, budget: usize) -> usize {
        if self.phase() != Phase::Mark {
            return 0;
        }
        let _np = P::disable_preemption();
        let _assisting = InState::<P>::enter(State::Assist);
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        mark::drain_some(self, core, work, budget, usize::MAX, mark::Batched::Leave)
    }

    /// Whether the mark's grey set is empty and no marker holds work, from a preemptible task:
    /// the check takes the grey list's spin lock, which must not be held across a switch (a task
    /// preempted holding it left every core spinning for it in a drain, preemption off, and none
    /// could run it again: gc-cycle direct smp 4 hung, gdb showed four cores in `take`).
    fn quiescent<P: Platform>(&self) -> bool {
        let _np = P::disable_preemption();
        self.work.quiescent()
    }

    /// The out-of-memory report, built with preemption disabled (it takes the page map's lock;
    /// see [`Collector::quiescent`]).
    fn alloc_error<P: Platform>(&self, requested: usize) -> AllocError {
        let _np = P::disable_preemption();
        self.heap.alloc_error(requested)
    }

    /// Run a full cycle on the calling core. Mutators keep running on other cores except in the
    /// two stop-the-world pauses (one in `off` mode).
    pub fn collect<P: Platform>(&self) -> CycleReport {
        self.collect_with_hook::<P>(&mut || {})
    }

    /// [`Collector::collect`], calling `during_mark` after the world restarts (and the collecting
    /// thread's own stack has been scanned) and before this core starts marking: tests use it to
    /// act as a mutator in the middle of the mark. (In `off` mode marking is already complete by
    /// then.)
    pub fn collect_with_hook<P: Platform>(&self, during_mark: &mut dyn FnMut()) -> CycleReport {
        self.collect_movable::<P>(during_mark, &mut || false).unmoved()
    }

    /// [`Collector::collect_with_hook`], for a cycle that may go on on another task: during the
    /// concurrent mark, between drains, the collecting task asks `move_now`, and on `true`
    /// returns [`CycleProgress::Moved`] with the cycle, for the caller to hand to a task that
    /// finishes it ([`Collector::resume_cycle`]), and goes back to what it was doing. What a
    /// triggered cycle on a mutator's task does when another core goes idle: the rest of the
    /// cycle, waits included, then takes no time from that mutator (Go's gcStart hands the mark
    /// to background workers; its allocating goroutine goes on).
    ///
    /// Why a move is safe at that point: the cycle's state is this [`Cycle`] (its lock, its
    /// report, its restart count) and the collector's; the collecting core's grey buffer is the
    /// core's, not the task's (each drain publishes what it leaves, see `mark::drain_some`); the
    /// collecting task's stack is one of the scan list's like any other (scanned where it
    /// stands if it has not been yet, or at its next safe point once it runs as a mutator); and
    /// the task the cycle moves to is spawned during the mark, so its stack starts empty (black).
    pub fn collect_movable<P: Platform>(
        &self,
        during_mark: &mut dyn FnMut(),
        move_now: &mut dyn FnMut() -> bool,
    ) -> CycleProgress<'_> {
        let lock = self.cycle_lock.lock();
        // The whole cycle is this core's GC work; its sweeps, pauses and flushes nest inside.
        let _collecting = InState::<P>::enter(State::Mark);
        let mode = barrier::mode();
        let mut report = CycleReport { cycle: self.stats.cycles.get() + 1, ..CycleReport::default() };

        // The spare batches the mark's flushes may hand over (`mark::Batches`), allocated here,
        // outside any pause and any flush.
        {
            let _np = P::disable_preemption();
            let entries = self.wbbuf_entries.load(Ordering::Relaxed);
            self.work.reserve_batches(P::core_count() * mark::BATCHES_PER_CORE, entries);
        }

        // 1. Sweep termination.
        let t = P::now_ns();
        let swept = {
            let _sweeping = InState::<P>::enter(State::Sweep);
            self.sweep::<P>()
        };
        self.stats.bytes_freed.add(swept.bytes_freed as u64);
        self.stats.objects_freed.add(swept.objects_freed as u64);
        self.stats.ns_sweep.add(P::now_ns() - t);

        // 2. Mark setup, world stopped: the barrier on, the stacks to scan noted (globals and
        // stacks are scanned concurrently right after). The pause runs from the request to the
        // world running.
        let t_setup = P::now_ns();
        let mut done_in_setup = false;
        P::stop_the_world(|| {
            for i in 0..P::core_count() {
                P::core(i).stats.bytes_marked.set(0);
            }
            self.work.clear();
            // Ordering: Relaxed, world stopped; the restart handshake publishes it.
            self.handoff_closed.store(false, Ordering::Relaxed);
            self.start_pacing::<P>();
            self.set_phase(Phase::Mark);
            if mode.barrier_while_marking() {
                // Ordering: Relaxed, world stopped; published by the restart handshake, so every
                // core's next barrier sees it before it can store a pointer.
                WRITE_BARRIER.fetch_or(BARRIER_MARKING, Ordering::Relaxed);
            }
            let core = P::current_core();
            // SAFETY: the world is stopped.
            let work = unsafe { core.work_mut() };
            if !mode.marks_concurrently() {
                // `off`: the whole mark is this pause. Otherwise the globals are scanned right
                // after it (see `roots`).
                mark::scan_globals(self, core, work);
            }
            let verifying = self.verify.load(Ordering::Relaxed);
            let mut ranges = Vec::new();
            let mut census = self.census.lock();
            census.at_start.clear();
            census.scanned.clear();
            if mode.marks_concurrently() {
                // Stacks are scanned during the concurrent mark, one task at a time (the
                // platform's `scan_stacks`): this pause only notes which. The verifier's snapshot
                // reads them here, and marks nothing.
                P::begin_stack_scans();
                if verifying {
                    P::for_each_stack_range(&mut |r, _| ranges.push(r));
                }
            } else {
                // `off`: the whole mark is this pause.
                P::for_each_stack_range(&mut |r, owner| {
                    mark::scan_conservative(self, core, work, r);
                    if verifying {
                        ranges.push(r);
                        census.scanned.push(owner);
                    }
                });
            }
            if verifying {
                // Who must be scanned this cycle, and what exists and is reachable now, for the
                // verifier to classify what the mark misses.
                P::root_census(&mut |e| census.at_start.push(e));
                verify::snapshot(self, &ranges);
            }
            drop(census);
            self.snapshot_taken.store(verifying, Ordering::Relaxed);
            work.publish(&self.work);
            if !mode.marks_concurrently() {
                // Every core marks, each with its own grey buffer (the roots are on the global
                // list): the parked ones join where the platform lets them.
                P::help_while_stopped(&|| self.drain_stopped::<P>());
                self.mark_termination::<P>(mode, &mut report);
                done_in_setup = true;
            }
        });
        report.safepoint[0] = P::last_stop();
        report.pause_ns[0] = pause_of(report.safepoint[0], P::now_ns() - t_setup);
        self.stats.record_pause(report.pause_ns[0]);
        self.stats.ns_mark_setup.add(report.pause_ns[0]);

        self.start_assists::<P>();
        if mode.marks_concurrently() {
            // The globals, then the collecting task's own stack (it is a mutator too) and whatever
            // else the platform can scan right away, before it acts as a mutator in `during_mark`.
            mark::scan_globals_concurrently::<P>(self);
            P::scan_stacks(self);
        }
        during_mark();
        let cycle = Cycle { mode, report, restarts: 0, terminated: done_in_setup, _lock: lock };
        self.run_cycle::<P>(cycle, move_now)
    }

    /// The rest of a cycle that moved ([`Collector::collect_movable`]), on the calling task: its
    /// mark, termination and sweep. Returns its report.
    pub fn resume_cycle<P: Platform>(&self, cycle: Cycle<'_>) -> CycleReport {
        let _collecting = InState::<P>::enter(State::Mark);
        self.run_cycle::<P>(cycle, &mut || false).unmoved()
    }

    /// Steps 3 to 5 of `cycle`, or until `move_now` says to hand it over.
    fn run_cycle<'c, P: Platform>(
        &'c self,
        mut cycle: Cycle<'c>,
        move_now: &mut dyn FnMut() -> bool,
    ) -> CycleProgress<'c> {
        let mode = cycle.mode;
        // 3 and 4, like Go's gcMarkDone: mark concurrently until no grey object is visible, have
        // every core flush its wbBuf and mark what that greys, then stop the world and flush
        // every wbBuf again (only what was recorded since the handshake). If that surfaces grey
        // objects (a mutator shaded a large unmarked subgraph late), restart the world and mark
        // them concurrently instead of inside the pause; after `MAX_MARK_RESTARTS` the pause
        // drains whatever is left.
        while !cycle.terminated {
            // 3. Concurrent mark: drain, and scan the stacks noted at mark start, until both
            // are done (`collector_drain`: on the system stack).
            let t_mark = P::now_ns();
            let mut idle_since = None;
            // While the platform says this marking displaces nothing, so does its waiting
            // (`State::IdleMark`, entered once per stretch of waiting, not per look).
            let mut waiting_as_idle: Option<InState<P>> = None;
            loop {
                // Asked before each drain, the first included: a cycle that can move marks
                // nothing on the task that started it.
                if move_now() {
                    drop(waiting_as_idle);
                    cycle.report.mark_ns += P::now_ns() - t_mark;
                    self.stats.ns_concurrent_mark.add(P::now_ns() - t_mark);
                    return CycleProgress::Moved(cycle);
                }
                let (scanned, displaces_nothing) = self.collector_drain::<P>();
                if scanned > 0 {
                    idle_since = None;
                    waiting_as_idle = None;
                    continue;
                }
                let stacks_done = !mode.marks_concurrently() || P::scan_stacks(self);
                if stacks_done && self.quiescent::<P>() {
                    break;
                }
                // No grey object to take: waiting for stack scans or for other markers.
                let now = P::now_ns();
                cycle.report.mark_wait_ns += now - idle_since.unwrap_or(now);
                if !stacks_done {
                    cycle.report.mark_wait_stacks_ns += now - idle_since.unwrap_or(now);
                }
                idle_since = Some(now);
                if !displaces_nothing {
                    waiting_as_idle = None;
                } else if waiting_as_idle.is_none() {
                    waiting_as_idle = Some(InState::<P>::enter(State::IdleMark));
                }
                P::relax();
            }
            drop(waiting_as_idle);
            cycle.report.mark_ns += P::now_ns() - t_mark;
            // Every core flushes its own wbBuf while the world runs (Go's forEachP in
            // gcMarkDone), and the objects that greys are marked concurrently too: the final
            // pause then only flushes what was recorded since.
            if mode.marks_concurrently() {
                // Ordering: Relaxed (see `hands_off_batches`).
                self.handoff_closed.store(true, Ordering::Relaxed);
                P::flush_handshake(self);
                loop {
                    if self.collector_drain::<P>().0 > 0 {
                        continue;
                    }
                    if self.quiescent::<P>() {
                        break;
                    }
                    P::relax();
                }
            }
            self.stats.ns_concurrent_mark.add(P::now_ns() - t_mark);

            // 4. Mark termination, world stopped.
            let t_term = P::now_ns();
            let finished = P::stop_the_world(|| {
                if cycle.restarts < MAX_MARK_RESTARTS && !self.flush_all::<P>() {
                    false
                } else {
                    self.mark_termination::<P>(mode, &mut cycle.report);
                    true
                }
            });
            let stop = P::last_stop();
            let pause = pause_of(stop, P::now_ns() - t_term);
            self.stats.record_pause(pause);
            if pause >= cycle.report.pause_ns[1] {
                cycle.report.pause_ns[1] = pause;
                cycle.report.safepoint[1] = stop;
            }
            self.stats.ns_mark_termination.add(pause);
            cycle.terminated = finished;
            if !finished {
                cycle.restarts += 1;
                cycle.report.mark_restarts = cycle.restarts;
                self.stats.mark_restarts.bump();
            }
        }

        self.plan_next_cycle::<P>();

        // 5. Sweep, concurrently with allocation.
        let t = P::now_ns();
        let swept = {
            let _sweeping = InState::<P>::enter(State::Sweep);
            self.sweep::<P>()
        };
        self.set_phase(Phase::Idle);
        self.stats.bytes_freed.add(swept.bytes_freed as u64);
        self.stats.objects_freed.add(swept.objects_freed as u64);
        self.stats.ns_sweep.add(P::now_ns() - t);
        cycle.report.freed_bytes = swept.bytes_freed as u64;
        cycle.report.freed_objects = swept.objects_freed as u64;
        self.stats.cycles.bump();
        CycleProgress::Done(cycle.report)
    }

    /// The calling core's part of the flush handshake ([`Platform::flush_handshake`]): flush its
    /// wbBuf and publish its grey objects. The platform calls it on each core at a safe point,
    /// with preemption disabled.
    pub fn flush_this_core<P: Platform>(&self) {
        let _flushing = InState::<P>::enter(State::Flush);
        let core = P::current_core();
        // SAFETY: this core with preemption disabled (the caller's contract).
        let buf = unsafe { core.wbbuf_mut() };
        wb_buf_flush1(self, core, buf);
        // SAFETY: as above.
        unsafe { core.work_mut() }.publish(&self.work);
        // Its allocation caches too, while the world runs: mark termination then lets go of only
        // the spans cached since (per-core work in that pause, which grows with the cores).
        // Allocation goes on black from spans taken afresh.
        // SAFETY: as above.
        unsafe { self.heap.release_cache(core, true) };
    }

    /// Flush every core's wbBuf and local work to the global list (world stopped). True if no
    /// grey object resulted.
    pub(crate) fn flush_all<P: Platform>(&self) -> bool {
        for i in 0..P::core_count() {
            let core = P::core(i);
            // SAFETY: the world is stopped; this core is the only one touching buffers.
            let buf = unsafe { core.wbbuf_mut() };
            wb_buf_flush1(self, core, buf);
            // SAFETY: as above.
            unsafe { core.work_mut() }.publish(&self.work);
        }
        // The handed-over batches too: with the world stopped they are wbBufs like the rest.
        let me = P::current_core();
        // SAFETY: as above.
        let work = unsafe { me.work_mut() };
        while let Some(batch) = self.work.take_batch() {
            mark::shade_batch(self, me, work, batch);
            self.work.done();
        }
        work.publish(&self.work);
        self.work.quiescent()
    }

    /// Mark termination; the world is stopped.
    fn mark_termination<P: Platform>(&self, mode: BarrierMode, report: &mut CycleReport) {
        self.set_phase(Phase::MarkTermination);
        let me = P::current_core();
        let t0 = P::now_ns();
        // Flush every wbBuf, drain, and re-check: flushing may grey objects whose scan finds
        // nothing new, but with the world stopped nothing can refill a buffer, so this settles.
        loop {
            self.flush_all::<P>();
            // SAFETY: the world is stopped; this core is the only one touching buffers.
            mark::drain(self, me, unsafe { me.work_mut() });
            let buffers_empty = (0..P::core_count())
                // SAFETY: as above.
                .all(|i| unsafe { P::core(i).wbbuf_mut() }.empty());
            if buffers_empty && self.work.quiescent() {
                break;
            }
        }
        // Barrier off (checked mode keeps its checking bit).
        // Ordering: Relaxed, world stopped; the restart handshake publishes it.
        WRITE_BARRIER.fetch_and(!BARRIER_MARKING, Ordering::Relaxed);
        debug_assert!(mode != BarrierMode::Checked || WRITE_BARRIER.load(Ordering::Relaxed) == BARRIER_CHECKING);

        let t1 = P::now_ns();
        if self.verify.load(Ordering::Relaxed) {
            self.verify_marks::<P>(mode, report);
        }
        let t2 = P::now_ns();

        let marked: u64 = (0..P::core_count()).map(|i| P::core(i).stats.bytes_marked.get()).sum();
        report.marked_bytes = marked;
        self.stats.last_marked_bytes.set(marked);
        self.end_pacing::<P>(marked as usize, report);

        let t3 = P::now_ns();
        self.set_phase(Phase::Sweep);
        self.heap.begin_sweep_generation((0..P::core_count()).map(|i| P::core(i)));
        // After the caches let go of their spans (which takes their free room off the measure).
        self.heap.reset_live(marked as usize);
        self.stats.marks.bump();
        report.termination_phases_ns = [t1 - t0, t2 - t1, t3 - t2, P::now_ns() - t3];
    }

    /// Sweep every span not yet swept this generation, a chunk at a time with preemption
    /// disabled (sweeping takes span and class locks, which a core must not be switched out
    /// holding), preemptible between chunks; then wait for the other sweepers.
    ///
    /// Each chunk runs on the core's system stack: sweeping handles the addresses of dead
    /// objects, and left in the dead part of a task's stack they can end up, uninitialised, in a
    /// later frame, where the conservative verifier (or the next scan) takes them for references
    /// (gc-cycle buffered, smp 4: 21 misses "unreachable at mark start" through two mutators'
    /// stack words, 1 run in 6, once allocators helped the sweep on their own stacks).
    fn sweep<P: Platform>(&self) -> SweepResult {
        let mut total = SweepResult::default();
        loop {
            let _np = P::disable_preemption();
            // Idle sweeping where the collecting task displaces nothing (see `collector_drain`).
            let _idle = P::cycle_displaces_nothing().then(|| InState::<P>::enter(State::IdleSweep));
            if !P::systemstack(|| self.heap.sweep_chunk(&mut total)) {
                break;
            }
        }
        while !self.heap.sweeps_settled() {
            P::relax();
        }
        total
    }

    /// An allocator of `bytes` found the trigger crossed while a cycle still sweeps (its lock is
    /// held): once per [`SWEEP_HELP_BATCH`] bytes it sweeps a chunk of the walk itself (Go's
    /// allocation-proportional sweep), which both ends the sweep sooner and slows the allocation
    /// that outran it. Counted in the next cycle's freed totals only through the heap's own
    /// accounting. False if it swept nothing (below a batch, no sweep running, or its walk
    /// handed out already).
    pub fn help_sweep<P: Platform>(&self, bytes: usize) -> bool {
        if self.phase() != Phase::Sweep {
            return false;
        }
        {
            // One chunk per `SWEEP_HELP_BATCH` bytes allocated, not one per allocation: every
            // allocator past the trigger helps, and a chunk each time stopped every mutator in
            // sweeping while the collecting task's own sweep shared its core.
            let _np = P::disable_preemption();
            let stats = &P::current_core().stats;
            let debt = stats.sweep_debt.get() + bytes as u64;
            if debt < SWEEP_HELP_BATCH {
                stats.sweep_debt.set(debt);
                return false;
            }
            stats.sweep_debt.set(0);
        }
        self.sweep_a_chunk::<P>()
    }

    /// An idle core's help with a running sweep (the platform's idle loop, nothing else being
    /// ready there): one chunk of the walk, recorded as [`State::IdleSweep`]. False if there was
    /// nothing to sweep (no sweep running, or its walk handed out already).
    pub fn idle_sweep_chunk<P: Platform>(&self) -> bool {
        self.sweep_a_chunk_as::<P>(State::IdleSweep)
    }

    /// Sweep one chunk of a running sweep's walk on this core (an allocator's help, or one that
    /// found the heap full). False if there was nothing to sweep.
    fn sweep_a_chunk<P: Platform>(&self) -> bool {
        self.sweep_a_chunk_as::<P>(State::Sweep)
    }

    /// One chunk of a running sweep's walk, recorded as `state`; what it frees is counted by the
    /// heap (the cycle's own totals are its walk's).
    fn sweep_a_chunk_as<P: Platform>(&self, state: State) -> bool {
        if self.phase() != Phase::Sweep {
            return false;
        }
        let mut total = SweepResult::default();
        let _np = P::disable_preemption();
        let _sweeping = InState::<P>::enter(state);
        // On the system stack, as the collector's own sweep (see `sweep`).
        P::systemstack(|| self.heap.sweep_chunk(&mut total))
    }

    /// Mark setup (world stopped): note where the cycle started. The assist ratio is set right
    /// after the pause ([`Collector::start_assists`]), out of it (soft-float arithmetic).
    fn start_pacing<P: Platform>(&self) {
        let mut pacer = self.pacer.lock();
        pacer.1.started_at = self.heap.live();
        pacer.2 = MarkClock { started_ns: P::now_ns(), assist_ns: Self::assist_ns_so_far::<P>() };
        drop(pacer);
        // Ordering: Relaxed, world stopped; the restart handshake publishes it. No assists until
        // the ratio is set after the pause.
        self.assist_ratio.store(0, Ordering::Relaxed);
    }

    /// The cores' assist time since boot (each core's own counter, summed).
    fn assist_ns_so_far<P: Platform>() -> u64 {
        (0..P::core_count()).map(|i| P::core(i).stats.ns_assist.get()).sum()
    }

    /// Right after mark setup's pause: the assist ratio for this mark.
    fn start_assists<P: Platform>(&self) {
        let _np = P::disable_preemption();
        let pacer = self.pacer.lock();
        let f = pacer.1;
        drop(pacer);
        let in_use = self.heap.live();
        // Marking expected: what the last cycle found live; before any cycle, all there is.
        let expected = if f.live_before > 0 { f.live_before } else { in_use };
        let ratio = pacer::assist_ratio_fixed(expected, f.plan, f.live_before, in_use);
        // Ordering: Relaxed; allocators read them Relaxed (`assist_alloc`, `behind_schedule`):
        // a stale schedule only moves one decision by a batch.
        self.mark_started_at.store(f.started_at, Ordering::Relaxed);
        self.mark_expected.store(expected, Ordering::Relaxed);
        self.mark_room.store(pacer::assist_room(f.plan, f.live_before, in_use), Ordering::Relaxed);
        self.assist_ratio.store(ratio, Ordering::Relaxed);
    }

    /// Revise the assist ratio from the marking left and the room left (Go's `revise`): the
    /// marking done so far is what the cores marked less what was allocated black since the
    /// start (allocation during a mark counts as marked).
    fn revise_assist_ratio<P: Platform>(&self) {
        // A spin lock is never held where its holder could be switched out or parked for a stop
        // (a stop's closure takes this one).
        let _np = P::disable_preemption();
        let Some(pacer) = self.pacer.try_lock() else { return };
        let (plan, live_before, started_at) = (pacer.1.plan, pacer.1.live_before, pacer.1.started_at);
        drop(pacer);
        let in_use = self.heap.live();
        let marked: u64 = (0..P::core_count()).map(|i| P::core(i).stats.bytes_marked.get()).sum();
        let scanned = (marked as usize).saturating_sub(in_use.saturating_sub(started_at));
        let expected = if live_before > 0 { live_before } else { started_at };
        let remaining = expected.saturating_sub(scanned).max(expected / 16);
        let ratio = pacer::assist_ratio_fixed(remaining, plan, live_before, in_use);
        // Ordering: Relaxed; allocators read it Relaxed, a stale ratio only mis-sizes one debt.
        self.assist_ratio.store(ratio, Ordering::Relaxed);
    }

    /// Mark termination (world stopped): note the heap's peak and the live bytes. The next plan
    /// is made once the world runs again ([`Collector::plan_next_cycle`]): the pacer's arithmetic
    /// is soft-float on the kernel's target, some 600 instructions that need no stopped world.
    fn end_pacing<P: Platform>(&self, live: usize, report: &mut CycleReport) {
        let (now, assisted) = (P::now_ns(), Self::assist_ns_so_far::<P>());
        let mut pacer = self.pacer.lock();
        let clock = pacer.2;
        let facts = &mut pacer.1;
        facts.peak = self.heap.live();
        facts.live = live;
        facts.mark_core_ns = now.saturating_sub(clock.started_ns) * P::core_count() as u64;
        facts.assist_ns = assisted.saturating_sub(clock.assist_ns);
        report.heap_goal = facts.plan.goal as u64;
        report.peak_heap = facts.peak as u64;
        report.heap_trigger = facts.plan.trigger as u64;
        report.started_at = facts.started_at as u64;
    }

    /// After mark termination, the world running again (the cycle lock held, so no cycle can
    /// start before): the next goal and trigger from this cycle's facts.
    fn plan_next_cycle<P: Platform>(&self) {
        // Never switched out holding a spin lock (an assist's `try_lock` would only skip, but a
        // stop's closure takes this lock too).
        let _np = P::disable_preemption();
        let mut pacer = self.pacer.lock();
        let (state, facts, _) = &mut *pacer;
        let live = facts.live;
        let plan = state.end_cycle(*facts, self.percent.load(Ordering::Relaxed), self.heap_minimum);
        *facts = CycleFacts { live_before: live, plan, started_at: 0, peak: 0, live: 0, mark_core_ns: 0, assist_ns: 0 };
        // Ordering: Relaxed; allocators read them with Relaxed loads (a stale value only delays
        // one decision: until this store, a trigger check finds the cycle lock taken).
        self.trigger.store(plan.trigger, Ordering::Relaxed);
        self.goal.store(plan.goal, Ordering::Relaxed);
    }

    /// The verifier (world stopped, after the final drain): the root census checks, then the
    /// re-mark. Findings are logged, counted, kept for `take_misses` / `take_unscanned`, and
    /// repaired (the sweep keeps every reachable object), or panic with `panic_on_miss`.
    fn verify_marks<P: Platform>(&self, mode: BarrierMode, report: &mut CycleReport) {
        let t_verify = P::now_ns();
        let mut ranges = Vec::new();
        let mut covered = Vec::new();
        P::for_each_stack_range(&mut |r: ScanRange, owner| {
            ranges.push(r);
            covered.push(owner);
        });
        let mut now = Vec::new();
        P::root_census(&mut |e| now.push(e));
        let mut unscanned = {
            let census = self.census.lock();
            let alive = |task: u64| now.iter().any(|e| e.task == task);
            census::check(&census.at_start, &census.scanned, CensusPoint::MarkStart, alive)
        };
        unscanned.extend(census::check(&now, &covered, CensusPoint::Verify, |_| true));
        // What a skipped stack holds is reported (and kept) too: the re-mark walks the whole of
        // each one, live part and dead. (Only after a census finding, which fails the run anyway.)
        for u in unscanned.iter().filter(|u| u.part == census::RootPart::Stack) {
            if !ranges.contains(&u.entry.stack) {
                ranges.push(u.entry.stack);
            }
        }
        let snapshot = self.snapshot_taken.load(Ordering::Relaxed);
        let (misses, count) = verify::verify(self, &ranges, snapshot);
        self.stats.ns_verify.add(P::now_ns() - t_verify);
        for u in &unscanned {
            log::error!(
                "gc census: task '{}' (id {}, stack [{:#x}, {:#x})) {}: its {:?} was never scanned (mode {})",
                u.entry.name,
                u.entry.task,
                u.entry.stack.lo,
                u.entry.stack.hi,
                u.point.describe(),
                u.part,
                mode.name()
            );
        }
        for m in &misses {
            log::error!(
                "gc verifier: reachable object {:#x} ({}) not marked; reached through slot {:#x} holding {:#x}{}; {} (mode {})",
                m.object,
                m.type_name,
                m.slot,
                m.value,
                m.parent.map_or(alloc::string::String::new(), |p| alloc::format!(" of object {p:#x}")),
                m.cause.describe(),
                mode.name()
            );
            if let Some(around) = &m.around {
                // Eight words a line, the slot's marked: what else its frame holds (return
                // addresses, other spills) says which code left the word.
                let words: Vec<_> = around.words().collect();
                for line in words.chunks(8) {
                    let mut text = alloc::string::String::new();
                    for &(addr, word) in line {
                        let mark = if addr == m.slot { "*" } else { " " };
                        let _ = core::fmt::Write::write_fmt(&mut text, format_args!(" {mark}{word:#x}"));
                    }
                    log::error!("gc verifier:   words at {:#x}:{text}", line[0].0);
                }
            }
        }
        report.verifier_misses = count;
        report.unscanned = unscanned.len();
        self.stats.verifier_misses.add(count as u64);
        self.stats.unscanned.add(unscanned.len() as u64);
        if self.panic_on_miss && (count > 0 || !unscanned.is_empty()) {
            panic!("gc verifier: {count} reachable objects missed by the mark, {} stacks not scanned", unscanned.len());
        }
        self.misses.lock().extend(misses);
        self.unscanned.lock().extend(unscanned);
    }

    /// All counters, summed over cores.
    pub fn stats<P: Platform>(&self) -> StatsSnapshot {
        let s = &self.stats;
        let mut snap = StatsSnapshot {
            cycles: s.cycles.get(),
            ns_mark_setup: s.ns_mark_setup.get(),
            ns_concurrent_mark: s.ns_concurrent_mark.get(),
            ns_mark_termination: s.ns_mark_termination.get(),
            ns_sweep: s.ns_sweep.get(),
            pauses: s.pauses.get(),
            pause_max_ns: s.pause_max_ns.get(),
            pause_mean_ns: s.pause_total_ns.get() / s.pauses.get().max(1),
            last_marked_bytes: s.last_marked_bytes.get(),
            bytes_freed: s.bytes_freed.get(),
            objects_freed: s.objects_freed.get(),
            verifier_misses: s.verifier_misses.get(),
            unscanned: s.unscanned.get(),
            ns_verify: s.ns_verify.get(),
            mark_restarts: s.mark_restarts.get(),
            heap_in_use: self.heap.in_use() as u64,
            heap_size: self.heap.size() as u64,
            ..StatsSnapshot::default()
        };
        for i in 0..P::core_count() {
            let c = &P::core(i).stats;
            snap.barriers += c.barriers.get();
            snap.flushes += c.flushes.get();
            snap.handoffs += c.handoffs.get();
            snap.objects_shaded += c.shaded.get();
            snap.allocs += c.allocs.get();
            snap.checked_reports += c.checked_reports.get();
            snap.assists += c.assists.get();
            snap.assist_bytes += c.assist_bytes.get();
            snap.ns_assist += c.ns_assist.get();
        }
        snap
    }
}
