//! The mark verifier (Go's `gccheckmark`): with the world stopped after mark termination, mark
//! the heap again from scratch with separate "check" bits and report every reachable object the
//! concurrent mark left white, naming the object, its type and the slot (and parent object) it
//! was reached through. It then marks the missed object, so the sweep that follows does not free
//! reachable memory: the report is the failure, not a use-after-free later.
//!
//! Stacks and saved registers are scanned conservatively, and words written there during the mark
//! are not all references: a stale spill slot, a loop's end pointer or a register a trap frame
//! saved can name an object that was already garbage when the mark started. No barrier bug can
//! make such an object reachable (a mutator only gets real references by loading them from
//! reachable objects or by allocating, black), so reporting it would be a false alarm. With the
//! verifier on, the mark start therefore takes a snapshot of what is reachable then (`start`
//! bits); at termination a white object reached only through a conservative word counts only if
//! it was in the snapshot. A real loss, an object reachable at mark start that the mark missed,
//! is still reported however it is reached; heap fields and global roots are checked as before.

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

/// What a walk from the roots does with each object it reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Mark start: set `start` bits.
    Snapshot,
    /// Mark termination: set `check` bits and report white objects; `filter`: the snapshot was
    /// taken, so conservative words naming objects garbage at mark start are skipped.
    Verify { filter: bool },
}

struct Walk<'a> {
    c: &'a Collector,
    pass: Pass,
    grey: Vec<usize>,
    misses: Vec<Miss>,
    missed: usize,
}

impl Walk<'_> {
    /// Visit `value` found in `slot`. `precise`: the slot is a heap field or a global root;
    /// otherwise it is a conservatively scanned word, which refers to an object exactly when it
    /// does for the mark (`Heap::find_object_conservative`).
    fn visit(&mut self, value: usize, slot: usize, parent: Option<usize>, precise: bool) {
        let found = if precise { self.c.heap.find_object(value) } else { self.c.heap.find_object_conservative(value) };
        let Some(obj) = found else {
            return;
        };
        let span = self.c.heap.span(obj.span);
        let i = obj.index as usize;
        match self.pass {
            Pass::Snapshot => {
                if !span.start.set(i) {
                    return;
                }
            }
            Pass::Verify { filter } => {
                if filter && !precise && !span.mark.get(i) && !span.start.get(i) {
                    return; // garbage at mark start: this word is no reference (module doc)
                }
                if !span.check.set(i) {
                    return;
                }
                if !span.mark.get(i) {
                    self.missed += 1;
                    if self.misses.len() < MAX_MISSES_KEPT {
                        self.misses.push(Miss {
                            object: obj.base,
                            type_name: self.c.heap.type_name(&obj),
                            slot,
                            parent,
                        });
                    }
                    // Repair, so the sweep keeps it.
                    span.mark.set(i);
                }
            }
        }
        if !self.c.heap.is_noscan(&obj) {
            self.grey.push(obj.base);
        }
    }

    /// Walks everything reachable from the global roots and `ranges`.
    fn run(&mut self, ranges: &[ScanRange]) {
        let c = self.c;
        c.roots.for_each(|slot| {
            let addr = slot as *const _ as usize;
            self.visit(slot.load(Ordering::Relaxed), addr, None, true);
        });
        for r in ranges {
            let w = core::mem::size_of::<usize>();
            let mut a = r.lo.next_multiple_of(w);
            while a + w <= r.hi {
                // SAFETY: the platform promises the range is readable, and its owner is parked.
                let value = unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() };
                self.visit(value, a, None, false);
                a += w;
            }
        }
        while let Some(base) = self.grey.pop() {
            let Some(obj) = c.heap.find_object(base) else {
                continue;
            };
            for &off in c.heap.type_of(&obj).pointer_offsets {
                let slot = base + HEADER_SIZE + off;
                let value = slot_at(c, slot).load(Ordering::Relaxed);
                self.visit(value, slot, Some(base), true);
            }
        }
    }
}

/// Records what is reachable at mark start (`start` bits). World stopped; `ranges` are the
/// conservative ranges the mark scanned.
pub(crate) fn snapshot(c: &Collector, ranges: &[ScanRange]) {
    c.heap.for_each_span_meta(|s| s.start.clear());
    Walk { c, pass: Pass::Snapshot, grey: Vec::new(), misses: Vec::new(), missed: 0 }.run(ranges);
}

/// Re-mark from the roots and return the misses (at most `MAX_MISSES_KEPT`) and their count.
/// World stopped; `ranges` are the conservative ranges the platform reported; `snapshot_taken`:
/// [`snapshot`] ran at this cycle's mark start.
pub(crate) fn verify(c: &Collector, ranges: &[ScanRange], snapshot_taken: bool) -> (Vec<Miss>, usize) {
    c.heap.for_each_span_meta(|s| s.check.clear());
    let mut walk =
        Walk { c, pass: Pass::Verify { filter: snapshot_taken }, grey: Vec::new(), misses: Vec::new(), missed: 0 };
    walk.run(ranges);
    (walk.misses, walk.missed)
}
