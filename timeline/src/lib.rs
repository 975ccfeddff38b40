//! The per-core GC state timeline: what each core was doing (running mutators, pausing, marking,
//! flushing its wbBuf, sweeping, halted), as a sequence of `(timestamp, state)` transitions.
//!
//! One recorder per core, written only by its own core, read by anyone: the dashboard's per-core
//! bars read its running totals, `cargo xtask bench` turns a dump of every core's transitions
//! into minimum mutator utilisation curves, and `cargo xtask trace` into a timeline (Chrome trace
//! JSON and SVG). No dependencies and `no_std` (the dump decoder and the MMU math use `alloc`),
//! so the same code runs in the kernel and is tested on the host.
//!
//! # Contents
//! - [`state`]: the states ([`State`]) and what each counts as for utilisation ([`Category`]).
//! - [`recorder`]: the per-core ring of transitions ([`Recorder`]): lock-free, no allocation,
//!   a handful of instructions per transition.
//! - [`dump`]: the compact text form a kernel prints the rings in at the end of a run, and its
//!   decoder ([`dump::Timeline`]).
//! - [`mmu`]: minimum mutator utilisation over windows (Cheng and Blelloch), aggregated over
//!   cores with halted time excluded.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod dump;
pub mod mmu;
pub mod recorder;
pub mod state;

pub use recorder::{Event, Recorder, Snapshot};
pub use state::{Category, State};
