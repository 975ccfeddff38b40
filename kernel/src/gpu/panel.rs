//! The test pattern with its live panel, refreshed from core 0's idle loop (the timer wakes the
//! idle core for each frame): what `test=gpu-pattern` shows (the screenshot test checks its
//! pixels), and what the default boot shows when there is no collector to demonstrate.

use super::display::{bring_up, BringUpError, Display};
use crate::devicetree::Machine;
use crate::sync::Lock as SpinLock;
use tricolor_arch::{cpu, timer};
use tricolor_kernel::cmdline::Config;

/// Time between panel frames.
const FRAME_NS: u64 = 200_000_000;
/// A `[VIRTIO PERF]` line every this many panel frames.
const REPORT_EVERY: u64 = 50;

struct Panel {
    display: Display,
    frame: u64,
    next_ns: u64,
    since: tricolor_virtio::PerfSnapshot,
}

static PANEL: SpinLock<Option<Panel>> = SpinLock::new(None);

/// Logs why there is no display: a warning, and the kernel goes on.
pub fn report_missing(error: &BringUpError) {
    match error {
        BringUpError::Disabled => log::info!("gpu: {error}"),
        _ => log::warn!("gpu: {error}; continuing without a display"),
    }
}

/// Brings the GPU up and draws the test pattern; the panel then runs from [`idle_poll`].
pub fn start_demo(machine: &Machine, config: &Config<'_>) {
    let mut display = match bring_up(machine, config) {
        Ok(display) => display,
        Err(error) => return report_missing(&error),
    };
    if let Err(e) = display.show_test_pattern("VIRTIO GPU TEST PATTERN") {
        log::warn!("gpu: drawing the test pattern failed: {e}; continuing without a display");
        return;
    }
    let since = display.perf();
    *PANEL.lock() = Some(Panel { display, frame: 1, next_ns: cpu::uptime_ns(), since });
}

/// Core 0's idle-loop hook: draws the next panel frame when it is due, then arms the timer for
/// the one after (the idle loop sleeps in `wfi`, which the timer interrupt ends).
pub fn idle_poll() {
    let Some(mut guard) = PANEL.try_lock() else { return };
    let Some(panel) = guard.as_mut() else { return };
    let now = cpu::uptime_ns();
    if now >= panel.next_ns {
        if let Err(e) = panel.display.update_panel(panel.frame) {
            log::warn!("gpu: display frame {} failed: {e}; display stopped", panel.frame);
            *guard = None;
            return;
        }
        if panel.frame % REPORT_EVERY == 0 {
            let perf = panel.display.perf();
            panel.display.report("live-panel", &perf.since(&panel.since));
            panel.since = perf;
        }
        panel.frame += 1;
        panel.next_ns = now + FRAME_NS;
    }
    let wait_ns = panel.next_ns.saturating_sub(cpu::uptime_ns()).max(1_000_000);
    timer::arm(cpu::counter_frequency() * wait_ns / 1_000_000_000);
}
