//! Stacks: `Stack { lo, hi, guard }` and what is done with them.
//!
//! Every stack in tricolor grows down from `hi` towards `lo`, and has an unmapped guard range
//! `[guard, lo)` right under it, so running off the end faults instead of silently corrupting
//! whatever lies below. The exception handler runs on its own per-core exception stack, asks the
//! [`registry::StackRegistry`] which stack the fault address hits, and prints an
//! [`registry::OverflowReport`].
//!
//! - [`paint`]: fill a stack with a pattern at creation; the high-water mark is the first word
//!   that no longer holds it.
//! - [`registry`]: the lock-free table of live stacks the fault handler consults.
//! - [`growth`]: growable task stacks (a reserved range mapped page by page on guard faults).

pub mod growth;
pub mod paint;
pub mod registry;

use core::fmt;

use crate::name::Name;
use crate::CoreId;

/// What a stack is for. Boot, system and exception stacks are per core (from linker.ld); task
/// stacks belong to a task (from the page allocator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StackKind {
    /// The stack a core boots on (and, once the scheduler runs, its idle task's stack).
    Boot = 0,
    /// The per-core stack `systemstack` switches to (Go's g0 stack).
    System = 1,
    /// The per-core stack exception handlers run on, so a stack overflow can still be reported.
    Exception = 2,
    /// A task's own stack.
    Task = 3,
}

impl StackKind {
    pub(crate) fn from_u8(v: u8) -> Option<StackKind> {
        match v {
            0 => Some(StackKind::Boot),
            1 => Some(StackKind::System),
            2 => Some(StackKind::Exception),
            3 => Some(StackKind::Task),
            _ => None,
        }
    }
}

impl fmt::Display for StackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StackKind::Boot => "boot",
            StackKind::System => "system",
            StackKind::Exception => "exception",
            StackKind::Task => "task",
        })
    }
}

/// Where an address lies relative to one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackHit {
    /// In `[lo, hi)`: the usable stack.
    InStack,
    /// In `[guard, lo)`: the unmapped guard range. A fault here is a stack overflow.
    InGuard,
}

/// A stack's bounds and identity. Plain data: it describes memory, it does not own it.
///
/// Invariants (checked by [`Stack::new`]): `guard <= lo < hi`, and `lo`, `hi` are 16-byte
/// aligned (AAPCS64 requires SP to be 16-byte aligned at every public interface, and `hi` is the
/// first SP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// Lowest usable address.
    pub lo: usize,
    /// One past the highest usable address: the initial SP.
    pub hi: usize,
    /// Lowest address of the guard range `[guard, lo)` (equal to `lo` if there is no guard).
    pub guard: usize,
    /// What the stack is for.
    pub kind: StackKind,
    /// The core a per-core stack belongs to; `None` for task stacks (tasks may move).
    pub core: Option<CoreId>,
    /// For task stacks the task's name; for per-core stacks a label (e.g. "system").
    pub name: Name,
}

impl Stack {
    /// Describes the stack `[lo, hi)` with the guard range `[lo - guard_bytes, lo)`.
    ///
    /// # Panics
    /// If `lo >= hi`, `lo` or `hi` is not 16-byte aligned, or the guard would wrap below 0.
    pub fn new(kind: StackKind, lo: usize, hi: usize, guard_bytes: usize, core: Option<CoreId>, name: &str) -> Stack {
        assert!(lo < hi, "stack [{lo:#x}, {hi:#x}) is empty");
        assert!(lo.is_multiple_of(16) && hi.is_multiple_of(16), "stack [{lo:#x}, {hi:#x}) is not 16-byte aligned");
        let guard = lo.checked_sub(guard_bytes).expect("guard range wraps below address 0");
        Stack { lo, hi, guard, kind, core, name: Name::new(name) }
    }

    /// Usable bytes, `hi - lo`.
    pub fn size(&self) -> usize {
        self.hi - self.lo
    }

    /// The initial stack pointer (`hi`).
    pub fn top(&self) -> usize {
        self.hi
    }

    /// Whether the byte at `addr` is in the usable stack `[lo, hi)`.
    pub fn contains(&self, addr: usize) -> bool {
        self.lo <= addr && addr < self.hi
    }

    /// Whether a stack pointer value means "running on this stack": `lo <= sp <= hi`
    /// (`sp == hi` is an empty stack, `sp == lo` a full one). Distinct stacks are separated by
    /// guard ranges, so no SP value is claimed by two stacks that both have a guard.
    pub fn holds_sp(&self, sp: usize) -> bool {
        self.lo <= sp && sp <= self.hi
    }

    /// Whether `addr` is in the guard range `[guard, lo)`.
    pub fn in_guard(&self, addr: usize) -> bool {
        self.guard <= addr && addr < self.lo
    }

    /// Where `addr` lies relative to this stack, if it is in it or in its guard.
    pub fn locate(&self, addr: usize) -> Option<StackHit> {
        if self.contains(addr) {
            Some(StackHit::InStack)
        } else if self.in_guard(addr) {
            Some(StackHit::InGuard)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_stack() -> Stack {
        Stack::new(StackKind::Task, 0x10_0000, 0x10_4000, 0x1000, None, "worker-3")
    }

    #[test]
    fn bounds_and_guard() {
        let s = task_stack();
        assert_eq!(s.guard, 0xF_F000);
        assert_eq!(s.size(), 0x4000);
        assert_eq!(s.top(), 0x10_4000);
        assert!(s.contains(0x10_0000));
        assert!(s.contains(0x10_3FFF));
        assert!(!s.contains(0x10_4000), "hi is one past the end");
        assert!(!s.contains(0xF_FFFF), "the guard is not the stack");
    }

    #[test]
    fn locate_classifies_stack_guard_and_outside() {
        let s = task_stack();
        assert_eq!(s.locate(0x10_2000), Some(StackHit::InStack));
        assert_eq!(s.locate(0xF_FFF8), Some(StackHit::InGuard));
        assert_eq!(s.locate(0xF_F000), Some(StackHit::InGuard));
        assert_eq!(s.locate(0xF_EFFF), None, "below the guard");
        assert_eq!(s.locate(0x10_4000), None, "above hi");
    }

    #[test]
    fn sp_at_either_end_is_on_the_stack() {
        let s = task_stack();
        assert!(s.holds_sp(s.hi));
        assert!(s.holds_sp(s.lo));
        assert!(!s.holds_sp(s.hi + 16));
        assert!(!s.holds_sp(s.lo - 16));
    }

    #[test]
    fn no_guard_means_nothing_is_in_the_guard() {
        let s = Stack::new(StackKind::Boot, 0x1000, 0x2000, 0, Some(0), "boot");
        assert_eq!(s.locate(0xFFF), None);
    }

    #[test]
    #[should_panic(expected = "not 16-byte aligned")]
    fn misaligned_stack_is_rejected() {
        Stack::new(StackKind::Task, 0x1008, 0x2000, 0, None, "bad");
    }

    #[test]
    fn kind_round_trips_through_u8() {
        for k in [StackKind::Boot, StackKind::System, StackKind::Exception, StackKind::Task] {
            assert_eq!(StackKind::from_u8(k as u8), Some(k));
        }
        assert_eq!(StackKind::from_u8(9), None);
    }
}
