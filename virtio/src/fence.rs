//! Named, counted DMA barriers for the split virtqueue (tock's `DmaFence` idea).
//!
//! A virtqueue talks to a device through ordinary shared memory, so every ordering the protocol
//! needs is written down here once, by name, and counted: the `[VIRTIO PERF]` lines and the
//! fence-strategy experiment read these counts.
//!
//! Each operation is the barrier *and* the access it orders, in one `#[inline(never)]`
//! function, so `cargo xtask check-fences` can find it in the kernel's disassembly and check
//! that the barrier is there and on the right side of the access. The barriers are the ones
//! Linux's arm64 virtio uses for a device outside the CPUs' inner-shareable domain
//! (`weak_barriers = false`); on the host each is a Rust fence at least as strong
//! (`fence/host.rs`), so host tests and Miri model the same protocol:
//!
//! | step                                          | Linux          | aarch64     | host            | spec (1.2) |
//! |-----------------------------------------------|----------------|-------------|-----------------|------------|
//! | descriptors + avail entry -> `avail.idx` store| `virtio_wmb`   | `dmb oshst` | Release fence   | 2.7.13 step 4, 2.7.13.3.1 |
//! | `avail.idx` store -> `flags`/`avail_event` load| `virtio_mb`   | `dsb sy`    | SeqCst fence    | 2.7.13 step 6, 2.7.13.4.1 |
//! | `used.idx` load -> used element / buffer loads| `virtio_rmb`   | `dmb oshld` | Acquire fence   | 2.7.8.2 (device side), 2.7.14 |
//! | `used_event`/flags store -> `used.idx` re-check| `virtio_store_mb` | `dsb sy` | SeqCst fence   | 2.7.14 note, 2.7.7.2 |
//! | ring stores -> QueueNotify MMIO store          | `writel`'s `__iowmb` | `dmb oshst` | Release fence | 2.7.13 step 7, 4.2.3.3 |
//!
//! The last one, [`before_doorbell`], lives in the transport's notify and is not counted per
//! queue (the transport has no counters); the others are [`FenceCounts`]. Why `osh`/`sy` and
//! not the `dmb ish` of `core::sync::atomic::fence`: see `fence/aarch64.rs`.

use core::sync::atomic::{AtomicU16, Ordering};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[path = "fence/aarch64.rs"]
mod barrier;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
#[path = "fence/host.rs"]
mod barrier;

/// How the driver orders its read of the used ring's `idx` against the used element it then reads.
///
/// Chosen on the kernel command line (`virtio.fence=`). The default is correct and the cheapest
/// barrier that is; the others exist to be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FenceStrategy {
    /// Default. A read barrier (`dmb oshld`; an Acquire fence on the host) after every poll's
    /// load of `used.idx`, so the used element read after it sees what the device wrote before
    /// publishing that index (2.7.8.2: the device sets the element, then `idx`; 2.7.14).
    #[default]
    Acquire,
    /// A full barrier (`dsb sy`; a SeqCst fence on the host) after every poll's load of
    /// `used.idx`: the heaviest correct choice (the first driver's).
    SeqCst,
    /// The barrier only on progress: each poll loads `used.idx` with no barrier, and only a poll
    /// that sees progress issues the read barrier, before the element is read. This is the
    /// pattern of Linux's `virtqueue_get_buf` (`more_used()`, then `virtio_rmb()`) and orders the
    /// element read just as well; an earlier report blamed it for ~100x slower GPU commands,
    /// which is why it is logged when chosen and measured by `gpu-bench`.
    AfterProgress,
}

impl FenceStrategy {
    /// All strategies, for experiment loops.
    pub const ALL: [FenceStrategy; 3] = [FenceStrategy::Acquire, FenceStrategy::SeqCst, FenceStrategy::AfterProgress];

    /// The command-line spelling (`virtio.fence=acquire|seqcst|after-progress`).
    pub const fn name(self) -> &'static str {
        match self {
            FenceStrategy::Acquire => "acquire",
            FenceStrategy::SeqCst => "seqcst",
            FenceStrategy::AfterProgress => "after-progress",
        }
    }

    /// Parses the command-line spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether empty polls go without a barrier (the fence only after progress): logged when
    /// chosen, since it was once reported as the cause of slow GPU commands.
    pub const fn skips_fence_on_empty_polls(self) -> bool {
        matches!(self, FenceStrategy::AfterProgress)
    }
}

/// How many barriers of each kind a queue issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FenceCounts {
    /// Write barriers (`dmb oshst`) before publishing `avail.idx`.
    pub release: u64,
    /// Full barriers (`dsb sy`): before reading `used.flags` / `avail_event`, after re-arming
    /// used-buffer notifications, and per poll under [`FenceStrategy::SeqCst`].
    pub full: u64,
    /// Read barriers (`dmb oshld`) after loads of `used.idx`.
    pub acquire: u64,
}

impl FenceCounts {
    /// All barriers together.
    pub const fn total(&self) -> u64 {
        self.release + self.full + self.acquire
    }

    /// Difference from an earlier snapshot (counters only grow; wrapping keeps it total).
    pub const fn since(&self, earlier: &FenceCounts) -> FenceCounts {
        FenceCounts {
            release: self.release.wrapping_sub(earlier.release),
            full: self.full.wrapping_sub(earlier.full),
            acquire: self.acquire.wrapping_sub(earlier.acquire),
        }
    }
}

/// The barriers one queue issues, with their counts.
#[derive(Debug, Default)]
pub(crate) struct DmaFence {
    strategy: FenceStrategy,
    counts: FenceCounts,
}

impl DmaFence {
    pub(crate) fn new(strategy: FenceStrategy) -> Self {
        Self { strategy, counts: FenceCounts::default() }
    }

    pub(crate) fn strategy(&self) -> FenceStrategy {
        self.strategy
    }

    pub(crate) fn counts(&self) -> FenceCounts {
        self.counts
    }

    /// Publishes `avail.idx = value`: write barrier, then the store. Every descriptor and
    /// avail-ring entry the caller wrote before this call is visible to the device no later than
    /// the new index (2.7.13.3.1: "The driver MUST perform a suitable memory barrier before the
    /// idx update"). `dmb oshst` orders stores only, as Linux's `virtio_wmb` does: a buffer the
    /// driver reads after completion and then hands out again must be written (or not read) by
    /// the driver before that publish, which the GPU driver does by zeroing its response.
    #[inline(never)]
    pub(crate) fn publish_avail_idx(&mut self, avail_idx: &AtomicU16, value: u16) {
        barrier::dma_wmb();
        // Relaxed: the barrier just above provides the ordering (the store is the publish).
        avail_idx.store(value, Ordering::Relaxed);
        self.counts.release += 1;
    }

    /// Reads a notification-suppression field (`used.flags` or `avail_event`) after a full
    /// barrier, which orders the caller's earlier `avail.idx` store before this load: only a
    /// full barrier orders store -> load, and without it the driver can read a stale "don't
    /// notify" while the device reads the old `avail.idx`, and both sleep (2.7.13.4.1: "The
    /// driver MUST perform a suitable memory barrier before reading flags or avail_event, to
    /// avoid missing a notification"; the Linux fix a72caae21803).
    #[inline(never)]
    pub(crate) fn read_suppression(&mut self, field: &AtomicU16) -> u16 {
        barrier::mb();
        self.counts.full += 1;
        // Relaxed: a device-written hint with no data published behind it; the barrier above
        // orders it after the avail.idx store.
        field.load(Ordering::Relaxed)
    }

    /// Stores `used_event` (EVENT_IDX) or `avail.flags` to (re-)enable used-buffer
    /// notifications, then a full barrier, so the caller's following re-check of `used.idx`
    /// is ordered after the store (Linux's `virtio_store_mb`). The device does the mirror image
    /// (store `used.idx`, full barrier, load `used_event`), so at least one side sees the other:
    /// either the driver's re-check finds the completion or the device's check finds the
    /// re-armed event and interrupts. Without it, both can read stale values and a driver
    /// waiting in `wfi` misses the completion (2.7.14's note: re-enable, `mb()`, re-check;
    /// 2.7.7.2).
    #[inline(never)]
    pub(crate) fn store_then_mb(&mut self, field: &AtomicU16, value: u16) {
        // Relaxed: the barrier below provides the ordering.
        field.store(value, Ordering::Relaxed);
        barrier::mb();
        self.counts.full += 1;
    }

    /// One poll of `used.idx`, ordered according to the strategy. Returns the index read; the
    /// caller reads used elements only for indices this returned.
    #[inline]
    pub(crate) fn poll_used_idx(&mut self, used_idx: &AtomicU16, last_seen: u16) -> u16 {
        match self.strategy {
            FenceStrategy::Acquire => self.poll_then_rmb(used_idx),
            FenceStrategy::SeqCst => self.poll_then_mb(used_idx),
            FenceStrategy::AfterProgress => self.poll_rmb_on_progress(used_idx, last_seen),
        }
    }

    /// [`FenceStrategy::Acquire`]: load, then the read barrier, on every poll. The barrier sits
    /// *after* the load: it orders the load (and the device publish it observed) before the
    /// element read that follows; a barrier before the load (where one earlier driver put its
    /// `virtio_rmb()`) orders nothing about the value the load returns.
    #[inline(never)]
    fn poll_then_rmb(&mut self, used_idx: &AtomicU16) -> u16 {
        // Relaxed load + the read barrier = an acquire of the device's publish (2.7.8.2).
        let idx = used_idx.load(Ordering::Relaxed);
        barrier::dma_rmb();
        self.counts.acquire += 1;
        idx
    }

    /// [`FenceStrategy::SeqCst`]: load, then a full barrier, on every poll.
    #[inline(never)]
    fn poll_then_mb(&mut self, used_idx: &AtomicU16) -> u16 {
        let idx = used_idx.load(Ordering::Relaxed);
        // Full barrier after the load: a read barrier and more (heavier than needed on purpose).
        barrier::mb();
        self.counts.full += 1;
        idx
    }

    /// [`FenceStrategy::AfterProgress`]: load without a barrier; the read barrier only when
    /// the index moved, before the caller reads the element (Linux's `virtqueue_get_buf`).
    #[inline(never)]
    fn poll_rmb_on_progress(&mut self, used_idx: &AtomicU16, last_seen: u16) -> u16 {
        let idx = used_idx.load(Ordering::Relaxed);
        if idx != last_seen {
            // The relaxed load that saw the device's value plus this barrier order the device's
            // element writes before the caller's element read.
            barrier::dma_rmb();
            self.counts.acquire += 1;
        }
        idx
    }
}

/// Before the QueueNotify MMIO store: earlier ring stores become visible to the device no later
/// than the doorbell (Linux's `writel` = `__iowmb()` (`dma_wmb`) + the store; 2.7.13 step 7:
/// notify only after the index is exposed). Device memory (nGnRE) is not ordered against Normal
/// memory by itself. Not counted: the transport, not a queue, rings the doorbell.
#[inline(always)]
pub(crate) fn before_doorbell() {
    barrier::dma_wmb();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip_and_default_is_acquire() {
        for s in FenceStrategy::ALL {
            assert_eq!(FenceStrategy::parse(s.name()), Some(s));
        }
        assert_eq!(FenceStrategy::parse("bogus"), None);
        assert_eq!(FenceStrategy::default(), FenceStrategy::Acquire);
        assert!(FenceStrategy::AfterProgress.skips_fence_on_empty_polls());
        assert!(!FenceStrategy::Acquire.skips_fence_on_empty_polls());
        assert!(!FenceStrategy::SeqCst.skips_fence_on_empty_polls());
    }

    #[test]
    fn poll_counts_one_barrier_per_poll_except_after_progress() {
        let idx = AtomicU16::new(0);
        for s in FenceStrategy::ALL {
            let mut f = DmaFence::new(s);
            for _ in 0..10 {
                assert_eq!(f.poll_used_idx(&idx, 0), 0);
            }
            let expected = if s == FenceStrategy::AfterProgress { 0 } else { 10 };
            assert_eq!(f.counts().total(), expected, "{s:?}");
            idx.store(1, Ordering::Relaxed);
            assert_eq!(f.poll_used_idx(&idx, 0), 1);
            assert_eq!(f.counts().total(), expected + 1, "{s:?}");
            idx.store(0, Ordering::Relaxed);
        }
    }
}
