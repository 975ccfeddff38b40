//! Fuzzing what the kernel trusts, on stable Rust: the command line, the device tree, and what a
//! device writes into a virtqueue's used ring.
//!
//! - [`targets`]: one function per target, `&[u8] -> Outcome`. A target returns `Ok(kind)`, a
//!   short label for what happened (`"ok"`, `"err:unknown-key"`, ...), or `Err(violation)` when an
//!   oracle fails (a value out of range, a broken queue invariant). A panic is a finding too.
//! - [`fuzz`]: a small mutational fuzzer without coverage instrumentation: it replays the
//!   committed corpus (`fuzz/corpus/<target>/`), then mutates corpus entries (bit flips,
//!   interesting values, dictionary tokens, splices, big-endian and little-endian integer tweaks,
//!   truncation). As a cheap stand-in for coverage, an input whose outcome label was never seen
//!   joins the in-memory corpus. A watchdog ends the run if one input takes longer than
//!   [`Options::hang_after`]: a hang is a finding, reported with the input like a panic.
//!
//! Findings are written to `fuzz/artifacts/<target>/` and printed with a `--replay` line.
//! `cargo xtask fuzz` runs the long campaigns; each target's smoke test (`cargo test`) replays
//! the corpus and mutates for a couple of seconds.

pub mod mutate;
pub mod targets;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one input did: `Ok(kind of outcome)` or `Err(oracle violation)`.
pub type Outcome = Result<String, String>;

/// A fuzz target.
pub struct Target {
    /// Name on the command line and of its corpus directory.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]) -> Outcome,
    /// Tokens mutations insert or overwrite with (keys, magic numbers, ...).
    pub dictionary: &'static [&'static [u8]],
    /// Longest input the mutator builds.
    pub max_len: usize,
}

/// How long and how to fuzz.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mutation time after the corpus replay.
    pub duration: Duration,
    /// Seed of the mutation RNG (a run is repeatable up to timing).
    pub seed: u64,
    /// One input running longer than this is a hang.
    pub hang_after: Duration,
    /// Committed seeds.
    pub corpus_dir: PathBuf,
    /// Where findings go.
    pub artifacts_dir: PathBuf,
    /// Write inputs with a new outcome kind to `corpus_dir`.
    pub grow: bool,
}

impl Options {
    /// `seconds` of mutation for `target`, with the crate's directories.
    pub fn new(target: &Target, seconds: f64) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Options {
            duration: Duration::from_secs_f64(seconds.max(0.0)),
            seed: 0x7c01_0f22,
            hang_after: Duration::from_secs(10),
            corpus_dir: root.join("corpus").join(target.name),
            artifacts_dir: root.join("artifacts").join(target.name),
            grow: false,
        }
    }
}

/// A clean run.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub seconds: f64,
    pub corpus_replayed: usize,
    pub corpus_final: usize,
    /// How often each kind of outcome came up.
    pub kinds: BTreeMap<String, u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz {}: clean: {} execs in {:.1} s ({:.0}/s), corpus {} -> {} inputs, {} kinds of outcome:",
            self.target,
            self.execs,
            self.seconds,
            self.execs as f64 / self.seconds.max(1e-9),
            self.corpus_replayed,
            self.corpus_final,
            self.kinds.len()
        )?;
        // The most frequent kinds (there can be dozens).
        let mut kinds: Vec<(&String, &u64)> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (kind, n) in kinds.iter().take(12) {
            write!(f, " {kind}={n}")?;
        }
        if kinds.len() > 12 {
            write!(f, " ...")?;
        }
        Ok(())
    }
}

/// A bad input: panic, oracle violation or hang.
#[derive(Debug)]
pub struct Finding {
    pub target: &'static str,
    pub what: String,
    pub input: Vec<u8>,
    pub saved: Option<PathBuf>,
    pub execs: u64,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fuzz {}: FINDING after {} execs: {}", self.target, self.execs, self.what)?;
        writeln!(f, "  input ({} bytes): {}", self.input.len(), preview(&self.input))?;
        if let Some(path) = &self.saved {
            write!(f, "  saved to {} (copy it into fuzz/corpus/{}/ with the fix)", path.display(), self.target)?;
        }
        Ok(())
    }
}

/// The first bytes of an input, as text if it is text.
pub fn preview(input: &[u8]) -> String {
    let head = &input[..input.len().min(96)];
    match std::str::from_utf8(head) {
        Ok(s) => format!("{s:?}{}", if input.len() > head.len() { "..." } else { "" }),
        Err(_) => head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(""),
    }
}

/// Reads the corpus directory (missing: empty), in name order.
pub fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.into_iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// A stable name for an input (FNV-1a).
pub fn input_hash(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn save(dir: &Path, prefix: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{prefix}-{:016x}", input_hash(input)));
    std::fs::write(&path, input).ok().map(|()| path)
}

std::thread_local! {
    /// The message of the last panic on this thread (set by the hook `fuzz` installs).
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs one input, turning a panic into `Err`.
pub fn run_one(target: &Target, input: &[u8]) -> Outcome {
    match panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = PANIC_MESSAGE.with(|m| m.borrow_mut().take()).unwrap_or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into())
            });
            Err(format!("panic: {message}"))
        }
    }
}

/// Installs (once per process) a panic hook that records the message and location for
/// [`run_one`] on fuzzing threads, and prints as usual elsewhere.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let fuzzing = FUZZING.with(|f| f.get());
            if fuzzing {
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(info.to_string()));
            } else {
                default(info);
            }
        }));
    });
}

std::thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Replays the corpus, then mutates for `options.duration`. Stops at the first finding.
pub fn fuzz(target: &'static Target, options: &Options) -> Result<Report, Finding> {
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    let result = fuzz_inner(target, options);
    FUZZING.with(|f| f.set(false));
    result
}

fn fuzz_inner(target: &'static Target, options: &Options) -> Result<Report, Finding> {
    let mut corpus = load_corpus(&options.corpus_dir);
    let replayed = corpus.len();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let execs = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = spawn_watchdog(target, options, execs.clone(), current.clone(), done.clone());
    let start = Instant::now();
    let finding = |what: String, input: &[u8], execs: u64| Finding {
        target: target.name,
        what,
        input: input.to_vec(),
        saved: save(&options.artifacts_dir, "finding", input),
        execs,
    };
    let run = |input: &[u8], kinds: &mut BTreeMap<String, u64>| -> Result<bool, Finding> {
        {
            let mut shown = current.lock().unwrap_or_else(|e| e.into_inner());
            shown.clear();
            shown.extend_from_slice(input);
        }
        let n = execs.fetch_add(1, Ordering::Relaxed) + 1;
        match run_one(target, input) {
            Ok(kind) => {
                let counter = kinds.entry(kind).or_insert(0);
                *counter += 1;
                Ok(*counter == 1)
            }
            Err(what) => Err(finding(what, input, n)),
        }
    };
    let outcome = (|| {
        for input in corpus.clone() {
            run(&input, &mut kinds)?;
        }
        let mut rng = mutate::Rng::new(options.seed);
        let mut input = Vec::new();
        while start.elapsed() < options.duration {
            // Batches between clock reads: Instant::now is not free.
            for _ in 0..64 {
                mutate::mutate(&mut rng, &corpus, target.dictionary, target.max_len, &mut input);
                if run(&input, &mut kinds)? {
                    if options.grow {
                        let _ = save(&options.corpus_dir, "grown", &input);
                    }
                    corpus.push(input.clone());
                }
            }
        }
        Ok(())
    })();
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    outcome.map(|()| Report {
        target: target.name,
        execs: execs.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        corpus_replayed: replayed,
        corpus_final: corpus.len(),
        kinds,
    })
}

/// Ends the process if one input runs past `hang_after` (a hang cannot be interrupted in its
/// thread), after saving and printing it.
fn spawn_watchdog(
    target: &'static Target,
    options: &Options,
    execs: Arc<AtomicU64>,
    current: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (hang_after, artifacts) = (options.hang_after, options.artifacts_dir.clone());
    std::thread::spawn(move || {
        let mut last = (u64::MAX, Instant::now());
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(hang_after / 4));
            let n = execs.load(Ordering::Relaxed);
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() > hang_after && !done.load(Ordering::Relaxed) {
                let input = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let finding = Finding {
                    target: target.name,
                    what: format!("hang: one input ran for more than {:.1} s", hang_after.as_secs_f64()),
                    saved: save(&artifacts, "hang", &input),
                    input,
                    execs: n,
                };
                eprintln!("{finding}");
                std::process::exit(3);
            }
        }
    })
}

/// For smoke tests: fuzz `target` for `seconds` and panic with the finding, if any.
pub fn smoke(target: &'static Target, seconds: f64) -> Report {
    match fuzz(target, &Options::new(target, seconds)) {
        Ok(report) => report,
        Err(finding) => panic!("{finding}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on inputs holding "boom", reports a violation for "bad": the fuzzer must find both.
    fn planted(data: &[u8]) -> Outcome {
        if data.windows(4).any(|w| w == b"boom") {
            panic!("planted panic");
        }
        if data.windows(3).any(|w| w == b"bad") {
            return Err("planted violation".into());
        }
        Ok(format!("len{}", data.len().min(3)))
    }

    static PLANTED: Target =
        Target { name: "planted", run: planted, dictionary: &[b"boo", b"m", b"ba", b"d"], max_len: 32 };

    fn options() -> Options {
        let dir = std::env::temp_dir().join(format!("tricolor-fuzz-test-{}", std::process::id()));
        Options {
            duration: Duration::from_secs(20),
            seed: 7,
            hang_after: Duration::from_secs(10),
            corpus_dir: dir.join("no-corpus"),
            artifacts_dir: dir.join("artifacts"),
            grow: false,
        }
    }

    #[test]
    fn a_planted_panic_and_violation_are_found_and_saved() {
        let finding = fuzz(&PLANTED, &options()).expect_err("the planted bugs must be found");
        assert!(finding.what.contains("planted"), "{finding}");
        let saved = finding.saved.as_ref().expect("saved");
        assert_eq!(std::fs::read(saved).unwrap(), finding.input);
        // Replaying the saved input reproduces it.
        assert_eq!(run_one(&PLANTED, &finding.input).unwrap_err(), finding.what);
        let _ = std::fs::remove_dir_all(saved.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn a_panic_is_reported_with_its_message() {
        install_panic_hook();
        FUZZING.with(|f| f.set(true));
        let outcome = run_one(&PLANTED, b"xxboomxx");
        FUZZING.with(|f| f.set(false));
        let why = outcome.unwrap_err();
        assert!(why.starts_with("panic: ") && why.contains("planted panic") && why.contains("lib.rs"), "{why}");
    }
}
