//! What machine we are on, read from the flattened device tree QEMU hands us.

use fdt::Fdt;
use tricolor_abi::MAX_CORES;
use tricolor_arch::psci::Conduit;

/// Where QEMU puts the DTB for an ELF `-kernel`: the start of RAM.
const DTB_AT_RAM_START: usize = 0x4000_0000;
const FDT_MAGIC: u32 = 0xd00d_feed;

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
    /// GICv2 (distributor, CPU interface).
    pub gic: Option<(usize, usize)>,
    /// Interrupt id of the EL1 non-secure physical timer (a PPI).
    pub timer_irq: u32,
}

/// `/timer`'s second interrupt (the non-secure EL1 physical timer) as a GIC interrupt id.
fn timer_interrupt(fdt: &Fdt<'_>) -> Option<u32> {
    let node = fdt.find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])?;
    let cells = node.property("interrupts")?.value;
    // Three big-endian cells per interrupt: (type, number, flags); PPIs start at id 16.
    let entry = cells.get(12..24)?;
    let number = u32::from_be_bytes(entry[4..8].try_into().ok()?);
    Some(number + 16)
}

/// A device interrupt as the GIC numbers it.
#[derive(Clone, Copy, Debug)]
pub struct DeviceIrq {
    /// GIC interrupt id (an SPI is 32 + the device-tree cell).
    pub id: u32,
    /// Level-sensitive (else edge-triggered), from the cell's flags.
    pub level: bool,
}

/// The first GIC interrupt of an `interrupts` property: three big-endian cells (type, number,
/// flags) with type 0 = SPI (id 32 + number) and 1 = PPI (id 16 + number); flags 4 and 8 are
/// level-high and level-low, 1 and 2 edges.
pub fn gic_interrupt(cells: &[u8]) -> Option<DeviceIrq> {
    let cell = |i: usize| Some(u32::from_be_bytes(cells.get(i * 4..i * 4 + 4)?.try_into().ok()?));
    let (kind, number, flags) = (cell(0)?, cell(1)?, cell(2)?);
    let id = match kind {
        0 => 32 + number,
        1 => 16 + number,
        _ => return None,
    };
    Some(DeviceIrq { id, level: flags & 0xc != 0 })
}

/// Why the device tree could not be used.
#[derive(Debug)]
pub enum DtbError {
    NotFound,
    Invalid,
    NoMemory,
}

impl DtbError {
    /// A message for the earliest console (semihosting), before the UART is known.
    pub fn message(&self) -> &'static core::ffi::CStr {
        match self {
            Self::NotFound => c"tricolor: no device tree (FDT magic) at x0 or at the start of RAM\n",
            Self::Invalid => c"tricolor: the device tree is malformed\n",
            Self::NoMemory => c"tricolor: the device tree has no /memory region\n",
        }
    }
}

fn has_magic(addr: usize) -> bool {
    if addr == 0 || !addr.is_multiple_of(8) {
        return false;
    }
    // SAFETY: `addr` is either the boot register (the Linux boot protocol's DTB pointer) or the
    // start of RAM; both are readable RAM on QEMU virt. The header is big-endian.
    let magic = unsafe { (addr as *const u32).read_volatile() };
    u32::from_be(magic) == FDT_MAGIC
}

/// Finds and parses the device tree: the boot register if it points at one, else the start of RAM.
pub fn discover(boot_x0: usize) -> Result<Machine, DtbError> {
    let dtb_addr = [boot_x0, DTB_AT_RAM_START].into_iter().find(|&a| has_magic(a)).ok_or(DtbError::NotFound)?;
    // SAFETY: a valid FDT header is at dtb_addr (magic checked); the kernel never writes the DTB's
    // pages (the frame allocator reserves them), so the 'static borrow stays valid.
    let fdt = unsafe { Fdt::from_ptr(dtb_addr as *const u8) }.map_err(|_| DtbError::Invalid)?;
    let region = fdt.memory().regions().next().ok_or(DtbError::NoMemory)?;
    let ram = (region.starting_address as usize, region.size.unwrap_or(0));
    let uart_node = fdt.find_compatible(&["arm,pl011"]);
    let uart = uart_node.and_then(|n| n.reg()).and_then(|mut r| r.next()).map(|r| r.starting_address as usize);
    let uart_irq = uart_node.and_then(|n| n.property("interrupts")).and_then(|p| gic_interrupt(p.value));
    let psci = fdt
        .find_node("/psci")
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str())
        .and_then(Conduit::from_method);
    let mut cpus = [0u64; MAX_CORES];
    let mut cpu_count = 0;
    let mut cpus_ignored = 0;
    for cpu in fdt.cpus() {
        if cpu_count < MAX_CORES {
            cpus[cpu_count] = cpu.ids().first() as u64;
            cpu_count += 1;
        } else {
            cpus_ignored += 1;
        }
    }
    let bootargs = fdt.chosen().bootargs().unwrap_or("");
    let gic = fdt.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400"]).and_then(|n| n.reg()).and_then(|mut r| {
        let distributor = r.next()?.starting_address as usize;
        let cpu_interface = r.next()?.starting_address as usize;
        Some((distributor, cpu_interface))
    });
    // 30 is the architectural default (PPI 14) should the node be missing.
    let timer_irq = timer_interrupt(&fdt).unwrap_or(30);
    Ok(Machine {
        dtb_addr,
        dtb_size: fdt.total_size(),
        ram,
        uart,
        uart_irq,
        psci,
        cpus,
        cpu_count,
        cpus_ignored,
        bootargs,
        gic,
        timer_irq,
    })
}
