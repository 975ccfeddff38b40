//! A device running in its own thread: sleeps until notified, serves every available chain with
//! a handler, and sleeps again following the spec's "arm, full fence, re-check" rule. It sleeps
//! without a timeout, so a notification the driver wrongly suppressed hangs the device and the
//! driver's bounded poll fails the test.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::device_queue::{Chain, DeviceQueue};

/// The QueueNotify register of a simulated device: a counter and a condition variable.
#[derive(Default)]
pub struct Doorbell {
    rings: Mutex<u64>,
    cv: Condvar,
}

impl Doorbell {
    /// Driver side: notify.
    pub fn ring(&self) {
        *self.rings.lock().unwrap() += 1;
        self.cv.notify_all();
    }

    /// Device side: wait until the count passes `seen`; returns the new count.
    pub fn wait_past(&self, seen: u64) -> u64 {
        let mut rings = self.rings.lock().unwrap();
        while *rings == seen {
            rings = self.cv.wait(rings).unwrap();
        }
        *rings
    }

    /// Number of notifications so far.
    pub fn count(&self) -> u64 {
        *self.rings.lock().unwrap()
    }
}

/// The device's interrupt line: InterruptStatus bits and a count of interrupts raised.
#[derive(Default)]
pub struct IrqLine {
    /// InterruptStatus (bit 0: used buffer).
    pub status: AtomicU32,
    /// Interrupts raised (used-buffer notifications sent to the driver).
    pub raised: AtomicU64,
}

impl IrqLine {
    fn raise_used_buffer(&self) {
        self.status.fetch_or(1, Ordering::AcqRel);
        self.raised.fetch_add(1, Ordering::Relaxed);
    }
}

/// When the device reads `used_event` for its interrupt decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterruptTiming {
    /// Right after publishing the used entry (fence, read, decide), like QEMU.
    #[default]
    Prompt,
    /// With EVENT_IDX, only once the driver has consumed the entry (its `used_event` moved past
    /// it), or after 10 s: a slow device, still within the spec, which only orders the read
    /// after the publish (2.7.7.2). It then finds `used_event` already past the entry and raises
    /// nothing: what Miri's scheduling produced for some completions. Without EVENT_IDX, prompt.
    Late,
}

/// Handle of a running simulated device.
pub struct DeviceThread {
    stop: Arc<AtomicBool>,
    doorbell: Arc<Doorbell>,
    served: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl DeviceThread {
    /// Runs `queue` on a new thread; `handler` serves each chain and returns bytes written.
    pub fn spawn(
        queue: DeviceQueue,
        doorbell: Arc<Doorbell>,
        irq: Arc<IrqLine>,
        handler: impl FnMut(&Chain) -> u32 + Send + 'static,
    ) -> Self {
        Self::spawn_with(queue, doorbell, irq, InterruptTiming::Prompt, handler)
    }

    /// [`DeviceThread::spawn`] with a chosen [`InterruptTiming`].
    pub fn spawn_with(
        mut queue: DeviceQueue,
        doorbell: Arc<Doorbell>,
        irq: Arc<IrqLine>,
        timing: InterruptTiming,
        mut handler: impl FnMut(&Chain) -> u32 + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (stop2, bell, served2) = (stop.clone(), doorbell.clone(), served.clone());
        let handle = std::thread::spawn(move || {
            let mut seen = 0;
            loop {
                queue.disarm_notification();
                while let Some(chain) = queue.pop() {
                    let len = handler(&chain);
                    let old = queue.used_idx();
                    queue.push(chain.head, len);
                    served2.fetch_add(1, Ordering::Relaxed);
                    if timing == InterruptTiming::Late {
                        queue.wait_for_used_event_past(old, std::time::Duration::from_secs(10));
                    }
                    if queue.wants_interrupt(old) {
                        irq.raise_used_buffer();
                    }
                }
                if queue.arm_notification() {
                    continue;
                }
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                seen = bell.wait_past(seen);
            }
        });
        Self { stop, doorbell, served, handle: Some(handle) }
    }

    /// Chains served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops and joins the device; returns the chains it served.
    pub fn stop(mut self) -> u64 {
        self.shutdown();
        self.served()
    }

    fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stop.store(true, Ordering::Release);
            self.doorbell.ring();
            h.join().expect("device thread panicked");
        }
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}
