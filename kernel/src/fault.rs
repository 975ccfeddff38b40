//! The kernel's exception handler: interrupts are dispatched, everything else is a fatal fault that
//! gets a decoded report on the console and ends the run with [`exit::FAULT`] — never a hang.

use crate::{exit, kprintln, percore, stacks};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tricolor_abi::MAX_CORES;
use tricolor_arch::exception::{Exception, Kind, Origin, TrapFrame};

/// Set while a core prints a fault report: a fault inside the report itself must not loop.
static REPORTING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// A hook that sees every exception that is not an interrupt before the fault path does, and
/// returns true if it handled it (the exception returns to `frame`). Tests install one (a
/// deliberate `brk`, a breakpoint placed in a barrier window); the kernel installs none.
pub type ExceptionHook = fn(Exception, &mut TrapFrame) -> bool;

/// The installed [`ExceptionHook`] as an address (0: none).
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs (or with `None` removes) the exception hook.
pub fn set_exception_hook(hook: Option<ExceptionHook>) {
    // Ordering: Release, so a core that takes an exception after seeing the hook sees what its
    // installer wrote before (its state).
    HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Installed with `tricolor_arch::exception::set_handler` at boot.
pub fn handle(exception: Exception, frame: &mut TrapFrame) {
    if exception.origin == Origin::Kernel && exception.kind == Kind::Irq {
        // Before anything is dispatched: an interrupted barrier window restarts from its first
        // instruction (IRQs only, never a synchronous exception: see `gc::barrier`).
        crate::gc::barrier::rewind(frame);
        crate::irq::dispatch(frame);
        return;
    }
    let hook = HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only `set_exception_hook` stores a nonzero value, and it stores an `ExceptionHook`.
        let hook = unsafe { core::mem::transmute::<usize, ExceptionHook>(hook) };
        if hook(exception, frame) {
            return;
        }
    }
    let syndrome = frame.syndrome();
    if exception.origin == Origin::Kernel && syndrome.is_translation_fault() {
        match crate::tasks::grow_current_stack(frame.far as usize) {
            Ok(()) => return, // the faulting access retries on the new page
            Err(crate::tasks::GrowthFailure::NotGrowth) => {}
            Err(crate::tasks::GrowthFailure::Blocked(why)) => kprintln!("\n!!! stack growth failed: {why}"),
        }
    }
    if REPORTING[percore::id()].swap(true, Ordering::Relaxed) {
        // The report faulted: give up on printing, keep the failure status.
        exit::exit(exit::FAULT);
    }
    report(exception, frame);
    exit::exit(exit::FAULT);
}

/// Prints the decoded report: what, where, on which core, and the registers.
fn report(exception: Exception, frame: &TrapFrame) {
    let syndrome = frame.syndrome();
    let origin = match exception.origin {
        Origin::Kernel => "kernel code",
        Origin::Nested => "the exception handler itself (nested fault)",
        Origin::LowerEl => "a lower exception level",
    };
    let what = match exception.kind {
        Kind::Synchronous => syndrome.class_name(),
        Kind::Irq => "unexpected IRQ",
        Kind::Fiq => "unexpected FIQ",
        Kind::SError => "SError (asynchronous abort)",
    };
    kprintln!("\n!!! FATAL EXCEPTION on core {}: {} in {}", percore::id(), what, origin);
    if let Some(overflow) =
        syndrome.is_translation_fault().then(|| stacks::overflow_at(percore::id(), frame.far as usize)).flatten()
    {
        kprintln!("    {overflow}");
    }
    kprintln!(
        "    ESR {:#010x} (EC {:#04x}, IL {}, ISS {:#09x})",
        frame.esr,
        syndrome.ec,
        syndrome.il as u8,
        syndrome.iss
    );
    if let (Some(status), true) = (syndrome.fault_status(), exception.kind == Kind::Synchronous) {
        let access = match (syndrome.is_data_abort(), syndrome.is_write()) {
            (false, _) => "instruction fetch",
            (true, true) => "write",
            (true, false) => "read",
        };
        match syndrome.fault_level() {
            Some(level) => kprintln!("    {status} (level {level}) on a {access} of FAR {:#018x}", frame.far),
            None => kprintln!("    {status} on a {access} of FAR {:#018x}", frame.far),
        }
    } else {
        kprintln!("    FAR {:#018x}", frame.far);
    }
    kprintln!("    ELR {:#018x}  SP {:#018x}  SPSR {:#010x}", frame.elr, frame.sp, frame.spsr);
    for row in 0..8 {
        let mut line = heapless_line();
        for col in 0..4 {
            let r = row * 4 + col;
            if r < 31 {
                line.push_reg(r, frame.x[r]);
            }
        }
        kprintln!("   {}", line.as_str());
    }
}

/// A fixed-size line buffer: the report must not allocate (the heap may be what broke).
struct Line {
    buf: [u8; 96],
    len: usize,
}

fn heapless_line() -> Line {
    Line { buf: [0; 96], len: 0 }
}

impl Line {
    fn push_reg(&mut self, r: usize, value: u64) {
        use core::fmt::Write;
        let _ = write!(self, " x{r:<2} {value:#018x}");
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<bad utf8>")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = (self.len + s.len()).min(self.buf.len());
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&s.as_bytes()[..n]);
        self.len = end;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kprintln!("\n!!! PANIC on core {}: {}", percore::id(), info);
    let sp = tricolor_arch::cpu::stack_pointer();
    if let Some((stack, _)) = stacks::STACKS.find(sp) {
        kprintln!(
            "    running on the {} stack '{}' [{:#x}, {:#x}), SP {sp:#x}",
            stack.kind,
            stack.name,
            stack.lo,
            stack.hi
        );
    }
    exit::exit(exit::PANIC)
}
