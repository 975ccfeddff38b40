//! Running cargo itself: lint and host tests.

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf()
}

/// Runs a command in the workspace root, echoing it; fails with its exit status.
pub fn run(program: &str, args: &[&str]) -> Result {
    println!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Crates that also build for the kernel target and are linted for it.
const KERNEL_TARGET_CRATES: &[&str] = &[
    "-p",
    "tricolor-abi",
    "-p",
    "tricolor-arch",
    "-p",
    "tricolor-kernel",
    "-p",
    "tricolor-gc",
    "-p",
    "tricolor-virtio",
    "-p",
    "tricolor-runtime",
    "-p",
    "tricolor-timeline",
];

/// `cargo fmt --check` and clippy with warnings denied, on the host and on the kernel target.
pub fn lint() -> Result {
    run("cargo", &["fmt", "--all", "--check"])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The gcbench example (and its command line's tests) needs the gc crate's `host` feature.
    run("cargo", &["clippy", "-p", "tricolor-gc", "--features", "host", "--all-targets", "--", "-D", "warnings"])?;
    let mut target = vec!["clippy", "--target", crate::kernel::TARGET];
    target.extend_from_slice(KERNEL_TARGET_CRATES);
    target.extend_from_slice(&["--", "-D", "warnings"]);
    run("cargo", &target)?;
    // The kernel with its barriers compiled out (`no-barriers`, the barrier-overhead baseline),
    // in its own target directory as `kernel::build_no_barriers` builds it.
    let no_barriers_dir = crate::kernel::no_barriers_target_dir().display().to_string();
    kernel_clippy(&["--features", "no-barriers", "--target-dir", &no_barriers_dir], &[])?;
    // The kernel without its tests (feature `ktest` off) must build: the kernel proper never
    // refers to the test tree. What only the tests call is dead in that build, so dead code is
    // not an error there.
    kernel_clippy(&["--no-default-features"], &["-A", "dead-code", "-A", "unused-imports"])
}

/// Clippy of the kernel crate alone on its target, with `options` for cargo and warnings denied
/// but for `allowed` (rustc `-A` flags).
fn kernel_clippy(options: &[&str], allowed: &[&str]) -> Result {
    let mut args = vec!["clippy", "--target", crate::kernel::TARGET, "-p", "tricolor-kernel"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--", "-D", "warnings"]);
    args.extend_from_slice(allowed);
    run("cargo", &args)
}

/// Every host test in the workspace, and the gcbench example's (it needs the gc crate's `host`
/// feature).
pub fn host_tests() -> Result {
    run("cargo", &["test", "--workspace"])?;
    run("cargo", &["test", "-p", "tricolor-gc", "--features", "host", "--example", "gcbench"])
}
