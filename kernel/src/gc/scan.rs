//! Concurrent stack scanning: during the mark, every task alive at mark start has its stack and
//! saved registers scanned once, one task at a time, while the others run (Go scans goroutine
//! stacks the same way: the hybrid barrier makes a rescan unnecessary).
//!
//! A stack is scanned only while its task is held at a safe point:
//! - a **switched-out** task is taken out of its run queue (`RunQueues::take`), so no core can
//!   run it; its saved registers and stack `[saved SP, top)` are scanned in chunks with
//!   preemption enabled between them, its dead stack below SP is zeroed, and it is queued back
//!   where it was;
//! - a **running** task is asked (a `safepoint` request) to scan itself at its next safe point:
//!   the interrupt handler runs on the task's own stack with every register of the interrupted
//!   code in the trap frame above it, so `[SP, top)` holds all of its state; inside a
//!   preemption-disabled window the request waits for the window's end, where the task's
//!   registers are spilled into the frame that scans;
//! - the task that runs the collector scans itself, where it stands.
//!
//! What makes scanning stacks one at a time, with no rescan, safe (the hybrid barrier's
//! argument, for this kernel):
//! - **allocation during the mark is black**, so a stack scanned late cannot hold a white object
//!   born after mark start;
//! - **every barriered store shades the old value and the new one, always**, whatever the state of
//!   the storing task's stack: a pointer a not-yet-scanned stack hides into the heap is shaded by
//!   the insertion half, and one unlinked from the heap after a scanned stack loaded it, by the
//!   deletion half (making either half conditional is unsound here);
//! - **pointers move between stacks only through the heap**, except a new task's spawn argument:
//!   tasks spawned during the mark have their argument shaded (`tasks::spawn`) and are not in the
//!   scan list (their stacks start empty, so they are black);
//! - a task that exits before its scan needs none: its stack dies with it.
//!
//! The root census (`tricolor_gc::census`) checks, with the verifier on, that every task alive at
//! mark start was scanned during the cycle.

use super::{Kernel, MARK_WORKER};
use crate::sync::Lock;
use crate::{percore, tasks, timeline};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::cpu;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_gc::{Collector, RootOwner, RootPart, ScanRange};
use tricolor_runtime::task::{Task, TaskState};
use tricolor_timeline::State;

/// The cycle whose stacks are being scanned (0: none); a task is scanned once its `scan_epoch`
/// equals it.
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// The tasks alive at mark start that still need their scan.
static PENDING: Lock<Vec<Arc<Task>>> = Lock::new(Vec::new());
/// A debug switch for the planted-blind-spot test (`gc-blind-stack`): the id of a task the scan
/// list leaves out (0: none). The root census must then report the task unscanned.
static SKIP_FOR_TEST: AtomicU64 = AtomicU64::new(0);

/// Words of a switched-out stack scanned per preemption-disabled chunk (bounds how long a stop
/// waits for the scanning core: about 20 instructions a word).
const CHUNK_WORDS: usize = 256;
/// Self-scans cannot zero the dead stack just below SP: the system-stack trampoline's frame
/// record (16 bytes) and the frame of `systemstack` itself may lie there while the zeroing runs.
/// So the scan starts this far below SP instead, and the zeroing stops where the scan starts:
/// every word of the stack is either scanned or zeroed. (This margin was once left neither: a
/// mutator word written there between mark start and the scan, naming a node it dropped before
/// the scan, was later covered by a deeper frame and found by the verifier, "reachable at mark
/// start: lost by the barrier or the mark", about once in 2 000 stress runs.)
const SCRUB_MARGIN: usize = 64;

/// Room the scan list keeps beyond the tasks alive at a cycle's end, so that mark setup's pause
/// does not grow it (a reallocation there cost the first cycle's pause some 240 instructions).
const PENDING_SPARE: usize = 32;

/// After a cycle, the world running: room in the scan list for the next mark setup.
pub fn reserve() {
    let mut live = 0;
    tasks::for_each_live(&mut |_| live += 1);
    let mut pending = PENDING.lock();
    let want = live + PENDING_SPARE;
    if pending.capacity() < want {
        let more = want - pending.len();
        pending.reserve(more);
    }
}

/// Mark setup, world stopped: every task alive now but the mark workers needs its scan this
/// cycle (`epoch`, unique per cycle).
pub fn begin(epoch: u64) {
    let mut pending = PENDING.lock();
    pending.clear();
    let skip = SKIP_FOR_TEST.load(Ordering::Relaxed);
    tasks::for_each_live(&mut |task| {
        if task.name().as_str() != MARK_WORKER && task.state() != TaskState::Exited && task.id().0 != skip {
            pending.push(Arc::clone(task));
        }
    });
    // Relaxed: the world is stopped; the restart handshake publishes it.
    EPOCH.store(epoch, Ordering::Relaxed);
}

/// Plants a blind spot for a test: from the next cycle on, the scan list leaves out task `id`
/// (`None`: no longer). A collector with this set is broken on purpose; the root census and the
/// verifier must say so.
pub fn skip_for_test(id: Option<u64>) {
    SKIP_FOR_TEST.store(id.unwrap_or(0), Ordering::Relaxed);
}

/// Whether the calling task's stack has been scanned in the mark under way (false if none is).
pub fn current_scanned() -> bool {
    let epoch = EPOCH.load(Ordering::Relaxed);
    // SAFETY: the current task is alive while it runs.
    epoch != 0 && unsafe { tricolor_runtime::this_p().current() }.is_some_and(|t| scanned(&t, epoch))
}

fn scanned(task: &Task, epoch: u64) -> bool {
    // Acquire pairs with the Release in `mark_scanned`: what the scan shaded was published first.
    task.scan_epoch().load(Ordering::Acquire) == epoch
}

fn mark_scanned(task: &Task, epoch: u64) {
    task.scan_epoch().store(epoch, Ordering::Release);
}

/// The concurrent mark's stack work, called by the collecting task between drains: scans what
/// can be scanned now and asks the cores running the others to scan themselves. True once every
/// task of the scan list is scanned or has exited.
pub fn scan_some(c: &Collector) -> bool {
    let epoch = EPOCH.load(Ordering::Relaxed);
    // Copy the list out: scanning must not hold a lock (it would keep preemption off).
    let pending: Vec<Arc<Task>> = PENDING.lock().clone();
    let me = percore::id();
    let mut done = true;
    for task in &pending {
        if scanned(task, epoch) || task.state() == TaskState::Exited {
            continue;
        }
        // SAFETY: the calling task is alive while it runs.
        if unsafe { tricolor_runtime::this_p().current() }.is_some_and(|t| Arc::ptr_eq(&t, task)) {
            scan_current(c, epoch);
            continue;
        }
        if tasks::in_idle_loop(task) && task.state() == TaskState::Ready {
            // An idle task in its loop is not taken out of its queue: its core keeps something
            // to run (an exiting task waits otherwise). It is scanned where it lies, without
            // zeroing below its SP: it may start running meanwhile, which is harmless because
            // it holds no GC pointer of its own from then on (its GC work, idle marking, runs on
            // the system stack, and what it polls keeps its objects in roots: the pinned
            // framebuffer). A boot flow that has not reached the loop yet (the boot core's, while
            // it runs a test's driver) is a mutator: it is taken out like any other task.
            if !scan_switched_out(c, task, epoch, false) {
                done = false; // its context was not saved yet (`Ready` is set first): later
            }
            continue;
        }
        let taken = {
            // The run queues are also touched from interrupt handlers (the timer's preemption).
            let _irqs = IrqGuard::mask();
            tasks::queues().take(task)
        };
        match taken {
            Some((core, held)) => {
                if !scan_switched_out(c, &held, epoch, true) {
                    // A held task's saved SP outside its stack is a bug: leave the stack
                    // unscanned for the root census to report, rather than retry forever.
                    mark_scanned(&held, epoch);
                }
                {
                    let _irqs = IrqGuard::mask();
                    tasks::queues().enqueue(core, held);
                }
                if core != me {
                    tasks::wake_others();
                }
            }
            None => {
                done = false;
                request_self_scan(task);
            }
        }
    }
    if done {
        PENDING.lock().clear();
    }
    done
}

/// Asks the core running `task` (if one is) to scan it at its next safe point.
fn request_self_scan(task: &Arc<Task>) {
    for core in (0..MAX_CORES).filter(|&c| percore::is_online(c) && c != percore::id()) {
        if percore::p_of(core).is_some_and(|p| core::ptr::eq(p.current_ptr(), Arc::as_ptr(task))) {
            super::safepoint::request(core, super::safepoint::SCAN);
        }
    }
}

/// Scans a task no core can run (taken out of its queue): its saved registers, then its stack
/// from the saved SP to the top in chunks, zeroing the dead part below SP first (`scrub`; not for
/// an idle task scanned in its queue, which may be running by then). False, and nothing marked
/// scanned, if the saved SP lies outside the task's stack: an idle task read while its first
/// switch-out is still saving its context (the scheduler marks it `Ready` before the save).
fn scan_switched_out(c: &Collector, task: &Task, epoch: u64, scrub: bool) -> bool {
    let id = task.id().0;
    let saved = task.context_ptr() as usize;
    // SAFETY: the task is in no run queue and not running (or an idle task in its loop, whose
    // saved context is at worst stale: checked below), so its saved context is readable.
    let sp = unsafe { task.saved_context() }.sp as usize;
    let (lowest, top) = tasks::mapped_stack(task);
    if sp < lowest || sp > top {
        return false;
    }
    {
        let _np = tricolor_runtime::this_p().preempt.disable();
        let _scanning = timeline::during(State::StackScan);
        // Only x19..x28, fp, lr and sp: see `tasks::for_each_root_range`.
        let regs = ScanRange { lo: saved, hi: saved + tricolor_runtime::context::CONTEXT_SP + 8 };
        // On the system stack, like every scan: the words it reads (another task's, garbage
        // included) must not stay in the scanning task's dead stack.
        tricolor_runtime::systemstack(|| {
            c.scan_stack::<Kernel>(regs, RootOwner { task: id, part: RootPart::SavedRegisters })
        });
    }
    if scrub {
        tasks::scrub(lowest, sp);
    }
    let word = core::mem::size_of::<usize>();
    let mut lo = sp;
    while lo < top {
        let hi = (lo + CHUNK_WORDS * word).min(top);
        let _np = tricolor_runtime::this_p().preempt.disable();
        // Each chunk, not the whole scan: preemption is on between chunks.
        let _scanning = timeline::during(State::StackScan);
        tricolor_runtime::systemstack(|| {
            c.scan_stack::<Kernel>(ScanRange { lo, hi }, RootOwner { task: id, part: RootPart::Stack })
        });
        lo = hi;
    }
    mark_scanned(task, epoch);
    true
}

/// Scans the calling core's current task where it stands: the collecting task, or the task an
/// interrupt handler interrupted (its registers are in the trap frame, inside the range).
fn scan_current(c: &Collector, epoch: u64) {
    // SAFETY: the current task is alive while it runs on this core.
    let Some(task) = (unsafe { tricolor_runtime::this_p().current() }) else { return };
    if scanned(&task, epoch) {
        return;
    }
    let _np = tricolor_runtime::this_p().preempt.disable();
    let _scanning = timeline::during(State::StackScan);
    // The callee-saved registers may hold pointers that are in no frame yet: spill them into
    // this one, which the range below covers.
    let spilled = cpu::spill_general_registers();
    core::hint::black_box(&spilled);
    let sp = cpu::stack_pointer();
    let (lowest, top) = tasks::mapped_stack(&task);
    if sp < lowest || sp > top {
        return; // on another stack (it cannot be, at a safe point): the census reports it
    }
    let id = task.id().0;
    // The scan itself runs on the core's system stack: the collector's own frames handle heap
    // addresses (of objects it shades, of garbage it passes over), and left in this task's dead
    // stack they could end up, uninitialised, inside a later frame, where a later scan would
    // take them for references.
    // The margin below `sp` is scanned rather than zeroed (see `SCRUB_MARGIN`): scanning the live
    // trampoline words there is harmless, and a stale word there is shaded, so no stale word
    // survives the scan in memory that a later frame can cover.
    let lo = sp.saturating_sub(SCRUB_MARGIN).max(lowest);
    tricolor_runtime::systemstack(|| {
        tasks::scrub(lowest, lo);
        c.scan_stack::<Kernel>(ScanRange { lo, hi: top }, RootOwner { task: id, part: RootPart::Stack });
        // Its registers are in that range (spilled above, or in the trap frame of the
        // interrupted code): the task's saved registers are covered too.
        c.scan_stack::<Kernel>(ScanRange { lo: sp, hi: sp }, RootOwner { task: id, part: RootPart::SavedRegisters });
    });
    mark_scanned(&task, epoch);
}

/// A self-scan request reached this core at a safe point (`safepoint`): scan its current task
/// if a mark is running.
pub fn scan_requested_here(c: &Collector) {
    if c.phase() == tricolor_gc::Phase::Mark {
        scan_current(c, EPOCH.load(Ordering::Relaxed));
    }
}
