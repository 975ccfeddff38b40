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
//!
//! A core could still stand still for milliseconds, running its tick handler at every slice and
//! none of its own code in between (a drain of 96 objects took 6 ms; the same registers were
//! interrupted at a hundred ticks in a row). QEMU's interrupt log (`-d int`) showed why: the
//! handler armed the next boundary and then yielded; when the vCPU ran again that boundary had
//! passed, so it took the next tick at the exception return, in a slice it did not own, yielded
//! again, and so on, skipping its own slices too. A stalled marker holding grey objects kept the
//! whole mark waiting (the collecting core waited up to 9 ms for one drain's 25 objects). Two
//! rules stop it: the handler arms the next boundary after its yield, and a core whose registers
//! have not moved for more than a round of slices keeps the slice it is in, once a round
//! ([`Frozen::keeps_slice`]). Since then the longest stall in a gcbench-quick run is
//! 0.2-2.0 ms (it was 5-7 ms on core 0). [`Frozen`] finds those stretches at the slice ticks
//! (the interrupted registers did not change for two rounds of slices, and the core is not in a
//! loop around a `yield`, `wfe`, `wfi` or `isb`), and the kernel reports them with the timeline (`STALLS` lines) so
//! that MMU can leave them out like halted time: the core was not running, for no reason of the
//! collector's or the program's. The detector sees registers only: a loop whose only progress is
//! in memory (a counter kept on the stack, a spin on a flag without a hint) looks stalled too.
//! The kernel's waits all run a hint, and its work loops move a pointer or an index; the QEMU
//! case `icount-stall-detector` checks a spinning core is found and a computing one is not.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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

/// One core's stall detector, fed at each slice tick (see the module docs). Between two of its
/// own slices a core normally runs nothing (the other cores' slices): its registers are the same
/// at up to `cores` ticks in a row. A run of unchanged ticks longer than `min_ticks` (two rounds
/// of slices: the core missed one of its own) is a stall.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frozen {
    /// The previous tick: when, and the hash of the registers it interrupted.
    last: Option<(u64, u64)>,
    /// The first tick that saw those registers.
    since: u64,
    /// The last tick at which [`Frozen::keeps_slice`] kept a slice.
    kept: Option<u64>,
}

impl Frozen {
    /// A detector that has seen no tick.
    pub const fn new() -> Self {
        Frozen { last: None, since: 0, kept: None }
    }

    /// A slice tick at counter value `now` that interrupted registers hashing to `hash`
    /// ([`registers_hash`]); `waiting` says whether the core is in a wait loop ([`is_wait_hint`]
    /// near the interrupted instruction), where unchanged registers are a core that waits (its
    /// hint ran), not one that stood still: asked only when the registers did not change. Returns
    /// a stall that this tick ended: `(start, end)`, the first and the last tick that saw the same
    /// registers, when they are more than `min_ticks` apart.
    pub fn tick(&mut self, now: u64, hash: u64, waiting: impl FnOnce() -> bool, min_ticks: u64) -> Option<(u64, u64)> {
        let last = self.last.replace((now, hash));
        match last {
            Some((_, h)) if h == hash && !waiting() => None,
            Some((at, _)) => {
                let run = (core::mem::replace(&mut self.since, now), at);
                (run.1 - run.0 > min_ticks).then_some(run)
            }
            None => {
                self.since = now;
                None
            }
        }
    }

    /// The stall under way at the last tick, if it is one (for a dump taken meanwhile).
    pub fn ongoing(&self, min_ticks: u64) -> Option<(u64, u64)> {
        let (at, _) = self.last?;
        (at - self.since > min_ticks).then_some((self.since, at))
    }

    /// Whether the core keeps the slice of the last tick although another core owns it: its
    /// registers had not changed for more than one round of `cores` slices `slice` long, so it
    /// ran nothing in its own slice (see the module docs: a core that yielded at every tick it
    /// took ran nothing but its tick handler for milliseconds). At most one slice per round: a
    /// core that does run but looks frozen (a loop without a wait hint whose registers stay put)
    /// must not take every slice, or the core after it, skipped at each deadline its turns end
    /// at, stands still instead. A core in a wait loop (its hint ran) keeps nothing.
    pub fn keeps_slice(&mut self, cores: usize, slice: u64) -> bool {
        let Some((at, _)) = self.last else { return false };
        let round = cores as u64 * slice;
        let keep = at - self.since > round && self.kept.is_none_or(|k| k < self.since || at - k >= round);
        if keep {
            self.kept = Some(at);
        }
        keep
    }
}

/// A hash of an interrupted core's registers (general-purpose registers, stack pointer, return
/// address): code that runs changes one of them (a loop changes its counter), code that did
/// not run leaves them all as they were.
pub fn registers_hash(x: &[u64], sp: u64, pc: u64) -> u64 {
    // FNV-1a over the words: equal inputs give equal hashes, which is all `Frozen` needs; a
    // collision (two different states hashing alike at consecutive ticks) is about one in 2^64.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in x.iter().copied().chain([sp, pc]) {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How many instructions around an interrupted one (from the one after it back) are looked at for
/// a wait hint: a spin loop's body is a few instructions, and the interrupt lands anywhere in it.
pub const WAIT_LOOP_WORDS: usize = 8;

/// Whether `insn` is A64's `yield`, `wfe` or `wfi` (the hint instructions a waiting core runs), or
/// `isb`, which `core::hint::spin_loop` emits: a loop spinning on it looks frozen too, and is a
/// core that waits (and burns its turn), not one QEMU left unrun.
pub fn is_wait_hint(insn: u32) -> bool {
    matches!(insn, 0xd503_203f | 0xd503_205f | 0xd503_207f | 0xd503_3fdf)
}

/// Stall stretches `(start, end)` in counter ticks, at most `N`, neighbours merged (a stretch
/// that starts where the last one ended extends it); what did not fit is counted in `dropped`.
#[derive(Clone, Debug)]
pub struct Stretches<const N: usize> {
    pub items: [(u64, u64); N],
    pub len: usize,
    /// Counter ticks of stretches that did not fit.
    pub dropped: u64,
}

impl<const N: usize> Stretches<N> {
    pub const fn new() -> Self {
        Stretches { items: [(0, 0); N], len: 0, dropped: 0 }
    }

    /// Adds `[start, end)`.
    pub fn push(&mut self, start: u64, end: u64) {
        if self.len > 0 && self.items[self.len - 1].1 == start {
            self.items[self.len - 1].1 = end;
        } else if self.len < N {
            self.items[self.len] = (start, end);
            self.len += 1;
        } else {
            self.dropped += end - start;
        }
    }

    /// The stretches recorded.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.items[..self.len]
    }
}

impl<const N: usize> Default for Stretches<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The dump of one core's stretches (after the timeline's, see `timeline::dump` in the kernel),
/// `ongoing` (a stall under way, [`Frozen::ongoing`]) after them: `STALLS core=<c>
/// stretches=<n> dropped=<ticks>`, then `ST <c> <start>:<end> ...` lines of at most
/// [`STALL_LINE_MAX`] characters, counter ticks in decimal.
pub fn stall_lines<const N: usize>(core: usize, s: &Stretches<N>, ongoing: Option<(u64, u64)>) -> Vec<String> {
    let all: Vec<(u64, u64)> = s.as_slice().iter().copied().chain(ongoing).collect();
    let mut lines = vec![format!("STALLS core={core} stretches={} dropped={}", all.len(), s.dropped)];
    let prefix = format!("ST {core}");
    let mut line = prefix.clone();
    for &(start, end) in &all {
        let item = format!(" {start}:{end}");
        if line.len() + item.len() > STALL_LINE_MAX {
            lines.push(core::mem::replace(&mut line, prefix.clone()));
        }
        line.push_str(&item);
    }
    if line.len() > prefix.len() {
        lines.push(line);
    }
    lines
}

/// One core's stall stretches, `(start, end)` in counter ticks.
pub type CoreStalls = Vec<(u64, u64)>;

/// Longest `ST` line.
pub const STALL_LINE_MAX: usize = 118;

/// Every core's stretches from a console's `STALLS`/`ST` lines (`stall_lines`), by core; `None`
/// if there are none (a run without `tick.slice=`, or a kernel that predates them). An error
/// for a line that does not parse, or stretches that do not add up to their header's count.
pub fn parse_stalls(console: &str) -> Result<Option<Vec<CoreStalls>>, String> {
    let mut cores: Vec<(usize, Vec<(u64, u64)>)> = Vec::new();
    let mut expected: Vec<(usize, usize)> = Vec::new();
    for line in console.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("STALLS ") {
            let field = |key: &str| {
                rest.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or_else(|| format!("{line:?}: no {key}"))
            };
            let core = field("core=")?;
            expected.push((core, field("stretches=")?));
            cores.push((core, Vec::new()));
        } else if let Some(rest) = line.strip_prefix("ST ") {
            let mut words = rest.split_whitespace();
            let core: usize = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| format!("{line:?}: no core"))?;
            let Some((_, list)) = cores.iter_mut().rev().find(|(c, _)| *c == core) else {
                return Err(format!("{line:?} before its STALLS line"));
            };
            for w in words {
                let parsed = w.split_once(':').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                let (start, end): (u64, u64) = parsed.ok_or_else(|| format!("{line:?}: {w:?} is no start:end"))?;
                if end <= start {
                    return Err(format!("{line:?}: empty stretch {w:?}"));
                }
                list.push((start, end));
            }
        }
    }
    if cores.is_empty() {
        return Ok(None);
    }
    for (core, n) in expected {
        let got = cores.iter().find(|(c, _)| *c == core).map_or(0, |(_, l)| l.len());
        if got != n {
            return Err(format!("core {core}: {got} stall stretches, its STALLS line says {n}"));
        }
    }
    let ncores = cores.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
    let mut by_core = vec![Vec::new(); ncores];
    for (core, list) in cores {
        by_core[core] = list;
    }
    Ok(Some(by_core))
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
    #[test]
    fn a_core_that_did_not_run_in_its_own_slice_keeps_one_slice_a_round() {
        let (cores, slice) = (4, 100);
        let mut f = Frozen::new();
        let h = registers_hash(&[1, 2, 3], 0x1000, 0x4000);
        assert!(!f.keeps_slice(cores, slice), "no tick yet");
        // The same registers for one round (4 slices): a core waiting for its own slice.
        for t in [100, 200, 300, 400, 500] {
            f.tick(t, h, || false, 800);
            assert!(!f.keeps_slice(cores, slice), "at {t}: within one round");
        }
        // Past one round: its own slice went by and it ran nothing. It keeps this slice, then
        // none until another round went by with its registers still put.
        let kept: Vec<u64> = (6..=14)
            .map(|n| n * 100)
            .filter(|&t| {
                f.tick(t, h, || false, 800);
                f.keeps_slice(cores, slice)
            })
            .collect();
        assert_eq!(kept, [600, 1000, 1400]);
        // It ran (its registers moved): an ordinary core again, for a round at least.
        let moved = registers_hash(&[1, 2, 4], 0x1000, 0x4000);
        for t in [1500, 1600, 1700, 1800, 1900] {
            f.tick(t, moved, || false, 800);
            assert!(!f.keeps_slice(cores, slice), "at {t}: it ran at 1500");
        }
        // A waiting core's registers do not move either; it ran its wait hint, so it missed nothing.
        let w = registers_hash(&[9], 0x2000, 0x5000);
        for t in [2000, 2100, 2200, 2300, 2400, 2500, 2600, 2700] {
            f.tick(t, w, || true, 800);
            assert!(!f.keeps_slice(cores, slice), "at {t}: waiting");
        }
    }

    #[test]
    fn a_core_whose_registers_did_not_change_stood_still() {
        let mut f = Frozen::new();
        let h = registers_hash(&[1, 2, 3], 0x1000, 0x4000);
        let moved = registers_hash(&[1, 2, 4], 0x1000, 0x4000);
        assert_ne!(moved, h, "one register moved: the core ran");
        // Unchanged for 3 ticks (100 to 300), within the 250 a core may wait for its slice.
        assert_eq!(f.tick(100, h, || false, 250), None);
        assert_eq!(f.tick(200, h, || false, 250), None);
        assert_eq!(f.tick(300, h, || false, 250), None);
        assert_eq!(f.tick(400, moved, || false, 250), None, "a wait for its own slice");
        // Unchanged from 400 to 800: a stall, reported when the registers move.
        for t in [500, 600, 700, 800] {
            assert_eq!(f.tick(t, moved, || false, 250), None);
        }
        assert_eq!(f.ongoing(250), Some((400, 800)));
        assert_eq!(f.tick(900, h, || false, 250), Some((400, 800)));
        assert_eq!(f.ongoing(250), None);
        // Unchanged but waiting in a loop: no stall however long.
        for t in [1000, 1100, 1200, 1300, 1400] {
            assert_eq!(f.tick(t, h, || true, 250), None);
        }
        assert_eq!(f.tick(1500, moved, || false, 250), None);
    }

    #[test]
    fn the_hash_sees_every_register() {
        let base = [7u64; 31];
        let h = registers_hash(&base, 1, 2);
        for i in 0..31 {
            let mut r = base;
            r[i] ^= 1;
            assert_ne!(registers_hash(&r, 1, 2), h, "x{i}");
        }
        assert_ne!(registers_hash(&base, 3, 2), h, "sp");
        assert_ne!(registers_hash(&base, 1, 3), h, "pc");
    }

    #[test]
    fn wait_hints() {
        assert!(is_wait_hint(0xd503203f) && is_wait_hint(0xd503205f) && is_wait_hint(0xd503207f));
        assert!(is_wait_hint(0xd5033fdf), "isb: spin_loop's hint");
        assert!(!is_wait_hint(0xd503201f), "nop");
        assert!(!is_wait_hint(0xd5033f9f), "dsb sy");
    }

    #[test]
    fn stretches_merge_and_count_what_does_not_fit() {
        let mut s = Stretches::<2>::new();
        s.push(10, 20);
        s.push(20, 30);
        assert_eq!(s.as_slice(), [(10, 30)]);
        s.push(40, 50);
        s.push(60, 65);
        assert_eq!(s.as_slice(), [(10, 30), (40, 50)]);
        assert_eq!(s.dropped, 5);
    }
    #[test]
    fn stall_lines_round_trip() {
        let mut s = Stretches::<64>::new();
        for i in 0..40u64 {
            s.push(1_000_000 * i, 1_000_000 * i + 5_000 + i);
        }
        let lines = stall_lines(2, &s, None);
        assert!(lines.iter().all(|l| l.len() <= STALL_LINE_MAX), "{lines:?}");
        assert!(lines.len() > 2, "the stretches span several lines");
        let console = format!("boot\n{}\nmore\n", lines.join("\n"));
        let parsed = parse_stalls(&console).unwrap().unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(parsed[0].is_empty() && parsed[1].is_empty());
        assert_eq!(parsed[2], s.as_slice());
        // A stall under way comes last, counted.
        let with = parse_stalls(&stall_lines(0, &s, Some((99_000_000, 99_001_000))).join("\n")).unwrap().unwrap();
        assert_eq!(with[0].len(), 41);
        assert_eq!(with[0][40], (99_000_000, 99_001_000));
        assert_eq!(parse_stalls("no stalls here").unwrap(), None);
        // A lost line: the count does not add up.
        let short: Vec<_> = lines.iter().take(lines.len() - 1).cloned().collect();
        assert!(parse_stalls(&short.join("\n")).is_err());
        assert!(parse_stalls("STALLS core=0 stretches=1 dropped=0\nST 0 5:5").is_err(), "empty stretch");
    }
}
