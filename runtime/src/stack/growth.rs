//! Growable task stacks: grow by mapping, never by copying.
//!
//! Go grows a goroutine stack by copying it somewhere larger and fixing up every pointer into
//! it. Rust cannot do that: nothing tells us which words on a stack are pointers into
//! it. So a growable stack reserves a virtual range up front and maps only its top pages:
//!
//! ```text
//!   guard_lo      res_lo                mapped_lo                      hi
//!      | guard     | reserved, unmapped   | mapped (in use)              |
//!      |  (never   |  (mapped on demand,  |                              |
//!      |  mapped)  |   page by page)      |                              |
//! ```
//!
//! A fault in `[res_lo, mapped_lo)` is the stack growing: map the pages from the faulting page up
//! to `mapped_lo` and resume the faulting instruction. Nothing moves, so no pointer needs fixing.
//! A fault in the guard `[guard_lo, res_lo)` is an overflow of the whole reservation, reported
//! like any other (see [`super::registry`]).
//!
//! A fault more than one page below `mapped_lo` is still growth: without stack probes a function
//! with a large frame first touches its stack well below the previous SP. The reservation is
//! this stack's alone, so any address in it is this stack's, and mapping every page down to it
//! keeps the mapped part contiguous.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::name::Name;
use crate::stack::{Stack, StackKind};
use tricolor_abi::PAGE_SIZE;

/// What to do about a fault address, as far as one growable stack is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Map `pages` pages starting at `map_page_at` (the lowest new page; the last new page ends
    /// at the current `mapped_lo`), paint them, call [`StackReservation::grown`], and resume.
    Grow {
        /// Lowest address of the new pages (page-aligned).
        map_page_at: usize,
        /// Number of pages to map (1 for the usual one-page-below fault).
        pages: usize,
    },
    /// The fault is in the guard under the reservation: the stack overflowed its reservation.
    Overflow,
    /// The fault is in the mapped part: not a growth fault (a permission fault, say).
    AlreadyMapped,
    /// The fault is not in this stack's reservation or guard.
    NotThisStack,
}

/// A reserved virtual range `[res_lo, hi)` for one stack, of which `[mapped_lo, hi)` is mapped,
/// with an unmapped guard `[guard_lo, res_lo)` under it.
///
/// `mapped_lo` only decreases, and only the fault handler of the core running the owning task
/// changes it, so it is a plain atomic (readers on other cores, e.g. a GC scanning the stack of a
/// stopped task, read it with Acquire; see [`StackReservation::mapped_lo`]).
#[derive(Debug)]
pub struct StackReservation {
    guard_lo: usize,
    res_lo: usize,
    hi: usize,
    mapped_lo: AtomicUsize,
}

impl StackReservation {
    /// A reservation of `[res_lo, hi)` with its top `mapped_pages` pages mapped and
    /// `guard_pages` unmapped guard pages under `res_lo`.
    ///
    /// # Panics
    /// If the bounds are not page-aligned, `mapped_pages` is 0 or exceeds the reservation, or
    /// `guard_pages` is 0 (an unguarded reservation would grow into its neighbour).
    pub fn new(res_lo: usize, hi: usize, mapped_pages: usize, guard_pages: usize) -> Self {
        assert!(
            res_lo.is_multiple_of(PAGE_SIZE) && hi.is_multiple_of(PAGE_SIZE) && res_lo < hi,
            "reservation [{res_lo:#x}, {hi:#x}) is not a page-aligned range"
        );
        assert!(guard_pages > 0, "a growable stack needs a guard");
        let reserved_pages = (hi - res_lo) / PAGE_SIZE;
        assert!(
            (1..=reserved_pages).contains(&mapped_pages),
            "{mapped_pages} mapped pages in a {reserved_pages}-page reservation"
        );
        let guard_lo = res_lo.checked_sub(guard_pages * PAGE_SIZE).expect("guard wraps below address 0");
        StackReservation { guard_lo, res_lo, hi, mapped_lo: AtomicUsize::new(hi - mapped_pages * PAGE_SIZE) }
    }

    /// Lowest mapped address.
    pub fn mapped_lo(&self) -> usize {
        // Acquire: pairs with the Release in `grown`, so a reader on another core that sees the
        // lower bound also sees the page painting done before it (the page-table update itself
        // is ordered by the kernel's DSB/TLBI sequence, not by this).
        self.mapped_lo.load(Ordering::Acquire)
    }

    /// Bytes currently mapped, `hi - mapped_lo`.
    pub fn mapped_bytes(&self) -> usize {
        self.hi - self.mapped_lo()
    }

    /// Bytes reserved, `hi - res_lo`: the most the stack can grow to.
    pub fn reserved_bytes(&self) -> usize {
        self.hi - self.res_lo
    }

    /// The decision for a fault at `far`.
    pub fn on_fault(&self, far: usize) -> Growth {
        let mapped_lo = self.mapped_lo();
        if (mapped_lo..self.hi).contains(&far) {
            Growth::AlreadyMapped
        } else if (self.res_lo..mapped_lo).contains(&far) {
            let map_page_at = far & !(PAGE_SIZE - 1);
            Growth::Grow { map_page_at, pages: (mapped_lo - map_page_at) / PAGE_SIZE }
        } else if (self.guard_lo..self.res_lo).contains(&far) {
            Growth::Overflow
        } else {
            Growth::NotThisStack
        }
    }

    /// Records that the pages of a [`Growth::Grow`] decision are now mapped.
    ///
    /// # Panics
    /// If the new pages do not end exactly at the current `mapped_lo` (the decision is stale or
    /// was applied twice), or leave the reservation.
    pub fn grown(&self, map_page_at: usize, pages: usize) {
        let mapped_lo = self.mapped_lo.load(Ordering::Relaxed);
        assert_eq!(map_page_at + pages * PAGE_SIZE, mapped_lo, "stale growth decision");
        assert!(map_page_at >= self.res_lo, "growth leaves the reservation");
        // Release: see `mapped_lo`.
        self.mapped_lo.store(map_page_at, Ordering::Release);
    }

    /// The whole reservation as a [`Stack`] for the registry: usable range `[res_lo, hi)`, guard
    /// `[guard_lo, res_lo)`. A fault between `res_lo` and `mapped_lo` reads as `InStack` there,
    /// which is right: it is growth, decided here, not an overflow.
    pub fn as_stack(&self, name: &str) -> Stack {
        Stack {
            lo: self.res_lo,
            hi: self.hi,
            guard: self.guard_lo,
            kind: StackKind::Task,
            core: None,
            name: Name::new(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = PAGE_SIZE;
    // Guard [0x10_0000, 0x10_1000), reservation [0x10_1000, 0x10_9000) (8 pages), 2 mapped.
    fn res() -> StackReservation {
        StackReservation::new(0x10_1000, 0x10_9000, 2, 1)
    }

    #[test]
    fn initial_mapping_is_the_top_pages() {
        let r = res();
        assert_eq!(r.mapped_lo(), 0x10_9000 - 2 * P);
        assert_eq!(r.mapped_bytes(), 2 * P);
        assert_eq!(r.reserved_bytes(), 8 * P);
    }

    #[test]
    fn fault_just_below_the_mapping_grows_one_page() {
        let r = res();
        let below = r.mapped_lo() - 8;
        assert_eq!(r.on_fault(below), Growth::Grow { map_page_at: r.mapped_lo() - P, pages: 1 });
        // The lowest byte of that page too.
        assert_eq!(r.on_fault(r.mapped_lo() - P), Growth::Grow { map_page_at: r.mapped_lo() - P, pages: 1 });
    }

    #[test]
    fn deep_fault_inside_the_reservation_maps_everything_down_to_it() {
        let r = res();
        let far = 0x10_1000 + 5; // lowest page of the reservation
        assert_eq!(r.on_fault(far), Growth::Grow { map_page_at: 0x10_1000, pages: 6 });
    }

    #[test]
    fn growing_repeatedly_fills_the_reservation_then_overflows() {
        let r = res();
        let mut grew = 0;
        loop {
            match r.on_fault(r.mapped_lo() - 16) {
                Growth::Grow { map_page_at, pages } => {
                    assert_eq!(pages, 1);
                    r.grown(map_page_at, pages);
                    grew += 1;
                }
                Growth::Overflow => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(grew, 6, "8-page reservation, 2 mapped at start");
        assert_eq!(r.mapped_bytes(), r.reserved_bytes());
    }

    #[test]
    fn guard_fault_is_overflow_and_outside_is_not_ours() {
        let r = res();
        assert_eq!(r.on_fault(0x10_0FF8), Growth::Overflow);
        assert_eq!(r.on_fault(0x10_0000), Growth::Overflow);
        assert_eq!(r.on_fault(0xF_FFF8), Growth::NotThisStack);
        assert_eq!(r.on_fault(0x10_9000), Growth::NotThisStack);
    }

    #[test]
    fn mapped_fault_is_not_growth() {
        let r = res();
        assert_eq!(r.on_fault(0x10_8FF8), Growth::AlreadyMapped);
        assert_eq!(r.on_fault(r.mapped_lo()), Growth::AlreadyMapped);
    }

    #[test]
    #[should_panic(expected = "stale growth decision")]
    fn applying_a_decision_twice_is_caught() {
        let r = res();
        let Growth::Grow { map_page_at, pages } = r.on_fault(r.mapped_lo() - 1) else { unreachable!() };
        r.grown(map_page_at, pages);
        r.grown(map_page_at, pages);
    }

    #[test]
    fn registry_view_covers_the_whole_reservation() {
        let r = res();
        let s = r.as_stack("grower");
        assert_eq!((s.guard, s.lo, s.hi), (0x10_0000, 0x10_1000, 0x10_9000));
        assert_eq!(s.kind, StackKind::Task);
    }

    #[test]
    #[should_panic(expected = "needs a guard")]
    fn unguarded_reservation_is_rejected() {
        StackReservation::new(0x10_1000, 0x10_9000, 2, 0);
    }
}
