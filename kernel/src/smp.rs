//! Secondary cores: started with PSCI CPU_ON, then parked in a loop that runs cross-core calls.

use crate::sync::Lock as Mutex;
use crate::{devicetree::Machine, percore};
use core::sync::atomic::{AtomicUsize, Ordering};
use log::warn;
use tricolor_abi::MAX_CORES;
use tricolor_arch::{cpu, psci};

/// Per-core mailbox: a `fn(usize)` to run, 0 when empty.
static MAILBOX: [AtomicUsize; MAX_CORES] = [const { AtomicUsize::new(0) }; MAX_CORES];
/// Secondaries that started but cannot run (their interrupt controller part is unusable): they
/// park for good, and the boot core stops waiting for them.
static FAILED: AtomicUsize = AtomicUsize::new(0);
/// One cross-core call at a time.
static CALL_LOCK: Mutex<()> = Mutex::new(());

/// How long to wait for secondaries to report online, in generic-counter seconds.
const ONLINE_TIMEOUT_S: u64 = 5;

/// Starts up to `max_cores - 1` secondaries listed in the device tree and waits for them.
/// Returns the number of cores online (including this one).
pub fn start_secondaries(machine: &Machine, max_cores: usize) -> usize {
    let Some(conduit) = machine.psci else {
        warn!("no usable /psci node in the device tree: running on the boot core only");
        return percore::online_count();
    };
    let me = cpu::mpidr();
    let mut next = 1;
    for &mpidr in &machine.cpus[..machine.cpu_count] {
        if mpidr == me || next >= max_cores {
            continue;
        }
        percore::set_mpidr(next, mpidr);
        match psci::cpu_on(conduit, mpidr, tricolor_arch::secondary_entry_address(), next as u64) {
            Ok(()) => next += 1,
            Err(e) => warn!("PSCI CPU_ON for mpidr {mpidr:#x} failed: {e:?}"),
        }
    }
    let deadline = cpu::counter() + ONLINE_TIMEOUT_S * cpu::counter_frequency();
    while percore::online_count() + FAILED.load(Ordering::Acquire) < next && cpu::counter() < deadline {
        tricolor_arch::cpu::relax();
    }
    let (online, failed) = (percore::online_count(), FAILED.load(Ordering::Acquire));
    if failed > 0 {
        warn!("{failed} started cores cannot take interrupts and stay parked (see above)");
    } else if online < next {
        warn!("only {online} of {next} started cores reported online within {ONLINE_TIMEOUT_S} s");
    }
    online
}

/// Rust entry for secondary cores (called from boot.s with the PSCI context = logical index).
#[unsafe(no_mangle)]
extern "C" fn tricolor_boot_secondary(id: usize) -> ! {
    percore::init_this_core(id);
    crate::vm::enable_on_this_core();
    if let Err(why) = crate::irq::init_this_core() {
        // Never online: stop-the-world would wait for a core that cannot hear its SGI.
        log::error!("core {id} (mpidr {:#x}): GICv3: {why}; parked, not online", cpu::mpidr());
        FAILED.fetch_add(1, Ordering::Release);
        loop {
            cpu::wait_for_interrupt();
        }
    }
    percore::mark_online();
    log::debug!("core {id} online (mpidr {:#x})", cpu::mpidr());
    crate::tasks::adopt_boot_flow();
    crate::tasks::idle_loop(|| run_mailbox(id), || MAILBOX[id].load(Ordering::Relaxed) != 0)
}

/// Runs the cross-core call posted for core `id`, if any.
fn run_mailbox(id: usize) {
    // Acquire pairs with the Release in run_on_all: the caller's writes before posting are visible.
    let work = MAILBOX[id].load(Ordering::Acquire);
    if work == 0 {
        return;
    }
    // SAFETY: run_on_all only ever posts `fn(usize)` pointers.
    let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(work) };
    f(id);
    // Release: the caller (Acquire) sees everything `f` wrote once it sees the empty mailbox.
    MAILBOX[id].store(0, Ordering::Release);
    cpu::send_event();
}

/// Runs `f(core_id)` on every online core, this one included, and returns when all have finished.
pub fn run_on_all(f: fn(usize)) {
    let _one_at_a_time = CALL_LOCK.lock();
    let me = percore::id();
    let others = || (0..MAX_CORES).filter(move |&c| c != me && percore::is_online(c));
    for core in others() {
        MAILBOX[core].store(f as usize, Ordering::Release);
    }
    crate::tasks::wake_others();
    f(me);
    for core in others() {
        while MAILBOX[core].load(Ordering::Acquire) != 0 {
            tricolor_arch::cpu::relax();
        }
    }
}
