//! The console's commands: parsing a typed line into a [`Command`], and the help text. Anything
//! that is not a command is a [`ParseError`] whose message is one line; the console prints it and
//! then the list ([`HELP`]).

use core::fmt;
use tricolor_gc::BarrierMode;

/// The demo's mutator workloads (`workload <name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Graph rewiring, GCBench and churn together on every core.
    Mixed,
    /// Random object-graph mutation (allocate mixed sizes, rewire, drop, hide children in roots).
    Graph,
    /// Boehm's GCBench at the stress-run size, over and over.
    Gcbench,
    /// Hash maps and intrusive lists holding GC handles: insert, remove, move, rewire.
    Churn,
}

impl Workload {
    /// Every workload, in the order help lists them.
    pub const ALL: [Workload; 4] = [Workload::Mixed, Workload::Graph, Workload::Gcbench, Workload::Churn];

    /// The name typed after `workload`.
    pub const fn name(self) -> &'static str {
        match self {
            Workload::Mixed => "mixed",
            Workload::Graph => "graph",
            Workload::Gcbench => "gcbench",
            Workload::Churn => "churn",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }
}

/// A parsed console command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help`: the command list.
    Help,
    /// `stats`: one line of collector counters.
    Stats,
    /// `gc`: run a collection now.
    Gc,
    /// `mode <m>`: switch the write-barrier mode (between cycles).
    Mode(BarrierMode),
    /// `workload <name>`: run this workload (`None`: `workload stop`).
    Workload(Option<Workload>),
    /// `gctrace on|off`: a gctrace line per cycle.
    GcTrace(bool),
    /// `verify on|off`: the stop-the-world re-mark after each concurrent mark.
    Verify(bool),
    /// `quit`: power off.
    Quit,
}

/// The modes `mode` accepts (the negative control is refused).
pub const MODES: &str = "off|buffered|direct|checked|direct-systemstack";
/// What `workload` takes.
pub const WORKLOADS: &str = "mixed|graph|gcbench|churn|stop";

/// The command list, one command a line.
pub const HELP: &[(&str, &str)] = &[
    ("help", "this list"),
    ("stats", "collector counters in one line (cycles, mode, heap, pauses, barriers)"),
    ("gc", "run a collection now"),
    ("mode off|buffered|direct|checked|direct-systemstack", "switch the write-barrier mode between cycles"),
    ("workload mixed|graph|gcbench|churn|stop", "change what the mutators on every core do"),
    ("gctrace on|off", "one line per cycle in Go's GODEBUG=gctrace=1 format"),
    ("verify on|off", "stop-the-world re-mark after each concurrent mark (reports misses)"),
    ("quit", "power off"),
];

/// Why a line is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The first word is no command.
    Unknown(&'a str),
    /// The command needs an argument.
    MissingArgument { command: &'static str, expected: &'static str },
    /// The argument is not one the command takes.
    BadArgument { command: &'static str, got: &'a str, expected: &'static str },
    /// More words than the command takes.
    ExtraArgument { command: &'static str, got: &'a str },
    /// `mode unsafe-off-during-mark`: the negative control loses objects by design.
    Refused(BarrierMode),
    /// The line was longer than the console keeps.
    TooLong { kept: usize, dropped: usize },
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(word) => write!(f, "unknown command '{word}'"),
            Self::MissingArgument { command, expected } => write!(f, "{command}: needs an argument ({expected})"),
            Self::BadArgument { command, got, expected } => {
                write!(f, "{command}: bad argument '{got}' (expected {expected})")
            }
            Self::ExtraArgument { command, got } => write!(f, "{command}: unexpected argument '{got}'"),
            Self::Refused(mode) => write!(
                f,
                "mode: refused '{}': it is the stress suites' negative control (marks with the barrier off and \
                 loses objects); boot with gc.mode={} to run it",
                mode.name(),
                mode.name()
            ),
            Self::TooLong { kept, dropped } => {
                write!(f, "line too long ({} characters, the console keeps {kept})", kept + dropped)
            }
        }
    }
}

fn switch<'a>(command: &'static str, word: &'a str) -> Result<bool, ParseError<'a>> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        got => Err(ParseError::BadArgument { command, got, expected: "on|off" }),
    }
}

/// Parses one line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(first) = words.next() else { return Ok(None) };
    // (command name, expected argument) for commands with one argument.
    let (name, expected): (&'static str, Option<&'static str>) = match first {
        "help" => ("help", None),
        "stats" => ("stats", None),
        "gc" => ("gc", None),
        "quit" => ("quit", None),
        "mode" => ("mode", Some(MODES)),
        "workload" => ("workload", Some(WORKLOADS)),
        "gctrace" => ("gctrace", Some("on|off")),
        "verify" => ("verify", Some("on|off")),
        other => return Err(ParseError::Unknown(other)),
    };
    let argument = match expected {
        Some(expected) => Some(words.next().ok_or(ParseError::MissingArgument { command: name, expected })?),
        None => None,
    };
    if let Some(got) = words.next() {
        return Err(ParseError::ExtraArgument { command: name, got });
    }
    let arg = argument.unwrap_or("");
    let command = match name {
        "help" => Command::Help,
        "stats" => Command::Stats,
        "gc" => Command::Gc,
        "quit" => Command::Quit,
        "mode" => match BarrierMode::from_name(arg) {
            Some(BarrierMode::UnsafeOffDuringMark) => {
                return Err(ParseError::Refused(BarrierMode::UnsafeOffDuringMark))
            }
            Some(mode) => Command::Mode(mode),
            None => return Err(ParseError::BadArgument { command: name, got: arg, expected: MODES }),
        },
        "workload" if arg == "stop" => Command::Workload(None),
        "workload" => match Workload::from_name(arg) {
            Some(w) => Command::Workload(Some(w)),
            None => return Err(ParseError::BadArgument { command: name, got: arg, expected: WORKLOADS }),
        },
        "gctrace" => Command::GcTrace(switch(name, arg)?),
        _ => Command::Verify(switch(name, arg)?),
    };
    Ok(Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
        assert_eq!(parse("  stats  "), Ok(Some(Command::Stats)));
        assert_eq!(parse("gc"), Ok(Some(Command::Gc)));
        assert_eq!(parse("quit"), Ok(Some(Command::Quit)));
        assert_eq!(parse("mode direct"), Ok(Some(Command::Mode(BarrierMode::Direct))));
        // `MODES` is every mode but the negative control, and each parses.
        let accepted: Vec<&str> = MODES.split('|').collect();
        let modes: Vec<&str> =
            BarrierMode::ALL.iter().filter(|&&m| m != BarrierMode::UnsafeOffDuringMark).map(|m| m.name()).collect();
        assert_eq!(accepted, modes);
        for mode in BarrierMode::ALL.into_iter().filter(|&m| m != BarrierMode::UnsafeOffDuringMark) {
            assert_eq!(parse(&format!("mode {}", mode.name())), Ok(Some(Command::Mode(mode))));
        }
        assert_eq!(parse("workload churn"), Ok(Some(Command::Workload(Some(Workload::Churn)))));
        assert_eq!(parse("workload stop"), Ok(Some(Command::Workload(None))));
        for w in Workload::ALL {
            assert_eq!(parse(&format!("workload {}", w.name())), Ok(Some(Command::Workload(Some(w)))));
        }
        assert_eq!(parse("gctrace on"), Ok(Some(Command::GcTrace(true))));
        assert_eq!(parse("verify off"), Ok(Some(Command::Verify(false))));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn bad_lines_are_one_line_errors() {
        let cases = [
            ("nope", "unknown command 'nope'"),
            ("mode", "mode: needs an argument (off|buffered|direct|checked|direct-systemstack)"),
            ("mode fast", "mode: bad argument 'fast' (expected off|buffered|direct|checked|direct-systemstack)"),
            ("gctrace maybe", "gctrace: bad argument 'maybe' (expected on|off)"),
            ("verify", "verify: needs an argument (on|off)"),
            ("gc now", "gc: unexpected argument 'now'"),
            ("workload graph churn", "workload: unexpected argument 'churn'"),
            ("workload all", "workload: bad argument 'all' (expected mixed|graph|gcbench|churn|stop)"),
        ];
        for (line, message) in cases {
            let err = parse(line).unwrap_err();
            assert_eq!(err.to_string(), message, "{line}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_negative_control_is_refused() {
        let err = parse("mode unsafe-off-during-mark").unwrap_err();
        assert_eq!(err, ParseError::Refused(BarrierMode::UnsafeOffDuringMark));
        let text = err.to_string();
        assert!(text.starts_with("mode: refused 'unsafe-off-during-mark'") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn help_lists_every_command_word() {
        for word in ["help", "stats", "gc", "mode", "workload", "gctrace", "verify", "quit"] {
            assert!(HELP.iter().any(|(usage, _)| usage.split(' ').next() == Some(word)), "{word} not in HELP");
            // And each listed command word is one the parser knows (an argument may be missing).
            assert!(!matches!(parse(word), Err(ParseError::Unknown(_))), "{word}");
        }
    }
}
