//! The text form of every core's recorder, printed over the console at the end of a run
//! (`timeline=dump`), and its decoder.
//!
//! ```text
//! TIMELINE begin cores=4 freq=62500000 from=1734200 to=194523761
//! TIMELINE core=0 first=0 events=3 now=194600000 totals=190000000,4000000,600000,0,0,0,0,0,0
//! TL 0 C1lrf4A3gB1s
//! ...
//! TIMELINE end
//! ```
//!
//! - `begin`: the cores dumped, the counter frequency (ticks per second; every time in the dump
//!   is in ticks), and the span of the measured run (`from`, `to`: what MMU is computed over).
//!   A writer may append more `key=value` fields (the kernel's `first_done=`, when the run's
//!   first mutator returned); the decoder skips them.
//! - one `core=` line per core: the index of its first event among all it recorded (`first`, the
//!   number the ring lost; 0 means the ring holds everything since the core started, in state
//!   mutator at tick 0), how many events follow, when it was dumped, and the ticks spent in each
//!   state up to then (the recorder's running totals, in state discriminant order), which a
//!   decoder checks the events against.
//! - `TL <core>` lines: the events, each a state's letter (`A` mutator, `B` idle, ... see
//!   [`State::letter`]) followed by the ticks since the previous event (since tick 0 for the first)
//!   in base 32 (`0-9a-v`). About 4 characters an event; lines stay under 120 characters.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::recorder::{Event, Snapshot};
use crate::state::{State, COUNT};

const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
/// Longest `TL` line written (prefix included).
pub const LINE_MAX: usize = 118;
/// The last line of a dump.
pub const END: &str = "TIMELINE end";

/// The `begin` line.
pub fn begin_line(cores: usize, freq: u64, from: u64, to: u64) -> String {
    format!("TIMELINE begin cores={cores} freq={freq} from={from} to={to}")
}

/// A core's header line: its snapshot's position, its totals at `now`.
pub fn core_line(core: usize, snapshot: &Snapshot, now: u64, totals: &[u64; COUNT]) -> String {
    let mut line =
        format!("TIMELINE core={core} first={} events={} now={now} totals=", snapshot.first, snapshot.events.len());
    for (i, t) in totals.iter().enumerate() {
        let _ = write!(line, "{}{t}", if i == 0 { "" } else { "," });
    }
    line
}

/// Calls `emit` with each `TL` line of `events`.
pub fn event_lines(core: usize, events: &[Event], mut emit: impl FnMut(&str)) {
    let prefix = format!("TL {core} ");
    let mut line = prefix.clone();
    let mut previous = 0;
    for e in events {
        // 1 letter + up to 12 base-32 digits (56-bit timestamps).
        if line.len() + 13 > LINE_MAX {
            emit(&line);
            line.clone_from(&prefix);
        }
        line.push(e.state.letter());
        push_base32(&mut line, e.ts.wrapping_sub(previous));
        previous = e.ts;
    }
    if line.len() > prefix.len() {
        emit(&line);
    }
}

fn push_base32(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 13];
    let mut n = 0;
    loop {
        digits[n] = DIGITS[(v & 31) as usize];
        n += 1;
        v >>= 5;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        out.push(d as char);
    }
}

/// One core's decoded dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub core: usize,
    /// Events the ring lost before `events[0]`.
    pub first: u64,
    /// When the core's ring was read.
    pub now: u64,
    /// The recorder's totals at `now`, by state discriminant.
    pub totals: [u64; COUNT],
    pub events: Vec<Event>,
}

impl Track {
    /// The earliest tick from which the track knows the core's state: 0 when the ring lost
    /// nothing (the recorder starts in mutator at 0), else its oldest event.
    pub fn known_from(&self) -> Option<u64> {
        if self.first == 0 {
            Some(0)
        } else {
            self.events.first().map(|e| e.ts)
        }
    }

    /// The state at tick `ts` (`None` before [`Track::known_from`]).
    pub fn state_at(&self, ts: u64) -> Option<State> {
        match self.events.partition_point(|e| e.ts <= ts) {
            0 if self.first == 0 => Some(State::Mutator),
            0 => None,
            n => Some(self.events[n - 1].state),
        }
    }

    /// The core's states as `(start, end, state)` intervals covering `[from, to)` (clipped to
    /// it; starting at [`Track::known_from`] if that is later). Empty intervals are left out.
    pub fn intervals(&self, from: u64, to: u64) -> Vec<(u64, u64, State)> {
        let Some(known) = self.known_from() else { return Vec::new() };
        let from = from.max(known);
        let mut out = Vec::new();
        let mut at = from;
        let Some(mut state) = self.state_at(from) else { return out };
        for e in self.events.iter().filter(|e| e.ts > from && e.ts < to) {
            if e.ts > at {
                out.push((at, e.ts, state));
            }
            at = e.ts;
            state = e.state;
        }
        if to > at {
            out.push((at, to, state));
        }
        out
    }

    /// Whether the events add up to the totals the recorder kept (only checkable when the ring
    /// lost nothing): per state, the ticks between transitions up to `now`. `Err` names the
    /// first state that differs.
    pub fn check_totals(&self) -> Result<(), String> {
        if self.first != 0 {
            return Ok(());
        }
        let mut sums = [0u64; COUNT];
        for (start, end, state) in self.intervals(0, self.now) {
            sums[state as usize] += end - start;
        }
        match (0..COUNT).find(|&s| sums[s] != self.totals[s]) {
            None => Ok(()),
            Some(s) => Err(format!(
                "core {}: the events give {} ticks of {}, the recorder counted {}",
                self.core,
                sums[s],
                State::ALL[s].name(),
                self.totals[s]
            )),
        }
    }
}

/// A decoded dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// Counter ticks per second.
    pub freq: u64,
    /// The measured run: from, to (ticks).
    pub from: u64,
    pub to: u64,
    pub cores: Vec<Track>,
}

impl Timeline {
    /// Ticks to nanoseconds.
    pub fn ns(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e9 / self.freq.max(1) as f64
    }

    /// The part of `[from, to)` where every core's state is known (the latest start of the
    /// tracks whose ring lost events).
    pub fn known_span(&self) -> (u64, u64) {
        let known = self.cores.iter().filter_map(Track::known_from).max().unwrap_or(self.from);
        (self.from.max(known), self.to)
    }
}

fn field<'a>(words: &[&'a str], key: &str) -> Result<&'a str, String> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .ok_or_else(|| format!("timeline dump: no {key}= in '{}'", words.join(" ")))
}

fn number(words: &[&str], key: &str) -> Result<u64, String> {
    let v = field(words, key)?;
    v.parse().map_err(|_| format!("timeline dump: {key}={v} is not a number"))
}

/// Finds the dump in a console capture (other lines are skipped) and decodes it.
pub fn parse(text: &str) -> Result<Timeline, String> {
    let mut lines = text.lines().map(str::trim);
    let begin = lines
        .find(|l| l.starts_with("TIMELINE begin"))
        .ok_or("no timeline dump in the output (was the kernel booted with timeline=dump?)")?;
    let words: Vec<&str> = begin.split_whitespace().collect();
    let cores = number(&words, "cores")? as usize;
    let mut t = Timeline {
        freq: number(&words, "freq")?,
        from: number(&words, "from")?,
        to: number(&words, "to")?,
        cores: Vec::with_capacity(cores),
    };
    let mut announced = Vec::with_capacity(cores);
    let mut previous = 0u64;
    let mut ended = false;
    for line in lines {
        if line == END {
            ended = true;
            break;
        }
        if let Some(rest) = line.strip_prefix("TIMELINE core=") {
            let words: Vec<&str> = line.split_whitespace().collect();
            let core =
                rest.split_whitespace().next().unwrap_or("").parse().map_err(|_| format!("bad line '{line}'"))?;
            let totals_text = field(&words, "totals")?;
            let totals: Vec<u64> = totals_text
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("timeline dump: core {core}: totals={totals_text} are not numbers"))?;
            let totals: [u64; COUNT] = totals
                .try_into()
                .map_err(|_| format!("timeline dump: core {core}: totals for other than {COUNT} states"))?;
            let track = Track {
                core,
                first: number(&words, "first")?,
                now: number(&words, "now")?,
                totals,
                events: Vec::new(),
            };
            announced.push(number(&words, "events")? as usize);
            t.cores.push(track);
            previous = 0;
        } else if let Some(rest) = line.strip_prefix("TL ") {
            let (core, tokens) = rest.split_once(' ').ok_or_else(|| format!("bad line '{line}'"))?;
            let track = t.cores.last_mut().ok_or("a TL line before any core line")?;
            if core.parse::<usize>() != Ok(track.core) {
                return Err(format!("TL line for core {core} inside core {}'s events", track.core));
            }
            decode_tokens(tokens, &mut previous, &mut track.events)?;
        }
    }
    if !ended {
        return Err("the timeline dump has no end line (the output was cut short)".into());
    }
    if t.cores.len() != cores {
        return Err(format!("the timeline dump announces {cores} cores and has {}", t.cores.len()));
    }
    for (track, &n) in t.cores.iter().zip(&announced) {
        if track.events.len() != n {
            return Err(format!("core {}: the dump announces {n} events and has {}", track.core, track.events.len()));
        }
    }
    Ok(t)
}

fn decode_tokens(tokens: &str, previous: &mut u64, out: &mut Vec<Event>) -> Result<(), String> {
    let mut state: Option<State> = None;
    let mut delta = 0u64;
    let mut finish = |state: Option<State>, delta: u64, out: &mut Vec<Event>| {
        if let Some(state) = state {
            *previous = previous.wrapping_add(delta);
            out.push(Event { ts: *previous, state });
        }
    };
    for c in tokens.chars() {
        if let Some(s) = State::from_letter(c) {
            finish(state, delta, out);
            state = Some(s);
            delta = 0;
        } else {
            let d = DIGITS.iter().position(|&d| d as char == c).ok_or_else(|| format!("bad character '{c}'"))?;
            if state.is_none() {
                return Err("digits before a state letter".into());
            }
            delta = delta << 5 | d as u64;
        }
    }
    finish(state, delta, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Recorder;

    fn dump_of(recorders: &[&Recorder], from: u64, to: u64, now: u64) -> String {
        let mut text = String::from("[ 1.0] INFO  some log line\n");
        text += &begin_line(recorders.len(), 62_500_000, from, to);
        text.push('\n');
        for (core, r) in recorders.iter().enumerate() {
            let s = r.snapshot();
            text += &core_line(core, &s, now, &r.totals(now));
            text.push('\n');
            event_lines(core, &s.events, |l| {
                assert!(l.len() <= LINE_MAX, "{l}");
                text += l;
                text.push('\n');
            });
        }
        text += "BENCH unrelated x=1\n";
        text + END + "\n"
    }

    #[test]
    fn a_dump_decodes_to_the_recorded_events_and_totals() {
        let a = crate::recorder::with_ring(64);
        let b = crate::recorder::with_ring(64);
        let mut ts = 1_000_000;
        for i in 0..40u64 {
            a.record(ts, State::ALL[(i % 9) as usize]);
            b.record(ts + 7, if i % 2 == 0 { State::Idle } else { State::Mutator });
            ts += 1 + i * i * 977;
        }
        let text = dump_of(&[&a, &b], 1_000_000, ts, ts + 5);
        let t = parse(&text).unwrap();
        assert_eq!((t.freq, t.from, t.to, t.cores.len()), (62_500_000, 1_000_000, ts, 2));
        assert_eq!(t.cores[0].events, a.snapshot().events);
        assert_eq!(t.cores[1].events, b.snapshot().events);
        for track in &t.cores {
            track.check_totals().unwrap();
        }
        // About 4 characters per event, as documented (the big deltas here take 3-4 digits).
        let tl: usize = text.lines().filter(|l| l.starts_with("TL ")).map(|l| l.len() - 5).sum();
        assert!(tl <= 80 * 6, "{tl} characters for 80 events");
    }

    #[test]
    fn a_lost_event_shows_in_the_totals_check() {
        let a = crate::recorder::with_ring(64);
        a.record(100, State::Pause);
        a.record(300, State::Mutator);
        a.record(400, State::Pause);
        a.record(450, State::Mutator);
        let text = dump_of(&[&a], 0, 500, 500);
        let mut t = parse(&text).unwrap();
        t.cores[0].check_totals().unwrap();
        t.cores[0].events.remove(1);
        let err = t.cores[0].check_totals().unwrap_err();
        assert!(err.contains("core 0"), "{err}");
    }

    #[test]
    fn intervals_clip_to_the_span_and_start_where_the_state_is_known() {
        let track = Track {
            core: 0,
            first: 0,
            now: 100,
            totals: [0; COUNT],
            events: vec![Event { ts: 10, state: State::Pause }, Event { ts: 20, state: State::Mutator }],
        };
        assert_eq!(track.intervals(5, 30), [(5, 10, State::Mutator), (10, 20, State::Pause), (20, 30, State::Mutator)]);
        assert_eq!(track.intervals(12, 15), [(12, 15, State::Pause)]);
        let lossy = Track { first: 3, ..track };
        assert_eq!(lossy.known_from(), Some(10));
        assert_eq!(lossy.state_at(5), None);
        assert_eq!(lossy.intervals(0, 30), [(10, 20, State::Pause), (20, 30, State::Mutator)]);
    }

    #[test]
    fn truncated_or_malformed_dumps_are_refused() {
        let a = crate::recorder::with_ring(64);
        a.record(100, State::Sweep);
        let text = dump_of(&[&a], 0, 200, 200);
        assert!(parse("no dump here").unwrap_err().contains("timeline=dump"));
        let cut = text.replace(END, "");
        assert!(parse(&cut).unwrap_err().contains("no end line"));
        let two = text.replace("cores=1", "cores=2");
        assert!(parse(&two).unwrap_err().contains("announces 2 cores"));
        let bad = text.replace("TL 0 I", "TL 0 I!");
        assert!(parse(&bad).is_err());
        let short = text.replace("events=1", "events=2");
        assert!(parse(&short).unwrap_err().contains("announces 2 events"));
    }
}
