//! A lock-free single-producer single-consumer byte ring: the UART's receive interrupt pushes, the
//! console task pops. Neither side ever waits for the other; a full ring drops the new byte and
//! counts it (an interrupt handler must not block, and typed input is not worth stalling for).
//!
//! `head` and `tail` count bytes ever pushed and popped (wrapping); the slot of count `n` is
//! `n % N`. `head - tail` is the fill level, so full (`N`) and empty (`0`) are told apart without
//! a spare slot.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A ring of `N` bytes (`N` a power of two).
pub struct ByteRing<const N: usize> {
    slots: UnsafeCell<[u8; N]>,
    /// Bytes pushed so far; written only by the producer.
    head: AtomicUsize,
    /// Bytes popped so far; written only by the consumer.
    tail: AtomicUsize,
    /// Bytes dropped because the ring was full; written only by the producer.
    dropped: AtomicUsize,
}

// SAFETY: the slots are shared between exactly one producer and one consumer (the `push`/`pop`
// contracts); a slot is written only while it is outside [tail, head) and read only while inside,
// and the Release/Acquire pairs on `head` and `tail` order those accesses (see `push` and `pop`).
unsafe impl<const N: usize> Sync for ByteRing<N> {}

impl<const N: usize> ByteRing<N> {
    const POWER_OF_TWO: () = assert!(N.is_power_of_two(), "ByteRing size must be a power of two");

    /// An empty ring.
    pub const fn new() -> Self {
        let () = Self::POWER_OF_TWO;
        Self {
            slots: UnsafeCell::new([0; N]),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// Appends `byte`; `false` (and the byte counted as dropped) if the ring is full.
    ///
    /// # Safety
    /// At most one context pushes at a time (the one producer: the UART interrupt handler, which
    /// does not nest).
    pub unsafe fn push(&self, byte: u8) -> bool {
        // Relaxed: only this (the producer) side writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store of `tail`, so its read of a slot it
        // has freed is complete before this side overwrites that slot.
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= N {
            // Relaxed: a statistic; only the producer writes it.
            self.dropped.store(self.dropped.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            return false;
        }
        // SAFETY: slot `head % N` is outside [tail, head), so the consumer does not read it until
        // the Release store below publishes it; only this producer writes slots.
        unsafe { (*self.slots.get())[head % N] = byte };
        // Release: the slot write above happens before the consumer's Acquire load sees the new
        // head and reads the slot.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Takes the oldest byte, if any.
    ///
    /// # Safety
    /// At most one context pops at a time (the one consumer: the console task).
    pub unsafe fn pop(&self) -> Option<u8> {
        // Relaxed: only this (the consumer) side writes `tail`.
        let tail = self.tail.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store of `head`: the slot's byte is visible.
        let head = self.head.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: slot `tail % N` is inside [tail, head): the producer wrote it before publishing
        // `head` and will not touch it again until `tail` moves past it below.
        let byte = unsafe { (*self.slots.get())[tail % N] };
        // Release: the read above happens before the producer's Acquire load of `tail` lets it
        // reuse the slot.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Some(byte)
    }

    /// Bytes waiting (a snapshot: either side may move meanwhile).
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot for statistics and idle checks, orders nothing.
        self.head.load(Ordering::Relaxed).wrapping_sub(self.tail.load(Ordering::Relaxed)).min(N)
    }

    /// Whether no byte is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes dropped because the ring was full.
    pub fn dropped(&self) -> usize {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_order_and_empty() {
        let ring = ByteRing::<4>::new();
        // SAFETY: one thread both produces and consumes, so there is one of each at a time.
        unsafe {
            assert_eq!(ring.pop(), None);
            assert!(ring.push(b'a') && ring.push(b'b'));
            assert_eq!(ring.len(), 2);
            assert_eq!(ring.pop(), Some(b'a'));
            assert_eq!(ring.pop(), Some(b'b'));
            assert_eq!(ring.pop(), None);
            assert!(ring.is_empty());
        }
    }

    #[test]
    fn full_ring_drops_and_counts_new_bytes_and_keeps_old_ones() {
        let ring = ByteRing::<4>::new();
        // SAFETY: one thread both produces and consumes.
        unsafe {
            for b in b"wxyz" {
                assert!(ring.push(*b));
            }
            assert!(!ring.push(b'!'));
            assert_eq!(ring.dropped(), 1);
            assert_eq!(ring.len(), 4);
            let got: Vec<u8> = core::iter::from_fn(|| ring.pop()).collect();
            assert_eq!(got, b"wxyz");
        }
    }

    #[test]
    fn wraps_around_many_times() {
        let ring = ByteRing::<8>::new();
        // SAFETY: one thread both produces and consumes.
        unsafe {
            for i in 0..1000u32 {
                assert!(ring.push(i as u8));
                assert!(ring.push((i + 1) as u8));
                assert_eq!(ring.pop(), Some(i as u8));
                assert_eq!(ring.pop(), Some((i + 1) as u8));
            }
        }
    }

    /// A producer thread and a consumer thread: every byte arrives once, in order, and a byte is
    /// lost only when the producer saw the ring full (and counted it).
    #[test]
    fn concurrent_producer_and_consumer_lose_nothing_unaccounted() {
        const BYTES: usize = 200_000;
        let ring = Arc::new(ByteRing::<16>::new());
        let producer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0..BYTES {
                    // SAFETY: the only producer.
                    if unsafe { ring.push(i as u8) } {
                        accepted.push(i as u8);
                    }
                }
                accepted
            })
        };
        let mut received = Vec::new();
        loop {
            // SAFETY: the only consumer.
            match unsafe { ring.pop() } {
                Some(b) => received.push(b),
                None if producer.is_finished() && ring.is_empty() => break,
                None => std::hint::spin_loop(),
            }
        }
        let accepted = producer.join().unwrap();
        assert_eq!(received, accepted, "bytes reordered, duplicated or lost");
        assert_eq!(accepted.len() + ring.dropped(), BYTES);
    }
}
