//! `suite=gcbench` and `suite=gcbench-quick`: Boehm's GCBench (binary trees) on every core.
//!
//! Each core runs the whole benchmark, as multi-threaded ports do: a stretch tree, a long-lived
//! tree and a long-lived array of doubles, then top-down (`populate`) and bottom-up (`make_tree`)
//! trees of growing depth, `2 * size(stretch) / size(depth)` of each, and Boehm's final check of
//! the long-lived data. The benchmark is `tricolor_gc::workload::gcbench`, the code the host's
//! `gcbench` example runs; this is its kernel driver. The full size uses Boehm's parameters
//! (stretch 18, long-lived 16, 500 000 doubles, depths 4..=16); the quick size is for stress runs.
//! Collections come from heap growth (`gc.percent=`) or torture mode.
//!
//! Rooting: a mutator's stack is scanned (conservatively) like every task's, so the benchmark's
//! handles in locals, the subtrees of a bottom-up tree among them, need no roots. The long-lived
//! tree, the top-down tree being built and, once filled, the array are also kept in this core's
//! global roots (`.gcroots`), for the checks to walk.
//!
//! GCBench only stores pointers into objects allocated during the same cycle or before it was
//! built: it never hides an old object behind an overwritten pointer, so a broken barrier cannot
//! lose anything here, and the negative control does not apply.

use super::{Census, Length, Workload};
use crate::gc::{self, Kernel};
use crate::percore;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_gc::workload::gcbench::{self as bench, DoubleArray, Failure, Milestone, Node, RootArray, Rooting, Shape};
use tricolor_gc::{AllocError, Collector, Gc, GcSlot, Trace};
use tricolor_kernel::cmdline::Config;

/// Boehm's parameters.
const FULL: Shape = bench::BOEHM;
const FULL_ARRAY: usize = FULL.array_len;
/// A size that finishes in seconds under TCG, for stress matrices.
const QUICK: Shape = Shape { stretch_depth: 14, long_lived_depth: 12, array_len: 50_000, min_depth: 4, max_depth: 12 };
const QUICK_ARRAY: usize = QUICK.array_len;

pub const WORKLOAD: Workload = Workload {
    name: "gcbench",
    about: "Boehm's GCBench on every core: stretch 18, long-lived 16, 500k doubles, depths 4..=16",
    length: Length::Work,
    exercises_barrier: false,
    prepare: prepare_full,
    mutate: mutate_full,
    check: check_full,
    finish: finish_full,
};

pub const WORKLOAD_QUICK: Workload = Workload {
    name: "gcbench-quick",
    about: "GCBench at a stress-run size: stretch 14, long-lived 12, 50k doubles, depths 4..=12",
    length: Length::Work,
    exercises_barrier: false,
    prepare: prepare_quick,
    mutate: mutate_quick,
    check: check_quick,
    finish: finish_quick,
};

/// Per-core roots: the long-lived tree, the tree being built (so checks walk it too) and the
/// array of each size.
#[unsafe(link_section = ".gcroots")]
static LONG_LIVED: [GcSlot<Node>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static TEMP: [GcSlot<Node>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static ARRAY_FULL: [GcSlot<DoubleArray<FULL_ARRAY>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static ARRAY_QUICK: [GcSlot<DoubleArray<QUICK_ARRAY>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];

/// Set when a core could not allocate even after a collection (its run stops).
static OUT_OF_MEMORY: AtomicBool = AtomicBool::new(false);
/// Cores that completed the benchmark and passed Boehm's final check.
static COMPLETED: AtomicU64 = AtomicU64::new(0);

/// One core's mutator, rooting as the module docs say. It lives on the task's (scanned) stack, so
/// the array it holds until the array is filled is rooted; only then does it go into the global
/// root (`array_root`), where the checks read every entry.
struct Mutator<const N: usize> {
    core: usize,
    array_root: &'static GcSlot<DoubleArray<N>>,
    array: Option<Gc<DoubleArray<N>>>,
}

impl<const N: usize> Rooting for Mutator<N> {
    type P = Kernel;

    fn collector(&self) -> &Collector {
        gc::collector()
    }

    fn alloc<T: Trace>(&mut self) -> Result<Gc<T>, AllocError> {
        gc::alloc::<T>().inspect_err(|_| super::count_refused())
    }

    /// Nothing to do: every interrupt taken with preemption enabled is a safe point.
    fn safe_point(&mut self) {}

    /// Nothing to do: the subtree is in a local, on this task's scanned stack.
    fn push(&mut self, _: Gc<Node>) {}

    fn pop(&mut self) {}

    fn root_long_lived(&mut self, node: Gc<Node>) {
        LONG_LIVED[self.core].set::<Kernel>(Some(node));
    }

    fn root_temp(&mut self, node: Option<Gc<Node>>) {
        TEMP[self.core].set::<Kernel>(node);
    }

    fn stopping(&self) -> bool {
        super::stopping()
    }

    /// The kernel's suites time the whole run: only the filled array is published here.
    fn reached(&mut self, milestone: Milestone) {
        if milestone == Milestone::LongLived {
            self.array_root.set::<Kernel>(self.array);
        }
    }
}

impl<const N: usize> RootArray<N> for Mutator<N> {
    fn root_array(&mut self, array: Gc<DoubleArray<N>>) {
        self.array = Some(array);
    }
}

/// The whole benchmark on this core; counts it in [`COMPLETED`] if Boehm's final check passed.
fn run<const N: usize>(shape: &Shape, arrays: &'static [GcSlot<DoubleArray<N>>; MAX_CORES]) {
    let core = percore::id();
    match bench::run(&mut Mutator { core, array_root: &arrays[core], array: None }, shape) {
        Ok(_) => {
            COMPLETED.fetch_add(1, Ordering::Relaxed);
        }
        Err(Failure::OutOfMemory(why)) => {
            if !OUT_OF_MEMORY.swap(true, Ordering::Relaxed) {
                log::error!("gcbench: core {core}: {why}");
            }
        }
        Err(Failure::Corrupt(why)) => log::error!("gcbench: core {core}: {why}"),
        Err(Failure::Stopped) => {}
    }
}

/// Walks a tree, counting nodes and payload mismatches (iteratively: trees are 17 deep, but a
/// corrupt one could be anything).
fn walk(root: Option<Gc<Node>>, census: &mut Census) {
    let mut stack: alloc::vec::Vec<Gc<Node>> = root.into_iter().collect();
    while let Some(node) = stack.pop() {
        census.reachable += 1;
        if !node.payload_consistent() {
            census.corrupt += 1;
            log::error!("gcbench: tree node {:#x} is corrupt (i {:#x})", node.addr(), node.i.load(Ordering::Relaxed));
            continue;
        }
        stack.extend(node.left.get());
        stack.extend(node.right.get());
    }
}

/// Array entries the per-cycle check samples, half of them in the filled half (the end-of-run
/// check reads all of them).
const SAMPLES: usize = 2048;

/// Checks every `every`-th entry of each core's array.
fn check_arrays<const N: usize>(arrays: &[GcSlot<DoubleArray<N>>], every: usize, census: &mut Census) {
    for array in arrays.iter().filter_map(GcSlot::get) {
        census.reachable += 1;
        if let Some(i) = bench::first_wrong(&array.data, every) {
            census.corrupt += 1;
            log::error!("gcbench: array {:#x} is corrupt at index {i}", array.addr());
        }
    }
}

fn check_trees(census: &mut Census) {
    for slot in LONG_LIVED.iter().chain(&TEMP) {
        walk(slot.get(), census);
    }
}

fn prepare(config: &Config<'_>, shape: &Shape) -> Result<(), String> {
    for slot in LONG_LIVED.iter().chain(&TEMP) {
        slot.set::<Kernel>(None);
    }
    OUT_OF_MEMORY.store(false, Ordering::Relaxed);
    COMPLETED.store(0, Ordering::Relaxed);
    // Peak live data per core: the stretch tree, or the long-lived tree, the array and the biggest
    // temporary tree together.
    let per_core = shape.peak_live_bytes();
    let need = per_core * percore::online_count();
    if config.gc_heap < need {
        return Err(alloc::format!(
            "needs gc.heap of at least {} MiB at {} cores (live data peaks near {} MiB per core)",
            need.div_ceil(1 << 20),
            percore::online_count(),
            per_core.div_ceil(1 << 20)
        ));
    }
    Ok(())
}

fn finish(arrays_ok: bool) -> Result<(), String> {
    let cores = percore::online_count() as u64;
    let completed = COMPLETED.load(Ordering::Relaxed);
    if OUT_OF_MEMORY.load(Ordering::Relaxed) {
        return Err(String::from("the GC heap ran out (see the error above)"));
    }
    if completed != cores || !arrays_ok {
        return Err(alloc::format!("{completed} of {cores} cores completed the benchmark with intact long-lived data"));
    }
    Ok(())
}

fn prepare_full(config: &Config<'_>) -> Result<(), String> {
    ARRAY_FULL.iter().for_each(|s| s.set::<Kernel>(None));
    prepare(config, &FULL)
}

fn prepare_quick(config: &Config<'_>) -> Result<(), String> {
    ARRAY_QUICK.iter().for_each(|s| s.set::<Kernel>(None));
    prepare(config, &QUICK)
}

fn mutate_full(_: u64) {
    run(&FULL, &ARRAY_FULL);
}

fn mutate_quick(_: u64) {
    run(&QUICK, &ARRAY_QUICK);
}

fn check_full() -> Census {
    let mut census = Census::default();
    check_trees(&mut census);
    check_arrays(&ARRAY_FULL, FULL_ARRAY / SAMPLES, &mut census);
    census
}

fn check_quick() -> Census {
    let mut census = Census::default();
    check_trees(&mut census);
    check_arrays(&ARRAY_QUICK, QUICK_ARRAY / SAMPLES, &mut census);
    census
}

fn all_entries_intact<const N: usize>(arrays: &[GcSlot<DoubleArray<N>>]) -> bool {
    let mut census = Census::default();
    check_arrays(arrays, 1, &mut census);
    census.corrupt == 0
}

fn finish_full() -> Result<(), String> {
    finish(all_entries_intact(&ARRAY_FULL))
}

fn finish_quick() -> Result<(), String> {
    finish(all_entries_intact(&ARRAY_QUICK))
}
