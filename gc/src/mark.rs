//! Marking: shading (white -> grey), the grey work queue (a per-core buffer plus a global list)
//! and scanning (grey -> black).
//!
//! Colours: white = mark bit clear; grey = mark bit set and the object's base queued; black = mark
//! bit set and scanned. Allocation during marking sets the mark bit and never queues (black).
//! No-scan objects go straight to black. The barrier's full wbBufs handed over to the markers
//! ([`Batches`]) are grey work too until a marker has shaded them.

use core::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

use alloc::vec::Vec;

use crate::collector::Collector;
use crate::heap::ObjRef;
use crate::object::HEADER_SIZE;
use crate::platform::{GcCore, ScanRange};

/// Capacity of a core's local grey buffer.
pub const LOCAL_WORK_ENTRIES: usize = 256;
/// Mutator-side buffers (direct mode) are published once they hold this many.
const PUBLISH_THRESHOLD: usize = 32;
/// How many entries a marker takes from the global list at once.
const STEAL_BATCH: usize = 128;
/// Objects a drain scans between looks at whether another marker (or an assist) went hungry.
const BALANCE_EVERY: usize = 16;

/// A core's grey objects (object base addresses), a fixed stack so shading never allocates.
pub struct LocalWork {
    len: usize,
    items: [usize; LOCAL_WORK_ENTRIES],
}

impl LocalWork {
    pub(crate) const fn new() -> Self {
        LocalWork { len: 0, items: [0; LOCAL_WORK_ENTRIES] }
    }

    /// Push; on overflow, move everything to the global list first.
    #[inline]
    pub(crate) fn push(&mut self, global: &GlobalWork, base: usize) {
        if self.len == LOCAL_WORK_ENTRIES {
            self.publish(global);
        }
        debug_assert!(self.len < LOCAL_WORK_ENTRIES);
        // SAFETY: `len < LOCAL_WORK_ENTRIES` here (a full buffer was just published, which empties
        // it), and `len <= LOCAL_WORK_ENTRIES` always (this is the only push). No bounds check on
        // the shading paths' hottest store.
        unsafe { *self.items.get_unchecked_mut(self.len) = base };
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        Some(self.items[self.len])
    }

    /// Move all entries to the global list, where any marker can take them.
    pub(crate) fn publish(&mut self, global: &GlobalWork) {
        if self.len > 0 {
            global.items.lock().extend_from_slice(&self.items[..self.len]);
            self.len = 0;
        }
    }

    pub(crate) fn publish_if_large(&mut self, global: &GlobalWork) {
        if self.len >= PUBLISH_THRESHOLD {
            self.publish(global);
        }
    }

    /// If a marker found the global list empty since the last look, give it the older half of
    /// this buffer (Go's `gcWork.balance`). A depth-first drain keeps a tree's grey objects in its
    /// own buffer, so without this no one else ever gets any (the older entries are the roots of
    /// the larger unscanned subtrees).
    #[inline]
    fn balance(&mut self, global: &GlobalWork) {
        // Ordering: Relaxed; a hint, read again under the lock.
        if self.len < 2 || !global.hungry.load(Ordering::Relaxed) {
            return;
        }
        let half = self.len / 2;
        let mut items = global.items.lock();
        items.extend_from_slice(&self.items[..half]);
        // Ordering: Relaxed under the lock, which publishes the entries to `take`.
        global.hungry.store(false, Ordering::Relaxed);
        drop(items);
        self.items.copy_within(half..self.len, 0);
        self.len -= half;
    }
}

/// Grey objects any marker may take, full wbBufs handed over for a marker to shade
/// ([`Batches`]), and the count of markers holding taken work.
pub struct GlobalWork {
    pub(crate) items: crate::sync::Mutex<Vec<usize>>,
    /// Markers currently draining work they took: grey objects (incremented under the `items`
    /// lock) or a handed-over batch (under the `batches` lock).
    active: AtomicUsize,
    /// A marker found `items` empty: draining markers hand it part of theirs (`balance`).
    hungry: AtomicBool,
    /// Full wbBufs handed over by the barrier's flush, and the spare batches they go into.
    batches: crate::sync::Mutex<Batches>,
    /// The hand-off's negative control (host tests): a handed-over batch is dropped, not queued.
    #[cfg(test)]
    lose_batches: AtomicBool,
}

/// Full wbBufs a mutator's flush handed over instead of shading them itself (as G1's SATB
/// queues go to its concurrent markers, here between Go's per-P wbBufs and its markers): the
/// barrier's full-buffer flush copies the records into a spare batch and queues it
/// ([`GlobalWork::hand_off`]), the markers shade them ([`drain_some`]), and the mutator's flush
/// costs a copy instead of a lookup per record. The shading is the same work, moved to the cores
/// that already mark (a dedicated worker's, an idle one's) instead of the allocating mutators'.
///
/// Invariants:
/// - **A queued batch is grey work**: [`GlobalWork::quiescent`] is false while one is queued or
///   a marker holds one it took (counted in `active` under the `batches` lock), so no mark
///   terminates with records unshaded, as none does with a wbBuf unflushed. The final stop
///   shades what is queued with the wbBufs ([`GlobalWork::take_batch`] from `flush_all`).
/// - **Handing over never allocates and never waits for a marker**: the spares and both lists'
///   room are reserved before the cycle's mark ([`GlobalWork::reserve_batches`]); with no spare
///   left, or records too many for one, the flush shades them itself, as before.
/// - A batch is taken with preemption off and shaded before the taker's next safe point, so a
///   stop never finds one in flight.
pub(crate) struct Batches {
    /// Handed over, not yet taken, each the records of one full wbBuf.
    queued: Vec<Vec<usize>>,
    /// Empty batches, each with room for a whole wbBuf.
    spare: Vec<Vec<usize>>,
    /// Batches that exist (queued, spare or held by a marker).
    total: usize,
}

/// Replace `batch`'s records with `records`, which fit its capacity (no allocation). On the
/// kernel's target, four words per `ldp`/`ldp`/`stp`/`stp` round: the softfloat target's
/// `memcpy` moves one word per four instructions (a 512-record wbBuf took about 2 000
/// instructions, most of a hand-off), this loop one and a half.
#[inline]
fn copy_records(batch: &mut Vec<usize>, records: &[usize]) {
    assert!(records.len() <= batch.capacity());
    batch.clear();
    #[cfg(target_arch = "aarch64")]
    {
        let whole = records.len() & !3;
        if whole != 0 {
            // SAFETY: `batch` has room for `records.len() >= whole` words (asserted above) and
            // does not overlap `records` (a `Vec`'s own allocation); the loop reads and writes
            // exactly `whole` words (a multiple of four, not zero) from and to their starts, and
            // touches nothing else (the pointers and the count are clobbered copies).
            unsafe {
                core::arch::asm!(
                    "1:",
                    "ldp {a}, {b}, [{src}], #16",
                    "ldp {c}, {d}, [{src}], #16",
                    "stp {a}, {b}, [{dst}], #16",
                    "stp {c}, {d}, [{dst}], #16",
                    "subs {n}, {n}, #4",
                    "b.ne 1b",
                    src = inout(reg) records.as_ptr() => _,
                    dst = inout(reg) batch.as_mut_ptr() => _,
                    n = inout(reg) whole => _,
                    a = out(reg) _,
                    b = out(reg) _,
                    c = out(reg) _,
                    d = out(reg) _,
                    options(nostack),
                );
                batch.set_len(whole);
            }
        }
        batch.extend_from_slice(&records[whole..]);
    }
    #[cfg(not(target_arch = "aarch64"))]
    batch.extend_from_slice(records);
}

/// Spare batches per core: a marker shades a batch in about the time a mutator fills one, so a
/// few per core absorb bursts; beyond them the mutators flush for themselves.
pub const BATCHES_PER_CORE: usize = 4;

impl GlobalWork {
    pub(crate) const fn new() -> Self {
        GlobalWork {
            items: crate::sync::Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            hungry: AtomicBool::new(false),
            batches: crate::sync::Mutex::new(Batches { queued: Vec::new(), spare: Vec::new(), total: 0 }),
            #[cfg(test)]
            lose_batches: AtomicBool::new(false),
        }
    }

    /// The negative control's switch: handed-over batches are dropped (their records never
    /// shaded), for a test to show that the verifier catches what that loses.
    #[cfg(test)]
    pub(crate) fn lose_batches_for_test(&self, lose: bool) {
        self.lose_batches.store(lose, Ordering::Relaxed);
    }

    /// Make `count` batches of room for `entries` records exist, and room in both lists for all
    /// of them, so that [`GlobalWork::hand_off`] never allocates. Spares too small for `entries`
    /// (a wbBuf made larger since) are replaced. Called with preemption off, outside any pause.
    pub(crate) fn reserve_batches(&self, count: usize, entries: usize) {
        let mut b = self.batches.lock();
        let before = b.spare.len();
        b.spare.retain(|v| v.capacity() >= entries);
        let dropped = before - b.spare.len();
        b.total -= dropped;
        while b.total < count {
            b.spare.push(Vec::with_capacity(entries));
            b.total += 1;
        }
        let total = b.total;
        let (queued, spare) = (total - b.queued.len(), total - b.spare.len());
        b.queued.reserve(queued);
        b.spare.reserve(spare);
    }

    /// Queue a copy of `records` (a full wbBuf's) for a marker to shade. False, and nothing
    /// queued, if no spare batch is free or `records` does not fit one: the caller shades them.
    pub(crate) fn hand_off(&self, records: &[usize]) -> bool {
        let Some(mut batch) = self.batches.lock().spare.pop_if(|spare| spare.capacity() >= records.len()) else {
            return false;
        };
        // The copy outside the lock: the spare is this caller's until it is queued.
        copy_records(&mut batch, records);
        let mut b = self.batches.lock();
        #[cfg(test)]
        if self.lose_batches.load(Ordering::Relaxed) {
            b.spare.push(batch);
            return true;
        }
        debug_assert!(b.queued.len() < b.queued.capacity(), "reserve_batches left room for every batch");
        b.queued.push(batch);
        true
    }

    /// Take a queued batch, counting the caller active until its [`GlobalWork::done`]: the caller
    /// shades it and gives it back ([`GlobalWork::spare_batch`]).
    pub(crate) fn take_batch(&self) -> Option<Vec<usize>> {
        let mut b = self.batches.lock();
        let batch = b.queued.pop()?;
        // Ordering: Relaxed under the lock; `quiescent` reads it after taking the same lock.
        self.active.fetch_add(1, Ordering::Relaxed);
        Some(batch)
    }

    /// A shaded batch goes back to the spares.
    pub(crate) fn spare_batch(&self, batch: Vec<usize>) {
        self.batches.lock().spare.push(batch);
    }

    /// Take a batch into `local` and count the caller active; false if there was nothing.
    fn take(&self, local: &mut LocalWork) -> bool {
        let mut items = self.items.lock();
        if items.is_empty() {
            // Ordering: Relaxed; a hint for `balance`.
            self.hungry.store(true, Ordering::Relaxed);
            return false;
        }
        // Taken only into an empty buffer (a drain whose own ran out), one copy for the batch.
        debug_assert_eq!(local.len, 0);
        let n = items.len().min(STEAL_BATCH);
        let at = items.len() - n;
        local.items[..n].copy_from_slice(&items[at..]);
        local.len = n;
        items.truncate(at);
        // Ordering: Relaxed suffices under the lock; `quiescent` reads it under the same lock.
        self.active.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub(crate) fn done(&self) {
        // Ordering: Release, so a `quiescent` check that Acquire-loads 0 sees everything this
        // marker pushed (its pushes took the lock before this decrement).
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// A marker found the list empty and no one has handed any over since (`balance` clears it):
    /// a hint for an idle marker to keep waiting before it looks again, without the lock.
    pub(crate) fn starved(&self) -> bool {
        // Ordering: Relaxed; a hint, `take` and `quiescent` decide under the lock.
        self.hungry.load(Ordering::Relaxed)
    }

    /// True if no grey object and no handed-over batch is queued and no marker holds taken work.
    /// Both locks are held for the look at `active` (`items` first, the only order they nest
    /// in): a taker counts itself active under the lock it takes from, so work that leaves
    /// either list before this look is counted in `active`, and work that leaves after it was
    /// still seen queued.
    pub(crate) fn quiescent(&self) -> bool {
        let items = self.items.lock();
        let batches = self.batches.lock();
        // Ordering: Acquire pairs with `done`'s Release.
        items.is_empty() && batches.queued.is_empty() && self.active.load(Ordering::Acquire) == 0
    }

    /// Empty the grey list at mark setup (world stopped). No batch is queued then (the last
    /// termination shaded them all); any that were go back to the spares.
    pub(crate) fn clear(&self) {
        self.items.lock().clear();
        let mut b = self.batches.lock();
        debug_assert!(b.queued.is_empty(), "a batch outlived its mark");
        while let Some(batch) = b.queued.pop() {
            b.spare.push(batch);
        }
    }
}

/// Shade `addr`: if it points into an allocated white object, make it grey (queue it on `work`),
/// or black if it holds no pointers. Nil and non-heap addresses are ignored. True if shaded.
#[inline]
pub(crate) fn shade(c: &Collector, core: &GcCore, work: &mut LocalWork, addr: usize) -> bool {
    if addr == 0 {
        return false;
    }
    let Some(obj) = c.heap.find_object(addr) else {
        return false;
    };
    shade_object(c, core, work, obj)
}

/// Shade a found object (see [`shade`]).
#[inline(always)]
pub(crate) fn shade_object(c: &Collector, core: &GcCore, work: &mut LocalWork, obj: ObjRef) -> bool {
    let span = c.heap.span(obj.span);
    let i = obj.index as usize;
    // Already marked is the common case for barrier records (both halves of most stores name
    // objects shaded earlier): test with a plain load before the atomic RMW, as Go's
    // `wbBufFlush1` tests `isMarked` first. Mark bits only go from clear to set during a mark, so
    // a set bit read here stays set; a clear one is decided by the RMW.
    if span.mark.get(i) || !span.mark.set(i) {
        return false;
    }
    core.stats.shaded.bump();
    core.stats.bytes_marked.add(span.elem_size() as u64);
    if !c.heap.is_noscan(&obj) {
        work.push(&c.work, obj.base);
    }
    true
}

/// Shade every pointer in `ptrs` (a wbBuf's records, Go's `wbBufFlush1` loop), at the least
/// cost per pointer: the heap's tables are read once for the whole slice ([`Heap::view`]), nil,
/// non-heap and already-marked pointers leave at the first failing test with no atomic RMW
/// ([`HeapView::find_unmarked`]), and the statistics are added once at the end instead of per
/// object, and only if it shaded any. Returns the number of objects this call shaded. Inlined
/// into its one caller, `wb_buf_flush1`, so a flush saves and restores registers once.
///
/// [`Heap::view`]: crate::heap::Heap::view
/// [`HeapView::find_unmarked`]: crate::heap::HeapView::find_unmarked
#[inline(always)]
pub(crate) fn shade_recorded(c: &Collector, core: &GcCore, work: &mut LocalWork, ptrs: &[usize]) -> u64 {
    let heap = c.heap.view();
    let mut shaded = 0u64;
    let mut bytes = 0u64;
    // The grey buffer's length in a register for the loop (`work.push` would load and store it
    // at every object); written back before a publication and at the end.
    let mut len = work.len;
    for &p in ptrs {
        if let Some(child) = shade_slot(&heap, p, &mut shaded, &mut bytes) {
            push_publishing(c, work, &mut len, child);
        }
    }
    work.len = len;
    if shaded != 0 {
        core.stats.shaded.add(shaded);
        core.stats.bytes_marked.add(bytes);
    }
    shaded
}

/// The slot word at heap address `addr`.
pub(crate) fn slot_at(c: &Collector, addr: usize) -> &AtomicUsize {
    debug_assert_eq!(addr % core::mem::align_of::<AtomicUsize>(), 0);
    // SAFETY: `addr` is a pointer-slot offset of a live object's type, within the heap (the
    // `Trace` contract), aligned, and slots are only ever accessed atomically while shared.
    unsafe { &*(c.heap.ptr(addr) as *const AtomicUsize) }
}

/// Drain `work` and then the global list until both are empty. Returns objects scanned. For
/// pauses (the world stopped): unbounded. Never inlined: it is entered a few times per cycle, and
/// a profile finds the mark in it.
#[inline(never)]
pub(crate) fn drain(c: &Collector, core: &GcCore, work: &mut LocalWork) -> usize {
    drain_some(c, core, work, usize::MAX, usize::MAX, Batched::Shade)
}

/// Whether a drain shades handed-over wbBuf batches ([`Batches`]) as well as grey objects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batched {
    /// Markers: the collecting task, mark workers, idle cores, the pauses' drains.
    Shade,
    /// Assists: a mutator pays for its allocation in marked bytes, which records of objects
    /// already black (most of a batch) would not earn it.
    Leave,
}

/// Pointer slots a concurrent drain reads per preemption-disabled stretch (about 40
/// instructions each: a stop waits at most this long for a marking core).
pub const DRAIN_BUDGET_SLOTS: usize = 256;

/// Drain like [`drain`], but stop once `max_objects` grey objects have been scanned or
/// `max_slots` pointer slots read (an object counts as its slots plus one), whichever comes first:
/// what is left is published to the global list (any marker can take it) before this marker
/// counts itself out, so the grey set never looks empty while it is not (a `quiescent` check never
/// sees neither). Mark workers bound the slots (their preemption-disabled stretch), a mutator's
/// assist the objects (its share of the work). With `batches` [`Batched::Shade`], a drain whose
/// own buffer ran out shades a handed-over batch before it looks at the global list (each record
/// counts as half a slot, a batch as one object scanned). Returns objects scanned.
#[inline(never)]
pub(crate) fn drain_some(
    c: &Collector,
    core: &GcCore,
    work: &mut LocalWork,
    max_objects: usize,
    max_slots: usize,
    batches: Batched,
) -> usize {
    let mut scanned = 0;
    let mut slots = 0usize;
    let mut holding = false;
    // As in `shade_recorded`: the heap's tables read once for the whole drain, each slot's
    // pointer tested by `find_unmarked` (nil, non-heap and marked ones leave at the first failing
    // test, with no atomic RMW), and the statistics added once per call instead of per object
    // (measured with callgrind: see docs/experiments.md, "The drain's lookups").
    let heap = c.heap.view();
    let mut shaded = Shaded::default();
    loop {
        while scanned < max_objects && slots < max_slots {
            let batch = (max_objects - scanned).min(BALANCE_EVERY);
            let (n, read, blocked) = scan_batch(c, &heap, work, batch, &mut shaded);
            scanned += n;
            slots = slots.saturating_add(read);
            if blocked {
                // The next object's children might not fit in the buffer: scan it with the loop
                // that publishes a full buffer as it goes.
                let Some(base) = work.pop() else { break };
                slots = slots.saturating_add(scan_object_in(c, &heap, work, base, &mut shaded) + 1);
                scanned += 1;
            } else if n < batch {
                break;
            }
            work.balance(&c.work);
        }
        if scanned >= max_objects || slots >= max_slots {
            work.publish(&c.work);
            shaded.count(core);
            if holding {
                c.work.done();
            }
            return scanned;
        }
        if holding {
            c.work.done();
        }
        if batches == Batched::Shade {
            if let Some(batch) = c.work.take_batch() {
                // Counted active until the next `done`, like taken grey objects: what the batch
                // greys is in this buffer (or published) by then.
                holding = true;
                slots = slots.saturating_add((shade_batch(c, core, work, batch) / 2).max(1));
                scanned += 1;
                continue;
            }
        }
        holding = c.work.take(work);
        if !holding {
            shaded.count(core);
            return scanned;
        }
    }
}

/// Shade a batch taken with [`GlobalWork::take_batch`] into `work` and give it back to the
/// spares (the taker's `done` is its own to call). Returns the records it held.
pub(crate) fn shade_batch(c: &Collector, core: &GcCore, work: &mut LocalWork, batch: Vec<usize>) -> usize {
    shade_recorded(c, core, work, &batch);
    let records = batch.len();
    c.work.spare_batch(batch);
    records
}

/// What a drain shaded, counted into the core's statistics once, at its end.
#[derive(Default)]
struct Shaded {
    objects: u64,
    bytes: u64,
}

impl Shaded {
    fn count(&mut self, core: &GcCore) {
        if self.objects != 0 {
            core.stats.shaded.add(self.objects);
            core.stats.bytes_marked.add(self.bytes);
            *self = Shaded::default();
        }
    }
}

/// A pointer `v` read by a scan or recorded by the barrier: if it names an unmarked object, mark it (the
/// RMW decides a race with another shader: only the one that sets the bit goes on) and count it
/// in `objects` and `bytes`. Returns the object's base if it must be queued (it holds pointers).
/// The per-pointer step of the scans and of the flush, inlined into their loops ([`scan_batch`],
/// [`scan_object_in`], [`shade_recorded`]).
#[inline(always)]
fn shade_slot(heap: &crate::heap::HeapView<'_>, v: usize, objects: &mut u64, bytes: &mut u64) -> Option<usize> {
    let (obj, word, bit) = heap.find_unmarked(v)?;
    // SAFETY: `obj.span` came from the heap's page table, so it is one of its pages.
    let span = unsafe { heap.span(obj.span) };
    if !span.mark.set_in_word(word, bit) {
        return None;
    }
    *objects += 1;
    *bytes += span.elem_size() as u64;
    (!obj.noscan).then_some(obj.base)
}

/// Queue `child` at `*len`, the caller's copy of `work.len` (kept in a register by its loop),
/// publishing a full buffer first so that any number of children fits (the flush's loop and
/// [`scan_object_in`]; [`scan_batch`] checks for room up front instead).
#[inline(always)]
fn push_publishing(c: &Collector, work: &mut LocalWork, len: &mut usize, child: usize) {
    if *len == LOCAL_WORK_ENTRIES {
        work.len = *len;
        work.publish(&c.work);
        *len = 0;
    }
    // SAFETY: `*len < LOCAL_WORK_ENTRIES`: a full buffer was just published.
    unsafe { *work.items.get_unchecked_mut(*len) = child };
    *len += 1;
}

/// The slot word at offset `off` of the payload mapped at `mem` (an object's header address
/// through [`HeapView::ptr`](crate::heap::HeapView::ptr)).
#[inline(always)]
fn slot_of(mem: *mut u8, off: usize) -> usize {
    // SAFETY: as in `slot_at`: a pointer-slot offset of a live object's type, within its payload,
    // aligned, accessed atomically while shared.
    unsafe { &*(mem.wrapping_add(HEADER_SIZE + off) as *const AtomicUsize) }.load(Ordering::Relaxed)
}

/// The drain's hot loop: scan up to `max` grey objects off the top of `work`, with no call on
/// the way, so that the loop's state stays in registers (a call, even on a cold path, made the
/// compiler keep the counters and the buffer's length in memory, reloaded at every slot).
/// Returns the objects scanned, the pointer slots read (each object's plus one) and whether it
/// stopped at an object whose children might not fit in the buffer: that one is left on top
/// for [`scan_object_in`], which publishes a full buffer as it goes. Stops early, not blocked,
/// once the buffer is empty.
#[inline(always)]
fn scan_batch(
    c: &Collector,
    heap: &crate::heap::HeapView<'_>,
    work: &mut LocalWork,
    max: usize,
    shaded: &mut Shaded,
) -> (usize, usize, bool) {
    let mut len = work.len;
    let (mut n, mut slots, mut objects, mut bytes) = (0usize, 0usize, 0u64, 0u64);
    let mut blocked = false;
    while n < max && len > 0 {
        // SAFETY: `0 < len <= LOCAL_WORK_ENTRIES`.
        let base = unsafe { *work.items.get_unchecked(len - 1) };
        // Pairs with the allocator's Release fence (publication barrier): the header and zeroed
        // slots of an object are visible before we read them. (Objects allocated during marking
        // are black and never scanned; older ones were published before the STW that started the
        // cycle.)
        fence(Ordering::Acquire);
        // No second lookup: `base` was found allocated (and scannable) when it was shaded and
        // stays allocated until the sweep, so its header is all there is to read. Its mapping is
        // computed once for the header and every slot, from the drain's view (the heap's own
        // fields would be reloaded after every atomic).
        let mem = heap.ptr(base);
        debug_assert!(c.heap.find_object(base).is_some_and(|o| o.base == base && !o.noscan));
        let ty = heap.type_at(base);
        let offsets = ty.pointer_offsets;
        if len - 1 + offsets.len() > LOCAL_WORK_ENTRIES {
            blocked = true;
            break;
        }
        len -= 1;
        for &off in offsets {
            if let Some(child) = shade_slot(heap, slot_of(mem, off), &mut objects, &mut bytes) {
                // SAFETY: `len < LOCAL_WORK_ENTRIES`: this object's slots fit (checked above).
                unsafe { *work.items.get_unchecked_mut(len) = child };
                len += 1;
            }
        }
        n += 1;
        slots += offsets.len() + 1;
    }
    work.len = len;
    shaded.objects += objects;
    shaded.bytes += bytes;
    (n, slots, blocked)
}

/// Scan one grey object whose children might not fit in the buffer, the drain's slow path (see
/// [`scan_batch`]): the same steps, but a full buffer is published as it goes, so any number of
/// pointer slots fits. What it shaded is added to `shaded`; returns the pointer slots read (the
/// drain's budget counts them).
#[cold]
#[inline(never)]
fn scan_object_in(
    c: &Collector,
    heap: &crate::heap::HeapView<'_>,
    work: &mut LocalWork,
    base: usize,
    shaded: &mut Shaded,
) -> usize {
    // As in `scan_batch`.
    fence(Ordering::Acquire);
    let mem = heap.ptr(base);
    debug_assert!(c.heap.find_object(base).is_some_and(|o| o.base == base && !o.noscan));
    let ty = heap.type_at(base);
    let mut len = work.len;
    for &off in ty.pointer_offsets {
        if let Some(child) = shade_slot(heap, slot_of(mem, off), &mut shaded.objects, &mut shaded.bytes) {
            push_publishing(c, work, &mut len, child);
        }
    }
    work.len = len;
    ty.pointer_offsets.len()
}

/// Shade every word in `range` that points into an allocated object's payload (conservative
/// scan; see `Heap::find_object_conservative` for why a word at a header does not count).
/// The range's owner is parked (world stopped) or otherwise held at a safe point (a concurrent
/// stack scan).
pub(crate) fn scan_conservative(c: &Collector, core: &GcCore, work: &mut LocalWork, r: ScanRange) {
    let w = core::mem::size_of::<usize>();
    let mut a = r.lo.next_multiple_of(w);
    while a + w <= r.hi {
        // SAFETY: the platform promises `[lo, hi)` is readable memory (a task's stack or register
        // save area) whose owner is held at a safe point, so the read does not race a write.
        let v = unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() };
        if let Some(obj) = c.heap.find_object_conservative(v) {
            shade_object(c, core, work, obj);
        }
        a += w;
    }
}

/// Slots scanned per preemption-disabled chunk by [`scan_globals_concurrently`].
const GLOBALS_CHUNK: usize = 512;

/// Shade every registered global root and every pinned buffer, concurrently with the mutators:
/// in chunks, each with preemption disabled (a stop waits at most one chunk for this core).
pub(crate) fn scan_globals_concurrently<P: crate::Platform>(c: &Collector) {
    // The registry's spin lock with preemption off, like every spin lock here: taken by a
    // preemptible task, a preemption left it held while a checked-mode store on the same core
    // spun for it in `Roots::contains_slot`, preemption off (a stress run hung: smp 1, checked,
    // the gdb dump at the timeout showed the mutator spinning there).
    let n = {
        let _np = P::disable_preemption();
        c.roots.slot_count()
    };
    let mut at = 0;
    while at < n {
        let _np = P::disable_preemption();
        let core = P::current_core();
        // SAFETY: this core with preemption disabled.
        let work = unsafe { core.work_mut() };
        c.roots.for_each_in(at..(at + GLOBALS_CHUNK).min(n), |slot| {
            shade(c, core, work, slot.load(Ordering::Relaxed));
        });
        work.publish(&c.work);
        at += GLOBALS_CHUNK;
    }
    let _np = P::disable_preemption();
    let core = P::current_core();
    // SAFETY: as above.
    let work = unsafe { core.work_mut() };
    c.heap.for_each_pinned(|base| {
        shade(c, core, work, base);
    });
    work.publish(&c.work);
}

/// Shade every registered global root and every pinned buffer (roots too, see
/// `Heap::for_each_pinned`). World stopped (`off` mode's one pause).
pub(crate) fn scan_globals(c: &Collector, core: &GcCore, work: &mut LocalWork) {
    c.roots.for_each(|slot| {
        shade(c, core, work, slot.load(Ordering::Relaxed));
    });
    c.heap.for_each_pinned(|base| {
        shade(c, core, work, base);
    });
}
