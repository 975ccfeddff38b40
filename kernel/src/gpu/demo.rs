//! What a boot without `test=` shows: the test pattern, then (about a second later, once the
//! collector is up) the GC dashboard, redrawn a few times a second from core 0's idle loop (the
//! timer wakes the idle core for each frame). Without a collector the live panel runs instead.

use super::dashboard::Dashboard;
use super::display::{bring_up, BringUpError, Display};
use crate::devicetree::Machine;
use crate::sync::Lock as SpinLock;
use tricolor_arch::{cpu, timer};
use tricolor_kernel::cmdline::Config;

/// Time between panel frames.
const FRAME_NS: u64 = 200_000_000;
/// How long the test pattern stays before the dashboard replaces it (`cargo xtask screenshot`
/// captures the pattern well inside this).
const PATTERN_NS: u64 = 5_000_000_000;
/// Time between dashboard frames.
const DASHBOARD_FRAME_NS: u64 = 250_000_000;
/// A `[VIRTIO PERF]` line every this many panel frames.
const REPORT_EVERY: u64 = 50;

struct Demo {
    display: Display,
    frame: u64,
    next_ns: u64,
    since: tricolor_virtio::PerfSnapshot,
    /// When the test pattern was shown.
    pattern_ns: u64,
    /// The dashboard, once it has replaced the test pattern.
    dashboard: Option<Dashboard>,
}

static DEMO: SpinLock<Option<Demo>> = SpinLock::new(None);

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
    let now = cpu::uptime_ns();
    *DEMO.lock() = Some(Demo { display, frame: 1, next_ns: now, since, pattern_ns: now, dashboard: None });
}

/// Core 0's idle-loop hook: draws the next panel frame when it is due, then arms the timer for
/// the one after (the idle loop sleeps in `wfi`, which the timer interrupt ends).
pub fn idle_poll() {
    let Some(mut guard) = DEMO.try_lock() else { return };
    let Some(demo) = guard.as_mut() else { return };
    let now = cpu::uptime_ns();
    if now >= demo.next_ns {
        let drawn = match &mut demo.dashboard {
            Some(dashboard) => dashboard.refresh(&mut demo.display).map(drop),
            None if crate::gc::is_ready() => {
                if now >= demo.pattern_ns + PATTERN_NS {
                    Dashboard::show(&mut demo.display).map(|d| demo.dashboard = Some(d))
                } else {
                    // The test pattern stays untouched until the dashboard replaces it.
                    Ok(())
                }
            }
            None => demo.display.update_panel(demo.frame),
        };
        if let Err(e) = drawn {
            log::warn!("gpu: display frame {} failed: {e}; display stopped", demo.frame);
            *guard = None;
            return;
        }
        if demo.frame % REPORT_EVERY == 0 {
            let perf = demo.display.perf();
            demo.display.report("live-panel", &perf.since(&demo.since));
            demo.since = perf;
        }
        demo.frame += 1;
        demo.next_ns = now + if crate::gc::is_ready() { DASHBOARD_FRAME_NS } else { FRAME_NS };
    }
    let wait_ns = demo.next_ns.saturating_sub(cpu::uptime_ns()).max(1_000_000);
    timer::arm(cpu::counter_frequency() * wait_ns / 1_000_000_000);
}
