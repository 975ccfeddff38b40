//! Unit tests that need the real machine: allocators over real RAM, per-core registers on every
//! core, the generic counter.

use super::unit;
use super::{caller_stack_bytes, ensure, spin_until};
use crate::registry::Entry;
use crate::{irq, memory, percore, smp, stacks, vm};
use alloc::{boxed::Box, string::String, vec::Vec};
use core::sync::atomic::{AtomicUsize, Ordering};
use intrusive_collections::{intrusive_adapter, LinkedList, LinkedListLink};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_kernel::cmdline::Config;

crate::register!(TESTS);
const TESTS: &[Entry] = &[
    unit("heap_backs_collections", "Vec, Box and an intrusive list on the kernel heap", heap_backs_collections),
    unit(
        "frames_alloc_and_free",
        "the page allocator hands out and takes back frames on real RAM",
        frames_alloc_and_free,
    ),
    unit(
        "percore_pointer_is_per_core",
        "TPIDR_EL1 points at a different block on every core: its P, its GcCore at PERCORE_GC_OFFSET",
        percore_pointer_is_per_core,
    ),
    unit("counter_is_monotonic", "the generic counter only goes forward", counter_is_monotonic),
    unit("expected_cores_online", "every core the device tree lists (up to cores=) came online", expected_cores_online),
    unit("mmu_on_with_guard_pages", "the MMU is on and the page under each stack is unmapped", mmu_on_with_guard_pages),
    unit(
        "gc_heap_is_where_integers_are_not",
        "the GC heap is mapped at vm::GC_HEAP_VA, not at its RAM address: no timestamp, count or pair of u32s a run produces names an object",
        gc_heap_is_where_integers_are_not,
    ),
    unit(
        "kernel_code_is_told_from_data",
        "the verifier's reports pick out code addresses: a function's is one, a static's, a stack's and the GC heap's are not",
        kernel_code_is_told_from_data,
    ),
    unit("timer_interrupts_every_core", "the timer interrupt arrives on every core", timer_interrupts_every_core),
    unit("sgi_reaches_other_cores", "an SGI reaches every other core", sgi_reaches_other_cores),
    unit(
        "systemstack_switches_and_nests",
        "systemstack() runs on the system stack and nests",
        systemstack_switches_and_nests,
    ),
    unit(
        "systemstack_bounds_caller_stack",
        "work inside systemstack() costs the caller's stack a fixed few bytes",
        systemstack_bounds_caller_stack,
    ),
];

struct Node {
    link: LinkedListLink,
    value: u64,
}
intrusive_adapter!(NodeAdapter = Box<Node>: Node { link: LinkedListLink });

fn heap_backs_collections(_: &Config<'_>) -> Result<(), String> {
    let before = memory::heap_stats().bytes_in_use;
    {
        let mut map = hashbrown::HashMap::new();
        for i in 0..2000u64 {
            map.insert(i, i * i);
        }
        ensure!(map.len() == 2000, "hashbrown map has {} entries", map.len());
        ensure!((0..2000u64).all(|i| map[&i] == i * i), "hashbrown map lost a value");

        let mut list = LinkedList::new(NodeAdapter::new());
        for value in 0..500 {
            list.push_back(Box::new(Node { link: LinkedListLink::new(), value }));
        }
        let sum: u64 = list.iter().map(|n| n.value).sum();
        ensure!(sum == 499 * 500 / 2, "intrusive list sum {sum}");

        let big: Vec<u8> = alloc::vec![0xa5; 3 << 20];
        ensure!(big.iter().all(|&b| b == 0xa5), "3 MiB vector corrupted");
        ensure!(memory::heap_stats().bytes_in_use > before, "heap statistics did not move");
    }
    let after = memory::heap_stats().bytes_in_use;
    ensure!(after == before, "heap leaked: {before} bytes in use before, {after} after");
    Ok(())
}

fn frames_alloc_and_free(_: &Config<'_>) -> Result<(), String> {
    let before = memory::frame_stats();
    let run = memory::alloc_pages(256, 256).map_err(|e| alloc::format!("{e}"))?;
    ensure!(run % (256 * 4096) == 0, "1 MiB-aligned run at {run:#x}");
    let (img_lo, img_hi) = memory::image_range();
    ensure!(run >= img_hi || run + (256 << 12) <= img_lo, "run {run:#x} overlaps the image");
    // SAFETY: the 256 pages at `run` were just allocated to us.
    let pages = unsafe { core::slice::from_raw_parts_mut(run as *mut u64, 256 * 512) };
    pages.iter_mut().enumerate().for_each(|(i, w)| *w = i as u64);
    ensure!(pages.iter().enumerate().all(|(i, &w)| w == i as u64), "pages did not hold their contents");
    memory::free_pages(run, 256);
    ensure!(memory::frame_stats() == before, "frame counts differ after free");
    let too_many = memory::alloc_pages(before.total_pages + 1, 1);
    ensure!(too_many.is_err(), "allocated more pages than RAM has");
    Ok(())
}

static SEEN_ID: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(usize::MAX) }; MAX_CORES];
static SEEN_PTR: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
static SEEN_P: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
static SEEN_GC: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];

fn percore_pointer_is_per_core(_: &Config<'_>) -> Result<(), String> {
    use tricolor_gc::Platform;
    smp::run_on_all(|core| {
        SEEN_ID[core].store(percore::id(), Ordering::Relaxed);
        SEEN_PTR[core].store(tricolor_arch::percore::block().addr(), Ordering::Relaxed);
        SEEN_P[core].store(core::ptr::from_ref(tricolor_runtime::this_p()).addr(), Ordering::Relaxed);
        SEEN_GC[core].store(core::ptr::from_ref(crate::gc::Kernel::current_core()).addr(), Ordering::Relaxed);
    });
    let online = percore::online_count();
    for core in 0..online {
        let id = SEEN_ID[core].load(Ordering::Relaxed);
        ensure!(id == core, "core {core} read id {id} through TPIDR_EL1");
        let ptr = SEEN_PTR[core].load(Ordering::Relaxed);
        ensure!(ptr == SEEN_P[core].load(Ordering::Relaxed), "core {core}: TPIDR_EL1 {ptr:#x} is not its P");
        // The GcCore the barrier finds through TPIDR_EL1 + PERCORE_GC_OFFSET is the one the
        // collector indexes as core `core`.
        let gc = SEEN_GC[core].load(Ordering::Relaxed);
        ensure!(gc == ptr + percore::PERCORE_GC_OFFSET, "core {core}: GcCore at {gc:#x}, not TPIDR_EL1 + offset");
        let indexed = core::ptr::from_ref(crate::gc::Kernel::core(core)).addr();
        ensure!(gc == indexed, "core {core}: current_core() {gc:#x} is not core({core}) {indexed:#x}");
        let distinct = (0..core).all(|other| SEEN_PTR[other].load(Ordering::Relaxed) != ptr);
        ensure!(distinct, "core {core} shares its P with a lower core");
        let machine = crate::boot::machine();
        let mpidr = percore::mpidr(core);
        ensure!(machine.cpus[..machine.cpu_count].contains(&mpidr), "core {core}: MPIDR {mpidr:#x} not in the DTB");
    }
    Ok(())
}

fn counter_is_monotonic(_: &Config<'_>) -> Result<(), String> {
    let freq = tricolor_arch::cpu::counter_frequency();
    ensure!(freq > 0, "CNTFRQ_EL0 is 0");
    let mut last = tricolor_arch::cpu::counter();
    for _ in 0..10_000 {
        let now = tricolor_arch::cpu::counter();
        ensure!(now >= last, "counter went backwards: {last} -> {now}");
        last = now;
    }
    Ok(())
}

fn expected_cores_online(config: &Config<'_>) -> Result<(), String> {
    let listed = crate::boot::machine().cpu_count;
    let expected = listed.min(config.cores);
    let online = percore::online_count();
    ensure!(online == expected, "{online} cores online, expected {expected} ({listed} in the device tree)");
    Ok(())
}

static MMU_ON: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];

fn mmu_on_with_guard_pages(_: &Config<'_>) -> Result<(), String> {
    smp::run_on_all(|core| MMU_ON[core].store(tricolor_arch::mmu::is_enabled() as usize + 1, Ordering::Relaxed));
    for (core, on) in MMU_ON.iter().enumerate().take(percore::online_count()) {
        ensure!(on.load(Ordering::Relaxed) == 2, "MMU is off on core {core}");
    }
    for stack in stacks::all_core_stacks() {
        ensure!(vm::translate(stack.guard).is_none(), "guard page of {stack:?} is mapped");
        ensure!(vm::translate(stack.lo).map(|(pa, _)| pa) == Some(stack.lo), "bottom of {stack:?} not identity-mapped");
        ensure!(vm::translate(stack.hi - 4096).is_some(), "top page of {stack:?} unmapped");
    }
    let (ram, size) = crate::boot::machine().ram;
    ensure!(vm::translate(ram + size - 4096).is_some(), "end of RAM unmapped");
    ensure!(vm::translate(ram + size).is_none(), "memory past RAM is mapped");
    Ok(())
}

/// Conservative scans take every word naming a heap object for a reference (see
/// `vm::GC_HEAP_VA`): the heap's addresses must be no value a run's integers take.
fn gc_heap_is_where_integers_are_not(_: &Config<'_>) -> Result<(), String> {
    ensure!(crate::gc::is_ready(), "no GC heap");
    let heap = &crate::gc::collector().heap;
    let (base, end) = (heap.base(), heap.base() + heap.size());
    ensure!(base == vm::GC_HEAP_VA, "the GC heap is at {base:#x}, not at {:#x}", vm::GC_HEAP_VA);
    // Devices get the RAM behind it (the framebuffer from the GC heap).
    let (ram, size) = crate::boot::machine().ram;
    for va in (base..end).step_by(1 << 21) {
        let pa = vm::phys_of(va).ok_or_else(|| alloc::format!("heap page {va:#x} unmapped"))?;
        ensure!(pa >= ram && pa < ram + size, "heap page {va:#x} maps to {pa:#x}, outside RAM");
    }
    // Nanosecond timestamps of a run's first 5 minutes (every test and stress run; a longer run
    // only risks keeping some garbage), counts up to 64 Gi, and pairs of u32s below 2^24 packed
    // into a word, either way round.
    let five_minutes_ns = 300_000_000_000usize;
    let names = |x: usize| x >= base && x < end;
    ensure!(base > five_minutes_ns.max(1 << 36), "counts or timestamps of a run reach the heap at {base:#x}");
    for hi in (0..1usize << 24).step_by(0x1fff).chain(0..256) {
        for lo in (0..1usize << 24).step_by(0xffff) {
            ensure!(!names((hi << 32) | lo), "the u32 pair ({lo:#x}, {hi:#x}) names the heap [{base:#x}, {end:#x})");
        }
    }
    Ok(())
}

fn kernel_code_is_told_from_data(_: &Config<'_>) -> Result<(), String> {
    let code = crate::gc::is_kernel_code;
    let here = kernel_code_is_told_from_data as *const () as usize;
    ensure!(code(here), "this function's address {here:#x} is not code");
    ensure!(!code(&raw const TICKS as usize), "a static is taken for code");
    let local = 0u64;
    ensure!(!code(core::hint::black_box(&raw const local) as usize), "a stack address is taken for code");
    ensure!(!code(vm::GC_HEAP_VA) && !code(0), "the GC heap or null is taken for code");
    Ok(())
}

static TICKS: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];

fn count_tick(_: u32, _: &mut tricolor_arch::exception::TrapFrame) {
    tricolor_arch::timer::disarm();
    TICKS[percore::id()].fetch_add(1, Ordering::Relaxed);
}

fn timer_interrupts_every_core(_: &Config<'_>) -> Result<(), String> {
    ensure!(irq::available(), "no interrupt controller");
    irq::register(irq::timer_irq(), count_tick);
    smp::run_on_all(|core| {
        let before = TICKS[core].load(Ordering::Relaxed);
        tricolor_arch::timer::arm(cpu::counter_frequency() / 1000);
        let _irqs = IrqGuard::unmask();
        spin_until(2000, || TICKS[core].load(Ordering::Relaxed) > before);
    });
    for (core, ticks) in TICKS.iter().enumerate().take(percore::online_count()) {
        ensure!(ticks.load(Ordering::Relaxed) > 0, "core {core} took no timer interrupt");
        ensure!(irq::count(core) > 0, "core {core}: dispatch counted no interrupt");
    }
    crate::tasks::install_tick_handler();
    Ok(())
}

static SGIS: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
static SGI_READY: AtomicUsize = AtomicUsize::new(0);

fn count_sgi(_: u32, _: &mut tricolor_arch::exception::TrapFrame) {
    SGIS[percore::id()].fetch_add(1, Ordering::Relaxed);
}

fn sgi_reaches_other_cores(_: &Config<'_>) -> Result<(), String> {
    ensure!(irq::available(), "no interrupt controller");
    irq::register(irq::SGI_TEST, count_sgi);
    SGI_READY.store(0, Ordering::Relaxed);
    smp::run_on_all(|core| {
        let others = percore::online_count() - 1;
        let _irqs = IrqGuard::unmask();
        if core == 0 {
            spin_until(2000, || SGI_READY.load(Ordering::Acquire) == others);
            irq::send_to_others(irq::SGI_TEST);
        } else {
            SGI_READY.fetch_add(1, Ordering::Release);
            spin_until(2000, || SGIS[core].load(Ordering::Relaxed) > 0);
        }
    });
    ensure!(SGIS[0].load(Ordering::Relaxed) == 0, "the sender received its own 'all but self' SGI");
    for (core, sgis) in SGIS.iter().enumerate().take(percore::online_count()).skip(1) {
        ensure!(
            sgis.load(Ordering::Relaxed) == 1,
            "core {core} took {} SGIs, expected 1",
            sgis.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

fn systemstack_switches_and_nests(_: &Config<'_>) -> Result<(), String> {
    use cpu::stack_pointer;
    use tricolor_runtime::{systemstack, this_p};
    let p = this_p();
    let system = *p.system_stack();
    let outer = stack_pointer();
    ensure!(!system.holds_sp(outer), "test already runs on the system stack ({outer:#x})");
    let (inner, nested, depth) =
        systemstack(|| (stack_pointer(), systemstack(stack_pointer), this_p().preempt.depth()));
    ensure!(system.holds_sp(inner), "systemstack ran f at SP {inner:#x}, outside {system:?}");
    ensure!(system.holds_sp(nested), "nested systemstack left the system stack: {nested:#x}");
    ensure!(
        nested <= inner,
        "nested call must stay on the same stack, at or below the outer ({nested:#x} vs {inner:#x})"
    );
    ensure!(depth >= 1, "preemption was enabled on the system stack");
    ensure!(stack_pointer() == outer, "SP not restored: {:#x} vs {outer:#x}", stack_pointer());
    ensure!(this_p().preempt.depth() == 0, "preemption still disabled after systemstack");
    Ok(())
}

/// Work that needs a deep stack: `depth` frames of 256 bytes.
#[inline(never)]
fn deep_work(depth: usize) -> usize {
    let frame = core::hint::black_box([depth as u8; 256]);
    if depth == 0 {
        frame[0] as usize
    } else {
        deep_work(depth - 1) + frame[depth % 256] as usize
    }
}

#[inline(never)]
fn via_systemstack() -> usize {
    tricolor_runtime::systemstack(|| deep_work(32))
}

#[inline(never)]
fn direct() -> usize {
    deep_work(32)
}

fn systemstack_bounds_caller_stack(_: &Config<'_>) -> Result<(), String> {
    let (through, _) = caller_stack_bytes(via_systemstack)?;
    let (plain, _) = caller_stack_bytes(direct)?;
    log::info!(
        "systemstack: the caller's stack grew by {through} bytes (the same work called directly: {plain} bytes)"
    );
    ensure!(plain > 8 * 1024, "direct deep_work used only {plain} bytes: the measurement is broken");
    ensure!(through <= 128, "systemstack used {through} bytes of the caller's stack");
    // SAFETY: this core's system stack is painted at boot and idle now (we are not on it).
    let used = unsafe { tricolor_runtime::this_p().system_stack().high_water_mark() };
    ensure!(used >= plain, "system stack high-water mark {used} bytes, but {plain}-byte work ran on it");
    Ok(())
}
