//! Links the kernel binary with the workspace's linker script when building for the bare-metal
//! target; host builds (unit tests of the kernel's pure logic) are untouched.
//!
//! The numbers `linker.ld` shares with Rust come from `tricolor-abi`, the constants the Rust code
//! uses, as `--defsym`s: `__max_cores` (stack slots reserved, one per core the per-core tables
//! have room for) and `__page_size` (the guard pages, the stacks' alignment). linker.ld defines
//! neither, so there is no second copy to drift: a link without them fails (undefined symbol).
use std::{env, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if target.starts_with("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=-znorelro");
        println!("cargo:rustc-link-arg-bins=--defsym=__max_cores={}", tricolor_abi::MAX_CORES);
        println!("cargo:rustc-link-arg-bins=--defsym=__page_size={}", tricolor_abi::PAGE_SIZE);
    }
}
