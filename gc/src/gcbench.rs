//! Boehm's GCBench (binary trees) on the host, over [`crate::host`]: threads stand in for cores,
//! so tricolor's collector can be compared with other collectors on one machine. The benchmark
//! itself is [`crate::workload::gcbench`] (the kernel's suites run the same code); this is its host
//! driver: the threads, the collector thread, the pacing and assists, the timings and the
//! [`Report`]. The example `gc/examples/gcbench.rs` is a command line over [`run`]; the unit tests
//! below run a tiny size through the same code.
//!
//! Each thread runs the whole benchmark ([`crate::workload::gcbench::run`]), like the
//! multi-threaded GCBench ports.
//!
//! Collections run on a dedicated collector thread (a core of its own, not a mutator), as Go's
//! background mark workers do: when an allocation finds the heap in use past the start point, the
//! thread asks for a cycle and goes on allocating. The start point is the collector's trigger
//! (`percent`, GOGC, on the pacer's measure of the heap: `gc::pacer`) or, whichever comes first,
//! the heap in use reaching the heap size less a reserve for what the mutators allocate
//! while a cycle runs (two and a half times what they allocated during the last cycle, between a
//! sixteenth and a half of the heap; a quarter before the first: [`reserve`]), so that a cycle
//! usually ends before the heap is full (Go's memory limit works the same way). With
//! `--percent off` only the heap limit starts cycles, as in a collector with a fixed heap (Boehm
//! GC collects when its heap is used up). Each thread is pinned to a CPU of its own where there
//! are enough ([`Params::pin`]).
//!
//! While a cycle marks concurrently, allocating mutators assist it (Go's mark assists): every
//! [`ASSIST_EVERY`] allocations a mutator scans a budget of grey objects, in steps of
//! microseconds. The budget is revised at every step (Go's `revise`) so that the mutators alone
//! would finish the scan work still expected by the time they have allocated a quarter of what
//! is left of the heap (Go's assist ratio: scan work over heap distance); the expected work is the
//! last cycle's, and the worst case once the mark has outgrown it ([`Shared::assist_budget_now`]).
//! The collector thread marks too, so the mark ends well before the heap is full, and little is
//! allocated black during it (objects allocated during a mark survive the cycle). The collector
//! thread stops the world only for the cycle's pauses (all of the mark in `off` mode, which the
//! parked mutators mark too: [`crate::Platform::help_while_stopped`]) and marks and sweeps
//! concurrently otherwise. A thread whose allocation finds the heap full asks for a cycle,
//! assists its mark and waits, parked, until the mark terminates, then sweeps for room itself
//! ([`Collector::alloc_when_full`]). Each mutator measures, where it happens,
//! the longest interval it was blocked by the collector: a park at a stop-the-world, or a whole
//! wait for a full heap (see [`crate::host`]); that, not the stop closure's length, is the pause
//! a mutator sees.
//!
//! # Rooting
//! A host mutator's Rust locals are not scanned: its "stack" is its [`Mutator`]'s root slots. A
//! cycle can only start at a safe point, and the benchmark reaches one at every allocation (the
//! safe point comes first, then the trigger check, then the allocation). So the host's
//! [`Rooting`] keeps this rule: **when an allocation starts, every handle the thread still needs
//! is in a root slot or reachable from one**. A freshly returned handle needs no slot until the
//! next allocation; between safe points locals are safe because objects allocated during marking
//! are black and the hybrid barrier covers everything loaded from the heap (the stack was scanned
//! at mark start). Slots: the long-lived tree, the array, the current top-down tree, then a shadow
//! stack holding the finished left and right subtrees of every unfinished bottom-up node
//! ([`Rooting::push`]).

extern crate std;

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::format;
use std::string::{String, ToString};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::host::{Blocked, HostPlatform, Mutator, World};
use crate::object::{Gc, Trace};
use crate::workload::gcbench::{self as workload, DoubleArray, Failure, Milestone, Node, RootArray, Rooting};
use crate::{AllocError, BarrierMode, Collector, Config, StatsSnapshot};

pub use crate::workload::gcbench::{node_bytes, Shape, BOEHM};

type P = HostPlatform;

const MIB: usize = 1 << 20;

/// Benchmark sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Boehm's parameters: stretch 18, long-lived 16, 500 000 doubles, depths 4..=16.
    Full,
    /// Stretch 14, long-lived 12, 50 000 doubles, depths 4..=10.
    Quick,
    /// Stretch 8, long-lived 6, 1000 doubles, depths 4..=6: the unit test's size.
    Tiny,
}

impl Size {
    /// Its parameters.
    pub const fn shape(self) -> Shape {
        match self {
            Size::Full => BOEHM,
            Size::Quick => {
                Shape { stretch_depth: 14, long_lived_depth: 12, array_len: 50_000, min_depth: 4, max_depth: 10 }
            }
            Size::Tiny => Shape { stretch_depth: 8, long_lived_depth: 6, array_len: 1000, min_depth: 4, max_depth: 6 },
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Size::Full => "full",
            Size::Quick => "quick",
            Size::Tiny => "tiny",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Size> {
        [Size::Full, Size::Quick, Size::Tiny].into_iter().find(|z| z.name() == s)
    }
}

/// A heap big enough for `threads` threads running `size` at `percent`: the largest live set of
/// one thread (the stretch tree, or the long-lived tree, the array and one timed tree), grown by
/// the pacing headroom, plus half again for allocation during a cycle and span fragmentation, plus
/// 4 MiB. Rounded up to whole MiB.
pub fn default_heap_bytes(size: Size, threads: usize, percent: u32) -> usize {
    let paced = size.shape().peak_live_bytes() * (100 + percent as usize) / 100;
    (threads * paced * 3 / 2 + 4 * MIB).next_multiple_of(MIB)
}

/// One run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Mutator threads (each one a core of the host world, each running the whole benchmark).
    pub threads: usize,
    /// Benchmark size.
    pub size: Size,
    /// Barrier mode.
    pub mode: BarrierMode,
    /// Heap size; `None` for [`default_heap_bytes`].
    pub heap_bytes: Option<usize>,
    /// GOGC-like pacing percentage; [`PERCENT_OFF`] for none (the heap limit alone starts cycles).
    pub percent: u32,
    /// The collector's heap minimum at GOGC 100 (`collector::Config::heap_minimum`).
    pub heap_minimum: usize,
    /// Run the collector's verifier at every mark termination (its time counts as pause).
    pub verify: bool,
    /// Poison freed memory ([`crate::heap::POISON`]); `--no-poison` switches it off for a
    /// benchmark (the summary and the BENCH line say so). The stress tests keep it on.
    pub poison: bool,
    /// Pin each thread to a CPU of its own (mutator `t` to the process's `t`-th allowed CPU, the
    /// collector thread to the next), when there are enough: a host thread stands for a core.
    /// Unpinned, the kernel may queue the woken collector thread behind the running mutator on
    /// one CPU while the other idles: its wake-up then took up to 3 ms on this machine kind, and
    /// the mutator filled the heap meanwhile. `--no-pin` leaves placement to the OS.
    pub pin: bool,
}

/// Allocations between a mutator's mark assists.
pub const ASSIST_EVERY: u32 = 16;

/// Grey objects per step of the assist of a mutator that found the heap full.
const FULL_HEAP_ASSIST: usize = 1024;

/// How long a mutator waiting for a cycle with no grey objects to scan spins before it looks
/// for some again (a marker may have handed some over meanwhile).
const HELP_WAIT: Duration = Duration::from_micros(20);

/// `--percent off`: the collector's trigger is 101 times the live heap (the kernel's largest
/// `gc.percent`), so in effect only the heap limit starts cycles.
pub const PERCENT_OFF: u32 = 10_000;

impl Params {
    /// Defaults for `size`: one thread, buffered barrier, computed heap, GOGC 100.
    pub fn new(size: Size) -> Self {
        let config = Config::default();
        Params {
            threads: 1,
            size,
            mode: BarrierMode::Buffered,
            heap_bytes: None,
            percent: config.percent,
            heap_minimum: config.heap_minimum,
            verify: false,
            poison: true,
            pin: true,
        }
    }

    /// The heap size this run uses.
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes.unwrap_or_else(|| default_heap_bytes(self.size, self.threads, self.percent))
    }
}

/// Times of one depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthTiming {
    /// Tree depth.
    pub depth: u32,
    /// Trees built each way.
    pub iters: u64,
    /// Building them top down (`Populate`).
    pub top_down: Duration,
    /// Building them bottom up (`MakeTree`).
    pub bottom_up: Duration,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The parameters.
    pub params: Params,
    /// The heap size used.
    pub heap_bytes: usize,
    /// Wall time from the start until the last thread finished building (verification excluded).
    pub total: Duration,
    /// Time spent inside collection cycles (sum over cycles of the `collect` call).
    pub gc: Duration,
    /// Cycles the benchmark ran (each measured in `gc`).
    pub cycles: u64,
    /// The collector's counters at the end.
    pub stats: StatsSnapshot,
    /// Per thread, its time until done building.
    pub per_thread: Vec<Duration>,
    /// The stretch tree, slowest thread.
    pub stretch: Duration,
    /// The long-lived tree and array, slowest thread.
    pub long_lived: Duration,
    /// Per depth, slowest thread.
    pub depths: Vec<DepthTiming>,
    /// Long-lived tree nodes verified, all threads.
    pub verified_nodes: u64,
    /// CPU time of the whole process (mutators, collector thread) over `total`; `None` where the
    /// process CPU clock cannot be read.
    pub cpu: Option<Duration>,
    /// What the mutators measured: the longest interval one was blocked by the collector (a
    /// stop-the-world park or a whole wait for a full heap), and all of them.
    pub blocked: Blocked,
    /// The 99th percentile (nearest rank) of the stop-the-world pauses: each cycle's mark setup
    /// and its longest mark termination attempt.
    pub pause_p99: Duration,
    /// The most heap pages that were ever in spans, in bytes (what the collector took of its heap).
    pub peak_heap: usize,
    /// The process's peak resident set (`VmHWM`), where `/proc` has it. The heap region is poisoned
    /// at start, so it is all resident.
    pub peak_rss: Option<usize>,
    /// Objects the collector marked, over all cycles (shaded, less those allocated black).
    pub marked_objects: u64,
    /// Spans swept, over all cycles (by the collector and by allocators).
    pub spans_swept: u64,
    /// Objects the mutators scanned in mark assists (part of `marked_objects`).
    pub assisted_objects: u64,
    /// The longest single mark assist (a mutator doing the collector's work, not blocked by it).
    pub assist_max: Duration,
    /// The CPUs the threads were pinned to (mutators in order, then the collector thread); empty
    /// if they were not (`--no-pin`, or fewer allowed CPUs than threads).
    pub pinned: Vec<usize>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percent_name(percent: u32) -> String {
    if percent == PERCENT_OFF {
        "off".into()
    } else {
        percent.to_string()
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The value at quantile `q` of `sorted` (nearest rank), 0 if empty.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// CPU time of the whole process so far (`CLOCK_PROCESS_CPUTIME_ID`).
#[cfg(target_os = "linux")]
pub fn process_cpu_time() -> Option<Duration> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut t = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime (libc, which std links on Linux) writes one `struct timespec`, which
    // is two 64-bit fields on the 64-bit Linux targets, to the valid pointer it is given.
    let r = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    (r == 0).then(|| Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
}

/// The CPUs this process may run on (its affinity mask: what `taskset` gave it), in order.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Vec<usize> {
    extern "C" {
        fn sched_getaffinity(pid: i32, size: usize, mask: *mut u64) -> i32;
    }
    let mut mask = [0u64; CPU_MASK_WORDS];
    // SAFETY: sched_getaffinity (glibc) writes at most `size` bytes of CPU mask to the valid
    // buffer it is given; pid 0 is the calling thread.
    if unsafe { sched_getaffinity(0, core::mem::size_of_val(&mask), mask.as_mut_ptr()) } != 0 {
        return Vec::new();
    }
    (0..CPU_MASK_WORDS * 64).filter(|&c| mask[c / 64] & (1 << (c % 64)) != 0).collect()
}

/// Not available on this OS: no CPUs to pin to.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Words of a CPU mask (glibc's `cpu_set_t`: 1 024 CPUs).
const CPU_MASK_WORDS: usize = 16;

/// Pin the calling thread to `cpu`, if given; if the OS refuses (or cannot), set `failed`.
fn pin_or_report(cpu: Option<usize>, failed: &AtomicBool) {
    if cpu.is_some_and(|cpu| !pin_to(cpu)) {
        // Ordering: Relaxed; read after every thread joined.
        failed.store(true, Ordering::Relaxed);
    }
}

/// Pin the calling thread to `cpu`; false if the OS refused (or cannot).
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> bool {
    extern "C" {
        fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    }
    let mut mask = [0u64; CPU_MASK_WORDS];
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: sched_setaffinity (glibc) reads `size` bytes of CPU mask from the valid buffer it
    // is given; pid 0 is the calling thread.
    unsafe { sched_setaffinity(0, core::mem::size_of_val(&mask), mask.as_ptr()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> bool {
    false
}

/// CPU time of the whole process so far: not available on this OS.
#[cfg(not(target_os = "linux"))]
pub fn process_cpu_time() -> Option<Duration> {
    None
}

/// The process's peak resident set in bytes, from `/proc/self/status` (`VmHWM`).
pub fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<usize> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: usize = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

fn heap_mib(bytes: usize) -> String {
    if bytes.is_multiple_of(MIB) {
        (bytes / MIB).to_string()
    } else {
        format!("{:.2}", bytes as f64 / MIB as f64)
    }
}

impl Report {
    /// The machine-readable line.
    pub fn bench_line(&self) -> String {
        let p = &self.params;
        format!(
            "BENCH host-gcbench threads={} size={} mode={} heap_mib={} percent={} total_ms={:.1} gc_ms={:.1} \
             cycles={} max_pause_us={:.1} mean_pause_us={:.1} allocs={} cpu_ms={} blocked_max_us={:.1} \
             blocked_stop_max_us={:.1} blocked_total_ms={:.1} pause_p99_us={:.1} peak_heap_mib={:.2} peak_rss_mib={} poison={} \
             marked_objects={} spans_swept={} assisted_objects={} assist_max_us={:.1} pinned={}",
            p.threads,
            p.size.name(),
            p.mode.name(),
            heap_mib(self.heap_bytes),
            percent_name(p.percent),
            ms(self.total),
            ms(self.gc),
            self.cycles,
            self.stats.pause_max_ns as f64 / 1e3,
            self.stats.pause_mean_ns as f64 / 1e3,
            self.stats.allocs,
            self.cpu.map_or("none".into(), |d| format!("{:.1}", ms(d))),
            us(self.blocked.max),
            us(self.blocked.max_stop),
            ms(self.blocked.total),
            us(self.pause_p99),
            self.peak_heap as f64 / MIB as f64,
            self.peak_rss.map_or("none".into(), |b| format!("{:.1}", b as f64 / MIB as f64)),
            if p.poison { "on" } else { "off" },
            self.marked_objects,
            self.spans_swept,
            self.assisted_objects,
            us(self.assist_max),
            if self.pinned.is_empty() { "no" } else { "yes" }
        )
    }

    /// Where the threads ran: pinned, or why not.
    pub fn placement(&self) -> String {
        match self.pinned.split_last() {
            Some((collector, mutators)) => {
                format!("threads pinned: mutator(s) to CPU(s) {mutators:?}, the collector thread to CPU {collector}")
            }
            None if !self.params.pin => "threads not pinned (--no-pin)".into(),
            None => format!(
                "threads not pinned: {} thread(s) and {} allowed CPU(s)",
                self.params.threads + 1,
                allowed_cpus().len()
            ),
        }
    }

    /// The human-readable summary, in the spirit of GCBench's output.
    pub fn summary(&self) -> String {
        let p = &self.params;
        let s = p.size.shape();
        let st = &self.stats;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "GCBench (Boehm's binary trees) on tricolor's collector, host threads as cores\n \
             {} mutator thread(s) and a collector thread, size {}, barrier mode {}, heap {} MiB, GOGC {}{}{}",
            p.threads,
            p.size.name(),
            p.mode.name(),
            heap_mib(self.heap_bytes),
            percent_name(p.percent),
            if p.verify { ", verifier on" } else { "" },
            if p.poison { "" } else { ", freed memory NOT poisoned (--no-poison)" }
        );
        let _ = writeln!(out, " {}", self.placement());
        let _ = writeln!(
            out,
            " Stretching memory with a binary tree of depth {}: {:.1} ms",
            s.stretch_depth,
            ms(self.stretch)
        );
        let _ = writeln!(
            out,
            " Creating a long-lived binary tree of depth {} and an array of {} doubles: {:.1} ms",
            s.long_lived_depth,
            s.array_len,
            ms(self.long_lived)
        );
        for d in &self.depths {
            let _ = writeln!(
                out,
                " Creating {} trees of depth {}: top down {:.1} ms, bottom up {:.1} ms",
                d.iters,
                d.depth,
                ms(d.top_down),
                ms(d.bottom_up)
            );
        }
        let threads: Vec<String> = self.per_thread.iter().map(|d| format!("{:.1}", ms(*d))).collect();
        let _ = writeln!(
            out,
            " Completed in {:.1} ms (per thread: {} ms; times above are the slowest thread's)",
            ms(self.total),
            threads.join(", ")
        );
        let _ = writeln!(
            out,
            " GC: {} cycles, {:.1} ms in cycles (a cycle ran for {:.1}% of the wall time), \
             {} pauses, max {:.1} us, mean {:.1} us",
            self.cycles,
            ms(self.gc),
            100.0 * self.gc.as_secs_f64() / self.total.as_secs_f64().max(1e-9),
            st.pauses,
            st.pause_max_ns as f64 / 1e3,
            st.pause_mean_ns as f64 / 1e3
        );
        let _ = writeln!(
            out,
            "     {} objects allocated, {:.1} MiB freed, {:.1} MiB live at the last mark, \
             {} barriers recorded, {} flushes, {} mark restarts",
            st.allocs,
            st.bytes_freed as f64 / MIB as f64,
            st.last_marked_bytes as f64 / MIB as f64,
            st.barriers,
            st.flushes,
            st.mark_restarts
        );
        let _ = writeln!(
            out,
            " Mutators blocked by the collector (measured at the mutator): longest {:.1} us (longest park for a \
             stop alone {:.1} us), {:.1} ms in {} intervals; {} objects scanned in mark assists (longest assist {:.1} us); pause p99 {:.1} us; \
             peak heap in spans {:.2} MiB; CPU {}",
            us(self.blocked.max),
            us(self.blocked.max_stop),
            ms(self.blocked.total),
            self.blocked.count,
            self.assisted_objects,
            us(self.assist_max),
            us(self.pause_p99),
            self.peak_heap as f64 / MIB as f64,
            self.cpu.map_or("unknown".into(), |d| format!("{:.1} ms", ms(d)))
        );
        let _ = write!(
            out,
            " Verified: every thread's long-lived tree ({} nodes in all) and array intact",
            self.verified_nodes
        );
        out
    }
}

/// Why a thread stopped.
enum Stop {
    /// A real failure: out of memory, a verification error.
    Failed(String),
    /// Another thread failed first.
    Aborted,
}

/// What a waiting mutator waits for ([`Shared::help_until`]).
#[derive(Clone, Copy)]
enum Until {
    /// The next mark termination: from then on an allocation finds room by sweeping.
    Mark,
    /// The next cycle the collector thread has completed (the tests' explicit collections).
    #[cfg(test)]
    Cycle,
}

/// State all threads share: the collector thread's controls and what it measured.
struct Shared<'w> {
    world: &'w World,
    /// A cycle was asked for since the collector thread last looked (a trigger or a full heap).
    requested: AtomicBool,
    /// Threads waiting for a cycle whatever the trigger says (a full heap, an explicit collect).
    wanted: AtomicUsize,
    /// The collector thread sleeps here between cycles.
    wake: (Mutex<()>, Condvar),
    /// Set once every mutator is done: the collector thread leaves.
    quit: AtomicBool,
    gc_ns: AtomicU64,
    cycles: AtomicU64,
    verifier_misses: AtomicUsize,
    /// Every stop-the-world pause of every cycle (mark setup, the longest termination attempt).
    pauses: Mutex<Vec<u64>>,
    abort: AtomicBool,
    /// Heap in use at which the next cycle starts if the pacer's trigger has not come first
    /// (module docs).
    start_at: AtomicUsize,
    /// The reserve `start_at` leaves below the heap size.
    reserve: AtomicUsize,
    /// The scan work this cycle's mark is expected to do, in objects (the last cycle's; see
    /// `assist_budget_now`).
    expected_scan: AtomicU64,
    /// The most it can be: every object in use when the cycle started.
    worst_scan: AtomicU64,
    /// [`Shared::scanned_objects`] when the cycle started.
    scanned_at_start: AtomicU64,
    /// Objects the last cycle scanned (marked, less those allocated black); 0 before the first.
    last_scanned: AtomicU64,
}

impl<'w> Shared<'w> {
    /// Nothing collected yet, no thread aborted.
    fn new(world: &'w World) -> Self {
        let size = world.collector().heap.size();
        Shared {
            world,
            requested: AtomicBool::new(false),
            wanted: AtomicUsize::new(0),
            wake: (Mutex::new(()), Condvar::new()),
            quit: AtomicBool::new(false),
            gc_ns: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            verifier_misses: AtomicUsize::new(0),
            pauses: Mutex::new(Vec::new()),
            abort: AtomicBool::new(false),
            start_at: AtomicUsize::new(size - initial_reserve(size)),
            reserve: AtomicUsize::new(initial_reserve(size)),
            expected_scan: AtomicU64::new(0),
            worst_scan: AtomicU64::new(0),
            scanned_at_start: AtomicU64::new(0),
            last_scanned: AtomicU64::new(0),
        }
    }

    /// Set the start point from the collector's trigger and the heap limit (module docs). The
    /// reserve shrinks by at most a quarter per cycle, so that one cycle that allocated little
    /// (it waited for a full heap, say) does not leave the next one too little room.
    fn pace(&self, allocated_during_cycle: usize) {
        let c = self.world.collector();
        let size = c.heap.size();
        // Ordering: Relaxed throughout; only the collector thread writes these, and a value a
        // moment stale moves a cycle or an assist by a few allocations.
        let reserve = reserve(self.reserve.load(Ordering::Relaxed), allocated_during_cycle, size);
        self.reserve.store(reserve, Ordering::Relaxed);
        self.start_at.store(size - reserve, Ordering::Relaxed);
    }

    /// Note what the assists of the cycle about to start are paced from (module docs): the scan
    /// work expected (the objects the last cycle scanned, or, before the first, all objects in
    /// use), the worst case (all objects in use) and the scan count so far. `scanned` is
    /// [`Shared::scanned_objects`] now.
    fn start_assists(&self, scanned: u64) {
        let in_use = (self.world.collector().heap.in_use() / node_bytes()) as u64;
        // Ordering: Relaxed, see `pace`.
        let expected = match self.last_scanned.load(Ordering::Relaxed) {
            0 => in_use,
            n => n,
        };
        self.expected_scan.store(expected, Ordering::Relaxed);
        self.worst_scan.store(in_use, Ordering::Relaxed);
        self.scanned_at_start.store(scanned, Ordering::Relaxed);
    }

    /// Grey objects a mutator scans now, every [`ASSIST_EVERY`] allocations during the mark, as
    /// Go's `gcControllerState.revise` paces assists: the scan work still to do over the room
    /// still left. The work is the expected total less what is done, and once the mark has done
    /// more than expected (the heap grew live since the last cycle: the first cycles of
    /// GCBench's stretch tree), the worst case instead (everything that was in use at the
    /// start), so that a mark that outgrows its estimate speeds up its assists rather than let
    /// the mutators fill the heap.
    fn assist_budget_now(&self) -> usize {
        let c = self.world.collector();
        // Ordering: Relaxed, see `pace`.
        let done = self.scanned_objects().saturating_sub(self.scanned_at_start.load(Ordering::Relaxed));
        let left = scan_left(done, self.expected_scan.load(Ordering::Relaxed), self.worst_scan.load(Ordering::Relaxed));
        let room = c.heap.size().saturating_sub(c.heap.in_use()) / node_bytes();
        assist_budget(left as usize, room)
    }

    /// Objects marked so far less those allocated black, all cores.
    fn scanned_objects(&self) -> u64 {
        self.world.cores().iter().map(|c| c.stats().shaded.get() - c.stats().allocs_black.get()).sum()
    }

    /// Whether the heap in use has reached the start point.
    #[inline]
    fn should_collect(&self) -> bool {
        let c = self.world.collector();
        // The pacer's trigger (`gc::pacer`, on its own measure of the heap), or the heap limit
        // less the reserve. Ordering: Relaxed; see `pace`.
        c.should_collect() || c.heap.in_use() >= self.start_at.load(Ordering::Relaxed)
    }

    /// Objects allocated so far, all cores.
    fn allocs(&self) -> u64 {
        self.world.cores().iter().map(|c| c.stats().allocs.get()).sum()
    }

    /// Run `f` with the collector thread running on core `core` (not a mutator's core), then stop
    /// it (pinned to CPU `cpu`, if given; `pin_failed` is set if the OS refused).
    fn with_collector<R: Send>(
        &self,
        core: usize,
        cpu: Option<usize>,
        pin_failed: &AtomicBool,
        f: impl FnOnce() -> R + Send,
    ) -> R {
        std::thread::scope(|scope| {
            let collector = scope.spawn(move || {
                pin_or_report(cpu, pin_failed);
                self.world.run_on(core, || self.collector_main())
            });
            /// Stops the collector thread even if `f` panics (or the scope would never end).
            struct Quit<'a, 'w>(&'a Shared<'w>);
            impl Drop for Quit<'_, '_> {
                fn drop(&mut self) {
                    // Ordering: Relaxed; `kick` takes the wake lock, which orders it.
                    self.0.quit.store(true, Ordering::Relaxed);
                    self.0.notify();
                }
            }
            let quit = Quit(self);
            let r = f();
            drop(quit);
            collector.join().expect("the collector thread panicked");
            r
        })
    }

    /// The collector thread: sleep until asked, run a cycle if the heap needs one, repeat.
    fn collector_main(&self) {
        let c = self.world.collector();
        loop {
            {
                let (lock, cv) = &self.wake;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                // Ordering: Relaxed under the lock the kickers take before notifying.
                while !self.requested.load(Ordering::Relaxed) && !self.quit.load(Ordering::Relaxed) {
                    g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            }
            if self.quit.load(Ordering::Relaxed) {
                return;
            }
            // Cleared before looking at the heap: a trigger that comes after this look asks again.
            // Ordering: SeqCst, so the clear is ordered before the loads below and against a
            // kicker's swap (a kick either sees the clear and notifies, or lands before it and
            // is served by this look).
            self.requested.store(false, Ordering::SeqCst);
            // A request made during the previous cycle is stale once its sweep has updated the
            // heap; look again.
            if !self.should_collect() && self.wanted.load(Ordering::SeqCst) == 0 {
                continue;
            }
            let t = Instant::now();
            let allocs = self.allocs();
            let scanned = self.scanned_objects();
            self.start_assists(scanned);
            let report = c.collect::<P>();
            // Ordering: Relaxed, see `pace`.
            self.last_scanned.store(self.scanned_objects() - scanned, Ordering::Relaxed);
            // GCBench allocates nodes (and one array): what the mutators allocated meanwhile.
            self.pace((self.allocs() - allocs) as usize * node_bytes());
            // Ordering: Relaxed; totals read after every thread joined.
            self.gc_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            // Ordering: Release; a waiter for a whole cycle (`Until::Cycle`) Acquire-loads it and
            // then sees everything this thread did for the cycle.
            self.cycles.fetch_add(1, Ordering::Release);
            self.verifier_misses.fetch_add(report.verifier_misses, Ordering::Relaxed);
            self.pauses.lock().unwrap().extend(report.pause_ns.iter().copied().filter(|&p| p > 0));
        }
    }

    /// Ask the collector thread for a cycle (it runs one if the heap still needs it).
    #[inline]
    fn kick(&self) {
        // Ordering: Relaxed look first, so that a thread allocating past the trigger during a cycle
        // does one RMW, not one per allocation. A stale `true` is harmless: the collector clears
        // the flag before it looks at the heap, and the heap only grows until it does.
        if !self.requested.load(Ordering::Relaxed) {
            self.notify();
        }
    }

    #[cold]
    fn notify(&self) {
        // Ordering: SeqCst, see `collector_main`.
        self.requested.store(true, Ordering::SeqCst);
        let (lock, cv) = &self.wake;
        drop(lock.lock().unwrap_or_else(|e| e.into_inner()));
        cv.notify_one();
    }

    /// Have the collector run a cycle, and wait (parked: stops proceed) until a cycle completes.
    #[cfg(test)]
    fn wait_for_cycle(&self, m: &Mutator<'_>) {
        self.help_until(m, Until::Cycle, || 0);
    }

    /// Have the collector run a cycle and wait (parked: stops proceed) until its mark (`Until::Mark`)
    /// or the whole cycle has completed; while the cycle marks, `assist` first: scan its grey
    /// objects (safe points between steps), and park only when there are none, for at most
    /// [`HELP_WAIT`] before looking again. Parked, it spins: a sleeping thread's wake-up on this
    /// machine kind takes up to hundreds of microseconds, more than the rest of a typical wait.
    /// Returns the objects `assist` scanned.
    fn help_until(&self, m: &Mutator<'_>, until: Until, mut assist: impl FnMut() -> usize) -> u64 {
        let c = self.world.collector();
        let count = || match until {
            Until::Mark => c.stats.marks.get(),
            // The collector thread's count, bumped once it is done with the cycle.
            #[cfg(test)]
            Until::Cycle => self.cycles.load(Ordering::Acquire),
        };
        let seen = count();
        // Ordering: SeqCst, see `collector_main`'s look at `wanted`.
        self.wanted.fetch_add(1, Ordering::SeqCst);
        self.kick();
        let mut assisted = 0;
        loop {
            m.safe_point();
            let n = assist();
            assisted += n as u64;
            if n > 0 {
                continue;
            }
            let done = m.park_while(|| {
                let until = Instant::now() + HELP_WAIT;
                let mut spins = 0u32;
                loop {
                    if count() != seen {
                        return true;
                    }
                    spins += 1;
                    if spins.is_multiple_of(crate::host::SPINS_PER_LOOK) && Instant::now() >= until {
                        // The CPU to whoever else wants it (the collector thread, where the
                        // threads outnumber the CPUs); when pinned, nothing, and this returns.
                        std::thread::yield_now();
                        return false;
                    }
                    core::hint::spin_loop();
                }
            });
            if done {
                break;
            }
        }
        self.wanted.fetch_sub(1, Ordering::SeqCst);
        assisted
    }

    fn aborted(&self) -> bool {
        // Ordering: Relaxed; a late look only means a few more trees are built.
        self.abort.load(Ordering::Relaxed)
    }
}

/// The reserve before any cycle has measured what the mutators allocate while one runs: a
/// quarter of the heap `size`. The floor (a sixteenth) is too little for GCBench's first cycles,
/// which start with the heap nearly full of the stretch tree: the mutator filled the rest before
/// the collector thread had even woken up (up to 3 ms on this machine kind) and waited for the
/// whole cycle. It shrinks by a quarter per cycle towards what the cycles measure.
fn initial_reserve(size: usize) -> usize {
    size / 4
}

/// The reserve below the heap size at which cycles start: 2.5 times what was allocated during the
/// last cycle, shrinking by at most a quarter of the `previous` reserve per cycle, between a
/// sixteenth and a half of the heap `size`. The margin over what one cycle allocated covers a
/// cycle that runs slower than the last: on this machine kind a thread loses its CPU for up to
/// 4 ms several times a second (`cargo xtask compare` measures it). 20 runs of the full size at
/// 35 MiB each way: at 1.5 times, 4 runs had the mutator wait 2.4-7.2 ms for a full heap; at 2.5,
/// none did, for 40 cycles instead of 33.
fn reserve(previous: usize, allocated_during_cycle: usize, size: usize) -> usize {
    (allocated_during_cycle * 5 / 2).max(previous * 3 / 4).clamp(size / 16, size / 2)
}

/// The scan work a mark has left, in objects, after `done` of an `expected` total: the rest of
/// the estimate, or once the mark has outgrown it, of the `worst` case (at least one more object:
/// a mark past both still has work until it terminates).
fn scan_left(done: u64, expected: u64, worst: u64) -> u64 {
    if done < expected {
        expected - done
    } else {
        worst.saturating_sub(done).max(1)
    }
}

/// Grey objects to scan per [`ASSIST_EVERY`] allocations so that the mutators alone scan `scanned`
/// objects by the time they have allocated a quarter of the `room` (objects that still fit).
/// Everything allocated during a mark survives the cycle, so a mark that lets the mutators fill
/// the room leaves the next cycle a full heap.
fn assist_budget(scanned: usize, room: usize) -> usize {
    (scanned * ASSIST_EVERY as usize).div_ceil((room / 4).max(1)).clamp(1, 4096)
}

/// Root slot of the long-lived tree.
const LONG_LIVED: usize = 0;
/// Root slot of the long-lived array.
const ARRAY: usize = 1;
/// Root slot of the top-down tree being built.
const TEMP: usize = 2;
/// First slot of the shadow stack.
const STACK_BASE: usize = 3;

/// One benchmark thread: its mutator (root slots), the shadow-stack pointer and what it measured.
struct Bench<'s, 'w> {
    shared: &'s Shared<'w>,
    c: &'w Collector,
    m: Mutator<'w>,
    sp: usize,
    /// Objects this thread scanned in mark assists.
    assisted: u64,
    /// Allocations past the start point since the last assist.
    since_assist: u32,
    /// The longest assist.
    assist_max: Duration,
    /// The shape being run (for the iteration counts of the depths' timings).
    shape: Shape,
    /// When the last milestone (or the start) was passed.
    lap: Instant,
    stretch: Duration,
    long_lived: Duration,
    depths: Vec<DepthTiming>,
    /// When every tree was built, and the process's CPU time then.
    done: Option<(Instant, Option<Duration>)>,
}

impl<'s, 'w> Bench<'s, 'w> {
    /// Attach the calling thread (inside `World::run_on`) with root slots for `shape`'s trees.
    fn new(shared: &'s Shared<'w>, shape: Shape) -> Self {
        let depth = shape.stretch_depth.max(shape.max_depth).max(shape.long_lived_depth);
        // `make_tree(d)` holds two subtrees per unfinished level: 2 * d slots.
        let m = shared.world.mutator(STACK_BASE + 2 * depth as usize);
        Bench {
            shared,
            c: shared.world.collector(),
            m,
            sp: STACK_BASE,
            assisted: 0,
            since_assist: 0,
            assist_max: Duration::ZERO,
            shape,
            lap: Instant::now(),
            stretch: Duration::ZERO,
            long_lived: Duration::ZERO,
            depths: Vec::new(),
            done: None,
        }
    }

    /// The heap is full: have the collector complete a cycle, scanning its grey objects while it
    /// marks rather than waiting, and retry ([`crate::Collector::alloc_when_full`]). All of it is
    /// one interval this mutator was blocked, assists included. (Safe points between the steps let
    /// the mark's stops happen; the rooting rule holds, since this is the start of an allocation.)
    #[cold]
    #[inline(never)]
    fn alloc_full_heap<T: Trace>(&mut self) -> Result<Gc<T>, AllocError> {
        let (shared, m, c) = (self.shared, &self.m, self.c);
        let mut assisted = 0;
        let r = m.blocked_interval(|| {
            c.alloc_when_full::<P, T>(|| {
                assisted += shared.help_until(m, Until::Mark, || c.mark_assist::<P>(FULL_HEAP_ASSIST));
            })
        });
        self.assisted += assisted;
        r
    }
}

/// The host's rooting (module docs): root slots, and the shadow stack above them.
impl Rooting for Bench<'_, '_> {
    type P = P;

    fn collector(&self) -> &Collector {
        self.c
    }

    /// Allocate a zeroed `T`: safe point, trigger check, allocation. The caller keeps the rooting
    /// rule (module docs): everything it still needs is reachable from its root slots.
    #[inline(always)]
    fn alloc<T: Trace>(&mut self) -> Result<Gc<T>, AllocError> {
        self.m.safe_point();
        // A cycle runs only past the start point, so outside cycles this is the only check.
        if self.shared.should_collect() {
            self.shared.kick();
            self.since_assist += 1;
            if self.since_assist >= ASSIST_EVERY {
                self.since_assist = 0;
                if self.c.phase() == crate::Phase::Mark {
                    let budget = self.shared.assist_budget_now();
                    let t = Instant::now();
                    self.assisted += self.c.mark_assist::<P>(budget) as u64;
                    self.assist_max = self.assist_max.max(t.elapsed());
                }
            }
        }
        match self.c.alloc::<P, T>() {
            Ok(object) => Ok(object),
            Err(_) => self.alloc_full_heap(),
        }
    }

    fn safe_point(&mut self) {
        self.m.safe_point();
    }

    fn push(&mut self, node: Gc<Node>) {
        assert!(self.sp < self.m.len(), "gcbench: shadow stack overflow");
        self.m.set_root(self.sp, node.addr());
        self.sp += 1;
    }

    fn pop(&mut self) {
        self.sp -= 1;
        // Cleared, so the conservative scan does not keep the dropped subtree alive.
        self.m.set_root(self.sp, 0);
    }

    fn root_long_lived(&mut self, node: Gc<Node>) {
        self.m.set_root(LONG_LIVED, node.addr());
    }

    fn root_temp(&mut self, node: Option<Gc<Node>>) {
        self.m.set_root(TEMP, node.map_or(0, |n| n.addr()));
    }

    fn stopping(&self) -> bool {
        self.shared.aborted()
    }

    fn reached(&mut self, milestone: Milestone) {
        let now = Instant::now();
        let lap = now - core::mem::replace(&mut self.lap, now);
        match milestone {
            Milestone::Stretched => self.stretch = lap,
            Milestone::LongLived => self.long_lived = lap,
            Milestone::TopDown(depth) => self.depths.push(DepthTiming {
                depth,
                iters: self.shape.num_iters(depth),
                top_down: lap,
                bottom_up: Duration::ZERO,
            }),
            Milestone::BottomUp(_) => {
                if let Some(d) = self.depths.last_mut() {
                    d.bottom_up = lap;
                }
            }
            Milestone::Built => self.done = Some((now, process_cpu_time())),
        }
    }
}

impl<const N: usize> RootArray<N> for Bench<'_, '_> {
    fn root_array(&mut self, array: Gc<DoubleArray<N>>) {
        self.m.set_root(ARRAY, array.addr());
    }
}

/// One thread's results.
struct ThreadOutcome {
    blocked: Blocked,
    assisted: u64,
    assist_max: Duration,
    stretch: Duration,
    long_lived: Duration,
    depths: Vec<DepthTiming>,
    done: Instant,
    /// The process's CPU time when this thread was done.
    cpu_done: Option<Duration>,
    verified_nodes: u64,
}

/// The whole benchmark on one thread (a core of the world, inside `run_on`).
fn thread_main<const N: usize>(shared: &Shared<'_>, s: Shape) -> Result<ThreadOutcome, Stop> {
    let mut b = Bench::new(shared, s);
    let done = workload::run::<N, _>(&mut b, &s).map_err(|f| match f {
        Failure::OutOfMemory(why) | Failure::Corrupt(why) => Stop::Failed(why),
        Failure::Stopped => Stop::Aborted,
    })?;
    // The handles must still be the ones in the root slots.
    if b.m.root(LONG_LIVED) != done.long_lived.addr() || b.m.root(ARRAY) != done.array.addr() {
        return Err(Stop::Failed("a long-lived root slot changed".into()));
    }
    if b.sp != STACK_BASE {
        return Err(Stop::Failed(format!("shadow stack unbalanced: {} slots in use", b.sp - STACK_BASE)));
    }
    let (finished, cpu_done) = b.done.expect("a run that completes passes Milestone::Built");
    Ok(ThreadOutcome {
        blocked: b.m.blocked(),
        assisted: b.assisted,
        assist_max: b.assist_max,
        stretch: b.stretch,
        long_lived: b.long_lived,
        depths: b.depths,
        done: finished,
        cpu_done,
        verified_nodes: done.verified_nodes,
    })
}

/// Run the benchmark. `Err` names what failed: out of memory (with the heap state), corruption,
/// verifier misses, checked-mode reports.
pub fn run(p: &Params) -> Result<Report, String> {
    // The array length is part of its type (descriptor sizes are constants).
    match p.size {
        Size::Full => run_sized::<{ Size::Full.shape().array_len }>(p),
        Size::Quick => run_sized::<{ Size::Quick.shape().array_len }>(p),
        Size::Tiny => run_sized::<{ Size::Tiny.shape().array_len }>(p),
    }
}

fn run_sized<const N: usize>(p: &Params) -> Result<Report, String> {
    let shape = p.size.shape();
    assert_eq!(shape.array_len, N);
    if p.threads == 0 {
        return Err("no threads".into());
    }
    if p.percent == PERCENT_OFF && p.heap_bytes.is_none() {
        return Err("--percent off needs --heap (no GOGC to size the heap from)".into());
    }
    let heap_bytes = p.heap_bytes();
    let config = Config { percent: p.percent, heap_minimum: p.heap_minimum, verify: p.verify, ..Config::default() };
    // Cores 0..threads are the mutators, the last one the collector thread.
    let world = World::new(p.threads + 1, heap_bytes, config, p.mode);
    world.collector().heap.set_poison(p.poison);
    let shared = Shared::new(&world);
    let pinned: Vec<usize> = match allowed_cpus() {
        cpus if p.pin && cpus.len() > p.threads => cpus[..=p.threads].to_vec(),
        _ => Vec::new(),
    };
    let pins = &pinned;
    let pin_failed = &AtomicBool::new(false);
    let start = Instant::now();
    let cpu_start = process_cpu_time();
    let collector_cpu = pins.get(p.threads).copied();
    let outcomes: Vec<Result<ThreadOutcome, Stop>> =
        shared.with_collector(p.threads, collector_cpu, pin_failed, || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..p.threads)
                    .map(|t| {
                        let shared = &shared;
                        scope.spawn(move || {
                            pin_or_report(pins.get(t).copied(), pin_failed);
                            let r = shared.world.run_on(t, || thread_main::<N>(shared, shape));
                            if r.is_err() {
                                // Ordering: Relaxed; the others only need to see it eventually.
                                shared.abort.store(true, Ordering::Relaxed);
                            }
                            r
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(Stop::Failed("a benchmark thread panicked".into()))))
                    .collect()
            })
        });

    let mut threads = Vec::new();
    let mut aborted = false;
    for (t, o) in outcomes.into_iter().enumerate() {
        match o {
            Ok(o) => threads.push(o),
            Err(Stop::Failed(why)) => return Err(format!("thread {t}: {why}")),
            Err(Stop::Aborted) => aborted = true,
        }
    }
    if aborted {
        return Err("a thread stopped early without saying why".into());
    }
    let stats = world.run_on(0, || world.collector().stats::<P>());
    // Ordering: Relaxed; every thread has joined.
    let misses = shared.verifier_misses.load(Ordering::Relaxed);
    if misses > 0 || stats.verifier_misses > 0 {
        return Err(format!("the verifier found {misses} reachable objects the mark missed"));
    }
    let reports = crate::take_checked_reports::<P>();
    if !reports.is_empty() {
        return Err(format!("{} checked-mode reports, first: {:?}", reports.len(), reports[0]));
    }

    let slowest = |f: &dyn Fn(&ThreadOutcome) -> Duration| threads.iter().map(f).max().unwrap_or_default();
    let depths = shape
        .depths()
        .enumerate()
        .map(|(k, depth)| DepthTiming {
            depth,
            iters: shape.num_iters(depth),
            top_down: slowest(&|o| o.depths[k].top_down),
            bottom_up: slowest(&|o| o.depths[k].bottom_up),
        })
        .collect();
    let per_thread: Vec<Duration> = threads.iter().map(|o| o.done - start).collect();
    let last = threads.iter().max_by_key(|o| o.done).expect("at least one thread");
    let cpu = last.cpu_done.zip(cpu_start).map(|(end, start)| end.saturating_sub(start));
    let blocked = threads.iter().fold(Blocked::default(), |a, o| Blocked {
        max: a.max.max(o.blocked.max),
        max_stop: a.max_stop.max(o.blocked.max_stop),
        total: a.total + o.blocked.total,
        count: a.count + o.blocked.count,
    });
    let mut pauses = core::mem::take(&mut *shared.pauses.lock().unwrap());
    pauses.sort_unstable();
    let (mut shaded, mut black) = (0, 0);
    for core in world.cores() {
        shaded += core.stats().shaded.get();
        black += core.stats().allocs_black.get();
    }
    Ok(Report {
        params: *p,
        heap_bytes,
        total: per_thread.iter().copied().max().unwrap_or_default(),
        cpu,
        blocked,
        pause_p99: Duration::from_nanos(quantile(&pauses, 0.99)),
        peak_heap: world.collector().heap.peak_bytes(),
        peak_rss: peak_rss_bytes(),
        marked_objects: shaded - black,
        spans_swept: world.collector().heap.spans_swept(),
        assisted_objects: threads.iter().map(|o| o.assisted).sum(),
        assist_max: threads.iter().map(|o| o.assist_max).max().unwrap_or_default(),
        // Ordering: Relaxed; every thread has joined.
        pinned: if pin_failed.load(Ordering::Relaxed) { Vec::new() } else { pinned },
        gc: Duration::from_nanos(shared.gc_ns.load(Ordering::Relaxed)),
        cycles: shared.cycles.load(Ordering::Relaxed),
        stats,
        stretch: slowest(&|o| o.stretch),
        long_lived: slowest(&|o| o.long_lived),
        depths,
        per_thread,
        verified_nodes: threads.iter().map(|o| o.verified_nodes).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::HEAP_PAGE_SIZE;
    use crate::workload::gcbench::{array_value, make_tree, tree_size, verify_array, verify_tree};

    fn tiny(threads: usize, mode: BarrierMode) -> Params {
        // A small heap minimum so that cycles are triggered, and a heap (12 pages a thread) smaller
        // than the ~230 KiB any one thread allocates: each thread needs cycles while it runs,
        // however late the collector thread gets a CPU and however the threads overlap, so each is
        // blocked (parked for a stop, or waiting for a full heap) at least once.
        Params {
            threads,
            mode,
            heap_minimum: 16 * 1024,
            verify: true,
            heap_bytes: Some(threads * 12 * HEAP_PAGE_SIZE),
            // Pinned threads cannot move off a CPU the rest of the test suite loads.
            pin: false,
            ..Params::new(Size::Tiny)
        }
    }

    #[test]
    fn boehms_iteration_counts() {
        let full = Size::Full.shape();
        assert_eq!(full.num_iters(4), 33824);
        assert_eq!(full.num_iters(16), 8);
        assert_eq!(full.depths().collect::<Vec<_>>(), [4, 6, 8, 10, 12, 14, 16]);
        assert_eq!(Size::Quick.shape().depths().last(), Some(10));
        assert_eq!(node_bytes(), 48);
    }

    #[test]
    fn tiny_gcbench_collects_and_verifies() {
        let (mut blocked, mut marked) = (false, false);
        for (threads, mode) in [(2, BarrierMode::Buffered), (2, BarrierMode::Direct), (1, BarrierMode::Off)] {
            let p = tiny(threads, mode);
            // A heap this small is only just enough: on a loaded host (the whole test suite on two
            // CPUs) the collector thread can get so little CPU that a thread's allocation sees two
            // cycles end with the heap still full of what was allocated black meanwhile, and gives
            // up (2 of 12 runs at load 14). That is the heap's sizing, not what this test checks:
            // then once more with a third more heap.
            let roomier = Params { heap_bytes: p.heap_bytes.map(|b| b * 4 / 3), ..p };
            let r = run(&p).or_else(|_| run(&roomier)).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
            let s = Size::Tiny.shape();
            assert!(r.cycles >= 1, "{mode:?}: no collection ran: the benchmark tests nothing");
            assert_eq!(r.stats.cycles, r.cycles, "every cycle is the benchmark's");
            assert_eq!(r.stats.allocs, threads as u64 * s.allocs_per_thread(), "{mode:?}");
            assert_eq!(r.verified_nodes, threads as u64 * tree_size(s.long_lived_depth));
            assert!(r.gc > Duration::ZERO);
            assert!(r.stats.pause_max_ns > 0);
            // Blocked intervals are measured (a starved collector thread may run a mode's cycles
            // only once its mutators are done, so this is asked of the three runs together).
            blocked = blocked || (r.blocked.count >= 1 && r.blocked.max > Duration::ZERO);
            assert!(r.peak_heap > 0 && r.peak_heap <= r.heap_bytes);
            assert!(r.spans_swept > 0, "{mode:?}: cycles ran, but no span was swept");
            // Marked objects are counted: asked of the three runs together too, since on a loaded
            // host the threads may run one after the other and a cycle fall between them, when
            // nothing is rooted (seen at load 5: all of one run's cycles marked nothing).
            marked = marked || r.marked_objects > 0;
            assert_eq!(r.depths.len(), 2);
            let line = r.bench_line();
            assert!(line.starts_with(&format!("BENCH host-gcbench threads={threads} size=tiny mode={}", mode.name())));
            assert!(line.contains(&format!(" cycles={} ", r.cycles)), "{line}");
            assert!(r.summary().contains("Creating 32 trees of depth 4"), "{}", r.summary());
        }
        assert!(blocked, "no run measured a blocked interval");
        assert!(marked, "no run counted a marked object");
    }

    #[test]
    fn a_heap_too_small_is_an_out_of_memory_error() {
        let p = Params { heap_bytes: Some(2 * HEAP_PAGE_SIZE), ..tiny(1, BarrierMode::Buffered) };
        let e = run(&p).expect_err("2 pages cannot hold the stretch tree's 511 nodes");
        assert!(e.contains("stretch tree") && e.contains("out of memory"), "{e}");
    }

    #[test]
    fn verification_catches_corrupt_trees_and_arrays() {
        let world = World::new(2, 64 * HEAP_PAGE_SIZE, Config::default(), BarrierMode::Buffered);
        let shared = Shared::new(&world);
        shared.with_collector(1, None, &AtomicBool::new(false), || {
            world.run_on(0, || {
                let mut b = Bench::new(&shared, Shape { stretch_depth: 4, max_depth: 4, long_lived_depth: 4, ..BOEHM });
                let root = make_tree(&mut b, 4).unwrap();
                b.m.set_root(TEMP, root.addr());
                assert_eq!(verify_tree(&mut b, root, 4), Ok(tree_size(4)));
                assert!(verify_tree(&mut b, root, 5).is_err(), "wrong depth");
                let leaf = root.left.get().unwrap().right.get().unwrap().left.get().unwrap().left.get().unwrap();
                leaf.j.store(0, Ordering::Relaxed);
                assert!(verify_tree(&mut b, root, 4).unwrap_err().contains("payload"));
                leaf.set_payload(0);
                // A collection with the tree rooted keeps it; a cut subtree makes the count wrong.
                shared.wait_for_cycle(&b.m);
                assert_eq!(shared.cycles.load(Ordering::Relaxed), 1, "the collector thread ran the cycle");
                assert_eq!(verify_tree(&mut b, root, 4), Ok(tree_size(4)));
                let inner = root.right.get().unwrap();
                inner.left.set::<P>(None);
                assert!(verify_tree(&mut b, root, 4).unwrap_err().contains("lacks its left child"));
                // A pointer to something that is not a node.
                let array = b.alloc::<DoubleArray<1000>>().unwrap();
                inner.left.as_atomic().store(array.addr(), Ordering::Relaxed);
                assert!(verify_tree(&mut b, root, 4).unwrap_err().contains("is not a node"));
                inner.left.as_atomic().store(0, Ordering::Relaxed);

                for (i, e) in array.data.iter().enumerate() {
                    e.store(array_value(i, 1000), Ordering::Relaxed);
                }
                assert_eq!(verify_array(&array.data), Ok(()));
                array.data[250].store(0, Ordering::Relaxed);
                assert!(verify_array(&array.data).unwrap_err().contains("array[250] = 0, expected 0.004"));
                array.data[250].store(array_value(250, 1000), Ordering::Relaxed);
                array.data[999].store(1, Ordering::Relaxed);
                assert!(verify_array(&array.data).unwrap_err().contains("array[999]"));
                b.m.set_root(TEMP, 0);
            })
        });
    }

    #[test]
    fn pacing_reserve_and_assist_budget() {
        let size = 64 * MIB;
        assert_eq!(reserve(0, 0, size), size / 16, "floor");
        assert_eq!(reserve(0, 8 * MIB, size), 20 * MIB, "2.5x the allocation during the last cycle");
        assert_eq!(reserve(12 * MIB, 0, size), 9 * MIB, "shrinks by a quarter at most");
        assert_eq!(reserve(0, 20 * MIB, size), size / 2, "ceiling");
        // 100 000 objects to scan, 400 000 fit: the mutators alone finish within 100 000
        // allocations, one scanned per allocation.
        assert_eq!(assist_budget(100_000, 400_000), ASSIST_EVERY as usize);
        assert_eq!(assist_budget(1, 1_000_000), 1, "at least one");
        assert_eq!(assist_budget(1_000_000, 0), 4096, "a full heap: as much as one step may");
        // Revised as the mark goes (Go's revise): the estimate less what is done, then the worst
        // case once the estimate is outgrown (the stretch tree's cycles), never nothing.
        assert_eq!(scan_left(0, 1_000, 50_000), 1_000);
        assert_eq!(scan_left(400, 1_000, 50_000), 600);
        assert_eq!(scan_left(1_000, 1_000, 50_000), 49_000, "outgrown: the worst case");
        assert_eq!(scan_left(60_000, 1_000, 50_000), 1, "past the worst case: still some");
        assert_eq!(initial_reserve(64 * MIB), 16 * MIB);
    }

    #[test]
    fn heap_sizing() {
        let e = run(&Params { percent: PERCENT_OFF, ..Params::new(Size::Tiny) }).unwrap_err();
        assert!(e.contains("--percent off needs --heap"), "{e}");
        let full1 = default_heap_bytes(Size::Full, 1, 100);
        assert!(full1.is_multiple_of(MIB));
        assert!(full1 >= 3 * tree_size(18) as usize * 48, "room for a stretch tree at GOGC 100");
        assert!(default_heap_bytes(Size::Full, 2, 100) > full1);
    }
}
