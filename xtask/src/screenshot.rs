//! `cargo xtask screenshot`: boot headless, wait for the kernel's "frame drawn" line, save the
//! display as a PNG with QMP's `screendump`, quit. And what the tests read in screenshots: the
//! known pixels of the kernel's test pattern, and the dashboard's cycle counter (read back with the
//! kernel's own font and layout, `tricolor_kernel::screen`).

use crate::qemu::{Machine, GPU_HEIGHT, GPU_WIDTH};
use crate::session::Session;
use crate::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tricolor_kernel::screen::font;
use tricolor_kernel::screen::layout::{self, Layout};
use tricolor_virtio::gpu::Rect;

/// The console line the kernel prints once the test pattern's flush has completed
/// (kernel/src/gpu/display.rs, `show_test_pattern`).
pub const READY_LINE: &str = "gpu: test pattern drawn";
/// The line the dashboard prints once its first frame is on the display
/// (kernel/src/gpu/dashboard.rs, `Dashboard::show`).
pub const DASHBOARD_LINE: &str = "gui: dashboard drawn";

/// Boot to the drawn frame and the dump; only catches hangs.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a screenshot run printed.
pub struct Shot {
    pub console: String,
    pub elapsed: Duration,
}

/// Boots `machine`, waits for the test pattern or the dashboard to be drawn and `wait` more,
/// writes the display to `out` as PNG, quits QEMU.
pub fn take(machine: &Machine, out: &Path, timeout: Duration, wait: Duration) -> Result<Shot> {
    let mut session = Session::start(machine)?;
    let result = session
        .wait_for("a drawn frame", timeout, |l| l.contains(READY_LINE) || l.contains(DASHBOARD_LINE))
        .and_then(|_| {
            std::thread::sleep(wait);
            session.screendump(out, timeout)
        });
    let elapsed = session.elapsed();
    let console = session.finish();
    match result {
        Ok(()) => Ok(Shot { console, elapsed }),
        Err(why) => Err(format!("{why}\n----- console -----\n{console}----- end -----")),
    }
}

/// A decoded screenshot, 8-bit RGB.
pub struct Image {
    pub width: u32,
    pub height: u32,
    rgb: Vec<u8>,
}

impl Image {
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }
}

pub fn load_png(path: &Path) -> Result<Image> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    let channels = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => return Err(format!("{}: unexpected PNG colour type {other:?}", path.display())),
    };
    let rgb = buf[..frame.buffer_size()].chunks_exact(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    Ok(Image { width: frame.width, height: frame.height, rgb })
}

/// Pixels of the kernel's test pattern (kernel/src/gpu/pattern.rs): quadrant centres away from the
/// text and the panel, the panel's background, and a pixel of the title's first letter (the top
/// bar of the 'T' at 4x scale).
const EXPECTED: &[(u32, u32, [u8; 3], &str)] = &[
    (320, 180, [0xff, 0x00, 0x00], "top-left quadrant (red)"),
    (960, 180, [0x00, 0xff, 0x00], "top-right quadrant (green)"),
    (320, 540, [0x00, 0x00, 0xff], "bottom-left quadrant (blue)"),
    (960, 540, [0xff, 0xff, 0xff], "bottom-right quadrant (white)"),
    (444, 324, [0x20, 0x20, 0x20], "live panel background"),
    (18, 18, [0xff, 0xff, 0xff], "title 'T' (white on red)"),
    (14, 18, [0xff, 0x00, 0x00], "left of the title (red)"),
];

/// Checks the screenshot's size and every expected pixel.
pub fn check_test_pattern(image: &Image) -> Result {
    if (image.width, image.height) != (GPU_WIDTH, GPU_HEIGHT) {
        return Err(format!("screenshot is {}x{}, expected {GPU_WIDTH}x{GPU_HEIGHT}", image.width, image.height));
    }
    let wrong: Vec<String> = EXPECTED
        .iter()
        .filter_map(|&(x, y, want, what)| {
            let got = image.pixel(x, y)?;
            (got != want).then(|| format!("{what} at ({x}, {y}): got {got:02x?}, expected {want:02x?}"))
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("wrong pixels in the screenshot:\n  {}", wrong.join("\n  ")))
    }
}

/// The QEMU-matrix screenshot test: the test pattern (`test=gpu-pattern`), a screenshot, the pixel
/// check.
pub fn test_pattern_case(elf: &Path) -> Result<Duration> {
    pattern_case(elf, "test=gpu-pattern")
}

/// [`test_pattern_case`] with the framebuffer a pinned object of the GC heap (`fb=gc`).
pub fn test_pattern_gc_case(elf: &Path) -> Result<Duration> {
    pattern_case(elf, "test=gpu-pattern fb=gc")
}

fn pattern_case(elf: &Path, append: &str) -> Result<Duration> {
    let machine = Machine { smp: 4, append: append.into(), gpu: true, ..Machine::new(elf) };
    let out: PathBuf = std::env::temp_dir().join(format!("tricolor-screenshot-test-{}.png", std::process::id()));
    let shot = take(&machine, &out, TIMEOUT, Duration::ZERO)?;
    let checked = load_png(&out).and_then(|image| check_test_pattern(&image));
    let _ = std::fs::remove_file(&out);
    checked.map_err(|why| format!("{why}\n----- console -----\n{}----- end -----", shot.console))?;
    Ok(shot.elapsed)
}

/// Whether a dashboard text pixel is lit (the counters' yellow, not the dark background).
fn lit(rgb: [u8; 3]) -> bool {
    rgb[0] > 0x80 && rgb[1] > 0x80
}

/// Reads the dashboard's cycle counter: each digit's 5x7 cells sampled at their centres and
/// matched against the kernel's font.
pub fn read_cycles(image: &Image) -> Result<u64> {
    let l = Layout::new(image.width, image.height)
        .map_err(|t| format!("a {}x{} screenshot has no dashboard", t.width, t.height))?;
    let scale = 2 * l.scale;
    let mut digits = String::new();
    for i in 0..layout::CYCLE_DIGITS {
        let left = l.cycles.x + i * font::ADVANCE * scale;
        let mut rows = [0u8; 7];
        for (r, row) in rows.iter_mut().enumerate() {
            for c in 0..font::WIDTH {
                let (x, y) = (left + c * scale + scale / 2, l.cycles.y + r as u32 * scale + scale / 2);
                if image.pixel(x, y).is_some_and(lit) {
                    *row |= 1 << (font::WIDTH - 1 - c);
                }
            }
        }
        match font::recognise(rows) {
            Some(c) if c.is_ascii_digit() => digits.push(c),
            other => return Err(format!("cycle counter digit {i} at ({left}, {}) reads as {other:?}", l.cycles.y)),
        }
    }
    digits.parse().map_err(|e| format!("cycle counter '{digits}': {e}"))
}

/// Whether `a` and `b` hold the same pixels in `rect`.
pub fn same_pixels(a: &Image, b: &Image, rect: Rect) -> bool {
    (rect.y..rect.y + rect.height).all(|y| (rect.x..rect.x + rect.width).all(|x| a.pixel(x, y) == b.pixel(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image painted the way the kernel's test pattern is, at the checked pixels.
    fn pattern_image() -> Image {
        let (w, h) = (GPU_WIDTH, GPU_HEIGHT);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                let colour = match (x < w / 2, y < h / 2) {
                    (true, true) => [0xff, 0, 0],
                    (false, true) => [0, 0xff, 0],
                    (true, false) => [0, 0, 0xff],
                    (false, false) => [0xff, 0xff, 0xff],
                };
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&colour);
            }
        }
        let mut image = Image { width: w, height: h, rgb };
        paint(&mut image, 444, 324, [0x20; 3]);
        paint(&mut image, 18, 18, [0xff; 3]);
        image
    }

    fn paint(image: &mut Image, x: u32, y: u32, colour: [u8; 3]) {
        let i = ((y * image.width + x) * 3) as usize;
        image.rgb[i..i + 3].copy_from_slice(&colour);
    }

    #[test]
    fn the_expected_pattern_passes() {
        check_test_pattern(&pattern_image()).unwrap();
    }

    #[test]
    fn a_wrong_colour_fails() {
        let mut image = pattern_image();
        // Red and blue swapped in one quadrant: the mistake a wrong pixel format makes.
        paint(&mut image, 320, 180, [0, 0, 0xff]);
        let err = check_test_pattern(&image).unwrap_err();
        assert!(err.contains("top-left quadrant (red) at (320, 180)"), "{err}");
    }

    #[test]
    fn a_blank_or_wrongly_sized_screen_fails() {
        let blank = Image { width: GPU_WIDTH, height: GPU_HEIGHT, rgb: vec![0; (GPU_WIDTH * GPU_HEIGHT * 3) as usize] };
        assert!(check_test_pattern(&blank).unwrap_err().matches("expected").count() >= EXPECTED.len());
        let small = Image { width: 640, height: 480, rgb: vec![0; 640 * 480 * 3] };
        assert!(check_test_pattern(&small).unwrap_err().contains("640x480"));
    }

    /// A dashboard-sized image with `digits` drawn where the kernel draws the cycle counter.
    fn counter_image(width: u32, height: u32, digits: &str) -> Image {
        let mut image = Image { width, height, rgb: vec![0x10; (width * height * 3) as usize] };
        let l = Layout::new(width, height).unwrap();
        let scale = 2 * l.scale;
        for (i, ch) in digits.chars().enumerate() {
            let left = l.cycles.x + i as u32 * font::ADVANCE * scale;
            for (r, bits) in font::glyph(ch).iter().enumerate() {
                for c in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - c)) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                paint(
                                    &mut image,
                                    left + c * scale + dx,
                                    l.cycles.y + r as u32 * scale + dy,
                                    [0xff, 0xcc, 0],
                                );
                            }
                        }
                    }
                }
            }
        }
        image
    }

    #[test]
    fn the_cycle_counter_reads_back_at_every_size() {
        for (w, h) in [(640, 480), (1024, 768), (1280, 720), (1920, 1080)] {
            assert_eq!(read_cycles(&counter_image(w, h, "00012345")).unwrap(), 12345, "{w}x{h}");
        }
        let blank = counter_image(1280, 720, "");
        assert!(read_cycles(&blank).unwrap_err().contains("digit 0"), "a blank counter is no number");
        let letters = counter_image(1280, 720, "0001234A");
        assert!(read_cycles(&letters).is_err());
    }

    #[test]
    fn same_pixels_compares_only_the_region() {
        let a = counter_image(640, 480, "00000001");
        let b = counter_image(640, 480, "00000002");
        let l = Layout::new(640, 480).unwrap();
        assert!(!same_pixels(&a, &b, l.cycles));
        assert!(same_pixels(&a, &b, l.title) && same_pixels(&a, &b, l.legend));
    }

    #[test]
    fn png_round_trip() {
        let image = pattern_image();
        let path = std::env::temp_dir().join(format!("tricolor-png-test-{}.png", std::process::id()));
        {
            let file = std::fs::File::create(&path).unwrap();
            let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), image.width, image.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.write_header().unwrap().write_image_data(&image.rgb).unwrap();
        }
        let loaded = load_png(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        check_test_pattern(&loaded).unwrap();
        assert_eq!(loaded.pixel(320, 540), Some([0, 0, 0xff]));
    }
}
