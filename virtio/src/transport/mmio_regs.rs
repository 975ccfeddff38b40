//! The virtio-mmio register block (virtio 1.2, 4.2.2), as names. Driver logic says
//! `Reg::QueueNumMax`; only [`VolatileRegisters`] turns a name into an address.

use core::ptr::NonNull;

/// virtio-mmio registers, valued by their offset from the block's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Reg {
    /// R: 0x74726976 ("virt").
    MagicValue = 0x000,
    /// R: 2 for modern devices, 1 for legacy.
    Version = 0x004,
    /// R: device type; 0 = empty slot.
    DeviceId = 0x008,
    /// R: subsystem vendor id.
    VendorId = 0x00c,
    /// R: 32 feature bits, selected by `DeviceFeaturesSel`.
    DeviceFeatures = 0x010,
    /// W: which 32-bit word `DeviceFeatures` shows.
    DeviceFeaturesSel = 0x014,
    /// W: 32 accepted feature bits, selected by `DriverFeaturesSel`.
    DriverFeatures = 0x020,
    /// W: which 32-bit word `DriverFeatures` takes.
    DriverFeaturesSel = 0x024,
    /// W: which queue the Queue* registers address.
    QueueSel = 0x030,
    /// R: maximum size of the selected queue; 0 = no such queue.
    QueueNumMax = 0x034,
    /// W: size the driver chose for the selected queue.
    QueueNum = 0x038,
    /// RW: 1 = the selected queue is live.
    QueueReady = 0x044,
    /// W: queue index with new available buffers.
    QueueNotify = 0x050,
    /// R: bit 0 used buffer, bit 1 config change.
    InterruptStatus = 0x060,
    /// W: acknowledges the InterruptStatus bits written.
    InterruptAck = 0x064,
    /// RW: the device status byte.
    Status = 0x070,
    /// W: descriptor table address, low 32 bits.
    QueueDescLow = 0x080,
    /// W: descriptor table address, high 32 bits.
    QueueDescHigh = 0x084,
    /// W: available ring address, low 32 bits.
    QueueDriverLow = 0x090,
    /// W: available ring address, high 32 bits.
    QueueDriverHigh = 0x094,
    /// W: used ring address, low 32 bits.
    QueueDeviceLow = 0x0a0,
    /// W: used ring address, high 32 bits.
    QueueDeviceHigh = 0x0a4,
    /// R: configuration atomicity counter.
    ConfigGeneration = 0x0fc,
}

/// Offset of the device-specific configuration space.
pub const CONFIG_OFFSET: usize = 0x100;
/// Size of one virtio-mmio slot on QEMU `virt` (bytes).
pub const SLOT_SIZE: usize = 0x200;
/// "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;

/// Access to a virtio-mmio register block: real volatile MMIO in the kernel, a device model in
/// host tests.
pub trait RegisterBlock {
    /// Reads a 32-bit register.
    fn read(&self, reg: Reg) -> u32;
    /// Writes a 32-bit register.
    fn write(&self, reg: Reg, value: u32);
    /// Reads 32 bits of device configuration at `offset` (4-aligned) from its start.
    fn read_config(&self, offset: usize) -> u32;
    /// Writes 32 bits of device configuration at `offset` (4-aligned).
    fn write_config(&self, offset: usize, value: u32);
}

/// The real register block: volatile 32-bit accesses at `base + offset`.
#[derive(Debug, Clone, Copy)]
pub struct VolatileRegisters {
    base: NonNull<u8>,
}

// SAFETY: the block is device memory; the device defines what concurrent accesses do (the kernel's
// interrupt handler acknowledging while a driver polls is how virtio-mmio is meant to be used).
unsafe impl Send for VolatileRegisters {}
// SAFETY: as above: every access is a single volatile 32-bit load or store.
unsafe impl Sync for VolatileRegisters {}

impl VolatileRegisters {
    /// # Safety
    ///
    /// `base` is the start of a mapped virtio-mmio register block of [`SLOT_SIZE`] bytes
    /// (device memory, 4-byte aligned) that stays mapped while this value or its copies live.
    pub const unsafe fn new(base: NonNull<u8>) -> Self {
        Self { base }
    }

    fn at(&self, offset: usize) -> *mut u32 {
        debug_assert!(offset.is_multiple_of(4) && offset < SLOT_SIZE);
        // SAFETY: offset < SLOT_SIZE keeps the pointer inside the block `new` was promised.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>() }
    }
}

impl RegisterBlock for VolatileRegisters {
    fn read(&self, reg: Reg) -> u32 {
        // SAFETY: an aligned register inside the mapped block (`new` contract); volatile so the
        // access happens exactly once, as MMIO requires.
        unsafe { self.at(reg as usize).read_volatile() }
    }

    fn write(&self, reg: Reg, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.at(reg as usize).write_volatile(value) }
    }

    fn read_config(&self, offset: usize) -> u32 {
        // SAFETY: as in `read`; config space lies inside the slot.
        unsafe { self.at(CONFIG_OFFSET + offset).read_volatile() }
    }

    fn write_config(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.at(CONFIG_OFFSET + offset).write_volatile(value) }
    }
}
