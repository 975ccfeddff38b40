//! The driver's clock: the generic counter in nanoseconds. Under `-icount shift=0` virtual time
//! follows instructions, so the times it reports repeat run to run.

use tricolor_virtio::Clock;

/// [`Clock`] over `tricolor_arch::cpu::uptime_ns` (the counter runs at CNTFRQ, 62.5 MHz on QEMU:
/// a 16 ns resolution).
#[derive(Clone, Copy, Default)]
pub struct CounterClock;

impl Clock for CounterClock {
    fn now_ns(&self) -> u64 {
        tricolor_arch::cpu::uptime_ns()
    }
}
