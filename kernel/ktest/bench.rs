//! Measurements that print one machine-readable `BENCH` line each (collected by `cargo xtask
//! bench` into CSV files). Run them under `-icount shift=0,sleep=off`, where the counter's
//! nanoseconds are instructions, so every rerun gives the same numbers.

use super::bench;
use crate::gc::{self, Kernel};
use crate::registry::Entry;
use crate::workload::graph::Node;
use crate::{exit, kprintln};
use alloc::string::String;
use tricolor_arch::cpu;
use tricolor_gc::{BarrierMode, Gc};
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
    per_store_of(STORES, stores)
}

/// [`per_store`] for a burst of `n` stores.
fn per_store_of(n: u64, stores: impl FnOnce()) -> f64 {
    let start = cpu::counter();
    stores();
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
        let barriered = per_store_of(FAST_PATH_STORES, || {
            for i in 0..FAST_PATH_STORES {
                a.set_left(if i % 2 == 0 { Some(b) } else { None });
            }
        });
        if gc::collector().stats::<Kernel>().flushes != flushes {
            kprintln!("bench-barrier: the fast-path burst flushed; its figure includes a flush");
        }
        let plain = per_store_of(FAST_PATH_STORES, || {
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

/// The same stores without any barrier: what a build with barriers compiled out would do.
fn plain(a: Gc<Node>, b: Gc<Node>) {
    for i in 0..STORES {
        a.store_left_unbarriered(if i % 2 == 0 { Some(b) } else { None });
    }
}

/// Measures inside a cycle's mark phase (barrier on for the concurrent modes), then lets the
/// cycle finish.
fn measure_during_mark(a: Gc<Node>, b: Gc<Node>) -> (f64, f64, u64) {
    let flushes_before = gc::collector().stats::<Kernel>().flushes;
    let mut result = (0.0, 0.0);
    gc::collector().collect_with_hook::<Kernel>(&mut || {
        result = (per_store(|| barriered(a, b)), per_store(|| plain(a, b)));
    });
    let flushes = gc::collector().stats::<Kernel>().flushes - flushes_before;
    (result.0, result.1, flushes)
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

fn bench_barrier(_: &Config<'_>) -> ! {
    let (a, b) = bench_objects("bench-barrier");
    for mode in [BarrierMode::Off, BarrierMode::Buffered, BarrierMode::Direct, BarrierMode::Checked] {
        gc::set_mode(mode);
        let (ns, base, flushes) = measure_during_mark(a, b);
        kprintln!(
            "BENCH barrier mode={} wbbuf=512 stores={STORES} ns_per_store={ns:.2} compiled_out_ns_per_store={base:.2} flushes={flushes}",
            mode.name()
        );
    }
    gc::set_mode(BarrierMode::Buffered);
    let mut entries = 2;
    while entries <= 4096 {
        gc::collector().set_wbbuf_entries::<Kernel>(entries);
        let (ns, _, flushes) = measure_during_mark(a, b);
        kprintln!("BENCH wbbuf entries={entries} stores={STORES} ns_per_store={ns:.2} flushes={flushes}");
        entries *= 2;
    }
    fast_path(a, b);
    kprintln!("bench-barrier: done");
    exit::exit(exit::SUCCESS)
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
    let runs: [(&str, BarrierMode, Burst<'_>); 5] = [
        ("off", BarrierMode::Off, &in_place),
        ("buffered", BarrierMode::Buffered, &in_place),
        ("direct", BarrierMode::Direct, &in_place),
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
