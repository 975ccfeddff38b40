//! Where the GC dashboard's parts go on a `width` x `height` display, from 640x480 up (1920x1080
//! and beyond just get more room): pure arithmetic, so every supported size is checked on the
//! host, and xtask's screenshot tests find the regions they read from the same function the
//! kernel draws with.
//!
//! ```text
//! +-----------------------------------------------------------------+
//! | TRICOLOR GC                                   CYCLES [00000123] |  title, cycle counter
//! | [] FREE [] EMPTY SPAN [] UNMARKED ...                           |  legend
//! | +------------------------------+  +---------------------------+ |
//! | |                              |  | per-core GC vs mutator    | |  cores
//! | |          span map            |  +---------------------------+ |
//! | |                              |  | pause histogram           | |  pauses
//! | |                              |  +---------------------------+ |
//! | |                              |  | heap in use vs goal       | |  heap
//! | +------------------------------+  +---------------------------+ |
//! | counters, TEXT_LINES lines                                      |  text
//! +-----------------------------------------------------------------+
//! ```

use super::font;
use tricolor_virtio::gpu::Rect;

/// The smallest display the dashboard lays itself out for.
pub const MIN_WIDTH: u32 = 640;
pub const MIN_HEIGHT: u32 = 480;
/// Lines of counters at the bottom.
pub const TEXT_LINES: u32 = 5;
/// Digits of the cycle counter (zero-padded, so its region never moves).
pub const CYCLE_DIGITS: u32 = 8;
/// The title's text.
pub const TITLE: &str = "TRICOLOR GC";
/// The label left of the cycle counter.
pub const CYCLES_LABEL: &str = "CYCLES ";
/// Cores the per-core panel has rows for (tricolor's maximum).
pub const CORE_ROWS: u32 = 8;

/// The display is smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall {
    pub width: u32,
    pub height: u32,
}

/// The dashboard's regions. `title`, `cycles_label` and `legend` are drawn once; the rest are
/// redrawn and presented as dirty rectangles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// Text scale (font pixels per screen pixel) for labels and counters; titles are twice it.
    pub scale: u32,
    /// Space between regions.
    pub margin: u32,
    pub title: Rect,
    pub cycles_label: Rect,
    /// The cycle counter's digits ([`CYCLE_DIGITS`] at scale `2 * scale`).
    pub cycles: Rect,
    pub legend: Rect,
    pub map: Rect,
    /// Per-core bars: GC vs mutator time, barriers and flushes.
    pub cores: Rect,
    pub pauses: Rect,
    pub heap: Rect,
    /// The counter lines.
    pub text: Rect,
}

/// Width in pixels of `chars` characters at `scale`.
pub const fn text_width(chars: u32, scale: u32) -> u32 {
    chars * font::ADVANCE * scale
}

/// Height of a text line at `scale` (glyph plus spacing).
pub const fn line_height(scale: u32) -> u32 {
    (font::HEIGHT + 5) * scale
}

impl Layout {
    /// The layout for a `width` x `height` display.
    pub fn new(width: u32, height: u32) -> Result<Layout, TooSmall> {
        if width < MIN_WIDTH || height < MIN_HEIGHT {
            return Err(TooSmall { width, height });
        }
        let scale = if width >= 1280 && height >= 720 { 2 } else { 1 };
        let margin = 8 * scale;
        let big = 2 * scale;
        let title = Rect::new(margin, margin, text_width(TITLE.len() as u32, big), font::HEIGHT * big);
        let cycles_width = text_width(CYCLE_DIGITS, big);
        let cycles = Rect::new(width - margin - cycles_width, margin, cycles_width, font::HEIGHT * big);
        let label_width = text_width(CYCLES_LABEL.len() as u32, big);
        let cycles_label = Rect::new(cycles.x - label_width, margin, label_width, font::HEIGHT * big);
        let legend = Rect::new(margin, title.y + title.height + margin, width - 2 * margin, font::HEIGHT * scale);
        let text_height = TEXT_LINES * line_height(scale);
        let text = Rect::new(margin, height - margin - text_height, width - 2 * margin, text_height);
        let body_top = legend.y + legend.height + margin;
        let body_height = text.y - margin - body_top;
        let map_width = (width - 3 * margin) * 3 / 5;
        let map = Rect::new(margin, body_top, map_width, body_height);
        let right_x = map.x + map.width + margin;
        let right_width = width - margin - right_x;
        let cores_height = line_height(scale) * (CORE_ROWS + 1);
        let cores = Rect::new(right_x, body_top, right_width, cores_height);
        let rest = body_height - cores_height - 2 * margin;
        let pauses = Rect::new(right_x, cores.y + cores_height + margin, right_width, rest / 2);
        let heap_y = pauses.y + pauses.height + margin;
        let heap = Rect::new(right_x, heap_y, right_width, body_top + body_height - heap_y);
        Ok(Layout { width, height, scale, margin, title, cycles_label, cycles, legend, map, cores, pauses, heap, text })
    }

    /// Characters a counter line holds.
    pub fn text_chars(&self) -> usize {
        (self.text.width / (font::ADVANCE * self.scale)) as usize
    }

    /// The regions redrawn at every refresh (the dirty rectangles).
    pub fn dynamic(&self) -> [Rect; 6] {
        [self.map, self.cycles, self.cores, self.pauses, self.heap, self.text]
    }

    /// The regions drawn once.
    pub fn fixed(&self) -> [Rect; 3] {
        [self.title, self.cycles_label, self.legend]
    }
}

/// How the span map's cells sit in its region: `size` pixels a side (gap included), `columns` a
/// row, `pages_per_cell` heap pages folded into each.
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
            if columns > 0 && pages.div_ceil(columns as usize) as u64 * size as u64 <= area.height as u64 {
                return Grid { pages_per_cell: 1, size, columns };
            }
        }
        let cells = ((area.width / 2) * (area.height / 2)).max(1) as usize;
        Grid { pages_per_cell: pages.div_ceil(cells), size: 2, columns: (area.width / 2).max(1) }
    }

    /// The rectangle of cell `i` (without its gap).
    pub fn cell(&self, area: Rect, i: usize) -> Rect {
        let (col, row) = (i as u32 % self.columns, i as u32 / self.columns);
        let gap = u32::from(self.size >= 4);
        Rect::new(area.x + col * self.size, area.y + row * self.size, self.size - gap, self.size - gap)
    }
}

/// Buckets of the pause histogram: `< 32 us`, then one per power of two up to `>= 32 ms`.
pub const PAUSE_BUCKETS: usize = 12;

/// The histogram bucket of a pause of `ns` nanoseconds.
pub fn pause_bucket(ns: u64) -> usize {
    let us = ns / 1000;
    if us < 32 {
        return 0;
    }
    // 32..64 us is bucket 1 (log2(32) = 5).
    ((63 - us.leading_zeros()) as usize - 4).min(PAUSE_BUCKETS - 1)
}

/// `n` in at most 5 characters: `999`, `12.3K`, `4.56M`, `7.89G`.
pub fn compact(n: u64, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    const UNITS: [(u64, char); 3] = [(1_000_000_000, 'G'), (1_000_000, 'M'), (1_000, 'K')];
    for (unit, suffix) in UNITS {
        if n >= unit {
            let tenths = n * 10 / unit;
            return if tenths >= 1000 {
                write!(out, "{}{suffix}", n / unit)
            } else {
                write!(out, "{}.{}{suffix}", tenths / 10, tenths % 10)
            };
        }
    }
    write!(out, "{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes the dashboard is tested at in QEMU, and some in between.
    const SIZES: &[(u32, u32)] = &[
        (640, 480),
        (800, 600),
        (1024, 768),
        (1280, 720),
        (1280, 1024),
        (1366, 768),
        (1600, 900),
        (1920, 1080),
        (2560, 1440),
    ];

    fn inside(inner: Rect, outer: Rect) -> bool {
        inner.x >= outer.x
            && inner.y >= outer.y
            && inner.x + inner.width <= outer.x + outer.width
            && inner.y + inner.height <= outer.y + outer.height
    }

    fn overlap(a: Rect, b: Rect) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    #[test]
    fn every_region_is_on_screen_and_none_overlap() {
        for &(w, h) in SIZES {
            let l = Layout::new(w, h).unwrap();
            let regions: Vec<Rect> = l.fixed().into_iter().chain(l.dynamic()).collect();
            for r in &regions {
                assert!(r.fits_in(w, h), "{w}x{h}: {r:?} off screen");
            }
            for (i, a) in regions.iter().enumerate() {
                for b in &regions[i + 1..] {
                    assert!(!overlap(*a, *b), "{w}x{h}: {a:?} overlaps {b:?}");
                }
            }
            assert!(l.title.x + l.title.width <= l.cycles_label.x, "{w}x{h}: title runs into the counter");
            // Room for the panels' content.
            assert!(l.pauses.height >= 4 * line_height(l.scale), "{w}x{h}: pause histogram {:?}", l.pauses);
            assert!(l.heap.height >= 4 * line_height(l.scale), "{w}x{h}: heap chart {:?}", l.heap);
            assert!(l.text_chars() >= 100, "{w}x{h}: {} characters a line", l.text_chars());
        }
    }

    #[test]
    fn small_displays_are_refused_and_large_ones_scale_up() {
        assert_eq!(Layout::new(639, 480), Err(TooSmall { width: 639, height: 480 }));
        assert_eq!(Layout::new(640, 479), Err(TooSmall { width: 640, height: 479 }));
        assert_eq!(Layout::new(1024, 768).unwrap().scale, 1);
        assert_eq!(Layout::new(1280, 720).unwrap().scale, 2);
        assert_eq!(Layout::new(1920, 1080).unwrap().scale, 2);
    }

    #[test]
    fn the_span_map_grid_fits_any_heap_on_any_display() {
        for &(w, h) in SIZES {
            let area = Layout::new(w, h).unwrap().map;
            for pages in [1usize, 100, 2048, 8192, 98_304, 196_608] {
                let grid = Grid::fit(pages, area);
                let cells = pages.div_ceil(grid.pages_per_cell);
                let last = grid.cell(area, cells - 1);
                assert!(inside(last, area), "{w}x{h}, {pages} pages: last cell {last:?} outside {area:?} ({grid:?})");
                // The cells are as large as fit: one size larger would overflow (or the cap is reached).
                if grid.pages_per_cell == 1 && grid.size < 32 {
                    let bigger = grid.size + 1;
                    let rows = pages.div_ceil((area.width / bigger) as usize) as u32;
                    assert!(rows * bigger > area.height, "{w}x{h}, {pages} pages: {bigger} px cells fit too");
                }
            }
        }
    }

    #[test]
    fn pause_buckets_are_log2_microseconds() {
        assert_eq!(pause_bucket(0), 0);
        assert_eq!(pause_bucket(31_999), 0);
        assert_eq!(pause_bucket(32_000), 1);
        assert_eq!(pause_bucket(63_999), 1);
        assert_eq!(pause_bucket(64_000), 2);
        assert_eq!(pause_bucket(1_000_000), 5); // 1 ms: 512..1024 us
        assert_eq!(pause_bucket(16_383_000), 9);
        assert_eq!(pause_bucket(16_384_000), 10);
        assert_eq!(pause_bucket(32_768_000), 11);
        assert_eq!(pause_bucket(u64::MAX), PAUSE_BUCKETS - 1);
    }

    #[test]
    fn compact_numbers() {
        let c = |n| {
            let mut s = String::new();
            compact(n, &mut s).unwrap();
            s
        };
        assert_eq!(c(0), "0");
        assert_eq!(c(999), "999");
        assert_eq!(c(1_000), "1.0K");
        assert_eq!(c(12_345), "12.3K");
        assert_eq!(c(123_456), "123K");
        assert_eq!(c(4_560_000), "4.5M");
        assert_eq!(c(7_890_000_000), "7.8G");
    }
}
