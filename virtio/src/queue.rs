//! The split virtqueue, driver side (virtio 1.2, 2.7): chains of descriptors go out through the
//! available ring, completions come back through the used ring.
//!
//! Every ordering decision sits next to the access it orders and goes through [`DmaFence`], so
//! it is named, commented with its spec rule and counted:
//!
//! | where                                        | barrier (aarch64 / host)        | spec        |
//! |----------------------------------------------|---------------------------------|-------------|
//! | descriptors + avail entry -> `avail.idx`     | `dmb oshst` / Release fence     | 2.7.13.3.1  |
//! | `avail.idx` -> `used.flags`/`avail_event`    | `dsb sy` / SeqCst fence         | 2.7.13.4.1  |
//! | every poll of `used.idx` -> used element     | `dmb oshld` / Acquire (strategy)| 2.7.14      |
//! | `used_event`/flags re-arm -> `used.idx` re-check | `dsb sy` / SeqCst fence     | 2.7.14 note |
//!
//! (`fence.rs` has the Linux name of each barrier and why it is outer-shareable.) Why the read
//! barrier sits *after* the `used.idx` load: a barrier before a load (`virtio_rmb()` before a
//! volatile read of `used.idx`, and nothing after it) orders nothing about the value that load
//! returns, so the used element read that follows would not be ordered after the device's
//! writes.
//!
//! Re-arming `used_event` after every completion taken with interrupts on is followed by a full
//! barrier, as Linux's `virtqueue_get_buf` does with `virtio_store_mb`: the next poll of
//! `used.idx` is the re-check, and a driver that finds nothing there sleeps until the device
//! interrupts. Without the barrier, Miri (seed 7 of `interrupt_driven_driver_never_sleeps_...`)
//! found the device reading the old `used_event` and the driver the old `used.idx`: no interrupt
//! for a completion the driver was waiting for.

use alloc::vec;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::Ordering;

use crate::fence::{DmaFence, FenceCounts, FenceStrategy};
use crate::hal::{Direction, DmaRegion, Hal, PhysAddr, Segment};
use crate::ring::{
    need_event, Descriptor, RingLayout, RingView, AVAIL_F_NO_INTERRUPT, DESC_F_NEXT, DESC_F_WRITE, USED_F_NO_NOTIFY,
};
use crate::{Error, Result};

/// Identifies one submitted chain (its head descriptor) until it comes back used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(pub u16);

/// A completed chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The chain [`VirtQueue::submit`] returned.
    pub token: Token,
    /// Bytes the device wrote into the chain's writable buffers.
    pub len: u32,
}

/// Physical addresses the transport hands to the device (QueueDesc/QueueDriver/QueueDevice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAddresses {
    /// Descriptor table.
    pub desc: PhysAddr,
    /// Available ring ("driver area").
    pub driver: PhysAddr,
    /// Used ring ("device area").
    pub device: PhysAddr,
}

/// Per-queue counters, for `[VIRTIO PERF]` lines and the fence experiment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Barriers issued, by kind.
    pub fences: FenceCounts,
    /// Chains submitted.
    pub submitted: u64,
    /// Chains that came back used.
    pub completions: u64,
    /// Polls of `used.idx` that found nothing new.
    pub spins: u64,
    /// Waits that ran out of their spin budget.
    pub timeouts: u64,
    /// Notification checks that said "notify the device".
    pub notifications_sent: u64,
    /// Notification checks the device suppressed (NO_NOTIFY flag or EVENT_IDX).
    pub notifications_suppressed: u64,
}

impl QueueStats {
    /// Difference from an earlier snapshot of the same queue.
    pub fn since(&self, earlier: &QueueStats) -> QueueStats {
        QueueStats {
            fences: self.fences.since(&earlier.fences),
            submitted: self.submitted.wrapping_sub(earlier.submitted),
            completions: self.completions.wrapping_sub(earlier.completions),
            spins: self.spins.wrapping_sub(earlier.spins),
            timeouts: self.timeouts.wrapping_sub(earlier.timeouts),
            notifications_sent: self.notifications_sent.wrapping_sub(earlier.notifications_sent),
            notifications_suppressed: self.notifications_suppressed.wrapping_sub(earlier.notifications_suppressed),
        }
    }
}

/// Marks the end of the free list.
const NONE: u16 = u16::MAX;

/// A split virtqueue in DMA memory from `H`.
///
/// Dropping the queue frees its rings: reset the device first, so it no longer reads them.
pub struct VirtQueue<H: Hal> {
    region: DmaRegion<H>,
    ring: RingView,
    layout: RingLayout,
    queue_index: u16,
    /// Driver-private copy of each descriptor's `next` link. The device only reads descriptors,
    /// but the free list must not depend on memory another agent can write.
    links: Vec<u16>,
    /// For a head in flight: how many descriptors its chain holds; 0 when not a live head.
    chain_len: Vec<u16>,
    /// For a head in flight: the bytes its device-writable buffers hold (the most a used entry
    /// may report).
    chain_writable: Vec<u64>,
    /// Chains submitted and not yet returned: the most used entries the device can publish.
    in_flight: u16,
    free_head: u16,
    num_free: u16,
    /// The value of `avail.idx` the driver last published (only the driver writes it).
    avail_idx: u16,
    /// `avail.idx` at the last notification decision: the "old" of `need_event`.
    kicked_avail_idx: u16,
    /// Next used-ring position to consume.
    last_used_idx: u16,
    event_idx: bool,
    used_notifications: bool,
    fence: DmaFence,
    stats: QueueStats,
}

impl<H: Hal> VirtQueue<H> {
    /// Allocates and initialises queue `queue_index` with `size` descriptors (a power of two).
    /// `event_idx` says whether VIRTIO_F_EVENT_IDX was negotiated.
    pub fn new(queue_index: u16, size: u16, strategy: FenceStrategy, event_idx: bool) -> Result<Self> {
        if size == 0 || !size.is_power_of_two() || size == u16::MAX {
            return Err(Error::InvalidQueueSize { requested: size, max: 32768 });
        }
        if strategy.skips_fence_on_empty_polls() {
            log::warn!(
                "virtio queue {queue_index}: fence strategy '{}': no barrier on empty polls, the \
                 read barrier only after progress (an experiment)",
                strategy.name()
            );
        }
        let layout = RingLayout::new(size);
        let region = DmaRegion::<H>::new(layout.total, Direction::Both)?;
        let base = region.vaddr();
        // SAFETY: the region holds layout.total zeroed bytes, page aligned, owned by this queue
        // for its whole life; the layout puts the descriptor table at a 16-aligned offset, the
        // available ring at an even one and the used ring on a page boundary.
        let ring = unsafe { RingView::new(base, base.add(layout.avail), base.add(layout.used), size) };
        let links = (1..=size).map(|i| if i == size { NONE } else { i }).collect();
        Ok(Self {
            region,
            ring,
            layout,
            queue_index,
            links,
            chain_len: vec![0; size as usize],
            chain_writable: vec![0; size as usize],
            in_flight: 0,
            free_head: 0,
            num_free: size,
            avail_idx: 0,
            kicked_avail_idx: 0,
            last_used_idx: 0,
            event_idx,
            used_notifications: true,
            fence: DmaFence::new(strategy),
            stats: QueueStats::default(),
        })
    }

    /// The queue's index on its device.
    pub fn index(&self) -> u16 {
        self.queue_index
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// Descriptors not in any chain.
    pub fn num_free(&self) -> u16 {
        self.num_free
    }

    /// The fence strategy this queue polls with.
    pub fn fence_strategy(&self) -> FenceStrategy {
        self.fence.strategy()
    }

    /// Where the rings are, for the transport's queue registers.
    pub fn addresses(&self) -> QueueAddresses {
        let base = self.region.paddr();
        QueueAddresses {
            desc: base + self.layout.desc as u64,
            driver: base + self.layout.avail as u64,
            device: base + self.layout.used as u64,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        QueueStats { fences: self.fence.counts(), ..self.stats }
    }

    /// Whether `token` is submitted and not yet returned.
    pub fn is_outstanding(&self, token: Token) -> bool {
        self.chain_len.get(token.0 as usize).is_some_and(|&n| n != 0)
    }

    /// Puts a chain of `readable` (device reads) then `writable` (device writes) buffers on the
    /// available ring and publishes it. The device is not notified: call
    /// [`VirtQueue::should_notify`] (after a batch, if you like) and notify when it says so.
    pub fn submit(&mut self, readable: &[Segment], writable: &[Segment]) -> Result<Token> {
        let needed = readable.len() + writable.len();
        if needed == 0 || readable.iter().chain(writable).any(|s| s.len == 0) {
            return Err(Error::EmptyBuffer);
        }
        if needed > self.num_free as usize {
            return Err(Error::QueueFull { needed, free: self.num_free });
        }
        let head = self.free_head;
        let mut current = head;
        let segments = readable.iter().map(|s| (s, 0)).chain(writable.iter().map(|s| (s, DESC_F_WRITE)));
        for (n, (segment, write_flag)) in segments.enumerate() {
            let next = self.links[current as usize];
            let last = n + 1 == needed;
            let descriptor = Descriptor {
                addr: segment.phys,
                len: segment.len,
                flags: write_flag | if last { 0 } else { DESC_F_NEXT },
                next: if last { 0 } else { next },
            };
            // SAFETY: `current` came off the free list, so the device does not own this
            // descriptor (it was returned used, or never submitted) and nothing else writes it;
            // the pointer is in-bounds and aligned (RingView).
            unsafe { ptr::write(self.ring.desc(current), descriptor) };
            if !last {
                current = next;
            }
        }
        self.free_head = self.links[current as usize];
        self.num_free -= needed as u16;
        self.chain_len[head as usize] = needed as u16;
        self.chain_writable[head as usize] = writable.iter().map(|s| s.len as u64).sum();
        self.in_flight += 1;

        // The avail ring entry is a plain store: the device reads it only after it has seen the
        // new avail.idx, which the write barrier of the publish below orders after this store.
        self.ring.avail_ring(self.avail_idx).store(head, Ordering::Relaxed);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // Write barrier, then the store: descriptors and the ring entry above become visible no
        // later than the idx.
        self.fence.publish_avail_idx(self.ring.avail_idx(), self.avail_idx);
        self.stats.submitted += 1;
        Ok(Token(head))
    }

    /// Decides whether the device wants an available-buffer notification for what was published
    /// since the last decision (VIRTQ_USED_F_NO_NOTIFY, or `avail_event` with EVENT_IDX), and
    /// counts the answer. Call after [`VirtQueue::submit`]; notify the transport when true.
    pub fn should_notify(&mut self) -> bool {
        let old = self.kicked_avail_idx;
        let new = self.avail_idx;
        self.kicked_avail_idx = new;
        // Full barrier, then the load: the avail.idx store must be ordered before it, or both
        // sides can miss each other (store->load; see DmaFence::read_suppression).
        let notify = if self.event_idx {
            need_event(self.fence.read_suppression(self.ring.avail_event()), new, old)
        } else {
            self.fence.read_suppression(self.ring.used_flags()) & USED_F_NO_NOTIFY == 0
        };
        if notify {
            self.stats.notifications_sent += 1;
        } else {
            self.stats.notifications_suppressed += 1;
        }
        notify
    }

    /// One non-blocking poll: returns the next used chain, if the device has returned one, and
    /// puts its descriptors back on the free list.
    pub fn try_pop_used(&mut self) -> Result<Option<Used>> {
        let used_idx = self.fence.poll_used_idx(self.ring.used_idx(), self.last_used_idx);
        if used_idx == self.last_used_idx {
            self.stats.spins += 1;
            return Ok(None);
        }
        // A device returns each available chain once: more pending entries than chains in
        // flight means used.idx jumped over slots that hold no completion (stale or garbage).
        // Consuming them could recycle a chain the device still owns, so stop here.
        let pending = used_idx.wrapping_sub(self.last_used_idx);
        if pending > self.in_flight {
            return Err(Error::UsedIndexJump { used_idx, consumed: self.last_used_idx, in_flight: self.in_flight });
        }
        // SAFETY: the element at last_used_idx was written by the device before it published a
        // used.idx past it; poll_used_idx ordered that publish before this read (its read
        // barrier after the load), and the device does not rewrite the slot until the driver makes it
        // available again. The pointer is in-bounds and aligned (RingView).
        let elem = unsafe { ptr::read(self.ring.used_elem(self.last_used_idx)) };
        self.last_used_idx = self.last_used_idx.wrapping_add(1);
        if self.event_idx {
            if self.used_notifications {
                // Interrupts on: ask for one at the next completion, then a full barrier so the
                // next poll of used.idx is a valid re-check (see the module doc): a completion
                // the device publishes meanwhile is either seen by that poll or interrupts.
                self.fence.store_then_mb(self.ring.used_event(), self.used_event_target());
            } else {
                // Off: keep used_event half the index space away so the device never crosses
                // it. Relaxed and no barrier: a late view costs at most a spurious interrupt.
                self.ring.used_event().store(self.used_event_target(), Ordering::Relaxed);
            }
        }
        let head = elem.id;
        if head >= self.layout.size as u32 || self.chain_len[head as usize] == 0 {
            return Err(Error::BadUsedId(head));
        }
        let writable = self.chain_writable[head as usize];
        self.recycle(head as u16);
        self.stats.completions += 1;
        // 2.7.8.1: the device MUST have written at least `len` bytes, so `len` never exceeds the
        // writable buffers; a caller trusting a larger one would read past its buffer.
        if elem.len as u64 > writable {
            return Err(Error::BadUsedLen { id: head, len: elem.len, writable });
        }
        Ok(Some(Used { token: Token(head as u16), len: elem.len }))
    }

    /// Polls until a chain comes back or `spin_budget` empty polls have passed, calling `idle`
    /// between polls (a spin hint, or `wfi` when completing by interrupt). Never hangs: past the
    /// budget it counts a timeout and returns [`Error::Timeout`].
    pub fn poll_used(&mut self, spin_budget: u64, mut idle: impl FnMut()) -> Result<Used> {
        let mut spins = 0u64;
        loop {
            if let Some(used) = self.try_pop_used()? {
                return Ok(used);
            }
            spins += 1;
            if spins > spin_budget {
                self.stats.timeouts += 1;
                return Err(Error::Timeout { spins });
            }
            idle();
        }
    }

    /// Turns used-buffer notifications (interrupts) on or off for this queue (2.7.7): the
    /// NO_INTERRUPT flag, or `used_event` with EVENT_IDX. Returns whether completions are
    /// already pending, in which case no interrupt will come for them: poll now.
    pub fn set_used_notifications(&mut self, enabled: bool) -> bool {
        self.used_notifications = enabled;
        // Store, then a full barrier: the re-enable must be ordered before the used.idx
        // re-check below, or a completion published between the two goes unseen by both sides.
        if self.event_idx {
            // With EVENT_IDX the device ignores the flag; "off" parks used_event out of reach.
            self.fence.store_then_mb(self.ring.used_event(), self.used_event_target());
        } else {
            let flags = if enabled { 0 } else { AVAIL_F_NO_INTERRUPT };
            self.fence.store_then_mb(self.ring.avail_flags(), flags);
        }
        self.ring.used_idx().load(Ordering::Relaxed) != self.last_used_idx
    }

    /// The `used_event` value for the current notification setting (EVENT_IDX only).
    fn used_event_target(&self) -> u16 {
        if self.used_notifications {
            self.last_used_idx
        } else {
            self.last_used_idx.wrapping_add(0x8000)
        }
    }

    /// Returns a completed chain's descriptors to the free list.
    fn recycle(&mut self, head: u16) {
        let n = self.chain_len[head as usize];
        self.chain_len[head as usize] = 0;
        self.in_flight -= 1;
        let mut tail = head;
        for _ in 1..n {
            tail = self.links[tail as usize];
        }
        self.links[tail as usize] = self.free_head;
        self.free_head = head;
        self.num_free += n;
    }

    /// Test hook: start all ring indices at `idx` instead of 0, so a short test (and Miri) can
    /// cross the u16 wrap. Only valid before anything was submitted.
    #[cfg(test)]
    pub(crate) fn start_indices_at(&mut self, idx: u16) {
        assert_eq!(self.stats.submitted, 0);
        self.avail_idx = idx;
        self.kicked_avail_idx = idx;
        self.last_used_idx = idx;
        self.ring.avail_idx().store(idx, Ordering::Relaxed);
        self.ring.used_idx().store(idx, Ordering::Relaxed);
    }
}

// SAFETY: the queue owns its DMA region and the shadow state; moving it to another core moves
// all of it. It is not Sync: all methods take &mut self.
unsafe impl<H: Hal> Send for VirtQueue<H> {}

#[cfg(test)]
mod tests;
