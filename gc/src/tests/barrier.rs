//! Barrier tests: checked-mode reports, flush counting, the flag's life cycle.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::{new_node, Node};
use crate::barrier::{write_pointer, BARRIER_CHECKING, BARRIER_MARKING};
use crate::host::{HostPlatform, World};
use crate::object::GcSlot;
use crate::object::HEADER_SIZE;
use crate::sizeclass::HEAP_PAGE_SIZE;
use crate::{take_checked_reports, BarrierMode, CheckedSlot, Config, WRITE_BARRIER};

type P = HostPlatform;

/// Memory outside the GC heap that is not a registered root (a static framebuffer, a DMA ring).
static NOT_A_ROOT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn checked_mode_reports_a_gc_pointer_stored_outside_heap_and_roots() {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, Config::default(), BarrierMode::Checked);
    w.run_on(0, || {
        let c = w.collector();
        assert_eq!(WRITE_BARRIER.load(Ordering::Relaxed), BARRIER_CHECKING);
        c.roots.register_slot(&ROOT);
        let a = new_node(c, 1);
        let b = new_node(c, 2);
        a.kids[0].set::<P>(Some(b)); // heap slot: fine
        ROOT.set::<P>(Some(a)); // registered root: fine
        NOT_A_ROOT.store(0, Ordering::Relaxed);
        write_pointer::<P>(&NOT_A_ROOT, 12345); // not a heap pointer: fine
        assert!(take_checked_reports::<P>().is_empty());
        let line = line!() + 1;
        write_pointer::<P>(&NOT_A_ROOT, b.addr());
        let reports = take_checked_reports::<P>();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let r = &reports[0];
        assert_eq!(r.slot, &NOT_A_ROOT as *const AtomicUsize as usize);
        assert_eq!(r.kind, CheckedSlot::OutsideHeapAndRoots);
        assert_eq!(r.object, b.addr());
        assert_eq!(r.type_name, "Node");
        assert_eq!(r.caller.line(), line);
        assert!(r.caller.file().ends_with("barrier.rs"));
        assert_eq!(c.stats::<P>().checked_reports, 1);
        // Checking does not depend on a cycle running, and switching mode turns it off.
        NOT_A_ROOT.store(0, Ordering::Relaxed);
        ROOT.set::<P>(None);
        c.set_mode::<P>(BarrierMode::Buffered);
        assert_eq!(WRITE_BARRIER.load(Ordering::Relaxed), 0);
        write_pointer::<P>(&NOT_A_ROOT, b.addr());
        assert!(take_checked_reports::<P>().is_empty());
        NOT_A_ROOT.store(0, Ordering::Relaxed);
    });
}

/// A GC pointer stored into heap memory the marker never reads is as lost as one stored outside
/// the heap: into a no-scan object (a pinned buffer, such as the GC framebuffer) or at an offset
/// of a scanned object that its type does not list as a pointer field (a hand-written `Trace`
/// that forgot a slot). Checked mode reports both, and still accepts the listed slots.
#[test]
fn checked_mode_reports_stores_into_no_scan_objects_and_non_pointer_fields() {
    let w = World::new(1, 64 * HEAP_PAGE_SIZE, Config::default(), BarrierMode::Checked);
    w.run_on(0, || {
        let c = w.collector();
        let a = new_node(c, 1);
        let b = new_node(c, 2);
        let pixels = c.alloc_pinned::<P>(HEAP_PAGE_SIZE).unwrap();
        // SAFETY: the pinned buffer is ours, page aligned and HEAP_PAGE_SIZE long; its words are only
        // accessed atomically here.
        let pixel = unsafe { &*(pixels.as_ptr().add(64) as *const AtomicUsize) };
        write_pointer::<P>(pixel, b.addr());
        // `seed`, right after the three kids: a payload word, no pointer field.
        let seed = &a.seed as *const _ as *const AtomicUsize;
        // SAFETY: `seed` is an aligned AtomicU64 of a live node, the same size as AtomicUsize.
        write_pointer::<P>(unsafe { &*seed }, b.addr());
        a.kids[1].set::<P>(Some(b)); // a listed slot: fine
        let reports = take_checked_reports::<P>();
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].slot, pixels.addr + 64);
        assert_eq!(
            reports[0].kind,
            CheckedSlot::NoScanObject { holder: pixels.addr - crate::heap::PINNED_HEAD_PAGES * HEAP_PAGE_SIZE }
        );
        assert_eq!(reports[1].slot, seed as usize);
        assert_eq!(
            reports[1].kind,
            CheckedSlot::NotAPointerField { holder: a.addr() - HEADER_SIZE, holder_type: "Node", offset: 24 }
        );
        assert_eq!(reports[1].object, b.addr());
        assert_eq!(c.stats::<P>().checked_reports, 2);
        pixel.store(0, Ordering::Relaxed);
        a.seed.store(1, Ordering::Relaxed);
    });
}

#[test]
fn flag_is_on_only_while_marking_and_barriers_flush_in_buffer_sized_batches() {
    let w = World::new(
        1,
        16 * HEAP_PAGE_SIZE,
        Config { wbbuf_entries: 8, verify: true, ..Config::default() },
        BarrierMode::Buffered,
    );
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let a = new_node(c, 1);
        m.set_root(0, a.addr());
        let kids: Vec<_> = (0..3).map(|i| new_node(c, 10 + i)).collect();
        assert_eq!(WRITE_BARRIER.load(Ordering::Relaxed), 0);
        a.kids[0].set::<P>(Some(kids[0]));
        assert_eq!(c.stats::<P>().barriers, 0, "no barrier outside marking");
        let mut during = 0;
        let r = c.collect_with_hook::<P>(&mut || {
            during = WRITE_BARRIER.load(Ordering::Relaxed);
            // 9 barriers = 18 entries into an 8-entry buffer: flushes before the 5th and 9th.
            for i in 0..9 {
                a.kids[i % 3].set::<P>(Some(kids[i % 3]));
            }
        });
        assert_eq!(during, BARRIER_MARKING);
        assert_eq!(WRITE_BARRIER.load(Ordering::Relaxed), 0);
        assert_eq!(r.verifier_misses, 0);
        let s = c.stats::<P>();
        assert_eq!(s.barriers, 9);
        // Two flushes on overflow, one at mark termination (one pair left).
        assert_eq!(s.flushes, 3);
        assert!(s.objects_shaded >= 4, "{s:?}");
        assert_eq!(s.cycles, 1);
        assert_eq!(s.pauses, 2);
        drop(m);
    });
}

#[test]
fn mode_names_round_trip() {
    for m in BarrierMode::ALL {
        assert_eq!(BarrierMode::from_name(m.name()), Some(m));
    }
    assert_eq!(BarrierMode::from_name("bogus"), None);
}

/// Host cost per barriered store by mode, measured inside the mark (where the barrier is on).
/// Run with `cargo test --release -p tricolor-gc barrier_cost -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check"]
fn barrier_cost_per_store_by_mode() {
    const STORES: usize = 1 << 20;
    for mode in [BarrierMode::Off, BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::Checked] {
        let w = World::new(1, 64 * HEAP_PAGE_SIZE, Config::default(), mode);
        w.run_on(0, || {
            let c = w.collector();
            let m = w.mutator(1);
            let a = new_node(c, 1);
            m.set_root(0, a.addr());
            let targets: Vec<_> = (0..64).map(|i| new_node(c, i)).collect();
            for (i, t) in targets.iter().enumerate() {
                a.kids[i % 3].set::<P>(Some(*t));
                t.kids[0].set::<P>(Some(a)); // keep them reachable
            }
            let mut ns = 0;
            c.collect_with_hook::<P>(&mut || {
                let t0 = std::time::Instant::now();
                for i in 0..STORES {
                    a.kids[i % 3].set::<P>(Some(targets[i % 64]));
                }
                ns = t0.elapsed().as_nanos();
            });
            let s = c.stats::<P>();
            std::eprintln!(
                "[GC BARRIER] mode={} stores={} ns_per_store={:.2} barriers={} flushes={}",
                mode.name(),
                STORES,
                ns as f64 / STORES as f64,
                s.barriers,
                s.flushes
            );
            drop(m);
        });
    }
}
