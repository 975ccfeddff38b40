//! Host tests of the whole collector: threads stand in for cores (see `crate::host`).

mod barrier;
mod collect;
mod cyclelock;
mod pointer_map;
mod stress;
mod verify;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::heap::POISON;
use crate::host::HostPlatform;
use crate::object::{Gc, GcSlot};
use crate::{gc_type, Collector};

gc_type! {
    /// A test object: three pointer fields and a payload derived from a seed, so a reader can tell
    /// an intact object from a freed (poisoned) or reused one.
    #[repr(C)]
    pub(crate) struct Node {
        pub(crate) kids: [GcSlot<Node>; 3],
        pub(crate) seed: AtomicU64,
        pub(crate) payload: [AtomicU64; 4],
    }
}

pub(crate) fn mix(seed: u64, i: u64) -> u64 {
    let mut x = seed ^ (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

impl Node {
    /// Fill the payload from `seed` (the allocating thread, before publishing the node).
    pub(crate) fn init(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
        for (i, p) in self.payload.iter().enumerate() {
            p.store(mix(seed, i as u64), Ordering::Relaxed);
        }
    }

    /// Whether the payload matches the seed (and is not poison).
    pub(crate) fn intact(&self) -> bool {
        let seed = self.seed.load(Ordering::Relaxed);
        seed != u64::from_ne_bytes([POISON; 8])
            && self.payload.iter().enumerate().all(|(i, p)| p.load(Ordering::Relaxed) == mix(seed, i as u64))
    }
}

/// A handle from a raw address found in a root (test-only: the address came from a slot).
pub(crate) fn node_at(addr: usize) -> Option<Gc<Node>> {
    let p = NonNull::new(core::ptr::with_exposed_provenance_mut::<Node>(addr))?;
    // SAFETY: callers pass addresses read from slots/roots of a live graph.
    Some(unsafe { Gc::from_raw(p) })
}

/// Allocate and initialise a node.
pub(crate) fn new_node(c: &Collector, seed: u64) -> Gc<Node> {
    let n = c.alloc::<HostPlatform, Node>().expect("alloc");
    n.init(seed);
    n
}

pub(crate) use tricolor_abi::rng::Rng;

/// Sets its flag when dropped: a test's main thread holds one so that the threads it waits for
/// leave even if one of its checks panics (the scope would never end otherwise).
pub(crate) struct SetOnDrop<'a>(pub(crate) &'a core::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, core::sync::atomic::Ordering::Relaxed);
    }
}
