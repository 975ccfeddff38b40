//! Turning the MMU on and keeping the TLB coherent with the tables in `crate::pagetable`.
//!
//! MAIR_EL1 attribute 0 is Normal write-back RAM and attribute 1 Device-nGnRE, matching
//! `pagetable::MemoryKind`. Only TTBR0_EL1 is used (identity map plus the task-stack arena);
//! TTBR1 walks are disabled.

use crate::pagetable::VA_BITS;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL1, SCTLR_EL1, TCR_EL1, TTBR0_EL1};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

/// Attr0 = 0xff: Normal, inner and outer write-back, read/write-allocate, non-transient.
/// Attr1 = 0x04: Device-nGnRE.
const MAIR: u64 = 0xff | (0x04 << 8);

/// Installs `root` as the translation table and enables the MMU and caches on this core.
/// Every core calls this with the same root during bring-up.
///
/// # Safety
/// `root` must hold tables that identity-map the code, stack and data this core is using at the
/// moment of the switch, or the next instruction fetch faults.
pub unsafe fn enable(root: usize) {
    MAIR_EL1.set(MAIR);
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(64 - VA_BITS as u64)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(pa_range),
    );
    TTBR0_EL1.set_baddr(root as u64);
    // The table writes (made with the MMU off) must be complete before the walker may read them
    // (DSB), stale translations from before reset must go (TLBI), and the new configuration must be
    // in effect before the SCTLR write (ISB).
    barrier::dsb(barrier::ISH);
    // SAFETY: invalidating all EL1 TLB entries of this core is always allowed.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable);
    // ISB: instructions after this point are fetched and executed with translation on.
    barrier::isb(barrier::SY);
}

/// True once this core runs with translation on.
pub fn is_enabled() -> bool {
    SCTLR_EL1.is_set(SCTLR_EL1::M)
}

/// After making an invalid entry valid (stack growth): the new descriptor must be visible to this
/// core's table walker before the faulting access is retried. No TLBI is needed because an invalid
/// entry is never cached in the TLB.
pub fn publish_new_mapping() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// After invalidating many valid entries: remove every EL1 translation from every core's TLB
/// (inner-shareable broadcast) and wait for that to finish before continuing. One broadcast for a
/// whole range: under QEMU's TCG each broadcast TLBI ends the vCPU's turn, and a range invalidated
/// a page at a time with a lock held took one round of every vCPU's turns per page.
pub fn invalidate_all() {
    // DSB ISHST: the invalid descriptors are visible to every core's table walker before the
    // invalidation (ARM ARM D8.13, "breaking" a translation: store, DSB, TLBI, DSB).
    barrier::dsb(barrier::ISHST);
    // SAFETY: invalidating all EL1 translations, broadcast to the inner-shareable domain; it only
    // drops cached translations.
    unsafe { core::arch::asm!("tlbi vmalle1is", options(nostack, preserves_flags)) };
    // DSB ISH: the invalidation is complete on every core before anything after it (freeing the
    // frames); ISB: this core's later instructions are fetched with it in effect.
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}

/// After invalidating a valid entry: remove the translation from every core's TLB (inner-shareable
/// broadcast) and wait for that to finish before continuing.
pub fn invalidate_page(va: usize) {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB invalidation by VA for all ASIDs, broadcast to the inner-shareable domain; it only
    // drops cached translations.
    unsafe { core::arch::asm!("tlbi vaae1is, {}", in(reg) (va >> 12) as u64, options(nostack, preserves_flags)) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}
