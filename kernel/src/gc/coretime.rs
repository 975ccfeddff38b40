//! Time each core spent on garbage collection, for the dashboard's per-core bars, from the
//! per-core event recorder's running totals (`crate::timeline`): GC time is every state but
//! mutator and idle (pauses, the collecting task's cycle, mark workers, stack scans, flushes,
//! sweeps), and a core's elapsed time leaves out its halted time (idle in `wfi`), as MMU does.

use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_timeline::state::COUNT;
use tricolor_timeline::{Category, State};

// Ordering: Relaxed throughout; a baseline for a picture.
static SINCE: [[AtomicU64; COUNT]; MAX_CORES] = [const { [const { AtomicU64::new(0) }; COUNT] }; MAX_CORES];

/// Starts (or restarts) the accounting now.
pub fn start() {
    for (core, since) in SINCE.iter().enumerate() {
        for (s, t) in since.iter().zip(crate::timeline::totals(core)) {
            s.store(t, Ordering::Relaxed);
        }
    }
}

/// `core`'s GC time and its time not halted since [`start`] (ns).
pub fn of(core: usize) -> (u64, u64) {
    let Some(since) = SINCE.get(core) else { return (0, 0) };
    let totals = crate::timeline::totals(core);
    let (mut gc, mut busy) = (0u64, 0u64);
    for (state, (&now, then)) in State::ALL.into_iter().zip(totals.iter().zip(since)) {
        let ticks = now.saturating_sub(then.load(Ordering::Relaxed));
        match state.category() {
            Category::Gc => {
                gc += ticks;
                busy += ticks;
            }
            Category::Mutator => busy += ticks,
            Category::Halted => {}
        }
    }
    let ns =
        |ticks: u64| (ticks as u128 * 1_000_000_000 / tricolor_arch::cpu::counter_frequency().max(1) as u128) as u64;
    (ns(gc), ns(busy))
}
