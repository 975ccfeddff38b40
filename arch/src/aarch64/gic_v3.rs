//! GICv3 (QEMU `virt,gic-version=3`, needed beyond 8 cores): the distributor (GICD) with
//! affinity routing on routes SPIs by GICD_IROUTER; each core's redistributor (GICR), found by
//! GICR_TYPER affinity, holds its SGIs and PPIs (the timer); the CPU interface is system registers
//! (ICC_*_EL1). The arithmetic (affinities, ICC_SGI1R_EL1, the redistributor walk) is
//! [`crate::gicv3`], host-tested; this module does the accesses.
//!
//! Rules cited are the GICv3/v4 architecture specification's (Arm IHI 0069), by the register
//! description or section that states them; barriers cite it or the Arm ARM (DDI 0487).
//!
//! aarch64-cpu 10 has none of the ICC registers this needs (ICC_CTLR_EL1 read-only, ICC_SRE_EL2),
//! so they are `mrs`/`msr` with their encodings (op0=3, op1=0, CRn=12 but PMR's CRn=4):
//! ICC_PMR_EL1 S3_0_C4_C6_0, ICC_IAR1_EL1 S3_0_C12_C12_0, ICC_EOIR1_EL1 S3_0_C12_C12_1,
//! ICC_BPR1_EL1 S3_0_C12_C12_3, ICC_CTLR_EL1 S3_0_C12_C12_4, ICC_SRE_EL1 S3_0_C12_C12_5,
//! ICC_IGRPEN1_EL1 S3_0_C12_C12_7, ICC_SGI1R_EL1 S3_0_C12_C11_5.

use crate::gicv3::{find_redistributor, sgi1r, RedistributorBus, SgiTarget, FRAME, GICR_TYPER};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::ID_AA64PFR0_EL1;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tock_registers::interfaces::Readable;
use tricolor_abi::MAX_CORES;

/// Redistributor regions the driver walks (as many as the device-tree reader keeps).
pub const MAX_REGIONS: usize = 4;

// Distributor register map ("The GIC Distributor register map").
const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0c00;
const GICD_IROUTER: usize = 0x6000;
/// Peripheral ID2: ArchRev [7:4] is 3 for GICv3, 4 for GICv4 (GICD_PIDR2, GICR_PIDR2).
const PIDR2: usize = 0xffe8;
/// GICD_CTLR with DS = 1 (QEMU without `secure=on`): EnableGrp0 [0], EnableGrp1 [1], ARE [4];
/// seen from Non-secure with DS = 0 the same bits are EnableGrp1NS, EnableGrp1A, ARE_NS. Either
/// way: affinity routing and Group 1 on (Linux writes the same three).
const GICD_CTLR_ENABLE: u32 = 1 << 4 | 1 << 1 | 1 << 0;
/// GICD_CTLR.RWP [31].
const GICD_CTLR_RWP: u32 = 1 << 31;

// Redistributor RD_base ("The GIC Redistributor register map").
const GICR_CTLR: usize = 0x0000;
const GICR_WAKER: usize = 0x0014;
/// GICR_CTLR.RWP [3].
const GICR_CTLR_RWP: u32 = 1 << 3;
/// GICR_WAKER.ProcessorSleep [1], ChildrenAsleep [2].
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
// Redistributor SGI_base, the 64 KiB frame after RD_base: SGIs and PPIs, ids 0..32.
const SGI_BASE: usize = FRAME as usize;
const GICR_IGROUPR0: usize = SGI_BASE + 0x0080;
const GICR_ISENABLER0: usize = SGI_BASE + 0x0100;
const GICR_ICENABLER0: usize = SGI_BASE + 0x0180;
const GICR_IPRIORITYR: usize = SGI_BASE + 0x0400;
const GICR_IGRPMODR0: usize = SGI_BASE + 0x0d00;

/// Every interrupt's priority: the middle of the range, as the GICv2 path uses (ICC_PMR_EL1 lets
/// all of them through).
const PRIORITY: u8 = 0x80;
/// The interrupt id ICC_IAR1_EL1 returns when nothing is pending for this core (1020-1023 are
/// special: "Special INTIDs").
pub const SPURIOUS: u32 = 1023;

/// How many polls a register-write-pending or wake-up wait takes before it is called stuck
/// (each poll is an MMIO read and a `yield`; QEMU finishes at the first).
const POLLS: u32 = 1_000_000;

/// Why the GICv3 (or a core's part of it) cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// ID_AA64PFR0_EL1.GIC is 0: this CPU has no GIC system-register interface.
    NoSystemRegisters,
    /// ICC_SRE_EL1.SRE did not stick (a higher exception level keeps the memory-mapped interface).
    SreDisabled,
    /// The distributor's or a redistributor region's PIDR2 is not GICv3/v4 (ArchRev, bits [7:4]).
    NotGicV3 { arch_rev: u32 },
    /// GICD_CTLR.RWP or GICR_CTLR.RWP stayed set.
    WritePending,
    /// No redistributor in the regions has this core's affinity.
    NoRedistributor { mpidr: u64, walked: usize },
    /// GICR_WAKER.ChildrenAsleep stayed set after ProcessorSleep was cleared.
    StillAsleep,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSystemRegisters => {
                write!(f, "the CPU has no GIC system-register interface (ID_AA64PFR0_EL1.GIC = 0)")
            }
            Self::SreDisabled => {
                write!(f, "ICC_SRE_EL1.SRE cannot be set (system-register interface disabled above EL1)")
            }
            Self::NotGicV3 { arch_rev } => write!(f, "PIDR2.ArchRev is {arch_rev}, not 3 or 4: not a GICv3"),
            Self::WritePending => write!(f, "a register write stayed pending (RWP) for {POLLS} polls"),
            Self::NoRedistributor { mpidr, walked } => {
                write!(f, "no redistributor for mpidr {mpidr:#x} among the {walked} in the GICR regions")
            }
            Self::StillAsleep => {
                write!(f, "the redistributor stayed asleep (GICR_WAKER.ChildrenAsleep) for {POLLS} polls")
            }
        }
    }
}

/// A GICv3 at the addresses the device tree gives.
pub struct GicV3 {
    gicd: usize,
    regions: [(u64, u64); MAX_REGIONS],
    region_count: usize,
    stride: Option<u64>,
    /// Each core's RD_base (0 until its `init_cpu`).
    rd: [AtomicUsize; MAX_CORES],
    /// The affinity SPIs are routed to (the boot core's).
    spi_target: AtomicU64,
}

/// Reads GICR_TYPER through MMIO for the walk.
struct Mmio;

impl RedistributorBus for Mmio {
    fn typer(&self, rd_base: u64) -> u64 {
        // SAFETY: the walk reads only inside the regions `GicV3::new`'s contract makes mapped
        // device memory; GICR_TYPER is a 64-bit register at RD_base + 8, 8-aligned.
        unsafe { ((rd_base + GICR_TYPER) as *const u64).read_volatile() }
    }
}

/// Whether this CPU implements the GIC system-register interface (ID_AA64PFR0_EL1.GIC, bits
/// [27:24], nonzero): without it every ICC_* access is UNDEFINED.
pub fn has_system_registers() -> bool {
    (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0
}

macro_rules! msr {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: writes one GIC CPU-interface system register (the caller checked that the
        // interface exists); no Rust-visible state changes. Not `nomem`: the compiler keeps memory
        // accesses on their side of it (a request published before an SGI, a handler's reads
        // after the acknowledge), the order the barriers beside it are about.
        unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nostack, preserves_flags)) }
    }};
}

macro_rules! mrs {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reads one GIC CPU-interface system register (ICC_IAR1_EL1's read acknowledges,
        // which is the point of reading it); not `nomem`, as for `msr!`.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack, preserves_flags)) };
        value
    }};
}

impl GicV3 {
    /// # Safety
    /// `gicd` must be the GICv3 distributor and `regions` (base, size) its redistributor regions,
    /// all mapped as device memory for as long as the `GicV3` is used.
    pub unsafe fn new(gicd: usize, regions: &[(u64, u64)], stride: Option<u64>) -> Self {
        let mut kept = [(0, 0); MAX_REGIONS];
        let region_count = regions.len().min(MAX_REGIONS);
        kept[..region_count].copy_from_slice(&regions[..region_count]);
        Self {
            gicd,
            regions: kept,
            region_count,
            stride,
            rd: [const { AtomicUsize::new(0) }; MAX_CORES],
            spi_target: AtomicU64::new(0),
        }
    }

    fn read(&self, base: usize, offset: usize) -> u32 {
        // SAFETY: `base` is the distributor or a redistributor found in the regions (the contract
        // of `new`); every offset used is a 32-bit register of that frame.
        unsafe { ((base + offset) as *const u32).read_volatile() }
    }

    fn write(&self, base: usize, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { ((base + offset) as *mut u32).write_volatile(value) }
    }

    fn write_byte(&self, base: usize, offset: usize, value: u8) {
        // SAFETY: as in `read`; IPRIORITYR<n> is byte-accessible (GICD_IPRIORITYR, GICR_IPRIORITYR).
        unsafe { ((base + offset) as *mut u8).write_volatile(value) }
    }

    /// Polls `offset` of `base` until `bit` reads 0, with the yield hint (under `-icount` QEMU
    /// runs vCPUs round-robin).
    fn wait_clear(&self, base: usize, offset: usize, bit: u32) -> bool {
        for _ in 0..POLLS {
            if self.read(base, offset) & bit == 0 {
                return true;
            }
            crate::cpu::relax();
        }
        false
    }

    /// GICD_CTLR.RWP: a write to GICD_CTLR's enables or ARE, or to GICD_ICENABLER<n>, is in
    /// effect only once RWP reads 0, so software polls it (GICD_CTLR's description).
    fn wait_distributor(&self) -> Result<(), InitError> {
        self.wait_clear(self.gicd, GICD_CTLR, GICD_CTLR_RWP).then_some(()).ok_or(InitError::WritePending)
    }

    fn arch_rev(&self, base: usize) -> u32 {
        (self.read(base, PIDR2) >> 4) & 0xf
    }

    /// The number of interrupt ids the distributor implements (GICD_TYPER.ITLinesNumber: 32 x
    /// (N + 1)), at most 1020.
    fn lines(&self) -> u32 {
        (32 * ((self.read(self.gicd, GICD_TYPER) & 0x1f) + 1)).min(1020)
    }

    /// Sets up the distributor (boot core, once): off, every SPI Group 1, priority [`PRIORITY`],
    /// disabled and routed to `spi_target` (the boot core's MPIDR); then on with affinity routing.
    pub fn init_distributor(&self, spi_target: u64) -> Result<(), InitError> {
        if !has_system_registers() {
            return Err(InitError::NoSystemRegisters);
        }
        let arch_rev = self.arch_rev(self.gicd);
        if !(3..=4).contains(&arch_rev) {
            return Err(InitError::NotGicV3 { arch_rev });
        }
        self.spi_target.store(crate::gicv3::irouter(spi_target), Ordering::Relaxed);
        self.write(self.gicd, GICD_CTLR, 0);
        self.wait_distributor()?;
        let lines = self.lines();
        for id in (32..lines).step_by(32) {
            let word = (id / 32) as usize * 4;
            self.write(self.gicd, GICD_ICENABLER + word, u32::MAX);
            self.write(self.gicd, GICD_IGROUPR + word, u32::MAX);
        }
        for id in 32..lines {
            self.write_byte(self.gicd, GICD_IPRIORITYR + id as usize, PRIORITY);
            self.route(id);
        }
        self.wait_distributor()?;
        self.write(self.gicd, GICD_CTLR, GICD_CTLR_ENABLE);
        self.wait_distributor()
    }

    fn route(&self, id: u32) {
        let value = self.spi_target.load(Ordering::Relaxed);
        let at = self.gicd + GICD_IROUTER + 8 * id as usize;
        // SAFETY: GICD_IROUTER<n> is a 64-bit register for every SPI n below `lines()`,
        // inside the distributor frame the contract of `new` maps.
        unsafe { (at as *mut u64).write_volatile(value) }
    }

    /// Sets up the calling core's redistributor and CPU interface: finds the redistributor by
    /// `mpidr`, wakes it, makes every SGI and PPI Group 1 at [`PRIORITY`] (all disabled until
    /// `enable`), then the system registers: SRE on, every priority through, no preemption
    /// grouping, EOImode 0 (one EOI write drops priority and deactivates), Group 1 on.
    pub fn init_cpu(&self, core: usize, mpidr: u64) -> Result<(), InitError> {
        if !has_system_registers() {
            return Err(InitError::NoSystemRegisters);
        }
        let regions = &self.regions[..self.region_count];
        if let Some(arch_rev) =
            regions.iter().map(|&(base, _)| self.arch_rev(base as usize)).find(|r| !(3..=4).contains(r))
        {
            return Err(InitError::NotGicV3 { arch_rev });
        }
        let rd = find_redistributor(&Mmio, regions, self.stride, mpidr)
            .map_err(|e| InitError::NoRedistributor { mpidr, walked: e.walked })? as usize;
        // GICR_WAKER: clear ProcessorSleep, then poll until ChildrenAsleep reads 0; until then the
        // redistributor and the CPU interface are quiescent and must not be relied on (GICR_WAKER's
        // description, and "Power management" in the spec).
        self.write(rd, GICR_WAKER, self.read(rd, GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
        if !self.wait_clear(rd, GICR_WAKER, WAKER_CHILDREN_ASLEEP) {
            return Err(InitError::StillAsleep);
        }
        self.write(rd, GICR_ICENABLER0, u32::MAX);
        // GICR_CTLR.RWP tracks writes to GICR_ICENABLER0 (GICR_CTLR's description): the disables
        // are in effect before the groups and priorities change under them.
        if !self.wait_clear(rd, GICR_CTLR, GICR_CTLR_RWP) {
            return Err(InitError::WritePending);
        }
        self.write(rd, GICR_IGROUPR0, u32::MAX);
        self.write(rd, GICR_IGRPMODR0, 0);
        for id in 0..32 {
            self.write_byte(rd, GICR_IPRIORITYR + id, PRIORITY);
        }
        self.rd[core].store(rd, Ordering::Relaxed);

        // ICC_SRE_EL1: SRE [0], DFB [1], DIB [2]. ISB: a direct system-register write is guaranteed
        // visible to later instructions only after a context synchronization event (Arm ARM,
        // "Synchronization requirements for AArch64 System registers"), and ICC_SRE_EL1's
        // description requires one before the other ICC registers are used through the new
        // interface (the read-back below included).
        let sre = mrs!("S3_0_C12_C12_5") | 0b111;
        msr!("S3_0_C12_C12_5", sre);
        barrier::isb(barrier::SY);
        if mrs!("S3_0_C12_C12_5") & 1 == 0 {
            return Err(InitError::SreDisabled);
        }
        // ICC_PMR_EL1 = 0xff: every priority is above the mask. (Its description: writes to
        // ICC_PMR_EL1 are self-synchronising, so no barrier for it.)
        msr!("S3_0_C4_C6_0", 0xffu64);
        // ICC_BPR1_EL1 = 0: the smallest binary point (it reads back the minimum if 0 is below).
        msr!("S3_0_C12_C12_3", 0u64);
        // ICC_CTLR_EL1.EOImode [1] = 0: the ICC_EOIR1_EL1 write also deactivates.
        let ctlr = mrs!("S3_0_C12_C12_4") & !(1 << 1);
        msr!("S3_0_C12_C12_4", ctlr);
        // ICC_IGRPEN1_EL1.Enable: Group 1 interrupts are signalled to this core.
        msr!("S3_0_C12_C12_7", 1u64);
        // ISB: the BPR, CTLR and IGRPEN1 writes are direct system-register writes; the Arm ARM
        // guarantees their effect only after a context synchronization event, and the kernel
        // unmasks IRQs soon after this returns.
        barrier::isb(barrier::SY);
        Ok(())
    }

    /// Enables interrupt `id`: an SGI or PPI on `core`'s redistributor (only that core's), an
    /// SPI in the distributor, level-sensitive or edge-triggered, routed to the boot core.
    pub fn enable(&self, core: usize, id: u32, level_triggered: bool) {
        if id < 32 {
            let rd = self.rd[core].load(Ordering::Relaxed);
            if rd != 0 {
                self.write(rd, GICR_ISENABLER0, 1 << id);
            }
            return;
        }
        let (word, bit) = ((id / 32) as usize * 4, id % 32);
        self.write(self.gicd, GICD_IGROUPR + word, self.read(self.gicd, GICD_IGROUPR + word) | 1 << bit);
        self.write_byte(self.gicd, GICD_IPRIORITYR + id as usize, PRIORITY);
        let cfg = GICD_ICFGR + (id / 16) as usize * 4;
        let edge_bit = 1 << ((id % 16) * 2 + 1);
        let old = self.read(self.gicd, cfg);
        self.write(self.gicd, cfg, if level_triggered { old & !edge_bit } else { old | edge_bit });
        self.route(id);
        // Device-nGnRE stores to one peripheral arrive in program order (Arm ARM, "Device memory":
        // the nR of nGnRE, no reordering to one peripheral): the configuration lands
        // before the enable.
        self.write(self.gicd, GICD_ISENABLER + word, 1 << bit);
    }

    /// Disables interrupt `id` (`core`'s, for an SGI or PPI) and waits until the GIC has.
    pub fn disable(&self, core: usize, id: u32) {
        if id < 32 {
            let rd = self.rd[core].load(Ordering::Relaxed);
            if rd != 0 {
                self.write(rd, GICR_ICENABLER0, 1 << id);
                let _ = self.wait_clear(rd, GICR_CTLR, GICR_CTLR_RWP);
            }
        } else {
            self.write(self.gicd, GICD_ICENABLER + (id / 32) as usize * 4, 1 << (id % 32));
            let _ = self.wait_distributor();
        }
    }

    /// Acknowledges the highest-priority pending Group 1 interrupt: the raw ICC_IAR1_EL1 value
    /// (pass it to [`Self::end`]) and the interrupt id ([`SPURIOUS`] if none). Call with IRQs
    /// masked: the read is then self-synchronising (ICC_IAR1_EL1's description), so its
    /// activation is in effect before the next instruction and no barrier is needed.
    pub fn acknowledge(&self) -> (u32, u32) {
        let iar = mrs!("S3_0_C12_C12_0") as u32;
        (iar, iar & 0xff_ffff)
    }

    /// Ends an acknowledged interrupt (priority drop and deactivation: EOImode 0).
    pub fn end(&self, iar: u32) {
        msr!("S3_0_C12_C12_1", u64::from(iar));
        // ISB: a direct system-register write is guaranteed in effect only after a context
        // synchronization event (Arm ARM, "Synchronization requirements for AArch64 System
        // registers"; Linux's
        // gic_eoi_irq does the same): the priority drop is done before the handler runs, so an
        // interrupt of the same priority is not held off until the eventual `eret`.
        barrier::isb(barrier::SY);
    }

    /// Sends SGI `sgi` (0..16) to every core but the caller.
    pub fn send_sgi_to_others(&self, sgi: u32) {
        send(sgi1r(sgi, SgiTarget::AllButSelf));
    }

    /// Sends SGI `sgi` to the core with `mpidr`.
    pub fn send_sgi_to(&self, sgi: u32, mpidr: u64) {
        send(sgi1r(sgi, SgiTarget::Core(mpidr)));
    }
}

fn send(value: u64) {
    // DSB ISHST: the sender's earlier stores (a stop or safepoint request) complete, visible to
    // the inner-shareable domain, before the SGI is generated. A DMB would not do: it orders only
    // memory accesses, and the ICC_SGI1R_EL1 write is a system-register write, not one; a DSB
    // holds back every later instruction until the stores complete (Arm ARM, "Data
    // Synchronization Barrier"; the GIC spec leaves ordering with memory to the PE's barriers:
    // "Observability of the effects of accesses to the GIC registers").
    barrier::dsb(barrier::ISHST);
    msr!("S3_0_C12_C11_5", value);
    // ISB: the effects of a write to ICC_SGI1R_EL1 are guaranteed only after a context
    // synchronization event ("Observability of the effects of accesses to the GIC registers"):
    // without it the SGI may be generated only at some later synchronization, e.g. after the
    // sender has started waiting for the answer (Linux's gic_send_sgi is followed by isb too).
    barrier::isb(barrier::SY);
}
