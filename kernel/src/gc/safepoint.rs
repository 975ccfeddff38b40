//! Requests the collector makes of another core, run by that core at its next safe point: scan
//! your current task's stack (`scan`), flush your wbBuf (the mark-termination handshake, Go's
//! `forEachP(wbBufFlush)`).
//!
//! A request is a bit in the core's word plus an interrupt (`SGI_GC`), which also wakes an idle
//! core from `wfi`. The handler runs the requests at once if preemption is enabled (an interrupt
//! with preemption enabled is a safe point: the interrupted code is in no barrier window, holds
//! no collector state). Otherwise it defers them like a tick: the outermost `PreemptGuard`'s drop
//! runs the deferred hook, which calls [`run_here`] before it yields.

use super::{Kernel, COLLECTOR};
use crate::{irq, percore};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_gc::Collector;

/// Scan this core's current task (see `scan`).
pub const SCAN: usize = 1;
/// Flush this core's wbBuf and publish its grey objects.
pub const FLUSH: usize = 2;

/// Pending requests per core.
static REQUESTS: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
/// The flush handshake's round, and the last round each core flushed for.
static FLUSH_ROUND: AtomicU64 = AtomicU64::new(0);
static FLUSHED: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// How long the handshake waits for every core before it gives up on the stragglers (the final
/// stop flushes every wbBuf anyway: the handshake only keeps that flush small).
const HANDSHAKE_TIMEOUT_MS: u64 = 2000;

const _: () = assert!(MAX_CORES <= u32::BITS as usize, "the handshake's stragglers are logged as a u32 mask");

/// Installs the request interrupt's handler (boot core, once; every core enables it).
pub fn init() {
    irq::register(irq::SGI_GC, on_request);
}

/// Asks `core` to run `what` at its next safe point.
pub fn request(core: usize, what: usize) {
    // Release: the handler (Acquire swap) sees what the requester wrote before (the epoch or
    // round the request is for).
    REQUESTS[core].fetch_or(what, Ordering::Release);
    irq::send_to(core, irq::SGI_GC);
}

fn on_request(_: u32, _: &mut tricolor_arch::exception::TrapFrame) {
    let p = tricolor_runtime::this_p();
    if p.preempt.depth() > 0 {
        // Not a safe point: the window's end runs the deferred hook, which calls `run_here`.
        let _ = p.preempt.on_tick();
        return;
    }
    run_here();
}

/// Runs this core's pending requests. Called at a safe point: the request interrupt with
/// preemption enabled, or the deferred-preemption hook.
pub fn run_here() {
    let core = percore::id();
    if REQUESTS[core].load(Ordering::Relaxed) == 0 {
        return;
    }
    // Acquire pairs with `request`'s Release.
    let what = REQUESTS[core].swap(0, Ordering::Acquire);
    let Some(c) = COLLECTOR.get() else { return };
    if what & FLUSH != 0 {
        flush_here(c, core);
    }
    if what & SCAN != 0 {
        super::scan::scan_requested_here(c);
    }
}

fn flush_here(c: &Collector, core: usize) {
    let round = FLUSH_ROUND.load(Ordering::Acquire);
    // On the system stack, like every flush: the heap addresses it handles stay out of the
    // interrupted task's stack (see `scan::scan_current`).
    tricolor_runtime::systemstack(|| c.flush_this_core::<Kernel>());
    // Release: the collector (Acquire) sees the published grey objects once it sees the round.
    FLUSHED[core].store(round, Ordering::Release);
}

/// The flush handshake ([`tricolor_gc::Platform::flush_handshake`]): every online core flushes
/// its wbBuf at its next safe point, this one now; returns when all have, or after
/// [`HANDSHAKE_TIMEOUT_MS`] with a warning.
pub fn flush_handshake(c: &Collector) {
    let me = percore::id();
    // Release: a core that sees its request sees the new round (see `flush_here`).
    let round = FLUSH_ROUND.fetch_add(1, Ordering::Release) + 1;
    let others = || (0..MAX_CORES).filter(move |&core| core != me && percore::is_online(core));
    for core in others() {
        request(core, FLUSH);
    }
    flush_here(c, me);
    let deadline = cpu::counter() + cpu::counter_frequency() * HANDSHAKE_TIMEOUT_MS / 1000;
    while others().any(|core| FLUSHED[core].load(Ordering::Acquire) < round) {
        if cpu::counter() > deadline {
            let missing = others().filter(|&core| FLUSHED[core].load(Ordering::Acquire) < round);
            let mask = missing.fold(0u32, |m, core| m | (1 << core));
            log::warn!(
                "gc: cores {mask:#b} did not flush within {HANDSHAKE_TIMEOUT_MS} ms; the final stop flushes them"
            );
            return;
        }
        <Kernel as tricolor_gc::Platform>::relax();
    }
}
