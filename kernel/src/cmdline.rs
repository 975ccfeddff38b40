//! The kernel command line (`/chosen/bootargs`, QEMU's `-append`), parsed into a typed [`Config`].
//!
//! Every key is declared once in [`KEYS`]; an unknown key or a bad value is an error whose message
//! lists every valid key and the values it takes, so a typo stops the boot with a clear answer.

use core::fmt;

/// Log verbosity (`log=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// The boot configuration. Defaults are what `cargo xtask run` gets with no `-append`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    /// `log=`: console verbosity.
    pub log: LogLevel,
    /// `test=`: run this kernel test or scenario and exit with its verdict.
    pub test: Option<&'a str>,
    /// `cores=`: bring up at most this many cores (the device tree may list more).
    pub cores: usize,
    /// `seed=`: seed for anything randomised (stress suites, tests).
    pub seed: u64,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Self { log: LogLevel::Info, test: None, cores: MAX_CORES, seed: 1 }
    }
}

/// The most cores tricolor manages (must match `__max_cores` in linker.ld).
pub const MAX_CORES: usize = 8;

/// One accepted key: its name and the value syntax shown in error messages.
pub struct Key {
    pub name: &'static str,
    pub values: &'static str,
    pub help: &'static str,
}

/// Every key the kernel accepts.
pub const KEYS: &[Key] = &[
    Key { name: "log", values: "off|error|warn|info|debug|trace", help: "console verbosity" },
    Key { name: "test", values: "<name>[+<name>...]", help: "run kernel tests or a scenario, exit with the verdict" },
    Key { name: "cores", values: "1..=8", help: "bring up at most this many cores" },
    Key { name: "seed", values: "<u64>", help: "seed for randomised suites" },
];

/// Why a command line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// A `key=value` whose key is not in [`KEYS`].
    UnknownKey { key: &'a str },
    /// A known key with a value it does not accept.
    BadValue { key: &'static str, value: &'a str, expected: &'static str },
    /// A word without `=`.
    MissingValue { word: &'a str },
    /// The same key twice: ambiguous, so refused.
    Duplicate { key: &'static str },
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey { key } => write!(f, "unknown key '{key}'")?,
            Self::BadValue { key, value, expected } => {
                write!(f, "bad value '{value}' for '{key}' (expected {expected})")?
            }
            Self::MissingValue { word } => write!(f, "'{word}' is not key=value")?,
            Self::Duplicate { key } => write!(f, "key '{key}' given twice")?,
        }
        f.write_str("; valid keys:")?;
        for key in KEYS {
            write!(f, " {}={}", key.name, key.values)?;
        }
        Ok(())
    }
}

/// Parses a whitespace-separated `key=value` command line.
pub fn parse(line: &str) -> Result<Config<'_>, CmdlineError<'_>> {
    let mut config = Config::default();
    let mut seen = [false; KEYS.len()];
    for word in line.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').ok_or(CmdlineError::MissingValue { word })?;
        let index = KEYS.iter().position(|k| k.name == key).ok_or(CmdlineError::UnknownKey { key })?;
        let spec = &KEYS[index];
        if core::mem::replace(&mut seen[index], true) {
            return Err(CmdlineError::Duplicate { key: spec.name });
        }
        let bad = || CmdlineError::BadValue { key: spec.name, value, expected: spec.values };
        match spec.name {
            "log" => config.log = parse_level(value).ok_or_else(bad)?,
            "test" if !value.is_empty() => config.test = Some(value),
            "cores" => config.cores = value.parse().ok().filter(|n| (1..=MAX_CORES).contains(n)).ok_or_else(bad)?,
            "seed" => config.seed = parse_u64(value).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    Ok(config)
}

fn parse_level(value: &str) -> Option<LogLevel> {
    Some(match value {
        "off" => LogLevel::Off,
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return None,
    })
}

/// A decimal or `0x` hexadecimal u64.
pub fn parse_u64(value: &str) -> Option<u64> {
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// A byte size with an optional K/M/G suffix (powers of 1024): `64M`, `512K`, `1G`, `4096`.
pub fn parse_size(value: &str) -> Option<usize> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 10),
        b'M' | b'm' => (&value[..value.len() - 1], 20),
        b'G' | b'g' => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("   ").unwrap(), Config::default());
    }

    #[test]
    fn parses_every_key() {
        let c = parse("log=debug test=unit cores=2 seed=0x2a").unwrap();
        assert_eq!(c.log, LogLevel::Debug);
        assert_eq!(c.test, Some("unit"));
        assert_eq!(c.cores, 2);
        assert_eq!(c.seed, 42);
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let err = parse("bogus=1").unwrap_err();
        assert_eq!(err, CmdlineError::UnknownKey { key: "bogus" });
        let text = err.to_string();
        assert!(text.starts_with("unknown key 'bogus'"), "{text}");
        for key in KEYS {
            assert!(text.contains(&format!("{}={}", key.name, key.values)), "{text}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(parse("cores=0"), Err(CmdlineError::BadValue { key: "cores", .. })));
        assert!(matches!(parse("cores=9"), Err(CmdlineError::BadValue { key: "cores", .. })));
        assert!(matches!(parse("log=loud"), Err(CmdlineError::BadValue { key: "log", .. })));
        assert!(matches!(parse("seed=x"), Err(CmdlineError::BadValue { key: "seed", .. })));
        assert!(matches!(parse("test="), Err(CmdlineError::BadValue { key: "test", .. })));
        assert_eq!(parse("verbose"), Err(CmdlineError::MissingValue { word: "verbose" }));
        assert_eq!(parse("log=info log=warn"), Err(CmdlineError::Duplicate { key: "log" }));
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }
}
