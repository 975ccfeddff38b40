//! Minimum mutator utilisation (Cheng and Blelloch, "A parallel, real-time garbage collector",
//! PLDI 2001): for a window length `w`, the worst share of any window of length `w` that the
//! program got to run. MMU(w) near 1 means no stretch of `w` lost much to the collector; 0 means
//! some stretch of `w` was all collector (a pause at least `w` long, say).
//!
//! Aggregated over cores, halted time excluded: a window `[t, t + w)`'s utilisation is
//!
//! ```text
//!          sum over cores of the time in State::Mutator within the window
//! u(t) = -------------------------------------------------------------------
//!         sum over cores of the time not in State::Idle (halted) within it
//! ```
//!
//! so a core with nothing to run neither helps nor hurts, and four cores of which one pauses for
//! the whole window give 75 %. Which states are mutator time, GC time or halted is
//! [`State::category`]: only `mutator` is mutator time, only `idle` is halted. Windows in which the
//! cores together ran (were not halted) for less than `w`, less than one core's worth, are left
//! out: they are mostly halted, and their ratio says little.
//!
//! The minimum is exact, not sampled: both sums are piecewise linear in `t`, with breakpoints
//! where `t` or `t + w` meets a state transition, and between breakpoints `u(t)`, a ratio of two
//! linear functions, is monotonic; so the minimum lies at a breakpoint or where the "ran at least
//! `w`" condition starts or stops holding, and only those points are evaluated (O(transitions)
//! per window length).

use alloc::vec::Vec;

use crate::state::{Category, State};

/// All cores' mutator and running time as cumulative piecewise-linear functions of time.
pub struct Utilisation {
    /// Breakpoints, ascending; the first is the span's start, the last its end.
    times: Vec<u64>,
    /// Core-ticks of mutator time and of running (not halted) time from the start to `times[k]`.
    mutator: Vec<u64>,
    running: Vec<u64>,
    /// Cores in mutator and cores running on `[times[k], times[k + 1])`.
    mutator_cores: Vec<u64>,
    running_cores: Vec<u64>,
}

impl Utilisation {
    /// From each core's `(start, end, state)` intervals, which must together cover `[from, to)`
    /// for every core (a core's intervals ascending and not overlapping; see
    /// `Track::intervals`).
    pub fn new(cores: &[Vec<(u64, u64, State)>], from: u64, to: u64) -> Utilisation {
        // (time, change in mutator cores, change in running cores)
        let mut changes: Vec<(u64, i64, i64)> = Vec::new();
        for intervals in cores {
            for &(start, end, state) in intervals {
                let (start, end) = (start.max(from), end.min(to));
                if start >= end {
                    continue;
                }
                let m = i64::from(state.category() == Category::Mutator);
                let r = i64::from(state.category() != Category::Halted);
                changes.push((start, m, r));
                changes.push((end, -m, -r));
            }
        }
        changes.sort_unstable_by_key(|c| c.0);
        let mut u = Utilisation {
            times: Vec::from([from]),
            mutator: Vec::from([0]),
            running: Vec::from([0]),
            mutator_cores: Vec::new(),
            running_cores: Vec::new(),
        };
        let (mut m, mut r) = (0i64, 0i64);
        let mut i = 0;
        // Changes at `from` set the first segment's slopes.
        while i < changes.len() && changes[i].0 <= from {
            m += changes[i].1;
            r += changes[i].2;
            i += 1;
        }
        while i < changes.len() {
            let t = changes[i].0;
            let k = u.times.len() - 1;
            let dt = t - u.times[k];
            u.mutator_cores.push(m as u64);
            u.running_cores.push(r as u64);
            u.times.push(t);
            u.mutator.push(u.mutator[k] + m as u64 * dt);
            u.running.push(u.running[k] + r as u64 * dt);
            while i < changes.len() && changes[i].0 == t {
                m += changes[i].1;
                r += changes[i].2;
                i += 1;
            }
        }
        if *u.times.last().unwrap_or(&from) < to {
            let k = u.times.len() - 1;
            let dt = to - u.times[k];
            u.mutator_cores.push(m as u64);
            u.running_cores.push(r as u64);
            u.times.push(to);
            u.mutator.push(u.mutator[k] + m as u64 * dt);
            u.running.push(u.running[k] + r as u64 * dt);
        }
        u
    }

    /// The span covered.
    pub fn span(&self) -> (u64, u64) {
        (self.times[0], *self.times.last().unwrap_or(&self.times[0]))
    }

    /// Mutator time over running time for the whole span (1 if nothing ran).
    pub fn overall(&self) -> f64 {
        let (m, r) = (*self.mutator.last().unwrap_or(&0), *self.running.last().unwrap_or(&0));
        if r == 0 {
            1.0
        } else {
            m as f64 / r as f64
        }
    }

    /// Both cumulative functions at `x`, with `k` a cursor that only moves forward (callers
    /// evaluate ascending `x`).
    fn at(&self, x: u64, k: &mut usize) -> (f64, f64) {
        while *k + 1 < self.times.len() - 1 && self.times[*k + 1] <= x {
            *k += 1;
        }
        let k = *k;
        let dt = x.saturating_sub(self.times[k]);
        if k + 1 >= self.times.len() {
            return (self.mutator[k] as f64, self.running[k] as f64);
        }
        ((self.mutator[k] + self.mutator_cores[k] * dt) as f64, (self.running[k] + self.running_cores[k] * dt) as f64)
    }

    /// MMU for windows of `w` ticks; `None` if the span is shorter than `w` or no window of it
    /// ran for at least `w` (see the module doc).
    pub fn mmu(&self, w: u64) -> Option<f64> {
        let (from, to) = self.span();
        if w == 0 || to - from < w {
            return None;
        }
        let last = to - w;
        // Window starts where the start or the end meets a breakpoint, ascending.
        let starts = self.times.iter().copied().filter(|&t| t <= last);
        let ends = self.times.iter().filter(|&&t| t >= from + w).map(|&t| t - w);
        let mut candidates: Vec<u64> = starts.chain(ends).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let threshold = w as f64;
        let (mut k0, mut k1) = (0, 0);
        let mut best: Option<f64> = None;
        let mut consider = |u: f64| best = Some(best.map_or(u, |b: f64| b.min(u)));
        let mut previous: Option<(f64, f64)> = None;
        for &t in &candidates {
            let (m0, r0) = self.at(t, &mut k0);
            let (m1, r1) = self.at(t + w, &mut k1);
            let (m, r) = (m1 - m0, r1 - r0);
            if r >= threshold {
                consider(m / r);
            }
            if let Some((pm, pr)) = previous {
                // Between two candidates both are linear: where the running time crosses the
                // threshold, the window there is a candidate too.
                if (pr < threshold) != (r < threshold) {
                    let f = (threshold - pr) / (r - pr);
                    consider((pm + (m - pm) * f) / threshold);
                }
            }
            previous = Some((m, r));
        }
        best
    }
}

/// Window lengths from 100 µs to 100 ms, ten per decade (1 ms and 10 ms among them), in ns.
pub fn standard_windows_ns() -> Vec<u64> {
    (0..=30).map(|k| libm_pow10(5.0 + k as f64 / 10.0)).collect()
}

/// `10^x` rounded to whole nanoseconds, exact at integer `x` (no `f64::powf` in `core`).
fn libm_pow10(x: f64) -> u64 {
    let whole = x as i32;
    let frac = x - whole as f64;
    // 10^frac = e^(frac ln 10), by its series: frac < 1, so 30 terms are far past f64 precision.
    let y = frac * core::f64::consts::LN_10;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for n in 1..30 {
        term *= y / n as f64;
        sum += term;
    }
    let scale = (0..whole).fold(1.0f64, |a, _| a * 10.0);
    (sum * scale + 0.5) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: State = State::Mutator;
    const P: State = State::Pause;
    const I: State = State::Idle;

    /// Intervals from `(start, state)` transitions up to `end`.
    fn track(transitions: &[(u64, State)], end: u64) -> Vec<(u64, u64, State)> {
        let mut out = Vec::new();
        for (i, &(t, s)) in transitions.iter().enumerate() {
            let next = transitions.get(i + 1).map_or(end, |n| n.0);
            out.push((t, next, s));
        }
        out
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn all_mutator_is_one_at_every_window() {
        let u = Utilisation::new(&[track(&[(0, M)], 1000)], 0, 1000);
        for w in [1, 10, 999, 1000] {
            assert!(close(u.mmu(w), 1.0), "w={w}: {:?}", u.mmu(w));
        }
        assert_eq!(u.mmu(1001), None, "longer than the span");
        assert!((u.overall() - 1.0).abs() < 1e-12);
    }

    /// One core pausing for 10 ticks every 100: MMU is 0 up to the pause length, then
    /// (w - 10) / w up to the period, (100 - 10) / 100 at the period.
    #[test]
    fn periodic_pauses_give_the_textbook_curve() {
        let mut transitions = Vec::new();
        for period in 0..10u64 {
            transitions.push((period * 100, M));
            transitions.push((period * 100 + 50, P));
            transitions.push((period * 100 + 60, M));
        }
        let u = Utilisation::new(&[track(&transitions, 1000)], 0, 1000);
        assert!(close(u.mmu(5), 0.0));
        assert!(close(u.mmu(10), 0.0));
        assert!(close(u.mmu(20), 0.5));
        assert!(close(u.mmu(50), 0.8));
        assert!(close(u.mmu(100), 0.9));
        assert!((u.overall() - 0.9).abs() < 1e-12);
    }

    #[test]
    fn cores_are_summed() {
        // Core 0 pauses [10, 20); core 1 always runs mutators: a 10-tick window over the pause
        // has 10 of 20 core-ticks of mutator time.
        let cores = [track(&[(0, M), (10, P), (20, M)], 100), track(&[(0, M)], 100)];
        let u = Utilisation::new(&cores, 0, 100);
        assert!(close(u.mmu(10), 0.5));
        assert!(close(u.mmu(20), 0.75));
    }

    #[test]
    fn halted_time_is_excluded() {
        // Core 1 is halted throughout: it does not dilute core 0's pause.
        let cores = [track(&[(0, M), (10, P), (20, M)], 100), track(&[(0, I)], 100)];
        let u = Utilisation::new(&cores, 0, 100);
        assert!(close(u.mmu(10), 0.0));
        assert!(close(u.mmu(20), 0.5));
    }

    #[test]
    fn mostly_halted_windows_are_left_out() {
        // Core 0 pauses for one tick then halts; nothing else runs. Windows over [0, 10) ran
        // at most 2 ticks of 10: not counted, and nothing else is left.
        let cores = [track(&[(0, M), (1, P), (2, I)], 100)];
        let u = Utilisation::new(&cores, 0, 100);
        assert_eq!(u.mmu(10), None);
        // With a second core running mutators throughout, every window counts.
        let cores = [cores[0].clone(), track(&[(0, M)], 100)];
        let u = Utilisation::new(&cores, 0, 100);
        assert!(close(u.mmu(10), 10.0 / 11.0), "{:?}", u.mmu(10));
    }

    #[test]
    fn the_span_clips_the_tracks() {
        let u = Utilisation::new(&[track(&[(0, P), (50, M)], 200)], 50, 150);
        assert_eq!(u.span(), (50, 150));
        assert!(close(u.mmu(100), 1.0));
    }

    /// Against brute force: every integer window start (a superset of the breakpoints when
    /// every transition is at an integer tick) on random three-core tracks. The exact minimum can
    /// only be lower (a threshold crossing between integers), and not by much.
    #[test]
    fn agrees_with_brute_force_on_random_tracks() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..20 {
            let end = 400;
            let cores: Vec<_> = (0..3)
                .map(|_| {
                    let mut t = 0;
                    let mut transitions = Vec::new();
                    while t < end {
                        transitions.push((t, State::ALL[next(9) as usize]));
                        t += 1 + next(40);
                    }
                    track(&transitions, end)
                })
                .collect();
            let u = Utilisation::new(&cores, 0, end);
            let at = |t: u64, s: State, c: &Vec<(u64, u64, State)>| {
                c.iter().find(|&&(a, b, _)| a <= t && t < b).is_some_and(|&(_, _, x)| x.category() == s.category())
            };
            for w in [1, 7, 30, 100, 399] {
                let mut brute: Option<f64> = None;
                for t in 0..=end - w {
                    let (mut m, mut r) = (0u64, 0u64);
                    for c in &cores {
                        for x in t..t + w {
                            m += u64::from(at(x, M, c));
                            r += u64::from(!at(x, I, c));
                        }
                    }
                    if r >= w {
                        let v = m as f64 / r as f64;
                        brute = Some(brute.map_or(v, |b: f64| b.min(v)));
                    }
                }
                let exact = u.mmu(w);
                match (exact, brute) {
                    (Some(e), Some(b)) => assert!(e <= b + 1e-9 && e >= b - 0.05, "w={w}: exact {e}, brute {b}"),
                    (e, b) => assert_eq!(e.is_some(), b.is_some(), "w={w}: exact {e:?}, brute {b:?}"),
                }
            }
        }
    }

    #[test]
    fn standard_windows_run_from_100_us_to_100_ms_with_1_and_10_ms() {
        let w = standard_windows_ns();
        assert_eq!(w.len(), 31);
        assert_eq!((w[0], w[30]), (100_000, 100_000_000));
        assert!(w.contains(&1_000_000) && w.contains(&10_000_000));
        assert!(w.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(w[1], 125_893, "10^5.1 rounded");
    }
}
