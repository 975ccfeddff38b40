//! Where the framebuffer's memory comes from (`fb=`). Every source ends as the same thing: a
//! virtually contiguous pixel array plus the scatter list of physical [`Segment`]s the device gets
//! through RESOURCE_ATTACH_BACKING. The driver never learns which source it was.
//!
//! - `static`: a page-aligned `.bss` array sized for 1280x720x4.
//! - `pages`: contiguous pages from the frame allocator.
//! - `gc`: a pinned no-scan object in the GC heap, rooted while attached.
//!
//! When `fb=` is not given, a source that cannot deliver (exhausted, too small, already taken)
//! falls back with a log line: `static` to `pages`. A source the command line names is a request:
//! if it cannot deliver, the boot stops with the reason and exit status 2 (`boot::refuse`).

use crate::memory;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use tricolor_abi::PAGE_SIZE;
use tricolor_kernel::cmdline::FbSource;
use tricolor_virtio::Segment;

/// The static framebuffer's size: 1280x720 at 4 bytes per pixel (900 pages).
pub const STATIC_BYTES: usize = 1280 * 720 * 4;

#[repr(C, align(4096))]
struct StaticPixels(UnsafeCell<[u8; STATIC_BYTES]>);

// SAFETY: the array is handed out at most once (STATIC_TAKEN), so only its one owner touches it.
unsafe impl Sync for StaticPixels {}

/// In `.bss`: zeroed by the boot code, part of the image the frame allocator reserves.
static STATIC_PIXELS: StaticPixels = StaticPixels(UnsafeCell::new([0; STATIC_BYTES]));
static STATIC_TAKEN: AtomicBool = AtomicBool::new(false);

/// Framebuffer memory from one source. Never freed: the device may hold it as a resource's
/// backing until it is reset, so an owner that is done with it simply keeps it for reuse.
pub struct FbMemory {
    base: NonNull<u32>,
    bytes: usize,
    segments: Vec<Segment>,
    /// The source that actually delivered (after any fallback).
    pub source: FbSource,
}

// SAFETY: FbMemory exclusively owns its pixel memory; moving it moves that ownership.
unsafe impl Send for FbMemory {}

impl FbMemory {
    /// Memory at `base`, described page by page with the physical address the device needs (the
    /// GC heap is not identity-mapped: `vm::GC_HEAP_VA`).
    fn new(base: usize, bytes: usize, source: FbSource) -> Self {
        let segments = (base..base + bytes)
            .step_by(PAGE_SIZE)
            .map(|page| Segment {
                phys: crate::vm::phys_of(page).expect("framebuffer memory is mapped") as u64,
                len: (base + bytes - page).min(PAGE_SIZE) as u32,
            })
            .collect();
        Self { base: NonNull::new(base as *mut u32).expect("framebuffer at 0"), bytes, segments, source }
    }

    /// The scatter list for RESOURCE_ATTACH_BACKING.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Address of the first pixel (for checks that read the pixels while their owner is parked).
    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The pixels, row-major, one u32 each.
    pub fn pixels(&mut self) -> &mut [u32] {
        // SAFETY: `base` is page aligned and `bytes` long, owned by this value alone (static array
        // claimed once, pages allocated to us); the device only reads it (transfer to host), so
        // a CPU write racing a transfer can at worst show a torn frame, never corrupt memory.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.bytes / 4) }
    }
}

/// Framebuffer memory of at least `bytes` from `wanted`, falling back as
/// [`FbSource::candidates`] says. `Ok(None)` for `fb=none`, or when no fallback could deliver;
/// `Err(why)` when `wanted` was `required` (named on the command line) and cannot deliver.
pub fn allocate(wanted: FbSource, required: bool, bytes: usize) -> Result<Option<FbMemory>, &'static str> {
    let candidates = wanted.candidates(required);
    for (i, &source) in candidates.iter().enumerate() {
        let why = match from_source(source, bytes) {
            Ok(memory) => return Ok(Some(memory)),
            Err(why) if required => return Err(why),
            Err(why) => why,
        };
        match candidates.get(i + 1) {
            Some(next) => log::warn!("fb={}: {why}, falling back to {}", source.name(), next.name()),
            None => log::error!("fb={}: {why}; no framebuffer", source.name()),
        }
    }
    Ok(None)
}

fn from_source(source: FbSource, bytes: usize) -> Result<FbMemory, &'static str> {
    match source {
        FbSource::Static => static_framebuffer(bytes),
        FbSource::Pages => page_framebuffer(bytes),
        FbSource::Gc => gc_framebuffer(bytes),
        FbSource::None => Err("fb=none"),
    }
}

/// The `.bss` array, if it is large enough and not taken.
fn static_framebuffer(bytes: usize) -> Result<FbMemory, &'static str> {
    if bytes > STATIC_BYTES {
        return Err("the display is larger than the 1280x720 static array");
    }
    // Relaxed is enough: the flag only arbitrates ownership; no data is published through it.
    if STATIC_TAKEN.swap(true, Ordering::Relaxed) {
        return Err("the static array is already in use");
    }
    Ok(FbMemory::new(STATIC_PIXELS.0.get() as usize, bytes, FbSource::Static))
}

/// Contiguous zeroed pages from the frame allocator.
fn page_framebuffer(bytes: usize) -> Result<FbMemory, &'static str> {
    let pages = bytes.div_ceil(PAGE_SIZE);
    let base = memory::alloc_pages(pages, 1).map_err(|_| "not enough free RAM for the framebuffer's pages")?;
    // SAFETY: the pages were just allocated to us and are identity-mapped RAM.
    unsafe { (base as *mut u8).write_bytes(0, pages * PAGE_SIZE) };
    Ok(FbMemory::new(base, bytes, FbSource::Pages))
}

/// A pinned no-scan object in the GC heap: pinned objects are never freed or scanned, which is
/// what keeps the device's memory alive while it is attached (the pin is the root).
fn gc_framebuffer(bytes: usize) -> Result<FbMemory, &'static str> {
    if !crate::gc::is_ready() {
        return Err("GC heap not available (the collector failed to start)");
    }
    let buf = crate::gc::collector()
        .alloc_pinned::<crate::gc::Kernel>(bytes)
        .map_err(|_| "the GC heap has no room for the framebuffer (see gc.heap=)")?;
    log::info!("fb=gc: {} KiB pinned no-scan object at {:#x} in the GC heap", buf.len >> 10, buf.addr);
    Ok(FbMemory::new(buf.addr, bytes, FbSource::Gc))
}
