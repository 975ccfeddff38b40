//! The device's side of a split virtqueue, written from the spec's device rules so it can check
//! the driver: it walks chains from the available ring and returns them through the used ring.

use core::ptr::{self, NonNull};
use core::sync::atomic::{fence, Ordering};

use crate::hal::Segment;
use crate::queue::QueueAddresses;
use crate::ring::{
    need_event, Descriptor, RingView, UsedElem, AVAIL_F_NO_INTERRUPT, DESC_F_NEXT, DESC_F_WRITE, USED_F_NO_NOTIFY,
};

/// A chain as the device sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Head descriptor index (what goes back in the used ring).
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Segment>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Segment>,
    /// The raw descriptors, in chain order.
    pub descriptors: Vec<Descriptor>,
}

impl Chain {
    /// Concatenated bytes of the readable buffers.
    pub fn read_all(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.readable {
            let start = out.len();
            out.resize(start + s.len as usize, 0);
            // SAFETY: TestHal addresses are host pointers to live buffers the driver handed
            // over; the driver does not write them while the chain is with the device.
            unsafe {
                ptr::copy_nonoverlapping(s.phys as usize as *const u8, out[start..].as_mut_ptr(), s.len as usize)
            };
        }
        out
    }

    /// Writes `bytes` across the writable buffers; returns how many were written.
    pub fn write_all(&self, bytes: &[u8]) -> u32 {
        let mut done = 0usize;
        for s in &self.writable {
            if done == bytes.len() {
                break;
            }
            let n = (s.len as usize).min(bytes.len() - done);
            // SAFETY: as in read_all; the device owns writable buffers until it returns them.
            unsafe { ptr::copy_nonoverlapping(bytes[done..].as_ptr(), s.phys as usize as *mut u8, n) };
            done += n;
        }
        done as u32
    }
}

/// The device side of one queue.
pub struct DeviceQueue {
    ring: RingView,
    last_avail: u16,
    used_idx: u16,
    event_idx: bool,
}

impl DeviceQueue {
    /// Attaches to the rings at `addresses` (identity-mapped), starting from whatever indices
    /// the memory holds (0 after a reset; the test hook can start them elsewhere).
    ///
    /// # Safety
    ///
    /// `addresses` describe live rings of `size` entries that outlive this value.
    pub unsafe fn attach(addresses: QueueAddresses, size: u16, event_idx: bool) -> Self {
        let p = |a: u64| NonNull::new(a as usize as *mut u8).expect("ring address");
        // SAFETY: forwarded from this function's contract.
        let ring = unsafe { RingView::new(p(addresses.desc), p(addresses.driver), p(addresses.device), size) };
        let last_avail = ring.avail_idx().load(Ordering::Relaxed);
        let used_idx = ring.used_idx().load(Ordering::Relaxed);
        Self { ring, last_avail, used_idx, event_idx }
    }

    /// Whether the driver published chains the device has not taken.
    pub fn has_available(&self) -> bool {
        // Acquire: pairs with the driver's Release fence before its avail.idx store, so the
        // entries below it are visible once we see the index.
        self.ring.avail_idx().load(Ordering::Acquire) != self.last_avail
    }

    /// Takes the next available chain, if any.
    pub fn pop(&mut self) -> Option<Chain> {
        if !self.has_available() {
            return None;
        }
        let size = self.ring.size();
        let head = self.ring.avail_ring(self.last_avail).load(Ordering::Relaxed);
        assert!(head < size, "avail entry {head} out of range");
        self.last_avail = self.last_avail.wrapping_add(1);
        let mut chain = Chain { head, readable: Vec::new(), writable: Vec::new(), descriptors: Vec::new() };
        let mut i = head;
        loop {
            assert!(chain.descriptors.len() < size as usize, "descriptor loop");
            // SAFETY: the driver wrote this descriptor before its Release publish, which the
            // Acquire in has_available ordered before this read; the index is in range.
            let d = unsafe { ptr::read(self.ring.desc(i)) };
            chain.descriptors.push(d);
            let seg = Segment { phys: d.addr, len: d.len };
            if d.flags & DESC_F_WRITE != 0 {
                chain.writable.push(seg);
            } else {
                assert!(chain.writable.is_empty(), "readable after writable (2.7.4.2)");
                chain.readable.push(seg);
            }
            if d.flags & DESC_F_NEXT == 0 {
                break;
            }
            i = d.next;
            assert!(i < size, "next {i} out of range");
        }
        Some(chain)
    }

    /// Returns chain `head` with `len` bytes written (2.7.8.2: element first, then idx).
    pub fn push(&mut self, head: u16, len: u32) {
        // SAFETY: the slot at used_idx belongs to the device until it publishes past it.
        unsafe { ptr::write(self.ring.used_elem(self.used_idx), UsedElem { id: head as u32, len }) };
        self.used_idx = self.used_idx.wrapping_add(1);
        // Release: the element (and the response bytes written before it) become visible no
        // later than the new idx.
        self.ring.used_idx().store(self.used_idx, Ordering::Release);
    }

    /// A hostile device: writes any id and length into the next used slot and publishes it.
    pub fn push_raw(&mut self, id: u32, len: u32) {
        // SAFETY: as in push: the slot belongs to the device until it publishes past it.
        unsafe { ptr::write(self.ring.used_elem(self.used_idx), UsedElem { id, len }) };
        self.used_idx = self.used_idx.wrapping_add(1);
        self.ring.used_idx().store(self.used_idx, Ordering::Release);
    }

    /// A hostile device: publishes any used.idx (an index jump), over whatever the slots hold.
    pub fn publish_used_idx(&mut self, idx: u16) {
        self.used_idx = idx;
        self.ring.used_idx().store(idx, Ordering::Release);
    }

    /// A hostile device: scribbles over used slot `slot` without publishing anything.
    pub fn scribble_used_slot(&self, slot: u16, id: u32, len: u32) {
        // SAFETY: in bounds (taken modulo the size); the element is plain memory the driver reads
        // only for published positions, and this single-threaded use races with no read.
        unsafe { ptr::write(self.ring.used_elem(slot), UsedElem { id, len }) };
    }

    /// Would the device interrupt after moving used.idx from `old` to the current value?
    pub fn wants_interrupt(&self, old: u16) -> bool {
        // Full fence: used.idx store -> used_event / flags load (store->load, 2.7.7.2).
        fence(Ordering::SeqCst);
        if self.event_idx {
            need_event(self.ring.used_event().load(Ordering::Relaxed), self.used_idx, old)
        } else {
            self.ring.avail_flags().load(Ordering::Relaxed) & AVAIL_F_NO_INTERRUPT == 0
        }
    }

    /// Waits (bounded by `limit`, or by yields under Miri, whose clock runs with the program)
    /// until the driver's `used_event` is no longer `at`: the driver consumed the entry placed at
    /// `at` and asked for the next one. Without EVENT_IDX `used_event` means nothing: no wait.
    pub fn wait_for_used_event_past(&self, at: u16, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        let mut yields = 0u32;
        while self.event_idx && self.ring.used_event().load(Ordering::Relaxed) == at {
            yields += 1;
            if (cfg!(miri) && yields > 20_000) || (!cfg!(miri) && start.elapsed() > limit) {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Sets or clears VIRTQ_USED_F_NO_NOTIFY.
    pub fn set_no_notify(&self, on: bool) {
        self.ring.used_flags().store(if on { USED_F_NO_NOTIFY } else { 0 }, Ordering::Relaxed);
    }

    /// Writes `avail_event` ("notify me when avail.idx passes this").
    pub fn set_avail_event(&self, event: u16) {
        self.ring.avail_event().store(event, Ordering::Relaxed);
    }

    /// The device's next avail position.
    pub fn last_avail(&self) -> u16 {
        self.last_avail
    }

    /// The device's used.idx.
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Going to sleep: ask for a notification at the next available chain (2.7.10), then
    /// re-check with a full fence between. Returns true if work arrived meanwhile (don't sleep).
    pub fn arm_notification(&self) -> bool {
        if self.event_idx {
            self.set_avail_event(self.last_avail);
        } else {
            self.set_no_notify(false);
        }
        // Full fence: our avail_event/flags store -> our avail.idx load. Pairs with the driver's
        // full fence between its avail.idx store and its avail_event/flags load: at least one
        // side sees the other.
        fence(Ordering::SeqCst);
        self.has_available()
    }

    /// Busy: ask the driver not to notify (flag mode only; event-idx mode just leaves
    /// avail_event behind).
    pub fn disarm_notification(&self) {
        if !self.event_idx {
            self.set_no_notify(true);
        }
    }
}
