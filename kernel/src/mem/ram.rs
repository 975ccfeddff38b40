//! The kernel's memory on the real machine (the binary's half of `mem/`, compiled into it as
//! `memory`): the frame allocator (`mem/frames.rs`) over the RAM the device tree reports (minus the
//! device tree, the image and the allocator's own bitmap), and the `#[global_allocator]` heap
//! (`mem/heap.rs`) on top of it. It needs the binary's lock and device tree, so the library does not
//! compile it.

use crate::devicetree::Machine;
use crate::sync::Lock as Mutex;
use tricolor_abi::PAGE_SIZE;
use tricolor_kernel::mem::align_up;
use tricolor_kernel::mem::frames::{FrameAllocator, FrameStats, OutOfFrames};
use tricolor_kernel::mem::heap::{Heap, PageSource};

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// The heap's page source: the global frame allocator.
pub struct KernelPages;

impl PageSource for KernelPages {
    fn alloc_pages(&self, count: usize, align_pages: usize) -> Option<usize> {
        alloc_pages(count, align_pages).ok()
    }
    fn free_pages(&self, addr: usize, count: usize) {
        free_pages(addr, count)
    }
}

static HEAP: Heap<KernelPages> = Heap::new(KernelPages);

/// `#[global_allocator]`: the kernel heap, entered with preemption disabled so that no core parks
/// for stop-the-world (or yields its core) while holding one of the heap's locks.
struct KernelAllocator;

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator;

fn no_preempt() -> Option<tricolor_runtime::preempt::PreemptGuard<'static>> {
    // Before this core's P is installed nothing can preempt it anyway.
    crate::percore::is_installed().then(|| tricolor_runtime::this_p().preempt.disable())
}

// SAFETY: delegates to `Heap`'s GlobalAlloc, which upholds the contract; the guard only changes
// when the calling task may be switched out.
unsafe impl core::alloc::GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let _guard = no_preempt();
        // SAFETY: forwarded caller contract.
        unsafe { HEAP.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let _guard = no_preempt();
        // SAFETY: forwarded caller contract.
        unsafe { HEAP.dealloc(ptr, layout) }
    }
}

/// Allocates `count` contiguous, zero-initialisation-free pages aligned to `align_pages` pages.
pub fn alloc_pages(count: usize, align_pages: usize) -> Result<usize, OutOfFrames> {
    let mut frames = FRAMES.lock();
    let frames = frames.as_mut().expect("memory::init runs before any allocation");
    frames.alloc(count, align_pages)
}

/// One page, without waiting for the allocator lock (for the stack-growth fault path, where the
/// faulting code may hold it). `None` if the lock is taken or memory is exhausted.
pub fn try_alloc_page() -> Option<usize> {
    FRAMES.try_lock()?.as_mut()?.alloc(1, 1).ok()
}

/// Returns pages from [`alloc_pages`].
pub fn free_pages(addr: usize, count: usize) {
    FRAMES.lock().as_mut().expect("memory::init runs before any free").free(addr, count)
}

/// Page counts of the frame allocator.
pub fn frame_stats() -> FrameStats {
    FRAMES.lock().as_ref().map(|f| f.stats()).unwrap_or(FrameStats { total_pages: 0, free_pages: 0 })
}

/// Kernel-heap counters.
pub fn heap_stats() -> tricolor_kernel::mem::heap::HeapStats {
    HEAP.stats()
}

/// The image's physical range [start, end).
pub fn image_range() -> (usize, usize) {
    // Linker-script symbols: only their addresses are taken, never their contents.
    (&raw const __image_start as usize, &raw const __image_end as usize)
}

/// Sets up the frame allocator. The bitmap lives in the first pages after the image.
pub fn init(machine: &Machine) {
    let (ram_base, ram_size) = machine.ram;
    let (image_start, image_end) = image_range();
    let words = FrameAllocator::bitmap_words(ram_size);
    let bitmap_addr = align_up(image_end, PAGE_SIZE);
    let bitmap_bytes = align_up(words * 8, PAGE_SIZE);
    assert!(
        bitmap_addr + bitmap_bytes <= ram_base + ram_size,
        "RAM ({ram_size:#x} bytes at {ram_base:#x}) too small for the kernel image"
    );
    // SAFETY: [bitmap_addr, +bitmap_bytes) is RAM past the image that nothing else uses yet (the
    // frame allocator is created below with this range reserved), aligned for u64.
    let bitmap = unsafe { core::slice::from_raw_parts_mut(bitmap_addr as *mut u64, words) };
    let mut frames = FrameAllocator::new(ram_base, ram_size, bitmap);
    frames.reserve(machine.dtb_addr, machine.dtb_size);
    frames.reserve(image_start, bitmap_addr + bitmap_bytes - image_start);
    *FRAMES.lock() = Some(frames);
}
