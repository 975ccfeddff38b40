//! The virtio [`Hal`] over the kernel's frame allocator. What the Hal hands out and translates
//! is identity-mapped (virtual == physical: frames and the kernel heap) and QEMU's devices are
//! cache-coherent with the cores, so translation is the identity and sharing needs no
//! maintenance. The one memory that is not identity-mapped, the GC heap (`vm::GC_HEAP_VA`), never
//! goes through the Hal: a framebuffer there describes its pages with their physical addresses
//! itself (`framebuffer::FbMemory::new`).

use crate::memory;
use core::ptr::NonNull;
use tricolor_abi::PAGE_SIZE;
use tricolor_virtio::{Direction, Hal, PhysAddr};

/// DMA memory from `memory::alloc_pages`.
pub struct KernelHal;

// SAFETY: `dma_alloc` hands out pages the frame allocator reserved for us alone (not aliased),
// physically contiguous and page aligned, zeroed below, identity-mapped as normal cacheable RAM
// (valid at the returned virtual address, reachable by the device at the same physical address),
// and QEMU's device models are coherent with the cores' inner-shareable domain. Translation is the
// identity over all RAM, so it is exact for any memory the driver is given.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: Direction) -> Option<(PhysAddr, NonNull<u8>)> {
        let addr = memory::alloc_pages(pages, 1).ok()?;
        // SAFETY: the pages were just allocated to us, nothing else references them, and they are
        // identity-mapped RAM.
        unsafe { (addr as *mut u8).write_bytes(0, pages * PAGE_SIZE) };
        Some((addr as PhysAddr, NonNull::new(addr as *mut u8)?))
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) {
        memory::free_pages(paddr as usize, pages)
    }

    fn virt_to_phys(vaddr: usize) -> PhysAddr {
        vaddr as PhysAddr
    }

    fn phys_to_virt(paddr: PhysAddr) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("the device never hands back physical address 0")
    }
}
