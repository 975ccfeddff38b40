//! Threads as cores: mutators rewire a random object graph while a collector thread runs cycles
//! back to back. After every cycle, with the world stopped, every object reachable from the
//! roots must be allocated, typed and intact, and every free byte poisoned; the verifier must
//! find nothing. The negative control runs the same workload marking with the barrier off and
//! must be caught by the verifier.
//!
//! Sizes are chosen to keep the crate's tests fast on a shared 2-core machine; set
//! `TRICOLOR_STRESS_CYCLES` for longer runs.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::collections::HashSet;

use super::{node_at, Node, Rng};
use crate::host::{HostPlatform, Mutator, World};
use crate::object::{GcSlot, Trace, HEADER_SIZE};
use crate::platform::Platform;
use crate::{take_checked_reports, BarrierMode, Collector, Config};

type P = HostPlatform;

const GLOBALS: usize = 16;
const STACK_SLOTS: usize = 16;

/// Stack slots `0..HEADS` hold list heads (allocation prepends to them); the rest are scratch
/// slots that loads and moves write.
const HEADS: usize = 8;
/// The last slots: written only when a list is cut.
const HIDEOUTS: usize = 4;
const HIDEOUT: usize = STACK_SLOTS - HIDEOUTS;

/// One mutator operation. Between operations every handle the thread holds is in its stack slots,
/// so the safe point between batches is a valid place to scan it.
fn step(c: &Collector, m: &Mutator<'_>, globals: &[GcSlot<Node>], rng: &mut Rng, last_cut: &mut u64) {
    let head = rng.below(HEADS);
    let scratch = HEADS + rng.below(HIDEOUT - HEADS);
    let any = rng.below(STACK_SLOTS);
    // Walk a few links down from a stack node, so rewiring happens deep in the graph too.
    let mut holder = node_at(m.root(rng.below(STACK_SLOTS)));
    for _ in 0..rng.below(12) {
        match holder.and_then(|h| h.kids[rng.below(3)].get()) {
            Some(next) => holder = Some(next),
            None => break,
        }
    }
    let side = 1 + rng.below(2);
    // Adversarial timing: once per cycle, early in the mark (when the marker has probably not
    // reached it yet), cut a list and hide its tail on the stack. Correct modes must shade it
    // through the deletion barrier; the negative control loses it.
    let cycle = c.stats.cycles.get();
    if c.phase() == crate::Phase::Mark && *last_cut != cycle {
        if let Some((h, tail)) = holder.and_then(|h| h.kids[0].get().map(|t| (h, t))) {
            *last_cut = cycle;
            m.set_root(HIDEOUT + rng.below(HIDEOUTS), tail.addr());
            h.kids[0].set::<P>(None);
            return;
        }
    }
    match rng.below(16) {
        0..=4 => match c.alloc::<P, Node>() {
            Ok(n) => {
                // Prepend to the list at a head slot (lists grow until the heap fills), and hang
                // it into an empty side field of another node.
                n.init(rng.next_u64());
                n.kids[0].set::<P>(node_at(m.root(head)));
                m.set_root(head, n.addr());
                if let Some(h) = holder {
                    if h.kids[side].get().is_none() {
                        h.kids[side].set::<P>(Some(n));
                    }
                }
            }
            Err(_) => {
                // Out of memory: let the collector run; now and then drop a list and a global so
                // a live graph that fills the heap shrinks again.
                std::thread::yield_now();
                if rng.below(16) == 0 {
                    globals[rng.below(GLOBALS)].set::<P>(None);
                    m.set_root(head, 0);
                }
            }
        },
        // Load a field onto the stack.
        5 | 6 => m.set_root(scratch, holder.and_then(|h| h.kids[rng.below(3)].get()).map_or(0, |g| g.addr())),
        // Store a stack value into a side field (insertion).
        7 | 8 => {
            if let Some(h) = holder {
                h.kids[side].set::<P>(node_at(m.root(any)));
            }
        }
        // Move a field to the stack and clear it: the hazard the deletion half exists for.
        9 | 10 => {
            if let Some(h) = holder {
                let v = h.kids[side].get();
                m.set_root(scratch, v.map_or(0, |g| g.addr()));
                h.kids[side].set::<P>(None);
            }
        }
        // Cut a list: move the tail to a hideout slot (only these moves write them, so the moved
        // tail tends to stay reachable until mark termination).
        11 => {
            if let Some(h) = holder {
                let v = h.kids[0].get();
                m.set_root(HIDEOUT + rng.below(HIDEOUTS), v.map_or(0, |g| g.addr()));
                h.kids[0].set::<P>(None);
            }
        }
        12 => globals[rng.below(GLOBALS)].set::<P>(node_at(m.root(any))),
        13 => m.set_root(scratch, globals[rng.below(GLOBALS)].get().map_or(0, |g| g.addr())),
        14 => m.set_root(scratch, 0),
        _ => {
            // Move a global onto the stack and clear the global.
            let g = &globals[rng.below(GLOBALS)];
            m.set_root(scratch, g.get().map_or(0, |g| g.addr()));
            g.set::<P>(None);
        }
    }
}

/// With the world stopped: walk everything reachable and check it. Returns the object count.
fn check_reachable(c: &Collector, globals: &[GcSlot<Node>]) -> usize {
    let mut seen = HashSet::new();
    let mut grey: Vec<usize> = globals.iter().filter_map(|g| g.get().map(|g| g.addr())).collect();
    P::for_each_stack_range(&mut |r, _| {
        let mut a = r.lo;
        while a < r.hi {
            // SAFETY: a registered root array; its owner is parked.
            grey.push(unsafe { core::ptr::with_exposed_provenance::<usize>(a).read() });
            a += 8;
        }
    });
    while let Some(addr) = grey.pop() {
        if addr == 0 || !seen.insert(addr) {
            continue;
        }
        let obj =
            c.heap.find_object(addr).unwrap_or_else(|| panic!("reachable object {addr:#x} is not allocated (freed?)"));
        assert_eq!(obj.base + HEADER_SIZE, addr);
        // Type descriptors are compared by content: a promoted `const` reference need not have
        // one address across uses.
        let ty = c.heap.type_of(&obj);
        assert!(
            ty.name == Node::TYPE.name && ty.size == Node::TYPE.size,
            "reachable object {addr:#x} has a bad header"
        );
        let n = node_at(addr).unwrap();
        assert!(n.intact(), "reachable object {addr:#x} corrupted");
        grey.extend(n.kids.iter().filter_map(|k| k.get().map(|g| g.addr())));
    }
    seen.len()
}

struct Outcome {
    cycles: usize,
    misses: usize,
    cycles_with_misses: usize,
    max_reachable: usize,
    stats: crate::StatsSnapshot,
}

/// Run `mutators` mutator threads and a collector for up to `cycles` cycles (stopping early at the
/// first verifier miss if `stop_on_miss`).
/// One stress run's shape.
#[derive(Clone, Copy)]
struct Params {
    mode: BarrierMode,
    mutators: usize,
    /// Cores running `mark_worker` besides the collecting core.
    markers: usize,
    heap_bytes: usize,
    /// Upper bound on cycles.
    cycles: usize,
    /// Mutator operations at least between cycles (and at most 25x that).
    ops_between: usize,
    seed: u64,
    verify: bool,
    wbbuf_entries: usize,
    /// Check reachable objects and poison after every cycle.
    check: bool,
    stop_on_miss: bool,
}

impl Params {
    fn new(mode: BarrierMode) -> Self {
        Params {
            mode,
            mutators: 3,
            markers: 1,
            heap_bytes: 2 << 20,
            cycles: cycles_from_env(20),
            ops_between: 2000,
            seed: 7,
            verify: true,
            // Small buffers: more flushes during marking, more chances to get one wrong.
            wbbuf_entries: 64,
            check: true,
            stop_on_miss: false,
        }
    }

    /// Small enough for Miri: its data-race detector then checks the barrier, the handshake and
    /// the concurrent sweep.
    fn miri(mode: BarrierMode) -> Self {
        Params {
            mutators: 2,
            markers: 0,
            heap_bytes: 8 * crate::sizeclass::HEAP_PAGE_SIZE,
            cycles: 2,
            ops_between: 64,
            ..Params::new(mode)
        }
    }
}

fn run(p: Params) -> Outcome {
    let Params { mode, mutators, cycles, seed, stop_on_miss, .. } = p;
    let globals: Box<[GcSlot<Node>]> = (0..GLOBALS).map(|_| GcSlot::null()).collect();
    let config = Config { verify: p.verify, wbbuf_entries: p.wbbuf_entries, ..Config::default() };
    // Core 0 collects, then the mutators, then the mark workers.
    let w = World::new(1 + mutators + p.markers, p.heap_bytes, config, mode);
    let c = w.collector();
    let base = globals.as_ptr() as *const core::sync::atomic::AtomicUsize;
    // SAFETY: `globals` are `GcSlot`s (transparent atomics), declared before `w`, so they outlive
    // the world and its collector; they are written only through the barrier.
    unsafe { c.roots.register_section(base, base.add(GLOBALS)) };
    let stop = AtomicBool::new(false);
    let ops = AtomicUsize::new(0);
    let running = AtomicUsize::new(0);
    let mut out = Outcome { cycles: 0, misses: 0, cycles_with_misses: 0, max_reachable: 0, stats: Default::default() };
    std::thread::scope(|s| {
        for k in 0..p.markers {
            let (w, stop) = (&w, &stop);
            s.spawn(move || {
                w.run_on(1 + mutators + k, || {
                    // A mark worker is parked by stop-the-world like any core, so it drains only
                    // between safe points.
                    let me = w.mutator(0);
                    while !stop.load(Ordering::Relaxed) {
                        me.safe_point();
                        if w.collector().phase() == crate::Phase::Mark {
                            w.collector().mark_worker::<P>();
                        } else {
                            std::thread::yield_now();
                        }
                    }
                });
            });
        }
        for t in 0..mutators {
            let (w, globals, stop, ops, running) = (&w, &globals, &stop, &ops, &running);
            s.spawn(move || {
                w.run_on(t + 1, || {
                    let m = w.mutator(STACK_SLOTS);
                    running.fetch_add(1, Ordering::Relaxed);
                    /// Counts the thread out even when it panics.
                    struct Leave<'a>(&'a AtomicUsize);
                    impl Drop for Leave<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    let _leave = Leave(running);
                    let mut rng = Rng::new(seed * 1000 + t as u64);
                    let mut last_cut = u64::MAX;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..32 {
                            step(w.collector(), &m, globals, &mut rng, &mut last_cut);
                        }
                        ops.fetch_add(32, Ordering::Relaxed);
                        m.safe_point();
                    }
                });
            });
        }
        w.run_on(0, || {
            let _stop = super::SetOnDrop(&stop);
            while running.load(Ordering::Relaxed) < mutators {
                std::thread::yield_now();
            }
            for _ in 0..cycles {
                // Let the mutators build some graph between cycles: at least `ops_between`
                // operations, and a half-full heap (or 25x as many), so marking takes a while.
                let before = ops.load(Ordering::Relaxed);
                loop {
                    let done = ops.load(Ordering::Relaxed) - before;
                    if done >= 25 * p.ops_between || (done >= p.ops_between && c.heap.in_use() * 2 >= c.heap.size()) {
                        break;
                    }
                    assert_eq!(running.load(Ordering::Relaxed), mutators, "a mutator thread died");
                    std::thread::yield_now();
                }
                // Give the mutators a moment inside the mark before this core starts marking
                // (host threads share 2 CPUs; on the kernel's cores they run truly in parallel).
                let r = c.collect_with_hook::<P>(&mut || std::thread::sleep(std::time::Duration::from_micros(200)));
                out.cycles += 1;
                out.misses += r.verifier_misses;
                out.cycles_with_misses += usize::from(r.verifier_misses > 0);
                if !p.check {
                    continue;
                }
                P::stop_the_world(|| {
                    out.max_reachable = out.max_reachable.max(check_reachable(c, &globals));
                    if let Err(a) = c.heap.check_poisoned() {
                        panic!("free byte at {a:#x} not poisoned");
                    }
                });
                if stop_on_miss && out.misses > 0 {
                    break;
                }
            }
            out.stats = c.stats::<P>();
        });
    });
    out
}

fn cycles_from_env(default: usize) -> usize {
    std::env::var("TRICOLOR_STRESS_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run_correct_mode(mode: BarrierMode) {
    let out = run(Params::new(mode));
    std::eprintln!("{mode:?}: {} cycles, max reachable {}, {:?}", out.cycles, out.max_reachable, out.stats);
    assert_eq!(out.misses, 0, "{mode:?}: the verifier found reachable unmarked objects");
    assert!(out.max_reachable > 50, "the graph never grew: the test tests nothing");
    assert!(take_checked_reports::<P>().is_empty());
    if mode.barrier_while_marking() {
        assert!(out.stats.barriers > 0, "no barrier ran during marking");
    }
}

#[test]
#[cfg_attr(miri, ignore = "threads and thousands of cycles: too slow under Miri")]
fn concurrent_mutators_buffered() {
    run_correct_mode(BarrierMode::Buffered);
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn concurrent_mutators_direct() {
    run_correct_mode(BarrierMode::Direct);
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn concurrent_mutators_direct_systemstack() {
    run_correct_mode(BarrierMode::DirectSystemstack);
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn concurrent_mutators_checked() {
    run_correct_mode(BarrierMode::Checked);
}

#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn concurrent_mutators_off_mode_stops_the_world() {
    run_correct_mode(BarrierMode::Off);
}

/// The negative control: the same workload marking concurrently with the barrier off must be
/// caught by the verifier. Cycles until the first miss, bounded.
#[test]
#[cfg_attr(miri, ignore = "too slow under Miri")]
fn concurrent_negative_control_is_caught_by_the_verifier() {
    let bound = cycles_from_env(20) * 10;
    let out =
        run(Params { cycles: bound, seed: 11, stop_on_miss: true, ..Params::new(BarrierMode::UnsafeOffDuringMark) });
    std::eprintln!("negative control caught after {} cycles", out.cycles);
    assert!(out.misses > 0, "barrier off during concurrent mark, {} cycles, and the verifier saw nothing", out.cycles);
}

/// The concurrent test at Miri size (also runs natively, quickly).
#[test]
fn concurrent_mutators_small_heap_for_miri() {
    for mode in [BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::DirectSystemstack] {
        let out = run(Params::miri(mode));
        assert_eq!(out.cycles, 2);
        assert_eq!(out.misses, 0, "{mode:?}");
    }
}

/// Pause times on a 64 MiB heap, verifier off (run with `--ignored --nocapture`, in release for
/// meaningful numbers). `TRICOLOR_STRESS_CYCLES` sets the cycle count.
#[test]
#[ignore = "measurement, not a check; takes a while"]
fn pauses_on_a_64_mib_heap() {
    for mode in [BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::Off] {
        let out = run(Params {
            heap_bytes: 64 << 20,
            ops_between: 200_000,
            verify: false,
            wbbuf_entries: crate::wbbuf::WBBUF_DEFAULT_ENTRIES,
            check: false,
            ..Params::new(mode)
        });
        let s = out.stats;
        std::eprintln!(
            "[GC PAUSE] mode={} heap=64MiB cycles={} pauses={} max_pause_us={} mean_pause_us={} \
             barriers={} flushes={} flushes_per_cycle={} shaded={} marked_last={} freed={}",
            mode.name(),
            s.cycles,
            s.pauses,
            s.pause_max_ns / 1000,
            s.pause_mean_ns / 1000,
            s.barriers,
            s.flushes,
            s.flushes / s.cycles.max(1),
            s.objects_shaded,
            s.last_marked_bytes,
            s.bytes_freed
        );
    }
}

/// Per-cycle detection rate of the negative control (run with `--ignored --nocapture`).
#[test]
#[ignore = "measurement, not a check"]
fn negative_control_detection_rate() {
    let out = run(Params { cycles: cycles_from_env(100), ..Params::new(BarrierMode::UnsafeOffDuringMark) });
    std::eprintln!(
        "[GC NEGATIVE] cycles={} cycles_with_misses={} rate={:.2} misses={}",
        out.cycles,
        out.cycles_with_misses,
        out.cycles_with_misses as f64 / out.cycles as f64,
        out.misses
    );
}
