//! The runnable registry: everything `test=` and `suite=` can name, registered where it is
//! defined and found here by name. The kernel itself registers nothing and knows no test by name:
//! the `ktest` tree (cargo feature `ktest`, on by default) registers its tables with
//! [`register!`](crate::register), which places a reference to each table in the `.registry`
//! linker section; `linker.ld` brackets the section with `__registry_start` / `__registry_end`.
//! A kernel built without the feature has an empty registry and says so.

use crate::{exit, kprintln};
use alloc::string::String;
use tricolor_kernel::cmdline::Config;

/// What kind of runnable an entry is (how `test=` / `suite=` reach it, and how it is listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A unit test that needs the hardware: `test=<name>`, `test=a+b`, or all with `test=unit`.
    Unit,
    /// A scenario that decides its own exit status: `test=<name>`.
    Scenario,
    /// A measurement that prints `BENCH` lines: `test=<name>`.
    Bench,
    /// A GC stress suite: `suite=<name>`.
    Suite,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unit => "unit test",
            Kind::Scenario => "scenario",
            Kind::Bench => "bench",
            Kind::Suite => "suite",
        }
    }
}

/// How an entry runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// Returns `Err(why)` on failure (unit tests; the runner prints the verdicts and exits).
    Check(fn(&Config<'_>) -> Result<(), String>),
    /// Runs to an exit of its own choosing.
    Exit(fn(&Config<'_>) -> !),
}

/// One runnable.
pub struct Entry {
    pub kind: Kind,
    pub name: &'static str,
    pub about: &'static str,
    pub run: Run,
}

/// Registers a `&'static [Entry]` table: `register!(TABLE);` at module level.
#[macro_export]
macro_rules! register {
    ($table:expr) => {
        const _: () = {
            #[used]
            #[unsafe(link_section = ".registry")]
            static REGISTERED: &[$crate::registry::Entry] = $table;
        };
    };
}

unsafe extern "C" {
    static __registry_start: u8;
    static __registry_end: u8;
}

/// Every registered table.
fn tables() -> &'static [&'static [Entry]] {
    let start = (&raw const __registry_start).cast::<&'static [Entry]>();
    let end = (&raw const __registry_end).cast::<&'static [Entry]>();
    // SAFETY: linker.ld brackets `.registry`, which holds only the `&'static [Entry]` statics that
    // `register!` emits (8-aligned, 16 bytes each, immutable, alive for the whole run).
    unsafe {
        let n = usize::try_from(end.offset_from(start)).expect("registry end before start");
        core::slice::from_raw_parts(start, n)
    }
}

/// Every registered entry, in link order.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    tables().iter().flat_map(|t| t.iter())
}

fn find(kind: impl Fn(Kind) -> bool, name: &str) -> Option<&'static Entry> {
    entries().find(|e| kind(e.kind) && e.name == name)
}

/// `test=<name>`: runs the unit test, scenario or bench called `name`, every unit test for
/// `unit`, the unit tests `a`, `b` for `a+b`; anything else lists what there is and exits with
/// [`exit::BAD_CONFIG`].
pub fn run_test(name: &str, config: &Config<'_>) -> ! {
    let unit = |n: &str| find(|k| k == Kind::Unit, n);
    if name == "unit" {
        run_units(entries().filter(|e| e.kind == Kind::Unit), config);
    }
    if name.split('+').all(|n| unit(n).is_some()) {
        run_units(name.split('+').filter_map(unit), config);
    }
    if let Some(entry) = find(|k| k != Kind::Suite, name) {
        kprintln!("{} {}: {}", entry.kind.label(), entry.name, entry.about);
        match entry.run {
            Run::Exit(run) => run(config),
            Run::Check(_) => unreachable!("unit tests are run above"),
        }
    }
    kprintln!("tricolor: unknown test '{name}'");
    list(|_| true);
    exit::exit(exit::BAD_CONFIG)
}

/// `suite=<name>`: runs the stress suite called `name`; `help` (or an unknown name) lists them.
pub fn run_suite(name: &str, config: &Config<'_>) -> ! {
    if let Some(Entry { run: Run::Exit(run), .. }) = find(|k| k == Kind::Suite, name) {
        run(config);
    }
    if name != "help" {
        kprintln!("tricolor: unknown suite '{name}'");
    }
    list(|k| k == Kind::Suite);
    exit::exit(if name == "help" { exit::SUCCESS } else { exit::BAD_CONFIG })
}

/// Prints every registered runnable of the kinds `which` selects, one per line.
fn list(which: impl Fn(Kind) -> bool) {
    if entries().next().is_none() {
        kprintln!("this kernel was built without its tests (cargo feature `ktest`): nothing to run");
        return;
    }
    kprintln!("valid names (test=<name>, test=unit, test=a+b for unit tests; suite=<name>):");
    let mut listed: alloc::vec::Vec<&Entry> = entries().filter(|e| which(e.kind)).collect();
    listed.sort_by_key(|e| (e.kind as u8, e.name));
    for entry in listed {
        kprintln!("  {:<9} {:<48} {}", entry.kind.label(), entry.name, entry.about);
    }
}

fn run_units<'a>(tests: impl Iterator<Item = &'a Entry>, config: &Config<'_>) -> ! {
    let (mut passed, mut failed) = (0, 0);
    for test in tests {
        let Run::Check(run) = test.run else { continue };
        match run(config) {
            Ok(()) => {
                passed += 1;
                kprintln!("test {} ... ok", test.name);
            }
            Err(why) => {
                failed += 1;
                kprintln!("test {} ... FAILED: {}", test.name, why);
            }
        }
    }
    kprintln!("kernel unit tests: {passed} passed, {failed} failed");
    exit::exit(if failed == 0 { exit::SUCCESS } else { exit::TEST_FAILED })
}
