//! `tick.slice=`: how measurement runs under `-icount` give every core its turn.
//!
//! Under `-icount` QEMU 7.2 runs the vCPUs one at a time on one host thread (round-robin TCG),
//! and the virtual clock counts the instructions of all of them: a core stands still, in whatever
//! state it was in, while the others have their turns. Per-core figures (the GC timeline, MMU)
//! are only meaningful if the turns are short and shared fairly, and by default they are
//! neither. What ends a turn (measured with `test=bench-turns`: every core running the same loop;
//! the QEMU cases `icount-turns` and `icount-turns-unsliced` check both behaviours):
//! - a `yield`, `wfi` or exception exit of the running vCPU: the next vCPU runs;
//! - a timer deadline (any core's): the running vCPU's instruction budget ends there, and the
//!   vCPU after it then runs with a budget of zero while QEMU fires the expired timers: **the
//!   vCPU right after a deadline-ended turn loses its turn**. When every turn ends at a
//!   deadline, every other vCPU loses every turn: cores 1 and 3 stood still for 1.6 ms while 0
//!   and 2 ran, and with each core's timer re-armed relative to its own tick, one step of 6 µs of
//!   work took up to 4 ms.
//!
//! So with `tick.slice=S` every core's timer fires at the same instants, the multiples of `S` in
//! counter ticks, and the slice is given to one core, its *owner*; the others' handlers end their
//! turn with `yield` as soon as they take the interrupt, and the owner runs the rest of the
//! slice. The owner must not be the vCPU that the deadline starting the slice skips, which is the
//! one after the last slice's owner: so ownership rotates backwards, core `−n mod cores` owns
//! slice `n` ([`owner`]). The probe then ran every core within 3 % of the others, each 6 µs
//! step within 3 slices plus its own time (forward rotation gave core 0 twice the others' share:
//! every new owner was the skipped vCPU).
//!
//! On hardware the slice only costs interrupts; nothing depends on it but the measurements.

/// The core that owns slice `period` (the `period`-th multiple of the slice length since the
/// counter started) on `cores` cores: `−period mod cores`.
pub fn owner(period: u64, cores: usize) -> usize {
    let cores = cores.max(1) as u64;
    ((cores - period % cores) % cores) as usize
}

/// The counter value at which slice `period + 1` starts: where every core's timer fires next.
pub fn next_slice(now: u64, slice: u64) -> u64 {
    (now / slice.max(1) + 1) * slice.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_owns_one_slice_in_each_round() {
        for cores in 1..=8 {
            for start in 0..20u64 {
                let mut owned = vec![0; cores];
                for n in start..start + cores as u64 {
                    owned[owner(n, cores)] += 1;
                }
                assert!(owned.iter().all(|&o| o == 1), "{cores} cores from slice {start}: {owned:?}");
            }
        }
    }

    /// The skipped vCPU is the one after the last slice's owner (module docs); the new owner
    /// must be another, or the slice goes to whoever runs next (forward rotation, `n mod cores`,
    /// measured: core 0 got twice the others' share).
    #[test]
    fn the_owner_is_never_the_skipped_core() {
        for cores in 3..=8 {
            for n in 1..100u64 {
                let skipped = (owner(n - 1, cores) + 1) % cores;
                assert_ne!(owner(n, cores), skipped, "{cores} cores, slice {n}");
            }
        }
    }

    #[test]
    fn slices_start_at_multiples() {
        assert_eq!(next_slice(0, 100), 100);
        assert_eq!(next_slice(99, 100), 100);
        assert_eq!(next_slice(100, 100), 200);
        assert_eq!(next_slice(5, 0), 6, "a zero slice is one tick");
        assert_eq!((owner(0, 4), owner(1, 4), owner(2, 4), owner(3, 4), owner(4, 4)), (0, 3, 2, 1, 0));
    }
}
