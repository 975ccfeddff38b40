//! The root census: the verifier's independent list of what a cycle must scan.
//!
//! The mark scans the ranges the platform reports ([`Platform::for_each_stack_range`]), and
//! the verifier's own re-mark scans the same ranges. If the platform skips a task (its SP is in
//! no registered stack, its saved SP looks bogus, ...), both skip it, and the snapshot the
//! verifier takes at mark start is just as blind: an object whose only reference sits on that
//! stack is freed and nobody says so. The census closes that gap. With the verifier on, the
//! platform lists, from its task table and each core's current task (not from whatever the scan
//! itself consults), every task and what of it must be scanned ([`Platform::root_census`]); every
//! range the scan reports says whose it is ([`RootOwner`]); and at mark termination
//! [`check`] compares the two.
//!
//! # The rule
//! Every task in the census taken at mark start that is still alive at mark termination must have
//! had each part it [`requires`](CensusEntry::requires) scanned **at some point during the
//! cycle** (between mark start and mark termination), and every task in the census taken at
//! verification must be covered by the verifier's own scan. The rule holds unchanged when stacks
//! are scanned concurrently, one task at a time: scans accumulate in the cycle's log until mark
//! termination. A task that exits before its scan needs none: its stack dies with it, and what it
//! handed on went through the heap (the barrier shades it) or into a new task's spawn argument.
//! Tasks created after mark start are not in the census: they start with empty stacks.
//!
//! # Exemptions, all of them
//! [`Exemption`] names every task whose stack is not scanned, and why. Nothing else may be left
//! out.

use alloc::string::String;
use alloc::vec::Vec;

use crate::platform::ScanRange;

/// Which part of a task a scanned range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootPart {
    /// Its stack, from its SP (at the safe point, or saved) to the top.
    Stack,
    /// The registers saved when it was switched out.
    SavedRegisters,
}

/// Whose memory a scanned range is: the platform's task id and the part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootOwner {
    /// The platform's task id (unique for the platform's lifetime).
    pub task: u64,
    /// Which part of the task.
    pub part: RootPart,
}

/// Why a task's stack is not scanned. This enum is the one place exemptions are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exemption {
    /// The collector's own mark workers: their stacks hold heap-internal addresses (span bases,
    /// grey objects being scanned), not mutator references.
    MarkWorker,
    /// A task that never ran: its stack holds nothing yet; its saved registers (entry point and
    /// argument) are still scanned.
    NeverRan,
    /// The core running the verifier at mark termination: its stack holds the collector's frames.
    /// (At mark start the collecting task is a mutator like any other and is scanned.)
    Collector,
}

/// One task of the census.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CensusEntry {
    /// The platform's task id.
    pub task: u64,
    /// Its name, for reports.
    pub name: String,
    /// Its whole stack (lowest mapped address to top), for reports.
    pub stack: ScanRange,
    /// Whether it is some core's current task (its registers are on its stack, spilled at the
    /// safe point) rather than switched out (its registers are saved apart).
    pub running: bool,
    /// Why (part of) it is not scanned, if it is not.
    pub exempt: Option<Exemption>,
}

/// The parts of a task a scan must cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Required {
    /// Its stack.
    pub stack: bool,
    /// Its saved registers.
    pub saved_registers: bool,
}

impl CensusEntry {
    /// What of this task must be scanned.
    pub fn requires(&self) -> Required {
        match self.exempt {
            Some(Exemption::MarkWorker) | Some(Exemption::Collector) => {
                Required { stack: false, saved_registers: false }
            }
            Some(Exemption::NeverRan) => Required { stack: false, saved_registers: true },
            None => Required { stack: true, saved_registers: !self.running },
        }
    }
}

/// When a census entry was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CensusPoint {
    /// At mark start: the mark had to scan it during the cycle.
    MarkStart,
    /// At verification: the verifier's own scan had to cover it.
    Verify,
}

impl CensusPoint {
    /// For reports.
    pub fn describe(self) -> &'static str {
        match self {
            CensusPoint::MarkStart => "alive at mark start but not scanned during the cycle",
            CensusPoint::Verify => "alive at verification but not covered by the verifier's scan",
        }
    }
}

/// A task the scan should have covered and did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unscanned {
    /// The task.
    pub entry: CensusEntry,
    /// The part that was missed.
    pub part: RootPart,
    /// Which census it was in.
    pub point: CensusPoint,
}

/// Compare a census with what was scanned: every required part of every task in `census` must
/// appear in `scanned`. `alive(task)` says whether the task still exists (a task that exited
/// since the census needs no scan, see the module doc).
pub fn check(
    census: &[CensusEntry],
    scanned: &[RootOwner],
    point: CensusPoint,
    alive: impl Fn(u64) -> bool,
) -> Vec<Unscanned> {
    let mut out = Vec::new();
    for entry in census {
        let required = entry.requires();
        let parts = [(RootPart::Stack, required.stack), (RootPart::SavedRegisters, required.saved_registers)];
        for (part, needed) in parts {
            let covered = scanned.iter().any(|o| o.task == entry.task && o.part == part);
            if needed && !covered && alive(entry.task) {
                out.push(Unscanned { entry: entry.clone(), part, point });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(task: u64, running: bool, exempt: Option<Exemption>) -> CensusEntry {
        CensusEntry {
            task,
            name: alloc::format!("t{task}"),
            stack: ScanRange { lo: 0x1000 * task as usize, hi: 0x1000 * task as usize + 0x800 },
            running,
            exempt,
        }
    }

    fn owner(task: u64, part: RootPart) -> RootOwner {
        RootOwner { task, part }
    }

    #[test]
    fn a_task_whose_stack_was_not_scanned_is_reported_with_its_stack() {
        let census = [entry(1, true, None), entry(2, false, None)];
        let scanned = [owner(1, RootPart::Stack), owner(2, RootPart::SavedRegisters)];
        let found = check(&census, &scanned, CensusPoint::MarkStart, |_| true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entry.task, 2);
        assert_eq!(found[0].entry.name, "t2");
        assert_eq!(found[0].entry.stack, ScanRange { lo: 0x2000, hi: 0x2800 });
        assert_eq!(found[0].part, RootPart::Stack);
    }

    #[test]
    fn switched_out_tasks_need_their_saved_registers_running_ones_do_not() {
        let census = [entry(1, true, None), entry(2, false, None)];
        let scanned = [owner(1, RootPart::Stack), owner(2, RootPart::Stack)];
        let found = check(&census, &scanned, CensusPoint::Verify, |_| true);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].entry.task, found[0].part), (2, RootPart::SavedRegisters));
    }

    #[test]
    fn exemptions_are_exactly_the_named_ones() {
        let census = [
            entry(1, true, Some(Exemption::MarkWorker)),
            entry(2, true, Some(Exemption::Collector)),
            entry(3, false, Some(Exemption::NeverRan)),
        ];
        let found = check(&census, &[], CensusPoint::MarkStart, |_| true);
        assert_eq!(found.len(), 1, "a task that never ran still needs its saved registers: {found:?}");
        assert_eq!((found[0].entry.task, found[0].part), (3, RootPart::SavedRegisters));
    }

    #[test]
    fn tasks_that_exited_since_the_census_need_no_scan() {
        let census = [entry(1, false, None), entry(2, false, None)];
        let found = check(&census, &[], CensusPoint::MarkStart, |t| t == 2);
        assert_eq!(found.iter().map(|u| u.entry.task).collect::<Vec<_>>(), [2, 2]);
    }

    #[test]
    fn scans_spread_over_the_cycle_count_like_one() {
        // Concurrent scanning: each task scanned at its own time, in any order, some twice.
        let census = [entry(1, false, None), entry(2, true, None)];
        let scanned = [
            owner(2, RootPart::Stack),
            owner(1, RootPart::SavedRegisters),
            owner(2, RootPart::Stack),
            owner(1, RootPart::Stack),
        ];
        assert!(check(&census, &scanned, CensusPoint::MarkStart, |_| true).is_empty());
    }
}
