//! The restartable barrier window under an interruption at every instruction offset
//! (`gc-barrier-window`, and its negative control `gc-barrier-window-negative` with the rewind
//! switched off).
//!
//! Random timer ticks prove nothing about a window a few instructions long, so the interruption is
//! placed: an Arm hardware breakpoint (DBGBVR0/DBGBCR0 with MDSCR_EL1.MDE and KDE) on one
//! instruction of one window at a time. Its handler does what an IRQ entry does first, the
//! window rewind (`gc::barrier::rewind`, the very function the IRQ path calls), then diverts the
//! interrupted task to a trampoline that forces the dangerous event in task context, where every
//! safe point is allowed, and finally restores the interrupted registers (at the rewound PC, or
//! where they stood with the rewind off) through a `brk`. The registers are kept aside in a
//! static meanwhile, not on the task's stack: the holder the store writes into is reachable from a
//! root anyway, and nothing else in them is needed by the verifier.
//!
//! The task under test (T) runs on core 0; a collector task (C) on core 1 runs one cycle per
//! offset with the verifier on, and holds its mark phase open (`collect_with_hook`, no mark
//! workers: nothing is traced until T is done) while T works. Every other core runs a spinning
//! task meanwhile, so that no core is idle: an idle core marks (`gc::idle_mark`), and tracing H
//! before T's store would mark X whatever the barrier does. For each offset of the window in
//! `store_under_test` (a deleting store `H.left = nil`, where `H.left = X` and H is a root):
//! - **range A** (inline: flag load, branch, store), flag off when the window starts: the event is
//!   the **mark start** (C stops the world, turns the barrier on, scans T's stack) and then T, its
//!   stack already scanned, **loads X** into a stack slot (the hybrid barrier's case: a pointer
//!   moved from the heap to a scanned stack is kept alive only by the deletion half). Resumed past
//!   the flag load without the rewind, the store deletes X unrecorded: lost. Vulnerable: the
//!   offsets after the flag load (the `cbnz` and the store).
//! - **range B** (the buffered put), mark running, T's stack scanned: the event is **another
//!   task's barrier on the same core**, with IRQs masked from there to the resume so nothing
//!   else runs: it loads X and Y (`Q.left`, Q a root) into stack slots and deletes Y with a
//!   barriered store, which records into this core's wbBuf at the same `next`. Resumed without the
//!   rewind after T's window loaded `next`, one of the two pairs overwrites the other: X or Y is
//!   lost. Vulnerable: from the instruction after the `ldp` of `next` to the `str` that bumps it.
//!
//! The verifier's miss count per offset is the histogram. With the rewind: 0 everywhere. Without:
//! a loss at every vulnerable offset and none elsewhere.

use super::{scenario, unit};
use crate::gc::{self, barrier, Kernel};
use crate::registry::Entry;
use crate::tasks::{self, Spawn};
use crate::{exit, kprintln, percore};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_arch::exception::{Exception, Kind, Origin, TrapFrame};
use tricolor_arch::irqmask::IrqGuard;
use tricolor_gc::{gc_type, Gc, GcSlot};
use tricolor_kernel::cmdline::Config;

crate::register!(SCENARIOS);
const SCENARIOS: &[Entry] = &[
    scenario(
        "gc-barrier-window",
        "a breakpoint at every instruction of a barrier window forces a phase change or another barrier there: the rewind must leave 0 verifier misses at every offset",
        window_positive,
    ),
    scenario(
        "gc-barrier-window-negative",
        "negative control: the same with the IRQ-entry rewind switched off; the verifier must catch a loss at every vulnerable offset",
        window_negative,
    ),
];

crate::register!(TESTS);
const TESTS: &[Entry] = &[unit(
    "barrier_windows_end_with_their_store",
    "every range in .barrier_windows is sorted, disjoint, ends with an stlr and restarts at an adrp that starts an inline range",
    barrier_windows_end_with_their_store,
)];

/// `stlr Xt, [Xn]` (64-bit store-release register): the encoding with Rt and Rn masked out.
const STLR_X: (u32, u32) = (0xffff_fc00, 0xc89f_fc00);
/// `adrp Xd, label`: op = 1 and bits 28..24 = 0b10000.
const ADRP: (u32, u32) = (0x9f00_0000, 0x9000_0000);

/// The instruction at `pc` (kernel text, identity-mapped).
fn insn(pc: usize) -> u32 {
    // SAFETY: `pc` is the address of an instruction of the kernel image (a window table entry,
    // emitted by the assembler with the instruction it names), mapped for the whole run.
    unsafe { (pc as *const u32).read_volatile() }
}

/// The window invariants the IRQ entry relies on, checked for every window the kernel holds.
fn barrier_windows_end_with_their_store(_: &Config<'_>) -> Result<(), alloc::string::String> {
    let table = barrier::windows();
    super::ensure!(!table.is_empty(), "no barrier window in the table");
    super::ensure!(table.windows(2).all(|w| w[0].hi <= w[1].lo), "windows unsorted or overlapping");
    for w in table {
        super::ensure!(w.lo < w.hi && (w.hi - w.lo) % 4 == 0, "bad range {w:?}");
        let last = insn(w.hi - 4);
        super::ensure!(last & STLR_X.0 == STLR_X.1, "range {w:?} ends with {last:#010x}, not the stlr");
        super::ensure!(insn(w.restart) & ADRP.0 == ADRP.1, "range {w:?} restarts at no adrp (flag load)");
        let ranges = table.iter().filter(|o| o.restart == w.restart).count();
        super::ensure!(ranges == 2, "restart {:#x} has {ranges} ranges, not 2", w.restart);
        super::ensure!(
            table.iter().any(|o| o.lo == w.restart && o.restart == w.restart),
            "restart {:#x} is not the start of an inline range",
            w.restart
        );
    }
    log::info!("barrier windows: {} ranges ({} windows), each ending with its stlr", table.len(), table.len() / 2);
    Ok(())
}

gc_type! {
    /// A holder with one barriered field.
    #[repr(C)]
    pub struct Cell {
        left: GcSlot<Cell>,
    }
}

/// H: its `left` is the slot the window under test writes.
#[unsafe(link_section = ".gcroots")]
static HOLDER: GcSlot<Cell> = GcSlot::null();
/// Q: its `left` is what range B's event deletes.
#[unsafe(link_section = ".gcroots")]
static OTHER: GcSlot<Cell> = GcSlot::null();

/// The slot `store_under_test` writes (`&H.left`), so that its caller holds no heap address.
static STORE_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Where the events put the objects they load: a stack array of the test's frame (scanned).
static STASH: AtomicUsize = AtomicUsize::new(0);
/// The stash index of the current offset.
static STASH_AT: AtomicUsize = AtomicUsize::new(0);
/// The event the trampoline forces (`EVENT_*`).
static EVENT: AtomicUsize = AtomicUsize::new(0);
const EVENT_MARK_START: usize = 1;
const EVENT_OTHER_BARRIER: usize = 2;

/// The PC the breakpoint is armed at (0: none), and how often it was hit.
static ARMED_PC: AtomicUsize = AtomicUsize::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);
/// The interrupted registers while the trampoline runs.
static SAVED: spin::Mutex<Option<TrapFrame>> = spin::Mutex::new(None);
/// The `brk` immediate that ends the trampoline.
const BRK_RESTORE: u16 = 0xb13;

/// T -> C: run a cycle. C -> T: the mark phase is open. T -> C: done, close it. C -> T: the cycle
/// ended, its misses are in `MISSES`.
static START: AtomicBool = AtomicBool::new(false);
static MARKING: AtomicBool = AtomicBool::new(false);
static DONE: AtomicBool = AtomicBool::new(false);
static CYCLE_DONE: AtomicBool = AtomicBool::new(false);
static MISSES: AtomicUsize = AtomicUsize::new(0);

/// Bound on every wait (a broken mechanism must fail the test, not hang it).
const WAIT_MS: u64 = 5000;

fn window_positive(_: &Config<'_>) -> ! {
    run(true)
}

fn window_negative(_: &Config<'_>) -> ! {
    run(false)
}

/// The deleting store under test: `H.left = nil`, one window, its slot read from a static.
#[inline(never)]
fn store_under_test() {
    let slot = STORE_SLOT.load(Ordering::Relaxed) as *const AtomicUsize;
    // SAFETY: `STORE_SLOT` holds `&H.left` of a live Cell (H is a root) for the whole run.
    tricolor_gc::write_pointer::<Kernel>(unsafe { &*slot }, 0);
}

/// The two ranges of `store_under_test`'s window: (range A, range B).
fn window_under_test() -> Result<(barrier::WindowRange, barrier::WindowRange), &'static str> {
    let f = store_under_test as *const () as usize;
    let mine: Vec<_> = barrier::windows().iter().copied().filter(|w| (f..f + 512).contains(&w.restart)).collect();
    let a = mine.iter().find(|w| w.lo == w.restart).ok_or("no inline range in store_under_test")?;
    let b = mine.iter().find(|w| w.lo != w.restart && w.restart == a.restart).ok_or("no buffered range")?;
    if mine.len() != 2 {
        return Err("store_under_test holds more than one window");
    }
    Ok((*a, *b))
}

fn run(rewind: bool) -> ! {
    let name = if rewind { "gc-barrier-window" } else { "gc-barrier-window-negative" };
    let fail = |why: &str| -> ! {
        kprintln!("{name}: {why}");
        exit::exit(exit::TEST_FAILED)
    };
    if !gc::is_ready() || percore::online_count() < 2 || percore::id() != 0 {
        fail("needs the collector, at least 2 cores, and to start on core 0");
    }
    if tricolor_gc::barrier::mode() != tricolor_gc::BarrierMode::Buffered {
        gc::set_mode(tricolor_gc::BarrierMode::Buffered);
    }
    gc::set_verify(true);
    let (a, b) = window_under_test().unwrap_or_else(|why| fail(why));
    kprintln!(
        "{name}: window A [{:#x}, {:#x}) ({} instructions), B [{:#x}, {:#x}) ({} instructions), restart {:#x}",
        a.lo,
        a.hi,
        (a.hi - a.lo) / 4,
        b.lo,
        b.hi,
        (b.hi - b.lo) / 4,
        a.restart
    );
    let _irqs = IrqGuard::unmask();
    let spawn = Spawn { name: "window-gc", stack_bytes: 64 * 1024, pinned: Some(1), growable_from: None };
    tasks::spawn(spawn, collector_task, 0).unwrap_or_else(|why| fail(why));
    for core in 2..percore::online_count() {
        let spin = Spawn { name: "window-busy", stack_bytes: 16 * 1024, pinned: Some(core), growable_from: None };
        tasks::spawn(spin, busy_task, 0).unwrap_or_else(|why| fail(why));
    }
    crate::fault::set_exception_hook(Some(hook));
    barrier::set_rewind_enabled(rewind);

    let offsets: Vec<(char, usize, usize)> = (0..(a.hi - a.lo) / 4)
        .map(|k| ('A', k, a.lo + 4 * k))
        .chain((0..(b.hi - b.lo) / 4).map(|k| ('B', k, b.lo + 4 * k)))
        .collect();
    // Objects the events move onto this stack: scanned by every cycle's stack scan and by the
    // verifier, so a lost one is a miss.
    let mut stash = [0usize; 64];
    STASH.store(stash.as_mut_ptr() as usize, Ordering::Relaxed);
    let mut histogram = Vec::new();
    for (i, &(range, k, pc)) in offsets.iter().enumerate() {
        STASH_AT.store(2 * i, Ordering::Relaxed);
        match one_offset(range, pc) {
            Ok(misses) => histogram.push((range, k, misses)),
            Err(why) => {
                barrier::set_rewind_enabled(true);
                fail(&alloc::format!("offset {range}+{k} ({pc:#x}): {why}"))
            }
        }
    }
    core::hint::black_box(&mut stash);
    barrier::set_rewind_enabled(true);
    crate::fault::set_exception_hook(None);
    disarm();

    kprintln!("{name}: verifier misses by window offset (rewind {}):", if rewind { "on" } else { "off" });
    let mut ok = true;
    for &(range, k, misses) in &histogram {
        let vulnerable = if range == 'A' { k >= 2 } else { (3..=9).contains(&k) };
        let expected_loss = !rewind && vulnerable;
        let bar = "#".repeat(misses.min(40));
        kprintln!("  {range}+{k:<2} {} misses {misses:<3} {bar}", if vulnerable { "vulnerable" } else { "safe      " });
        ok &= if expected_loss { misses > 0 } else { misses == 0 };
    }
    let total: usize = histogram.iter().map(|h| h.2).sum();
    kprintln!("{name}: {} offsets, {total} misses in all, {} rewinds on core 0", histogram.len(), barrier::rewinds(0));
    if ok {
        kprintln!("{name}: ok");
        exit::exit(exit::SUCCESS)
    }
    fail(if rewind {
        "a window interrupted with the rewind on lost an object"
    } else {
        "the losses are not exactly at the vulnerable offsets"
    })
}

/// One offset: fresh X and Y, one cycle with the breakpoint at `pc`, the cycle's verifier misses.
fn one_offset(range: char, pc: usize) -> Result<usize, &'static str> {
    prepare()?;
    scrub_below_sp();
    HITS.store(0, Ordering::Relaxed);
    if range == 'A' {
        // The window starts with the barrier off; the cycle starts inside it.
        EVENT.store(EVENT_MARK_START, Ordering::Relaxed);
        arm(pc);
        store_under_test();
    } else {
        start_cycle()?;
        wait(|| tasks_scanned_and(&MARKING), "the mark phase and this task's stack scan")?;
        EVENT.store(EVENT_OTHER_BARRIER, Ordering::Relaxed);
        {
            // Room in this core's wbBuf for both pairs (a full one would take the window out).
            let _np = tricolor_runtime::this_p().preempt.disable();
            gc::collector().flush_this_core::<Kernel>();
        }
        arm(pc);
        store_under_test();
    }
    disarm();
    if HITS.load(Ordering::Relaxed) != 1 {
        return Err("the breakpoint was not hit exactly once");
    }
    DONE.store(true, Ordering::Release);
    wait(|| CYCLE_DONE.load(Ordering::Acquire), "the cycle's end")?;
    CYCLE_DONE.store(false, Ordering::Relaxed);
    Ok(MISSES.load(Ordering::Relaxed))
}

/// Fresh H -> X and Q -> Y, H and Q in the roots. Out of line, and followed by
/// [`scrub_below_sp`], so that no copy of X or Y stays in this task's registers or stack: the
/// stack scan at mark start would otherwise find them and hide the loss the test looks for.
#[inline(never)]
fn prepare() -> Result<(), &'static str> {
    let cell = || gc::alloc::<Cell>().map_err(|_| "out of memory");
    let (h, x, q, y) = (cell()?, cell()?, cell()?, cell()?);
    h.left.set::<Kernel>(Some(x));
    q.left.set::<Kernel>(Some(y));
    HOLDER.set::<Kernel>(Some(h));
    OTHER.set::<Kernel>(Some(q));
    STORE_SLOT.store(h.left.as_atomic() as *const AtomicUsize as usize, Ordering::Relaxed);
    Ok(())
}

/// Zeroes the 4 KiB below the caller's SP (where `prepare` and the allocator ran).
#[inline(never)]
fn scrub_below_sp() {
    let mut words = [0usize; 500];
    for w in words.iter_mut() {
        // SAFETY: a write to a local.
        unsafe { core::ptr::write_volatile(w, 0) };
    }
    core::hint::black_box(&mut words);
}

fn tasks_scanned_and(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Acquire) && gc::scan::current_scanned()
}

fn start_cycle() -> Result<(), &'static str> {
    START.store(true, Ordering::Release);
    Ok(())
}

/// Spins (IRQs on: this core parks and scans itself meanwhile) until `done`, or fails.
fn wait(done: impl Fn() -> bool, what: &'static str) -> Result<(), &'static str> {
    let deadline = cpu::uptime_ns() + WAIT_MS * 1_000_000;
    while !done() {
        if cpu::uptime_ns() > deadline {
            kprintln!("gc-barrier-window: timed out waiting for {what}");
            return Err("timed out");
        }
        cpu::relax();
    }
    Ok(())
}

/// Keeps its core from idling (an idle core marks) until the VM exits.
fn busy_task(_: usize) {
    loop {
        cpu::relax();
    }
}

/// C: one cycle per request from T, its mark phase held open until T is done.
fn collector_task(_: usize) {
    loop {
        while !START.swap(false, Ordering::Acquire) {
            cpu::relax();
        }
        let report = gc::collector().collect_with_hook::<Kernel>(&mut || {
            MARKING.store(true, Ordering::Release);
            let _ = wait(|| DONE.load(Ordering::Acquire), "T's store");
            DONE.store(false, Ordering::Relaxed);
            MARKING.store(false, Ordering::Relaxed);
        });
        MISSES.store(report.verifier_misses, Ordering::Relaxed);
        CYCLE_DONE.store(true, Ordering::Release);
    }
}

/// The trampoline's event, in T's context at the interrupted point (a safe point: IRQs as the
/// window had them, preemption enabled).
extern "C" fn event() {
    let stash = STASH.load(Ordering::Relaxed) as *mut usize;
    let at = STASH_AT.load(Ordering::Relaxed);
    let keep = |i: usize, obj: Option<Gc<Cell>>| {
        // SAFETY: `STASH` is the 64-word array in `run`'s frame, live for the whole test; `at + 1
        // < 64` (two words per offset, at most 32 offsets).
        unsafe { stash.add(at + i).write_volatile(obj.map_or(0, |o| o.addr())) };
    };
    let h = HOLDER.get().expect("H is set");
    match EVENT.load(Ordering::Relaxed) {
        EVENT_MARK_START => {
            let _ = start_cycle();
            if wait(|| tasks_scanned_and(&MARKING), "the mark phase and this task's stack scan").is_err() {
                return;
            }
            // The scanned stack now takes X from the heap; only the deletion half keeps it.
            keep(0, h.left.get_relaxed());
        }
        _ => {
            // SAFETY: `msr daifset, #2` masks IRQs: nothing may run on this core (a flush) between
            // this barrier and the interrupted window's resume. The `brk` restore reinstates the
            // window's own PSTATE (IRQs unmasked), so this mask needs no undo.
            unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
            let q = OTHER.get().expect("Q is set");
            keep(0, h.left.get_relaxed());
            keep(1, q.left.get_relaxed());
            q.left.set::<Kernel>(None);
        }
    }
}

/// Where the breakpoint handler sends T: the event, then the `brk` that restores the window.
#[unsafe(naked)]
extern "C" fn trampoline() {
    core::arch::naked_asm!("bl {event}", "brk #{imm}", event = sym event, imm = const BRK_RESTORE)
}

/// The exception hook: the breakpoint at the armed PC (take the IRQ entry's rewind path, divert
/// to the trampoline) and the trampoline's `brk` (restore the window's registers).
fn hook(exception: Exception, frame: &mut TrapFrame) -> bool {
    if exception.kind != Kind::Synchronous || exception.origin != Origin::Kernel {
        return false;
    }
    let syndrome = frame.syndrome();
    match syndrome.ec {
        // Breakpoint from the current EL.
        0x31 if frame.elr as usize == ARMED_PC.load(Ordering::Relaxed) => {
            disarm();
            HITS.fetch_add(1, Ordering::Relaxed);
            barrier::rewind(frame);
            *SAVED.lock() = Some(frame.clone());
            // The trampoline starts with no register of the window (they are restored from
            // `SAVED`): a stale copy of X in one would be scanned and hide the loss.
            frame.x = [0; 31];
            frame.elr = trampoline as *const () as u64;
            true
        }
        0x3c if syndrome.iss & 0xffff == BRK_RESTORE as u32 => match SAVED.lock().take() {
            Some(saved) => {
                *frame = saved;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Arms hardware breakpoint 0 of this core at `pc` (EL1, address match).
fn arm(pc: usize) {
    ARMED_PC.store(pc, Ordering::Relaxed);
    // DBGBCR: E (bit 0), PMC = 0b01 (EL1, bits 2:1), BAS = 0b1111 (bits 8:5), unlinked address match.
    let ctrl: u64 = 1 | (0b01 << 1) | (0b1111 << 5);
    // SAFETY: the debug registers affect only debug exceptions, which the test's hook handles:
    // OSLAR_EL1 = 0 unlocks the OS lock (QEMU resets it locked), DBGBVR0/DBGBCR0 set breakpoint 0,
    // MDSCR_EL1.MDE (bit 15) enables breakpoints and KDE (bit 13) their exceptions at EL1,
    // `daifclr #8` unmasks debug exceptions (PSTATE.D). The `isb` makes the register writes take
    // effect before the next instruction (they are not self-synchronising).
    unsafe {
        core::arch::asm!(
            "msr oslar_el1, xzr",
            "msr dbgbvr0_el1, {pc}",
            "msr dbgbcr0_el1, {ctrl}",
            "mrs {t}, mdscr_el1",
            "orr {t}, {t}, #(1 << 15)",
            "orr {t}, {t}, #(1 << 13)",
            "msr mdscr_el1, {t}",
            "isb",
            "msr daifclr, #8",
            pc = in(reg) pc,
            ctrl = in(reg) ctrl,
            t = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// Disarms breakpoint 0 of this core.
fn disarm() {
    // SAFETY: clearing DBGBCR0_EL1.E disables breakpoint 0; the `isb` makes it take effect before
    // the next instruction.
    unsafe { core::arch::asm!("msr dbgbcr0_el1, xzr", "isb", options(nostack, preserves_flags)) };
}
