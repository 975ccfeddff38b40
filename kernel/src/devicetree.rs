//! What machine we are on: finds the flattened device tree QEMU hands us and reads it with
//! `tricolor_kernel::dtb` (the reading itself needs no hardware, so it is host-tested and fuzzed).

use tricolor_abi::MAX_CORES;
use tricolor_arch::psci::Conduit;
use tricolor_kernel::dtb;
pub use tricolor_kernel::dtb::{DeviceIrq, Gic, NoGic};

/// Where QEMU puts the DTB for an ELF `-kernel`: the start of RAM.
const DTB_AT_RAM_START: usize = 0x4000_0000;
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Larger than any device tree QEMU builds (it pads to 1 MiB): a `totalsize` beyond this is
/// taken for corruption rather than read.
const DTB_MAX_SIZE: usize = 2 << 20;

/// The facts the kernel needs from the device tree.
pub struct Machine {
    pub dtb_addr: usize,
    pub dtb_size: usize,
    /// RAM (base, size): the first /memory region.
    pub ram: (usize, usize),
    pub uart: Option<usize>,
    /// The UART's interrupt (its receive interrupt feeds the console).
    pub uart_irq: Option<DeviceIrq>,
    pub psci: Option<Conduit>,
    /// MPIDR of every CPU node, in device-tree order.
    pub cpus: [u64; MAX_CORES],
    pub cpu_count: usize,
    /// CPU nodes beyond MAX_CORES (reported, not started).
    pub cpus_ignored: usize,
    pub bootargs: &'static str,
    /// The interrupt controller, or why there is none the kernel can drive.
    pub gic: Result<Gic, NoGic<'static>>,
    /// Interrupt id of the EL1 non-secure physical timer (a PPI).
    pub timer_irq: u32,
}

impl Machine {
    /// The DTB's bytes (reserved in the frame allocator, never written).
    pub fn dtb(&self) -> &'static [u8] {
        // SAFETY: discover checked that dtb_size bytes at dtb_addr are the device tree, which lies
        // in RAM the frame allocator keeps reserved and nothing writes for the whole run.
        unsafe { core::slice::from_raw_parts(self.dtb_addr as *const u8, self.dtb_size) }
    }
}

pub use tricolor_kernel::dtb::DtbError;

/// Big-endian u32 of the header at `addr + offset`.
fn header_word(addr: usize, offset: usize) -> u32 {
    // SAFETY: `addr` is either the boot register (the Linux boot protocol's DTB pointer) or the
    // start of RAM, both readable RAM on QEMU virt, 8-aligned (checked by the callers); the
    // header's first words lie within the first page.
    u32::from_be(unsafe { ((addr + offset) as *const u32).read_volatile() })
}

fn has_magic(addr: usize) -> bool {
    addr != 0 && addr.is_multiple_of(8) && header_word(addr, 0) == FDT_MAGIC
}

/// Finds and reads the device tree: the boot register if it points at one, else the start of RAM.
pub fn discover(boot_x0: usize) -> Result<Machine, DtbError> {
    let dtb_addr = [boot_x0, DTB_AT_RAM_START].into_iter().find(|&a| has_magic(a)).ok_or(DtbError::BadMagic)?;
    let size = header_word(dtb_addr, 4) as usize;
    if !(40..=DTB_MAX_SIZE).contains(&size) {
        return Err(DtbError::BadHeader);
    }
    // SAFETY: a device tree header with a plausible size is at dtb_addr; its bytes are RAM that
    // the kernel never writes (the frame allocator reserves them), so the 'static borrow holds.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(dtb_addr as *const u8, size) };
    let info = dtb::read(bytes)?;
    Ok(Machine {
        dtb_addr,
        dtb_size: info.dtb_size,
        ram: info.ram,
        uart: info.uart,
        uart_irq: info.uart_irq,
        psci: info.psci_method.and_then(Conduit::from_method),
        cpus: info.cpus,
        cpu_count: info.cpu_count,
        cpus_ignored: info.cpus_ignored,
        bootargs: info.bootargs,
        gic: info.gic,
        timer_irq: info.timer_irq,
    })
}
