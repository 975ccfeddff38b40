//! The mark verifier (Go's `gccheckmark`): with the world stopped after mark termination, mark
//! the heap again from scratch with separate "check" bits and report every reachable object the
//! concurrent mark left white, naming the object, its type and the slot (and parent object) it
//! was reached through. It then marks the missed object, so the sweep that follows does not free
//! reachable memory: the report is the failure, not a use-after-free later.
//!
//! Nothing the re-mark reaches is dismissed. Stacks and saved registers are scanned
//! conservatively, and a word there that names an object the mark left white is reported however
//! it got there; the verifier does not try to tell a lost reference from a word that is no
//! reference. Instead, with the verifier on, mark start takes a **snapshot**: which objects
//! existed then (`existed` bits, the allocation bits copied) and which of them were reachable from
//! the roots the mark scanned (`start` bits). The snapshot marks nothing: it only classifies each
//! miss ([`MissCause`]):
//! - reachable at mark start and still missed: the barrier or the mark lost it;
//! - existed but unreachable at mark start: its reference came from memory the mark does not
//!   scan (a stack the scan skipped, a kernel word outside `.gcroots`), or the word is no
//!   reference at all (a stale stack slot). Either is a hole in what the collector scans;
//! - allocated during the mark and white: allocation during the mark must be black.
//!
//! An earlier version dismissed the second kind when it was reached through a conservative word,
//! to silence stale stack slots. That also hid every root the scan skipped, which the snapshot
//! skips too. The stale words have been removed at their sources instead (dead stack memory is
//! zeroed before a scan; parked and switched-out tasks keep no dead caller-saved registers;
//! pinned buffers, which non-GC memory refers to, are roots; the kernel maps its heap where
//! timestamps and counters do not reach, `vm::GC_HEAP_VA`), and the [`census`](crate::census)
//! checks that no task's stack was skipped.

use core::sync::atomic::Ordering;

use alloc::vec::Vec;

use crate::collector::Collector;
use crate::heap::ObjRef;
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
    /// The word found there (the object's address, or an interior pointer into it).
    pub value: usize,
    /// The object holding that slot, if it is a heap field.
    pub parent: Option<usize>,
    /// What the mark-start snapshot says about it.
    pub cause: MissCause,
    /// For a word of a conservatively scanned range (a stack, saved registers): the words
    /// around it, read with the world stopped. The rest of the frame (return addresses, other
    /// spills) says which code left the word there.
    pub around: Option<Around>,
}

/// Words captured around a missed object's slot, at most [`AROUND_WORDS`] and never outside the
/// range the slot was scanned in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Around {
    /// Address of `words[0]`.
    pub lo: usize,
    /// The words from `lo` on; the first `len` were read.
    pub words: [usize; AROUND_WORDS],
    /// How many of `words` were read.
    pub len: usize,
}

/// Words [`Around`] keeps: up to 12 below the slot, the slot, and up to 11 above it.
pub const AROUND_WORDS: usize = 24;

impl Around {
    /// The words of `range` around `slot` (which lies in it).
    fn capture(range: ScanRange, slot: usize) -> Around {
        let w = core::mem::size_of::<usize>();
        let lo = slot.saturating_sub(12 * w).max(range.lo.next_multiple_of(w));
        let mut around = Around { lo, words: [0; AROUND_WORDS], len: 0 };
        let mut a = lo;
        while around.len < AROUND_WORDS && a + w <= range.hi {
            // SAFETY: inside a range the platform promised readable, whose owner is parked (as
            // for the scan in `Walk::run`).
            around.words[around.len] = unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() };
            around.len += 1;
            a += w;
        }
        around
    }

    /// The words read, each with its address.
    pub fn words(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let w = core::mem::size_of::<usize>();
        self.words[..self.len].iter().enumerate().map(move |(i, &word)| (self.lo + i * w, word))
    }
}

/// What the mark-start snapshot says about a missed object (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissCause {
    /// Reachable from the scanned roots at mark start: the barrier or the mark lost it.
    ReachableAtMarkStart,
    /// Allocated at mark start but not reachable from the roots the mark scanned: its reference
    /// came from memory the collector does not scan, or the word naming it is no reference.
    UnreachableAtMarkStart,
    /// Allocated during the mark, yet white: allocation during the mark must be black.
    AllocatedDuringMark,
    /// No snapshot was taken this cycle (the verifier was turned on during it).
    Unknown,
}

impl MissCause {
    /// For reports.
    pub fn describe(self) -> &'static str {
        match self {
            MissCause::ReachableAtMarkStart => "reachable at mark start: lost by the barrier or the mark",
            MissCause::UnreachableAtMarkStart => {
                "unreachable from the scanned roots at mark start: referenced from memory the collector does not scan"
            }
            MissCause::AllocatedDuringMark => "allocated during the mark but white: allocation must be black",
            MissCause::Unknown => "no mark-start snapshot this cycle",
        }
    }
}

/// How many misses are kept per cycle (all are counted).
pub const MAX_MISSES_KEPT: usize = 64;

/// What a walk from the roots does with each object it reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Mark start: set `start` bits.
    Snapshot,
    /// Mark termination: set `check` bits and report white objects; `snapshot`: the snapshot
    /// was taken at this cycle's mark start, so misses can be classified.
    Verify { snapshot: bool },
}

struct Walk<'a> {
    c: &'a Collector,
    pass: Pass,
    grey: Vec<usize>,
    misses: Vec<Miss>,
    missed: usize,
}

impl Walk<'_> {
    /// Visit `value` found in `slot`. `conservative`: `None` if the slot is a heap field or a
    /// global root; otherwise the range the word was scanned in, and it refers to an object
    /// exactly when it does for the mark (`Heap::find_object_conservative`).
    fn visit(&mut self, value: usize, slot: usize, parent: Option<usize>, conservative: Option<ScanRange>) {
        let found = match conservative {
            None => self.c.heap.find_object(value),
            Some(_) => self.c.heap.find_object_conservative(value),
        };
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
            Pass::Verify { snapshot } => {
                if !span.check.set(i) {
                    return;
                }
                if !span.mark.get(i) {
                    self.missed += 1;
                    if self.misses.len() < MAX_MISSES_KEPT {
                        let cause = if snapshot { self.cause(&obj) } else { MissCause::Unknown };
                        self.misses.push(Miss {
                            object: obj.base,
                            type_name: self.c.heap.type_name(&obj),
                            slot,
                            value,
                            parent,
                            cause,
                            around: conservative.map(|range| Around::capture(range, slot)),
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

    /// Classify a missed object by the mark-start snapshot.
    fn cause(&self, obj: &ObjRef) -> MissCause {
        let span = self.c.heap.span(obj.span);
        let i = obj.index as usize;
        if span.start.get(i) {
            MissCause::ReachableAtMarkStart
        } else if span.existed.get(i) {
            MissCause::UnreachableAtMarkStart
        } else {
            MissCause::AllocatedDuringMark
        }
    }

    /// Walks everything reachable from the global roots and `ranges`.
    fn run(&mut self, ranges: &[ScanRange]) {
        let c = self.c;
        c.roots.for_each(|slot| {
            let addr = slot as *const _ as usize;
            self.visit(slot.load(Ordering::Relaxed), addr, None, None);
        });
        // Pinned buffers are roots (see `Heap::for_each_pinned`); the "slot" is the buffer itself.
        c.heap.for_each_pinned(|base| self.visit(base, base, None, None));
        for r in ranges {
            let w = core::mem::size_of::<usize>();
            let mut a = r.lo.next_multiple_of(w);
            while a + w <= r.hi {
                // SAFETY: the platform promises the range is readable, and its owner is parked.
                let value = unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() };
                self.visit(value, a, None, Some(*r));
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
                self.visit(value, slot, Some(base), None);
            }
        }
    }
}

/// Records what exists (`existed`) and what is reachable (`start`) at mark start. World stopped;
/// `ranges` are the conservative ranges the mark scanned. Marks nothing.
pub(crate) fn snapshot(c: &Collector, ranges: &[ScanRange]) {
    c.heap.for_each_span_meta(|s| {
        s.start.clear();
        s.existed.copy_from(&s.alloc);
    });
    Walk { c, pass: Pass::Snapshot, grey: Vec::new(), misses: Vec::new(), missed: 0 }.run(ranges);
}

/// Re-mark from the roots and return the misses (at most `MAX_MISSES_KEPT`) and their count.
/// World stopped; `ranges` are the conservative ranges the platform reported; `snapshot_taken`:
/// [`snapshot`] ran at this cycle's mark start.
pub(crate) fn verify(c: &Collector, ranges: &[ScanRange], snapshot_taken: bool) -> (Vec<Miss>, usize) {
    c.heap.for_each_span_meta(|s| s.check.clear());
    let mut walk =
        Walk { c, pass: Pass::Verify { snapshot: snapshot_taken }, grey: Vec::new(), misses: Vec::new(), missed: 0 };
    walk.run(ranges);
    (walk.misses, walk.missed)
}
