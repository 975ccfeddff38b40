//! Spans: runs of pages holding objects of one size, with per-object bitmaps.
//!
//! A span's metadata lives at the index of its first page. Bitmaps, one bit per object:
//! - `alloc`: the object is allocated (set by the owning core's allocator, cleared by sweep);
//! - `mark`: the object is grey or black this cycle (set by shading, cleared by sweep);
//! - `check`: the verifier's own reachability bits (like Go's checkmarks);
//! - `start`, `existed`: the verifier's mark-start snapshot (reachable then, allocated then).
//!
//! Sweep state follows Go's `sweepgen`: with heap generation `sg`, a span at `sg - 2` needs
//! sweeping, `sg - 1` is being swept, `sg` is swept and usable. Allocation only takes swept spans,
//! so the sweeper and the allocator never touch the same span's bitmaps at once.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::sizeclass::MAX_OBJECTS_PER_SPAN;

pub(crate) const BITMAP_WORDS: usize = MAX_OBJECTS_PER_SPAN / 64;

/// Span kinds, stored in `Span::state` (only meaningful at a span's first page).
pub(crate) const SPAN_FREE: u8 = 0;
pub(crate) const SPAN_SMALL: u8 = 1;
pub(crate) const SPAN_LARGE: u8 = 2;

/// One bit per object; a cache line of its own (see `Span`).
#[repr(C, align(64))]
pub(crate) struct Bitmap([AtomicU64; BITMAP_WORDS]);

impl Bitmap {
    const fn new() -> Self {
        Bitmap([const { AtomicU64::new(0) }; BITMAP_WORDS])
    }

    // Ordering: Relaxed everywhere. Bitmap words are read and written under one of three
    // disciplines, none of which needs the bitmap itself to order other memory: (1) the owner
    // core's allocator, (2) markers setting mark bits with RMWs (an RMW always sees the latest
    // value, so two shaders never both "win"), (3) the sweeper, which holds the span exclusively
    // through `sweepgen` (an Acquire/Release handshake, see `Span::try_claim_sweep`).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Set bit `i`; true if it was clear (this caller shaded it).
    #[inline]
    pub(crate) fn set(&self, i: usize) -> bool {
        let bit = 1 << (i % 64);
        self.0[i / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Set the bits `bits` of word `w` (of a bitmap this caller indexed itself, `w` in range); true
    /// if they were all clear (this caller set them).
    #[inline(always)]
    pub(crate) fn set_in_word(&self, w: usize, bits: u64) -> bool {
        debug_assert!(w < BITMAP_WORDS);
        // SAFETY: `w < BITMAP_WORDS` is the caller's bound (masked by `HeapView::find_unmarked`).
        unsafe { self.0.get_unchecked(w) }.fetch_or(bits, Ordering::Relaxed) & bits == 0
    }

    /// Set bit `bit` of word `w` with a plain load and store, no RMW: only for a bitmap with one
    /// writer at the time, which an owned span's `alloc` is (discipline 1 below: no one else
    /// writes the alloc bits of a span a core's cache owns; concurrent readers see the word
    /// before or after, both valid).
    #[inline(always)]
    pub(crate) fn set_single_writer(&self, w: usize, bit: u32) {
        let word = &self.0[w];
        word.store(word.load(Ordering::Relaxed) | 1 << bit, Ordering::Relaxed);
    }

    pub(crate) fn word(&self, w: usize) -> u64 {
        self.0[w].load(Ordering::Relaxed)
    }

    pub(crate) fn store_word(&self, w: usize, v: u64) {
        self.0[w].store(v, Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        for w in &self.0 {
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Make this bitmap a copy of `other` (world stopped: no bit of either changes meanwhile).
    pub(crate) fn copy_from(&self, other: &Bitmap) {
        for (w, o) in self.0.iter().zip(&other.0) {
            w.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.load(Ordering::Relaxed).count_ones() as usize).sum()
    }
}

/// Span metadata. All fields are atomics because markers look spans up concurrently with
/// allocators creating them; a span is published by a Release store of `state` and looked up
/// with an Acquire load, so its other fields are visible once `state` says it is in use.
///
/// Layout: the fields fill the first cache line and each bitmap has one of its own, so that a
/// lookup touches the head and one word of a bitmap, and the owner setting alloc bits, markers
/// setting mark bits and the users of neighbouring spans never write the same line (no false
/// sharing between cores).
#[repr(C, align(64))]
pub(crate) struct Span {
    pub(crate) state: AtomicU8,
    /// Size class, for small spans.
    pub(crate) class: AtomicU8,
    pub(crate) pinned: AtomicBool,
    /// Objects hold no pointers and have no header (pinned raw buffers).
    pub(crate) noscan: AtomicBool,
    /// Claimed by a core's allocation cache.
    pub(crate) owned: AtomicBool,
    /// Index in its class's span list (small spans; read and written under the class lock).
    pub(crate) class_pos: AtomicU32,
    pub(crate) npages: AtomicU32,
    pub(crate) nelems: AtomicU32,
    /// `u32::MAX / elem_size + 1` for small spans, so that `(offset * div_mul) >> 32` is
    /// `offset / elem_size` for every offset in the span (Go's `divMul`); 0 for large spans.
    pub(crate) div_mul: AtomicU32,
    pub(crate) sweepgen: AtomicU32,
    pub(crate) elem_size: AtomicUsize,
    pub(crate) alloc: Bitmap,
    pub(crate) mark: Bitmap,
    pub(crate) check: Bitmap,
    /// Reachable at the last mark start (the verifier's snapshot, `verify::snapshot`).
    pub(crate) start: Bitmap,
    /// Allocated at the last mark start (the same snapshot).
    pub(crate) existed: Bitmap,
}

static_assertions::const_assert_eq!(core::mem::size_of::<Span>(), 6 * 64);
static_assertions::const_assert_eq!(core::mem::offset_of!(Span, alloc), 64);

impl Span {
    pub(crate) const fn new() -> Self {
        Span {
            state: AtomicU8::new(SPAN_FREE),
            class: AtomicU8::new(0),
            pinned: AtomicBool::new(false),
            noscan: AtomicBool::new(false),
            owned: AtomicBool::new(false),
            class_pos: AtomicU32::new(0),
            npages: AtomicU32::new(0),
            nelems: AtomicU32::new(0),
            div_mul: AtomicU32::new(0),
            sweepgen: AtomicU32::new(0),
            elem_size: AtomicUsize::new(0),
            alloc: Bitmap::new(),
            mark: Bitmap::new(),
            check: Bitmap::new(),
            start: Bitmap::new(),
            existed: Bitmap::new(),
        }
    }

    #[inline]
    pub(crate) fn elem_size(&self) -> usize {
        self.elem_size.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn nelems(&self) -> usize {
        self.nelems.load(Ordering::Relaxed) as usize
    }

    /// Index of the object at byte `offset` of the span (`offset < npages * HEAP_PAGE_SIZE`).
    #[inline(always)]
    pub(crate) fn index_of(&self, offset: usize) -> usize {
        ((offset as u64 * u64::from(self.div_mul.load(Ordering::Relaxed))) >> 32) as usize
    }

    /// Bitmap words that hold objects.
    #[inline]
    pub(crate) fn words(&self) -> usize {
        self.nelems().div_ceil(64)
    }

    /// Free objects of bitmap word `w`, as bits.
    #[inline]
    pub(crate) fn free_bits(&self, w: usize) -> u64 {
        !self.alloc.word(w) & self.valid_mask(w)
    }

    /// Free objects in the span.
    pub(crate) fn free_count(&self) -> usize {
        (0..self.words()).map(|w| self.free_bits(w).count_ones() as usize).sum()
    }

    /// Valid-object mask for bitmap word `w`.
    pub(crate) fn valid_mask(&self, w: usize) -> u64 {
        let n = self.nelems();
        let lo = w * 64;
        if n >= lo + 64 {
            u64::MAX
        } else if n <= lo {
            0
        } else {
            (1u64 << (n - lo)) - 1
        }
    }

    pub(crate) fn has_free(&self) -> bool {
        (0..self.words()).any(|w| self.free_bits(w) != 0)
    }

    /// Claim the span for sweeping in generation `sg`. Acquire on success pairs with the Release
    /// in `finish_sweep` of the previous owner and with the STW handshake, so the sweeper sees
    /// every allocation and mark made before.
    pub(crate) fn try_claim_sweep(&self, sg: u32) -> bool {
        self.sweepgen
            .compare_exchange(sg.wrapping_sub(2), sg.wrapping_sub(1), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Publish the swept span (Release: an allocator that Acquire-loads `sweepgen == sg` sees the
    /// cleared bitmaps and the poisoned memory).
    pub(crate) fn finish_sweep(&self, sg: u32) {
        self.sweepgen.store(sg, Ordering::Release);
    }

    pub(crate) fn is_swept(&self, sg: u32) -> bool {
        self.sweepgen.load(Ordering::Acquire) == sg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::{CLASS_SIZES, HEAP_PAGE_SIZE};

    /// The multiply-shift index is the division at every byte of a span, for every class.
    #[test]
    fn index_by_multiplication_is_division() {
        let s = Span::new();
        for &elem in &CLASS_SIZES {
            s.div_mul.store(u32::MAX / elem as u32 + 1, Ordering::Relaxed);
            for offset in 0..HEAP_PAGE_SIZE {
                assert_eq!(s.index_of(offset), offset / elem, "class {elem}, offset {offset}");
            }
        }
    }
}
