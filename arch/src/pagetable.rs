//! aarch64 stage-1 translation tables, 4 KiB granule, 39-bit virtual addresses (three levels:
//! L1 = 1 GiB blocks, L2 = 2 MiB blocks, L3 = 4 KiB pages). Pure logic over memory the caller
//! provides, so it is tested on the host; `aarch64::mmu` installs the tables and does the TLB
//! maintenance.
//!
//! Tables are addressed through their physical address, so the kernel keeps them in identity-mapped
//! RAM.

// Bytes per page and per table: the 4 KiB granule.
use tricolor_abi::PAGE_SIZE;
const _: () = assert!(PAGE_SIZE == 4096, "these tables (and TCR_EL1.TG0 in aarch64::mmu) are for the 4 KiB granule");
/// Size of the virtual address space (TCR_EL1.T0SZ = 64 - VA_BITS).
pub const VA_BITS: u32 = 39;
const ENTRIES: usize = 512;
const L2_BLOCK: usize = 2 << 20;
const L1_BLOCK: usize = 1 << 30;

/// The memory type of a mapping (an index into MAIR_EL1, see `aarch64::mmu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Normal, inner/outer write-back cacheable, inner shareable: RAM.
    Normal = 0,
    /// Device-nGnRE: MMIO (no gathering or reordering, early write acknowledgement allowed).
    Device = 1,
}

/// How a range is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub kind: MemoryKind,
    pub writable: bool,
    pub executable: bool,
}

impl Attributes {
    /// Read-write, never-executable RAM (data, stacks, heaps).
    pub const RAM_DATA: Self = Self { kind: MemoryKind::Normal, writable: true, executable: false };
    /// Read-write-execute RAM (the kernel image: W^X for the image is not done yet).
    pub const RAM_RWX: Self = Self { kind: MemoryKind::Normal, writable: true, executable: true };
    /// Device MMIO.
    pub const DEVICE: Self = Self { kind: MemoryKind::Device, writable: true, executable: false };
}

const VALID: u64 = 1 << 0;
/// At L1/L2: bit 1 set = table, clear = block. At L3: must be set for a page.
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;
const ATTR_MASK: u64 = !ADDRESS_MASK & !(VALID | TABLE_OR_PAGE);

fn leaf_bits(attrs: Attributes) -> u64 {
    let mut bits = ACCESS_FLAG | UXN | ((attrs.kind as u64) << 2);
    if attrs.kind == MemoryKind::Normal {
        bits |= SH_INNER;
    }
    if !attrs.writable {
        bits |= AP_READ_ONLY;
    }
    if !attrs.executable {
        bits |= PXN;
    }
    bits
}

fn attributes_of(descriptor: u64) -> Attributes {
    Attributes {
        kind: if (descriptor >> 2) & 0b111 == 1 { MemoryKind::Device } else { MemoryKind::Normal },
        writable: descriptor & AP_READ_ONLY == 0,
        executable: descriptor & PXN == 0,
    }
}

/// Gives the page-table code zeroed, page-aligned tables.
pub trait TableAllocator {
    /// The physical (= accessible) address of a zeroed 4 KiB table, or None when out of memory.
    fn alloc_table(&mut self) -> Option<usize>;
}

/// Why a mapping change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Not page-aligned, or beyond the 39-bit address space.
    BadAddress(usize),
    /// The table allocator is exhausted.
    OutOfTables,
    /// `map_page` over an existing valid mapping.
    AlreadyMapped(usize),
}

/// A set of translation tables rooted at an L1 table.
pub struct PageTable {
    root: usize,
}

impl PageTable {
    /// An empty address space.
    pub fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        Ok(Self { root: alloc.alloc_table().ok_or(MapError::OutOfTables)? })
    }

    /// The L1 table's address, for TTBR0_EL1.
    pub fn root(&self) -> usize {
        self.root
    }

    fn entry(table: usize, index: usize) -> *mut u64 {
        (table + index * 8) as *mut u64
    }

    fn read(table: usize, index: usize) -> u64 {
        // SAFETY: `table` is a live, 4 KiB-aligned table owned by this PageTable (the root or one
        // reached through a valid table descriptor) and index < 512.
        unsafe { Self::entry(table, index).read_volatile() }
    }

    fn write(table: usize, index: usize, value: u64) {
        // SAFETY: as in `read`. Volatile: the hardware walker reads these words.
        unsafe { Self::entry(table, index).write_volatile(value) }
    }

    fn indices(va: usize) -> [usize; 3] {
        [(va >> 30) & 0x1ff, (va >> 21) & 0x1ff, (va >> 12) & 0x1ff]
    }

    fn check(va: usize) -> Result<(), MapError> {
        if !va.is_multiple_of(PAGE_SIZE) || va >> VA_BITS != 0 {
            return Err(MapError::BadAddress(va));
        }
        Ok(())
    }

    /// The next-level table under `table[index]`, creating it (and splitting a block into the
    /// equivalent finer mappings) if needed. `block_size` is the size a block at this level maps.
    ///
    /// Splitting a live block needs break-before-make; callers only split before the MMU is on.
    fn descend(
        table: usize,
        index: usize,
        block_size: usize,
        alloc: &mut impl TableAllocator,
    ) -> Result<usize, MapError> {
        let entry = Self::read(table, index);
        if entry & VALID != 0 && entry & TABLE_OR_PAGE != 0 {
            return Ok((entry & ADDRESS_MASK) as usize);
        }
        let next = alloc.alloc_table().ok_or(MapError::OutOfTables)?;
        if entry & VALID != 0 {
            // A block: fill the new table with the same mapping at the next level's granularity.
            let base = entry & ADDRESS_MASK;
            let attrs = entry & ATTR_MASK;
            let step = (block_size / ENTRIES) as u64;
            let kind = if step == PAGE_SIZE as u64 { VALID | TABLE_OR_PAGE } else { VALID };
            for i in 0..ENTRIES {
                Self::write(next, i, (base + i as u64 * step) | attrs | kind);
            }
        }
        Self::write(table, index, next as u64 | VALID | TABLE_OR_PAGE);
        Ok(next)
    }

    /// Maps `[va, va + len)` to `[pa, pa + len)` with the largest blocks alignment allows.
    pub fn map_range(
        &mut self,
        va: usize,
        pa: usize,
        len: usize,
        attrs: Attributes,
        alloc: &mut impl TableAllocator,
    ) -> Result<(), MapError> {
        Self::check(va)?;
        Self::check(pa)?;
        let leaf = leaf_bits(attrs);
        let mut offset = 0;
        while offset < len {
            let (v, p, left) = (va + offset, pa + offset, len - offset);
            let [i1, i2, i3] = Self::indices(v);
            let fits = |size: usize| v % size == 0 && p % size == 0 && left >= size;
            if fits(L1_BLOCK) {
                Self::write(self.root, i1, p as u64 | leaf | VALID);
                offset += L1_BLOCK;
            } else if fits(L2_BLOCK) {
                let l2 = Self::descend(self.root, i1, L1_BLOCK, alloc)?;
                Self::write(l2, i2, p as u64 | leaf | VALID);
                offset += L2_BLOCK;
            } else {
                let l2 = Self::descend(self.root, i1, L1_BLOCK, alloc)?;
                let l3 = Self::descend(l2, i2, L2_BLOCK, alloc)?;
                Self::write(l3, i3, p as u64 | leaf | VALID | TABLE_OR_PAGE);
                offset += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Creates the L2/L3 tables that would map `[va, va + len)` without mapping anything, so later
    /// `map_page` calls in the range need no table allocation (a stack-growth fault handler must
    /// not depend on an allocator the faulting code may hold).
    pub fn prepare_tables(&mut self, va: usize, len: usize, alloc: &mut impl TableAllocator) -> Result<(), MapError> {
        Self::check(va)?;
        let end = va.checked_add(len).filter(|e| e >> VA_BITS == 0).ok_or(MapError::BadAddress(va + len))?;
        let mut v = va & !(L2_BLOCK - 1);
        while v < end {
            let [i1, i2, _] = Self::indices(v);
            let l2 = Self::descend(self.root, i1, L1_BLOCK, alloc)?;
            Self::descend(l2, i2, L2_BLOCK, alloc)?;
            v += L2_BLOCK;
        }
        Ok(())
    }

    /// Maps one 4 KiB page; refuses to replace an existing mapping (stack growth must never alias).
    pub fn map_page(
        &mut self,
        va: usize,
        pa: usize,
        attrs: Attributes,
        alloc: &mut impl TableAllocator,
    ) -> Result<(), MapError> {
        if self.translate(va).is_some() {
            return Err(MapError::AlreadyMapped(va));
        }
        self.map_range(va, pa, PAGE_SIZE, attrs, alloc)
    }

    /// Removes the mapping of one 4 KiB page (splitting a block around it). The caller invalidates
    /// the TLB if the MMU is on.
    pub fn unmap_page(&mut self, va: usize, alloc: &mut impl TableAllocator) -> Result<(), MapError> {
        Self::check(va)?;
        let [i1, i2, i3] = Self::indices(va);
        if Self::read(self.root, i1) & VALID == 0 {
            return Ok(());
        }
        let l2 = Self::descend(self.root, i1, L1_BLOCK, alloc)?;
        if Self::read(l2, i2) & VALID == 0 {
            return Ok(());
        }
        let l3 = Self::descend(l2, i2, L2_BLOCK, alloc)?;
        Self::write(l3, i3, 0);
        Ok(())
    }

    /// Walks the tables like the MMU would: the physical address and attributes `va` maps to.
    pub fn translate(&self, va: usize) -> Option<(usize, Attributes)> {
        if va >> VA_BITS != 0 {
            return None;
        }
        let [i1, i2, i3] = Self::indices(va);
        let mut table = self.root;
        for (level, index) in [i1, i2, i3].into_iter().enumerate() {
            let entry = Self::read(table, index);
            if entry & VALID == 0 {
                return None;
            }
            let is_leaf = level == 2 || entry & TABLE_OR_PAGE == 0;
            if level == 2 && entry & TABLE_OR_PAGE == 0 {
                return None; // reserved encoding at L3
            }
            if is_leaf {
                let size = [L1_BLOCK, L2_BLOCK, PAGE_SIZE][level];
                return Some(((entry & ADDRESS_MASK) as usize + va % size, attributes_of(entry)));
            }
            table = (entry & ADDRESS_MASK) as usize;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables from a leaked, page-aligned host arena.
    struct Arena {
        next: usize,
        end: usize,
    }

    impl Arena {
        fn new(tables: usize) -> Self {
            let layout = std::alloc::Layout::from_size_align(tables * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: non-zero size; leaked so tables outlive the test's PageTable.
            let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
            Self { next: base, end: base + tables * PAGE_SIZE }
        }
    }

    impl TableAllocator for Arena {
        fn alloc_table(&mut self) -> Option<usize> {
            (self.next < self.end).then(|| {
                self.next += PAGE_SIZE;
                self.next - PAGE_SIZE
            })
        }
    }

    #[test]
    fn large_aligned_ranges_use_blocks() {
        let mut arena = Arena::new(8);
        let mut pt = PageTable::new(&mut arena).unwrap();
        pt.map_range(0, 0, 1 << 30, Attributes::DEVICE, &mut arena).unwrap();
        pt.map_range(0x4000_0000, 0x4000_0000, 1 << 30, Attributes::RAM_RWX, &mut arena).unwrap();
        assert_eq!(arena.end - arena.next, 7 * PAGE_SIZE, "two 1 GiB blocks need no extra table");
        assert_eq!(pt.translate(0x0900_0000), Some((0x0900_0000, Attributes::DEVICE)));
        assert_eq!(pt.translate(0x4123_4567 & !0xfff), Some((0x4123_4000, Attributes::RAM_RWX)));
        assert_eq!(pt.translate(0x8000_0000), None);
    }

    #[test]
    fn unmapping_a_guard_page_splits_only_around_it() {
        let mut arena = Arena::new(8);
        let mut pt = PageTable::new(&mut arena).unwrap();
        pt.map_range(0x4000_0000, 0x4000_0000, 1 << 30, Attributes::RAM_DATA, &mut arena).unwrap();
        let guard = 0x4030_5000;
        pt.unmap_page(guard, &mut arena).unwrap();
        assert_eq!(pt.translate(guard), None);
        assert_eq!(pt.translate(guard - PAGE_SIZE), Some((guard - PAGE_SIZE, Attributes::RAM_DATA)));
        assert_eq!(pt.translate(guard + PAGE_SIZE), Some((guard + PAGE_SIZE, Attributes::RAM_DATA)));
        // Neighbouring 2 MiB blocks and the rest of the GiB are unchanged.
        assert_eq!(pt.translate(0x4060_0000), Some((0x4060_0000, Attributes::RAM_DATA)));
        assert_eq!(pt.translate(0x7fff_f000), Some((0x7fff_f000, Attributes::RAM_DATA)));
        assert_eq!(arena.end - arena.next, 5 * PAGE_SIZE, "one L2 and one L3 table were added");
    }

    #[test]
    fn pages_map_once_and_translate_to_their_frame() {
        let mut arena = Arena::new(8);
        let mut pt = PageTable::new(&mut arena).unwrap();
        let va = 0x40_0000_0000 - PAGE_SIZE; // just below 256 GiB
        pt.map_page(va, 0x4100_0000, Attributes::RAM_DATA, &mut arena).unwrap();
        assert_eq!(pt.translate(va), Some((0x4100_0000, Attributes::RAM_DATA)));
        assert_eq!(pt.map_page(va, 0x4100_1000, Attributes::RAM_DATA, &mut arena), Err(MapError::AlreadyMapped(va)));
        assert_eq!(pt.translate(va - PAGE_SIZE), None);
        assert_eq!(pt.map_page(1 << 39, 0, Attributes::RAM_DATA, &mut arena), Err(MapError::BadAddress(1 << 39)));
        assert_eq!(pt.map_page(0x1001, 0, Attributes::RAM_DATA, &mut arena), Err(MapError::BadAddress(0x1001)));
    }

    #[test]
    fn prepared_tables_make_later_maps_allocation_free() {
        let mut arena = Arena::new(8);
        let mut pt = PageTable::new(&mut arena).unwrap();
        let va = 0x40_0000_0000 - 3 * (2 << 20); // three 2 MiB regions below 256 GiB
        pt.prepare_tables(va, 3 * (2 << 20), &mut arena).unwrap();
        assert_eq!(arena.end - arena.next, 3 * PAGE_SIZE, "one L2 and three L3 tables were created");
        assert_eq!(pt.translate(va), None, "preparing maps nothing");
        let mut empty = Arena { next: 0, end: 0 };
        for page in (va..va + 3 * (2 << 20)).step_by(PAGE_SIZE * 97) {
            pt.map_page(page, 0x4000_0000, Attributes::RAM_DATA, &mut empty).unwrap();
        }
    }

    #[test]
    fn exhausted_allocator_is_an_error_not_a_crash() {
        let mut arena = Arena::new(2);
        let mut pt = PageTable::new(&mut arena).unwrap();
        pt.map_page(0x1000, 0x1000, Attributes::RAM_DATA, &mut arena).unwrap_err();
    }

    #[test]
    fn read_only_and_executable_bits_round_trip() {
        let mut arena = Arena::new(4);
        let mut pt = PageTable::new(&mut arena).unwrap();
        let ro = Attributes { kind: MemoryKind::Normal, writable: false, executable: true };
        pt.map_page(0x2000, 0x3000, ro, &mut arena).unwrap();
        assert_eq!(pt.translate(0x2000), Some((0x3000, ro)));
    }
}
