//! `gc_type!`: the derived pointer maps against the real layout, and against checked mode.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{new_node, Node};
use crate::barrier::write_pointer;
use crate::host::{HostPlatform, World};
use crate::object::{GcSlot, Trace, HEADER_SIZE};
use crate::sizeclass::HEAP_PAGE_SIZE;
use crate::{gc_type, take_checked_reports, BarrierMode, CheckedSlot, Config};

type P = HostPlatform;

gc_type! {
    /// Nested in `Mixed`: two slots around a 4-byte atomic (4 bytes of padding follow it).
    #[repr(C)]
    struct Pair {
        a: GcSlot<Mixed>,
        tag: AtomicU32,
        b: GcSlot<Node>,
    }
}

gc_type! {
    /// Nested, with no slots at all.
    #[repr(C)]
    struct Plain {
        x: AtomicU64,
        y: u32,
    }
}

gc_type! {
    /// Every kind of field: plain data and padding, a slot, an atomic, an array of slots, a nested
    /// struct, an array of nested structs, an array of atomics, a nested struct without slots.
    #[repr(C)]
    struct Mixed {
        flag: u8,
        head: GcSlot<Mixed>,
        count: AtomicU64,
        kids: [GcSlot<Node>; 3],
        small: AtomicU16,
        pair: Pair,
        pairs: [Pair; 2],
        words: [AtomicU64; 5],
        plain: [Plain; 2],
        tail: GcSlot<Pair>,
    }
}

gc_type! {
    /// `Mixed`'s fields in `repr(Rust)`: the compiler may reorder them.
    #[gc_type(name = "Reordered")]
    struct MixedRust {
        flag: u8,
        head: GcSlot<Mixed>,
        count: AtomicU64,
        kids: [GcSlot<Node>; 3],
        small: AtomicU16,
        pair: Pair,
        pairs: [Pair; 2],
        words: [AtomicU64; 5],
        plain: [Plain; 2],
        tail: GcSlot<Pair>,
    }
}

gc_type! {
    /// A const generic parameter, and a slot after a generic-length array.
    #[repr(C)]
    struct Chunk<const W: usize> {
        words: [AtomicU64; W],
        next: GcSlot<Chunk<W>>,
    }
}

/// The address of a field, as an offset from the start of its object.
fn at<F>(base: usize, field: &F) -> usize {
    field as *const F as usize - base
}

/// Every `GcSlot` of a `Mixed`/`MixedRust`, found by taking each slot field's address in a real
/// object: no `offset_of!`, no pointer map. Sorted.
macro_rules! slot_addresses {
    ($m:expr) => {{
        let m = $m;
        let base = m as *const _ as usize;
        let mut v = vec![at(base, &m.head), at(base, &m.pair.a), at(base, &m.pair.b), at(base, &m.tail)];
        v.extend(m.kids.iter().map(|k| at(base, k)));
        for p in &m.pairs {
            v.extend([at(base, &p.a), at(base, &p.b)]);
        }
        v.sort_unstable();
        v
    }};
}

#[test]
fn derived_offsets_are_the_slots_of_the_real_layout() {
    let w = World::new(1, 64 * HEAP_PAGE_SIZE, Config::default(), BarrierMode::Buffered);
    w.run_on(0, || {
        let c = w.collector();
        let m = c.alloc::<P, Mixed>().unwrap();
        let found = slot_addresses!(&*m);
        assert_eq!(found.len(), 1 + 3 + 2 + 2 * 2 + 1);
        assert_eq!(Mixed::TYPE.pointer_offsets, &found[..]);
        assert_eq!(Mixed::TYPE.size, size_of::<Mixed>());
        assert_eq!(Mixed::TYPE.name, "Mixed");

        // The same slots by `offset_of!`, field by field (nested fields spelled out).
        let slot = size_of::<GcSlot<Node>>();
        let pair = size_of::<Pair>();
        let mut by_offset_of = vec![
            offset_of!(Mixed, head),
            offset_of!(Mixed, pair.a),
            offset_of!(Mixed, pair.b),
            offset_of!(Mixed, tail),
        ];
        by_offset_of.extend((0..3).map(|i| offset_of!(Mixed, kids) + i * slot));
        for i in 0..2 {
            by_offset_of.extend([offset_of!(Mixed, pairs) + i * pair + offset_of!(Pair, a)]);
            by_offset_of.extend([offset_of!(Mixed, pairs) + i * pair + offset_of!(Pair, b)]);
        }
        by_offset_of.sort_unstable();
        assert_eq!(by_offset_of, found);

        // Padding and non-slot fields are not listed: `flag`'s word, `count`, `small`, the tags.
        for off in [offset_of!(Mixed, flag), offset_of!(Mixed, count), offset_of!(Mixed, small)] {
            assert!(!Mixed::TYPE.pointer_offsets.contains(&(off & !7)), "{off}");
        }
        assert!(!Mixed::TYPE.pointer_offsets.contains(&offset_of!(Mixed, pair.tag)));

        // Nested types are GC types too, with their own maps.
        assert_eq!(Pair::TYPE.pointer_offsets, &[offset_of!(Pair, a), offset_of!(Pair, b)]);
        assert_eq!(Plain::TYPE.pointer_offsets, &[] as &[usize]);
        assert_eq!(Plain::TYPE.size, size_of::<Plain>());

        // repr(Rust): the compiler chooses the order; the map follows it, sorted.
        let r = c.alloc::<P, MixedRust>().unwrap();
        assert_eq!(MixedRust::TYPE.pointer_offsets, &slot_addresses!(&*r)[..]);
        assert_eq!(MixedRust::TYPE.name, "Reordered");
        assert_eq!(MixedRust::TYPE.size, size_of::<MixedRust>());

        // Const generics: the slot follows the array whatever its length.
        assert_eq!(<Chunk<0>>::TYPE.pointer_offsets, &[0]);
        assert_eq!(<Chunk<3>>::TYPE.pointer_offsets, &[24]);
        assert_eq!(<Chunk<1000>>::TYPE.pointer_offsets, &[8000]);
        assert_eq!(<Chunk<1000>>::TYPE.size, 8008);
    });
}

/// The derived map is exactly what the marker scans: checked mode accepts a store into every
/// listed offset and reports one into each word of a non-slot atomic field.
#[test]
fn checked_mode_accepts_every_derived_slot_and_reports_non_slot_fields() {
    let w = World::new(1, 64 * HEAP_PAGE_SIZE, Config::default(), BarrierMode::Checked);
    w.run_on(0, || {
        let c = w.collector();
        let m = c.alloc::<P, Mixed>().unwrap();
        let target = new_node(c, 1);
        let base = m.as_ptr() as usize;
        assert_eq!(Mixed::TYPE.pointer_offsets, &slot_addresses!(&*m)[..]);
        for &off in Mixed::TYPE.pointer_offsets {
            // SAFETY: `off` is the offset of a `GcSlot` (an `AtomicUsize`) of the live object `m`,
            // as the assertion above found from the fields' addresses.
            let slot = unsafe { &*((base + off) as *const AtomicUsize) };
            write_pointer::<P>(slot, target.addr());
        }
        assert!(take_checked_reports::<P>().is_empty());

        let words: Vec<&AtomicU64> =
            core::iter::once(&m.count).chain(&m.words).chain(m.plain.iter().map(|p| &p.x)).collect();
        for word in &words {
            let word = *word as *const AtomicU64 as *const AtomicUsize;
            // SAFETY: an aligned `AtomicU64` field of the live object `m`, the size of an
            // `AtomicUsize`.
            write_pointer::<P>(unsafe { &*word }, target.addr());
        }
        let reports = take_checked_reports::<P>();
        assert_eq!(reports.len(), words.len(), "{reports:?}");
        for (r, word) in reports.iter().zip(&words) {
            let offset = at(base, *word);
            assert!(!Mixed::TYPE.pointer_offsets.contains(&offset));
            assert_eq!(
                r.kind,
                CheckedSlot::NotAPointerField { holder: base - HEADER_SIZE, holder_type: "Mixed", offset }
            );
            assert_eq!(r.object, target.addr());
        }
        for word in &words {
            word.store(0, Ordering::Relaxed);
        }
    });
}
