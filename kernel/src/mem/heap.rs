//! The kernel heap: power-of-two size classes (16 B .. 2 KiB) carved from single pages, each class a
//! free list under its own lock; anything larger goes straight to the page allocator. Simple, with
//! no fragmentation surprises for the kernel's own small objects (collections, task control blocks);
//! GC objects do not live here, they live in the GC heap.
//!
//! Interrupt handlers must not allocate: a handler that interrupts a core holding a class lock would
//! spin on it forever.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;
use tricolor_abi::PAGE_SIZE;

/// Where the heap gets whole pages.
pub trait PageSource {
    /// `count` contiguous pages aligned to `align_pages` pages, or `None` when memory is exhausted.
    fn alloc_pages(&self, count: usize, align_pages: usize) -> Option<usize>;
    /// Returns pages obtained from `alloc_pages`.
    fn free_pages(&self, addr: usize, count: usize);
}

const MIN_CLASS_SHIFT: u32 = 4; // 16 bytes: room for the free-list link, and NEON-friendly alignment
const MAX_CLASS_SHIFT: u32 = 11; // 2 KiB: two objects per page is the least worth carving
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1) as usize;

/// A free list threaded through the free cells themselves (the first word of a free cell is the next
/// free cell's address, 0 ends the list).
struct FreeList {
    head: usize,
}

/// Counters for the boot log and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes handed out and not yet returned (rounded up to the class or page size).
    pub bytes_in_use: usize,
    /// Pages taken from the page source (small-object pages are never returned).
    pub pages_taken: usize,
}

/// A thread-safe heap over a [`PageSource`].
pub struct Heap<S> {
    source: S,
    classes: [Mutex<FreeList>; CLASSES],
    bytes_in_use: AtomicUsize,
    pages_taken: AtomicUsize,
}

enum Class {
    Small(usize),
    Large { pages: usize, align_pages: usize },
}

fn classify(layout: Layout) -> Class {
    let need = layout.size().max(layout.align()).max(1 << MIN_CLASS_SHIFT);
    let shift = need.next_power_of_two().trailing_zeros();
    if shift <= MAX_CLASS_SHIFT {
        Class::Small((shift - MIN_CLASS_SHIFT) as usize)
    } else {
        Class::Large { pages: layout.size().div_ceil(PAGE_SIZE), align_pages: (layout.align() / PAGE_SIZE).max(1) }
    }
}

const fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_CLASS_SHIFT)
}

impl<S: PageSource> Heap<S> {
    /// An empty heap; pages are requested on demand.
    pub const fn new(source: S) -> Self {
        Self {
            source,
            classes: [const { Mutex::new(FreeList { head: 0 }) }; CLASSES],
            bytes_in_use: AtomicUsize::new(0),
            pages_taken: AtomicUsize::new(0),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> HeapStats {
        HeapStats {
            bytes_in_use: self.bytes_in_use.load(Ordering::Relaxed),
            pages_taken: self.pages_taken.load(Ordering::Relaxed),
        }
    }

    /// The page source (the kernel reaches its frame allocator through it).
    pub fn source(&self) -> &S {
        &self.source
    }

    fn alloc_small(&self, class: usize) -> *mut u8 {
        let size = class_size(class);
        let mut list = self.classes[class].lock();
        if list.head == 0 {
            let Some(page) = self.source.alloc_pages(1, 1) else { return null_mut() };
            self.pages_taken.fetch_add(1, Ordering::Relaxed);
            // Thread the new page's cells onto the list, lowest address first.
            for cell in (page..page + PAGE_SIZE).step_by(size).rev() {
                // SAFETY: `cell` lies inside a page we own exclusively (just allocated) and is
                // `size`-aligned (pages are page-aligned, size divides the page), so writing one
                // word is in bounds and aligned.
                unsafe { (cell as *mut usize).write(list.head) };
                list.head = cell;
            }
        }
        let cell = list.head;
        // SAFETY: `cell` is a free cell of this class (on the list), whose first word holds the link.
        list.head = unsafe { (cell as *const usize).read() };
        self.bytes_in_use.fetch_add(size, Ordering::Relaxed);
        cell as *mut u8
    }

    fn free_small(&self, ptr: *mut u8, class: usize) {
        let mut list = self.classes[class].lock();
        // SAFETY: `ptr` was returned by alloc_small for this class and is being freed, so we own
        // the cell and may store the link in its first word.
        unsafe { (ptr as *mut usize).write(list.head) };
        list.head = ptr as usize;
        self.bytes_in_use.fetch_sub(class_size(class), Ordering::Relaxed);
    }
}

// SAFETY: small allocations come from `class_size`-aligned cells at least as large and as aligned
// as the layout (classify rounds size and align up to the class); large ones are whole pages
// aligned to the requested alignment. A cell is on at most one free list and handed out once.
unsafe impl<S: PageSource + Sync> GlobalAlloc for Heap<S> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match classify(layout) {
            Class::Small(class) => self.alloc_small(class),
            Class::Large { pages, align_pages } => match self.source.alloc_pages(pages, align_pages) {
                Some(addr) => {
                    self.bytes_in_use.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed);
                    self.pages_taken.fetch_add(pages, Ordering::Relaxed);
                    addr as *mut u8
                }
                None => null_mut(),
            },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match classify(layout) {
            Class::Small(class) => self.free_small(ptr, class),
            Class::Large { pages, .. } => {
                self.source.free_pages(ptr as usize, pages);
                self.bytes_in_use.fetch_sub(pages * PAGE_SIZE, Ordering::Relaxed);
                self.pages_taken.fetch_sub(pages, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::frames::FrameAllocator;
    use std::sync::Arc;

    /// A page source over a leaked, page-aligned host arena.
    struct ArenaPages(Mutex<FrameAllocator<'static>>);

    impl ArenaPages {
        fn new(pages: usize) -> Self {
            let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: non-zero size; the arena is leaked so it lives as long as the allocator.
            let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
            assert_ne!(base, 0);
            let bitmap = Box::leak(vec![0u64; FrameAllocator::bitmap_words(pages * PAGE_SIZE)].into_boxed_slice());
            Self(Mutex::new(FrameAllocator::new(base, pages * PAGE_SIZE, bitmap)))
        }
    }

    impl PageSource for ArenaPages {
        fn alloc_pages(&self, count: usize, align_pages: usize) -> Option<usize> {
            self.0.lock().alloc(count, align_pages).ok()
        }
        fn free_pages(&self, addr: usize, count: usize) {
            self.0.lock().free(addr, count)
        }
    }

    fn alloc(heap: &Heap<ArenaPages>, size: usize, align: usize) -> *mut u8 {
        // SAFETY: the layout is valid and non-zero-sized.
        unsafe { heap.alloc(Layout::from_size_align(size, align).unwrap()) }
    }

    #[test]
    fn small_objects_are_aligned_distinct_and_reused() {
        let heap = Heap::new(ArenaPages::new(64));
        let a = alloc(&heap, 24, 8);
        let b = alloc(&heap, 24, 8);
        assert!(!a.is_null() && !b.is_null() && a != b);
        assert_eq!(a as usize % 32, 0, "24 bytes lands in the 32-byte class");
        // SAFETY: a was allocated with this layout.
        unsafe { heap.dealloc(a, Layout::from_size_align(24, 8).unwrap()) };
        assert_eq!(alloc(&heap, 20, 4), a, "a freed cell is reused first");
        let aligned = alloc(&heap, 8, 256);
        assert_eq!(aligned as usize % 256, 0);
    }

    #[test]
    fn large_objects_take_and_return_pages() {
        let heap = Heap::new(ArenaPages::new(64));
        let layout = Layout::from_size_align(3 * PAGE_SIZE + 1, 8192).unwrap();
        // SAFETY: valid layout.
        let p = unsafe { heap.alloc(layout) };
        assert_eq!(p as usize % 8192, 0);
        assert_eq!(heap.stats().bytes_in_use, 4 * PAGE_SIZE);
        // SAFETY: p was allocated with `layout`.
        unsafe { heap.dealloc(p, layout) };
        assert_eq!(heap.stats(), HeapStats { bytes_in_use: 0, pages_taken: 0 });
    }

    #[test]
    fn exhaustion_returns_null_instead_of_corrupting() {
        let heap = Heap::new(ArenaPages::new(4));
        assert!(alloc(&heap, 8 * PAGE_SIZE, 8).is_null());
        let mut count = 0;
        while !alloc(&heap, 2048, 8).is_null() {
            count += 1;
        }
        assert_eq!(count, 8, "4 pages of 2 KiB cells");
    }

    #[test]
    fn threads_hammering_the_heap_never_share_a_cell() {
        let heap = Arc::new(Heap::new(ArenaPages::new(2048)));
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let heap = Arc::clone(&heap);
                std::thread::spawn(move || {
                    let mut live: Vec<(*mut u8, usize)> = Vec::new();
                    for i in 0..if cfg!(miri) { 200 } else { 5000 } {
                        let size = 8 << ((i * 7 + t) % 8);
                        let p = alloc(&heap, size, 8);
                        assert!(!p.is_null());
                        // SAFETY: p points at `size` bytes we own.
                        unsafe { p.write_bytes(t as u8, size) };
                        live.push((p, size));
                        if i % 3 == 0 {
                            let (q, qsize) = live.swap_remove(i % live.len());
                            // SAFETY: q holds qsize bytes we wrote; nobody else may touch them.
                            let ok = unsafe { std::slice::from_raw_parts(q, qsize) }.iter().all(|&b| b == t as u8);
                            assert!(ok, "another thread wrote into our cell");
                            // SAFETY: q was allocated with this layout.
                            unsafe { heap.dealloc(q, Layout::from_size_align(qsize, 8).unwrap()) };
                        }
                    }
                    live.len()
                })
            })
            .collect();
        for w in workers {
            assert!(w.join().unwrap() > 0);
        }
    }
}
