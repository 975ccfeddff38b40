//! What the driver needs from the kernel's memory system, and nothing more: DMA pages and
//! address translation. Allocation policy (page allocator, static pool, a bounce buffer for an
//! IOMMU) stays in the kernel; the ring logic runs on the host against a `std`-backed Hal.

use core::ptr::NonNull;
// DMA memory comes in the kernel's frames, so the driver's page is the granule: virtio rings and
// GPU backing entries are described in these units.
use tricolor_abi::PAGE_SIZE;

/// A physical (bus) address as the device sees it.
pub type PhysAddr = u64;

/// One physically contiguous piece of memory the device may access: a scatter-list entry.
///
/// The GPU framebuffer is handed to the driver as a slice of these, so the driver never learns
/// whether it came from the GC heap, a static array or the page allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Physical address of the first byte.
    pub phys: PhysAddr,
    /// Length in bytes.
    pub len: u32,
}

/// Which way data moves through a buffer, for Hals that bounce or flush caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The driver writes, the device reads.
    DriverToDevice,
    /// The device writes, the driver reads.
    DeviceToDriver,
    /// Both.
    Both,
}

/// DMA memory for virtio drivers.
///
/// # Safety
///
/// Implementors promise that:
/// - `dma_alloc` returns `pages * PAGE_SIZE` bytes that are zeroed, aligned to `PAGE_SIZE`,
///   physically contiguous, not aliased by any other allocation, valid for reads and writes at
///   the returned virtual address, and reachable by the device at the returned physical
///   address, until they are passed to `dma_dealloc`;
/// - `virt_to_phys` / `phys_to_virt` translate exactly within such memory (and within memory the
///   kernel shares with `share`);
/// - memory is cache-coherent with the device, or `share`/`unshare` do the maintenance.
pub unsafe trait Hal {
    /// Allocates `pages` zeroed, page-aligned, physically contiguous pages. Returns the physical
    /// address and the virtual address, or `None` if memory is exhausted.
    fn dma_alloc(pages: usize, direction: Direction) -> Option<(PhysAddr, NonNull<u8>)>;

    /// Returns memory obtained from [`Hal::dma_alloc`].
    ///
    /// # Safety
    ///
    /// `paddr`, `vaddr` and `pages` are exactly what one `dma_alloc` call returned and was asked
    /// for, the memory is not freed twice, and the device no longer accesses it.
    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize);

    /// Translates a virtual address of DMA-capable memory to the device's physical address.
    fn virt_to_phys(vaddr: usize) -> PhysAddr;

    /// Translates a physical address back to a virtual address the driver can dereference.
    fn phys_to_virt(paddr: PhysAddr) -> NonNull<u8>;

    /// Makes a driver buffer visible to the device and returns its physical address. The default
    /// suits identity-mapped, cache-coherent memory (QEMU `virt`); a Hal with an IOMMU or bounce
    /// buffers overrides it.
    ///
    /// # Safety
    ///
    /// `buffer` stays valid and is not accessed by the driver in a conflicting way until the
    /// matching [`Hal::unshare`].
    unsafe fn share(buffer: NonNull<[u8]>, _direction: Direction) -> PhysAddr {
        Self::virt_to_phys(buffer.as_ptr() as *mut u8 as usize)
    }

    /// Ends sharing started by [`Hal::share`] (copy back a bounce buffer, invalidate caches).
    ///
    /// # Safety
    ///
    /// `paddr` and `buffer` come from one `share` call and the device is done with the buffer.
    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: Direction) {}
}

/// Pages owned by the driver, returned to the Hal when dropped.
pub(crate) struct DmaRegion<H: Hal> {
    paddr: PhysAddr,
    vaddr: NonNull<u8>,
    pages: usize,
    _hal: core::marker::PhantomData<H>,
}

impl<H: Hal> DmaRegion<H> {
    /// Allocates `bytes` rounded up to whole pages.
    pub(crate) fn new(bytes: usize, direction: Direction) -> crate::Result<Self> {
        let pages = bytes.div_ceil(PAGE_SIZE).max(1);
        let (paddr, vaddr) = H::dma_alloc(pages, direction).ok_or(crate::Error::DmaAllocationFailed { pages })?;
        Ok(Self { paddr, vaddr, pages, _hal: core::marker::PhantomData })
    }

    pub(crate) fn paddr(&self) -> PhysAddr {
        self.paddr
    }

    pub(crate) fn vaddr(&self) -> NonNull<u8> {
        self.vaddr
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Leaks the region on purpose: used when the device may still write into it (a timed-out
    /// command), so freeing it would let the device scribble over reused memory.
    pub(crate) fn leak(self) {
        core::mem::forget(self);
    }
}

impl<H: Hal> Drop for DmaRegion<H> {
    fn drop(&mut self) {
        // SAFETY: the triple is exactly what `dma_alloc` returned in `new`, it is freed once
        // (here), and owners only drop a region once the device is done with it (timed-out
        // regions are leaked instead).
        unsafe { H::dma_dealloc(self.paddr, self.vaddr, self.pages) }
    }
}

// SAFETY: a DmaRegion is plain owned memory; moving it to another core moves the ownership.
unsafe impl<H: Hal> Send for DmaRegion<H> {}
