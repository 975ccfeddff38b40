//! The EL1 physical generic timer (CNTP): one per core, delivered as a PPI.

use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0};
use tock_registers::interfaces::Writeable;

/// Fires the timer `ticks` counter ticks from now (and enables it, interrupt unmasked).
pub fn arm(ticks: u64) {
    CNTP_TVAL_EL0.set(ticks.min(u32::MAX as u64));
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}

/// Arms the timer to fire when the counter reaches `cval` (an absolute deadline).
pub fn arm_at(cval: u64) {
    CNTP_CVAL_EL0.set(cval);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}

/// Stops the timer.
pub fn disarm() {
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR);
}
