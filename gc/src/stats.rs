//! Counters: per-core (written only by their core, or during stop-the-world) and per-collector
//! (written by the core running the cycle). Readers may see slightly stale values.

use core::sync::atomic::{AtomicU64, Ordering};

/// A counter with one writer at a time.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    // Ordering: Relaxed; a counter orders nothing, and its single-writer rule (own core, or
    // stop-the-world) means load + store never loses an increment and stays a plain ldr/add/str.
    /// Add one.
    #[inline(always)]
    pub fn bump(&self) {
        self.add(1)
    }
    /// Add `n`.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed)
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Set the value (reset, max tracking).
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
}

/// Per-core counters.
#[derive(Default)]
pub struct CoreStats {
    /// Barriers that took the recording path (flag on). Buffered ones are counted a pair at a
    /// time when their buffer is flushed (the fast path counts nothing).
    pub barriers: Counter,
    /// wbBuf flushes that shaded or handed their records over (not discards).
    pub flushes: Counter,
    /// Those of `flushes` that handed the records over to the markers (`mark::Batches`).
    pub handoffs: Counter,
    /// Objects this core shaded (white to grey, or allocated black).
    pub shaded: Counter,
    /// Bytes this core marked in the current cycle (reset at cycle start).
    pub bytes_marked: Counter,
    /// Checked-mode reports raised on this core.
    pub checked_reports: Counter,
    /// Objects allocated.
    pub allocs: Counter,
    /// Objects allocated black (during a mark; they are counted in `shaded` too).
    pub allocs_black: Counter,
    /// Bytes of marking this core's allocations owe the running mark (`Collector::assist_alloc`).
    pub assist_debt: Counter,
    /// Bytes this core allocated past the trigger since it last helped a running sweep
    /// (`Collector::help_sweep`).
    pub sweep_debt: Counter,
    /// Mark assists run on this core, the bytes they marked and their time (ns).
    pub assists: Counter,
    pub assist_bytes: Counter,
    pub ns_assist: Counter,
}

impl CoreStats {
    /// All zero.
    pub const fn new() -> Self {
        CoreStats {
            barriers: Counter::new(),
            flushes: Counter::new(),
            handoffs: Counter::new(),
            shaded: Counter::new(),
            bytes_marked: Counter::new(),
            checked_reports: Counter::new(),
            allocs: Counter::new(),
            allocs_black: Counter::new(),
            assist_debt: Counter::new(),
            sweep_debt: Counter::new(),
            assists: Counter::new(),
            assist_bytes: Counter::new(),
            ns_assist: Counter::new(),
        }
    }
}

/// Collector-wide counters, written by the core running a cycle.
#[derive(Default)]
pub struct CycleStats {
    /// Completed cycles.
    pub cycles: Counter,
    /// Completed marks (bumped at mark termination, world stopped): the heap's garbage is
    /// known from then on, and allocators can find room by sweeping before the cycle completes.
    pub marks: Counter,
    /// Total ns in the first stop-the-world (sweep termination, barrier on, root scan).
    pub ns_mark_setup: Counter,
    /// Total ns of concurrent marking.
    pub ns_concurrent_mark: Counter,
    /// Total ns in mark termination stop-the-world (flush, drain, verify).
    pub ns_mark_termination: Counter,
    /// Total ns sweeping by the collecting core.
    pub ns_sweep: Counter,
    /// Number of stop-the-world pauses.
    pub pauses: Counter,
    /// Sum of pause lengths (ns).
    pub pause_total_ns: Counter,
    /// Longest pause (ns).
    pub pause_max_ns: Counter,
    /// Bytes marked (live) at the end of the last cycle.
    pub last_marked_bytes: Counter,
    /// Bytes freed by sweeping, all cycles.
    pub bytes_freed: Counter,
    /// Objects freed by sweeping, all cycles.
    pub objects_freed: Counter,
    /// Objects the verifier found reachable but unmarked, all cycles.
    pub verifier_misses: Counter,
    /// Task stacks or saved registers the root census found unscanned, all cycles.
    pub unscanned: Counter,
    /// Total ns spent in the verifier (inside the mark termination pause).
    pub ns_verify: Counter,
    /// Mark terminations that found grey objects and went back to concurrent marking.
    pub mark_restarts: Counter,
}

impl CycleStats {
    pub(crate) const fn new() -> Self {
        CycleStats {
            cycles: Counter::new(),
            marks: Counter::new(),
            ns_mark_setup: Counter::new(),
            ns_concurrent_mark: Counter::new(),
            ns_mark_termination: Counter::new(),
            ns_sweep: Counter::new(),
            pauses: Counter::new(),
            pause_total_ns: Counter::new(),
            pause_max_ns: Counter::new(),
            last_marked_bytes: Counter::new(),
            bytes_freed: Counter::new(),
            objects_freed: Counter::new(),
            verifier_misses: Counter::new(),
            unscanned: Counter::new(),
            ns_verify: Counter::new(),
            mark_restarts: Counter::new(),
        }
    }

    pub(crate) fn record_pause(&self, ns: u64) {
        self.pauses.bump();
        self.pause_total_ns.add(ns);
        if ns > self.pause_max_ns.get() {
            self.pause_max_ns.set(ns);
        }
    }
}

/// A copy of all counters, summed over cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub cycles: u64,
    pub ns_mark_setup: u64,
    pub ns_concurrent_mark: u64,
    pub ns_mark_termination: u64,
    pub ns_sweep: u64,
    pub pauses: u64,
    pub pause_max_ns: u64,
    pub pause_mean_ns: u64,
    pub barriers: u64,
    pub flushes: u64,
    /// Flushes that handed their records over to the markers.
    pub handoffs: u64,
    pub objects_shaded: u64,
    pub last_marked_bytes: u64,
    pub bytes_freed: u64,
    pub objects_freed: u64,
    pub allocs: u64,
    pub verifier_misses: u64,
    /// Task stacks or saved registers the root census found unscanned.
    pub unscanned: u64,
    /// Time in the verifier (included in the pauses).
    pub ns_verify: u64,
    pub mark_restarts: u64,
    pub checked_reports: u64,
    /// Bytes in allocated objects right now.
    pub heap_in_use: u64,
    /// Heap size in bytes.
    pub heap_size: u64,
    /// Mark assists (`Collector::assist_alloc`), the bytes they marked and their time.
    pub assists: u64,
    pub assist_bytes: u64,
    pub ns_assist: u64,
}
