//! The per-core stacks linker.ld lays out: each core's slot is
//! `[guard][boot][guard][system][guard][exception]`, every guard one unmapped page.

use tricolor_kernel::mem::PAGE_SIZE;

unsafe extern "C" {
    static __stacks_start: u8;
    static __stack_slot_size: u8;
    static __boot_stack_size: u8;
    static __system_stack_size: u8;
    static __exception_stack_size: u8;
    static __max_cores: u8;
}

/// Which of a core's linker-provided stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreStackKind {
    /// The stack the core boots on; it stays the core's main (idle/scheduler) stack.
    Boot,
    /// The stack `systemstack` switches to (write-barrier flushes run here).
    System,
    /// SP_EL1: exception entry and fault reports.
    Exception,
}

/// One stack: usable bytes `[lo, hi)`, with the guard page `[lo - PAGE_SIZE, lo)` unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreStack {
    pub kind: CoreStackKind,
    pub core: usize,
    pub lo: usize,
    pub hi: usize,
}

impl CoreStack {
    /// The unmapped page under the stack.
    pub fn guard(&self) -> usize {
        self.lo - PAGE_SIZE
    }
}

/// A linker symbol's value (its address: these symbols are sizes, not objects).
macro_rules! symbol_value {
    ($sym:ident) => {
        &raw const $sym as usize
    };
}

/// How many stack slots linker.ld reserved.
pub fn max_cores() -> usize {
    symbol_value!(__max_cores)
}

/// The three stacks of `core`, lowest first.
pub fn of_core(core: usize) -> [CoreStack; 3] {
    assert!(core < max_cores(), "no stack slot for core {core}");
    let slot = symbol_value!(__stacks_start) + core * symbol_value!(__stack_slot_size);
    let boot_lo = slot + PAGE_SIZE;
    let boot_hi = boot_lo + symbol_value!(__boot_stack_size);
    let system_lo = boot_hi + PAGE_SIZE;
    let system_hi = system_lo + symbol_value!(__system_stack_size);
    let exception_lo = system_hi + PAGE_SIZE;
    let exception_hi = exception_lo + symbol_value!(__exception_stack_size);
    [
        CoreStack { kind: CoreStackKind::Boot, core, lo: boot_lo, hi: boot_hi },
        CoreStack { kind: CoreStackKind::System, core, lo: system_lo, hi: system_hi },
        CoreStack { kind: CoreStackKind::Exception, core, lo: exception_lo, hi: exception_hi },
    ]
}

/// Every core's stacks.
pub fn all() -> impl Iterator<Item = CoreStack> {
    (0..max_cores()).flat_map(of_core)
}
