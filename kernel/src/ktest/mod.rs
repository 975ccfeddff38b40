//! Kernel tests, run inside QEMU: `test=unit` runs every unit test (tests that need the hardware),
//! `test=<unit test name>` runs one, and `test=<scenario>` runs a named scenario that decides the
//! exit status itself (a deliberate fault must end in a fault report, for instance). xtask boots one
//! QEMU per entry and checks the exit status and the console output.

mod bench;
mod gc;
mod gpu;
pub mod scenarios;
mod sched;
mod unit;

use crate::{exit, kprintln};
use alloc::string::String;
use tricolor_kernel::cmdline::Config;

/// A test that needs the hardware: returns `Err(why)` on failure.
pub struct UnitTest {
    pub name: &'static str,
    pub run: fn(&Config<'_>) -> Result<(), String>,
}

/// A scenario: runs to an exit of its own choosing.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Config<'_>) -> !,
}

/// Runs the test or scenario `name` and exits with its verdict.
pub fn run(name: &str, config: &Config<'_>) -> ! {
    let all = || unit::TESTS.iter().chain(sched::TESTS).chain(gpu::TESTS);
    if name == "unit" {
        run_units(all(), config);
    }
    if name.split('+').all(|n| all().any(|t| t.name == n)) {
        // `test=a+b`: several unit tests in one boot, in the order given.
        run_units(name.split('+').filter_map(|n| all().find(|t| t.name == n)), config);
    }
    if let Some(scenario) = scenarios::SCENARIOS
        .iter()
        .chain(gpu::SCENARIOS)
        .chain(gc::SCENARIOS)
        .chain(bench::SCENARIOS)
        .find(|s| s.name == name)
    {
        kprintln!("scenario {}: {}", scenario.name, scenario.about);
        (scenario.run)(config);
    }
    kprintln!("tricolor: unknown test '{name}'; valid tests:");
    kprintln!("  unit (all unit tests)");
    for test in all() {
        kprintln!("  {} (unit)", test.name);
    }
    for scenario in scenarios::SCENARIOS.iter().chain(gpu::SCENARIOS).chain(gc::SCENARIOS) {
        kprintln!("  {} (scenario: {})", scenario.name, scenario.about);
    }
    exit::exit(exit::BAD_CONFIG)
}

fn run_units<'a>(tests: impl Iterator<Item = &'a UnitTest>, config: &Config<'_>) -> ! {
    let (mut passed, mut failed) = (0, 0);
    for test in tests {
        match (test.run)(config) {
            Ok(()) => {
                passed += 1;
                kprintln!("test {} ... ok", test.name);
            }
            Err(why) => {
                failed += 1;
                kprintln!("test {} ... FAILED: {}", test.name, why);
            }
        }
    }
    kprintln!("kernel unit tests: {passed} passed, {failed} failed");
    exit::exit(if failed == 0 { exit::SUCCESS } else { exit::TEST_FAILED })
}

/// `ensure!(cond, "message {}", args)`: fail the unit test with the message when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($msg)*));
        }
    };
}
use ensure;

/// How far below SP [`caller_stack_bytes`] paints: work that goes deeper is an error, not a number.
pub const CALLER_STACK_WINDOW: usize = 16 * 1024;

/// Bytes of the current stack below SP that `f` touches, and `f`'s result.
///
/// Paints the [`CALLER_STACK_WINDOW`] bytes under SP with the runtime's stack paint, calls `f`
/// out of line (so everything `f` does, its own frame included, lies below this SP), and returns
/// the distance from SP down to the deepest word that lost the paint. IRQs are masked meanwhile:
/// an interrupt taken on this stack would dirty the window itself.
///
/// The paint and the scan are loops written here, not calls to the runtime's `paint_range` or
/// `Stack::high_water_mark`: a call would put its own frame into the window it paints or reads.
pub fn caller_stack_bytes<R>(f: impl FnOnce() -> R) -> Result<(usize, R), String> {
    use tricolor_runtime::stack::paint::STACK_PAINT;
    let sp = tricolor_runtime::current_sp();
    let stack = crate::stacks::STACKS.find(sp - 1).map(|(stack, _)| stack);
    let Some(stack) = stack.filter(|s| s.contains(sp - 1) && sp - s.lo >= CALLER_STACK_WINDOW) else {
        return Err(alloc::format!(
            "SP {sp:#x} has no {CALLER_STACK_WINDOW} free bytes of a registered stack under it"
        ));
    };
    let was_masked = tricolor_arch::cpu::mask_irqs();
    let words = CALLER_STACK_WINDOW / 8;
    let base = core::ptr::with_exposed_provenance_mut::<u64>(sp - CALLER_STACK_WINDOW);
    for i in 0..words {
        // SAFETY: [sp - WINDOW, sp) is mapped (it lies in `stack`, checked above) and free: nothing
        // is live below SP (AAPCS64 has no red zone), this function's frame is above SP, and with
        // IRQs masked no handler pushes onto this stack meanwhile.
        unsafe { base.add(i).write_volatile(STACK_PAINT) };
    }
    let result = core::hint::black_box(call_out_of_line(f));
    // SAFETY: as above; `f` has returned, so nothing writes the window while it is scanned.
    let untouched = (0..words).find(|&i| unsafe { base.add(i).read_volatile() } != STACK_PAINT).unwrap_or(words);
    tricolor_arch::cpu::restore_irqs(was_masked);
    if untouched == 0 {
        return Err(alloc::format!("{} used all {CALLER_STACK_WINDOW} bytes measured under SP", stack.name));
    }
    Ok((CALLER_STACK_WINDOW - untouched * 8, result))
}

/// `f()` as a real call: whatever of `f` the compiler inlines lands in this frame, below the
/// caller's SP, where [`caller_stack_bytes`] counts it.
#[inline(never)]
fn call_out_of_line<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Spins (with the `yield` hint) until `done()` or `ms` milliseconds of counter time pass;
/// returns `done()`. For waits on other cores.
pub fn spin_until(ms: u64, done: impl Fn() -> bool) -> bool {
    wait_until(ms, done, || {})
}

/// Like [`spin_until`], but gives this core to other tasks between checks: for waits on tasks that
/// may share this core.
pub fn yield_until(ms: u64, done: impl Fn() -> bool) -> bool {
    wait_until(ms, done, crate::tasks::yield_now)
}

fn wait_until(ms: u64, done: impl Fn() -> bool, between: impl Fn()) -> bool {
    use tricolor_arch::cpu;
    let deadline = cpu::counter() + cpu::counter_frequency() * ms / 1000;
    while !done() && cpu::counter() < deadline {
        between();
        cpu::relax();
    }
    done()
}
