//! The kernel's memory. Here, in the library, what needs no hardware: the physical page allocator
//! ([`frames`]) and the kernel heap behind `#[global_allocator]` ([`heap`]), both tested on the
//! host, in pages of `tricolor_abi::PAGE_SIZE`. Beside them, `ram.rs` is the binary's half: it
//! builds both over the RAM the device tree reports and installs the global allocator (the binary
//! compiles it as its `memory` module; it needs the binary's lock and device tree).

pub mod frames;
pub mod heap;

/// Rounds `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: usize, align: usize) -> usize {
    x & !(align - 1)
}
