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
    build_with(profile, None)
}

/// The release kernel with its write barrier compiled out (feature `no-barriers`: plain stores,
/// every mark stops the world), in a target directory of its own (`target/no-barriers`) so that
/// it does not replace the ordinary kernel's ELF and neither build invalidates the other.
pub fn build_no_barriers() -> Result<PathBuf> {
    build_with(Profile::Release, Some(("no-barriers", "no-barriers")))
}

/// The target directory of the `no-barriers` kernel (its build, and lint's clippy of it).
pub fn no_barriers_target_dir() -> PathBuf {
    target_dir().join("no-barriers")
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, or the workspace's `target`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| cargo::workspace_root().join("target"))
}

/// [`build`], with `(feature, target subdirectory)` if given.
fn build_with(profile: Profile, variant: Option<(&str, &str)>) -> Result<PathBuf> {
    let mut args = vec!["build", "-p", "tricolor-kernel", "--bin", "tricolor", "--target", TARGET];
    if let Profile::Release = profile {
        args.push("--release");
    }
    let target_dir = match variant {
        Some((_, subdir)) => target_dir().join(subdir),
        None => target_dir(),
    };
    let target_dir_arg = target_dir.display().to_string();
    if let Some((feature, _)) = variant {
        args.extend(["--features", feature, "--target-dir", &target_dir_arg]);
    }
    cargo::run("cargo", &args)?;
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let elf = target_dir.join(TARGET).join(dir).join("tricolor");
    if elf.exists() {
        Ok(elf)
    } else {
        Err(format!("the build succeeded but {} is missing", elf.display()))
    }
}
