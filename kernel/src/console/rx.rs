//! Console input: the PL011's receive interrupt moves bytes from the UART's FIFO into [`RING`] and
//! acknowledges. That is all it does (no parsing, no echo, no wake-ups): the shell task drains the
//! ring. QEMU raises the receive interrupt for every byte (its trigger level is one), the receive
//! timeout covers a FIFO left partly full on hardware.

use super::{Pl011, INT};
use crate::devicetree::DeviceIrq;
use tock_registers::interfaces::{Readable, Writeable};
use tricolor_arch::exception::TrapFrame;
use tricolor_kernel::shell::ring::ByteRing;

/// Bytes received and not yet taken by the shell (256: far more than anyone types in one of the
/// shell's polls; a full ring drops and counts the excess).
pub static RING: ByteRing<256> = ByteRing::new();

/// Routes the UART's receive interrupt to [`on_receive`]. Without a UART, an interrupt or a GIC
/// the console stays output-only (`false`).
pub fn enable(irq: Option<DeviceIrq>) -> bool {
    let (Some(regs), Some(irq), true) = (Pl011::registers(), irq, crate::irq::available()) else { return false };
    crate::irq::register(irq.id, on_receive);
    regs.icr.write(INT::RX::SET + INT::RT::SET);
    regs.imsc.write(INT::RX::SET + INT::RT::SET);
    crate::irq::enable_spi(irq.id, irq.level);
    true
}

/// The receive interrupt (core 0: the GIC routes SPIs there; handlers do not nest, so this is the
/// ring's only producer).
fn on_receive(_: u32, _: &mut TrapFrame) {
    let Some(regs) = Pl011::registers() else { return };
    while !regs.fr.is_set(super::FR::RXFE) {
        // The low 8 bits are the byte; the error flags above them are not worth a reaction here.
        let byte = regs.dr.get() as u8;
        // SAFETY: the only producer (see above); a full ring counts the byte as dropped.
        unsafe { RING.push(byte) };
    }
    // Emptying the FIFO already lowered the receive interrupt; the timeout one needs the clear.
    regs.icr.write(INT::RX::SET + INT::RT::SET);
}
