//! How the driver waits for a command (`virtio.complete=`): spinning on the used ring, or
//! sleeping in `wfi` until the device's interrupt (a GIC SPI, routed to core 0).
//!
//! The driver calls the idle hook between empty polls and counts each call against its spin
//! budget, so both ways are bounded: a lost interrupt costs one timer period, never a hang.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tricolor_arch::exception::TrapFrame;
use tricolor_arch::irqmask::IrqGuard;
use tricolor_arch::{cpu, timer};
use tricolor_virtio::transport::mmio::acknowledge_interrupt;
use tricolor_virtio::transport::mmio_regs::VolatileRegisters;

/// Register block of the device whose interrupt is enabled (0: none).
static IRQ_DEVICE: AtomicUsize = AtomicUsize::new(0);
/// Set by the handler, consumed by the idle hook.
static IRQ_SEEN: AtomicBool = AtomicBool::new(false);
/// Device interrupts taken.
static IRQ_COUNT: AtomicU64 = AtomicU64::new(0);

/// Polling: the spin hint. `relax` (`yield`), not `spin_loop` (`isb`): under `-icount` QEMU
/// only switches vCPUs on `yield`, and the device model may need another thread to run.
pub fn poll_idle() {
    cpu::relax();
}

/// The upper bound on one `wfi`: if the interrupt was lost, the timer wakes the core.
const WFI_BOUND_US: u64 = 1000;

/// Interrupt completion: sleep until the device's interrupt has been handled.
pub fn interrupt_idle() {
    // IRQs masked between the flag check and `wfi`: an interrupt arriving in between stays
    // pending and makes `wfi` return at once, instead of being handled (flag set) just before
    // the core goes to sleep waiting for it.
    let _masked = IrqGuard::mask();
    // Acquire pairs with the handler's Release: the device's used-ring writes the handler
    // observed are visible to the poll that follows (the poll has its own Acquire as well).
    if !IRQ_SEEN.swap(false, Ordering::Acquire) {
        timer::arm(cpu::counter_frequency() * WFI_BOUND_US / 1_000_000);
        cpu::wait_for_interrupt();
    }
    // Take the pending interrupt here, whatever the caller's mask: a window inside the masked
    // section (the ISB makes the unmask effective before the window's guard masks again), then
    // `_masked` restores the caller's mask.
    let _window = IrqGuard::unmask();
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Device interrupts taken so far.
pub fn interrupts() -> u64 {
    IRQ_COUNT.load(Ordering::Relaxed)
}

/// Makes `base`'s device interrupt `irq` wake [`interrupt_idle`].
pub fn enable(base: usize, irq: super::discovery::DeviceIrq) {
    // Release: the handler (Acquire) sees the base before the interrupt can fire.
    IRQ_DEVICE.store(base, Ordering::Release);
    crate::irq::register(irq.id, on_interrupt);
    crate::irq::enable_spi(irq.id, irq.level);
}

/// The GPU's interrupt: acknowledge the causes at the device (a level interrupt would otherwise
/// stay asserted) and tell the idle hook.
fn on_interrupt(_: u32, _: &mut TrapFrame) {
    let Some(base) = NonNull::new(IRQ_DEVICE.load(Ordering::Acquire) as *mut u8) else { return };
    // SAFETY: `enable` stored the GPU's virtio-mmio block, identity-mapped as device memory for
    // the whole run; InterruptStatus/InterruptAck are touched by nothing but this handler.
    let regs = unsafe { VolatileRegisters::new(base) };
    acknowledge_interrupt(&regs);
    IRQ_COUNT.fetch_add(1, Ordering::Relaxed);
    // Release: pairs with the idle hook's Acquire swap.
    IRQ_SEEN.store(true, Ordering::Release);
}
