//! Time each core spent on garbage collection, for the dashboard's per-core bars: the collecting
//! core is charged its whole cycle, every other core the cycle's stop-the-world pauses, and a mark
//! worker's core its drain time. The rest of a core's time since [`start`] counts as mutator time
//! (in the demo every core runs mutators whenever it is not collecting).
//!
//! Deliberately simple and kept in this one module: a per-core event recorder (the pauses issue)
//! can replace it without touching its callers.

use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;

// Ordering: Relaxed throughout; these are statistics read for a picture.
static GC_NS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// When the accounting (re)started, ns since boot.
static SINCE_NS: AtomicU64 = AtomicU64::new(0);

/// Starts (or restarts) the accounting now.
pub fn start() {
    for gc in &GC_NS {
        gc.store(0, Ordering::Relaxed);
    }
    SINCE_NS.store(tricolor_arch::cpu::uptime_ns(), Ordering::Relaxed);
}

/// Charges `ns` of GC work to `core`.
pub fn add_gc(core: usize, ns: u64) {
    if let Some(gc) = GC_NS.get(core) {
        gc.fetch_add(ns, Ordering::Relaxed);
    }
}

/// `core`'s GC time and the time elapsed since [`start`] (ns).
pub fn of(core: usize) -> (u64, u64) {
    let elapsed = tricolor_arch::cpu::uptime_ns().saturating_sub(SINCE_NS.load(Ordering::Relaxed));
    let gc = GC_NS.get(core).map_or(0, |g| g.load(Ordering::Relaxed));
    (gc.min(elapsed), elapsed)
}
