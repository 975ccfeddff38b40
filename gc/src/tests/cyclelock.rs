//! The cycle lock: mutual exclusion, `try_hold` deferring, waiter priority; the wait watch.

extern crate std;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::cyclelock::{CycleLock, WaitWatch, WAIT_FIRST_LOG_NS, WAIT_LOG_EVERY_NS};
use crate::host::HostPlatform as H;

/// Spins (yielding) until `done()`, failing the test after 30 s instead of hanging.
fn spin_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        thread::yield_now();
    }
}

#[test]
fn hold_and_try_hold_exclude_each_other() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000;
    let lock = Arc::new(CycleLock::new());
    // `inside` counts closures running now; `counter` is a read-modify-write split in two, so
    // two closures overlapping lose an update even when they miss each other in `inside`.
    let inside = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (lock, inside, counter, entered) = (lock.clone(), inside.clone(), counter.clone(), entered.clone());
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for round in 0..ROUNDS {
                    let critical = || {
                        // Ordering: Relaxed throughout; the lock's Acquire/Release under test is
                        // what must order these, so they must not order anything themselves.
                        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "two holders at once");
                        let v = counter.load(Ordering::Relaxed);
                        // A window for an overlapping holder to show up in.
                        if round % 16 == 0 {
                            thread::yield_now();
                        } else {
                            for _ in 0..100 {
                                core::hint::spin_loop();
                            }
                        }
                        assert_eq!(inside.load(Ordering::Relaxed), 1, "another holder came in");
                        counter.store(v + 1, Ordering::Relaxed);
                        inside.fetch_sub(1, Ordering::Relaxed);
                    };
                    // Half the threads wait, half only try.
                    if t % 2 == 0 {
                        lock.hold::<H, _>(critical);
                        entered.fetch_add(1, Ordering::Relaxed);
                    } else if lock.try_hold::<H, _>(critical).is_some() {
                        entered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter.load(Ordering::Relaxed), entered.load(Ordering::Relaxed), "a lost update");
    assert!(entered.load(Ordering::Relaxed) >= THREADS / 2 * ROUNDS, "every hold ran");
    assert!(!lock.is_held());
    assert_eq!(lock.waiters(), 0);
    assert_eq!(lock.holder(), None);
}

/// A thread that holds `lock` until `release` is set.
fn hold_until(lock: &Arc<CycleLock>, release: &Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let (held, release) = (lock.clone(), release.clone());
    let handle = thread::spawn(move || {
        held.hold::<H, _>(|| spin_until("the release", || release.load(Ordering::Acquire)));
    });
    // `holder` is set just after the lock is taken.
    spin_until("the holder to take the lock", || lock.holder().is_some());
    handle
}

#[test]
fn try_hold_gives_up_while_held_and_while_a_waiter_waits() {
    let lock = Arc::new(CycleLock::new());
    let release = Arc::new(AtomicBool::new(false));
    let holder = hold_until(&lock, &release);
    assert_eq!(lock.holder(), Some(0), "host threads outside a world are core 0");
    assert!(lock.try_hold::<H, _>(|| ()).is_none(), "try_hold ran while the lock was held");

    let waiter = {
        let lock = lock.clone();
        thread::spawn(move || lock.hold::<H, _>(|| 7))
    };
    spin_until("the waiter to count itself", || lock.waiters() == 1);
    assert!(lock.try_hold::<H, _>(|| ()).is_none(), "try_hold ran while held, with a waiter");
    release.store(true, Ordering::Release);
    holder.join().unwrap();
    assert_eq!(waiter.join().unwrap(), 7);
    assert_eq!(lock.try_hold::<H, _>(|| 8), Some(8), "a free lock without waiters is taken");
}

#[test]
fn a_waiter_goes_before_threads_looping_on_try_hold() {
    const SPINNERS: usize = 3;
    let lock = Arc::new(CycleLock::new());
    let release = Arc::new(AtomicBool::new(false));
    let holder = hold_until(&lock, &release);

    // Triggered cycles that got the lock, and how many had when the waiter got it.
    let triggered = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let (lock, triggered) = (lock.clone(), triggered.clone());
        thread::spawn(move || lock.hold::<H, _>(|| triggered.load(Ordering::Relaxed)))
    };
    spin_until("the waiter to count itself", || lock.waiters() == 1);
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..SPINNERS)
        .map(|_| {
            let (lock, triggered, stop) = (lock.clone(), triggered.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if lock.try_hold::<H, _>(|| triggered.fetch_add(1, Ordering::Relaxed)).is_some() {
                        thread::yield_now();
                    }
                    core::hint::spin_loop();
                }
            })
        })
        .collect();
    // Let the spinners loop against the held lock, then let it go.
    thread::sleep(Duration::from_millis(20));
    release.store(true, Ordering::Release);
    holder.join().unwrap();
    let before_waiter = waiter.join().unwrap();
    // The spinners go on taking the lock once the waiter is done.
    spin_until("a triggered hold after the waiter", || triggered.load(Ordering::Relaxed) > 0);
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    assert_eq!(before_waiter, 0, "{before_waiter} triggered holds went before the waiting one");
}

#[test]
fn wait_watch_logs_after_the_first_deadline_then_periodically() {
    let start = 1_000;
    let mut w = WaitWatch::new(start);
    assert_eq!(w.due(start), None);
    assert_eq!(w.due(start + WAIT_FIRST_LOG_NS - 1), None);
    assert_eq!(w.due(start + WAIT_FIRST_LOG_NS), Some(WAIT_FIRST_LOG_NS));
    assert_eq!(w.due(start + WAIT_FIRST_LOG_NS + 1), None, "logged twice in a row");
    let second = start + WAIT_FIRST_LOG_NS + WAIT_LOG_EVERY_NS;
    assert_eq!(w.due(second - 1), None);
    assert_eq!(w.due(second + 5), Some(WAIT_FIRST_LOG_NS + WAIT_LOG_EVERY_NS + 5));
    assert_eq!(w.due(second + 6), None);
}
