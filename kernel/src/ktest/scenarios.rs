//! Scenarios: whole-kernel behaviours whose verdict is the exit status and the console output,
//! checked by xtask (a fault must produce the decoded report and a failure exit, for instance).

use super::Scenario;
use crate::{exit, kprintln, percore, smp};
use tricolor_kernel::cmdline::Config;

pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "boot", about: "boot to ready and exit 0", run: boot },
    Scenario { name: "fault", about: "load from an unmapped address: must end in a fault report", run: fault },
    Scenario { name: "panic", about: "a Rust panic: must end in a panic report", run: panic },
    Scenario { name: "log-stress", about: "every core logs at once: lines must never interleave", run: log_stress },
];

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

/// Lines each core prints; xtask counts them per core and checks each is whole.
pub const LOG_STRESS_LINES: usize = 200;

fn log_stress(_: &Config<'_>) -> ! {
    smp::run_on_all(|core| {
        for line in 0..LOG_STRESS_LINES {
            log::info!("log-stress core={core} line={line} payload=0123456789abcdefghijklmnopqrstuvwxyz end");
        }
    });
    kprintln!("log-stress: {} cores x {} lines", percore::online_count(), LOG_STRESS_LINES);
    exit::exit(exit::SUCCESS)
}
