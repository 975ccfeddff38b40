//! The device-tree reading path (`tricolor_kernel::dtb`): any bytes where the DTB should be.
//! Either a machine description or a clear error; never a panic, and the description is
//! consistent (no more CPUs than the kernel manages, every slot from inside the blob).

use crate::{Outcome, Target};
use tricolor_abi::MAX_CORES;
use tricolor_kernel::dtb::{self, DtbError, Gic, NoGic, GICR_FRAMES_SIZE, MAX_GICR_REGIONS};

pub static TARGET: Target = Target { name: "devicetree", run, dictionary: DICTIONARY, max_len: 16 << 10 };

static DICTIONARY: &[&[u8]] = &[
    b"\xd0\x0d\xfe\xed",
    b"\x00\x00\x00\x01",
    b"\x00\x00\x00\x02",
    b"\x00\x00\x00\x03",
    b"\x00\x00\x00\x09",
    b"\x00\x00\x00\x04",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"#address-cells\0",
    b"#size-cells\0",
    b"reg\0",
    b"compatible\0",
    b"interrupts\0",
    b"bootargs\0",
    b"method\0",
    b"memory\0",
    b"cpus\0",
    b"chosen\0",
    b"psci\0",
    b"cpu@0\0",
    b"virtio,mmio\0",
    b"arm,pl011\0",
    b"arm,armv8-timer\0",
    b"arm,cortex-a15-gic\0",
    b"arm,gic-v3\0",
    b"#redistributor-regions\0",
    b"redistributor-stride\0",
    b"interrupt-controller\0",
    b"status\0",
];

fn run(data: &[u8]) -> Outcome {
    let kind = match dtb::read(data) {
        Ok(m) => {
            if m.cpu_count > MAX_CORES {
                return Err(format!("{} CPUs recorded, the kernel manages {MAX_CORES}", m.cpu_count));
            }
            if m.dtb_size > data.len() {
                return Err(format!("dtb_size {} beyond the {} bytes given", m.dtb_size, data.len()));
            }
            let gic = match m.gic {
                Ok(Gic::V2 { .. }) => "v2",
                Ok(gic @ Gic::V3 { .. }) => {
                    let regions = gic.redistributor_regions();
                    if regions.is_empty() || regions.len() > MAX_GICR_REGIONS {
                        return Err(format!("{} redistributor regions", regions.len()));
                    }
                    if let Some(r) =
                        regions.iter().find(|r| r.size < GICR_FRAMES_SIZE || r.base.checked_add(r.size).is_none())
                    {
                        return Err(format!("redistributor region {r:?} cannot hold a redistributor"));
                    }
                    "v3"
                }
                Err(NoGic::Absent) => "nogic",
                Err(NoGic::Unusable { .. }) => "badgic",
            };
            let args = if m.bootargs.is_empty() { "noargs" } else { "args" };
            format!("ok:cpus{}:{args}:{gic}", m.cpu_count.min(2))
        }
        Err(e) => format!("err:{}", error_kind(&e)),
    };
    // The GPU probe walks the same blob.
    let slots = dtb::virtio_mmio_slots(data, 0x200);
    Ok(format!("{kind}:slots{}", slots.len().min(2)))
}

fn error_kind(e: &DtbError) -> String {
    format!("{e:?}").split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn smoke() {
        let report = crate::smoke(&super::TARGET, 2.0);
        assert!(report.kinds.keys().any(|k| k.starts_with("ok:")), "{report}");
        // The corpus's QEMU trees: GICv2 and GICv3 (smp 16) both read.
        for gic in [":v2:", ":v3:"] {
            assert!(report.kinds.keys().any(|k| k.contains(gic)), "no {gic} outcome: {report}");
        }
    }
}
