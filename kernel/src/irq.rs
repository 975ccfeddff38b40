//! Interrupts: the interrupt controller found in the device tree (a GICv2, or a GICv3 with its
//! redistributors), a handler table by interrupt id, and the dispatch the exception handler calls
//! for IRQs. The rest of the kernel sees one interface whichever GIC it is: [`send_to_others`],
//! [`send_to`], [`enable_spi`], [`register`], [`dispatch`]. Handlers run on the exception stack
//! with IRQs masked and must not allocate (see `tricolor_kernel::mem::heap`).

use crate::devicetree::{Gic as GicNode, Machine, NoGic};
use crate::percore;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use spin::Once;
use tricolor_abi::MAX_CORES;
use tricolor_arch::exception::TrapFrame;
use tricolor_arch::gic::{Gic as GicV2, SPURIOUS};
use tricolor_arch::gic_v3::{GicV3, InitError};

/// An interrupt handler: the interrupt id and the interrupted context (which it may replace).
pub type Handler = fn(u32, &mut TrapFrame);

const MAX_IRQ: usize = 128;
static HANDLERS: [AtomicUsize; MAX_IRQ] = [const { AtomicUsize::new(0) }; MAX_IRQ];
static GIC: Once<Controller> = Once::new();
static TIMER_IRQ: AtomicUsize = AtomicUsize::new(30);
/// Interrupts taken per core (for tests and statistics).
static COUNT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// How an SGI reaches each core: its GICv2 CPU-interface bit (GICD_ITARGETSR0 read on the core
/// itself), or its MPIDR for GICv3's affinity-addressed SGIs. Written by the core in
/// [`init_this_core`] before it is marked online; read only for online cores.
static V2_TARGET: [AtomicU8; MAX_CORES] = [const { AtomicU8::new(0) }; MAX_CORES];
static MPIDR: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// SGI used to ask other cores to stop at a safe point (stop-the-world).
pub const SGI_STOP: u32 = 1;
/// SGI used to nudge a core (wake from WFI, run its mailbox).
pub const SGI_WAKE: u32 = 2;
/// SGI reserved for kernel tests.
pub const SGI_TEST: u32 = 3;
/// SGI asking a core to run the collector's requests at its next safe point (`gc::safepoint`).
pub const SGI_GC: u32 = 4;

/// The SGIs every core enables.
const SGIS: [u32; 4] = [SGI_STOP, SGI_WAKE, SGI_TEST, SGI_GC];

/// The interrupt controller: one of the two GIC generations.
// One instance, in a static: the GICv3's per-core table making its variant larger costs nothing.
#[allow(clippy::large_enum_variant)]
enum Controller {
    V2(GicV2),
    V3(GicV3),
}

/// Why the machine has no usable interrupt controller (one line on the console).
#[derive(Clone, Copy, Debug)]
pub enum NoInterrupts {
    Absent,
    Unusable { compatible: &'static str, why: &'static str },
    Unmapped { which: &'static str },
    Distributor(InitError),
    BootCore(InitError),
}

impl core::fmt::Display for NoInterrupts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Absent => write!(f, "no interrupt controller in the device tree"),
            Self::Unusable { compatible, why } => {
                write!(f, "interrupt controller \"{compatible}\" in the device tree: {why}")
            }
            Self::Unmapped { which } => write!(f, "the {which} registers lie outside the mapped device window"),
            Self::Distributor(e) => write!(f, "GICv3 distributor: {e}"),
            Self::BootCore(e) => write!(f, "GICv3 on the boot core: {e}"),
        }
    }
}

/// GIC registers must lie in the device window `vm` maps (the first GiB of `virt`'s map).
fn mapped(base: u64, size: u64) -> bool {
    base.checked_add(size).is_some_and(|end| crate::vm::is_device(base as usize, end as usize))
}

/// Sets up the interrupt controller and the boot core's part of it. `Err` says why there is no
/// usable one: the kernel then runs without interrupts, on the boot core only (stop-the-world,
/// the collector's requests and timer preemption all need SGIs and the timer's PPI).
pub fn init(machine: &Machine) -> Result<(), NoInterrupts> {
    let node = match machine.gic {
        Ok(node) => node,
        Err(NoGic::Absent) => return Err(NoInterrupts::Absent),
        Err(NoGic::Unusable { compatible, why }) => return Err(NoInterrupts::Unusable { compatible, why }),
    };
    let controller = match node {
        GicNode::V2 { distributor, cpu_interface } => {
            if !mapped(distributor, 0x1000) || !mapped(cpu_interface, 0x2000) {
                return Err(NoInterrupts::Unmapped { which: "GICv2" });
            }
            // SAFETY: the device tree names these as the GICv2 register frames; they lie in the
            // device window vm.rs identity-maps as Device-nGnRE for the whole run (checked above).
            let gic = unsafe { GicV2::new(distributor as usize, cpu_interface as usize) };
            gic.init_distributor();
            Controller::V2(gic)
        }
        GicNode::V3 { distributor, stride, .. } => {
            let regions = node.redistributor_regions();
            if !mapped(distributor.base, distributor.size) || !regions.iter().all(|r| mapped(r.base, r.size)) {
                return Err(NoInterrupts::Unmapped { which: "GICv3" });
            }
            let mut kept = [(0, 0); tricolor_arch::gic_v3::MAX_REGIONS];
            for (slot, r) in kept.iter_mut().zip(regions) {
                *slot = (r.base, r.size);
            }
            // SAFETY: the device tree names the distributor and the redistributor regions; all
            // lie in the device window vm.rs identity-maps as Device-nGnRE (checked above).
            let gic = unsafe { GicV3::new(distributor.base as usize, &kept[..regions.len()], stride) };
            gic.init_distributor(tricolor_arch::cpu::mpidr()).map_err(NoInterrupts::Distributor)?;
            Controller::V3(gic)
        }
    };
    TIMER_IRQ.store(machine.timer_irq as usize, Ordering::Relaxed);
    // The boot core's part first: a controller the boot core cannot use is no controller.
    init_core(&controller).map_err(NoInterrupts::BootCore)?;
    // A wake-up needs no handling: taking the interrupt is what ends the target's `wfi`.
    register(SGI_WAKE, |_, _| {});
    GIC.call_once(|| controller);
    Ok(())
}

/// The name of the controller in use, for the boot log.
pub fn describe() -> &'static str {
    match GIC.get() {
        Some(Controller::V2(_)) => "GICv2",
        Some(Controller::V3(_)) => "GICv3",
        None => "none",
    }
}

/// Enables the calling core's part of the controller (GICv2: its CPU interface; GICv3: its
/// redistributor, found by MPIDR, and its system-register CPU interface) and its per-core
/// interrupts (timer, SGIs). `Err`: this core cannot take interrupts, so it must not run.
pub fn init_this_core() -> Result<(), InitError> {
    GIC.get().map_or(Ok(()), init_core)
}

fn init_core(controller: &Controller) -> Result<(), InitError> {
    let core = percore::id();
    let mpidr = tricolor_arch::cpu::mpidr();
    MPIDR[core].store(mpidr, Ordering::Relaxed);
    match controller {
        Controller::V2(gic) => {
            gic.init_cpu_interface();
            V2_TARGET[core].store(gic.this_cpu_target().unwrap_or(1 << (core % 8)), Ordering::Relaxed);
        }
        Controller::V3(gic) => {
            gic.init_cpu(core, mpidr)?;
        }
    }
    for (id, level) in [(timer_irq(), true)].into_iter().chain(SGIS.map(|sgi| (sgi, false))) {
        // SGIs and PPIs: the calling core's own (GICv2's banked registers, GICv3's redistributor).
        match controller {
            Controller::V2(gic) => gic.enable(id, level),
            Controller::V3(gic) => gic.enable(core, id, level),
        }
    }
    Ok(())
}

/// The timer's interrupt id.
pub fn timer_irq() -> u32 {
    TIMER_IRQ.load(Ordering::Relaxed) as u32
}

/// Whether the machine has a working interrupt controller.
pub fn available() -> bool {
    GIC.get().is_some()
}

/// Enables shared peripheral interrupt `id` (routed to core 0), level-sensitive or edge-triggered
/// as the device tree says. Register its handler first.
pub fn enable_spi(id: u32, level: bool) {
    debug_assert!((32..MAX_IRQ as u32).contains(&id), "SPI {id} outside the handler table");
    match GIC.get() {
        Some(Controller::V2(gic)) => gic.enable(id, level),
        Some(Controller::V3(gic)) => gic.enable(0, id, level),
        None => {}
    }
}

/// Sends SGI `sgi` to every core but the caller. The controller's barrier orders the caller's
/// earlier stores (the request the SGI announces) before the interrupt.
pub fn send_to_others(sgi: u32) {
    match GIC.get() {
        Some(Controller::V2(gic)) => gic.send_sgi_to_others(sgi),
        Some(Controller::V3(gic)) => gic.send_sgi_to_others(sgi),
        None => {}
    }
}

/// Sends SGI `sgi` to online core `core` (logical index).
pub fn send_to(core: usize, sgi: u32) {
    match GIC.get() {
        Some(Controller::V2(gic)) => gic.send_sgi(sgi, V2_TARGET[core].load(Ordering::Relaxed)),
        Some(Controller::V3(gic)) => gic.send_sgi_to(sgi, MPIDR[core].load(Ordering::Relaxed)),
        None => {}
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
    let (iar, id) = match gic {
        Controller::V2(gic) => gic.acknowledge(),
        Controller::V3(gic) => gic.acknowledge(),
    };
    // 1020..=1023 are special ids (GICv3: 1020-1022 only at EL3 or with two security states;
    // 1023 spurious): nothing to handle or complete.
    if (1020..=SPURIOUS).contains(&id) {
        return;
    }
    COUNT[percore::id()].fetch_add(1, Ordering::Relaxed);
    let raw = HANDLERS.get(id as usize).map_or(0, |h| h.load(Ordering::Acquire));
    // End of interrupt before the handler: the handler may switch to another task and not come
    // back here for a long time, and the interrupt is already acknowledged (no re-entry: IRQs stay
    // masked until the exception returns).
    match gic {
        Controller::V2(gic) => gic.end(iar),
        Controller::V3(gic) => gic.end(iar),
    }
    if raw == 0 {
        log::warn!("interrupt {id} has no handler");
        return;
    }
    // SAFETY: `register` is the only writer and stores `Handler` fn pointers.
    let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(id, frame);
}
