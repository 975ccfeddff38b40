//! A virtio-mmio register model: the registers behave as 4.2.2 says (feature words selected by
//! the Sel registers, per-queue registers selected by QueueSel, reset clears state, FEATURES_OK
//! may be refused), access-direction mistakes panic, and a device thread starts at DRIVER_OK.

use std::sync::{Arc, Mutex};

use crate::queue::QueueAddresses;
use crate::transport::mmio_regs::{Reg, RegisterBlock, MAGIC};

use super::device_queue::{Chain, DeviceQueue};
use super::device_thread::{DeviceThread, Doorbell, InterruptTiming, IrqLine};

/// Per-queue registers.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueRegs {
    /// QueueNumMax.
    pub num_max: u32,
    /// QueueNum.
    pub num: u32,
    /// QueueReady.
    pub ready: u32,
    /// Desc/Driver/Device, assembled from low/high halves.
    pub desc: u64,
    /// Available ring address.
    pub driver: u64,
    /// Used ring address.
    pub device: u64,
}

/// What a device serves once live.
pub type Handler = Box<dyn FnMut(&Chain) -> u32 + Send>;

/// The registers' state.
pub struct MmioState {
    /// MagicValue.
    pub magic: u32,
    /// Version.
    pub version: u32,
    /// DeviceID.
    pub device_id: u32,
    /// Offered features.
    pub device_features: u64,
    device_features_sel: u32,
    /// Accepted features as written by the driver.
    pub driver_features: u64,
    driver_features_sel: u32,
    queue_sel: u32,
    /// Queues.
    pub queues: Vec<QueueRegs>,
    /// Status byte.
    pub status: u32,
    /// Every status value written, in order.
    pub status_writes: Vec<u32>,
    /// Refuse FEATURES_OK (the device cannot work with the accepted features).
    pub reject_features_ok: bool,
    /// Config space, in 32-bit words.
    pub config: Vec<u32>,
    /// QueueNotify writes.
    pub notifies: Vec<u32>,
    /// Interrupt acknowledgements written.
    pub acks: Vec<u32>,
    /// When the device thread reads `used_event` (set before DRIVER_OK).
    pub interrupt_timing: InterruptTiming,
    handler: Option<Handler>,
    device: Option<DeviceThread>,
}

/// A simulated virtio-mmio device. Share it with `Arc`: the transport owns one clone, the test
/// keeps another to look inside.
pub struct FakeMmio {
    /// Register state.
    pub state: Mutex<MmioState>,
    /// QueueNotify doorbell for the device thread.
    pub doorbell: Arc<Doorbell>,
    /// The interrupt line.
    pub irq: Arc<IrqLine>,
}

impl FakeMmio {
    /// A modern device of type `device_id` offering `features`, with one queue of `num_max`.
    pub fn new(device_id: u32, features: u64, num_max: u32) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(MmioState {
                magic: MAGIC,
                version: 2,
                device_id,
                device_features: features,
                device_features_sel: 0,
                driver_features: 0,
                driver_features_sel: 0,
                queue_sel: 0,
                queues: vec![QueueRegs { num_max, ..Default::default() }],
                status: 0,
                status_writes: Vec::new(),
                reject_features_ok: false,
                config: vec![0; 16],
                notifies: Vec::new(),
                acks: Vec::new(),
                interrupt_timing: InterruptTiming::Prompt,
                handler: None,
                device: None,
            }),
            doorbell: Arc::new(Doorbell::default()),
            irq: Arc::new(IrqLine::default()),
        })
    }

    /// Serve queue 0 with `handler` on a device thread once the driver sets DRIVER_OK.
    pub fn serve_with(&self, handler: Handler) {
        self.state.lock().unwrap().handler = Some(handler);
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut MmioState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

fn set_half(word: &mut u64, high: bool, value: u32) {
    let shift = if high { 32 } else { 0 };
    *word = (*word & !(0xffff_ffffu64 << shift)) | ((value as u64) << shift);
}

impl RegisterBlock for Arc<FakeMmio> {
    fn read(&self, reg: Reg) -> u32 {
        if reg == Reg::InterruptStatus {
            return self.irq.status.load(std::sync::atomic::Ordering::Acquire);
        }
        let s = self.state.lock().unwrap();
        let q = s.queues.get(s.queue_sel as usize).copied().unwrap_or_default();
        match reg {
            Reg::MagicValue => s.magic,
            Reg::Version => s.version,
            Reg::DeviceId => s.device_id,
            Reg::VendorId => 0x554d_4551,
            Reg::DeviceFeatures => match s.device_features_sel {
                0 => s.device_features as u32,
                1 => (s.device_features >> 32) as u32,
                _ => 0,
            },
            Reg::QueueNumMax => q.num_max,
            Reg::QueueReady => q.ready,
            Reg::Status => s.status,
            Reg::ConfigGeneration => 0,
            other => panic!("driver read write-only register {other:?}"),
        }
    }

    fn write(&self, reg: Reg, value: u32) {
        let mut stop = None;
        {
            let mut s = self.state.lock().unwrap();
            let sel = s.queue_sel as usize;
            match reg {
                Reg::DeviceFeaturesSel => s.device_features_sel = value,
                Reg::DriverFeaturesSel => s.driver_features_sel = value,
                Reg::DriverFeatures => {
                    let high = match s.driver_features_sel {
                        0 => false,
                        1 => true,
                        other => panic!("DriverFeaturesSel {other}"),
                    };
                    set_half(&mut s.driver_features, high, value);
                }
                Reg::QueueSel => s.queue_sel = value,
                Reg::QueueNotify => {
                    s.notifies.push(value);
                    self.doorbell.ring();
                }
                Reg::InterruptAck => {
                    s.acks.push(value);
                    self.irq.status.fetch_and(!value, std::sync::atomic::Ordering::AcqRel);
                }
                Reg::Status => {
                    s.status_writes.push(value);
                    if value == 0 {
                        s.driver_features = 0;
                        for q in &mut s.queues {
                            *q = QueueRegs { num_max: q.num_max, ..Default::default() };
                        }
                        self.irq.status.store(0, std::sync::atomic::Ordering::Release);
                        stop = s.device.take();
                    }
                    let features_ok = 8;
                    s.status = if s.reject_features_ok { value & !features_ok } else { value };
                    let driver_ok = 4;
                    if value & driver_ok != 0 && s.device.is_none() {
                        if let Some(handler) = s.handler.take() {
                            let q = s.queues[0];
                            assert_eq!(q.ready, 1, "DRIVER_OK before queue 0 was ready");
                            let event_idx = s.driver_features & (1 << 29) != 0;
                            let addresses = QueueAddresses { desc: q.desc, driver: q.driver, device: q.device };
                            // SAFETY: the driver gave these ring addresses and keeps the queue
                            // alive until it resets the device, which stops this thread.
                            let queue = unsafe { DeviceQueue::attach(addresses, q.num as u16, event_idx) };
                            let (bell, irq, timing) = (self.doorbell.clone(), self.irq.clone(), s.interrupt_timing);
                            s.device = Some(DeviceThread::spawn_with(queue, bell, irq, timing, handler));
                        }
                    }
                }
                Reg::QueueNum
                | Reg::QueueReady
                | Reg::QueueDescLow
                | Reg::QueueDescHigh
                | Reg::QueueDriverLow
                | Reg::QueueDriverHigh
                | Reg::QueueDeviceLow
                | Reg::QueueDeviceHigh => {
                    let q = s.queues.get_mut(sel).unwrap_or_else(|| panic!("queue {sel} does not exist"));
                    match reg {
                        Reg::QueueNum => q.num = value,
                        Reg::QueueReady => q.ready = value,
                        Reg::QueueDescLow => set_half(&mut q.desc, false, value),
                        Reg::QueueDescHigh => set_half(&mut q.desc, true, value),
                        Reg::QueueDriverLow => set_half(&mut q.driver, false, value),
                        Reg::QueueDriverHigh => set_half(&mut q.driver, true, value),
                        Reg::QueueDeviceLow => set_half(&mut q.device, false, value),
                        _ => set_half(&mut q.device, true, value),
                    }
                }
                other => panic!("driver wrote read-only register {other:?}"),
            }
        }
        if let Some(device) = stop {
            let _served = device.stop();
        }
    }

    fn read_config(&self, offset: usize) -> u32 {
        assert_eq!(offset % 4, 0);
        self.state.lock().unwrap().config[offset / 4]
    }

    fn write_config(&self, offset: usize, value: u32) {
        assert_eq!(offset % 4, 0);
        self.state.lock().unwrap().config[offset / 4] = value;
    }
}
