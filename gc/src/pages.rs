//! The page allocator: which heap pages belong to a span. A bitmap, first fit, under the heap's
//! page lock. Spans are created and freed rarely compared to objects, so simplicity wins here.

use alloc::vec;
use alloc::vec::Vec;

/// Used/free bit per page (1 = used).
pub(crate) struct PageMap {
    used: Vec<u64>,
    npages: usize,
    free: usize,
    /// The fewest free pages there ever were (the peak of pages in use is `npages` less this).
    min_free: usize,
}

impl PageMap {
    pub(crate) fn new(npages: usize) -> Self {
        PageMap { used: vec![0; npages.div_ceil(64)], npages, free: npages, min_free: npages }
    }

    fn is_used(&self, page: usize) -> bool {
        self.used[page / 64] & (1 << (page % 64)) != 0
    }

    fn set(&mut self, first: usize, n: usize, used: bool) {
        for p in first..first + n {
            debug_assert_ne!(self.is_used(p), used, "page {p} already in that state");
            if used {
                self.used[p / 64] |= 1 << (p % 64);
            } else {
                self.used[p / 64] &= !(1 << (p % 64));
            }
        }
    }

    /// First fit: the first run of `n` free pages, marked used.
    pub(crate) fn alloc(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut run_start = 0;
        let mut run_len = 0;
        let mut p = 0;
        while p < self.npages {
            // Skip fully used words quickly.
            if p % 64 == 0 && self.used[p / 64] == u64::MAX {
                run_len = 0;
                p += 64;
                continue;
            }
            if self.is_used(p) {
                run_len = 0;
            } else {
                if run_len == 0 {
                    run_start = p;
                }
                run_len += 1;
                if run_len == n {
                    self.set(run_start, n, true);
                    self.free -= n;
                    self.min_free = self.min_free.min(self.free);
                    return Some(run_start);
                }
            }
            p += 1;
        }
        None
    }

    /// Last fit: the highest run of `n` free pages, marked used (pinned buffers go to the top of
    /// the heap, see `Heap::alloc_pinned`).
    pub(crate) fn alloc_last(&mut self, n: usize) -> Option<usize> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut run_len = 0;
        for p in (0..self.npages).rev() {
            if self.is_used(p) {
                run_len = 0;
                continue;
            }
            run_len += 1;
            if run_len == n {
                self.set(p, n, true);
                self.free -= n;
                return Some(p);
            }
        }
        None
    }

    pub(crate) fn free(&mut self, first: usize, n: usize) {
        self.set(first, n, false);
        self.free += n;
    }

    pub(crate) fn free_pages(&self) -> usize {
        self.free
    }

    /// The most pages that were ever in use at once.
    pub(crate) fn peak_used(&self) -> usize {
        self.npages - self.min_free
    }

    /// Longest run of free pages (for out-of-memory reports).
    pub(crate) fn largest_free_run(&self) -> usize {
        let (mut best, mut run) = (0, 0);
        for p in 0..self.npages {
            if self.is_used(p) {
                run = 0;
            } else {
                run += 1;
                best = best.max(run);
            }
        }
        best
    }

    /// Whether `page` is free (for the poison checker).
    pub(crate) fn page_is_free(&self, page: usize) -> bool {
        !self.is_used(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_reuses_freed_runs_and_reports_fragmentation() {
        let mut m = PageMap::new(130);
        assert_eq!(m.alloc(64), Some(0));
        assert_eq!(m.alloc(3), Some(64));
        assert_eq!(m.alloc(2), Some(67));
        m.free(64, 3);
        assert_eq!(m.alloc(4), Some(69), "a 3-page hole does not fit 4");
        assert_eq!(m.alloc(3), Some(64));
        assert_eq!(m.free_pages(), 130 - 64 - 3 - 2 - 4);
        assert_eq!(m.largest_free_run(), 130 - 73);
        assert_eq!(m.alloc(58), None);
        assert_eq!(m.alloc(57), Some(73));
        assert_eq!(m.alloc(1), None);
        assert_eq!(m.peak_used(), 130);
        let mut m = PageMap::new(10);
        m.alloc(6);
        m.free(0, 6);
        m.alloc(2);
        assert_eq!(m.peak_used(), 6, "the peak stays after pages are freed");
    }

    #[test]
    fn last_fit_takes_the_highest_run() {
        let mut m = PageMap::new(100);
        assert_eq!(m.alloc_last(10), Some(90));
        assert_eq!(m.alloc_last(5), Some(85), "right below the first");
        assert_eq!(m.alloc(3), Some(0), "first fit is unaffected");
        m.free(90, 10);
        assert_eq!(m.alloc_last(12), Some(85 - 12), "the freed top run is too short for 12");
        assert_eq!(m.alloc_last(10), Some(90));
        assert_eq!(m.free_pages(), 100 - 10 - 5 - 3 - 12);
    }
}
