//! GICv3 arithmetic that needs no hardware (tested on the host): affinity in its three register
//! formats, the ICC_SGI1R_EL1 value that sends an SGI, and the walk over redistributor regions
//! that finds a core's redistributor by GICR_TYPER. The driver (`aarch64::gicv3`) does the
//! register accesses. References are to the GICv3/v4 architecture specification (Arm IHI 0069),
//! by register description.
//!
//! Affinity is written three ways: MPIDR_EL1 (Aff3 [39:32], Aff2 [23:16], Aff1 [15:8], Aff0
//! [7:0]), which GICD_IROUTER<n> shares; GICR_TYPER.Affinity_Value, bits [63:32] as
//! Aff3:Aff2:Aff1:Aff0, a byte each; and ICC_SGI1R_EL1's own fields. Everything
//! here takes and returns the MPIDR layout.

/// The MPIDR_EL1 bits that are affinity (Aff3, Aff2, Aff1, Aff0).
pub const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// GICR_TYPER.Last (bit 4): the last redistributor of its region.
pub const TYPER_LAST: u64 = 1 << 4;
/// GICR_TYPER.VLPIS (bit 1): GICv4 virtual LPIs, so two more 64 KiB frames per redistributor.
pub const TYPER_VLPIS: u64 = 1 << 1;
/// One 64 KiB register frame.
pub const FRAME: u64 = 0x1_0000;
/// A GICv3 redistributor: RD_base and SGI_base.
pub const STRIDE_V3: u64 = 2 * FRAME;
/// A GICv4 redistributor with VLPIS: RD_base, SGI_base, VLPI_base and a reserved frame.
pub const STRIDE_V4: u64 = 4 * FRAME;
/// Offset of GICR_TYPER in RD_base.
pub const GICR_TYPER: u64 = 0x08;

/// ICC_SGI1R_EL1.IRM (bit 40): route to every PE but the sender, ignoring the target fields.
const SGI1R_IRM: u64 = 1 << 40;

/// The affinity GICR_TYPER names, in the MPIDR layout.
pub fn typer_affinity(typer: u64) -> u64 {
    let value = typer >> 32;
    let aff = |n: u32| (value >> (8 * n)) & 0xff;
    aff(3) << 32 | aff(2) << 16 | aff(1) << 8 | aff(0)
}

/// GICD_IROUTER<n> routing an SPI to the PE with `mpidr` (Interrupt_Routing_Mode 0: that PE).
pub fn irouter(mpidr: u64) -> u64 {
    mpidr & AFFINITY_MASK
}

/// Whom an SGI goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTarget {
    /// Every PE but the sender (IRM = 1).
    AllButSelf,
    /// The one PE with this MPIDR.
    Core(u64),
}

/// The ICC_SGI1R_EL1 value that raises `sgi` (0..16) at `target`: INTID [27:24];
/// for one PE, Aff3 [55:48], Aff2 [39:32], Aff1 [23:16], and in TargetList [15:0] the bit of its
/// Aff0 within the range RS [47:44] selects (RS = Aff0 / 16; an RS above 0 needs
/// ICC_CTLR_EL1.RSS, which QEMU's 16-per-cluster affinities never do).
pub fn sgi1r(sgi: u32, target: SgiTarget) -> u64 {
    let intid = u64::from(sgi & 0xf) << 24;
    match target {
        SgiTarget::AllButSelf => SGI1R_IRM | intid,
        SgiTarget::Core(mpidr) => {
            let aff = |n: u32| (mpidr >> if n == 3 { 32 } else { 8 * n }) & 0xff;
            let (range, bit) = (aff(0) / 16, aff(0) % 16);
            aff(3) << 48 | range << 44 | aff(2) << 32 | aff(1) << 16 | intid | 1 << bit
        }
    }
}

/// What the walk reads from the hardware (the driver: MMIO; the tests: a model).
pub trait RedistributorBus {
    /// GICR_TYPER of the redistributor whose RD_base is at `rd_base`.
    fn typer(&self, rd_base: u64) -> u64;
}

/// Why no redistributor was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotFound {
    /// Redistributors looked at (none of them this core's).
    pub walked: usize,
}

/// Finds the RD_base of the redistributor whose GICR_TYPER affinity is `mpidr`'s, walking each
/// region `(base, size)` from its start: one redistributor every `stride` bytes (the device tree's
/// `redistributor-stride`) or, without one, every 128 KiB (256 KiB where GICR_TYPER.VLPIS says
/// GICv4), until GICR_TYPER.Last or the end of the region (Linux's gic_iterate_rdists does the
/// same). Never reads outside a region: a redistributor is read only if both of its frames fit.
pub fn find_redistributor(
    bus: &impl RedistributorBus,
    regions: &[(u64, u64)],
    stride: Option<u64>,
    mpidr: u64,
) -> Result<u64, NotFound> {
    let want = mpidr & AFFINITY_MASK;
    let mut walked = 0;
    for &(base, size) in regions {
        let Some(end) = base.checked_add(size) else { continue };
        let mut at = base;
        while at.checked_add(STRIDE_V3).is_some_and(|frames_end| frames_end <= end) {
            let typer = bus.typer(at);
            walked += 1;
            if typer_affinity(typer) == want {
                return Ok(at);
            }
            if typer & TYPER_LAST != 0 {
                break;
            }
            let step = stride.unwrap_or(if typer & TYPER_VLPIS != 0 { STRIDE_V4 } else { STRIDE_V3 });
            match at.checked_add(step.max(STRIDE_V3)) {
                Some(next) => at = next,
                None => break,
            }
        }
    }
    Err(NotFound { walked })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A model of redistributor regions: GICR_TYPER by RD_base; reading anywhere else fails the
    /// test (the walk read outside a redistributor).
    struct Model(BTreeMap<u64, u64>);

    impl RedistributorBus for Model {
        fn typer(&self, rd_base: u64) -> u64 {
            *self.0.get(&rd_base).unwrap_or_else(|| panic!("GICR_TYPER read at {rd_base:#x}: no redistributor there"))
        }
    }

    /// TYPER for a redistributor of the PE with `mpidr`, with `flags` (Last, VLPIS).
    fn typer(mpidr: u64, flags: u64) -> u64 {
        let aff = |shift: u32| (mpidr >> shift) & 0xff;
        (aff(32) << 24 | aff(16) << 16 | aff(8) << 8 | aff(0)) << 32 | flags
    }

    /// QEMU `virt,gic-version=3` with `cpus` PEs (Aff0 = 0..cpus, Aff1 = 0): one region of 128
    /// KiB redistributors at 0x080a_0000, the last one flagged Last.
    fn qemu(cpus: u64) -> Model {
        Model(
            (0..cpus)
                .map(|i| (0x80a_0000 + i * STRIDE_V3, typer(i, if i == cpus - 1 { TYPER_LAST } else { 0 })))
                .collect(),
        )
    }

    #[test]
    fn affinity_formats_agree() {
        let mpidr = 0x12_0034_5678;
        assert_eq!(typer_affinity(typer(mpidr, TYPER_LAST | TYPER_VLPIS)), mpidr);
        assert_eq!(typer_affinity(0x0102_0304_0000_0011), 0x01_0002_0304);
        assert_eq!(irouter(0x8000_0000 | mpidr), mpidr, "MPIDR's RES1 bit 31 and MT/U are not affinity");
    }

    #[test]
    fn sgi1r_encodes_the_target() {
        assert_eq!(sgi1r(4, SgiTarget::AllButSelf), 1 << 40 | 4 << 24);
        assert_eq!(sgi1r(1, SgiTarget::Core(0)), 1 << 24 | 1);
        assert_eq!(sgi1r(2, SgiTarget::Core(15)), 2 << 24 | 1 << 15);
        // Aff3 48, Aff2 32, Aff1 16; Aff0 = 0x13 is range 1, bit 3.
        assert_eq!(sgi1r(3, SgiTarget::Core(0x07_0005_0613)), 7 << 48 | 1 << 44 | 5 << 32 | 6 << 16 | 3 << 24 | 1 << 3);
        assert_eq!(sgi1r(0x13, SgiTarget::Core(0)) >> 24 & 0xff, 3, "INTID is 4 bits");
    }

    #[test]
    fn every_qemu_core_finds_its_own_redistributor() {
        let model = qemu(16);
        let regions = [(0x80a_0000, 0xf6_0000)];
        for core in 0..16 {
            assert_eq!(find_redistributor(&model, &regions, None, core), Ok(0x80a_0000 + core * STRIDE_V3));
        }
        assert_eq!(find_redistributor(&model, &regions, None, 16), Err(NotFound { walked: 16 }), "stops at Last");
        assert_eq!(find_redistributor(&model, &regions, None, 0x8000_0003), Ok(0x80a_0000 + 3 * STRIDE_V3));
    }

    #[test]
    fn the_walk_follows_vlpis_strides_and_regions() {
        // GICv4 (VLPIS, 256 KiB each) in a first region without Last, then a second region.
        let mut map = BTreeMap::new();
        map.insert(0x100_0000, typer(0, TYPER_VLPIS));
        map.insert(0x104_0000, typer(1, TYPER_VLPIS));
        map.insert(0x4000_0000, typer(0x100, TYPER_LAST));
        let model = Model(map);
        let regions = [(0x100_0000, 0x8_0000), (0x4000_0000, 0x2_0000)];
        assert_eq!(find_redistributor(&model, &regions, None, 1), Ok(0x104_0000));
        assert_eq!(find_redistributor(&model, &regions, None, 0x100), Ok(0x4000_0000));
        assert_eq!(find_redistributor(&model, &regions, None, 2), Err(NotFound { walked: 3 }));
        // An explicit stride wins over VLPIS.
        let mut map = BTreeMap::new();
        map.insert(0x100_0000, typer(0, TYPER_VLPIS));
        map.insert(0x108_0000, typer(1, TYPER_LAST));
        assert_eq!(find_redistributor(&Model(map), &[(0x100_0000, 0x10_0000)], Some(0x8_0000), 1), Ok(0x108_0000));
    }

    #[test]
    fn the_walk_never_reads_past_a_region() {
        // No Last anywhere: the region's size bounds the walk (the model panics on a stray read).
        let model = Model((0..4).map(|i| (0x80a_0000 + i * STRIDE_V3, typer(i, 0))).collect());
        assert_eq!(find_redistributor(&model, &[(0x80a_0000, 4 * STRIDE_V3)], None, 9), Err(NotFound { walked: 4 }));
        // A region smaller than one redistributor is not read at all; one at the top of the
        // address space does not overflow.
        assert_eq!(find_redistributor(&model, &[(0x80a_0000, FRAME)], None, 0), Err(NotFound { walked: 0 }));
        assert_eq!(find_redistributor(&model, &[(u64::MAX - FRAME, 4 * FRAME)], None, 0), Err(NotFound { walked: 0 }));
    }
}
