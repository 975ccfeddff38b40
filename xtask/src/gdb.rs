//! The gdb side of `cargo xtask debug`: the helper script (xtask/gdb/tricolor.py, in the spirit of
//! Go's runtime-gdb.py) and its test: gdb-multiarch attached to the live demo in batch mode, every
//! command run, and their output checked.

use crate::qemu::Machine;
use crate::session::{temp_socket, Session};
use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The helper script gdb loads.
pub fn script() -> PathBuf {
    crate::cargo::workspace_root().join("xtask/gdb/tricolor.py")
}

/// Runs gdb-multiarch in batch mode on `elf`, attached to the stub at `socket`, with `commands`.
fn batch(elf: &Path, socket: &Path, commands: &[&str]) -> Result<String> {
    let args = batch_args(elf, socket, commands);
    let out =
        Command::new("gdb-multiarch").args(&args).output().map_err(|e| format!("cannot run gdb-multiarch: {e}"))?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Whether gdb-multiarch runs here.
fn installed() -> bool {
    Command::new("gdb-multiarch").arg("--version").output().is_ok()
}

/// QEMU's arguments for a gdb stub on the Unix socket `socket` that does not wait for gdb.
pub fn stub_args(socket: &Path) -> [String; 2] {
    ["-gdb".to_string(), format!("unix:{},server=on,wait=off", socket.display())]
}

/// How long gdb may take to attach to a hung kernel and print its state.
const HANG_DUMP_LIMIT: Duration = Duration::from_secs(60);

/// A hung kernel's state, from gdb-multiarch attached to its stub at `socket`: its tasks
/// (`tricolor-tasks`) and every core's backtrace. Never fails: what went wrong is the text.
pub fn hang_dump(elf: &Path, socket: &Path) -> String {
    if !installed() {
        return "gdb-multiarch is not installed (apt-get install gdb-multiarch): no dump\n".into();
    }
    let args = batch_args(elf, socket, &["tricolor-tasks", "info threads", "thread apply all bt 40"]);
    let child = Command::new("gdb-multiarch")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return format!("cannot run gdb-multiarch: {e}\n"),
    };
    let start = std::time::Instant::now();
    while matches!(child.try_wait(), Ok(None)) {
        if start.elapsed() > HANG_DUMP_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return format!("gdb-multiarch did not finish within {} s: no dump\n", HANG_DUMP_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match child.wait_with_output() {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("waiting for gdb-multiarch: {e}\n"),
    }
}

/// gdb-multiarch's arguments: batch mode on `elf`, attached to `socket`, the helper script loaded,
/// then `commands`.
fn batch_args(elf: &Path, socket: &Path, commands: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["-batch".into(), "-nx".into(), elf.display().to_string()];
    for command in [format!("target remote {}", socket.display()), format!("source {}", script().display())]
        .into_iter()
        .chain(commands.iter().map(|c| c.to_string()))
    {
        args.extend(["-ex".into(), command]);
    }
    args
}

/// What the commands must print on the demo at 4 cores.
fn check(output: &str) -> Result {
    let want = [
        "WRITE_BARRIER = ",
        "mode buffered",
        "core  wbBuf fill",
        "   3  ",
        "heap      ",
        "goal      ",
        "core 0:",
        " shell ",
        " dashboard ",
        " mutator ",
        "exception  exception",
        "$1 = ",
    ];
    if let Some(missing) = want.iter().find(|w| !output.contains(*w)) {
        return Err(format!("gdb output lacks {missing:?}"));
    }
    if output.contains("Python Exception") || output.contains("Traceback") || output.contains("No symbol") {
        return Err("a tricolor gdb command failed".into());
    }
    let cycles = output
        .lines()
        .find_map(|l| l.strip_prefix("cycles    ")?.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or("tricolor-heap printed no cycle count")?;
    if cycles == 0 {
        return Err("tricolor-heap says 0 cycles on the running demo".into());
    }
    Ok(())
}

/// The QEMU-matrix case: the demo with a gdb stub on a Unix socket, gdb attached once it runs.
pub fn case(elf: &Path) -> Result<Duration> {
    if !installed() {
        crate::setup::gdb()?;
    }
    let socket = temp_socket("gdb");
    let stub = stub_args(&socket);
    let machine = Machine { smp: 4, gpu: true, ..Machine::new(elf) };
    let mut session = Session::start_with(&machine, &stub)?;
    let result = session
        .wait_for("the demo", Duration::from_secs(60), |l| l.starts_with("demo: workload"))
        .and_then(|_| {
            // Let some cycles run first.
            std::thread::sleep(Duration::from_secs(2));
            batch(
                elf,
                &socket,
                &[
                    "tricolor-barrier",
                    "tricolor-wbbuf",
                    "tricolor-heap",
                    "tricolor-tasks",
                    "tricolor-stacks",
                    "p $write_barrier()",
                ],
            )
        })
        .and_then(|output| check(&output).map_err(|why| format!("{why}\n----- gdb -----\n{output}----- end -----")));
    let elapsed = session.elapsed();
    let console = session.finish();
    let _ = std::fs::remove_file(&socket);
    result.map_err(|why| format!("{why}\n----- console -----\n{console}----- end -----"))?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "WRITE_BARRIER = 1 (MARKING)   mode buffered   phase mark\n\
        core  wbBuf fill         barriers     flushes\n   3   512 / 512   100%      1  1\n\
        heap      1 / 2 KiB\ngoal      1 KiB\ncycles    12   phase mark\ncore 0:\n  #1 shell x\n  #2 dashboard x\n\
        #3 mutator x\nexception  exception  [0x1, 0x2)\n$1 = 1\n";

    #[test]
    fn the_check_wants_every_command_and_live_cycles() {
        assert!(check(GOOD).is_ok());
        assert!(check(&GOOD.replace("cycles    12", "cycles    0")).unwrap_err().contains("0 cycles"));
        assert!(check(&GOOD.replace("mode buffered", "mode direct")).is_err());
        assert!(check(&format!("{GOOD}Python Exception <class 'gdb.error'>: x\n")).is_err());
        assert!(check(&format!("{GOOD}No symbol \"WRITE_BARRIER\" in current context.\n")).is_err());
    }

    #[test]
    fn the_script_exists_where_debug_loads_it() {
        assert!(script().is_file(), "{}", script().display());
    }
}
