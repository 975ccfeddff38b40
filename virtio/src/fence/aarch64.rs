//! Orientation: the DMA barriers of [`super`] as aarch64 instructions, for the kernel build
//! (`target_os = "none"`). These are Linux's arm64 choices for a virtio device that is not
//! assumed to sit in the CPUs' inner-shareable domain (`weak_barriers = false`):
//! `dma_wmb()` = `dmb oshst`, `dma_rmb()` = `dmb oshld`, `mb()` = `dsb sy`
//! (arch/arm64/include/asm/barrier.h; include/linux/virtio_ring.h maps virtio_wmb/rmb/mb and
//! virtio_store_mb onto them; arch/arm64/include/asm/io.h's `writel` puts `__iowmb()` =
//! `dma_wmb()` before the MMIO store).
//!
//! Why outer-shareable: tricolor maps RAM Normal, Inner Shareable (arch/src/pagetable.rs). A
//! `dmb ish` (what `core::sync::atomic::fence` emits) orders accesses only as observed from
//! inside the inner-shareable domain: the other cores. A DMA master is an observer in the
//! outer-shareable domain, so the barriers that must order memory for it name `osh` (or `sy`).
//!
//! Each block is an `asm!` without `nomem`: besides the instruction, it is a compiler barrier,
//! so no memory access of the surrounding Rust code is moved across it.

use core::arch::asm;

/// `dma_wmb()`: earlier stores before later stores, for every observer in the outer-shareable
/// domain (a device included). Orders stores only, as Linux's does.
#[inline(always)]
pub(super) fn dma_wmb() {
    // SAFETY: a barrier instruction; it touches no register or memory the compiler tracks
    // (`nostack`, flags preserved), and ordering is its only effect.
    unsafe { asm!("dmb oshst", options(nostack, preserves_flags)) }
}

/// `dma_rmb()`: earlier loads before later loads and stores, outer-shareable domain.
#[inline(always)]
pub(super) fn dma_rmb() {
    // SAFETY: as in `dma_wmb`.
    unsafe { asm!("dmb oshld", options(nostack, preserves_flags)) }
}

/// `mb()`: every earlier access completes before any later one starts, full system (the only
/// barrier here that orders a store before a later load, which the notification-suppression
/// handshakes need).
#[inline(always)]
pub(super) fn mb() {
    // SAFETY: as in `dma_wmb`.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) }
}
