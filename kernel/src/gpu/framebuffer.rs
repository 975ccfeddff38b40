//! Where the framebuffer's memory comes from (`fb=`). Every source ends as the same thing: a
//! virtually contiguous pixel array plus the scatter list of physical [`Segment`]s the device gets
//! through RESOURCE_ATTACH_BACKING. The driver never learns which source it was.
//!
//! - `static`: a page-aligned `.bss` array sized for 1280x720x4.
//! - `pages`: contiguous pages from the frame allocator.
//! - `gc`: a pinned no-scan object in the GC heap, rooted while attached. The collector is not
//!   wired into the kernel yet, so [`gc_framebuffer`] says so and the request falls back to
//!   `static`; when it lands, only that function changes.
//!
//! A source that cannot deliver (exhausted, too small, already taken) falls back with a log line:
//! `pages` to `static`, `static` to `pages`.

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
    /// Memory at `base` (identity-mapped: its physical address too), described page by page.
    fn new(base: usize, bytes: usize, source: FbSource) -> Self {
        let segments = (base..base + bytes)
            .step_by(PAGE_SIZE)
            .map(|page| Segment { phys: page as u64, len: (base + bytes - page).min(PAGE_SIZE) as u32 })
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

/// Framebuffer memory of at least `bytes` from `wanted`, falling back as the module doc says.
/// `None` for `fb=none`, or when no source can deliver.
pub fn allocate(wanted: FbSource, bytes: usize) -> Option<FbMemory> {
    let fallback = |from: FbSource, why: &str, to: FbSource| {
        log::warn!("fb={}: {why}, falling back to {}", from.name(), to.name());
    };
    let static_then_pages = |from: FbSource| match static_framebuffer(bytes) {
        Ok(m) => Some(m),
        Err(why) => {
            fallback(from, why, FbSource::Pages);
            page_framebuffer(bytes).map_err(|why| log::error!("fb=pages: {why}; no framebuffer")).ok()
        }
    };
    match wanted {
        FbSource::None => None,
        FbSource::Static => static_then_pages(FbSource::Static),
        FbSource::Pages => page_framebuffer(bytes).ok().or_else(|| {
            fallback(FbSource::Pages, "page allocation failed", FbSource::Static);
            static_framebuffer(bytes).map_err(|why| log::error!("fb=static: {why}; no framebuffer")).ok()
        }),
        FbSource::Gc => match gc_framebuffer(bytes) {
            Ok(m) => Some(m),
            Err(why) => {
                fallback(FbSource::Gc, why, FbSource::Static);
                static_then_pages(FbSource::Static)
            }
        },
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
    let base = memory::alloc_pages(pages, 1).map_err(|_| "page allocation failed")?;
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
        .map_err(|_| "the GC heap has no room for the framebuffer")?;
    log::info!("fb=gc: {} KiB pinned no-scan object at {:#x} in the GC heap", buf.len >> 10, buf.addr);
    Ok(FbMemory::new(buf.addr, bytes, FbSource::Gc))
}
