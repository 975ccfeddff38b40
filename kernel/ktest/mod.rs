//! The kernel's tests, run inside QEMU (cargo feature `ktest`, on by default): unit tests that
//! need the hardware, scenarios that decide the exit status themselves (a deliberate fault must
//! end in a fault report, for instance), benchmarks that print `BENCH` lines, and the GC stress
//! suites. Each file registers its table once with `crate::register!`; the kernel finds them
//! through `crate::registry` (`test=<name>`, `test=unit`, `suite=<name>`) and knows none of them
//! by name. xtask boots one QEMU per case and checks the exit status and the console output.
//!
//! This tree is apart from the kernel (`kernel/ktest/`, outside `kernel/src/`) and only the
//! kernel's root module mentions it; `cargo xtask lint` also checks the kernel built without it.

mod bench;
mod gc;
mod gpu;
mod scenarios;
mod sched;
mod stress;
mod timeline;
mod unit;

use crate::registry::{Entry, Kind, Run};
use alloc::string::String;
use tricolor_kernel::cmdline::Config;

/// A unit test's entry: `run` returns `Err(why)` on failure.
const fn unit(name: &'static str, about: &'static str, run: fn(&Config<'_>) -> Result<(), String>) -> Entry {
    Entry { kind: Kind::Unit, name, about, run: Run::Check(run) }
}

/// A scenario's entry: `run` ends the boot with its verdict.
const fn scenario(name: &'static str, about: &'static str, run: fn(&Config<'_>) -> !) -> Entry {
    Entry { kind: Kind::Scenario, name, about, run: Run::Exit(run) }
}

/// A benchmark's entry: `run` prints `BENCH` lines and ends the boot.
const fn bench(name: &'static str, about: &'static str, run: fn(&Config<'_>) -> !) -> Entry {
    Entry { kind: Kind::Bench, name, about, run: Run::Exit(run) }
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
    let sp = tricolor_arch::cpu::stack_pointer();
    let stack = crate::stacks::STACKS.find(sp - 1).map(|(stack, _)| stack);
    let Some(stack) = stack.filter(|s| s.contains(sp - 1) && sp - s.lo >= CALLER_STACK_WINDOW) else {
        return Err(alloc::format!(
            "SP {sp:#x} has no {CALLER_STACK_WINDOW} free bytes of a registered stack under it"
        ));
    };
    let irqs = tricolor_arch::irqmask::IrqGuard::mask();
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
    drop(irqs);
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

pub use crate::tasks::{spin_until, yield_until};
