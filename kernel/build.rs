//! Links the kernel binary with the workspace's linker script when building for the bare-metal
//! target; host builds (unit tests of the kernel's pure logic) are untouched.
use std::{env, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if target.starts_with("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=-znorelro");
    }
}
