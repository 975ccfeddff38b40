//! A [`Platform`] over host threads, for tests and host benchmarks (feature `host`).
//!
//! A [`World`] is one machine: a collector over a heap allocated with the global allocator, `n`
//! cores, a stop-the-world handshake and the registered "stacks". A thread becomes core `i` inside
//! [`World::run_on`]. Mutator threads hold a [`Mutator`], whose root array stands in for the
//! task's stack (scanned conservatively, written without barriers) and which must call
//! [`Mutator::safe_point`] regularly; stop-the-world waits for every attached mutator to park
//! there. The world serialises with every other world in the process, because the barrier flag
//! and mode are process-wide statics.

extern crate std;

use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::alloc::{alloc, dealloc, Layout};
use std::boxed::Box;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use std::vec::Vec;

use crate::barrier::{self, BarrierMode, WRITE_BARRIER};
use crate::census::{CensusEntry, RootOwner, RootPart};
use crate::collector::{Collector, Config};
use crate::platform::{GcCore, Platform, ScanRange};
use crate::sizeclass::HEAP_PAGE_SIZE;

/// One simulated machine.
pub struct World {
    collector: Collector,
    cores: Box<[GcCore]>,
    region: *mut u8,
    layout: Layout,
    stw: Mutex<()>,
    requested: AtomicBool,
    parked: AtomicUsize,
    attached: AtomicUsize,
    /// Each mutator's root slots: (id, range, hidden from the scan).
    stacks: Mutex<Vec<(usize, ScanRange, bool)>>,
    /// Mutators whose slots the concurrent mark still has to scan (ids); each scans its own at
    /// its next safe point (`Mutator::safe_point`), a model of a task scanning its own stack when
    /// the collector asks.
    scan_pending: Mutex<Vec<usize>>,
    /// Set while `scan_pending` is not empty: the safe point's fast check.
    scan_wanted: AtomicBool,
    next_stack_id: AtomicUsize,
    _serial: MutexGuard<'static, ()>,
}

// SAFETY: `region` is the heap's memory, owned by the world and accessed only through the
// collector (which is Sync); everything else is Sync already.
unsafe impl Sync for World {}
// SAFETY: as above.
unsafe impl Send for World {}

static SERIAL: Mutex<()> = Mutex::new(());

std::thread_local! {
    static CURRENT: Cell<(*const World, usize, bool)> = const { Cell::new((core::ptr::null(), 0, false)) };
    /// The id of the mutator this thread attached, if it did.
    static MUTATOR_ID: Cell<Option<usize>> = const { Cell::new(None) };
}

impl World {
    /// A world with `cores` cores and a heap of `heap_bytes`, barrier mode `mode`.
    pub fn new(cores: usize, heap_bytes: usize, config: Config, mode: BarrierMode) -> Box<World> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(heap_bytes >= HEAP_PAGE_SIZE, "heap smaller than a page");
        let layout = Layout::from_size_align(heap_bytes, HEAP_PAGE_SIZE).expect("heap layout");
        // SAFETY: `layout` has non-zero size (asserted above).
        let region = unsafe { alloc(layout) };
        assert!(!region.is_null(), "host allocation of the heap failed");
        // SAFETY: the region was just allocated for the world and is freed only in `Drop`, after
        // the collector is no longer used (threads join inside `run_on` scopes).
        let collector = unsafe { Collector::new(region, heap_bytes, config) };
        let w = Box::new(World {
            collector,
            cores: (0..cores).map(|_| GcCore::new()).collect(),
            region,
            layout,
            stw: Mutex::new(()),
            requested: AtomicBool::new(false),
            parked: AtomicUsize::new(0),
            attached: AtomicUsize::new(0),
            stacks: Mutex::new(Vec::new()),
            scan_pending: Mutex::new(Vec::new()),
            scan_wanted: AtomicBool::new(false),
            next_stack_id: AtomicUsize::new(0),
            _serial: serial,
        });
        // Process-wide barrier state starts clean for every world.
        let _ = barrier::take_checked_reports();
        WRITE_BARRIER.store(0, Ordering::Relaxed);
        w.run_on(0, || w.collector.set_mode::<HostPlatform>(mode));
        w
    }

    /// The collector.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// Run `f` as core `core` on this thread.
    pub fn run_on<R>(&self, core: usize, f: impl FnOnce() -> R) -> R {
        assert!(core < self.cores.len());
        let prev = CURRENT.with(|c| c.replace((self as *const World, core, false)));
        let r = f();
        CURRENT.with(|c| c.set(prev));
        r
    }

    fn current() -> &'static World {
        let (w, _, _) = CURRENT.with(|c| c.get());
        assert!(!w.is_null(), "not running on a world core (use World::run_on)");
        // SAFETY: the pointer was set by `run_on` on a world that outlives the closure it runs
        // (`run_on` borrows it), and every use through `HostPlatform` happens inside that closure.
        // The 'static lifetime is never held past it.
        unsafe { &*w }
    }

    /// Attach the calling thread (inside `run_on`) as a mutator with `roots` stack slots.
    pub fn mutator(&self, roots: usize) -> Mutator<'_> {
        let slots: Box<[AtomicUsize]> = (0..roots).map(|_| AtomicUsize::new(0)).collect();
        // A raw pointer from here on: the conservative scan reads the slots through their exposed
        // address, which a moved `Box` (asserting uniqueness) would invalidate.
        let slots = NonNull::new(Box::into_raw(slots)).expect("Box is not null");
        let lo = slots.as_ptr().cast::<AtomicUsize>().expose_provenance();
        let range = ScanRange { lo, hi: lo + roots * core::mem::size_of::<usize>() };
        let id = self.next_stack_id.fetch_add(1, Ordering::Relaxed);
        self.stacks.lock().unwrap().push((id, range, false));
        // Ordering: SeqCst, see `stop_the_world`: a concurrent STW either counts this mutator or
        // this mutator's safe point sees the request.
        self.attached.fetch_add(1, Ordering::SeqCst);
        CURRENT.with(|c| {
            let (w, core, _) = c.get();
            c.set((w, core, true));
        });
        MUTATOR_ID.with(|m| m.set(Some(id)));
        let m = Mutator { world: self, slots, id };
        m.safe_point();
        m
    }

    /// Scans mutator `id`'s slots if the concurrent mark still wants them (the mutator's own
    /// thread at a safe point, or the collector for its own thread's mutator).
    fn scan_own(&self, id: usize) {
        let mut pending = self.scan_pending.lock().unwrap();
        let Some(at) = pending.iter().position(|&p| p == id) else { return };
        let range = self.stacks.lock().unwrap().iter().find(|e| e.0 == id && !e.2).map(|e| e.1);
        if let Some(range) = range {
            self.collector.scan_stack::<HostPlatform>(range, RootOwner { task: id as u64, part: RootPart::Stack });
        }
        pending.swap_remove(at);
        // Ordering: SeqCst like the handshake words; a stale `true` only costs a lock.
        self.scan_wanted.store(!pending.is_empty(), Ordering::SeqCst);
    }

    fn safe_point(&self) {
        if self.scan_wanted.load(Ordering::SeqCst) {
            let (_, _, is_mutator) = CURRENT.with(|c| c.get());
            if is_mutator {
                if let Some(id) = MUTATOR_ID.with(|m| m.get()) {
                    self.scan_own(id);
                }
            }
        }
        // Ordering: SeqCst on the handshake words keeps one total order between the request, the
        // parked count and the release, and (as Release/Acquire pairs) makes everything this
        // thread did before parking visible to the STW closure and vice versa.
        if self.requested.load(Ordering::SeqCst) {
            self.parked.fetch_add(1, Ordering::SeqCst);
            while self.requested.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // Tests widen the window between seeing the release and counting out, which the
            // handshake must close (`back_to_back_stops_never_overlap_a_running_mutator`).
            #[cfg(test)]
            std::thread::yield_now();
            self.parked.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no thread uses the world any more (we hold
        // it exclusively).
        unsafe { dealloc(self.region, self.layout) };
    }
}

/// A mutator thread's registration: its "stack" of root slots.
pub struct Mutator<'w> {
    world: &'w World,
    slots: NonNull<[AtomicUsize]>,
    id: usize,
}

impl Mutator<'_> {
    fn slots(&self) -> &[AtomicUsize] {
        // SAFETY: from `Box::into_raw` in `World::mutator`, freed only in `Drop`.
        unsafe { self.slots.as_ref() }
    }

    /// Park if a stop-the-world is requested. Call often, never inside a barrier or allocation.
    pub fn safe_point(&self) {
        self.world.safe_point();
    }

    /// Root slot `i` (a stack word: written without a barrier).
    pub fn root(&self, i: usize) -> usize {
        // Ordering: Relaxed; only this thread writes it, the STW scan reads it while we are parked.
        self.slots()[i].load(Ordering::Relaxed)
    }

    /// Write stack slot `i` (no barrier: stacks are scanned at mark start only).
    pub fn set_root(&self, i: usize, v: usize) {
        self.slots()[i].store(v, Ordering::Relaxed)
    }

    /// A planted blind spot for the root census: from now on the platform's scan skips this
    /// mutator's slots (as a kernel scan skips a stack it cannot find), while the census still
    /// lists it.
    pub fn hide_from_scan(&self) {
        for entry in self.world.stacks.lock().unwrap().iter_mut().filter(|e| e.0 == self.id) {
            entry.2 = true;
        }
    }

    /// Number of root slots.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// True if there are no root slots.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }
}

impl Drop for Mutator<'_> {
    fn drop(&mut self) {
        self.safe_point();
        self.world.stacks.lock().unwrap().retain(|(id, _, _)| *id != self.id);
        // A mutator that leaves needs no scan (its slots die with it).
        {
            let mut pending = self.world.scan_pending.lock().unwrap();
            pending.retain(|&p| p != self.id);
            self.world.scan_wanted.store(!pending.is_empty(), Ordering::SeqCst);
        }
        MUTATOR_ID.with(|m| m.set(None));
        // Ordering: SeqCst, see `World::mutator`.
        self.world.attached.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: from `Box::into_raw`; no longer registered, so no scan can read it.
        drop(unsafe { Box::from_raw(self.slots.as_ptr()) });
        CURRENT.with(|c| {
            let (w, core, _) = c.get();
            c.set((w, core, false));
        });
    }
}

/// The host platform: the current thread's world and core.
pub struct HostPlatform;

fn epoch() -> &'static Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

impl Platform for HostPlatform {
    type NoPreempt = ();

    fn core_count() -> usize {
        World::current().cores.len()
    }

    #[inline(always)]
    fn current_core_index() -> usize {
        CURRENT.with(|c| c.get().1)
    }

    fn core(index: usize) -> &'static GcCore {
        &World::current().cores[index]
    }

    fn collector() -> &'static Collector {
        &World::current().collector
    }

    #[inline(always)]
    fn disable_preemption() {}

    fn systemstack<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    fn now_ns() -> u64 {
        epoch().elapsed().as_nanos() as u64
    }

    fn stop_the_world<R>(f: impl FnOnce() -> R) -> R {
        let w = World::current();
        let _one = w.stw.lock().unwrap_or_else(|e| e.into_inner());
        let me = usize::from(CURRENT.with(|c| c.get().2));
        // Ordering: SeqCst, see `World::safe_point`.
        w.requested.store(true, Ordering::SeqCst);
        while w.parked.load(Ordering::SeqCst) < w.attached.load(Ordering::SeqCst) - me {
            std::thread::yield_now();
        }
        let r = f();
        w.requested.store(false, Ordering::SeqCst);
        // Hold the handshake until every parked mutator has counted itself out. Otherwise one that
        // saw this release but has not yet decremented `parked` would be counted as parked by the
        // next stop, and run beside its closure (the kernel's `stw::release` waits the same way).
        while w.parked.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        r
    }

    fn for_each_stack_range(visit: &mut dyn FnMut(ScanRange, RootOwner)) {
        let w = World::current();
        for &(id, r, hidden) in w.stacks.lock().unwrap().iter() {
            if !hidden {
                visit(r, RootOwner { task: id as u64, part: RootPart::Stack });
            }
        }
    }

    fn begin_stack_scans() {
        let w = World::current();
        let mut pending = w.scan_pending.lock().unwrap();
        pending.clear();
        pending.extend(w.stacks.lock().unwrap().iter().map(|e| e.0));
        w.scan_wanted.store(!pending.is_empty(), Ordering::SeqCst);
    }

    fn scan_stacks(_: &Collector) -> bool {
        let w = World::current();
        // The collecting thread's own mutator, if it has one, scans itself here.
        if let Some(id) = MUTATOR_ID.with(|m| m.get()) {
            w.scan_own(id);
        }
        w.scan_pending.lock().unwrap().is_empty()
    }

    fn relax() {
        std::thread::yield_now();
    }

    fn root_census(visit: &mut dyn FnMut(CensusEntry)) {
        let w = World::current();
        for &(id, stack, _) in w.stacks.lock().unwrap().iter() {
            // A mutator thread's slots are its whole "stack"; it has no saved registers apart.
            let name = std::format!("mutator {id}");
            visit(CensusEntry { task: id as u64, name, stack, running: true, exempt: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    /// Back-to-back stops must each see every mutator parked. A mutator that saw the previous
    /// stop's release but has not yet counted itself out must not be taken for parked by the next
    /// stop: that would let it run beside the next stop's closure (a mark termination, say).
    #[test]
    #[cfg_attr(miri, ignore = "hundreds of thousands of handshakes: too slow under Miri")]
    fn back_to_back_stops_never_overlap_a_running_mutator() {
        const STOPS: usize = 10_000;
        let w = World::new(2, HEAP_PAGE_SIZE, Config::default(), BarrierMode::Off);
        // Odd while the mutator is between safe points. One mutator: with the initiator, one
        // thread per host CPU, so the handshake never waits for a time slice.
        let running = [AtomicU64::new(0)];
        let done = AtomicBool::new(false);
        let overlaps = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for (core, flag) in running.iter().enumerate() {
                let (w, done) = (&w, &done);
                s.spawn(move || {
                    w.run_on(core + 1, || {
                        let m = w.mutator(1);
                        while !done.load(Ordering::Relaxed) {
                            m.safe_point();
                            flag.fetch_add(1, Ordering::SeqCst);
                            core::hint::spin_loop();
                            flag.fetch_add(1, Ordering::SeqCst);
                            // Spinning would starve the initiator on a loaded host.
                            std::thread::yield_now();
                        }
                    });
                });
            }
            w.run_on(0, || {
                for _ in 0..STOPS {
                    HostPlatform::stop_the_world(|| {
                        for flag in &running {
                            let before = flag.load(Ordering::SeqCst);
                            std::thread::yield_now();
                            if before % 2 == 1 || flag.load(Ordering::SeqCst) != before {
                                overlaps.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
                done.store(true, Ordering::Relaxed);
            });
        });
        assert_eq!(overlaps.load(Ordering::Relaxed), 0, "a stop ran while a mutator was running");
    }
}
