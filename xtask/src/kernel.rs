//! Building the kernel ELF for aarch64-unknown-none.

use crate::{cargo, Result};
use std::path::PathBuf;

#[derive(Clone, Copy)]
pub enum Profile {
    Debug,
    Release,
}

/// Builds the kernel and returns the ELF's path.
pub fn build(profile: Profile) -> Result<PathBuf> {
    let mut args = vec!["build", "-p", "tricolor-kernel", "--bin", "tricolor", "--target", "aarch64-unknown-none"];
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
    let elf = target_dir.join("aarch64-unknown-none").join(dir).join("tricolor");
    if elf.exists() {
        Ok(elf)
    } else {
        Err(format!("the build succeeded but {} is missing", elf.display()))
    }
}
