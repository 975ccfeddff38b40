//! Set-up on a fresh Debian machine: what is missing is installed (as root, with apt-get), or the
//! run stops with one line naming exactly what to install.

use crate::Result;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const TARGET: &str = crate::kernel::TARGET;

/// Everything `run` and `test` need.
pub fn all() -> Result {
    rust_target()?;
    qemu()?;
    println!("xtask: set-up complete");
    Ok(())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bare-metal Rust target. rust-toolchain.toml lists it, so rustup normally installed it with
/// the toolchain; an already-installed toolchain without it gets it added here.
pub fn rust_target() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]);
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == TARGET) => Ok(()),
        Some(_) => {
            println!("xtask: adding the Rust target {TARGET}");
            crate::cargo::run("rustup", &["target", "add", TARGET])
        }
        None => Err(format!(
            "rustup not found: install Rust with rustup (https://rustup.rs), then `rustup target add {TARGET}`"
        )),
    }
}

fn is_root() -> bool {
    output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}

/// Installs Debian packages when we are root and apt-get exists; otherwise explains.
fn apt_install(binary: &str, package: &str) -> Result {
    if succeeds(binary, &["--version"]) {
        return Ok(());
    }
    let has_apt = succeeds("apt-get", &["--version"]);
    if !(has_apt && is_root()) {
        return Err(format!(
            "{binary} not found: install the Debian package {package} (sudo apt-get install {package})"
        ));
    }
    println!("xtask: {binary} not found; installing the Debian package {package}");
    crate::cargo::run("apt-get", &["update", "-q"])?;
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() || !succeeds(binary, &["--version"]) {
        return Err(format!("installing {package} failed; install it by hand: apt-get install {package}"));
    }
    Ok(())
}

/// Installs the Debian `packages` whose `present` check fails, in one apt-get run, when we are root
/// and apt-get exists; otherwise one line naming all of them.
fn apt_install_all(what: &str, packages: &[(&str, bool)]) -> Result {
    let missing: Vec<&str> = packages.iter().filter(|(_, present)| !present).map(|(p, _)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !(succeeds("apt-get", &["--version"]) && is_root()) {
        return Err(format!("{what} needs the Debian packages {list} (sudo apt-get install {list})"));
    }
    println!("xtask: {what} needs {list}; installing the Debian packages");
    crate::cargo::run("apt-get", &["update", "-q"])?;
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("installing {list} failed; install them by hand: apt-get install {list}"));
    }
    Ok(())
}

/// What `cargo xtask compare` builds and runs the peers with: a C compiler and Boehm GC
/// (libgc-dev), Go (golang-go), taskset (util-linux); valgrind for `--profile`.
pub fn compare_tools(profile: bool) -> Result {
    let mut packages = vec![
        ("gcc", succeeds("cc", &["--version"])),
        ("libgc-dev", std::path::Path::new("/usr/include/gc/gc.h").exists()),
        ("golang-go", succeeds("go", &["version"])),
        ("util-linux", succeeds("taskset", &["--version"])),
    ];
    if profile {
        packages.push(("valgrind", succeeds("valgrind", &["--version"])));
    }
    apt_install_all("cargo xtask compare", &packages)?;
    let still: Vec<&str> = [("cc", ["--version"]), ("go", ["version"]), ("taskset", ["--version"])]
        .iter()
        .filter(|(b, a)| !succeeds(b, a))
        .map(|(b, _)| *b)
        .collect();
    if !still.is_empty() || !std::path::Path::new("/usr/include/gc/gc.h").exists() {
        return Err(format!("still missing after the install: {still:?} or /usr/include/gc/gc.h"));
    }
    Ok(())
}

/// qemu-system-aarch64, from Debian's qemu-system-arm.
pub fn qemu() -> Result {
    apt_install("qemu-system-aarch64", "qemu-system-arm")
}

/// GNU parallel, for `cargo xtask stress --parallel N` (Debian package parallel).
pub fn parallel() -> Result {
    apt_install("parallel", "parallel")
}

/// gdb-multiarch, for `cargo xtask debug`.
pub fn gdb() -> Result {
    apt_install("gdb-multiarch", "gdb-multiarch")
}

/// `llvm-objdump` from rustup's `llvm-tools` component (listed in rust-toolchain.toml; added here to
/// a toolchain installed without it), for `cargo xtask check-fences`.
pub fn llvm_objdump() -> Result<PathBuf> {
    let sysroot = output("rustc", &["--print", "sysroot"]).ok_or("cannot run `rustc --print sysroot`")?;
    let version = output("rustc", &["-vV"]).ok_or("cannot run `rustc -vV`")?;
    let host = version.lines().find_map(|l| l.strip_prefix("host: ")).ok_or("`rustc -vV` names no host")?;
    let path = PathBuf::from(sysroot.trim()).join("lib/rustlib").join(host.trim()).join("bin/llvm-objdump");
    if !path.exists() {
        println!("xtask: llvm-objdump not found; adding the rustup component llvm-tools");
        crate::cargo::run("rustup", &["component", "add", "llvm-tools"])
            .map_err(|e| format!("{e}; install it by hand: rustup component add llvm-tools"))?;
    }
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing after `rustup component add llvm-tools`", path.display()))
    }
}
