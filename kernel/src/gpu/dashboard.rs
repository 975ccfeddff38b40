//! The collector's live dashboard, laid out for the display's size
//! (`tricolor_kernel::screen::layout`): a map of the heap's pages coloured by what their spans
//! hold, the cycle counter, per-core bars of GC vs mutator time with barriers and flushes, a pause
//! histogram, heap in use over time against the pacer's goal, and the counters as text. The first
//! frame is drawn and presented whole; every refresh after it redraws the dynamic regions and
//! presents each as a dirty rectangle (the cycle counter only when it changed).
//!
//! Colours come from [`SpanInfo`]: a page no span holds is free; a span with no allocated object
//! is an empty span; otherwise the share of its allocated objects that are marked shades the page
//! from white (none marked) through greys to black (all marked). The heap keeps no separate grey
//! set per span (grey objects are marked and queued), so "grey" here means a span partly marked,
//! which is what a span looks like while marking is under way. Pinned spans (a `fb=gc`
//! framebuffer) have their own colour.

use super::canvas::{Canvas, Rgb};
use super::display::Display;
use crate::gc::{self, coretime, trace, Kernel};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use tricolor_gc::heap::SpanInfo;
use tricolor_gc::sizeclass::HEAP_PAGE_SIZE;
use tricolor_gc::{BarrierMode, CycleReport, Phase, Platform, StatsSnapshot};
use tricolor_kernel::cmdline::FbSource;
use tricolor_kernel::screen::font;
pub use tricolor_kernel::screen::layout::Grid;
use tricolor_kernel::screen::layout::{self, compact, Layout, TooSmall, PAUSE_BUCKETS};
use tricolor_virtio::gpu::Rect;

const BACKGROUND: Rgb = 0x10_14_1c;
const TITLE: Rgb = 0xff_ff_ff;
const TEXT: Rgb = 0xff_cc_00;
const LEGEND_TEXT: Rgb = 0xc0_c0_c0;
const PANEL: Rgb = 0x1c_22_2e;
/// Behind the cells: the gaps between them and the map's unused tail.
const MAP_BACKGROUND: Rgb = 0x5a_62_72;
/// A page no span holds.
pub const FREE: Rgb = 0x1c_2c_4c;
/// A page of a span with no allocated object.
pub const EMPTY_SPAN: Rgb = 0x3c_5c_3c;
/// Allocated objects, none marked.
pub const WHITE: Rgb = 0xf0_f0_f0;
/// Allocated objects, all marked.
pub const BLACK: Rgb = 0x00_00_00;
/// A pinned span (never freed or moved while pinned).
pub const PINNED: Rgb = 0xd0_80_20;
/// GC time in the per-core bars, and the goal line of the heap chart.
const GC_TIME: Rgb = 0xe0_40_40;
/// Mutator time in the per-core bars.
const MUTATOR_TIME: Rgb = 0x40_b0_60;
/// Heap in use in the heap chart, and the pause histogram's bars.
const HEAP_IN_USE: Rgb = 0xff_cc_00;
const BAR_EMPTY: Rgb = 0x30_36_44;

/// One map cell: the pages it covers, summed.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Cell {
    /// Pages some span holds.
    used: u32,
    /// Pages of spans with allocated objects.
    live: u32,
    /// Sum over live pages of their span's marked share, in 1/256ths.
    marked_256: u32,
    pinned: bool,
}

impl Cell {
    fn colour(&self) -> Rgb {
        if self.pinned {
            PINNED
        } else if self.used == 0 {
            FREE
        } else {
            // No live page: the span holds no allocated object.
            self.marked_256.checked_div(self.live).map_or(EMPTY_SPAN, shade)
        }
    }
}

/// White (0 of 256 marked) through grey to black (256 of 256).
pub fn shade(marked_256: u32) -> Rgb {
    let level = 0xf0 - 0xf0 * marked_256.min(256) / 256;
    level << 16 | level << 8 | level
}

/// The heap's pages folded into cells, `pages_per_cell` pages each.
pub struct SpanMap {
    base: usize,
    pages_per_cell: usize,
    cells: Vec<Cell>,
    spans: usize,
    objects_allocated: usize,
    objects_marked: usize,
}

impl SpanMap {
    /// An all-free map of `pages` pages from `base`, each cell `pages_per_cell` pages.
    pub fn new(base: usize, pages: usize, pages_per_cell: usize) -> Self {
        let pages_per_cell = pages_per_cell.max(1);
        let cells = vec![Cell::default(); pages.div_ceil(pages_per_cell)];
        SpanMap { base, pages_per_cell, cells, spans: 0, objects_allocated: 0, objects_marked: 0 }
    }

    /// Folds in one span.
    pub fn add(&mut self, span: &SpanInfo) {
        self.spans += 1;
        self.objects_allocated += span.allocated;
        self.objects_marked += span.marked;
        let first = span.start.saturating_sub(self.base) / HEAP_PAGE_SIZE;
        let marked_256 = (span.marked * 256).checked_div(span.allocated).unwrap_or(0) as u32;
        for page in first..first + span.pages {
            let Some(cell) = self.cells.get_mut(page / self.pages_per_cell) else { break };
            cell.used += 1;
            cell.pinned |= span.pinned;
            if span.allocated > 0 {
                cell.live += 1;
                cell.marked_256 += marked_256;
            }
        }
    }

    /// The map of the collector's heap right now (spans read while mutators may run: each span's
    /// counts are a consistent-enough snapshot for a picture).
    pub fn of_heap(pages_per_cell: usize) -> Self {
        let heap = &gc::collector().heap;
        let mut map = SpanMap::new(heap.base(), heap.size() / HEAP_PAGE_SIZE, pages_per_cell);
        heap.for_each_span(|span| map.add(&span));
        map
    }

    /// Cell colours in page order.
    pub fn colours(&self) -> impl Iterator<Item = Rgb> + '_ {
        self.cells.iter().map(Cell::colour)
    }

    /// Spans folded in.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Objects marked in the spans folded in.
    pub fn objects_marked(&self) -> usize {
        self.objects_marked
    }

    /// Pages some span holds.
    pub fn used_pages(&self) -> u32 {
        self.cells.iter().map(|c| c.used).sum()
    }
}

/// One core's numbers for the per-core panel.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreSample {
    pub gc_ns: u64,
    pub elapsed_ns: u64,
    pub barriers: u64,
    pub flushes: u64,
}

/// What one refresh shows.
pub struct Sample {
    pub stats: StatsSnapshot,
    pub phase: Phase,
    pub mode: BarrierMode,
    pub map: SpanMap,
    /// Total pause time so far (for the last pause when no cycle report was noted).
    pub pause_total_ns: u64,
    /// The pacer's goal: the heap size at which the next cycle starts.
    pub goal: u64,
    pub cores: Vec<CoreSample>,
    pub pauses: [u64; PAUSE_BUCKETS],
    /// GC share of all cores' time since boot (the gctrace percentage), if a cycle ran.
    pub gc_cpu_percent: Option<u64>,
}

impl Sample {
    /// The collector now, its heap folded `pages_per_cell` pages a cell (see [`Grid`]).
    pub fn take(pages_per_cell: usize) -> Sample {
        let c = gc::collector();
        let cores = (0..<Kernel as Platform>::core_count())
            .map(|i| {
                let (gc_ns, elapsed_ns) = coretime::of(i);
                let stats = <Kernel as Platform>::core(i).stats();
                CoreSample { gc_ns, elapsed_ns, barriers: stats.barriers.get(), flushes: stats.flushes.get() }
            })
            .collect();
        Sample {
            stats: c.stats::<Kernel>(),
            phase: c.phase(),
            mode: tricolor_gc::barrier::mode(),
            map: SpanMap::of_heap(pages_per_cell),
            pause_total_ns: c.stats.pause_total_ns.get(),
            goal: c.trigger() as u64,
            cores,
            pauses: trace::pause_histogram(),
            gc_cpu_percent: trace::last().map(|t| t.cpu_percent),
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "IDLE",
        Phase::Mark => "MARK",
        Phase::MarkTermination => "MARK TERM",
        Phase::Sweep => "SWEEP",
    }
}

/// Why the dashboard cannot be shown.
#[derive(Debug)]
pub enum ShowError {
    TooSmall(TooSmall),
    Device(tricolor_virtio::Error),
}

impl fmt::Display for ShowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall(t) => write!(
                f,
                "a {}x{} display is smaller than the {}x{} the dashboard needs",
                t.width,
                t.height,
                layout::MIN_WIDTH,
                layout::MIN_HEIGHT
            ),
            Self::Device(e) => write!(f, "GPU command failed: {e}"),
        }
    }
}

/// The dashboard's state between refreshes.
pub struct Dashboard {
    layout: Layout,
    grid: Grid,
    source: FbSource,
    frame: u64,
    last_pause_ns: u64,
    /// Pause count and total at the previous refresh.
    seen_pauses: (u64, u64),
    /// `last_pause_ns` came from a cycle report since the previous refresh.
    pause_noted: bool,
    /// The cycle count on the screen (None: not drawn yet).
    shown_cycles: Option<u64>,
    /// Heap in use and goal at each refresh, oldest first, one chart column each.
    history: VecDeque<(u64, u64)>,
}

impl Dashboard {
    /// A dashboard for a `width` x `height` display and a heap of `pages` pages (nothing drawn).
    pub fn new(width: u32, height: u32, pages: usize, source: FbSource) -> Result<Dashboard, TooSmall> {
        let layout = Layout::new(width, height)?;
        Ok(Dashboard {
            grid: Grid::fit(pages, layout.map),
            layout,
            source,
            frame: 0,
            last_pause_ns: 0,
            seen_pauses: (0, 0),
            pause_noted: false,
            shown_cycles: None,
            history: VecDeque::new(),
        })
    }

    /// Draws the whole dashboard and presents it as one full frame.
    pub fn show(display: &mut Display) -> Result<Dashboard, ShowError> {
        let pages = gc::collector().heap.size() / HEAP_PAGE_SIZE;
        let fb = *display.framebuffer();
        let mut dashboard =
            Dashboard::new(fb.width, fb.height, pages, display.source()).map_err(ShowError::TooSmall)?;
        let sample = Sample::take(dashboard.grid.pages_per_cell);
        let mut canvas = display.canvas();
        dashboard.draw_fixed(&mut canvas);
        dashboard.draw(&mut canvas, &sample);
        display.present_full().map_err(ShowError::Device)?;
        let l = &dashboard.layout;
        log::info!(
            "gui: dashboard drawn ({} heap pages, {}x{} px cells, {}x{} display, text scale {}, cycle counter at {},{})",
            pages,
            dashboard.grid.size,
            dashboard.grid.size,
            l.width,
            l.height,
            l.scale,
            l.cycles.x,
            l.cycles.y
        );
        Ok(dashboard)
    }

    /// Takes the last pause from a cycle's report (its longest pause) instead of the counters.
    pub fn note_cycle(&mut self, report: &CycleReport) {
        self.last_pause_ns = report.pause_ns[0].max(report.pause_ns[1]);
        self.pause_noted = true;
    }

    /// Redraws the dynamic regions from the collector now and presents them; returns the
    /// rectangles presented.
    pub fn refresh(&mut self, display: &mut Display) -> Result<Vec<Rect>, tricolor_virtio::Error> {
        let sample = Sample::take(self.grid.pages_per_cell);
        self.refresh_with(display, &sample)
    }

    /// [`Dashboard::refresh`] from a sample taken earlier (e.g. during a cycle's mark).
    pub fn refresh_with(
        &mut self,
        display: &mut Display,
        sample: &Sample,
    ) -> Result<Vec<Rect>, tricolor_virtio::Error> {
        let rects = self.draw(&mut display.canvas(), sample);
        for &rect in &rects {
            display.present(rect)?;
        }
        Ok(rects)
    }

    /// The map's cell layout.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Where everything is.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The regions drawn once: background, title, cycle counter label, legend.
    fn draw_fixed(&self, canvas: &mut Canvas<'_>) {
        let l = &self.layout;
        let big = 2 * l.scale;
        canvas.fill(Rect::new(0, 0, canvas.width(), canvas.height()), BACKGROUND);
        canvas.text(l.title.x, l.title.y, layout::TITLE, big, TITLE, BACKGROUND);
        canvas.text(l.cycles_label.x, l.cycles_label.y, layout::CYCLES_LABEL, big, LEGEND_TEXT, BACKGROUND);
        draw_legend(canvas, l);
    }

    /// Draws the dynamic regions; returns those to present (clipped).
    pub fn draw(&mut self, canvas: &mut Canvas<'_>, sample: &Sample) -> Vec<Rect> {
        self.frame += 1;
        let (pauses, total) = (sample.stats.pauses, sample.pause_total_ns);
        if pauses > self.seen_pauses.0 && !self.pause_noted {
            // No cycle report: the mean of the pauses since the previous refresh.
            self.last_pause_ns = total.saturating_sub(self.seen_pauses.1) / (pauses - self.seen_pauses.0);
        }
        self.seen_pauses = (pauses, total);
        self.pause_noted = false;
        let columns = (self.layout.heap.width / self.column_width()).max(1) as usize;
        self.history.push_back((sample.stats.heap_in_use, sample.goal));
        while self.history.len() > columns {
            self.history.pop_front();
        }
        let l = self.layout;
        let mut rects = Vec::with_capacity(6);
        rects.push(draw_map(canvas, &l, &self.grid, &sample.map));
        if self.shown_cycles != Some(sample.stats.cycles) {
            self.shown_cycles = Some(sample.stats.cycles);
            rects.push(draw_cycles(canvas, &l, sample.stats.cycles));
        }
        rects.push(draw_cores(canvas, &l, &sample.cores));
        rects.push(draw_pauses(canvas, &l, &sample.pauses));
        rects.push(self.draw_heap(canvas, sample.stats.heap_size));
        rects.push(self.draw_text(canvas, sample));
        rects.into_iter().map(|r| canvas.clip(r)).collect()
    }

    fn column_width(&self) -> u32 {
        2 * self.layout.scale
    }

    /// Heap in use (columns) and the goal (a line) over the last refreshes, scaled to the largest
    /// value shown (at least 1 MiB), so a small live heap is not a sliver.
    fn draw_heap(&self, canvas: &mut Canvas<'_>, heap_size: u64) -> Rect {
        let l = &self.layout;
        let area = l.heap;
        canvas.fill(area, PANEL);
        let top = self.history.iter().map(|&(used, goal)| used.max(goal)).max().unwrap_or(0).max(1 << 20);
        let scale_mib = top.div_ceil(1 << 20).min(heap_size >> 20).max(1);
        let heading = format!("HEAP IN USE VS GOAL, 0..{scale_mib} MIB");
        canvas.text(area.x + l.scale, area.y + l.scale, &heading, l.scale, LEGEND_TEXT, PANEL);
        let chart_top = area.y + layout::line_height(l.scale);
        let chart = Rect::new(area.x, chart_top, area.width, area.y + area.height - chart_top);
        let full = scale_mib << 20;
        let height_of = |bytes: u64| ((bytes.min(full) * chart.height as u64) / full) as u32;
        let w = self.column_width();
        for (i, &(used, goal)) in self.history.iter().enumerate() {
            let x = chart.x + i as u32 * w;
            let h = height_of(used);
            canvas.fill(Rect::new(x, chart.y + chart.height - h, w, h), HEAP_IN_USE);
            let g = height_of(goal).max(1);
            canvas.fill(Rect::new(x, chart.y + chart.height - g, w, l.scale), GC_TIME);
        }
        area
    }

    /// The counter lines.
    fn draw_text(&self, canvas: &mut Canvas<'_>, sample: &Sample) -> Rect {
        let l = &self.layout;
        let s = &sample.stats;
        let chars = l.text_chars();
        let percent = (s.heap_in_use * 100).checked_div(s.heap_size).unwrap_or(0);
        let pages = sample.map.cells.len() * sample.map.pages_per_cell;
        let workload = crate::demo::workload().map_or("STOPPED", |w| w.name());
        let gc_cpu = sample.gc_cpu_percent.map_or(String::from("-"), |p| format!("{p}%"));
        let lines = [
            format!(
                "PHASE {}  MODE {}  FB {}  WORKLOAD {}  GCTRACE {}  VERIFY {}  FRAME {}",
                phase_name(sample.phase),
                sample.mode.name(),
                self.source.name(),
                workload,
                if trace::enabled() { "ON" } else { "OFF" },
                if gc::verify_enabled() { "ON" } else { "OFF" },
                self.frame
            ),
            format!(
                "BARRIERS {}   FLUSHES {}   OBJECTS SHADED {}   ALLOCS {}",
                s.barriers, s.flushes, s.objects_shaded, s.allocs
            ),
            format!(
                "PAUSE LAST {} US   MAX {} US   MEAN {} US   PAUSES {}   GC CPU {gc_cpu}",
                self.last_pause_ns / 1000,
                s.pause_max_ns / 1000,
                s.pause_mean_ns / 1000,
                s.pauses
            ),
            format!(
                "HEAP {} / {} KIB IN USE {percent}%   GOAL {} KIB   LIVE AT LAST MARK {} KIB",
                s.heap_in_use >> 10,
                s.heap_size >> 10,
                sample.goal >> 10,
                s.last_marked_bytes >> 10
            ),
            format!(
                "SPANS {}   PAGES {} / {pages}   MARKED {} / {}   FREED {} KIB   MISSES {}",
                sample.map.spans,
                sample.map.used_pages(),
                sample.map.objects_marked,
                sample.map.objects_allocated,
                s.bytes_freed >> 10,
                s.verifier_misses
            ),
        ];
        canvas.fill(l.text, BACKGROUND);
        for (i, text) in lines.iter().enumerate() {
            let text: String = format!("{text:<chars$}").chars().take(chars).collect();
            let y = l.text.y + i as u32 * layout::line_height(l.scale);
            canvas.text(l.text.x, y, &text, l.scale, TEXT, BACKGROUND);
        }
        l.text
    }
}

fn draw_legend(canvas: &mut Canvas<'_>, l: &Layout) {
    let keys = [
        (FREE, "FREE"),
        (EMPTY_SPAN, "EMPTY SPAN"),
        (WHITE, "UNMARKED"),
        (shade(128), "PART MARKED"),
        (BLACK, "MARKED"),
        (PINNED, "PINNED"),
    ];
    let s = l.scale;
    let box_side = font::HEIGHT * s;
    let mut left = l.legend.x;
    for (colour, label) in keys {
        canvas.fill(Rect::new(left, l.legend.y, box_side, box_side), MAP_BACKGROUND);
        canvas.fill(Rect::new(left + s, l.legend.y + s, box_side - 2 * s, box_side - 2 * s), colour);
        let area = canvas.text(left + box_side + 3 * s, l.legend.y, label, s, LEGEND_TEXT, BACKGROUND);
        left += box_side + 3 * s + area.width + 12 * s;
    }
}

/// Paints every cell of `map` into the map region; returns the region.
fn draw_map(canvas: &mut Canvas<'_>, l: &Layout, grid: &Grid, map: &SpanMap) -> Rect {
    canvas.fill(l.map, MAP_BACKGROUND);
    for (i, colour) in map.colours().enumerate() {
        canvas.fill(grid.cell(l.map, i), colour);
    }
    l.map
}

/// The cycle counter: [`layout::CYCLE_DIGITS`] zero-padded digits (xtask reads them back).
fn draw_cycles(canvas: &mut Canvas<'_>, l: &Layout, cycles: u64) -> Rect {
    let digits = format!("{:0width$}", cycles % 10u64.pow(layout::CYCLE_DIGITS), width = layout::CYCLE_DIGITS as usize);
    canvas.text(l.cycles.x, l.cycles.y, &digits, 2 * l.scale, TEXT, BACKGROUND);
    l.cycles
}

fn compact_string(n: u64) -> String {
    let mut s = String::new();
    let _ = compact(n, &mut s);
    s
}

/// A row per core: a bar split into GC time (red) and mutator time (green) since the demo
/// started, the GC share, and the core's barriers and flushes.
fn draw_cores(canvas: &mut Canvas<'_>, l: &Layout, cores: &[CoreSample]) -> Rect {
    let area = l.cores;
    let s = l.scale;
    canvas.fill(area, PANEL);
    let line = layout::line_height(s);
    canvas.text(area.x + s, area.y + s, "GC / MUTATOR TIME, BARRIERS, FLUSHES", s, LEGEND_TEXT, PANEL);
    let advance = font::ADVANCE * s;
    // "C0 " before the bar, " 100% B 999.9K F 999.9K" after it.
    let bar_x = area.x + s + 3 * advance;
    let bar_width = area.width.saturating_sub(3 * advance + 24 * advance + 2 * s);
    for (i, core) in cores.iter().take(layout::CORE_ROWS as usize).enumerate() {
        let y = area.y + (i as u32 + 1) * line + s;
        canvas.text(area.x + s, y, &format!("C{i}"), s, LEGEND_TEXT, PANEL);
        let gc_share = (core.gc_ns as u128 * bar_width as u128 / core.elapsed_ns.max(1) as u128) as u32;
        let gc_share = gc_share.min(bar_width);
        let bar_height = font::HEIGHT * s;
        canvas.fill(Rect::new(bar_x, y, gc_share, bar_height), GC_TIME);
        canvas.fill(Rect::new(bar_x + gc_share, y, bar_width - gc_share, bar_height), MUTATOR_TIME);
        let percent = core.gc_ns * 100 / core.elapsed_ns.max(1);
        let text =
            format!("{percent:>3}% B {:<6} F {:<6}", compact_string(core.barriers), compact_string(core.flushes));
        canvas.text(bar_x + bar_width + advance, y, &text, s, TEXT, PANEL);
    }
    if cores.is_empty() {
        canvas.fill(Rect::new(area.x, area.y + line, area.width, 1), BAR_EMPTY);
    }
    area
}

/// Pause counts by power-of-two duration, scaled to the fullest bucket.
fn draw_pauses(canvas: &mut Canvas<'_>, l: &Layout, pauses: &[u64; PAUSE_BUCKETS]) -> Rect {
    let area = l.pauses;
    let s = l.scale;
    canvas.fill(area, PANEL);
    let line = layout::line_height(s);
    let most = pauses.iter().copied().max().unwrap_or(0);
    let heading = format!("PAUSES BY LENGTH, LOG2 (MAX {most})");
    canvas.text(area.x + s, area.y + s, &heading, s, LEGEND_TEXT, PANEL);
    let chart = Rect::new(area.x + s, area.y + line, area.width - 2 * s, area.height.saturating_sub(2 * line));
    let column = chart.width / PAUSE_BUCKETS as u32;
    for (i, &count) in pauses.iter().enumerate() {
        let x = chart.x + i as u32 * column;
        canvas.fill(Rect::new(x + s, chart.y, column.saturating_sub(2 * s), chart.height), BAR_EMPTY);
        let h = (count * chart.height as u64).checked_div(most).unwrap_or(0) as u32;
        let h = if count > 0 { h.max(s) } else { 0 };
        canvas.fill(Rect::new(x + s, chart.y + chart.height - h, column.saturating_sub(2 * s), h), HEAP_IN_USE);
    }
    let labels_y = area.y + area.height - line + s;
    canvas.text(area.x + s, labels_y, "<32US", s, LEGEND_TEXT, PANEL);
    let right = ">32MS";
    let right_x = area.x + area.width - s - layout::text_width(right.len() as u32, s);
    canvas.text(right_x, labels_y, right, s, LEGEND_TEXT, PANEL);
    area
}
