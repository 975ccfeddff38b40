//! Building the kernel ELF.

/// The kernel's target. Soft-float on purpose: the collector scans registers conservatively and
/// the exception entry saves only general-purpose registers, so no pointer (and no state a
/// preempted task needs) may ever live in an FP/SIMD register. With the hard-float target LLVM
/// moves data through NEON registers (struct copies, memcpy), which the stop-the-world root scan
/// would not see and which a preempting interrupt handler could clobber.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

use crate::{cargo, Result};
use std::path::PathBuf;

#[derive(Clone, Copy)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds the kernel and returns the ELF's path.
pub fn build(profile: Profile) -> Result<PathBuf> {
    let mut args = vec!["build", "-p", "tricolor-kernel", "--bin", "tricolor", "--target", TARGET];
    if let Profile::Release = profile {
        args.push("--release");
    }
    cargo::run("cargo", &args)?;
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cargo::workspace_root().join("target"));
    let elf = target_dir.join(TARGET).join(dir).join("tricolor");
    if elf.exists() {
        Ok(elf)
    } else {
        Err(format!("the build succeeded but {} is missing", elf.display()))
    }
}
