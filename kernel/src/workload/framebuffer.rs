//! `suite=framebuffer`: the GPU framebuffer lives in the GC heap (`fb=gc`, a pinned no-scan
//! object) while the graph workload runs on every core and a painter task presents frames on the
//! last core. After every cycle the check reads the test pattern back from the pixels and scans
//! them for the heap's poison: a collector that freed, swept or reused the pinned buffer would
//! show up there (and the device would display garbage). Needs `-device virtio-gpu-device`.

use super::graph;
use super::{Census, Length, Workload};
use crate::gpu::{self, pattern, Display};
use crate::{boot, percore, tasks};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_kernel::cmdline::{Config, FbSource};

pub const WORKLOAD: Workload = Workload {
    name: "framebuffer",
    about: "graph mutation on every core while a painter presents frames from a framebuffer in the GC heap",
    length: Length::Cycles,
    exercises_barrier: true,
    prepare,
    mutate: super::graph::WORKLOAD.mutate,
    check,
    finish,
};

/// The display, owned by the painter task while it runs.
static DISPLAY: spin::Mutex<Option<Display>> = spin::Mutex::new(None);
/// The pixels (address, bytes) and the width and height, for the checks.
static PIXELS: AtomicUsize = AtomicUsize::new(0);
static PIXEL_BYTES: AtomicUsize = AtomicUsize::new(0);
static WIDTH: AtomicUsize = AtomicUsize::new(0);
static HEIGHT: AtomicUsize = AtomicUsize::new(0);
static FRAMES: AtomicU64 = AtomicU64::new(0);
static FRAME_ERRORS: AtomicU64 = AtomicU64::new(0);
static PAINTER_DONE: AtomicBool = AtomicBool::new(false);

/// A word of freed GC memory.
const POISON_WORD: u32 = u32::from_ne_bytes([tricolor_gc::heap::POISON; 4]);

fn prepare(config: &Config<'_>) -> Result<(), String> {
    graph::reset();
    let config = Config { fb: FbSource::Gc, ..config.clone() };
    let mut display = gpu::bring_up(boot::machine(), &config).map_err(|e| alloc::format!("GPU: {e}"))?;
    if display.source() != FbSource::Gc {
        return Err(alloc::format!("the framebuffer came from {}, not the GC heap", display.source().name()));
    }
    display.show_test_pattern("FB=gc stress").map_err(|e| alloc::format!("test pattern: {e}"))?;
    let (base, bytes) = display.pixel_memory();
    let canvas = display.canvas();
    WIDTH.store(canvas.width() as usize, Ordering::Relaxed);
    HEIGHT.store(canvas.height() as usize, Ordering::Relaxed);
    PIXELS.store(base, Ordering::Relaxed);
    PIXEL_BYTES.store(bytes, Ordering::Relaxed);
    FRAMES.store(0, Ordering::Relaxed);
    FRAME_ERRORS.store(0, Ordering::Relaxed);
    PAINTER_DONE.store(false, Ordering::Relaxed);
    *DISPLAY.lock() = Some(display);
    let last = percore::online_count() - 1;
    let spawn = tasks::Spawn { name: "painter", stack_bytes: 32 * 1024, pinned: Some(last), growable_from: None };
    tasks::spawn(spawn, painter, 0).map_err(|e| alloc::format!("cannot spawn the painter: {e}"))?;
    Ok(())
}

/// Presents panel frames (dirty rectangles of the framebuffer) until the suite stops.
fn painter(_: usize) {
    let mut guard = DISPLAY.lock();
    let display = guard.as_mut().expect("prepare stored the display");
    let mut n = 0;
    while !super::stopping() {
        n += 1;
        match display.update_panel(n) {
            Ok(()) => FRAMES.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                log::error!("framebuffer: frame {n}: {e}");
                FRAME_ERRORS.fetch_add(1, Ordering::Relaxed)
            }
        };
        tasks::yield_now();
    }
    PAINTER_DONE.store(true, Ordering::Release);
}

/// Pixel word `i` of the framebuffer (row-major).
fn word(i: usize) -> u32 {
    let at = PIXELS.load(Ordering::Relaxed) + i * 4;
    // SAFETY: `i` is below the framebuffer's word count `prepare` recorded, and the buffer stays
    // allocated (pinned, never freed) for the whole run; the painter never writes the quadrant
    // centres read here, and a volatile read of plain memory cannot tear a u32.
    unsafe { (at as *const u32).read_volatile() }
}

fn pixel(x: usize, y: usize) -> u32 {
    word(y * WIDTH.load(Ordering::Relaxed) + x)
}

/// Counts framebuffer damage: a quadrant centre that lost its colour, poisoned pixels.
fn framebuffer_damage() -> usize {
    let (w, h) = (WIDTH.load(Ordering::Relaxed), HEIGHT.load(Ordering::Relaxed));
    let centres = [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4), (3 * w / 4, 3 * h / 4)];
    let mut damage = 0;
    for ((x, y), colour) in centres.into_iter().zip(pattern::QUADRANTS) {
        if pixel(x, y) & 0x00ff_ffff != colour {
            log::error!("framebuffer: pixel ({x}, {y}) is {:#010x}, expected {colour:#08x}", pixel(x, y));
            damage += 1;
        }
    }
    let words = PIXEL_BYTES.load(Ordering::Relaxed) / 4;
    let poisoned = (0..words).filter(|&i| word(i) == POISON_WORD).count();
    if poisoned > 0 {
        log::error!("framebuffer: {poisoned} pixels hold the GC heap's poison");
        damage += 1;
    }
    damage
}

fn check() -> Census {
    let graph = (super::graph::WORKLOAD.check)();
    Census { reachable: graph.reachable + 1, corrupt: graph.corrupt + framebuffer_damage() }
}

fn finish() -> Result<(), String> {
    tasks::yield_until(10_000, || PAINTER_DONE.load(Ordering::Acquire));
    let frames = FRAMES.load(Ordering::Relaxed);
    let errors = FRAME_ERRORS.load(Ordering::Relaxed);
    log::info!("framebuffer: {frames} frames presented, {errors} failed");
    match (PAINTER_DONE.load(Ordering::Acquire), frames, errors, graph::CORRUPT.load(Ordering::Relaxed)) {
        (false, ..) => Err(String::from("the painter did not stop")),
        (_, 0, ..) => Err(String::from("no frame was presented")),
        (_, _, 0, 0) => Ok(()),
        (_, _, errors, corrupt) => {
            Err(alloc::format!("{errors} frames failed, {corrupt} corrupt nodes met by mutators"))
        }
    }
}
