//! Size classes: small objects are rounded up to one of these sizes and live in one-page spans of
//! that class; anything bigger gets a large span of its own.

/// The GC heap's page (Go's `pageSize`, 8 KiB): spans are whole heap pages, and a heap-page-aligned
/// heap keeps every span 8 KiB aligned, which also satisfies the 4 KiB DMA alignment pinned
/// buffers need. Not the MMU's page (`tricolor_abi::PAGE_SIZE`, 4 KiB): a heap page is two frames.
pub const HEAP_PAGE_SIZE: usize = 8192;

/// Object sizes (header included) of the small classes, in bytes. Every size is a multiple of 16
/// so objects stay 16-byte aligned.
pub const CLASS_SIZES: [usize; 16] = [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096];

/// Number of small size classes.
pub const NUM_CLASSES: usize = CLASS_SIZES.len();

/// Largest small object; bigger ones get a large span.
pub const MAX_SMALL_SIZE: usize = CLASS_SIZES[NUM_CLASSES - 1];

/// Most objects in a one-page span (smallest class); sizes the per-span bitmaps.
pub const MAX_OBJECTS_PER_SPAN: usize = HEAP_PAGE_SIZE / CLASS_SIZES[0];

/// Class of every size in 16-byte steps up to [`MAX_SMALL_SIZE`]: entry `k` serves sizes
/// `16 * (k - 1) + 1 ..= 16 * k` (Go's `size_to_class8`), so the allocation path looks a class up
/// with one load instead of a search.
const CLASS_OF_16: [u8; MAX_SMALL_SIZE / 16 + 1] = {
    let mut table = [0u8; MAX_SMALL_SIZE / 16 + 1];
    let (mut k, mut class) = (0, 0);
    while k < table.len() {
        while CLASS_SIZES[class] < k * 16 {
            class += 1;
        }
        table[k] = class as u8;
        k += 1;
    }
    table
};

/// The class for an object of `size` bytes, or `None` if it needs a large span.
#[inline]
pub const fn class_for(size: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE {
        return None;
    }
    Some(CLASS_OF_16[size.div_ceil(16)] as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_and_stop_at_the_largest() {
        assert_eq!(class_for(1), Some(0));
        assert_eq!(class_for(16), Some(0));
        assert_eq!(class_for(17), Some(1));
        assert_eq!(class_for(4096), Some(NUM_CLASSES - 1));
        assert_eq!(class_for(4097), None);
        assert!(CLASS_SIZES.windows(2).all(|w| w[0] < w[1]));
        assert!(CLASS_SIZES.iter().all(|c| c % 16 == 0));
        // The table agrees with a search at every size.
        for size in 0..=MAX_SMALL_SIZE + 1 {
            assert_eq!(class_for(size), CLASS_SIZES.iter().position(|&c| c >= size), "size {size}");
        }
    }
}
