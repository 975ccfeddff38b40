//! The heap: a region given at init, cut into pages, grouped into spans; object lookup; allocation
//! through per-core span caches; sweeping with Go's `sweepgen` protocol.
//!
//! # The allocation fast path
//! Each core caches, per size class, a span it owns and the free objects of one word of that
//! span's alloc bitmap ([`AllocCache`], Go's `mcache` entry with its `allocCache`). Allocating is
//! a count-trailing-zeros of that word, clearing the bit, and setting the object's alloc bit with
//! a plain store (the owner is the only writer of an owned span's alloc bits): no lock, no atomic
//! read-modify-write, no shared counter (Go's `nextFreeFast`). When the word is used up the slow
//! path moves to the next word with free objects, and when the span is full, to a new span.
//!
//! `in_use` counts a span's free objects as in use from the time a cache takes the span (Go's
//! `heapLive` does the same), so allocating does not touch it; the cache gives the unused rest
//! back when it lets the span go at mark termination.

use core::fmt;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::object::{GcType, HEADER_SIZE};
use crate::pages::PageMap;
use crate::platform::{GcCore, InState, Platform, NO_SPAN};
use crate::sizeclass::{class_for, CLASS_SIZES, HEAP_PAGE_SIZE, NUM_CLASSES};
use crate::span::{Span, BITMAP_WORDS, SPAN_FREE, SPAN_LARGE, SPAN_SMALL};
use tricolor_timeline::State;

/// Padding before and after a pinned buffer, inside its span, and where pinned spans go.
///
/// Code that walks a buffer row by row (a framebuffer) leaves pointers outside it in registers and
/// stack slots: loop end pointers a row or more past its end, row addresses computed before the
/// clip that rejects them. A conservative scan takes such a word for a reference to whatever
/// object lies there, so that dead neighbour of the framebuffer is kept, and the verifier reports
/// it as missed (it did, for a large object right after the GPU framebuffer's one-page tail, with
/// pointers five rows past the end). Go keeps past-the-end pointers inside their object by
/// padding. Pinned spans therefore take the **top** of the heap (last fit), so that everything
/// past a pinned buffer's end is another pinned buffer (a root, and no-scan) or no heap at all,
/// and have [`PINNED_HEAD_PAGES`] of padding before the buffer (a row before its start stays in
/// its own span) and [`PINNED_TAIL_PAGES`] after it (for a pinned span that could not sit at the
/// top).
pub const PINNED_HEAD_PAGES: usize = 1;
/// See [`PINNED_HEAD_PAGES`].
pub const PINNED_TAIL_PAGES: usize = 1;

/// Every freed byte (and every never-allocated byte) of the heap holds this pattern.
pub const POISON: u8 = 0xA5;

/// A core's allocation cache for one size class: the span it allocates from and the free objects
/// of one of that span's bitmap words. Touched only by its core (the [`GcCore`] ownership rule).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AllocCache {
    /// Start page of the owned span, [`NO_SPAN`] if none.
    span: u32,
    /// The bitmap word `free` describes.
    word: u32,
    /// Objects of word `word` that are free and not handed out yet (bit `b`: object `64 * word + b`).
    free: u64,
    /// The span's first address.
    base: usize,
    /// Its object size.
    elem: usize,
}

impl AllocCache {
    /// No span.
    pub(crate) const EMPTY: AllocCache = AllocCache { span: NO_SPAN, word: 0, free: 0, base: 0, elem: 0 };
}

/// Why an allocation failed, with the heap state at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// Bytes requested (payload).
    pub requested: usize,
    /// Heap size in bytes.
    pub heap_size: usize,
    /// Bytes in allocated objects.
    pub in_use: usize,
    /// Free pages.
    pub free_pages: usize,
    /// Longest run of free pages.
    pub largest_free_run: usize,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GC heap out of memory: requested {} bytes; heap {} bytes, {} in use, {} free pages of {} bytes, largest free run {} pages",
            self.requested, self.heap_size, self.in_use, self.free_pages, HEAP_PAGE_SIZE, self.largest_free_run
        )
    }
}

/// An object found from an address (possibly interior).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ObjRef {
    /// Start page index of its span.
    pub(crate) span: u32,
    /// Index within the span.
    pub(crate) index: u32,
    /// Address of the object's first byte (its header, or the buffer for no-scan spans).
    pub(crate) base: usize,
    /// Its span holds no-scan objects (read once, at the lookup: it never changes while the
    /// span is in use).
    pub(crate) noscan: bool,
}

/// The tables of a [`Heap`] that a lookup reads, copied into locals once per wbBuf flush
/// (`Heap::view`): `Heap` holds atomics, so the compiler cannot keep its fields in registers across
/// the flush loop's stores by itself, and without the copy every pointer reloads the heap's base,
/// size and table addresses. The fields never change while the heap lives.
#[derive(Clone, Copy)]
pub(crate) struct HeapView<'h> {
    base_addr: usize,
    size: usize,
    /// `Heap::base`: where the heap's first byte is mapped for the collector (`Heap::ptr`).
    mem: *mut u8,
    /// `Heap::page_span`, `size / HEAP_PAGE_SIZE` entries.
    page_span: *const AtomicU32,
    /// `Heap::spans`, one more (the free sentinel).
    spans: *const Span,
    _heap: core::marker::PhantomData<&'h Heap>,
}

impl<'h> HeapView<'h> {
    /// The type of the object whose header is at `base`: a grey object's (shaded, so allocated
    /// with a header, and not freed before the sweep). The marker's scan reads nothing else of its
    /// metadata, through the view's mapping ([`HeapView::ptr`]).
    #[inline(always)]
    pub(crate) fn type_at(&self, base: usize) -> &'static GcType {
        // SAFETY: an allocated object's header, initialised before its address reached the
        // marker, read atomically because neighbours may be allocated meanwhile.
        let word = unsafe { &*(self.ptr(base) as *const AtomicUsize) }.load(Ordering::Relaxed);
        // SAFETY: headers hold `&'static GcType` addresses written by `alloc_object`.
        unsafe { &*core::ptr::with_exposed_provenance::<GcType>(word) }
    }

    /// [`Heap::ptr`] from the view's copy of the mapping: where heap address `addr` is.
    #[inline(always)]
    pub(crate) fn ptr(&self, addr: usize) -> *mut u8 {
        debug_assert!(addr.wrapping_sub(self.base_addr) < self.size);
        self.mem.wrapping_add(addr - self.base_addr)
    }

    /// The span whose metadata is at `start_page`, unchecked.
    ///
    /// # Safety
    /// `start_page` is a page of the heap or the free sentinel (`<= size / HEAP_PAGE_SIZE`).
    #[inline(always)]
    pub(crate) unsafe fn span(&self, start_page: u32) -> &'h Span {
        // SAFETY: the caller's bound; `spans` has one entry per page and the sentinel, and lives
        // as long as `'h`.
        unsafe { &*self.spans.add(start_page as usize) }
    }

    /// The barrier flush's lookup: the allocated object containing `addr` if its mark bit was
    /// clear when read, `None` if `addr` is nil, outside the heap, no allocated object, or an
    /// object already marked (Go's `findObject` then `isMarked` in `wbBufFlush1`, reordered).
    ///
    /// The mark bit is tested first, before the span's state, the object count and the alloc bit:
    /// a barrier record is nearly always an object shaded already, and a set bit filters it
    /// whatever else is true. That is sound because filtering is what [`Heap::find_object`]
    /// returning `None` would do too, so only the case "`find_object` finds an allocated white
    /// object, and this reads its bit as set" would lose a shade, and it cannot happen: the page's
    /// Acquire load makes the span's `div_mul` the one published with the page, so the index is
    /// the object's, and its bit, once clear during a mark, is set only by a shade. For addresses
    /// that are no object (the tail past the last object, a span being freed) the bit read is some
    /// bit of the same span's bitmap (the word index is masked), and filtering them is right.
    /// No division and no bounds check: the index is a multiply-shift (`Span::div_mul`) and the
    /// tables are indexed unchecked under the heap-range test. The object count is not tested
    /// either: an index past the objects has its alloc bit clear (`new_span` clears the whole
    /// bitmap, allocation sets only bits below `nelems`), and every index is below
    /// `MAX_OBJECTS_PER_SPAN` (a span's bytes over its element size is at most `nelems` plus a
    /// tail short of one element, and only the 16-byte class fills 512 with no tail), so the
    /// masked word is the index's own.
    ///
    /// Returns the object with its bitmap word and bit, for the caller's RMW on the mark word.
    #[inline(always)]
    pub(crate) fn find_unmarked(&self, addr: usize) -> Option<(ObjRef, usize, u64)> {
        // Nil fails this test too (the heap does not start at 0): one test for both.
        let off = addr.wrapping_sub(self.base_addr);
        if off >= self.size {
            return None;
        }
        let page = off / HEAP_PAGE_SIZE;
        // SAFETY: `off < size`, so `page < npages`, the length of `page_span`.
        let page_span = unsafe { &*self.page_span.add(page) };
        // Ordering: Acquire pairs with the Release stores publishing a new span (`new_span`), so
        // its `div_mul`, `nelems` and bitmaps are the new span's once the page names it.
        let sp = page_span.load(Ordering::Acquire);
        // SAFETY: `page_span` holds only start pages of spans, pages of this heap (`new_span`),
        // or the free sentinel, which is the one entry of `spans` past them.
        let span = unsafe { self.span(sp) };
        // A free page's sentinel has `div_mul` 0 (index 0) and every mark bit set: filtered below.
        // Its start (`npages`) lies past every page, so the offset wraps; the index is 0 anyway.
        let span_off = off.wrapping_sub(sp as usize * HEAP_PAGE_SIZE);
        let index = span.index_of(span_off);
        // Masked into the bitmap: an index past the objects (the tail of the span) reads some bit
        // of this bitmap, harmlessly (see above), instead of a bounds check.
        let word = (index / 64) & (BITMAP_WORDS - 1);
        let bit = 1u64 << (index % 64);
        if span.mark.word(word) & bit != 0 {
            return None;
        }
        // White, or no object: decide with the checks `find_object` makes.
        // Ordering: Acquire, as in `find_object` (a span freed meanwhile reads as free).
        if span.state.load(Ordering::Acquire) == SPAN_FREE {
            return None;
        }
        debug_assert!(index < BITMAP_WORDS * 64 && (index < span.nelems() || !span.alloc.get(index)));
        if span.alloc.word(word) & bit == 0 {
            return None;
        }
        // From `addr`, not from `sp`: the span's start is then needed only as `sp * page`
        // subtracted (one instruction with the shift folded in).
        let base = addr.wrapping_sub(span_off) + index * span.elem_size();
        Some((ObjRef { span: sp, index: index as u32, base, noscan: span.noscan.load(Ordering::Relaxed) }, word, bit))
    }
}

/// Per size class, the spans a refill may take (a simpler form of Go's mcentral span sets).
/// Everything here is only touched under the class lock. `gen` is the sweep generation the rest
/// describes; the first user in a new generation (`roll`) resets it in O(1), so
/// `begin_sweep_generation` (world stopped) does no per-span work.
///
/// - `spans[..unswept]`: not yet looked at by a refill this generation. Refill walks this prefix
///   down from the end, sweeping each span it finds unswept, so every span is visited at most once
///   per generation: full spans are not rescanned until the next one.
/// - `spans[unswept..]`: looked at this generation (swept then, taken, full, or being swept by
///   the sweep walk (`sweep_chunk`)), or created this generation.
/// - `partial`: spans the sweep walk (`sweep_chunk`) swept this generation and left with free
///   objects. This catches spans a refill's walk passed while the sweep walk was sweeping them;
///   duplicates with the prefix are harmless (a refill re-checks `owned`, `is_swept` and `has_free` before taking a span).
///   It never names a freed span: a span is swept (and so freed) at most once per generation, and
///   is pushed only after that sweep left it in use; older entries are dropped by `roll`.
struct ClassList {
    spans: Vec<u32>,
    unswept: usize,
    partial: Vec<u32>,
    gen: u32,
}

impl ClassList {
    /// Enter generation `sg` if not yet there: every span needs looking at again.
    fn roll(&mut self, sg: u32) {
        if self.gen != sg {
            self.gen = sg;
            self.unswept = self.spans.len();
            self.partial.clear();
        }
    }

    /// Remove `spans[i]` in O(1), keeping the not-yet-walked prefix `spans[..unswept]` intact.
    /// `moved(span, index)` is told each span's new index.
    fn remove(&mut self, i: usize, mut moved: impl FnMut(u32, usize)) {
        let last = self.spans.len() - 1;
        if i < self.unswept {
            let end = self.unswept - 1;
            self.spans.swap(i, end);
            self.spans.swap(end, last);
            self.unswept = end;
            moved(self.spans[end], end);
        } else {
            self.spans.swap(i, last);
        }
        moved(self.spans[i], i);
        self.spans.pop();
    }
}

/// The GC heap.
pub struct Heap {
    base: *mut u8,
    base_addr: usize,
    npages: usize,
    /// One entry per page (a span's metadata at its first page), and one more past them: the
    /// free page's sentinel (`npages`), a span that is always free and whose mark bits are all
    /// set. A free page names it, so a lookup of a pointer into a free page needs no test of its
    /// own: `find_object` finds the span free, and the flush's `find_unmarked` finds the pointer
    /// "marked" and filters it at the test it makes for every pointer anyway.
    spans: Box<[Span]>,
    /// Page -> start page of the span covering it, or `npages` (the sentinel) if free.
    page_span: Box<[AtomicU32]>,
    pages: crate::sync::Mutex<PageMap>,
    classes: [crate::sync::Mutex<ClassList>; NUM_CLASSES],
    /// Go's `mheap_.sweepgen`: bumped by 2 at every mark termination.
    sweepgen: AtomicU32,
    /// Start pages of the pinned buffers' spans (few: framebuffers). Pinned buffers are roots
    /// (`for_each_pinned`).
    pinned: crate::sync::Mutex<Vec<u32>>,
    /// Bytes in allocated objects, plus the free objects of spans that caches own (module docs).
    in_use: AtomicUsize,
    /// See [`Heap::live`].
    live: AtomicUsize,
    /// The next page the sweep walk hands out, and the sweepers inside a chunk
    /// ([`Heap::sweep_chunk`]).
    sweep_next: AtomicUsize,
    sweepers: AtomicUsize,
    /// Poison freed memory (see [`Heap::set_poison`]).
    poison: AtomicBool,
    /// Spans swept, ever (a profile's denominator).
    spans_swept: AtomicU64,
}

// SAFETY: the raw base pointer is only used to form pointers into the region the heap exclusively
// owns (the `Heap::new` contract); all shared metadata is atomics or behind spin locks.
unsafe impl Send for Heap {}
// SAFETY: as above.
unsafe impl Sync for Heap {}

/// Bytes of a large object's payload zeroed inside the allocator's guard; a larger payload is
/// zeroed by the caller after it, preemptibly (Go's delayed zeroing).
pub(crate) const LARGE_ZERO_INLINE: usize = 16 * 1024;

/// Pages of the sweep walk a sweeper takes at a time ([`Heap::sweep_chunk`]): a few spans'
/// worth, a few thousand instructions with poisoning on.
pub(crate) const SWEEP_CHUNK_PAGES: usize = 8;

/// Spans a refill sweeps lazily before it takes a fresh span instead (see `Heap::refill`).
const REFILL_SWEEP_BUDGET: usize = 100;

/// Spans a refill looks at, swept or not, before it takes a fresh span instead (`Heap::refill`).
const REFILL_VISIT_BUDGET: usize = 256;

/// Result of sweeping.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct SweepResult {
    pub(crate) bytes_freed: usize,
    pub(crate) objects_freed: usize,
    /// The span was empty and its pages were returned (`may_free`).
    pub(crate) span_freed: bool,
}

impl Heap {
    /// A heap over `[base, base + len)`, trimmed to whole pages. All of it is poisoned.
    ///
    /// # Safety
    /// The region is valid for reads and writes, not used by anything else, and outlives the heap.
    pub unsafe fn new(base: *mut u8, len: usize) -> Self {
        let addr = base.expose_provenance();
        let start = addr.next_multiple_of(HEAP_PAGE_SIZE);
        let npages = len.saturating_sub(start - addr) / HEAP_PAGE_SIZE;
        assert!(npages > 0, "GC heap region too small: {len} bytes");
        assert!(npages < u32::MAX as usize, "GC heap too large");
        let spans: Box<[Span]> = (0..=npages).map(|_| Span::new()).collect();
        for w in 0..BITMAP_WORDS {
            spans[npages].mark.store_word(w, u64::MAX);
        }
        let base = base.wrapping_add(start - addr);
        // SAFETY: `[base, base + npages * HEAP_PAGE_SIZE)` lies within the caller's region.
        unsafe { core::ptr::write_bytes(base, POISON, npages * HEAP_PAGE_SIZE) };
        Heap {
            base,
            base_addr: start,
            npages,
            spans,
            page_span: (0..npages).map(|_| AtomicU32::new(npages as u32)).collect(),
            pages: crate::sync::Mutex::new(PageMap::new(npages)),
            classes: core::array::from_fn(|_| {
                // `gen` 0 is never the heap's (it starts at 2), so the first refill rolls.
                crate::sync::Mutex::new(ClassList { spans: Vec::new(), unswept: 0, partial: Vec::new(), gen: 0 })
            }),
            sweepgen: AtomicU32::new(2),
            pinned: crate::sync::Mutex::new(Vec::new()),
            in_use: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            sweep_next: AtomicUsize::new(0),
            sweepers: AtomicUsize::new(0),
            poison: AtomicBool::new(true),
            spans_swept: AtomicU64::new(0),
        }
    }

    /// Poison freed memory (the default), or not. Off, sweeping writes no object memory at all
    /// and [`Heap::check_poisoned`] means nothing: only benchmarks switch it off, and say so.
    pub fn set_poison(&self, on: bool) {
        // Ordering: Relaxed; set before mutators run (a late switch only changes which freed
        // objects get poisoned).
        self.poison.store(on, Ordering::Relaxed);
    }

    /// Whether freed memory is poisoned.
    pub fn poisons(&self) -> bool {
        self.poison.load(Ordering::Relaxed)
    }

    /// The most bytes of heap pages that were ever in spans at once.
    pub fn peak_bytes(&self) -> usize {
        self.pages.lock().peak_used() * HEAP_PAGE_SIZE
    }

    /// Spans swept since the heap was made.
    pub fn spans_swept(&self) -> u64 {
        self.spans_swept.load(Ordering::Relaxed)
    }

    /// Heap size in bytes.
    pub fn size(&self) -> usize {
        self.npages * HEAP_PAGE_SIZE
    }

    /// First address of the heap.
    pub fn base(&self) -> usize {
        self.base_addr
    }

    /// Bytes in allocated objects, counting the free objects of spans that cores allocate from
    /// as in use (at most one page per size class and core; exact after a mark termination).
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The pacer's measure of the heap (Go's `heapLive`): the bytes the last mark found live plus
    /// what was allocated since, counted like [`Heap::in_use`] but never lowered by sweeping. The
    /// heap in use right after a mark termination still holds the garbage not yet swept, and
    /// compared with the next trigger (made from the live bytes) it started cycles at once, or
    /// late (waiting for the sweep), far past their goal.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Mark termination (world stopped): the measure restarts from what the mark found live.
    pub(crate) fn reset_live(&self, marked: usize) {
        // Ordering: Relaxed; the world is stopped, and the restart handshake publishes it.
        self.live.store(marked, Ordering::Relaxed);
    }

    /// Whether `addr` lies in the heap region.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base_addr) < self.npages * HEAP_PAGE_SIZE
    }

    /// A pointer to `addr` with the heap's provenance.
    #[inline]
    pub(crate) fn ptr(&self, addr: usize) -> *mut u8 {
        debug_assert!(self.contains(addr));
        self.base.wrapping_add(addr - self.base_addr)
    }

    pub(crate) fn span(&self, start_page: u32) -> &Span {
        &self.spans[start_page as usize]
    }

    fn span_base(&self, start_page: u32) -> usize {
        self.base_addr + start_page as usize * HEAP_PAGE_SIZE
    }

    pub(crate) fn sweepgen(&self) -> u32 {
        self.sweepgen.load(Ordering::Relaxed)
    }

    /// The allocated object containing `addr`, if any. Interior pointers count.
    #[inline]
    pub(crate) fn find_object(&self, addr: usize) -> Option<ObjRef> {
        if !self.contains(addr) {
            return None;
        }
        let page = (addr - self.base_addr) / HEAP_PAGE_SIZE;
        // Ordering: Acquire pairs with the Release stores publishing a new span, so its metadata
        // (size, count) is visible once the page says it belongs to it.
        let sp = self.page_span[page].load(Ordering::Acquire);
        debug_assert!((sp as usize) < self.spans.len());
        // SAFETY: `page_span` holds only start pages of spans, which are pages of this heap
        // (`new_span`), or the free sentinel `npages`, so `sp <= npages < spans.len()`.
        let span = unsafe { self.spans.get_unchecked(sp as usize) };
        // A free page names the sentinel, which is always free.
        if span.state.load(Ordering::Acquire) == SPAN_FREE {
            return None;
        }
        // A multiplication, not a division (`Span::div_mul`).
        let index = span.index_of(addr - self.span_base(sp));
        if index >= span.nelems() || !span.alloc.get(index) {
            return None;
        }
        let base = self.span_base(sp) + index * span.elem_size();
        Some(ObjRef { span: sp, index: index as u32, base, noscan: span.noscan.load(Ordering::Relaxed) })
    }

    /// The heap's lookup tables, read once: a wbBuf flush looks up hundreds of pointers with them
    /// in registers (see [`HeapView`]).
    #[inline(always)]
    pub(crate) fn view(&self) -> HeapView<'_> {
        HeapView {
            base_addr: self.base_addr,
            size: self.npages * HEAP_PAGE_SIZE,
            mem: self.base,
            page_span: self.page_span.as_ptr(),
            spans: self.spans.as_ptr(),
            _heap: core::marker::PhantomData,
        }
    }

    /// The object a conservatively scanned word (a stack word, a saved register) refers to: as
    /// [`Heap::find_object`], except that a word pointing at an object's header is no reference
    /// to it. Handles point at the payload, and so do pointers into it; the header's address is
    /// only ever held as one past the end of the object below (a `memset` or loop end pointer, left
    /// in a register or a stale stack slot) or inside the allocator, and taking it for a reference
    /// would keep, or make the verifier expect, a dead neighbour. Header-less no-scan buffers
    /// (pinned) start at their base.
    #[inline]
    pub(crate) fn find_object_conservative(&self, addr: usize) -> Option<ObjRef> {
        let obj = self.find_object(addr)?;
        if addr < obj.base + HEADER_SIZE && !self.is_noscan(&obj) {
            return None;
        }
        Some(obj)
    }

    /// The object's type (`BYTES_TYPE` for no-scan raw buffers).
    pub(crate) fn type_of(&self, obj: &ObjRef) -> &'static GcType {
        if obj.noscan {
            return &crate::object::BYTES_TYPE;
        }
        // SAFETY: `obj` is an allocated object with a header, initialised before its address
        // could reach the caller (allocation's Release fence / STW handshake). The header word is
        // read atomically because allocation of neighbouring objects may be in progress.
        let word = unsafe { &*(self.ptr(obj.base) as *const AtomicUsize) }.load(Ordering::Relaxed);
        // SAFETY: headers hold `&'static GcType` addresses written by `alloc_object`.
        unsafe { &*core::ptr::with_exposed_provenance::<GcType>(word) }
    }

    pub(crate) fn type_name(&self, obj: &ObjRef) -> &'static str {
        self.type_of(obj).name
    }

    /// Whether the object holds pointers to scan.
    pub(crate) fn is_noscan(&self, obj: &ObjRef) -> bool {
        obj.noscan
    }

    /// The report of a failed allocation of `requested` bytes: what the heap holds now.
    pub(crate) fn alloc_error(&self, requested: usize) -> AllocError {
        let pages = self.pages.lock();
        AllocError {
            requested,
            heap_size: self.size(),
            in_use: self.in_use(),
            free_pages: pages.free_pages(),
            largest_free_run: pages.largest_free_run(),
        }
    }

    /// Allocate an object of `ty` (zeroed payload, header set), black if `black`. Returns the
    /// payload address, or `None` if the heap is full: the caller builds the report
    /// ([`Heap::alloc_error`]) once, so a retry loop on a full heap does not pay for it (a walk of
    /// the page map under its lock) at every attempt. The caller is `core` with preemption
    /// disabled.
    ///
    /// The fast path (a free object in the core's cache word) makes no call, so that its caller
    /// needs no frame; everything else is one call in tail position.
    #[inline(always)]
    pub(crate) fn try_alloc_object<P: Platform>(
        &self,
        core: &GcCore,
        ty: &'static GcType,
        black: bool,
    ) -> Option<usize> {
        if let Some(class) = class_for(ty.size + HEADER_SIZE) {
            // SAFETY: the caller is `core` with preemption disabled (this function's contract).
            let e = &mut unsafe { core.cache_mut() }[class];
            if e.free != 0 {
                let (span, index, base) = self.take_cached(e);
                return Some(self.init_object(core, ty, black, span, index, base));
            }
        }
        self.try_alloc_object_slow::<P>(core, ty, black)
    }

    /// [`Heap::try_alloc_object`] when the cache word is used up, or for a large object.
    #[cold]
    #[inline(never)]
    fn try_alloc_object_slow<P: Platform>(&self, core: &GcCore, ty: &'static GcType, black: bool) -> Option<usize> {
        let Some(class) = class_for(ty.size + HEADER_SIZE) else {
            return self.alloc_large_object(core, ty, black);
        };
        let (span, index, base) = self.alloc_small::<P>(core, class)?;
        Some(self.init_object(core, ty, black, span, index, base))
    }

    /// Initialise a small object just taken from a cache: black if `black`, header, zeroed
    /// payload, published. Returns the payload address.
    #[inline(always)]
    fn init_object(
        &self,
        core: &GcCore,
        ty: &'static GcType,
        black: bool,
        span: u32,
        index: usize,
        base: usize,
    ) -> usize {
        if black {
            self.allocated_black(core, span, index);
        }
        let p = self.ptr(base);
        // SAFETY: `[base, base + size)` lies in a freshly allocated object only this core knows.
        // The rest of its size class stays as it was (poisoned): nothing reads past `ty.size`.
        unsafe {
            (p as *mut usize).write((ty as *const GcType).expose_provenance());
            core::ptr::write_bytes(p.add(HEADER_SIZE), 0, ty.size);
        }
        core.stats.allocs.bump();
        // Go's publicationBarrier: the object's initialisation (header, zeroes, alloc bit) is
        // ordered before any store that publishes its address. Release fence; markers pair it
        // with an Acquire fence before scanning an object.
        fence(Ordering::Release);
        base + HEADER_SIZE
    }

    /// Allocation during a mark is black.
    #[inline(always)]
    fn allocated_black(&self, core: &GcCore, span: u32, index: usize) {
        let s = self.span(span);
        s.mark.set(index);
        core.stats.shaded.bump();
        core.stats.allocs_black.bump();
        core.stats.bytes_marked.add(s.elem_size() as u64);
    }

    /// An object too big for a size class, in a span of its own.
    #[cold]
    #[inline(never)]
    fn alloc_large_object(&self, core: &GcCore, ty: &'static GcType, black: bool) -> Option<usize> {
        let size = ty.size + HEADER_SIZE;
        let (span, index, base) = self.alloc_large(size.div_ceil(HEAP_PAGE_SIZE), false, false)?;
        let elem = self.span(span).elem_size();
        if black {
            self.allocated_black(core, span, index);
        }
        let p = self.ptr(base);
        let delay = elem - HEADER_SIZE > LARGE_ZERO_INLINE;
        if delay {
            // Go's delayed zeroing: the payload is zeroed by the caller after the allocator's
            // guard (`Heap::zero_payload`, driven by `Collector::try_alloc`). Until then the span is no-scan, so a marker that finds
            // the object (through the allocating task's stack) marks it without reading it.
            self.span(span).noscan.store(true, Ordering::Relaxed);
            // SAFETY: this core with preemption disabled (the caller's contract).
            unsafe { *core.delayed_zero.get() = Some((span, elem - HEADER_SIZE)) };
        }
        // SAFETY: `[base, base + elem)` is a freshly allocated span only this core knows.
        unsafe {
            if !delay {
                core::ptr::write_bytes(p, 0, elem);
            }
            (p as *mut usize).write((ty as *const GcType).expose_provenance());
        }
        core.stats.allocs.bump();
        self.in_use.fetch_add(elem, Ordering::Relaxed);
        self.live.fetch_add(elem, Ordering::Relaxed);
        // Publication barrier, as in `init_object`.
        fence(Ordering::Release);
        Some(base + HEADER_SIZE)
    }

    /// The payload zeroing [`Heap::try_alloc_object`] left to its caller on `core` (a large object,
    /// see `LARGE_ZERO_INLINE`), taken. The caller is `core` with preemption disabled.
    pub(crate) fn take_delayed_zero(&self, core: &GcCore) -> Option<(u32, usize)> {
        // SAFETY: the caller's contract (own core, preemption disabled).
        unsafe { (*core.delayed_zero.get()).take() }
    }

    /// Zero `len` bytes at payload offset `from` of the large object in `span`, left by
    /// [`Heap::take_delayed_zero`] (the caller goes through it in chunks). Offsets, not addresses:
    /// the caller's frame, on the task stack, then holds no pointer into the object, which a
    /// conservative scan would find there once the object is dead.
    pub(crate) fn zero_payload(&self, span: u32, from: usize, len: usize) {
        let at = self.span_base(span) + HEADER_SIZE + from;
        // SAFETY: part of the payload of an object only the caller holds, not yet handed out; no
        // marker reads it while its span is no-scan.
        unsafe { core::ptr::write_bytes(self.ptr(at), 0, len) };
    }

    /// The delayed zeroing is done: the object becomes scannable.
    pub(crate) fn zeroed(&self, span: u32) {
        // Release: a marker that sees the span scannable (a Relaxed load in `find_object`, then
        // the Acquire fence before `mark::scan_object_in` reads) sees the zeroes.
        self.span(span).noscan.store(false, Ordering::Release);
    }

    /// Allocate a pinned, no-scan buffer of `len` bytes in its own page-aligned span at the top of
    /// the heap (no header), with [`PINNED_HEAD_PAGES`] of padding before and
    /// [`PINNED_TAIL_PAGES`] after it in the same span. It stays allocated until
    /// [`Heap::unpin`], whatever the marker finds. Returns the buffer's address.
    pub(crate) fn alloc_pinned(&self, len: usize, black: bool) -> Result<usize, AllocError> {
        let pages = PINNED_HEAD_PAGES + len.max(1).div_ceil(HEAP_PAGE_SIZE) + PINNED_TAIL_PAGES;
        let (span, index, base) =
            self.new_span(pages, SPAN_LARGE, 0, true, true).ok_or_else(|| self.alloc_error(len))?;
        let won = self.span(span).alloc.set(index);
        debug_assert!(won);
        let s = self.span(span);
        if black {
            s.mark.set(index);
        }
        // SAFETY: freshly allocated span, only the caller knows it.
        unsafe { core::ptr::write_bytes(self.ptr(base), 0, s.elem_size()) };
        self.in_use.fetch_add(s.elem_size(), Ordering::Relaxed);
        self.live.fetch_add(s.elem_size(), Ordering::Relaxed);
        self.pinned.lock().push(span);
        fence(Ordering::Release);
        Ok(base + PINNED_HEAD_PAGES * HEAP_PAGE_SIZE)
    }

    /// Let a pinned buffer be collected once unreachable.
    pub(crate) fn unpin(&self, addr: usize) -> bool {
        match self.find_object(addr) {
            Some(obj) if self.span(obj.span).pinned.swap(false, Ordering::Relaxed) => {
                self.pinned.lock().retain(|&sp| sp != obj.span);
                true
            }
            _ => false,
        }
    }

    /// Visit the base address of every pinned buffer. Pinned buffers are roots: whatever refers
    /// to them (a device, a driver's state in non-GC memory) is invisible to the collector, and
    /// the mark shades them so that mark bits say what survives. They are no-scan, so a pinned
    /// buffer keeps nothing else alive.
    pub(crate) fn for_each_pinned(&self, mut f: impl FnMut(usize)) {
        for &sp in self.pinned.lock().iter() {
            f(self.span_base(sp));
        }
    }

    /// A free object of `class` from `core`'s cache: (span, index, address). The fast path.
    #[inline(always)]
    fn alloc_small<P: Platform>(&self, core: &GcCore, class: usize) -> Option<(u32, usize, usize)> {
        // SAFETY: the caller is `core` with preemption disabled (alloc_object's contract).
        let e = &mut unsafe { core.cache_mut() }[class];
        if e.free == 0 {
            // Ordering: Relaxed; the owner's own record (the cache's ownership rule).
            core.cached.store(core.cached.load(Ordering::Relaxed) | 1 << class, Ordering::Relaxed);
            return self.alloc_small_slow::<P>(e, class);
        }
        Some(self.take_cached(e))
    }

    /// Hand out the lowest free object of a cache word that has one.
    #[inline(always)]
    fn take_cached(&self, e: &mut AllocCache) -> (u32, usize, usize) {
        debug_assert!(e.free != 0);
        let bit = e.free.trailing_zeros();
        e.free &= e.free - 1;
        let index = e.word as usize * 64 + bit as usize;
        // The owner is the only writer of an owned span's alloc bits (`set_single_writer`).
        self.span(e.span).alloc.set_single_writer(e.word as usize, bit);
        (e.span, index, e.base + index * e.elem)
    }

    /// The cache word is used up: the next word of the span with free objects, else a new span.
    #[cold]
    #[inline(never)]
    fn alloc_small_slow<P: Platform>(&self, e: &mut AllocCache, class: usize) -> Option<(u32, usize, usize)> {
        loop {
            if e.span != NO_SPAN {
                let span = self.span(e.span);
                // Words before `e.word` were used up; no one else allocates from this span.
                for w in e.word as usize + 1..span.words() {
                    let free = span.free_bits(w);
                    if free != 0 {
                        e.word = w as u32;
                        e.free = free;
                        return Some(self.take_cached(e));
                    }
                }
                // Full. Ordering: Release hands the span (its alloc bits) back to whoever claims it.
                span.owned.store(false, Ordering::Release);
                *e = AllocCache::EMPTY;
            }
            // On the system stack: the refill may sweep, which handles dead objects' addresses
            // (see `Collector::sweep` for why they must stay out of task stacks).
            let sp = P::systemstack(|| self.refill::<P>(class))?;
            let span = self.span(sp);
            // Its free objects count as in use while this cache owns it (module docs).
            self.in_use.fetch_add(span.free_count() * span.elem_size(), Ordering::Relaxed);
            self.live.fetch_add(span.free_count() * span.elem_size(), Ordering::Relaxed);
            *e = AllocCache {
                span: sp,
                word: 0,
                free: span.free_bits(0),
                base: self.span_base(sp),
                elem: span.elem_size(),
            };
            if e.free != 0 {
                return Some(self.take_cached(e));
            }
        }
    }

    /// A swept span of `class` with free objects, now owned by the caller's cache. O(1)
    /// amortized: each span is looked at once per sweep generation by the walk (see `ClassList`).
    fn refill<P: Platform>(&self, class: usize) -> Option<u32> {
        let sg = self.sweepgen();
        let mut list = self.classes[class].lock();
        list.roll(sg);
        // Spans the sweep walk (`sweep_chunk`) left with room. Ordering: `is_swept`'s Acquire pairs with the
        // sweeper's `finish_sweep` (the class lock orders the push after it anyway).
        while let Some(sp) = list.partial.pop() {
            if self.try_take(sp, sg) {
                return Some(sp);
            }
        }
        // Spans not looked at yet this generation: sweep lazily, take the first with room; after
        // `REFILL_SWEEP_BUDGET` swept without room, or `REFILL_VISIT_BUDGET` looked at (most of
        // them swept by the walk already, and full: it pushes the others to `partial`), a fresh
        // span instead (Go's mcentral tries at most 100): the refill runs under the allocator's
        // guard, and a stop waits for it. Visiting the whole prefix at once took 65-170 µs on the
        // host (800 spans) with a stop waiting. Only with no fresh page left does a refill look at
        // every span: then it must, or it would report a full heap that a sweep would empty.
        let (mut swept, mut visited) = (0, 0);
        loop {
            while list.unswept > 0 && swept < REFILL_SWEEP_BUDGET && visited < REFILL_VISIT_BUDGET {
                list.unswept -= 1;
                visited += 1;
                let sp = list.spans[list.unswept];
                let span = self.span(sp);
                // An owned span is swept already, and handed back only once full.
                if !span.owned.load(Ordering::Relaxed) && span.try_claim_sweep(sg) {
                    swept += 1;
                    let _sweeping = InState::<P>::enter(State::Sweep);
                    let r = self.sweep_claimed(sp, false);
                    self.in_use.fetch_sub(r.bytes_freed, Ordering::Relaxed);
                    span.finish_sweep(sg);
                }
                // Not swept: the sweep walk (`sweep_chunk`) holds it and pushes it to `partial` if
                // it has room.
                if self.try_take(sp, sg) {
                    return Some(sp);
                }
            }
            // No span with room: a fresh one (swept for `sg`, so behind the walk).
            if let Some((sp, _, _)) = self.new_span(1, SPAN_SMALL, class, false, false) {
                self.span(sp).owned.store(true, Ordering::Relaxed);
                // Ordering: Relaxed; `class_pos` is only used under the class lock.
                self.span(sp).class_pos.store(list.spans.len() as u32, Ordering::Relaxed);
                list.spans.push(sp);
                return Some(sp);
            }
            // No page left: the rest of the list, then the spans the walk freed room in meanwhile.
            if list.unswept == 0 {
                while let Some(sp) = list.partial.pop() {
                    if self.try_take(sp, sg) {
                        return Some(sp);
                    }
                }
                return None;
            }
            (swept, visited) = (0, 0);
        }
    }

    /// Take span `sp` for a cache if it is swept for `sg`, unowned and has room. Called under its
    /// class lock, so no other refill races for it, and an unowned span is allocated from by
    /// nobody: its free bits cannot change between `has_free` and the claim.
    fn try_take(&self, sp: u32, sg: u32) -> bool {
        let span = self.span(sp);
        // Ordering: Acquire (in `is_swept`, and on the claim) pairs with the Release of
        // `finish_sweep` and of the previous owner letting go, so the alloc bits read are theirs.
        !span.owned.load(Ordering::Relaxed)
            && span.is_swept(sg)
            && span.has_free()
            && span.owned.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Allocate a large span of `npages` holding one object.
    fn alloc_large(&self, npages: usize, pinned: bool, noscan: bool) -> Option<(u32, usize, usize)> {
        let (sp, _, base) = self.new_span(npages, SPAN_LARGE, 0, pinned, noscan)?;
        let won = self.span(sp).alloc.set(0);
        debug_assert!(won);
        Some((sp, 0, base))
    }

    /// Take pages and publish span metadata for them.
    fn new_span(
        &self,
        npages: usize,
        kind: u8,
        class: usize,
        pinned: bool,
        noscan: bool,
    ) -> Option<(u32, usize, usize)> {
        let first =
            if pinned { self.pages.lock().alloc_last(npages)? } else { self.pages.lock().alloc(npages)? } as u32;
        let s = self.span(first);
        let (elem, nelems) = if kind == SPAN_SMALL {
            (CLASS_SIZES[class], HEAP_PAGE_SIZE / CLASS_SIZES[class])
        } else {
            (npages * HEAP_PAGE_SIZE, 1)
        };
        s.class.store(class as u8, Ordering::Relaxed);
        s.npages.store(npages as u32, Ordering::Relaxed);
        s.elem_size.store(elem, Ordering::Relaxed);
        s.nelems.store(nelems as u32, Ordering::Relaxed);
        let div_mul = if kind == SPAN_SMALL { u32::MAX / elem as u32 + 1 } else { 0 };
        s.div_mul.store(div_mul, Ordering::Relaxed);
        s.pinned.store(pinned, Ordering::Relaxed);
        s.noscan.store(noscan, Ordering::Relaxed);
        s.owned.store(false, Ordering::Relaxed);
        s.alloc.clear();
        s.mark.clear();
        s.check.clear();
        // Nothing in a new span was reachable at the last mark start.
        s.start.clear();
        s.existed.clear();
        // A new span is swept for the current generation (nothing in it to free).
        s.sweepgen.store(self.sweepgen(), Ordering::Relaxed);
        // Ordering: Release publishes the fields above to `find_object`'s Acquire loads.
        s.state.store(kind, Ordering::Release);
        for p in first as usize..first as usize + npages {
            self.page_span[p].store(first, Ordering::Release);
        }
        Some((first, 0, self.span_base(first)))
    }

    /// Return a span's pages, poisoned. The caller owns the span exclusively.
    fn free_span(&self, sp: u32) {
        let s = self.span(sp);
        let npages = s.npages.load(Ordering::Relaxed) as usize;
        if s.state.load(Ordering::Relaxed) == SPAN_SMALL {
            let mut list = self.classes[s.class.load(Ordering::Relaxed) as usize].lock();
            // Rolling first drops `partial` entries of older generations, which might name this
            // span (see `ClassList`); the sweeper frees only in the current generation.
            list.roll(self.sweepgen());
            let i = s.class_pos.load(Ordering::Relaxed) as usize;
            assert_eq!(list.spans.get(i), Some(&sp), "small span {sp} not at its place in its class list");
            list.remove(i, |moved, at| self.span(moved).class_pos.store(at as u32, Ordering::Relaxed));
        }
        for p in sp as usize..sp as usize + npages {
            self.page_span[p].store(self.npages as u32, Ordering::Release);
        }
        s.state.store(SPAN_FREE, Ordering::Release);
        if self.poisons() {
            // SAFETY: the span's memory is ours (no allocated object remains in it).
            unsafe { core::ptr::write_bytes(self.ptr(self.span_base(sp)), POISON, npages * HEAP_PAGE_SIZE) };
        }
        self.pages.lock().free(sp as usize, npages);
    }

    /// Start a new sweep generation (mark termination, world stopped): every span becomes
    /// "needs sweeping" and no core owns a span any more.
    pub(crate) fn begin_sweep_generation(&self, cores: impl Iterator<Item = &'static GcCore>) {
        for core in cores {
            // SAFETY: the world is stopped (caller's contract), so no core uses its cache.
            unsafe { self.release_cache(core, false) };
        }
        self.sweepgen.fetch_add(2, Ordering::Relaxed);
        // The world is stopped: no sweeper is between its claim and its chunk.
        self.sweep_next.store(0, Ordering::Relaxed);
    }

    /// Let go of every span `core` caches (each core does this for itself during the mark, at
    /// the flush handshake, so that mark termination releases only what was cached since). With
    /// `offer`, a span with room goes on its class's `partial` list, where refills look first
    /// (within a generation a refill's walk has passed it).
    ///
    /// # Safety
    /// The caller is `core` with preemption disabled, or the world is stopped.
    pub(crate) unsafe fn release_cache(&self, core: &GcCore, offer: bool) {
        // SAFETY: the caller's contract (the cache's ownership rule).
        let cache = unsafe { core.cache_mut() };
        let mut classes = core.cached.swap(0, Ordering::Relaxed);
        while classes != 0 {
            let e = &mut cache[classes.trailing_zeros() as usize];
            classes &= classes - 1;
            if e.span == NO_SPAN {
                continue;
            }
            let span = self.span(e.span);
            // The free objects it counted as in use when it took the span.
            self.in_use.fetch_sub(span.free_count() * span.elem_size(), Ordering::Relaxed);
            self.live.fetch_sub(span.free_count() * span.elem_size(), Ordering::Relaxed);
            // Ordering: Release hands the span (its alloc bits) to whoever claims it next
            // (`try_take`'s Acquire), as when a full span is let go.
            span.owned.store(false, Ordering::Release);
            if offer && span.has_free() {
                let mut list = self.classes[span.class.load(Ordering::Relaxed) as usize].lock();
                list.roll(self.sweepgen());
                list.partial.push(e.span);
            }
            *e = AllocCache::EMPTY;
        }
    }

    /// Sweep the next chunk of [`SWEEP_CHUNK_PAGES`] pages of this generation's walk, adding to
    /// `total`; false once the walk has handed out every page. Any number of sweepers may call it
    /// at once (the collector, allocators helping it): each chunk goes to one of them, and a span
    /// to the one whose chunk holds its first page. Each call is a bounded stretch, so a caller
    /// keeps preemption disabled per call only (sweeping takes span and class locks).
    pub(crate) fn sweep_chunk(&self, total: &mut SweepResult) -> bool {
        // Ordering: SeqCst with the load in `sweeps_settled`: once the walk is handed out, a
        // settled check that sees no sweeper knows every chunk is done.
        self.sweepers.fetch_add(1, Ordering::SeqCst);
        let start = self.sweep_next.fetch_add(SWEEP_CHUNK_PAGES, Ordering::Relaxed);
        if start >= self.npages {
            self.sweepers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let end = (start + SWEEP_CHUNK_PAGES).min(self.npages);
        let sg = self.sweepgen();
        // Pages inside a span (not its first) hold no span: `state` reads free and they are
        // passed over.
        let mut sp = start;
        while sp < end {
            let span = &self.spans[sp];
            let state = span.state.load(Ordering::Acquire);
            if state != SPAN_FREE && span.try_claim_sweep(sg) {
                let npages = span.npages.load(Ordering::Relaxed) as usize;
                let r = self.sweep_claimed(sp as u32, true);
                total.bytes_freed += r.bytes_freed;
                total.objects_freed += r.objects_freed;
                self.in_use.fetch_sub(r.bytes_freed, Ordering::Relaxed);
                span.finish_sweep(sg);
                // A refill's walk may have passed this span while we held it: offer it. After
                // `finish_sweep`, or a refill popping it would find it unswept and drop it.
                if state == SPAN_SMALL && !r.span_freed && span.has_free() {
                    let mut list = self.classes[span.class.load(Ordering::Relaxed) as usize].lock();
                    list.roll(sg);
                    list.partial.push(sp as u32);
                }
                sp += npages.max(1);
            } else {
                sp += 1;
            }
        }
        self.sweepers.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// No chunk of the walk is being swept and no span is being swept by an allocator's refill
    /// (one span at a time, with preemption disabled): after [`Heap::sweep_chunk`] returned
    /// false, every span is swept.
    pub(crate) fn sweeps_settled(&self) -> bool {
        let sg = self.sweepgen();
        // Ordering: SeqCst, see `sweep_chunk`.
        self.sweepers.load(Ordering::SeqCst) == 0
            && self.spans.iter().all(|s| {
                s.state.load(Ordering::Acquire) == SPAN_FREE || s.sweepgen.load(Ordering::Acquire) != sg.wrapping_sub(1)
            })
    }

    /// Sweep a claimed span: free unmarked objects (poisoning them), clear mark bits; with
    /// `may_free`, return an empty unpinned span's pages. The work is a few operations per bitmap
    /// word plus, with poisoning on, writing the freed bytes: one `write_bytes` per run of
    /// neighbouring dead objects, and none at all for a span that is freed whole (`free_span`
    /// poisons it in one go).
    #[inline(never)]
    fn sweep_claimed(&self, sp: u32, may_free: bool) -> SweepResult {
        let s = self.span(sp);
        self.spans_swept.fetch_add(1, Ordering::Relaxed);
        let elem = s.elem_size();
        let pinned = s.pinned.load(Ordering::Relaxed);
        let words = s.words();
        let mut dead = [0u64; BITMAP_WORDS];
        let (mut live, mut freed) = (0, 0);
        for (w, dead) in dead.iter_mut().enumerate().take(words) {
            let alloc = s.alloc.word(w);
            *dead = if pinned { 0 } else { alloc & !s.mark.word(w) };
            live += (alloc & !*dead).count_ones() as usize;
            freed += dead.count_ones() as usize;
        }
        let r = SweepResult { bytes_freed: freed * elem, objects_freed: freed, span_freed: false };
        let free_whole = may_free && live == 0 && !s.owned.load(Ordering::Relaxed);
        let poison = self.poisons() && !free_whole;
        for (w, &dead) in dead.iter().enumerate().take(words) {
            if dead != 0 {
                s.alloc.store_word(w, s.alloc.word(w) & !dead);
                if poison {
                    self.poison_runs(sp, elem, w, dead);
                }
            }
            s.mark.store_word(w, 0);
        }
        if free_whole {
            self.free_span(sp);
            return SweepResult { span_freed: true, ..r };
        }
        r
    }

    /// Poison the objects of bitmap word `w` of span `sp` whose bits are set in `dead`, one
    /// `write_bytes` per run of neighbours.
    fn poison_runs(&self, sp: u32, elem: usize, w: usize, mut dead: u64) {
        while dead != 0 {
            let first = dead.trailing_zeros();
            // Length of the run of ones starting at `first`.
            let run = (!(dead >> first)).trailing_zeros();
            let base = self.span_base(sp) + (w * 64 + first as usize) * elem;
            // SAFETY: these objects are unreachable (unmarked after a complete mark), so nothing
            // reads them; the span is claimed by this sweeper.
            unsafe { core::ptr::write_bytes(self.ptr(base), POISON, run as usize * elem) };
            dead = if first + run >= 64 { 0 } else { dead & (u64::MAX << (first + run)) };
        }
    }

    /// Check that every byte outside allocated objects is poisoned. Call with the world stopped
    /// and sweeping finished. Returns the first unpoisoned free address.
    pub fn check_poisoned(&self) -> Result<(), usize> {
        let pages = self.pages.lock();
        let check = |addr: usize, len: usize| -> Result<(), usize> {
            // SAFETY: free memory of the heap; the world is stopped so nobody allocates it.
            let bytes = unsafe { core::slice::from_raw_parts(self.ptr(addr), len) };
            // Word at a time (objects and pages are 16-byte aligned and sized); the byte search
            // only runs to name the first bad byte.
            // SAFETY: any bit pattern is a valid u64.
            let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
            let pattern = u64::from_ne_bytes([POISON; 8]);
            if head.is_empty() && tail.is_empty() && words.iter().all(|&w| w == pattern) {
                return Ok(());
            }
            match bytes.iter().position(|&b| b != POISON) {
                Some(off) => Err(addr + off),
                None => Ok(()),
            }
        };
        let mut p = 0;
        while p < self.npages {
            if pages.page_is_free(p) {
                check(self.base_addr + p * HEAP_PAGE_SIZE, HEAP_PAGE_SIZE)?;
                p += 1;
                continue;
            }
            let s = &self.spans[p];
            let npages = s.npages.load(Ordering::Relaxed) as usize;
            if s.state.load(Ordering::Acquire) == SPAN_SMALL {
                for i in 0..s.nelems() {
                    if !s.alloc.get(i) {
                        check(self.span_base(p as u32) + i * s.elem_size(), s.elem_size())?;
                    }
                }
            }
            p += npages.max(1);
        }
        Ok(())
    }

    /// Visit the metadata of every in-use span (world stopped).
    pub(crate) fn for_each_span_meta(&self, mut f: impl FnMut(&Span)) {
        let mut p = 0;
        while p < self.npages {
            let s = &self.spans[p];
            if s.state.load(Ordering::Acquire) == SPAN_FREE {
                p += 1;
                continue;
            }
            f(s);
            p += (s.npages.load(Ordering::Relaxed) as usize).max(1);
        }
    }

    /// Spans for a dashboard: (start address, pages, objects allocated, objects marked, kind).
    pub fn for_each_span(&self, mut f: impl FnMut(SpanInfo)) {
        let mut p = 0;
        while p < self.npages {
            let s = &self.spans[p];
            let state = s.state.load(Ordering::Acquire);
            if state == SPAN_FREE {
                p += 1;
                continue;
            }
            let npages = (s.npages.load(Ordering::Relaxed) as usize).max(1);
            f(SpanInfo {
                start: self.span_base(p as u32),
                pages: npages,
                objects: s.nelems(),
                allocated: s.alloc.count(),
                marked: s.mark.count(),
                large: state == SPAN_LARGE,
                pinned: s.pinned.load(Ordering::Relaxed),
            });
            p += npages;
        }
    }
}

/// A span as a dashboard sees it.
#[derive(Clone, Copy, Debug)]
pub struct SpanInfo {
    pub start: usize,
    pub pages: usize,
    pub objects: usize,
    pub allocated: usize,
    pub marked: usize,
    pub large: bool,
    pub pinned: bool,
}

#[cfg(test)]
mod tests {
    use super::ClassList;

    /// Removal anywhere keeps the spans not yet walked (`spans[..unswept]`) in the prefix, loses
    /// no other span, and reports every move, so positions kept from `moved` stay right.
    #[test]
    fn class_list_removal_keeps_the_unswept_prefix_and_reports_moves() {
        for len in 1..7usize {
            for unswept in 0..=len {
                for i in 0..len {
                    let mut list = ClassList { spans: (0..len as u32).collect(), unswept, partial: Vec::new(), gen: 2 };
                    let mut pos: Vec<usize> = (0..len).collect();
                    let removed = list.spans[i];
                    list.remove(i, |sp, at| pos[sp as usize] = at);
                    assert_eq!(list.spans.len(), len - 1);
                    assert!(!list.spans.contains(&removed));
                    let mut prefix: Vec<u32> = list.spans[..list.unswept].to_vec();
                    prefix.sort();
                    let expected: Vec<u32> = (0..unswept as u32).filter(|&s| s != removed).collect();
                    assert_eq!(prefix, expected, "len {len} unswept {unswept} remove {i}");
                    for (at, &sp) in list.spans.iter().enumerate() {
                        assert_eq!(pos[sp as usize], at, "len {len} unswept {unswept} remove {i}: span {sp}");
                    }
                }
            }
        }
    }
}
