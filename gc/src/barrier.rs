//! The write barrier: Go's buffered hybrid barrier (mbarrier.go, mwbbuf.go).
//!
//! Every pointer store into the GC heap or a global root is [`write_pointer`], which is the
//! platform's [`Platform::write_pointer`]. Its shape, in every implementation:
//!
//! ```text
//! window {                                  // no safe point splits it (invariants below)
//!     if WRITE_BARRIER != 0 {               // one load, one branch: all of mode `off`
//!         if the wbBuf has no room for two: leave the window for the slow path, then retry
//!         put2(old = *slot, new)            // entries first, then `next`
//!     }
//!     *slot = new                           // the window's last instruction
//! }
//! ```
//!
//! Recording the **old** value is Yuasa's deletion barrier (a pointer removed from the heap while
//! a marker has not yet seen it is shaded); recording the **new** value is Dijkstra's insertion
//! barrier. Together they let the collector scan stacks once, at mark start, and never rescan
//! them.
//!
//! Two implementations of the window:
//! - [`write_pointer_guarded`], the default of [`Platform::write_pointer`] (the host platform,
//!   Miri, and the kernel's slow paths): the window is a preemption-disabled section; `record`
//!   puts with `WbBuf::get2` or shades.
//! - the kernel's (kernel/src/gc/barrier.rs): inline assembly with no preemption counter. Each
//!   window's PC ranges are listed in a linker section, and the IRQ entry, before dispatching,
//!   rewinds an interrupted window to its first instruction (Linux's restartable sequences); Go
//!   gets the same atomicity by making the sequence an unsafe point.
//!
//! Invariants (Go's mwbbuf.go states the first; the others are what make the restartable window
//! equivalent to it):
//! - There are **no safe points between reading the flag, the buffer put and the write to
//!   memory**: a phase change in between (barrier turned on and stacks scanned, or every buffer
//!   drained at mark termination) would miss the write. The guarded window holds the preemption
//!   counter; the restartable one is rewound by every interrupt that lands in it (every safe point
//!   of a running task is an interrupt or a call outside any window).
//! - **The store is the window's last instruction, and everything before it is safe to repeat**:
//!   loads, the room check, the entry writes and the bump of `next`. A restart after the bump and
//!   before the store records the pair twice, which only shades the same objects again; nothing
//!   the window does is visible to the collector as done until the store.
//! - **The put writes the entries, then bumps `next`, then the store** (see `wbbuf`): a flush that
//!   runs in an interrupt taken inside a window (a parking core's, the flush handshake's) never
//!   sees a bumped `next` over unwritten entries, and the rewound window then puts again into
//!   whatever the flush left.
//! - **Rewind only at IRQ entry, before dispatch, never on a synchronous exception**: a fault
//!   inside the window (none is expected: the slot is heap or a root, the buffer is the core's)
//!   must report the PC it faulted at, and nothing a synchronous handler does is a safe point.
//! - **The window's inputs stay live until the store** (`slot`, `new`: assembly inputs, never
//!   overwritten by it), so a restart from the top decides again with the same operands.
//! - **Shading is not restart-safe** (it sets mark bits and pushes grey objects), so the modes
//!   that shade (`direct`) or check (`checked`) never do it inside a window: their buffers are
//!   made always full (`WbBuf::set_always_full`), their barriers leave the window, and
//!   [`write_pointer_guarded`] shades and stores under the preemption counter as before.
//! - **A full buffer leaves the window for the flush** ([`flush_full_window_buffer`]: preemption
//!   counter held, on the core's system stack), and the window is then retried from the top.
//! - Checked mode's caller `Location` reaches its report through the slow path only.
//! - The barrier code itself performs no barriered stores.
//! - The flag and the mode change only while the world is stopped, so every core sees the change
//!   at its next safe point, never in the middle of a window.

use core::panic::Location;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use alloc::vec::Vec;

use crate::collector::Collector;
use crate::mark;
use crate::object::HEADER_SIZE;
use crate::platform::{GcCore, InState, Platform};
use crate::wbbuf::WbBuf;
use tricolor_timeline::State;

/// Set while a cycle is marking and the mode needs barriers (shade old and new).
pub const BARRIER_MARKING: usize = 1;
/// Set in `checked` mode, always: report GC pointers stored where the marker never looks.
pub const BARRIER_CHECKING: usize = 2;

/// The global barrier flag, one word at a known symbol (a debugger can find it by name).
/// Zero means "no barrier": the store is all there is. Bits: [`BARRIER_MARKING`],
/// [`BARRIER_CHECKING`].
#[no_mangle]
pub static WRITE_BARRIER: AtomicUsize = AtomicUsize::new(0);

/// How the barrier behaves. Switchable between cycles with [`Collector::set_mode`]. The values
/// are the word `MODE` holds; the modes that shade inside the barrier are the values from
/// `Direct` up (`record` tests them with one comparison).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BarrierMode {
    /// No barrier; the collector then marks with the world stopped for the whole mark.
    Off = 0,
    /// Record old and new in the per-core wbBuf; flush when full (the default).
    Buffered = 1,
    /// Shade old and new inside the barrier, no buffer (the pre-buffer baseline).
    Direct = 4,
    /// Every barrier takes the slow path (its wbBuf is always full), which reports GC pointers
    /// stored where the marker never looks: outside the GC heap and the registered roots, into
    /// no-scan objects, at offsets a type does not list as pointer fields; then shades old and new.
    Checked = 3,
    /// Stress suites only, a negative control: mark concurrently with the barrier off. The
    /// verifier must catch the objects this loses.
    UnsafeOffDuringMark = 2,
    /// Go 1.9's barrier (`writebarrierptr`, before the buffer of Go 1.10): every barrier switches
    /// to the core's system stack (`systemstack(func() { gcmarkwb_m(dst, src) })`) and shades the
    /// old and the new value there. For measuring what the buffer saved (Go issue 22460).
    DirectSystemstack = 5,
}

impl BarrierMode {
    /// All modes, for command lines and test matrices.
    pub const ALL: [BarrierMode; 6] = [
        BarrierMode::Off,
        BarrierMode::Buffered,
        BarrierMode::Direct,
        BarrierMode::Checked,
        BarrierMode::UnsafeOffDuringMark,
        BarrierMode::DirectSystemstack,
    ];

    /// The command-line name (`gc.mode=`).
    pub fn name(self) -> &'static str {
        match self {
            BarrierMode::Off => "off",
            BarrierMode::Buffered => "buffered",
            BarrierMode::Direct => "direct",
            BarrierMode::Checked => "checked",
            BarrierMode::UnsafeOffDuringMark => "unsafe-off-during-mark",
            BarrierMode::DirectSystemstack => "direct-systemstack",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => BarrierMode::Off,
            1 => BarrierMode::Buffered,
            2 => BarrierMode::UnsafeOffDuringMark,
            3 => BarrierMode::Checked,
            4 => BarrierMode::Direct,
            _ => BarrierMode::DirectSystemstack,
        }
    }

    /// Whether marking may run concurrently with mutators in this mode.
    pub fn marks_concurrently(self) -> bool {
        self != BarrierMode::Off
    }

    /// Whether the barrier records pointers while marking.
    pub fn barrier_while_marking(self) -> bool {
        matches!(
            self,
            BarrierMode::Buffered | BarrierMode::Direct | BarrierMode::Checked | BarrierMode::DirectSystemstack
        )
    }
}

/// The current mode; written only with the world stopped.
static MODE: AtomicU8 = AtomicU8::new(BarrierMode::Buffered as u8);

/// The current barrier mode.
pub fn mode() -> BarrierMode {
    BarrierMode::from_u8(MODE.load(Ordering::Relaxed))
}

/// Without barriers every mode is `off`: marking must stop the world.
pub(crate) fn set_mode_word(m: BarrierMode) {
    let m = if COMPILED_OUT { BarrierMode::Off } else { m };
    // Ordering: Relaxed; written only while the world is stopped, and the STW handshake orders it
    // before any core's next barrier.
    MODE.store(m as u8, Ordering::Relaxed);
}

/// Store `new` (an address in the GC heap, or 0) into `slot` with the write barrier.
#[inline(always)]
#[track_caller]
pub fn write_pointer<P: Platform>(slot: &AtomicUsize, new: usize) {
    write_pointer_at::<P>(slot, new, Location::caller())
}

/// Whether this build has its barriers compiled out (feature `no-barriers`): stores are plain and
/// every cycle marks with the world stopped, whatever mode is asked for.
pub const COMPILED_OUT: bool = cfg!(feature = "no-barriers");

/// [`write_pointer`] with an explicit caller for checked-mode reports: the platform's window.
#[inline(always)]
pub fn write_pointer_at<P: Platform>(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    if COMPILED_OUT {
        // Ordering: Release, as in the barrier (mutators' happens-before to what the handle names).
        slot.store(new, Ordering::Release);
        return;
    }
    P::write_pointer(slot, new, caller)
}

/// The guarded barrier (the default [`Platform::write_pointer`], and the kernel's slow path for
/// the modes that do not buffer): the window is a preemption-disabled section.
#[inline(always)]
pub fn write_pointer_guarded<P: Platform>(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    // No preemption from the flag load to the store (see the module invariants).
    let _no_preempt = P::disable_preemption();
    // Ordering: Relaxed. The flag changes only while the world is stopped; the STW handshake
    // (Acquire/Release on resume) makes the new value visible before this core runs again.
    if WRITE_BARRIER.load(Ordering::Relaxed) != 0 {
        record::<P>(slot, new, caller);
    }
    // Ordering: Release (`stlr` on aarch64). The collector itself would be content with Relaxed:
    // markers read slots with Relaxed loads, never read an object allocated during the mark
    // (it is black), and what they must not miss is covered by the barrier record above. The
    // Release is for mutators: `GcSlot::get` Acquire-loads handles stored by other cores and then
    // reads the object; without Release here a handle passed on by a core that did not allocate
    // the object would carry no happens-before to its initialisation (a data race in Rust's
    // model, which Miri reports in the host tests).
    slot.store(new, Ordering::Release);
}

/// The restartable window found this core's wbBuf full: flush it (greys what it holds, or
/// discards it when no cycle marks), leaving room for the retry. The caller holds the preemption
/// counter, runs on the core's system stack, and has left the window (it retries it from the
/// flag load afterwards). An always-full buffer is not flushed here: those modes take
/// [`write_pointer_guarded`] instead.
pub fn flush_full_window_buffer<P: Platform>() {
    // The same state as the guarded path's flush (`wb_buf_flush`), for the event recorder.
    let _flushing = InState::<P>::enter(State::Flush);
    let core = P::current_core();
    // SAFETY: this core's buffer, preemption disabled by the caller; no window is in progress on
    // this core (the one that found the buffer full has been left), so no other reference exists.
    let buf = unsafe { core.wbbuf_mut() };
    wb_buf_flush_full(P::collector(), core, buf);
}

/// The barrier's slow half: record (old, new) in this core's wbBuf, or shade directly.
#[inline(never)]
fn record<P: Platform>(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    let flag = WRITE_BARRIER.load(Ordering::Relaxed);
    let core = P::current_core();
    if flag & BARRIER_CHECKING != 0 {
        check_store::<P>(slot, new, caller);
    }
    // Every mode but `buffered` shades here (its buffer is always full: see `Collector::set_mode`):
    // `direct` and `direct-systemstack`, and `checked` after its check.
    if mode() != BarrierMode::Buffered {
        core.stats.barriers.bump();
        if flag & BARRIER_MARKING != 0 {
            if mode() == BarrierMode::DirectSystemstack {
                shade_on_systemstack::<P>(slot, new);
            } else {
                shade_pair::<P>(core, slot.load(Ordering::Relaxed), new);
            }
        }
        return;
    }
    let old = slot.load(Ordering::Relaxed);
    // SAFETY: this core's buffer, preemption disabled by `write_pointer_at`'s guard for as long as
    // the reference lives (it ends with this statement).
    let buf = unsafe { core.wbbuf_mut() };
    *buf.get2(wb_buf_flush::<P>) = [old, new];
}

/// The barrier of mode `direct-systemstack`, Go 1.9's `writebarrierptr_prewrite1`: read the old
/// value and shade both on the system stack. Preemption stays disabled across the switch (the
/// barrier's guard), so nothing else runs on this core between this read and the barrier's store.
/// Out of line: the switch's code does not weigh on `record`'s other paths.
#[inline(never)]
fn shade_on_systemstack<P: Platform>(slot: &AtomicUsize, new: usize) {
    P::systemstack(|| shade_pair::<P>(P::current_core(), slot.load(Ordering::Relaxed), new));
}

/// Shade a barrier's old and new value on `core` (modes `direct` and `direct-systemstack`).
#[inline(always)]
fn shade_pair<P: Platform>(core: &GcCore, old: usize, new: usize) {
    let c = P::collector();
    // SAFETY: this core, preemption disabled by the barrier's guard.
    let work = unsafe { core.work_mut() };
    mark::shade(c, core, work, old);
    mark::shade(c, core, work, new);
    work.publish_if_large(&c.work);
}

/// Flush the current core's wbBuf on the core's system stack. Called by `get2` when full.
#[cold]
#[inline(never)]
pub fn wb_buf_flush<P: Platform>(buf: &mut WbBuf) {
    P::systemstack(|| {
        let _flushing = InState::<P>::enter(State::Flush);
        wb_buf_flush_full(P::collector(), P::current_core(), buf)
    });
}

/// The barrier's flush of a full buffer: during a mark, hand the records over to the markers
/// (a copy into a spare batch, `mark::Batches`) unless the collector's hand-off is off, closed
/// for this mark (its flush handshake has begun: `Collector::hands_off_batches`) or no spare is
/// free; otherwise shade them here ([`wb_buf_flush1`]). Only the barrier's own
/// flushes hand over: the handshake's and the stops' flushes are there to empty the buffers
/// into the grey set.
pub fn wb_buf_flush_full(c: &Collector, core: &GcCore, buf: &mut WbBuf) {
    if !buf.empty()
        && WRITE_BARRIER.load(Ordering::Relaxed) & BARRIER_MARKING != 0
        && c.hands_off_batches()
        && c.work.hand_off(buf.recorded())
    {
        core.stats.barriers.add(buf.recorded().len() as u64 / 2);
        core.stats.flushes.bump();
        core.stats.handoffs.bump();
        buf.reset();
        return;
    }
    wb_buf_flush1(c, core, buf);
}

/// Shade every recorded pointer into `core`'s mark work buffer (skipping nil and non-heap
/// pointers), then reset. If no cycle is marking (the barrier was on only for checked reports),
/// discard instead. Runs on the system stack, or during stop-the-world for other cores' buffers.
pub fn wb_buf_flush1(c: &Collector, core: &GcCore, buf: &mut WbBuf) {
    // Buffered barriers are counted here, a pair each, not on their fast path.
    core.stats.barriers.add(buf.recorded().len() as u64 / 2);
    if buf.empty() {
        return;
    }
    if WRITE_BARRIER.load(Ordering::Relaxed) & BARRIER_MARKING == 0 {
        buf.discard();
        return;
    }
    core.stats.flushes.bump();
    // SAFETY: the flush runs on `core` with preemption off, or during stop-the-world.
    let work = unsafe { core.work_mut() };
    mark::shade_recorded(c, core, work, buf.recorded());
    buf.reset();
    work.publish(&c.work);
}

/// Where a checked-mode store went that the marker will never look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckedSlot {
    /// Memory outside the GC heap that is not a registered root (a static, a DMA ring).
    OutsideHeapAndRoots,
    /// Heap memory that is no allocated object (free, or a header).
    NotInAnObject,
    /// A no-scan object (a pinned buffer, a raw byte buffer): the marker never reads it.
    NoScanObject {
        /// Base of the object holding the slot.
        holder: usize,
    },
    /// A scanned object, at an offset its type does not list as a pointer field.
    NotAPointerField {
        /// Base of the object holding the slot.
        holder: usize,
        /// Its type.
        holder_type: &'static str,
        /// Offset of the slot in the payload.
        offset: usize,
    },
}

/// One checked-mode finding: a GC pointer stored where the marker will not see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedReport {
    /// Address of the slot written.
    pub slot: usize,
    /// What the slot is.
    pub kind: CheckedSlot,
    /// The GC object stored there.
    pub object: usize,
    /// Its type name.
    pub type_name: &'static str,
    /// Source location of the store.
    pub caller: &'static Location<'static>,
}

static CHECKED_REPORTS: crate::sync::Mutex<Vec<CheckedReport>> = crate::sync::Mutex::new(Vec::new());

/// Take (and clear) the checked-mode reports recorded so far, with preemption disabled: checked
/// stores push under the same spin lock with preemption off, and a taker preempted holding it
/// would leave them spinning (see `Roots`).
pub fn take_checked_reports<P: Platform>() -> Vec<CheckedReport> {
    let _np = P::disable_preemption();
    let mut reports = CHECKED_REPORTS.lock(); // named: dropped before `_np` (see `take_misses`)
    core::mem::take(&mut *reports)
}

/// Where a store into `slot` would be invisible to the marker, if it would.
fn unscanned_slot(c: &Collector, slot: usize) -> Option<CheckedSlot> {
    if !c.heap.contains(slot) {
        return (!c.roots.contains_slot(slot)).then_some(CheckedSlot::OutsideHeapAndRoots);
    }
    let Some(holder) = c.heap.find_object(slot) else {
        return Some(CheckedSlot::NotInAnObject);
    };
    if c.heap.is_noscan(&holder) {
        return Some(CheckedSlot::NoScanObject { holder: holder.base });
    }
    let ty = c.heap.type_of(&holder);
    match slot.checked_sub(holder.base + HEADER_SIZE) {
        Some(offset) if ty.pointer_offsets.contains(&offset) => None,
        Some(offset) => Some(CheckedSlot::NotAPointerField { holder: holder.base, holder_type: ty.name, offset }),
        None => Some(CheckedSlot::NotInAnObject),
    }
}

fn check_store<P: Platform>(slot: &AtomicUsize, new: usize, caller: &'static Location<'static>) {
    let c = P::collector();
    let slot_addr = slot as *const AtomicUsize as usize;
    if new == 0 {
        return;
    }
    let Some(obj) = c.heap.find_object(new) else {
        return;
    };
    let Some(kind) = unscanned_slot(c, slot_addr) else {
        return;
    };
    let r = CheckedReport { slot: slot_addr, kind, object: new, type_name: c.heap.type_name(&obj), caller };
    log::warn!(
        "gc checked: GC pointer {:#x} ({}) stored into slot {:#x} ({:?}), which the marker never scans, at {}",
        r.object,
        r.type_name,
        r.slot,
        r.kind,
        r.caller
    );
    core_stats_bump_checked(P::current_core());
    CHECKED_REPORTS.lock().push(r);
}

fn core_stats_bump_checked(core: &GcCore) {
    core.stats.checked_reports.bump();
}
