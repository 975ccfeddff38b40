//! Scenarios: whole-kernel behaviours whose verdict is the exit status and the console output,
//! checked by xtask (a fault must produce the decoded report and a failure exit, for instance).

use super::scenario;
use crate::registry::Entry;
use crate::{exit, kprintln, percore, smp};
use tricolor_kernel::cmdline::Config;

crate::register!(SCENARIOS);
const SCENARIOS: &[Entry] = &[
    scenario("boot", "boot to ready and exit 0", boot),
    scenario("fault", "load from an unmapped address: must end in a fault report", fault),
    scenario("panic", "a Rust panic: must end in a panic report", panic),
    scenario("panic-systemstack", "a panic inside systemstack(): reported from the system stack", panic_systemstack),
    scenario("log-stress", "every core logs at once: lines must never interleave", log_stress),
    scenario("overflow-boot", "recurse until the boot stack's guard page", overflow_boot),
    scenario("overflow-task", "a task with a fixed 16 KiB stack recurses forever", overflow_task),
    scenario(
        "overflow-growable",
        "a task with a growable 64 KiB stack recurses forever: grows, then overflows its reservation",
        overflow_growable,
    ),
    scenario("overflow-system", "recurse inside systemstack() until the system stack's guard page", overflow_system),
    scenario(
        "overflow-exception",
        "recurse inside an exception handler until the exception stack's guard page",
        overflow_exception,
    ),
];

/// Recurses with a 512-byte frame until something stops it (a guard page).
#[inline(never)]
fn recurse(depth: usize) -> usize {
    let frame = core::hint::black_box([depth as u8; 512]);
    if depth == usize::MAX {
        return 0;
    }
    recurse(depth + 1) + frame[depth % 512] as usize
}

fn overflow_boot(_: &Config<'_>) -> ! {
    let depth = recurse(0);
    kprintln!("overflow-boot: recursion returned ({depth}) without reaching the guard page");
    exit::exit(exit::TEST_FAILED)
}

fn recurse_task(_: usize) {
    let depth = recurse(0);
    kprintln!("overflow task: recursion returned ({depth}) without reaching the guard page");
    exit::exit(exit::TEST_FAILED)
}

fn run_task_until_fault(options: crate::tasks::Spawn) -> ! {
    if let Err(why) = crate::tasks::spawn(options, recurse_task, 0) {
        kprintln!("cannot spawn: {why}");
        exit::exit(exit::TEST_FAILED);
    }
    // Unscoped: this flow never returns (the task's fault ends the run), so nothing restores.
    tricolor_arch::irqmask::unmask_irqs();
    loop {
        crate::tasks::yield_now();
    }
}

fn overflow_task(_: &Config<'_>) -> ! {
    run_task_until_fault(crate::tasks::Spawn {
        name: "deep",
        stack_bytes: 16 * 1024,
        pinned: None,
        growable_from: None,
    })
}

fn overflow_growable(_: &Config<'_>) -> ! {
    run_task_until_fault(crate::tasks::Spawn {
        name: "grower",
        stack_bytes: 64 * 1024,
        pinned: None,
        growable_from: Some(4096),
    })
}

fn overflow_system(_: &Config<'_>) -> ! {
    let depth = tricolor_runtime::systemstack(|| recurse(0));
    kprintln!("overflow-system: recursion returned ({depth}) without reaching the guard page");
    exit::exit(exit::TEST_FAILED)
}

/// The BRK immediate that asks the exception handler to recurse (overflow-exception scenario).
const BRK_OVERFLOW_EXCEPTION_STACK: u16 = 0x7e1;

fn overflow_exception(_: &Config<'_>) -> ! {
    crate::fault::set_exception_hook(Some(handle_test_exception));
    // SAFETY: deliberately raises a BRK exception; handle_test_exception recurses on the exception
    // stack until its guard page faults, and the nested-fault report ends the run.
    unsafe { core::arch::asm!("brk #0x7e1") };
    kprintln!("overflow-exception: returned from the BRK without an overflow");
    exit::exit(exit::TEST_FAILED)
}

/// The overflow-exception scenario's exception hook: returns true if the exception was its `brk`.
fn handle_test_exception(
    exception: tricolor_arch::exception::Exception,
    frame: &mut tricolor_arch::exception::TrapFrame,
) -> bool {
    use tricolor_arch::exception::{Kind, Origin};
    let syndrome = frame.syndrome();
    let is_brk = exception.kind == Kind::Synchronous && exception.origin == Origin::Kernel && syndrome.ec == 0x3c;
    if is_brk && syndrome.iss & 0xffff == BRK_OVERFLOW_EXCEPTION_STACK as u32 {
        recurse(0);
        frame.elr += 4;
        return true;
    }
    false
}

fn boot(_: &Config<'_>) -> ! {
    exit::exit(exit::SUCCESS)
}

/// An address no RAM, device or mapping backs: above the 40-bit physical address range QEMU's
/// `virt` machine implements, so the access faults with the MMU on or off.
const NOWHERE: usize = 0xdead_0000_0000;

fn fault(_: &Config<'_>) -> ! {
    // SAFETY: deliberately not safe: this read must fault, and the fault handler ends the run.
    let value = unsafe { (NOWHERE as *const u64).read_volatile() };
    kprintln!("fault scenario: read {value:#x} from {NOWHERE:#x} without a fault");
    exit::exit(exit::TEST_FAILED)
}

fn panic(_: &Config<'_>) -> ! {
    panic!("deliberate panic from the panic scenario")
}

fn panic_systemstack(_: &Config<'_>) -> ! {
    tricolor_runtime::systemstack(|| panic!("deliberate panic on the system stack"))
}

/// Every core logs `tricolor_abi::LOG_STRESS_LINES` lines; xtask counts them per core and checks
/// each is whole.
fn log_stress(_: &Config<'_>) -> ! {
    use tricolor_abi::{LOG_STRESS_LINES, LOG_STRESS_TAIL};
    smp::run_on_all(|core| {
        for line in 0..LOG_STRESS_LINES {
            log::info!("log-stress core={core} line={line}{LOG_STRESS_TAIL}");
        }
    });
    kprintln!("log-stress: {} cores x {} lines", percore::online_count(), LOG_STRESS_LINES);
    exit::exit(exit::SUCCESS)
}
