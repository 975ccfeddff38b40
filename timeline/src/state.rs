//! What a core can be doing, and what each state counts as for mutator utilisation.
//!
//! A core is in exactly one state at a time. States nest by hand: the code that enters one keeps
//! the state it left and goes back to it (`Recorder::record` returns it), so a wbBuf flush inside
//! a pause shows as pause, flush, pause. A task switch keeps each task's state: the outgoing task's
//! is saved in its own frame and the incoming task's restored (the kernel's `tasks::switch`).
//!
//! This is the one place the states and their categories are defined: the kernel records them
//! (where each is entered: the kernel's `timeline` module doc), the dashboard's per-core bars sum
//! them (GC = [`Category::Gc`], halted left out), and xtask's MMU curves and traces read them
//! from the dump.

/// One core's activity. The discriminants are the dump's encoding: append, never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Running a task's own code: the application (the workloads, the demo's shell and dashboard,
    /// a stress driver), the scheduler, the idle loop when it is not halted. The default.
    Mutator = 0,
    /// The core's idle task runs: nothing else is ready (or every other task just yielded), so it
    /// polls for work or halts in `wfi` until an interrupt. Not counted for utilisation either
    /// way.
    Idle = 1,
    /// Stopped for a stop-the-world: on the initiator from the stop request until the release
    /// (time-to-safepoint included), on a parked core from parking until the release (its
    /// park-hook flush shows as [`Flush`] inside it).
    ///
    /// [`Flush`]: State::Flush
    Pause = 2,
    /// The collecting task between its pauses: sweep termination's bookkeeping, the concurrent
    /// mark's drains and waits (for stack scans, for the flush handshake), starting the workers.
    /// In tricolor a cycle runs on the task that started it (a mutator whose allocation crossed
    /// the trigger, or the one that asked for it), so this is time that task's mutator lost.
    Mark = 3,
    /// Draining grey objects as a dedicated mark worker task (the kernel's `mark-worker` tasks,
    /// on a quarter of the cores).
    MarkWorker = 4,
    /// A mutator doing mark work to pay for its allocation (Go's gcAssistAlloc): the collector's
    /// `assist_alloc` (the kernel's `gc::alloc` pays after each allocation during a mark) and
    /// `mark_assist` (the host GCBench's).
    Assist = 5,
    /// Scanning a task's stack and saved registers during the concurrent mark (a switched-out
    /// task's, chunk by chunk, or the current task's own at a safe point).
    StackScan = 6,
    /// Flushing this core's wbBuf: the barrier's slow path when the buffer is full, the mark
    /// termination handshake, and the park hook during the mark.
    Flush = 7,
    /// Sweeping: the collecting task's whole-heap sweeps, and an allocator sweeping a span
    /// lazily before it allocates from it.
    Sweep = 8,
    /// An idle core marking between its run-queue checks (Go's idle mark workers, "GC (idle)" in
    /// its traces: the kernel's `gc::idle_mark`), in bounded stretches that stop once a task is
    /// ready to run. Also a triggered cycle's own task draining on a core where no other task is
    /// ready (the kernel hands such a cycle to an idle core: its drains are this state while
    /// nothing else could run there, and [`Mark`] once something could). Like [`Idle`], not
    /// counted for utilisation either way: the core had nothing of the program's to run, so the
    /// marking took no time from it (Go's trace tool leaves idle workers out of its MMU the same
    /// way).
    ///
    /// [`Idle`]: State::Idle
    /// [`Mark`]: State::Mark
    IdleMark = 9,
    /// [`Sweep`] where [`IdleMark`] would be marking: an idle core sweeping a chunk of a running
    /// sweep between its run-queue checks (the kernel's `gc::idle_sweep`; Go's background
    /// sweeper gets the cores the program leaves idle), and a triggered cycle's own task sweeping
    /// on a core where no other task is ready. Not counted either way, for the same reason.
    ///
    /// [`Sweep`]: State::Sweep
    /// [`IdleMark`]: State::IdleMark
    IdleSweep = 10,
}

/// Number of states.
pub const COUNT: usize = 11;

/// What a state counts as for mutator utilisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Useful time for the program: the numerator of utilisation.
    Mutator,
    /// Time the collector took from the program: in the denominator only.
    Gc,
    /// Nothing of the program's to run (halted, polling, or marking while idle): in neither, so
    /// idle cores do not dilute the GC's share.
    Halted,
}

impl State {
    /// Every state, by discriminant.
    pub const ALL: [State; COUNT] = [
        State::Mutator,
        State::Idle,
        State::Pause,
        State::Mark,
        State::MarkWorker,
        State::Assist,
        State::StackScan,
        State::Flush,
        State::Sweep,
        State::IdleMark,
        State::IdleSweep,
    ];

    /// The lower-case name used in dumps, CSV columns and trace events.
    pub const fn name(self) -> &'static str {
        match self {
            State::Mutator => "mutator",
            State::Idle => "idle",
            State::Pause => "pause",
            State::Mark => "mark",
            State::MarkWorker => "mark-worker",
            State::Assist => "assist",
            State::StackScan => "stack-scan",
            State::Flush => "flush",
            State::Sweep => "sweep",
            State::IdleMark => "idle-mark",
            State::IdleSweep => "idle-sweep",
        }
    }

    /// What the state counts as for utilisation: only [`State::Mutator`] is mutator time, only
    /// [`State::Idle`], [`State::IdleMark`] and [`State::IdleSweep`] are left out (no program code
    /// was waiting to run); everything else is the collector's.
    pub const fn category(self) -> Category {
        match self {
            State::Mutator => Category::Mutator,
            State::Idle | State::IdleMark | State::IdleSweep => Category::Halted,
            _ => Category::Gc,
        }
    }

    /// The state with discriminant `v`.
    pub const fn from_u8(v: u8) -> Option<State> {
        if (v as usize) < COUNT {
            Some(State::ALL[v as usize])
        } else {
            None
        }
    }

    /// The state called `name` (see [`State::name`]).
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The dump's letter for this state: `A` for discriminant 0, `B` for 1, ...
    pub const fn letter(self) -> char {
        (b'A' + self as u8) as char
    }

    /// The state a dump letter stands for.
    pub const fn from_letter(c: char) -> Option<State> {
        if c.is_ascii_uppercase() {
            State::from_u8(c as u8 - b'A')
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_letters_and_discriminants_round_trip() {
        for (i, s) in State::ALL.into_iter().enumerate() {
            assert_eq!(s as usize, i, "ALL is in discriminant order");
            assert_eq!(State::from_u8(i as u8), Some(s));
            assert_eq!(State::from_name(s.name()), Some(s));
            assert_eq!(State::from_letter(s.letter()), Some(s));
        }
        assert_eq!(State::from_u8(COUNT as u8), None);
        assert_eq!(State::from_letter('a'), None);
        assert_eq!(State::from_letter((b'A' + COUNT as u8) as char), None);
        assert_eq!(State::from_name("gc"), None);
    }

    #[test]
    fn only_mutator_is_mutator_time_and_only_the_idle_states_are_left_out() {
        let mutator: Vec<_> = State::ALL.into_iter().filter(|s| s.category() == Category::Mutator).collect();
        let halted: Vec<_> = State::ALL.into_iter().filter(|s| s.category() == Category::Halted).collect();
        assert_eq!(mutator, [State::Mutator]);
        assert_eq!(halted, [State::Idle, State::IdleMark, State::IdleSweep]);
    }
}
