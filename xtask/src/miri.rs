//! `cargo xtask miri`: the host-testable crates whose tests exercise concurrency and raw memory
//! (gc, virtio, runtime) under Miri, each with several `-Zmiri-seed` values
//! (`-Zmiri-many-seeds=0..N`: the whole test binary once per seed, so scheduling and weak-memory
//! choices differ from seed to seed). Miri needs a nightly toolchain with the `miri` component;
//! it is not part of `cargo xtask test` (CI stays on the pinned stable toolchain).

use crate::args::Args;
use crate::Result;
use std::process::Command;
use std::time::Instant;

/// The crates `cargo xtask miri` runs by default.
pub const CRATES: &[&str] = &["gc", "virtio", "runtime"];

/// Parses `[--seeds N] [--crates gc,virtio,runtime]` and runs.
pub fn run(args: &mut Args) -> Result {
    let seeds = match args.value("--seeds")? {
        Some(s) => s.parse::<u32>().ok().filter(|&n| n > 0).ok_or(format!("--seeds {s}: not a positive number"))?,
        None => 4,
    };
    let crates: Vec<String> = match args.value("--crates")? {
        Some(list) => list.split(',').map(|c| c.trim().to_string()).collect(),
        None => CRATES.iter().map(|c| c.to_string()).collect(),
    };
    args.finish()?;
    if let Some(bad) = crates.iter().find(|c| !CRATES.contains(&c.as_str())) {
        return Err(format!("--crates: unknown crate '{bad}' (one of {})", CRATES.join(",")));
    }
    let flags = miri_flags(seeds);
    if !nightly_miri_available() {
        return Err(
            "Miri needs a nightly toolchain with miri: rustup toolchain install nightly --component miri".into()
        );
    }
    let mut report = Vec::new();
    for name in &crates {
        let package = format!("tricolor-{name}");
        println!("xtask: $ MIRIFLAGS=\"{flags}\" cargo +nightly miri test -p {package}");
        let start = Instant::now();
        let status = nightly(&["miri", "test", "-p", &package])
            .env("MIRIFLAGS", &flags)
            .current_dir(crate::cargo::workspace_root())
            .status()
            .map_err(|e| format!("cannot start cargo +nightly miri: {e}"))?;
        let seconds = start.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("Miri failed for {package} ({status}); the failing seed is printed above"));
        }
        report.push(format!("{package}: clean under seeds 0..{seeds} ({seconds:.0} s)"));
    }
    for line in &report {
        println!("xtask: miri {line}");
    }
    Ok(())
}

/// `-Zmiri-many-seeds=0..N`.
pub fn miri_flags(seeds: u32) -> String {
    format!("-Zmiri-many-seeds=0..{seeds}")
}

/// `cargo +nightly ...`, without the pinned toolchain's variables that would override `+nightly`.
fn nightly(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.arg("+nightly").args(args);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "CARGO", "RUSTC_WRAPPER"] {
        command.env_remove(var);
    }
    command
}

fn nightly_miri_available() -> bool {
    nightly(&["miri", "--version"]).output().is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let mut args = Args::from(vec!["--crates".to_string(), "gc,kernel".to_string()]);
        assert!(run(&mut args).unwrap_err().contains("unknown crate 'kernel'"));
        let mut args = Args::from(vec!["--seeds".to_string(), "0".to_string()]);
        assert!(run(&mut args).unwrap_err().contains("not a positive number"));
        assert_eq!(miri_flags(8), "-Zmiri-many-seeds=0..8");
    }
}
