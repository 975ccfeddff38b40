//! `cargo xtask`: the one place that knows how to set up, build, boot and test tricolor, so humans
//! and CI run exactly the same commands.
//!
//! - `run`: build the kernel and boot it in QEMU (4 cores, a VirtIO GPU, UART on this terminal).
//! - `screenshot`: boot headless and save the display as a PNG.
//! - `test`: lint, host tests, the QEMU tests at smp 1 and 4, and the CI-sized stress subset.
//! - `stress`: the GC stress matrix over the kernel's suites and its negative control.
//! - `trace`: a run's per-core GC states as Chrome trace JSON (Perfetto) and SVG.
//! - `check-fences`: the kernel's DMA barriers, checked in its disassembly.
//! - `compare`: GCBench on Boehm GC, Go and tricolor's host collector, side by side.
//! - `build`, `lint`, `qemu-test`, `debug`, `setup`: the pieces.

mod args;
mod bench;
mod cargo;
mod compare;
mod demo_tests;
mod fences;
mod gdb;
mod host_gcbench;
mod kernel;
mod miri;
mod qemu;
mod qemu_tests;
mod screenshot;
mod session;
mod setup;
mod stress;
mod trace;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  run        build and boot the live demo in QEMU (console on this terminal: help; quit or Ctrl-A X ends it)
               --smp N        cores (default 4; 1..=16)
               --gic 2|3      interrupt controller: GICv2 or GICv3 (default 2; 3 above 8 cores)
               --append STR   kernel command line (e.g. \"log=debug\")
               --debug        debug build instead of release
  screenshot boot headless, wait for the drawn frame, save the display as PNG (QMP screendump):
             the live dashboard of a plain boot, the test pattern with --append test=gpu-pattern
               --out FILE     where to write it (default screenshot.png)
               --append STR   kernel command line (e.g. \"fb=pages\")
               --smp N        cores (default 4)
               --size WxH     display size (default 1280x720)
               --wait SECS    seconds between the first frame and the dump (default 0)
  test       everything CI runs: lint, host tests, check-fences, QEMU tests at smp 1 and 4, stress --ci
               --no-lint      skip fmt/clippy
               --filter STR   only QEMU cases whose name contains STR (skips the stress subset)
  qemu-test  only the QEMU tests (same --filter)
  stress     GC stress matrix: kernel suites (suite=) for smp x modes x seeds with the verifier
             on (seed s runs suite s mod n; every third round of seeds in torture mode), then
             the negative control (barrier off during marking, smp 4: must be caught on >= 95 %)
               --seeds N      seeds 1..=N per smp x mode (default 10)
               --smp LIST     core counts (default 1,4)
               --modes LIST   barrier modes (default off,buffered,direct,checked)
               --suites LIST  suites (default graph,churn,large,gcbench-quick,framebuffer)
               --negative-seeds N  negative-control runs (default: --seeds)
               --cycles N     collections per run (suite.cycles=, default 8)
               --jobs N       runs at a time (default 2)
               --quick        5 seeds (each suite once), smp 4 only
               --ci           the subset `test` runs (each suite in buffered and direct, smp 4)
               --replay STR   boot one run's kernel command line (with --smp N) and show it
               --shard I/N    run only the I-th of N slices (every N-th run of the plan), write
                              its CSV to results/stress_shard_I_of_N.csv (or --out FILE)
               --merge DIR    join the slices' CSVs in DIR (same matrix options) into one summary
                              and verdict; a missing or twice-merged slice fails
               --parallel N   run N slices here with GNU parallel, then merge (see README)
  fuzz       fuzz what the kernel trusts: cmdline, devicetree, used-ring (a stable mutational
             fuzzer, fuzz/; corpora in fuzz/corpus/, findings to fuzz/artifacts/); `test` runs a
             2 s smoke of each as host tests
               TARGET|all     which (default all)
               --seconds N    per target (default 60)
               --seed S       mutation seed
  miri       gc, virtio and runtime tests under Miri, each with seeds 0..N (nightly + miri;
             not part of `test`)
               --seeds N      -Zmiri-many-seeds=0..N (default 4)
               --crates LIST  subset of gc,virtio,runtime
  bench      measurements under -icount -> results/*.csv and results/*.svg: barrier costs, GCBench
             pauses by headroom, minimum mutator utilisation curves at 4 cores per barrier mode
             (results/mmu.csv, results/mmu.svg)
  trace      boot a workload with timeline=dump and write every core's GC states (mutator, idle,
             pause, mark, mark-worker, assist, stack-scan, flush, sweep, idle-mark, idle-sweep) as Chrome trace-event
             JSON (results/trace.json: open it in https://ui.perfetto.dev) and as an SVG
             (results/trace.svg); prints utilisation and MMU at 1 and 10 ms
               --seconds N    wall-clock seconds the demo's mixed workload runs before quit
                              (default 2; under -icount that is about 0.6 s of virtual time)
               --suite NAME   run a stress suite to its end instead (e.g. gcbench-quick; gc.heap=64M)
               --smp N        cores (default 4)
               --mode M       gc.mode (default buffered)
               --no-icount    wall-clock TCG instead of -icount shift=0,sleep=off (1 virtual ns =
                              1 instruction): on a busy host its pauses include vCPU threads the
                              host did not run
               --append STR   more kernel command line
               --out DIR      where to write trace.json and trace.svg (default results/)
  gcbench-host  Boehm's GCBench on the host (threads as cores), threads 1 and 2 x modes
             buffered and direct -> results/host_gcbench.csv (wall-clock times)
               --quick        size quick instead of full
  check-fences  disassemble the release kernel (llvm-objdump from rustup's llvm-tools) and check
             that each virtqueue barrier is there (dmb oshst / dmb oshld / dsb sy) and on the right
             side of the access it orders
  compare    GCBench on Boehm GC (C), Go and tricolor's host collector (modes off and buffered), the
             same benchmark pinned to the same CPUs -> one table, results/compare.{csv,svg}
               --runs N       runs of each (default 3)
               --cpus LIST    taskset CPU list (default 0,1)
               --size S       full (Boehm's sizes, default), quick or tiny
               --heap H       tricolor's heap (default: Boehm's peak heap, rounded up)
               --percent P    tricolor's GOGC, or off (default: cycles start at its heap limit)
               --poison       tricolor poisons freed memory (default off here, printed: a
                              debugging aid the stress suites keep on)
               --profile      instead: tricolor under valgrind --tool=callgrind (heap --heap or 36M)
                              -> instructions
                              per allocation, marked object and swept span, results/profile.csv
               --binary PATH  with --profile: profile that build of the gcbench example instead
                              (e.g. an older commit's; results/profile_binary.csv)
  lint       cargo fmt --check and clippy (host crates and the kernel target), -D warnings
  build      build the kernel ELF and print its path
  debug      boot QEMU halted with a gdb stub and attach gdb-multiarch with xtask/gdb/tricolor.py
             (tricolor-barrier, tricolor-wbbuf, tricolor-tasks, tricolor-stacks, tricolor-heap);
             --smp, --gic and --append as for run
  setup      install what is missing (Rust target, QEMU) or say exactly what to install
";

fn main() -> ExitCode {
    let mut args = args::Args::from_env();
    let command = args.next_positional();
    let result = match command.as_deref() {
        Some("run") => cmd_run(&mut args),
        Some("test") => cmd_test(&mut args),
        Some("qemu-test") => cmd_qemu_test(&mut args),
        Some("stress") => cmd_stress(&mut args),
        Some("lint") => args.finish().and_then(|()| cargo::lint()),
        Some("build") => args.finish().and_then(|()| cmd_build()),
        Some("check-fences") => args.finish().and_then(|()| cmd_check_fences()),
        Some("debug") => cmd_debug(&mut args),
        Some("screenshot") => cmd_screenshot(&mut args),
        Some("bench") => args.finish().and_then(|()| cmd_bench()),
        Some("trace") => cmd_trace(&mut args),
        Some("fuzz") => cmd_fuzz(&mut args),
        Some("miri") => miri::run(&mut args),
        Some("gcbench-host") => host_gcbench::run(&mut args),
        Some("compare") => compare::run(&mut args),
        Some("setup") => args.finish().and_then(|()| setup::all()),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            return if command.is_none() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
        Some(other) => Err(format!("unknown command '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn cmd_bench() -> Result {
    setup::rust_target()?;
    setup::qemu()?;
    let no_barriers = kernel::build_no_barriers()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    bench::run(&elf, &no_barriers)
}

fn cmd_trace(args: &mut args::Args) -> Result {
    let options = trace::Options::parse(args)?;
    setup::rust_target()?;
    setup::qemu()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    trace::run(&elf, &options).map(drop)
}

fn cmd_build() -> Result {
    setup::rust_target()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    println!("{}", elf.display());
    Ok(())
}

fn cmd_fuzz(args: &mut args::Args) -> Result {
    let seconds = args.value("--seconds")?.unwrap_or_else(|| "60".into());
    let seed = args.value("--seed")?;
    let target = args.next_positional().unwrap_or_else(|| "all".into());
    args.finish()?;
    seconds.parse::<f64>().map_err(|_| format!("--seconds {seconds}: not a number"))?;
    let mut fuzz_args =
        vec!["run", "--profile", "fuzz", "-q", "-p", "tricolor-fuzz", "--", &target, "--seconds", &seconds];
    if let Some(seed) = &seed {
        fuzz_args.extend(["--seed", seed]);
    }
    cargo::run("cargo", &fuzz_args)
}

fn cmd_check_fences() -> Result {
    setup::rust_target()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    fences::run(&elf)
}

/// `--gic 2|3` (default GICv2; above 8 cores `Machine` makes it GICv3 anyway).
fn gic_option(args: &mut args::Args) -> Result<qemu::GicVersion> {
    Ok(args.value("--gic")?.map(|s| qemu::GicVersion::parse(&s)).transpose()?.unwrap_or(qemu::GicVersion::V2))
}

fn cmd_run(args: &mut args::Args) -> Result {
    let smp = args.value("--smp")?.map(|s| s.parse().map_err(|_| format!("--smp {s}: not a number"))).transpose()?;
    let gic = gic_option(args)?;
    let append = args.value("--append")?.unwrap_or_default();
    let profile = if args.flag("--debug") { kernel::Profile::Debug } else { kernel::Profile::Release };
    args.finish()?;
    setup::rust_target()?;
    setup::qemu()?;
    let elf = kernel::build(profile)?;
    let machine = qemu::Machine { smp: smp.unwrap_or(4), append, gic, ..qemu::Machine::new(&elf) };
    qemu::run_interactive(&machine)
}

fn cmd_screenshot(args: &mut args::Args) -> Result {
    let out = args.value("--out")?.unwrap_or_else(|| "screenshot.png".into());
    let append = args.value("--append")?.unwrap_or_default();
    let smp = args.value("--smp")?.map(|s| s.parse().map_err(|_| format!("--smp {s}: not a number"))).transpose()?;
    let size = args.value("--size")?.map(|s| parse_size(&s)).transpose()?;
    let wait = args
        .value("--wait")?
        .map(|s| {
            s.parse::<f64>().ok().filter(|w| (0.0..=600.0).contains(w)).ok_or(format!("--wait {s}: not 0..600 seconds"))
        })
        .transpose()?;
    args.finish()?;
    setup::rust_target()?;
    setup::qemu()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    let display = size.unwrap_or((qemu::GPU_WIDTH, qemu::GPU_HEIGHT));
    let machine = qemu::Machine { smp: smp.unwrap_or(4), append, gpu: true, display, ..qemu::Machine::new(&elf) };
    let wait = std::time::Duration::from_secs_f64(wait.unwrap_or(0.0));
    let shot = screenshot::take(&machine, std::path::Path::new(&out), screenshot::TIMEOUT, wait)?;
    println!("xtask: wrote {out} ({:.2} s after boot)", shot.elapsed.as_secs_f64());
    Ok(())
}

/// `WxH`, e.g. `1024x768`.
fn parse_size(s: &str) -> Result<(u32, u32)> {
    s.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| format!("--size {s}: expected WIDTHxHEIGHT, e.g. 1024x768"))
}

fn cmd_test(args: &mut args::Args) -> Result {
    let lint = !args.flag("--no-lint");
    let filter = args.value("--filter")?;
    args.finish()?;
    setup::rust_target()?;
    setup::qemu()?;
    if lint {
        cargo::lint()?;
    }
    cargo::host_tests()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    fences::run(&elf)?;
    qemu_tests::run_all(&elf, filter.as_deref())?;
    if filter.as_deref().is_none_or(|f| "gc-cycle-compiled-out".contains(f)) {
        // The barrier-overhead baseline must build and boot (`cargo xtask bench` measures it).
        qemu_tests::run_compiled_out(&kernel::build_no_barriers()?)?;
    }
    if filter.is_none() {
        println!("xtask: the CI-sized stress subset (`cargo xtask stress --ci`)");
        stress::run(&elf, &stress::Options::ci())?;
    }
    Ok(())
}

fn cmd_qemu_test(args: &mut args::Args) -> Result {
    let filter = args.value("--filter")?;
    args.finish()?;
    setup::rust_target()?;
    setup::qemu()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    qemu_tests::run_all(&elf, filter.as_deref())?;
    if filter.as_deref().is_none_or(|f| "gc-cycle-compiled-out".contains(f)) {
        qemu_tests::run_compiled_out(&kernel::build_no_barriers()?)?;
    }
    Ok(())
}

fn cmd_stress(args: &mut args::Args) -> Result {
    let command = stress::Command::parse(args)?;
    match &command {
        // Joining CSVs boots nothing; GNU parallel's slices build for themselves.
        stress::Command::Merge { options, dir } => return stress::merge(options, dir),
        stress::Command::Parallel { options, shards } => return stress::run_parallel_local(options, *shards),
        _ => {}
    }
    setup::rust_target()?;
    setup::qemu()?;
    let elf = kernel::build(kernel::Profile::Release)?;
    match command {
        stress::Command::Matrix(options) => stress::run(&elf, &options),
        stress::Command::Shard { options, shard, out } => stress::run_shard(&elf, &options, shard, &out),
        stress::Command::Replay { append, smp } => stress::replay(&elf, &append, smp),
        stress::Command::Merge { .. } | stress::Command::Parallel { .. } => unreachable!("handled above"),
    }
}

fn cmd_debug(args: &mut args::Args) -> Result {
    let smp = args.value("--smp")?.map(|s| s.parse().map_err(|_| format!("--smp {s}: not a number"))).transpose()?;
    let gic = gic_option(args)?;
    let append = args.value("--append")?.unwrap_or_default();
    args.finish()?;
    setup::rust_target()?;
    setup::qemu()?;
    setup::gdb()?;
    let elf = kernel::build(kernel::Profile::Debug)?;
    let machine = qemu::Machine { smp: smp.unwrap_or(4), append, gic, ..qemu::Machine::new(&elf) };
    qemu::debug(&machine)
}
