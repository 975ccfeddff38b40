//! `suite=graph`: seeded random object-graph mutation on every core (allocate with mixed sizes,
//! rewire, drop, hide children in roots), the collector's main stress workload
//! (`gc::workload`, shared with the `gc-*` scenarios).

use super::{Census, Length, Suite};
use crate::gc::workload;
use alloc::string::String;
use core::sync::atomic::Ordering;

pub const SUITE: Suite = Suite {
    name: "graph",
    about: "random object-graph mutation: allocate (mixed sizes), rewire, drop, hide children in roots",
    length: Length::Cycles,
    exercises_barrier: true,
    prepare,
    mutate,
    check,
    finish,
};

fn prepare(_: &tricolor_kernel::cmdline::Config<'_>) -> Result<(), String> {
    workload::reset();
    Ok(())
}

fn mutate(seed: u64) {
    workload::mutate(seed, &|| !super::stopping());
}

fn check() -> Census {
    let (reachable, corrupt) = workload::check_reachable();
    Census { reachable, corrupt }
}

fn finish() -> Result<(), String> {
    match workload::CORRUPT.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(alloc::format!("mutators walked into {n} corrupt nodes")),
    }
}
