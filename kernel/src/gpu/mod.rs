//! The display: a VirtIO GPU found through the device tree, driven by `tricolor_virtio`, showing a
//! framebuffer from the source `fb=` names.
//!
//! - `discovery`: `virtio,mmio` nodes of the device tree, probed for the GPU (device id 16).
//! - `hal`: DMA pages for the driver from the frame allocator; `clock`: its timer.
//! - `completion`: polling or interrupt completion (`virtio.complete=`).
//! - `framebuffer`: the framebuffer sources (`fb=static|pages|gc|none`) and their fallbacks.
//! - `display`: bring-up, presenting full frames and dirty rectangles, `[VIRTIO PERF]` lines.
//! - `canvas`: drawing (the font is `tricolor_kernel::screen::font`); `pattern`: the test
//!   pattern and the live panel.
//! - `dashboard`: the collector's live dashboard, laid out for the display's size
//!   (`tricolor_kernel::screen::layout`), refreshed with dirty rectangles.
//! - `panel`: the test pattern and its panel refreshed from core 0's idle loop (`test=gpu-pattern`).
//!
//! No GPU is a warning, not a crash: the kernel runs on without a display.

pub mod canvas;
mod clock;
pub mod completion;
pub mod dashboard;
pub mod discovery;
mod display;
pub mod framebuffer;
mod hal;
mod panel;
pub mod pattern;

pub use display::{bring_up, BringUpError, Display};
pub use panel::{idle_poll, report_missing, start_demo};
