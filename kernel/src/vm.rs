//! The kernel's address space: an identity map of the device region and RAM, with the guard page
//! under every stack left unmapped so an overflow faults. Built once on the boot core, installed
//! on every core.

use crate::sync::Lock as Mutex;
use crate::{devicetree::Machine, memory, stacks};
use core::sync::atomic::{AtomicUsize, Ordering};
use tricolor_abi::PAGE_SIZE;
use tricolor_arch::pagetable::{Attributes, MapError, PageTable, TableAllocator};

static TABLES: Mutex<Option<PageTable>> = Mutex::new(None);
/// TTBR0 value every core installs (0 until `init`).
static ROOT: AtomicUsize = AtomicUsize::new(0);

/// The first GiB of the `virt` memory map holds flash, the GIC, the UART, RTC and virtio-mmio.
const DEVICE_REGION: (usize, usize) = (0, 1 << 30);

/// Page-table pages come from the frame allocator, zeroed.
struct FrameTables;

impl TableAllocator for FrameTables {
    fn alloc_table(&mut self) -> Option<usize> {
        let page = memory::alloc_pages(1, 1).ok()?;
        // SAFETY: the page was just allocated to us and is identity-mapped (or the MMU is off).
        unsafe { (page as *mut u8).write_bytes(0, PAGE_SIZE) };
        Some(page)
    }
}

/// Whether `[lo, hi)` lies in the device window (identity-mapped Device-nGnRE for the whole run).
pub fn is_device(lo: usize, hi: usize) -> bool {
    lo >= DEVICE_REGION.0 && lo <= hi && hi <= DEVICE_REGION.0 + DEVICE_REGION.1
}

/// Builds the kernel's tables and turns translation on for the boot core.
pub fn init(machine: &Machine) -> Result<(), MapError> {
    let mut alloc = FrameTables;
    let mut tables = PageTable::new(&mut alloc)?;
    tables.map_range(DEVICE_REGION.0, DEVICE_REGION.0, DEVICE_REGION.1, Attributes::DEVICE, &mut alloc)?;
    let (ram_base, ram_size) = machine.ram;
    tables.map_range(ram_base, ram_base, ram_size, Attributes::RAM_RWX, &mut alloc)?;
    for stack in stacks::all_core_stacks() {
        tables.unmap_page(stack.guard, &mut alloc)?;
    }
    ROOT.store(tables.root(), Ordering::Release);
    *TABLES.lock() = Some(tables);
    enable_on_this_core();
    Ok(())
}

/// Installs the kernel's tables on the calling core (secondaries call this first thing).
pub fn enable_on_this_core() {
    let root = ROOT.load(Ordering::Acquire);
    assert_ne!(root, 0, "vm::init has not built the tables");
    // SAFETY: the tables identity-map all of RAM (code, data, every stack but the guard pages) and
    // the device region, so execution continues at the same addresses after the switch.
    unsafe { tricolor_arch::mmu::enable(root) };
}

/// What an address is mapped to (for tests and fault reports).
pub fn translate(va: usize) -> Option<(usize, Attributes)> {
    TABLES.lock().as_ref()?.translate(va)
}

/// Where the GC heap is mapped: not at its RAM address. A conservative scan takes any word that
/// names a heap object for a reference, so the heap must lie where ordinary integers do not:
/// - not at its RAM address: RAM starts at 1 GiB, so with the identity map a nanosecond
///   timestamp between 1.08 s and 1.12 s of uptime named an object of a 32 MiB heap (the
///   verifier reported such timestamps, held in a frame after its scan, as lost references);
/// - not where the upper 32 bits are a small number and the lower ones too: a pair of `u32`s
///   packed into one register (a span's page and a size, say `(0x257, 0x60)`) named an object
///   when the heap sat at `0x60_0000_0000`.
///
/// At 363 GiB (above the growable-stack arena at 256 GiB, inside the 39-bit space) a
/// word names the heap only if it is a reference, a timestamp past 6.5 minutes of uptime, a
/// count past 363 Gi, or a `u32` pair `(≥ 3 Gi, 90)`. 1 GiB-aligned, so the heap's 2 MiB
/// alignment gives block mappings.
pub const GC_HEAP_VA: usize = 0x5A_C000_0000;

/// Maps the GC heap's frames `[pa, pa + len)` at [`GC_HEAP_VA`] (MMU on, every core online and
/// sharing these tables). Returns the heap's virtual base. The frames keep their identity mapping
/// too, with the same memory type (an alias the kernel does not use), so nothing needs splitting.
pub fn map_gc_heap(pa: usize, len: usize) -> Result<usize, MapError> {
    let mut tables = TABLES.lock();
    let tables = tables.as_mut().expect("vm::init ran");
    tables.map_range(GC_HEAP_VA, pa, len, Attributes::RAM_DATA, &mut FrameTables)?;
    // The range was unmapped (invalid entries are never cached in a TLB): the new descriptors
    // only need to be visible to every core's table walker before the heap is used.
    tricolor_arch::mmu::publish_new_mapping();
    Ok(GC_HEAP_VA)
}

/// The physical address of mapped memory at `va` (for devices: the GC heap is not identity-mapped).
pub fn phys_of(va: usize) -> Option<usize> {
    translate(va).map(|(pa, _)| pa)
}

/// Unmaps one page while the MMU is on (a task stack's guard page), with TLB invalidation on
/// every core.
pub fn unmap_live(va: usize) -> Result<(), MapError> {
    let mut tables = TABLES.lock();
    let tables = tables.as_mut().expect("vm::init ran");
    tables.unmap_page(va, &mut FrameTables)?;
    tricolor_arch::mmu::invalidate_page(va);
    Ok(())
}

/// Maps one page while the MMU is on (identity-remapping a freed guard page, growing a stack).
pub fn map_live(va: usize, pa: usize, attrs: Attributes) -> Result<(), MapError> {
    let mut tables = TABLES.lock();
    let tables = tables.as_mut().expect("vm::init ran");
    tables.map_page(va, pa, attrs, &mut FrameTables)?;
    tricolor_arch::mmu::publish_new_mapping();
    Ok(())
}

/// Creates the page tables for `[va, va + len)` ahead of time (see `PageTable::prepare_tables`).
pub fn prepare_live(va: usize, len: usize) -> Result<(), MapError> {
    let mut tables = TABLES.lock();
    tables.as_mut().expect("vm::init ran").prepare_tables(va, len, &mut FrameTables)
}

/// `map_live` for the stack-growth fault path: never waits for the table lock (the faulting code
/// may hold it) and never allocates a table (`prepare_live` did). `None` if the lock is taken.
pub fn try_map_live(va: usize, pa: usize) -> Option<Result<(), MapError>> {
    let mut tables = TABLES.try_lock()?;
    let result = tables.as_mut()?.map_page(va, pa, Attributes::RAM_DATA, &mut NoTables);
    tricolor_arch::mmu::publish_new_mapping();
    Some(result)
}

/// Pages [`unmap_range_live`] unmaps per hold of the table lock and TLB broadcast.
const UNMAP_BATCH: usize = 64;

/// Unmaps the pages of `[lo, hi)` that are mapped (freeing a grown stack) and calls `freed` with
/// each one's frame once no core's TLB can hold its translation any more. A batch of pages at a
/// time under the table lock, with one TLB broadcast per batch: unmapping a page at a time
/// (`unmap_live`, a broadcast each) took about a round of every core's turn per page under QEMU,
/// with the lock held across each; a mutator that wanted the lock meanwhile (to free a stack of
/// its own) waited 28 ms while the boot core reaped a GCBench mutator's stack.
pub fn unmap_range_live(lo: usize, hi: usize, mut freed: impl FnMut(usize)) {
    let mut va = lo;
    while va < hi {
        let mut frames = [0usize; UNMAP_BATCH];
        let mut n = 0;
        {
            let mut tables = TABLES.lock();
            let tables = tables.as_mut().expect("vm::init ran");
            while va < hi && n < UNMAP_BATCH {
                if let Some((pa, _)) = tables.translate(va) {
                    if tables.unmap_page(va, &mut FrameTables).is_ok() {
                        frames[n] = pa;
                        n += 1;
                    }
                }
                va += PAGE_SIZE;
            }
            if n > 0 {
                tricolor_arch::mmu::invalidate_all();
            }
        }
        // After the invalidation: no core can reach these frames through the old mappings.
        frames[..n].iter().for_each(|&pa| freed(pa));
    }
}

/// A table allocator that has none: for paths that must not allocate.
struct NoTables;

impl TableAllocator for NoTables {
    fn alloc_table(&mut self) -> Option<usize> {
        None
    }
}
