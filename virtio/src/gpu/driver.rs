//! The GPU driver: one control queue, one command in flight at a time, each response checked.
//!
//! The framebuffer is the caller's: a list of physical segments ([`Segment`]) whatever memory
//! they came from (GC heap, static array, page allocator). The driver only describes them to the
//! device with RESOURCE_ATTACH_BACKING.

use core::mem::size_of;
use core::ptr;

use crate::fence::FenceStrategy;
use crate::hal::{Direction, DmaRegion, Hal, Segment};
use crate::perf::{Clock, CommandStats, PerfSnapshot, COMMAND_KINDS};
use crate::queue::{Token, VirtQueue};
use crate::transport::{device_id, features, InterruptStatus, Transport};
use crate::{Error, Result};
use tricolor_abi::PAGE_SIZE;

use super::protocol::{
    cmd, config, resp, CtrlHeader, Format, MemEntry, Rect, Request, ResourceAttachBacking, ResourceCreate2d,
    ResourceFlush, RespDisplayInfo, SetScanout, TransferToHost2d, CONTROL_QUEUE,
};

/// How the driver learns a command completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Spin on the used ring (device interrupts suppressed with NO_INTERRUPT / used_event).
    Polling,
    /// Device interrupts enabled; between polls the driver calls [`GpuConfig::idle`] (e.g.
    /// `wfi`), and the kernel's interrupt handler acknowledges the device
    /// ([`GpuDevice::handle_interrupt`] or `transport::mmio::acknowledge_interrupt`).
    Interrupt,
}

/// Driver settings, from the kernel command line.
#[derive(Debug, Clone, Copy)]
pub struct GpuConfig {
    /// How polls of `used.idx` are ordered (`virtio.fence=`).
    pub fence: FenceStrategy,
    /// Polling or interrupt completion.
    pub completion: Completion,
    /// Empty polls before a command is reported as timed out.
    pub spin_budget: u64,
    /// Control queue size wanted (clamped to the device's maximum, power of two).
    pub queue_size: u16,
    /// Offer VIRTIO_F_EVENT_IDX.
    pub event_idx: bool,
    /// Called between empty polls: a spin hint when polling, a wait for the device interrupt
    /// for [`Completion::Interrupt`]. Such a hook must not sleep through an interrupt that was
    /// already handled between the driver's last poll and the hook (check a flag the handler
    /// sets with IRQs masked, then `wfi`; or let a timer tick bound the `wfi`). Each call counts
    /// against [`GpuConfig::spin_budget`].
    pub idle: fn(),
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            fence: FenceStrategy::Acquire,
            completion: Completion::Polling,
            spin_budget: 10_000_000,
            queue_size: 64,
            event_idx: true,
            idle: core::hint::spin_loop,
        }
    }
}

/// The first enabled scanout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayInfo {
    /// Scanout index.
    pub scanout_id: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A resource backed by the caller's memory and shown on a scanout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framebuffer {
    /// GPU resource id.
    pub resource_id: u32,
    /// Scanout showing it.
    pub scanout_id: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Pixel format.
    pub format: Format,
}

impl Framebuffer {
    /// Bytes of backing memory the framebuffer needs.
    pub const fn bytes(&self) -> usize {
        self.stride as usize * self.height as usize
    }

    /// The whole surface.
    pub const fn full(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }
}

/// Index into [`PerfSnapshot::by_command`].
fn command_slot(kind: u32) -> usize {
    match kind {
        cmd::GET_DISPLAY_INFO => 0,
        cmd::RESOURCE_CREATE_2D => 1,
        cmd::RESOURCE_ATTACH_BACKING => 2,
        cmd::SET_SCANOUT => 3,
        cmd::TRANSFER_TO_HOST_2D => 4,
        _ => 5,
    }
}

/// The command in flight.
struct Pending<H: Hal> {
    token: Token,
    command: u32,
    expected: u32,
    response_len: usize,
    started_ns: u64,
    /// The queue's empty-poll count at submission.
    spins_at_start: u64,
    /// Extra request memory (attach-backing entries) the device may still read.
    scratch: Option<DmaRegion<H>>,
}

/// A VirtIO GPU.
pub struct GpuDevice<H: Hal, T: Transport, C: Clock> {
    transport: T,
    control: VirtQueue<H>,
    request: DmaRegion<H>,
    response: DmaRegion<H>,
    pending: Option<Pending<H>>,
    config: GpuConfig,
    clock: C,
    features: u64,
    commands: CommandStats,
    by_command: [CommandStats; COMMAND_KINDS],
    frames: u64,
    frame_ns_total: u64,
    frame_ns_max: u64,
}

impl<H: Hal, T: Transport, C: Clock> GpuDevice<H, T, C> {
    /// Initialises the device behind `transport` (3.1.1): features, control queue, DRIVER_OK.
    /// On failure the device is marked FAILED and the error says why.
    pub fn new(mut transport: T, config: GpuConfig, clock: C) -> Result<Self> {
        if transport.device_id() != device_id::GPU {
            return Err(Error::WrongDevice { expected: device_id::GPU, found: transport.device_id() });
        }
        let optional = if config.event_idx { features::RING_EVENT_IDX } else { 0 };
        let features = transport.begin_init(0, optional)?;
        match Self::set_up(&mut transport, config, features) {
            Ok((control, request, response)) => {
                let mut gpu = Self {
                    transport,
                    control,
                    request,
                    response,
                    pending: None,
                    config,
                    clock,
                    features,
                    commands: CommandStats::default(),
                    by_command: [CommandStats::default(); COMMAND_KINDS],
                    frames: 0,
                    frame_ns_total: 0,
                    frame_ns_max: 0,
                };
                gpu.control.set_used_notifications(config.completion == Completion::Interrupt);
                Ok(gpu)
            }
            Err(e) => {
                transport.fail();
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn set_up(
        transport: &mut T,
        config: GpuConfig,
        features: u64,
    ) -> Result<(VirtQueue<H>, DmaRegion<H>, DmaRegion<H>)> {
        let max = transport.max_queue_size(CONTROL_QUEUE);
        if max == 0 {
            return Err(Error::QueueUnavailable { queue: CONTROL_QUEUE });
        }
        let wanted = config.queue_size.max(2).min(max.min(32768) as u16);
        // Largest power of two not above `wanted`.
        let size = 1u16 << (15 - wanted.leading_zeros().min(15));
        let event_idx = features & features::RING_EVENT_IDX != 0;
        let control = VirtQueue::new(CONTROL_QUEUE, size, config.fence, event_idx)?;
        transport.attach_queue(CONTROL_QUEUE, size, control.addresses())?;
        let request = DmaRegion::new(PAGE_SIZE, Direction::DriverToDevice)?;
        let response = DmaRegion::new(PAGE_SIZE, Direction::DeviceToDriver)?;
        transport.finish_init()?;
        Ok((control, request, response))
    }

    /// Negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// `num_scanouts` from the config space.
    pub fn num_scanouts(&self) -> u32 {
        self.transport.read_config_u32(config::NUM_SCANOUTS)
    }

    /// Counters and timings so far.
    pub fn perf(&self) -> PerfSnapshot {
        PerfSnapshot {
            queue: self.control.stats(),
            commands: self.commands,
            by_command: self.by_command,
            frames: self.frames,
            frame_ns_total: self.frame_ns_total,
            frame_ns_max: self.frame_ns_max,
        }
    }

    /// The transport (e.g. for the kernel to read registers for diagnostics).
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Acknowledges the device interrupt (for the kernel's handler when it owns the driver).
    pub fn handle_interrupt(&mut self) -> InterruptStatus {
        self.transport.ack_interrupt()
    }

    /// GET_DISPLAY_INFO: the first enabled scanout.
    pub fn display_info(&mut self) -> Result<DisplayInfo> {
        self.send(
            &CtrlHeader::command(cmd::GET_DISPLAY_INFO),
            None,
            resp::OK_DISPLAY_INFO,
            size_of::<RespDisplayInfo>(),
        )?;
        // SAFETY: the response region holds at least a page; the device finished writing it
        // (completion observed through the used ring's Acquire) and nothing else writes it now.
        let info: RespDisplayInfo = unsafe { ptr::read(self.response.vaddr().as_ptr().cast()) };
        info.modes
            .iter()
            .enumerate()
            .find(|(_, m)| m.enabled != 0 && m.rect.width > 0 && m.rect.height > 0)
            .map(|(i, m)| DisplayInfo { scanout_id: i as u32, width: m.rect.width, height: m.rect.height })
            .ok_or(Error::NoDisplay)
    }

    /// RESOURCE_CREATE_2D.
    pub fn create_resource_2d(&mut self, resource_id: u32, format: Format, width: u32, height: u32) -> Result<()> {
        if resource_id == 0 {
            return Err(Error::InvalidArgument("resource id 0 is reserved"));
        }
        let req = ResourceCreate2d {
            header: CtrlHeader::command(cmd::RESOURCE_CREATE_2D),
            resource_id,
            format: format as u32,
            width,
            height,
        };
        self.send_nodata(&req, None)
    }

    /// RESOURCE_ATTACH_BACKING with the caller's memory. Adjacent segments are merged, so a
    /// physically contiguous framebuffer given page by page becomes one entry.
    pub fn attach_backing(&mut self, resource_id: u32, memory: &[Segment]) -> Result<()> {
        if memory.is_empty() || memory.iter().any(|s| s.len == 0) {
            return Err(Error::EmptyBuffer);
        }
        let mut entries = alloc::vec::Vec::with_capacity(memory.len());
        for s in memory {
            match entries.last_mut() {
                Some(MemEntry { addr, length, .. })
                    if *addr + *length as u64 == s.phys && length.checked_add(s.len).is_some() =>
                {
                    *length += s.len;
                }
                _ => entries.push(MemEntry { addr: s.phys, length: s.len, padding: 0 }),
            }
        }
        let bytes = entries.len() * size_of::<MemEntry>();
        let scratch = DmaRegion::<H>::new(bytes, Direction::DriverToDevice)?;
        // SAFETY: the scratch region is fresh, at least `bytes` long, page aligned (so aligned
        // for MemEntry), and not yet visible to the device.
        unsafe {
            ptr::copy_nonoverlapping(entries.as_ptr(), scratch.vaddr().as_ptr().cast::<MemEntry>(), entries.len())
        };
        let req = ResourceAttachBacking {
            header: CtrlHeader::command(cmd::RESOURCE_ATTACH_BACKING),
            resource_id,
            nr_entries: entries.len() as u32,
        };
        self.send_nodata(&req, Some((scratch, bytes as u32)))
    }

    /// SET_SCANOUT: show `rect` of resource `resource_id` on `scanout_id` (resource 0 disables).
    pub fn set_scanout(&mut self, scanout_id: u32, resource_id: u32, rect: Rect) -> Result<()> {
        let req = SetScanout { header: CtrlHeader::command(cmd::SET_SCANOUT), rect, scanout_id, resource_id };
        self.send_nodata(&req, None)
    }

    /// TRANSFER_TO_HOST_2D: copy `rect` from the backing (starting at byte `offset`) into the
    /// host resource.
    pub fn transfer_to_host_2d(&mut self, resource_id: u32, rect: Rect, offset: u64) -> Result<()> {
        let req = TransferToHost2d {
            header: CtrlHeader::command(cmd::TRANSFER_TO_HOST_2D),
            rect,
            offset,
            resource_id,
            padding: 0,
        };
        self.send_nodata(&req, None)
    }

    /// RESOURCE_FLUSH: show `rect` of the resource on the scanouts using it.
    pub fn flush_resource(&mut self, resource_id: u32, rect: Rect) -> Result<()> {
        let req = ResourceFlush { header: CtrlHeader::command(cmd::RESOURCE_FLUSH), rect, resource_id, padding: 0 };
        self.send_nodata(&req, None)
    }

    /// The whole 2D bring-up: display info, resource, backing, scanout, a first full frame.
    /// `memory` must hold at least width * height * 4 bytes, row-major with no row padding.
    pub fn set_up_framebuffer(&mut self, resource_id: u32, format: Format, memory: &[Segment]) -> Result<Framebuffer> {
        let display = self.display_info()?;
        let fb = Framebuffer {
            resource_id,
            scanout_id: display.scanout_id,
            width: display.width,
            height: display.height,
            stride: display.width * Format::BYTES_PER_PIXEL,
            format,
        };
        let have: usize = memory.iter().map(|s| s.len as usize).sum();
        if have < fb.bytes() {
            return Err(Error::InvalidArgument("framebuffer memory smaller than the display"));
        }
        self.create_resource_2d(resource_id, format, fb.width, fb.height)?;
        self.attach_backing(resource_id, memory)?;
        self.set_scanout(fb.scanout_id, resource_id, fb.full())?;
        self.present(&fb, fb.full())?;
        Ok(fb)
    }

    /// Shows `rect` of the framebuffer: TRANSFER_TO_HOST_2D of the rectangle then
    /// RESOURCE_FLUSH. `fb.full()` is a full frame, anything smaller a dirty rectangle.
    /// Counted as one frame.
    pub fn present(&mut self, fb: &Framebuffer, rect: Rect) -> Result<()> {
        if !rect.fits_in(fb.width, fb.height) {
            return Err(Error::InvalidArgument("rectangle outside the framebuffer"));
        }
        let start = self.clock.now_ns();
        let offset = rect.y as u64 * fb.stride as u64 + rect.x as u64 * Format::BYTES_PER_PIXEL as u64;
        self.transfer_to_host_2d(fb.resource_id, rect, offset)?;
        self.flush_resource(fb.resource_id, rect)?;
        let ns = self.clock.now_ns().saturating_sub(start);
        self.frames += 1;
        self.frame_ns_total += ns;
        self.frame_ns_max = self.frame_ns_max.max(ns);
        Ok(())
    }

    fn send_nodata<R: Request>(&mut self, req: &R, extra: Option<(DmaRegion<H>, u32)>) -> Result<()> {
        self.send(req, extra, resp::OK_NODATA, size_of::<CtrlHeader>())
    }

    /// Submits one command and waits for it (bounded by the spin budget).
    fn send<R: Request>(
        &mut self,
        req: &R,
        extra: Option<(DmaRegion<H>, u32)>,
        expected: u32,
        response_len: usize,
    ) -> Result<()> {
        self.start(req, extra, expected, response_len)?;
        let idle = self.config.idle;
        let budget = self.config.spin_budget;
        let used = match self.control.poll_used(budget, idle) {
            Ok(used) => used,
            Err(e) => {
                // Timeout: the device still owns the request, response and scratch memory.
                // Keep `pending` so the next command reaps it first (or reports Busy).
                self.record_failure(e);
                return Err(e);
            }
        };
        self.finish(used.token, used.len)
    }

    /// Non-blocking completion of the command in flight, for interrupt-driven kernels:
    /// `None` while the device is still working.
    pub fn try_complete(&mut self) -> Option<Result<()>> {
        self.pending.as_ref()?;
        match self.control.try_pop_used() {
            Ok(None) => None,
            Ok(Some(used)) => Some(self.finish(used.token, used.len)),
            Err(e) => Some(Err(e)),
        }
    }

    fn start<R: Request>(
        &mut self,
        req: &R,
        extra: Option<(DmaRegion<H>, u32)>,
        expected: u32,
        response_len: usize,
    ) -> Result<()> {
        if self.pending.is_some() {
            // A timed-out command: collect it if the device has finished meanwhile.
            match self.try_complete() {
                Some(_) => {}
                None => return Err(Error::Busy),
            }
        }
        debug_assert!(size_of::<R>() <= PAGE_SIZE && response_len <= PAGE_SIZE);
        // SAFETY: no command is in flight (checked above), so the device does not access the
        // request or response pages; both are a page long and page aligned, enough for any
        // Request (at most 56 bytes) and any response (408 bytes).
        unsafe {
            ptr::write(self.request.vaddr().as_ptr().cast::<R>(), *req);
            ptr::write_bytes(self.response.vaddr().as_ptr(), 0, response_len);
        }
        let request = Segment { phys: self.request.paddr(), len: size_of::<R>() as u32 };
        let response = Segment { phys: self.response.paddr(), len: response_len as u32 };
        let (token, scratch) = match extra {
            None => (self.control.submit(&[request], &[response])?, None),
            Some((region, len)) => {
                let entries = Segment { phys: region.paddr(), len };
                (self.control.submit(&[request, entries], &[response])?, Some(region))
            }
        };
        self.pending = Some(Pending {
            token,
            command: req.kind(),
            expected,
            response_len,
            started_ns: self.clock.now_ns(),
            spins_at_start: self.control.stats().spins,
            scratch,
        });
        if self.control.should_notify() {
            self.transport.notify(CONTROL_QUEUE);
        }
        Ok(())
    }

    /// Checks the response of the command in flight and records its statistics.
    fn finish(&mut self, token: Token, written: u32) -> Result<()> {
        let pending = self.pending.take().ok_or(Error::BadUsedId(token.0 as u32))?;
        if pending.token != token {
            return Err(Error::BadUsedId(token.0 as u32));
        }
        drop(pending.scratch);
        // SAFETY: the device completed the chain (observed through the used ring with Acquire
        // ordering), so it no longer writes the response page.
        let header: CtrlHeader = unsafe { ptr::read(self.response.vaddr().as_ptr().cast()) };
        let result = if header.kind != pending.expected {
            Err(Error::DeviceError { command: pending.command, response: header.kind })
        } else if (written as usize) < pending.response_len {
            Err(Error::ResponseTooShort { expected: pending.response_len, written })
        } else {
            Ok(())
        };
        let ns = self.clock.now_ns().saturating_sub(pending.started_ns);
        let spins = self.control.stats().spins - pending.spins_at_start;
        self.commands.record(ns, spins, result.is_ok());
        self.by_command[command_slot(pending.command)].record(ns, spins, result.is_ok());
        if let Err(e) = result {
            log::warn!("virtio-gpu: {e}");
        }
        result
    }

    fn record_failure(&mut self, e: Error) {
        if let Some(p) = &self.pending {
            self.commands.errors += 1;
            self.by_command[command_slot(p.command)].errors += 1;
            log::warn!("virtio-gpu: command {:#06x}: {e}", p.command);
        }
    }
}

impl<H: Hal, T: Transport, C: Clock> Drop for GpuDevice<H, T, C> {
    fn drop(&mut self) {
        // Reset first: afterwards the device touches none of the queue, request, response or
        // scratch memory, which the fields' drops then free.
        if self.transport.reset().is_err() {
            log::error!("virtio-gpu: reset timed out; leaking DMA memory the device may use");
            if let Some(p) = self.pending.take() {
                if let Some(s) = p.scratch {
                    s.leak();
                }
            }
        }
    }
}
