//! Named, counted DMA barriers for the split virtqueue (tock's `DmaFence` idea).
//!
//! A virtqueue talks to a device through ordinary shared memory, so every ordering the protocol
//! needs is written down here once, by name, and counted: the `[VIRTIO PERF]` lines and the
//! fence-strategy experiment read these counts.
//!
//! The fences are `core::sync::atomic` fences. That is what a "weak barriers" virtio device needs
//! (Linux uses the `smp_*` barriers for virtio-mmio/pci): QEMU's device model runs on host
//! threads, coherent with the guest's inner-shareable domain. A device outside that domain would
//! want `dmb osh`-class barriers; the kernel would supply them here, behind the same names.

use core::sync::atomic::{fence, AtomicU16, Ordering};

/// How the driver orders its read of the used ring's `idx` against the used element it then reads.
///
/// Chosen on the kernel command line (`virtio.fence=`). The default is correct and the cheapest
/// barrier that is; the others exist to be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FenceStrategy {
    /// Default. Every poll reads `used.idx` with Acquire ordering (an `ldar`/`ldapr` on aarch64),
    /// so the barrier happens on every poll and the used element read after it sees what the
    /// device wrote before publishing that index (virtio 1.2, 2.7.14).
    #[default]
    Acquire,
    /// A full (SeqCst) fence after every poll's read of `used.idx`: the seed's original,
    /// heaviest-but-correct code (`dmb ish` per poll on aarch64).
    SeqCst,
    /// **BROKEN according to seed 002** — kept only as an experiment. Each poll reads `used.idx`
    /// with no ordering, and only when it sees progress issues the Acquire fence. Seed 002 reports
    /// that this variant made every GPU command ~100x slower (line-by-line rendering) and calls it
    /// the bug. Note for whoever measures it: under the Rust/C11 model the fence-after-progress
    /// still orders the used element read (relaxed load, then acquire fence, then the read) —
    /// it is the pattern Linux's `virtqueue_get_buf` uses — so any slowdown it shows must come
    /// from somewhere other than ordering. The experiment is there to find out.
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

    /// Whether this is the seed's variant labelled broken (log it when chosen).
    pub const fn is_seed_broken_variant(self) -> bool {
        matches!(self, FenceStrategy::AfterProgress)
    }
}

/// How many barriers of each kind a queue issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FenceCounts {
    /// Release fences before publishing `avail.idx`.
    pub release: u64,
    /// Full fences (store->load) before reading `used.flags` / `avail_event`, and per poll under
    /// [`FenceStrategy::SeqCst`].
    pub full: u64,
    /// Acquire barriers on the used side (Acquire loads of `used.idx`, or Acquire fences).
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

    /// Release: every descriptor and avail-ring entry written before this fence is visible to a
    /// device that observes any later store (the `avail.idx` publish). virtio 1.2, 2.7.13.3:
    /// "the driver MUST perform a suitable memory barrier before the idx update".
    pub(crate) fn before_publish(&mut self) {
        fence(Ordering::Release);
        self.counts.release += 1;
    }

    /// Full (SeqCst): orders the earlier `avail.idx` store before the later loads of
    /// `used.flags` / `avail_event`. Only a full barrier orders store->load; without it the
    /// driver can read a stale "don't notify" while the device reads the old `avail.idx`, and
    /// both sleep (virtio 1.2, 2.7.13.4 and 2.7.10; the Linux fix a72caae21803).
    pub(crate) fn before_suppression_check(&mut self) {
        fence(Ordering::SeqCst);
        self.counts.full += 1;
    }

    /// Full (SeqCst): orders the driver's store of `used_event` / avail flags (re-enabling used
    /// buffer notifications) before its re-check of `used.idx`, mirroring the device's side of
    /// 2.7.7 so a completion that raced the re-enable is not missed.
    pub(crate) fn before_recheck(&mut self) {
        fence(Ordering::SeqCst);
        self.counts.full += 1;
    }

    /// One poll of `used.idx`, ordered according to the strategy. Returns the index read; the
    /// caller reads used elements only for indices this returned.
    pub(crate) fn poll_used_idx(&mut self, used_idx: &AtomicU16, last_seen: u16) -> u16 {
        match self.strategy {
            FenceStrategy::Acquire => {
                // Acquire load: pairs with the device's Release publish of used.idx
                // (2.7.8.2: device writes the element, then idx); every element write before
                // that publish happens-before our element read (virtio 1.2, 2.7.14).
                self.counts.acquire += 1;
                used_idx.load(Ordering::Acquire)
            }
            FenceStrategy::SeqCst => {
                let idx = used_idx.load(Ordering::Relaxed);
                // SeqCst fence after the load: an acquire fence (and more), so the element read
                // after it is ordered after the idx the load saw. Heavier than needed on purpose.
                fence(Ordering::SeqCst);
                self.counts.full += 1;
                idx
            }
            FenceStrategy::AfterProgress => {
                // The seed's variant: no ordering on the poll itself...
                let idx = used_idx.load(Ordering::Relaxed);
                if idx != last_seen {
                    // ...and an Acquire fence only once progress is seen, before the element is
                    // read: the relaxed load that saw the device's value plus this fence
                    // synchronize with the device's Release publish.
                    fence(Ordering::Acquire);
                    self.counts.acquire += 1;
                }
                idx
            }
        }
    }
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
        assert!(FenceStrategy::AfterProgress.is_seed_broken_variant());
        assert!(!FenceStrategy::Acquire.is_seed_broken_variant());
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
