//! The pacer: when a cycle starts, and how much marking an allocating mutator owes (Go's
//! gcControllerState in mgcpacer.go, in a simpler, feedback form).
//!
//! - **Goal.** A cycle that marked `live` bytes sets the next cycle's heap goal to
//!   `live × (1 + percent/100)` (GOGC): the heap in use should peak there. Never below the heap
//!   minimum × percent/100 (Go's `heapMinimum`, 4 MiB at GOGC 100), which is also the first
//!   cycle's goal: a small heap is not collected over and over while a program starts.
//! - **Trigger.** The next cycle starts at `live + f × (goal − live)`. What the mutators allocate
//!   between the trigger and mark termination (the *runway* they use) lands on top, so the trigger
//!   must come early enough that the peak meets the goal. `f` is fed back from each cycle: the
//!   runway the last cycle used, as a share of its distance `goal − live`, smoothed over cycles
//!   (Go's pre-1.18 trigger-ratio controller has the same shape). The peak is the heap in use at
//!   mark termination: allocation during the mark is black and nothing is freed before the sweep.
//!   A cycle whose mutators had to assist used *less* runway than their allocation would have
//!   taken, for two reasons, and the runway it shows is scaled up by both: the assists marked for
//!   it, so the background workers alone would have marked longer, by the utilisation the
//!   assists took over theirs, `(u_bg + u_assist) / u_bg` (Go's controller scales by
//!   `utilization / gcGoalUtilization` the same way, its goal 5 points above the background
//!   share; here the goal is no assists at all: their time is what cuts the mutators'
//!   utilisation below 75 % within a mark); and the mutators allocated nothing while they
//!   assisted, so without assists they would have allocated faster over that longer mark, by
//!   `(1 − u_bg) / (1 − u_bg − u_assist)`. Without the first term the trigger settled where
//!   assists marked a third of every cycle and the peaks still met their goals; with it alone
//!   the trigger still came late enough that a steady-state mark's assists took up to a third
//!   of a core in its worst 10 ms (2026-12-06 in docs/experiments.md).
//! - **Assists.** While a cycle marks, a mutator that allocates `n` bytes owes `n × ratio` bytes
//!   of marking, paid by scanning grey objects itself (Go's gcAssistAlloc), so that a cycle whose
//!   marking falls behind slows down its allocators instead of overshooting the goal. The ratio is
//!   set at mark start: the marking expected (last cycle's live bytes) over the room left until
//!   the goal, at least [`MIN_ROOM_SHARE`] of the distance so that a late start does not stop the
//!   mutators dead. The same two numbers make the mark's *schedule*: marking is on it while
//!   `scanned / expected ≥ allocated / room`. A debt is only paid while the mark is behind it;
//!   ahead of it, what the collecting task, the mark workers and idle cores marked pays it (Go's
//!   background scan credit), so the mutators assist only when the mark would otherwise end
//!   past its goal.
//!
//! Invariants:
//! - `TRIGGER_SHARE_MIN <= f <= TRIGGER_SHARE_MAX`: a trigger never at the live heap (cycles back
//!   to back) and never at the goal (no runway at all). The floor applies to the goal, not to the
//!   trigger, so that even the first cycle and those of a small live heap keep that runway (a
//!   trigger floor at the goal floor had left them none: their peaks overshot by 10-40 %).
//! - The pacer only computes: the collector calls [`Pacer::end_cycle`] at mark termination (world
//!   stopped) and stores the results where allocators read them with Relaxed loads; a stale
//!   trigger or ratio only makes one allocation's decision late.

/// The trigger never comes before this share of the distance from live to goal.
pub const TRIGGER_SHARE_MIN: f64 = 0.4;
/// Nor after this share.
pub const TRIGGER_SHARE_MAX: f64 = 0.95;
/// The share a new runway estimate gets in the smoothed one.
pub const RUNWAY_SMOOTHING: f64 = 0.5;
/// The assist ratio counts at least this share of the distance as room (see the module docs).
pub const MIN_ROOM_SHARE: f64 = 0.1;
/// The heap minimum at GOGC 100 (Go's `defaultHeapMinimum`): the goal floor, scaled by percent.
pub const HEAP_MINIMUM: usize = 4 << 20;
/// The share of the cores the background mark work takes (Go's `gcBackgroundUtilization`): the
/// utilisation the runway feedback aims at, assists on top of it counting as missing runway.
pub const BACKGROUND_UTILISATION: f64 = 0.25;

/// The pacer's state between cycles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacer {
    /// Smoothed runway: allocation between trigger and mark termination, as a share of the
    /// cycle's distance `goal − live`.
    runway_share: f64,
}

/// What the pacer decided for the next cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Heap in use at which the next cycle should peak.
    pub goal: usize,
    /// Heap in use at which it starts.
    pub trigger: usize,
}

/// One finished cycle as the pacer needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleFacts {
    /// Live bytes the previous cycle marked (this cycle's plan was made from them).
    pub live_before: usize,
    /// This cycle's goal and trigger.
    pub plan: Plan,
    /// Heap in use when the cycle started (at or past the trigger; more if it started late).
    pub started_at: usize,
    /// Heap in use at mark termination.
    pub peak: usize,
    /// Live bytes this cycle marked.
    pub live: usize,
    /// The mark's length (from mark setup to termination) times the cores: the core time it
    /// spanned, in nanoseconds.
    pub mark_core_ns: u64,
    /// Time the mutators spent assisting during it, all cores together.
    pub assist_ns: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// No history yet: assume the mutators use a third of the distance while a cycle marks.
    pub const fn new() -> Self {
        Pacer { runway_share: 1.0 / 3.0 }
    }

    /// The share of the distance at which the next trigger comes.
    pub fn trigger_share(&self) -> f64 {
        (1.0 - self.runway_share).clamp(TRIGGER_SHARE_MIN, TRIGGER_SHARE_MAX)
    }

    /// The goal and trigger after a cycle that marked `live` bytes (0: before the first cycle),
    /// with a heap minimum of `heap_minimum` at GOGC 100 (see the module docs).
    pub fn plan(&self, live: usize, percent: u32, heap_minimum: usize) -> Plan {
        let goal = goal(live, percent).max(goal_floor(heap_minimum, percent));
        let distance = goal.saturating_sub(live);
        let trigger = (live + (distance as f64 * self.trigger_share()) as usize).min(goal);
        Plan { goal, trigger }
    }

    /// Learn from a finished cycle: the runway it used from its start to its peak, as a share of
    /// its distance, enters the smoothed estimate. Returns the next plan.
    pub fn end_cycle(&mut self, facts: CycleFacts, percent: u32, heap_minimum: usize) -> Plan {
        let distance = facts.plan.goal.saturating_sub(facts.live_before);
        if distance > 0 {
            let used = facts.peak.saturating_sub(facts.started_at) as f64 / distance as f64 * facts.assist_scale();
            self.runway_share = (1.0 - RUNWAY_SMOOTHING) * self.runway_share + RUNWAY_SMOOTHING * used.min(1.0);
        }
        self.plan(facts.live, percent, heap_minimum)
    }
}

/// The lowest goal at `percent`: the heap minimum scaled like Go's (`heapMinimum` is
/// `defaultHeapMinimum × GOGC/100`).
pub fn goal_floor(heap_minimum: usize, percent: u32) -> usize {
    (heap_minimum as u128 * percent as u128 / 100).min(usize::MAX as u128) as usize
}

impl CycleFacts {
    /// How much more runway the cycle would have used without its assists (see the module docs):
    /// 1 without any, `(u_bg + u_a) / u_bg × (1 − u_bg) / (1 − u_bg − u_a)` with them (the
    /// longer mark, and the faster allocation of mutators that no longer assist; the last
    /// denominator is kept at 5 % or more, so that a cycle the assists took over whole counts as
    /// a large runway, not an infinite one).
    pub fn assist_scale(&self) -> f64 {
        if self.mark_core_ns == 0 {
            return 1.0;
        }
        let u_a = (self.assist_ns as f64 / self.mark_core_ns as f64).min(1.0);
        let u_bg = BACKGROUND_UTILISATION;
        (u_bg + u_a) / u_bg * (1.0 - u_bg) / (1.0 - u_bg - u_a).max(0.05)
    }
}

/// The heap goal after a cycle that marked `live` bytes: `live × (1 + percent/100)`.
pub fn goal(live: usize, percent: u32) -> usize {
    let g = live as u128 * (100 + percent as u128) / 100;
    g.min(usize::MAX as u128) as usize
}

/// Bytes of marking an allocated byte owes during a mark that starts with `in_use` bytes in use
/// (see the module docs), scaled by 2^16 for integer use on the allocation path.
pub fn assist_ratio_fixed(expected_mark: usize, plan: Plan, live_before: usize, in_use: usize) -> u64 {
    let room = assist_room(plan, live_before, in_use) as f64;
    ((expected_mark as f64 / room) * 65536.0).min(u32::MAX as f64) as u64
}

/// The allocation room a mark that starts with `in_use` bytes in use has until its goal: at least
/// [`MIN_ROOM_SHARE`] of the distance (see the module docs), and at least one byte.
pub fn assist_room(plan: Plan, live_before: usize, in_use: usize) -> usize {
    let distance = plan.goal.saturating_sub(live_before).max(1);
    let min_room = (distance as f64 * MIN_ROOM_SHARE) as usize;
    plan.goal.saturating_sub(in_use).max(min_room).max(1)
}

/// Whether a cycle's peak landed within `tolerance` (a fraction, 0.1 for ±10 %) of its goal.
pub fn peak_near_goal(peak: usize, goal: usize, tolerance: f64) -> bool {
    goal > 0 && (peak as f64 - goal as f64).abs() <= tolerance * goal as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn goal_is_gogc() {
        assert_eq!(goal(10 * MIB, 100), 20 * MIB);
        assert_eq!(goal(10 * MIB, 50), 15 * MIB);
        assert_eq!(goal(10 * MIB, 200), 30 * MIB);
        assert_eq!(goal(usize::MAX, 100), usize::MAX, "saturates");
    }

    #[test]
    fn trigger_stays_between_its_bounds() {
        let mut p = Pacer::new();
        let plan = p.plan(10 * MIB, 100, 0);
        assert!(plan.trigger > 10 * MIB && plan.trigger < plan.goal, "{plan:?}");
        // A cycle whose mutators used the whole distance and more: the trigger moves to its floor.
        let facts = steady(10 * MIB, plan, 40 * MIB, 0);
        for _ in 0..10 {
            p.end_cycle(facts, 100, 0);
        }
        assert!((p.trigger_share() - TRIGGER_SHARE_MIN).abs() < 1e-9);
        // One that used nothing: towards the ceiling.
        let idle = CycleFacts { peak: plan.trigger, ..facts };
        for _ in 0..20 {
            p.end_cycle(idle, 100, 0);
        }
        assert!((p.trigger_share() - TRIGGER_SHARE_MAX).abs() < 1e-9);
        let first = p.plan(0, 100, HEAP_MINIMUM);
        assert_eq!(first.goal, HEAP_MINIMUM, "the goal floor holds");
        assert!(first.trigger < first.goal, "with runway below it: {first:?}");
        assert_eq!(p.plan(0, 50, HEAP_MINIMUM).goal, HEAP_MINIMUM / 2, "scaled by percent");
        assert_eq!(p.plan(10 * MIB, 50, HEAP_MINIMUM).goal, 15 * MIB, "a goal above the floor");
    }

    /// A cycle of a steady live heap that started at its trigger and peaked at `peak`, with
    /// `assist_ns` of assists in a mark of 4 core-ms.
    fn steady(live: usize, plan: Plan, peak: usize, assist_ns: u64) -> CycleFacts {
        CycleFacts { live_before: live, plan, started_at: plan.trigger, peak, live, mark_core_ns: 4_000_000, assist_ns }
    }

    /// A steady mutator that allocates the same runway every cycle: the feedback settles the
    /// peak within 1 % of the goal, from either side.
    #[test]
    fn feedback_lands_the_peak_on_the_goal() {
        for runway_share in [0.1, 0.3, 0.5] {
            let mut p = Pacer::new();
            let live = 20 * MIB;
            let mut plan = p.plan(live, 100, 0);
            let mut last_error = f64::MAX;
            for _ in 0..12 {
                let runway = ((plan.goal - live) as f64 * runway_share) as usize;
                let peak = plan.trigger + runway;
                last_error = (peak as f64 - plan.goal as f64).abs() / plan.goal as f64;
                plan = p.end_cycle(steady(live, plan, peak, 0), 100, 0);
            }
            assert!(last_error < 0.01, "runway {runway_share}: peak {last_error:.3} off the goal");
            assert!(peak_near_goal(
                plan.trigger + ((plan.goal - live) as f64 * runway_share) as usize,
                plan.goal,
                0.01
            ));
        }
    }

    /// A cycle whose mutators assisted used less runway than it shows: the trigger moves earlier
    /// than the same runway without assists would put it, by the utilisation the assists took
    /// over the background share (without the term the two plans are equal: the negative).
    #[test]
    fn assists_move_the_trigger_earlier() {
        let live = 20 * MIB;
        let plan_after = |assist_ns: u64| {
            let mut p = Pacer::new();
            let mut plan = p.plan(live, 100, HEAP_MINIMUM);
            for _ in 0..8 {
                let peak = plan.trigger + (plan.goal - live) / 5;
                plan = p.end_cycle(steady(live, plan, peak, assist_ns), 100, HEAP_MINIMUM);
            }
            plan
        };
        let (clean, assisted) = (plan_after(0), plan_after(400_000));
        // 10 % of the mark's core time in assists: (0.25 + 0.1) / 0.25 x 0.75 / 0.65 = 1.615
        // times the runway (the longer mark, the faster allocation).
        let share = |plan: Plan| (plan.trigger - live) as f64 / (plan.goal - live) as f64;
        assert!((share(clean) - 0.8).abs() < 0.01, "no assists: the runway as shown ({})", share(clean));
        let expect = 1.0 - 0.2 * 1.4 * 0.75 / 0.65;
        assert!((share(assisted) - expect).abs() < 0.01, "assisted: 1.615 x the runway ({})", share(assisted));
    }

    #[test]
    fn assist_ratio_grows_as_the_room_shrinks() {
        let plan = Plan { goal: 20 * MIB, trigger: 16 * MIB };
        let early = assist_ratio_fixed(10 * MIB, plan, 10 * MIB, 16 * MIB);
        let late = assist_ratio_fixed(10 * MIB, plan, 10 * MIB, 19 * MIB);
        let past = assist_ratio_fixed(10 * MIB, plan, 10 * MIB, 25 * MIB);
        assert_eq!(early, 10 * 65536 / 4, "10 MiB to mark over 4 MiB of room: 2.5 bytes per byte");
        assert!(late > early && past >= late, "{early} {late} {past}");
        assert_eq!(past, 10 * 65536, "the room never counts as less than a tenth of the distance");
        assert!(peak_near_goal(21 * MIB, 20 * MIB, 0.1) && !peak_near_goal(23 * MIB, 20 * MIB, 0.1));
    }
}
