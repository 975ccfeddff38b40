//! tricolor's virtio layer: a virtio-mmio (modern) transport, a split virtqueue whose barriers
//! are named, commented and counted, and a VirtIO GPU 2D driver.
//!
//! Nothing here knows about aarch64 or where memory comes from: DMA memory comes through
//! [`Hal`], registers through [`transport::mmio_regs::RegisterBlock`], time through
//! [`perf::Clock`]. That is what lets the ring logic and the GPU command sequence run as host
//! tests against a simulated device (`sim`, test builds only).
//!
//! Contents, bottom up:
//! - [`error`]: the [`Error`] enum.
//! - [`hal`]: the [`Hal`] trait for DMA pages, and [`Segment`] (one piece of a scatter list).
//! - [`ring`]: the split virtqueue's memory layout and `need_event`.
//! - [`fence`]: the named, counted DMA barriers and the [`FenceStrategy`] experiment.
//! - [`queue`]: [`VirtQueue`], the driver side of a split virtqueue.
//! - [`transport`]: the [`Transport`] trait and [`MmioTransport`].
//! - [`perf`]: the caller's clock and per-command statistics.
//! - [`gpu`]: the VirtIO GPU 2D driver.
//! - `sim` (tests, or the `sim` feature): simulated devices for host tests and the fuzzer.
#![cfg_attr(not(any(test, feature = "sim")), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod error;
pub mod fence;
pub mod gpu;
pub mod hal;
pub mod perf;
pub mod queue;
pub mod ring;
pub mod transport;

pub use error::{Error, Result};
pub use fence::{FenceCounts, FenceStrategy};
pub use gpu::{GpuConfig, GpuDevice};
pub use hal::{Direction, Hal, PhysAddr, Segment};
pub use perf::{Clock, PerfSnapshot};
pub use queue::{QueueStats, Token, Used, VirtQueue};
pub use transport::mmio::MmioTransport;
pub use transport::{DeviceStatus, InterruptStatus, Transport};

#[cfg(any(test, feature = "sim"))]
pub mod sim;
