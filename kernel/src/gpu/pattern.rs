//! What the display shows: a test pattern (four quadrants in known colours, a title) that the
//! screenshot test checks pixel by pixel, and a small live panel (a frame counter and a bar)
//! redrawn with dirty rectangles. The GC dashboard replaces the panel once the collector is wired.
//!
//! The colours and positions are part of the screenshot test's contract
//! (xtask/src/screenshot.rs checks them): change both together.

use super::canvas::{Canvas, Rgb};
use alloc::format;
use tricolor_virtio::gpu::Rect;

/// Quadrant colours: top-left, top-right, bottom-left, bottom-right.
pub const QUADRANTS: [Rgb; 4] = [0xff_00_00, 0x00_ff_00, 0x00_00_ff, 0xff_ff_ff];
const TITLE: Rgb = 0xff_ff_ff;
const PANEL_BACKGROUND: Rgb = 0x20_20_20;
const PANEL_TEXT: Rgb = 0xff_cc_00;
const BAR_FILL: Rgb = 0xff_cc_00;
const BAR_EMPTY: Rgb = 0x50_50_50;

/// The panel: centred on a 1280x720 display, straddling all four quadrants.
pub const PANEL: Rect = Rect::new(440, 320, 400, 80);
const MARGIN: u32 = 12;
const TEXT_SCALE: u32 = 3;
const BAR: Rect = Rect::new(PANEL.x + MARGIN, PANEL.y + 52, PANEL.width - 2 * MARGIN, 16);

/// Draws the quadrants, the title and an empty panel over the whole surface.
pub fn draw_test_pattern(canvas: &mut Canvas<'_>, subtitle: &str) {
    let (w, h) = (canvas.width(), canvas.height());
    let (half_w, half_h) = (w / 2, h / 2);
    let quadrants = [
        Rect::new(0, 0, half_w, half_h),
        Rect::new(half_w, 0, w - half_w, half_h),
        Rect::new(0, half_h, half_w, h - half_h),
        Rect::new(half_w, half_h, w - half_w, h - half_h),
    ];
    for (rect, colour) in quadrants.into_iter().zip(QUADRANTS) {
        canvas.fill(rect, colour);
    }
    canvas.text(16, 16, "TRICOLOR", 4, TITLE, QUADRANTS[0]);
    canvas.text(16, 52, subtitle, 2, TITLE, QUADRANTS[0]);
    canvas.fill(PANEL, PANEL_BACKGROUND);
    draw_panel(canvas, 0);
}

/// Redraws the panel's counter and bar for frame `n`; returns the two dirty rectangles.
pub fn draw_panel(canvas: &mut Canvas<'_>, n: u64) -> [Rect; 2] {
    let counter = canvas.text(
        PANEL.x + MARGIN,
        PANEL.y + MARGIN,
        &format!("FRAME {n:08}"),
        TEXT_SCALE,
        PANEL_TEXT,
        PANEL_BACKGROUND,
    );
    let filled = (BAR.width as u64 * (n % 100) / 99) as u32;
    canvas.fill(Rect::new(BAR.x, BAR.y, filled, BAR.height), BAR_FILL);
    canvas.fill(Rect::new(BAR.x + filled, BAR.y, BAR.width - filled, BAR.height), BAR_EMPTY);
    [canvas.clip(counter), BAR]
}
