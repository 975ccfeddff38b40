//! Measurements that print one machine-readable `BENCH` line each (collected by `cargo xtask
//! bench` into CSV files). Run them under `-icount shift=0,sleep=off`, where the counter's
//! nanoseconds are instructions, so every rerun gives the same numbers.

use super::bench;
use crate::gc::{self, Kernel};
use crate::registry::Entry;
use crate::workload::graph::Node;
use crate::{exit, kprintln};
use alloc::string::String;
use alloc::vec::Vec;
use tricolor_arch::cpu;
use tricolor_gc::barrier::wb_buf_flush;
use tricolor_gc::{BarrierMode, Gc, Platform, WbBuf};
use tricolor_kernel::cmdline::Config;

crate::register!(SCENARIOS);
const SCENARIOS: &[Entry] = &[
    bench(
        "bench-barrier",
        "cost per barriered store by mode and by wbBuf size, with the barrier on (BENCH lines)",
        bench_barrier,
    ),
    bench(
        "bench-barrier-stack",
        "caller-stack and system-stack bytes of a burst of barriered stores, by mode (BENCH lines)",
        bench_barrier_stack,
    ),
];

/// Stores per measurement.
const STORES: u64 = 20_000;

/// Nanoseconds (instructions, under -icount) per store of `stores()`.
fn per_store(stores: impl FnOnce()) -> f64 {
    per_op(STORES, stores)
}

/// Nanoseconds (instructions, under -icount) per operation of `ops()`, which does `n` of them.
fn per_op(n: u64, ops: impl FnOnce()) -> f64 {
    let start = cpu::counter();
    ops();
    let ticks = cpu::counter() - start;
    ticks as f64 * 1e9 / cpu::counter_frequency() as f64 / n as f64
}

/// Stores in the fast-path burst: fewer pairs than a 4096-entry wbBuf holds, so none flushes.
const FAST_PATH_STORES: u64 = 2000;

/// The buffered fast path alone, with room in the wbBuf: [`FAST_PATH_STORES`] barriered stores
/// right after this core's buffer was flushed, at 4096 entries (no flush during the burst, so no
/// filtering or shading is counted), against the same stores without a barrier.
fn fast_path(a: Gc<Node>, b: Gc<Node>) {
    gc::set_mode(BarrierMode::Buffered);
    gc::collector().set_wbbuf_entries::<Kernel>(4096);
    let flushes_before = gc::collector().stats::<Kernel>().flushes;
    let mut result = (0.0, 0.0);
    gc::collector().collect_with_hook::<Kernel>(&mut || {
        {
            let _np = tricolor_runtime::this_p().preempt.disable();
            gc::collector().flush_this_core::<Kernel>();
        }
        let flushes = gc::collector().stats::<Kernel>().flushes;
        let barriered = per_op(FAST_PATH_STORES, || {
            for i in 0..FAST_PATH_STORES {
                a.set_left(if i % 2 == 0 { Some(b) } else { None });
            }
        });
        if gc::collector().stats::<Kernel>().flushes != flushes {
            kprintln!("bench-barrier: the fast-path burst flushed; its figure includes a flush");
        }
        let plain = per_op(FAST_PATH_STORES, || {
            for i in 0..FAST_PATH_STORES {
                a.store_left_unbarriered(if i % 2 == 0 { Some(b) } else { None });
            }
        });
        result = (barriered, plain);
    });
    let flushes = gc::collector().stats::<Kernel>().flushes - flushes_before;
    kprintln!(
        "BENCH barrier_fastpath mode=buffered wbbuf=4096 stores={FAST_PATH_STORES} ns_per_store={:.2} compiled_out_ns_per_store={:.2} flushes_in_cycle={flushes}",
        result.0,
        result.1
    );
    gc::collector().set_wbbuf_entries::<Kernel>(512);
}

/// Barriered stores alternating two values into one slot (old and new both non-nil half the time).
fn barriered(a: Gc<Node>, b: Gc<Node>) {
    for i in 0..STORES {
        a.set_left(if i % 2 == 0 { Some(b) } else { None });
    }
}

/// Barriered stores of `targets` in turn into one slot: with fresh white targets every store
/// records the previous target (shaded by then, or about to be in the same flush) and a white one.
fn barriered_each(a: Gc<Node>, targets: &[Gc<Node>]) {
    for &t in targets {
        a.set_left(Some(t));
    }
}

/// Measures inside a cycle's mark phase (barrier on for the concurrent modes), then lets the
/// cycle finish. Returns instructions per store and the flushes.
fn measure_during_mark(a: Gc<Node>, b: Gc<Node>) -> (f64, u64) {
    let flushes_before = gc::collector().stats::<Kernel>().flushes;
    let mut result = 0.0;
    gc::collector().collect_with_hook::<Kernel>(&mut || result = per_store(|| barriered(a, b)));
    let flushes = gc::collector().stats::<Kernel>().flushes - flushes_before;
    (result, flushes)
}

/// The two objects the stores use, after checking the scenario can run.
fn bench_objects(name: &str) -> (Gc<Node>, Gc<Node>) {
    if !gc::is_ready() {
        kprintln!("{name}: needs the collector");
        exit::exit(exit::BAD_CONFIG);
    }
    if crate::percore::online_count() != 1 {
        kprintln!("{name}: numbers repeat run to run only with -smp 1 and -icount");
    }
    let (Ok(a), Ok(b)) = (gc::alloc::<Node>(), gc::alloc::<Node>()) else {
        exit::exit(exit::TEST_FAILED);
    };
    (a, b)
}

/// Fast-path stores per component measurement: 2 047 records fill a 4 096-entry wbBuf to 4 094,
/// so none of them flushes.
const FAST_STORES: u64 = 2047;
/// Entries per measured flush, and flushes per flush-cost loop.
const FLUSH_ENTRIES: usize = 512;
const FLUSH_REPS: usize = 64;

/// A wbBuf of the benchmark's own (not a core's): the flush-cost loops fill and flush it.
static FLUSH_BUF: spin::Mutex<WbBuf> = spin::Mutex::new(WbBuf::new());

/// Instructions per flush of a buffer holding `n` entries `value(rep, i)`: `FLUSH_REPS` times
/// fill and flush it through `wb_buf_flush` (the barrier's own call: `systemstack`, then
/// `wb_buf_flush1`), less the same fills discarded instead (the fill loop's own cost). Runs during
/// a mark, preemption disabled as the barrier's flush is.
fn flush_cost(n: usize, value: &dyn Fn(usize, usize) -> usize) -> f64 {
    let mut buf = FLUSH_BUF.lock();
    let _np = Kernel::disable_preemption();
    let fill = |buf: &mut WbBuf, rep: usize| {
        buf.set_entries(n);
        for i in 0..n {
            *buf.get1(|_| unreachable!("filled to its size, never past")) = value(rep, i);
        }
    };
    let flushed = per_op(FLUSH_REPS as u64, || {
        for rep in 0..FLUSH_REPS {
            fill(&mut buf, rep);
            wb_buf_flush::<Kernel>(&mut buf);
        }
    });
    let discarded = per_op(FLUSH_REPS as u64, || {
        for rep in 0..FLUSH_REPS {
            fill(&mut buf, rep);
            buf.discard();
        }
    });
    flushed - discarded
}

/// The parts of a barriered store, each from a loop of its own (instructions).
struct Components {
    /// A store with the barrier on whose record fits the buffer (no flush), loop included.
    fast: f64,
    /// The same for [`barriered_each`]'s loop.
    fast_each: f64,
    /// Per recorded pointer the flush filters: nil, outside the heap, an object already marked.
    nil: f64,
    not_in_heap: f64,
    marked: f64,
    /// Per recorded pointer the flush shades white -> grey (the grey work published included).
    shaded: f64,
    /// Per flush, whatever it holds: the call, the system stack switch, the checks, the reset and
    /// the publication.
    fixed: f64,
}

/// Measures [`Components`] in two cycles (one with a 4 096-entry wbBuf for the fast path). The
/// shaded pointers are fresh white objects, allocated between the cycles, that no root reaches:
/// white at mark start, floating garbage of the cycle that shades them.
fn components(a: Gc<Node>, b: Gc<Node>) -> Components {
    let mut c =
        Components { fast: 0.0, fast_each: 0.0, nil: 0.0, not_in_heap: 0.0, marked: 0.0, shaded: 0.0, fixed: 0.0 };
    gc::set_mode(BarrierMode::Buffered);
    gc::collector().set_wbbuf_entries::<Kernel>(4096);
    let bs: Vec<Gc<Node>> = (0..FAST_STORES).map(|_| b).collect();
    gc::collector().collect_with_hook::<Kernel>(&mut || {
        let flush = || {
            let _np = Kernel::disable_preemption();
            gc::collector().flush_this_core::<Kernel>();
        };
        flush();
        c.fast = per_op(FAST_STORES, || {
            for i in 0..FAST_STORES {
                a.set_left(if i % 2 == 0 { Some(b) } else { None });
            }
        });
        flush();
        c.fast_each = per_op(FAST_STORES, || barriered_each(a, &bs));
        flush();
    });
    gc::collector().set_wbbuf_entries::<Kernel>(512);
    let whites = fresh_whites(FLUSH_REPS * FLUSH_ENTRIES);
    let marked = b.addr();
    let outside = core::ptr::addr_of!(FLUSH_BUF) as usize;
    gc::collector().collect_with_hook::<Kernel>(&mut || {
        let per_pointer = |value: &dyn Fn(usize, usize) -> usize| {
            (flush_cost(FLUSH_ENTRIES, value) - flush_cost(2, value)) / (FLUSH_ENTRIES - 2) as f64
        };
        c.nil = per_pointer(&|_, _| 0);
        c.not_in_heap = per_pointer(&|_, _| outside);
        c.marked = per_pointer(&|_, _| marked);
        c.fixed = flush_cost(2, &|_, _| 0) - 2.0 * c.nil;
        // Fresh white objects for every entry of every flush.
        let white = |rep: usize, i: usize| whites[rep * FLUSH_ENTRIES + i].addr();
        c.shaded = (flush_cost(FLUSH_ENTRIES, &white) - c.fixed) / FLUSH_ENTRIES as f64;
    });
    c
}

/// `n` objects no root reaches, white at the next mark start, or the exit if a cycle ran while
/// they were allocated (it would have freed them).
fn fresh_whites(n: usize) -> Vec<Gc<Node>> {
    let cycles = gc::collector().stats::<Kernel>().cycles;
    let whites: Vec<Gc<Node>> =
        (0..n).map(|_| gc::alloc::<Node>().unwrap_or_else(|_| exit::exit(exit::TEST_FAILED))).collect();
    if gc::collector().stats::<Kernel>().cycles != cycles {
        kprintln!("bench-barrier: a cycle ran while the white targets were allocated");
        exit::exit(exit::TEST_FAILED);
    }
    whites
}

fn bench_barrier(_: &Config<'_>) -> ! {
    let (a, b) = bench_objects("bench-barrier");
    if tricolor_gc::barrier::COMPILED_OUT {
        // The kernel built with `no-barriers`: the same stores are plain stores, and there is
        // no barrier to take apart.
        let (ns, _) = measure_during_mark(a, b);
        kprintln!("BENCH barrier mode=compiled-out wbbuf=512 stores={STORES} ns_per_store={ns:.2} flushes=0");
        kprintln!("bench-barrier: done");
        exit::exit(exit::SUCCESS)
    }
    // The barrier's own costs, Go's model: each full wbBuf is shaded by the storing core, so that
    // the per-store totals and the components below measure the flush, not a copy handed to a
    // marker (`gc.handoff=`, off here; the hand-off's total is the line after the modes').
    gc::collector().set_handoff(false);
    for mode in [
        BarrierMode::Off,
        BarrierMode::Buffered,
        BarrierMode::Direct,
        BarrierMode::DirectSystemstack,
        BarrierMode::Checked,
    ] {
        gc::set_mode(mode);
        let (ns, flushes) = measure_during_mark(a, b);
        kprintln!(
            "BENCH barrier mode={} wbbuf=512 stores={STORES} ns_per_store={ns:.2} flushes={flushes}",
            mode.name()
        );
    }
    gc::set_mode(BarrierMode::Buffered);
    gc::collector().set_handoff(true);
    let handoffs_before = gc::collector().stats::<Kernel>().handoffs;
    let (ns, flushes) = measure_during_mark(a, b);
    let handoffs = gc::collector().stats::<Kernel>().handoffs - handoffs_before;
    kprintln!(
        "BENCH barrier_handoff mode=buffered wbbuf=512 stores={STORES} ns_per_store={ns:.2} flushes={flushes} handoffs={handoffs}"
    );
    gc::collector().set_handoff(false);
    // The components, then the per-store totals they must predict. White targets are
    // allocated with the pacer off (a cycle in between would free them: they are garbage).
    gc::set_pacer(false);
    let c = components(a, b);
    kprintln!(
        "BENCH barrier_components wbbuf=512 fast_path={:.2} fast_path_each={:.2} filtered_nil={:.2} filtered_not_in_heap={:.2} filtered_marked={:.2} shaded={:.2} flush_fixed={:.2}",
        c.fast, c.fast_each, c.nil, c.not_in_heap, c.marked, c.shaded, c.fixed
    );
    gc::set_mode(BarrierMode::Buffered);
    let (total, flushes) = measure_during_mark(a, b);
    let each_whites = fresh_whites(STORES as usize);
    // Every store records one nil and one marked pointer (old and new, alternating).
    let predicted = c.fast + c.nil + c.marked + c.fixed * flushes as f64 / STORES as f64;
    print_prediction("alternating", total, predicted, flushes);
    let flushes_before = gc::collector().stats::<Kernel>().flushes;
    let mut each = 0.0;
    gc::collector().collect_with_hook::<Kernel>(&mut || each = per_store(|| barriered_each(a, &each_whites)));
    let flushes = gc::collector().stats::<Kernel>().flushes - flushes_before;
    // Every store records the previous target (marked by the time the flush sees it: shaded as
    // the entry before) and a fresh white one.
    let predicted = c.fast_each + c.marked + c.shaded + c.fixed * flushes as f64 / STORES as f64;
    print_prediction("fresh-white", each, predicted, flushes);
    drop(each_whites);
    gc::set_pacer(true);

    gc::set_mode(BarrierMode::Buffered);
    let mut entries = 2;
    while entries <= 4096 {
        gc::collector().set_wbbuf_entries::<Kernel>(entries);
        let (ns, flushes) = measure_during_mark(a, b);
        kprintln!("BENCH wbbuf entries={entries} stores={STORES} ns_per_store={ns:.2} flushes={flushes}");
        entries *= 2;
    }
    fast_path(a, b);
    kprintln!("bench-barrier: done");
    exit::exit(exit::SUCCESS)
}

/// One `BENCH barrier_prediction` line: a measured per-store total beside the sum of its
/// components.
fn print_prediction(variant: &str, measured: f64, predicted: f64, flushes: u64) {
    kprintln!(
        "BENCH barrier_prediction variant={variant} wbbuf=512 stores={STORES} measured={measured:.2} predicted={predicted:.2} error_percent={:.2} flushes={flushes}",
        (predicted - measured) / measured * 100.0
    );
}

/// Where one burst of [`STORES`] barriered stores put its stack frames.
struct StackUse {
    /// How far below the caller's SP the burst wrote, in bytes.
    caller: usize,
    /// How far down from its top the burst used this core's system stack, in bytes.
    system: usize,
    /// wbBuf flushes during the burst.
    flushes: u64,
}

/// One burst of stores: returns the caller-stack bytes it used.
type Burst<'a> = &'a dyn Fn() -> Result<usize, String>;

/// [`stack_use`] of `burst` inside a cycle's mark phase, where the barrier is on for the
/// concurrent modes; the cycle then finishes.
fn stack_use_during_mark(burst: Burst<'_>) -> Result<StackUse, String> {
    let mut result = Err(String::from("the collector never ran the mark-phase hook"));
    gc::collector().collect_with_hook::<Kernel>(&mut || result = stack_use(burst));
    result
}

/// Runs `burst` with this core's system stack freshly painted and measures both stacks' use.
fn stack_use(burst: Burst<'_>) -> Result<StackUse, String> {
    let system = *tricolor_runtime::this_p().system_stack();
    if system.holds_sp(cpu::stack_pointer()) {
        return Err(String::from("the burst would run on the system stack it measures"));
    }
    let flushes = gc::collector().stats::<Kernel>().flushes;
    let irqs = tricolor_arch::irqmask::IrqGuard::mask();
    // SAFETY: the system stack is mapped and unused: this code is not on it (checked above), no
    // `systemstack` call is in progress on this core (it would have to be below us), and with
    // IRQs masked no handler or other task of this core can start one before the burst does.
    unsafe { system.paint() };
    let caller = burst();
    // SAFETY: as above; the burst has returned, so nothing writes the system stack now.
    let system_bytes = unsafe { system.high_water_mark() };
    drop(irqs);
    let flushes = gc::collector().stats::<Kernel>().flushes - flushes;
    Ok(StackUse { caller: caller?, system: system_bytes, flushes })
}

fn bench_barrier_stack(_: &Config<'_>) -> ! {
    let (a, b) = bench_objects("bench-barrier-stack");
    let in_place = || -> Result<usize, String> { Ok(super::caller_stack_bytes(|| barriered(a, b))?.0) };
    let without_switch = || tricolor_runtime::this_p().without_systemstack(in_place);
    let runs: [(&str, BarrierMode, Burst<'_>); 6] = [
        ("off", BarrierMode::Off, &in_place),
        ("buffered", BarrierMode::Buffered, &in_place),
        ("direct", BarrierMode::Direct, &in_place),
        ("direct-systemstack", BarrierMode::DirectSystemstack, &in_place),
        ("checked", BarrierMode::Checked, &in_place),
        // The same buffered stores, but the flushes run where the barrier is, as they would
        // without `systemstack`: what the switch saves the caller's stack.
        ("buffered-no-systemstack", BarrierMode::Buffered, &without_switch),
    ];
    for (name, mode, burst) in runs {
        gc::set_mode(mode);
        match stack_use_during_mark(burst) {
            Ok(StackUse { caller, system, flushes }) => kprintln!(
                "BENCH barrier_stack mode={name} stores={STORES} caller_stack_bytes={caller} system_stack_bytes={system} flushes={flushes}"
            ),
            Err(why) => {
                kprintln!("bench-barrier-stack: {name}: {why}");
                exit::exit(exit::TEST_FAILED);
            }
        }
    }
    gc::set_mode(BarrierMode::Buffered);
    kprintln!("bench-barrier-stack: done");
    exit::exit(exit::SUCCESS)
}
