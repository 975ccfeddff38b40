//! Boehm's GCBench (binary trees), once for every driver: the host's threads
//! (`crate::gcbench`, the `gcbench` example and the unit tests) and the kernel's suites
//! `gcbench` and `gcbench-quick`. [`run`] is the whole benchmark on one mutator (a host thread,
//! a kernel core), like the multi-threaded GCBench ports:
//! 1. build a "stretch" tree of depth `stretch_depth` bottom up, check it and drop it;
//! 2. build a long-lived tree of depth `long_lived_depth` (top down) and an array of doubles
//!    (`array[i] = 1/i` for the first half) that stay live to the end;
//! 3. for every depth `d` in `min_depth..=max_depth` step 2, build `num_iters(d)` trees top down
//!    (Boehm's `Populate`) and as many bottom up (`MakeTree`), checking the top of each and
//!    dropping it at once;
//! 4. check the array and walk the long-lived tree (node count, per-node payload, every node an
//!    allocated node): corruption or a freed node shows up as an error, not as a number.
//!
//! A node's payload is its height `i` and [`payload_j`] of it, written before the node is linked
//! or rooted, so that a walk with the world stopped at any point (the kernel's per-cycle check)
//! finds every reachable node's payload consistent.
//!
//! # Rooting
//! The driver roots objects through a [`Rooting`]. It is told the long-lived tree and array
//! ([`Rooting::root_long_lived`], [`RootArray::root_array`]) and the top-down tree being built
//! ([`Rooting::root_temp`]) before the next allocation, and every finished subtree of an
//! unfinished bottom-up node ([`Rooting::push`], [`Rooting::pop`]): together these are every
//! handle the benchmark still needs when an allocation starts (a handle freshly returned by an
//! allocation is used before the next one, or linked into a rooted object). A driver whose
//! mutator's locals are not scanned (the host's) keeps them in root slots; one whose stacks are
//! scanned (the kernel's, conservatively) needs nothing for the shadow stack and may keep the
//! others in global roots for its checks.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::object::{Gc, GcSlot, Trace, HEADER_SIZE};
use crate::sizeclass::{class_for, CLASS_SIZES, HEAP_PAGE_SIZE, MAX_SMALL_SIZE};
use crate::{gc_type, AllocError, Collector, Platform};

gc_type! {
    /// A tree node as in GCBench: two children and two payload words. The payload is the node's
    /// height (`i`) and a word derived from it (`j`), so a freed (poisoned) or reused node fails
    /// the check.
    #[gc_type(name = "GcBenchNode")]
    #[repr(C)]
    pub struct Node {
        /// Left child.
        pub left: GcSlot<Node>,
        /// Right child.
        pub right: GcSlot<Node>,
        /// Height of the subtree rooted here (leaves are 0).
        pub i: AtomicU64,
        /// [`payload_j`] of `i`.
        pub j: AtomicU64,
    }
}

/// The payload word `j` of a node of height `i`.
pub fn payload_j(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x6763_6265_6E63_6821
}

impl Node {
    /// Write the payload of a node of `height`.
    pub fn set_payload(&self, height: u32) {
        // Ordering: Relaxed; the building thread reads its own writes, and a node is published
        // (linked or rooted, both Release stores) only after its payload is written.
        self.i.store(u64::from(height), Ordering::Relaxed);
        self.j.store(payload_j(u64::from(height)), Ordering::Relaxed);
    }

    /// Whether `j` is [`payload_j`] of `i` (a walk's check of a node whose height it does not know).
    pub fn payload_consistent(&self) -> bool {
        // Ordering: Relaxed; read with the world stopped or by the thread that wrote them.
        self.j.load(Ordering::Relaxed) == payload_j(self.i.load(Ordering::Relaxed))
    }
}

gc_type! {
    /// GCBench's array of doubles (`f64` bits in atomics: the kernel is soft-float, and its checks
    /// read the array from another core): one large object with no pointer slots.
    #[gc_type(name = "GcBenchDoubleArray")]
    #[repr(C)]
    pub struct DoubleArray<const N: usize> {
        /// The elements, as `f64::to_bits`.
        pub data: [AtomicU64; N],
    }
}

/// Number of nodes in a complete binary tree of depth `depth` (Boehm's `TreeSize`).
pub const fn tree_size(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

/// The benchmark's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Depth of the stretch tree (also the `num_iters` reference).
    pub stretch_depth: u32,
    /// Depth of the long-lived tree.
    pub long_lived_depth: u32,
    /// Elements in the long-lived array.
    pub array_len: usize,
    /// Smallest depth of the timed trees.
    pub min_depth: u32,
    /// Largest depth of the timed trees (step 2 from `min_depth`).
    pub max_depth: u32,
}

/// Boehm's parameters: stretch 18, long-lived 16, 500 000 doubles, depths 4..=16.
pub const BOEHM: Shape =
    Shape { stretch_depth: 18, long_lived_depth: 16, array_len: 500_000, min_depth: 4, max_depth: 16 };

impl Shape {
    /// Trees of each depth: as many nodes in all of them as in two stretch trees
    /// (Boehm's `NumIters`).
    pub const fn num_iters(&self, depth: u32) -> u64 {
        2 * tree_size(self.stretch_depth) / tree_size(depth)
    }

    /// The timed depths.
    pub fn depths(&self) -> impl Iterator<Item = u32> {
        (self.min_depth..=self.max_depth).step_by(2)
    }

    /// Objects one mutator allocates (every node and the array).
    pub fn allocs_per_thread(&self) -> u64 {
        let timed: u64 = self.depths().map(|d| 2 * self.num_iters(d) * tree_size(d)).sum();
        tree_size(self.stretch_depth) + tree_size(self.long_lived_depth) + 1 + timed
    }

    /// The largest live set of one mutator in heap bytes: the stretch tree, or the long-lived tree,
    /// the array (its own pages) and one timed tree of the largest depth.
    pub fn peak_live_bytes(&self) -> usize {
        let tree = |d: u32| tree_size(d) as usize * node_bytes();
        let array = (self.array_len * size_of::<u64>() + HEADER_SIZE).next_multiple_of(HEAP_PAGE_SIZE);
        tree(self.stretch_depth).max(tree(self.long_lived_depth) + array + tree(self.max_depth))
    }
}

/// Bytes a node occupies in the heap (its size class, header included).
pub fn node_bytes() -> usize {
    CLASS_SIZES[class_for(size_of::<Node>() + HEADER_SIZE).expect("a node is a small object")]
}

/// A point [`run`] has just passed, for a driver that times the phases ([`Rooting::reached`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    /// The stretch tree is built and checked.
    Stretched,
    /// The long-lived tree is built and the array filled.
    LongLived,
    /// The top-down trees of a depth are built.
    TopDown(u32),
    /// The bottom-up trees of a depth are built.
    BottomUp(u32),
    /// Every tree is built; the final check comes next.
    Built,
}

/// How a mutator allocates and roots what the benchmark holds (module docs).
pub trait Rooting {
    /// The platform the collector runs on (for the barriered stores).
    type P: Platform;

    /// The collector (the final walk looks every node up in its heap).
    fn collector(&self) -> &Collector;

    /// Allocate a zeroed `T`, reaching a safe point first if the driver has them. The caller keeps
    /// the rooting rule (module docs).
    fn alloc<T: Trace>(&mut self) -> Result<Gc<T>, AllocError>;

    /// A safe point in a long loop without allocations, everything the loop needs rooted.
    fn safe_point(&mut self);

    /// Hold `node`, a finished subtree of a bottom-up node not yet allocated.
    fn push(&mut self, node: Gc<Node>);

    /// Drop the last subtree pushed.
    fn pop(&mut self);

    /// Root the long-lived tree (before it is built).
    fn root_long_lived(&mut self, node: Gc<Node>);

    /// Root the top-down tree being built (before it is), or `None` once it is dropped.
    fn root_temp(&mut self, node: Option<Gc<Node>>);

    /// Whether to stop before the next tree (another mutator failed, the driver is stopping).
    fn stopping(&self) -> bool;

    /// [`run`] has just passed `milestone`.
    fn reached(&mut self, milestone: Milestone);
}

/// How a mutator roots the long-lived array of `N` doubles.
pub trait RootArray<const N: usize>: Rooting {
    /// Root the array, right after its allocation (before it is filled, with safe points in
    /// between: [`Milestone::LongLived`] says when it is filled).
    fn root_array(&mut self, array: Gc<DoubleArray<N>>);
}

/// Why [`run`] stopped.
#[derive(Debug)]
pub enum Failure {
    /// An allocation failed (the heap stayed full): what was being built, and the error.
    OutOfMemory(String),
    /// A tree or the array is not what was built.
    Corrupt(String),
    /// [`Rooting::stopping`] said so.
    Stopped,
}

/// A node of `height`, its payload written.
fn new_node<R: Rooting>(r: &mut R, height: u32) -> Result<Gc<Node>, AllocError> {
    let node = r.alloc::<Node>()?;
    node.set_payload(height);
    Ok(node)
}

/// Boehm's `MakeTree`: a tree of `depth` built bottom up. The returned handle is held by nothing;
/// the caller uses it before its next allocation or roots it.
pub fn make_tree<R: Rooting>(r: &mut R, depth: u32) -> Result<Gc<Node>, AllocError> {
    if depth == 0 {
        return new_node(r, 0);
    }
    let left = make_tree(r, depth - 1)?;
    r.push(left);
    let right = make_tree(r, depth - 1)?;
    r.push(right);
    let node = new_node(r, depth)?;
    node.left.set::<R::P>(Some(left));
    node.right.set::<R::P>(Some(right));
    r.pop();
    r.pop();
    Ok(node)
}

/// Boehm's `Populate`: give `node` (of height `depth`, its payload written) children down to
/// `depth` levels, top down. `node` must be rooted or reachable from a root; its children then are
/// too, through it.
pub fn populate<R: Rooting>(r: &mut R, depth: u32, node: Gc<Node>) -> Result<(), AllocError> {
    if depth == 0 {
        return Ok(());
    }
    let left = new_node(r, depth - 1)?;
    node.left.set::<R::P>(Some(left));
    let right = new_node(r, depth - 1)?;
    node.right.set::<R::P>(Some(right));
    populate(r, depth - 1, left)?;
    populate(r, depth - 1, right)
}

/// What [`run`] leaves: the long-lived objects (still rooted) and the nodes the final walk counted.
pub struct Done<const N: usize> {
    /// The long-lived tree.
    pub long_lived: Gc<Node>,
    /// The long-lived array.
    pub array: Gc<DoubleArray<N>>,
    /// Nodes of the long-lived tree verified.
    pub verified_nodes: u64,
}

/// The whole benchmark on one mutator (module docs), `shape.array_len` being `N`.
pub fn run<const N: usize, R: RootArray<N>>(r: &mut R, shape: &Shape) -> Result<Done<N>, Failure> {
    // The array is a large object: its own span, no pointer slots.
    const { assert!(size_of::<DoubleArray<N>>() + HEADER_SIZE > MAX_SMALL_SIZE) };
    assert_eq!(shape.array_len, N);
    let oom = |what: &str, e: AllocError| Failure::OutOfMemory(format!("{what}: {e}"));

    let stretch = make_tree(r, shape.stretch_depth).map_err(|e| oom("building the stretch tree", e))?;
    check_top(stretch, shape.stretch_depth).map_err(Failure::Corrupt)?;
    r.reached(Milestone::Stretched);

    let long_lived = new_node(r, shape.long_lived_depth).map_err(|e| oom("allocating the long-lived tree", e))?;
    r.root_long_lived(long_lived);
    populate(r, shape.long_lived_depth, long_lived).map_err(|e| oom("building the long-lived tree", e))?;
    let array = r.alloc::<DoubleArray<N>>().map_err(|e| oom("allocating the array", e))?;
    r.root_array(array);
    for (i, e) in array.data.iter().enumerate().take(N / 2) {
        // Ordering: Relaxed; the world is stopped whenever another core reads the elements.
        e.store(array_value(i, N), Ordering::Relaxed);
        if i.is_multiple_of(4096) {
            // Both long-lived objects are rooted.
            r.safe_point();
        }
    }
    r.reached(Milestone::LongLived);

    for depth in shape.depths() {
        time_construction(r, shape, depth)?;
    }
    r.reached(Milestone::Built);

    let verified_nodes = verify_tree(r, long_lived, shape.long_lived_depth)
        .map_err(|e| Failure::Corrupt(format!("long-lived tree corrupted: {e}")))?;
    verify_array(&array.data).map_err(|e| Failure::Corrupt(format!("long-lived array corrupted: {e}")))?;
    Ok(Done { long_lived, array, verified_nodes })
}

/// Boehm's `TimeConstruction`: `num_iters(depth)` trees top down, then as many bottom up.
fn time_construction<R: Rooting>(r: &mut R, shape: &Shape, depth: u32) -> Result<(), Failure> {
    let iters = shape.num_iters(depth);
    let oom = |how: &str, e: AllocError| Failure::OutOfMemory(format!("building a {how} tree of depth {depth}: {e}"));
    for _ in 0..iters {
        if r.stopping() {
            return Err(Failure::Stopped);
        }
        let root = new_node(r, depth).map_err(|e| oom("top-down", e))?;
        r.root_temp(Some(root));
        populate(r, depth, root).map_err(|e| oom("top-down", e))?;
        check_top(root, depth).map_err(Failure::Corrupt)?;
        r.root_temp(None);
    }
    r.reached(Milestone::TopDown(depth));
    for _ in 0..iters {
        if r.stopping() {
            return Err(Failure::Stopped);
        }
        let root = make_tree(r, depth).map_err(|e| oom("bottom-up", e))?;
        check_top(root, depth).map_err(Failure::Corrupt)?;
    }
    r.reached(Milestone::BottomUp(depth));
    Ok(())
}

/// Walk the tree at `root` (rooted, not mutated meanwhile) and check it is complete to `depth` with
/// intact payloads; returns its node count. Every child is looked up in the heap before it is read,
/// so a freed or bogus pointer is an error, not a crash.
pub fn verify_tree<R: Rooting>(r: &mut R, root: Gc<Node>, depth: u32) -> Result<u64, String> {
    check_allocated_node(r.collector(), root.addr())?;
    let mut count: u64 = 0;
    let mut todo = Vec::from([(root, depth)]);
    while let Some((n, height)) = todo.pop() {
        count += 1;
        if count.is_multiple_of(4096) {
            // The nodes on `todo` are reachable through the rooted tree: a cycle may start.
            r.safe_point();
        }
        // Ordering: Relaxed; this thread wrote the payload.
        let (i, j) = (n.i.load(Ordering::Relaxed), n.j.load(Ordering::Relaxed));
        if i != u64::from(height) || j != payload_j(i) {
            return Err(format!(
                "node {:#x} at height {height} has payload i={i:#x} j={j:#x}, expected i={height} j={:#x}",
                n.addr(),
                payload_j(u64::from(height))
            ));
        }
        for (side, slot) in [("left", &n.left), ("right", &n.right)] {
            match (slot.get(), height) {
                (None, 0) => {}
                (Some(child), 0) => return Err(format!("leaf {:#x} has a {side} child {:#x}", n.addr(), child.addr())),
                (None, _) => return Err(format!("node {:#x} at height {height} lacks its {side} child", n.addr())),
                (Some(child), _) => {
                    check_allocated_node(r.collector(), child.addr())?;
                    todo.push((child, height - 1));
                }
            }
        }
    }
    if count != tree_size(depth) {
        return Err(format!("tree of depth {depth} has {count} nodes, expected {}", tree_size(depth)));
    }
    Ok(count)
}

fn check_allocated_node(c: &Collector, addr: usize) -> Result<(), String> {
    let obj = c.heap.find_object(addr).ok_or_else(|| format!("node {addr:#x} is not allocated (freed?)"))?;
    let ty = c.heap.type_of(&obj);
    // Descriptors compare by content: a promoted constant need not have one address.
    if obj.base + HEADER_SIZE != addr || ty.name != Node::TYPE.name || ty.size != Node::TYPE.size {
        return Err(format!("{addr:#x} is not a node (object at {:#x} of type {})", obj.base, ty.name));
    }
    Ok(())
}

/// GCBench's array value at `i`: `1/i` in the first half (Boehm fills only that), 0 after.
pub fn array_value(i: usize, len: usize) -> u64 {
    if i < len / 2 {
        (1.0 / i as f64).to_bits()
    } else {
        0
    }
}

/// The first of every `stride`-th element (from 0) that does not hold its [`array_value`].
pub fn first_wrong(data: &[AtomicU64], stride: usize) -> Option<usize> {
    // Ordering: Relaxed; read by the thread that wrote them, or with the world stopped.
    (0..data.len()).step_by(stride.max(1)).find(|&i| data[i].load(Ordering::Relaxed) != array_value(i, data.len()))
}

/// Check every element; the message names Boehm's own check (`array[1000] == 1/1000`, at a
/// quarter of the length for short arrays) when that one fails.
pub fn verify_array(data: &[AtomicU64]) -> Result<(), String> {
    let len = data.len();
    let spot = 1000.min(len / 4);
    // Ordering: Relaxed; this thread wrote the elements.
    let got = f64::from_bits(data[spot].load(Ordering::Relaxed));
    if got != 1.0 / spot as f64 {
        return Err(format!("array[{spot}] = {got}, expected {}", 1.0 / spot as f64));
    }
    match first_wrong(data, 1) {
        None => Ok(()),
        Some(i) => {
            let v = data[i].load(Ordering::Relaxed);
            Err(format!(
                "array[{i}] = {} (bits {v:#x}), expected {}",
                f64::from_bits(v),
                f64::from_bits(array_value(i, len))
            ))
        }
    }
}

/// A cheap check of a freshly built tree (its root and the children's heights), in the timed loop.
pub fn check_top(root: Gc<Node>, depth: u32) -> Result<(), String> {
    // Ordering: Relaxed; this thread wrote the payload.
    let ok = root.i.load(Ordering::Relaxed) == u64::from(depth)
        && root.j.load(Ordering::Relaxed) == payload_j(u64::from(depth))
        && [&root.left, &root.right].into_iter().all(|s| match s.get() {
            Some(child) => depth > 0 && child.i.load(Ordering::Relaxed) == u64::from(depth - 1),
            None => depth == 0,
        });
    if ok {
        Ok(())
    } else {
        Err(format!("tree of depth {depth} at {:#x} is malformed right after building it", root.addr()))
    }
}
