//! Pointer maps derived from struct definitions: [`gc_type!`](crate::gc_type) declares a GC type
//! and emits its [`Trace`](crate::Trace) impl, so adding a type needs no hand-listed offsets and
//! no `unsafe` at the use site.
//!
//! ```
//! use core::sync::atomic::AtomicU64;
//! use tricolor_gc::{gc_type, GcSlot, Trace};
//!
//! gc_type! {
//!     /// A pair of links, nested in `Node`.
//!     #[repr(C)]
//!     pub struct Links {
//!         next: GcSlot<Node>,
//!         prev: GcSlot<Node>,
//!     }
//! }
//!
//! gc_type! {
//!     #[repr(C)]
//!     pub struct Node {
//!         kids: [GcSlot<Node>; 3],
//!         seed: AtomicU64,
//!         links: Links,
//!     }
//! }
//!
//! // kids at 0, 8, 16; seed at 24 (no pointer); links.next and links.prev at 32 and 40.
//! assert_eq!(Node::TYPE.pointer_offsets, &[0, 8, 16, 32, 40]);
//! assert_eq!(Node::TYPE.size, 48);
//! ```
//!
//! # How
//! Every field type implements [`GcField`], whose associated const [`GcField::SLOTS`] is the
//! [`PointerMap`] of the type: the byte offsets of its `GcSlot` words. A [`GcSlot`] is one slot at
//! 0; an atomic or plain data has none; `[X; N]` has `X`'s slots repeated at `i * size_of::<X>()`;
//! a struct declared with `gc_type!` has each field's slots at that field's `offset_of!`. All of
//! it is const evaluation, so an object's pointer map is a table in `.rodata`, as a hand-written
//! one was, and the marker reads the same `&'static [usize]`.
//!
//! # Why a `macro_rules!` and not a derive crate
//! The layout facts come from the compiler (`offset_of!`, `size_of`, `align_of`, `needs_drop`) and
//! the field types from trait impls; a macro only has to list the fields, which `macro_rules!`
//! can. A proc-macro derive would add a host-built crate, syn and quote (three dependencies the
//! workspace does not have) to a `no_std` kernel's build for the same result: it sees the same
//! tokens (no more type information than a `macro_rules!`) and would still need [`GcField`] to
//! tell a slot from an atomic. The price is a restricted grammar: a braced struct with named
//! fields, const generics only (no type or lifetime parameters, no `where` clause).
//!
//! # Stable const evaluation
//! Without `generic_const_exprs`, an array whose length depends on a generic parameter (a
//! `Chunk<const W: usize>`, or `[X; N]`) cannot be a type in a const. So a [`PointerMap`] has a
//! fixed capacity, [`MAX_POINTERS`] offsets, and the descriptor's slice is its used prefix: each
//! GC type costs `MAX_POINTERS + 1` words of `.rodata`, and a type with more slots fails to
//! compile, naming the constant to raise.
//!
//! # What is checked, and what cannot be
//! [`GcType::derived`], which every `gc_type!` descriptor comes from, takes `size` from
//! `size_of::<T>()` and asserts in const evaluation (a compile error wherever the descriptor is
//! evaluated, which every build that allocates the type does: `Collector::alloc` reads `T::TYPE`):
//! - `align_of::<T>() <= 8` (objects are 8-aligned behind an 8-byte header);
//! - `!needs_drop::<T>()` (the collector frees without running destructors; an `impl Drop` on a
//!   `gc_type!` struct fails here);
//! - every offset is word-aligned, inside the object, and listed once (sorted ascending).
//!
//! What the type system checks: every field's type implements [`GcField`], so every field is
//! valid all-zero, and its slots are listed. (One trait rather than a separate `ZeroValid` marker:
//! whoever vouches that a type may be a field vouches for both.) `GcField` is implemented only for
//! slots, atomics, plain data, arrays of these and `gc_type!` structs: not for `Gc<T>`,
//! references, raw pointers, `AtomicPtr`, `Cell`/`UnsafeCell`, `Box` or anything with a
//! destructor, so a pointer field that is not a `GcSlot` (invisible to the marker) does not
//! compile.
//!
//! ```compile_fail,E0277
//! # use tricolor_gc::{gc_type, Gc};
//! // error: `Gc<Hidden>` cannot be a field of a GC object (the marker would not see it)
//! gc_type! { struct Hidden { next: Gc<Hidden> } }
//! ```
//! ```compile_fail,E0080
//! # use tricolor_gc::{gc_type, GcSlot, GcType, Trace};
//! gc_type! { struct Dropped { next: GcSlot<Dropped> } }
//! impl Drop for Dropped {
//!     fn drop(&mut self) {}
//! }
//! // error: evaluation panicked: a GC type must not need Drop
//! const _: &GcType = Dropped::TYPE;
//! ```
//! ```compile_fail,E0080
//! # use tricolor_gc::{gc_type, GcSlot, GcType, Trace};
//! gc_type! { #[repr(C, align(16))] struct Wide { next: GcSlot<Wide> } }
//! // error: evaluation panicked: a GC type must be aligned to at most 8 bytes
//! const _: &GcType = Wide::TYPE;
//! ```
//!
//! What no macro can check: concurrent writes to non-slot fields. They are safe here because a
//! `Gc<T>` hands out only `&T`: atomics are the only fields that can change through it; a plain
//! field (`u64`) is read-only, zero from allocation on, unless `unsafe` code writes it, and that
//! code owns the obligation that no other core reads it concurrently.

use core::mem::{align_of, needs_drop, size_of};
use core::sync::atomic::{
    AtomicBool, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64, AtomicU8,
    AtomicUsize,
};

use crate::object::{GcSlot, GcType};

/// Most slots one GC type can have (see the module docs for why there is a limit).
pub const MAX_POINTERS: usize = 64;

const WORD: usize = size_of::<usize>();

/// The byte offsets of a type's `GcSlot` words, built by const evaluation.
#[derive(Clone, Copy, Debug)]
pub struct PointerMap {
    offsets: [usize; MAX_POINTERS],
    len: usize,
}

impl PointerMap {
    /// No slots.
    pub const EMPTY: PointerMap = PointerMap { offsets: [0; MAX_POINTERS], len: 0 };
    /// One slot, at offset 0: a [`GcSlot`].
    pub const SLOT: PointerMap = PointerMap::EMPTY.push(0);

    /// The offsets.
    pub const fn as_slice(&self) -> &[usize] {
        self.offsets.split_at(self.len).0
    }

    /// Number of offsets.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `self` with `offset` added.
    pub const fn push(mut self, offset: usize) -> PointerMap {
        assert!(self.len < MAX_POINTERS, "a GC type has more than MAX_POINTERS slots: raise pointer_map::MAX_POINTERS");
        self.offsets[self.len] = offset;
        self.len += 1;
        self
    }

    /// `self` with a field's slots added: `field`'s offsets, each moved by `at` (the field's
    /// offset in the enclosing type).
    pub const fn with_field(mut self, at: usize, field: &PointerMap) -> PointerMap {
        let mut i = 0;
        while i < field.len {
            self = self.push(at + field.offsets[i]);
            i += 1;
        }
        self
    }

    /// The map of `[X; n]` for an `X` of `stride` bytes and map `self`.
    pub const fn repeat(self, stride: usize, n: usize) -> PointerMap {
        let mut out = PointerMap::EMPTY;
        if self.len == 0 {
            // Pointer-free arrays (half a million doubles) cost no evaluation steps.
            return out;
        }
        assert!(
            n <= MAX_POINTERS / self.len,
            "a GC type has more than MAX_POINTERS slots: raise pointer_map::MAX_POINTERS"
        );
        let mut i = 0;
        while i < n {
            out = out.with_field(i * stride, &self);
            i += 1;
        }
        out
    }

    /// The map checked against an object of `size` bytes and sorted: every offset word-aligned,
    /// inside the object, and listed once. Panics (at compile time, in a const) otherwise.
    pub const fn checked(mut self, size: usize) -> PointerMap {
        // Insertion sort: `repr(Rust)` may reorder fields, and maps are short.
        let mut i = 1;
        while i < self.len {
            let mut j = i;
            while j > 0 && self.offsets[j - 1] > self.offsets[j] {
                let t = self.offsets[j];
                self.offsets[j] = self.offsets[j - 1];
                self.offsets[j - 1] = t;
                j -= 1;
            }
            i += 1;
        }
        let mut i = 0;
        while i < self.len {
            let off = self.offsets[i];
            assert!(off.is_multiple_of(WORD), "a GC slot is not word-aligned (a packed struct?)");
            assert!(off + WORD <= size, "a GC slot lies outside its object");
            assert!(i == 0 || self.offsets[i - 1] < off, "two GC slots at one offset");
            i += 1;
        }
        self
    }
}

/// A type that can be a field of a GC object (or, declared with [`gc_type!`](crate::gc_type), be
/// one): it is valid all-zero, and its pointer map says where its `GcSlot`s are.
///
/// # Safety
/// - The all-zero bit pattern is a valid `Self`.
/// - `SLOTS` lists the offset of every `GcSlot` word within `Self`, and nothing else.
/// - `Self` has no interior mutability except through atomics (slots are atomics), so what others
///   may write concurrently is atomic.
///
/// Drop, size and alignment are checked by [`GcType::derived`] for the whole object.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a GC object",
    label = "not a GcSlot, an atomic, plain data, an array of those or a `gc_type!` struct",
    note = "pointers to GC objects must be `GcSlot`s (the marker reads only those); see `tricolor_gc::pointer_map`"
)]
pub unsafe trait GcField {
    /// Where `Self`'s slots are.
    const SLOTS: PointerMap;
}

// SAFETY: a slot is an `AtomicUsize` (zero is the null handle) plus a `PhantomData`; it is one
// slot at offset 0; its interior mutability is the atomic.
unsafe impl<T> GcField for GcSlot<T> {
    const SLOTS: PointerMap = PointerMap::SLOT;
}

// SAFETY: `N` elements of `X`, `size_of::<X>()` apart with no padding between them (the array
// layout); zero is valid for each element, and the elements' slots are listed at their element's
// offset; no interior mutability beyond the elements'.
unsafe impl<X: GcField, const N: usize> GcField for [X; N] {
    const SLOTS: PointerMap = X::SLOTS.repeat(size_of::<X>(), N);
}

/// `GcField` for types with no slots, zero valid and no interior mutability but atomics.
macro_rules! no_slots {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: zero is a valid value of this atomic or plain-data type; it holds no
            // `GcSlot`; its only interior mutability, if any, is atomic.
            unsafe impl GcField for $t {
                const SLOTS: PointerMap = PointerMap::EMPTY;
            }
        )*
    };
}

no_slots!(AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize);
no_slots!(AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize);
no_slots!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, f32, f64, ());

// SAFETY: zero-sized: the all-zero (empty) pattern is valid; no slots; no interior mutability.
unsafe impl<T: ?Sized> GcField for core::marker::PhantomData<T> {
    const SLOTS: PointerMap = PointerMap::EMPTY;
}

/// `T`'s map, checked and sorted, as a `'static` table (a reference to a const's value is one).
struct Table<T>(core::marker::PhantomData<T>);

impl<T: GcField> Table<T> {
    const MAP: &'static PointerMap = &T::SLOTS.checked(size_of::<T>());
}

impl GcType {
    /// The descriptor of `T` derived from its [`GcField`] map, with the compile-time checks of the
    /// `Trace` contract that `GcField` leaves to the whole object: no destructor and alignment at
    /// most 8. What [`gc_type!`](crate::gc_type) puts in `Trace::TYPE`.
    pub const fn derived<T: GcField + Sync + 'static>(name: &'static str) -> GcType {
        assert!(!needs_drop::<T>(), "a GC type must not need Drop: the collector frees without running destructors");
        assert!(align_of::<T>() <= 8, "a GC type must be aligned to at most 8 bytes (objects follow an 8-byte header)");
        GcType { name, size: size_of::<T>(), pointer_offsets: Table::<T>::MAP.as_slice() }
    }
}

/// Declares a GC type: emits the struct as written, its [`GcField`] impl (so it can be nested in
/// other GC types) and its [`Trace`](crate::Trace) impl, with the pointer map computed from the
/// fields' types and `offset_of!`.
///
/// Accepts a braced struct with named fields, attributes (`#[repr(C)]`, docs) on it and on its
/// fields, and const generic parameters. The type's name in reports is the struct's, unless an
/// attribute `#[gc_type(name = "...")]` on the struct says otherwise. Every field's type must
/// implement [`GcField`]: a [`GcSlot`], an atomic, plain data, an array of those, or another
/// `gc_type!` struct. See the [module docs](crate::pointer_map) for what is checked.
#[macro_export]
macro_rules! gc_type {
    // Sort the struct's attributes: `#[gc_type(name = ...)]` sets the name, the rest stay.
    (@attrs [$($kept:tt)*] $named:tt #[gc_type(name = $type_name:literal)] $($rest:tt)*) => {
        $crate::gc_type!(@attrs [$($kept)*] [$type_name] $($rest)*);
    };
    (@attrs [$($kept:tt)*] $named:tt #[$attr:meta] $($rest:tt)*) => {
        $crate::gc_type!(@attrs [$($kept)* #[$attr]] $named $($rest)*);
    };
    (@attrs [$($kept:tt)*] [] $vis:vis struct $name:ident $($rest:tt)*) => {
        $crate::gc_type!(@named ::core::stringify!($name); $($kept)* $vis struct $name $($rest)*);
    };
    (@attrs [$($kept:tt)*] [$type_name:literal] $($rest:tt)*) => {
        $crate::gc_type!(@named $type_name; $($kept)* $($rest)*);
    };
    (
        @named $type_name:expr;
        $(#[$attr:meta])*
        $vis:vis struct $name:ident $(< $(const $g:ident : $gty:ty),+ $(,)? >)? {
            $( $(#[$fattr:meta])* $fvis:vis $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name $(< $(const $g: $gty),+ >)? {
            $( $(#[$fattr])* $fvis $field: $fty ),*
        }

        // SAFETY: every field's type is a `GcField` (the bound is checked where each map is
        // named), so the all-zero struct is valid (zero fields, and padding may hold anything)
        // and has no interior mutability but atomics; each field's slots are listed at that
        // field's `offset_of!`, and no other slots exist.
        unsafe impl $(< $(const $g: $gty),+ >)? $crate::pointer_map::GcField for $name $(< $($g),+ >)? {
            const SLOTS: $crate::pointer_map::PointerMap = {
                let map = $crate::pointer_map::PointerMap::EMPTY;
                $(
                    let map = map.with_field(
                        ::core::mem::offset_of!(Self, $field),
                        &<$fty as $crate::pointer_map::GcField>::SLOTS,
                    );
                )*
                map
            };
        }

        // SAFETY: `GcType::derived` takes the size from `size_of`, the offsets from the
        // `GcField` map above (zero valid, every slot listed, interior mutability only atomic),
        // and asserts at compile time that the type needs no Drop and is at most 8-aligned.
        unsafe impl $(< $(const $g: $gty),+ >)? $crate::object::Trace for $name $(< $($g),+ >)? {
            const TYPE: &'static $crate::object::GcType = &$crate::object::GcType::derived::<Self>($type_name);
        }
    };
    ($($input:tt)*) => {
        $crate::gc_type!(@attrs [] [] $($input)*);
    };
}
