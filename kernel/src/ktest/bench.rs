//! Measurements that print one machine-readable `BENCH` line each (collected by `cargo xtask
//! bench` into CSV files). Run them under `-icount shift=0,sleep=off`, where the counter's
//! nanoseconds are instructions, so every rerun gives the same numbers.

use super::Scenario;
use crate::gc::{self, workload::Node, Kernel};
use crate::{exit, kprintln};
use tricolor_arch::cpu;
use tricolor_gc::{BarrierMode, Gc};
use tricolor_kernel::cmdline::Config;

pub const SCENARIOS: &[Scenario] = &[Scenario {
    name: "bench-barrier",
    about: "cost per barriered store by mode and by wbBuf size, with the barrier on (BENCH lines)",
    run: bench_barrier,
}];

/// Stores per measurement.
const STORES: u64 = 20_000;

/// Nanoseconds (instructions, under -icount) per store of `stores()`.
fn per_store(stores: impl FnOnce()) -> f64 {
    let start = cpu::counter();
    stores();
    let ticks = cpu::counter() - start;
    ticks as f64 * 1e9 / cpu::counter_frequency() as f64 / STORES as f64
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

fn bench_barrier(_: &Config<'_>) -> ! {
    if !gc::is_ready() {
        kprintln!("bench-barrier: needs the collector");
        exit::exit(exit::BAD_CONFIG);
    }
    if crate::percore::online_count() != 1 {
        kprintln!("bench-barrier: numbers repeat run to run only with -smp 1 and -icount");
    }
    let (Ok(a), Ok(b)) = (gc::alloc::<Node>(), gc::alloc::<Node>()) else {
        exit::exit(exit::TEST_FAILED);
    };
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
    kprintln!("bench-barrier: done");
    exit::exit(exit::SUCCESS)
}
