//! Finding virtio-mmio devices: every `virtio,mmio` node of the device tree, with its register
//! block and its interrupt. QEMU `virt` lists 32 slots, most of them empty; the GPU is the first
//! slot that reads device id 16. tricolor drives the modern (version 2) transport only: a GPU
//! behind QEMU's default legacy transport is reported, in one line with the fix, by `bring_up`.

use alloc::vec::Vec;
use core::ptr::NonNull;
use tricolor_virtio::transport::device_id;
use tricolor_virtio::transport::mmio::identify;
use tricolor_virtio::transport::mmio_regs::{VolatileRegisters, SLOT_SIZE};
use tricolor_virtio::MmioTransport;

pub use tricolor_kernel::dtb::{DeviceIrq, MmioSlot};

/// Every `virtio,mmio` node of the device tree, in device-tree order.
pub fn virtio_mmio_slots(dtb: &[u8]) -> Vec<MmioSlot> {
    tricolor_kernel::dtb::virtio_mmio_slots(dtb, SLOT_SIZE)
}

/// What probing the slots found.
pub struct Probe {
    /// The first GPU and its slot.
    pub gpu: Option<(MmioTransport, MmioSlot)>,
    /// The first GPU behind a legacy (version 1) virtio-mmio transport, which is not driven.
    pub legacy_gpu: Option<MmioSlot>,
    /// Slots with a virtio device of any kind.
    pub devices: usize,
    /// Slots probed.
    pub slots: usize,
}

/// Probes every slot and keeps the first GPU; a GPU after the first gets one log line. Empty
/// slots are skipped quietly whatever their transport version (QEMU's legacy mode shows all 32 as
/// version 1).
pub fn find_gpu(dtb: &[u8]) -> Probe {
    let slots = virtio_mmio_slots(dtb);
    let mut probe = Probe { gpu: None, legacy_gpu: None, devices: 0, slots: slots.len() };
    for slot in slots {
        if slot.size < SLOT_SIZE {
            log::warn!("virtio-mmio {:#x}: register block of {:#x} bytes, need {SLOT_SIZE:#x}", slot.base, slot.size);
            continue;
        }
        let Some(base) = NonNull::new(slot.base as *mut u8) else { continue };
        // SAFETY: the device tree names this as a virtio-mmio register block; it lies in the device
        // region vm::init identity-maps as Device-nGnRE for the whole run; identify only reads the
        // magic, version and device id, which drive nothing.
        let identity = match identify(&unsafe { VolatileRegisters::new(base) }) {
            Ok(identity) => identity,
            Err(e) => {
                log::warn!("virtio-mmio {:#x}: {e}", slot.base);
                continue;
            }
        };
        if identity.device_id == 0 {
            continue;
        }
        probe.devices += 1;
        log::debug!("virtio-mmio {:#x}: device id {} (version {})", slot.base, identity.device_id, identity.version);
        if identity.device_id != device_id::GPU {
            continue;
        }
        if let Some((_, first)) = &probe.gpu {
            log::info!(
                "gpu: another virtio-gpu at {:#x} is not driven (tricolor drives one display: the first, at {:#x})",
                slot.base,
                first.base
            );
            continue;
        }
        if identity.version == 1 {
            probe.legacy_gpu.get_or_insert(slot);
            continue;
        }
        // SAFETY: as above; nothing else drives this block (the GPU is driven once, here).
        match unsafe { MmioTransport::new(base) } {
            Ok(transport) => probe.gpu = Some((transport, slot)),
            Err(e) => log::warn!("virtio-mmio {:#x}: {e}", slot.base),
        }
    }
    probe
}
