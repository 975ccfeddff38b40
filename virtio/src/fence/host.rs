//! Orientation: the DMA barriers of [`super`] for host builds (tests, Miri, any non-kernel
//! target): Rust atomic fences at least as strong as the aarch64 instruction each one stands
//! for, so that host tests and Miri's weak-memory model check the same protocol the kernel
//! runs. The simulated device is another thread of this process, so these are exactly the
//! orderings it needs.

use core::sync::atomic::{fence, Ordering};

/// Stands for `dmb oshst` (store -> store): a Release fence orders more (loads too).
#[inline(always)]
pub(super) fn dma_wmb() {
    fence(Ordering::Release);
}

/// Stands for `dmb oshld` (load -> load/store): an Acquire fence.
#[inline(always)]
pub(super) fn dma_rmb() {
    fence(Ordering::Acquire);
}

/// Stands for `dsb sy` (everything, store -> load included): a SeqCst fence.
#[inline(always)]
pub(super) fn mb() {
    fence(Ordering::SeqCst);
}
