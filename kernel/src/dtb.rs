//! What the kernel reads from the flattened device tree (devicetree-specification 0.4, chapter 5),
//! as a function of the DTB's bytes: no hardware access, so host tests and the fuzzer (fuzz/,
//! target `devicetree`) feed it any bytes. The binary's `devicetree` module finds the DTB in
//! memory and hands its bytes here.
//!
//! The reader is tricolor's own, not the `fdt` crate's: `fdt` 0.1.5 panics on malformed input
//! (`expect("requires memory node")`, `expect("not utf-8 cstr")`, unchecked token reads; the fuzzer
//! found five sites in seconds), and a panic this early has no console to report it on. Here
//! [`Fdt::new`] checks the header and walks the whole structure block once (tokens, name and
//! string bounds, nesting, property order), so a blob that passes is well formed; the queries
//! after that still read through bounds-checked accessors. Nothing allocates: this runs before
//! the kernel heap exists.

use alloc::vec::Vec;
use core::ffi::CStr;
use tricolor_abi::MAX_CORES;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Header: ten big-endian u32 fields.
const HEADER_LEN: usize = 40;
/// Deeper nesting is refused (QEMU's trees are 3 deep; the walker's stack is fixed).
pub const MAX_DEPTH: usize = 16;

/// Why a DTB was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtbError {
    /// Shorter than its header, or than the `totalsize` it declares.
    Truncated,
    /// No 0xd00dfeed at the start.
    BadMagic,
    /// The header's offsets or sizes point outside the blob or are misaligned.
    BadHeader,
    /// A version this reader does not know (it reads version 16 and 17 layouts).
    UnsupportedVersion,
    /// The structure block is not well formed; `what` says how, `offset` where (in the block).
    Malformed { offset: usize, what: &'static CStr },
    /// No `/memory` node with a usable `reg`.
    NoMemory,
    /// `/chosen/bootargs` is not UTF-8 text.
    BadBootargs,
}

impl DtbError {
    /// A message for the earliest console (semihosting), before the UART is known.
    pub fn message(&self) -> &'static CStr {
        match self {
            Self::Truncated => c"tricolor: the device tree is truncated (shorter than its header or totalsize)\n",
            Self::BadMagic => c"tricolor: no device tree (FDT magic) at x0 or at the start of RAM\n",
            Self::BadHeader => c"tricolor: the device tree header points outside the blob\n",
            Self::UnsupportedVersion => c"tricolor: the device tree's version is not 16 or 17\n",
            Self::Malformed { what, .. } => what,
            Self::NoMemory => c"tricolor: the device tree has no /memory region\n",
            Self::BadBootargs => c"tricolor: /chosen/bootargs in the device tree is not UTF-8\n",
        }
    }
}

fn malformed(offset: usize, what: &'static CStr) -> DtbError {
    DtbError::Malformed { offset, what }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// The NUL-terminated bytes at `at` (without the NUL), if the NUL is inside `bytes`.
fn c_bytes(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let rest = bytes.get(at..)?;
    rest.get(..rest.iter().position(|&b| b == 0)?)
}

/// A validated device tree.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    total: usize,
}

/// `#address-cells` and `#size-cells` a node gives its children (defaults 2 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cells {
    pub address: u32,
    pub size: u32,
}

const DEFAULT_CELLS: Cells = Cells { address: 2, size: 1 };

impl<'a> Fdt<'a> {
    /// Checks the header and the whole structure block.
    pub fn new(data: &'a [u8]) -> Result<Self, DtbError> {
        let word = |i: usize| be32(data, 4 * i).ok_or(DtbError::Truncated);
        if data.len() < HEADER_LEN {
            return Err(if be32(data, 0).is_some_and(|m| m != FDT_MAGIC) {
                DtbError::BadMagic
            } else {
                DtbError::Truncated
            });
        }
        if word(0)? != FDT_MAGIC {
            return Err(DtbError::BadMagic);
        }
        let total = word(1)? as usize;
        if total > data.len() {
            return Err(DtbError::Truncated);
        }
        let (version, last_compatible) = (word(5)?, word(6)?);
        if version < 16 || last_compatible > 17 {
            return Err(DtbError::UnsupportedVersion);
        }
        let block = |offset: u32, size: u32| -> Result<&'a [u8], DtbError> {
            let (offset, size) = (offset as usize, size as usize);
            let end = offset.checked_add(size).ok_or(DtbError::BadHeader)?;
            if offset < HEADER_LEN || end > total {
                return Err(DtbError::BadHeader);
            }
            data.get(offset..end).ok_or(DtbError::BadHeader)
        };
        let (off_struct, off_strings) = (word(2)?, word(3)?);
        if !off_struct.is_multiple_of(4) || total < HEADER_LEN {
            return Err(DtbError::BadHeader);
        }
        let fdt = Fdt { structs: block(off_struct, word(9)?)?, strings: block(off_strings, word(8)?)?, total };
        fdt.validate()?;
        Ok(fdt)
    }

    /// The declared `totalsize`.
    pub fn total_size(&self) -> usize {
        self.total
    }

    /// Walks every token once: the checks the queries below then rely on.
    fn validate(&self) -> Result<(), DtbError> {
        let s = self.structs;
        let (mut at, mut depth, mut roots) = (0usize, 0usize, 0usize);
        // Whether the innermost open node already had a subnode (properties must come first).
        let mut had_child = [false; MAX_DEPTH + 1];
        loop {
            let token =
                be32(s, at).ok_or(malformed(at, c"tricolor: device tree: structure block ends without FDT_END\n"))?;
            let start = at;
            at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    if depth == 0 {
                        roots += 1;
                        if roots > 1 {
                            return Err(malformed(start, c"tricolor: device tree: more than one root node\n"));
                        }
                    } else {
                        had_child[depth] = true;
                    }
                    let name =
                        c_bytes(s, at).ok_or(malformed(at, c"tricolor: device tree: node name without NUL\n"))?;
                    at = align4(at + name.len() + 1).ok_or(malformed(at, c"tricolor: device tree: bad node name\n"))?;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(malformed(start, c"tricolor: device tree: nodes nested too deep\n"));
                    }
                    had_child[depth] = false;
                }
                FDT_END_NODE => {
                    if depth == 0 {
                        return Err(malformed(start, c"tricolor: device tree: FDT_END_NODE outside any node\n"));
                    }
                    depth -= 1;
                }
                FDT_PROP => {
                    if depth == 0 {
                        return Err(malformed(start, c"tricolor: device tree: property outside any node\n"));
                    }
                    if had_child[depth] {
                        return Err(malformed(start, c"tricolor: device tree: property after a subnode\n"));
                    }
                    let bad = malformed(start, c"tricolor: device tree: property runs past the structure block\n");
                    let len = be32(s, at).ok_or(bad)? as usize;
                    let name_offset = be32(s, at + 4).ok_or(bad)? as usize;
                    let value_end = (at + 8).checked_add(len).filter(|&end| end <= s.len()).ok_or(bad)?;
                    if c_bytes(self.strings, name_offset).is_none() {
                        return Err(malformed(
                            start,
                            c"tricolor: device tree: property name outside the strings block\n",
                        ));
                    }
                    at = align4(value_end).ok_or(bad)?;
                }
                FDT_NOP => {}
                FDT_END => {
                    return match (depth, roots) {
                        (0, 1) => Ok(()),
                        (0, _) => Err(malformed(start, c"tricolor: device tree: no root node\n")),
                        _ => Err(malformed(start, c"tricolor: device tree: FDT_END inside a node\n")),
                    };
                }
                _ => return Err(malformed(start, c"tricolor: device tree: unknown structure token\n")),
            }
        }
    }

    /// Every node, in document order.
    pub fn nodes(&self) -> Nodes<'a> {
        Nodes { fdt: *self, at: 0, depth: 0, stack: [DEFAULT_CELLS; MAX_DEPTH + 1], only_depth: None, done: false }
    }

    /// The root node.
    pub fn root(&self) -> Option<Node<'a>> {
        self.nodes().next()
    }

    /// A child of the root by name, ignoring the unit address (`memory` finds `memory@40000000`).
    pub fn root_child(&self, name: &str) -> Option<Node<'a>> {
        self.root()?.children().find(|n| n.base_name() == name.as_bytes())
    }

    /// The first node whose `compatible` lists one of `with`.
    pub fn find_compatible(&self, with: &[&str]) -> Option<Node<'a>> {
        self.nodes().find(|n| n.compatible().any(|c| with.contains(&c)))
    }

    fn string_at(&self, offset: usize) -> Option<&'a [u8]> {
        c_bytes(self.strings, offset)
    }
}

/// One node: its name, where its properties start, and the cells its `reg` is read with.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    fdt: Fdt<'a>,
    pub name: &'a [u8],
    /// Offset of the first token after the name (the properties, then the subnodes).
    at: usize,
    /// Nesting: the root is 1.
    depth: usize,
    /// The parent's `#address-cells`/`#size-cells`: how this node's `reg` reads.
    pub cells: Cells,
}

impl<'a> Node<'a> {
    /// The name without the unit address.
    pub fn base_name(&self) -> &'a [u8] {
        self.name.split(|&b| b == b'@').next().unwrap_or(self.name)
    }

    /// The node's properties: (name, value).
    pub fn properties(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let (fdt, mut at) = (self.fdt, self.at);
        core::iter::from_fn(move || loop {
            match be32(fdt.structs, at)? {
                FDT_NOP => at += 4,
                FDT_PROP => {
                    let len = be32(fdt.structs, at + 4)? as usize;
                    let name = fdt.string_at(be32(fdt.structs, at + 8)? as usize)?;
                    let value = fdt.structs.get(at + 12..(at + 12).checked_add(len)?)?;
                    at = align4(at + 12 + len)?;
                    return Some((name, value));
                }
                _ => return None,
            }
        })
    }

    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }

    /// A property holding one NUL-terminated UTF-8 string.
    pub fn property_str(&self, name: &str) -> Option<Result<&'a str, core::str::Utf8Error>> {
        let value = self.property(name)?;
        let text = value.split(|&b| b == 0).next().unwrap_or(value);
        Some(core::str::from_utf8(text))
    }

    /// The `compatible` strings (entries that are not UTF-8 are skipped).
    pub fn compatible(&self) -> impl Iterator<Item = &'a str> + 'a {
        let value = self.property("compatible").unwrap_or(&[]);
        value.split(|&b| b == 0).filter(|s| !s.is_empty()).filter_map(|s| core::str::from_utf8(s).ok())
    }

    /// The cells this node gives its children.
    fn own_cells(&self) -> Cells {
        let cell = |name| self.property(name).filter(|v| v.len() == 4).and_then(|v| be32(v, 0));
        Cells {
            address: cell("#address-cells").unwrap_or(DEFAULT_CELLS.address),
            size: cell("#size-cells").unwrap_or(DEFAULT_CELLS.size),
        }
    }

    /// `reg` entries (address, size), read with the parent's cells. Cell counts this reader
    /// cannot hold (address 0 or > 2, size > 2) give no entries, not a guess.
    pub fn reg(&self) -> impl Iterator<Item = (u64, Option<u64>)> + 'a {
        let (a, s) = (self.cells.address as usize, self.cells.size as usize);
        let usable = (1..=2).contains(&a) && s <= 2;
        let value = self.property("reg").filter(|_| usable).unwrap_or(&[]);
        let number = |cells: &[u8]| cells.chunks_exact(4).fold(0u64, |n, c| n << 32 | be32(c, 0).unwrap_or(0) as u64);
        value.chunks_exact(4 * (a + s).max(1)).filter(move |_| usable).map(move |entry| {
            let (address, size) = entry.split_at(4 * a);
            (number(address), (s > 0).then(|| number(size)))
        })
    }

    /// The direct subnodes.
    pub fn children(&self) -> Nodes<'a> {
        let mut stack = [DEFAULT_CELLS; MAX_DEPTH + 1];
        if let Some(slot) = stack.get_mut(self.depth) {
            *slot = self.own_cells();
        }
        Nodes { fdt: self.fdt, at: self.at, depth: self.depth, stack, only_depth: Some(self.depth + 1), done: false }
    }
}

/// Nodes in document order (all of them, or the children of one node).
pub struct Nodes<'a> {
    fdt: Fdt<'a>,
    at: usize,
    depth: usize,
    /// `stack[d]`: the cells the open node at depth `d` gives its children (`stack[0]`: the
    /// root's parent, the defaults).
    stack: [Cells; MAX_DEPTH + 1],
    only_depth: Option<usize>,
    done: bool,
}

impl<'a> Iterator for Nodes<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        while !self.done {
            let s = self.fdt.structs;
            let Some(token) = be32(s, self.at) else { break };
            self.at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let name = c_bytes(s, self.at)?;
                    self.at = align4(self.at + name.len() + 1)?;
                    let cells = *self.stack.get(self.depth)?;
                    self.depth += 1;
                    let node = Node { fdt: self.fdt, name, at: self.at, depth: self.depth, cells };
                    *self.stack.get_mut(self.depth)? = node.own_cells();
                    if self.only_depth.is_none_or(|d| d == self.depth) {
                        return Some(node);
                    }
                }
                FDT_END_NODE => {
                    self.depth = self.depth.checked_sub(1)?;
                    // Done when the root closes, or (listing children) their parent closes.
                    let floor = self.only_depth.map_or(1, |d| d - 1);
                    self.done = self.depth < floor;
                }
                FDT_PROP => {
                    let len = be32(s, self.at)? as usize;
                    self.at = align4(self.at.checked_add(8)?.checked_add(len)?)?;
                }
                FDT_NOP => {}
                _ => break,
            }
        }
        self.done = true;
        None
    }
}

/// The facts the kernel needs from the device tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo<'a> {
    /// The DTB's `totalsize`.
    pub dtb_size: usize,
    /// RAM (base, size): the first /memory region.
    pub ram: (usize, usize),
    pub uart: Option<usize>,
    /// The UART's interrupt (its receive interrupt feeds the console).
    pub uart_irq: Option<DeviceIrq>,
    /// `/psci`'s `method` ("hvc" or "smc").
    pub psci_method: Option<&'a str>,
    /// MPIDR of every CPU node with a `reg`, in device-tree order.
    pub cpus: [u64; MAX_CORES],
    pub cpu_count: usize,
    /// CPU nodes beyond MAX_CORES (reported, not started).
    pub cpus_ignored: usize,
    pub bootargs: &'a str,
    /// The interrupt controller, or why there is none the kernel can drive.
    pub gic: Result<Gic, NoGic<'a>>,
    /// Interrupt id of the EL1 non-secure physical timer (a PPI).
    pub timer_irq: u32,
}

/// Redistributor regions the reader keeps (QEMU `virt` has one, and a second beyond 123 CPUs).
pub const MAX_GICR_REGIONS: usize = 4;
/// The smallest redistributor: its RD_base and SGI_base frames, 64 KiB each (GICv3 spec 12.10).
pub const GICR_FRAMES_SIZE: u64 = 0x2_0000;
/// GIC register frames are 64 KiB-aligned (GICv3 spec 12.1.2, "GIC memory-mapped register map").
const GIC_FRAME: u64 = 0x1_0000;

/// One register region: `reg`'s (address, size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

/// The interrupt controller the device tree describes, as far as the kernel drives one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// `arm,cortex-a15-gic`, `arm,gic-400` (binding `arm,gic.yaml`): `reg` = distributor, CPU
    /// interface (then the virtualisation frames, unused).
    V2 { distributor: u64, cpu_interface: u64 },
    /// `arm,gic-v3` (binding `arm,gic-v3.yaml`): `reg` = the distributor, then
    /// `#redistributor-regions` (default 1) redistributor regions, each a run of redistributors
    /// `redistributor-stride` apart (if given; otherwise each redistributor's GICR_TYPER says).
    V3 { distributor: Region, redistributors: [Region; MAX_GICR_REGIONS], regions: usize, stride: Option<u64> },
}

impl Gic {
    /// The GICv3 redistributor regions (empty for a GICv2).
    pub fn redistributor_regions(&self) -> &[Region] {
        match self {
            Gic::V2 { .. } => &[],
            Gic::V3 { redistributors, regions, .. } => &redistributors[..*regions],
        }
    }
}

/// Why the machine has no interrupt controller the kernel can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoGic<'a> {
    /// No node is an interrupt controller.
    Absent,
    /// A controller is described, but not one (or not in a way) this kernel can use.
    Unusable { compatible: &'a str, why: &'static str },
}

const GICV2_COMPATIBLE: &[&str] = &["arm,cortex-a15-gic", "arm,gic-400"];
const GICV3_COMPATIBLE: &[&str] = &["arm,gic-v3"];

/// The interrupt controller: a GICv2 or GICv3 node with usable `reg`, else why not.
fn interrupt_controller<'a>(fdt: &Fdt<'a>) -> Result<Gic, NoGic<'a>> {
    let node = fdt.find_compatible(GICV3_COMPATIBLE).or_else(|| fdt.find_compatible(GICV2_COMPATIBLE));
    let Some(node) = node else {
        // Something else claims to be the interrupt controller: say what, rather than "none".
        return match fdt.nodes().find(|n| n.property("interrupt-controller").is_some()) {
            Some(other) => Err(NoGic::Unusable {
                compatible: other.compatible().next().unwrap_or("(no compatible)"),
                why: "not a GICv2 or GICv3",
            }),
            None => Err(NoGic::Absent),
        };
    };
    let v3 = node.compatible().any(|c| GICV3_COMPATIBLE.contains(&c));
    let compatible = node.compatible().find(|c| GICV3_COMPATIBLE.contains(c) || GICV2_COMPATIBLE.contains(c));
    let unusable = |why| NoGic::Unusable { compatible: compatible.unwrap_or(""), why };
    if node.property_str("status").and_then(Result::ok).is_some_and(|s| s != "okay" && s != "ok") {
        return Err(unusable("its status is not \"okay\""));
    }
    let mut reg = node.reg();
    if !v3 {
        let (Some((distributor, _)), Some((cpu_interface, _))) = (reg.next(), reg.next()) else {
            return Err(unusable("reg lacks the distributor or the CPU interface"));
        };
        return Ok(Gic::V2 { distributor, cpu_interface });
    }
    let framed = |(base, size): (u64, Option<u64>), least: u64| -> Option<Region> {
        let size = size?;
        (base.is_multiple_of(GIC_FRAME) && size >= least && base.checked_add(size).is_some())
            .then_some(Region { base, size })
    };
    let distributor = reg
        .next()
        .and_then(|r| framed(r, GIC_FRAME))
        .ok_or(unusable("reg has no distributor region (64 KiB-aligned, with a size)"))?;
    let regions = match node.property("#redistributor-regions") {
        None => 1,
        Some(v) => match (v.len(), be32(v, 0)) {
            (4, Some(n)) => n as usize,
            _ => return Err(unusable("#redistributor-regions is not one cell")),
        },
    };
    if !(1..=MAX_GICR_REGIONS).contains(&regions) {
        return Err(unusable("#redistributor-regions is 0 or more than the 4 this kernel reads"));
    }
    let mut redistributors = [Region::default(); MAX_GICR_REGIONS];
    for slot in &mut redistributors[..regions] {
        *slot = reg
            .next()
            .ok_or(unusable("reg lists fewer redistributor regions than #redistributor-regions"))
            .and_then(|r| {
                framed(r, GICR_FRAMES_SIZE)
                    .ok_or(unusable("a redistributor region is misaligned, unsized or smaller than one redistributor"))
            })?;
    }
    let stride = match node.property("redistributor-stride") {
        None => None,
        Some(v) => {
            let stride = match v.len() {
                4 => be32(v, 0).map(u64::from),
                8 => Some(u64::from(be32(v, 0).unwrap_or(0)) << 32 | u64::from(be32(v, 4).unwrap_or(0))),
                _ => None,
            };
            match stride {
                Some(s) if s >= GICR_FRAMES_SIZE && s.is_multiple_of(GIC_FRAME) => Some(s),
                _ => return Err(unusable("redistributor-stride is not a multiple of 64 KiB of at least 128 KiB")),
            }
        }
    };
    Ok(Gic::V3 { distributor, redistributors, regions, stride })
}

/// The architectural default timer PPI (14, id 30), should the node be missing or unusable.
const DEFAULT_TIMER_IRQ: u32 = 30;

/// `/timer`'s second interrupt (the non-secure EL1 physical timer) as a GIC interrupt id; only a
/// PPI (type 1, number < 16) is accepted.
fn timer_interrupt(fdt: &Fdt<'_>) -> Option<u32> {
    let node = fdt.find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])?;
    let cells = node.property("interrupts")?;
    // Three big-endian cells per interrupt: (type, number, flags); PPIs start at id 16.
    let (kind, number) = (be32(cells, 12)?, be32(cells, 16)?);
    (kind == 1 && number < 16).then(|| number + 16)
}

/// Reads the machine description from a DTB.
pub fn read(bytes: &[u8]) -> Result<MachineInfo<'_>, DtbError> {
    let fdt = Fdt::new(bytes)?;
    let memory = fdt.root().into_iter().flat_map(|root| root.children()).filter(|n| n.base_name() == b"memory");
    let (base, size) = memory.filter_map(|n| n.reg().next()).next().ok_or(DtbError::NoMemory)?;
    let ram = (base as usize, size.unwrap_or(0) as usize);
    let uart_node = fdt.find_compatible(&["arm,pl011"]);
    let uart = uart_node.and_then(|n| n.reg().next()).map(|(a, _)| a as usize);
    let uart_irq = uart_node.and_then(|n| n.property("interrupts")).and_then(gic_interrupt);
    let psci_method = fdt.root_child("psci").and_then(|n| n.property_str("method")).and_then(Result::ok);
    let mut cpus = [0u64; MAX_CORES];
    let (mut cpu_count, mut cpus_ignored) = (0, 0);
    let cpu_nodes = fdt.root_child("cpus").into_iter().flat_map(|c| c.children()).filter(|n| n.base_name() == b"cpu");
    for (mpidr, _) in cpu_nodes.filter_map(|n| n.reg().next()) {
        match cpus.get_mut(cpu_count) {
            Some(slot) => {
                *slot = mpidr;
                cpu_count += 1;
            }
            None => cpus_ignored += 1,
        }
    }
    let bootargs = match fdt.root_child("chosen").and_then(|n| n.property_str("bootargs")) {
        None => "",
        Some(Ok(text)) => text,
        Some(Err(_)) => return Err(DtbError::BadBootargs),
    };
    let gic = interrupt_controller(&fdt);
    Ok(MachineInfo {
        dtb_size: fdt.total_size(),
        ram,
        uart,
        uart_irq,
        psci_method,
        cpus,
        cpu_count,
        cpus_ignored,
        bootargs,
        gic,
        timer_irq: timer_interrupt(&fdt).unwrap_or(DEFAULT_TIMER_IRQ),
    })
}

/// A device interrupt as the GIC numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIrq {
    /// GIC interrupt id (an SPI is 32 + the device-tree cell).
    pub id: u32,
    /// Level-sensitive (else edge-triggered), from the cell's flags.
    pub level: bool,
}

/// One `virtio,mmio` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioSlot {
    pub base: usize,
    /// The register block's size (`default` when `reg` has no size).
    pub size: usize,
    pub irq: Option<DeviceIrq>,
}

/// Every `virtio,mmio` node, in device-tree order; `default_size` for a `reg` without a size.
/// A blob [`Fdt::new`] refuses has none.
pub fn virtio_mmio_slots(bytes: &[u8], default_size: usize) -> Vec<MmioSlot> {
    let Ok(fdt) = Fdt::new(bytes) else { return Vec::new() };
    fdt.nodes()
        .filter(|node| node.compatible().any(|s| s == "virtio,mmio"))
        .filter_map(|node| {
            let (base, size) = node.reg().next()?;
            let irq = node.property("interrupts").and_then(gic_interrupt);
            Some(MmioSlot { base: base as usize, size: size.map_or(default_size, |s| s as usize), irq })
        })
        .collect()
}

/// The first GIC interrupt of an `interrupts` property: three big-endian cells (type, number,
/// flags) with type 0 = SPI (id 32 + number, below 1020) and 1 = PPI (id 16 + number, below 32);
/// flags 4 and 8 are level-high and level-low, 1 and 2 edges.
pub fn gic_interrupt(cells: &[u8]) -> Option<DeviceIrq> {
    let (kind, number, flags) = (be32(cells, 0)?, be32(cells, 4)?, be32(cells, 8)?);
    let id = match kind {
        0 if number < 988 => 32 + number,
        1 if number < 16 => 16 + number,
        _ => return None,
    };
    Some(DeviceIrq { id, level: flags & 0xc != 0 })
}

#[cfg(test)]
mod tests;
