//! Workloads written once, generic over the [`Platform`](crate::Platform), and driven both by the
//! host (threads standing in for cores, `crate::gcbench`) and by the kernel's suites.
//!
//! - [`gcbench`]: Boehm's GCBench (binary trees).

pub mod gcbench;
