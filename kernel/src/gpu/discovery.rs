//! Finding virtio-mmio devices: every `virtio,mmio` node of the device tree, with its register
//! block and its interrupt. QEMU `virt` lists 32 slots, most of them empty; the GPU is whichever
//! slot reads device id 16.

use alloc::vec::Vec;
use core::ptr::NonNull;
use fdt::Fdt;
use tricolor_virtio::transport::device_id;
use tricolor_virtio::transport::mmio_regs::SLOT_SIZE;
use tricolor_virtio::{Error, MmioTransport, Transport};

use crate::devicetree::gic_interrupt;
pub use crate::devicetree::DeviceIrq;

/// One `virtio,mmio` node.
#[derive(Clone, Copy, Debug)]
pub struct MmioSlot {
    pub base: usize,
    pub size: usize,
    pub irq: Option<DeviceIrq>,
}

/// Every `virtio,mmio` node of the device tree at `dtb_addr`, in device-tree order.
pub fn virtio_mmio_slots(dtb_addr: usize) -> Vec<MmioSlot> {
    // SAFETY: boot validated the device tree at this address (devicetree::discover), and the
    // frame allocator keeps its pages reserved and unwritten for the whole run.
    let Ok(fdt) = (unsafe { Fdt::from_ptr(dtb_addr as *const u8) }) else { return Vec::new() };
    fdt.all_nodes()
        .filter(|node| node.compatible().is_some_and(|c| c.all().any(|s| s == "virtio,mmio")))
        .filter_map(|node| {
            let reg = node.reg()?.next()?;
            let irq = node.property("interrupts").and_then(|p| gic_interrupt(p.value));
            Some(MmioSlot { base: reg.starting_address as usize, size: reg.size.unwrap_or(SLOT_SIZE), irq })
        })
        .collect()
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
pub fn find_gpu(dtb_addr: usize) -> Probe {
    let slots = virtio_mmio_slots(dtb_addr);
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
