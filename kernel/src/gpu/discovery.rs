//! Finding virtio-mmio devices: every `virtio,mmio` node of the device tree, with its register
//! block and its interrupt. QEMU `virt` lists 32 slots, most of them empty; the GPU is whichever
//! slot reads device id 16.

use alloc::vec::Vec;
use core::ptr::NonNull;
use tricolor_virtio::transport::device_id;
use tricolor_virtio::transport::mmio_regs::SLOT_SIZE;
use tricolor_virtio::{Error, MmioTransport, Transport};

pub use tricolor_kernel::dtb::{DeviceIrq, MmioSlot};

/// Every `virtio,mmio` node of the device tree, in device-tree order.
pub fn virtio_mmio_slots(dtb: &[u8]) -> Vec<MmioSlot> {
    tricolor_kernel::dtb::virtio_mmio_slots(dtb, SLOT_SIZE)
}

/// What probing the slots found.
pub struct Probe {
    /// The first GPU and its slot.
    pub gpu: Option<(MmioTransport, MmioSlot)>,
    /// Slots with a virtio device of any kind.
    pub devices: usize,
    /// Slots probed.
    pub slots: usize,
}

/// Probes every slot and keeps the first GPU.
pub fn find_gpu(dtb: &[u8]) -> Probe {
    let slots = virtio_mmio_slots(dtb);
    let mut probe = Probe { gpu: None, devices: 0, slots: slots.len() };
    for slot in slots {
        if slot.size < SLOT_SIZE {
            log::warn!("virtio-mmio {:#x}: register block of {:#x} bytes, need {SLOT_SIZE:#x}", slot.base, slot.size);
            continue;
        }
        let Some(base) = NonNull::new(slot.base as *mut u8) else { continue };
        // SAFETY: the device tree names this as a virtio-mmio register block; it lies in the device
        // region vm::init identity-maps as Device-nGnRE for the whole run, and nothing else drives
        // it (a transport for a non-GPU slot is dropped right away without touching the device).
        match unsafe { MmioTransport::new(base) } {
            Ok(transport) => {
                probe.devices += 1;
                log::debug!("virtio-mmio {:#x}: device id {}", slot.base, transport.device_id());
                if transport.device_id() == device_id::GPU && probe.gpu.is_none() {
                    probe.gpu = Some((transport, slot));
                }
            }
            Err(Error::NoDevice) => {}
            Err(e) => log::warn!("virtio-mmio {:#x}: {e}", slot.base),
        }
    }
    probe
}
