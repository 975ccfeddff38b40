//! The console's shell: a task on core 0 that takes bytes from the receive ring, edits the line
//! (`tricolor_kernel::shell::line`), and runs the command (`tricolor_kernel::shell::command`)
//! when Enter is pressed. A line that is not a command gets one line saying why, then the list.
//!
//! The shell never blocks: with no input it yields the core to the mutators and looks again at its
//! next turn (a few milliseconds under the demo's 2 ms quantum).

use super::rx::RING;
use crate::gc::{self, trace, Kernel};
use crate::{boot, demo, kprintln, tasks};
use tricolor_arch::{cpu, psci};
use tricolor_gc::{BarrierMode, Phase, Platform};
use tricolor_kernel::shell::command::{self, Command, ParseError, HELP};
use tricolor_kernel::shell::line::{Edit, LineEditor};

/// What the shell shows before each command.
pub const PROMPT: &str = "tricolor> ";
/// Longest command line kept.
const LINE_MAX: usize = 120;

/// Starts the shell task (pinned to core 0, beside the receive interrupt).
pub fn start() -> Result<(), &'static str> {
    let spawn = tasks::Spawn { name: "shell", stack_bytes: 32 * 1024, pinned: Some(0), growable_from: None };
    tasks::spawn(spawn, shell, 0).map(drop)
}

fn shell(_: usize) {
    let mut editor = LineEditor::<LINE_MAX>::new();
    super::prompt_show(PROMPT);
    loop {
        // SAFETY: this task is the ring's only consumer.
        let Some(byte) = (unsafe { RING.pop() }) else {
            tasks::yield_now();
            cpu::relax();
            continue;
        };
        match editor.feed(byte) {
            Edit::None => {}
            Edit::Append(c) => super::prompt_push(c),
            Edit::Erase => super::prompt_erase(1, PROMPT.len()),
            Edit::EraseLine(n) => super::prompt_erase(n, PROMPT.len()),
            Edit::Submit => {
                super::prompt_end();
                let parsed = match editor.overflow() {
                    0 => command::parse(editor.line()),
                    dropped => Err(ParseError::TooLong { kept: LINE_MAX, dropped }),
                };
                match parsed {
                    Ok(Some(command)) => execute(command),
                    Ok(None) => {}
                    Err(e) => {
                        kprintln!("error: {e}");
                        help();
                    }
                }
                super::prompt_show(PROMPT);
            }
        }
    }
}

fn help() {
    kprintln!("commands:");
    for (usage, about) in HELP {
        kprintln!("  {usage:<42} {about}");
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "idle",
        Phase::Mark => "mark",
        Phase::MarkTermination => "mark-termination",
        Phase::Sweep => "sweep",
    }
}

/// `stats`: one line of `key=value` words (xtask's console test reads it).
fn stats() {
    let c = gc::collector();
    let s = c.stats::<Kernel>();
    let (forced, paced) = trace::forced_and_paced();
    kprintln!(
        "stats: cycles={} paced={paced} forced={forced} mode={} phase={} workload={} heap_kib={}/{} goal_kib={} \
         live_kib={} pauses={} pause_max_us={} pause_mean_us={} barriers={} flushes={} allocs={} freed_kib={} \
         verify={} misses={} gctrace={} cores={} uptime_ms={}",
        s.cycles,
        tricolor_gc::barrier::mode().name(),
        phase_name(c.phase()),
        demo::workload().map_or("stopped", |w| w.name()),
        s.heap_in_use >> 10,
        s.heap_size >> 10,
        c.trigger() >> 10,
        s.last_marked_bytes >> 10,
        s.pauses,
        s.pause_max_ns / 1000,
        s.pause_mean_ns / 1000,
        s.barriers,
        s.flushes,
        s.allocs,
        s.bytes_freed >> 10,
        on_off(gc::verify_enabled()),
        s.verifier_misses,
        on_off(trace::enabled()),
        <Kernel as Platform>::core_count(),
        cpu::uptime_ns() / 1_000_000
    );
}

fn execute(command: Command) {
    match command {
        Command::Help => help(),
        Command::Stats => stats(),
        Command::Gc => {
            let r = gc::collect();
            kprintln!(
                "gc: cycle {} done: marked {} KiB, freed {} KiB in {} objects, pauses {} + {} us",
                r.cycle,
                r.marked_bytes >> 10,
                r.freed_bytes >> 10,
                r.freed_objects,
                r.pause_ns[0] / 1000,
                r.pause_ns[1] / 1000
            );
        }
        Command::Mode(mode) => {
            debug_assert!(mode != BarrierMode::UnsafeOffDuringMark, "the parser refuses the negative control");
            // Between cycles: wait for a running cycle, and hold off triggered ones, while the
            // collector stops the world to switch.
            let old = gc::between_cycles(|| {
                let old = tricolor_gc::barrier::mode();
                gc::set_mode(mode);
                old
            });
            kprintln!("mode: {} -> {} (between cycles)", old.name(), tricolor_gc::barrier::mode().name());
        }
        Command::Workload(next) => match demo::set_workload(next) {
            Ok(previous) => kprintln!(
                "workload: {} -> {}",
                previous.map_or("stopped", |w| w.name()),
                next.map_or("stopped", |w| w.name())
            ),
            Err(why) => kprintln!("error: workload: {why}"),
        },
        Command::GcTrace(on) => {
            trace::set_enabled(on);
            kprintln!("gctrace: {}", on_off(on));
        }
        Command::Verify(on) => {
            gc::set_verify(on);
            kprintln!("verify: {} (from the next mark termination)", on_off(on));
        }
        Command::Quit => {
            demo::dump_timeline_if_asked();
            kprintln!("quit: powering off");
            match boot::machine().psci {
                Some(conduit) => psci::system_off(conduit),
                None => crate::exit::exit(crate::exit::SUCCESS),
            }
        }
    }
}
