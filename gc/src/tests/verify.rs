//! The verifier's blind spots, each planted: a stack the scan skips (the root census), a
//! reference from memory the collector does not scan, an object allocated white during the mark,
//! and pinned buffers (roots, so a word naming one is never a miss).

use super::{new_node, node_at};
use crate::host::{HostPlatform, World};
use crate::object::HEADER_SIZE;
use crate::platform::Platform;
use crate::sizeclass::HEAP_PAGE_SIZE;
use crate::verify::MissCause;
use crate::{BarrierMode, Config, RootPart};

type P = HostPlatform;

fn config() -> Config {
    Config { verify: true, ..Config::default() }
}

/// The only reference to a node sits in a mutator's stack that the platform's scan skips. The
/// verifier's re-mark would skip it too (it scans what the platform reports), and so would the
/// mark-start snapshot, so only the census can tell: the task is named with its stack, at mark
/// start and at verification, and the verifier then walks that stack and reports the node.
#[test]
fn a_stack_the_scan_skips_is_reported_by_the_census() {
    for mode in [BarrierMode::Off, BarrierMode::Buffered, BarrierMode::Direct] {
        let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), mode);
        w.run_on(0, || {
            let c = w.collector();
            let hidden = w.mutator(1);
            let only_here = new_node(c, 3);
            hidden.set_root(0, only_here.addr());
            hidden.hide_from_scan();
            let r = c.collect::<P>();
            assert_eq!(r.unscanned, 2, "{mode:?}: at mark start and at verification");
            let found = c.take_unscanned::<P>();
            assert!(found.iter().all(|u| u.part == RootPart::Stack && u.entry.name == "mutator 0"), "{found:?}");
            let stack = found[0].entry.stack;
            assert_eq!(stack.hi - stack.lo, 8, "{mode:?}: the hidden mutator's one slot");
            assert_eq!(c.stats::<P>().unscanned, 2);
            // The verifier then walks the skipped stack itself: what it held is reported and kept.
            let misses = c.take_misses::<P>();
            assert_eq!(r.verifier_misses, 1, "{mode:?}: {misses:?}");
            assert_eq!(misses[0].object, only_here.addr() - HEADER_SIZE);
            assert_eq!(misses[0].cause, MissCause::UnreachableAtMarkStart);
            assert!(only_here.intact(), "{mode:?}: repaired, not swept");
            // Seen again, it is scanned and nothing is reported.
            drop(hidden);
            let m = w.mutator(1);
            let r = c.collect::<P>();
            assert_eq!((r.unscanned, r.verifier_misses), (0, 0), "{mode:?}: {:?}", c.take_unscanned::<P>());
            drop(m);
        });
    }
}

/// A word naming an object that no scanned root reached at mark start appears on a stack during
/// the mark: it came from memory the collector does not scan (here: a word outside the heap and
/// the roots). The snapshot is taken, and the miss is reported, classified by it. (An earlier
/// verifier dismissed exactly this case as a stale word.)
#[test]
fn a_reference_from_unscanned_memory_is_a_miss_even_with_the_snapshot() {
    static UNSCANNED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    for mode in [BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::UnsafeOffDuringMark] {
        let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), mode);
        w.run_on(0, || {
            let c = w.collector();
            let m = w.mutator(1);
            let hidden = new_node(c, 7);
            let child = new_node(c, 8);
            hidden.kids[0].set::<P>(Some(child));
            // The only reference lives in a static the collector does not scan (a plain store).
            UNSCANNED.store(hidden.addr(), core::sync::atomic::Ordering::Relaxed);
            let r = c.collect_with_hook::<P>(&mut || {
                m.set_root(0, UNSCANNED.load(core::sync::atomic::Ordering::Relaxed));
            });
            let misses = c.take_misses::<P>();
            assert_eq!(r.verifier_misses, 2, "{mode:?}: the node and its child: {misses:?}");
            assert!(misses.iter().all(|m| m.cause == MissCause::UnreachableAtMarkStart), "{mode:?}: {misses:?}");
            assert_eq!(misses[0].object, hidden.addr() - HEADER_SIZE);
            assert_eq!(misses[0].parent, None, "reached through the stack word");
            assert_eq!(misses[1].parent, Some(hidden.addr() - HEADER_SIZE));
            // The stack word comes with its neighbours (here the mutator's root slots), the
            // heap field without.
            let around = misses[0].around.expect("a conservatively scanned word keeps its neighbours");
            assert!(around.len > 0 && around.len <= crate::AROUND_WORDS, "{around:?}");
            assert!(around.words().any(|w| w == (misses[0].slot, misses[0].value)), "{mode:?}: {around:?}");
            assert_eq!(misses[1].around, None);
            // Repaired: the sweep kept both.
            assert!(node_at(m.root(0)).unwrap().intact());
            assert!(child.intact());
            m.set_root(0, 0);
            UNSCANNED.store(0, core::sync::atomic::Ordering::Relaxed);
            drop(m);
        });
    }
}

/// Allocation during the mark must be black. An object allocated white by mistake and held on a
/// stack is reported as such.
#[test]
fn an_object_allocated_white_during_the_mark_is_a_miss() {
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let mut white = 0;
        let r = c.collect_with_hook::<P>(&mut || {
            // The planted bug: `black = false` during the mark.
            let addr =
                c.heap.try_alloc_object::<P>(P::current_core(), <super::Node as crate::Trace>::TYPE, false).unwrap();
            white = addr;
            m.set_root(0, addr);
        });
        let misses = c.take_misses::<P>();
        assert_eq!(r.verifier_misses, 1, "{misses:?}");
        assert_eq!(misses[0].object, white - HEADER_SIZE);
        assert_eq!(misses[0].cause, MissCause::AllocatedDuringMark);
        // The same allocation through the real path is black: no miss.
        let r = c.collect_with_hook::<P>(&mut || {
            let n = new_node(c, 1);
            m.set_root(0, n.addr());
        });
        assert_eq!(r.verifier_misses, 0, "{:?}", c.take_misses::<P>());
        m.set_root(0, 0);
        drop(m);
    });
}

/// A pinned buffer is referred to from memory the collector does not scan (a device, a driver's
/// state). It is a root: marked at mark start, so a stack word naming it (a pointer into the
/// pixels) is never a miss, and it survives while pinned.
#[test]
fn pinned_buffers_are_roots() {
    let w = World::new(1, 64 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let buf = c.alloc_pinned::<P>(3 * HEAP_PAGE_SIZE).unwrap();
        let r = c.collect_with_hook::<P>(&mut || m.set_root(0, buf.addr + HEAP_PAGE_SIZE + 40));
        assert_eq!((r.verifier_misses, r.unscanned), (0, 0), "{:?}", c.take_misses::<P>());
        assert!(r.marked_bytes >= 3 * HEAP_PAGE_SIZE as u64, "the pinned buffer counts as marked");
        m.set_root(0, 0);
        assert!(c.unpin::<P>(&buf));
        let r = c.collect::<P>();
        assert_eq!(r.freed_objects, 1, "unpinned and unreachable: freed");
        drop(m);
    });
}
