//! A [`Platform`] over host threads, for tests and host benchmarks (feature `host`).
//!
//! A [`World`] is one machine: a collector over a heap allocated with the global allocator, `n`
//! cores, a stop-the-world handshake and the registered "stacks". A thread becomes core `i` inside
//! [`World::run_on`]. Mutator threads hold a [`Mutator`], whose root array stands in for the
//! task's stack (scanned conservatively, written without barriers) and which must call
//! [`Mutator::safe_point`] regularly; stop-the-world waits for every attached mutator to park
//! there (or in [`Mutator::park_while`], a blocking wait such as one for a full heap to be
//! collected). The world serialises with every other world in the process, because the barrier
//! flag and mode are process-wide statics.
//!
//! # The handshake
//! Each mutator has a state word, `RUNNING` or `PARKED`. A stop sets `requested`, then waits until
//! no other mutator is `RUNNING`. A mutator leaves a park by storing `RUNNING` and then re-reading
//! `requested`; if a stop is requested it goes back to `PARKED`. Both sides are SeqCst (a
//! store-then-load on each side, Dekker's pattern): either the stopper sees `RUNNING` and waits,
//! or the mutator sees the request and parks again, so no mutator runs beside a stop's closure,
//! even one that starts right after the previous stop's release.
//!
//! Parked mutators spin for [`PARK_SPIN`] and then sleep on a condition variable that the
//! release notifies, so a long pause (a stop-the-world mark) does not burn a CPU the collector
//! could use. The spins use the CPU's spin hint, not `yield`: on a loaded host a yield can hand
//! the CPU to another process for a whole time slice, which a short pause would then wait out.
//!
//! # Blocked time
//! Each mutator measures, where it happens, every interval the collector kept it from running:
//! a park at a safe point, a [`Mutator::park_while`] wait, or a caller-delimited
//! [`Mutator::blocked_interval`] (a whole wait for a full heap, parks included, counts as one).
//! [`Mutator::blocked`] gives the longest, the total and the count.
//!
//! # Concurrent stack scans
//! A mutator's slots are scanned during the concurrent mark, not in the pause (a model of the
//! kernel's per-task scans): mark setup flags every attached mutator, and each scans its own slots
//! at its next safe point (the collecting thread scans its own mutator when it asks
//! [`Platform::scan_stacks`]); the mark may not terminate while any flag is set. A mutator attached
//! during the mark needs no scan (its slots start zeroed and get only barrier-shaded or black
//! objects), nor does one that leaves (its slots die with it).

extern crate std;

use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::alloc::{alloc, dealloc, Layout};
use std::boxed::Box;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::barrier::{self, BarrierMode, WRITE_BARRIER};
use crate::census::{CensusEntry, RootOwner, RootPart};
use crate::collector::{Collector, Config};
use crate::platform::{GcCore, Platform, ScanRange};
use crate::sizeclass::HEAP_PAGE_SIZE;

/// How long a parked mutator spins before it sleeps until the release.
pub const PARK_SPIN: Duration = Duration::from_micros(200);

/// Spin-hint iterations between looks at the clock.
pub(crate) const SPINS_PER_LOOK: u32 = 64;

const RUNNING: u8 = 0;
const PARKED: u8 = 1;

/// One attached mutator as the world sees it: its handshake state and its "stack".
struct MutatorState {
    state: AtomicU8,
    range: ScanRange,
    /// Names it in scans and census reports.
    id: usize,
    /// A planted blind spot: the platform's scan skips these slots, the census still lists them
    /// ([`Mutator::hide_from_scan`]).
    hidden: AtomicBool,
    /// The concurrent mark still has to scan these slots (module docs).
    scan_pending: AtomicBool,
}

/// The closure the stopper shares with the parked mutators (see `help_while_stopped`), if any.
struct StoppedJob {
    /// Counts posts, so that a helper joins each at most once.
    generation: u64,
    /// The stopper's closure, while posted. Its lifetime is erased: it is called only by helpers
    /// counted in `World::helpers`, and the stopper withdraws the post and waits for that count
    /// to reach zero before the borrow ends.
    f: Option<*const (dyn Fn() + Sync + 'static)>,
}

impl StoppedJob {
    /// The posted closure, if there is one that a thread which last ran generation `joined` has
    /// not run yet.
    fn unjoined(&self, joined: u64) -> Option<*const (dyn Fn() + Sync + 'static)> {
        self.f.filter(|_| self.generation != joined)
    }
}

/// One simulated machine.
pub struct World {
    collector: Collector,
    cores: Box<[GcCore]>,
    region: *mut u8,
    layout: Layout,
    stw: Mutex<()>,
    requested: AtomicBool,
    /// Attached mutators, in attach order.
    mutators: Mutex<Vec<Arc<MutatorState>>>,
    /// Parked mutators that stopped spinning sleep here until a release.
    release: (Mutex<()>, Condvar),
    /// Mutators whose `scan_pending` is set: the safe point's fast check, and the mark's.
    scans_pending: AtomicUsize,
    /// The stopper's work parked mutators may join ([`Platform::help_while_stopped`]).
    job: Mutex<StoppedJob>,
    /// `job` is `Some`: the parked mutators' fast check while they spin.
    job_posted: AtomicBool,
    /// Calls of the posted job's closure still running on parked mutators.
    helpers: AtomicUsize,
    /// Per core: a thread runs the job as this core (the stopper, or one helper), so that no two
    /// threads that share a core index use its grey buffer at once.
    helping: Box<[AtomicBool]>,
    next_mutator_id: AtomicUsize,
    _serial: MutexGuard<'static, ()>,
}

// SAFETY: `region` is the heap's memory, owned by the world and accessed only through the
// collector (which is Sync); the posted job's closure is `Sync` and called only while its poster
// keeps it alive (`StoppedJob::f`); everything else is Sync already.
unsafe impl Sync for World {}
// SAFETY: as above.
unsafe impl Send for World {}

static SERIAL: Mutex<()> = Mutex::new(());

/// What the current thread is: its world, its core, and its mutator state if one is attached.
#[derive(Clone, Copy)]
struct Current {
    world: *const World,
    core: *const GcCore,
    index: usize,
    mutator: *const MutatorState,
}

const DETACHED: Current =
    Current { world: core::ptr::null(), core: core::ptr::null(), index: 0, mutator: core::ptr::null() };

std::thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(DETACHED) };
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
            mutators: Mutex::new(Vec::new()),
            release: (Mutex::new(()), Condvar::new()),
            scans_pending: AtomicUsize::new(0),
            job: Mutex::new(StoppedJob { generation: 0, f: None }),
            job_posted: AtomicBool::new(false),
            helpers: AtomicUsize::new(0),
            helping: (0..cores).map(|_| AtomicBool::new(false)).collect(),
            next_mutator_id: AtomicUsize::new(0),
            _serial: serial,
        });
        // Process-wide barrier state starts clean for every world.
        let _ = barrier::take_checked_reports::<HostPlatform>();
        WRITE_BARRIER.store(0, Ordering::Relaxed);
        w.run_on(0, || w.collector.set_mode::<HostPlatform>(mode));
        w
    }

    /// The collector.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// The cores' collector state (counters).
    pub fn cores(&self) -> &[GcCore] {
        &self.cores
    }

    /// Run `f` as core `core` on this thread.
    pub fn run_on<R>(&self, core: usize, f: impl FnOnce() -> R) -> R {
        assert!(core < self.cores.len());
        let me = Current { world: self, core: &self.cores[core], index: core, mutator: core::ptr::null() };
        let prev = CURRENT.with(|c| c.replace(me));
        let r = f();
        CURRENT.with(|c| c.set(prev));
        r
    }

    fn current() -> &'static World {
        let w = CURRENT.with(|c| c.get().world);
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
        // Registered parked: a stop in progress may scan the (zeroed) slots; `unpark` below then
        // waits for it like any parked mutator.
        let id = self.next_mutator_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(MutatorState {
            state: AtomicU8::new(PARKED),
            range,
            id,
            hidden: AtomicBool::new(false),
            scan_pending: AtomicBool::new(false),
        });
        self.mutators.lock().unwrap().push(state.clone());
        CURRENT.with(|c| {
            let mut cur = c.get();
            assert!(cur.mutator.is_null(), "this thread already has a mutator");
            cur.mutator = Arc::as_ptr(&state);
            c.set(cur);
        });
        let m = Mutator { world: self, slots, state, blocked: Cell::new(Blocked::default()), outer: Cell::new(false) };
        self.unpark(&m.state);
        m
    }

    /// Scans `me`'s slots if the concurrent mark still wants them (its own thread at a safe
    /// point, or the collecting thread for its own mutator).
    fn scan_own(&self, me: &MutatorState) {
        // Ordering: SeqCst like the handshake words. The flag is cleared only after the scan, and
        // the count after the flag: the mark sees the count at zero only once every scan is done.
        if !me.scan_pending.load(Ordering::SeqCst) {
            return;
        }
        if !me.hidden.load(Ordering::Relaxed) {
            self.collector
                .scan_stack::<HostPlatform>(me.range, RootOwner { task: me.id as u64, part: RootPart::Stack });
        }
        self.clear_scan(me);
    }

    /// Takes `me` off the list of pending scans, if it is on it.
    fn clear_scan(&self, me: &MutatorState) {
        // Ordering: SeqCst, see `scan_own`; the swap makes one thread the one that decrements.
        if me.scan_pending.swap(false, Ordering::SeqCst) {
            self.scans_pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Leave the parked state: `RUNNING`, unless a stop is requested (then wait for its release
    /// and try again). See the module docs for why this cannot overlap a stop's closure.
    fn unpark(&self, me: &MutatorState) {
        loop {
            // Ordering: SeqCst store then SeqCst load, against the stopper's SeqCst store of
            // `requested` then load of `state` (module docs). The load also acquires the
            // stopper's release store of `requested`, so its closure's writes are visible here.
            me.state.store(RUNNING, Ordering::SeqCst);
            if !self.requested.load(Ordering::SeqCst) {
                return;
            }
            me.state.store(PARKED, Ordering::SeqCst);
            self.wait_for_release();
        }
    }

    /// Wait (parked) until no stop is requested: spin for [`PARK_SPIN`], then sleep. Meanwhile
    /// join the stopper's posted work, if any ([`Platform::help_while_stopped`]).
    fn wait_for_release(&self) {
        let mut spin_until = Instant::now() + PARK_SPIN;
        let mut spins = 0u32;
        let mut joined = 0u64;
        // Ordering: SeqCst, see `unpark`; the exit is re-checked there anyway.
        while self.requested.load(Ordering::SeqCst) {
            // Ordering: Relaxed; a hint, read again under the job's lock.
            if self.job_posted.load(Ordering::Relaxed) && self.help_stopped(&mut joined) {
                spin_until = Instant::now() + PARK_SPIN;
            }
            spins += 1;
            if spins.is_multiple_of(SPINS_PER_LOOK) && Instant::now() >= spin_until {
                let (lock, cv) = &self.release;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                // Checked under the lock the releaser (and a job's poster) takes before
                // notifying: no lost wake-up.
                while self.requested.load(Ordering::SeqCst) {
                    if self.job_posted.load(Ordering::Relaxed) && self.job_unjoined(joined) {
                        drop(g);
                        self.help_stopped(&mut joined);
                        g = lock.lock().unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Whether a job is posted that this thread (having joined generation `joined`) has not run.
    fn job_unjoined(&self, joined: u64) -> bool {
        self.job.lock().unwrap_or_else(|e| e.into_inner()).unjoined(joined).is_some()
    }

    /// Run the posted job as this thread's core, once per post (`joined`: the last generation this
    /// thread ran). False if there was nothing to run here.
    fn help_stopped(&self, joined: &mut u64) -> bool {
        let index = CURRENT.with(|c| c.get().index);
        let f = {
            let g = self.job.lock().unwrap_or_else(|e| e.into_inner());
            let Some(f) = g.unjoined(*joined) else { return false };
            *joined = g.generation;
            // Ordering: Acquire; pairs with the Release that ended the previous run on this core.
            if self.helping[index].swap(true, Ordering::Acquire) {
                // The stopper's core, or another thread of this core helps already.
                return false;
            }
            // Counted under the job's lock: a stopper that withdraws the post after this sees
            // the count (it takes the lock to withdraw, then waits for zero).
            self.helpers.fetch_add(1, Ordering::Relaxed);
            f
        };
        // SAFETY: counted in `helpers` above under the lock while the post was up; the stopper
        // keeps the closure alive until it has withdrawn the post and seen `helpers` reach zero,
        // which happens only after the decrement below.
        unsafe { (*f)() };
        self.helping[index].store(false, Ordering::Release);
        // Ordering: Release, so the stopper's Acquire load of zero sees everything `f` did here.
        self.helpers.fetch_sub(1, Ordering::Release);
        true
    }

    /// Park `me` until the current stop is released; returns how long it was parked.
    fn park(&self, me: &MutatorState) -> Duration {
        let t = Instant::now();
        // Ordering: SeqCst, see `unpark`. As a release it also publishes everything this thread
        // did before parking to the stopper, which Acquire-loads the state.
        me.state.store(PARKED, Ordering::SeqCst);
        self.wait_for_release();
        // Tests widen the window between seeing the release and running again, which the
        // handshake must close (`back_to_back_stops_never_overlap_a_running_mutator`).
        #[cfg(test)]
        std::thread::yield_now();
        self.unpark(me);
        t.elapsed()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no thread uses the world any more (we hold
        // it exclusively).
        unsafe { dealloc(self.region, self.layout) };
    }
}

/// What a mutator measured of the time the collector kept it from running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocked {
    /// The longest interval.
    pub max: Duration,
    /// The longest park at a safe point for a stop-the-world alone (no wait for a full heap).
    pub max_stop: Duration,
    /// All intervals together.
    pub total: Duration,
    /// How many intervals.
    pub count: u64,
}

/// A mutator thread's registration: its "stack" of root slots and its handshake state.
pub struct Mutator<'w> {
    world: &'w World,
    slots: NonNull<[AtomicUsize]>,
    state: Arc<MutatorState>,
    blocked: Cell<Blocked>,
    /// Inside `blocked_interval`: parks are part of the enclosing interval.
    outer: Cell<bool>,
}

impl Mutator<'_> {
    fn slots(&self) -> &[AtomicUsize] {
        // SAFETY: from `Box::into_raw` in `World::mutator`, freed only in `Drop`.
        unsafe { self.slots.as_ref() }
    }

    /// Park if a stop-the-world is requested, and scan this mutator's slots if the concurrent mark
    /// asks for them. Call often, never inside a barrier or allocation.
    #[inline]
    pub fn safe_point(&self) {
        // Ordering: Relaxed; a scan request seen late is seen at a later safe point, and the mark
        // waits for it (`scan_stacks`).
        if self.world.scans_pending.load(Ordering::Relaxed) != 0 {
            self.world.scan_own(&self.state);
        }
        // Ordering: SeqCst, see `World::unpark` (on x86 and aarch64 a plain load).
        if self.world.requested.load(Ordering::SeqCst) {
            self.park_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn park_slow(&self) {
        let d = self.world.park(&self.state);
        self.record(d, true);
    }

    /// Run `f` counted as parked: stops proceed without waiting for this thread. `f` must not touch
    /// the heap, its objects or this mutator's root slots (it waits, e.g. for a cycle to finish).
    /// Its time counts as blocked.
    pub fn park_while<R>(&self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        // Ordering: SeqCst, see `World::park`.
        self.state.state.store(PARKED, Ordering::SeqCst);
        let r = f();
        self.world.unpark(&self.state);
        self.record(t.elapsed(), false);
        r
    }

    /// Run `f` and count all of it as one blocked interval (parks inside it are part of it, not
    /// intervals of their own): e.g. an allocation's whole wait for a full heap to be collected.
    pub fn blocked_interval<R>(&self, f: impl FnOnce() -> R) -> R {
        let was = self.outer.replace(true);
        let t = Instant::now();
        let r = f();
        self.outer.set(was);
        self.record(t.elapsed(), false);
        r
    }

    fn record(&self, d: Duration, stop: bool) {
        if self.outer.get() {
            return;
        }
        let b = self.blocked.get();
        self.blocked.set(Blocked {
            max: b.max.max(d),
            max_stop: if stop { b.max_stop.max(d) } else { b.max_stop },
            total: b.total + d,
            count: b.count + 1,
        });
    }

    /// The intervals this mutator was blocked by the collector so far.
    pub fn blocked(&self) -> Blocked {
        self.blocked.get()
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
        self.state.hidden.store(true, Ordering::Relaxed);
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
        // Parked for good: a stop that took its list of mutators before the removal below does
        // not wait for this thread. The removal takes the list's lock, which a stop's stack scan
        // holds while it reads the slots, so the slots are freed only after any such read.
        // Ordering: SeqCst, see `World::park`.
        self.state.state.store(PARKED, Ordering::SeqCst);
        self.world.mutators.lock().unwrap().retain(|m| !Arc::ptr_eq(m, &self.state));
        // A mutator that leaves needs no scan (its slots die with it).
        self.world.clear_scan(&self.state);
        // SAFETY: from `Box::into_raw`; no longer registered, so no scan can read it.
        drop(unsafe { Box::from_raw(self.slots.as_ptr()) });
        CURRENT.with(|c| {
            let mut cur = c.get();
            cur.mutator = core::ptr::null();
            c.set(cur);
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
        CURRENT.with(|c| c.get().index)
    }

    fn core(index: usize) -> &'static GcCore {
        &World::current().cores[index]
    }

    /// One thread-local read (the allocation path asks for it every time).
    #[inline(always)]
    fn current_core() -> &'static GcCore {
        let core = CURRENT.with(|c| c.get().core);
        assert!(!core.is_null(), "not running on a world core (use World::run_on)");
        // SAFETY: set by `run_on` to a core of a world that outlives the closure it runs; as in
        // `World::current`, the 'static lifetime is never held past it.
        unsafe { &*core }
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
        let me = CURRENT.with(|c| c.get().mutator);
        // One stop at a time. A mutator that loses the race parks while it waits, or the winner
        // would wait for it forever.
        let _one = loop {
            match w.stw.try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if !me.is_null() && w.requested.load(Ordering::SeqCst) {
                // SAFETY: `me` is this thread's attached mutator state (set by `World::mutator`,
                // cleared before it is dropped).
                w.park(unsafe { &*me });
            }
            std::thread::yield_now();
        };
        // Ordering: SeqCst, see `World::unpark`.
        w.requested.store(true, Ordering::SeqCst);
        // Mutators attaching after this snapshot see the request when they unpark.
        let others: Vec<Arc<MutatorState>> =
            w.mutators.lock().unwrap().iter().filter(|m| !core::ptr::eq(Arc::as_ptr(m), me)).cloned().collect();
        for m in &others {
            // Ordering: SeqCst, see `World::unpark`; observing PARKED acquires the mutator's
            // writes before it parked. Spin first (a running mutator reaches a safe point within
            // an allocation); yield only if it takes long (it may have lost its CPU).
            let mut spins = 0u32;
            while m.state.load(Ordering::SeqCst) == RUNNING {
                spins = spins.saturating_add(1);
                if spins < 4096 {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        let r = f();
        // Ordering: SeqCst release, see `World::unpark`.
        w.requested.store(false, Ordering::SeqCst);
        let (lock, cv) = &w.release;
        drop(lock.lock().unwrap_or_else(|e| e.into_inner()));
        cv.notify_all();
        r
    }

    /// The parked mutators join (each on its own core), the stopper runs `f` too, then withdraws
    /// the post and waits until every helper has returned. Called inside a stop's closure only.
    fn help_while_stopped(f: &(dyn Fn() + Sync)) {
        let w = World::current();
        let index = CURRENT.with(|c| c.get().index);
        // Ordering: Acquire, as in `help_stopped`. No parked thread of this core may join.
        let mine = !w.helping[index].swap(true, Ordering::Acquire);
        assert!(mine, "help_while_stopped: core {index} is already marking for a stop");
        // SAFETY: only the lifetime is erased; see `StoppedJob::f`: the post is withdrawn and
        // every helper has returned before this function (and so the borrow of `f`) ends.
        let erased: *const (dyn Fn() + Sync + 'static) = unsafe { core::mem::transmute(f as *const (dyn Fn() + Sync)) };
        {
            let mut g = w.job.lock().unwrap_or_else(|e| e.into_inner());
            g.generation += 1;
            g.f = Some(erased);
            // Ordering: Relaxed; a hint, the job is read under its lock.
            w.job_posted.store(true, Ordering::Relaxed);
        }
        // Sleeping parked mutators wake for it (they re-check the post under this lock).
        {
            let (lock, cv) = &w.release;
            drop(lock.lock().unwrap_or_else(|e| e.into_inner()));
            cv.notify_all();
        }
        f();
        {
            w.job.lock().unwrap_or_else(|e| e.into_inner()).f = None;
            w.job_posted.store(false, Ordering::Relaxed);
        }
        // Ordering: Acquire pairs with the helpers' Release decrements.
        while w.helpers.load(Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
        w.helping[index].store(false, Ordering::Release);
    }

    fn for_each_stack_range(visit: &mut dyn FnMut(ScanRange, RootOwner)) {
        let w = World::current();
        for m in w.mutators.lock().unwrap().iter().filter(|m| !m.hidden.load(Ordering::Relaxed)) {
            visit(m.range, RootOwner { task: m.id as u64, part: RootPart::Stack });
        }
    }

    fn begin_stack_scans() {
        // Called with the world stopped (mark setup): no mutator is between a scan and its flag.
        let w = World::current();
        for m in w.mutators.lock().unwrap().iter() {
            // Ordering: SeqCst, see `World::scan_own`.
            if !m.scan_pending.swap(true, Ordering::SeqCst) {
                w.scans_pending.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn scan_stacks(_: &Collector) -> bool {
        let w = World::current();
        // The collecting thread's own mutator, if it has one, scans itself here.
        let me = CURRENT.with(|c| c.get().mutator);
        if !me.is_null() {
            // SAFETY: this thread's attached mutator state (set by `World::mutator`, cleared
            // before it is dropped).
            w.scan_own(unsafe { &*me });
        }
        // Ordering: SeqCst, see `World::scan_own`.
        w.scans_pending.load(Ordering::SeqCst) == 0
    }

    fn relax() {
        std::thread::yield_now();
    }

    fn warn(message: core::fmt::Arguments<'_>) {
        std::eprintln!("{message}");
    }

    fn root_census(visit: &mut dyn FnMut(CensusEntry)) {
        let w = World::current();
        for m in w.mutators.lock().unwrap().iter() {
            // A mutator thread's slots are its whole "stack"; it has no saved registers apart.
            let name = std::format!("mutator {}", m.id);
            visit(CensusEntry { task: m.id as u64, name, stack: m.range, running: true, exempt: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    /// A mutator waiting in `park_while` does not hold up a stop, and measures the wait as one
    /// blocked interval; a park at a safe point is measured too, as a stop park.
    #[test]
    #[cfg_attr(miri, ignore = "timing-based (sleeps, measured intervals)")]
    fn park_while_lets_stops_proceed_and_both_are_measured() {
        let w = World::new(2, HEAP_PAGE_SIZE, Config::default(), BarrierMode::Off);
        let release = AtomicBool::new(false);
        let waiting = AtomicBool::new(false);
        let stops_done = AtomicUsize::new(0);
        let running = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                w.run_on(1, || {
                    let m = w.mutator(1);
                    let t = Instant::now();
                    // Counted as parked: the stops below must not wait for this thread.
                    m.park_while(|| {
                        waiting.store(true, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                    });
                    let waited = t.elapsed();
                    let b = m.blocked();
                    assert_eq!(b.count, 1);
                    assert!(b.max >= waited.mul_f64(0.5) && b.max <= waited, "{b:?} vs {waited:?}");
                    assert_eq!(b.max_stop, Duration::ZERO, "a wait is not a stop park");
                    // Now a stop while running: the safe point parks, and that is a stop park.
                    running.store(true, Ordering::SeqCst);
                    while stops_done.load(Ordering::SeqCst) < 3 {
                        m.safe_point();
                        std::hint::spin_loop();
                    }
                    let b = m.blocked();
                    assert!(b.count >= 2 && b.max_stop > Duration::ZERO, "{b:?}");
                });
            });
            w.run_on(0, || {
                while !waiting.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                // Stops while the other thread waits in `park_while` complete without it.
                for _ in 0..2 {
                    HostPlatform::stop_the_world(|| {});
                    stops_done.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
                release.store(true, Ordering::SeqCst);
                // One that finds it running waits for its safe point, which it measures. (Only once
                // it is past `park_while`: a stop that catches it still leaving the wait parks it
                // there, which counts as part of the wait; a loaded host can delay it that long.)
                while !running.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                HostPlatform::stop_the_world(|| std::thread::sleep(Duration::from_millis(2)));
                stops_done.fetch_add(1, Ordering::SeqCst);
            });
        });
    }

    /// Inside a stop, `help_while_stopped` runs its closure on the stopper and on every mutator
    /// parked at a safe point, each as its own core and once per call, and returns only after all
    /// of them have. (The closure waits until all three cores have entered it: if the parked
    /// mutators did not join, the wait would time out and the test fail.)
    #[test]
    #[cfg_attr(miri, ignore = "spin-waits on other threads")]
    fn parked_mutators_run_the_stoppers_work_once_each_as_their_own_core() {
        const CORES: usize = 3;
        const POSTS: usize = 20;
        let w = World::new(CORES, HEAP_PAGE_SIZE, Config::default(), BarrierMode::Off);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for core in 1..CORES {
                let (w, done) = (&w, &done);
                s.spawn(move || {
                    w.run_on(core, || {
                        let m = w.mutator(1);
                        while !done.load(Ordering::Relaxed) {
                            m.safe_point();
                            std::thread::yield_now();
                        }
                    });
                });
            }
            w.run_on(0, || {
                let _done = crate::tests::SetOnDrop(&done);
                for post in 0..POSTS {
                    let entered: Vec<AtomicUsize> = (0..CORES).map(|_| AtomicUsize::new(0)).collect();
                    let finished = AtomicUsize::new(0);
                    let finished_inside = HostPlatform::stop_the_world(|| {
                        HostPlatform::help_while_stopped(&|| {
                            entered[HostPlatform::current_core_index()].fetch_add(1, Ordering::SeqCst);
                            let t = Instant::now();
                            while entered.iter().filter(|e| e.load(Ordering::SeqCst) > 0).count() < CORES
                                && t.elapsed() < Duration::from_secs(5)
                            {
                                std::thread::yield_now();
                            }
                            finished.fetch_add(1, Ordering::SeqCst);
                        });
                        // Every call has returned before `help_while_stopped` does.
                        finished.load(Ordering::SeqCst)
                    });
                    let counts: Vec<usize> = entered.iter().map(|e| e.load(Ordering::SeqCst)).collect();
                    assert_eq!(counts, [1; CORES], "post {post}: runs per core");
                    assert_eq!(finished_inside, CORES, "post {post}: a helper still ran after the call");
                }
            });
        });
    }

    /// `off` mode's whole-mark pause is marked by the parked mutator too (its core's counters
    /// show objects it shaded), and the result is the same: the verifier finds nothing missed and
    /// the mutator's tree survives every cycle intact.
    #[test]
    #[cfg_attr(miri, ignore = "spin-waits on other threads")]
    fn off_mode_marks_with_the_parked_mutators_too() {
        use crate::object::Gc;
        use crate::tests::{new_node, Node};
        fn tree(c: &Collector, depth: u32, seed: &mut u64) -> Gc<Node> {
            *seed += 1;
            let n = new_node(c, *seed);
            if depth > 0 {
                // No cycle runs while the tree is built (the collecting thread waits for it).
                n.kids[0].set::<HostPlatform>(Some(tree(c, depth - 1, seed)));
                n.kids[1].set::<HostPlatform>(Some(tree(c, depth - 1, seed)));
            }
            n
        }
        fn intact(n: Gc<Node>) -> usize {
            assert!(n.intact(), "a node of the tree was corrupted");
            1 + n.kids.iter().filter_map(|k| k.get()).map(intact).sum::<usize>()
        }
        const DEPTH: u32 = 14;
        let w = World::new(2, 16 << 20, Config { verify: true, ..Config::default() }, BarrierMode::Off);
        let built = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                w.run_on(1, || {
                    let m = w.mutator(1);
                    let root = tree(w.collector(), DEPTH, &mut 0);
                    m.set_root(0, root.addr());
                    built.store(true, Ordering::SeqCst);
                    while !done.load(Ordering::SeqCst) {
                        m.safe_point();
                        core::hint::spin_loop();
                    }
                    assert_eq!(intact(root), (1 << (DEPTH + 1)) - 1);
                });
            });
            w.run_on(0, || {
                while !built.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                let c = w.collector();
                for _ in 0..5 {
                    let r = c.collect::<HostPlatform>();
                    assert_eq!(r.verifier_misses, 0);
                }
                done.store(true, Ordering::SeqCst);
            });
        });
        let helped = w.cores()[1].stats().shaded.get();
        let total: u64 = w.cores().iter().map(|c| c.stats().shaded.get()).sum();
        assert!(total >= 5 * ((1 << (DEPTH + 1)) - 1), "every cycle marked the tree: {total}");
        assert!(helped > 0, "the parked mutator marked nothing ({total} shaded in all)");
    }

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
