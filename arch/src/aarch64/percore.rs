//! Orientation: TPIDR_EL1, this core's pointer to its per-core block. This module is the only code
//! that reads or writes the register.
//!
//! The arch crate does not know what the block holds. The kernel lays it out
//! (`kernel/src/percore.rs`: a `#[repr(C)]` block whose first field is the runtime's `P`, so the
//! runtime's `this_p()` reads the same pointer as `&P`, and whose collector state sits at the fixed
//! offset `PERCORE_GC_OFFSET`, so assembly reaches it as `mrs xN, tpidr_el1` plus a constant).
//!
//! The pointer's provenance is exposed when it is installed and recovered when it is read
//! ([`core::ptr::with_exposed_provenance`]), so a reader may use the whole block through it, not
//! only its first field.

/// Makes `block` this core's per-core block (writes TPIDR_EL1).
///
/// # Safety
/// `block` must point to a block that lives for the rest of the run, is initialised as far as the
/// readers of [`block`] on this core will read it (the kernel's layout: the runtime's `P` at offset
/// 0, initialised before this call), and is this core's own. Call it once per core, before anything
/// on the core reads [`block`]; nothing writes TPIDR_EL1 afterwards.
pub unsafe fn install_block(block: *const u8) {
    let raw = block.expose_provenance() as u64;
    // SAFETY: writing TPIDR_EL1 at EL1 has no effect but the register's value (the kernel uses no
    // EL0, which could read TPIDR_EL1 only through TPIDRRO_EL0 anyway). Not `nomem`: a compiler
    // barrier, so the block's initialisation is not moved past its publication to this core's
    // readers (interrupt handlers included).
    unsafe { core::arch::asm!("msr tpidr_el1, {}", in(reg) raw, options(nostack, preserves_flags)) };
}

/// This core's per-core block, or null before [`install_block`] ran on this core.
#[inline(always)]
pub fn block() -> *const u8 {
    let raw: usize;
    // SAFETY: reading TPIDR_EL1 has no side effect. `nomem`: the read touches no memory, and
    // nothing a caller does with the block must be ordered against it (the block was installed
    // before anything on this core reads it, and it never changes). Not `pure`: a task that yields
    // may resume on another core, so a read after a switch must not be merged with one before it.
    unsafe { core::arch::asm!("mrs {}, tpidr_el1", out(reg) raw, options(nomem, nostack, preserves_flags)) };
    core::ptr::with_exposed_provenance(raw)
}
