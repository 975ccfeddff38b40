//! Single-threaded collector tests (Miri runs these): allocation, sweeping, poisoning, pinning,
//! out-of-memory, and the deterministic barrier scenario.

use core::sync::atomic::Ordering;

use super::{new_node, node_at, Node};
use crate::heap::POISON;
use crate::host::{HostPlatform, World};
use crate::object::{Gc, GcSlot, Trace, HEADER_SIZE};
use crate::platform::Platform;
use crate::sizeclass::HEAP_PAGE_SIZE;
use crate::{gc_type, BarrierMode, Config, Phase};

type P = HostPlatform;

gc_type! {
    /// A large object (3 pages with its header) with one pointer slot.
    #[repr(C)]
    struct Big {
        next: GcSlot<Big>,
        data: [u64; 3000],
    }
}

fn config() -> Config {
    Config { verify: true, ..Config::default() }
}

fn is_poisoned(addr: usize, len: usize) -> bool {
    // SAFETY: test-only peek at freed heap memory; no other thread runs.
    let bytes = unsafe { core::slice::from_raw_parts(core::ptr::with_exposed_provenance::<u8>(addr), len) };
    // SAFETY: any bit pattern is a valid u64.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let pattern = u64::from_ne_bytes([POISON; 8]);
    head.iter().chain(tail).all(|&b| b == POISON) && words.iter().all(|&w| w == pattern)
}

#[test]
fn allocation_is_zeroed_typed_and_aligned() {
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let a = c.alloc::<P, Node>().unwrap();
        let b = c.alloc::<P, Node>().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.addr() % 8, 0);
        assert!(a.kids.iter().all(|k| k.get().is_none()));
        assert_eq!(a.seed.load(Ordering::Relaxed), 0);
        let obj = c.heap.find_object(a.addr()).unwrap();
        assert_eq!(obj.base + HEADER_SIZE, a.addr());
        assert_eq!(c.heap.type_of(&obj).name, Node::TYPE.name);
        assert_eq!(c.heap.find_object(a.addr() + 40).unwrap(), obj, "interior pointer");
        assert!(c.heap.find_object(c.heap.base() + c.heap.size()).is_none());
        // The cache hands out objects in address order; the next slot is still free, and the
        // lookup says so although the core's cache owns the span.
        assert_eq!(b.addr(), a.addr() + 96);
        assert!(c.heap.find_object(b.addr() + 96).is_none(), "a free slot of a cached span");
        // The span the core allocates from counts whole as in use (Go's heapLive does too) ...
        assert_eq!(c.heap.in_use(), HEAP_PAGE_SIZE / 96 * 96);
        let m = w.mutator(1);
        m.set_root(0, a.addr());
        // ... until mark termination takes it from the cache: then only live objects count.
        c.collect::<P>();
        assert_eq!(c.heap.in_use(), 96);
        assert!(c.heap.find_object(b.addr()).is_none(), "the unrooted one was freed");
        drop(m);
    });
}

#[test]
fn unreachable_objects_are_freed_and_poisoned_reachable_ones_survive() {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        ROOT.set::<P>(None);
        c.roots.register_slot(&ROOT);
        let live = new_node(c, 1);
        let child = new_node(c, 2);
        live.kids[1].set::<P>(Some(child));
        ROOT.set::<P>(Some(live));
        let garbage: Vec<usize> = (0..10).map(|i| new_node(c, 100 + i).addr()).collect();
        let r = c.collect::<P>();
        assert_eq!(r.verifier_misses, 0);
        assert_eq!(r.freed_objects, 10);
        assert_eq!(r.marked_bytes, 2 * 96);
        assert!(live.intact() && child.intact());
        for g in garbage {
            assert!(c.heap.find_object(g).is_none(), "freed object still allocated");
            assert!(is_poisoned(g - HEADER_SIZE, 96), "freed object not poisoned");
        }
        c.heap.check_poisoned().unwrap();
        // Drop the child: the next cycle frees it.
        live.kids[1].set::<P>(None);
        let r = c.collect::<P>();
        assert_eq!(r.freed_objects, 1);
        assert!(is_poisoned(child.addr() - HEADER_SIZE, 96));
        ROOT.set::<P>(None);
        let r = c.collect::<P>();
        assert_eq!(r.freed_objects, 1);
        assert_eq!(c.heap.in_use(), 0);
        c.heap.check_poisoned().unwrap();
        assert_eq!(c.phase(), Phase::Idle);
    });
}

#[test]
fn stack_roots_are_scanned_conservatively_including_interior_pointers() {
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(2);
        let a = new_node(c, 7);
        let b = new_node(c, 8);
        m.set_root(0, a.addr() + 24); // interior
        m.set_root(1, b.addr());
        let dead = new_node(c, 9).addr();
        let r = c.collect::<P>();
        assert_eq!(r.freed_objects, 1);
        assert!(a.intact() && b.intact());
        assert!(c.heap.find_object(dead).is_none());
        drop(m);
    });
}

#[test]
fn large_objects_get_their_own_pages_and_are_reused_after_free() {
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let a = c.alloc::<P, Big>().unwrap();
        assert_eq!((a.addr() - HEADER_SIZE) % HEAP_PAGE_SIZE, 0, "large objects start a span");
        let b = c.alloc::<P, Big>().unwrap();
        a.next.set::<P>(Some(b));
        m.set_root(0, a.addr());
        assert_eq!(c.heap.in_use(), 2 * 3 * HEAP_PAGE_SIZE);
        assert_eq!(c.collect::<P>().freed_objects, 0);
        m.set_root(0, b.addr());
        assert_eq!(c.collect::<P>().freed_objects, 1);
        assert!(is_poisoned(a.addr() - HEADER_SIZE, 3 * HEAP_PAGE_SIZE));
        let again = c.alloc::<P, Big>().unwrap();
        assert_eq!(again.addr(), a.addr(), "first fit reuses the freed pages");
        c.heap.check_poisoned().unwrap();
        drop(m);
    });
}

/// A word that points at an object's header, not into its payload, is no reference to it: no
/// handle points there, but one past the end of the object below it does. The kernel's
/// `suite=large` hit this: zeroing a large object allocated during the mark left `base + len`
/// (memset's end pointer, saved in an interrupt's trap frame) on the mutator's stack, and that is
/// the base of the adjacent dead large object, which the verifier then reported as missed.
#[test]
fn a_word_pointing_at_an_object_header_is_not_a_conservative_reference() {
    const BIG_BYTES: usize = 3 * HEAP_PAGE_SIZE;
    for mode in [BarrierMode::Buffered, BarrierMode::Direct] {
        let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), mode);
        w.run_on(0, || {
            let c = w.collector();
            let m = w.mutator(1);
            // [hole][dead]: the hole is freed, so an allocation during the mark lands right below
            // the dead object, whose base is that allocation's end.
            let hole = c.alloc::<P, Big>().unwrap().addr() - HEADER_SIZE;
            let dead = c.alloc::<P, Big>().unwrap();
            let dead_base = dead.addr() - HEADER_SIZE;
            assert_eq!(dead_base, hole + BIG_BYTES);
            m.set_root(0, dead.addr());
            assert_eq!(c.collect::<P>().freed_objects, 1, "{mode:?}: the hole is freed");

            // The dead object is unreachable at mark start.
            m.set_root(0, 0);
            let r = c.collect_with_hook::<P>(&mut || {
                // During the mark: allocate (black) into the hole, and leave its end pointer
                // (the dead object's header) on the stack, as an interrupted memset would.
                let fresh = c.alloc::<P, Big>().unwrap();
                let end = fresh.addr() - HEADER_SIZE + BIG_BYTES;
                assert_eq!(end, dead_base, "first fit reuses the hole");
                m.set_root(0, end);
            });
            assert_eq!(r.verifier_misses, 0, "{mode:?}: {:?}", c.take_misses::<P>());
            assert_eq!(r.freed_objects, 1, "{mode:?}: the dead object is freed");
            assert!(c.heap.find_object(dead_base + HEADER_SIZE).is_none());
            assert!(is_poisoned(dead_base, BIG_BYTES));
            c.heap.check_poisoned().unwrap();

            // The mark follows the same rule: a header pointer seen at mark start keeps nothing,
            // a payload pointer keeps its object.
            let other = c.alloc::<P, Big>().unwrap();
            assert_eq!(other.addr() - HEADER_SIZE, dead_base, "first fit reuses the freed pages");
            m.set_root(0, dead_base);
            let r = c.collect::<P>();
            assert_eq!(r.freed_objects, 2, "{mode:?}: the black one from the hook and `other`");
            assert_eq!(r.verifier_misses, 0);
            let kept = c.alloc::<P, Big>().unwrap();
            m.set_root(0, kept.addr());
            assert_eq!(c.collect::<P>().freed_objects, 0, "{mode:?}: a payload pointer keeps it");
            assert!(c.heap.find_object(kept.addr()).is_some());
            drop(m);
        });
    }
}

#[test]
fn out_of_memory_is_an_error_naming_size_and_heap_state() {
    let w = World::new(1, 4 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let e = c.alloc_pinned::<P>(5 * HEAP_PAGE_SIZE).unwrap_err();
        assert_eq!(e.requested, 5 * HEAP_PAGE_SIZE);
        assert_eq!(e.heap_size, 4 * HEAP_PAGE_SIZE);
        assert_eq!(e.free_pages, 4);
        let msg = format!("{e}");
        assert!(msg.contains("requested 40960 bytes"), "{msg}");
        assert!(msg.contains("largest free run 4 pages"), "{msg}");
        // Fill with small objects until it fails; no corruption, a clean error.
        let m = w.mutator(1);
        let mut n = 0;
        let err = loop {
            match c.alloc::<P, Node>() {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(n, 4 * (HEAP_PAGE_SIZE / 96));
        assert_eq!(err.free_pages, 0);
        assert_eq!(err.requested, core::mem::size_of::<Node>());
        // Everything was garbage: a collection makes room again.
        assert_eq!(c.collect::<P>().freed_objects, n as u64);
        assert!(c.alloc::<P, Node>().is_ok());
        drop(m);
    });
}

#[test]
fn pinned_buffers_survive_unreachable_until_unpinned() {
    let w = World::new(1, 8 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let fb = c.alloc_pinned::<P>(HEAP_PAGE_SIZE + 1).unwrap();
        assert_eq!(fb.addr % HEAP_PAGE_SIZE, 0);
        assert_eq!(fb.len, 2 * HEAP_PAGE_SIZE);
        // SAFETY: the buffer is ours, `len` bytes.
        unsafe { core::ptr::write_bytes(fb.as_ptr(), 0x5A, fb.len) };
        assert_eq!(c.collect::<P>().freed_objects, 0, "pinned: kept though unreachable");
        // SAFETY: as above.
        assert_eq!(unsafe { *fb.as_ptr().add(fb.len - 1) }, 0x5A);
        assert!(c.unpin::<P>(&fb));
        assert_eq!(c.collect::<P>().freed_objects, 1);
        assert!(is_poisoned(fb.addr, fb.len));
    });
}

#[test]
fn pointers_around_a_pinned_buffer_never_name_an_ordinary_object() {
    let w = World::new(1, 32 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let fb = c.alloc_pinned::<P>(2 * HEAP_PAGE_SIZE).unwrap();
        let below = c.alloc_pinned::<P>(HEAP_PAGE_SIZE).unwrap();
        let node = new_node(c, 1);
        let heap_end = c.heap.base() + c.heap.size();
        // Pinned spans take the top of the heap: past the first buffer's tail there is no heap.
        assert_eq!(fb.addr + fb.len + crate::heap::PINNED_TAIL_PAGES * HEAP_PAGE_SIZE, heap_end);
        assert!(c.heap.find_object(fb.addr + fb.len + 5 * 5120).is_none(), "five rows past the end: no object");
        // The next pinned buffer sits right below; a pointer past its end is in the buffer above
        // (pinned too), never in an ordinary object.
        let past = c.heap.find_object(below.addr + below.len + 2 * HEAP_PAGE_SIZE).expect("in the buffer above");
        assert_eq!(past.base, fb.addr - crate::heap::PINNED_HEAD_PAGES * HEAP_PAGE_SIZE);
        // A row before a buffer's start is still its own span (the head page).
        let before = c.heap.find_object(fb.addr - 5120).expect("inside the head padding");
        assert_eq!(before.base, fb.addr - crate::heap::PINNED_HEAD_PAGES * HEAP_PAGE_SIZE);
        // Ordinary objects come from the bottom, far from both.
        assert!(node.addr() < below.addr - crate::heap::PINNED_HEAD_PAGES * HEAP_PAGE_SIZE);
    });
}

#[test]
fn trigger_follows_the_live_heap_and_percent() {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(
        1,
        64 * HEAP_PAGE_SIZE,
        Config { percent: 50, heap_minimum: 2048, ..config() },
        BarrierMode::Buffered,
    );
    w.run_on(0, || {
        let c = w.collector();
        ROOT.set::<P>(None);
        c.roots.register_slot(&ROOT);
        // Before any cycle: the heap minimum × percent/100 is the goal, the trigger below it.
        assert_eq!(c.heap_goal(), 1024);
        assert!(c.trigger() > 0 && c.trigger() < 1024, "trigger {}", c.trigger());
        let mut head = None;
        for i in 0..100 {
            let n = new_node(c, i);
            n.kids[0].set::<P>(head);
            head = Some(n);
        }
        ROOT.set::<P>(head);
        assert!(c.should_collect());
        let r = c.collect::<P>();
        assert_eq!(r.marked_bytes, 100 * 96);
        let live = 100 * 96;
        assert_eq!(c.heap_goal(), live * 150 / 100, "the goal is live x (1 + percent/100)");
        assert_eq!(r.heap_goal, 1024, "this cycle was paced for the floor");
        assert!(r.peak_heap >= r.marked_bytes, "{r:?}");
        // The trigger leaves the pacer's runway below the goal.
        let share = (c.trigger() - live) as f64 / (c.heap_goal() - live) as f64;
        assert!(
            (crate::pacer::TRIGGER_SHARE_MIN..=crate::pacer::TRIGGER_SHARE_MAX).contains(&share),
            "trigger {} between live {live} and goal {}",
            c.trigger(),
            c.heap_goal()
        );
        assert!(!c.should_collect());
        ROOT.set::<P>(None);
    });
}

/// Two new nodes, A in `root` (registered as a root) and B only in A's last field.
fn rooted_pair(c: &crate::Collector, root: &'static GcSlot<Node>) -> (Gc<Node>, Gc<Node>) {
    root.set::<P>(None);
    c.roots.register_slot(root);
    let a = new_node(c, 1);
    let b = new_node(c, 2);
    a.kids[2].set::<P>(Some(b));
    root.set::<P>(Some(a));
    (a, b)
}

/// The hazard the deletion half of the barrier exists for: during marking, a mutator moves the
/// only heap pointer to B onto its (already scanned) stack and clears the field. `scenario`
/// returns the verifier's misses.
fn moved_to_stack_scenario(mode: BarrierMode) -> (Vec<crate::Miss>, usize, usize) {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), mode);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let (a, b) = rooted_pair(c, &ROOT);
        let r = c.collect_with_hook::<P>(&mut || {
            // Stack scanned, A grey, B white. Move B to the stack, clear A's field.
            let moved = a.kids[2].get();
            m.set_root(0, moved.map_or(0, |g| g.addr()));
            a.kids[2].set::<P>(None);
        });
        // B is still reachable from the stack: verifier or barrier must have kept it.
        let b_again = node_at(m.root(0)).unwrap();
        assert!(b_again.intact(), "reachable object corrupted");
        let misses = c.take_misses::<P>();
        ROOT.set::<P>(None);
        drop(m);
        (misses, r.verifier_misses, b.addr() - HEADER_SIZE)
    })
}

#[test]
fn buffered_barrier_keeps_an_object_moved_to_the_stack_during_mark() {
    for mode in [BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::Checked, BarrierMode::DirectSystemstack] {
        let (misses, n, _) = moved_to_stack_scenario(mode);
        assert_eq!(n, 0, "{mode:?}: {misses:?}");
    }
}

#[test]
fn without_the_barrier_the_verifier_catches_the_lost_object() {
    let (misses, n, b) = moved_to_stack_scenario(BarrierMode::UnsafeOffDuringMark);
    assert_eq!(n, 1, "negative control not caught");
    assert_eq!(misses[0].object, b);
    assert_eq!(misses[0].type_name, "Node");
    assert_eq!(misses[0].parent, None, "reached through a stack word");
}

#[test]
fn off_mode_marks_with_the_world_stopped_in_one_pause() {
    let (misses, n, _) = moved_to_stack_scenario(BarrierMode::Off);
    assert_eq!(n, 0, "{misses:?}");
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Off);
    w.run_on(0, || {
        let r = w.collector().collect::<P>();
        assert_eq!(r.pause_ns[1], 0, "no second pause in off mode");
        assert_eq!(w.collector().stats::<P>().pauses, 1);
    });
}

/// Four full spans of `Node`s and a fifth with ten, all live through a chain from the mutator's
/// root; then objects become garbage in the first span (all but one) and the third (20). Returns
/// the nodes, oldest first, and the garbage.
fn fill_spans_then_drop_some(c: &crate::Collector, m: &crate::host::Mutator<'_>) -> (Vec<Gc<Node>>, Vec<usize>) {
    const PER_SPAN: usize = HEAP_PAGE_SIZE / 96;
    let mut all: Vec<Gc<Node>> = Vec::new();
    for i in 0..4 * PER_SPAN + 10 {
        let n = new_node(c, i as u64);
        n.kids[0].set::<P>(all.last().copied());
        all.push(n);
    }
    m.set_root(0, all.last().unwrap().addr());
    // Unlink nodes 1..PER_SPAN and 2 * PER_SPAN + 1..=2 * PER_SPAN + 20 from the chain.
    all[PER_SPAN].kids[0].set::<P>(Some(all[0]));
    all[2 * PER_SPAN + 21].kids[0].set::<P>(Some(all[2 * PER_SPAN]));
    let dead = (1..PER_SPAN).chain(2 * PER_SPAN + 1..=2 * PER_SPAN + 20).map(|i| all[i].addr()).collect();
    (all, dead)
}

fn small_span_count(c: &crate::Collector) -> usize {
    let mut n = 0;
    c.heap.for_each_span(|s| n += usize::from(!s.large));
    n
}

/// Allocation after a sweep fills the room freed in old, once full spans (and the cache's
/// partly used span) before taking a fresh span: refill must not lose a span with free objects,
/// whether the collector's sweep found the room (`lazy == false`) or refill sweeps lazily itself.
fn refill_reuses_freed_room(lazy: bool) {
    let w = World::new(1, 32 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let (all, dead) = fill_spans_then_drop_some(c, &m);
        assert_eq!(small_span_count(c), 5);
        let spans: Vec<u32> = all.iter().map(|n| c.heap.find_object(n.addr()).unwrap().span).collect();
        if lazy {
            // A mark that found everything but `dead`, then a new sweep generation with no
            // sweep: only allocation sweeps.
            for n in &all {
                if !dead.contains(&n.addr()) {
                    let o = c.heap.find_object(n.addr()).unwrap();
                    c.heap.span(o.span).mark.set(o.index as usize);
                }
            }
            c.heap.begin_sweep_generation((0..P::core_count()).map(P::core));
        } else {
            assert_eq!(c.collect::<P>().freed_objects, dead.len() as u64);
            // A second sweep generation with no refill in between must not forget the room.
            assert_eq!(c.collect::<P>().freed_objects, 0);
        }
        let room = dead.len() + (HEAP_PAGE_SIZE / 96 - 10);
        for i in 0..room {
            let n = new_node(c, 1000 + i as u64);
            let sp = c.heap.find_object(n.addr()).unwrap().span;
            assert!(spans.contains(&sp), "lazy {lazy}: allocation {i} of {room} took a fresh span");
        }
        assert_eq!(small_span_count(c), 5, "lazy {lazy}");
        let n = new_node(c, 1);
        assert!(!spans.contains(&c.heap.find_object(n.addr()).unwrap().span), "every old span is full now");
        assert_eq!(small_span_count(c), 6);
        // The chain survived; the new nodes are garbage.
        assert!(all.iter().filter(|n| !dead.contains(&n.addr())).all(|n| n.intact()));
        let r = c.collect::<P>();
        assert_eq!((r.verifier_misses, r.freed_objects), (0, room as u64 + 1), "lazy {lazy}");
        c.heap.check_poisoned().unwrap();
        m.set_root(0, 0);
        drop(m);
    });
}

#[test]
fn refill_reuses_room_the_sweeper_freed_in_full_spans() {
    refill_reuses_freed_room(false);
}

#[test]
fn refill_sweeps_lazily_and_reuses_room_in_full_spans() {
    refill_reuses_freed_room(true);
}

/// With no free page left, a refill looks at every span before it reports the heap full: the
/// newest 300 spans are live (a refill sweeps them first and finds no room, past its budget of
/// 100), the oldest are garbage, and the allocation must find them rather than fail.
#[test]
fn a_refill_with_no_page_left_sweeps_past_its_budget_before_failing() {
    const PAGES: usize = 400;
    const LIVE_SPANS: usize = 300;
    let w = World::new(1, PAGES * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let mut spans: Vec<u32> = Vec::new();
        let mut objects: Vec<(u32, usize)> = Vec::new();
        while let Ok(n) = c.alloc::<P, Node>() {
            let o = c.heap.find_object(n.addr()).unwrap();
            if spans.last() != Some(&o.span) {
                spans.push(o.span);
            }
            objects.push((o.span, o.index as usize));
        }
        assert_eq!(spans.len(), PAGES, "the heap is full of one-page spans");
        // A mark that found the newest spans' objects only, then a sweep generation with no
        // sweep: only allocation sweeps.
        let live = &spans[PAGES - LIVE_SPANS..];
        for &(sp, i) in objects.iter().filter(|(sp, _)| live.contains(sp)) {
            c.heap.span(sp).mark.set(i);
        }
        c.heap.begin_sweep_generation((0..P::core_count()).map(P::core));
        let n = c.alloc::<P, Node>().expect("garbage spans are left: the heap is not full");
        let sp = c.heap.find_object(n.addr()).unwrap().span;
        assert!(spans[..PAGES - LIVE_SPANS].contains(&sp), "the room came from a garbage span");
    });
}

/// `len` nodes linked through their first child, head first: marked one at a time (each scan
/// greys the next).
fn chain(c: &crate::Collector, len: usize) -> Gc<Node> {
    let head = new_node(c, 0);
    let mut tail = head;
    for i in 1..len {
        let n = new_node(c, i as u64);
        tail.kids[0].set::<P>(Some(n));
        tail = n;
    }
    head
}

/// A mark assist scans at most its budget and hands the rest back: the cycle still marks
/// everything reachable (the verifier checks), and the assists' count plus the collector's is the
/// whole graph.
#[test]
fn a_mark_assist_scans_its_budget_and_leaves_the_rest_to_the_marker() {
    const NODES: usize = 200;
    const BUDGET: usize = 8;
    let w = World::new(1, 32 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        // A root with NODES children in a chain: one grey object at a time, each scan greys the next.
        let head = chain(c, NODES);
        m.set_root(0, head.addr());
        assert_eq!(c.mark_assist::<P>(BUDGET), 0, "no cycle is marking");
        let mut assisted = Vec::new();
        let r = c.collect_with_hook::<P>(&mut || {
            for _ in 0..5 {
                assisted.push(c.mark_assist::<P>(BUDGET));
            }
        });
        assert_eq!(assisted, [BUDGET; 5], "each assist scans exactly its budget while grey objects remain");
        assert_eq!(r.verifier_misses, 0, "{:?}", c.take_misses::<P>());
        assert_eq!(r.freed_objects, 0);
        assert_eq!(r.marked_bytes, (NODES * 96) as u64);
        let mut n = Some(head);
        let mut count = 0;
        while let Some(node) = n {
            assert!(node.intact());
            count += 1;
            n = node.kids[0].get();
        }
        assert_eq!(count, NODES);
        drop(m);
    });
}

/// An allocation's assist debt is paid only while the mark is behind its schedule: with nothing
/// scanned yet and allocation under way the mutator marks; once the markers (`mark_assist` stands
/// in for them) have scanned most of the graph, the same debt is left to them, though grey
/// objects remain.
#[test]
fn allocation_assists_only_behind_the_marks_schedule() {
    const NODES: usize = 400;
    // A 256 KiB first goal: room for a few thousand nodes before the allocation outruns the mark.
    let w = World::new(1, 512 * HEAP_PAGE_SIZE, Config { heap_minimum: 256 * 1024, ..config() }, BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let head = chain(c, NODES);
        m.set_root(0, head.addr());
        let debt = 64 * crate::collector::ASSIST_BATCH as usize;
        let (mut ahead, mut behind, mut fresh) = (0, 0, Vec::new());
        let r = c.collect_with_hook::<P>(&mut || {
            // The markers (`mark_assist` stands in for them) scan all but the chain's last 20,
            // and little has been allocated since the start: ahead of the schedule.
            assert_eq!(c.mark_assist::<P>(NODES - 20), NODES - 20);
            fresh.extend((0..4).map(|i| new_node(c, i)));
            ahead = c.assist_alloc::<P>(debt);
            // Allocation (black) goes on until the marking so far no longer covers it: behind.
            while behind == 0 && fresh.len() < 20 * NODES {
                fresh.extend((0..50).map(|i| new_node(c, i)));
                behind = c.assist_alloc::<P>(debt);
            }
        });
        assert_eq!(ahead, 0, "ahead of the schedule the markers' work pays the debt, grey objects left or not");
        assert!(behind > 0, "behind it a debt is paid by marking ({} nodes allocated)", fresh.len());
        // The schedule gave the allocation room: the room left at the start is the goal less the
        // heap then (at least a tenth of the distance), so it took about that much to fall behind.
        assert!(fresh.len() > 100, "behind after only {} nodes", fresh.len());
        assert!(fresh.iter().all(|n| n.intact()));
        assert_eq!(r.verifier_misses, 0, "{:?}", c.take_misses::<P>());
        drop(m);
    });
}

/// The flush's lookup agrees with `find_object` at every word of the heap and around it: it finds
/// an object exactly when `find_object` does and its mark bit is clear, with the same object, and
/// filters nil, addresses outside the heap, free pages (the sentinel span), free slots, a span's
/// tail and marked objects (small, large and no-scan).
#[test]
fn the_flush_lookup_agrees_with_find_object_everywhere() {
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let nodes: Vec<Gc<Node>> = (0..40).map(|_| c.alloc::<P, Node>().unwrap()).collect();
        let big = c.alloc::<P, Big>().unwrap();
        let pinned = c.alloc_pinned::<P>(64).unwrap();
        // Mark some: every third node, and the large object.
        for n in nodes.iter().step_by(3) {
            let o = c.heap.find_object(n.addr()).unwrap();
            assert!(c.heap.span(o.span).mark.set(o.index as usize));
        }
        let o = c.heap.find_object(big.addr()).unwrap();
        assert!(c.heap.span(o.span).mark.set(o.index as usize));
        let view = c.heap.view();
        let (lo, hi) = (c.heap.base(), c.heap.base() + c.heap.size());
        let (mut found, mut filtered_marked) = (0, 0);
        for addr in (lo - 64..hi + 64).step_by(8).chain([0, 8, usize::MAX - 7]) {
            let expected = c.heap.find_object(addr).filter(|o| !c.heap.span(o.span).mark.get(o.index as usize));
            let got = view.find_unmarked(addr);
            assert_eq!(got.map(|(o, _, _)| o), expected, "address {addr:#x}");
            if let Some((o, word, bit)) = got {
                assert_eq!((word, bit), (o.index as usize / 64, 1 << (o.index % 64)), "address {addr:#x}");
                found += 1;
            } else if c.heap.find_object(addr).is_some() {
                filtered_marked += 1;
            }
        }
        assert!(found > 0 && filtered_marked > 0, "found {found}, filtered as marked {filtered_marked}");
        assert!(view.find_unmarked(pinned.addr).is_some(), "a white no-scan buffer");
        drop(nodes);
    });
}

/// A cycle that moves ([`crate::Collector::collect_movable`]) during its concurrent mark: the
/// task that started it goes back to being a mutator, and the cycle is finished as another core
/// ([`crate::Collector::resume_cycle`]). In between, that mutator does what the deletion half
/// of the barrier exists for (the only heap pointer to B moved to its already scanned stack and
/// the field cleared), allocates, and exits (its stack dies: B then survives only because it was
/// reachable at mark start and the barrier shaded it). Returns the resumed cycle's verifier
/// misses and freed objects (10 were garbage at its start), and whether B is intact; checks that
/// the cycle lock is let go at its end.
fn moved_cycle_scenario(mode: BarrierMode) -> (usize, u64, bool) {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(2, 32 * HEAP_PAGE_SIZE, config(), mode);
    w.run_on(0, || {
        let c = w.collector();
        let m = w.mutator(1);
        let (a, b) = rooted_pair(c, &ROOT);
        for seed in 10..20 {
            new_node(c, seed); // garbage
        }
        let mut asked = 0;
        let progress = c.collect_movable::<P>(&mut || {}, &mut || {
            asked += 1;
            asked == 1
        });
        let crate::CycleProgress::Moved(cycle) = progress else {
            panic!("{mode:?}: asked to move before its first drain, the cycle ran to its end")
        };
        assert_eq!(asked, 1, "{mode:?}");
        assert_eq!(c.phase(), Phase::Mark, "{mode:?}: it moved during the mark");
        // Back to being a mutator, the cycle still marking.
        m.set_root(0, a.kids[2].get().map_or(0, |g| g.addr()));
        a.kids[2].set::<P>(None);
        let fresh = new_node(c, 3);
        a.kids[0].set::<P>(Some(fresh));
        drop(m);
        let r = w.run_on(1, || c.resume_cycle::<P>(cycle));
        assert_eq!(c.phase(), Phase::Idle, "{mode:?}");
        assert!(fresh.intact(), "{mode:?}: allocated black");
        let kept = r.freed_objects == 10 && b.intact();
        // The lock went with the cycle and was let go at its end: another cycle runs.
        c.collect::<P>();
        ROOT.set::<P>(None);
        (r.verifier_misses, r.freed_objects, kept)
    })
}

#[test]
fn a_cycle_that_moves_mid_mark_is_finished_by_another_core_and_loses_nothing() {
    for mode in [BarrierMode::Buffered, BarrierMode::Direct] {
        assert_eq!(moved_cycle_scenario(mode), (0, 10, true), "{mode:?}: no miss, the garbage freed and only it");
    }
}

/// The negative control: with the barrier off during the mark, the moved cycle frees B.
#[test]
fn a_moved_cycle_without_the_barrier_frees_the_node_its_first_task_hid() {
    let (_, freed, kept) = moved_cycle_scenario(BarrierMode::UnsafeOffDuringMark);
    assert_eq!((freed, kept), (11, false), "B must be lost without the barrier");
}

/// A mark whose wbBuf fills while the only pointer to B is in it: the barrier's flush hands the
/// records over (`mark::Batches`) and the markers, not the mutator, shade them. `lose` is the
/// negative control: the handed-over batch is dropped instead of queued. Returns the verifier's
/// misses, the hand-offs made and whether B survived.
fn handed_off_scenario(handoff: bool, lose: bool) -> (usize, u64, bool) {
    static ROOT: GcSlot<Node> = GcSlot::null();
    let w = World::new(1, 16 * HEAP_PAGE_SIZE, config(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        // A buffer of one pair: the store after the one that records B's pair flushes it.
        c.set_wbbuf_entries::<P>(2);
        c.set_handoff(handoff);
        c.work.lose_batches_for_test(lose);
        let m = w.mutator(1);
        let (a, b) = rooted_pair(c, &ROOT);
        for seed in 10..20 {
            new_node(c, seed); // garbage
        }
        let before = c.stats::<P>().handoffs;
        let r = c.collect_with_hook::<P>(&mut || {
            // Stack scanned, A grey, B white: B moves to the stack, A's field is cleared (the
            // pair [B, nil] fills the buffer), and the next store flushes it.
            m.set_root(0, a.kids[2].get().map_or(0, |g| g.addr()));
            a.kids[2].set::<P>(None);
            a.kids[0].set::<P>(None);
        });
        let handoffs = c.stats::<P>().handoffs - before;
        let kept = b.intact() && r.freed_objects == 10;
        c.work.lose_batches_for_test(false);
        ROOT.set::<P>(None);
        drop(m);
        (r.verifier_misses, handoffs, kept)
    })
}

#[test]
fn a_full_wbbuf_handed_to_the_markers_is_shaded_before_the_mark_ends() {
    assert_eq!(handed_off_scenario(true, false), (0, 1, true), "one hand-off, no miss, only the garbage freed");
    assert_eq!(handed_off_scenario(false, false), (0, 0, true), "hand-off off: the mutator's flush shades");
}

/// The negative control: a hand-off whose batch never reaches a marker loses B, and the verifier
/// catches it.
#[test]
fn a_handed_off_batch_that_is_lost_loses_the_object_it_recorded() {
    let (misses, handoffs, _) = handed_off_scenario(true, true);
    assert_eq!((misses, handoffs), (1, 1), "the verifier must catch B");
}
