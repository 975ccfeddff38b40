//! The QEMU command line for tricolor, in one place, and the ways to run it: interactively, captured
//! with a timeout (tests), and halted under gdb.

use crate::Result;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The GPU's display size (`xres`/`yres` of `virtio-gpu-device`) unless a machine says otherwise.
pub const GPU_WIDTH: u32 = 1280;
pub const GPU_HEIGHT: u32 = 720;

/// QEMU `virt`'s interrupt controller (`-machine virt,gic-version=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

impl GicVersion {
    /// GICv2 up to 8 cores (QEMU's default; its CPU interface has 8 target bits), GICv3 beyond.
    pub fn default_for(smp: usize) -> Self {
        if smp > 8 {
            Self::V3
        } else {
            Self::V2
        }
    }

    /// `2` or `3`, as `--gic` takes it.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "2" => Ok(Self::V2),
            "3" => Ok(Self::V3),
            _ => Err(format!("--gic {s}: 2 or 3")),
        }
    }
}

/// Rewrites the device tree QEMU generates before the kernel gets it (`-dtb`): machines QEMU
/// cannot make, such as one without a usable interrupt controller.
pub type DtbPatch = fn(&[u8]) -> Result<Vec<u8>>;

/// One QEMU `virt` machine.
#[derive(Clone)]
pub struct Machine {
    pub elf: PathBuf,
    pub smp: usize,
    pub append: String,
    /// Attach a `virtio-gpu-device`.
    pub gpu: bool,
    /// Its display size.
    pub display: (u32, u32),
    /// Attach a second `virtio-gpu-device` (the kernel drives the first only).
    pub second_gpu: bool,
    /// Leave QEMU's virtio-mmio transport in its default legacy (version 1) mode.
    pub legacy_mmio: bool,
    /// `-icount shift=0,sleep=off`: virtual time counts instructions, so measurements repeat.
    pub icount: bool,
    /// RAM (`-m`), e.g. "1G".
    pub memory: &'static str,
    /// The interrupt controller (`gic-version=`; above 8 cores always V3, which QEMU requires).
    pub gic: GicVersion,
    /// `virtualization=on`: the kernel is entered at EL2 (boot.s drops to EL1).
    pub el2: bool,
    /// Boot with QEMU's own device tree rewritten by this (dumped with `dumpdtb=`, then `-dtb`).
    pub dtb_patch: Option<DtbPatch>,
}

impl Machine {
    pub fn new(elf: &Path) -> Self {
        Self {
            elf: elf.to_path_buf(),
            smp: 4,
            append: String::new(),
            gpu: true,
            display: (GPU_WIDTH, GPU_HEIGHT),
            second_gpu: false,
            legacy_mmio: false,
            icount: false,
            memory: "1G",
            gic: GicVersion::V2,
            el2: false,
            dtb_patch: None,
        }
    }

    /// `-machine`'s value.
    fn machine_option(&self) -> String {
        let mut option = String::from("virt");
        // More than 8 cores are GICv3 whatever was asked: QEMU refuses them a GICv2.
        if self.gic == GicVersion::V3 || GicVersion::default_for(self.smp) == GicVersion::V3 {
            option.push_str(",gic-version=3");
        }
        if self.el2 {
            option.push_str(",virtualization=on");
        }
        option
    }

    /// Everything but the console/display choice.
    pub(crate) fn base_args(&self) -> Vec<String> {
        self.args_with_machine(self.machine_option())
    }

    fn args_with_machine(&self, machine: String) -> Vec<String> {
        let mut args: Vec<String> = vec!["-machine".into(), machine];
        args.extend(["-cpu", "cortex-a72", "-nic", "none", "-semihosting"].iter().map(|s| s.to_string()));
        args.extend(["-m".into(), self.memory.into()]);
        if !self.legacy_mmio {
            // VirtIO devices in modern (version 2) mode.
            args.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
        }
        args.extend(["-smp".into(), self.smp.to_string(), "-kernel".into(), self.elf.display().to_string()]);
        if !self.append.is_empty() {
            args.extend(["-append".into(), self.append.clone()]);
        }
        if self.icount {
            args.extend(["-icount".into(), "shift=0,sleep=off".into()]);
        }
        if self.gpu {
            // 1280x720 by default: the size the kernel's static framebuffer and the GPU numbers are for.
            let (w, h) = self.display;
            args.extend(["-device".into(), format!("virtio-gpu-device,xres={w},yres={h}")]);
            if self.second_gpu {
                args.extend(["-device".into(), format!("virtio-gpu-device,xres={w},yres={h}")]);
            }
        }
        args
    }
}

fn has_display() -> bool {
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Boots with the UART (and QEMU's monitor, Ctrl-A C) on this terminal.
pub fn run_interactive(machine: &Machine) -> Result {
    let mut args = machine.base_args();
    args.extend(["-serial".into(), "mon:stdio".into()]);
    if !has_display() {
        args.extend(["-display".into(), "none".into()]);
    }
    println!("xtask: $ qemu-system-aarch64 {}", args.join(" "));
    let status = Command::new("qemu-system-aarch64")
        .args(&args)
        .status()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(format!("the kernel exited with status {code}")),
        None => Err("QEMU was killed by a signal".into()),
    }
}

/// What a captured run produced.
pub struct Outcome {
    /// QEMU's exit status (the kernel's semihosting exit code); None if killed.
    pub status: Option<i32>,
    pub output: String,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// For a run that timed out under [`run_captured_dumping_hangs`]: gdb's account of where it
    /// hung (or why there is none).
    pub hang_dump: Option<String>,
}

/// Starts QEMU headless (no display, no monitor) with the console on piped stdout, stderr piped
/// too, and `extra` arguments appended.
pub fn spawn_headless(machine: &Machine, extra: &[String]) -> Result<std::process::Child> {
    spawn(machine, extra, Stdio::null())
}

/// [`spawn_headless`] with the console's input on a pipe too (to type commands).
pub fn spawn_interactive_headless(machine: &Machine, extra: &[String]) -> Result<std::process::Child> {
    spawn(machine, extra, Stdio::piped())
}

/// QEMU's device tree for `machine`, rewritten by its patch, in a file for `-dtb`.
fn patched_dtb(machine: &Machine, patch: DtbPatch) -> Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let dumped = dir.join(format!("tricolor-xtask-{}-{n}-qemu.dtb", std::process::id()));
    let patched = dir.join(format!("tricolor-xtask-{}-{n}.dtb", std::process::id()));
    let args = machine.args_with_machine(format!("{},dumpdtb={}", machine.machine_option(), dumped.display()));
    let out = Command::new("qemu-system-aarch64")
        .args(&args)
        .args(["-display", "none"])
        .output()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let bytes = std::fs::read(&dumped)
        .map_err(|e| format!("QEMU dumped no device tree ({e}): {}", String::from_utf8_lossy(&out.stderr)))?;
    let _ = std::fs::remove_file(&dumped);
    std::fs::write(&patched, patch(&pack_dtb(&bytes)?)?).map_err(|e| format!("{}: {e}", patched.display()))?;
    Ok(patched)
}

/// A dumped device tree without QEMU's padding (its totalsize is 1 MiB; QEMU 7.2 loads a `-dtb`
/// into twice its size, which then no longer fits below the kernel at 2 MiB into RAM and is
/// silently not loaded): cut after the strings block, the last one in QEMU's layout.
pub fn pack_dtb(dtb: &[u8]) -> Result<Vec<u8>> {
    let word = |i: usize| dtb.get(4 * i..4 * i + 4).map(|w| u32::from_be_bytes(w.try_into().unwrap()) as usize);
    let (magic, off_struct, off_strings, size_strings, size_struct) = (word(0), word(2), word(3), word(8), word(9));
    let (Some(0xd00d_feed), Some(off_struct), Some(off_strings), Some(size_strings), Some(size_struct)) =
        (magic, off_struct, off_strings, size_strings, size_struct)
    else {
        return Err("not a device tree (FDT header)".into());
    };
    let end = off_strings + size_strings;
    if off_struct + size_struct > off_strings || end > dtb.len() {
        return Err("device tree blocks not in QEMU's order (header, reservations, structure, strings)".into());
    }
    let mut packed = dtb[..end].to_vec();
    packed[4..8].copy_from_slice(&(end as u32).to_be_bytes());
    Ok(packed)
}

fn spawn(machine: &Machine, extra: &[String], stdin: Stdio) -> Result<std::process::Child> {
    let mut args = machine.base_args();
    if let Some(patch) = machine.dtb_patch {
        args.extend(["-dtb".into(), patched_dtb(machine, patch)?.display().to_string()]);
    }
    args.extend(["-display", "none", "-serial", "stdio", "-monitor", "none"].map(String::from));
    args.extend_from_slice(extra);
    Command::new("qemu-system-aarch64")
        .args(&args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))
}

/// Boots headless with the console captured, killing QEMU after `timeout`.
pub fn run_captured(machine: &Machine, timeout: Duration) -> Result<Outcome> {
    run_captured_inner(machine, timeout, false)
}

/// [`run_captured`], with a gdb stub on a Unix socket: a run that times out is not just killed,
/// gdb-multiarch first prints its tasks and every core's backtrace ([`Outcome::hang_dump`]), so a
/// hang nobody can reproduce still leaves where each core was. Without gdb-multiarch the dump
/// says so and the run is killed as before.
pub fn run_captured_dumping_hangs(machine: &Machine, timeout: Duration) -> Result<Outcome> {
    run_captured_inner(machine, timeout, true)
}

fn run_captured_inner(machine: &Machine, timeout: Duration, dump_hang: bool) -> Result<Outcome> {
    let start = Instant::now();
    let socket = dump_hang.then(|| crate::session::temp_socket("hang-gdb"));
    let stub: Vec<String> = socket.iter().flat_map(|s| crate::gdb::stub_args(s)).collect();
    let mut child = spawn_headless(machine, &stub)?;
    let readers =
        [reader(child.stdout.take().expect("piped stdout")), reader(child.stderr.take().expect("piped stderr"))];
    let mut timed_out = false;
    let mut hang_dump = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            break status;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            hang_dump = socket.as_ref().map(|s| crate::gdb::hang_dump(&machine.elf, s));
            let _ = child.kill();
            break child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(socket) = &socket {
        let _ = std::fs::remove_file(socket);
    }
    let output = readers.into_iter().map(|r| r.join().unwrap_or_default()).collect::<Vec<_>>().join("");
    Ok(Outcome {
        status: status.code(),
        output: output.replace('\r', ""),
        timed_out,
        elapsed: start.elapsed(),
        hang_dump,
    })
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Boots halted with a gdb stub on :1234 and attaches gdb-multiarch with tricolor's helper script.
pub fn debug(machine: &Machine) -> Result {
    let mut args = machine.base_args();
    args.extend(["-display", "none", "-serial", "file:/dev/stderr", "-monitor", "none", "-s", "-S"].map(String::from));
    println!("xtask: $ qemu-system-aarch64 {}", args.join(" "));
    let mut qemu = Command::new("qemu-system-aarch64")
        .args(&args)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let elf = machine.elf.display().to_string();
    let script = crate::gdb::script().display().to_string();
    let status = Command::new("gdb-multiarch")
        .args([&elf, "-ex", "target remote :1234", "-x", &script, "-ex", "break tricolor_boot_primary"])
        .status();
    let _ = qemu.kill();
    let _ = qemu.wait();
    status.map(|_| ()).map_err(|e| format!("cannot start gdb-multiarch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's own GICv3 tree (fuzz corpus, already packed) with 1 MiB of padding as dumpdtb writes it.
    fn padded() -> Vec<u8> {
        let dtb = include_bytes!("../../fuzz/corpus/devicetree/qemu-virt-gicv3-smp16.dtb");
        let mut padded = dtb.to_vec();
        padded.resize(1 << 20, 0);
        padded[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        padded
    }

    #[test]
    fn a_dumped_tree_is_packed_to_its_blocks() {
        let packed = pack_dtb(&padded()).unwrap();
        let original = include_bytes!("../../fuzz/corpus/devicetree/qemu-virt-gicv3-smp16.dtb");
        assert_eq!(packed.len(), u32::from_be_bytes(packed[4..8].try_into().unwrap()) as usize);
        assert_eq!(&packed[..], &original[..packed.len()], "only the padding goes");
        assert!(pack_dtb(&padded()[..100]).is_err(), "blocks past the end");
        assert!(pack_dtb(b"not a device tree at all, no magic here......").is_err());
    }

    #[test]
    fn the_machine_option_names_the_gic_and_el2() {
        let elf = Path::new("/none");
        assert_eq!(Machine::new(elf).machine_option(), "virt");
        assert_eq!(Machine { gic: GicVersion::V3, ..Machine::new(elf) }.machine_option(), "virt,gic-version=3");
        assert_eq!(Machine { smp: 16, ..Machine::new(elf) }.machine_option(), "virt,gic-version=3", "above 8 cores");
        assert_eq!(Machine { el2: true, ..Machine::new(elf) }.machine_option(), "virt,virtualization=on");
        assert_eq!(GicVersion::parse("3"), Ok(GicVersion::V3));
        assert!(GicVersion::parse("4").is_err());
    }
}
