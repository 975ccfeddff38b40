//! One GPU with its framebuffer: bring-up from the command line's settings, presenting, and the
//! `[VIRTIO PERF]` report.

use super::canvas::Canvas;
use super::clock::CounterClock;
use super::completion;
use super::discovery::{self, MmioSlot};
use super::framebuffer::{self, FbMemory};
use super::hal::KernelHal;
use super::pattern;
use crate::devicetree::Machine;
use crate::kprintln;
use core::fmt;
use core::ptr::NonNull;
use tricolor_kernel::cmdline::{Config, FbSource};
use tricolor_virtio::gpu::{Completion, Format, Framebuffer, Rect};
use tricolor_virtio::perf::COMMAND_NAMES;
use tricolor_virtio::{FenceStrategy, GpuConfig, GpuDevice, MmioTransport, PerfSnapshot};

type Gpu = GpuDevice<KernelHal, MmioTransport, CounterClock>;

/// The GPU resource the framebuffer is.
const RESOURCE_ID: u32 = 1;

/// Why there is no display.
#[derive(Debug)]
pub enum BringUpError {
    /// `fb=none`.
    Disabled,
    /// No virtio-mmio slot holds a GPU.
    NoDevice { slots: usize, devices: usize },
    /// The GPU is behind QEMU's legacy (version 1) virtio-mmio transport.
    Legacy { base: usize },
    /// The device or a command failed (a timeout included).
    Device(tricolor_virtio::Error),
    /// No framebuffer source could deliver the memory.
    NoMemory { bytes: usize },
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => write!(f, "fb=none: display not started"),
            Self::NoDevice { slots, devices } => {
                write!(f, "no virtio-gpu device ({slots} virtio-mmio slots probed, {devices} devices found)")
            }
            Self::Legacy { base } => write!(
                f,
                "virtio-gpu at {base:#x} uses the legacy virtio-mmio transport (version 1), which tricolor does not \
                 drive: run QEMU with -global virtio-mmio.force-legacy=false (cargo xtask does)"
            ),
            Self::Device(e) => write!(f, "GPU command failed: {e}"),
            Self::NoMemory { bytes } => write!(f, "no framebuffer memory for {bytes} bytes"),
        }
    }
}

/// A GPU showing a framebuffer.
pub struct Display {
    gpu: Gpu,
    fb: Framebuffer,
    memory: FbMemory,
    slot: MmioSlot,
    config: GpuConfig,
}

/// The driver settings the command line asks for.
fn driver_config(config: &Config<'_>) -> GpuConfig {
    let defaults = GpuConfig::default();
    GpuConfig {
        fence: config.virtio_fence,
        completion: config.virtio_complete,
        spin_budget: config.virtio_timeout.unwrap_or(defaults.spin_budget),
        idle: match config.virtio_complete {
            Completion::Polling => completion::poll_idle,
            Completion::Interrupt => completion::interrupt_idle,
        },
        ..defaults
    }
}

fn completion_name(c: Completion) -> &'static str {
    match c {
        Completion::Polling => "poll",
        Completion::Interrupt => "irq",
    }
}

/// Finds the GPU, initialises it, gets framebuffer memory and shows it (a first, blank frame).
pub fn bring_up(machine: &Machine, config: &Config<'_>) -> Result<Display, BringUpError> {
    if config.fb == FbSource::None {
        return Err(BringUpError::Disabled);
    }
    if config.virtio_fence.skips_fence_on_empty_polls() {
        log::warn!(
            "virtio.fence=after-progress: relaxed used.idx polls, Acquire only after progress (once \
             reported as the cause of slow GPU commands); chosen for the experiment"
        );
    }
    let probe = discovery::find_gpu(machine.dtb());
    let Some((transport, slot)) = probe.gpu else {
        return Err(match probe.legacy_gpu {
            Some(slot) => BringUpError::Legacy { base: slot.base },
            None => BringUpError::NoDevice { slots: probe.slots, devices: probe.devices },
        });
    };
    let mut gpu_config = driver_config(config);
    if gpu_config.completion == Completion::Interrupt {
        // The GIC routes SPIs to core 0 (Gic::enable), so interrupt completion needs the driver
        // there too; otherwise `wfi` would wait for an interrupt another core takes.
        match (slot.irq, crate::irq::available(), crate::percore::id()) {
            (Some(irq), true, 0) => completion::enable(slot.base, irq),
            _ => {
                log::warn!("virtio.complete=irq: no usable interrupt (GIC, device-tree entry, core 0); polling");
                gpu_config.completion = Completion::Polling;
                gpu_config.idle = completion::poll_idle;
            }
        }
    }
    let mut gpu = Gpu::new(transport, gpu_config, CounterClock).map_err(BringUpError::Device)?;
    let info = gpu.display_info().map_err(BringUpError::Device)?;
    let bytes = info.width as usize * info.height as usize * Format::BYTES_PER_PIXEL as usize;
    let memory = match framebuffer::allocate(config.fb, config.fb_required, bytes) {
        Ok(Some(memory)) => memory,
        Ok(None) => return Err(BringUpError::NoMemory { bytes }),
        Err(why) => crate::boot::refuse(format_args!(
            "fb={}: cannot hold the {}x{} display's {} KiB framebuffer: {why}",
            config.fb.name(),
            info.width,
            info.height,
            bytes >> 10
        )),
    };
    let fb =
        gpu.set_up_framebuffer(RESOURCE_ID, Format::B8G8R8X8Unorm, memory.segments()).map_err(BringUpError::Device)?;
    log::info!(
        "gpu: virtio-gpu at {:#x} (irq {:?}): {}x{} on scanout {}, framebuffer from {} ({} KiB in {} segments), \
         fence={} complete={}",
        slot.base,
        slot.irq.map(|i| i.id),
        fb.width,
        fb.height,
        fb.scanout_id,
        memory.source.name(),
        memory.bytes() >> 10,
        memory.segments().len(),
        gpu_config.fence.name(),
        completion_name(gpu_config.completion),
    );
    Ok(Display { gpu, fb, memory, slot, config: gpu_config })
}

impl Display {
    /// The framebuffer as the device knows it.
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.fb
    }

    /// The pixel memory: address and length in bytes.
    pub fn pixel_memory(&self) -> (usize, usize) {
        (self.memory.base(), self.memory.bytes())
    }

    /// Where the framebuffer memory came from (after any fallback).
    pub fn source(&self) -> FbSource {
        self.memory.source
    }

    /// A canvas over the framebuffer.
    pub fn canvas(&mut self) -> Canvas<'_> {
        let (w, h) = (self.fb.width, self.fb.height);
        Canvas::new(self.memory.pixels(), w, h)
    }

    /// Transfers `rect` to the host resource and flushes it (one frame for the statistics).
    pub fn present(&mut self, rect: Rect) -> Result<(), tricolor_virtio::Error> {
        self.gpu.present(&self.fb, rect)
    }

    /// Presents the whole surface.
    pub fn present_full(&mut self) -> Result<(), tricolor_virtio::Error> {
        self.present(self.fb.full())
    }

    /// Counters and timings so far.
    pub fn perf(&self) -> PerfSnapshot {
        self.gpu.perf()
    }

    /// The fence strategy the driver runs with.
    pub fn fence(&self) -> FenceStrategy {
        self.config.fence
    }

    /// Draws the test pattern and presents it whole. Logs "gpu: test pattern drawn" once the
    /// device has completed the flush (the screenshot command waits for that line).
    pub fn show_test_pattern(&mut self, subtitle: &str) -> Result<(), tricolor_virtio::Error> {
        pattern::draw_test_pattern(&mut self.canvas(), subtitle);
        self.present_full()?;
        log::info!("gpu: test pattern drawn ({}x{}, fb={})", self.fb.width, self.fb.height, self.source().name());
        Ok(())
    }

    /// Redraws the live panel for frame `n` and presents its dirty rectangles.
    pub fn update_panel(&mut self, n: u64) -> Result<(), tricolor_virtio::Error> {
        for rect in pattern::draw_panel(&mut self.canvas(), n) {
            self.present(rect)?;
        }
        Ok(())
    }

    /// Resets the device and brings it up again with fence strategy `fence` on the same
    /// framebuffer memory (for the fence experiment). The old driver is dropped (device reset)
    /// before the new one touches the registers.
    pub fn restart(self, fence: FenceStrategy) -> Result<Display, BringUpError> {
        let Display { gpu, memory, slot, config, .. } = self;
        drop(gpu);
        let base = NonNull::new(slot.base as *mut u8).expect("probed slot has a base");
        // SAFETY: the same register block `discovery::find_gpu` probed (device memory, mapped for
        // the whole run); the only other driver of it was dropped just above.
        let transport = unsafe { MmioTransport::new(base) }.map_err(BringUpError::Device)?;
        let config = GpuConfig { fence, ..config };
        let mut gpu = Gpu::new(transport, config, CounterClock).map_err(BringUpError::Device)?;
        let fb = gpu
            .set_up_framebuffer(RESOURCE_ID, Format::B8G8R8X8Unorm, memory.segments())
            .map_err(BringUpError::Device)?;
        Ok(Display { gpu, fb, memory, slot, config })
    }

    /// Prints one `[VIRTIO PERF]` line for `perf` (a [`PerfSnapshot::since`] difference),
    /// labelled `label`: frames/s and the per-command times next to the driver's counters.
    pub fn report(&self, label: &str, perf: &PerfSnapshot) {
        let fps_x100 = (100_000_000_000u64).checked_div(perf.mean_frame_ns()).unwrap_or(0);
        let mean_of =
            |name: &str| COMMAND_NAMES.iter().position(|n| *n == name).map_or(0, |i| perf.by_command[i].mean_ns());
        kprintln!(
            "[VIRTIO PERF] {label} fence={} complete={} fb={} size={}x{} fps={}.{:02} transfer_ns={} flush_ns={} \
             irqs_total={} {perf}",
            self.config.fence.name(),
            completion_name(self.config.completion),
            self.source().name(),
            self.fb.width,
            self.fb.height,
            fps_x100 / 100,
            fps_x100 % 100,
            mean_of("transfer_2d"),
            mean_of("flush"),
            completion::interrupts(),
        );
    }
}
