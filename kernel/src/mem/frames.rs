//! Physical page allocator: one bit per 4 KiB page of a RAM region, first-fit search for runs of
//! contiguous pages (the GC heap and the framebuffer need large contiguous runs), and a next-fit
//! hint so single-page allocation does not rescan the full bitmap.

use super::{align_down, align_up};
use core::fmt;
use tricolor_abi::PAGE_SIZE;

/// A physical page allocator over `[base, base + pages * PAGE_SIZE)`.
pub struct FrameAllocator<'a> {
    base: usize,
    pages: usize,
    /// Bit set = page in use (or reserved).
    bitmap: &'a mut [u64],
    free: usize,
    /// Where the next search starts: pages below it were in use when last looked at.
    hint: usize,
}

/// Counts a caller can log or assert on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameStats {
    pub total_pages: usize,
    pub free_pages: usize,
}

/// Why an allocation failed: enough to say what was asked and what was there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfFrames {
    pub requested_pages: usize,
    pub align_pages: usize,
    pub free_pages: usize,
}

impl fmt::Display for OutOfFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of physical memory: {} contiguous pages (aligned to {} pages) requested, {} pages free",
            self.requested_pages, self.align_pages, self.free_pages
        )
    }
}

impl<'a> FrameAllocator<'a> {
    /// Words of bitmap needed to manage `bytes` of RAM.
    pub const fn bitmap_words(bytes: usize) -> usize {
        (bytes / PAGE_SIZE).div_ceil(64)
    }

    /// Manages the pages of `[base, base + len)` (shrunk to whole pages); all start free.
    /// Panics if `bitmap` is too small: that is a boot-time sizing bug, not a runtime condition.
    pub fn new(base: usize, len: usize, bitmap: &'a mut [u64]) -> Self {
        let start = align_up(base, PAGE_SIZE);
        let end = align_down(base + len, PAGE_SIZE);
        let pages = end.saturating_sub(start) / PAGE_SIZE;
        assert!(bitmap.len() * 64 >= pages, "frame bitmap too small for {pages} pages");
        bitmap.fill(0);
        // Pages past the end of the region are permanently "in use" so searches never return them.
        for page in pages..bitmap.len() * 64 {
            bitmap[page / 64] |= 1 << (page % 64);
        }
        Self { base: start, pages, bitmap, free: pages, hint: 0 }
    }

    /// Marks `[addr, addr + len)` (widened to whole pages) as in use: the kernel image, the device
    /// tree, the bitmap itself. Parts outside the managed region are ignored.
    pub fn reserve(&mut self, addr: usize, len: usize) {
        let lo = align_down(addr, PAGE_SIZE).max(self.base);
        let hi = align_up(addr + len, PAGE_SIZE).min(self.end());
        let mut page = lo;
        while page < hi {
            let index = (page - self.base) / PAGE_SIZE;
            if !self.is_used(index) {
                self.set_used(index, true);
                self.free -= 1;
            }
            page += PAGE_SIZE;
        }
    }

    /// Allocates `count` contiguous pages whose address is a multiple of `align_pages` pages.
    pub fn alloc(&mut self, count: usize, align_pages: usize) -> Result<usize, OutOfFrames> {
        let align_pages = align_pages.max(1);
        let oom = OutOfFrames { requested_pages: count, align_pages, free_pages: self.free };
        if count == 0 || count > self.free || !align_pages.is_power_of_two() {
            return Err(oom);
        }
        let first = self.search(self.hint, count, align_pages).or_else(|| self.search(0, count, align_pages));
        let first = first.ok_or(oom)?;
        for index in first..first + count {
            self.set_used(index, true);
        }
        self.free -= count;
        if count == 1 {
            self.hint = first + 1;
        }
        Ok(self.base + first * PAGE_SIZE)
    }

    /// Returns `count` pages starting at `addr` (as returned by [`Self::alloc`]).
    /// Panics on a double free or an address outside the region: both are memory-safety bugs that
    /// must not go unnoticed.
    pub fn free(&mut self, addr: usize, count: usize) {
        assert!(addr.is_multiple_of(PAGE_SIZE) && addr >= self.base, "free of {addr:#x}: not a page of this allocator");
        let first = (addr - self.base) / PAGE_SIZE;
        assert!(first + count <= self.pages, "free of {addr:#x}+{count} pages: past the end of RAM");
        for index in first..first + count {
            assert!(self.is_used(index), "double free of page {:#x}", self.base + index * PAGE_SIZE);
            self.set_used(index, false);
        }
        self.free += count;
        self.hint = self.hint.min(first);
    }

    /// Page counts.
    pub fn stats(&self) -> FrameStats {
        FrameStats { total_pages: self.pages, free_pages: self.free }
    }

    /// First managed address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// One past the last managed address.
    pub fn end(&self) -> usize {
        self.base + self.pages * PAGE_SIZE
    }

    /// Finds `count` free pages from `from` on, aligned (in absolute addresses) to `align_pages`.
    fn search(&self, from: usize, count: usize, align_pages: usize) -> Option<usize> {
        let align_offset = (self.base / PAGE_SIZE) % align_pages;
        let mut start = from;
        while start + count <= self.pages {
            // Align the absolute page number, not the index.
            let misalign = (start + align_offset) % align_pages;
            if misalign != 0 {
                start += align_pages - misalign;
                continue;
            }
            // Skip whole used words quickly.
            if start.is_multiple_of(64) && self.bitmap[start / 64] == u64::MAX {
                start += 64;
                continue;
            }
            match (start..start + count).find(|&i| self.is_used(i)) {
                None => return Some(start),
                Some(used) => start = used + 1,
            }
        }
        None
    }

    fn is_used(&self, index: usize) -> bool {
        self.bitmap[index / 64] & (1 << (index % 64)) != 0
    }

    fn set_used(&mut self, index: usize, used: bool) {
        let bit = 1u64 << (index % 64);
        if used {
            self.bitmap[index / 64] |= bit;
        } else {
            self.bitmap[index / 64] &= !bit;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x4000_0000;

    fn with_allocator(pages: usize, f: impl FnOnce(&mut FrameAllocator<'_>)) {
        let mut bitmap = vec![0u64; FrameAllocator::bitmap_words(pages * PAGE_SIZE)];
        let mut frames = FrameAllocator::new(BASE, pages * PAGE_SIZE, &mut bitmap);
        f(&mut frames);
    }

    #[test]
    fn allocates_distinct_pages_until_exhausted() {
        with_allocator(100, |frames| {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..100 {
                let page = frames.alloc(1, 1).unwrap();
                assert!((BASE..BASE + 100 * PAGE_SIZE).contains(&page));
                assert!(seen.insert(page), "page {page:#x} handed out twice");
            }
            let err = frames.alloc(1, 1).unwrap_err();
            assert_eq!(err.free_pages, 0);
            assert!(err.to_string().contains("out of physical memory"));
        });
    }

    #[test]
    fn reserved_ranges_are_never_returned() {
        with_allocator(64, |frames| {
            frames.reserve(BASE + 10 * PAGE_SIZE + 5, PAGE_SIZE); // straddles pages 10 and 11
            assert_eq!(frames.stats().free_pages, 62);
            while let Ok(page) = frames.alloc(1, 1) {
                let index = (page - BASE) / PAGE_SIZE;
                assert!(index != 10 && index != 11, "reserved page {index} allocated");
            }
        });
    }

    #[test]
    fn contiguous_runs_respect_alignment_and_holes() {
        with_allocator(1024, |frames| {
            frames.reserve(BASE + 3 * PAGE_SIZE, PAGE_SIZE);
            let run = frames.alloc(16, 16).unwrap();
            assert_eq!((run / PAGE_SIZE) % 16, 0);
            let small = frames.alloc(3, 1).unwrap();
            assert_eq!(small, BASE, "first fit below the hole");
            let big = frames.alloc(512, 1).unwrap();
            assert!(big >= run + 16 * PAGE_SIZE || big + 512 * PAGE_SIZE <= run);
        });
    }

    #[test]
    fn freed_pages_are_reused_and_double_free_panics() {
        with_allocator(8, |frames| {
            let a = frames.alloc(8, 1).unwrap();
            frames.free(a + 2 * PAGE_SIZE, 2);
            assert_eq!(frames.alloc(2, 1).unwrap(), a + 2 * PAGE_SIZE);
            frames.free(a, 8);
            assert_eq!(frames.stats().free_pages, 8);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| frames.free(a, 1)));
            assert!(result.is_err(), "double free must panic");
        });
    }

    #[test]
    fn unaligned_region_is_trimmed_to_whole_pages() {
        let mut bitmap = vec![0u64; 2];
        let frames = FrameAllocator::new(BASE + 100, 10 * PAGE_SIZE, &mut bitmap);
        assert_eq!(frames.base(), BASE + PAGE_SIZE);
        assert_eq!(frames.stats().total_pages, 9);
    }
}
