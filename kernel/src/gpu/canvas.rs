//! Drawing into a framebuffer: filled rectangles and text in the 5x7 font, clipped to the
//! surface. Pixels are `0x00RRGGBB` u32s, which is B, G, R, X in little-endian memory: the
//! `B8G8R8X8Unorm` format the resource is created with.

use tricolor_kernel::screen::font;
use tricolor_virtio::gpu::Rect;

/// A colour, `0x00RRGGBB`.
pub type Rgb = u32;

/// A width x height surface over row-major pixels with no row padding.
pub struct Canvas<'a> {
    pixels: &'a mut [u32],
    width: u32,
    height: u32,
}

impl<'a> Canvas<'a> {
    /// A canvas over `pixels`, which must hold at least `width * height` pixels.
    pub fn new(pixels: &'a mut [u32], width: u32, height: u32) -> Self {
        assert!(pixels.len() >= width as usize * height as usize, "canvas larger than its pixels");
        Self { pixels, width, height }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixel at (x, y), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| self.pixels[(y * self.width + x) as usize])
    }

    /// The part of `rect` inside the surface (possibly empty).
    pub fn clip(&self, rect: Rect) -> Rect {
        let x = rect.x.min(self.width);
        let y = rect.y.min(self.height);
        let right = rect.x.saturating_add(rect.width).min(self.width);
        let bottom = rect.y.saturating_add(rect.height).min(self.height);
        Rect::new(x, y, right - x, bottom - y)
    }

    /// Fills `rect` (clipped).
    pub fn fill(&mut self, rect: Rect, colour: Rgb) {
        let r = self.clip(rect);
        for y in r.y..r.y + r.height {
            let row = (y * self.width) as usize;
            self.pixels[row + r.x as usize..row + (r.x + r.width) as usize].fill(colour);
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` x `scale`, on
    /// `background` (so redrawing a changed string needs no separate clear). Returns the
    /// rectangle it covered (before clipping).
    pub fn text(&mut self, x: u32, y: u32, text: &str, scale: u32, colour: Rgb, background: Rgb) -> Rect {
        let chars = text.chars().count() as u32;
        let area = Rect::new(x, y, chars * font::ADVANCE * scale, font::HEIGHT * scale);
        self.fill(area, background);
        for (i, c) in text.chars().enumerate() {
            let left = x + i as u32 * font::ADVANCE * scale;
            for (row, bits) in font::glyph(c).iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - col)) != 0 {
                        let px = Rect::new(left + col * scale, y + row as u32 * scale, scale, scale);
                        self.fill(px, colour);
                    }
                }
            }
        }
        area
    }
}
