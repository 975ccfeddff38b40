//! What xtask does with the kernel's per-core GC state timeline (`timeline=dump`, decoded by
//! `tricolor_timeline::dump`): minimum mutator utilisation curves for `bench` ([`mmu_curve`]),
//! and `cargo xtask trace`: a run's per-core states as Chrome trace-event JSON that Perfetto and
//! chrome://tracing open ([`chrome_trace`]) and as an SVG ([`svg_timeline`]).

use crate::qemu::{self, Machine};
use crate::session::Session;
use crate::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tricolor_timeline::dump::{self, Timeline};
use tricolor_timeline::mmu::{self, Utilisation};
use tricolor_timeline::{Category, State};

/// Decodes the dump in a console capture and checks every core's events against the totals its
/// recorder kept (a lost or garbled event shows there).
pub fn decode(output: &str) -> Result<Timeline> {
    let t = dump::parse(output)?;
    for track in &t.cores {
        track.check_totals()?;
    }
    if t.known_span().0 >= t.to {
        return Err("the timeline dump covers none of the measured run (the rings lost it all)".into());
    }
    Ok(t)
}

/// Per core, the stretches `(start, end)` (counter ticks) in which QEMU ran none of the core's own
/// code: the kernel's stall detector at the slice ticks (`tricolor_kernel::slice::Frozen`,
/// the console's `STALLS` lines). A stalled core was not running, for no reason of the program's
/// or the collector's: MMU leaves its stalls out like halted time, whatever state it was in.
pub type Stalls = Vec<Vec<(u64, u64)>>;

/// The stall stretches in `console` (none for a run without `tick.slice=`).
pub fn stalls(console: &str) -> Result<Stalls> {
    Ok(tricolor_kernel::slice::parse_stalls(console)?.unwrap_or_default())
}

/// Core `core`'s stretches in `stalls` (none if the dump had no line for it).
pub fn core_stalls(stalls: &Stalls, core: usize) -> &[(u64, u64)] {
    stalls.get(core).map_or(&[], Vec::as_slice)
}

/// `intervals` with every part inside one of `stalls` (sorted stretches) relabelled as
/// [`State::Idle`]: left out of utilisation.
pub fn without_stalls(intervals: &[(u64, u64, State)], stalls: &[(u64, u64)]) -> Vec<(u64, u64, State)> {
    let mut out = Vec::with_capacity(intervals.len());
    for &(start, end, state) in intervals {
        let mut at = start;
        // Stretches are few (tens per core): a scan per interval is cheap enough.
        for &(s, e) in stalls.iter().filter(|&&(s, e)| s < end && e > start) {
            let (s, e) = (s.max(at), e.min(end));
            if s > at {
                out.push((at, s, state));
            }
            if e > s {
                out.push((s, e, State::Idle));
            }
            at = at.max(e);
        }
        if at < end {
            out.push((at, end, state));
        }
    }
    out
}

/// Every core's utilisation over the part of the run where all of their states are known, its
/// stalls left out.
pub fn utilisation(t: &Timeline, stalls: &Stalls) -> Utilisation {
    utilisation_of(t, stalls, Sweep::IsGc, Span::Run)
}

/// Whether sweeping counts as the collector's time (`tricolor_timeline`'s categories) or, as Go's
/// trace tool counts it unless asked to, as the program's; `GoAccounting` also counts wbBuf
/// flushes as the program's, as Go's trace does (a goroutine's `wbBufFlush` is its own running
/// time: Go's MMU counts only stop-the-world, mark workers and assists as the collector's).
#[derive(Clone, Copy, PartialEq)]
pub enum Sweep {
    IsGc,
    IsMutator,
    GoAccounting,
}

/// Which part of the run.
#[derive(Clone, Copy, PartialEq)]
pub enum Span {
    /// All of it (where every core's state is known).
    Run,
    /// Until `until`: the kernel's `first_done=` (see [`first_done`]), while every core still had
    /// its workload (GCBench's cores finish at different times, and in the tail the one core left
    /// runs the collector alone).
    Until(u64),
}

/// The `first_done=` tick of the dump's begin line in `console`: when the run's first mutator
/// returned (the kernel's `timeline::dump`); `None` if the line has none.
pub fn first_done(console: &str) -> Option<u64> {
    let begin = console.lines().map(str::trim).find(|l| l.starts_with("TIMELINE begin"))?;
    begin.split_whitespace().find_map(|w| w.strip_prefix("first_done="))?.parse().ok()
}

/// Utilisation over `span`, sweeping counted as `sweep` says, the cores' `stalls` left out (pass
/// none to count the states as recorded).
pub fn utilisation_of(t: &Timeline, stalls: &Stalls, sweep: Sweep, span: Span) -> Utilisation {
    let (from, mut to) = t.known_span();
    if let Span::Until(until) = span {
        to = until.clamp(from, to);
    }
    let cores: Vec<_> = t
        .cores
        .iter()
        .map(|c| {
            let mut intervals = c.intervals(from, to);
            let program = |s: State| match sweep {
                Sweep::IsGc => false,
                Sweep::IsMutator => s == State::Sweep,
                Sweep::GoAccounting => s == State::Sweep || s == State::Flush,
            };
            for i in &mut intervals {
                if program(i.2) {
                    i.2 = State::Mutator;
                }
            }
            let stalled = core_stalls(stalls, c.core);
            if stalled.is_empty() {
                intervals
            } else {
                without_stalls(&intervals, stalled)
            }
        })
        .collect();
    Utilisation::new(&cores, from, to)
}

/// `ns` in counter ticks (rounded to the nearest).
fn ticks(t: &Timeline, ns: u64) -> u64 {
    ((ns as u128 * t.freq as u128 + 500_000_000) / 1_000_000_000) as u64
}

/// `(window ns, MMU)` pairs, `None` where the run is shorter than the window.
pub type Curve = Vec<(u64, Option<f64>)>;

/// MMU at the standard windows (100 µs to 100 ms, ten per decade).
pub fn mmu_curve(t: &Timeline, stalls: &Stalls, sweep: Sweep, span: Span) -> Curve {
    let u = utilisation_of(t, stalls, sweep, span);
    mmu::standard_windows_ns().into_iter().map(|w| (w, u.mmu(ticks(t, w)))).collect()
}

/// MMU for one window of `ns` (the tests' shorthand).
#[cfg(test)]
pub fn mmu_at(t: &Timeline, ns: u64) -> Option<f64> {
    utilisation(t, &Stalls::new()).mmu(ticks(t, ns))
}

/// The category name a trace event carries (`cat`): what MMU counts the state as.
fn category(state: State) -> &'static str {
    match state.category() {
        Category::Mutator => "mutator",
        Category::Gc => "gc",
        Category::Halted => "halted",
    }
}

/// The `tid` of core `c`'s vCPU-stall track in [`chrome_trace`]: `STALL_TID + c`.
pub const STALL_TID: usize = 1000;

/// The name of a vCPU stall's event in [`chrome_trace`] (no state has it).
pub const STALL_EVENT: &str = "vcpu-stall";

/// The timeline as Chrome trace-event JSON: one "X" (complete) event per state interval, `ts` and
/// `dur` in µs from the start of the known span, `pid` 1 (the machine), `tid` the core, `name`
/// the state, `cat` its utilisation category; metadata events name the process and each core.
/// Each core with `stalls` gets a track of its own below it (`tid` [`STALL_TID`] + core, named
/// "core N: vCPU stalls"), one [`STALL_EVENT`] event per stretch in which QEMU ran none of the
/// core's code (clipped to the known span): the state above it was frozen, not running.
pub fn chrome_trace(t: &Timeline, stalls: &Stalls) -> String {
    let (from, to) = t.known_span();
    let us = |ticks: u64| t.ns(ticks) / 1000.0;
    let mut out = String::from("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    let _ = write!(
        out,
        "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{{\"name\":\"tricolor ({} cores)\"}}}}",
        t.cores.len()
    );
    // A track's name and place: core `c` at 2c, its stall track (if it has one) right below.
    let track_meta = |out: &mut String, tid: usize, name: &str, sort_index: usize| {
        let _ = write!(
            out,
            ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{tid},\"args\":{{\"name\":\"{name}\"}}}}"
        );
        let _ = write!(
            out,
            ",\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":{tid},\"args\":{{\"sort_index\":{sort_index}}}}}"
        );
    };
    for track in &t.cores {
        track_meta(&mut out, track.core, &format!("core {}", track.core), 2 * track.core);
        if !core_stalls(stalls, track.core).is_empty() {
            let name = format!("core {}: vCPU stalls", track.core);
            track_meta(&mut out, STALL_TID + track.core, &name, 2 * track.core + 1);
        }
    }
    for track in &t.cores {
        for &(a, b) in core_stalls(stalls, track.core) {
            let (a, b) = (a.max(from), b.min(to));
            if a < b {
                let _ = write!(
                    out,
                    ",\n{{\"name\":\"{STALL_EVENT}\",\"cat\":\"stall\",\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\"pid\":1,\"tid\":{}}}",
                    us(a - from),
                    us(b - a),
                    STALL_TID + track.core
                );
            }
        }
        for (start, end, state) in track.intervals(from, to) {
            let _ = write!(
                out,
                ",\n{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\"pid\":1,\"tid\":{}}}",
                state.name(),
                category(state),
                us(start - from),
                us(end - start),
                track.core
            );
        }
    }
    out.push_str("\n]}\n");
    out
}

/// What [`check_trace`] found in a trace.
#[derive(Debug, PartialEq)]
pub struct TraceSummary {
    /// "X" events per core (index = tid).
    pub events_per_core: Vec<usize>,
    /// "X" events named `pause`.
    pub pauses: usize,
    /// [`STALL_EVENT`] events, on the cores' stall tracks.
    pub stalls: usize,
}

/// Checks a trace written by [`chrome_trace`] as a trace viewer reads it: well-formed JSON, a
/// `traceEvents` array of objects, every "X" event with a known state name, numeric `ts` and
/// `dur` (not negative), `pid` and `tid`; every one of `cores` cores has events, and at least one
/// event is a pause. Each core's events follow one another without overlapping; so do the
/// [`STALL_EVENT`] events, which only a core's stall track (`tid` [`STALL_TID`] + core) has.
pub fn check_trace(text: &str, cores: usize) -> Result<TraceSummary> {
    let value = json::parse(text)?;
    let events = value.get("traceEvents").and_then(json::Value::as_array).ok_or("no traceEvents array")?;
    let mut summary = TraceSummary { events_per_core: vec![0; cores], pauses: 0, stalls: 0 };
    let mut last_end = vec![0.0f64; cores];
    let mut last_stall_end = vec![0.0f64; cores];
    for (i, e) in events.iter().enumerate() {
        let field = |k: &str| e.get(k).ok_or_else(|| format!("event {i} has no {k}"));
        let ph = field("ph")?.as_str().ok_or_else(|| format!("event {i}: ph is not a string"))?;
        if ph == "M" {
            continue;
        }
        if ph != "X" {
            return Err(format!("event {i}: phase {ph}, not X or M"));
        }
        let name = field("name")?.as_str().ok_or_else(|| format!("event {i}: name is not a string"))?;
        let number = |k: &str| field(k)?.as_f64().ok_or_else(|| format!("event {i}: {k} is not a number"));
        let (ts, dur) = (number("ts")?, number("dur")?);
        number("pid")?;
        let tid = number("tid")?;
        if ts < 0.0 || dur < 0.0 {
            return Err(format!("event {i}: ts {ts} dur {dur}"));
        }
        if name == STALL_EVENT {
            let core = (tid as usize).wrapping_sub(STALL_TID);
            if tid.fract() != 0.0 || tid < STALL_TID as f64 || core >= cores {
                return Err(format!("event {i}: a stall on tid {tid}, not a stall track of the {cores} cores"));
            }
            if ts + 0.002 < last_stall_end[core] {
                return Err(format!("event {i}: core {core}'s stall at {ts} µs overlaps the one before it"));
            }
            last_stall_end[core] = ts + dur;
            summary.stalls += 1;
            continue;
        }
        let state = State::from_name(name).ok_or_else(|| format!("event {i}: {name} is no state"))?;
        let core = tid as usize;
        if tid.fract() != 0.0 || core >= cores {
            return Err(format!("event {i}: tid {tid} is not one of the {cores} cores"));
        }
        // ts and dur have 3 decimals: allow their rounding.
        if ts + 0.002 < last_end[core] {
            return Err(format!("event {i}: core {core}'s {name} at {ts} µs overlaps the event before it"));
        }
        last_end[core] = ts + dur;
        summary.events_per_core[core] += 1;
        summary.pauses += usize::from(state == State::Pause);
    }
    if let Some(core) = summary.events_per_core.iter().position(|&n| n == 0) {
        return Err(format!("core {core} has no events"));
    }
    if summary.pauses == 0 {
        return Err("no pause in the trace".into());
    }
    Ok(summary)
}

/// Fill colour of each state in the SVG (by discriminant).
const COLOURS: [&str; tricolor_timeline::state::COUNT] = [
    "#9ccc65", // mutator
    "#e0e0e0", // idle
    "#d32f2f", // pause
    "#1565c0", // mark
    "#7e57c2", // mark-worker
    "#ff9800", // assist
    "#00897b", // stack-scan
    "#f06292", // flush
    "#8d6e63", // sweep
    "#b39ddb", // idle-mark
    "#d7ccc8", // idle-sweep
];

/// Width of the plot area of the SVG in pixels: one column per pixel.
const SVG_COLUMNS: usize = 1400;
const LANE: usize = 60;
const LEFT: usize = 70;
const TOP: usize = 50;

/// The timeline as an SVG, for readers without a trace viewer: one lane per core, each pixel
/// column a stacked bar of the share of that column's time the core spent in each state (so a
/// state shorter than a pixel still shows, in proportion), above each lane a red tick for
/// every column with any pause in it, however short, and below it a black tick for every column
/// with any of the core's `stalls` (QEMU ran none of its code: the state there was frozen).
pub fn svg_timeline(t: &Timeline, stalls: &Stalls, title: &str) -> String {
    let (from, to) = t.known_span();
    let span = (to - from).max(1);
    let width = LEFT + SVG_COLUMNS + 20;
    let legend_y = TOP + t.cores.len() * (LANE + 10) + 40;
    let height = legend_y + 30;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"24\" font-size=\"16\">{}</text>\n",
        xml_escape(title)
    );
    for (lane, track) in t.cores.iter().enumerate() {
        let y0 = TOP + lane * (LANE + 10);
        let _ = writeln!(out, "<text x=\"8\" y=\"{}\">core {}</text>", y0 + LANE / 2 + 4, track.core);
        let intervals = track.intervals(from, to);
        let stalled = core_stalls(stalls, track.core);
        let mut k = 0;
        let mut ks = 0;
        // Consecutive columns with the same shares are drawn as one rectangle per state.
        let mut run: Option<(usize, [u64; tricolor_timeline::state::COUNT])> = None;
        let flush = |out: &mut String, run: &Option<(usize, [u64; tricolor_timeline::state::COUNT])>, end: usize| {
            let Some((start, shares)) = run else { return };
            let total: u64 = shares.iter().sum();
            if total == 0 {
                return;
            }
            let mut y = (y0 + 8) as f64;
            let h = (LANE - 8) as f64;
            for (s, &share) in shares.iter().enumerate().filter(|(_, &v)| v > 0) {
                let hh = h * share as f64 / total as f64;
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{y:.2}\" width=\"{}\" height=\"{hh:.2}\" fill=\"{}\"/>",
                    LEFT + start,
                    end - start,
                    COLOURS[s]
                );
                y += hh;
            }
        };
        for col in 0..SVG_COLUMNS {
            let c0 = from + (span as u128 * col as u128 / SVG_COLUMNS as u128) as u64;
            let c1 = from + (span as u128 * (col + 1) as u128 / SVG_COLUMNS as u128) as u64;
            let mut shares = [0u64; tricolor_timeline::state::COUNT];
            while k < intervals.len() && intervals[k].1 <= c0 {
                k += 1;
            }
            let mut j = k;
            while j < intervals.len() && intervals[j].0 < c1 {
                let (s, e, state) = intervals[j];
                shares[state as usize] += e.min(c1) - s.max(c0);
                j += 1;
            }
            while ks < stalled.len() && stalled[ks].1 <= c0 {
                ks += 1;
            }
            if stalled.get(ks).is_some_and(|&(a, _)| a < c1) {
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"1\" height=\"4\" fill=\"#212121\"/>",
                    LEFT + col,
                    y0 + LANE + 1
                );
            }
            if shares[State::Pause as usize] > 0 {
                let _ =
                    writeln!(out, "<rect x=\"{}\" y=\"{y0}\" width=\"1\" height=\"6\" fill=\"#d32f2f\"/>", LEFT + col);
            }
            // Quantised to 1/64 of the column, so nearly equal columns merge.
            let quantised = shares.map(|v| (v * 64).div_ceil((c1 - c0).max(1)));
            match &run {
                Some((_, q)) if *q == quantised => {}
                _ => {
                    flush(&mut out, &run, col);
                    run = Some((col, quantised));
                }
            }
        }
        flush(&mut out, &run, SVG_COLUMNS);
    }
    // The time axis, in ms from the start of the span.
    let axis_y = TOP + t.cores.len() * (LANE + 10);
    let ms = t.ns(span) / 1e6;
    let step = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
        .into_iter()
        .find(|s| ms / s <= 12.0)
        .unwrap_or(10_000.0);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>",
        LEFT + SVG_COLUMNS
    );
    let mut tick = 0.0;
    while tick <= ms {
        let x = LEFT as f64 + tick / ms * SVG_COLUMNS as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{axis_y}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{tick} ms</text>",
            axis_y + 5,
            axis_y + 18
        );
        tick += step;
    }
    let mut x = LEFT;
    for state in State::ALL {
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{legend_y}\">{}</text>",
            legend_y - 10,
            COLOURS[state as usize],
            x + 16,
            state.name()
        );
        x += 110;
    }
    let _ = writeln!(
        out,
        "<text x=\"{x}\" y=\"{legend_y}\">(red ticks above a lane: a pause in that pixel's time; black below: a vCPU stall)</text>\n</svg>"
    );
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What `cargo xtask trace` runs.
pub struct Options {
    /// A stress suite to run to its end (`suite=`), else the demo's mixed workload.
    pub suite: Option<String>,
    /// How long (wall-clock) the demo runs before `quit`.
    pub seconds: f64,
    pub smp: usize,
    pub mode: String,
    pub icount: bool,
    pub append: String,
    pub out: PathBuf,
}

impl Options {
    /// From `cargo xtask trace`'s arguments (see the usage text).
    pub fn parse(args: &mut crate::args::Args) -> Result<Options> {
        let suite = args.value("--suite")?;
        let seconds = match args.value("--seconds")? {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| (0.1..=600.0).contains(v))
                .ok_or(format!("--seconds {s}: not 0.1..600"))?,
            None => 2.0,
        };
        let smp = match args.value("--smp")? {
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| (1..=tricolor_abi::MAX_CORES).contains(n))
                .ok_or(format!("--smp {s}: not 1..={}", tricolor_abi::MAX_CORES))?,
            None => 4,
        };
        let mode = args.value("--mode")?.unwrap_or_else(|| "buffered".into());
        let icount = !args.flag("--no-icount");
        let append = args.value("--append")?.unwrap_or_default();
        let out =
            args.value("--out")?.map(PathBuf::from).unwrap_or_else(|| crate::cargo::workspace_root().join("results"));
        args.finish()?;
        Ok(Options { suite, seconds, smp, mode, icount, append, out })
    }
}

/// What every `-icount` timeline run adds to its command line: each core's timer every 25 µs
/// (preemption still every 2 ms). Under `-icount` QEMU 7.2 runs the vCPUs one at a time on one
/// thread and moves to the next only at a timer deadline or a `yield`/`wfi`; with the 2 ms tick
/// alone a core ran up to 2-4 ms while the other three stood still in whatever state they were
/// in, and a collector state frozen that way (an assist, a stack scan) was charged for the whole
/// turn: MMU(1 ms) was 0 for that reason (at a62281f, gcbench-quick at 4 cores: 0.0 % without,
/// 24.6 % with). The extra interrupts cost under 1 % of the run.
pub const ICOUNT_SLICE: &str = "tick.slice=25";

/// The console of one run with `timeline=dump`.
fn capture(elf: &Path, o: &Options) -> Result<String> {
    let mut append = format!("gc.mode={} timeline=dump", o.mode);
    if o.icount && !o.append.split_whitespace().any(|w| w.starts_with("tick.slice=")) {
        // Unless the caller picks the interleaving (`--append tick.slice=N`: bench's others).
        append = format!("{append} {ICOUNT_SLICE}");
    }
    if let Some(suite) = &o.suite {
        // The command line of `bench`'s MMU runs: under -icount `--suite gcbench-quick` is the
        // very run whose MMU `bench` reports.
        append = format!("suite={suite} gc.heap=64M {} {append}", crate::bench::NO_POISON);
    }
    if !o.append.is_empty() {
        append = format!("{append} {}", o.append);
    }
    let machine = Machine { smp: o.smp, append, icount: o.icount, ..Machine::new(elf) };
    println!("xtask: trace: {} at {} cores{}", machine.append, o.smp, if o.icount { ", -icount" } else { "" });
    if o.suite.is_some() {
        let outcome = qemu::run_captured(&machine, Duration::from_secs(600))?;
        if outcome.status != Some(0) {
            return Err(format!("{} exited with {:?}:\n{}", machine.append, outcome.status, outcome.output));
        }
        return Ok(outcome.output);
    }
    let mut session = Session::start(&machine)?;
    let result = (|| {
        session.wait_for("the demo's start", Duration::from_secs(60), |l| l.starts_with("demo: workload"))?;
        let until = Instant::now() + Duration::from_secs_f64(o.seconds);
        while Instant::now() < until {
            session.drain();
            std::thread::sleep(Duration::from_millis(50));
        }
        session.send("quit")?;
        session.wait_for("the end of the timeline dump", Duration::from_secs(120), |l| l.trim() == dump::END)?;
        Ok(())
    })();
    let _ = session.wait_exit(Duration::from_secs(10));
    let console = session.finish();
    result.map_err(|why: String| format!("{why}\n----- console (last lines) -----\n{}", tail(&console, 40)))?;
    Ok(console)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `cargo xtask trace`: boots, decodes the dump, writes `trace.json` and `trace.svg` into
/// `o.out`; returns the decoded timeline.
pub fn run(elf: &Path, o: &Options) -> Result<Timeline> {
    let console = capture(elf, o)?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("cannot create {}: {e}", o.out.display()))?;
    // The raw console too (the dump included), to decode again or read the log.
    let console_path = o.out.join("trace-console.txt");
    std::fs::write(&console_path, &console).map_err(|e| format!("cannot write {}: {e}", console_path.display()))?;
    let t = decode(&console)?;
    let stalled = stalls(&console)?;
    let json = chrome_trace(&t, &stalled);
    let summary = check_trace(&json, t.cores.len())?;
    let json_path = o.out.join("trace.json");
    std::fs::write(&json_path, &json).map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    let (from, to) = t.known_span();
    let what = o.suite.clone().unwrap_or_else(|| format!("demo (mixed workload, {} s)", o.seconds));
    let title = format!(
        "{what}, {} cores, gc.mode={}{}: {:.1} ms",
        t.cores.len(),
        o.mode,
        if o.icount { ", -icount" } else { "" },
        t.ns(to - from) / 1e6
    );
    let svg_path = o.out.join("trace.svg");
    std::fs::write(&svg_path, svg_timeline(&t, &stalled, &title))
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    let u = utilisation(&t, &stalled);
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1} %", v * 100.0));
    println!(
        "trace: {} events on {} cores ({:?} per core), {} pauses, {:.1} ms; utilisation {:.1} %, MMU(1 ms) {}, MMU(10 ms) {}",
        summary.events_per_core.iter().sum::<usize>(),
        t.cores.len(),
        summary.events_per_core,
        summary.pauses,
        t.ns(to - from) / 1e6,
        u.overall() * 100.0,
        pct(u.mmu(ticks(&t, 1_000_000))),
        pct(u.mmu(ticks(&t, 10_000_000)))
    );
    if stalled.iter().any(|s| !s.is_empty()) {
        let raw = utilisation(&t, &Stalls::new());
        println!(
            "trace: vCPU stalls left out (QEMU ran none of a core's code): {}; MMU with them as recorded: 1 ms {}, 10 ms {}",
            stall_summary(&t, &stalled),
            pct(raw.mmu(ticks(&t, 1_000_000))),
            pct(raw.mmu(ticks(&t, 10_000_000)))
        );
    }
    println!(
        "xtask: wrote {} (open in https://ui.perfetto.dev), {} and {}",
        json_path.display(),
        svg_path.display(),
        console_path.display()
    );
    Ok(t)
}

/// Per core: the stalls' total, count and longest, as `trace` and `bench` print them.
pub fn stall_summary(t: &Timeline, stalls: &Stalls) -> String {
    let ms = |ticks: u64| t.ns(ticks) / 1e6;
    stalls
        .iter()
        .enumerate()
        .map(|(core, s)| {
            let total: u64 = s.iter().map(|(a, b)| b - a).sum();
            let longest = s.iter().map(|(a, b)| b - a).max().unwrap_or(0);
            format!("core {core} {:.1} ms ({}, longest {:.1} ms)", ms(total), s.len(), ms(longest))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The QEMU-backed test in `cargo xtask test`: a short demo trace at 4 cores into a temporary
/// directory; the files must be there, the JSON well formed with every core and a pause.
pub fn case(elf: &Path) -> Result<Duration> {
    let started = Instant::now();
    let out = std::env::temp_dir().join(format!("tricolor-trace-{}", std::process::id()));
    let o = Options {
        suite: None,
        seconds: 1.0,
        smp: 4,
        mode: "buffered".into(),
        icount: false,
        append: String::new(),
        out: out.clone(),
    };
    let result = (|| {
        run(elf, &o)?;
        let json = std::fs::read_to_string(out.join("trace.json")).map_err(|e| format!("trace.json: {e}"))?;
        check_trace(&json, 4)?;
        let svg = std::fs::read_to_string(out.join("trace.svg")).map_err(|e| format!("trace.svg: {e}"))?;
        if !(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains("core 3")) {
            return Err("trace.svg is not a four-lane SVG".into());
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&out);
    result.map(|()| started.elapsed())
}

/// Just enough JSON to check a trace as a viewer would read it (xtask has no JSON dependency).
mod json {
    use crate::Result;

    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_array(&self) -> Option<&Vec<Value>> {
            if let Value::Array(a) = self {
                Some(a)
            } else {
                None
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            if let Value::String(s) = self {
                Some(s)
            } else {
                None
            }
        }
        pub fn as_f64(&self) -> Option<f64> {
            if let Value::Number(n) = self {
                Some(*n)
            } else {
                None
            }
        }
    }

    /// The one JSON value in `text` (surrounding whitespace allowed, nothing else).
    pub fn parse(text: &str) -> Result<Value> {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("JSON: trailing text at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn err<T>(&self, what: &str) -> Result<T> {
            Err(format!("JSON: {what} at byte {}", self.i))
        }
        fn eat(&mut self, c: u8) -> Result {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                self.err(&format!("expected '{}'", c as char))
            }
        }
        fn value(&mut self) -> Result<Value> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.eat(b':')?;
                        fields.push((key, self.value()?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(fields));
                            }
                            _ => return self.err("expected ',' or '}'"),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return self.err("expected ',' or ']'"),
                        }
                    }
                }
                Some(b'"') => self.string().map(Value::String),
                Some(b't') => self.word("true", Value::Bool(true)),
                Some(b'f') => self.word("false", Value::Bool(false)),
                Some(b'n') => self.word("null", Value::Null),
                Some(c) if *c == b'-' || c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    text.parse().map(Value::Number).or_else(|_| self.err(&format!("bad number {text}")))
                }
                _ => self.err("expected a value"),
            }
        }
        fn word(&mut self, w: &str, v: Value) -> Result<Value> {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                Ok(v)
            } else {
                self.err("bad literal")
            }
        }
        fn string(&mut self) -> Result<String> {
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a string");
            }
            self.i += 1;
            let mut out = Vec::new();
            while let Some(&c) = self.s.get(self.i) {
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).or_else(|_| self.err("bad UTF-8")),
                    b'\\' => {
                        let e = *self.s.get(self.i).ok_or("JSON: unterminated escape")?;
                        self.i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e),
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'b' | b'f' | b'u' => return self.err("escape not used by traces"),
                            _ => return self.err("bad escape"),
                        }
                    }
                    c if c < 0x20 => return self.err("control character in a string"),
                    c => out.push(c),
                }
            }
            self.err("unterminated string")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tricolor_timeline::Recorder;

    /// A recorder with a leaked ring (the kernel's come from the frame allocator).
    fn recorder() -> Recorder {
        let r = Recorder::new();
        r.attach(Box::leak((0..1024).map(|_| AtomicU64::new(0)).collect()));
        r
    }

    /// A dump as the kernel prints it: `cores` cores from tick 0 to 62 500 (1 ms at 62.5 MHz),
    /// each core `c` mutator, with a pause on every core at 10 000..10 625 (10 µs) when `pause`,
    /// mark work on core 0 at 20 000..40 000, and core `c` idle from 50 000 + 1000 c on.
    fn dump_text(cores: usize, pause: bool) -> String {
        let recorders: Vec<Recorder> = (0..cores).map(|_| recorder()).collect();
        for (c, r) in recorders.iter().enumerate() {
            if pause {
                r.record(10_000, State::Pause);
                r.record(10_625, State::Mutator);
            }
            if c == 0 {
                r.record(20_000, State::Mark);
                r.record(30_000, State::Flush);
                r.record(30_100, State::Mark);
                r.record(40_000, State::Mutator);
            }
            r.record(50_000 + 1000 * c as u64, State::Idle);
        }
        let mut text = String::from("[ 0.5] INFO  boot noise\n");
        text += &dump::begin_line(cores, 62_500_000, 0, 62_500);
        text.push('\n');
        for (c, r) in recorders.iter().enumerate() {
            let s = r.snapshot();
            text += &dump::core_line(c, &s, 62_500, &r.totals(62_500));
            text.push('\n');
            dump::event_lines(c, &s.events, |l| {
                text += l;
                text.push('\n');
            });
        }
        text + dump::END + "\nstress result: ...\n"
    }

    #[test]
    fn stalls_become_halted_time() {
        use State::{Idle, Mark, Mutator};
        let iv = [(0, 100, Mutator), (100, 200, Mark), (200, 300, Mutator)];
        assert_eq!(without_stalls(&iv, &[]), iv);
        assert_eq!(
            without_stalls(&iv, &[(50, 150), (250, 260)]),
            [
                (0, 50, Mutator),
                (50, 100, Idle),
                (100, 150, Idle),
                (150, 200, Mark),
                (200, 250, Mutator),
                (250, 260, Idle),
                (260, 300, Mutator)
            ]
        );
        // A stretch over whole intervals and past the end.
        assert_eq!(
            without_stalls(&iv, &[(90, 400)]),
            [(0, 90, Mutator), (90, 100, Idle), (100, 200, Idle), (200, 300, Idle)]
        );
    }

    #[test]
    fn a_stalled_core_in_a_gc_state_does_not_count_against_the_program() {
        // Two cores: core 0 marks from 20 000 to 40 000 (a flush inside), core 1 runs its mutator.
        let t = decode(&dump_text(2, false)).unwrap();
        let recorded = utilisation_of(&t, &Stalls::new(), Sweep::IsGc, Span::Run);
        assert!((recorded.mmu(20_000).unwrap() - 0.5).abs() < 1e-9, "{:?}", recorded.mmu(20_000));
        // Core 0's mark a stall: core 1 alone ran, all of it the program's.
        let console = format!("{}STALLS core=0 stretches=1 dropped=0\nST 0 20000:40000\n", dump_text(2, false));
        let stalled = stalls(&console).unwrap();
        assert_eq!(stalled, vec![vec![(20_000, 40_000)]]);
        let left_out = utilisation_of(&t, &stalled, Sweep::IsGc, Span::Run);
        assert!((left_out.mmu(20_000).unwrap() - 1.0).abs() < 1e-9, "{:?}", left_out.mmu(20_000));
        assert!(stalls(&dump_text(2, false)).unwrap().is_empty(), "no STALLS lines: none");
    }

    #[test]
    fn a_decoded_dump_becomes_a_trace_with_every_core_and_its_pauses() {
        let t = decode(&dump_text(4, true)).unwrap();
        let json = chrome_trace(&t, &Stalls::new());
        let summary = check_trace(&json, 4).unwrap();
        // Core 0: mutator, pause, mutator, mark, flush, mark, mutator, idle; the others:
        // mutator, pause, mutator, idle.
        assert_eq!(summary, TraceSummary { events_per_core: vec![8, 4, 4, 4], pauses: 4, stalls: 0 });
        // Times in µs: the pause starts at 10 000 ticks = 160 µs and lasts 10 µs.
        assert!(json.contains(
            "\"name\":\"pause\",\"cat\":\"gc\",\"ph\":\"X\",\"ts\":160.000,\"dur\":10.000,\"pid\":1,\"tid\":0"
        ));
        assert!(json.contains("\"args\":{\"name\":\"core 3\"}"));
        let v = json::parse(&json).unwrap();
        let events = v.get("traceEvents").unwrap().as_array().unwrap();
        let idle_3 = events
            .iter()
            .find(|e| {
                e.get("tid").and_then(json::Value::as_f64) == Some(3.0)
                    && e.get("name").and_then(json::Value::as_str) == Some("idle")
            })
            .unwrap();
        // 53 000 ticks = 848 µs to the end at 1000 µs.
        assert_eq!(idle_3.get("ts").unwrap().as_f64(), Some(848.0));
        assert_eq!(idle_3.get("dur").unwrap().as_f64(), Some(152.0));
        assert_eq!(idle_3.get("cat").unwrap().as_str(), Some("halted"));
    }

    #[test]
    fn a_trace_without_a_pause_or_a_core_or_well_formed_json_is_refused() {
        let t = decode(&dump_text(2, false)).unwrap();
        assert!(check_trace(&chrome_trace(&t, &Stalls::new()), 2).unwrap_err().contains("no pause"));
        let t = decode(&dump_text(2, true)).unwrap();
        let json = chrome_trace(&t, &Stalls::new());
        assert!(check_trace(&json, 3).unwrap_err().contains("core 2 has no events"));
        assert!(check_trace(&json[..json.len() - 4], 2).unwrap_err().contains("JSON"));
        let garbled = json.replacen("\"ts\":160.000", "\"ts\":\"160\"", 1);
        assert!(check_trace(&garbled, 2).unwrap_err().contains("ts is not a number"));
        let overlapping = json.replacen("\"ts\":160.000", "\"ts\":150.000", 1);
        assert!(check_trace(&overlapping, 2).unwrap_err().contains("overlaps"));
    }

    #[test]
    fn stalls_get_a_track_below_their_core_in_the_trace_and_ticks_in_the_svg() {
        let t = decode(&dump_text(4, true)).unwrap();
        // Core 1 stalled from 20 000 to 30 000 ticks (320-480 µs), and once past the dump's end.
        let stalled: Stalls = vec![vec![], vec![(20_000, 30_000), (70_000, 80_000)]];
        let json = chrome_trace(&t, &stalled);
        let summary = check_trace(&json, 4).unwrap();
        assert_eq!(summary.stalls, 1, "the stretch past the span is clipped away");
        assert_eq!(summary.events_per_core, vec![8, 4, 4, 4], "the cores' own tracks unchanged");
        assert!(json.contains(&format!(
            "\"name\":\"{STALL_EVENT}\",\"cat\":\"stall\",\"ph\":\"X\",\"ts\":320.000,\"dur\":160.000,\"pid\":1,\"tid\":1001"
        )));
        assert!(json.contains("\"args\":{\"name\":\"core 1: vCPU stalls\"}"));
        // Right below core 1 (sort index 2) and above core 2 (4).
        assert!(json.contains("\"tid\":1001,\"args\":{\"sort_index\":3}"));
        assert!(json.contains("\"tid\":2,\"args\":{\"sort_index\":4}"));
        assert!(!json.contains("core 0: vCPU stalls"), "no track for a core without stalls");
        // A stall on a core's own track, or on the track of a core there is not, is refused.
        let on_core = json.replacen("\"tid\":1001}", "\"tid\":1}", 1);
        assert!(check_trace(&on_core, 4).unwrap_err().contains("not a stall track"));
        assert!(check_trace(&json, 1).unwrap_err().contains("not a stall track"));
        // The SVG: 160 of 1000 µs in 1400 columns, about 224 black ticks, all in core 1's lane.
        let svg = svg_timeline(&t, &stalled, "");
        let ticks = svg.matches("height=\"4\" fill=\"#212121\"").count();
        assert!((223..=226).contains(&ticks), "{ticks} stall ticks");
        let lane_1_below = format!("y=\"{}\" width=\"1\" height=\"4\"", TOP + (LANE + 10) + LANE + 1);
        assert_eq!(svg.matches(&lane_1_below).count(), ticks);
        assert_eq!(svg_timeline(&t, &Stalls::new(), "").matches("fill=\"#212121\"").count(), 0);
    }

    #[test]
    fn mmu_of_a_decoded_dump() {
        let t = decode(&dump_text(4, true)).unwrap();
        // Over 100 µs windows: the 10 µs pause on all four cores, plus core 0's mark work
        // (from 320 µs, 320 µs long): a window inside it has core 0 all GC, the others
        // mutator: 75 %; the pause window 90 %.
        let u = mmu_at(&t, 100_000).unwrap();
        assert!((u - 0.75).abs() < 1e-9, "MMU(100 µs) = {u}");
        // The whole run in one 1 ms window: GC = 4 x 10 + 320 µs; running = 4000 - idle.
        let whole = mmu_at(&t, 1_000_000).unwrap();
        let idle_us: f64 = (0..4).map(|c| 1000.0 - (50_000.0 + 1000.0 * c as f64) * 0.016).sum();
        let expected = 1.0 - 360.0 / (4000.0 - idle_us);
        assert!((whole - expected).abs() < 1e-9, "MMU(1 ms) = {whole}, want {expected}");
        let curve = mmu_curve(&t, &Stalls::new(), Sweep::IsGc, Span::Run);
        assert_eq!(curve.first().unwrap().0, 100_000);
        assert!(curve.iter().filter(|(w, _)| *w > 1_000_000).all(|(_, m)| m.is_none()), "windows longer than the run");
    }

    #[test]
    fn a_span_ends_at_the_first_mutators_end_and_sweeping_can_count_as_mutator() {
        let text = dump_text(4, true).replace(" to=62500", " to=62500 first_done=50000");
        assert_eq!(first_done(&text), Some(50_000));
        assert_eq!(first_done(&dump_text(4, true)), None);
        let t = decode(&text).unwrap();
        let u = utilisation_of(&t, &Stalls::new(), Sweep::IsGc, Span::Until(50_000));
        assert_eq!(u.span(), (0, 50_000));
        // Up to 50 000 ticks no core is idle: GC is 4 x 10 µs of pause and 320 µs of mark.
        assert!((u.overall() - (1.0 - 360.0 / 3200.0)).abs() < 1e-9, "{}", u.overall());
        // Sweep as mutator: a core sweeping for the whole run is all GC, or all mutator.
        let r = recorder();
        r.record(0, State::Sweep);
        let mut text = dump::begin_line(1, 62_500_000, 0, 62_500) + "\n";
        let s = r.snapshot();
        text += &(dump::core_line(0, &s, 62_500, &r.totals(62_500)) + "\n");
        dump::event_lines(0, &s.events, |l| text += &format!("{l}\n"));
        text += dump::END;
        let t = decode(&text).unwrap();
        assert_eq!(utilisation_of(&t, &Stalls::new(), Sweep::IsGc, Span::Run).overall(), 0.0);
        assert_eq!(utilisation_of(&t, &Stalls::new(), Sweep::IsMutator, Span::Run).overall(), 1.0);
    }

    #[test]
    fn the_svg_has_a_lane_per_core_and_marks_the_pauses() {
        let t = decode(&dump_text(4, true)).unwrap();
        let svg = svg_timeline(&t, &Stalls::new(), "test <run>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("test &lt;run&gt;"));
        for c in 0..4 {
            assert!(svg.contains(&format!(">core {c}</text>")));
        }
        // The pause (10 µs of 1000 in 1400 columns) lands in 15 columns on each core.
        let ticks = svg.matches("height=\"6\" fill=\"#d32f2f\"").count();
        assert!((4 * 14..=4 * 16).contains(&ticks), "{ticks} pause ticks");
        let t = decode(&dump_text(4, false)).unwrap();
        assert_eq!(svg_timeline(&t, &Stalls::new(), "").matches("height=\"6\" fill=\"#d32f2f\"").count(), 0);
    }
}
