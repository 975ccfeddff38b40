//! A Hal over the host allocator. Physical address == virtual address, so the simulated device
//! can follow the addresses the driver hands it.

use core::ptr::NonNull;
use std::alloc::{alloc_zeroed, dealloc, Layout};

use crate::hal::{Direction, Hal, PhysAddr};
use tricolor_abi::PAGE_SIZE;

/// Identity-mapped DMA memory from `std::alloc`.
pub struct TestHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("valid DMA layout")
}

// SAFETY: alloc_zeroed returns zeroed, page-aligned, unaliased memory; "physical" addresses are
// the virtual ones, so translation is exact and the simulated device sees the same bytes.
unsafe impl Hal for TestHal {
    fn dma_alloc(pages: usize, _direction: Direction) -> Option<(PhysAddr, NonNull<u8>)> {
        // SAFETY: the layout has non-zero size (pages >= 1 from DmaRegion).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout(pages)) })?;
        Some((ptr.as_ptr() as PhysAddr, ptr))
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) {
        // SAFETY: the caller passes what dma_alloc returned, with the same page count.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages)) }
    }

    fn virt_to_phys(vaddr: usize) -> PhysAddr {
        vaddr as PhysAddr
    }

    fn phys_to_virt(paddr: PhysAddr) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).expect("non-null physical address")
    }
}
