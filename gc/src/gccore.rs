//! [`GcCore`], the collector's per-core state, and the constants that locate its parts
//! (re-exported as `platform::GcCore`, `platform::GCCORE_WBBUF_OFFSET` and at the crate root).

use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU32;

use crate::heap::AllocCache;
use crate::mark::LocalWork;
use crate::sizeclass::NUM_CLASSES;
use crate::stats::CoreStats;
use crate::wbbuf::WbBuf;

/// Per-core collector state: the write-barrier buffer, the mark work buffer, the allocation cache
/// and counters. The kernel keeps one in each core's per-core block, at a fixed offset from the
/// core's TPIDR_EL1 (its `Platform::current_core` is that address, no core index involved).
///
/// Ownership rule: `wbbuf`, `work` and `cache` are touched only by their own core with preemption
/// disabled (or, for `wbbuf`, inside one of the kernel's restartable barrier windows, which no
/// safe point splits: an interrupted window restarts from its first instruction), or by any core
/// while the world is stopped. That is what makes the `UnsafeCell`s sound.
pub struct GcCore {
    pub(crate) wbbuf: UnsafeCell<WbBuf>,
    pub(crate) work: UnsafeCell<LocalWork>,
    /// Per size class, the span this core allocates from and its free objects.
    pub(crate) cache: UnsafeCell<[AllocCache; NUM_CLASSES]>,
    /// Classes whose `cache` entry may hold a span (a set bit may be stale; a clear one is not):
    /// releasing the cache visits only these. Written like `cache`.
    pub(crate) cached: AtomicU32,
    /// A large object's payload the allocation left to be zeroed after its guard (span, length):
    /// written and taken by this core with preemption disabled.
    pub(crate) delayed_zero: UnsafeCell<Option<(u32, usize)>>,
    pub(crate) stats: CoreStats,
}

// SAFETY: the `UnsafeCell` fields follow the ownership rule in the type's doc (own core with
// preemption off, or anyone during stop-the-world, whose handshake orders the accesses); the rest
// are atomics.
unsafe impl Sync for GcCore {}

/// Byte offset of the [`WbBuf`] in a [`GcCore`], for assembly (the kernel's barrier window adds it
/// to its per-core GC block's offset; `WBBUF_*_OFFSET` locate the cursors and entries in it).
pub const GCCORE_WBBUF_OFFSET: usize = core::mem::offset_of!(GcCore, wbbuf);

/// Marks an empty allocation-cache entry.
pub(crate) const NO_SPAN: u32 = u32::MAX;

impl GcCore {
    /// A core with an empty default-sized wbBuf, no work, no cached spans.
    pub const fn new() -> Self {
        GcCore {
            wbbuf: UnsafeCell::new(WbBuf::new()),
            work: UnsafeCell::new(LocalWork::new()),
            cache: UnsafeCell::new([AllocCache::EMPTY; NUM_CLASSES]),
            cached: AtomicU32::new(0),
            delayed_zero: UnsafeCell::new(None),
            stats: CoreStats::new(),
        }
    }

    /// The core's wbBuf.
    ///
    /// # Safety
    /// The caller is this core with preemption disabled, or the world is stopped; no other
    /// reference from `wbbuf`/`wbbuf_mut` is live.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn wbbuf_mut(&self) -> &mut WbBuf {
        // SAFETY: exclusivity is the caller's contract (ownership rule above).
        unsafe { &mut *self.wbbuf.get() }
    }

    /// The core's local mark work buffer. Same contract as [`GcCore::wbbuf_mut`].
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn work_mut(&self) -> &mut LocalWork {
        // SAFETY: exclusivity is the caller's contract (ownership rule above).
        unsafe { &mut *self.work.get() }
    }

    /// The core's allocation cache. Same contract as [`GcCore::wbbuf_mut`].
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn cache_mut(&self) -> &mut [AllocCache; NUM_CLASSES] {
        // SAFETY: exclusivity is the caller's contract (ownership rule above).
        unsafe { &mut *self.cache.get() }
    }

    /// This core's counters.
    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }
}

impl Default for GcCore {
    fn default() -> Self {
        Self::new()
    }
}
