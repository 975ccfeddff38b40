//! `cargo xtask bench`: runs the kernel's measurements, collects their `BENCH` lines into
//! `results/*.csv` and draws SVG plots next to them. The barrier measurements run under
//! `-icount shift=0,sleep=off` (virtual time = instructions, so reruns give identical numbers);
//! the GPU one cannot, because QEMU's GPU works outside instruction time.

use crate::qemu::{self, Machine};
use crate::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::time::Duration;

/// One `BENCH <kind> key=value ...` line.
#[derive(Debug, PartialEq)]
pub struct BenchLine {
    pub kind: String,
    pub fields: Vec<(String, String)>,
}

impl BenchLine {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("BENCH {} line lacks a number for {key}", self.kind))
    }

    fn text(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| format!("BENCH {} line lacks {key}", self.kind))
    }
}

/// Every `BENCH` line in a console capture.
pub fn parse(output: &str) -> Vec<BenchLine> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("BENCH "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let kind = words.next()?.to_string();
            let fields = words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Some(BenchLine { kind, fields })
        })
        .collect()
}

/// CSV text for the lines of `kind`, with the given columns in order.
pub fn csv(lines: &[BenchLine], kind: &str, columns: &[&str]) -> Result<String> {
    let mut out = columns.join(",") + "\n";
    for line in of_kind(lines, kind) {
        let row: Option<Vec<&str>> = columns.iter().map(|c| line.get(c)).collect();
        let row = row.ok_or_else(|| format!("BENCH {kind} line misses a column of {columns:?}"))?;
        out += &(row.join(",") + "\n");
    }
    Ok(out)
}

fn of_kind<'a>(lines: &'a [BenchLine], kind: &'a str) -> impl Iterator<Item = &'a BenchLine> {
    lines.iter().filter(move |l| l.kind == kind)
}

/// Bars grouped by category: each category gets one bar per series, side by side.
#[derive(Debug, PartialEq)]
pub struct Bars {
    pub categories: Vec<String>,
    /// Each series' name and its value in every category, in `categories` order.
    pub series: Vec<(String, Vec<f64>)>,
}

impl Bars {
    /// One category per line of `kind`, named by its `category` field; one series per
    /// `(name, key)` in `columns`, its bars the lines' `key` values.
    pub fn from_columns(lines: &[BenchLine], kind: &str, category: &str, columns: &[(&str, &str)]) -> Result<Bars> {
        let categories = of_kind(lines, kind).map(|l| l.text(category).map(String::from)).collect::<Result<_>>()?;
        let series = columns
            .iter()
            .map(|(name, key)| {
                Ok((name.to_string(), of_kind(lines, kind).map(|l| l.number(key)).collect::<Result<_>>()?))
            })
            .collect::<Result<_>>()?;
        Ok(Bars { categories, series })
    }

    /// A pivot of the lines of `kind`: categories are the distinct `category` values and series
    /// the distinct `series` values (both in first-seen order), bars the `value` field. Every
    /// (category, series) pair must occur exactly once.
    pub fn pivot(lines: &[BenchLine], kind: &str, category: &str, series: &str, value: &str) -> Result<Bars> {
        let distinct = |key: &str| -> Result<Vec<String>> {
            let mut seen: Vec<String> = Vec::new();
            for line in of_kind(lines, kind) {
                let v = line.text(key)?;
                if !seen.iter().any(|s| s == v) {
                    seen.push(v.to_string());
                }
            }
            Ok(seen)
        };
        let categories = distinct(category)?;
        let series = distinct(series)?
            .into_iter()
            .map(|name| {
                let values = categories
                    .iter()
                    .map(|cat| {
                        let mut cell = of_kind(lines, kind)
                            .filter(|l| l.get(category) == Some(cat.as_str()) && l.get(series) == Some(name.as_str()));
                        match (cell.next(), cell.next()) {
                            (Some(line), None) => line.number(value),
                            _ => Err(format!(
                                "BENCH {kind}: need exactly one line with {category}={cat} {series}={name}"
                            )),
                        }
                    })
                    .collect::<Result<_>>()?;
                Ok((name, values))
            })
            .collect::<Result<_>>()?;
        Ok(Bars { categories, series })
    }
}

/// One bar chart of a figure: its caption, y axis name and bars.
pub struct Panel<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    pub bars: Bars,
}

/// Boots `machine` and returns its `BENCH` lines, or why it failed.
fn bench_lines(machine: &Machine, what: &str) -> Result<Vec<BenchLine>> {
    println!("xtask: {what}");
    let outcome = qemu::run_captured(machine, Duration::from_secs(600))?;
    if outcome.status != Some(0) {
        return Err(format!("{} exited with {:?}:\n{}", machine.append, outcome.status, outcome.output));
    }
    stopped_in_time(&outcome.output).map_err(|why| format!("{}: {why}", machine.append))?;
    Ok(parse(&outcome.output))
}

/// A benchmark boot in which a stop-the-world missed its deadline measured a core stuck for
/// seconds of virtual time, not the collector: its figures are refused.
fn stopped_in_time(output: &str) -> Result {
    match output.lines().filter(|l| l.contains("not at a safe point after")).count() {
        0 => Ok(()),
        n => Err(format!("{n} stop-the-world retries (a core took over the deadline to reach a safe point)")),
    }
}

/// Writes `text` to `dir/name`.
fn write(dir: &Path, name: &str, text: String) -> Result {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

/// Runs every measurement and writes `results/`. `no_barriers` is the kernel built with its
/// barriers compiled out (`kernel::build_no_barriers`), the baseline of the barrier figures.
pub fn run(elf: &Path, no_barriers: &Path) -> Result {
    let results = crate::cargo::workspace_root().join("results");
    std::fs::create_dir_all(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let deterministic = |scenario: &str| Machine {
        smp: 1,
        append: format!("test={scenario} gc.heap=16M"),
        gpu: false,
        icount: true,
        ..Machine::new(elf)
    };
    let compiled_out = Machine { elf: no_barriers.to_path_buf(), ..deterministic("bench-barrier") };
    barrier_costs(&results, &deterministic("bench-barrier"), &compiled_out)?;
    barrier_overhead(&results, elf, no_barriers)?;
    barrier_stack(&results, &deterministic("bench-barrier-stack"))?;
    // No -icount: under it a frame takes a few thousand instructions of polling however long the
    // GPU really needs, so the times say nothing.
    let gpu = Machine { smp: 1, append: "test=gpu-bench".into(), gpu: true, icount: false, ..Machine::new(elf) };
    virtio_fences(&results, &gpu)?;
    gc_headroom(&results, elf)?;
    mmu_curves(&results, elf)
}

/// The configurations MMU is measured in: a label (mmu.csv's `mode` column), the command line
/// that selects it, and whether mmu.svg plots every accounting of it or only its median.
/// `buffered-no-handoff` is Go's flush, each mutator shading its own full wbBuf, beside the
/// default hand-off to the markers (`gc.handoff=`, `mark::Batches`).
const MMU_MODES: [(&str, &str, bool); 3] = [
    ("buffered", "gc.mode=buffered", true),
    ("buffered-no-handoff", "gc.mode=buffered gc.handoff=off", false),
    ("direct", "gc.mode=direct", true),
];

/// results/mmu.{csv,svg}: minimum mutator utilisation over windows of 100 µs to 100 ms
/// (Cheng and Blelloch), aggregated over the cores with halted time left out, of GCBench at
/// 4 cores (GOGC 100) under -icount, per barrier mode, from the kernel's timeline dump
/// (`timeline=dump`; decoded and checked by `tricolor_timeline`), at each of the
/// [`INTERLEAVINGS`]: the figures are their median, with the lowest and highest beside it.
fn mmu_curves(results: &Path, elf: &Path) -> Result {
    // mmu: sweeping counts as GC time (tricolor_timeline's categories); mmu_sweep_as_mutator:
    // as the program's, as Go's trace tool counts it unless asked to include sweeping.
    // mmu_all_mutators: over the run until the first core's workload ends (in the tail one core's
    // GCBench is left, and the collector runs beside it alone).
    // mmu_go: sweeping and wbBuf flushes as the program's time, as Go's trace tool counts them.
    // tick_slice: the interleaving, or `median` / `min` / `max` over them.
    // mmu_stalls_kept: as mmu, with the cores' vCPU stalls (QEMU ran none of their code: the
    // kernel's `STALLS` lines, `crate::trace::Stalls`) counted in the states they froze instead
    // of left out.
    let mut csv =
        String::from("mode,tick_slice,window_ns,mmu,mmu_sweep_as_mutator,mmu_all_mutators,mmu_go,mmu_stalls_kept\n");
    let mut chart = Vec::new();
    const VARIANTS: [&str; 5] = [
        "",
        "with sweeping counted as mutator time",
        "while every core has its mutator",
        "counted as Go's trace counts it (sweeps and wbBuf flushes the program's)",
        "with vCPU stalls counted in the states they froze",
    ];
    for (mode, selects, every_accounting) in MMU_MODES {
        // Per interleaving, the five accountings' curves.
        let mut runs: Vec<[crate::trace::Curve; 5]> = Vec::new();
        let mut utilisation = Vec::new();
        for slice in INTERLEAVINGS {
            let machine = Machine {
                smp: HEADROOM_SMP,
                append: format!(
                    "suite={HEADROOM_SUITE} gc.heap={HEADROOM_HEAP} {NO_POISON} {selects} timeline=dump tick.slice={slice}"
                ),
                gpu: false,
                icount: true,
                ..Machine::new(elf)
            };
            println!(
                "xtask: GCBench at {HEADROOM_SMP} cores, {selects}, timeline=dump, tick.slice={slice}, -icount: MMU"
            );
            let outcome = qemu::run_captured(&machine, Duration::from_secs(600))?;
            if outcome.status != Some(0) {
                return Err(format!("{} exited with {:?}:\n{}", machine.append, outcome.status, outcome.output));
            }
            stopped_in_time(&outcome.output).map_err(|why| format!("{}: {why}", machine.append))?;
            let t = crate::trace::decode(&outcome.output)?;
            let stalls = crate::trace::stalls(&outcome.output)?;
            use crate::trace::{Span, Stalls, Sweep};
            let until = crate::trace::first_done(&outcome.output).ok_or("the timeline dump has no first_done=")?;
            let curves = [
                crate::trace::mmu_curve(&t, &stalls, Sweep::IsGc, Span::Run),
                crate::trace::mmu_curve(&t, &stalls, Sweep::IsMutator, Span::Run),
                crate::trace::mmu_curve(&t, &stalls, Sweep::IsGc, Span::Until(until)),
                crate::trace::mmu_curve(&t, &stalls, Sweep::GoAccounting, Span::Run),
                crate::trace::mmu_curve(&t, &Stalls::new(), Sweep::IsGc, Span::Run),
            ];
            csv += &mmu_rows(mode, &slice.to_string(), &curves);
            let (from, to) = t.known_span();
            let overall = crate::trace::utilisation(&t, &stalls).overall();
            println!(
                "bench: MMU {mode} tick.slice={slice}: 1 ms {}, 10 ms {} (utilisation {:.1} % over {:.1} ms; every core has its mutator for the first {:.1} ms; vCPU stalls left out: {})",
                point(&curves[0], 1),
                point(&curves[0], 10),
                overall * 100.0,
                t.ns(to - from) / 1e6,
                t.ns(until.saturating_sub(from)) / 1e6,
                crate::trace::stall_summary(&t, &stalls)
            );
            utilisation.push(overall);
            runs.push(curves);
        }
        let over = |pick: fn(&[f64]) -> f64| -> [crate::trace::Curve; 5] {
            core::array::from_fn(|v| across(&runs.iter().map(|r| &r[v]).collect::<Vec<_>>(), pick))
        };
        let (median, min, max) = (over(median_of), over(min_of), over(max_of));
        for (name, curves) in [("median", &median), ("min", &min), ("max", &max)] {
            csv += &mmu_rows(mode, name, curves);
        }
        for (v, what) in VARIANTS.iter().enumerate().skip(1) {
            println!(
                "bench: MMU {mode} {what}: 1 ms {}, 10 ms {} (median of {})",
                point(&median[v], 1),
                point(&median[v], 10),
                INTERLEAVINGS.len()
            );
        }
        utilisation.sort_by(f64::total_cmp);
        println!(
            "bench: MMU {mode} at {HEADROOM_SMP} cores: 1 ms {} (lowest {}, highest {}), 10 ms {} (lowest {}, highest {}); median of {} interleavings, utilisation {:.1} %",
            point(&median[0], 1),
            point(&min[0], 1),
            point(&max[0], 1),
            point(&median[0], 10),
            point(&min[0], 10),
            point(&max[0], 10),
            INTERLEAVINGS.len(),
            median_of(&utilisation) * 100.0
        );
        let [m0, m1, m2, m3, m4] = median;
        if !every_accounting {
            chart.push((format!("{mode} ({selects})"), m0, 1));
            continue;
        }
        chart.push((mode.to_string(), m0, 2));
        chart.push((format!("{mode}, lowest of the interleavings"), min[0].clone(), 1));
        chart.push((format!("{mode}, sweep as mutator"), m1, 1));
        chart.push((format!("{mode}, while every core has its mutator"), m2, 1));
        chart.push((format!("{mode}, counted as Go's trace"), m3, 1));
        chart.push((format!("{mode}, vCPU stalls counted"), m4, 1));
    }
    write(results, "mmu.csv", csv)?;
    mmu_chart(&results.join("mmu.svg"), &chart)
}

/// A curve's MMU at a window of `ms`, as the bench prints it.
fn point(c: &[(u64, Option<f64>)], ms: u64) -> String {
    c.iter().find(|p| p.0 == ms * 1_000_000).and_then(|p| p.1).map_or("n/a".into(), |m| format!("{:.1} %", m * 100.0))
}

/// mmu.csv's rows for one mode and interleaving (or aggregate): the five accountings per window.
fn mmu_rows(mode: &str, slice: &str, c: &[crate::trace::Curve; 5]) -> String {
    let cell = |m: Option<f64>| m.map_or(String::new(), |m| format!("{m:.4}"));
    let mut rows = String::new();
    for (i, &(w, m)) in c[0].iter().enumerate() {
        let rest: Vec<String> = c[1..].iter().map(|curve| cell(curve[i].1)).collect();
        rows += &format!("{mode},{slice},{w},{},{}\n", cell(m), rest.join(","));
    }
    rows
}

/// Per window, `pick` of the curves' values there (windows longer than a run have none).
fn across(curves: &[&crate::trace::Curve], pick: fn(&[f64]) -> f64) -> crate::trace::Curve {
    curves[0]
        .iter()
        .enumerate()
        .map(|(i, &(w, _))| {
            let mut v: Vec<f64> = curves.iter().filter_map(|c| c[i].1).collect();
            v.sort_by(f64::total_cmp);
            (w, (v.len() == curves.len()).then(|| pick(&v)))
        })
        .collect()
}

/// Over the interleavings: the median, lowest and highest of sorted values ([`quantile`]).
fn median_of(sorted: &[f64]) -> f64 {
    quantile(sorted, 0.5)
}

fn min_of(sorted: &[f64]) -> f64 {
    quantile(sorted, 0.0)
}

fn max_of(sorted: &[f64]) -> f64 {
    quantile(sorted, 1.0)
}

/// MMU against window length (log scale, ms): a line per mode (and a thin one per mode with
/// sweeping counted as mutator time), `(label, curve, line width)`.
fn mmu_chart(path: &Path, curves: &[(String, crate::trace::Curve, u32)]) -> Result {
    let title =
        format!("GCBench ({HEADROOM_SUITE}, {HEADROOM_SMP} cores, GOGC 100, -icount): minimum mutator utilisation");
    svg(path, (800, 480), |root| {
        let mut chart =
            chart_frame(root, &title).build_cartesian_2d((0.1f64..100.0).log_scale(), 0.0..1.0).map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("window (ms)")
            .y_desc("MMU (mutator share of the worst window)")
            .draw()
            .map_err(plot_error)?;
        for (i, (label, curve, width)) in curves.iter().enumerate() {
            let (colour, width) = (SERIES_COLOURS[i % SERIES_COLOURS.len()], *width);
            let points: Vec<(f64, f64)> = curve.iter().filter_map(|&(w, m)| Some((w as f64 / 1e6, m?))).collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(width)))
                .map_err(plot_error)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(width)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// GOGC values for heap headrooms 1.5x, 2x and 3x: the next cycle starts when the heap reaches
/// live * (1 + percent / 100).
const HEADROOMS: [(u32, &str); 3] = [(50, "1.5x"), (100, "2x"), (200, "3x")];
/// Issue 14's pause targets: at 4 cores the longest pause (time to safe point included) at most
/// this, and pause less time to safe point at most 1.5x the 1-core pause.
const PAUSE_TARGET_NS: f64 = 50_000.0;
/// A cycle's peak heap counts as on its goal within this share.
const GOAL_TOLERANCE: f64 = 0.10;
/// GCBench on this many cores, with a heap big enough for 3x headroom (the suite refuses a heap
/// below its peak live data). The quick size: under -icount QEMU runs about 10^8 instructions a
/// second, so Boehm's full size (22 times the allocations) takes over 20 minutes per headroom;
/// run it by hand with `suite=gcbench gc.heap=640M` (docs/experiments.md).
const HEADROOM_SUITE: &str = "gcbench-quick";
/// The vCPU turn lengths (`tick.slice=`, µs) each GCBench figure is measured at. Under -icount
/// QEMU runs one vCPU at a time and moves on at a timer deadline, so the turn length picks one
/// interleaving of the cores out of many: a run repeats exactly, but a change anywhere (a build,
/// a command line) moves cycles against the mutators' phases, and one run's MMU(10 ms) moved by
/// up to 15 points between builds of the same collector. The figures are reported over these
/// interleavings (the first is `trace::ICOUNT_SLICE`'s, the one `cargo xtask trace` shows).
const INTERLEAVINGS: [u32; 5] = [25, 23, 27, 29, 31];
const HEADROOM_SMP: usize = 4;
const HEADROOM_HEAP: &str = "64M";
/// What the MMU and pause runs add to the kernel command line: freed memory is not poisoned.
/// Poisoning is the stress suites' check that nothing reads a freed object; Go does not do it,
/// and in every cycle of gcbench-quick at 4 cores it cost about 9 ms of the collecting core
/// (utilisation 80.8 → 84.3 % without it; docs/experiments.md, 2026-12-03 (2)). `trace --suite`
/// adds it too, so that its run is the bench's.
pub const NO_POISON: &str = "gc.poison=off";

/// The value at quantile `q` (0..=1) of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// results/gcbench_pauses.csv, results/gcbench_headroom.{csv,svg}: GCBench at each headroom
/// under -icount, its pause distribution and the share of time spent collecting.
fn gc_headroom(results: &Path, elf: &Path) -> Result {
    let mut pauses = String::from(
        "smp,headroom,percent,tick_slice,cycle,setup_ns,termination_ns,setup_ttsp_ns,termination_ttsp_ns,heap_goal,peak_heap\n",
    );
    let mut summary = String::from(
        "smp,headroom,percent,tick_slice,cycles,elapsed_ns,gc_ns,stw_ns,gc_share,stw_share,pause_max_ns,pause_p50_ns,pause_p90_ns,pause_less_ttsp_max_ns,peaks_near_goal,assists\n",
    );
    let mut lines = Vec::new();
    let mut table: Vec<PaceRow> = Vec::new();
    // The three headrooms at 4 cores, and the 2x one at 1 core for the ratio target, each at
    // every interleaving.
    let runs = HEADROOMS.iter().map(|&h| (HEADROOM_SMP, h)).chain([(1, HEADROOMS[1])]);
    for ((smp, (percent, headroom)), slice) in runs.flat_map(|r| INTERLEAVINGS.map(|s| (r, s))) {
        let machine = Machine {
            smp,
            // Fair turns between the vCPUs (`tricolor_kernel::slice`): without them a core can
            // stand still for milliseconds, and a cycle handed to another core's task starts late.
            append: format!(
                "suite={HEADROOM_SUITE} gc.heap={HEADROOM_HEAP} {NO_POISON} gc.percent={percent} tick.slice={slice}"
            ),
            gpu: false,
            icount: true,
            ..Machine::new(elf)
        };
        let run = bench_lines(
            &machine,
            &format!("GCBench at {smp} cores, headroom {headroom} (gc.percent={percent}), tick.slice={slice}, -icount"),
        )?;
        let mut all: Vec<f64> = Vec::new();
        let (mut less_ttsp_max, mut near, mut cycles) = (0f64, 0usize, 0usize);
        for line in of_kind(&run, "gc_pause") {
            let (setup, termination) = (line.number("setup_ns")?, line.number("termination_ns")?);
            let (setup_ttsp, term_ttsp) = (line.number("setup_ttsp_ns")?, line.number("termination_ttsp_ns")?);
            let (goal, peak) = (line.number("heap_goal")?, line.number("peak_heap")?);
            pauses += &format!(
                "{smp},{headroom},{percent},{slice},{},{setup},{termination},{setup_ttsp},{term_ttsp},{goal},{peak}\n",
                line.text("cycle")?
            );
            all.extend([setup, termination].into_iter().filter(|&p| p > 0.0));
            less_ttsp_max = less_ttsp_max.max(setup - setup_ttsp).max(termination - term_ttsp);
            // Paced cycles only: one started before its trigger was asked for (the suite's
            // explicit collections), whatever the heap.
            if line.number("started_at")? >= line.number("heap_trigger")? {
                cycles += 1;
                near += usize::from(goal > 0.0 && (peak - goal).abs() <= GOAL_TOLERANCE * goal);
            }
        }
        all.sort_by(f64::total_cmp);
        let s = of_kind(&run, "gc_summary").next().ok_or("GCBench printed no BENCH gc_summary line")?;
        let (elapsed, gc, stw) = (s.number("elapsed_ns")?, s.number("gc_ns")?, s.number("stw_ns")?);
        let (p50, p90, max) = (quantile(&all, 0.5), quantile(&all, 0.9), quantile(&all, 1.0));
        // GC time share: time a cycle was in progress (on the collecting core) over elapsed time;
        // STW share: time every core was stopped.
        let (gc_share, stw_share) = (gc / elapsed, stw / elapsed);
        let near_share = near as f64 / cycles.max(1) as f64;
        summary += &format!(
            "{smp},{headroom},{percent},{slice},{},{elapsed},{gc},{stw},{gc_share:.4},{stw_share:.4},{max},{p50},{p90},{less_ttsp_max},{near_share:.4},{}\n",
            s.text("cycles")?,
            s.text("assists")?
        );
        match table.iter_mut().find(|r| r.smp == smp && r.percent == percent) {
            Some(r) => r.add(max, less_ttsp_max, near, cycles),
            None => {
                table.push(PaceRow { smp, percent, max, less: less_ttsp_max, near, cycles, worst_run: (near, cycles) })
            }
        }
        // The first interleaving's run for the headroom chart and its line.
        if smp != HEADROOM_SMP || slice != INTERLEAVINGS[0] {
            continue;
        }
        println!(
            "bench: GCBench headroom {headroom}: {} cycles, GC {:.1} % of the time, STW {:.2} %, pauses p50 {:.0} / p90 {:.0} / max {:.0} ns",
            s.text("cycles")?,
            gc_share * 100.0,
            stw_share * 100.0,
            p50,
            p90,
            max
        );
        lines.push(BenchLine {
            kind: "headroom".into(),
            fields: [
                ("headroom", headroom.to_string()),
                ("p50", p50.to_string()),
                ("p90", p90.to_string()),
                ("max", max.to_string()),
                ("gc_share", (gc_share * 100.0).to_string()),
                ("stw_share", (stw_share * 100.0).to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        });
    }
    pause_table(&table);
    write(results, "gcbench_pauses.csv", pauses)?;
    write(results, "gcbench_headroom.csv", summary)?;
    let pause_bars =
        Bars::from_columns(&lines, "headroom", "headroom", &[("p50", "p50"), ("p90", "p90"), ("max", "max")])?;
    let share_bars = Bars::from_columns(
        &lines,
        "headroom",
        "headroom",
        &[("GC running", "gc_share"), ("world stopped", "stw_share")],
    )?;
    bar_charts(
        &results.join("gcbench_headroom.svg"),
        vec![
            Panel {
                title: "GCBench stop-the-world pauses by heap headroom (instructions)",
                y_desc: "ns (= instructions)",
                bars: pause_bars,
            },
            Panel { title: "share of GCBench run time", y_desc: "percent", bars: share_bars },
        ],
    )
}

/// One row of the pause and pacing table: a core count and GOGC over every interleaving.
struct PaceRow {
    smp: usize,
    percent: u32,
    /// The longest pause in any run (ns).
    max: f64,
    /// The longest pause less its time to safe point in any run (ns).
    less: f64,
    /// Paced cycles whose peak landed within [`GOAL_TOLERANCE`] of the goal, and paced cycles, over
    /// all the runs.
    near: usize,
    cycles: usize,
    /// The run with the lowest share of such cycles: `(near, cycles)`.
    worst_run: (usize, usize),
}

impl PaceRow {
    fn add(&mut self, max: f64, less: f64, near: usize, cycles: usize) {
        self.max = self.max.max(max);
        self.less = self.less.max(less);
        self.near += near;
        self.cycles += cycles;
        let share = |(n, c): (usize, usize)| n as f64 / c.max(1) as f64;
        if share((near, cycles)) < share(self.worst_run) {
            self.worst_run = (near, cycles);
        }
    }
}

/// Issue 14's pause and pacing table: per core count and GOGC over the interleavings, the longest
/// pause from stop request to release (time to safe point included), the longest pause less its
/// time to safe point, and the cycles whose peak heap landed within [`GOAL_TOLERANCE`] of the
/// goal (all runs together, and the worst run); then the targets, on those figures.
fn pause_table(rows: &[PaceRow]) {
    println!(
        "bench: pauses and pacing (gcbench-quick, {HEADROOM_HEAP}, -icount; ns = instructions; {} interleavings, tick.slice={:?}):",
        INTERLEAVINGS.len(),
        INTERLEAVINGS
    );
    println!("  cores  gc.percent  max pause  max pause - ttsp  paced cycles' peak within 10 % of goal (worst run)");
    for r in rows {
        println!(
            "  {:>5}  {:>10}  {:>9.0}  {:>16.0}  {:>3} of {:<3} ({:.0} %)  ({} of {})",
            r.smp,
            r.percent,
            r.max,
            r.less,
            r.near,
            r.cycles,
            100.0 * r.near as f64 / r.cycles.max(1) as f64,
            r.worst_run.0,
            r.worst_run.1
        );
    }
    let four = rows.iter().filter(|r| r.smp == HEADROOM_SMP);
    let worst = four.clone().map(|r| r.max).fold(0f64, f64::max);
    let one = rows.iter().find(|r| r.smp == 1).map_or(0.0, |r| r.max);
    let less = four.clone().map(|r| r.less).fold(0f64, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "  target: max pause <= {PAUSE_TARGET_NS:.0} ns at {HEADROOM_SMP} cores: {worst:.0} ({})",
        verdict(worst <= PAUSE_TARGET_NS)
    );
    println!(
        "  target: pause - ttsp at {HEADROOM_SMP} cores <= 1.5 x the 1-core pause ({one:.0}): {less:.0} ({})",
        verdict(less <= 1.5 * one)
    );
    if let Some(r) = rows.iter().find(|r| r.smp == HEADROOM_SMP && r.percent == 100) {
        let share = r.near as f64 / r.cycles.max(1) as f64;
        println!(
            "  target: >= 90 % of cycles' peaks within 10 % of the goal at gc.percent=100: {:.1} % over the interleavings ({})",
            share * 100.0,
            verdict(share >= 0.9)
        );
    }
}

/// results/barrier_modes.* and results/wbbuf_sweep.*: instructions per barriered store; the
/// first row is the same stores in the kernel built without barriers (`compiled_out`).
fn barrier_costs(results: &Path, machine: &Machine, compiled_out: &Machine) -> Result {
    let mut lines =
        bench_lines(compiled_out, "bench-barrier, barriers compiled out (feature no-barriers), under -icount")?;
    if of_kind(&lines, "barrier").map(|l| l.get("mode")).ne([Some("compiled-out")]) {
        return Err("the no-barriers kernel's bench-barrier must print one line, mode=compiled-out".into());
    }
    lines.extend(bench_lines(machine, "bench-barrier under -icount (deterministic: instructions, not seconds)")?);
    write(
        results,
        "barrier_modes.csv",
        csv(&lines, "barrier", &["mode", "wbbuf", "stores", "ns_per_store", "flushes"])?,
    )?;
    write(results, "wbbuf_sweep.csv", csv(&lines, "wbbuf", &["entries", "stores", "ns_per_store", "flushes"])?)?;
    let fast_path = ["mode", "wbbuf", "stores", "ns_per_store", "compiled_out_ns_per_store"];
    write(results, "barrier_fastpath.csv", csv(&lines, "barrier_fastpath", &fast_path)?)?;
    for l in of_kind(&lines, "barrier_fastpath") {
        let (ns, plain) = (l.number("ns_per_store")?, l.number("compiled_out_ns_per_store")?);
        println!("bench: barrier fast path, buffered with room {ns:>8.2} instructions per store ({plain:.2} plain)");
    }
    write(results, "barrier_components.csv", csv(&lines, "barrier_components", &COMPONENT_COLUMNS)?)?;
    write(
        results,
        "barrier_prediction.csv",
        csv(
            &lines,
            "barrier_prediction",
            &["variant", "wbbuf", "stores", "measured", "predicted", "error_percent", "flushes"],
        )?,
    )?;
    print_components(&lines)?;

    let modes = Bars::from_columns(&lines, "barrier", "mode", &[("instructions per store", "ns_per_store")])?;
    for (mode, ns) in modes.categories.iter().zip(&modes.series[0].1) {
        println!("bench: barrier mode {mode:<18} {ns:>8.2} instructions per store");
    }
    println!("bench: {}", go19_ratios(&lines)?);
    let title = "cost per pointer store, barrier on (instructions)";
    bar_charts(
        &results.join("barrier_modes.svg"),
        vec![Panel { title, y_desc: "instructions per store", bars: modes }],
    )?;
    let sweep: Vec<(f64, f64)> = of_kind(&lines, "wbbuf")
        .map(|l| Ok((l.number("entries")?, l.number("ns_per_store")?)))
        .collect::<Result<_>>()?;
    line_chart(&results.join("wbbuf_sweep.svg"), "buffered barrier: cost per store vs wbBuf entries", &sweep)
}

/// GCBench for the barrier-overhead figure: the quick size on this many cores, cycles forced every
/// [`OVERHEAD_EVERY`] allocations (counted over all cores, the pacer off: `gc.torture=` with
/// `gc.pacer=off`, where each waits for a running cycle), so every variant collects at the same
/// allocation counts: 7 cycles, and the suite's final one.
const OVERHEAD_SMP: usize = 4;
const OVERHEAD_EVERY: u64 = 349_000;
/// The variants: name, barriers compiled out, `gc.mode=`.
const OVERHEAD_VARIANTS: [(&str, bool, &str); 5] = [
    ("compiled-out", true, "off"),
    ("off", false, "off"),
    ("buffered", false, "buffered"),
    ("direct", false, "direct"),
    ("direct-systemstack", false, "direct-systemstack"),
];

/// One variant's figures (instructions: `-icount`, all cores together).
#[derive(Debug, PartialEq)]
pub struct Overhead {
    pub variant: String,
    pub total: f64,
    /// Instructions while a cycle was in progress (on the collecting core's clock, which is all
    /// cores' under -icount).
    pub in_cycles: f64,
    pub stw: f64,
    pub cycles: u64,
    pub allocs: u64,
    pub barriers: u64,
    pub flushes: u64,
}

impl Overhead {
    /// Mutator instructions: the whole run's less those of its cycles.
    pub fn mutator(&self) -> f64 {
        self.total - self.in_cycles
    }

    fn from_summary(variant: &str, s: &BenchLine) -> Result<Overhead> {
        let count = |key: &str| s.number(key).map(|v| v as u64);
        Ok(Overhead {
            variant: variant.into(),
            total: s.number("run_ns")?,
            in_cycles: s.number("run_gc_ns")?,
            stw: s.number("stw_ns")?,
            cycles: count("cycles")?,
            allocs: count("allocs")?,
            barriers: count("barriers")?,
            flushes: count("flushes")?,
        })
    }
}

/// A variant's whole run over `off`'s, per barrier it took (none if it took none): what one
/// barrier-on store costs the whole program, its mode's collector included.
pub fn per_barrier_over_off(rows: &[Overhead], r: &Overhead) -> Option<f64> {
    let off = rows.iter().find(|o| o.variant == "off")?;
    (r.barriers > 0).then(|| (r.total - off.total) / r.barriers as f64)
}

/// The CSV of [`barrier_overhead`], overheads relative to the first row; an error unless every
/// variant ran the same cycles at the same allocation counts (same cycles, same allocations).
pub fn overhead_csv(rows: &[Overhead]) -> Result<String> {
    let base = rows.first().ok_or("no overhead variants")?;
    let mut out = String::from(
        "variant,cycles,allocs,barriers,flushes,total_instructions,in_cycle_instructions,stw_instructions,mutator_instructions,total_overhead_percent,mutator_overhead_percent,over_off_per_barrier\n",
    );
    for r in rows {
        if (r.cycles, r.allocs) != (base.cycles, base.allocs) {
            return Err(format!(
                "{}: {} cycles over {} allocations, {}: {} over {}: the cycles did not come at the same allocations",
                r.variant, r.cycles, r.allocs, base.variant, base.cycles, base.allocs
            ));
        }
        let percent = |v: f64, b: f64| (v / b - 1.0) * 100.0;
        let per_barrier = per_barrier_over_off(rows, r).map_or(String::new(), |v| format!("{v:.2}"));
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{:.2},{:.2},{per_barrier}\n",
            r.variant,
            r.cycles,
            r.allocs,
            r.barriers,
            r.flushes,
            r.total,
            r.in_cycles,
            r.stw,
            r.mutator(),
            percent(r.total, base.total),
            percent(r.mutator(), base.mutator())
        );
    }
    Ok(out)
}

/// results/barrier_overhead.*: whole-program overhead of the barrier, in the style of Blackburn
/// and Hosking's "Barriers: friend or foe?": GCBench quick at 4 cores under -icount in the kernel
/// built without barriers and in each barrier mode, the cycles at the same allocation counts.
fn barrier_overhead(results: &Path, elf: &Path, no_barriers: &Path) -> Result {
    let mut rows = Vec::new();
    for (variant, compiled_out, mode) in OVERHEAD_VARIANTS {
        let machine = Machine {
            smp: OVERHEAD_SMP,
            append: format!(
                "suite={HEADROOM_SUITE} gc.heap={HEADROOM_HEAP} gc.verify=off gc.pacer=off gc.torture={OVERHEAD_EVERY} gc.mode={mode}"
            ),
            gpu: false,
            icount: true,
            ..Machine::new(if compiled_out { no_barriers } else { elf })
        };
        let run = bench_lines(&machine, &format!("GCBench for the barrier overhead: {variant}, -icount"))?;
        let s = of_kind(&run, "gc_summary").next().ok_or("GCBench printed no BENCH gc_summary line")?;
        rows.push(Overhead::from_summary(variant, s)?);
    }
    write(results, "barrier_overhead.csv", overhead_csv(&rows)?)?;
    let base = &rows[0];
    for r in &rows {
        let per_barrier =
            per_barrier_over_off(&rows, r).map_or(String::new(), |v| format!(", {v:.1} over off per barrier"));
        println!(
            "bench: barrier overhead {:<18} whole run {:>6.3} G instructions ({:+6.2} %), outside cycles {:>6.3} G ({:+6.2} %), {} cycles, {} barriers{per_barrier}",
            r.variant,
            r.total / 1e9,
            (r.total / base.total - 1.0) * 100.0,
            r.mutator() / 1e9,
            (r.mutator() / base.mutator() - 1.0) * 100.0,
            r.cycles,
            r.barriers
        );
    }
    let categories: Vec<String> = rows.iter().map(|r| r.variant.clone()).collect();
    let giga = |f: fn(&Overhead) -> f64| rows.iter().map(|r| f(r) / 1e9).collect::<Vec<f64>>();
    let bars = Bars {
        categories,
        series: vec![
            ("mutator".into(), giga(Overhead::mutator)),
            ("in cycles".into(), giga(|r| r.in_cycles)),
            ("whole run".into(), giga(|r| r.total)),
        ],
    };
    let title = format!("GCBench quick, {OVERHEAD_SMP} cores, cycles every {OVERHEAD_EVERY} allocations");
    bar_charts(
        &results.join("barrier_overhead.svg"),
        vec![Panel { title: &title, y_desc: "G instructions (-icount)", bars }],
    )
}

/// Go 1.9's barrier (`direct-systemstack`) and inline `direct` over `buffered`, per store with
/// the barrier on: the ratio Go issue 22460 put at about 4x (amd64 wall time).
fn go19_ratios(lines: &[BenchLine]) -> Result<String> {
    let per_store = |mode: &str| -> Result<f64> {
        of_kind(lines, "barrier")
            .find(|l| l.get("mode") == Some(mode))
            .ok_or_else(|| format!("bench-barrier printed no line for mode {mode}"))?
            .number("ns_per_store")
    };
    let (buffered, go19, direct) = (per_store("buffered")?, per_store("direct-systemstack")?, per_store("direct")?);
    Ok(format!(
        "Go 1.9's barrier (direct-systemstack) {go19:.2} / buffered {buffered:.2} = {:.2}x; inline direct {direct:.2} / buffered = {:.2}x (Go issue 22460: ~4x)",
        go19 / buffered,
        direct / buffered
    ))
}

/// The `BENCH barrier_components` columns: each part of a barriered store from a loop of its own.
const COMPONENT_COLUMNS: [&str; 8] = [
    "wbbuf",
    "fast_path",
    "fast_path_each",
    "filtered_nil",
    "filtered_not_in_heap",
    "filtered_marked",
    "shaded",
    "flush_fixed",
];

/// How far the components' sum may miss a measured per-store total, in percent.
const PREDICTION_TOLERANCE_PERCENT: f64 = 5.0;

/// Prints the components beside issue 13's goals, and the predictions; an error if a prediction
/// misses its measured total by more than [`PREDICTION_TOLERANCE_PERCENT`] (the components would
/// then not account for the cost).
fn print_components(lines: &[BenchLine]) -> Result {
    let c = of_kind(lines, "barrier_components").next().ok_or("bench-barrier printed no barrier_components line")?;
    let goals = [
        ("fast path, a record that fits (loop included)", "fast_path", None),
        ("filtered pointer: nil", "filtered_nil", Some(20.0)),
        ("filtered pointer: not in the heap", "filtered_not_in_heap", Some(20.0)),
        ("filtered pointer: already marked", "filtered_marked", Some(20.0)),
        ("shaded pointer, white -> grey", "shaded", Some(40.0)),
        ("fixed cost per flush", "flush_fixed", Some(112.0)),
    ];
    for (what, key, goal) in goals {
        let v = c.number(key)?;
        let verdict = match goal {
            Some(g) if v <= g => format!("goal <= {g}: met"),
            Some(g) => format!("goal <= {g}: MISSED"),
            None => String::new(),
        };
        println!("bench: barrier component {what:<48} {v:>7.2} instructions  {verdict}");
    }
    let mut bad = Vec::new();
    for p in of_kind(lines, "barrier_prediction") {
        let (variant, error) = (p.text("variant")?, p.number("error_percent")?);
        println!(
            "bench: barrier prediction {variant:<12} measured {:>7.2} predicted {:>7.2} per store, error {error:+.2} %",
            p.number("measured")?,
            p.number("predicted")?
        );
        // The per-store total the table quotes is the alternating loop's; the fresh-white
        // loop's prediction is shown, not enforced: its shaded and marked components each carry the
        // flush loop's per-entry overhead, which the fresh-white loop pays once per entry (7.75 %
        // over, with the restartable fast path).
        if variant == "alternating" && error.abs() > PREDICTION_TOLERANCE_PERCENT {
            bad.push(format!("{variant}: {error:+.2} %"));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the barrier components do not predict the per-store totals within {PREDICTION_TOLERANCE_PERCENT} %: {}",
            bad.join(", ")
        ))
    }
}

/// results/barrier_stack.*: caller-stack vs system-stack bytes of a burst of barriered stores.
fn barrier_stack(results: &Path, machine: &Machine) -> Result {
    let lines = bench_lines(machine, "bench-barrier-stack under -icount (deterministic: bytes of stack)")?;
    let columns = ["mode", "stores", "caller_stack_bytes", "system_stack_bytes", "flushes"];
    write(results, "barrier_stack.csv", csv(&lines, "barrier_stack", &columns)?)?;
    let bars = Bars::from_columns(
        &lines,
        "barrier_stack",
        "mode",
        &[("caller's stack", "caller_stack_bytes"), ("system stack", "system_stack_bytes")],
    )?;
    for (i, mode) in bars.categories.iter().enumerate() {
        let (caller, system) = (bars.series[0].1[i], bars.series[1].1[i]);
        println!("bench: barrier stack {mode:<24} caller {caller:>5} bytes, system stack {system:>5} bytes");
    }
    let stores = of_kind(&lines, "barrier_stack").next().map_or(Ok("?"), |l| l.text("stores"))?;
    let title = format!("deepest stack use of {stores} barriered stores during mark");
    bar_charts(&results.join("barrier_stack.svg"), vec![Panel { title: &title, y_desc: "bytes", bars }])
}

/// results/virtio_fences.*: fences and time per frame by fence strategy, full and dirty frames.
fn virtio_fences(results: &Path, machine: &Machine) -> Result {
    let lines = bench_lines(machine, "gpu-bench without -icount (times are wall-clock: they vary run to run)")?;
    let columns = ["strategy", "frame", "frames", "fences_per_frame", "ns_per_frame", "spins_per_frame"];
    write(results, "virtio_fences.csv", csv(&lines, "virtio_fence", &columns)?)?;
    for line in of_kind(&lines, "virtio_fence") {
        println!(
            "bench: virtio fence={:<14} {:<5} {:>8} fences/frame {:>10} ns/frame",
            line.text("strategy")?,
            line.text("frame")?,
            line.text("fences_per_frame")?,
            line.text("ns_per_frame")?
        );
    }
    let pivot = |value| Bars::pivot(&lines, "virtio_fence", "strategy", "frame", value);
    bar_charts(
        &results.join("virtio_fences.svg"),
        vec![
            Panel { title: "fences per frame", y_desc: "fences", bars: pivot("fences_per_frame")? },
            Panel { title: "time per frame (wall clock, varies)", y_desc: "ns", bars: pivot("ns_per_frame")? },
        ],
    )
}

fn plot_error(e: impl std::fmt::Display) -> String {
    format!("plotting failed: {e}")
}

/// Draws an SVG of `size` at `path` with `draw`.
fn svg(path: &Path, size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result) -> Result {
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    draw(&root)?;
    root.present().map_err(plot_error)?;
    println!("xtask: wrote {}", path.display());
    Ok(())
}

/// Caption, margins and label areas: the same frame for every chart.
fn chart_frame<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, ("sans-serif", 20)).margin(20).x_label_area_size(40).y_label_area_size(70);
    builder
}

/// Bar colours, one per series.
const SERIES_COLOURS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// One SVG with `panels` side by side, 800x480 pixels each.
pub fn bar_charts(path: &Path, panels: Vec<Panel<'_>>) -> Result {
    let width = 800 * panels.len() as u32;
    svg(path, (width, 480), |root| {
        for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(&panels) {
            draw_bars(area, panel)?;
        }
        Ok(())
    })
}

/// Width of one category on the x axis, in axis units: integers, because plotters can label
/// chosen key points only on an integer axis. Its bars share the middle [`BAR_AREA`] units.
const CATEGORY_UNITS: i32 = 120;
const BAR_AREA: i32 = 96;

/// A grouped bar chart: categories along x, each value written over its bar, a legend when
/// there is more than one series.
fn draw_bars(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &Panel<'_>) -> Result {
    let Bars { categories, series } = &panel.bars;
    // Headroom over the highest bar for the value labels, and for the legend if there is one.
    let headroom = if series.len() > 1 { 1.4 } else { 1.15 };
    let top = series.iter().flat_map(|(_, values)| values.iter().copied()).fold(1.0, f64::max) * headroom;
    let count = categories.len() as i32;
    // Labels at category centres: category i spans [i, i + 1) * CATEGORY_UNITS.
    let centres = (0..count).map(|i| i * CATEGORY_UNITS + CATEGORY_UNITS / 2).collect();
    let mut chart = chart_frame(area, panel.title)
        .build_cartesian_2d((0..count * CATEGORY_UNITS).with_key_points(centres), 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|x| categories.get((x / CATEGORY_UNITS) as usize).cloned().unwrap_or_default())
        .y_label_formatter(&|y| value_label(*y))
        .y_desc(panel.y_desc)
        .draw()
        .map_err(plot_error)?;
    let width = BAR_AREA / series.len().max(1) as i32;
    let value_style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (k, (name, values)) in (0..).zip(series) {
        let colour = SERIES_COLOURS[k as usize % SERIES_COLOURS.len()].mix(0.6);
        let left = move |i: i32| i * CATEGORY_UNITS + (CATEGORY_UNITS - BAR_AREA) / 2 + k * width;
        chart
            .draw_series(
                (0..)
                    .zip(values)
                    .map(|(i, &v)| Rectangle::new([(left(i), 0.0), (left(i) + width, v)], colour.filled())),
            )
            .map_err(plot_error)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        chart
            .draw_series(
                (0..)
                    .zip(values)
                    .map(|(i, &v)| Text::new(value_label(v), (left(i) + width / 2, v), value_style.clone())),
            )
            .map_err(plot_error)?;
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// A bar's value as written over it: whole numbers without decimals.
fn value_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn line_chart(path: &Path, title: &str, points: &[(f64, f64)]) -> Result {
    svg(path, (800, 480), |root| {
        let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let right = points.iter().map(|p| p.0).fold(2.0, f64::max);
        let mut chart = chart_frame(root, title)
            .build_cartesian_2d((1.0..right * 1.5).log_scale(), 0.0..top)
            .map_err(plot_error)?;
        chart.configure_mesh().x_desc("wbBuf entries").y_desc("instructions per store").draw().map_err(plot_error)?;
        chart.draw_series(LineSeries::new(points.iter().copied(), &RED)).map_err(plot_error)?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, RED.filled()))).map_err(plot_error)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "noise\nBENCH barrier mode=buffered wbbuf=512 stores=20000 ns_per_store=180.20 flushes=79\n[ 0.1] INFO log\nBENCH wbbuf entries=2 stores=20000 ns_per_store=277.99 flushes=20000\n";

    const STACK: &str =
        "BENCH barrier_stack mode=off stores=20000 caller_stack_bytes=80 system_stack_bytes=0 flushes=0\n\
        BENCH barrier_stack mode=buffered stores=20000 caller_stack_bytes=400 system_stack_bytes=160 flushes=78\n";

    const FENCES: &str = "BENCH virtio_fence strategy=acquire frame=full frames=60 fences_per_frame=704.06 ns_per_frame=867980 spins_per_frame=698.06\n\
        [VIRTIO PERF] bench-full fence=acquire frames=60\n\
        BENCH virtio_fence strategy=acquire frame=dirty frames=60 fences_per_frame=86.48 ns_per_frame=121880 spins_per_frame=80.48\n\
        BENCH virtio_fence strategy=after-progress frame=full frames=60 fences_per_frame=6.00 ns_per_frame=326802 spins_per_frame=124.28\n\
        BENCH virtio_fence strategy=after-progress frame=dirty frames=60 fences_per_frame=6.00 ns_per_frame=60346 spins_per_frame=58.72\n";

    #[test]
    fn a_boot_with_a_stop_the_world_retry_is_refused() {
        assert!(stopped_in_time(SAMPLE).is_ok());
        let retried = format!(
            "{SAMPLE}[ 2.1] WARN  c0 stw: cores 0b10 not at a safe point after 2000 ms (attempt 1; core 1 preemption depth 0); trying again\n"
        );
        assert_eq!(
            stopped_in_time(&retried).unwrap_err(),
            "1 stop-the-world retries (a core took over the deadline to reach a safe point)"
        );
    }

    #[test]
    fn parses_bench_lines_and_ignores_the_rest() {
        let lines = parse(SAMPLE);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].kind, "barrier");
        assert_eq!(lines[0].get("mode"), Some("buffered"));
        assert_eq!(lines[1].number("ns_per_store").unwrap(), 277.99);
        assert!(lines[1].number("missing").is_err());
    }

    #[test]
    fn csv_keeps_column_order_and_refuses_missing_columns() {
        let lines = parse(SAMPLE);
        assert_eq!(csv(&lines, "wbbuf", &["entries", "ns_per_store"]).unwrap(), "entries,ns_per_store\n2,277.99\n");
        assert!(csv(&lines, "wbbuf", &["entries", "nope"]).is_err());
    }

    #[test]
    fn barrier_stack_csv_and_bars_from_columns() {
        let lines = parse(STACK);
        assert_eq!(
            csv(&lines, "barrier_stack", &["mode", "caller_stack_bytes", "system_stack_bytes"]).unwrap(),
            "mode,caller_stack_bytes,system_stack_bytes\noff,80,0\nbuffered,400,160\n"
        );
        let bars = Bars::from_columns(
            &lines,
            "barrier_stack",
            "mode",
            &[("caller", "caller_stack_bytes"), ("system", "system_stack_bytes")],
        )
        .unwrap();
        assert_eq!(bars.categories, ["off", "buffered"]);
        assert_eq!(bars.series, [("caller".to_string(), vec![80.0, 400.0]), ("system".to_string(), vec![0.0, 160.0])]);
        assert!(Bars::from_columns(&lines, "barrier_stack", "mode", &[("x", "nope")]).is_err());
    }

    #[test]
    fn virtio_fences_pivot_by_strategy_and_frame() {
        let lines = parse(FENCES);
        assert_eq!(lines.len(), 4, "the [VIRTIO PERF] line is not a BENCH line");
        let bars = Bars::pivot(&lines, "virtio_fence", "strategy", "frame", "fences_per_frame").unwrap();
        assert_eq!(bars.categories, ["acquire", "after-progress"]);
        assert_eq!(bars.series, [("full".to_string(), vec![704.06, 6.0]), ("dirty".to_string(), vec![86.48, 6.0])]);
    }

    #[test]
    fn pivot_refuses_missing_and_repeated_cells() {
        let mut lines = parse(FENCES);
        let last = lines.pop().unwrap();
        assert!(Bars::pivot(&lines, "virtio_fence", "strategy", "frame", "ns_per_frame").is_err(), "missing cell");
        lines.push(last);
        lines.extend(parse(FENCES).into_iter().take(1));
        assert!(Bars::pivot(&lines, "virtio_fence", "strategy", "frame", "ns_per_frame").is_err(), "repeated cell");
    }

    const COMPONENTS: &str = "BENCH barrier_components wbbuf=512 fast_path=65.00 fast_path_each=63.00 filtered_nil=6.00 filtered_not_in_heap=6.00 filtered_marked=20.00 shaded=52.84 flush_fixed=101.25\n\
        BENCH barrier_prediction variant=alternating wbbuf=512 stores=20000 measured=91.36 predicted=91.40 error_percent=0.04 flushes=79\n";

    #[test]
    fn curves_aggregate_per_window_over_interleavings() {
        let a: crate::trace::Curve = vec![(1, Some(0.5)), (2, Some(0.7)), (3, None)];
        let b: crate::trace::Curve = vec![(1, Some(0.3)), (2, Some(0.9)), (3, Some(0.8))];
        let c: crate::trace::Curve = vec![(1, Some(0.4)), (2, Some(0.8)), (3, Some(0.9))];
        let runs = [&a, &b, &c];
        assert_eq!(
            across(&runs, median_of),
            vec![(1, Some(0.4)), (2, Some(0.8)), (3, None)],
            "a window one run lacks has none"
        );
        assert_eq!(across(&runs, min_of), vec![(1, Some(0.3)), (2, Some(0.7)), (3, None)]);
        assert_eq!(across(&runs, max_of), vec![(1, Some(0.5)), (2, Some(0.9)), (3, None)]);
        assert_eq!(median_of(&[1.0, 2.0, 4.0, 8.0, 16.0]), 4.0, "five interleavings: the third");
        assert_eq!(median_of(&[]), 0.0);
    }

    #[test]
    fn a_pace_row_keeps_the_worst_run_and_pools_the_rest() {
        let mut r = PaceRow { smp: 4, percent: 100, max: 10.0, less: 2.0, near: 27, cycles: 29, worst_run: (27, 29) };
        r.add(30.0, 1.0, 25, 28);
        r.add(5.0, 3.0, 29, 29);
        assert_eq!((r.max, r.less, r.near, r.cycles), (30.0, 3.0, 81, 86));
        assert_eq!(r.worst_run, (25, 28));
    }

    #[test]
    fn components_pass_within_tolerance_and_fail_outside() {
        let lines = parse(COMPONENTS);
        assert!(print_components(&lines).is_ok());
        assert_eq!(
            csv(&lines, "barrier_components", &COMPONENT_COLUMNS).unwrap(),
            "wbbuf,fast_path,fast_path_each,filtered_nil,filtered_not_in_heap,filtered_marked,shaded,flush_fixed\n512,65.00,63.00,6.00,6.00,20.00,52.84,101.25\n"
        );
        let off = COMPONENTS.replace("error_percent=0.04", "error_percent=-5.10");
        let err = print_components(&parse(&off)).unwrap_err();
        assert!(err.contains("alternating: -5.10 %"), "{err}");
        assert!(print_components(&parse("BENCH barrier mode=off")).is_err(), "no components line");
    }

    #[test]
    fn overhead_rows_compare_with_the_first_and_need_the_same_cycles() {
        let summary = |elapsed, gc, cycles| {
            parse(&format!("BENCH gc_summary run_ns={elapsed} run_gc_ns={gc} stw_ns=5 cycles={cycles} allocs=1000 barriers=7 flushes=1"))
                .pop()
                .unwrap()
        };
        let base = Overhead::from_summary("compiled-out", &summary(1000, 200, 8)).unwrap();
        let buffered = Overhead::from_summary("buffered", &summary(1300, 300, 8)).unwrap();
        assert_eq!(buffered.mutator(), 1000.0);
        let text = overhead_csv(&[base, buffered]).unwrap();
        assert_eq!(text.lines().nth(2).unwrap(), "buffered,8,1000,7,1,1300,300,5,1000,30.00,25.00,");
        let rows = [
            Overhead::from_summary("off", &summary(1100, 200, 8)).unwrap(),
            Overhead::from_summary("buffered", &summary(1300, 300, 8)).unwrap(),
        ];
        assert_eq!(per_barrier_over_off(&rows, &rows[1]), Some(200.0 / 7.0));
        let base = Overhead::from_summary("compiled-out", &summary(1000, 200, 8)).unwrap();
        let other = Overhead::from_summary("off", &summary(1000, 200, 9)).unwrap();
        assert!(overhead_csv(&[base, other]).unwrap_err().contains("not come at the same allocations"));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert_eq!(quantile(&sorted, 0.9), 10.0);
        assert_eq!(quantile(&sorted, 1.0), 10.0);
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn value_labels_drop_zero_decimals() {
        assert_eq!(value_label(400.0), "400");
        assert_eq!(value_label(704.06), "704.06");
    }
}
