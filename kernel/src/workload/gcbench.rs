//! `suite=gcbench` and `suite=gcbench-quick`: Boehm's GCBench (binary trees) on every core.
//!
//! Each core runs the whole benchmark, as multi-threaded ports do: a stretch tree, a long-lived
//! tree and a long-lived array of doubles, then top-down (`populate`) and bottom-up (`make_tree`)
//! trees of growing depth, `2 * size(stretch) / size(depth)` of each. The full size uses Boehm's
//! parameters (stretch 18, long-lived 16, 500 000 doubles, depths 4..=16); the quick size is for
//! stress runs. Collections come from heap growth (`gc.percent=`) or torture mode.
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
use tricolor_gc::{gc_type, Gc, GcSlot};
use tricolor_kernel::cmdline::Config;

/// The benchmark's shape.
pub struct Params {
    pub stretch: u32,
    pub long_lived: u32,
    pub min_depth: u32,
    pub max_depth: u32,
}

/// Boehm's parameters.
const FULL: Params = Params { stretch: 18, long_lived: 16, min_depth: 4, max_depth: 16 };
const FULL_ARRAY: usize = 500_000;
/// A size that finishes in seconds under TCG, for stress matrices.
const QUICK: Params = Params { stretch: 14, long_lived: 12, min_depth: 4, max_depth: 12 };
const QUICK_ARRAY: usize = 50_000;

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

gc_type! {
    /// Boehm's `Node`: two children and two ints; `j` is a checksum of `i` here, so a walk can
    /// tell a live node from freed or reused memory.
    #[repr(C)]
    pub struct TreeNode {
        left: GcSlot<TreeNode>,
        right: GcSlot<TreeNode>,
        i: AtomicU64,
        j: AtomicU64,
    }
}

gc_type! {
    /// The long-lived array of doubles (bit patterns in atomics: the kernel is soft-float and the
    /// checker reads it from another core).
    #[repr(C)]
    pub struct Doubles<const N: usize> {
        values: [AtomicU64; N],
    }
}

/// What Boehm stores at index `i` (only the first half is filled).
fn expected(i: usize) -> u64 {
    (1.0 / i as f64).to_bits()
}

/// Per-core roots: the long-lived tree, the tree being built (so checks walk it too) and the
/// array of each size.
#[unsafe(link_section = ".gcroots")]
static LONG_LIVED: [GcSlot<TreeNode>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static TEMP: [GcSlot<TreeNode>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static ARRAY_FULL: [GcSlot<Doubles<FULL_ARRAY>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static ARRAY_QUICK: [GcSlot<Doubles<QUICK_ARRAY>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];

/// Set when a core could not allocate even after a collection (its run stops).
static OUT_OF_MEMORY: AtomicBool = AtomicBool::new(false);
/// Node ids (a node's `i`).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Cores that completed the benchmark and passed Boehm's final check.
static COMPLETED: AtomicU64 = AtomicU64::new(0);

fn tree_size(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

fn new_node(left: Option<Gc<TreeNode>>, right: Option<Gc<TreeNode>>) -> Option<Gc<TreeNode>> {
    match gc::alloc::<TreeNode>() {
        Ok(node) => {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            node.i.store(id, Ordering::Relaxed);
            node.j.store(super::checksum(id), Ordering::Relaxed);
            node.left.set::<Kernel>(left);
            node.right.set::<Kernel>(right);
            Some(node)
        }
        Err(e) => {
            if !OUT_OF_MEMORY.swap(true, Ordering::Relaxed) {
                log::error!("gcbench: {e}");
            }
            super::count_refused();
            None
        }
    }
}

/// Boehm's `Populate`: builds the tree top-down below `node`.
fn populate(depth: u32, node: Gc<TreeNode>) -> Option<()> {
    if depth == 0 {
        return Some(());
    }
    node.left.set::<Kernel>(Some(new_node(None, None)?));
    node.right.set::<Kernel>(Some(new_node(None, None)?));
    populate(depth - 1, node.left.get()?)?;
    populate(depth - 1, node.right.get()?)
}

/// Boehm's `MakeTree`: builds a tree bottom-up.
fn make_tree(depth: u32) -> Option<Gc<TreeNode>> {
    if depth == 0 {
        return new_node(None, None);
    }
    let left = make_tree(depth - 1)?;
    let right = make_tree(depth - 1)?;
    new_node(Some(left), Some(right))
}

/// Boehm's `TimeConstruction` for one depth.
fn construct(params: &Params, depth: u32, temp: &GcSlot<TreeNode>) -> Option<()> {
    let iterations = 2 * tree_size(params.stretch) / tree_size(depth);
    for _ in 0..iterations {
        let tree = new_node(None, None)?;
        temp.set::<Kernel>(Some(tree));
        populate(depth, tree)?;
        temp.set::<Kernel>(None);
    }
    for _ in 0..iterations {
        let tree = make_tree(depth)?;
        temp.set::<Kernel>(Some(tree));
        temp.set::<Kernel>(None);
    }
    Some(())
}

/// The whole benchmark on this core; `None` if the heap ran out.
fn bench<const N: usize>(params: &Params, array: &GcSlot<Doubles<N>>) -> Option<()> {
    let core = percore::id();
    let temp = &TEMP[core];
    // Stretch the heap.
    temp.set::<Kernel>(Some(make_tree(params.stretch)?));
    temp.set::<Kernel>(None);
    // The long-lived tree, rooted before it is built so checks walk it while it grows.
    let long_lived = new_node(None, None)?;
    LONG_LIVED[core].set::<Kernel>(Some(long_lived));
    populate(params.long_lived, long_lived)?;
    // The long-lived array.
    let doubles = match gc::alloc::<Doubles<N>>() {
        Ok(doubles) => doubles,
        Err(e) => {
            OUT_OF_MEMORY.store(true, Ordering::Relaxed);
            log::error!("gcbench: the long-lived array: {e}");
            return None;
        }
    };
    for (i, value) in doubles.values.iter().enumerate().take(N / 2).skip(1) {
        value.store(expected(i), Ordering::Relaxed);
    }
    array.set::<Kernel>(Some(doubles));
    for depth in (params.min_depth..=params.max_depth).step_by(2) {
        construct(params, depth, temp)?;
        if super::stopping() {
            return None;
        }
    }
    // Boehm's final check: the long-lived data survived.
    let ok = LONG_LIVED[core].get().is_some() && doubles.values[1000].load(Ordering::Relaxed) == expected(1000);
    if ok {
        COMPLETED.fetch_add(1, Ordering::Relaxed);
    } else {
        log::error!("gcbench: core {core}: the long-lived tree or array did not survive");
    }
    Some(())
}

/// Walks a tree, counting nodes and checksum mismatches (iteratively: trees are 17 deep, but a
/// corrupt one could be anything).
fn walk(root: Option<Gc<TreeNode>>, census: &mut Census) {
    let mut stack: alloc::vec::Vec<Gc<TreeNode>> = root.into_iter().collect();
    while let Some(node) = stack.pop() {
        census.reachable += 1;
        let i = node.i.load(Ordering::Relaxed);
        if node.j.load(Ordering::Relaxed) != super::checksum(i) {
            census.corrupt += 1;
            log::error!("gcbench: tree node {:#x} is corrupt (i {i:#x})", node.addr());
            continue;
        }
        stack.extend(node.left.get());
        stack.extend(node.right.get());
    }
}

/// Array entries the per-cycle check samples (the end-of-run check reads all of them).
const SAMPLES: usize = 1024;

/// Checks `every`-th entry of the filled half of each core's array.
fn check_arrays<const N: usize>(arrays: &[GcSlot<Doubles<N>>], every: usize, census: &mut Census) {
    for array in arrays.iter().filter_map(GcSlot::get) {
        census.reachable += 1;
        let bad = (1..N / 2).step_by(every.max(1)).find(|&i| array.values[i].load(Ordering::Relaxed) != expected(i));
        if let Some(i) = bad {
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

fn prepare(config: &Config<'_>, params: &Params, array_bytes: usize) -> Result<(), String> {
    for slot in LONG_LIVED.iter().chain(&TEMP) {
        slot.set::<Kernel>(None);
    }
    OUT_OF_MEMORY.store(false, Ordering::Relaxed);
    COMPLETED.store(0, Ordering::Relaxed);
    // Peak live data per core: the stretch tree (48-byte objects), or the long-lived tree, the
    // array and the biggest temporary tree together.
    let node_bytes = 48;
    let steady = (tree_size(params.long_lived) + tree_size(params.max_depth)) as usize * node_bytes + array_bytes;
    let per_core = steady.max(tree_size(params.stretch) as usize * node_bytes);
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
    prepare(config, &FULL, core::mem::size_of::<Doubles<FULL_ARRAY>>())
}

fn prepare_quick(config: &Config<'_>) -> Result<(), String> {
    ARRAY_QUICK.iter().for_each(|s| s.set::<Kernel>(None));
    prepare(config, &QUICK, core::mem::size_of::<Doubles<QUICK_ARRAY>>())
}

fn mutate_full(_: u64) {
    bench(&FULL, &ARRAY_FULL[percore::id()]);
}

fn mutate_quick(_: u64) {
    bench(&QUICK, &ARRAY_QUICK[percore::id()]);
}

fn check_full() -> Census {
    let mut census = Census::default();
    check_trees(&mut census);
    check_arrays(&ARRAY_FULL, FULL_ARRAY / 2 / SAMPLES, &mut census);
    census
}

fn check_quick() -> Census {
    let mut census = Census::default();
    check_trees(&mut census);
    check_arrays(&ARRAY_QUICK, QUICK_ARRAY / 2 / SAMPLES, &mut census);
    census
}

fn all_entries_intact<const N: usize>(arrays: &[GcSlot<Doubles<N>>]) -> bool {
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
