//! GICv2 (QEMU `virt`'s default interrupt controller): the distributor routes interrupts, each
//! core's CPU interface acknowledges and completes them. Interrupt ids: 0-15 SGIs (software,
//! core-to-core), 16-31 PPIs (per-core: the timer), 32+ SPIs (devices: UART, virtio-mmio).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    DistributorRegisters {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => typer: ReadOnly<u32>),
        (0x008 => _reserved0),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => _reserved1),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved2),
        (0x800 => itargetsr: [ReadWrite<u32>; 255]),
        (0xbfc => _reserved3),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved4),
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => @END),
    }
}

register_structs! {
    CpuInterfaceRegisters {
        (0x00 => ctlr: ReadWrite<u32>),
        (0x04 => pmr: ReadWrite<u32>),
        (0x08 => _reserved0),
        (0x0c => iar: ReadOnly<u32>),
        (0x10 => eoir: WriteOnly<u32>),
        (0x14 => @END),
    }
}

/// The interrupt id the CPU interface returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;

/// A GICv2 at the addresses the device tree gives.
pub struct Gic {
    distributor: usize,
    cpu_interface: usize,
}

impl Gic {
    /// # Safety
    /// The two addresses must be the GICv2 distributor and CPU interface, mapped as device memory
    /// for as long as the `Gic` is used.
    pub const unsafe fn new(distributor: usize, cpu_interface: usize) -> Self {
        Self { distributor, cpu_interface }
    }

    fn gicd(&self) -> &DistributorRegisters {
        // SAFETY: guaranteed by the contract of `new`.
        unsafe { &*(self.distributor as *const DistributorRegisters) }
    }

    fn gicc(&self) -> &CpuInterfaceRegisters {
        // SAFETY: guaranteed by the contract of `new`.
        unsafe { &*(self.cpu_interface as *const CpuInterfaceRegisters) }
    }

    /// Enables the distributor (boot core, once).
    pub fn init_distributor(&self) {
        self.gicd().ctlr.set(1);
    }

    /// Enables this core's CPU interface and lets every priority through.
    pub fn init_cpu_interface(&self) {
        self.gicc().pmr.set(0xff);
        self.gicc().ctlr.set(1);
    }

    /// The calling core's CPU-interface bit as SGI targets name it: GICD_ITARGETSR0..7 are banked
    /// and read-only, each byte the reading processor's own mask (GICv2 spec, GICD_ITARGETSRn);
    /// `None` on a uniprocessor GIC, where they read as zero.
    pub fn this_cpu_target(&self) -> Option<u8> {
        Some((self.gicd().itargetsr[0].get() & 0xff) as u8).filter(|&t| t != 0)
    }

    /// Enables interrupt `id` (for SGIs/PPIs: on the calling core only; those registers are banked),
    /// routing an SPI to core 0.
    pub fn enable(&self, id: u32, level_triggered: bool) {
        let (word, bit) = ((id / 32) as usize, id % 32);
        if id >= 32 {
            let target = &self.gicd().itargetsr[(id / 4) as usize];
            let shift = (id % 4) * 8;
            target.set((target.get() & !(0xff << shift)) | (1 << shift));
            let cfg = &self.gicd().icfgr[(id / 16) as usize];
            let edge_bit = 1 << ((id % 16) * 2 + 1);
            cfg.set(if level_triggered { cfg.get() & !edge_bit } else { cfg.get() | edge_bit });
        }
        let priority = &self.gicd().ipriorityr[(id / 4) as usize];
        let shift = (id % 4) * 8;
        priority.set((priority.get() & !(0xff << shift)) | (0x80 << shift));
        self.gicd().isenabler[word].set(1 << bit);
    }

    /// Disables interrupt `id`.
    pub fn disable(&self, id: u32) {
        self.gicd().icenabler[(id / 32) as usize].set(1 << (id % 32));
    }

    /// Acknowledges the highest-priority pending interrupt: returns the raw IAR value (pass it to
    /// [`Self::end`]) and the interrupt id ([`SPURIOUS`] if none).
    pub fn acknowledge(&self) -> (u32, u32) {
        let iar = self.gicc().iar.get();
        (iar, iar & 0x3ff)
    }

    /// Signals the end of handling an acknowledged interrupt.
    pub fn end(&self, iar: u32) {
        self.gicc().eoir.set(iar);
    }

    /// Sends software-generated interrupt `sgi` (0..16) to every core but the caller.
    pub fn send_sgi_to_others(&self, sgi: u32) {
        // TargetListFilter = 0b01: all cores except the requesting one. The DSB makes the caller's
        // prior memory writes (e.g. a stop-the-world request flag) visible before the interrupt.
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        self.gicd().sgir.set((0b01 << 24) | (sgi & 0xf));
    }

    /// Sends SGI `sgi` to the cores in `targets` (bit n = core interface n).
    pub fn send_sgi(&self, sgi: u32, targets: u8) {
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        self.gicd().sgir.set(((targets as u32) << 16) | (sgi & 0xf));
    }
}
