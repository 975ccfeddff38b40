//! The console: a PL011 UART found in the device tree, a lock that keeps every line whole when
//! several cores print, and the `log` backend (`[  seconds.micros] LEVEL cN message`).
//!
//! Input (the demo's interactive console): `rx` is the receive interrupt, which only moves bytes
//! from the UART into a lock-free ring; `shell` is the task that edits lines and runs commands.
//! The prompt line the shell shows is part of this module's state, behind the same lock as every
//! other output: a line printed while the prompt (and whatever has been typed) is on the terminal
//! first ends the prompt line, then prints, then shows the prompt and the typed text again, so a
//! log line and the prompt never share a line.

pub mod rx;
pub mod shell;

use crate::percore;
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};
use tricolor_arch::irqmask::IrqGuard;
use tricolor_kernel::cmdline::LogLevel;

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) []
    ],
    /// Interrupt mask set/clear, raw and masked status, clear: the same bit positions.
    INT [
        /// Receive timeout (data in the FIFO, no new byte for a while).
        RT OFFSET(6) NUMBITS(1) [],
        /// Receive (FIFO at its trigger level).
        RX OFFSET(4) NUMBITS(1) []
    ]
];

register_structs! {
    Pl011Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32, INT::Register>),
        (0x3c => _reserved3),
        (0x44 => icr: ReadWrite<u32, INT::Register>),
        (0x48 => @END),
    }
}

/// The UART's MMIO base; 0 until `init` (output before that is dropped).
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Core index + 1 of the core holding the console lock, 0 when free.
static OWNER: AtomicUsize = AtomicUsize::new(0);

struct Pl011;

impl Pl011 {
    fn registers() -> Option<&'static Pl011Registers> {
        let base = UART_BASE.load(Ordering::Relaxed);
        // SAFETY: a non-zero base was set by init() from the device tree's pl011 node; the device
        // region is identity-mapped and lives for the whole run.
        (base != 0).then(|| unsafe { &*(base as *const Pl011Registers) })
    }

    fn put(regs: &Pl011Registers, byte: u8) {
        while regs.fr.is_set(FR::TXFF) {
            tricolor_arch::cpu::relax();
        }
        regs.dr.set(byte as u32);
    }
}

impl Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(regs) = Self::registers() {
            for byte in s.bytes() {
                if byte == b'\n' {
                    Self::put(regs, b'\r');
                }
                Self::put(regs, byte);
            }
        }
        Ok(())
    }
}

/// Starts the UART at `base` (8N1, FIFOs on; QEMU ignores the baud rate).
pub fn init(base: usize) {
    UART_BASE.store(base, Ordering::Relaxed);
    if let Some(regs) = Pl011::registers() {
        regs.cr.set(0);
        regs.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        regs.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }
}

/// Exclusive use of the console for whole lines. IRQs are masked while it is held, so an interrupt
/// handler that logs cannot deadlock against the code it interrupted.
struct ConsoleGuard {
    reentered: bool,
    /// Dropped after `Drop::drop` has released the console: IRQs come back once it is free.
    _irqs: IrqGuard,
}

fn lock() -> ConsoleGuard {
    let me = percore::id() + 1;
    let irqs = IrqGuard::mask();
    // Only this core can have stored its own id: we are a fault report nested inside a print on the
    // same core. Print anyway rather than deadlock on ourselves.
    if OWNER.load(Ordering::Relaxed) == me {
        return ConsoleGuard { reentered: true, _irqs: irqs };
    }
    // Acquire pairs with the Release in Drop: the previous holder's UART writes are complete.
    while OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
        tricolor_arch::cpu::relax();
    }
    ConsoleGuard { reentered: false, _irqs: irqs }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if !self.reentered {
            OWNER.store(0, Ordering::Release);
        }
    }
}

/// The shell's prompt line as the terminal shows it: the prompt and the characters typed.
struct PromptLine {
    /// On the terminal now (the cursor is at its end).
    shown: bool,
    len: usize,
    bytes: [u8; PROMPT_MAX],
}

/// The longest prompt line kept for re-showing (the shell's line limit plus the prompt).
const PROMPT_MAX: usize = 160;

/// State only touched while holding the console lock (not re-entered: see `ConsoleGuard::prompt`).
struct Guarded<T>(UnsafeCell<T>);

// SAFETY: the contents are accessed only through `ConsoleGuard::prompt`, i.e. by the one core
// holding the console lock, and never from a nested (re-entered) hold on that core.
unsafe impl<T> Sync for Guarded<T> {}

static PROMPT: Guarded<PromptLine> =
    Guarded(UnsafeCell::new(PromptLine { shown: false, len: 0, bytes: [0; PROMPT_MAX] }));

impl ConsoleGuard {
    /// The prompt line; `None` in a re-entered hold (a fault report printed from inside a print on
    /// the same core), which must not alias the outer hold's access.
    fn prompt(&mut self) -> Option<&mut PromptLine> {
        // SAFETY: this guard holds the console lock (not re-entered), so no other core and no outer
        // frame of this core touches PROMPT until it is dropped; the `&mut self` borrow keeps this
        // the only reference for as long as it lives.
        (!self.reentered).then(|| unsafe { &mut *PROMPT.0.get() })
    }
}

/// Writes through to the UART, remembering whether the last byte ended a line.
struct Tracking {
    ended_line: bool,
}

impl Write for Tracking {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(last) = s.bytes().last() {
            self.ended_line = last == b'\n';
        }
        Pl011.write_str(s)
    }
}

/// Prints formatted text with the console held, so it appears as one piece. If the shell's
/// prompt is on the terminal, the text goes on lines of its own and the prompt (with what has
/// been typed) is shown again below it.
pub fn print(args: fmt::Arguments<'_>) {
    let mut guard = lock();
    let Some(prompt) = guard.prompt() else {
        let _ = Pl011.write_fmt(args);
        return;
    };
    if prompt.shown {
        let _ = Pl011.write_str("\n");
    }
    let mut out = Tracking { ended_line: false };
    let _ = out.write_fmt(args);
    if prompt.shown {
        if out.ended_line {
            let _ = Pl011.write_str(core::str::from_utf8(&prompt.bytes[..prompt.len]).unwrap_or(""));
        } else {
            // Text without a line end took over the line: the prompt is no longer there.
            prompt.shown = false;
        }
    }
}

/// Shows the shell's prompt on a fresh line.
pub fn prompt_show(text: &str) {
    let mut guard = lock();
    let Some(prompt) = guard.prompt() else { return };
    let len = text.len().min(PROMPT_MAX);
    prompt.bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
    prompt.len = len;
    prompt.shown = true;
    let _ = Pl011.write_str(text);
}

/// Echoes a typed character after the prompt.
pub fn prompt_push(byte: u8) {
    let mut guard = lock();
    let Some(prompt) = guard.prompt() else { return };
    if prompt.len < PROMPT_MAX {
        prompt.bytes[prompt.len] = byte;
        prompt.len += 1;
    }
    if let Some(regs) = Pl011::registers() {
        Pl011::put(regs, byte);
    }
}

/// Erases the last `n` typed characters (never the prompt itself: `keep` bytes stay).
pub fn prompt_erase(n: usize, keep: usize) {
    let mut guard = lock();
    let Some(prompt) = guard.prompt() else { return };
    for _ in 0..n.min(prompt.len.saturating_sub(keep)) {
        prompt.len -= 1;
        let _ = Pl011.write_str("\x08 \x08");
    }
}

/// Ends the prompt line (Enter was pressed): what follows is the command's answer.
pub fn prompt_end() {
    let mut guard = lock();
    let Some(prompt) = guard.prompt() else { return };
    prompt.shown = false;
    let _ = Pl011.write_str("\n");
}

/// `print!` for the kernel console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// `println!` for the kernel console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct KernelLogger;

impl log::Log for KernelLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = tricolor_arch::cpu::uptime_ns();
        print(format_args!(
            "[{:>4}.{:06}] {:<5} c{} {}\n",
            ns / 1_000_000_000,
            (ns / 1_000) % 1_000_000,
            record.level(),
            percore::id(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

static LOGGER: KernelLogger = KernelLogger;

/// Installs the `log` backend.
pub fn init_logger() {
    // A second call fails harmlessly; there is only one logger.
    let _ = log::set_logger(&LOGGER);
    set_level(LogLevel::Info);
}

/// Sets the console verbosity from the command line.
pub fn set_level(level: LogLevel) {
    log::set_max_level(match level {
        LogLevel::Off => log::LevelFilter::Off,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
}
