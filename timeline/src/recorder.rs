//! One core's recorder: a fixed-size ring of `(timestamp, state)` transitions (its size chosen
//! once, when the ring is attached) plus the time spent in each state so far.
//!
//! **One writer**: only the recorder's own core calls [`Recorder::record`], and never re-entrantly
//! (the kernel masks IRQs around it, so an interrupt handler that records cannot land in the
//! middle of a record). Breaking that rule loses or garbles events but is not undefined behaviour:
//! the ring and the counters are atomics. **Any number of readers**, on any core, at any time:
//! [`Recorder::snapshot`] copies the ring without stopping the writer and keeps only the events it
//! can prove were not overwritten while it copied; [`Recorder::totals`] reads the running totals.
//!
//! A record is a few loads and stores, no allocation, no lock, no read-modify-write atomic: cheap
//! enough to leave on (the kernel's `bench-timeline` measures it). When the ring is full the
//! oldest events are overwritten; the totals keep counting.

use core::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::state::{State, COUNT};

/// Timestamps are stored in the top 56 bits of a word, the state in the low 8.
const STATE_BITS: u32 = 8;
/// The largest timestamp a record keeps exactly (larger ones wrap): 2^56 counter ticks, over
/// 36 years at QEMU's 62.5 MHz.
pub const MAX_TIMESTAMP: u64 = (1 << (64 - STATE_BITS)) - 1;

/// One transition: from `ts` on, the core was in `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Counter ticks (the kernel's `CNTPCT_EL0`).
    pub ts: u64,
    /// The state entered.
    pub state: State,
}

impl Event {
    const fn pack(self) -> u64 {
        (self.ts & MAX_TIMESTAMP) << STATE_BITS | self.state as u64
    }

    fn unpack(word: u64) -> Event {
        // Only `pack` writes these words, so the low byte is a valid discriminant.
        let state = State::from_u8((word & 0xff) as u8).unwrap_or(State::Mutator);
        Event { ts: word >> STATE_BITS, state }
    }
}

/// A copy of a ring: the events still in it, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Index of `events[0]` among every event ever recorded: the number lost to overwriting
    /// (0: the ring holds everything since the recorder started, in state
    /// [`State::Mutator`] at timestamp 0).
    pub first: u64,
    /// The events, oldest first.
    pub events: alloc::vec::Vec<Event>,
}

/// A core's recorder. All zero when new (so a static array of them lives in `.bss`), with no
/// ring until [`Recorder::attach`] gives it one: until then it keeps the totals and counts the
/// transitions, but stores none.
pub struct Recorder {
    /// Events recorded so far; the next goes to slot `head % len`.
    head: AtomicU64,
    /// Events begun: `head + 1` while a record is writing its slot, else `head`. Tells a reader
    /// which slot may be changing under it.
    begun: AtomicU64,
    /// The last transition (packed): the state the core is in and since when.
    current: AtomicU64,
    /// Ticks spent in each state, up to `current`'s timestamp.
    totals: [AtomicU64; COUNT],
    /// The ring's first slot and its length (a power of two; 0 until `attach`).
    ring: AtomicPtr<AtomicU64>,
    len: AtomicUsize,
    /// `head` when the ring was attached: the events before it were counted, not kept.
    attached_at: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder with no ring, in [`State::Mutator`] since timestamp 0.
    pub const fn new() -> Self {
        Recorder {
            head: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            current: AtomicU64::new(0),
            totals: [const { AtomicU64::new(0) }; COUNT],
            ring: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            attached_at: AtomicU64::new(0),
        }
    }

    /// Gives the recorder its ring (a power of two of slots, any contents), once. Call it before
    /// the owning core records anything, or on that core between two records: the writer must
    /// not run meanwhile. Readers may.
    pub fn attach(&self, ring: &'static [AtomicU64]) {
        assert!(ring.len().is_power_of_two(), "a recorder's ring is a power of two of slots");
        assert!(self.len.load(Ordering::Relaxed) == 0, "a recorder's ring is attached once");
        // Relaxed: published by the Release store of `len` below.
        self.attached_at.store(self.head.load(Ordering::Relaxed), Ordering::Relaxed);
        self.ring.store(ring.as_ptr().cast_mut(), Ordering::Relaxed);
        // Release: whoever sees the length (Acquire, in `ring`) sees the pointer and
        // `attached_at` stored above.
        self.len.store(ring.len(), Ordering::Release);
    }

    /// The ring (empty before `attach`).
    #[inline]
    fn ring(&self) -> &[AtomicU64] {
        // Acquire pairs with `attach`'s Release store of `len`.
        let len = self.len.load(Ordering::Acquire);
        if len == 0 {
            return &[];
        }
        let ptr = self.ring.load(Ordering::Relaxed);
        // SAFETY: `attach` stored `ptr` and then, Release, this nonzero `len`, both from one
        // `&'static [AtomicU64]` (attached once, never changed), and the Acquire load of `len`
        // makes that `ptr` the one loaded; atomics may be shared by any number of threads.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }

    /// Capacity in events (0 before `attach`).
    pub fn capacity(&self) -> usize {
        self.ring().len()
    }

    /// The core enters `state` at `ts`; returns the state it was in (to go back to). Nothing is
    /// recorded if it already is in `state`. Only the owning core calls this, never
    /// re-entrantly (see the module doc).
    #[inline]
    pub fn record(&self, ts: u64, state: State) -> State {
        self.record_with(|| ts, state)
    }

    /// [`Recorder::record`] with the timestamp read by `clock`, only when there is a transition
    /// to record (reading the clock costs more than the rest of the early exit).
    #[inline]
    pub fn record_with(&self, clock: impl FnOnce() -> u64, state: State) -> State {
        // Ordering: Relaxed for the writer's own words (`current`, `totals`, `head`'s load): only
        // this core writes them, so it reads back what it wrote.
        let last = Event::unpack(self.current.load(Ordering::Relaxed));
        if last.state == state {
            return state;
        }
        let ts = clock();
        let i = self.head.load(Ordering::Relaxed);
        // Announced before anything of event `i` is written: the Release stores below order it
        // before themselves, so a reader that sees any of them sees `begun == i + 1` too (see
        // `snapshot` and `snapshot_with_totals`).
        self.begun.store(i + 1, Ordering::Relaxed);
        let total = &self.totals[last.state as usize];
        // Release (this and `current`'s): a reader whose Acquire load reads them sees `begun`
        // above (`snapshot_with_totals` uses that to tell a consistent read from a torn one).
        total.store(total.load(Ordering::Relaxed) + ts.saturating_sub(last.ts), Ordering::Release);
        let word = Event { ts, state }.pack();
        self.current.store(word, Ordering::Release);
        let ring = self.ring();
        if let Some(slot) = ring.get(i as usize & ring.len().wrapping_sub(1)) {
            // Release on the slot: orders the `begun` store before it, so a reader that copies
            // this slot's new value and then reads `begun` (after its Acquire fence) sees
            // `i + 1`, and knows the slot no longer holds event `i + 1 - len` (see `snapshot`).
            slot.store(word, Ordering::Release);
        }
        // Release: a reader that sees `head == i + 1` (Acquire) sees the slot written above.
        self.head.store(i + 1, Ordering::Release);
        last.state
    }

    /// The state the core is in and since when.
    pub fn current(&self) -> Event {
        // Relaxed: a reading for a picture, one transition old at worst.
        Event::unpack(self.current.load(Ordering::Relaxed))
    }

    /// Ticks spent in each state (indexed by discriminant) up to `now`, the current state's
    /// interval included. From another core the figures may be one transition stale (the
    /// current interval can be counted twice for an instant): fine for a picture.
    pub fn totals(&self, now: u64) -> [u64; COUNT] {
        // Relaxed: statistics, no data behind them.
        let mut t: [u64; COUNT] = core::array::from_fn(|s| self.totals[s].load(Ordering::Relaxed));
        let last = self.current();
        t[last.state as usize] += now.saturating_sub(last.ts);
        t
    }

    /// Events recorded since the recorder started (including those not kept).
    pub fn recorded(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Copies the ring, oldest event first. Safe against a writer running meanwhile: the copy
    /// keeps only the events no concurrent record can have overwritten.
    pub fn snapshot(&self) -> Snapshot {
        let ring = self.ring();
        let len = ring.len() as u64;
        // Acquire pairs with the writer's Release store of `head`: slots below `h1` hold their
        // events (or newer ones, if the writer laps the copy).
        let h1 = self.head.load(Ordering::Acquire);
        // Relaxed: `ring()`'s Acquire load of `len` ordered it (see `attach`).
        let lo = h1.saturating_sub(len).max(self.attached_at.load(Ordering::Relaxed)).min(h1);
        let mut words = alloc::vec::Vec::with_capacity((h1 - lo) as usize);
        for i in lo..h1 {
            // Relaxed: the fence below orders these loads before the read of `begun`.
            words.push(ring[i as usize & (ring.len() - 1)].load(Ordering::Relaxed));
        }
        // Acquire fence: if a load above read a slot the writer re-wrote for event `j` (its
        // Release store), the writer's earlier store of `begun == j + 1` is visible to the load
        // below.
        fence(Ordering::Acquire);
        let begun = self.begun.load(Ordering::Relaxed);
        // Events before `begun - len` may have been overwritten while we copied (event `j`
        // overwrites event `j - len`); the ones from there on were still in the ring.
        let first = begun.saturating_sub(len).clamp(lo, h1);
        let events = words[(first - lo) as usize..].iter().map(|&w| Event::unpack(w)).collect();
        Snapshot { first, events }
    }

    /// A [`Recorder::snapshot`] and the totals up to `now()` that agree with it: the ticks of
    /// exactly the snapshot's events (so a decoder can check the one against the other). A
    /// transition recorded meanwhile makes it try again, up to `tries` times; `None` if the
    /// writer never left it a quiet moment.
    pub fn snapshot_with_totals(&self, now: impl Fn() -> u64, tries: usize) -> Option<(Snapshot, u64, [u64; COUNT])> {
        for _ in 0..tries {
            let snapshot = self.snapshot();
            // `snapshot`'s Acquire load of `head` made every event below `head` visible, with
            // the totals and `current` its writer stored before it.
            let head = snapshot.first + snapshot.events.len() as u64;
            // Acquire: if one of these reads a value stored by event `head` or later, the
            // writer's earlier `begun` store (`head + 1` or more) is visible to the load below.
            let mut totals: [u64; COUNT] = core::array::from_fn(|s| self.totals[s].load(Ordering::Acquire));
            let current = Event::unpack(self.current.load(Ordering::Acquire));
            // Relaxed: the Acquire loads above keep this load after them.
            if self.begun.load(Ordering::Relaxed) != head {
                continue;
            }
            let now = now();
            totals[current.state as usize] += now.saturating_sub(current.ts);
            return Some((snapshot, now, totals));
        }
        None
    }
}

/// A ring of `slots` zeroed slots for [`Recorder::attach`], leaked (tests, host tools).
#[cfg(test)]
pub(crate) fn leaked_ring(slots: usize) -> &'static [AtomicU64] {
    alloc::boxed::Box::leak((0..slots).map(|_| AtomicU64::new(0)).collect())
}

/// A recorder with a ring of `slots` (tests).
#[cfg(test)]
pub(crate) fn with_ring(slots: usize) -> Recorder {
    let r = Recorder::new();
    r.attach(leaked_ring(slots));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn records_transitions_and_returns_the_previous_state() {
        let r = with_ring(8);
        assert_eq!(r.record(10, State::Pause), State::Mutator);
        assert_eq!(r.record(15, State::Flush), State::Pause);
        assert_eq!(r.record(18, State::Flush), State::Flush, "no event for the state it is in");
        assert_eq!(r.record(20, State::Pause), State::Flush);
        assert_eq!(r.record(30, State::Mutator), State::Pause);
        let s = r.snapshot();
        assert_eq!(s.first, 0);
        let got: Vec<_> = s.events.iter().map(|e| (e.ts, e.state)).collect();
        assert_eq!(
            got,
            [(10, State::Pause), (15, State::Flush), (20, State::Pause), (30, State::Mutator)],
            "the repeated Flush is not an event"
        );
        assert_eq!(r.recorded(), 4);
        assert_eq!(r.current(), Event { ts: 30, state: State::Mutator });
    }

    #[test]
    fn totals_count_every_interval_and_the_current_one() {
        let r = with_ring(4);
        r.record(100, State::Idle);
        r.record(150, State::Mutator);
        r.record(170, State::Sweep);
        let t = r.totals(200);
        assert_eq!(t[State::Mutator as usize], 100 + 20);
        assert_eq!(t[State::Idle as usize], 50);
        assert_eq!(t[State::Sweep as usize], 30, "the current interval up to now");
        assert_eq!(t.iter().sum::<u64>(), 200);
    }

    #[test]
    fn a_full_ring_keeps_the_newest_and_counts_what_it_lost() {
        let r = with_ring(4);
        let states = [State::Pause, State::Mutator];
        for i in 0..10u64 {
            r.record(i * 10, states[i as usize % 2]);
        }
        let s = r.snapshot();
        assert_eq!(s.first, 6);
        assert_eq!(s.events.iter().map(|e| e.ts).collect::<Vec<_>>(), [60, 70, 80, 90]);
        // The totals still cover everything: 10 ticks per interval, the last one up to 100.
        let t = r.totals(100);
        assert_eq!(t[State::Pause as usize] + t[State::Mutator as usize], 100);
    }

    #[test]
    fn without_a_ring_it_counts_and_keeps_nothing_then_keeps_from_the_attach() {
        let r = Recorder::new();
        assert_eq!(r.capacity(), 0);
        r.record(10, State::Pause);
        r.record(20, State::Mutator);
        assert_eq!(r.snapshot(), Snapshot { first: 2, events: Vec::new() });
        r.attach(leaked_ring(4));
        r.record(30, State::Idle);
        let s = r.snapshot();
        assert_eq!(s.first, 2, "the two before the ring are lost");
        assert_eq!(s.events, [Event { ts: 30, state: State::Idle }]);
        let t = r.totals(40);
        assert_eq!((t[State::Mutator as usize], t[State::Pause as usize], t[State::Idle as usize]), (20, 10, 10));
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn a_ring_is_a_power_of_two() {
        Recorder::new().attach(leaked_ring(3));
    }

    #[test]
    fn timestamps_keep_56_bits() {
        let r = with_ring(2);
        r.record(MAX_TIMESTAMP, State::Sweep);
        assert_eq!(r.snapshot().events[0], Event { ts: MAX_TIMESTAMP, state: State::Sweep });
    }

    /// A writer laps a small ring while a reader copies it: every event a copy
    /// keeps must be the one recorded at its index (the timestamp is the index), so a copy that
    /// kept an overwritten slot fails.
    #[test]
    fn snapshots_never_keep_an_overwritten_slot() {
        let r = Arc::new(with_ring(256));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (r, done) = (Arc::clone(&r), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) || i < 200_000 {
                    // Alternate states so every call is a transition: event index == timestamp.
                    r.record(i, if i.is_multiple_of(2) { State::MarkWorker } else { State::Mutator });
                    i += 1;
                    // Slower than the copy of the whole ring, as a core is, but not by much.
                    for _ in 0..2 {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        while r.recorded() < 1000 {
            std::hint::spin_loop();
        }
        let mut kept = 0;
        let mut partial = 0;
        // Until enough copies raced with a lap (both threads must be running at once, which a
        // loaded host does not always allow), or two seconds.
        let start = std::time::Instant::now();
        while partial < 500 && start.elapsed() < std::time::Duration::from_secs(2) {
            let s = r.snapshot();
            for (k, e) in s.events.iter().enumerate() {
                let index = s.first + k as u64;
                assert_eq!(e.ts, index, "slot of event {index} held event {}", e.ts);
                let expected = if index.is_multiple_of(2) { State::MarkWorker } else { State::Mutator };
                assert_eq!(e.state, expected);
            }
            kept += s.events.len();
            partial += usize::from(s.events.len() < 256 && s.first > 0);
        }
        done.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(kept > 0, "the copies kept nothing");
        // Not asserted (it depends on scheduling), but reported: how often a copy had to drop
        // slots the writer was lapping.
        println!("copies that dropped lapped slots: {partial}");
    }

    /// Copies taken while the writer records must come with the totals of exactly their events
    /// (the dump's check): a copy paired with totals read a transition later fails.
    #[test]
    fn snapshots_with_totals_agree_while_the_writer_records() {
        const EVENTS: u64 = 50_000;
        let r = Arc::new(with_ring(1 << 16));
        let clock = Arc::new(AtomicU64::new(0));
        let writer = {
            let (r, clock) = (Arc::clone(&r), Arc::clone(&clock));
            std::thread::spawn(move || {
                for i in 0..EVENTS {
                    // The clock moves before each record, so a reader's `now` is never behind
                    // the transition it sees; uneven steps make every interval count.
                    let ts = clock.fetch_add(1 + i % 7, Ordering::SeqCst) + 1 + i % 7;
                    r.record(ts, State::ALL[(i % 3) as usize + 2]);
                    for _ in 0..20 {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        while r.recorded() < 100 {
            std::hint::spin_loop();
        }
        let (mut checked, mut tries_failed) = (0, 0);
        while !writer.is_finished() || checked == 0 {
            let Some((s, now, totals)) = r.snapshot_with_totals(|| clock.load(Ordering::SeqCst), 100) else {
                tries_failed += 1;
                continue;
            };
            assert_eq!(s.first, 0, "the ring does not lap in this test");
            let mut sums = [0u64; COUNT];
            let mut at = (0, State::Mutator);
            for e in s.events.iter().chain(core::iter::once(&Event { ts: now, state: State::Mutator })) {
                sums[at.1 as usize] += e.ts - at.0;
                at = (e.ts, e.state);
            }
            assert_eq!(sums, totals, "totals disagree with a copy of {} events", s.events.len());
            checked += 1;
        }
        writer.join().unwrap();
        println!("consistent copies checked: {checked}, gave up: {tries_failed}");
    }
}
