//! The kernel's lock: a spin lock that also disables preemption while held (Go's `m.locks`).
//!
//! Two reasons. A task switched out while holding a spin lock would make every other core that
//! wants it spin for a whole quantum. Worse, stop-the-world parks cores at safe points, and a
//! core parked while holding a lock would deadlock the stopping core the moment it needs that
//! lock (to walk the task list, say). With preemption disabled, the stop is deferred until the
//! lock is released. Waiting uses the `yield` hint (see `tricolor_arch::cpu::relax`).

use core::ops::{Deref, DerefMut};
use tricolor_arch::cpu::YieldRelax;
use tricolor_runtime::preempt::PreemptGuard;

/// A spin lock held with preemption disabled.
pub struct Lock<T> {
    inner: spin::mutex::Mutex<T, YieldRelax>,
}

/// Access to the data; releases the lock, then re-enables preemption, when dropped.
pub struct LockGuard<'a, T> {
    // Field order is drop order: unlock first, then let a deferred tick or stop run.
    data: spin::mutex::MutexGuard<'a, T>,
    _no_preempt: PreemptGuard<'static>,
}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: spin::mutex::Mutex::new(value) }
    }

    /// Waits for the lock.
    pub fn lock(&self) -> LockGuard<'_, T> {
        let no_preempt = tricolor_runtime::this_p().preempt.disable();
        LockGuard { data: self.inner.lock(), _no_preempt: no_preempt }
    }

    /// The lock if it is free now (fault handlers must not wait for a lock the faulting code
    /// may hold).
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        let no_preempt = tricolor_runtime::this_p().preempt.disable();
        Some(LockGuard { data: self.inner.try_lock()?, _no_preempt: no_preempt })
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}
