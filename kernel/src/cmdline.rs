//! The kernel command line (`/chosen/bootargs`, QEMU's `-append`), parsed into a typed [`Config`].
//!
//! Every key is declared once in [`KEYS`]; an unknown key or a bad value is an error whose message
//! lists every valid key and the values it takes, so a typo stops the boot with a clear answer.

use core::fmt;
use tricolor_abi::MAX_CORES;
use tricolor_gc::BarrierMode;
use tricolor_virtio::gpu::Completion;
use tricolor_virtio::FenceStrategy;

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

/// Where the GPU framebuffer's memory comes from (`fb=`). The driver only ever sees a scatter
/// list, so every source plugs in behind the same interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FbSource {
    /// A `.bss` array sized for 1280x720x4.
    Static,
    /// Pages from the frame allocator.
    Pages,
    /// A pinned no-scan object in the GC heap.
    Gc,
    /// No framebuffer: the GPU is left alone.
    None,
}

impl FbSource {
    /// The command-line spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Pages => "pages",
            Self::Gc => "gc",
            Self::None => "none",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [Self::Static, Self::Pages, Self::Gc, Self::None].into_iter().find(|s| s.name() == value)
    }

    /// The sources to try, in order. A source the command line names (`required`) is the only
    /// one: if it cannot deliver, the request is impossible and the boot stops. The default
    /// (`fb=` not given) falls back: `static` to `pages`, `pages` to `static`, `gc` to both.
    pub const fn candidates(self, required: bool) -> &'static [FbSource] {
        match (self, required) {
            (Self::None, _) => &[],
            (Self::Static, true) => &[Self::Static],
            (Self::Pages, true) => &[Self::Pages],
            (Self::Gc, true) => &[Self::Gc],
            (Self::Static, false) => &[Self::Static, Self::Pages],
            (Self::Pages, false) => &[Self::Pages, Self::Static],
            (Self::Gc, false) => &[Self::Gc, Self::Static, Self::Pages],
        }
    }
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
    /// `fb=`: where the GPU framebuffer lives.
    pub fb: FbSource,
    /// `fb=` was on the command line: that source or none (see [`FbSource::candidates`]).
    pub fb_required: bool,
    /// `virtio.fence=`: how virtqueue polls order the used-index read (an experiment knob).
    pub virtio_fence: FenceStrategy,
    /// `virtio.complete=`: learn of GPU command completion by polling or by interrupt.
    pub virtio_complete: Completion,
    /// `virtio.timeout=`: empty polls before a GPU command is reported failed (`None`: the
    /// driver's default).
    pub virtio_timeout: Option<u64>,
    /// `gc.mode=`: the write-barrier mode (switchable later between cycles).
    pub gc_mode: BarrierMode,
    /// `gc.heap=`: bytes of RAM for the GC heap.
    pub gc_heap: usize,
    /// `gc.wbbuf=`: write-barrier buffer entries per core.
    pub gc_wbbuf: usize,
    /// `gc.handoff=`: a full wbBuf's records go to the markers during a mark (on) or are shaded
    /// by the flushing mutator (off, Go's way).
    pub gc_handoff: bool,
    /// `gc.percent=`: GOGC-like growth before the next cycle triggers.
    pub gc_percent: u32,
    /// `gc.verify=`: re-mark with the world stopped after every concurrent mark (gccheckmark).
    pub gc_verify: bool,
    /// `gc.poison=`: the sweep fills freed memory with `tricolor_gc::heap::POISON` (on by default, so a
    /// use of a freed object reads garbage that the checks recognise; benchmarks turn it off).
    pub gc_poison: bool,
    /// `gc.torture=`: a collection every this many GC allocations (0: off).
    pub gc_torture: u64,
    /// `gc.pacer=off`: heap growth starts no cycle (with `gc.torture=`, cycles come at the same
    /// allocation counts in every run: the barrier-overhead measurement).
    pub gc_pacer: bool,
    /// `gc.trace=1`: one line per cycle in the format of Go's `GODEBUG=gctrace=1`.
    pub gc_trace: bool,
    /// `suite=`: run this GC stress suite and exit with its verdict.
    pub suite: Option<&'a str>,
    /// `suite.cycles=`: collections a stress suite runs before it stops (suites that end on
    /// their own, like GCBench, ignore it).
    pub suite_cycles: u64,
    /// `timeline=dump`: print every core's recorded GC states at the end of a stress suite (and
    /// when the demo quits), for `cargo xtask bench`'s MMU and `cargo xtask trace`.
    pub timeline_dump: bool,
    /// `tick.slice=`: each core's timer fires this often, in µs (0: once per quantum), while
    /// preemption stays once per quantum. Under `-icount` QEMU runs the vCPUs one at a time and
    /// moves to the next at a timer deadline (or a `yield`/`wfi`), so this bounds how long one
    /// core runs while the others stand still: measurements of several cores at once (MMU,
    /// `cargo xtask bench` and `trace`) use it.
    pub tick_slice_us: u64,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Self {
            log: LogLevel::Info,
            test: None,
            cores: MAX_CORES,
            seed: 1,
            fb: FbSource::Static,
            fb_required: false,
            virtio_fence: FenceStrategy::Acquire,
            virtio_complete: Completion::Polling,
            virtio_timeout: None,
            gc_mode: BarrierMode::Buffered,
            gc_heap: 64 << 20,
            gc_wbbuf: 512,
            gc_handoff: true,
            gc_percent: 100,
            gc_verify: false,
            gc_poison: true,
            gc_torture: 0,
            gc_pacer: true,
            gc_trace: false,
            suite: None,
            suite_cycles: 8,
            timeline_dump: false,
            tick_slice_us: 0,
        }
    }
}

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
    Key { name: "cores", values: "1..=16", help: "bring up at most this many cores" },
    Key { name: "seed", values: "<u64>", help: "seed for randomised suites" },
    Key { name: "fb", values: "static|pages|gc|none", help: "where the GPU framebuffer lives" },
    Key {
        name: "virtio.fence",
        values: "acquire|seqcst|after-progress",
        help: "virtqueue used-index ordering (after-progress: a barrier only after progress, an experiment)",
    },
    Key { name: "virtio.complete", values: "poll|irq", help: "GPU command completion by polling or interrupt" },
    Key {
        name: "gc.mode",
        values: "off|buffered|direct|checked|unsafe-off-during-mark|direct-systemstack",
        help: "write-barrier mode (unsafe-off-during-mark: stress negative control only)",
    },
    Key { name: "gc.heap", values: "<size: 1M..=768M, K/M/G suffix>", help: "GC heap size" },
    Key { name: "gc.wbbuf", values: "2..=4096", help: "write-barrier buffer entries per core" },
    Key { name: "gc.handoff", values: "on|off", help: "full wbBufs shaded by the markers (on) or by the mutator" },
    Key { name: "gc.percent", values: "1..=10000", help: "heap growth (percent of live) before the next cycle" },
    Key { name: "gc.verify", values: "on|off", help: "stop-the-world re-mark after each concurrent mark" },
    Key {
        name: "gc.poison",
        values: "on|off",
        help: "the sweep fills freed memory with a pattern (off: as Go, which only zeroes at allocation)",
    },
    Key { name: "virtio.timeout", values: "<spins>", help: "empty polls before a GPU command is reported failed" },
    Key { name: "gc.torture", values: "<allocations, 0 = off>", help: "a collection every this many GC allocations" },
    Key {
        name: "gc.pacer",
        values: "on|off",
        help: "heap growth starts cycles (off: only gc.torture=, each after a running one, and a full heap)",
    },
    Key { name: "gc.trace", values: "0|1", help: "one gctrace line per cycle (Go's GODEBUG=gctrace=1 format)" },
    Key { name: "suite", values: "<name>", help: "run a GC stress suite (suite=help lists them) and exit" },
    Key { name: "suite.cycles", values: "1..=100000", help: "collections a stress suite runs" },
    Key {
        name: "timeline",
        values: "off|dump",
        help: "print every core's GC state transitions when a suite ends or the demo quits",
    },
    Key {
        name: "tick.slice",
        values: "0..=1000000 (µs, 0 = the quantum)",
        help: "timer interrupt period (preemption stays once per quantum): under -icount, how long one vCPU runs alone",
    },
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
            "fb" => {
                config.fb = FbSource::parse(value).ok_or_else(bad)?;
                config.fb_required = true;
            }
            "virtio.fence" => config.virtio_fence = FenceStrategy::parse(value).ok_or_else(bad)?,
            "virtio.complete" => config.virtio_complete = parse_completion(value).ok_or_else(bad)?,
            "virtio.timeout" => config.virtio_timeout = Some(parse_u64(value).filter(|&n| n > 0).ok_or_else(bad)?),
            "gc.mode" => config.gc_mode = BarrierMode::from_name(value).ok_or_else(bad)?,
            "gc.heap" => {
                config.gc_heap = parse_size(value).filter(|n| ((1 << 20)..=(768 << 20)).contains(n)).ok_or_else(bad)?
            }
            "gc.wbbuf" => config.gc_wbbuf = value.parse().ok().filter(|n| (2..=4096).contains(n)).ok_or_else(bad)?,
            "gc.handoff" => config.gc_handoff = parse_switch(value).ok_or_else(bad)?,
            "gc.percent" => {
                config.gc_percent = value.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(bad)?
            }
            "gc.verify" => config.gc_verify = parse_switch(value).ok_or_else(bad)?,
            "gc.poison" => config.gc_poison = parse_switch(value).ok_or_else(bad)?,
            "gc.torture" => config.gc_torture = parse_u64(value).ok_or_else(bad)?,
            "gc.pacer" => config.gc_pacer = parse_switch(value).ok_or_else(bad)?,
            "gc.trace" => {
                config.gc_trace = match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad()),
                }
            }
            "suite" if !value.is_empty() => config.suite = Some(value),
            "suite.cycles" => {
                config.suite_cycles = parse_u64(value).filter(|n| (1..=100_000).contains(n)).ok_or_else(bad)?
            }
            "timeline" => {
                config.timeline_dump = match value {
                    "dump" => true,
                    "off" => false,
                    _ => return Err(bad()),
                }
            }
            "tick.slice" => config.tick_slice_us = parse_u64(value).filter(|&n| n <= 1_000_000).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    Ok(config)
}

fn parse_switch(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn parse_completion(value: &str) -> Option<Completion> {
    match value {
        "poll" => Some(Completion::Polling),
        "irq" => Some(Completion::Interrupt),
        _ => None,
    }
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
    fn cores_range_is_max_cores() {
        let key = KEYS.iter().find(|k| k.name == "cores").unwrap();
        assert_eq!(key.values, format!("1..={MAX_CORES}"), "the cores= help text names tricolor_abi::MAX_CORES");
        let most = format!("cores={MAX_CORES}");
        assert_eq!(parse(&most).unwrap().cores, MAX_CORES);
        let too_many = format!("cores={}", MAX_CORES + 1);
        assert!(matches!(parse(&too_many), Err(CmdlineError::BadValue { key: "cores", .. })));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(parse("cores=0"), Err(CmdlineError::BadValue { key: "cores", .. })));
        assert!(matches!(parse("cores=17"), Err(CmdlineError::BadValue { key: "cores", .. })));
        assert!(matches!(parse("log=loud"), Err(CmdlineError::BadValue { key: "log", .. })));
        assert!(matches!(parse("seed=x"), Err(CmdlineError::BadValue { key: "seed", .. })));
        assert!(matches!(parse("test="), Err(CmdlineError::BadValue { key: "test", .. })));
        assert_eq!(parse("verbose"), Err(CmdlineError::MissingValue { word: "verbose" }));
        assert_eq!(parse("log=info log=warn"), Err(CmdlineError::Duplicate { key: "log" }));
    }

    #[test]
    fn parses_display_and_virtio_keys() {
        let c = parse("fb=pages virtio.fence=after-progress virtio.complete=irq virtio.timeout=5").unwrap();
        assert_eq!(c.fb, FbSource::Pages);
        assert_eq!(c.virtio_fence, FenceStrategy::AfterProgress);
        assert_eq!(c.virtio_complete, Completion::Interrupt);
        assert_eq!(c.virtio_timeout, Some(5));
        for (word, source) in [("fb=static", FbSource::Static), ("fb=gc", FbSource::Gc), ("fb=none", FbSource::None)] {
            assert_eq!(parse(word).unwrap().fb, source);
        }
        assert_eq!(parse("virtio.fence=seqcst").unwrap().virtio_fence, FenceStrategy::SeqCst);
        assert_eq!(parse("virtio.complete=poll").unwrap().virtio_complete, Completion::Polling);
        assert_eq!(parse("virtio.timeout=0x10").unwrap().virtio_timeout, Some(16));
    }

    #[test]
    fn a_named_framebuffer_source_has_no_fallback() {
        assert!(!Config::default().fb_required);
        let c = parse("fb=gc").unwrap();
        assert!(c.fb_required);
        assert_eq!(c.fb.candidates(c.fb_required), [FbSource::Gc]);
        let d = Config::default();
        assert_eq!(d.fb.candidates(d.fb_required), [FbSource::Static, FbSource::Pages]);
        assert_eq!(FbSource::Gc.candidates(false), [FbSource::Gc, FbSource::Static, FbSource::Pages]);
        assert_eq!(FbSource::Pages.candidates(false), [FbSource::Pages, FbSource::Static]);
        assert!(FbSource::None.candidates(true).is_empty());
    }

    #[test]
    fn display_defaults_are_static_acquire_polling() {
        let c = Config::default();
        assert_eq!(c.fb, FbSource::Static);
        assert_eq!(c.virtio_fence, FenceStrategy::Acquire);
        assert_eq!(c.virtio_complete, Completion::Polling);
        assert_eq!(c.virtio_timeout, None);
    }

    #[test]
    fn bad_display_and_virtio_values_are_refused() {
        for (word, key) in [
            ("fb=gpu", "fb"),
            ("virtio.fence=relaxed", "virtio.fence"),
            ("virtio.complete=msi", "virtio.complete"),
            ("virtio.timeout=0", "virtio.timeout"),
            ("virtio.timeout=soon", "virtio.timeout"),
        ] {
            match parse(word) {
                Err(CmdlineError::BadValue { key: k, .. }) => assert_eq!(k, key, "{word}"),
                other => panic!("{word}: {other:?}"),
            }
        }
        let text = parse("fb=gpu").unwrap_err().to_string();
        assert!(text.contains("expected static|pages|gc|none"), "{text}");
    }

    #[test]
    fn gc_keys_parse_and_reject() {
        let c = parse("gc.mode=direct gc.heap=128M gc.wbbuf=4096 gc.percent=50 gc.verify=on").unwrap();
        assert_eq!(c.gc_mode, BarrierMode::Direct);
        assert_eq!(c.gc_heap, 128 << 20);
        assert_eq!(c.gc_wbbuf, 4096);
        assert_eq!(c.gc_percent, 50);
        assert!(c.gc_verify);
        assert_eq!(parse("gc.mode=unsafe-off-during-mark").unwrap().gc_mode, BarrierMode::UnsafeOffDuringMark);
        assert_eq!(parse("gc.mode=direct-systemstack").unwrap().gc_mode, BarrierMode::DirectSystemstack);
        // The help lists exactly the modes there are.
        let key = KEYS.iter().find(|k| k.name == "gc.mode").unwrap();
        let listed: Vec<&str> = key.values.split('|').collect();
        let names: Vec<&str> = BarrierMode::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(listed, names);
        assert!(Config::default().gc_poison && !parse("gc.poison=off").unwrap().gc_poison);
        assert!(parse("gc.poison=on").unwrap().gc_poison);
        assert!(parse("gc.poison=2").is_err());
        assert!(Config::default().gc_handoff && !parse("gc.handoff=off").unwrap().gc_handoff);
        assert!(parse("gc.handoff=on").unwrap().gc_handoff);
        assert!(parse("gc.trace=1").unwrap().gc_trace);
        assert!(!parse("gc.trace=0").unwrap().gc_trace && !Config::default().gc_trace);
        for bad in [
            "gc.trace=on",
            "gc.trace=2",
            "gc.mode=fast",
            "gc.heap=1K",
            "gc.heap=2G",
            "gc.wbbuf=1",
            "gc.wbbuf=8192",
            "gc.percent=0",
            "gc.verify=yes",
            "gc.handoff=maybe",
        ] {
            assert!(matches!(parse(bad), Err(CmdlineError::BadValue { .. })), "{bad} accepted");
        }
    }

    #[test]
    fn stress_keys_parse_and_reject() {
        let c = parse("suite=gcbench-quick suite.cycles=20 gc.torture=500").unwrap();
        assert_eq!(c.suite, Some("gcbench-quick"));
        assert_eq!(c.suite_cycles, 20);
        assert_eq!(c.gc_torture, 500);
        assert!(c.gc_pacer);
        assert!(!parse("gc.pacer=off gc.torture=100").unwrap().gc_pacer);
        assert!(parse("gc.pacer=maybe").is_err());
        let d = Config::default();
        assert_eq!((d.suite, d.suite_cycles, d.gc_torture), (None, 8, 0));
        for bad in ["suite.cycles=0", "suite.cycles=many", "gc.torture=-1", "suite="] {
            assert!(matches!(parse(bad), Err(CmdlineError::BadValue { .. })), "{bad} accepted");
        }
    }

    #[test]
    fn timeline_key_parses_and_rejects() {
        assert!(parse("timeline=dump").unwrap().timeline_dump);
        assert_eq!((parse("tick.slice=50").unwrap().tick_slice_us, Config::default().tick_slice_us), (50, 0));
        assert!(parse("tick.slice=2000000").is_err() && parse("tick.slice=x").is_err());
        assert!(!parse("timeline=off").unwrap().timeline_dump && !Config::default().timeline_dump);
        for bad in ["timeline=on", "timeline=1", "timeline="] {
            assert!(matches!(parse(bad), Err(CmdlineError::BadValue { key: "timeline", .. })), "{bad} accepted");
        }
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
