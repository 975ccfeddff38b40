//! `gc.trace=1` (and the console's `gctrace on`): one line per collection cycle in the format of
//! Go's `GODEBUG=gctrace=1`, so tools that read Go's gctrace read tricolor's.
//!
//! ```text
//! gc 7 @2.418s 3%: 0.21+1.4+0.32 ms clock, 0.84+0/2.9/0+1.2 ms cpu, 5->5->2 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 4 P
//! ```
//!
//! The fields, as Go's runtime prints them in `gcMarkTermination` (src/runtime/mgc.go), are
//! `gc N @Ts P%: a+b+c ms clock, d+e/f/g+h ms cpu, i->j->k MB, l MB goal, m MB stacks, n MB globals,
//! p P`, with ` (forced)` appended for a cycle a user asked for. README.md says which of them
//! tricolor fills and how ([`CycleTrace`] has a field for each). Times are formatted like Go's
//! `fmtNSAsMS` (two significant digits below 10 ms, whole milliseconds above), sizes are whole
//! MiB (truncated, `>> 20`) like Go's.

use core::fmt;

/// One cycle's gctrace fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleTrace {
    /// `N`: the cycle number (1-based).
    pub cycle: u64,
    /// `@T`: when the cycle started, ns since boot.
    pub start_ns: u64,
    /// `P%`: the share of all cores' time since boot spent in GC, in whole percent.
    pub cpu_percent: u64,
    /// `a+b+c ms clock`: wall time of sweep termination + mark setup (to the end of the first
    /// pause), concurrent mark, mark termination.
    pub clock_ns: [u64; 3],
    /// `d+e/f/g+h ms cpu`: mark setup pause x cores, mutator assists, background (dedicated) mark
    /// workers, idle mark workers, mark termination pause x cores.
    pub cpu_ns: [u64; 5],
    /// `i->j->k MB`: heap in use when the cycle started, when mark termination started, and
    /// marked live at the end.
    pub heap_bytes: [u64; 3],
    /// `l MB goal`: the heap size this cycle was paced for (its heap goal, as Go's).
    pub goal_bytes: u64,
    /// `m MB stacks`: stack bytes scanned as roots.
    pub stack_bytes: u64,
    /// `n MB globals`: global root bytes scanned.
    pub global_bytes: u64,
    /// `p P`: cores (Go's GOMAXPROCS).
    pub procs: u64,
    /// The cycle was started on request (the console's `gc`), not by the pacer.
    pub forced: bool,
}

/// Writes `ns` as milliseconds the way Go's `fmtNSAsMS` does: whole milliseconds from 10 ms up,
/// else two significant digits with at most three decimals (`0.012`, `0.34`, `4.5`), `0` below
/// a microsecond.
pub fn write_ms(f: &mut impl fmt::Write, ns: u64) -> fmt::Result {
    if ns >= 10_000_000 {
        return write!(f, "{}", ns / 1_000_000);
    }
    let mut x = ns / 1000;
    if x == 0 {
        return f.write_char('0');
    }
    let mut decimals = 3u32;
    while x >= 100 {
        x /= 10;
        decimals -= 1;
    }
    let scale = 10u64.pow(decimals);
    write!(f, "{}.{:0width$}", x / scale, x % scale, width = decimals as usize)
}

struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ms(f, self.0)
    }
}

impl fmt::Display for CycleTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.start_ns / 1_000_000;
        let [a, b, c] = self.clock_ns.map(Ms);
        let [d, e, g_bg, g_idle, h] = self.cpu_ns.map(Ms);
        let [i, j, k] = self.heap_bytes.map(|b| b >> 20);
        write!(
            f,
            "gc {} @{}.{:03}s {}%: {a}+{b}+{c} ms clock, {d}+{e}/{g_bg}/{g_idle}+{h} ms cpu, {i}->{j}->{k} MB, {} MB goal, \
             {} MB stacks, {} MB globals, {} P",
            self.cycle,
            ms / 1000,
            ms % 1000,
            self.cpu_percent,
            self.goal_bytes >> 20,
            self.stack_bytes >> 20,
            self.global_bytes >> 20,
            self.procs
        )?;
        if self.forced {
            f.write_str(" (forced)")?;
        }
        Ok(())
    }
}

/// A gctrace line read back (by tests and tools): times in ms, sizes in MB, as printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParsedTrace {
    pub cycle: u64,
    pub start_s: f64,
    pub cpu_percent: u64,
    pub clock_ms: [f64; 3],
    pub cpu_ms: [f64; 5],
    pub heap_mb: [u64; 3],
    pub goal_mb: u64,
    pub stacks_mb: u64,
    pub globals_mb: u64,
    pub procs: u64,
    pub forced: bool,
}

/// Reads one gctrace line (Go's or tricolor's); `None` if it is not one.
pub fn parse(line: &str) -> Option<ParsedTrace> {
    let rest = line.trim_end().strip_prefix("gc ")?;
    let (cycle, rest) = rest.split_once(" @")?;
    let (start, rest) = rest.split_once("s ")?;
    let (percent, rest) = rest.split_once("%: ")?;
    let (clock, rest) = rest.split_once(" ms clock, ")?;
    let (cpu, rest) = rest.split_once(" ms cpu, ")?;
    let (heap, rest) = rest.split_once(" MB, ")?;
    let (goal, rest) = rest.split_once(" MB goal, ")?;
    let (stacks, rest) = rest.split_once(" MB stacks, ")?;
    let (globals, rest) = rest.split_once(" MB globals, ")?;
    let (procs, forced) = match rest.strip_suffix(" P (forced)") {
        Some(p) => (p, true),
        None => (rest.strip_suffix(" P")?, false),
    };
    let mut clock_ms = [0.0; 3];
    let mut parts = clock.split('+');
    for slot in &mut clock_ms {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(())?;
    // d+e/f/g+h
    let (d, rest) = cpu.split_once('+')?;
    let (efg, h) = rest.rsplit_once('+')?;
    let mut efg = efg.split('/');
    let mut cpu_ms = [d.parse().ok()?, 0.0, 0.0, 0.0, h.parse().ok()?];
    for slot in &mut cpu_ms[1..4] {
        *slot = efg.next()?.parse().ok()?;
    }
    efg.next().is_none().then_some(())?;
    let mut heap_mb = [0; 3];
    let mut sizes = heap.split("->");
    for slot in &mut heap_mb {
        *slot = sizes.next()?.parse().ok()?;
    }
    sizes.next().is_none().then_some(())?;
    Some(ParsedTrace {
        cycle: cycle.parse().ok()?,
        start_s: start.parse().ok()?,
        cpu_percent: percent.parse().ok()?,
        clock_ms,
        cpu_ms,
        heap_mb,
        goal_mb: goal.parse().ok()?,
        stacks_mb: stacks.parse().ok()?,
        globals_mb: globals.parse().ok()?,
        procs: procs.parse().ok()?,
        forced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ns: u64) -> String {
        let mut s = String::new();
        write_ms(&mut s, ns).unwrap();
        s
    }

    #[test]
    fn milliseconds_like_go() {
        assert_eq!(ms(0), "0");
        assert_eq!(ms(999), "0");
        assert_eq!(ms(1_000), "0.001");
        assert_eq!(ms(12_345), "0.012");
        assert_eq!(ms(99_999), "0.099");
        assert_eq!(ms(123_456), "0.12");
        assert_eq!(ms(1_234_567), "1.2");
        assert_eq!(ms(9_999_999), "9.9");
        assert_eq!(ms(10_000_000), "10");
        assert_eq!(ms(1_234_567_890), "1234");
    }

    fn sample() -> CycleTrace {
        CycleTrace {
            cycle: 7,
            start_ns: 2_418_765_432,
            cpu_percent: 3,
            clock_ns: [210_000, 1_400_000, 320_000],
            cpu_ns: [840_000, 0, 2_900_000, 0, 1_280_000],
            heap_bytes: [5 << 20, (5 << 20) + 4096, (2 << 20) + 1],
            goal_bytes: (4 << 20) + 123,
            stack_bytes: 300 << 10,
            global_bytes: 100 << 10,
            procs: 4,
            forced: false,
        }
    }

    #[test]
    fn formats_every_field_in_gos_order() {
        assert_eq!(
            sample().to_string(),
            "gc 7 @2.418s 3%: 0.21+1.4+0.32 ms clock, 0.84+0/2.9/0+1.2 ms cpu, 5->5->2 MB, 4 MB goal, 0 MB stacks, \
             0 MB globals, 4 P"
        );
        let forced = CycleTrace { forced: true, start_ns: 61_000_000_000, ..sample() };
        let text = forced.to_string();
        assert!(text.starts_with("gc 7 @61.000s 3%: ") && text.ends_with(" 4 P (forced)"), "{text}");
    }

    #[test]
    fn parse_reads_back_what_format_writes() {
        let parsed = parse(&sample().to_string()).unwrap();
        assert_eq!(parsed.cycle, 7);
        assert_eq!(parsed.start_s, 2.418);
        assert_eq!(parsed.clock_ms, [0.21, 1.4, 0.32]);
        assert_eq!(parsed.cpu_ms, [0.84, 0.0, 2.9, 0.0, 1.2]);
        assert_eq!(parsed.heap_mb, [5, 5, 2]);
        assert_eq!((parsed.goal_mb, parsed.stacks_mb, parsed.globals_mb, parsed.procs), (4, 0, 0, 4));
        assert!(!parsed.forced);
        assert!(parse(&CycleTrace { forced: true, ..sample() }.to_string()).unwrap().forced);
    }

    #[test]
    fn parse_reads_a_line_as_go_1_21_prints_it() {
        let go = "gc 12 @0.407s 6%: 0.031+2.5+0.022 ms clock, 0.25+0.81/4.6/0.11+0.18 ms cpu, 9->10->4 MB, \
                  10 MB goal, 0 MB stacks, 0 MB globals, 8 P";
        let parsed = parse(go).unwrap();
        assert_eq!((parsed.cycle, parsed.cpu_percent, parsed.procs), (12, 6, 8));
        assert_eq!(parsed.cpu_ms[1..4], [0.81, 4.6, 0.11]);
    }

    #[test]
    fn parse_rejects_other_lines() {
        for bad in [
            "",
            "gc: cycle 3 done",
            "gc 1 @0.1s 0%: 1+2 ms clock, 0+0/0/0+0 ms cpu, 1->1->1 MB, 1 MB goal, 0 MB stacks, 0 MB globals, 1 P",
            "gc 1 @0.1s 0%: 1+2+3 ms clock, 0+0/0+0 ms cpu, 1->1->1 MB, 1 MB goal, 0 MB stacks, 0 MB globals, 1 P",
            "gc 1 @0.1s 0%: 1+2+3 ms clock, 0+0/0/0+0 ms cpu, 1->1 MB, 1 MB goal, 0 MB stacks, 0 MB globals, 1 P",
            "gc 1 @0.1s 0%: 1+2+3 ms clock, 0+0/0/0+0 ms cpu, 1->1->1 MB, 1 MB goal, 1 P",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
