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
    regs.imsc.write(INT::RX::SET + INT::RT::SET);
    // What was typed during boot: its interrupt was raised with the first byte and is cleared
    // here, so the bytes are taken now (the interrupt is not routed yet: no handler runs
    // meanwhile, this is the only producer); the next byte raises a fresh one.
    take_received(regs);
    crate::irq::enable_spi(irq.id, irq.level);
    true
}

/// The receive interrupt (core 0: the GIC routes SPIs there; handlers do not nest, so this is the
/// ring's only producer).
///
/// The clear comes first, then the FIFO is emptied: a byte that arrives after the last look at
/// the FIFO then raises an interrupt that nothing clears, and is taken by the next call. (In the
/// other order a byte arriving between the last look and the clear had its interrupt cleared
/// and stayed in the FIFO; QEMU's PL011 raises the receive interrupt only when its FIFO goes
/// from empty to one byte, so no later byte raised one either and the console went deaf. The
/// `console-typing` QEMU case types long lines to catch it.) Reading the FIFO empty lowers
/// both interrupts by itself (PL011 TRM, UARTRXINTR and UARTRTINTR).
fn on_receive(_: u32, _: &mut TrapFrame) {
    if let Some(regs) = Pl011::registers() {
        take_received(regs);
    }
}

/// Clears the receive interrupts, then moves the FIFO's bytes into [`RING`] (see [`on_receive`]
/// for why in this order). The caller is the ring's only producer.
fn take_received(regs: &super::Pl011Registers) {
    // No barrier between the clear and the reads: Device-nGnRE accesses to one peripheral take
    // effect in program order (Arm ARM B2.8.2), and the volatile accesses keep the compiler's.
    regs.icr.write(INT::RX::SET + INT::RT::SET);
    while !regs.fr.is_set(super::FR::RXFE) {
        // The low 8 bits are the byte; the error flags above them are not worth a reaction here.
        let byte = regs.dr.get() as u8;
        // SAFETY: the only producer (see above); a full ring counts the byte as dropped.
        unsafe { RING.push(byte) };
    }
}
