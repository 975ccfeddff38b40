//! `graph`: seeded random object-graph mutation on every core: allocate (mixed sizes), rewire,
//! drop, hide children in roots. The collector's main stress workload, and the mutator of the
//! `gc-*` scenarios. Every core rewires a random object graph hanging off global roots while
//! collections run, and anything reachable can be checked for integrity (each node carries a
//! checksum of its id). Some nodes carry a payload blob of one of three sizes (small, mid-size
//! and a large-span object), so the graph mixes size classes; every blob word is a function of
//! the blob's id and is checked too.

use super::{checksum, Census, Length, Rng, Workload};
use crate::gc::Kernel;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_gc::{gc_type, Gc, GcSlot};

gc_type! {
    /// A graph node: two barriered pointer fields to other nodes, optional payload blobs, and a
    /// checksum that must survive.
    #[repr(C)]
    pub struct Node {
        left: GcSlot<Node>,
        right: GcSlot<Node>,
        small: GcSlot<Blob<SMALL_WORDS>>,
        mid: GcSlot<Blob<MID_WORDS>>,
        large: GcSlot<Blob<LARGE_WORDS>>,
        id: AtomicU64,
        check: AtomicU64,
    }
}

/// Blob sizes in words: a 32-byte object, a 512-byte one and one too big for a small span.
const SMALL_WORDS: usize = 3;
const MID_WORDS: usize = 63;
const LARGE_WORDS: usize = 1100;

gc_type! {
    /// A pointer-free payload: its id and `W` words derived from it.
    #[repr(C)]
    pub struct Blob<const W: usize> {
        id: AtomicU64,
        words: [AtomicU64; W],
    }
}

impl<const W: usize> Blob<W> {
    fn fill(&self, id: u64) {
        self.id.store(id, Ordering::Relaxed);
        for (i, word) in self.words.iter().enumerate() {
            word.store(checksum(id ^ ((i as u64) << 40)), Ordering::Relaxed);
        }
    }

    fn intact(&self) -> bool {
        let id = self.id.load(Ordering::Relaxed);
        self.words.iter().enumerate().all(|(i, w)| w.load(Ordering::Relaxed) == checksum(id ^ ((i as u64) << 40)))
    }
}

/// Allocates a filled blob into `slot`; false if the heap is full.
fn attach<const W: usize>(slot: &GcSlot<Blob<W>>, id: u64) -> bool {
    match crate::gc::alloc::<Blob<W>>() {
        Ok(blob) => {
            blob.fill(id);
            slot.set::<Kernel>(Some(blob));
            true
        }
        Err(_) => false,
    }
}

/// Whether every blob hanging off `node` holds its pattern.
fn blobs_intact(node: Gc<Node>) -> bool {
    node.small.get().is_none_or(|b| b.intact())
        && node.mid.get().is_none_or(|b| b.intact())
        && node.large.get().is_none_or(|b| b.intact())
}

/// Roots per core, in `.gcroots` (scanned precisely, stores barriered).
pub const ROOTS_PER_CORE: usize = 32;
#[unsafe(link_section = ".gcroots")]
static ROOTS: [GcSlot<Node>; MAX_CORES * ROOTS_PER_CORE] = [const { GcSlot::null() }; MAX_CORES * ROOTS_PER_CORE];

impl Node {
    /// What `left` points to.
    pub fn left(&self) -> Option<Gc<Node>> {
        self.left.get()
    }

    /// `left = value` through the write barrier.
    pub fn set_left(&self, value: Option<Gc<Node>>) {
        self.left.set::<Kernel>(value);
    }

    /// `left = value` as a plain Release store, no barrier: ONLY for the barrier benchmark's
    /// fast-path row (the same loop without its barrier), on an object nothing else reads.
    pub fn store_left_unbarriered(&self, value: Option<Gc<Node>>) {
        self.left.as_atomic().store(value.map_or(0, |g| g.addr()), Ordering::Release);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Corrupted nodes seen by mutators' walks (a freed or reused object still reachable).
pub static CORRUPT: AtomicU64 = AtomicU64::new(0);
/// Allocations, and allocations refused because the heap was full.
pub static ALLOCS: AtomicU64 = AtomicU64::new(0);
pub static ALLOC_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Barriered stores done by mutators.
pub static STORES: AtomicU64 = AtomicU64::new(0);

/// Gives a node outside the graph an id and its checksum, so [`node_intact`] can check it later.
pub fn stamp(node: Gc<Node>, id: u64) {
    node.id.store(id, Ordering::Relaxed);
    node.check.store(checksum(id), Ordering::Relaxed);
}

/// Whether a node (and its blobs) still holds what it was given (not freed, not reused).
pub fn node_intact(node: Gc<Node>) -> bool {
    intact(node)
}

fn intact(node: Gc<Node>) -> bool {
    node.check.load(Ordering::Relaxed) == checksum(node.id.load(Ordering::Relaxed)) && blobs_intact(node)
}

fn random_root(rng: &mut Rng, cores: usize) -> &'static GcSlot<Node> {
    &ROOTS[rng.below(cores * ROOTS_PER_CORE)]
}

/// A new node whose left child is `next` (so repeated pushes onto one root build chains: nodes
/// reachable only through heap edges, which is what a lost-object bug loses) and whose right
/// child is some root's node.
fn allocate(rng: &mut Rng, cores: usize, next: Option<Gc<Node>>) -> Option<Gc<Node>> {
    match crate::gc::alloc::<Node>() {
        Ok(node) => {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            node.id.store(id, Ordering::Relaxed);
            node.check.store(checksum(id), Ordering::Relaxed);
            node.left.set::<Kernel>(next);
            node.right.set::<Kernel>(random_root(rng, cores).get());
            // Mixed sizes: a quarter of the nodes carry a small blob, 1 in 16 a mid-size one,
            // 1 in 256 a large-span one (a failed blob allocation just leaves the slot empty).
            let blob = match rng.below(256) {
                0..64 => attach(&node.small, id),
                64..80 => attach(&node.mid, id),
                80 => attach(&node.large, id),
                _ => true,
            };
            if !blob {
                ALLOC_FAILURES.fetch_add(1, Ordering::Relaxed);
            }
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            STORES.fetch_add(2, Ordering::Relaxed);
            Some(node)
        }
        Err(_) => {
            ALLOC_FAILURES.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Random operations on this core's roots (and reads of everyone's) while `keep_going()`.
pub fn mutate(seed: u64, keep_going: &dyn Fn() -> bool) {
    let cores = <Kernel as tricolor_gc::Platform>::core_count();
    let me = crate::percore::id();
    let mut rng = Rng::new(seed);
    let own = |rng: &mut Rng| &ROOTS[me * ROOTS_PER_CORE + rng.below(ROOTS_PER_CORE)];
    while keep_going() {
        match rng.below(100) {
            0..40 => {
                let root = own(&mut rng);
                if let Some(node) = allocate(&mut rng, cores, root.get()) {
                    root.set::<Kernel>(Some(node));
                    STORES.fetch_add(1, Ordering::Relaxed);
                } else {
                    crate::tasks::yield_now();
                }
            }
            40..80 => {
                if let Some(node) = own(&mut rng).get() {
                    let target = random_root(&mut rng, cores).get();
                    let field = if rng.below(2) == 0 { &node.left } else { &node.right };
                    field.set::<Kernel>(target);
                    STORES.fetch_add(1, Ordering::Relaxed);
                }
            }
            80..84 => {
                own(&mut rng).set::<Kernel>(None);
                STORES.fetch_add(1, Ordering::Relaxed);
            }
            84..92 => {
                // Hide a child: move it into a root (roots are scanned once, at mark start) and
                // cut the edge it was reached through. Without the barrier's two halves a
                // concurrent mark that has not scanned the parent yet loses the child: the
                // classic lost object, which the negative control must expose.
                if let Some(parent) = own(&mut rng).get() {
                    let edge = if rng.below(2) == 0 { &parent.left } else { &parent.right };
                    if let Some(child) = edge.get() {
                        own(&mut rng).set::<Kernel>(Some(child));
                        edge.set::<Kernel>(None);
                        STORES.fetch_add(2, Ordering::Relaxed);
                    }
                }
            }
            _ => {
                // Walk a random path and check every node on it.
                let mut at = random_root(&mut rng, cores).get();
                for _ in 0..16 {
                    let Some(node) = at else { break };
                    if !intact(node) {
                        CORRUPT.fetch_add(1, Ordering::Relaxed);
                        log::error!(
                            "mutator: node {:#x} is corrupt (id {:#x})",
                            node.addr(),
                            node.id.load(Ordering::Relaxed)
                        );
                        break;
                    }
                    at = if rng.below(2) == 0 { node.left.get() } else { node.right.get() };
                }
            }
        }
    }
}

/// Walks everything reachable from the roots (call with the world stopped) and returns
/// (reachable nodes, corrupt nodes).
pub fn check_reachable() -> (usize, usize) {
    let mut seen = hashbrown::HashSet::new();
    let mut stack: alloc::vec::Vec<Gc<Node>> = ROOTS.iter().filter_map(|r| r.get()).collect();
    let mut corrupt = 0;
    while let Some(node) = stack.pop() {
        if !seen.insert(node.addr()) {
            continue;
        }
        if !intact(node) {
            corrupt += 1;
            log::error!("reachable node {:#x} is corrupt (id {:#x})", node.addr(), node.id.load(Ordering::Relaxed));
            continue;
        }
        stack.extend(node.left.get());
        stack.extend(node.right.get());
    }
    (seen.len(), corrupt)
}

/// Resets the counters and clears the roots (between runs in one boot).
pub fn reset() {
    CORRUPT.store(0, Ordering::Relaxed);
    for root in &ROOTS {
        root.set::<Kernel>(None);
    }
}

pub const WORKLOAD: Workload = Workload {
    name: "graph",
    about: "random object-graph mutation: allocate (mixed sizes), rewire, drop, hide children in roots",
    length: Length::Cycles,
    exercises_barrier: true,
    prepare,
    mutate: mutate_until_stopped,
    check,
    finish,
};

fn prepare(_: &tricolor_kernel::cmdline::Config<'_>) -> Result<(), String> {
    reset();
    Ok(())
}

fn mutate_until_stopped(seed: u64) {
    mutate(seed, &|| !super::stopping());
}

fn check() -> Census {
    let (reachable, corrupt) = check_reachable();
    Census { reachable, corrupt }
}

fn finish() -> Result<(), String> {
    match CORRUPT.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(alloc::format!("mutators walked into {n} corrupt nodes")),
    }
}
