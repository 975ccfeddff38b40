//! Boehm's GCBench (binary trees) on the host, threads standing in for cores: the command line
//! over `tricolor_gc::gcbench` (which holds the benchmark, so that the crate's unit tests run it).
//!
//! `cargo run --release -p tricolor-gc --features host --example gcbench -- [--threads N]
//! [--size full|quick] [--mode buffered|direct|off|checked] [--heap BYTES-or-M] [--percent GOGC]`
//!
//! Prints a summary and one `BENCH host-gcbench ...` line; exits 1 if the heap runs out or the
//! verification fails, 2 on a bad command line.

use std::process::ExitCode;

use tricolor_gc::gcbench::{self, Params};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", gcbench::USAGE);
        return ExitCode::SUCCESS;
    }
    let params = match Params::parse_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gcbench: {e}\n\n{}", gcbench::USAGE);
            return ExitCode::from(2);
        }
    };
    match gcbench::run(&params) {
        Ok(report) => {
            println!("{}", report.summary());
            println!("{}", report.bench_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "gcbench: FAILED ({} thread(s), size {}, mode {}, heap {} bytes): {e}",
                params.threads,
                params.size.name(),
                params.mode.name(),
                params.heap_bytes()
            );
            ExitCode::FAILURE
        }
    }
}
