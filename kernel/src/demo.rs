//! The default boot (no `test=`, no `suite=`): a live demo of the collector. A mixed workload runs
//! on every core (graph rewiring, GCBench, churn: the stress suites' mutators), the pacer starts
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
use crate::{console, kprintln, percore, smp, stress, tasks};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicUsize, Ordering};
use tricolor_arch::cpu;
use tricolor_kernel::cmdline::Config;
use tricolor_kernel::shell::command::Workload;

/// Timer quantum: the workload's mutators share each core with each other and the collector's
/// tasks.
const QUANTUM_US: u64 = 2000;
/// Time between dashboard frames.
const FRAME_NS: u64 = 250_000_000;
/// Stack per mutator (GCBench recurses to depth 14 at this size).
const MUTATOR_STACK: usize = 64 * 1024;

/// One kind of mutator (a workload is one or more kinds on every core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Kind {
    Graph = 0,
    Gcbench = 1,
    Churn = 2,
}

impl Kind {
    fn from_arg(arg: usize) -> Kind {
        match arg & 3 {
            0 => Kind::Graph,
            1 => Kind::Gcbench,
            _ => Kind::Churn,
        }
    }

    /// The stress suite whose mutator this is.
    fn suite(self) -> &'static stress::Suite {
        let name = match self {
            Kind::Graph => "graph",
            Kind::Gcbench => "gcbench-quick",
            Kind::Churn => "churn",
        };
        stress::SUITES.iter().copied().find(|s| s.name == name).expect("the demo's suites exist")
    }
}

fn kinds(workload: Workload) -> &'static [Kind] {
    match workload {
        Workload::Mixed => &[Kind::Graph, Kind::Gcbench, Kind::Churn],
        Workload::Graph => &[Kind::Graph],
        Workload::Gcbench => &[Kind::Gcbench],
        Workload::Churn => &[Kind::Churn],
    }
}

/// The running workload (`None`: stopped), and its mutators started and finished.
static WORKLOAD: Lock<Option<Workload>> = Lock::new(None);
// Ordering: STARTED and SEED are written by the one task that starts workloads (boot, then the
// shell) before it spawns the mutators, and spawning publishes them (the run-queue lock), so
// Relaxed suffices; FINISHED is Release/Acquire (see `mutator` and `stop`).
static STARTED: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
static SEED: AtomicUsize = AtomicUsize::new(1);

/// The workload running now.
pub fn workload() -> Option<Workload> {
    *WORKLOAD.lock()
}

/// One mutator task: `arg` is its kind; the seed differs per core and per kind.
fn mutator(arg: usize) {
    let kind = Kind::from_arg(arg);
    let core = percore::id() as u64;
    let seed = SEED.load(Ordering::Relaxed) as u64 ^ ((core + 1) << 32) ^ ((arg as u64 + 1) << 40);
    let suite = kind.suite();
    // Graph and churn run until stopped; GCBench ends after one run, so it starts over.
    while !stress::stopping() {
        (suite.mutate)(seed);
    }
    // Release: pairs with the Acquire in `stop`: this task's last stores are done.
    FINISHED.fetch_add(1, Ordering::Release);
}

/// Stops the running workload and waits until its mutators have returned.
fn stop() {
    stress::set_stopping(true);
    while FINISHED.load(Ordering::Acquire) < STARTED.load(Ordering::Relaxed) {
        tasks::yield_now();
        cpu::relax();
    }
    stress::set_stopping(false);
}

/// Starts `workload`'s mutators on every online core.
fn start(workload: Workload, config: &Config<'_>) -> Result<(), &'static str> {
    STARTED.store(0, Ordering::Relaxed);
    FINISHED.store(0, Ordering::Relaxed);
    for kind in kinds(workload) {
        if let Err(why) = (kind.suite().prepare)(config) {
            log::error!("demo: workload {}: {why}", workload.name());
            return Err("the workload cannot start (see the line above)");
        }
    }
    for core in 0..percore::online_count() {
        for &kind in kinds(workload) {
            let spawn =
                tasks::Spawn { name: "mutator", stack_bytes: MUTATOR_STACK, pinned: Some(core), growable_from: None };
            tasks::spawn(spawn, mutator, kind as usize)?;
            STARTED.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// The boot's configuration (for starting workloads later from the console).
static CONFIG: Lock<Option<Config<'static>>> = Lock::new(None);

/// Replaces the running workload with `next` (`None`: just stop). Returns the previous one.
pub fn set_workload(next: Option<Workload>) -> Result<Option<Workload>, &'static str> {
    let previous = workload();
    stop();
    *WORKLOAD.lock() = None;
    if let Some(w) = next {
        let config = CONFIG.lock().clone().unwrap_or_default();
        start(w, &config)?;
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
    SEED.store(config.seed as usize, Ordering::Relaxed);
    gc::coretime::start();
    smp::run_on_all(|_| tasks::start_tick(QUANTUM_US));
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
