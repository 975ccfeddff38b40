//! Workloads: mutators that hammer the collector, one module each, described once by a
//! [`Workload`] and started on every core by one runner ([`start`] / [`stop`]). The default boot's
//! live demo runs them, and the kernel's stress suites (the `ktest` tree) drive them with
//! integrity checks after every cycle.
//!
//! - [`graph`]: random object-graph mutation on global roots (also the `gc-*` scenarios' mutator).
//! - [`gcbench`]: Boehm's GCBench (full size and a quick one).
//! - [`churn`]: ordinary kernel data structures (a hash map, an intrusive list) holding GC handles.
//! - [`large`]: large objects (their own spans) allocated, linked and dropped.
//! - [`framebuffer`]: the graph mutation while a painter presents frames from a framebuffer in
//!   the GC heap.
//!
//! A workload reports what it sees through [`report_corrupt`] and [`count_refused`]; the runner
//! stops it through [`stopping`].

pub mod churn;
pub mod framebuffer;
pub mod gcbench;
pub mod graph;
pub mod large;

use crate::{percore, smp, tasks};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_kernel::cmdline::Config;

/// What a stop-the-world walk of a workload's object graph found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Census {
    /// Objects reachable from the workload's roots.
    pub reachable: usize,
    /// Reachable objects whose payload does not match its checksum (freed, reused or torn).
    pub corrupt: usize,
}

/// How a workload ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// The mutators run until stopped.
    Cycles,
    /// The mutators finish a fixed amount of work (GCBench) and return.
    Work,
}

/// One workload.
pub struct Workload {
    pub name: &'static str,
    pub about: &'static str,
    pub length: Length,
    /// Whether a broken barrier can lose objects in this workload (it overwrites heap pointers to
    /// objects that existed before the cycle). Only such workloads can catch a negative control.
    pub exercises_barrier: bool,
    /// Set-up on the boot core before the mutators start.
    pub prepare: fn(&Config<'_>) -> Result<(), String>,
    /// One core's mutator: runs until [`stopping`] (or its work is done) with a per-core seed.
    pub mutate: fn(u64),
    /// Walks everything reachable from the workload's roots, with the world stopped.
    pub check: fn() -> Census,
    /// After the mutators have stopped: the workload's own end-of-run checks.
    pub finish: fn() -> Result<(), String>,
}

/// Every workload.
pub const ALL: &[&Workload] = &[
    &graph::WORKLOAD,
    &gcbench::WORKLOAD,
    &gcbench::WORKLOAD_QUICK,
    &churn::WORKLOAD,
    &large::WORKLOAD,
    &framebuffer::WORKLOAD,
];

/// Timer quantum while mutators run: they share their cores with each other and with the
/// collector's tasks.
pub const QUANTUM_US: u64 = 2000;
/// Stack per mutator task (GCBench recurses to depth 18).
const MUTATOR_STACK: usize = 64 * 1024;

// Ordering: STOP is a Relaxed flag (mutators poll it; stopping late is harmless). STARTED and
// SEED are written by the one task that starts mutators before it spawns them, and spawning
// publishes them (the run-queue lock). FINISHED is Release (a mutator's last stores are done) / Acquire (in
// `stop` and `finished`).
static STOP: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// The counter when the last mutator of the last [`start`] returned (the largest such reading).
static LAST_FINISH: AtomicU64 = AtomicU64::new(0);
/// Counter tick at which the first mutator of the last [`start`] returned (0: none yet). Relaxed:
/// a time stamp for a report, read after the run.
static FIRST_FINISHED_AT: AtomicU64 = AtomicU64::new(0);
/// Corruption the mutators saw themselves (walks, map lookups), and GC allocations refused
/// because the heap stayed full after a collection (the workloads back off and go on: running out
/// is expected at small heaps, not a failure).
static CORRUPT_SEEN: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// True once the runner wants the mutators to stop.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// A mutator saw a corrupt object (it logs the details itself).
pub fn report_corrupt() {
    CORRUPT_SEEN.fetch_add(1, Ordering::Relaxed);
}

/// A GC allocation was refused: the heap stayed full after a collection.
pub fn count_refused() {
    REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// Corrupt objects mutators met, and allocations refused, since the last [`start`].
pub fn seen() -> (u64, u64) {
    (CORRUPT_SEEN.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed))
}

/// How a started mutator runs its workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Once: a [`Length::Work`] workload returns when its work is done.
    Once,
    /// Again and again until [`stop`] (the demo keeps GCBench running).
    UntilStopped,
}

/// The run's seed (each mutator derives its own from it), written by [`start`] before it spawns.
static SEED: AtomicU64 = AtomicU64::new(1);
/// A mutator's argument: the workload's index in [`ALL`] (bits 0..8), its place among the
/// workloads started together (bits 8..16), and [`REPEAT_BIT`].
const REPEAT_BIT: usize = 1 << 16;

/// The mutator task (`arg`: see [`REPEAT_BIT`]). Its seed is the run's, made distinct per core
/// and per workload sharing the core (a workload started alone gets `seed ^ (core + 1) << 32`,
/// the seed `cargo xtask stress --replay` reproduces).
fn mutator(arg: usize) {
    let (index, place) = (arg & 0xff, (arg >> 8) & 0xff);
    let workload = ALL[index];
    let core = percore::id() as u64;
    let seed = SEED.load(Ordering::Relaxed) ^ ((core + 1) << 32) ^ ((place as u64) << 40);
    loop {
        (workload.mutate)(seed);
        if arg & REPEAT_BIT == 0 || stopping() {
            break;
        }
    }
    // Ordering: Relaxed; a statistic, read after `all_finished` (whose Acquire orders it).
    LAST_FINISH.fetch_max(cpu::counter(), Ordering::Relaxed);
    let _ = FIRST_FINISHED_AT.compare_exchange(0, cpu::counter(), Ordering::Relaxed, Ordering::Relaxed);
    FINISHED.fetch_add(1, Ordering::Release);
}

/// Prepares each of `workloads`, starts the timer tick on every core (if it is not running) and
/// one mutator task per workload on every online core, pinned (workloads keep per-core state). Returns how many
/// mutators were started. `seed` is the run's seed (each mutator derives its own from it).
pub fn start(workloads: &[&'static Workload], config: &Config<'_>, repeat: Repeat) -> Result<usize, String> {
    STOP.store(false, Ordering::Relaxed);
    STARTED.store(0, Ordering::Relaxed);
    FINISHED.store(0, Ordering::Relaxed);
    LAST_FINISH.store(0, Ordering::Relaxed);
    FIRST_FINISHED_AT.store(0, Ordering::Relaxed);
    CORRUPT_SEEN.store(0, Ordering::Relaxed);
    REFUSED.store(0, Ordering::Relaxed);
    SEED.store(config.seed, Ordering::Relaxed);
    for w in workloads {
        (w.prepare)(config).map_err(|why| alloc::format!("workload {} cannot start: {why}", w.name))?;
    }
    if !tasks::ticks_running() {
        // A cross-core call: only while the other cores are free to take it (before mutators run).
        smp::run_on_all(|_| tasks::start_tick(QUANTUM_US));
    }
    for core in 0..percore::online_count() {
        for (place, w) in workloads.iter().enumerate() {
            let index = ALL.iter().position(|a| core::ptr::eq(*a, *w)).expect("a workload of ALL");
            let spawn =
                tasks::Spawn { name: "mutator", stack_bytes: MUTATOR_STACK, pinned: Some(core), growable_from: None };
            let arg = index | (place << 8) | if repeat == Repeat::UntilStopped { REPEAT_BIT } else { 0 };
            tasks::spawn(spawn, mutator, arg)
                .map_err(|why| alloc::format!("cannot spawn a mutator on core {core}: {why}"))?;
            STARTED.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(STARTED.load(Ordering::Relaxed))
}

/// Mutators started by the last [`start`] that have returned.
pub fn finished() -> usize {
    FINISHED.load(Ordering::Acquire)
}

/// The counter reading when the last mutator of the last [`start`] returned (once
/// [`all_finished`]): the end of a run measured at the mutators, without what the driver does
/// after them.
pub fn last_finish_counter() -> u64 {
    LAST_FINISH.load(Ordering::Relaxed)
}

/// Counter tick at which the first mutator of the last [`start`] returned, if one has.
pub fn first_finished_at() -> Option<u64> {
    Some(FIRST_FINISHED_AT.load(Ordering::Relaxed)).filter(|&t| t != 0)
}

/// True once every mutator of the last [`start`] has returned.
pub fn all_finished() -> bool {
    finished() >= STARTED.load(Ordering::Relaxed)
}

/// Asks the mutators to stop and waits (yielding this core) until all have returned. The timer
/// tick keeps running.
pub fn stop() {
    STOP.store(true, Ordering::Relaxed);
    while !all_finished() {
        tasks::yield_now();
        cpu::relax();
    }
}

pub use tricolor_abi::rng::Rng;

/// What a payload word derived from `id` must hold.
pub fn checksum(id: u64) -> u64 {
    id.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x5eed
}
