//! Stop-the-world: bring every other core to a safe point, run a function, let them go.
//!
//! The initiator raises [`SGI_STOP`](crate::irq::SGI_STOP) on every other core. A core takes it on
//! the stack of whatever it was running (IRQs run on the interrupted stack), so all of the
//! interrupted task's registers sit in the trap frame on that task's own stack while it is parked:
//! that is a safe point, where the collector may scan the task's stack and registers. A core
//! whose preemption is disabled (inside a write barrier's window, or on its system stack) does not
//! park there: the stop is deferred, like a timer tick, to the moment its outermost
//! `PreemptGuard` drops, because a barrier's buffer slots may be taken but not yet written.

use crate::sync::Lock as Mutex;
use crate::{irq, percore};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicUsize = AtomicUsize::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// SP of each parked core at its safe point: [sp, stack top) holds all of its live state.
static PARKED_SP: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];

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

/// Installs the SGI handler (boot core, once).
pub fn init() {
    irq::register(irq::SGI_STOP, on_stop_request);
}

/// True while a stop is requested (the deferred-preemption hook checks this).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Acquire)
}

/// Where core `core` parked (0 if it is not parked).
pub fn parked_sp(core: usize) -> usize {
    PARKED_SP[core].load(Ordering::Acquire)
}

fn on_stop_request(_: u32, _: &mut tricolor_arch::exception::TrapFrame) {
    if !requested() {
        return;
    }
    let p = tricolor_runtime::this_p();
    if p.preempt.depth() > 0 {
        // Inside a no-preemption window: park when it ends (the deferred hook calls park_here).
        let _ = p.preempt.on_tick();
        return;
    }
    park_here();
}

/// Parks the calling core until the stop ends. Called with IRQs masked, from the SGI handler or
/// from the deferred-preemption hook.
pub fn park_here() {
    if !requested() {
        return;
    }
    let core = percore::id();
    // The callee-saved registers may hold the only copy of a live pointer (parking from the
    // deferred hook leaves the interrupted code's x19..x29 in registers, not in a trap frame):
    // spill them into this frame, inside [PARKED_SP, stack top). The caller-saved ones are dead
    // here (we are several calls deep) but may hold the allocator's internal addresses, which a
    // scan would take for live pointers: clear them instead of spilling them.
    cpu::clear_caller_saved_registers();
    let spilled = cpu::spill_general_registers();
    core::hint::black_box(&spilled);
    PARKED_SP[core].store(cpu::stack_pointer(), Ordering::Release);
    // AcqRel: the initiator (Acquire on PARKED) sees this core's state as of parking; we see the
    // request's data.
    PARKED.fetch_add(1, Ordering::AcqRel);
    while REQUESTED.load(Ordering::Acquire) {
        tricolor_arch::cpu::relax();
    }
    PARKED_SP[core].store(0, Ordering::Release);
    PARKED.fetch_sub(1, Ordering::AcqRel);
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
            park_here();
        }
        cpu::relax();
    };
    // Masked until `release`: no tick switches this task out while the other cores are parked
    // waiting for it.
    let irqs = IrqGuard::mask();
    let me = percore::id();
    let others = (0..MAX_CORES).filter(|&c| c != me && percore::is_online(c)).count();
    let start = cpu::counter();
    REQUESTED.store(true, Ordering::Release);
    if let Some(gic) = irq::gic() {
        gic.send_sgi_to_others(irq::SGI_STOP);
    }
    let deadline = start + cpu::counter_frequency() * STOP_TIMEOUT_MS / 1000;
    while PARKED.load(Ordering::Acquire) < others && cpu::counter() < deadline {
        tricolor_arch::cpu::relax();
    }
    if PARKED.load(Ordering::Acquire) < others {
        let missing = (0..MAX_CORES)
            .filter(|&c| c != me && percore::is_online(c) && parked_sp(c) == 0)
            .fold(0u32, |m, c| m | (1 << c));
        release(irqs);
        return Err(NotStopped { missing });
    }
    let stopped = cpu::counter();
    let result = f();
    let end = cpu::counter();
    release(irqs);
    let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / cpu::counter_frequency() as u128) as u64;
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
                    "stw: cores {:#b} not at a safe point after {STOP_TIMEOUT_MS} ms (attempt {attempt}); trying again",
                    e.missing
                )
            }
            Err(e) => panic!(
                "stw: cannot stop the world: cores {:#b} never reached a safe point in {STOP_ATTEMPTS} attempts",
                e.missing
            ),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Ends the stop, then the initiator's masked section (`irqs`, dropped last).
fn release(irqs: IrqGuard) {
    REQUESTED.store(false, Ordering::Release);
    // Wait for every parked core to leave, so the next stop starts from zero.
    while PARKED.load(Ordering::Acquire) != 0 {
        tricolor_arch::cpu::relax();
    }
    drop(irqs);
}
