//! The mark verifier (Go's `gccheckmark`): with the world stopped after mark termination, mark
//! the heap again from scratch with separate "check" bits and report every reachable object the
//! concurrent mark left white, naming the object, its type and the slot (and parent object) it
//! was reached through. It then marks the missed object, so the sweep that follows does not free
//! reachable memory: the report is the failure, not a use-after-free later.

use core::sync::atomic::Ordering;

use alloc::vec::Vec;

use crate::collector::Collector;
use crate::mark::slot_at;
use crate::object::HEADER_SIZE;
use crate::platform::ScanRange;

/// A reachable object the concurrent mark missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Miss {
    /// Address of the object (its header).
    pub object: usize,
    /// Its type.
    pub type_name: &'static str,
    /// The slot it was reached through (a field, a global root, a stack word).
    pub slot: usize,
    /// The object holding that slot, if it is a heap field.
    pub parent: Option<usize>,
}

/// How many misses are kept per cycle (all are counted).
pub const MAX_MISSES_KEPT: usize = 64;

struct Verifier<'a> {
    c: &'a Collector,
    grey: Vec<usize>,
    misses: Vec<Miss>,
    missed: usize,
}

impl Verifier<'_> {
    /// Visit `value` found in `slot`. `precise`: the slot is a heap field or a global root;
    /// otherwise it is a conservatively scanned word, which refers to an object exactly when it
    /// does for the mark (`Heap::find_object_conservative`).
    fn visit(&mut self, value: usize, slot: usize, parent: Option<usize>, precise: bool) {
        let found = if precise { self.c.heap.find_object(value) } else { self.c.heap.find_object_conservative(value) };
        let Some(obj) = found else {
            return;
        };
        let span = self.c.heap.span(obj.span);
        if !span.check.set(obj.index as usize) {
            return;
        }
        if !span.mark.get(obj.index as usize) {
            self.missed += 1;
            if self.misses.len() < MAX_MISSES_KEPT {
                self.misses.push(Miss { object: obj.base, type_name: self.c.heap.type_name(&obj), slot, parent });
            }
            // Repair, so the sweep keeps it.
            span.mark.set(obj.index as usize);
        }
        if !self.c.heap.is_noscan(&obj) {
            self.grey.push(obj.base);
        }
    }
}

/// Re-mark from the roots and return the misses (at most `MAX_MISSES_KEPT`) and their count.
/// World stopped; `ranges` are the conservative ranges the platform reported.
pub(crate) fn verify(c: &Collector, ranges: &[ScanRange]) -> (Vec<Miss>, usize) {
    let mut v = Verifier { c, grey: Vec::new(), misses: Vec::new(), missed: 0 };
    c.heap.for_each_span_meta(|s| s.check.clear());
    c.roots.for_each(|slot| {
        let addr = slot as *const _ as usize;
        v.visit(slot.load(Ordering::Relaxed), addr, None, true);
    });
    for r in ranges {
        let w = core::mem::size_of::<usize>();
        let mut a = r.lo.next_multiple_of(w);
        while a + w <= r.hi {
            // SAFETY: the platform promises the range is readable, and its owner is parked.
            let value = unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() };
            v.visit(value, a, None, false);
            a += w;
        }
    }
    while let Some(base) = v.grey.pop() {
        let Some(obj) = c.heap.find_object(base) else {
            continue;
        };
        for &off in c.heap.type_of(&obj).pointer_offsets {
            let slot = base + HEADER_SIZE + off;
            let value = slot_at(c, slot).load(Ordering::Relaxed);
            v.visit(value, slot, Some(base), true);
        }
    }
    (v.misses, v.missed)
}
