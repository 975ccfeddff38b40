//! The stacks: each core's boot, system and exception stacks from linker.ld (slot layout
//! `[guard][boot][guard][system][guard][exception]`, every guard one unmapped page), task stacks
//! (see `tasks`), and the registry the fault handler consults to name the stack an address hits.

use tricolor_abi::PAGE_SIZE;
use tricolor_runtime::stack::registry::{OverflowReport, StackRegistry};
use tricolor_runtime::stack::{Stack, StackKind};

unsafe extern "C" {
    static __stacks_start: u8;
    static __stack_slot_size: u8;
    static __boot_stack_size: u8;
    static __system_stack_size: u8;
    static __exception_stack_size: u8;
    static __max_cores: u8;
}

/// Every stack the kernel knows: 3 per core plus tasks.
pub static STACKS: StackRegistry<512> = StackRegistry::new();

// The per-core stacks take 3 * MAX_CORES entries at boot (48 at 16 cores); the rest is for tasks.
const _: () = assert!(3 * tricolor_abi::MAX_CORES <= 512 / 4, "STACKS: room for every core's stacks and tasks");

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

/// The boot, system and exception stacks of `core`, lowest first.
pub fn of_core(core: usize) -> [Stack; 3] {
    assert!(core < max_cores(), "no stack slot for core {core}");
    let slot = symbol_value!(__stacks_start) + core * symbol_value!(__stack_slot_size);
    let boot_lo = slot + PAGE_SIZE;
    let boot_hi = boot_lo + symbol_value!(__boot_stack_size);
    let system_lo = boot_hi + PAGE_SIZE;
    let system_hi = system_lo + symbol_value!(__system_stack_size);
    let exception_lo = system_hi + PAGE_SIZE;
    let exception_hi = exception_lo + symbol_value!(__exception_stack_size);
    [
        Stack::new(StackKind::Boot, boot_lo, boot_hi, PAGE_SIZE, Some(core), "boot"),
        Stack::new(StackKind::System, system_lo, system_hi, PAGE_SIZE, Some(core), "system"),
        Stack::new(StackKind::Exception, exception_lo, exception_hi, PAGE_SIZE, Some(core), "exception"),
    ]
}

/// Every core's linker-provided stacks.
pub fn all_core_stacks() -> impl Iterator<Item = Stack> {
    (0..max_cores()).flat_map(of_core)
}

/// Adds a stack to the registry (fault reports name it from then on).
pub fn register(stack: &Stack) -> tricolor_runtime::stack::registry::StackSlot {
    STACKS.register(stack).expect("stack registry full: raise STACKS' capacity")
}

/// [`register`] for stacks created at run time: a full registry is an error, not a panic.
pub fn try_register(stack: &Stack) -> Option<tricolor_runtime::stack::registry::StackSlot> {
    STACKS.register(stack).ok()
}

/// If `far` lies in a registered stack's guard, the overflow report for it.
pub fn overflow_at(core: usize, far: usize) -> Option<OverflowReport> {
    STACKS.overflow_at(core, far)
}
