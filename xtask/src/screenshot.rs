//! `cargo xtask screenshot`: boot headless, wait for the kernel's "frame drawn" line, save the
//! display as a PNG with QMP's `screendump`, quit. And the screenshot test of the QEMU matrix: the
//! known pixels of the kernel's test pattern must be in the PNG.

use crate::qemu::{self, Machine, GPU_HEIGHT, GPU_WIDTH};
use crate::Result;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The console line the kernel prints once the test pattern's flush has completed
/// (kernel/src/gpu/display.rs, `show_test_pattern`).
pub const READY_LINE: &str = "gpu: test pattern drawn";

/// Boot to the drawn frame and the dump; only catches hangs.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a screenshot run printed.
pub struct Shot {
    pub console: String,
    pub elapsed: Duration,
}

/// Boots `machine`, waits for [`READY_LINE`], writes the display to `out` as PNG, quits QEMU.
pub fn take(machine: &Machine, out: &Path, timeout: Duration) -> Result<Shot> {
    let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let socket = std::env::temp_dir().join(format!("tricolor-qmp-{}-{}.sock", std::process::id(), unique()));
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&out);
    let qmp = ["-qmp".to_string(), format!("unix:{},server=on,wait=off", socket.display())];
    let start = Instant::now();
    let mut child = qemu::spawn_headless(machine, &qmp)?;
    let lines = line_reader(child.stdout.take().expect("piped stdout"));
    let stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut console = String::new();
    let result = wait_for_line(&lines, &mut console, start + timeout)
        .and_then(|()| dump(&socket, &out, start + timeout))
        .and_then(|()| check_written(&out));
    stop(&mut child);
    console.extend(lines.try_iter().map(|l| l + "\n"));
    let _ = std::fs::remove_file(&socket);
    let stderr = errors.join().unwrap_or_default();
    match result {
        Ok(()) => Ok(Shot { console, elapsed: start.elapsed() }),
        Err(why) => Err(format!("{why}\n----- console -----\n{console}{stderr}----- end -----")),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Console lines as they arrive.
fn line_reader(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.replace('\r', "")).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, console: &mut String, deadline: Instant) -> Result {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let ready = line.contains(READY_LINE);
                console.push_str(&line);
                console.push('\n');
                if ready {
                    return Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(format!("no \"{READY_LINE}\" line in time")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("QEMU exited before printing \"{READY_LINE}\""))
            }
        }
    }
}

/// One QMP session: capabilities, `screendump`, each answered with `return` (or an error).
fn dump(socket: &Path, out: &Path, deadline: Instant) -> Result {
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() >= deadline => return Err(format!("QMP socket {}: {e}", socket.display())),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    stream.set_read_timeout(Some(left)).map_err(|e| format!("QMP socket: {e}"))?;
    let mut writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).map_err(|e| format!("QMP greeting: {e}"))?;
    qmp(&mut reader, &mut writer, r#"{"execute": "qmp_capabilities"}"#)?;
    let filename = out.to_str().ok_or("the output path is not UTF-8")?;
    let command = format!(
        r#"{{"execute": "screendump", "arguments": {{"filename": "{}", "format": "png"}}}}"#,
        filename.replace('\\', "\\\\").replace('"', "\\\"")
    );
    qmp(&mut reader, &mut writer, &command)
}

/// Sends a QMP command and waits for its answer, skipping asynchronous events.
fn qmp(reader: &mut impl BufRead, writer: &mut impl Write, command: &str) -> Result {
    writeln!(writer, "{command}").map_err(|e| format!("QMP write: {e}"))?;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("QMP closed while waiting for the answer to {command}")),
            Ok(_) if line.contains("\"return\"") => return Ok(()),
            Ok(_) if line.contains("\"error\"") => return Err(format!("QMP {command}: {}", line.trim())),
            Ok(_) => {}
            Err(e) => return Err(format!("QMP answer to {command}: {e}")),
        }
    }
}

fn check_written(out: &Path) -> Result {
    match std::fs::metadata(out) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!("screendump did not write {}", out.display())),
    }
}

/// Ends QEMU: it has nothing left to do once the dump is written.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
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

/// The QEMU-matrix screenshot test: a plain boot (the display demo), a screenshot, the pixel check.
pub fn test_pattern_case(elf: &Path) -> Result<Duration> {
    let machine = Machine { smp: 4, append: String::new(), gpu: true, ..Machine::new(elf) };
    let out: PathBuf = std::env::temp_dir().join(format!("tricolor-screenshot-test-{}.png", std::process::id()));
    let shot = take(&machine, &out, TIMEOUT)?;
    let checked = load_png(&out).and_then(|image| check_test_pattern(&image));
    let _ = std::fs::remove_file(&out);
    checked.map_err(|why| format!("{why}\n----- console -----\n{}----- end -----", shot.console))?;
    Ok(shot.elapsed)
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
