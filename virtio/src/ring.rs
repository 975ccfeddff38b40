//! The split virtqueue's memory layout (virtio 1.2, 2.7): descriptor table, available ring and
//! used ring, and a raw view of them shared by the driver queue and the host-test device.
//!
//! Fields that both sides touch while the other may be running are atomics (`AtomicU16`): these
//! are rings in shared memory, not MMIO, so volatile is the wrong tool and atomics give Rust a
//! defined meaning for the concurrent access. Descriptors and used elements are plain memory,
//! published by a Release store of an index and read after the matching Acquire.

use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::AtomicU16;

use static_assertions::const_assert_eq;

// virtio rings are little-endian; tricolor runs little-endian on aarch64 and on the host.
#[cfg(not(target_endian = "little"))]
compile_error!("the virtqueue code assumes a little-endian CPU (virtio 1.x rings are LE)");

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer (otherwise it reads it).
pub const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver does not want used-buffer notifications.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `VIRTQ_USED_F_NO_NOTIFY`: the device does not want available-buffer notifications.
pub const USED_F_NO_NOTIFY: u16 = 1;

/// `struct virtq_desc` (2.7.5).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// `DESC_F_*`.
    pub flags: u16,
    /// Next descriptor in the chain when `flags & DESC_F_NEXT`.
    pub next: u16,
}
const_assert_eq!(size_of::<Descriptor>(), 16);

/// `struct virtq_used_elem` (2.7.8).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsedElem {
    /// Head descriptor index of the completed chain (u32 on the wire).
    pub id: u32,
    /// Bytes the device wrote into the chain's writable buffers.
    pub len: u32,
}
const_assert_eq!(size_of::<UsedElem>(), 8);

/// Byte offsets of the three parts inside one DMA allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Queue size (descriptors; a power of two).
    pub size: u16,
    /// Offset of the descriptor table (16-byte aligned).
    pub desc: usize,
    /// Offset of the available ring (2-byte aligned).
    pub avail: usize,
    /// Offset of the used ring (4-byte aligned; page aligned here, as the legacy layout was).
    pub used: usize,
    /// Bytes in all.
    pub total: usize,
}

impl RingLayout {
    /// The layout for a queue of `size` descriptors.
    pub const fn new(size: u16) -> Self {
        let n = size as usize;
        let desc = 0;
        let avail = desc + n * size_of::<Descriptor>();
        // flags, idx, ring[n], used_event
        let avail_bytes = 2 + 2 + 2 * n + 2;
        let used = (avail + avail_bytes).next_multiple_of(tricolor_abi::PAGE_SIZE);
        // flags, idx, ring[n], avail_event
        let used_bytes = 2 + 2 + size_of::<UsedElem>() * n + 2;
        Self { size, desc, avail, used, total: used + used_bytes }
    }
}

/// Raw pointers to one queue's rings. Built from the three base addresses a device is given, so
/// the driver (from its allocation) and a simulated device (from the transport registers) see
/// the same memory the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingView {
    desc: NonNull<Descriptor>,
    avail: NonNull<u8>,
    used: NonNull<u8>,
    size: u16,
}

// SAFETY: the view is a set of addresses; every access through it is either atomic or ordered by
// the publish/consume protocol documented at each use, so sharing it between the driver and a
// (simulated) device thread is the whole point.
unsafe impl Send for RingView {}
// SAFETY: as above.
unsafe impl Sync for RingView {}

impl RingView {
    /// # Safety
    ///
    /// The three pointers address a descriptor table of `size` entries (16-byte aligned), an
    /// available ring and a used ring for `size` entries (2- and 4-byte aligned), valid for
    /// reads and writes for as long as the view is used.
    pub(crate) unsafe fn new(desc: NonNull<u8>, avail: NonNull<u8>, used: NonNull<u8>, size: u16) -> Self {
        debug_assert!(size.is_power_of_two());
        debug_assert_eq!(desc.as_ptr() as usize % align_of::<Descriptor>().max(16), 0);
        debug_assert_eq!(avail.as_ptr() as usize % 2, 0);
        debug_assert_eq!(used.as_ptr() as usize % 4, 0);
        Self { desc: desc.cast(), avail, used, size }
    }

    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    fn slot(&self, i: u16) -> usize {
        (i & (self.size - 1)) as usize
    }

    /// Pointer to descriptor `i` (taken modulo the queue size).
    pub(crate) fn desc(&self, i: u16) -> *mut Descriptor {
        // SAFETY: slot() < size, so the offset stays inside the table `new` was promised.
        unsafe { self.desc.as_ptr().add(self.slot(i)) }
    }

    fn avail_u16(&self, index: usize) -> &AtomicU16 {
        // SAFETY: callers pass index <= size + 2 (flags, idx, ring[size], used_event), all
        // inside the available ring; 2-byte aligned as `new` requires; AtomicU16 has the layout
        // of u16 and the memory lives as long as the view (the `new` contract).
        unsafe { &*self.avail.as_ptr().add(2 * index).cast::<AtomicU16>() }
    }

    fn used_u16(&self, byte_offset: usize) -> &AtomicU16 {
        // SAFETY: callers pass offsets of fields inside the used ring (flags 0, idx 2,
        // avail_event 4 + 8*size); even offsets from a 4-byte-aligned base are 2-byte aligned.
        unsafe { &*self.used.as_ptr().add(byte_offset).cast::<AtomicU16>() }
    }

    /// `avail.flags` (driver writes, device reads).
    pub(crate) fn avail_flags(&self) -> &AtomicU16 {
        self.avail_u16(0)
    }
    /// `avail.idx` (driver publishes, device consumes).
    pub(crate) fn avail_idx(&self) -> &AtomicU16 {
        self.avail_u16(1)
    }
    /// `avail.ring[i]`.
    pub(crate) fn avail_ring(&self, i: u16) -> &AtomicU16 {
        self.avail_u16(2 + self.slot(i))
    }
    /// `avail.used_event` (VIRTIO_F_EVENT_IDX: "interrupt me when used.idx passes this").
    pub(crate) fn used_event(&self) -> &AtomicU16 {
        self.avail_u16(2 + self.size as usize)
    }
    /// `used.flags` (device writes, driver reads).
    pub(crate) fn used_flags(&self) -> &AtomicU16 {
        self.used_u16(0)
    }
    /// `used.idx` (device publishes, driver consumes).
    pub(crate) fn used_idx(&self) -> &AtomicU16 {
        self.used_u16(2)
    }
    /// Pointer to `used.ring[i]`.
    pub(crate) fn used_elem(&self, i: u16) -> *mut UsedElem {
        // SAFETY: slot() < size: inside the used ring's element array (offset 4, 4-aligned).
        unsafe { self.used.as_ptr().add(4).cast::<UsedElem>().add(self.slot(i)) }
    }
    /// `used.avail_event` (VIRTIO_F_EVENT_IDX: "notify me when avail.idx passes this").
    pub(crate) fn avail_event(&self) -> &AtomicU16 {
        self.used_u16(4 + size_of::<UsedElem>() * self.size as usize)
    }
}

/// `vring_need_event` (virtio 1.2, 2.7.10.2 / 2.7.7.2): with event indices, has the index moved
/// from `old` to `new` across `event`? Computed in wrapping u16 arithmetic so it holds across the
/// 65535 -> 0 wrap: `new - event - 1 < new - old` counts positions mod 2^16.
pub const fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_spec_sizes() {
        let l = RingLayout::new(256);
        assert_eq!(l.desc, 0);
        assert_eq!(l.avail, 16 * 256);
        assert_eq!(l.used % tricolor_abi::PAGE_SIZE, 0);
        assert!(l.used >= l.avail + 6 + 2 * 256);
        assert_eq!(l.total, l.used + 6 + 8 * 256);
    }

    #[test]
    fn need_event_basic_and_across_wrap() {
        // Moved from 0 to 1 past event 0: notify.
        assert!(need_event(0, 1, 0));
        // Event still ahead: no.
        assert!(!need_event(5, 3, 0));
        // Batch 3..7 crosses event 5.
        assert!(need_event(5, 7, 3));
        // Batch 6..7 does not cross event 5 (already passed before old).
        assert!(!need_event(5, 7, 6));
        // Across the u16 wrap: 65534 -> 2 crosses event 65535 and event 0 and 1.
        for ev in [65535u16, 0, 1] {
            assert!(need_event(ev, 2, 65534), "event {ev}");
        }
        assert!(!need_event(2, 2, 65534));
        assert!(!need_event(65533, 2, 65534));
        // No movement never notifies.
        for ev in [0u16, 100, 65535] {
            assert!(!need_event(ev, 42, 42));
        }
    }

    #[test]
    fn need_event_matches_brute_force() {
        // Brute force on small windows everywhere on the circle, including the wrap.
        let starts = [0u16, 1, 100, 32767, 65000, 65530, 65535];
        for &old in &starts {
            for step in 0u16..20 {
                let new = old.wrapping_add(step);
                for d in 0u16..24 {
                    let event = old.wrapping_sub(2).wrapping_add(d);
                    // crossed iff event in [old, new)
                    let crossed = (0..step).any(|k| old.wrapping_add(k) == event);
                    assert_eq!(need_event(event, new, old), crossed, "{event} {new} {old}");
                }
            }
        }
    }
}
