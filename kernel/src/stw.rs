//! Stop-the-world: bring every other core to a safe point, run a function, let them go.
//!
//! The initiator raises [`SGI_STOP`](crate::irq::SGI_STOP) on every other core. A core takes it on
//! the stack of whatever it was running (IRQs run on the interrupted stack), so all of the
//! interrupted task's registers sit in the trap frame on that task's own stack while it is parked:
//! that is a safe point, where the collector may scan the task's stack and registers. A core
//! whose preemption is disabled (inside a write barrier's window, or on its system stack) does not
//! park there: the stop is deferred, like a timer tick, to the moment its outermost
//! `PreemptGuard` drops, because a barrier's buffer slots may be taken but not yet written.
//!
//! Stops are numbered (`EPOCH`), and the request carries its stop's number (`REQUEST`, 0 when
//! none). A core parks *for the number it read from the request*: it records that number as its
//! parked epoch, which the initiator counts, and waits for `EPOCH` to move past it. So:
//! - the release is one store and the initiator does not wait for the parked cores to leave:
//!   under QEMU's round-robin (`-icount`) each parked vCPU leaves only at its next turn, after the
//!   others have run their turn of mutator code, and waiting for that counted milliseconds of
//!   running world as pause;
//! - a core still in the previous stop's loop when the next is requested is not counted for it
//!   (its parked epoch is the old number): it leaves, takes the new request's interrupt, and
//!   parks again;
//! - a core that read a request just before its release parks for a stop that is over: it
//!   records an epoch nobody counts any more and leaves at once. (With one shared request flag
//!   and the epoch read after it, such a core took the *next* stop's number and stayed parked,
//!   IRQs masked, until that stop ended: during a concurrent mark nothing could scan its task,
//!   and the mark waited 2-20 ms for stacks, until an unrelated wake-up.)

use crate::sync::Lock as Mutex;
use crate::{irq, percore, timeline};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_arch::irqmask::{self, IrqGuard};
use tricolor_timeline::State;

/// The number of the stop requested now, 0 when none.
static REQUEST: AtomicUsize = AtomicUsize::new(0);
/// The current (or next) stop's number; the release moves it on. Never 0.
static EPOCH: AtomicUsize = AtomicUsize::new(1);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// SP of each parked core at its safe point: [sp, stack top) holds all of its live state.
static PARKED_SP: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
/// The stop each core last parked for (the initiator counts the cores parked for its own).
static PARKED_EPOCH: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
/// Where and when each core last parked: the PC it was stopped at (see [`ParkSite`]) and the
/// counter value, for the report of which core was last to reach its safe point.
static PARK_PC: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
static PARK_KIND: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
static PARK_AT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// The last completed stop's report (see [`last_stop`]).
static LAST_PAUSE_NS: AtomicU64 = AtomicU64::new(0);
/// Counter tick of the last release: where a parked core's recorded pause ends. Relaxed, stored
/// before the release's Release bump of EPOCH and read after a parked core's Acquire load of it.
static RELEASED_AT: AtomicU64 = AtomicU64::new(0);
static LAST_TTSP_NS: AtomicU64 = AtomicU64::new(0);
static LAST_CORE: AtomicUsize = AtomicUsize::new(0);
static LAST_PC: AtomicUsize = AtomicUsize::new(0);
static LAST_KIND: AtomicUsize = AtomicUsize::new(0);

/// How long the initiator waits for the others before giving up with a report.
pub const STOP_TIMEOUT_MS: u64 = 2000;

/// What a stop cost.
#[derive(Clone, Copy, Debug)]
pub struct StwTimes {
    /// From the request to the last core parked.
    pub stop_ns: u64,
    /// From all parked to `f` returning.
    pub stopped_ns: u64,
}

/// Why the world could not be stopped.
#[derive(Debug)]
pub struct NotStopped {
    /// Cores that had not parked when the initiator gave up (bit n = core n).
    pub missing: u32,
}

const _: () = assert!(MAX_CORES <= u32::BITS as usize, "NotStopped::missing is a u32 mask of cores");

/// How a core reached its safe point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ParkSite {
    /// The stop's interrupt arrived with preemption enabled: the PC is where it interrupted.
    Interrupted = 0,
    /// Preemption was off when the interrupt arrived; the core parked when its outermost guard
    /// dropped: the PC is in the code that dropped it.
    Deferred = 1,
    /// The core was itself waiting to stop the world and parked for the winner.
    Contending = 2,
    /// The core waited, IRQs masked, for another core's collector work (the cycle lock, say) and
    /// parked from that wait ([`park_if_requested`]).
    Waiting = 3,
}

impl ParkSite {
    fn from_usize(v: usize) -> ParkSite {
        match v {
            0 => ParkSite::Interrupted,
            1 => ParkSite::Deferred,
            2 => ParkSite::Contending,
            _ => ParkSite::Waiting,
        }
    }
}

/// What the last completed stop measured: from the request to the last core parked, which core
/// that was, the PC it parked at and how.
#[derive(Clone, Copy, Debug)]
pub struct LastStop {
    /// From the request to the release.
    pub pause_ns: u64,
    pub to_safepoint_ns: u64,
    pub core: usize,
    pub pc: usize,
    pub site: ParkSite,
}

/// The last completed stop's report.
pub fn last_stop() -> LastStop {
    // Ordering: Relaxed; written by the initiator before it releases the world, read after the
    // stop returned on the same core (or later, after a synchronising handshake), only reported.
    LastStop {
        pause_ns: LAST_PAUSE_NS.load(Ordering::Relaxed),
        to_safepoint_ns: LAST_TTSP_NS.load(Ordering::Relaxed),
        core: LAST_CORE.load(Ordering::Relaxed),
        pc: LAST_PC.load(Ordering::Relaxed),
        site: ParkSite::from_usize(LAST_KIND.load(Ordering::Relaxed)),
    }
}

/// A function every core runs as it parks, before it counts itself parked (0: none).
static PARK_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the function every core runs at its safe point when it parks, before the initiator
/// can see it parked: the collector flushes the core's own wbBuf there during the mark, so the
/// cores do that in parallel instead of the initiator doing it for all of them in the pause. It
/// runs with IRQs masked at a safe point (not inside a preemption-disabled window).
pub fn set_park_hook(hook: fn()) {
    PARK_HOOK.store(hook as usize, Ordering::Release);
}

/// Installs the SGI handler (boot core, once).
pub fn init() {
    irq::register(irq::SGI_STOP, on_stop_request);
}

/// True while a stop is requested (the deferred-preemption hook checks this).
pub fn requested() -> bool {
    REQUEST.load(Ordering::Acquire) != 0
}

/// Where core `core` parked (0 if it is not parked).
pub fn parked_sp(core: usize) -> usize {
    PARKED_SP[core].load(Ordering::Acquire)
}

fn on_stop_request(_: u32, frame: &mut tricolor_arch::exception::TrapFrame) {
    if !requested() {
        return;
    }
    let p = tricolor_runtime::this_p();
    if p.preempt.depth() > 0 {
        // Inside a no-preemption window: park when it ends (the deferred hook calls park_here).
        let _ = p.preempt.on_tick();
        return;
    }
    park_here(frame.elr as usize, ParkSite::Interrupted);
}

/// Parks the calling core until the stop ends. Called with IRQs masked, from the SGI handler or
/// from the deferred-preemption hook; `pc` and `site` say where the core was stopped.
pub fn park_here(pc: usize, site: ParkSite) {
    // Acquire pairs with the initiator's Release store of the request: this core sees what the
    // initiator wrote before it (and parks for exactly that stop; see the module docs).
    let epoch = REQUEST.load(Ordering::Acquire);
    if epoch == 0 {
        return;
    }
    let core = percore::id();
    // Paused from here until the release (its park-hook flush shows as a flush inside).
    let was = timeline::enter(State::Pause);
    // The callee-saved registers may hold the only copy of a live pointer (parking from the
    // deferred hook leaves the interrupted code's x19..x29 in registers, not in a trap frame):
    // spill them into this frame, inside [PARKED_SP, stack top). The caller-saved ones are dead
    // here (we are several calls deep) but may hold the allocator's internal addresses, which a
    // scan would take for live pointers: clear them instead of spilling them.
    cpu::clear_caller_saved_registers();
    let spilled = cpu::spill_general_registers();
    core::hint::black_box(&spilled);
    PARKED_SP[core].store(cpu::stack_pointer(), Ordering::Release);
    // The collector's work a core does for itself at its safe point, in parallel with the others
    // (see `set_park_hook`).
    let hook = PARK_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only `set_park_hook` stores a nonzero value, and it stores a `fn()`.
        let hook = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
    PARK_PC[core].store(pc, Ordering::Relaxed);
    PARK_KIND[core].store(site as usize, Ordering::Relaxed);
    PARK_AT[core].store(cpu::counter(), Ordering::Relaxed);
    // Release: the initiator (Acquire load of this word) sees this core's state as of parking
    // (SP, park records, everything it did before).
    PARKED_EPOCH[core].store(epoch, Ordering::Release);
    // Acquire pairs with the release's bump: what the initiator's closure wrote is visible when
    // this core runs again.
    while EPOCH.load(Ordering::Acquire) == epoch {
        tricolor_arch::cpu::relax();
    }
    PARKED_SP[core].store(0, Ordering::Release);
    // The recorded pause ends at the release, not when this core noticed it: on hardware the two
    // are a few cycles apart, but under -icount's round-robin a parked vCPU notices at its next
    // turn, up to a timer tick later, and meanwhile it is no more stopped than any vCPU waiting
    // for its turn (which keeps the state it was in). Per core that lingering was 35-40 ms of
    // "pause" in a GCBench run whose stops added up to 2.3 ms. (A core that parked for a stop
    // already over gets an empty pause: `leave_at` never goes back before its last transition.)
    timeline::leave_at(was, RELEASED_AT.load(Ordering::Relaxed));
}

/// For a wait that may run with IRQs masked (so the stop's interrupt cannot reach it) on work
/// another core does, which may itself need to stop the world: parks if a stop is requested. A
/// driver that waits masked for the cycle lock, held by a cycle on another core, would otherwise
/// hold that cycle's stop off forever (a stress run: the driver's last `collect`, masked, behind
/// a cycle a mutator had triggered on another core's task just before it returned). Call only
/// where the task may be switched out (preemption on, no spin lock held): a parked core is at a
/// safe point, its stack scanned where it stands.
pub fn park_if_requested() {
    if requested() && irqmask::irqs_masked() {
        // Ordering: Relaxed; a statistic.
        WAITING_PARKS.fetch_add(1, Ordering::Relaxed);
        park_here(0, ParkSite::Waiting);
    }
}

/// Parks from [`park_if_requested`] since boot (a test shows the masked wait was reached).
static WAITING_PARKS: AtomicUsize = AtomicUsize::new(0);

/// How many times a core parked from a masked wait ([`park_if_requested`]) since boot.
pub fn waiting_parks() -> usize {
    WAITING_PARKS.load(Ordering::Relaxed)
}

/// Runs `f` with every other online core parked at a safe point.
pub fn stop_the_world<R>(f: impl FnOnce() -> R) -> Result<(R, StwTimes), NotStopped> {
    // Two cores may want to stop the world at once (a mutator's triggered collection and another
    // core's check, say). The loser must not wait with preemption off, or it could never park
    // for the winner: it waits as a safe point instead, parking whenever a stop is requested.
    let _one = loop {
        if let Some(guard) = ONE_AT_A_TIME.try_lock() {
            break guard;
        }
        if requested() {
            let _irqs = IrqGuard::mask();
            park_here(0, ParkSite::Contending);
        }
        cpu::relax();
    };
    let irqs = IrqGuard::mask();
    let me = percore::id();
    let others = (0..MAX_CORES).filter(|&c| c != me && percore::is_online(c)).count();
    // Only stop initiators (one at a time) write EPOCH.
    let epoch = EPOCH.load(Ordering::Relaxed);
    let start = cpu::counter();
    // The pause, on this core, from the request until the release.
    let paused = timeline::enter(State::Pause);
    // Release: a core that reads this request sees everything this core did before it.
    REQUEST.store(epoch, Ordering::Release);
    irq::send_to_others(irq::SGI_STOP);
    let deadline = start + cpu::counter_frequency() * STOP_TIMEOUT_MS / 1000;
    // Acquire pairs with each parker's Release store of its parked epoch.
    let parked = || {
        (0..MAX_CORES)
            .filter(|&c| c != me && percore::is_online(c) && PARKED_EPOCH[c].load(Ordering::Acquire) == epoch)
            .count()
    };
    while parked() < others && cpu::counter() < deadline {
        tricolor_arch::cpu::relax();
    }
    if parked() < others {
        let missing = (0..MAX_CORES)
            .filter(|&c| c != me && percore::is_online(c) && PARKED_EPOCH[c].load(Ordering::Relaxed) != epoch)
            .fold(0u32, |m, c| m | (1 << c));
        release(irqs, paused);
        return Err(NotStopped { missing });
    }
    let stopped = cpu::counter();
    let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / cpu::counter_frequency() as u128) as u64;
    // Which core parked last (its park records were written before its parked epoch, which our
    // Acquire loads saw).
    let last = (0..MAX_CORES)
        .filter(|&c| c != me && percore::is_online(c))
        .max_by_key(|&c| PARK_AT[c].load(Ordering::Relaxed));
    LAST_TTSP_NS.store(ns(stopped - start), Ordering::Relaxed);
    let (core, pc, kind) = last.map_or((me, 0, ParkSite::Interrupted as usize), |c| {
        (c, PARK_PC[c].load(Ordering::Relaxed), PARK_KIND[c].load(Ordering::Relaxed))
    });
    LAST_CORE.store(core, Ordering::Relaxed);
    LAST_PC.store(pc, Ordering::Relaxed);
    LAST_KIND.store(kind, Ordering::Relaxed);
    let result = f();
    let end = cpu::counter();
    // The pause ends at the release, before IRQs are unmasked: a tick pending behind the mask may
    // switch this task out at once, while the world already runs again.
    LAST_PAUSE_NS.store(ns(cpu::counter() - start), Ordering::Relaxed);
    release(irqs, paused);
    Ok((result, StwTimes { stop_ns: ns(stopped - start), stopped_ns: ns(end - stopped) }))
}

/// Stop attempts that missed their deadline and were retried, since boot. Each is a finding: a
/// core took more than [`STOP_TIMEOUT_MS`] to reach a safe point (stuck with preemption off, or
/// starved by an overloaded host). Tests and stress runs report it.
static RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Stop attempts (each with [`STOP_TIMEOUT_MS`]) before [`stop_the_world_retrying`] gives up.
pub const STOP_ATTEMPTS: u32 = 10;

/// How many stops missed a deadline and were retried since boot.
pub fn retries() -> usize {
    RETRIES.load(Ordering::Relaxed)
}

/// [`stop_the_world`], retrying a missed deadline up to [`STOP_ATTEMPTS`] times: a stop can miss
/// it on an overloaded host (vCPU threads starved), not only when a core is stuck. Every retry is
/// logged and counted ([`retries`]); the last failure panics with the cores that never parked.
pub fn stop_the_world_retrying<R>(f: impl FnOnce() -> R) -> (R, StwTimes) {
    let mut f = Some(f);
    for attempt in 1..=STOP_ATTEMPTS {
        match stop_the_world(|| (f.take().expect("called once"))()) {
            Ok(done) => return done,
            Err(e) if attempt < STOP_ATTEMPTS => {
                // Ordering: Relaxed; a statistic.
                RETRIES.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "stw: cores {:#b} not at a safe point after {STOP_TIMEOUT_MS} ms (attempt {attempt}{}); trying again",
                    e.missing,
                    Depths(e.missing)
                )
            }
            Err(e) => panic!(
                "stw: cannot stop the world: cores {:#b} never reached a safe point in {STOP_ATTEMPTS} attempts{}",
                e.missing,
                Depths(e.missing)
            ),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// For a missed stop's log line: each missing core's preemption depth now. Nonzero: it is stuck
/// in a no-preemption window; zero: it runs with IRQs masked (or its vCPU gets no turn).
struct Depths(u32);

impl core::fmt::Display for Depths {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for core in (0..MAX_CORES).filter(|&c| self.0 & (1 << c) != 0) {
            if let Some(p) = percore::p_of(core) {
                write!(f, "; core {core} preemption depth {}", p.preempt.depth())?;
            }
        }
        Ok(())
    }
}

/// Ends the current epoch: every parked core leaves at its next turn; nothing waits for them.
/// Then the initiator's pause ends (back to the state `paused` it was in) and, last, its masked
/// section (`irqs`).
fn release(irqs: IrqGuard, paused: State) {
    REQUEST.store(0, Ordering::Release);
    RELEASED_AT.store(cpu::counter(), Ordering::Relaxed);
    // Release: the closure's writes (and RELEASED_AT) are visible to a parked core that sees the
    // new epoch.
    EPOCH.fetch_add(1, Ordering::Release);
    timeline::leave(paused);
    drop(irqs);
}
