//! Interrupts: the GIC found in the device tree, a handler table by interrupt id, and the dispatch
//! the exception handler calls for IRQs. Handlers run on the exception stack with IRQs masked and
//! must not allocate (see `tricolor_kernel::mem::heap`).

use crate::devicetree::Machine;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Once;
use tricolor_abi::MAX_CORES;
use tricolor_arch::exception::TrapFrame;
use tricolor_arch::gic::{Gic, SPURIOUS};

/// An interrupt handler: the interrupt id and the interrupted context (which it may replace).
pub type Handler = fn(u32, &mut TrapFrame);

const MAX_IRQ: usize = 128;
static HANDLERS: [AtomicUsize; MAX_IRQ] = [const { AtomicUsize::new(0) }; MAX_IRQ];
static GIC: Once<Gic> = Once::new();
static TIMER_IRQ: AtomicUsize = AtomicUsize::new(30);
/// Interrupts taken per core (for tests and statistics).
static COUNT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// SGI used to ask other cores to stop at a safe point (stop-the-world).
pub const SGI_STOP: u32 = 1;
/// SGI used to nudge a core (wake from WFI, run its mailbox).
pub const SGI_WAKE: u32 = 2;
/// SGI reserved for kernel tests.
pub const SGI_TEST: u32 = 3;
/// SGI asking a core to run the collector's requests at its next safe point (`gc::safepoint`).
pub const SGI_GC: u32 = 4;

/// Sets up the distributor and the boot core's interface. Without a GIC in the device tree the
/// kernel runs without interrupts (a warning, not a crash).
pub fn init(machine: &Machine) {
    let Ok(crate::devicetree::Gic::V2 { distributor, cpu_interface }) = machine.gic else {
        log::warn!("no GICv2 in the device tree: no interrupts (timer preemption, IPIs) on this machine");
        return;
    };
    let (distributor, cpu_interface) = (distributor as usize, cpu_interface as usize);
    // SAFETY: the device tree names these as the GICv2 register frames; the device region is
    // identity-mapped as Device-nGnRE for the whole run.
    let gic = GIC.call_once(|| unsafe { Gic::new(distributor, cpu_interface) });
    gic.init_distributor();
    TIMER_IRQ.store(machine.timer_irq as usize, Ordering::Relaxed);
    // A wake-up needs no handling: taking the interrupt is what ends the target's `wfi`.
    register(SGI_WAKE, |_, _| {});
    init_this_core();
}

/// Enables the calling core's CPU interface and its per-core interrupts (timer, SGIs).
pub fn init_this_core() {
    let Some(gic) = GIC.get() else { return };
    gic.init_cpu_interface();
    gic.enable(timer_irq(), true);
    gic.enable(SGI_STOP, false);
    gic.enable(SGI_WAKE, false);
    gic.enable(SGI_TEST, false);
    gic.enable(SGI_GC, false);
}

/// The timer's interrupt id.
pub fn timer_irq() -> u32 {
    TIMER_IRQ.load(Ordering::Relaxed) as u32
}

/// The GIC, if the machine has one.
pub fn gic() -> Option<&'static Gic> {
    GIC.get()
}

/// Enables shared peripheral interrupt `id` (routed to core 0), level-sensitive or edge-triggered
/// as the device tree says. Register its handler first.
pub fn enable_spi(id: u32, level: bool) {
    debug_assert!((32..MAX_IRQ as u32).contains(&id), "SPI {id} outside the handler table");
    if let Some(gic) = GIC.get() {
        gic.enable(id, level);
    }
}

/// Installs the handler for interrupt `id`.
pub fn register(id: u32, handler: Handler) {
    // Release: a core that dispatches this id (Acquire) sees the handler's initialised state.
    HANDLERS[id as usize].store(handler as usize, Ordering::Release);
}

/// Interrupts taken so far on `core`.
pub fn count(core: usize) -> u64 {
    COUNT[core].load(Ordering::Relaxed)
}

/// Called by the exception handler for an IRQ: acknowledge, run the handler, complete.
pub fn dispatch(frame: &mut TrapFrame) {
    let Some(gic) = GIC.get() else { return };
    let (iar, id) = gic.acknowledge();
    if id == SPURIOUS {
        return;
    }
    COUNT[crate::percore::id()].fetch_add(1, Ordering::Relaxed);
    let raw = HANDLERS.get(id as usize).map_or(0, |h| h.load(Ordering::Acquire));
    // End of interrupt before the handler: the handler may switch to another task and not come
    // back here for a long time, and the interrupt is already acknowledged (no re-entry: IRQs stay
    // masked until the exception returns).
    gic.end(iar);
    if raw == 0 {
        log::warn!("interrupt {id} has no handler");
        return;
    }
    // SAFETY: `register` is the only writer and stores `Handler` fn pointers.
    let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(id, frame);
}
