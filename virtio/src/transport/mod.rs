//! How a driver reaches its device: the [`Transport`] trait (status byte, features, queues,
//! notifications, interrupts, config space) and the virtio-mmio implementation.
//!
//! The provided methods of [`Transport`] are the device initialisation sequence of virtio 1.2,
//! 3.1.1, so every transport and every driver runs it the same way.

pub mod mmio;
pub mod mmio_regs;

use crate::queue::QueueAddresses;
use crate::{Error, Result};

/// Device type ids (virtio 1.2, 5).
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// GPU.
    pub const GPU: u32 = 16;
    /// Input (keyboard, tablet).
    pub const INPUT: u32 = 18;
}

/// Feature bits independent of the device type (virtio 1.2, 6).
pub mod features {
    /// VIRTIO_F_INDIRECT_DESC.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// VIRTIO_F_EVENT_IDX: `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// VIRTIO_F_VERSION_1: a modern (virtio 1.x) device. Required by this crate.
    pub const VERSION_1: u64 = 1 << 32;
    /// VIRTIO_F_ACCESS_PLATFORM: the device sits behind an IOMMU.
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// VIRTIO_F_RING_PACKED.
    pub const RING_PACKED: u64 = 1 << 34;
}

/// The device status byte (virtio 1.2, 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceStatus(pub u8);

impl DeviceStatus {
    /// Reset value.
    pub const RESET: Self = Self(0);
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: Self = Self(1);
    /// The guest knows how to drive it.
    pub const DRIVER: Self = Self(2);
    /// The driver is set up and ready.
    pub const DRIVER_OK: Self = Self(4);
    /// Feature negotiation is complete.
    pub const FEATURES_OK: Self = Self(8);
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: Self = Self(64);
    /// The driver gave up on the device.
    pub const FAILED: Self = Self(128);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for DeviceStatus {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The InterruptStatus register (virtio 1.2, 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterruptStatus(pub u32);

impl InterruptStatus {
    /// A queue returned used buffers.
    pub const fn used_buffer(self) -> bool {
        self.0 & 1 != 0
    }
    /// The device configuration changed.
    pub const fn config_change(self) -> bool {
        self.0 & 2 != 0
    }
}

/// Spin budget for the reset handshake (status must read back 0).
const RESET_SPIN_BUDGET: u32 = 1_000_000;

/// A virtio transport. Implemented by [`mmio::MmioTransport`]; drivers are generic over it.
pub trait Transport {
    /// The device type id (e.g. [`device_id::GPU`]).
    fn device_id(&self) -> u32;
    /// All 64 feature bits the device offers.
    fn device_features(&mut self) -> u64;
    /// Writes the feature bits the driver accepts.
    fn set_driver_features(&mut self, features: u64);
    /// Reads the status byte.
    fn status(&self) -> DeviceStatus;
    /// Writes the status byte.
    fn set_status(&mut self, status: DeviceStatus);
    /// Largest size of queue `queue`; 0 if the queue does not exist.
    fn max_queue_size(&mut self, queue: u16) -> u32;
    /// Whether queue `queue` is live (QueueReady).
    fn queue_ready(&mut self, queue: u16) -> bool;
    /// Gives the device queue `queue`'s size and ring addresses and marks it ready.
    fn setup_queue(&mut self, queue: u16, size: u16, addresses: QueueAddresses);
    /// Available-buffer notification for `queue`.
    fn notify(&mut self, queue: u16);
    /// Reads and acknowledges the interrupt causes.
    fn ack_interrupt(&mut self) -> InterruptStatus;
    /// The config-space generation counter (changes when the device changes its config).
    fn config_generation(&self) -> u32;
    /// Reads a 32-bit field of the device-specific configuration space.
    fn read_config_u32(&self, offset: usize) -> u32;
    /// Writes a 32-bit field of the device-specific configuration space.
    fn write_config_u32(&mut self, offset: usize, value: u32);

    /// Resets the device and waits until its status reads 0 (bounded).
    fn reset(&mut self) -> Result<()> {
        self.set_status(DeviceStatus::RESET);
        for _ in 0..RESET_SPIN_BUDGET {
            if self.status() == DeviceStatus::RESET {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(Error::Timeout { spins: RESET_SPIN_BUDGET as u64 })
    }

    /// Steps 1-6 of the initialisation sequence (3.1.1): reset, ACKNOWLEDGE, DRIVER, feature
    /// negotiation, FEATURES_OK and its check. VIRTIO_F_VERSION_1 is always required. Returns
    /// the negotiated features. On failure the device is left with FAILED set.
    fn begin_init(&mut self, required: u64, optional: u64) -> Result<u64> {
        self.reset()?;
        self.set_status(DeviceStatus::ACKNOWLEDGE);
        self.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let required = required | features::VERSION_1;
        let offered = self.device_features();
        let missing = required & !offered;
        if missing != 0 {
            self.fail();
            return Err(Error::FeatureNegotiationFailed { missing });
        }
        let negotiated = offered & (required | optional);
        self.set_driver_features(negotiated);
        let status = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
        self.set_status(status);
        if !self.status().contains(DeviceStatus::FEATURES_OK) {
            self.fail();
            return Err(Error::FeaturesRejected);
        }
        Ok(negotiated)
    }

    /// Checks that queue `queue` exists and is free and that `size` fits, then hands the rings to
    /// the device (step 7 of 3.1.1, 4.2.3.2).
    fn attach_queue(&mut self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        if self.queue_ready(queue) {
            return Err(Error::QueueUnavailable { queue });
        }
        let max = self.max_queue_size(queue);
        if max == 0 {
            return Err(Error::QueueUnavailable { queue });
        }
        if size as u32 > max {
            return Err(Error::InvalidQueueSize { requested: size, max });
        }
        self.setup_queue(queue, size, addresses);
        Ok(())
    }

    /// Step 8 of 3.1.1: the driver is live.
    fn finish_init(&mut self) -> Result<()> {
        let status = self.status();
        if status.contains(DeviceStatus::DEVICE_NEEDS_RESET) {
            self.fail();
            return Err(Error::DeviceNeedsReset);
        }
        self.set_status(status | DeviceStatus::DRIVER_OK);
        Ok(())
    }

    /// Tells the device the driver gave up (sets FAILED, keeping the other bits).
    fn fail(&mut self) {
        let status = self.status();
        self.set_status(status | DeviceStatus::FAILED);
    }
}

#[cfg(test)]
mod tests;
