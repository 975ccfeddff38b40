//! The collector's live dashboard: a map of the heap's pages coloured by what their spans hold,
//! and the collector's counters as text. The first frame is drawn and presented whole; every
//! refresh after it redraws and presents two dirty rectangles, the map and the text.
//!
//! Colours come from [`SpanInfo`]: a page no span holds is free; a span with no allocated object
//! is an empty span; otherwise the share of its allocated objects that are marked shades the page
//! from white (none marked) through greys to black (all marked). The heap keeps no separate grey
//! set per span (grey objects are marked and queued), so "grey" here means a span partly marked,
//! which is what a span looks like while marking is under way. Pinned spans (a `fb=gc`
//! framebuffer) have their own colour.

use super::canvas::{Canvas, Rgb};
use super::display::Display;
use crate::gc;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use tricolor_gc::heap::SpanInfo;
use tricolor_gc::sizeclass::PAGE_SIZE;
use tricolor_gc::{BarrierMode, CycleReport, Phase, StatsSnapshot};
use tricolor_virtio::gpu::Rect;

const BACKGROUND: Rgb = 0x10_14_1c;
const TITLE: Rgb = 0xff_ff_ff;
const TEXT: Rgb = 0xff_cc_00;
const LEGEND_TEXT: Rgb = 0xc0_c0_c0;
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

/// The span map's region (on a 1280x720 display; clipped on a smaller one).
pub const MAP: Rect = Rect::new(16, 84, 1248, 440);
/// The counters' region.
pub const TEXT_AREA: Rect = Rect::new(16, 540, 1248, 168);
const TEXT_SCALE: u32 = 2;
const LINE_HEIGHT: u32 = 24;
/// Characters per text line: every line is padded to this, so redrawing covers the old text.
const LINE_CHARS: usize = 100;

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
        let first = span.start.saturating_sub(self.base) / PAGE_SIZE;
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
        let mut map = SpanMap::new(heap.base(), heap.size() / PAGE_SIZE, pages_per_cell);
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

/// How the map's cells sit in [`MAP`]: `size` pixels a side (gap included), `columns` a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub pages_per_cell: usize,
    pub size: u32,
    pub columns: u32,
}

impl Grid {
    /// The largest cells (up to 32 px) that fit `pages` pages into `area`, folding pages into
    /// cells when even 2 px cells one page each would not fit.
    pub fn fit(pages: usize, area: Rect) -> Grid {
        for size in (2..=32).rev() {
            let columns = area.width / size;
            if columns > 0 && pages.div_ceil(columns as usize) as u32 * size <= area.height {
                return Grid { pages_per_cell: 1, size, columns };
            }
        }
        let cells = ((area.width / 2) * (area.height / 2)).max(1) as usize;
        Grid { pages_per_cell: pages.div_ceil(cells), size: 2, columns: area.width / 2 }
    }

    /// The rectangle of cell `i` (without its gap).
    pub fn cell(&self, area: Rect, i: usize) -> Rect {
        let (col, row) = (i as u32 % self.columns, i as u32 / self.columns);
        let gap = u32::from(self.size >= 4);
        Rect::new(area.x + col * self.size, area.y + row * self.size, self.size - gap, self.size - gap)
    }
}

/// What one refresh shows.
pub struct Sample {
    pub stats: StatsSnapshot,
    pub phase: Phase,
    pub mode: BarrierMode,
    pub map: SpanMap,
    /// Total pause time so far (for the last pause when no cycle report was noted).
    pub pause_total_ns: u64,
}

impl Sample {
    /// The collector now, its heap folded `pages_per_cell` pages a cell (see [`Grid`]).
    pub fn take(pages_per_cell: usize) -> Sample {
        let c = gc::collector();
        Sample {
            stats: c.stats::<gc::Kernel>(),
            phase: c.phase(),
            mode: tricolor_gc::barrier::mode(),
            map: SpanMap::of_heap(pages_per_cell),
            pause_total_ns: c.stats.pause_total_ns.get(),
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "IDLE",
        Phase::Mark => "MARK",
        Phase::MarkTermination => "MARK TERMINATION",
        Phase::Sweep => "SWEEP",
    }
}

/// The dashboard's state between refreshes.
pub struct Dashboard {
    grid: Grid,
    frame: u64,
    last_pause_ns: u64,
    /// Pause count and total at the previous refresh.
    seen_pauses: (u64, u64),
    /// `last_pause_ns` came from a cycle report since the previous refresh.
    pause_noted: bool,
}

impl Dashboard {
    /// A dashboard for a heap of `pages` pages (nothing drawn yet).
    pub fn new(pages: usize) -> Dashboard {
        Dashboard { grid: Grid::fit(pages, MAP), frame: 0, last_pause_ns: 0, seen_pauses: (0, 0), pause_noted: false }
    }

    /// Draws the whole dashboard (title, legend, map, text) and presents it as one full frame.
    pub fn show(display: &mut Display) -> Result<Dashboard, tricolor_virtio::Error> {
        let pages = gc::collector().heap.size() / PAGE_SIZE;
        let mut dashboard = Dashboard::new(pages);
        let sample = Sample::take(dashboard.grid.pages_per_cell);
        let mut canvas = display.canvas();
        let full = Rect::new(0, 0, canvas.width(), canvas.height());
        canvas.fill(full, BACKGROUND);
        canvas.text(16, 16, "TRICOLOR GC", 4, TITLE, BACKGROUND);
        draw_legend(&mut canvas, 16, 56);
        dashboard.draw(&mut canvas, &sample);
        display.present_full()?;
        log::info!(
            "gui: dashboard drawn ({} heap pages, {}x{} px cells)",
            pages,
            dashboard.grid.size,
            dashboard.grid.size
        );
        Ok(dashboard)
    }

    /// Takes the last pause from a cycle's report (its longest pause) instead of the counters.
    pub fn note_cycle(&mut self, report: &CycleReport) {
        self.last_pause_ns = report.pause_ns[0].max(report.pause_ns[1]);
        self.pause_noted = true;
    }

    /// Redraws the map and the text from the collector now; presents and returns their two
    /// rectangles.
    pub fn refresh(&mut self, display: &mut Display) -> Result<[Rect; 2], tricolor_virtio::Error> {
        let sample = Sample::take(self.grid.pages_per_cell);
        self.refresh_with(display, &sample)
    }

    /// [`Dashboard::refresh`] from a sample taken earlier (e.g. during a cycle's mark).
    pub fn refresh_with(
        &mut self,
        display: &mut Display,
        sample: &Sample,
    ) -> Result<[Rect; 2], tricolor_virtio::Error> {
        let rects = self.draw(&mut display.canvas(), sample);
        for rect in rects {
            display.present(rect)?;
        }
        Ok(rects)
    }

    /// The map's cell layout.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Draws the map and the text; returns their (clipped) rectangles.
    pub fn draw(&mut self, canvas: &mut Canvas<'_>, sample: &Sample) -> [Rect; 2] {
        self.frame += 1;
        let (pauses, total) = (sample.stats.pauses, sample.pause_total_ns);
        if pauses > self.seen_pauses.0 && !self.pause_noted {
            // No cycle report: the mean of the pauses since the previous refresh.
            self.last_pause_ns = total.saturating_sub(self.seen_pauses.1) / (pauses - self.seen_pauses.0);
        }
        self.seen_pauses = (pauses, total);
        self.pause_noted = false;
        let map = draw_map(canvas, &self.grid, &sample.map);
        let text = draw_text(canvas, sample, self.last_pause_ns, self.frame);
        [map, text]
    }
}

fn draw_legend(canvas: &mut Canvas<'_>, x: u32, y: u32) {
    let keys = [
        (FREE, "FREE"),
        (EMPTY_SPAN, "EMPTY SPAN"),
        (WHITE, "UNMARKED"),
        (shade(128), "PART MARKED"),
        (BLACK, "MARKED"),
        (PINNED, "PINNED"),
    ];
    let mut left = x;
    for (colour, label) in keys {
        canvas.fill(Rect::new(left, y, 14, 14), MAP_BACKGROUND);
        canvas.fill(Rect::new(left + 2, y + 2, 10, 10), colour);
        let area = canvas.text(left + 20, y, label, TEXT_SCALE, LEGEND_TEXT, BACKGROUND);
        left += 20 + area.width + 24;
    }
}

/// Paints every cell of `map` into [`MAP`]; returns the map's rectangle.
fn draw_map(canvas: &mut Canvas<'_>, grid: &Grid, map: &SpanMap) -> Rect {
    canvas.fill(MAP, MAP_BACKGROUND);
    for (i, colour) in map.colours().enumerate() {
        canvas.fill(grid.cell(MAP, i), colour);
    }
    canvas.clip(MAP)
}

fn line(text: String) -> String {
    format!("{text:<LINE_CHARS$}")
}

/// The counters as text lines in [`TEXT_AREA`]; returns its rectangle.
fn draw_text(canvas: &mut Canvas<'_>, sample: &Sample, last_pause_ns: u64, frame: u64) -> Rect {
    let s = &sample.stats;
    let percent = (s.heap_in_use * 100).checked_div(s.heap_size).unwrap_or(0);
    let pages = sample.map.cells.len() * sample.map.pages_per_cell;
    let lines = [
        line(format!(
            "CYCLES {}   PHASE {}   MODE {}   FRAME {frame}",
            s.cycles,
            phase_name(sample.phase),
            sample.mode.name()
        )),
        line(format!("BARRIERS {}   FLUSHES {}   OBJECTS SHADED {}", s.barriers, s.flushes, s.objects_shaded)),
        line(format!(
            "PAUSE LAST {} NS   MAX {} NS   MEAN {} NS   PAUSES {}",
            last_pause_ns, s.pause_max_ns, s.pause_mean_ns, s.pauses
        )),
        line(format!(
            "HEAP {} / {} KIB IN USE {percent}%   LIVE AT LAST MARK {} KIB",
            s.heap_in_use >> 10,
            s.heap_size >> 10,
            s.last_marked_bytes >> 10
        )),
        line(format!(
            "SPANS {}   PAGES USED {} / {pages}   OBJECTS MARKED {} / {}",
            sample.map.spans,
            sample.map.used_pages(),
            sample.map.objects_marked,
            sample.map.objects_allocated
        )),
        line(format!(
            "FREED {} KIB IN {} OBJECTS   ALLOCS {}   VERIFIER MISSES {}",
            s.bytes_freed >> 10,
            s.objects_freed,
            s.allocs,
            s.verifier_misses
        )),
    ];
    canvas.fill(TEXT_AREA, BACKGROUND);
    for (i, text) in lines.iter().enumerate() {
        canvas.text(TEXT_AREA.x, TEXT_AREA.y + i as u32 * LINE_HEIGHT, text, TEXT_SCALE, TEXT, BACKGROUND);
    }
    canvas.clip(TEXT_AREA)
}
