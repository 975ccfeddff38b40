use super::*;

/// QEMU's own device trees (`-machine virt,dumpdtb=...`, padding cut), also fuzz seeds.
const QEMU_SMP4_GPU: &[u8] = include_bytes!("../../../fuzz/corpus/devicetree/qemu-virt-smp4-gpu.dtb");
const QEMU_SMP1: &[u8] = include_bytes!("../../../fuzz/corpus/devicetree/qemu-virt-smp1.dtb");
const QEMU_GICV3_SMP16: &[u8] = include_bytes!("../../../fuzz/corpus/devicetree/qemu-virt-gicv3-smp16.dtb");

/// The reading path as it was on the `fdt` crate (before the fuzzer): the reference for blobs
/// `fdt` can read.
fn read_with_fdt_crate(bytes: &[u8]) -> Option<MachineInfo<'_>> {
    let fdt = fdt::Fdt::new(bytes).ok()?;
    let region = fdt.memory().regions().next()?;
    let mut cpus = [0u64; MAX_CORES];
    let (mut cpu_count, mut cpus_ignored) = (0, 0);
    for cpu in fdt.cpus() {
        if cpu_count < MAX_CORES {
            cpus[cpu_count] = cpu.ids().first() as u64;
            cpu_count += 1;
        } else {
            cpus_ignored += 1;
        }
    }
    let timer = fdt.find_compatible(&["arm,armv8-timer"])?.property("interrupts")?.value;
    Some(MachineInfo {
        dtb_size: fdt.total_size(),
        ram: (region.starting_address as usize, region.size.unwrap_or(0)),
        uart: fdt.find_compatible(&["arm,pl011"])?.reg()?.next().map(|r| r.starting_address as usize),
        uart_irq: fdt.find_compatible(&["arm,pl011"])?.property("interrupts").and_then(|p| gic_interrupt(p.value)),
        psci_method: fdt.find_node("/psci").and_then(|n| n.property("method")).and_then(|p| p.as_str()),
        cpus,
        cpu_count,
        cpus_ignored,
        bootargs: fdt.chosen().bootargs().unwrap_or(""),
        gic: gic_with_fdt_crate(&fdt),
        timer_irq: u32::from_be_bytes(timer[16..20].try_into().ok()?) + 16,
    })
}

/// The interrupt controller as the `fdt` crate reads the same properties (only what QEMU's trees
/// have: GICv3 with its regions, GICv2 with its two frames).
fn gic_with_fdt_crate<'a>(fdt: &fdt::Fdt<'a>) -> Result<Gic, NoGic<'a>> {
    if let Some(node) = fdt.find_compatible(&["arm,gic-v3"]) {
        let mut reg = node.reg().ok_or(NoGic::Absent)?;
        let region = |r: fdt::standard_nodes::MemoryRegion| Region {
            base: r.starting_address as u64,
            size: r.size.unwrap_or(0) as u64,
        };
        let distributor = region(reg.next().ok_or(NoGic::Absent)?);
        let regions = node.property("#redistributor-regions").and_then(|p| p.as_usize()).unwrap_or(1);
        let mut redistributors = [Region::default(); MAX_GICR_REGIONS];
        for slot in &mut redistributors[..regions] {
            *slot = region(reg.next().ok_or(NoGic::Absent)?);
        }
        let stride = node.property("redistributor-stride").and_then(|p| p.as_usize()).map(|s| s as u64);
        return Ok(Gic::V3 { distributor, redistributors, regions, stride });
    }
    let node = fdt.find_compatible(&["arm,cortex-a15-gic", "arm,gic-400"]).ok_or(NoGic::Absent)?;
    let mut reg = node.reg().ok_or(NoGic::Absent)?;
    let (d, c) = (reg.next().ok_or(NoGic::Absent)?, reg.next().ok_or(NoGic::Absent)?);
    Ok(Gic::V2 { distributor: d.starting_address as u64, cpu_interface: c.starting_address as u64 })
}

#[test]
fn qemu_trees_read_as_the_fdt_crate_read_them() {
    for dtb in [QEMU_SMP4_GPU, QEMU_SMP1, QEMU_GICV3_SMP16] {
        assert_eq!(read(dtb).unwrap(), read_with_fdt_crate(dtb).unwrap());
    }
    let m = read(QEMU_SMP4_GPU).unwrap();
    assert_eq!(m.ram, (0x4000_0000, 1 << 30));
    assert_eq!((m.uart, m.psci_method, m.cpu_count, m.cpus_ignored), (Some(0x900_0000), Some("hvc"), 4, 0));
    assert_eq!(&m.cpus[..4], &[0, 1, 2, 3]);
    assert_eq!((m.gic, m.timer_irq), (Ok(Gic::V2 { distributor: 0x800_0000, cpu_interface: 0x801_0000 }), 30));
    assert_eq!(m.uart_irq, Some(DeviceIrq { id: 33, level: true }), "QEMU virt's PL011: SPI 1, level-high");
    let big = read(QEMU_GICV3_SMP16).unwrap();
    assert_eq!((big.cpu_count, big.cpus_ignored), (16, 0), "MAX_CORES is 16: every CPU of QEMU's smp 16");
    assert_eq!(&big.cpus[..16], &core::array::from_fn::<u64, 16, _>(|i| i as u64), "Aff0 0..15, one cluster");
    // `-machine virt,gic-version=3`: GICD 64 KiB at 0x0800_0000, one redistributor region of 123
    // 128 KiB redistributors at 0x080a_0000, no stride property.
    let mut redistributors = [Region::default(); MAX_GICR_REGIONS];
    redistributors[0] = Region { base: 0x80a_0000, size: 0xf6_0000 };
    let v3 =
        Gic::V3 { distributor: Region { base: 0x800_0000, size: 0x1_0000 }, redistributors, regions: 1, stride: None };
    assert_eq!(big.gic, Ok(v3));
    assert_eq!(v3.redistributor_regions(), &redistributors[..1]);
    assert_eq!(big.timer_irq, 30);
    assert_eq!(read(QEMU_SMP1).unwrap().ram, (0x4000_0000, 256 << 20));
}

#[test]
fn virtio_slots_match_the_fdt_crate() {
    let slots = virtio_mmio_slots(QEMU_SMP4_GPU, 0x200);
    let fdt = fdt::Fdt::new(QEMU_SMP4_GPU).unwrap();
    let reference: Vec<(usize, usize)> = fdt
        .all_nodes()
        .filter(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "virtio,mmio")))
        .filter_map(|n| n.reg()?.next().map(|r| (r.starting_address as usize, r.size.unwrap_or(0x200))))
        .collect();
    assert_eq!(slots.len(), 32);
    assert_eq!(slots.iter().map(|s| (s.base, s.size)).collect::<Vec<_>>(), reference);
    assert!(slots.iter().all(|s| s.irq.is_some_and(|i| (48..80).contains(&i.id) && !i.level)), "{slots:?}");
}

/// The inputs the fuzzer found panicking inside the `fdt` crate (one per site), kept in the
/// corpus as regression seeds.
const FDT_PANICS: [(&str, &[u8]); 5] = [
    ("lib.rs:239 expect(requires memory node)", include_bytes!("../../../fuzz/corpus/devicetree/fdt-panic-lib-239")),
    (
        "lib.rs:401 expect(no null terminating string)",
        include_bytes!("../../../fuzz/corpus/devicetree/fdt-panic-lib-401"),
    ),
    ("node.rs:472 assert(bad node)", include_bytes!("../../../fuzz/corpus/devicetree/fdt-panic-node-472")),
    ("node.rs:508 unwrap", include_bytes!("../../../fuzz/corpus/devicetree/fdt-panic-node-508")),
    ("standard_nodes.rs:256 unwrap", include_bytes!("../../../fuzz/corpus/devicetree/fdt-panic-standard-nodes-256")),
];

#[test]
fn inputs_that_panicked_the_fdt_crate_get_an_answer() {
    for (site, dtb) in FDT_PANICS {
        // An answer, whatever it is, and a clear message when it is an error.
        match read(dtb) {
            Ok(m) => assert!(m.cpu_count <= MAX_CORES, "{site}"),
            Err(e) => assert!(e.message().to_bytes().starts_with(b"tricolor: "), "{site}: {e:?}"),
        }
        let _ = virtio_mmio_slots(dtb, 0x200);
    }
}

/// A tiny DTB builder for hand-made trees.
#[derive(Default)]
struct Builder {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn word(&mut self, w: u32) -> &mut Self {
        self.structs.extend_from_slice(&w.to_be_bytes());
        self
    }
    fn begin(&mut self, name: &str) -> &mut Self {
        self.word(FDT_BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
        self
    }
    fn end(&mut self) -> &mut Self {
        self.word(FDT_END_NODE)
    }
    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.word(FDT_PROP).word(value.len() as u32).word(offset);
        self.structs.extend_from_slice(value);
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
        self
    }
    fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &bytes)
    }
    fn blob(&self) -> Vec<u8> {
        let off_struct = HEADER_LEN + 16;
        let off_strings = off_struct + self.structs.len();
        let total = off_strings + self.strings.len();
        let header = [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            HEADER_LEN as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ];
        let mut blob: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&self.structs);
        blob.extend_from_slice(&self.strings);
        blob
    }
}

/// A machine with RAM, one CPU and a command line; `extra` adds to the root before it closes.
fn machine(extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[2]).cells("#size-cells", &[2]);
    b.begin("chosen").prop("bootargs", b"test=unit\0").end();
    b.begin("memory@40000000").cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000]).end();
    b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
    b.begin("cpu@0").cells("reg", &[0]).end().end();
    extra(&mut b);
    b.end().word(FDT_END);
    b.blob()
}

#[test]
fn a_hand_made_tree_reads() {
    let blob = machine(|_| {});
    let m = read(&blob).unwrap();
    assert_eq!(
        (m.ram, m.cpu_count, m.bootargs, m.timer_irq, m.uart),
        ((0x4000_0000, 0x1000_0000), 1, "test=unit", 30, None)
    );
}

fn malformation(blob: &[u8]) -> String {
    match Fdt::new(blob) {
        Err(DtbError::Malformed { what, .. }) => what.to_str().unwrap().to_string(),
        other => panic!("not malformed: {other:?}"),
    }
}

#[test]
fn broken_headers_are_named() {
    let good = machine(|_| {});
    assert_eq!(read(&good[..20]).unwrap_err(), DtbError::Truncated);
    assert_eq!(read(&good[..good.len() - 1]).unwrap_err(), DtbError::Truncated, "totalsize past the end");
    let mut bad = good.clone();
    bad[0] = 0;
    assert_eq!(read(&bad).unwrap_err(), DtbError::BadMagic);
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&(good.len() as u32).to_be_bytes());
    assert_eq!(read(&bad).unwrap_err(), DtbError::BadHeader, "structure block past totalsize");
    let mut bad = good.clone();
    bad[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(read(&bad).unwrap_err(), DtbError::BadHeader, "size overflows");
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(read(&bad).unwrap_err(), DtbError::UnsupportedVersion);
    for e in [DtbError::Truncated, DtbError::BadHeader, DtbError::NoMemory, DtbError::BadBootargs] {
        assert!(e.message().to_bytes().starts_with(b"tricolor: "));
    }
}

#[test]
fn broken_structure_blocks_are_named() {
    let no_end = {
        let mut b = Builder::default();
        b.begin("").end();
        b.blob()
    };
    assert!(malformation(&no_end).contains("without FDT_END"));
    let mut b = Builder::default();
    b.begin("").begin("child").end().prop("late", b"x").end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("property after a subnode"));
    let mut b = Builder::default();
    b.begin("").end().begin("").end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("more than one root"));
    let mut b = Builder::default();
    b.end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("FDT_END_NODE outside"));
    let mut b = Builder::default();
    b.begin("");
    for _ in 0..MAX_DEPTH {
        b.begin("n");
    }
    assert!(malformation(&b.blob()).contains("nested too deep"));
    let mut b = Builder::default();
    b.begin("").word(FDT_PROP).word(1000).word(0).end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("property runs past"));
    let mut b = Builder::default();
    b.begin("").word(FDT_PROP).word(0).word(500).end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("property name outside"));
    let mut b = Builder::default();
    b.begin("").word(7).end().word(FDT_END);
    assert!(malformation(&b.blob()).contains("unknown structure token"));
    let mut b = Builder::default();
    b.begin("").word(FDT_END);
    assert!(malformation(&b.blob()).contains("FDT_END inside a node"));
}

#[test]
fn missing_or_unusable_facts_are_errors_or_absent() {
    // No memory node.
    let mut b = Builder::default();
    b.begin("").begin("chosen").end().end().word(FDT_END);
    assert_eq!(read(&b.blob()).unwrap_err(), DtbError::NoMemory);
    // #address-cells 3 (unreadable): the memory reg is unusable, not misread.
    let mut b = Builder::default();
    b.begin("").cells("#address-cells", &[3]).cells("#size-cells", &[2]);
    b.begin("memory").cells("reg", &[0, 0, 0x4000_0000, 0, 0x1000]).end().end().word(FDT_END);
    assert_eq!(read(&b.blob()).unwrap_err(), DtbError::NoMemory);
    // Bootargs that are not UTF-8.
    let blob = machine(|b| {
        b.begin("chosen").prop("bootargs", b"log=\xff\0").end();
    });
    assert!(read(&blob).is_ok(), "the first /chosen wins");
    let mut b = Builder::default();
    b.begin("").begin("chosen").prop("bootargs", b"log=\xff\0").end();
    b.begin("memory").cells("reg", &[0, 0x4000_0000, 0x1000]).end().end().word(FDT_END);
    assert_eq!(read(&b.blob()).unwrap_err(), DtbError::BadBootargs);
    // A CPU without reg is skipped, no /cpus means no CPUs, a timer that is not a PPI is the default.
    let blob = machine(|b| {
        b.begin("cpus").begin("cpu@1").end().end();
        b.begin("timer")
            .prop("compatible", b"arm,armv8-timer\0")
            .cells("interrupts", &[1, 13, 4, 0, 0xffff_ffff, 4])
            .end();
        b.begin("v")
            .prop("compatible", b"virtio,mmio\0")
            .cells("reg", &[0, 0xa00_0000, 0, 0x200])
            .cells("interrupts", &[0, 0xffff_fff0, 1])
            .end();
    });
    let m = read(&blob).unwrap();
    assert_eq!((m.cpu_count, m.timer_irq), (1, 30));
    assert_eq!(virtio_mmio_slots(&blob, 0x200), [MmioSlot { base: 0xa00_0000, size: 0x200, irq: None }]);
}

/// A GICv3 node under a root with two address and two size cells; `extra` adds its properties.
fn gicv3(reg: &[u32], extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
    machine(|b| {
        b.begin("intc@8000000").prop("compatible", b"arm,gic-v3\0").prop("interrupt-controller", b"");
        b.cells("reg", reg);
        extra(b);
        b.end();
    })
}

fn unusable(blob: &[u8]) -> &'static str {
    match read(blob).unwrap().gic {
        Err(NoGic::Unusable { why, .. }) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn gicv3_regions_and_stride_are_read() {
    let two = gicv3(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 0x4_0000, 0x40, 0, 0, 0x8_0000], |b| {
        b.cells("#redistributor-regions", &[2]).cells("redistributor-stride", &[0, 0x4_0000]);
    });
    let gic = read(&two).unwrap().gic.unwrap();
    assert_eq!(
        gic.redistributor_regions(),
        [Region { base: 0x80a_0000, size: 0x4_0000 }, Region { base: 0x40_0000_0000, size: 0x8_0000 }]
    );
    assert!(matches!(
        gic,
        Gic::V3 { distributor: Region { base: 0x800_0000, size: 0x1_0000 }, stride: Some(0x4_0000), .. }
    ));
    // Extra entries past the redistributor regions (GICC, GICH, GICV for GICv2 compatibility) are ignored.
    let compat = gicv3(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 0x2_0000, 0, 0x801_0000, 0, 0x1_0000], |_| {});
    assert_eq!(read(&compat).unwrap().gic.unwrap().redistributor_regions().len(), 1);
}

#[test]
fn unusable_gicv3_nodes_say_why() {
    let d = [0, 0x800_0000, 0, 0x1_0000];
    let r = [0, 0x80a_0000, 0, 0x2_0000];
    let both = [d, r].concat();
    assert!(unusable(&gicv3(&both, |b| {
        b.cells("#redistributor-regions", &[2]);
    }))
    .contains("fewer redistributor regions"));
    assert!(unusable(&gicv3(&both, |b| {
        b.cells("#redistributor-regions", &[0]);
    }))
    .contains("is 0 or more"));
    assert!(unusable(&gicv3(&both, |b| {
        b.cells("#redistributor-regions", &[5]);
    }))
    .contains("is 0 or more"));
    assert!(unusable(&gicv3(&d, |_| {})).contains("fewer redistributor regions"));
    assert!(unusable(&gicv3(&[], |_| {})).contains("no distributor"));
    assert!(unusable(&gicv3(&[d, [0, 0x80a_0000, 0, 0x1_0000]].concat(), |_| {})).contains("smaller than one"));
    assert!(unusable(&gicv3(&[d, [0, 0x80a_1000, 0, 0x2_0000]].concat(), |_| {})).contains("misaligned"));
    assert!(unusable(&gicv3(&[d, [0xffff_ffff, 0xfffe_0000, 0, 0x4_0000]].concat(), |_| {})).contains("misaligned"));
    assert!(unusable(&gicv3(&both, |b| {
        b.cells("redistributor-stride", &[0, 0x1_8000]);
    }))
    .contains("redistributor-stride"));
    assert!(unusable(&gicv3(&both, |b| {
        b.prop("status", b"disabled\0");
    }))
    .contains("status"));
    // "okay" is usable.
    assert!(read(&gicv3(&both, |b| {
        b.prop("status", b"okay\0");
    }))
    .unwrap()
    .gic
    .is_ok());
}

#[test]
fn other_interrupt_controllers_are_named_and_none_is_absent() {
    assert_eq!(read(&machine(|_| {})).unwrap().gic, Err(NoGic::Absent));
    let apple = machine(|b| {
        b.begin("interrupt-controller@23b100000").prop("compatible", b"apple,aic\0");
        b.prop("interrupt-controller", b"").cells("reg", &[2, 0x3b10_0000, 0, 0x8000]).end();
    });
    assert_eq!(
        read(&apple).unwrap().gic,
        Err(NoGic::Unusable { compatible: "apple,aic", why: "not a GICv2 or GICv3" })
    );
    let v2_short = machine(|b| {
        b.begin("intc").prop("compatible", b"arm,cortex-a15-gic\0").cells("reg", &[0, 0x800_0000, 0, 0x1_0000]).end();
    });
    assert_eq!(
        read(&v2_short).unwrap().gic,
        Err(NoGic::Unusable {
            compatible: "arm,cortex-a15-gic",
            why: "reg lacks the distributor or the CPU interface"
        })
    );
}
