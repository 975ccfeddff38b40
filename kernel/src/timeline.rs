//! The per-core event recorder (`tricolor_timeline`) in the kernel: one [`Recorder`] per core in
//! a static array (`.bss`), written by its own core at every GC state transition, read by the
//! dashboard (running totals, `gc::coretime`) and printed at the end of a run with
//! `timeline=dump` (`cargo xtask bench`'s MMU curves, `cargo xtask trace`).
//!
//! Where the transitions are recorded (each a one-line call; states in `tricolor_timeline::State`):
//! - the collector, through `Platform::event` (`tricolor_gc`): the collecting task's whole cycle
//!   (`Mark`), its two whole-heap sweeps and allocators' lazy sweeps (`Sweep`), the barrier's
//!   slow-path flush and `Collector::flush_this_core` (`Flush`: the handshake and the park hook),
//!   mark assists (`Assist`: `Collector::assist_alloc`, from `gc::alloc`);
//! - `stw`: the initiator from the stop request to the release, a parked core from parking to
//!   the release (`Pause`; under -icount a parked vCPU resumes up to a tick later, see
//!   `stw::park_here`);
//! - `gc::scan`: each stack-scan chunk and self-scan (`StackScan`);
//! - `gc`'s mark-worker tasks (`MarkWorker`, the whole task), `gc::idle_mark` and
//!   `gc::idle_sweep`, an idle core's marking and sweeping (`IdleMark`, `IdleSweep` inside
//!   `Idle`); a triggered cycle's own task, alone on its core (`tasks::alone_here_as`), records
//!   each of its drains as `IdleMark` inside its `Mark` and each sweep chunk as `IdleSweep`
//!   (`Collector::collector_drain` and `sweep`, `Platform::cycle_displaces_nothing`);
//! - `tasks`: the idle task (`Idle`, whether it polls or halts in `wfi`), every task switch (the
//!   outgoing task's state stays in its frame, the incoming task's comes back: a state belongs to
//!   the task that entered it), a new task's start (`Mutator`).
//!
//! With `tick.slice=` (measurement runs under `-icount`) each slice tick also feeds the core's
//! stall detector ([`on_slice_tick`], `tricolor_kernel::slice::Frozen`): the stretches in which
//! QEMU ran none of the core's code are dumped after the timeline as `STALLS` lines, for MMU to
//! leave out.
//!
//! A transition masks IRQs for its few instructions, so that an interrupt handler that records
//! (a park, a flush or scan request) cannot land in the middle of one: each recorder has exactly
//! one writer at a time, its own core. `bench-timeline` measures the cost.

use crate::{kprintln, memory, percore};
use core::sync::atomic::AtomicU64;
use tricolor_abi::{MAX_CORES, PAGE_SIZE};
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_kernel::slice::{self, Frozen, Stretches};
use tricolor_timeline::{dump, Recorder, State};

/// Transitions each core's ring holds (8 bytes each): enough for the dashboard and a look in a
/// debugger (128 KiB a core).
pub const CAPACITY: usize = 1 << 14;
/// With `timeline=dump`, the whole run must fit (4 MiB a core): gcbench-quick at 4 cores records
/// up to about 300 000 transitions on a core whose mark worker and idle task take turns while
/// the others finish (docs/experiments.md).
pub const CAPACITY_DUMP: usize = 1 << 19;

static RECORDERS: [Recorder; MAX_CORES] = [const { Recorder::new() }; MAX_CORES];

/// Stall stretches kept per core (merged neighbours; 16 bytes each). gcbench-quick at 4 cores
/// has a few hundred.
const STALL_STRETCHES: usize = 1024;

/// A core's stall detector and what it found: written by the core's own tick handler (IRQs
/// masked), read by `dump`; the lock is only ever tried by the handler, which skips a tick
/// rather than wait for a dump that holds it.
static STALLS: [spin::Mutex<(Frozen, Stretches<STALL_STRETCHES>)>; MAX_CORES] =
    [const { spin::Mutex::new((Frozen::new(), Stretches::new())) }; MAX_CORES];

/// The shortest stall: two rounds of `slice`-tick slices (`slice::Frozen`).
fn stall_min_ticks(slice: u64) -> u64 {
    2 * percore::online_count() as u64 * slice
}

/// A slice tick on this core (`tasks`' timer handler, IRQs masked) that interrupted `frame`,
/// at counter value `now`, slices `slice` counter ticks long: feed the core's stall detector.
/// True if the core keeps this slice though it does not own it ([`Frozen::keeps_slice`]).
/// (False if a dump holds the detector: the tick then behaves as before the detector.)
pub fn on_slice_tick(frame: &tricolor_arch::exception::TrapFrame, now: u64, slice: u64) -> bool {
    let hash = slice::registers_hash(&frame.x, frame.sp, frame.elr);
    let Some(mut stalls) = STALLS[percore::id()].try_lock() else { return false };
    let (frozen, stretches) = &mut *stalls;
    let pc = frame.elr as usize;
    // A wait hint among the instructions around the interrupted one (a spin loop's body: the
    // interrupt lands on its head, after the hint's turn ended), in the kernel's code (IRQs are
    // only taken there: the kernel runs everything at EL1). Read only for unchanged registers.
    let waiting = || {
        (0..slice::WAIT_LOOP_WORDS).any(|k| {
            let at = pc.wrapping_sub(4 * k).wrapping_add(4);
            crate::gc::is_kernel_code(at) && at.is_multiple_of(4) && {
                // SAFETY: an aligned word of the kernel's `.text`, mapped readable for the whole run.
                let insn = unsafe { core::ptr::read_volatile(at as *const u32) };
                slice::is_wait_hint(insn)
            }
        })
    };
    if let Some((start, end)) = frozen.tick(now, hash, waiting, stall_min_ticks(slice)) {
        stretches.push(start, end);
    }
    frozen.keeps_slice(percore::online_count(), slice)
}

/// Gives the first `cores` cores their rings, `CAPACITY_DUMP` transitions each with
/// `timeline=dump` else `CAPACITY`, from the frame allocator (never freed). On the boot core,
/// before the other cores start and before anything records. A core without a ring (no memory)
/// keeps its totals only, and says so.
pub fn init(cores: usize, dump: bool) {
    let slots = if dump { CAPACITY_DUMP } else { CAPACITY };
    let pages = (slots * size_of::<AtomicU64>()).div_ceil(PAGE_SIZE);
    for (core, recorder) in RECORDERS.iter().enumerate().take(cores.min(MAX_CORES)) {
        let Ok(base) = memory::alloc_pages(pages, 1) else {
            log::warn!("timeline: no memory for core {core}'s ring ({pages} pages): its transitions are not kept");
            continue;
        };
        // SAFETY: `pages` frames just allocated to us alone and never freed, identity-mapped RAM,
        // page aligned (so aligned for `AtomicU64`), `slots` words long; any bit pattern is a
        // valid `AtomicU64`, and the recorder reads only slots it wrote.
        let ring = unsafe { core::slice::from_raw_parts(base as *const AtomicU64, slots) };
        recorder.attach(ring);
    }
}

/// The calling core enters `state` now; returns the state it was in (pass it to [`leave`]).
#[inline]
pub fn enter(state: State) -> State {
    let _irqs = IrqGuard::mask();
    RECORDERS[percore::id()].record_with(cpu::counter, state)
}

/// The calling core goes back to `previous` (what [`enter`] returned).
#[inline]
pub fn leave(previous: State) {
    enter(previous);
}

/// [`leave`], dated counter tick `ts` instead of now (a parked core's pause ends at the release:
/// `stw::park_here`). Never before the core's last transition, so its events stay in order.
#[inline]
pub fn leave_at(previous: State, ts: u64) {
    let _irqs = IrqGuard::mask();
    let recorder = &RECORDERS[percore::id()];
    let ts = ts.clamp(recorder.current().ts, cpu::counter());
    recorder.record(ts, previous);
}

/// The calling core is in `state` until the guard drops, then back in the state it was in.
/// Declare it after the scope's preemption guard, so that it drops first (a state is entered and
/// left inside the same window, on the same core).
#[must_use = "the core leaves the state as soon as the guard is dropped"]
pub struct During(State);

/// [`During`] `state`.
#[inline]
pub fn during(state: State) -> During {
    During(enter(state))
}

impl Drop for During {
    #[inline]
    fn drop(&mut self) {
        leave(self.0);
    }
}

/// The calling core's state now.
#[inline]
pub fn current() -> State {
    RECORDERS[percore::id()].current().state
}

/// Counter ticks `core` spent in each state since boot, up to now (by state discriminant).
pub fn totals(core: usize) -> [u64; tricolor_timeline::state::COUNT] {
    totals_at(core, cpu::counter())
}

/// [`totals`] up to counter tick `now`.
pub fn totals_at(core: usize, now: u64) -> [u64; tricolor_timeline::state::COUNT] {
    RECORDERS[core].totals(now)
}

/// Transitions `core`'s ring holds.
pub fn capacity(core: usize) -> usize {
    RECORDERS[core].capacity()
}

/// Transitions `core` recorded since boot.
pub fn recorded(core: usize) -> u64 {
    RECORDERS[core].recorded()
}

/// A copy of `core`'s ring.
pub fn snapshot(core: usize) -> tricolor_timeline::Snapshot {
    RECORDERS[core].snapshot()
}

/// Prints every online core's ring (`tricolor_timeline::dump`'s format), for the run measured
/// from counter tick `from` to `to`. Other cores may go on recording meanwhile: each copy keeps
/// only what it can vouch for, with the totals of exactly its events.
/// The begin line also says when the first mutator of the run returned (`first_done=`, ticks,
/// if one did by `to`): xtask's MMU over the part of the run in which every core had its
/// workload.
pub fn dump(from: u64, to: u64) {
    let cores = percore::online_count();
    let first_done = crate::workload::first_finished_at().filter(|&t| t <= to).unwrap_or(to);
    kprintln!("{} first_done={first_done}", dump::begin_line(cores, cpu::counter_frequency(), from, to));
    for (core, recorder) in RECORDERS.iter().enumerate().take(cores) {
        let (snapshot, now, totals) = recorder.snapshot_with_totals(cpu::counter, 1000).unwrap_or_else(|| {
            // Its totals may then count a transition its events do not have: the decoder's
            // check says so.
            log::warn!("timeline: core {core} never paused recording for a consistent copy");
            let now = cpu::counter();
            (recorder.snapshot(), now, recorder.totals(now))
        });
        kprintln!("{}", dump::core_line(core, &snapshot, now, &totals));
        dump::event_lines(core, &snapshot.events, |line| kprintln!("{line}"));
    }
    kprintln!("{}", dump::END);
    print_stalls(cores);
}

/// The first `cores` cores' stall stretches as `STALLS` lines (`slice::stall_lines`), the one
/// under way included.
pub fn print_stalls(cores: usize) {
    for (core, stalls) in STALLS.iter().enumerate().take(cores) {
        // Held while printing: the core's ticks skip their look meanwhile.
        let stalls = stalls.lock();
        let (frozen, stretches) = &*stalls;
        let ongoing = frozen.ongoing(stall_min_ticks(crate::tasks::slice_ticks()));
        for line in slice::stall_lines(core, stretches, ongoing) {
            kprintln!("{line}");
        }
    }
}
