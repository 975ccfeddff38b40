//! VirtIO GPU, 2D only (virtio 1.2, 5.7).
//!
//! - [`protocol`]: the wire structs, sizes asserted against the spec.
//! - [`driver`]: [`GpuDevice`]: initialisation, the 2D command set, completion by polling or by
//!   interrupt, and per-command statistics.

pub mod driver;
pub mod protocol;

pub use driver::{Completion, DisplayInfo, Framebuffer, GpuConfig, GpuDevice};
pub use protocol::{Format, Rect};

#[cfg(test)]
mod tests;
