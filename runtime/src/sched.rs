//! The scheduling decision around a context switch.
//!
//! A switch from task A to task B on one core has three steps:
//!
//! 1. [`prepare_switch`]: pick B, make it the core's current task, and park A in
//!    `P::switching_from` (*not* in a run queue yet);
//! 2. the arch's `switch_context(A.context, B.context)`: saves A's registers, loads B's;
//! 3. [`finish_switch`], run by B right after the switch (or by its start function, for a task
//!    that runs for the first time): queues A, or, if A exited, parks it on the run queues'
//!    exited list ([`RunQueues::take_exited`]) for a reaper to free its stack.
//!
//! A is queued only in step 3 because another core could otherwise steal A and switch to its
//! context before this core finished saving it. Steps 1-3 run with interrupts masked on the
//! kernel (the timer path takes the same run-queue locks).
//!
//! The core's idle task (its boot flow, [`crate::task::Task::adopt_boot`]) is pinned and never
//! exits, so it is always running or queued on its core: a core always has something to run.

use alloc::sync::Arc;
use core::ptr;
use core::sync::atomic::Ordering;

use crate::context::Context;
use crate::p::{PStats, P};
use crate::runq::RunQueues;
use crate::task::TaskState;

/// Why the running task gives up its core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// It called yield: it goes to the back of this core's queue, and may be stolen.
    Yield,
    /// A timer tick found preemption enabled: back of this core's queue, not stealable.
    Preempt,
    /// It finished: `finish_switch` parks it on the exited list to be reaped.
    Exit,
}

/// The register files to switch between: pass them to the arch's `switch_context`.
#[derive(Debug, PartialEq, Eq)]
pub struct Switch {
    /// Where to save the outgoing task's registers.
    pub from: *mut Context,
    /// Where to load the incoming task's registers from.
    pub to: *const Context,
}

/// Step 1: decides what runs next on `p`'s core. `None` means keep running the current task
/// (it yielded or was preempted, and nothing else is runnable). For an exit, `None` means the
/// caller must wait and retry: the core's idle task, always queued otherwise, can be out of its
/// queue for a moment (the collector holds a task still while it scans its stack).
///
/// # Panics
/// If the core has no current task, a switch is already in progress, or a task yields with
/// preemption disabled.
pub fn prepare_switch(p: &P, queues: &RunQueues, reason: SwitchReason) -> Option<Switch> {
    assert!(!p.current_ptr().is_null(), "core {}: no current task", p.core());
    assert!(
        reason != SwitchReason::Yield || p.preempt.depth() == 0,
        "core {}: yield with preemption disabled",
        p.core()
    );
    // Relaxed: only this core touches its `switching_from`, with interrupts masked.
    assert!(p.switching_from.load(Ordering::Relaxed).is_null(), "core {}: switch already in progress", p.core());
    let picked = queues.pick_next(p.core())?;
    let next = picked.task;
    next.set_preempted(false);
    next.set_state(TaskState::Running);
    let to = next.context_ptr().cast_const();
    let prev = p.replace_current(next).expect("current checked above");
    prev.set_preempted(reason == SwitchReason::Preempt);
    prev.set_state(match reason {
        SwitchReason::Exit => TaskState::Exited,
        SwitchReason::Yield | SwitchReason::Preempt => TaskState::Ready,
    });
    let from = prev.context_ptr();
    // Relaxed: as above. P's strong count of `prev` moves into `switching_from`, keeping its
    // context alive while `switch_context` writes to it.
    p.switching_from.store(Arc::into_raw(prev).cast_mut(), Ordering::Relaxed);
    PStats::bump(&p.stats.context_switches);
    match reason {
        SwitchReason::Yield => PStats::bump(&p.stats.yields),
        SwitchReason::Preempt => PStats::bump(&p.stats.preemptions),
        SwitchReason::Exit => {}
    }
    if picked.stolen_from.is_some() {
        PStats::bump(&p.stats.steals);
    }
    Some(Switch { from, to })
}

/// Step 3: run on the core that just switched (pass *that* core's `P`: after a switch the
/// resumed task may be on another core than the one it last ran on). Queues the task switched
/// away from on this core, or parks it on the exited list if it exited.
pub fn finish_switch(p: &P, queues: &RunQueues) {
    // Relaxed: written by this core in `prepare_switch` before the switch.
    let raw = p.switching_from.swap(ptr::null_mut(), Ordering::Relaxed);
    if raw.is_null() {
        return;
    }
    // SAFETY: `raw` came from `Arc::into_raw` in `prepare_switch`; swapping it out of P moved
    // that strong count to us.
    let prev = unsafe { Arc::from_raw(raw) };
    match prev.state() {
        TaskState::Ready => queues.enqueue(p.core(), prev),
        TaskState::Exited => queues.push_exited(prev),
        TaskState::Running => unreachable!("a switched-out task is not running"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p::tests::test_p;
    use crate::runq::StealPolicy;
    use crate::stack::{Stack, StackKind};
    use crate::task::tests::test_task;
    use crate::task::Task;

    /// A core with an adopted idle task and `names` queued.
    fn core_with(names: &[&str], cores: usize) -> (&'static P, RunQueues, Vec<Arc<Task>>) {
        let p = test_p(0);
        let q = RunQueues::new(cores, StealPolicy::WhenIdle);
        let boot = Stack::new(StackKind::Boot, 0x1000, 0x5000, 0x1000, Some(0), "boot");
        let idle = Arc::new(Task::adopt_boot(0, boot));
        p.adopt_current(idle.clone());
        let mut ts = alloc::vec![idle];
        for n in names {
            let t = Arc::new(test_task(n));
            q.enqueue(0, t.clone());
            ts.push(t);
        }
        (p, q, ts)
    }

    /// What the arch does between prepare and finish, minus the registers.
    fn switch(p: &P, q: &RunQueues, reason: SwitchReason) -> bool {
        let Some(s) = prepare_switch(p, q, reason) else { return false };
        assert_ne!(s.from.cast_const(), s.to);
        finish_switch(p, q);
        true
    }

    fn current_name(p: &P) -> String {
        // SAFETY: single-threaded test.
        unsafe { p.current() }.unwrap().name().as_str().to_owned()
    }

    #[test]
    fn yields_rotate_round_robin_including_idle() {
        let (p, q, _ts) = core_with(&["a", "b"], 1);
        let mut seen = Vec::new();
        for _ in 0..6 {
            assert!(switch(p, &q, SwitchReason::Yield));
            seen.push(current_name(p));
        }
        assert_eq!(seen, ["a", "b", "idle", "a", "b", "idle"]);
        assert_eq!(p.stats.yields.load(Ordering::Relaxed), 6);
        assert_eq!(p.stats.context_switches.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn switch_saves_into_the_old_task_and_loads_the_new() {
        let (p, q, ts) = core_with(&["a"], 1);
        let s = prepare_switch(p, &q, SwitchReason::Yield).unwrap();
        assert_eq!(s.from, ts[0].context_ptr(), "idle is saved");
        assert_eq!(s.to, ts[1].context_ptr().cast_const(), "a is loaded");
        assert!(q.queue(0).is_empty(), "the old task is not queued before its context is saved");
        finish_switch(p, &q);
        assert_eq!(q.queue(0).snapshot(), [ts[0].id()]);
        assert_eq!(ts[0].state(), TaskState::Ready);
        assert_eq!(ts[1].state(), TaskState::Running);
    }

    #[test]
    fn yield_with_nothing_else_keeps_running() {
        let (p, q, ts) = core_with(&[], 1);
        assert!(prepare_switch(p, &q, SwitchReason::Yield).is_none());
        assert_eq!(p.current_ptr(), Arc::as_ptr(&ts[0]));
        assert_eq!(ts[0].state(), TaskState::Running);
    }

    #[test]
    fn preempted_task_stays_on_its_core_until_it_runs_again() {
        let (p, q, ts) = core_with(&["a", "b"], 2);
        switch(p, &q, SwitchReason::Yield); // idle -> a
        switch(p, &q, SwitchReason::Preempt); // a -> b, a preempted
        assert!(ts[1].was_preempted());
        // Core 1 is idle and looks for work: idle is pinned and a was preempted.
        assert!(q.pick_next(1).is_none(), "nothing stealable on core 0");
        switch(p, &q, SwitchReason::Yield); // b -> idle
        switch(p, &q, SwitchReason::Yield); // idle -> a
        assert_eq!(current_name(p), "a");
        assert!(!ts[1].was_preempted(), "running again clears the mark");
        assert_eq!(p.stats.preemptions.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn exited_task_is_parked_for_reaping_not_queued() {
        let (p, q, ts) = core_with(&["a"], 1);
        switch(p, &q, SwitchReason::Yield); // idle -> a
        assert!(q.take_exited().is_none());
        switch(p, &q, SwitchReason::Exit);
        let dead = q.take_exited().expect("a is parked");
        assert!(q.take_exited().is_none());
        assert_eq!(dead.id(), ts[1].id());
        assert_eq!(dead.state(), TaskState::Exited);
        assert_eq!(current_name(p), "idle");
        assert!(q.queue(0).is_empty());
    }

    #[test]
    fn exit_with_nothing_to_run_changes_nothing() {
        // The exiting task waits (exit_current retries): it stays current and running, queues
        // untouched, until something is runnable.
        let (p, q, _ts) = core_with(&["a"], 1);
        let a = q.pick_next(0).expect("a is queued").task;
        let idle = p.replace_current(a).expect("idle was current");
        idle.set_state(TaskState::Ready);
        assert!(prepare_switch(p, &q, SwitchReason::Exit).is_none());
        assert_eq!(current_name(p), "a");
        assert!(p.switching_from.load(Ordering::Relaxed).is_null());
        q.enqueue(0, idle);
        let s = prepare_switch(p, &q, SwitchReason::Exit).expect("the idle task is back");
        assert!(!s.from.is_null());
        assert_eq!(current_name(p), "idle");
    }

    #[test]
    #[should_panic(expected = "yield with preemption disabled")]
    fn yield_inside_a_preempt_guard_panics() {
        let (p, q, _ts) = core_with(&["a"], 1);
        let _g = p.preempt.disable();
        prepare_switch(p, &q, SwitchReason::Yield);
    }

    #[test]
    fn an_idle_core_steals_a_yielded_task_and_counts_it() {
        let (p0, q, ts) = core_with(&["a", "b"], 2);
        switch(p0, &q, SwitchReason::Yield); // idle -> a; queue: b, idle
        let p1 = test_p(1);
        let boot1 = Stack::new(StackKind::Boot, 0x9000, 0xD000, 0x1000, Some(1), "boot");
        p1.adopt_current(Arc::new(Task::adopt_boot(1, boot1)));
        switch(p1, &q, SwitchReason::Yield); // core 1: its idle yields, steals b
        assert_eq!(current_name(p1), "b");
        assert_eq!(p1.stats.steals.load(Ordering::Relaxed), 1);
        assert_eq!(ts[2].state(), TaskState::Running);
    }
}
