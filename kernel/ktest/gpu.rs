//! GPU scenarios: the display comes up with each framebuffer source, a forced timeout is reported
//! and survived, a missing GPU is a warning, and the bench prints `[VIRTIO PERF]` lines for full
//! and dirty-rectangle frames under every fence strategy. xtask checks the console lines.

use super::ensure;
use super::{scenario, unit};
use crate::gpu::canvas::Canvas;
use crate::gpu::{self, discovery, pattern, BringUpError, Display};
use crate::registry::Entry;
use crate::{boot, exit, kprintln};
use alloc::string::String;
use tricolor_kernel::cmdline::{Config, FbSource};
use tricolor_virtio::gpu::Rect;
use tricolor_virtio::{Error, FenceStrategy, PerfSnapshot};

crate::register!(TESTS);
/// Unit tests (part of `test=unit`): drawing and discovery, no GPU needed.
const TESTS: &[Entry] = &[
    unit(
        "canvas_fills_clipped_rectangles",
        "canvas rectangles are clipped to the framebuffer",
        canvas_fills_clipped_rectangles,
    ),
    unit("canvas_draws_font_glyphs", "the 5x7 font draws glyphs", canvas_draws_font_glyphs),
    unit(
        "virtio_mmio_slots_from_device_tree",
        "the device tree lists the virtio-mmio slots",
        virtio_mmio_slots_from_device_tree,
    ),
    unit("dashboard_colours_spans", "the dashboard colours spans by their state", dashboard_colours_spans),
];

fn dashboard_colours_spans(_: &Config<'_>) -> Result<(), String> {
    use crate::gpu::dashboard::{shade, SpanMap, BLACK, EMPTY_SPAN, FREE, PINNED, WHITE};
    use tricolor_gc::heap::SpanInfo;
    use tricolor_gc::sizeclass::HEAP_PAGE_SIZE;
    let base = 0x4000_0000;
    let span = |page: usize, pages, allocated, marked, pinned| SpanInfo {
        start: base + page * HEAP_PAGE_SIZE,
        pages,
        objects: 64,
        allocated,
        marked,
        large: pages > 1,
        pinned,
    };
    // Pages: 0 free, 1 empty span, 2 unmarked, 3 half marked, 4-5 a marked large object, 6 pinned,
    // 7 free.
    let mut map = SpanMap::new(base, 8, 1);
    for s in [span(1, 1, 0, 0, false), span(2, 1, 10, 0, false), span(3, 1, 10, 5, false)] {
        map.add(&s);
    }
    map.add(&span(4, 2, 1, 1, false));
    map.add(&span(6, 1, 1, 0, true));
    let got: alloc::vec::Vec<u32> = map.colours().collect();
    let want = [FREE, EMPTY_SPAN, WHITE, shade(128), BLACK, BLACK, PINNED, FREE];
    ensure!(got == want, "page colours {got:x?}, want {want:x?}");
    ensure!(shade(128) != WHITE && shade(128) != BLACK, "half marked is a grey");
    ensure!(map.used_pages() == 6 && map.spans() == 5 && map.objects_marked() == 6, "totals");
    // Two pages a cell: a cell's shade is the mean of its live pages'.
    let mut folded = SpanMap::new(base, 8, 2);
    folded.add(&span(2, 1, 10, 0, false));
    folded.add(&span(3, 1, 10, 10, false));
    let got: alloc::vec::Vec<u32> = folded.colours().collect();
    ensure!(got == [FREE, shade(128), FREE, FREE], "folded colours {got:x?}");
    Ok(())
}

fn canvas_fills_clipped_rectangles(_: &Config<'_>) -> Result<(), String> {
    let mut pixels = alloc::vec![0u32; 8 * 4];
    let mut canvas = Canvas::new(&mut pixels, 8, 4);
    canvas.fill(Rect::new(6, 2, 10, 10), 0xabcdef);
    ensure!(canvas.clip(Rect::new(6, 2, 10, 10)) == Rect::new(6, 2, 2, 2), "clip of an overhanging rectangle");
    ensure!(canvas.clip(Rect::new(9, 0, 3, 3)).width == 0, "a rectangle right of the surface clips to nothing");
    for y in 0..4 {
        for x in 0..8 {
            let want = if x >= 6 && y >= 2 { 0xabcdef } else { 0 };
            ensure!(canvas.pixel(x, y) == Some(want), "pixel ({x}, {y}) = {:?}, want {want:#x}", canvas.pixel(x, y));
        }
    }
    ensure!(canvas.pixel(8, 0).is_none(), "pixel outside the surface");
    Ok(())
}

fn canvas_draws_font_glyphs(_: &Config<'_>) -> Result<(), String> {
    let (w, h) = (20, 16);
    let mut pixels = alloc::vec![0u32; w * h];
    let mut canvas = Canvas::new(&mut pixels, w as u32, h as u32);
    // "1" at 2x: rows 00100, 01100, 00100... then "-" (00000 00000 00000 11111).
    let area = canvas.text(0, 0, "1-", 2, 0xffffff, 0x000010);
    ensure!(area == Rect::new(0, 0, 24, 14), "text area {area:?}");
    let on = |c: &Canvas<'_>, x, y| c.pixel(x, y) == Some(0xffffff);
    ensure!(on(&canvas, 4, 0) && on(&canvas, 5, 1), "top of the '1' stem (column 2 at 2x)");
    ensure!(!on(&canvas, 2, 0) && on(&canvas, 2, 2), "the '1' flag starts on row 1");
    ensure!(canvas.pixel(0, 0) == Some(0x000010), "background behind the glyph");
    ensure!(
        on(&canvas, 12, 6) && on(&canvas, 19, 7) && !on(&canvas, 12, 4),
        "the '-' bar on row 3 of the second glyph"
    );
    Ok(())
}

fn virtio_mmio_slots_from_device_tree(_: &Config<'_>) -> Result<(), String> {
    let slots = discovery::virtio_mmio_slots(boot::machine().dtb());
    // QEMU virt: 32 slots of 0x200 bytes from 0x0a00_0000, SPI 16 + n (GIC ids 48..80).
    ensure!(slots.len() == 32, "{} virtio,mmio nodes", slots.len());
    for slot in &slots {
        let n = (slot.base - 0x0a00_0000) / 0x200;
        ensure!(slot.base >= 0x0a00_0000 && n < 32 && slot.size == 0x200, "slot {slot:?}");
        let irq = slot.irq.ok_or_else(|| alloc::format!("slot {slot:x?} has no interrupt"))?;
        ensure!(irq.id == 48 + n as u32 && !irq.level, "slot {n}: {irq:?}, want edge-triggered id {}", 48 + n);
    }
    Ok(())
}

crate::register!(SCENARIOS);
const SCENARIOS: &[Entry] = &[
    scenario("gpu-fb-static", "GPU up with the framebuffer in a .bss array", fb_static),
    scenario("gpu-fb-pages", "GPU up with the framebuffer from the page allocator", fb_pages),
    scenario("gpu-fb-gc", "GPU up with fb=gc: a pinned no-scan object in the GC heap that survives collections", fb_gc),
    scenario("gpu-timeout", "a tiny spin budget: the command is reported failed, boot goes on", timeout),
    scenario("gpu-missing", "no GPU device (or only a legacy one): a warning, and the kernel goes on", missing),
    scenario("gpu-bench", "full-frame and dirty-rectangle frames per fence strategy, [VIRTIO PERF] lines", bench),
    scenario("gpu-demo", "the test pattern and a few live-panel frames", demo),
    scenario(
        "gpu-pattern",
        "the test pattern and its live panel until QEMU is stopped (the screenshot test)",
        pattern_until_stopped,
    ),
    scenario(
        "gpu-dashboard",
        "the GC dashboard through GC cycles with mutators: one full frame, then dirty rectangles only",
        dashboard::run,
    ),
];

fn fail(scenario: &str, why: impl core::fmt::Display) -> ! {
    kprintln!("{scenario}: FAILED: {why}");
    exit::exit(exit::TEST_FAILED)
}

fn up(scenario: &str, config: &Config<'_>) -> Display {
    gpu::bring_up(boot::machine(), config).unwrap_or_else(|e| fail(scenario, e))
}

/// Panel frames each framebuffer scenario presents after the test pattern.
const PANEL_FRAMES: u64 = 3;

/// Brings the GPU up with `fb`, checks which source delivered, draws the pattern and a few panel
/// frames, and checks that every command succeeded and every frame was counted.
fn framebuffer_scenario(scenario: &str, config: &Config<'_>, fb: FbSource, expected: FbSource) -> ! {
    let config = Config { fb, ..config.clone() };
    let mut display = up(scenario, &config);
    if display.source() != expected {
        fail(scenario, format_args!("framebuffer from {}, expected {}", display.source().name(), expected.name()));
    }
    let before = display.perf();
    let subtitle = alloc::format!("FB={}", fb.name());
    display.show_test_pattern(&subtitle).unwrap_or_else(|e| fail(scenario, e));
    if expected == FbSource::Gc {
        // The framebuffer is a pinned object in the GC heap: collections must neither free it
        // (sweeping would poison the pixels the check below reads back) nor move it.
        for _ in 0..2 {
            let report = crate::gc::collect();
            kprintln!(
                "{scenario}: GC cycle {} with the framebuffer attached: freed {} bytes",
                report.cycle,
                report.freed_bytes
            );
        }
    }
    for n in 1..=PANEL_FRAMES {
        display.update_panel(n).unwrap_or_else(|e| fail(scenario, e));
    }
    let perf = display.perf().since(&before);
    // One full frame, then two dirty rectangles per panel frame; each frame is transfer + flush.
    let frames = 1 + 2 * PANEL_FRAMES;
    if perf.frames != frames || perf.commands.count != 2 * frames || perf.commands.errors != 0 {
        fail(scenario, format_args!("expected {frames} frames, {} commands, 0 errors: {perf}", 2 * frames));
    }
    let canvas = display.canvas();
    let (w, h) = (canvas.width(), canvas.height());
    let corners = [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4), (3 * w / 4, 3 * h / 4)];
    for ((x, y), colour) in corners.into_iter().zip(pattern::QUADRANTS) {
        if canvas.pixel(x, y) != Some(colour) {
            fail(scenario, format_args!("pixel ({x}, {y}) is {:?}, expected {colour:#08x}", canvas.pixel(x, y)));
        }
    }
    if config.virtio_complete == tricolor_virtio::gpu::Completion::Interrupt {
        // The device interrupts after every completion, but QEMU's model usually completes a
        // command within the notify write, before the driver's first poll: the driver then never
        // waits, and the interrupt stays pending while this boot flow runs with IRQs masked. Let
        // it in: an interrupt that never arrives is the failure this scenario must show.
        let _irqs = tricolor_arch::irqmask::IrqGuard::unmask();
        crate::tasks::spin_until(1000, || crate::gpu::completion::interrupts() > 0);
    }
    display.report(scenario, &perf);
    kprintln!("{scenario}: ok: {w}x{h} framebuffer from {}, {frames} frames presented", display.source().name());
    exit::exit(exit::SUCCESS)
}

fn fb_static(config: &Config<'_>) -> ! {
    framebuffer_scenario("gpu-fb-static", config, FbSource::Static, FbSource::Static)
}

fn fb_pages(config: &Config<'_>) -> ! {
    framebuffer_scenario("gpu-fb-pages", config, FbSource::Pages, FbSource::Pages)
}

fn fb_gc(config: &Config<'_>) -> ! {
    framebuffer_scenario("gpu-fb-gc", config, FbSource::Gc, FbSource::Gc)
}

/// Full frames the timeout scenario tries before giving up on seeing a timeout.
const TIMEOUT_ATTEMPTS: usize = 200;

fn timeout(config: &Config<'_>) -> ! {
    const NAME: &str = "gpu-timeout";
    // A budget of one empty poll: the device model runs on another host thread and needs far
    // longer than one poll for any command, certainly for a full-frame transfer.
    let config = Config { virtio_timeout: Some(config.virtio_timeout.unwrap_or(1)), ..config.clone() };
    let error = match gpu::bring_up(boot::machine(), &config) {
        Err(BringUpError::Device(e @ Error::Timeout { .. })) => e,
        Err(other) => fail(NAME, format_args!("bring-up failed without a timeout: {other}")),
        Ok(mut display) => (0..TIMEOUT_ATTEMPTS)
            .find_map(|_| display.present_full().err())
            .unwrap_or_else(|| fail(NAME, "every command completed within the spin budget")),
    };
    if !matches!(error, Error::Timeout { .. }) {
        fail(NAME, format_args!("expected a timeout, got: {error}"));
    }
    kprintln!("{NAME}: GPU command reported failed: {error}");
    // Going on: the kernel still allocates, logs and reaches its exit.
    let still = alloc::vec![7u8; 4096];
    kprintln!("{NAME}: the kernel goes on ({} bytes allocated after the timeout)", still.len());
    exit::exit(exit::SUCCESS)
}

fn missing(config: &Config<'_>) -> ! {
    match gpu::bring_up(boot::machine(), config) {
        Err(e @ (BringUpError::NoDevice { .. } | BringUpError::Legacy { .. })) => {
            gpu::report_missing(&e);
            kprintln!("gpu-missing: no GPU, the kernel goes on");
            exit::exit(exit::SUCCESS)
        }
        Err(other) => fail("gpu-missing", other),
        Ok(_) => fail("gpu-missing", "found a GPU: run this scenario without -device virtio-gpu-device"),
    }
}

/// Frames of each kind per fence strategy.
const BENCH_FRAMES: u64 = 60;

fn bench(config: &Config<'_>) -> ! {
    const NAME: &str = "gpu-bench";
    let mut display = up(NAME, config);
    display.show_test_pattern("GPU BENCH").unwrap_or_else(|e| fail(NAME, e));
    let dirty = pattern::PANEL;
    for fence in FenceStrategy::ALL {
        if display.fence() != fence {
            display = display.restart(fence).unwrap_or_else(|e| fail(NAME, e));
        }
        if fence.skips_fence_on_empty_polls() {
            log::warn!("gpu-bench: fence={} skips the barrier on empty polls; measured too", fence.name());
        }
        let before = display.perf();
        for n in 0..BENCH_FRAMES {
            pattern::draw_panel(&mut display.canvas(), n);
            display.present_full().unwrap_or_else(|e| fail(NAME, e));
        }
        let full = display.perf();
        display.report("bench-full", &full.since(&before));
        bench_line(fence, "full", &full.since(&before));
        for n in 0..BENCH_FRAMES {
            pattern::draw_panel(&mut display.canvas(), n);
            display.present(dirty).unwrap_or_else(|e| fail(NAME, e));
        }
        let perf = display.perf().since(&full);
        display.report("bench-dirty", &perf);
        bench_line(fence, "dirty", &perf);
        if perf.frames != BENCH_FRAMES || perf.commands.errors != 0 {
            fail(NAME, format_args!("dirty frames: {perf}"));
        }
    }
    kprintln!(
        "{NAME}: ok: {BENCH_FRAMES} full ({}x{}) and {BENCH_FRAMES} dirty ({}x{}) frames per fence strategy",
        display.framebuffer().width,
        display.framebuffer().height,
        dirty.width,
        dirty.height
    );
    exit::exit(exit::SUCCESS)
}

/// One `BENCH virtio_fence` line (collected by `cargo xtask bench` into results/virtio_fences.csv):
/// the `[VIRTIO PERF]` numbers the fence plots need, per frame.
fn bench_line(fence: FenceStrategy, frame: &str, perf: &PerfSnapshot) {
    let per_frame = |n: u64| n as f64 / perf.frames.max(1) as f64;
    kprintln!(
        "BENCH virtio_fence strategy={} frame={frame} frames={} fences_per_frame={:.2} ns_per_frame={} spins_per_frame={:.2}",
        fence.name(),
        perf.frames,
        per_frame(perf.queue.fences.total()),
        perf.mean_frame_ns(),
        per_frame(perf.queue.spins),
    );
}

/// Live-panel frames the demo scenario shows.
const DEMO_FRAMES: u64 = 10;

fn demo(config: &Config<'_>) -> ! {
    const NAME: &str = "gpu-demo";
    let mut display = up(NAME, config);
    let before = display.perf();
    display.show_test_pattern("VIRTIO GPU TEST PATTERN").unwrap_or_else(|e| fail(NAME, e));
    for n in 1..=DEMO_FRAMES {
        display.update_panel(n).unwrap_or_else(|e| fail(NAME, e));
    }
    display.report(NAME, &display.perf().since(&before));
    kprintln!("{NAME}: ok: test pattern and {DEMO_FRAMES} panel frames");
    exit::exit(exit::SUCCESS)
}

fn pattern_until_stopped(config: &Config<'_>) -> ! {
    gpu::start_demo(boot::machine(), config);
    crate::tasks::idle_loop(gpu::idle_poll, || false)
}

/// The `gpu-dashboard` scenario: the dashboard through a few collections while mutators run.
mod dashboard {
    use super::{fail, up};
    use crate::gc;
    use crate::gpu::dashboard::{Dashboard, Sample};
    use crate::gpu::Display;
    use crate::sync::Lock;
    use crate::workload::{self, graph, Repeat};
    use crate::{exit, kprintln, tasks};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, Ordering};
    use tricolor_arch::cpu;
    use tricolor_gc::Phase;
    use tricolor_kernel::cmdline::Config;
    use tricolor_virtio::gpu::Rect;

    const NAME: &str = "gpu-dashboard";
    const CYCLES: u64 = 4;
    /// A window at mark start (see `gc::collect_with_mark_delay`) for the sampler to see marking.
    const MARK_DELAY_US: u64 = 2000;

    // Ordering for these flags: Release by the writer, Acquire by the reader; the sampler's
    // `MID_MARK` store is published by the lock, the flags only say when to look.
    /// The scenario wants a sample taken during the next mark phase.
    static SAMPLE_WANTED: AtomicBool = AtomicBool::new(false);
    static SAMPLER_STOP: AtomicBool = AtomicBool::new(false);
    static SAMPLER_DONE: AtomicBool = AtomicBool::new(false);
    /// A sample the sampler took while the collector was marking.
    static MID_MARK: Lock<Option<Sample>> = Lock::new(None);

    /// A task that samples the collector once per cycle while it marks (the scenario's core is
    /// busy collecting then), so the dashboard shows marked and partly marked spans.
    fn sampler(pages_per_cell: usize) {
        while !SAMPLER_STOP.load(Ordering::Acquire) {
            if SAMPLE_WANTED.load(Ordering::Acquire) && gc::collector().phase() == Phase::Mark {
                let sample = Sample::take(pages_per_cell);
                if sample.phase == Phase::Mark {
                    *MID_MARK.lock() = Some(sample);
                    SAMPLE_WANTED.store(false, Ordering::Release);
                }
            }
            tasks::yield_now();
            cpu::relax();
        }
        SAMPLER_DONE.store(true, Ordering::Release);
    }

    fn spawn(name: &'static str, core: usize, entry: fn(usize), arg: usize) {
        let options = tasks::Spawn { name, stack_bytes: 32 * 1024, pinned: Some(core), growable_from: None };
        if let Err(why) = tasks::spawn(options, entry, arg) {
            fail(NAME, format_args!("cannot spawn {name}: {why}"));
        }
    }

    /// Refreshes from `sample` and checks that only the layout's dynamic regions were presented,
    /// each inside the display, the map and the counters among them; returns how many.
    fn refresh(display: &mut Display, dashboard: &mut Dashboard, sample: &Sample) -> u64 {
        let fb = *display.framebuffer();
        let rects = dashboard.refresh_with(display, sample).unwrap_or_else(|e| fail(NAME, e));
        let layout = *dashboard.layout();
        let dynamic: Vec<Rect> = layout.dynamic().to_vec();
        let stray = rects.iter().find(|r| !dynamic.contains(r) || !r.fits_in(fb.width, fb.height) || **r == fb.full());
        if let Some(r) = stray {
            fail(NAME, format_args!("refresh presented {r:?}, not one of the dirty rectangles {dynamic:?}"));
        }
        if !rects.contains(&layout.map) || !rects.contains(&layout.text) {
            fail(NAME, format_args!("refresh presented {rects:?}, without the map or the counters"));
        }
        rects.len() as u64
    }

    /// Checks every map cell's pixels against the colours `sample` gives it.
    fn check_cells(display: &mut Display, dashboard: &Dashboard, sample: &Sample) -> usize {
        let (grid, map) = (dashboard.grid(), dashboard.layout().map);
        let canvas = display.canvas();
        let mut checked = 0;
        for (i, colour) in sample.map.colours().enumerate() {
            let cell = grid.cell(map, i);
            for (x, y) in [(cell.x, cell.y), (cell.x + cell.width - 1, cell.y + cell.height - 1)] {
                if canvas.pixel(x, y) != Some(colour) {
                    fail(
                        NAME,
                        format_args!("map cell {i} at ({x}, {y}) is {:?}, expected {colour:#08x}", canvas.pixel(x, y)),
                    );
                }
            }
            checked += 1;
        }
        checked
    }

    pub fn run(config: &Config<'_>) -> ! {
        if !gc::is_ready() {
            fail(NAME, "no collector (see the boot log)");
        }
        let mut display = up(NAME, config);
        let before = display.perf();
        let mut dashboard = Dashboard::show(&mut display).unwrap_or_else(|e| fail(NAME, e));
        let first = display.perf().since(&before);
        if first.frames != 1 {
            fail(NAME, format_args!("the first dashboard frame took {} presents", first.frames));
        }
        let after_first = display.perf();
        let grid = dashboard.grid();

        let cores = workload::start(&[&graph::WORKLOAD], config, Repeat::Once).unwrap_or_else(|why| fail(NAME, why));
        spawn("dashboard-sampler", cores - 1, sampler, grid.pages_per_cell);
        let irqs = tricolor_arch::irqmask::IrqGuard::unmask();

        let (mut refreshes, mut presented, mut mid_mark, mut most_marked) = (0u64, 0u64, 0u64, 0usize);
        for _ in 0..CYCLES {
            crate::ktest::yield_until(5, || false);
            SAMPLE_WANTED.store(true, Ordering::Release);
            let report = gc::collect_with_mark_delay(MARK_DELAY_US);
            SAMPLE_WANTED.store(false, Ordering::Release);
            if let Some(sample) = MID_MARK.lock().take() {
                most_marked = most_marked.max(sample.map.objects_marked());
                presented += refresh(&mut display, &mut dashboard, &sample);
                refreshes += 1;
                mid_mark += 1;
            }
            dashboard.note_cycle(&report);
            let sample = Sample::take(grid.pages_per_cell);
            presented += refresh(&mut display, &mut dashboard, &sample);
            refreshes += 1;
            // Mutators' allocations may start cycles of their own, so the count may be ahead.
            if sample.stats.cycles < report.cycle {
                fail(
                    NAME,
                    format_args!("dashboard shows cycle {}, the collector ran {}", sample.stats.cycles, report.cycle),
                );
            }
            check_cells(&mut display, &dashboard, &sample);
        }

        SAMPLER_STOP.store(true, Ordering::Release);
        workload::stop();
        crate::tasks::stop_ticks();
        while !SAMPLER_DONE.load(Ordering::Acquire) {
            tasks::yield_now();
            cpu::relax();
        }
        drop(irqs);

        // The last frame: every cell checked against what the collector shows now.
        let sample = Sample::take(grid.pages_per_cell);
        presented += refresh(&mut display, &mut dashboard, &sample);
        refreshes += 1;
        let cells = check_cells(&mut display, &dashboard, &sample);
        let perf = display.perf().since(&after_first);
        if perf.frames != presented || perf.commands.errors != 0 {
            fail(
                NAME,
                format_args!("expected {presented} dirty-rectangle frames and no errors after the first: {perf}"),
            );
        }
        display.report(NAME, &perf);
        kprintln!(
            "{NAME}: ok: {CYCLES} cycles, 1 full frame then {refreshes} refreshes ({presented} dirty rectangles, \
             {mid_mark} during marking, up to {most_marked} objects marked), {cells} map cells of {} pages checked, \
             {} spans in use",
            grid.pages_per_cell,
            sample.map.spans()
        );
        exit::exit(exit::SUCCESS)
    }
}
