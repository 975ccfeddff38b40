//! The default boot (no `test=`, no `suite=`): a live demo of the collector. A mixed workload runs
//! on every core (graph rewiring, GCBench, churn: `crate::workload`), the pacer starts
//! collections as the heap grows, the GC dashboard redraws a few times a second with dirty
//! rectangles, and the serial console takes commands (`help`) until `quit`.
//!
//! Tasks: per core one mutator per workload kind (pinned: the suites keep per-core state), on
//! core 0 the console's shell and the dashboard (core 0 because interrupt completion needs the
//! GPU driver there). The boot flow becomes core 0's idle loop.

use crate::gc;
use crate::gpu::dashboard::Dashboard;
use crate::gpu::Display;
use crate::sync::Lock;
use crate::{console, kprintln, percore, tasks, workload};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};
use tricolor_arch::cpu;
use tricolor_kernel::cmdline::Config;
use tricolor_kernel::shell::command::Workload;

/// Time between dashboard frames.
const FRAME_NS: u64 = 250_000_000;

/// The workloads a console workload name runs on every core.
fn workloads(w: Workload) -> &'static [&'static workload::Workload] {
    match w {
        Workload::Mixed => {
            &[&workload::graph::WORKLOAD, &workload::gcbench::WORKLOAD_QUICK, &workload::churn::WORKLOAD]
        }
        Workload::Graph => &[&workload::graph::WORKLOAD],
        Workload::Gcbench => &[&workload::gcbench::WORKLOAD_QUICK],
        Workload::Churn => &[&workload::churn::WORKLOAD],
    }
}

/// The running workload (`None`: stopped).
static WORKLOAD: Lock<Option<Workload>> = Lock::new(None);

/// The workload running now.
pub fn workload() -> Option<Workload> {
    *WORKLOAD.lock()
}

/// The boot's configuration (for starting workloads later from the console).
static CONFIG: Lock<Option<Config<'static>>> = Lock::new(None);

/// Counter tick at which the demo's workload started: where a `timeline=dump` at `quit` begins.
/// Relaxed: written once before the shell task is spawned (the spawn orders it), read by the shell.
static STARTED_AT: AtomicU64 = AtomicU64::new(0);

/// With `timeline=dump`: stops the workload and prints every core's timeline from the demo's
/// start until now (`cargo xtask trace` types `quit` and reads it). Called by the shell's `quit`.
pub fn dump_timeline_if_asked() {
    if !CONFIG.lock().as_ref().is_some_and(|c| c.timeline_dump) {
        return;
    }
    let to = cpu::counter();
    // Stopped first, so that the rings stop filling while they are printed (the states after
    // `to` are cut off anyway).
    let _ = set_workload(None);
    crate::timeline::dump(STARTED_AT.load(Ordering::Relaxed), to);
}

/// Replaces the running workload with `next` (`None`: just stop). Returns the previous one.
pub fn set_workload(next: Option<Workload>) -> Result<Option<Workload>, &'static str> {
    let previous = workload();
    workload::stop();
    *WORKLOAD.lock() = None;
    if let Some(w) = next {
        let config = CONFIG.lock().clone().unwrap_or_default();
        // Graph and churn run until stopped; GCBench ends after one run, so it starts over.
        if let Err(why) = workload::start(workloads(w), &config, workload::Repeat::UntilStopped) {
            log::error!("demo: workload {}: {why}", w.name());
            return Err("the workload cannot start (see the line above)");
        }
        *WORKLOAD.lock() = Some(w);
    }
    Ok(previous)
}

/// The dashboard task: `arg` is a `Box<Display>` turned into an address by [`run`].
fn dashboard(arg: usize) {
    // SAFETY: `run` passed `Box::into_raw` of a `Display` and never touches it again.
    let mut display = unsafe { Box::from_raw(arg as *mut Display) };
    let mut dashboard = match Dashboard::show(&mut display) {
        Ok(d) => d,
        Err(e) => return log::warn!("gui: the dashboard cannot start: {e}; the demo goes on without it"),
    };
    loop {
        let next = cpu::uptime_ns() + FRAME_NS;
        while cpu::uptime_ns() < next {
            tasks::yield_now();
            cpu::relax();
        }
        if let Err(e) = dashboard.refresh(&mut display) {
            return log::warn!("gui: a dashboard frame failed: {e}; display stopped");
        }
    }
}

/// Runs the live demo: never returns (`quit` powers off).
pub fn run(machine: &crate::devicetree::Machine, config: &Config<'static>) -> ! {
    if !gc::is_ready() {
        log::error!("demo: no collector (see above); showing the test pattern only");
        crate::gpu::start_demo(machine, config);
        tasks::idle_loop(crate::gpu::idle_poll, || false);
    }
    *CONFIG.lock() = Some(config.clone());
    gc::coretime::start();
    STARTED_AT.store(cpu::counter(), Ordering::Relaxed);
    if let Err(why) = set_workload(Some(Workload::Mixed)) {
        log::error!("demo: cannot start the mixed workload: {why}");
    }
    let display = crate::gpu::bring_up(machine, config);
    match display {
        Ok(display) => {
            let spawn =
                tasks::Spawn { name: "dashboard", stack_bytes: 64 * 1024, pinned: Some(0), growable_from: None };
            let arg = Box::into_raw(Box::new(display)) as usize;
            if let Err(why) = tasks::spawn(spawn, dashboard, arg) {
                log::warn!("demo: cannot start the dashboard: {why}");
            }
        }
        Err(e) => crate::gpu::report_missing(&e),
    }
    let interactive = console::rx::enable(machine.uart_irq);
    if interactive {
        if let Err(why) = console::shell::start() {
            log::warn!("demo: cannot start the console: {why}");
        }
    } else {
        log::warn!("demo: no UART interrupt: the console takes no commands");
    }
    kprintln!(
        "demo: workload {} on {} cores, collections paced at gc.percent={}; type help (quit powers off)",
        workload().map_or("none (see above)", |w| w.name()),
        percore::online_count(),
        config.gc_percent
    );
    tasks::idle_loop(|| {}, || false)
}
