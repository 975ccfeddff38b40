//! The targets, one file each.

pub mod cmdline;
pub mod devicetree;
pub mod used_ring;

use crate::Target;

/// Every target, in the order `tricolor-fuzz all` runs them.
pub static ALL: [&Target; 3] = [&cmdline::TARGET, &devicetree::TARGET, &used_ring::TARGET];
