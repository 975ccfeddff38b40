//! Roots: global slots scanned precisely (the kernel's `.gcroots` section), ranges scanned
//! conservatively (task stacks and saved registers, supplied by the platform at safe points), and
//! the wbBuf contents (flushed at mark termination, see `barrier`).
//!
//! Stores into global root slots go through the write barrier like heap stores (the seeds'
//! "pointer assigned to a global"), so globals are scanned once per cycle, concurrently with the
//! mutators (a value overwritten before the scan reaches it was shaded by the deletion half),
//! and never again.

use core::sync::atomic::AtomicUsize;

use alloc::vec::Vec;

use crate::object::GcSlot;

/// The registry of precisely scanned global slots.
///
/// Its lock is a spin lock that checked-mode stores take with preemption disabled
/// ([`Roots::contains_slot`]): every other taker must disable preemption too (or run before the
/// scheduler starts, as `register` does at boot), or a task preempted holding it leaves such a
/// store on its core spinning forever.
pub struct Roots {
    sets: crate::sync::Mutex<Vec<&'static [AtomicUsize]>>,
}

impl Roots {
    pub(crate) const fn new() -> Self {
        Roots { sets: crate::sync::Mutex::new(Vec::new()) }
    }

    /// Register an array of global slots (e.g. the whole `.gcroots` section).
    pub fn register(&self, slots: &'static [AtomicUsize]) {
        self.sets.lock().push(slots);
    }

    /// Register one global slot.
    pub fn register_slot<T>(&self, slot: &'static GcSlot<T>) {
        self.register(core::slice::from_ref(slot.as_atomic()));
    }

    /// Register the slots between two linker symbols.
    ///
    /// # Safety
    /// `[start, end)` is an array of word-sized, word-aligned, zero-initialised `'static` slots
    /// written only through the write barrier (the `.gcroots` section).
    pub unsafe fn register_section(&self, start: *const AtomicUsize, end: *const AtomicUsize) {
        // SAFETY: `end` is derived from the same section as `start` (the caller's contract).
        let n = unsafe { end.offset_from(start) };
        let n = usize::try_from(n).expect("root section end before start");
        // SAFETY: per the caller's contract, `n` live, static, aligned atomic words.
        self.register(unsafe { core::slice::from_raw_parts(start, n) });
    }

    /// Whether `addr` is a registered root slot (checked mode).
    pub fn contains_slot(&self, addr: usize) -> bool {
        self.sets.lock().iter().any(|s| {
            let lo = s.as_ptr() as usize;
            addr >= lo && addr < lo + core::mem::size_of_val(*s)
        })
    }

    /// Number of registered slots.
    pub(crate) fn slot_count(&self) -> usize {
        self.sets.lock().iter().map(|s| s.len()).sum()
    }

    /// Visit the slots with flat indices `range` (in registration order).
    pub(crate) fn for_each_in(&self, range: core::ops::Range<usize>, mut f: impl FnMut(&'static AtomicUsize)) {
        let sets = self.sets.lock();
        let mut base = 0;
        for set in sets.iter() {
            let (lo, hi) = (range.start.max(base), range.end.min(base + set.len()));
            for slot in set.get(lo.saturating_sub(base)..hi.saturating_sub(base)).unwrap_or(&[]) {
                f(slot);
            }
            base += set.len();
        }
    }

    /// Visit every root slot.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&'static AtomicUsize)) {
        let sets = self.sets.lock();
        for set in sets.iter() {
            for slot in set.iter() {
                f(slot);
            }
        }
    }
}
