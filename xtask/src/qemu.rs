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
        }
    }

    /// Everything but the console/display choice.
    pub(crate) fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-machine", "virt", "-cpu", "cortex-a72", "-nic", "none", "-semihosting"]
            .iter()
            .map(|s| s.to_string())
            .collect();
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

fn spawn(machine: &Machine, extra: &[String], stdin: Stdio) -> Result<std::process::Child> {
    let mut args = machine.base_args();
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
    let start = Instant::now();
    let mut child = spawn_headless(machine, &[])?;
    let readers =
        [reader(child.stdout.take().expect("piped stdout")), reader(child.stderr.take().expect("piped stderr"))];
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            break status;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = readers.into_iter().map(|r| r.join().unwrap_or_default()).collect::<Vec<_>>().join("");
    Ok(Outcome { status: status.code(), output: output.replace('\r', ""), timed_out, elapsed: start.elapsed() })
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
