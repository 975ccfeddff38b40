//! Timing and counters for the `[VIRTIO PERF]` lines: the kernel supplies a [`Clock`], the
//! driver records per command and per frame, and a [`PerfSnapshot`] carries it all out.

use core::fmt;

use crate::queue::QueueStats;

/// A monotonic clock in nanoseconds, supplied by the kernel (the generic timer; under
/// `-icount shift=0` one tick is one instruction).
pub trait Clock {
    /// Nanoseconds since some fixed point.
    fn now_ns(&self) -> u64;
}

/// A clock that always reads 0, when timing is not wanted.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClock;

impl Clock for NoClock {
    fn now_ns(&self) -> u64 {
        0
    }
}

/// Totals for one kind of command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Commands completed (successfully or with an error response).
    pub count: u64,
    /// Commands that failed (error response, timeout, protocol error).
    pub errors: u64,
    /// Sum of submit-to-completion times.
    pub total_ns: u64,
    /// Longest submit-to-completion time.
    pub max_ns: u64,
    /// Empty polls spent waiting.
    pub spins: u64,
}

impl CommandStats {
    pub(crate) fn record(&mut self, ns: u64, spins: u64, ok: bool) {
        self.count += 1;
        self.errors += u64::from(!ok);
        self.total_ns += ns;
        self.max_ns = self.max_ns.max(ns);
        self.spins += spins;
    }

    /// Mean time per command.
    pub fn mean_ns(&self) -> u64 {
        self.total_ns.checked_div(self.count).unwrap_or(0)
    }

    fn since(&self, earlier: &CommandStats) -> CommandStats {
        CommandStats {
            count: self.count - earlier.count,
            errors: self.errors - earlier.errors,
            total_ns: self.total_ns - earlier.total_ns,
            max_ns: self.max_ns,
            spins: self.spins - earlier.spins,
        }
    }
}

/// Number of command kinds tracked in [`PerfSnapshot::by_command`].
pub const COMMAND_KINDS: usize = 6;

/// Names of the command kinds, in [`PerfSnapshot::by_command`] order.
pub const COMMAND_NAMES: [&str; COMMAND_KINDS] =
    ["display_info", "create_2d", "attach_backing", "set_scanout", "transfer_2d", "flush"];

/// Everything measured so far on one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfSnapshot {
    /// The control queue's counters (fences, spins, timeouts, notifications).
    pub queue: QueueStats,
    /// All commands together.
    pub commands: CommandStats,
    /// Per command kind, indexed as [`COMMAND_NAMES`].
    pub by_command: [CommandStats; COMMAND_KINDS],
    /// Frames presented (transfer + flush pairs).
    pub frames: u64,
    /// Sum of frame times.
    pub frame_ns_total: u64,
    /// Longest frame.
    pub frame_ns_max: u64,
}

impl PerfSnapshot {
    /// What happened between `earlier` and `self` (max fields keep the later value).
    pub fn since(&self, earlier: &PerfSnapshot) -> PerfSnapshot {
        let mut by_command = self.by_command;
        for (now, then) in by_command.iter_mut().zip(&earlier.by_command) {
            *now = now.since(then);
        }
        PerfSnapshot {
            queue: self.queue.since(&earlier.queue),
            commands: self.commands.since(&earlier.commands),
            by_command,
            frames: self.frames - earlier.frames,
            frame_ns_total: self.frame_ns_total - earlier.frame_ns_total,
            frame_ns_max: self.frame_ns_max,
        }
    }

    /// Barriers per frame (all kinds), in hundredths to stay in integers.
    pub fn fences_per_frame_x100(&self) -> u64 {
        (self.queue.fences.total() * 100).checked_div(self.frames).unwrap_or(0)
    }

    /// Empty polls per command, in hundredths.
    pub fn spins_per_command_x100(&self) -> u64 {
        (self.commands.spins * 100).checked_div(self.commands.count).unwrap_or(0)
    }

    /// Mean frame time.
    pub fn mean_frame_ns(&self) -> u64 {
        self.frame_ns_total.checked_div(self.frames).unwrap_or(0)
    }
}

/// One machine-readable line (without the `[VIRTIO PERF]` tag, which the kernel adds).
impl fmt::Display for PerfSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x100 = |v: u64| (v / 100, v % 100);
        let (fpf, fpf_frac) = x100(self.fences_per_frame_x100());
        let (spc, spc_frac) = x100(self.spins_per_command_x100());
        write!(
            f,
            "frames={} fences={} fences_per_frame={fpf}.{fpf_frac:02} commands={} errors={} \
             timeouts={} spins_per_cmd={spc}.{spc_frac:02} ns_per_cmd={} ns_per_cmd_max={} \
             ns_per_frame={} notify_sent={} notify_suppressed={}",
            self.frames,
            self.queue.fences.total(),
            self.commands.count,
            self.commands.errors,
            self.queue.timeouts,
            self.commands.mean_ns(),
            self.commands.max_ns,
            self.mean_frame_ns(),
            self.queue.notifications_sent,
            self.queue.notifications_suppressed,
        )
    }
}
