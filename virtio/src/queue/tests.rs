//! Split-virtqueue tests against the simulated device: stepwise (deterministic, Miri-friendly)
//! and threaded (a real concurrent device).

use std::sync::Arc;
use std::vec::Vec;

use super::*;
use crate::sim::{rng::Rng, DeviceQueue, DeviceThread, Doorbell, IrqLine, TestHal};

type Queue = VirtQueue<TestHal>;

/// Per-request DMA buffers: a readable request word and a writable response word each, in
/// Hal memory and touched only through raw pointers (as the device does), so no Rust reference
/// asserts exclusive access to memory the device is writing.
struct Buffers {
    region: crate::hal::DmaRegion<TestHal>,
}

impl Buffers {
    fn new(n: usize) -> Self {
        Self { region: crate::hal::DmaRegion::new(16 * n, crate::hal::Direction::Both).unwrap() }
    }
    fn word(&self, k: usize) -> *mut u64 {
        assert!(8 * (k + 1) <= self.region.len());
        // SAFETY: in bounds (checked above) of the live region.
        unsafe { self.region.vaddr().as_ptr().cast::<u64>().add(k) }
    }
    fn request(&mut self, i: usize, value: u64) -> Segment {
        // SAFETY: the request word is not with the device (its chain has completed or was never
        // submitted), so the driver may write it.
        unsafe { self.word(2 * i).write(value) };
        Segment { phys: self.word(2 * i) as u64, len: 8 }
    }
    fn response(&mut self, i: usize) -> Segment {
        Segment { phys: self.word(2 * i + 1) as u64, len: 8 }
    }
    fn read_response(&self, i: usize) -> u64 {
        // SAFETY: the device wrote this word before publishing the used entry the caller has
        // consumed (happens-before through the used.idx Acquire).
        unsafe { self.word(2 * i + 1).read() }
    }
}

fn attach(q: &Queue, event_idx: bool) -> DeviceQueue {
    // SAFETY: the queue's rings live as long as the test's queue, which outlives the device.
    unsafe { DeviceQueue::attach(q.addresses(), q.size(), event_idx) }
}

/// The "echo + 1" device: response = request + 1.
fn serve_echo(chain: &crate::sim::Chain) -> u32 {
    let req = chain.read_all();
    let value = u64::from_le_bytes(req[..8].try_into().unwrap());
    chain.write_all(&(value + 1).to_le_bytes())
}

#[test]
fn chain_descriptors_match_what_was_submitted() {
    let mut q = Queue::new(0, 8, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    let r = [Segment { phys: 0x1000, len: 24 }, Segment { phys: 0x2000, len: 16 }];
    let w = [Segment { phys: 0x3000, len: 408 }];
    let token = q.submit(&r, &w).unwrap();
    assert_eq!(q.num_free(), 5);
    let chain = dev.pop().expect("chain published");
    assert!(dev.pop().is_none());
    assert_eq!(chain.head, token.0);
    assert_eq!(chain.readable, r);
    assert_eq!(chain.writable, w);
    let flags: Vec<u16> = chain.descriptors.iter().map(|d| d.flags).collect();
    assert_eq!(flags, [DESC_F_NEXT, DESC_F_NEXT, DESC_F_WRITE]);
    dev.push(chain.head, 408);
    let used = q.try_pop_used().unwrap().unwrap();
    assert_eq!(used, Used { token, len: 408 });
    assert_eq!(q.num_free(), 8);
    assert!(!q.is_outstanding(token));
}

#[test]
fn free_list_recycles_out_of_order_completions() {
    let size = 16u16;
    let mut q = Queue::new(0, size, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    let mut rng = Rng::new(42);
    let mut pending: Vec<crate::sim::Chain> = Vec::new();
    let mut outstanding: Vec<(Token, usize)> = Vec::new();
    let rounds = if cfg!(miri) { 300 } else { 20_000 };
    for round in 0..rounds {
        // Submit a chain of 1..=4 descriptors if it fits, else expect QueueFull.
        let n = 1 + rng.below(4);
        let segs: Vec<Segment> = (0..n).map(|k| Segment { phys: 0x1000 * (k as u64 + 1), len: 8 }).collect();
        let (readable, writable) = segs.split_at(rng.below(n + 1));
        match q.submit(readable, writable) {
            Ok(token) => {
                outstanding.push((token, n));
                pending.push(dev.pop().expect("published"));
            }
            Err(Error::QueueFull { needed, free }) => {
                assert_eq!(needed, n);
                assert!((free as usize) < n);
            }
            Err(e) => panic!("round {round}: {e}"),
        }
        // No descriptor may belong to two outstanding chains.
        let mut owned = vec![false; size as usize];
        for chain in &pending {
            let mut i = chain.head;
            for d in &chain.descriptors {
                assert!(!owned[i as usize], "descriptor {i} in two chains");
                owned[i as usize] = true;
                i = d.next;
            }
        }
        let in_flight: usize = outstanding.iter().map(|&(_, n)| n).sum();
        assert_eq!(q.num_free() as usize, size as usize - in_flight);
        // Complete a random outstanding chain, in any order.
        if !pending.is_empty() && rng.below(2) == 0 {
            let chain = pending.swap_remove(rng.below(pending.len()));
            dev.push(chain.head, 0);
            let used = q.try_pop_used().unwrap().unwrap();
            assert_eq!(used.token.0, chain.head);
            outstanding.retain(|&(t, _)| t != used.token);
        }
    }
}

/// Submit/complete `count` requests one by one; checks every response and the wrap.
fn run_stepwise(strategy: FenceStrategy, size: u16, start: u16, count: u32) -> QueueStats {
    let mut q = Queue::new(0, size, strategy, false).unwrap();
    q.start_indices_at(start);
    let mut dev = attach(&q, false);
    let mut bufs = Buffers::new(1);
    for i in 0..count {
        let req = bufs.request(0, i as u64);
        let resp = bufs.response(0);
        let token = q.submit(&[req], &[resp]).unwrap();
        let chain = dev.pop().unwrap();
        let len = serve_echo(&chain);
        dev.push(chain.head, len);
        let used = q.poll_used(10, || {}).unwrap();
        assert_eq!(used.token, token);
        assert_eq!(bufs.read_response(0), i as u64 + 1);
    }
    assert_eq!(dev.last_avail(), start.wrapping_add(count as u16));
    assert_eq!(q.num_free(), size);
    q.stats()
}

#[test]
fn indices_wrap_past_u16_max_with_small_queue() {
    // More than 65536 requests through a 4-entry queue: avail.idx and used.idx wrap and the
    // ring slots are reused 17000+ times. Under Miri, start just below the wrap instead.
    let (start, count) = if cfg!(miri) { (65530, 20) } else { (0, 70_000) };
    for strategy in FenceStrategy::ALL {
        let stats = run_stepwise(strategy, 4, start, count);
        assert_eq!(stats.completions, count as u64);
        assert_eq!(stats.fences.release, count as u64, "{strategy:?}");
    }
}

#[test]
fn fence_counts_follow_the_strategy() {
    // One request, answered before the driver polls: a single poll sees it.
    for strategy in FenceStrategy::ALL {
        let s = run_stepwise(strategy, 4, 0, 1);
        let f = s.fences;
        match strategy {
            FenceStrategy::Acquire => assert_eq!((f.acquire, f.full), (1, 0)),
            FenceStrategy::SeqCst => assert_eq!((f.acquire, f.full), (0, 1)),
            FenceStrategy::AfterProgress => assert_eq!((f.acquire, f.full), (1, 0)),
        }
    }
    // Empty polls: a barrier on every poll, except under after-progress.
    for strategy in FenceStrategy::ALL {
        let mut q = Queue::new(0, 4, strategy, false).unwrap();
        for _ in 0..5 {
            assert_eq!(q.try_pop_used(), Ok(None));
        }
        let expected = if strategy == FenceStrategy::AfterProgress { 0 } else { 5 };
        assert_eq!(q.stats().fences.total(), expected, "{strategy:?}");
        assert_eq!(q.stats().spins, 5);
    }
}

#[test]
fn no_notify_flag_suppresses_notifications() {
    let mut q = Queue::new(0, 8, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    assert!(q.should_notify(), "device has not suppressed anything yet");
    dev.set_no_notify(true);
    q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    assert!(!q.should_notify());
    dev.set_no_notify(false);
    q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    assert!(q.should_notify());
    let s = q.stats();
    assert_eq!((s.notifications_sent, s.notifications_suppressed), (2, 1));
    assert_eq!(s.fences.full, 3, "one full fence per notification decision");
    while let Some(c) = dev.pop() {
        dev.push(c.head, 0);
    }
}

#[test]
fn event_idx_notifies_only_when_avail_event_is_crossed() {
    for start in [0u16, 65533] {
        let mut q = Queue::new(0, 8, FenceStrategy::Acquire, true).unwrap();
        q.start_indices_at(start);
        let dev = attach(&q, true);
        let seg = [Segment { phys: 0x1000, len: 8 }];
        // Device wants to hear when avail.idx passes start+2.
        dev.set_avail_event(start.wrapping_add(2));
        q.submit(&seg, &[]).unwrap(); // idx start+1: event start+2 not in [start, start+1)
        assert!(!q.should_notify(), "start {start}");
        q.submit(&seg, &[]).unwrap(); // start+2: [start+1, start+2) misses start+2
        assert!(!q.should_notify(), "start {start}");
        q.submit(&seg, &[]).unwrap(); // start+3: [start+2, start+3) contains it
        assert!(q.should_notify(), "start {start}");
        // A batch of three crossing the event in its middle notifies once.
        dev.set_avail_event(start.wrapping_add(4));
        for _ in 0..3 {
            q.submit(&seg, &[]).unwrap();
        }
        assert!(q.should_notify(), "start {start}");
        assert!(!q.should_notify(), "nothing new since the last decision");
        let s = q.stats();
        assert_eq!((s.notifications_sent, s.notifications_suppressed), (2, 3));
    }
}

#[test]
fn used_notifications_toggle_flag_or_used_event() {
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    assert!(!q.set_used_notifications(false));
    q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    let c = dev.pop().unwrap();
    let old = dev.used_idx();
    dev.push(c.head, 0);
    assert!(!dev.wants_interrupt(old), "NO_INTERRUPT set");
    assert!(q.set_used_notifications(true), "a completion is already pending");
    q.try_pop_used().unwrap().unwrap();

    // EVENT_IDX: interrupts follow used_event, which follows consumption.
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, true).unwrap();
    let mut dev = attach(&q, true);
    let seg = [Segment { phys: 0x1000, len: 8 }];
    assert!(!q.set_used_notifications(true));
    q.submit(&seg, &[]).unwrap();
    q.submit(&seg, &[]).unwrap();
    let (a, b) = (dev.pop().unwrap(), dev.pop().unwrap());
    dev.push(a.head, 0);
    assert!(dev.wants_interrupt(0), "used_event 0 crossed");
    dev.push(b.head, 0);
    assert!(!dev.wants_interrupt(1), "driver has not consumed yet: used_event still 0");
    q.try_pop_used().unwrap().unwrap();
    q.try_pop_used().unwrap().unwrap();
    assert!(!q.set_used_notifications(false));
    q.submit(&seg, &[]).unwrap();
    let c = dev.pop().unwrap();
    dev.push(c.head, 0);
    assert!(!dev.wants_interrupt(2), "used_event parked far away");
}

#[test]
fn taking_a_completion_with_interrupts_on_rearms_used_event_behind_a_full_barrier() {
    // EVENT_IDX: each completion taken re-arms used_event for the next one; with interrupts on
    // that store is followed by a full barrier (Linux's virtio_store_mb in virtqueue_get_buf),
    // so the next poll is a valid re-check. With interrupts off, used_event is only parked.
    for (enabled, event) in [(true, 1u16), (false, 0x8001)] {
        let mut q = Queue::new(0, 4, FenceStrategy::Acquire, true).unwrap();
        let mut dev = attach(&q, true);
        q.set_used_notifications(enabled);
        q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
        let c = dev.pop().unwrap();
        dev.push(c.head, 0);
        let before = q.stats().fences;
        q.try_pop_used().unwrap().unwrap();
        let d = q.stats().fences.since(&before);
        assert_eq!(q.ring.used_event().load(core::sync::atomic::Ordering::Relaxed), event);
        assert_eq!((d.acquire, d.full), (1, u64::from(enabled)), "interrupts on: {enabled}");
    }
}

#[test]
fn poll_past_budget_times_out_and_late_completion_is_still_collected() {
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    let token = q.submit(&[Segment { phys: 0x1000, len: 8 }], &[Segment { phys: 0x2000, len: 8 }]).unwrap();
    let mut idles = 0;
    let err = q.poll_used(100, || idles += 1).unwrap_err();
    assert_eq!(err, Error::Timeout { spins: 101 });
    assert_eq!(idles, 100);
    let s = q.stats();
    assert_eq!((s.timeouts, s.spins), (1, 101));
    assert!(q.is_outstanding(token), "the device still owns the chain");
    let c = dev.pop().unwrap();
    dev.push(c.head, 3);
    assert_eq!(q.poll_used(100, || {}), Ok(Used { token, len: 3 }));
}

#[test]
fn unknown_used_id_is_an_error() {
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    dev.pop().unwrap();
    dev.push(3, 0); // descriptor 3 heads no chain
    assert_eq!(q.try_pop_used(), Err(Error::BadUsedId(3)));
    dev.push(9, 0); // out of range
    assert_eq!(q.try_pop_used(), Err(Error::BadUsedId(9)));
}

#[test]
fn used_index_jump_is_refused_without_consuming() {
    // Fuzzer finding (used-ring): a device that publishes used.idx past the chains in flight made
    // the driver consume stale slots, recycling whatever chain they named.
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    let token = q.submit(&[Segment { phys: 0x1000, len: 8 }], &[]).unwrap();
    dev.pop().unwrap();
    dev.publish_used_idx(5);
    let jump = Error::UsedIndexJump { used_idx: 5, consumed: 0, in_flight: 1 };
    assert_eq!(q.try_pop_used(), Err(jump));
    assert_eq!(q.poll_used(3, || {}), Err(jump), "nothing was consumed");
    assert!(q.is_outstanding(token));
    assert_eq!(q.num_free(), 3);
    assert!(jump.to_string().contains("5 entries past the driver's 0, with only 1 chains in flight"), "{jump}");
}

#[test]
fn used_len_beyond_the_writable_buffers_is_refused() {
    // Fuzzer finding (used-ring): a len larger than the chain's writable buffers was passed on.
    let mut q = Queue::new(0, 4, FenceStrategy::Acquire, false).unwrap();
    let mut dev = attach(&q, false);
    let r = [Segment { phys: 0x1000, len: 24 }];
    let w = [Segment { phys: 0x2000, len: 16 }, Segment { phys: 0x3000, len: 8 }];
    for (len, answer) in [
        (24, Ok(24)),
        (0, Ok(0)),
        (25, Err(Error::BadUsedLen { id: 0, len: 25, writable: 24 })),
        (u32::MAX, Err(Error::BadUsedLen { id: 0, len: u32::MAX, writable: 24 })),
    ] {
        let token = q.submit(&r, &w).unwrap();
        let c = dev.pop().unwrap();
        dev.push(c.head, len);
        assert_eq!(q.try_pop_used().map(|u| u.unwrap().len), answer.map(|n: u32| n));
        assert!(!q.is_outstanding(token), "the chain is back on the free list either way");
        assert_eq!(q.num_free(), 4);
    }
    // A read-only chain: any len but 0 is a lie.
    q.submit(&r, &[]).unwrap();
    let c = dev.pop().unwrap();
    dev.push(c.head, 1);
    assert_eq!(q.try_pop_used(), Err(Error::BadUsedLen { id: c.head as u32, len: 1, writable: 0 }));
}

#[test]
fn bad_requests_are_refused() {
    assert!(matches!(Queue::new(0, 6, FenceStrategy::Acquire, false), Err(Error::InvalidQueueSize { .. })));
    assert!(matches!(Queue::new(0, 0, FenceStrategy::Acquire, false), Err(Error::InvalidQueueSize { .. })));
    let mut q = Queue::new(0, 2, FenceStrategy::Acquire, false).unwrap();
    assert_eq!(q.submit(&[], &[]), Err(Error::EmptyBuffer));
    assert_eq!(q.submit(&[Segment { phys: 1, len: 0 }], &[]), Err(Error::EmptyBuffer));
    let s = [Segment { phys: 0x1000, len: 8 }; 3];
    assert_eq!(q.submit(&s, &[]), Err(Error::QueueFull { needed: 3, free: 2 }));
}

/// Threaded: a device thread that sleeps without timeout until notified, serving `count`
/// requests with up to `window` in flight (each takes two descriptors: window <= size / 2). A wrongly suppressed notification leaves the device
/// asleep and the driver's bounded poll fails the test.
fn run_threaded(
    strategy: FenceStrategy,
    event_idx: bool,
    size: u16,
    start: u16,
    count: u32,
    window: usize,
) -> (QueueStats, u64, u64) {
    let mut q = Queue::new(0, size, strategy, event_idx).unwrap();
    q.start_indices_at(start);
    q.set_used_notifications(false);
    let doorbell = Arc::new(Doorbell::default());
    let irq = Arc::new(IrqLine::default());
    let device = DeviceThread::spawn(attach(&q, event_idx), doorbell.clone(), irq.clone(), serve_echo);
    let mut bufs = Buffers::new(size as usize);
    let mut slot_of: Vec<Option<(usize, u64)>> = vec![None; size as usize];
    let mut free_slots: Vec<usize> = (0..size as usize).collect();
    let (mut sent, mut done) = (0u32, 0u32);
    while done < count {
        while sent < count && (sent - done) < window as u32 {
            let slot = free_slots.pop().unwrap();
            let value = sent as u64 * 3;
            let req = bufs.request(slot, value);
            let resp = bufs.response(slot);
            let token = q.submit(&[req], &[resp]).unwrap();
            slot_of[token.0 as usize] = Some((slot, value));
            sent += 1;
            if q.should_notify() {
                doorbell.ring();
            }
        }
        let used = q.poll_used(2_000_000, std::thread::yield_now).expect("device answered");
        let (slot, value) = slot_of[used.token.0 as usize].take().expect("live token");
        assert_eq!(bufs.read_response(slot), value + 1);
        free_slots.push(slot);
        done += 1;
    }
    // Read after the join: the device counts a chain just after publishing it.
    let served = device.stop();
    assert_eq!(served, count as u64);
    (q.stats(), doorbell.count(), irq.raised.load(std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn threaded_device_sees_every_needed_notification() {
    let count = if cfg!(miri) { 60 } else { 20_000 };
    for event_idx in [false, true] {
        for strategy in FenceStrategy::ALL {
            let (s, rings, irqs) = run_threaded(strategy, event_idx, 8, 0, count, 4);
            assert_eq!(s.completions, count as u64);
            assert_eq!(s.timeouts, 0);
            // +1: the stop ring.
            assert_eq!(rings, s.notifications_sent + 1);
            assert_eq!(s.notifications_sent + s.notifications_suppressed, count as u64);
            assert_eq!(irqs, 0, "used notifications were off");
        }
    }
}

#[test]
fn threaded_wrap_around() {
    // Past 65536 requests on a 4-entry queue with a concurrent device, every strategy, with and
    // without EVENT_IDX (~1 s). Under Miri: Acquire only, starting just below the wrap.
    let (start, count, strategies): (u16, u32, &[FenceStrategy]) =
        if cfg!(miri) { (65500, 60, &[FenceStrategy::Acquire]) } else { (0, 70_000, &FenceStrategy::ALL) };
    for event_idx in [false, true] {
        for &strategy in strategies {
            let (s, _, _) = run_threaded(strategy, event_idx, 4, start, count, 2);
            assert_eq!(s.completions, count as u64);
        }
    }
}

/// Waits (bounded) until the device has raised an interrupt, then acknowledges it: the host's
/// stand-in for `wfi` plus the kernel's handler. `Err` when nothing came: a driver in `wfi` would
/// have stalled there.
fn wait_for_interrupt(irq: &IrqLine) -> core::result::Result<(), ()> {
    use std::sync::atomic::Ordering::AcqRel;
    use std::time::{Duration, Instant};
    // Miri runs ~1000x slower, with a clock of its own: bound by yields there (the device thread
    // runs at every yield), by wall-clock time on a host that may be loaded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut yields = 0u64;
    loop {
        // AcqRel: the device's raise (fetch_or) comes after its used.idx publish; acknowledging
        // with an acquiring RMW makes that publish visible to the poll that follows.
        if irq.status.fetch_and(!1, AcqRel) & 1 != 0 {
            return Ok(());
        }
        yields += 1;
        if (cfg!(miri) && yields > 20_000) || (!cfg!(miri) && Instant::now() > deadline) {
            return Err(());
        }
        std::thread::yield_now();
    }
}

/// An interrupt-driven driver with up to `window` chains in flight: it drains the used ring, and
/// when it finds nothing it sleeps until the device interrupts (`wait_for_interrupt`). Every
/// completion must reach it: the device raises an interrupt when it crosses `used_event` (2.7.7.2)
/// and the driver re-arms `used_event` with a full barrier before it re-checks `used.idx` (the
/// 2.7.14 note: "re-enable, mb(), re-check"). A completion neither side signalled fails the
/// test instead of hanging it. Returns (stats, interrupts raised, sleeps).
fn run_interrupt_driven(event_idx: bool, count: u32, window: u32) -> (QueueStats, u64, u64) {
    let size = 8u16;
    let mut q = Queue::new(0, size, FenceStrategy::Acquire, event_idx).unwrap();
    assert!(!q.set_used_notifications(true));
    // Declared before the device: a failing assertion unwinds, and the device thread (joined
    // by its drop) must stop before the buffers it reads are freed.
    let mut bufs = Buffers::new(size as usize);
    let doorbell = Arc::new(Doorbell::default());
    let irq = Arc::new(IrqLine::default());
    let device = DeviceThread::spawn(attach(&q, event_idx), doorbell.clone(), irq.clone(), serve_echo);
    let mut slot_of: Vec<Option<(usize, u64)>> = vec![None; size as usize];
    let mut free_slots: Vec<usize> = (0..size as usize).collect();
    let (mut sent, mut done, mut sleeps) = (0u32, 0u32, 0u64);
    while done < count {
        while sent < count && sent - done < window {
            let slot = free_slots.pop().unwrap();
            let value = sent as u64 * 7;
            let token = q.submit(&[bufs.request(slot, value)], &[bufs.response(slot)]).unwrap();
            slot_of[token.0 as usize] = Some((slot, value));
            sent += 1;
            if q.should_notify() {
                doorbell.ring();
            }
        }
        let mut progress = false;
        while let Some(used) = q.try_pop_used().unwrap() {
            let (slot, value) = slot_of[used.token.0 as usize].take().expect("live token");
            assert_eq!(bufs.read_response(slot), value + 1);
            free_slots.push(slot);
            done += 1;
            progress = true;
        }
        if progress || done == count {
            continue;
        }
        sleeps += 1;
        if wait_for_interrupt(&irq).is_err() {
            let r = &q.ring;
            let load = |a: &core::sync::atomic::AtomicU16| a.load(std::sync::atomic::Ordering::SeqCst);
            panic!(
                "event_idx {event_idx}: stalled with {} chains in flight ({done} of {count} done, device served {}): \
                 avail.idx {} (last notify decision at {}), avail_event {}, used.idx {}, driver consumed to {}, \
                 used_event {}, doorbell rings {}, irqs {}",
                sent - done,
                device.served(),
                load(r.avail_idx()),
                q.kicked_avail_idx,
                load(r.avail_event()),
                load(r.used_idx()),
                q.last_used_idx,
                load(r.used_event()),
                doorbell.count(),
                irq.raised.load(std::sync::atomic::Ordering::SeqCst),
            );
        }
    }
    device.stop();
    (q.stats(), irq.raised.load(std::sync::atomic::Ordering::Relaxed), sleeps)
}

#[test]
fn interrupt_driven_driver_never_sleeps_through_a_completion() {
    let count = if cfg!(miri) { 150 } else { 200_000 };
    for event_idx in [false, true] {
        let (s, irqs, sleeps) = run_interrupt_driven(event_idx, count, 4);
        assert_eq!(s.completions, count as u64);
        // Each sleep ended by taking an interrupt (the acknowledge clears the one bit a raise
        // sets), and no used entry raises more than one.
        assert!(sleeps <= irqs && irqs <= count as u64, "event_idx {event_idx}: {irqs} irqs, {sleeps} sleeps");
        if !event_idx {
            // NO_INTERRUPT clear: "the device MUST send a notification" for every entry (2.7.7.2).
            assert_eq!(irqs, count as u64);
        }
    }
}

#[test]
#[ignore = "measurement, not a check: cargo test -p tricolor-virtio --release -- --ignored --nocapture"]
fn measure_round_trip_per_strategy() {
    let count = 50_000u32;
    for strategy in FenceStrategy::ALL {
        let start = std::time::Instant::now();
        let (s, rings, _) = run_threaded(strategy, true, 8, 0, count, 1);
        let ns = start.elapsed().as_nanos() as u64 / count as u64;
        println!(
            "[VIRTIO HOST] fence={} requests={count} ns_per_request={ns} fences_per_request={:.2} \
             spins_per_request={:.2} notifications={rings}",
            strategy.name(),
            s.fences.total() as f64 / count as f64,
            s.spins as f64 / count as f64,
        );
    }
}
