//! `tricolor-fuzz <target|all> [--seconds N] [--seed S] [--grow]`: fuzzes one target (or each in
//! turn) for N seconds (default 60), replaying its committed corpus first. `cargo xtask fuzz`
//! runs this with the `fuzz` profile (optimised, overflow checks and debug assertions on, panics
//! unwind so they are caught and reported with the input). `--grow` writes inputs that produced a
//! new kind of outcome into the corpus directory (to curate by hand: corpora stay small).

use std::process::ExitCode;
use tricolor_fuzz::{fuzz, targets, Options};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut value = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        args.remove(i);
        (i < args.len()).then(|| args.remove(i))
    };
    let seconds = value("--seconds").map(|s| s.parse::<f64>()).transpose();
    let seed = value("--seed").map(|s| s.parse::<u64>()).transpose();
    let grow = args.iter().position(|a| a == "--grow").map(|i| args.remove(i)).is_some();
    let (Ok(seconds), Ok(seed)) = (seconds, seed) else {
        eprintln!("tricolor-fuzz: --seconds and --seed take numbers");
        return ExitCode::FAILURE;
    };
    let name = match args.as_slice() {
        [name] => name.clone(),
        _ => {
            let names: Vec<&str> = targets::ALL.iter().map(|t| t.name).collect();
            eprintln!("usage: tricolor-fuzz <{}|all> [--seconds N] [--seed S] [--grow]", names.join("|"));
            return ExitCode::FAILURE;
        }
    };
    let chosen: Vec<_> = targets::ALL.iter().filter(|t| name == "all" || t.name == name).collect();
    if chosen.is_empty() {
        eprintln!("tricolor-fuzz: no target '{name}'");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    for target in chosen {
        let mut options = Options::new(target, seconds.unwrap_or(60.0));
        options.seed = seed.unwrap_or(options.seed);
        options.grow = grow;
        match fuzz(target, &options) {
            Ok(report) => println!("{report}"),
            Err(finding) => {
                eprintln!("{finding}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
