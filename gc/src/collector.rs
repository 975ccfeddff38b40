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
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use alloc::vec::Vec;

use crate::barrier::{self, wb_buf_flush1, BarrierMode, BARRIER_CHECKING, BARRIER_MARKING, WRITE_BARRIER};
use crate::heap::{AllocError, Heap};
use crate::mark::{self, GlobalWork};
use crate::object::{Gc, Trace};
use crate::platform::{Platform, ScanRange};
use crate::roots::Roots;
use crate::stats::{CycleStats, StatsSnapshot};
use crate::verify::{self, Miss};
use crate::wbbuf::{WbBuf, WBBUF_DEFAULT_ENTRIES, WBBUF_MIN_ENTRIES};

/// Mark termination attempts that may hand newly found grey objects back to concurrent marking.
pub const MAX_MARK_RESTARTS: u32 = 4;

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

/// Boot-time configuration (`gc.heap=`, `gc.percent=`, `gc.wbbuf=`, `gc.mode=`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// GOGC-like: collect when the heap in use reaches live * (100 + percent) / 100.
    pub percent: u32,
    /// Never trigger below this many bytes in use.
    pub min_trigger: usize,
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
            min_trigger: 256 * 1024,
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
    /// Pauses in ns: mark setup, and the longest mark termination attempt; in `off` mode the
    /// first holds all.
    pub pause_ns: [u64; 2],
    /// Reachable objects the verifier found unmarked (0 if the verifier is off).
    pub verifier_misses: usize,
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
    min_trigger: usize,
    wbbuf_entries: AtomicUsize,
    verify: AtomicBool,
    /// This cycle's mark start took the verifier's snapshot (`verify` was on then).
    snapshot_taken: AtomicBool,
    panic_on_miss: bool,
    trigger: AtomicUsize,
    cycle_lock: spin::Mutex<()>,
    /// Cycle counters.
    pub stats: CycleStats,
    misses: spin::Mutex<Vec<Miss>>,
}

impl Collector {
    /// A collector over the heap region `[base, base + len)`.
    ///
    /// # Safety
    /// As [`Heap::new`]: the region is valid, exclusively the collector's, and outlives it.
    pub unsafe fn new(base: *mut u8, len: usize, config: Config) -> Self {
        Collector {
            // SAFETY: forwarded contract.
            heap: unsafe { Heap::new(base, len) },
            roots: Roots::new(),
            work: GlobalWork::new(),
            phase: AtomicU8::new(Phase::Idle as u8),
            percent: AtomicU32::new(config.percent),
            min_trigger: config.min_trigger,
            wbbuf_entries: AtomicUsize::new(WbBuf::clamp_entries(config.wbbuf_entries)),
            verify: AtomicBool::new(config.verify),
            snapshot_taken: AtomicBool::new(false),
            panic_on_miss: config.panic_on_miss,
            trigger: AtomicUsize::new(config.min_trigger),
            cycle_lock: spin::Mutex::new(()),
            stats: CycleStats::new(),
            misses: spin::Mutex::new(Vec::new()),
        }
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
        let _cycle = self.cycle_lock.lock();
        P::stop_the_world(|| {
            let entries = if mode == BarrierMode::Checked {
                WBBUF_MIN_ENTRIES
            } else {
                self.wbbuf_entries.load(Ordering::Relaxed)
            };
            for i in 0..P::core_count() {
                // SAFETY: the world is stopped; no core uses its buffer.
                unsafe { P::core(i).wbbuf_mut() }.set_entries(entries);
            }
            barrier::set_mode_word(mode);
            let flag = if mode == BarrierMode::Checked { BARRIER_CHECKING } else { 0 };
            // Ordering: Relaxed, world stopped; the restart handshake publishes it.
            WRITE_BARRIER.store(flag, Ordering::Relaxed);
        });
    }

    /// Set the wbBuf size (entries) for every core (stops the world).
    pub fn set_wbbuf_entries<P: Platform>(&self, entries: usize) {
        self.wbbuf_entries.store(WbBuf::clamp_entries(entries), Ordering::Relaxed);
        self.set_mode::<P>(barrier::mode());
    }

    /// Allocate a zeroed `T`. Black if a cycle is marking.
    pub fn alloc<P: Platform, T: Trace>(&self) -> Result<Gc<T>, AllocError> {
        let _np = P::disable_preemption();
        let black = self.phase() == Phase::Mark;
        let addr = self.heap.alloc_object(P::current_core(), T::TYPE, black)?;
        let ptr = NonNull::new(self.heap.ptr(addr).cast::<T>()).expect("heap address is not null");
        // SAFETY: a freshly allocated, zeroed `T` (all-zero is valid per `Trace`), header set.
        Ok(unsafe { Gc::from_raw(ptr) })
    }

    /// Allocate a `T` after the heap was found full: call `make_room` (run a cycle, or let the
    /// running one go on) and retry, until two cycles have completed since the first retry. One
    /// is not enough: a cycle already running may have started its mark before the caller dropped
    /// its garbage, which then floats until the next. The last `Err` says what was asked and what
    /// the heap holds.
    pub fn alloc_when_full<P: Platform, T: Trace>(&self, mut make_room: impl FnMut()) -> Result<Gc<T>, AllocError> {
        let failed_at = self.stats.cycles.get();
        loop {
            make_room();
            match self.alloc::<P, T>() {
                Ok(object) => return Ok(object),
                Err(e) if self.stats.cycles.get() >= failed_at + 2 => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Allocate a pinned, page-aligned, zeroed no-scan buffer of at least `len` bytes.
    pub fn alloc_pinned<P: Platform>(&self, len: usize) -> Result<PinnedBuf, AllocError> {
        let _np = P::disable_preemption();
        let black = self.phase() == Phase::Mark;
        let addr = self.heap.alloc_pinned(len, black)?;
        let ptr = NonNull::new(self.heap.ptr(addr)).expect("heap address is not null");
        Ok(PinnedBuf { addr, len: len.max(1).next_multiple_of(crate::sizeclass::PAGE_SIZE), ptr })
    }

    /// Unpin a buffer: from now on it is freed once unreachable.
    pub fn unpin(&self, buf: &PinnedBuf) -> bool {
        self.heap.unpin(buf.addr)
    }

    /// True if the heap has grown past the trigger (GOGC-like pacing).
    pub fn should_collect(&self) -> bool {
        self.heap.in_use() >= self.trigger.load(Ordering::Relaxed)
    }

    /// Current trigger in bytes in use.
    pub fn trigger(&self) -> usize {
        self.trigger.load(Ordering::Relaxed)
    }

    /// The verifier's misses recorded so far (taken and cleared).
    pub fn take_misses(&self) -> Vec<Miss> {
        core::mem::take(&mut *self.misses.lock())
    }

    /// Help mark: drain grey objects on this core until none is left. Mark workers on other
    /// cores call this in a loop while `phase() == Phase::Mark`. Returns objects scanned.
    pub fn mark_worker<P: Platform>(&self) -> usize {
        let _np = P::disable_preemption();
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        mark::drain(self, core, work)
    }

    /// A mutator's mark assist (Go's `gcAssistAlloc`): if a cycle is marking, scan at most `budget`
    /// grey objects on this core, leaving the rest to the markers. Returns objects scanned.
    pub fn mark_assist<P: Platform>(&self, budget: usize) -> usize {
        if self.phase() != Phase::Mark {
            return 0;
        }
        let _np = P::disable_preemption();
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        mark::drain_some(self, core, work, budget)
    }

    /// Run a full cycle on the calling core. Mutators keep running on other cores except in the
    /// two stop-the-world pauses (one in `off` mode).
    pub fn collect<P: Platform>(&self) -> CycleReport {
        self.collect_with_hook::<P>(&mut || {})
    }

    /// [`Collector::collect`], calling `during_mark` after the world restarts and before this core
    /// starts marking: tests use it to act as a mutator in the middle of the mark. (In `off` mode
    /// marking is already complete by then.)
    pub fn collect_with_hook<P: Platform>(&self, during_mark: &mut dyn FnMut()) -> CycleReport {
        let _cycle = self.cycle_lock.lock();
        let mode = barrier::mode();
        let mut report = CycleReport { cycle: self.stats.cycles.get() + 1, ..CycleReport::default() };

        // 1. Sweep termination.
        let t = P::now_ns();
        // Sweeping takes the heap's span and class locks: a core must not be switched out while
        // holding one (its other tasks would spin on it forever), so no preemption meanwhile.
        let swept = {
            let _np = P::disable_preemption();
            self.heap.sweep_all()
        };
        self.stats.bytes_freed.add(swept.bytes_freed as u64);
        self.stats.objects_freed.add(swept.objects_freed as u64);
        self.stats.ns_sweep.add(P::now_ns() - t);

        // 2. Mark setup, world stopped.
        let t_setup = P::now_ns();
        let mut done_in_setup = false;
        P::stop_the_world(|| {
            let t0 = P::now_ns();
            for i in 0..P::core_count() {
                P::core(i).stats.bytes_marked.set(0);
            }
            self.work.clear();
            self.set_phase(Phase::Mark);
            if mode.barrier_while_marking() {
                // Ordering: Relaxed, world stopped; published by the restart handshake, so every
                // core's next barrier sees it before it can store a pointer.
                WRITE_BARRIER.fetch_or(BARRIER_MARKING, Ordering::Relaxed);
            }
            let core = P::current_core();
            // SAFETY: the world is stopped.
            let work = unsafe { core.work_mut() };
            mark::scan_globals(self, core, work);
            let verifying = self.verify.load(Ordering::Relaxed);
            let mut ranges = Vec::new();
            P::for_each_stack_range(&mut |r| {
                mark::scan_conservative(self, core, work, r);
                if verifying {
                    ranges.push(r);
                }
            });
            if verifying {
                // What is reachable now, for the verifier to tell a lost object from a stale word.
                verify::snapshot(self, &ranges);
            }
            self.snapshot_taken.store(verifying, Ordering::Relaxed);
            work.publish(&self.work);
            if !mode.marks_concurrently() {
                mark::drain(self, core, work);
                self.mark_termination::<P>(mode, &mut report);
                done_in_setup = true;
            }
            report.pause_ns[0] = P::now_ns() - t0;
        });
        self.stats.record_pause(report.pause_ns[0]);
        self.stats.ns_mark_setup.add(P::now_ns() - t_setup);

        during_mark();
        // 3 and 4, like Go's gcMarkDone: mark concurrently until no grey object is visible, then
        // stop the world and flush every wbBuf. If that surfaces grey objects (a mutator shaded a
        // large unmarked subgraph late), restart the world and mark them concurrently instead of
        // inside the pause; after `MAX_MARK_RESTARTS` the pause drains whatever is left.
        let mut restarts = 0;
        let mut terminated = done_in_setup;
        while !terminated {
            // 3. Concurrent mark.
            let t_mark = P::now_ns();
            loop {
                self.mark_worker::<P>();
                if self.work.quiescent() {
                    break;
                }
                core::hint::spin_loop();
            }
            self.stats.ns_concurrent_mark.add(P::now_ns() - t_mark);

            // 4. Mark termination, world stopped.
            let t_term = P::now_ns();
            let mut pause = 0;
            let finished = P::stop_the_world(|| {
                let t0 = P::now_ns();
                let finished = if restarts < MAX_MARK_RESTARTS && !self.flush_all::<P>() {
                    false
                } else {
                    self.mark_termination::<P>(mode, &mut report);
                    true
                };
                pause = P::now_ns() - t0;
                finished
            });
            self.stats.record_pause(pause);
            report.pause_ns[1] = report.pause_ns[1].max(pause);
            self.stats.ns_mark_termination.add(P::now_ns() - t_term);
            terminated = finished;
            if !finished {
                restarts += 1;
                self.stats.mark_restarts.bump();
            }
        }

        // 5. Sweep, concurrently with allocation.
        let t = P::now_ns();
        let swept = {
            let _np = P::disable_preemption();
            self.heap.sweep_all()
        };
        self.set_phase(Phase::Idle);
        self.stats.bytes_freed.add(swept.bytes_freed as u64);
        self.stats.objects_freed.add(swept.objects_freed as u64);
        self.stats.ns_sweep.add(P::now_ns() - t);
        report.freed_bytes = swept.bytes_freed as u64;
        report.freed_objects = swept.objects_freed as u64;
        self.stats.cycles.bump();
        report
    }

    /// Flush every core's wbBuf and local work to the global list (world stopped). True if no
    /// grey object resulted.
    fn flush_all<P: Platform>(&self) -> bool {
        for i in 0..P::core_count() {
            let core = P::core(i);
            // SAFETY: the world is stopped; this core is the only one touching buffers.
            let buf = unsafe { core.wbbuf_mut() };
            wb_buf_flush1(self, core, buf);
            // SAFETY: as above.
            unsafe { core.work_mut() }.publish(&self.work);
        }
        self.work.quiescent()
    }

    /// Mark termination; the world is stopped.
    fn mark_termination<P: Platform>(&self, mode: BarrierMode, report: &mut CycleReport) {
        self.set_phase(Phase::MarkTermination);
        let me = P::current_core();
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

        if self.verify.load(Ordering::Relaxed) {
            let mut ranges = Vec::new();
            P::for_each_stack_range(&mut |r: ScanRange| ranges.push(r));
            let t_verify = P::now_ns();
            let (misses, count) = verify::verify(self, &ranges, self.snapshot_taken.load(Ordering::Relaxed));
            self.stats.ns_verify.add(P::now_ns() - t_verify);
            report.verifier_misses = count;
            if count > 0 {
                self.stats.verifier_misses.add(count as u64);
                for m in &misses {
                    log::error!(
                        "gc verifier: reachable object {:#x} ({}) not marked; reached through slot {:#x}{} (mode {})",
                        m.object,
                        m.type_name,
                        m.slot,
                        m.parent.map_or(alloc::string::String::new(), |p| alloc::format!(" of object {p:#x}")),
                        mode.name()
                    );
                }
                if self.panic_on_miss {
                    panic!("gc verifier: {count} reachable objects missed by the mark");
                }
                self.misses.lock().extend(misses);
            }
        }

        let marked: u64 = (0..P::core_count()).map(|i| P::core(i).stats.bytes_marked.get()).sum();
        report.marked_bytes = marked;
        self.stats.last_marked_bytes.set(marked);
        let percent = self.percent.load(Ordering::Relaxed) as u64;
        let trigger = (marked * (100 + percent) / 100).max(self.min_trigger as u64);
        self.trigger.store(trigger as usize, Ordering::Relaxed);

        self.set_phase(Phase::Sweep);
        self.heap.begin_sweep_generation((0..P::core_count()).map(|i| P::core(i)));
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
            snap.objects_shaded += c.shaded.get();
            snap.allocs += c.allocs.get();
            snap.checked_reports += c.checked_reports.get();
        }
        snap
    }
}
