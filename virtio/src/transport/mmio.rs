//! virtio-mmio, modern interface (version 2; virtio 1.2, 4.2). QEMU is run with
//! `-global virtio-mmio.force-legacy=false`; a legacy (version 1) device is refused with
//! [`Error::LegacyDevice`] rather than half-driven.

use core::ptr::NonNull;

use super::mmio_regs::{Reg, RegisterBlock, VolatileRegisters, MAGIC};
use super::{DeviceStatus, InterruptStatus, Transport};
use crate::queue::QueueAddresses;
use crate::{Error, Result};

/// A virtio-mmio device. `R` is the register access: [`VolatileRegisters`] in the kernel, a
/// device model in host tests.
#[derive(Debug)]
pub struct MmioTransport<R: RegisterBlock = VolatileRegisters> {
    regs: R,
    device_id: u32,
}

impl MmioTransport<VolatileRegisters> {
    /// Probes the register block at `base`: magic "virt", version 2, a device present.
    ///
    /// # Safety
    ///
    /// `base` is a mapped virtio-mmio register block (device memory, [`super::mmio_regs::SLOT_SIZE`]
    /// bytes) that stays mapped for the transport's life and is driven by nobody else.
    pub unsafe fn new(base: NonNull<u8>) -> Result<Self> {
        // SAFETY: forwarded from this function's contract.
        Self::with_registers(unsafe { VolatileRegisters::new(base) })
    }
}

/// What a virtio-mmio register block holds, read without driving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 2: modern (virtio 1.x), 1: legacy (QEMU's default for virtio-mmio).
    pub version: u32,
    /// The device type; 0: an empty slot.
    pub device_id: u32,
}

/// Reads the magic, version and device id. The three registers sit at the same offsets in the
/// legacy and the modern layout, so this tells an empty slot from a legacy device from a modern
/// one before anything is driven.
pub fn identify<R: RegisterBlock>(regs: &R) -> Result<Identity> {
    let magic = regs.read(Reg::MagicValue);
    if magic != MAGIC {
        return Err(Error::BadMagic(magic));
    }
    Ok(Identity { version: regs.read(Reg::Version), device_id: regs.read(Reg::DeviceId) })
}

impl<R: RegisterBlock> MmioTransport<R> {
    /// Probes a register block: magic, version 2 (modern), and a non-zero device id.
    pub fn with_registers(regs: R) -> Result<Self> {
        let identity = identify(&regs)?;
        match identity.version {
            2 => {}
            1 => return Err(Error::LegacyDevice),
            v => return Err(Error::UnsupportedVersion(v)),
        }
        if identity.device_id == 0 {
            return Err(Error::NoDevice);
        }
        Ok(Self { regs, device_id: identity.device_id })
    }

    /// Like [`MmioTransport::with_registers`], and also requires device type `expected`.
    pub fn with_registers_for(regs: R, expected: u32) -> Result<Self> {
        let transport = Self::with_registers(regs)?;
        if transport.device_id != expected {
            return Err(Error::WrongDevice { expected, found: transport.device_id });
        }
        Ok(transport)
    }

    /// The vendor id (QEMU: 0x554d4551 "QEMU").
    pub fn vendor_id(&self) -> u32 {
        self.regs.read(Reg::VendorId)
    }

    /// The register access, e.g. for the kernel's interrupt handler to acknowledge through a
    /// copy of it ([`acknowledge_interrupt`]).
    pub fn registers(&self) -> &R {
        &self.regs
    }

    fn select_queue(&self, queue: u16) {
        self.regs.write(Reg::QueueSel, queue as u32);
    }
}

/// Reads InterruptStatus and acknowledges exactly those causes. For the kernel's interrupt
/// handler, which holds its own copy of the registers while a driver owns the transport: the two
/// registers involved are touched by nothing else.
pub fn acknowledge_interrupt<R: RegisterBlock>(regs: &R) -> InterruptStatus {
    let status = regs.read(Reg::InterruptStatus);
    if status != 0 {
        regs.write(Reg::InterruptAck, status);
    }
    InterruptStatus(status)
}

impl<R: RegisterBlock> Transport for MmioTransport<R> {
    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn device_features(&mut self) -> u64 {
        self.regs.write(Reg::DeviceFeaturesSel, 0);
        let low = self.regs.read(Reg::DeviceFeatures) as u64;
        self.regs.write(Reg::DeviceFeaturesSel, 1);
        let high = self.regs.read(Reg::DeviceFeatures) as u64;
        (high << 32) | low
    }

    fn set_driver_features(&mut self, features: u64) {
        self.regs.write(Reg::DriverFeaturesSel, 0);
        self.regs.write(Reg::DriverFeatures, features as u32);
        self.regs.write(Reg::DriverFeaturesSel, 1);
        self.regs.write(Reg::DriverFeatures, (features >> 32) as u32);
    }

    fn status(&self) -> DeviceStatus {
        DeviceStatus(self.regs.read(Reg::Status) as u8)
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.regs.write(Reg::Status, status.0 as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.select_queue(queue);
        self.regs.read(Reg::QueueNumMax)
    }

    fn queue_ready(&mut self, queue: u16) -> bool {
        self.select_queue(queue);
        self.regs.read(Reg::QueueReady) != 0
    }

    fn setup_queue(&mut self, queue: u16, size: u16, addresses: QueueAddresses) {
        self.select_queue(queue);
        self.regs.write(Reg::QueueNum, size as u32);
        let pairs = [
            (Reg::QueueDescLow, Reg::QueueDescHigh, addresses.desc),
            (Reg::QueueDriverLow, Reg::QueueDriverHigh, addresses.driver),
            (Reg::QueueDeviceLow, Reg::QueueDeviceHigh, addresses.device),
        ];
        for (low, high, address) in pairs {
            self.regs.write(low, address as u32);
            self.regs.write(high, (address >> 32) as u32);
        }
        // QueueReady last: the device may start using the rings as soon as it reads 1.
        self.regs.write(Reg::QueueReady, 1);
    }

    // Never inlined: `cargo xtask check-fences` finds the barrier and the doorbell store here.
    #[inline(never)]
    fn notify(&mut self, queue: u16) {
        // Write barrier, then the MMIO store, as Linux's `writel` (`__iowmb()` = `dma_wmb()`):
        // the ring stores before it reach the device no later than the doorbell (Device memory
        // is not ordered against Normal memory by itself). should_notify's full barrier already
        // ordered avail.idx; this keeps notify correct for any caller.
        crate::fence::before_doorbell();
        self.regs.write(Reg::QueueNotify, queue as u32);
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        acknowledge_interrupt(&self.regs)
    }

    fn config_generation(&self) -> u32 {
        self.regs.read(Reg::ConfigGeneration)
    }

    fn read_config_u32(&self, offset: usize) -> u32 {
        self.regs.read_config(offset)
    }

    fn write_config_u32(&mut self, offset: usize, value: u32) {
        self.regs.write_config(offset, value)
    }
}
