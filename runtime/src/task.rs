//! The task control block.
//!
//! A task is a kernel thread: a stack, a saved [`Context`] while it is not running, a state, and
//! an intrusive link so a run queue can hold it without allocating (a timer interrupt enqueues
//! tasks; it must not call the allocator). Tasks are shared as `Arc<Task>`.

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use intrusive_collections::LinkedListAtomicLink;

use crate::context::Context;
use crate::name::Name;
use crate::stack::growth::StackReservation;
use crate::stack::Stack;
use crate::CoreId;

/// A task's unique id (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskState {
    /// Runnable, waiting in a run queue (or being handed to one).
    Ready = 0,
    /// Running on some core (the `current` of that core's `P`).
    Running = 1,
    /// Finished; its stack may be freed once it has been switched away from.
    Exited = 2,
}

impl TaskState {
    fn from_u8(v: u8) -> TaskState {
        match v {
            0 => TaskState::Ready,
            1 => TaskState::Running,
            _ => TaskState::Exited,
        }
    }
}

/// A kernel task.
pub struct Task {
    /// Run-queue membership. Only touched by the run queue, under its lock.
    pub(crate) link: LinkedListAtomicLink,
    id: TaskId,
    name: Name,
    affinity: Option<CoreId>,
    state: AtomicU8,
    /// Set when the task was last switched out by a timer tick rather than by yielding. Such a
    /// task may have been interrupted between reading TPIDR_EL1 and using the `P` it found
    /// there, so it must resume on the same core: run queues never let another core steal it.
    preempted: AtomicBool,
    context: UnsafeCell<Context>,
    stack: Stack,
    reservation: Option<StackReservation>,
    /// The last collection cycle whose concurrent stack scan covered this task (0: none). The
    /// kernel's collector platform writes it (Release, after the scan's results are published)
    /// and reads it (Acquire); the runtime only keeps it.
    scan_epoch: AtomicU64,
}

// SAFETY: every field but `context` is Sync (atomics, Copy data, the atomic link). `context` is
// only reachable as a raw pointer (`context_ptr`) or through `unsafe fn saved_context`, whose
// contracts require the task not to be running; the scheduler hands a non-running task from one
// core to another through a run-queue lock, which orders the saving core's writes before the
// resuming core's reads.
unsafe impl Sync for Task {}
// SAFETY: as above; nothing in a Task is tied to the thread (core) that created it.
unsafe impl Send for Task {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Task {
    /// A new, ready task with the given stack and initial context (usually
    /// [`Context::for_entry`] with the arch's task entry trampoline).
    pub fn new(name: &str, stack: Stack, context: Context) -> Task {
        Task {
            link: LinkedListAtomicLink::new(),
            // Relaxed: ids only need to be unique, which the RMW guarantees by itself.
            id: TaskId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            name: Name::new(name),
            affinity: None,
            state: AtomicU8::new(TaskState::Ready as u8),
            preempted: AtomicBool::new(false),
            context: UnsafeCell::new(context),
            stack,
            reservation: None,
            scan_epoch: AtomicU64::new(0),
        }
    }

    /// The task standing for a core's boot flow (which becomes its idle task): running now,
    /// pinned to `core`, on the boot stack. Its context is filled in when it is first switched
    /// out.
    pub fn adopt_boot(core: CoreId, boot_stack: Stack) -> Task {
        let mut t = Task::new("idle", boot_stack, Context::default()).pinned_to(core);
        *t.state.get_mut() = TaskState::Running as u8;
        t
    }

    /// Restricts the task to `core`: it is always queued there and never stolen.
    pub fn pinned_to(mut self, core: CoreId) -> Task {
        self.affinity = Some(core);
        self
    }

    /// Gives the task a growable stack; `stack` should then be `reservation.as_stack(..)`.
    pub fn with_reservation(mut self, reservation: StackReservation) -> Task {
        self.reservation = Some(reservation);
        self
    }

    /// The collection cycle whose stack scan last covered this task (see the field's doc).
    pub fn scan_epoch(&self) -> &AtomicU64 {
        &self.scan_epoch
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The core the task is pinned to, if any.
    pub fn affinity(&self) -> Option<CoreId> {
        self.affinity
    }

    /// The task's stack (for a growable stack, its whole reservation).
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The growable-stack reservation, if the stack is growable.
    pub fn reservation(&self) -> Option<&StackReservation> {
        self.reservation.as_ref()
    }

    /// The task's state.
    pub fn state(&self) -> TaskState {
        // Acquire: a core that sees Exited also sees everything the task did before exiting
        // (pairs with the Release in `set_state`).
        TaskState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, s: TaskState) {
        // Release: see `state`.
        self.state.store(s as u8, Ordering::Release);
    }

    /// Whether the task was last switched out by preemption (and so must stay on its core).
    pub fn was_preempted(&self) -> bool {
        // Relaxed: read under the run-queue lock that also ordered the write.
        self.preempted.load(Ordering::Relaxed)
    }

    pub(crate) fn set_preempted(&self, v: bool) {
        // Relaxed: written by the core switching the task out, before the task is enqueued
        // under the run-queue lock; readers read it under that lock.
        self.preempted.store(v, Ordering::Relaxed);
    }

    /// Whether another core may take this task from its queue.
    pub fn stealable(&self) -> bool {
        self.affinity.is_none() && !self.was_preempted()
    }

    /// Where `switch_context` saves and loads this task's registers.
    pub fn context_ptr(&self) -> *mut Context {
        self.context.get()
    }

    /// A copy of the saved registers (for the collector's conservative root scan).
    ///
    /// # Safety
    /// The task must not be running, nor be switched in or out concurrently (the world is
    /// stopped, or the caller holds the task out of every run queue).
    pub unsafe fn saved_context(&self) -> Context {
        // SAFETY: by the contract nobody writes the context concurrently.
        unsafe { *self.context.get() }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("state", &self.state())
            .field("affinity", &self.affinity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stack::StackKind;

    /// A task for tests; its stack is never touched.
    pub(crate) fn test_task(name: &str) -> Task {
        let stack = Stack::new(StackKind::Task, 0x10_0000, 0x10_4000, 0x1000, None, name);
        Task::new(name, stack, Context::for_entry(stack.hi, 0, 0, 0, 0))
    }

    #[test]
    fn ids_are_unique() {
        let a = test_task("a");
        let b = test_task("b");
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn new_task_is_ready_and_stealable() {
        let t = test_task("t");
        assert_eq!(t.state(), TaskState::Ready);
        assert!(t.stealable());
    }

    #[test]
    fn pinned_or_preempted_task_is_not_stealable() {
        assert!(!test_task("p").pinned_to(1).stealable());
        let t = test_task("q");
        t.set_preempted(true);
        assert!(!t.stealable());
    }

    #[test]
    fn boot_task_is_running_and_pinned() {
        let s = Stack::new(StackKind::Boot, 0x1000, 0x5000, 0x1000, Some(2), "boot");
        let t = Task::adopt_boot(2, s);
        assert_eq!(t.state(), TaskState::Running);
        assert_eq!(t.affinity(), Some(2));
        assert_eq!(t.name().as_str(), "idle");
    }

    #[test]
    fn context_round_trips_through_the_raw_pointer() {
        let t = test_task("c");
        // SAFETY: the task is not running; this test is the only user of its context.
        unsafe { (*t.context_ptr()).fp = 42 };
        // SAFETY: as above.
        assert_eq!(unsafe { t.saved_context() }.fp, 42);
    }
}
