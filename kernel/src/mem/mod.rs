//! Memory management that needs no hardware: the physical page allocator ([`frames`]) and the
//! kernel heap behind `#[global_allocator]` ([`heap`]). Both are tested on the host.

pub mod frames;
pub mod heap;

/// The page size everything here works in (4 KiB granule).
pub const PAGE_SIZE: usize = 4096;

/// Rounds `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Rounds `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: usize, align: usize) -> usize {
    x & !(align - 1)
}
