//! `suite=large`: large objects (16, 64 and 256 KiB, each in a span of its own) in per-core lists
//! that are pushed, popped and rotated while collections run. Every word of every chunk is a
//! function of its id, so a chunk that was freed (poisoned) or reused while still reachable fails
//! the check. Rotating moves the second chunk to the front: for a moment it is reachable only
//! from the root, not from the heap edge the concurrent mark may still have to scan (the
//! deletion half of the barrier keeps it).

use super::{checksum, Rng};
use super::{Census, Length, Workload};
use crate::gc::{self, Kernel};
use crate::percore;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_gc::{gc_type, Gc, GcSlot};

pub const WORKLOAD: Workload = Workload {
    name: "large",
    about: "large objects (16/64/256 KiB) pushed, popped and rotated in per-core lists",
    length: Length::Cycles,
    exercises_barrier: true,
    prepare,
    mutate,
    check,
    finish,
};

gc_type! {
    /// A large object: a link, an id, and `W` words derived from the id.
    #[repr(C)]
    pub struct Chunk<const W: usize> {
        next: GcSlot<Chunk<W>>,
        id: AtomicU64,
        words: [AtomicU64; W],
    }
}

fn word(id: u64, i: usize) -> u64 {
    checksum(id ^ ((i as u64) << 32))
}

impl<const W: usize> Chunk<W> {
    fn intact(&self) -> bool {
        let id = self.id.load(Ordering::Relaxed);
        self.words.iter().enumerate().all(|(i, w)| w.load(Ordering::Relaxed) == word(id, i))
    }
}

const KIB16: usize = 2048 - 2;
const KIB64: usize = 8192 - 2;
const KIB256: usize = 32768 - 2;

#[unsafe(link_section = ".gcroots")]
static SMALL: [GcSlot<Chunk<KIB16>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static MID: [GcSlot<Chunk<KIB64>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];
#[unsafe(link_section = ".gcroots")]
static BIG: [GcSlot<Chunk<KIB256>>; MAX_CORES] = [const { GcSlot::null() }; MAX_CORES];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Longest list per size (bounds the live data: about 1.5 MiB per core).
const MAX_LEN: [usize; 3] = [8, 6, 3];

fn length<const W: usize>(mut at: Option<Gc<Chunk<W>>>) -> usize {
    let mut n = 0;
    while let Some(chunk) = at {
        n += 1;
        at = chunk.next.get();
    }
    n
}

/// One random operation on one list.
fn step<const W: usize>(rng: &mut Rng, root: &GcSlot<Chunk<W>>, max_len: usize) {
    // Allocation is 1 in 8 of the operations: filling a chunk costs thousands of stores, and
    // without mutator assists a faster allocation rate outruns the concurrent mark and fills the
    // heap with floating garbage (objects allocated during marking are black).
    match rng.below(8) {
        0 if length(root.get()) < max_len => match gc::alloc::<Chunk<W>>() {
            Ok(chunk) => {
                let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                chunk.id.store(id, Ordering::Relaxed);
                for (i, w) in chunk.words.iter().enumerate() {
                    w.store(word(id, i), Ordering::Relaxed);
                }
                chunk.next.set::<Kernel>(root.get());
                root.set::<Kernel>(Some(chunk));
            }
            Err(e) => {
                log::warn!("large: {e}");
                super::count_refused();
                root.set::<Kernel>(None);
            }
        },
        0..2 => {
            if let Some(head) = root.get() {
                root.set::<Kernel>(head.next.get());
            }
        }
        2..5 => {
            // Rotate: [a, x, ...] -> [x, a, ...]. Between the two stores x hangs off the root
            // only; the heap edge a.next that reached it is gone.
            if let Some((a, x)) = root.get().and_then(|a| Some((a, a.next.get()?))) {
                a.next.set::<Kernel>(x.next.get());
                root.set::<Kernel>(Some(x));
                x.next.set::<Kernel>(Some(a));
            }
        }
        _ => {
            if walk_list(root.get()).1 {
                super::report_corrupt();
            }
        }
    }
}

/// Walks a list from `head`, checking every chunk up to the first corrupt one (logged): returns
/// the chunks walked and whether one was corrupt.
fn walk_list<const W: usize>(head: Option<Gc<Chunk<W>>>) -> (usize, bool) {
    let (mut at, mut walked) = (head, 0);
    while let Some(chunk) = at {
        walked += 1;
        if !chunk.intact() {
            log::error!("large: chunk {:#x} is corrupt (id {:#x})", chunk.addr(), chunk.id.load(Ordering::Relaxed));
            return (walked, true);
        }
        at = chunk.next.get();
    }
    (walked, false)
}

fn prepare(_: &tricolor_kernel::cmdline::Config<'_>) -> Result<(), String> {
    for core in 0..MAX_CORES {
        SMALL[core].set::<Kernel>(None);
        MID[core].set::<Kernel>(None);
        BIG[core].set::<Kernel>(None);
    }
    Ok(())
}

fn mutate(seed: u64) {
    let core = percore::id();
    let mut rng = Rng::new(seed);
    while !super::stopping() {
        match rng.below(3) {
            0 => step(&mut rng, &SMALL[core], MAX_LEN[0]),
            1 => step(&mut rng, &MID[core], MAX_LEN[1]),
            _ => step(&mut rng, &BIG[core], MAX_LEN[2]),
        }
    }
}

fn walk<const W: usize>(roots: &[GcSlot<Chunk<W>>], census: &mut Census) {
    for root in roots {
        let (walked, corrupt) = walk_list(root.get());
        census.reachable += walked;
        census.corrupt += usize::from(corrupt);
    }
}

fn check() -> Census {
    let mut census = Census::default();
    walk(&SMALL, &mut census);
    walk(&MID, &mut census);
    walk(&BIG, &mut census);
    census
}

fn finish() -> Result<(), String> {
    Ok(())
}
