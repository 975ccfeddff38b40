//! Per-core run queues: round-robin, with optional stealing by idle cores.
//!
//! Each core has a FIFO of ready tasks. A core picks from the front of its own queue; a task
//! that yields or is preempted goes to the back: round-robin. The lists are intrusive
//! (`Arc<Task>` linked through `Task::link`), so enqueueing never allocates — it happens on the
//! timer-interrupt path, where the allocator may be mid-operation on this very core.
//!
//! Stealing ([`StealPolicy::WhenIdle`]): a core whose queue is empty scans the other cores in
//! order, starting with the next one, and takes the task at the *back* of the first queue that
//! has a stealable one (the task that would otherwise wait longest there). A task is stealable
//! unless it is pinned or was last switched out by preemption (see `Task::was_preempted`: such a
//! task may hold a `&P` of its core in a register, so it must resume there). A steal holds only
//! the victim's lock, never two queue locks at once, so there is no lock order to get wrong.
//!
//! Locking: the queue locks are spin locks that the timer path also takes. On the kernel,
//! callers hold IRQs masked while calling into a queue, or a tick on the same core would spin on
//! a lock its own interrupted code holds.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use intrusive_collections::{intrusive_adapter, LinkedList, LinkedListAtomicLink};

use crate::task::{Task, TaskState};
use crate::CoreId;

intrusive_adapter!(TaskAdapter = Arc<Task>: Task { link: LinkedListAtomicLink });

/// Whether idle cores take work from busy ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StealPolicy {
    /// Tasks stay on the core they were queued on.
    Never,
    /// A core with an empty queue steals one stealable task from another core.
    WhenIdle,
}

/// One core's queue of ready tasks.
pub struct RunQueue {
    tasks: spin::Mutex<LinkedList<TaskAdapter>>,
    /// Number of queued tasks, readable without the lock (a hint for stealers).
    len: AtomicUsize,
}

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    /// An empty queue.
    pub fn new() -> RunQueue {
        RunQueue { tasks: spin::Mutex::new(LinkedList::new(TaskAdapter::new())), len: AtomicUsize::new(0) }
    }

    /// Number of queued tasks (a snapshot).
    pub fn len(&self) -> usize {
        // Relaxed: a hint only; the list under the lock is the truth.
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the queue is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push_back(&self, task: Arc<Task>) {
        let mut q = self.tasks.lock();
        q.push_back(task);
        // Relaxed: updated under the lock; only a hint outside it.
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    fn pop_front(&self) -> Option<Arc<Task>> {
        let mut q = self.tasks.lock();
        let t = q.pop_front()?;
        // Relaxed: as in push_back.
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(t)
    }

    /// Removes the stealable task nearest the back.
    fn steal_back(&self) -> Option<Arc<Task>> {
        let mut q = self.tasks.lock();
        let mut cursor = q.back_mut();
        while let Some(t) = cursor.get() {
            if t.stealable() {
                let t = cursor.remove();
                // Relaxed: as in push_back.
                self.len.fetch_sub(1, Ordering::Relaxed);
                return t;
            }
            cursor.move_prev();
        }
        None
    }

    /// Removes `task` if it is queued here.
    fn remove(&self, task: &Task) -> Option<Arc<Task>> {
        let mut q = self.tasks.lock();
        let mut cursor = q.front_mut();
        while let Some(t) = cursor.get() {
            if core::ptr::eq(t, task) {
                let t = cursor.remove();
                // Relaxed: as in push_back.
                self.len.fetch_sub(1, Ordering::Relaxed);
                return t;
            }
            cursor.move_next();
        }
        None
    }

    /// Whether every queued task satisfies `f` (true for an empty queue). Takes the queue's spin
    /// lock, as `snapshot` does (the kernel masks IRQs around it: its tick handler takes it too).
    pub fn all(&self, f: impl Fn(&Task) -> bool) -> bool {
        self.tasks.lock().iter().all(f)
    }

    /// Ids of the queued tasks, front first (for tests and dashboards).
    pub fn snapshot(&self) -> Vec<crate::task::TaskId> {
        self.tasks.lock().iter().map(|t| t.id()).collect()
    }
}

/// A task chosen to run next.
#[derive(Debug)]
pub struct Picked {
    /// The task.
    pub task: Arc<Task>,
    /// The core it was stolen from, if it did not come from the picking core's own queue.
    pub stolen_from: Option<CoreId>,
}

/// The run queues of all cores, and the list of exited tasks waiting to be reaped.
pub struct RunQueues {
    queues: Box<[RunQueue]>,
    policy: StealPolicy,
    /// Exited tasks, switched away from for the last time. Their stacks are no longer in use;
    /// whoever reaps them (the idle loop, say) unregisters and frees them.
    exited: RunQueue,
}

impl RunQueues {
    /// Queues for `cores` cores.
    pub fn new(cores: usize, policy: StealPolicy) -> RunQueues {
        assert!(cores > 0, "no cores");
        RunQueues { queues: (0..cores).map(|_| RunQueue::new()).collect(), policy, exited: RunQueue::new() }
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.queues.len()
    }

    /// The stealing policy.
    pub fn policy(&self) -> StealPolicy {
        self.policy
    }

    /// Core `core`'s queue.
    pub fn queue(&self, core: CoreId) -> &RunQueue {
        &self.queues[core]
    }

    /// Makes `task` ready and queues it at the back of `core`'s queue (of its own core if it is
    /// pinned).
    ///
    /// # Panics
    /// If the task is already queued (the intrusive link is in use).
    pub fn enqueue(&self, core: CoreId, task: Arc<Task>) {
        let core = task.affinity().unwrap_or(core);
        task.set_state(TaskState::Ready);
        self.queues[core].push_back(task);
    }

    /// Takes `task` out of whichever run queue holds it, so that no core runs it until it is
    /// queued again: the collector's platform scans a ready task's stack this way. Returns the
    /// core whose queue held it (queue it back there: a preempted task must resume on its core),
    /// or `None` if it is queued nowhere (running, being switched, exited).
    pub fn take(&self, task: &Task) -> Option<(CoreId, Arc<Task>)> {
        let (first, end) = match task.affinity() {
            Some(core) => (core, core + 1),
            None => (0, self.queues.len()),
        };
        (first..end).find_map(|core| self.queues[core].remove(task).map(|t| (core, t)))
    }

    /// Parks a task that has exited and been switched away from (see `sched::finish_switch`).
    pub(crate) fn push_exited(&self, task: Arc<Task>) {
        debug_assert_eq!(task.state(), TaskState::Exited);
        self.exited.push_back(task);
    }

    /// An exited task whose stack is no longer in use, for the caller to reap (unregister its
    /// stack and free it). Oldest first.
    pub fn take_exited(&self) -> Option<Arc<Task>> {
        self.exited.pop_front()
    }

    /// The next task for `core`: the front of its own queue, or, if that is empty and the
    /// policy allows, a task stolen from another core.
    pub fn pick_next(&self, core: CoreId) -> Option<Picked> {
        if let Some(task) = self.queues[core].pop_front() {
            return Some(Picked { task, stolen_from: None });
        }
        if self.policy == StealPolicy::Never {
            return None;
        }
        let n = self.queues.len();
        (1..n).map(|k| (core + k) % n).find_map(|victim| {
            let q = &self.queues[victim];
            if q.is_empty() {
                return None;
            }
            q.steal_back().map(|task| Picked { task, stolen_from: Some(victim) })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::tests::test_task;
    use crate::task::TaskId;
    use std::sync::atomic::AtomicBool;

    fn tasks(names: &[&str]) -> Vec<Arc<Task>> {
        names.iter().map(|n| Arc::new(test_task(n))).collect()
    }

    fn ids(ts: &[&Arc<Task>]) -> Vec<TaskId> {
        ts.iter().map(|t| t.id()).collect()
    }

    #[test]
    fn yielding_tasks_run_round_robin() {
        let q = RunQueues::new(1, StealPolicy::Never);
        let ts = tasks(&["a", "b", "c"]);
        for t in &ts {
            q.enqueue(0, t.clone());
        }
        let mut order = Vec::new();
        for _ in 0..7 {
            let t = q.pick_next(0).unwrap().task;
            order.push(t.name().as_str().to_owned());
            q.enqueue(0, t); // yield: back of the queue
        }
        assert_eq!(order, ["a", "b", "c", "a", "b", "c", "a"]);
    }

    #[test]
    fn enqueue_makes_ready_and_pinned_tasks_go_home() {
        let q = RunQueues::new(2, StealPolicy::Never);
        let t = Arc::new(test_task("p").pinned_to(1));
        t.set_state(TaskState::Running);
        q.enqueue(0, t.clone());
        assert_eq!(t.state(), TaskState::Ready);
        assert!(q.queue(0).is_empty());
        assert_eq!(q.queue(1).snapshot(), [t.id()]);
    }

    #[test]
    fn take_removes_a_queued_task_from_its_queue_only() {
        let q = RunQueues::new(3, StealPolicy::WhenIdle);
        let ts = tasks(&["a", "b", "c"]);
        q.enqueue(2, ts[0].clone());
        q.enqueue(2, ts[1].clone());
        q.enqueue(1, ts[2].clone());
        let (core, b) = q.take(&ts[1]).expect("b is queued");
        assert_eq!((core, b.id()), (2, ts[1].id()));
        assert_eq!(q.queue(2).snapshot(), [ts[0].id()]);
        assert!(q.take(&ts[1]).is_none(), "taken already");
        q.enqueue(core, b);
        assert_eq!(q.queue(2).snapshot(), ids(&[&ts[0], &ts[1]]));
        let pinned = Arc::new(test_task("p").pinned_to(0));
        q.enqueue(0, pinned.clone());
        assert_eq!(q.take(&pinned).map(|(c, _)| c), Some(0));
    }

    #[test]
    fn without_stealing_an_empty_core_gets_nothing() {
        let q = RunQueues::new(2, StealPolicy::Never);
        q.enqueue(0, Arc::new(test_task("a")));
        assert!(q.pick_next(1).is_none());
        assert_eq!(q.queue(0).len(), 1);
    }

    #[test]
    fn idle_core_steals_from_the_back_skipping_pinned_and_preempted() {
        let q = RunQueues::new(3, StealPolicy::WhenIdle);
        let ts = tasks(&["a", "b", "c"]);
        let pinned = Arc::new(test_task("pinned").pinned_to(0));
        ts[2].set_preempted(true);
        q.enqueue(0, ts[0].clone());
        q.enqueue(0, ts[1].clone());
        q.enqueue(0, pinned.clone());
        q.enqueue(0, ts[2].clone());
        // Core 2 is idle; core 0 is the only busy one. Back to front: c (preempted: stays),
        // pinned (stays), b (taken).
        let p = q.pick_next(2).unwrap();
        assert_eq!((p.task.id(), p.stolen_from), (ts[1].id(), Some(0)));
        assert_eq!(q.queue(0).snapshot(), ids(&[&ts[0], &pinned, &ts[2]]), "the rest keep their order");
        let p = q.pick_next(1).unwrap();
        assert_eq!(p.task.id(), ts[0].id());
        assert!(q.pick_next(1).is_none(), "only unstealable tasks are left");
    }

    #[test]
    fn own_queue_comes_before_stealing() {
        let q = RunQueues::new(2, StealPolicy::WhenIdle);
        let ts = tasks(&["mine", "theirs"]);
        q.enqueue(1, ts[0].clone());
        q.enqueue(0, ts[1].clone());
        let p = q.pick_next(1).unwrap();
        assert_eq!((p.task.id(), p.stolen_from), (ts[0].id(), None));
    }

    #[test]
    fn stealing_scans_victims_starting_after_the_thief() {
        let q = RunQueues::new(4, StealPolicy::WhenIdle);
        let ts = tasks(&["on0", "on3"]);
        q.enqueue(0, ts[0].clone());
        q.enqueue(3, ts[1].clone());
        // Core 2 looks at 3 first, then 0.
        assert_eq!(q.pick_next(2).unwrap().stolen_from, Some(3));
        assert_eq!(q.pick_next(2).unwrap().stolen_from, Some(0));
    }

    #[test]
    #[should_panic]
    fn double_enqueue_is_refused() {
        let q = RunQueues::new(1, StealPolicy::Never);
        let t = Arc::new(test_task("twice"));
        q.enqueue(0, t.clone());
        q.enqueue(0, t);
    }

    /// Threads stand in for cores: each picks (stealing when idle), "runs" the task, and yields
    /// it back to its own queue until every task has run `ROUNDS` times. No task may be picked
    /// by two cores at once, and none may be lost or duplicated.
    #[test]
    fn cores_share_tasks_without_loss_or_duplication() {
        const CORES: usize = 4;
        let (tasks_n, rounds) = if cfg!(miri) { (6, 3) } else { (64, 200) };
        let q = Arc::new(RunQueues::new(CORES, StealPolicy::WhenIdle));
        let all: Vec<Arc<Task>> = (0..tasks_n).map(|i| Arc::new(test_task(&format!("t{i}")))).collect();
        // Task ids come from a global counter that other tests bump concurrently: map them.
        let index: Arc<std::collections::HashMap<u64, usize>> =
            Arc::new(all.iter().enumerate().map(|(i, t)| (t.id().0, i)).collect());
        let running: Arc<Vec<AtomicBool>> = Arc::new((0..tasks_n).map(|_| AtomicBool::new(false)).collect());
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..tasks_n).map(|_| AtomicUsize::new(0)).collect());
        // All tasks start on core 0, which has no thread: the other cores must steal to get work
        // (and then steal from each other, since a yielded task goes to its runner's queue).
        for t in &all {
            q.enqueue(0, t.clone());
        }
        drop(all);
        let done = Arc::new(AtomicUsize::new(0));
        let cores: Vec<_> = (1..CORES)
            .map(|core| {
                let (q, running, runs, done, index) =
                    (q.clone(), running.clone(), runs.clone(), done.clone(), index.clone());
                std::thread::spawn(move || {
                    let mut stolen = 0;
                    while done.load(Ordering::SeqCst) < tasks_n {
                        let Some(p) = q.pick_next(core) else {
                            std::thread::yield_now();
                            continue;
                        };
                        stolen += usize::from(p.stolen_from.is_some());
                        let i = index[&p.task.id().0];
                        assert!(!running[i].swap(true, Ordering::SeqCst), "task {i} picked by two cores");
                        p.task.set_state(TaskState::Running);
                        let n = runs[i].fetch_add(1, Ordering::SeqCst) + 1;
                        running[i].store(false, Ordering::SeqCst);
                        if n == rounds {
                            p.task.set_state(TaskState::Exited);
                            done.fetch_add(1, Ordering::SeqCst);
                        } else {
                            q.enqueue(core, p.task);
                        }
                    }
                    stolen
                })
            })
            .collect();
        let stolen: usize = cores.into_iter().map(|c| c.join().unwrap()).sum();
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r.load(Ordering::SeqCst), rounds, "task {i}");
        }
        assert!(stolen >= tasks_n, "each task was stolen off core 0 at least once");
        assert!((0..CORES).all(|c| q.queue(c).is_empty()));
    }
}
