//! The table of live stacks that the exception handler consults.
//!
//! When a core faults, its handler (on the core's exception stack) must say *which* stack the
//! fault address hit. It cannot take a lock to find out: the faulting code may be the one holding
//! it (an overflow while registering a task, on this very core), and a handler that spins on a
//! lock its own core holds hangs — the one thing a fault report must never do. So the registry is
//! a fixed array of slots, each a small seqlock over atomics:
//!
//! - registering claims a free slot with a CAS, writes the fields, then publishes the slot;
//! - a reader copies a published slot's fields and keeps the copy only if the slot's sequence word
//!   did not change meanwhile, retrying a bounded number of times (never spinning forever).
//!
//! All fields are atomics, so a reader racing a writer reads stale or mixed values, never a data
//! race; the sequence check discards the mixed ones.

use core::fmt;
use core::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use crate::name::Name;
use crate::stack::{Stack, StackHit, StackKind};
use crate::CoreId;

// Slot state, in the low two bits of the sequence word; the rest is a generation that every
// unregistration bumps, so a slot that is freed and reused reads as changed (no ABA).
const FREE: usize = 0;
const WRITING: usize = 1;
const LIVE: usize = 2;
const STATE_MASK: usize = 3;
const GEN_ONE: usize = 4;

/// How often a reader retries a slot that changed under it before skipping it. A slot changes
/// only when a stack is registered or unregistered, which is rare; the bound keeps a fault
/// handler finite even if the registering core is the one that faulted.
const READ_RETRIES: usize = 4;

// `meta` word layout: kind in bits 0..8, "has core" in bit 8, core id in bits 16..48.
const META_HAS_CORE: u64 = 1 << 8;
const META_CORE_SHIFT: u32 = 16;

struct Slot {
    seq: AtomicUsize,
    lo: AtomicUsize,
    hi: AtomicUsize,
    guard: AtomicUsize,
    meta: AtomicU64,
    name: [AtomicU64; 4],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            seq: AtomicUsize::new(FREE),
            lo: AtomicUsize::new(0),
            hi: AtomicUsize::new(0),
            guard: AtomicUsize::new(0),
            meta: AtomicU64::new(0),
            name: [const { AtomicU64::new(0) }; 4],
        }
    }

    /// Writes `stack` into a slot this caller has claimed (state WRITING).
    fn write_fields(&self, stack: &Stack) {
        // Relaxed: readers never trust these values alone; they validate with the sequence word
        // (see `read`), and the publishing store in `register` is Release.
        self.lo.store(stack.lo, Ordering::Relaxed);
        self.hi.store(stack.hi, Ordering::Relaxed);
        self.guard.store(stack.guard, Ordering::Relaxed);
        let core = match stack.core {
            Some(c) => META_HAS_CORE | ((c as u64 & 0xFFFF_FFFF) << META_CORE_SHIFT),
            None => 0,
        };
        self.meta.store(u64::from(stack.kind as u8) | core, Ordering::Relaxed);
        for (slot, word) in self.name.iter().zip(stack.name.to_words()) {
            slot.store(word, Ordering::Relaxed);
        }
    }

    /// A consistent copy of the slot's stack, or `None` if it is not live or kept changing.
    fn read(&self) -> Option<Stack> {
        for _ in 0..READ_RETRIES {
            // Acquire: pairs with the Release publish in `register`, so the fields written
            // before the slot became LIVE are visible to the loads below.
            let before = self.seq.load(Ordering::Acquire);
            if before & STATE_MASK != LIVE {
                return None;
            }
            let lo = self.lo.load(Ordering::Relaxed);
            let hi = self.hi.load(Ordering::Relaxed);
            let guard = self.guard.load(Ordering::Relaxed);
            let meta = self.meta.load(Ordering::Relaxed);
            let mut words = [0u64; 4];
            for (w, slot) in words.iter_mut().zip(&self.name) {
                *w = slot.load(Ordering::Relaxed);
            }
            // Acquire fence: if any load above read a value stored by a writer that claimed the
            // slot after `before`, that writer's Release fence (in `register`) synchronizes with
            // this fence, so the re-load below sees its claim (or later) and differs from
            // `before`. Without the fence the re-load could be satisfied early and miss it.
            fence(Ordering::Acquire);
            let after = self.seq.load(Ordering::Relaxed);
            if before != after {
                continue;
            }
            let kind = StackKind::from_u8((meta & 0xFF) as u8)?;
            let core = (meta & META_HAS_CORE != 0).then_some((meta >> META_CORE_SHIFT) as CoreId);
            return Some(Stack { lo, hi, guard, kind, core, name: Name::from_words(words) });
        }
        None
    }
}

/// A registered stack's place in the registry, used to unregister it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSlot {
    index: usize,
    seq: usize,
}

/// The registry has no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryFull;

/// A fixed-capacity, lock-free table of live stacks. Meant to be a `static`:
/// `static STACKS: StackRegistry<256> = StackRegistry::new();`
pub struct StackRegistry<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Default for StackRegistry<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> StackRegistry<N> {
    /// An empty registry.
    pub const fn new() -> Self {
        StackRegistry { slots: [const { Slot::new() }; N] }
    }

    /// Records `stack` so faults in it or its guard can be attributed to it.
    pub fn register(&self, stack: &Stack) -> Result<StackSlot, RegistryFull> {
        for (index, slot) in self.slots.iter().enumerate() {
            let seq = slot.seq.load(Ordering::Relaxed);
            if seq & STATE_MASK != FREE {
                continue;
            }
            let claimed = (seq & !STATE_MASK) | WRITING;
            // Relaxed CAS: it only makes this caller the slot's one writer; the ordering that
            // readers rely on comes from the fence below and the Release publish.
            if slot.seq.compare_exchange(seq, claimed, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                continue;
            }
            // Release fence: orders the claim (seq = WRITING) before the field stores, so a
            // reader that sees any new field value also sees the slot changed (see `Slot::read`).
            fence(Ordering::Release);
            slot.write_fields(stack);
            let live = (seq & !STATE_MASK) | LIVE;
            // Release: publishes the fields to readers that Acquire-load LIVE.
            slot.seq.store(live, Ordering::Release);
            return Ok(StackSlot { index, seq: live });
        }
        Err(RegistryFull)
    }

    /// Forgets a stack. Call before its memory is freed or reused.
    ///
    /// # Panics
    /// If `slot` is not currently registered (unregistered twice).
    pub fn unregister(&self, slot: StackSlot) {
        let freed = (slot.seq & !STATE_MASK) + GEN_ONE;
        // Relaxed: freeing publishes nothing. A reader that loaded the old fields either still
        // sees seq == LIVE(gen) afterwards (it copied the consistent old entry) or sees the new
        // generation and discards its copy.
        let r = self.slots[slot.index].seq.compare_exchange(slot.seq, freed, Ordering::Relaxed, Ordering::Relaxed);
        assert!(r.is_ok(), "stack slot {slot:?} unregistered twice");
    }

    /// The registered stack that `addr` lies in or in whose guard it lies.
    pub fn find(&self, addr: usize) -> Option<(Stack, StackHit)> {
        self.slots.iter().filter_map(Slot::read).find_map(|s| s.locate(addr).map(|hit| (s, hit)))
    }

    /// If the fault address `far`, taken on `core`, lies in a registered stack's guard range,
    /// the stack overflow report for it.
    pub fn overflow_at(&self, core: CoreId, far: usize) -> Option<OverflowReport> {
        match self.find(far)? {
            (stack, StackHit::InGuard) => Some(OverflowReport { core, far, stack }),
            (_, StackHit::InStack) => None,
        }
    }

    /// Calls `f` with a copy of every live stack (for listings and dashboards).
    pub fn for_each(&self, mut f: impl FnMut(&Stack)) {
        for s in self.slots.iter().filter_map(Slot::read) {
            f(&s);
        }
    }
}

/// "stack overflow: core 2, kind task, task 'worker-3', stack [lo, hi), guard [g, lo), far x"
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverflowReport {
    /// The core that took the fault.
    pub core: CoreId,
    /// The fault address (FAR_EL1).
    pub far: usize,
    /// The stack whose guard it hit.
    pub stack: Stack,
}

impl fmt::Display for OverflowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stack;
        write!(f, "stack overflow: core {}, kind {}, ", self.core, s.kind)?;
        match (s.kind, s.core) {
            (StackKind::Task, _) => write!(f, "task '{}'", s.name)?,
            (_, Some(owner)) => write!(f, "stack '{}' of core {}", s.name, owner)?,
            (_, None) => write!(f, "stack '{}'", s.name)?,
        }
        write!(f, ", stack [{:#x}, {:#x}), guard [{:#x}, {:#x}), far {:#x}", s.lo, s.hi, s.guard, s.lo, self.far)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::sync::Arc;
    use alloc::vec::Vec;

    fn task(lo: usize, name: &str) -> Stack {
        Stack::new(StackKind::Task, lo, lo + 0x4000, 0x1000, None, name)
    }

    #[test]
    fn find_names_the_stack_and_the_guard() {
        let reg: StackRegistry<8> = StackRegistry::new();
        reg.register(&task(0x10_0000, "a")).unwrap();
        reg.register(&task(0x20_0000, "b")).unwrap();
        let (s, hit) = reg.find(0x20_0010).unwrap();
        assert_eq!((s.name.as_str(), hit), ("b", StackHit::InStack));
        let (s, hit) = reg.find(0x1F_FFF0).unwrap();
        assert_eq!((s.name.as_str(), hit), ("b", StackHit::InGuard));
        assert!(reg.find(0x30_0000).is_none());
    }

    #[test]
    fn overflow_report_reads_like_the_issue_asks() {
        let reg: StackRegistry<4> = StackRegistry::new();
        reg.register(&task(0x10_0000, "worker-3")).unwrap();
        let r = reg.overflow_at(2, 0xF_FFF8).expect("guard hit is an overflow");
        assert_eq!(
            format!("{r}"),
            "stack overflow: core 2, kind task, task 'worker-3', stack [0x100000, 0x104000), \
             guard [0xff000, 0x100000), far 0xffff8"
        );
        assert!(reg.overflow_at(2, 0x10_0008).is_none(), "in the stack is no overflow");
    }

    #[test]
    fn per_core_stack_report_names_its_owner_core() {
        let reg: StackRegistry<4> = StackRegistry::new();
        let sys = Stack::new(StackKind::System, 0x5000, 0x9000, 0x1000, Some(1), "system");
        reg.register(&sys).unwrap();
        let r = reg.overflow_at(1, 0x4FF0).unwrap();
        assert!(format!("{r}")
            .starts_with("stack overflow: core 1, kind system, stack 'system' of core 1, stack [0x5000, 0x9000)"));
    }

    #[test]
    fn unregistered_stack_is_gone_and_its_slot_reused() {
        let reg: StackRegistry<1> = StackRegistry::new();
        let a = reg.register(&task(0x10_0000, "a")).unwrap();
        assert_eq!(reg.register(&task(0x20_0000, "b")), Err(RegistryFull));
        reg.unregister(a);
        assert!(reg.find(0x10_0010).is_none());
        let b = reg.register(&task(0x20_0000, "b")).unwrap();
        assert_ne!(a, b, "a reused slot has a new generation");
        assert_eq!(reg.find(0x20_0010).unwrap().0.name.as_str(), "b");
    }

    #[test]
    #[should_panic(expected = "unregistered twice")]
    fn double_unregister_panics() {
        let reg: StackRegistry<2> = StackRegistry::new();
        let a = reg.register(&task(0x10_0000, "a")).unwrap();
        reg.unregister(a);
        reg.unregister(a);
    }

    #[test]
    fn for_each_lists_live_stacks() {
        let reg: StackRegistry<4> = StackRegistry::new();
        let a = reg.register(&task(0x10_0000, "a")).unwrap();
        reg.register(&task(0x20_0000, "b")).unwrap();
        reg.unregister(a);
        let mut names = Vec::new();
        reg.for_each(|s| names.push(s.name));
        assert_eq!(names, [Name::new("b")]);
    }

    /// Writers register and unregister stacks in a churn while readers look them up: a reader
    /// must only ever see a stack exactly as some writer registered it (never lo from one and
    /// name from another), which is what the sequence check is for.
    #[test]
    fn readers_never_see_a_torn_stack() {
        let iters = if cfg!(miri) { 30 } else { 3000 };
        let reg: Arc<StackRegistry<2>> = Arc::new(StackRegistry::new());
        // Every stack a writer may register: stack i occupies [base(i), base(i) + 0x4000) and is
        // named after i, so a torn read shows up as a name that does not match its bounds.
        fn base(i: usize) -> usize {
            0x100_0000 + i * 0x10_0000
        }
        fn expected(i: usize) -> Stack {
            task(base(i), &format!("s{i}"))
        }
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    for n in 0..iters {
                        let i = w * 8 + n % 8;
                        if let Ok(slot) = reg.register(&expected(i)) {
                            reg.unregister(slot);
                        }
                    }
                })
            })
            .collect();
        let reader = {
            let reg = reg.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                for n in 0..iters {
                    reg.for_each(|s| {
                        let i = (s.lo - 0x100_0000) / 0x10_0000;
                        assert_eq!(*s, expected(i), "torn read");
                        seen += 1;
                    });
                    let _ = reg.find(base(n % 16) + 0x10);
                }
                seen
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        let mut left = 0;
        reg.for_each(|_| left += 1);
        assert_eq!(left, 0, "every registration was undone");
    }
}
