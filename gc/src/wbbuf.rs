//! The per-core write-barrier buffer (Go's `wbBuf`, runtime/mwbbuf.go).
//!
//! The barrier records pointers here instead of shading them: the fast path is "take two slots,
//! write old and new, bump `next`". When the buffer is full, `get1`/`get2` flush it *first*
//! (the flush greys every recorded pointer onto the core's mark work buffer and resets the
//! buffer), so the caller always gets room.
//!
//! Invariants:
//! - `next <= end <= WBBUF_MAX_ENTRIES`; entries `[0, next)` hold recorded pointers.
//! - The buffer is a per-core resource: the caller of `get1`/`get2` must not be preempted (nor
//!   migrate) while it uses the returned slots, and there must be **no preemption points between
//!   the buffer put and the write to memory**: a GC phase change in between could miss the write.
//! - `get1`/`get2` and the flush must not themselves execute write barriers (they would corrupt
//!   the buffer they are filling).
//! - **A put writes the entries, then bumps `next`; the pointer store comes after both.** The
//!   kernel's restartable barrier window (kernel/src/gc/barrier.rs) is assembly that does exactly
//!   that at [`WBBUF_NEXT_OFFSET`], [`WBBUF_END_OFFSET`] and [`WBBUF_ENTRIES_OFFSET`]: an
//!   interrupt before the bump rewinds it to rewrite the same free entries, one after the bump and
//!   before the store only records the pair twice (harmless: a second shade of the same object).
//!   `get1`/`get2` bump first and return the entries to write, which is fine only because their
//!   callers hold the preemption counter across the whole sequence.
//! - An **always-full** buffer ([`WbBuf::set_always_full`], `end == 0`) sends every barrier of a
//!   mode that does not buffer (`direct`, `checked`) to the slow path; such a buffer stays empty
//!   and `get1`/`get2` must not be called on it.

/// Entries (pointers) in a buffer unless configured otherwise (Go uses 512 too).
pub const WBBUF_DEFAULT_ENTRIES: usize = 512;
/// Largest configurable size, in entries (the storage is always this big).
pub const WBBUF_MAX_ENTRIES: usize = 4096;
/// Most entries a single barrier takes (`get2`), and the smallest configurable size.
pub const WBBUF_MIN_ENTRIES: usize = 2;

/// A fixed buffer of recorded pointers with `next`/`end` cursors (indices into `entries`).
///
/// `repr(C)`, `next` then `end` then `entries`: the kernel's barrier assembly loads both cursors
/// with one `ldp` and addresses the entries from the same base.
#[repr(C)]
pub struct WbBuf {
    next: usize,
    end: usize,
    entries: [usize; WBBUF_MAX_ENTRIES],
}

/// Byte offset of `next` (an entry index, `usize`) in a [`WbBuf`], for assembly.
pub const WBBUF_NEXT_OFFSET: usize = core::mem::offset_of!(WbBuf, next);
/// Byte offset of `end` (an entry index, `usize`) in a [`WbBuf`], for assembly.
pub const WBBUF_END_OFFSET: usize = core::mem::offset_of!(WbBuf, end);
/// Byte offset of the first entry in a [`WbBuf`], for assembly.
pub const WBBUF_ENTRIES_OFFSET: usize = core::mem::offset_of!(WbBuf, entries);
const _: () = assert!(
    WBBUF_END_OFFSET == WBBUF_NEXT_OFFSET + 8 && WBBUF_ENTRIES_OFFSET == WBBUF_END_OFFSET + 8,
    "the barrier assembly loads next and end with one ldp and finds the entries right after"
);

impl WbBuf {
    /// An empty buffer of [`WBBUF_DEFAULT_ENTRIES`].
    pub const fn new() -> Self {
        WbBuf { next: 0, end: WBBUF_DEFAULT_ENTRIES, entries: [0; WBBUF_MAX_ENTRIES] }
    }

    /// Clamp a requested size to `[WBBUF_MIN_ENTRIES, WBBUF_MAX_ENTRIES]`.
    pub const fn clamp_entries(entries: usize) -> usize {
        if entries < WBBUF_MIN_ENTRIES {
            WBBUF_MIN_ENTRIES
        } else if entries > WBBUF_MAX_ENTRIES {
            WBBUF_MAX_ENTRIES
        } else {
            entries
        }
    }

    /// Set the size (clamped) and empty the buffer. Discards recorded entries: call only when the
    /// buffer is empty or its contents are no longer needed (between cycles, after a flush).
    pub fn set_entries(&mut self, entries: usize) {
        self.end = Self::clamp_entries(entries);
        self.next = 0;
    }

    /// Make the buffer empty with no room at all (`end == 0`): every barrier that looks for room
    /// takes its slow path. For the modes that do not buffer (`direct`, `checked`): the kernel's
    /// restartable window then never records, and their shading runs outside it.
    pub fn set_always_full(&mut self) {
        self.end = 0;
        self.next = 0;
    }

    /// True if the buffer was made [`WbBuf::set_always_full`].
    pub fn is_always_full(&self) -> bool {
        self.end == 0
    }

    /// Configured size in entries.
    pub fn capacity(&self) -> usize {
        self.end
    }

    /// Empty the buffer (Go resets both `next` and `end`; our `end` is the configured size, which
    /// `reset` keeps).
    #[inline]
    pub fn reset(&mut self) {
        self.next = 0;
    }

    /// Drop the recorded pointers without flushing them (used when barriers are on only for
    /// `checked` reporting and no cycle is marking). Keeps `end`.
    #[inline]
    pub fn discard(&mut self) {
        self.next = 0;
    }

    /// True if no pointer is recorded.
    #[inline]
    pub fn empty(&self) -> bool {
        self.next == 0
    }

    /// The recorded pointers, oldest first.
    #[inline]
    pub fn recorded(&self) -> &[usize] {
        debug_assert!(self.next <= WBBUF_MAX_ENTRIES);
        // SAFETY: `next <= end <= WBBUF_MAX_ENTRIES` (the module invariant: `set_entries` clamps
        // `end`, `get1`/`get2` never move `next` past it), the length of `entries`.
        unsafe { self.entries.get_unchecked(..self.next) }
    }

    /// Room for one pointer; calls `flush` first if the buffer is full. `flush` must leave room
    /// (normally by flushing and calling [`WbBuf::reset`]).
    #[inline(always)]
    pub fn get1(&mut self, flush: impl FnOnce(&mut WbBuf)) -> &mut usize {
        if self.next + 1 > self.end {
            flush(self);
            assert!(self.next < self.end, "wbBuf flush left no room");
        }
        let i = self.next;
        self.next = i + 1;
        &mut self.entries[i]
    }

    /// Room for two pointers (old, new); calls `flush` first if fewer than two are free.
    #[inline(always)]
    pub fn get2(&mut self, flush: impl FnOnce(&mut WbBuf)) -> &mut [usize; 2] {
        if self.next + 2 > self.end {
            flush(self);
            assert!(self.next + 2 <= self.end, "wbBuf flush left no room");
        }
        let i = self.next;
        self.next = i + 2;
        // `i + 2 <= end <= WBBUF_MAX_ENTRIES`, so the slice has exactly two elements.
        let pair: &mut [usize] = &mut self.entries[i..i + 2];
        pair.try_into().expect("two entries")
    }
}

impl Default for WbBuf {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flush that records what it saw and resets, like `wb_buf_flush1`.
    fn flushing(log: &mut Vec<Vec<usize>>) -> impl FnOnce(&mut WbBuf) + '_ {
        move |b| {
            log.push(b.recorded().to_vec());
            b.reset();
        }
    }

    #[test]
    fn get2_fills_exactly_then_flushes_before_the_next_put() {
        let mut b = WbBuf::new();
        b.set_entries(4);
        let mut log = Vec::new();
        *b.get2(flushing(&mut log)) = [1, 2];
        *b.get2(flushing(&mut log)) = [3, 4];
        assert!(log.is_empty(), "an exactly-full buffer is not flushed until the next put");
        assert_eq!(b.recorded(), &[1, 2, 3, 4]);
        *b.get2(flushing(&mut log)) = [5, 6];
        assert_eq!(log, vec![vec![1, 2, 3, 4]]);
        assert_eq!(b.recorded(), &[5, 6]);
    }

    #[test]
    fn get2_with_one_slot_left_flushes() {
        let mut b = WbBuf::new();
        b.set_entries(3);
        let mut log = Vec::new();
        *b.get2(flushing(&mut log)) = [1, 2];
        assert!(log.is_empty());
        *b.get2(flushing(&mut log)) = [3, 4];
        assert_eq!(log, vec![vec![1, 2]], "one free slot is not enough for a pair");
        assert_eq!(b.recorded(), &[3, 4]);
    }

    #[test]
    fn get1_uses_the_last_slot_without_flushing() {
        let mut b = WbBuf::new();
        b.set_entries(3);
        let mut log = Vec::new();
        *b.get2(flushing(&mut log)) = [1, 2];
        *b.get1(flushing(&mut log)) = 3;
        assert!(log.is_empty());
        *b.get1(flushing(&mut log)) = 4;
        assert_eq!(log, vec![vec![1, 2, 3]]);
        assert_eq!(b.recorded(), &[4]);
    }

    #[test]
    fn minimum_size_flushes_on_every_barrier_after_the_first() {
        let mut b = WbBuf::new();
        b.set_entries(0);
        assert_eq!(b.capacity(), WBBUF_MIN_ENTRIES);
        let mut log = Vec::new();
        for k in 0..5 {
            *b.get2(flushing(&mut log)) = [k, k + 100];
        }
        assert_eq!(log.len(), 4);
        assert_eq!(log[3], vec![3, 103]);
    }

    #[test]
    fn default_size_takes_256_pairs_before_flushing() {
        let mut b = WbBuf::new();
        let mut flushes = 0;
        for k in 0..256 {
            *b.get2(|b| {
                flushes += 1;
                b.reset()
            }) = [k, k];
        }
        assert_eq!(flushes, 0);
        assert_eq!(b.recorded().len(), WBBUF_DEFAULT_ENTRIES);
        *b.get2(|b| {
            flushes += 1;
            b.reset()
        }) = [0, 0];
        assert_eq!(flushes, 1);
    }

    #[test]
    fn reset_discard_empty() {
        let mut b = WbBuf::new();
        b.set_entries(8);
        assert!(b.empty());
        *b.get1(|_| unreachable!()) = 7;
        assert!(!b.empty());
        b.discard();
        assert!(b.empty());
        assert_eq!(b.capacity(), 8, "discard keeps end");
        *b.get2(|_| unreachable!()) = [1, 2];
        b.reset();
        assert!(b.empty());
        assert_eq!(b.capacity(), 8);
    }

    #[test]
    fn an_always_full_buffer_is_empty_and_has_no_room() {
        let mut b = WbBuf::new();
        b.set_always_full();
        assert!(b.empty() && b.is_always_full());
        assert_eq!(b.capacity(), 0);
        assert_eq!(b.recorded(), &[] as &[usize]);
        b.set_entries(4);
        assert!(!b.is_always_full());
        assert_eq!(b.capacity(), 4);
    }

    #[test]
    fn layout_is_what_the_barrier_assembly_assumes() {
        let b = WbBuf::new();
        let base = core::ptr::from_ref(&b).addr();
        assert_eq!(core::ptr::from_ref(&b.next).addr() - base, WBBUF_NEXT_OFFSET);
        assert_eq!(core::ptr::from_ref(&b.end).addr() - base, WBBUF_END_OFFSET);
        assert_eq!(b.entries.as_ptr().addr() - base, WBBUF_ENTRIES_OFFSET);
    }

    #[test]
    fn sizes_are_clamped() {
        let mut b = WbBuf::new();
        b.set_entries(1 << 20);
        assert_eq!(b.capacity(), WBBUF_MAX_ENTRIES);
        b.set_entries(1);
        assert_eq!(b.capacity(), WBBUF_MIN_ENTRIES);
    }

    #[test]
    #[should_panic(expected = "left no room")]
    fn a_flush_that_does_not_reset_is_caught() {
        let mut b = WbBuf::new();
        b.set_entries(2);
        *b.get2(|_| ()) = [1, 2];
        *b.get2(|_| ()) = [3, 4];
    }
}
