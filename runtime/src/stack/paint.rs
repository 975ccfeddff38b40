//! Stack painting and high-water marks.
//!
//! At creation a stack is filled with [`STACK_PAINT`]. A stack grows down from `hi`, so the
//! deepest point it ever reached is the lowest word that no longer holds the pattern: scanning
//! up from `lo`, the first unpainted word marks the high-water mark. (A frame that happens to
//! store the pattern itself at its deepest word would make the mark read up to one word low;
//! the value is chosen so that no pointer or small integer equals it.)

use crate::stack::Stack;

/// The paint pattern. Its top 16 bits are non-zero, so it is not a canonical lower-half
/// address: conservative stack scanning never mistakes paint for a heap pointer.
pub const STACK_PAINT: u64 = 0x57AC_D0DE_57AC_D0DE;

const WORD: usize = core::mem::size_of::<u64>();

/// Fills `words` with [`STACK_PAINT`].
pub fn paint_words(words: &mut [u64]) {
    words.fill(STACK_PAINT);
}

/// Number of words at the low end of `words` that still hold the paint: the untouched part of
/// a stack whose lowest word is `words[0]`.
pub fn untouched_words(words: &[u64]) -> usize {
    words.iter().position(|&w| w != STACK_PAINT).unwrap_or(words.len())
}

impl Stack {
    /// Paints the whole stack `[lo, hi)`.
    ///
    /// # Safety
    /// `[lo, hi)` must be mapped, writable, and not in use: nothing may be live on it (call this
    /// before the first SP is set to `hi`), and no other reference to that memory may exist.
    pub unsafe fn paint(&self) {
        // SAFETY: forwarded from this function's contract.
        unsafe { paint_range(self.lo, self.hi) }
    }

    /// Bytes of the stack that have ever been used: `hi - (first unpainted address)`, or 0 if
    /// the stack was never touched. Call on a painted stack only.
    ///
    /// # Safety
    /// `[lo, hi)` must be mapped and readable, and nothing may write to the words being scanned
    /// concurrently: the stack is the caller's own (its in-use part lies above the untouched part
    /// the scan stops in), or its owner is not running (a stopped world, an exited task).
    pub unsafe fn high_water_mark(&self) -> usize {
        let words = (self.hi - self.lo) / WORD;
        let base = core::ptr::with_exposed_provenance::<u64>(self.lo);
        let mut untouched = 0;
        while untouched < words {
            // SAFETY: `base + untouched` lies in `[lo, hi)`, which the caller guarantees is mapped
            // and not concurrently written; `lo` is 16-byte aligned (Stack::new), so every word
            // is aligned. Volatile because the compiler must not assume this memory is ours.
            let w = unsafe { base.add(untouched).read_volatile() };
            if w != STACK_PAINT {
                break;
            }
            untouched += 1;
        }
        (words - untouched) * WORD
    }
}

/// Paints `[lo, hi)` (used for whole stacks and for pages a growable stack just mapped).
///
/// # Safety
/// As [`Stack::paint`]: `[lo, hi)` mapped, writable, 8-byte aligned and unused.
pub unsafe fn paint_range(lo: usize, hi: usize) {
    let base = core::ptr::with_exposed_provenance_mut::<u64>(lo);
    for i in 0..(hi - lo) / WORD {
        // SAFETY: in `[lo, hi)`, which the caller guarantees is mapped, writable, aligned and
        // unused. Volatile so the stores are not elided: nothing in Rust reads them back.
        unsafe { base.add(i).write_volatile(STACK_PAINT) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackKind;
    use alloc::boxed::Box;

    #[repr(C, align(16))]
    struct Mem([u64; 64]);

    /// A Stack describing `mem` (its address exposed so the Stack's integer bounds can be used
    /// as pointers again, as the kernel does with linker-symbol addresses).
    fn stack_over(mem: &mut Mem) -> Stack {
        let lo = mem.0.as_mut_ptr().expose_provenance();
        Stack::new(StackKind::Task, lo, lo + 64 * WORD, 0, None, "t")
    }

    #[test]
    fn painted_slice_is_untouched() {
        let mut v = alloc::vec![0u64; 32];
        paint_words(&mut v);
        assert_eq!(untouched_words(&v), 32);
    }

    #[test]
    fn first_unpainted_word_from_the_bottom_bounds_the_use() {
        let mut v = alloc::vec![0u64; 32];
        paint_words(&mut v);
        // A stack grows down: the top 10 words were used.
        for w in &mut v[22..] {
            *w = 0x1234;
        }
        assert_eq!(untouched_words(&v), 22);
        // A word that happens to equal the paint above the deepest write does not matter.
        v[25] = STACK_PAINT;
        assert_eq!(untouched_words(&v), 22);
    }

    #[test]
    fn unpainted_slice_has_no_untouched_words() {
        assert_eq!(untouched_words(&[0u64; 8]), 0);
    }

    #[test]
    fn stack_paint_and_high_water_mark_over_real_memory() {
        let mut mem = Box::new(Mem([0; 64]));
        let s = stack_over(&mut mem);
        // SAFETY: `mem` is ours, aligned, and nothing else refers to it during the call.
        unsafe { s.paint() };
        // SAFETY: as above; no concurrent writer.
        assert_eq!(unsafe { s.high_water_mark() }, 0);
        // Simulate a call chain 24 bytes deep from the top (3 words), then a deeper one that
        // returned (its words stay dirty: the mark is a high-water mark, not the current depth).
        let base = core::ptr::with_exposed_provenance_mut::<u64>(s.lo);
        // SAFETY: indices 61..64 and 50 lie inside `mem`; no other reference is live.
        unsafe {
            for i in 61..64 {
                base.add(i).write(i as u64);
            }
            base.add(50).write(7);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { s.high_water_mark() }, (64 - 50) * WORD);
    }

    #[test]
    fn fully_used_stack_reports_its_size() {
        let mut mem = Box::new(Mem([1; 64]));
        let s = stack_over(&mut mem);
        // SAFETY: `mem` is ours and not otherwise referenced.
        assert_eq!(unsafe { s.high_water_mark() }, s.size());
    }
}
