//! The object model: a type descriptor per type (its pointer map), a header word per object that
//! points at it, `Gc<T>` handles and the barriered slot type `GcSlot<T>`.
//!
//! Layout of a small or large object: `[header: &'static GcType][payload: T]`. A handle points at
//! the payload. Pointer fields are `GcSlot`s at the offsets the descriptor lists; the marker reads
//! only those. The only way to store a handle into a slot is [`GcSlot::set`], which is
//! [`write_pointer`](crate::barrier::write_pointer).

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::barrier::write_pointer_at;
use crate::platform::Platform;

/// Bytes of header before each payload.
pub const HEADER_SIZE: usize = core::mem::size_of::<usize>();

/// What the collector knows about a type: its size and where its pointers are.
#[derive(Debug)]
pub struct GcType {
    /// Name for reports (verifier misses, checked-mode reports).
    pub name: &'static str,
    /// Payload size in bytes.
    pub size: usize,
    /// Byte offsets of the `GcSlot` fields within the payload.
    pub pointer_offsets: &'static [usize],
}

/// A type that can live in the GC heap.
///
/// Declare GC types with [`gc_type!`](crate::gc_type), which derives this impl from the struct's
/// fields (see [`pointer_map`](crate::pointer_map)); a hand-written impl is for descriptors no
/// struct describes.
///
/// # Safety
/// - The all-zero bit pattern is a valid `Self` (objects start zeroed).
/// - `TYPE.size == size_of::<Self>()`, `align_of::<Self>() <= 8`, and every offset in
///   `TYPE.pointer_offsets` is the offset of a `GcSlot<_>` field (and every `GcSlot` field is listed).
/// - `Self` needs no `Drop` (the collector frees memory without running destructors) and any
///   non-slot field that others may write concurrently is an atomic.
pub unsafe trait Trace: Sync + Sized + 'static {
    /// The descriptor.
    const TYPE: &'static GcType;
}

/// A handle to a heap object.
///
/// Rooting rule: a handle keeps its object alive only while it is somewhere the collector scans:
/// a `GcSlot` in a live object or a registered root, or a task stack / saved registers (scanned
/// conservatively at safe points). A handle hidden elsewhere (a non-GC heap `Vec`) does not.
pub struct Gc<T> {
    ptr: NonNull<T>,
}

impl<T> Clone for Gc<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Gc<T> {}
impl<T> PartialEq for Gc<T> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}
impl<T> Eq for Gc<T> {}

impl<T> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gc({:#x})", self.addr())
    }
}

// SAFETY: a handle is an address of a `T: Sync` object shared by all cores; sending or sharing it
// only shares `&T`.
unsafe impl<T: Sync> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Gc<T> {}

impl<T> Gc<T> {
    /// # Safety
    /// `ptr` points at the payload of a live, initialised `T` in the GC heap.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Gc { ptr }
    }

    /// The payload address (what slots store).
    #[inline]
    pub fn addr(self) -> usize {
        self.ptr.as_ptr().expose_provenance()
    }

    /// The payload pointer.
    pub fn as_ptr(self) -> *const T {
        self.ptr.as_ptr()
    }
}

impl<T> Deref for Gc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a handle is created only for an initialised object, which the collector keeps
        // alive while the handle is rooted (the rooting rule on `Gc`).
        unsafe { self.ptr.as_ref() }
    }
}

/// A barriered pointer field (or global root) holding an optional `Gc<T>`.
///
/// It is an `AtomicUsize` because markers read it while mutators write it. Stores go through the
/// write barrier and are Release; [`GcSlot::get`] is Acquire (see there for why not Relaxed).
#[repr(transparent)]
pub struct GcSlot<T> {
    raw: AtomicUsize,
    _t: PhantomData<*const T>,
}

// SAFETY: the slot is an atomic word; it hands out `Gc<T>`, which is Send + Sync for `T: Sync`.
unsafe impl<T: Sync> Sync for GcSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Send for GcSlot<T> {}

impl<T> GcSlot<T> {
    /// An empty slot (usable in statics: the kernel's `.gcroots`).
    pub const fn null() -> Self {
        GcSlot { raw: AtomicUsize::new(0), _t: PhantomData }
    }

    /// Load the handle. No read barrier: the collector does not move objects.
    #[inline]
    pub fn get(&self) -> Option<Gc<T>> {
        // Ordering: Acquire, pairing with the Release store in `write_pointer` (and the
        // allocator's Release fence): a mutator that loads a handle another core stored sees the
        // object's initialisation and every write made before the store. Rust has no `consume`,
        // so the address dependency aarch64 would honour for a plain `ldr` does not count in the
        // language's model (Miri reports the race); `get_relaxed` is the plain load for data the
        // caller already synchronised. The collector's own slot reads are Relaxed (see `mark`).
        self.decode(self.raw.load(Ordering::Acquire))
    }

    /// Load the handle without ordering (a plain `ldr`): only for slots whose object this core
    /// allocated or otherwise synchronised with, e.g. single-core benchmarks.
    #[inline]
    pub fn get_relaxed(&self) -> Option<Gc<T>> {
        self.decode(self.raw.load(Ordering::Relaxed))
    }

    #[inline]
    fn decode(&self, a: usize) -> Option<Gc<T>> {
        NonNull::new(core::ptr::with_exposed_provenance_mut::<T>(a)).map(|ptr| Gc { ptr })
    }

    /// Store through the write barrier.
    #[inline(always)]
    #[track_caller]
    pub fn set<P: Platform>(&self, value: Option<Gc<T>>) {
        let new = value.map_or(0, |g| g.addr());
        write_pointer_at::<P>(&self.raw, new, Location::caller());
    }

    /// The raw word (for root registration and the marker).
    pub fn as_atomic(&self) -> &AtomicUsize {
        &self.raw
    }
}

impl<T> Default for GcSlot<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> fmt::Debug for GcSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcSlot({:#x})", self.raw.load(Ordering::Relaxed))
    }
}

/// Descriptor of raw no-scan byte buffers (pinned buffers have no header at all).
pub static BYTES_TYPE: GcType = GcType { name: "bytes", size: 0, pointer_offsets: &[] };
