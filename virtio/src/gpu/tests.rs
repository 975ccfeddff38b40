//! The GPU command sequence against the simulated GPU behind the virtio-mmio register model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::protocol::{cmd, resp};
use super::*;
use crate::hal::{Direction, DmaRegion, Segment};
use crate::perf::Clock;
use crate::sim::gpu::{self as simgpu, GpuState};
use crate::sim::mmio::FakeMmio;
use crate::sim::InterruptTiming;
use crate::sim::TestHal;
use crate::transport::{device_id, features};
use crate::{Error, FenceStrategy, MmioTransport};
use tricolor_abi::PAGE_SIZE;

/// A clock that advances 10 ns per reading: deterministic, non-zero durations.
#[derive(Default)]
struct TickClock(AtomicU64);

impl Clock for &TickClock {
    fn now_ns(&self) -> u64 {
        self.0.fetch_add(10, Ordering::Relaxed)
    }
}

type Gpu<'c> = GpuDevice<TestHal, MmioTransport<Arc<FakeMmio>>, &'c TickClock>;

fn yield_now() {
    std::thread::yield_now();
}

fn config(fence: FenceStrategy) -> GpuConfig {
    GpuConfig { fence, spin_budget: 20_000_000, idle: yield_now, ..GpuConfig::default() }
}

/// A display small enough for Miri, the real 1280x720 otherwise.
fn display() -> (u32, u32) {
    if cfg!(miri) {
        (64, 48)
    } else {
        (simgpu::WIDTH, simgpu::HEIGHT)
    }
}

fn gpu_device<'c>(
    state: &Arc<Mutex<GpuState>>,
    cfg: GpuConfig,
    clock: &'c TickClock,
    feats: u64,
) -> (Gpu<'c>, Arc<FakeMmio>) {
    gpu_device_timed(state, cfg, clock, feats, InterruptTiming::Prompt)
}

/// A GPU whose device thread reads `used_event` with `timing`.
fn gpu_device_timed<'c>(
    state: &Arc<Mutex<GpuState>>,
    cfg: GpuConfig,
    clock: &'c TickClock,
    feats: u64,
    timing: InterruptTiming,
) -> (Gpu<'c>, Arc<FakeMmio>) {
    let fake = FakeMmio::new(device_id::GPU, feats, 256);
    fake.with(|s| s.interrupt_timing = timing);
    let st = state.clone();
    fake.serve_with(Box::new(move |chain| simgpu::serve(&st, chain)));
    let transport = MmioTransport::with_registers_for(fake.clone(), device_id::GPU).unwrap();
    (GpuDevice::new(transport, cfg, clock).unwrap(), fake)
}

/// Framebuffer memory from "somewhere": here DMA pages, handed over page by page.
struct FbMemory {
    region: DmaRegion<TestHal>,
    bytes: usize,
}

impl FbMemory {
    fn new(width: u32, height: u32) -> Self {
        let bytes = (width * height * 4) as usize;
        Self { region: DmaRegion::new(bytes, Direction::DriverToDevice).unwrap(), bytes }
    }
    fn pages(&self) -> Vec<Segment> {
        (0..self.bytes.div_ceil(PAGE_SIZE))
            .map(|p| {
                let len = PAGE_SIZE.min(self.bytes - p * PAGE_SIZE) as u32;
                Segment { phys: self.region.paddr() + (p * PAGE_SIZE) as u64, len }
            })
            .collect()
    }
    fn put(&self, fb: &Framebuffer, x: u32, y: u32, px: u32) {
        let i = (y * fb.width + x) as usize;
        // SAFETY: in bounds of the region; no command is in flight while the test draws.
        unsafe { self.region.vaddr().as_ptr().cast::<u32>().add(i).write(px) }
    }
}

fn pattern(x: u32, y: u32) -> u32 {
    0xff00_0000 | (x & 0xff) << 16 | (y & 0xff) << 8 | ((x ^ y) & 0xff)
}

#[test]
fn bring_up_full_frame_and_dirty_rectangle() {
    let (w, h) = display();
    let state = GpuState::shared(w, h);
    let clock = TickClock::default();
    let (mut gpu, _fake) =
        gpu_device(&state, config(FenceStrategy::Acquire), &clock, features::VERSION_1 | features::RING_EVENT_IDX);
    assert_eq!(gpu.features(), features::VERSION_1 | features::RING_EVENT_IDX);
    let mem = FbMemory::new(w, h);
    let fb = gpu.set_up_framebuffer(7, Format::B8G8R8A8Unorm, &mem.pages()).unwrap();
    assert_eq!((fb.width, fb.height, fb.stride, fb.scanout_id), (w, h, w * 4, 0));

    for y in 0..h {
        for x in 0..w {
            mem.put(&fb, x, y, pattern(x, y));
        }
    }
    gpu.present(&fb, fb.full()).unwrap();
    {
        let s = state.lock().unwrap();
        let r = &s.resources[&7];
        assert_eq!((r.format, r.width, r.height), (1, w, h));
        assert_eq!(r.backing, vec![(mem.region.paddr(), w * h * 4)], "contiguous pages coalesced");
        assert_eq!(s.scanout, Some(7));
        for (y, x) in [(0, 0), (h / 2, w / 3), (h - 1, w - 1)] {
            assert_eq!(r.pixels[(y * w + x) as usize], pattern(x, y));
        }
    }

    // Dirty rectangle: only it reaches the host, from the right byte offset.
    let dirty = Rect::new(w / 2, h / 4, 10, 5);
    for y in 0..h {
        for x in 0..w {
            mem.put(&fb, x, y, 0x1234_5678);
        }
    }
    gpu.present(&fb, dirty).unwrap();
    {
        let s = state.lock().unwrap();
        let r = &s.resources[&7];
        let inside = |x: u32, y: u32| x >= dirty.x && x < dirty.x + 10 && y >= dirty.y && y < dirty.y + 5;
        for y in 0..h {
            for x in 0..w {
                let want = if inside(x, y) { 0x1234_5678 } else { pattern(x, y) };
                assert_eq!(r.pixels[(y * w + x) as usize], want, "({x},{y})");
            }
        }
        assert_eq!(s.flushes.last(), Some(&(dirty.x, dirty.y, 10, 5)));
        let kinds: Vec<u32> = s.log.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                cmd::GET_DISPLAY_INFO,
                cmd::RESOURCE_CREATE_2D,
                cmd::RESOURCE_ATTACH_BACKING,
                cmd::SET_SCANOUT,
                cmd::TRANSFER_TO_HOST_2D,
                cmd::RESOURCE_FLUSH,
                cmd::TRANSFER_TO_HOST_2D,
                cmd::RESOURCE_FLUSH,
                cmd::TRANSFER_TO_HOST_2D,
                cmd::RESOURCE_FLUSH,
            ]
        );
        // Byte-for-byte: the dirty transfer, encoded by hand from the spec's field order.
        let mut want = Vec::new();
        for v in [cmd::TRANSFER_TO_HOST_2D, 0, 0, 0, 0, 0] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        for v in [dirty.x, dirty.y, 10, 5] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        let offset = (dirty.y * w * 4 + dirty.x * 4) as u64;
        want.extend_from_slice(&offset.to_le_bytes());
        want.extend_from_slice(&7u32.to_le_bytes());
        want.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(s.log[8].1, want);
    }

    let p = gpu.perf();
    assert_eq!(p.frames, 3);
    assert_eq!(p.commands.count, 10);
    assert_eq!(p.commands.errors, 0);
    assert_eq!(p.queue.completions, 10);
    assert!(p.commands.total_ns > 0 && p.frame_ns_total > 0);
    assert_eq!(p.by_command[4].count, 3, "three transfers");
    let line = p.to_string();
    assert!(line.contains("frames=3") && line.contains("commands=10"), "{line}");
}

#[test]
fn scattered_backing_is_sent_entry_by_entry() {
    let (w, h) = (16, 8); // 512 bytes of pixels: two separate 256-byte pieces
    let state = GpuState::shared(w, h);
    let clock = TickClock::default();
    let (mut gpu, _fake) = gpu_device(&state, config(FenceStrategy::Acquire), &clock, features::VERSION_1);
    let a = FbMemory::new(w, h / 2);
    let b = FbMemory::new(w, h / 2);
    let segs = [Segment { phys: a.region.paddr(), len: 256 }, Segment { phys: b.region.paddr(), len: 256 }];
    gpu.set_up_framebuffer(1, Format::X8R8G8B8Unorm, &segs).unwrap();
    let s = state.lock().unwrap();
    assert_eq!(s.resources[&1].backing, vec![(a.region.paddr(), 256), (b.region.paddr(), 256)]);
    assert_eq!(s.resources[&1].format, 4);
    // nr_entries = 2, entries follow the 32-byte header at 16 bytes each.
    let attach = &s.log[2].1;
    assert_eq!(attach.len(), 32 + 2 * 16);
    assert_eq!(u64::from_le_bytes(attach[48..56].try_into().unwrap()), b.region.paddr());
}

#[test]
fn error_response_is_reported_and_device_stays_usable() {
    let state = GpuState::shared(64, 48);
    let clock = TickClock::default();
    let (mut gpu, _fake) = gpu_device(&state, config(FenceStrategy::Acquire), &clock, features::VERSION_1);
    state.lock().unwrap().inject_error = Some((cmd::RESOURCE_CREATE_2D, resp::ERR_OUT_OF_MEMORY));
    assert_eq!(
        gpu.create_resource_2d(1, Format::B8G8R8A8Unorm, 64, 48),
        Err(Error::DeviceError { command: cmd::RESOURCE_CREATE_2D, response: resp::ERR_OUT_OF_MEMORY })
    );
    state.lock().unwrap().inject_error = None;
    gpu.create_resource_2d(1, Format::B8G8R8A8Unorm, 64, 48).unwrap();
    // The simulated device refuses a duplicate id, as QEMU does.
    assert_eq!(
        gpu.create_resource_2d(1, Format::B8G8R8A8Unorm, 64, 48),
        Err(Error::DeviceError { command: cmd::RESOURCE_CREATE_2D, response: resp::ERR_INVALID_RESOURCE_ID })
    );
    assert_eq!(
        gpu.set_scanout(3, 1, Rect::new(0, 0, 64, 48)).unwrap_err(),
        Error::DeviceError { command: cmd::SET_SCANOUT, response: resp::ERR_INVALID_SCANOUT_ID }
    );
    let p = gpu.perf();
    assert_eq!((p.commands.count, p.commands.errors), (4, 3));
    assert_eq!(
        gpu.create_resource_2d(0, Format::B8G8R8A8Unorm, 1, 1),
        Err(Error::InvalidArgument("resource id 0 is reserved"))
    );
}

#[test]
fn hung_device_times_out_reports_busy_then_recovers() {
    let state = GpuState::shared(64, 48);
    let clock = TickClock::default();
    let cfg = GpuConfig { spin_budget: 2_000, ..config(FenceStrategy::Acquire) };
    let (mut gpu, _fake) = gpu_device(&state, cfg, &clock, features::VERSION_1);
    state.lock().unwrap().stall = true;
    assert!(matches!(gpu.display_info(), Err(Error::Timeout { spins: 2_001 })));
    assert_eq!(gpu.display_info(), Err(Error::Busy), "the device still owns the buffers");
    assert_eq!(gpu.try_complete(), None);
    state.lock().unwrap().stall = false;
    // The stalled command completes late and is collected before the next one goes out.
    let mut tries = 0;
    let info = loop {
        match gpu.display_info() {
            Err(Error::Busy) if tries < 1_000_000 => {
                tries += 1;
                std::thread::yield_now();
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!((info.width, info.height), (64, 48));
    let p = gpu.perf();
    assert_eq!(p.queue.timeouts, 1);
    assert!(p.commands.errors >= 1);
}

/// Runs 20 GET_DISPLAY_INFO commands; returns the interrupts the device raised. Read after the
/// GPU is dropped: the reset stops and joins the device thread, so every interrupt it raised for
/// those completions (it raises just after publishing, maybe after the driver saw the
/// completion) is counted and visible.
fn interrupts_for_20_commands(cfg: GpuConfig, feats: u64, timing: InterruptTiming) -> u64 {
    let state = GpuState::shared(32, 16);
    let clock = TickClock::default();
    let (mut gpu, fake) = gpu_device_timed(&state, cfg, &clock, feats, timing);
    for _ in 0..20 {
        gpu.display_info().unwrap();
    }
    drop(gpu);
    fake.irq.raised.load(Ordering::Relaxed)
}

#[test]
fn polling_suppresses_interrupts() {
    // NO_INTERRUPT, or used_event parked half the index space away: "SHOULD NOT" notify.
    for feats in [features::VERSION_1, features::VERSION_1 | features::RING_EVENT_IDX] {
        let cfg = GpuConfig { completion: Completion::Polling, ..config(FenceStrategy::Acquire) };
        assert_eq!(interrupts_for_20_commands(cfg, feats, InterruptTiming::Prompt), 0, "features {feats:#x}");
    }
}

#[test]
fn interrupt_mode_without_event_idx_raises_one_per_completion() {
    // flags 0 and no EVENT_IDX: after every used entry "the device MUST send a notification"
    // (2.7.7.2), however late it looks.
    let cfg = GpuConfig { completion: Completion::Interrupt, ..config(FenceStrategy::Acquire) };
    for timing in [InterruptTiming::Prompt, InterruptTiming::Late] {
        assert_eq!(interrupts_for_20_commands(cfg, features::VERSION_1, timing), 20, "{timing:?}");
    }
}

#[test]
fn event_idx_interrupts_only_completions_the_driver_has_not_consumed() {
    // With EVENT_IDX the device MUST notify when the entry's index "was equal to used_event",
    // otherwise SHOULD NOT (2.7.7.2); the driver sets used_event to the next index it has not
    // consumed. A completion the driver polled before the device read used_event therefore gets
    // no interrupt, and one interrupt per completion is not promised (Miri's interleavings gave
    // 18 and 19 of 20). A device that always reads used_event after the driver consumed the
    // entry raises none at all:
    let polling_irq_mode = GpuConfig { completion: Completion::Interrupt, ..config(FenceStrategy::Acquire) };
    let feats = features::VERSION_1 | features::RING_EVENT_IDX;
    assert_eq!(interrupts_for_20_commands(polling_irq_mode, feats, InterruptTiming::Late), 0);

    // What is promised: a driver that sleeps until the interrupt after an empty poll is always
    // woken for a completion it has not consumed. `sleep_until_interrupt` stands in for `wfi`
    // and panics (bounded) where a real driver would stall.
    let state = GpuState::shared(32, 16);
    let clock = TickClock::default();
    let sleeping =
        GpuConfig { completion: Completion::Interrupt, idle: sleep_until_interrupt, ..config(FenceStrategy::Acquire) };
    let (mut gpu, fake) = gpu_device_timed(&state, sleeping, &clock, feats, InterruptTiming::Prompt);
    IRQ_LINE.with(|line| *line.borrow_mut() = Some(fake.irq.clone()));
    for _ in 0..20 {
        gpu.display_info().unwrap();
    }
    assert_eq!(gpu.perf().queue.completions, 20);
    // The device sets the status bit, then counts the interrupt: read the count once its thread
    // is joined (Miri seed 1 woke the driver between the two and found one sleep too many).
    drop(gpu);
    let sleeps = SLEEPS.with(|s| s.replace(0));
    let raised = fake.irq.raised.load(Ordering::Relaxed);
    assert!(sleeps <= raised && raised <= 20, "{sleeps} sleeps, {raised} interrupts");
    IRQ_LINE.with(|line| line.borrow_mut().take());
}

std::thread_local! {
    /// The interrupt line `sleep_until_interrupt` waits on (a `fn()` hook has no state).
    static IRQ_LINE: std::cell::RefCell<Option<Arc<crate::sim::IrqLine>>> = const { std::cell::RefCell::new(None) };
    /// Sleeps that ended with an interrupt.
    static SLEEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `GpuConfig::idle` for a driver that sleeps in `wfi` until the device interrupts: waits for
/// the used-buffer bit and acknowledges it (the kernel's handler), bounded so that a completion
/// that came without an interrupt fails the test instead of hanging it.
fn sleep_until_interrupt() {
    let line = IRQ_LINE.with(|line| line.borrow().clone()).expect("IRQ_LINE set by the test");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut yields = 0u64;
    // AcqRel: the raise comes after the device's used.idx publish; acquiring it here makes that
    // publish visible to the driver's next poll.
    while line.status.fetch_and(!1, Ordering::AcqRel) & 1 == 0 {
        yields += 1;
        let expired = if cfg!(miri) { yields > 20_000 } else { std::time::Instant::now() > deadline };
        assert!(!expired, "driver asleep with a completion pending and no interrupt: it would stall in wfi");
        std::thread::yield_now();
    }
    SLEEPS.with(|s| s.set(s.get() + 1));
}

#[test]
fn fences_per_frame_by_strategy() {
    let (w, h) = (32, 16);
    for strategy in FenceStrategy::ALL {
        let state = GpuState::shared(w, h);
        let clock = TickClock::default();
        let (mut gpu, _fake) =
            gpu_device(&state, config(strategy), &clock, features::VERSION_1 | features::RING_EVENT_IDX);
        let mem = FbMemory::new(w, h);
        let fb = gpu.set_up_framebuffer(1, Format::B8G8R8A8Unorm, &mem.pages()).unwrap();
        let before = gpu.perf();
        let frames = 50;
        for _ in 0..frames {
            gpu.present(&fb, Rect::new(0, 0, 8, 8)).unwrap();
        }
        let d = gpu.perf().since(&before);
        assert_eq!(d.frames, frames);
        assert_eq!(d.queue.completions, 2 * frames);
        // Two commands per frame: each one Release (publish) + one full (notify decision).
        assert_eq!(d.queue.fences.release, 2 * frames);
        assert_eq!(
            d.queue.fences.full - if strategy == FenceStrategy::SeqCst { d.queue.spins + 2 * frames } else { 0 },
            2 * frames
        );
        match strategy {
            // One Acquire per poll, empty or not.
            FenceStrategy::Acquire => assert_eq!(d.queue.fences.acquire, d.queue.spins + 2 * frames),
            FenceStrategy::SeqCst => assert_eq!(d.queue.fences.acquire, 0),
            // Only on progress.
            FenceStrategy::AfterProgress => assert_eq!(d.queue.fences.acquire, 2 * frames),
        }
        assert_eq!(d.fences_per_frame_x100(), d.queue.fences.total() * 100 / frames);
    }
}

#[test]
fn wrong_device_and_missing_queue_are_refused() {
    let fake = FakeMmio::new(device_id::BLOCK, features::VERSION_1, 64);
    let t = MmioTransport::with_registers(fake.clone()).unwrap();
    let clock = TickClock::default();
    assert_eq!(
        GpuDevice::<TestHal, _, _>::new(t, GpuConfig::default(), &clock).err(),
        Some(Error::WrongDevice { expected: device_id::GPU, found: device_id::BLOCK })
    );
    let fake = FakeMmio::new(device_id::GPU, features::VERSION_1, 0);
    let t = MmioTransport::with_registers(fake.clone()).unwrap();
    assert_eq!(
        GpuDevice::<TestHal, _, _>::new(t, GpuConfig::default(), &clock).err(),
        Some(Error::QueueUnavailable { queue: 0 })
    );
    assert_ne!(fake.with(|s| s.status) & 128, 0, "FAILED set");
}
