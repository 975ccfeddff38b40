//! tricolor's collector: Go's concurrent tri-color mark-sweep with the buffered hybrid write
//! barrier, `no_std`, testable on the host with threads standing in for cores.
//!
//! # Contents
//! - [`platform`]: what the collector needs from the machine ([`Platform`]: cores, system stack,
//!   preemption guard, time, stop-the-world, stack ranges, the per-core event recorder's
//!   `Platform::event`, with states from `tricolor_timeline`) and the per-core state [`GcCore`].
//! - [`wbbuf`]: the per-core write-barrier buffer [`WbBuf`] (`get1`, `get2`, `reset`, `discard`,
//!   `empty`), Go's mwbbuf.go.
//! - [`barrier`]: the flag [`WRITE_BARRIER`], the modes [`BarrierMode`], [`write_pointer`],
//!   the flush (`wb_buf_flush` on the system stack, `wb_buf_flush1`) and checked-mode reports.
//! - [`object`]: type descriptors ([`GcType`], [`Trace`]), handles [`Gc`], barriered slots
//!   [`GcSlot`].
//! - [`pointer_map`]: [`gc_type!`], which declares a GC type and derives its `Trace` (pointer map
//!   from the fields' types and `offset_of!`).
//! - [`heap`], `span`, `pages`, [`sizeclass`]: the heap region,
//!   spans per size class, large and pinned spans, per-core allocation caches, sweeping.
//! - [`roots`]: global root slots (the kernel's `.gcroots`), conservative ranges.
//! - `mark`: shading, grey work buffers, scanning.
//! - [`collector`]: the cycle (mark setup, concurrent mark, mark termination, sweep), pacing.
//! - [`cyclelock`]: [`CycleLock`], one cycle at a time with explicit collections first, and
//!   [`wait_while`], a wait that logs when it lasts.
//! - [`verify`]: the stop-the-world re-mark that reports what the concurrent mark missed.
//! - [`census`]: the verifier's independent list of the tasks a cycle must scan.
//! - [`stats`]: counters per core and per cycle.
//! - [`workload`]: workloads written once over any [`Platform`] (Boehm's GCBench), driven by the
//!   host benchmark and the kernel's suites.
//! - `host` (feature `host`, and in tests): a [`Platform`] over threads; `gcbench`, the host's
//!   driver of [`workload::gcbench`].
//!
//! # Invariants
//! - **Tri-colour**: during marking no black object points to a white object that is not also
//!   reachable from a grey object or recorded in a wbBuf. The hybrid barrier keeps it: every
//!   pointer store records the overwritten pointer (deletion, Yuasa) and the stored one
//!   (insertion, Dijkstra).
//! - **Stacks are scanned once**, at mark start with the world stopped; after that stack writes
//!   need no barrier because anything a stack can load was either reachable from a scanned root
//!   or allocated black, and anything unlinked from the heap is shaded by the deletion half.
//! - **No preemption points between the flag check, the buffer put and the write to memory**
//!   (Go's mwbbuf.go rule): a GC phase change in between would miss the write. Platforms make
//!   `disable_preemption` cover it; the flush never yields.
//! - **The barrier path performs no barriered stores** (it would corrupt the buffer it fills).
//! - **The flag and mode change only with the world stopped**, so a core sees the change at its
//!   next safe point, never in the middle of a barrier.
//! - **Objects allocated during marking are black**; new objects start zeroed, their header set,
//!   published by a Release fence (Go's publicationBarrier) before their address can be stored.
//! - **Every slot is an atomic**, because markers read slots while mutators write them. Markers
//!   load Relaxed (a plain `ldr`); barriered stores are Release and `GcSlot::get` is Acquire so
//!   that a mutator reading an object another core published sees it initialised.
//! - **Freed memory is poisoned** with [`heap::POISON`]; allocation zeroes. (A benchmark may switch
//!   poisoning off with `Heap::set_poison`, and must say so; the stress suites' check needs it.)
//! - **An owned span's alloc bits have one writer**, the core whose cache owns it, which sets them
//!   with plain stores; `in_use` counts a cached span's free objects as in use until mark
//!   termination takes the span back.
//! - **Sweeping follows `sweepgen`**: allocation only uses swept spans.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(all(feature = "host", not(test)))]
extern crate std;

pub mod barrier;
pub mod census;
pub mod collector;
pub mod cyclelock;
mod gccore;
pub mod heap;
mod mark;
pub mod object;
pub mod pacer;
mod pages;
pub mod platform;
pub mod pointer_map;
pub mod roots;
pub mod sizeclass;
mod span;
pub mod stats;
mod sync;
pub mod verify;
pub mod wbbuf;
pub mod workload;

#[cfg(any(test, feature = "host"))]
pub mod gcbench;
#[cfg(any(test, feature = "host"))]
pub mod host;

#[cfg(test)]
mod tests;

pub use barrier::{take_checked_reports, write_pointer, BarrierMode, CheckedReport, CheckedSlot, WRITE_BARRIER};
pub use census::{CensusEntry, Exemption, RootOwner, RootPart, Unscanned};
pub use collector::{Collector, Config, Cycle, CycleProgress, CycleReport, Phase, PinnedBuf};
pub use cyclelock::{wait_while, CycleLock, CycleLockHeld, WaitWatch};
pub use heap::AllocError;
pub use object::{Gc, GcSlot, GcType, Trace};
pub use platform::{GcCore, Platform, ScanRange, StopReport, GCCORE_WBBUF_OFFSET};
pub use pointer_map::{GcField, PointerMap};
pub use stats::StatsSnapshot;
pub use sync::{preemptible_lockings, set_preemptible_check};
pub use verify::{Around, Miss, MissCause, AROUND_WORDS};
pub use wbbuf::WbBuf;
