//! The console: a PL011 UART found in the device tree, a lock that keeps every line whole when
//! several cores print, and the `log` backend (`[  seconds.micros] LEVEL cN message`).

use crate::percore;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};
use tricolor_kernel::cmdline::LogLevel;

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
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
        (0x34 => @END),
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
    irqs_were_masked: bool,
    reentered: bool,
}

fn lock() -> ConsoleGuard {
    let me = percore::id() + 1;
    let irqs_were_masked = tricolor_arch::cpu::mask_irqs();
    // Only this core can have stored its own id: we are a fault report nested inside a print on the
    // same core. Print anyway rather than deadlock on ourselves.
    if OWNER.load(Ordering::Relaxed) == me {
        return ConsoleGuard { irqs_were_masked, reentered: true };
    }
    // Acquire pairs with the Release in Drop: the previous holder's UART writes are complete.
    while OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
        tricolor_arch::cpu::relax();
    }
    ConsoleGuard { irqs_were_masked, reentered: false }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if !self.reentered {
            OWNER.store(0, Ordering::Release);
        }
        tricolor_arch::cpu::restore_irqs(self.irqs_were_masked);
    }
}

/// Prints formatted text with the console held, so it appears as one piece.
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = lock();
    let _ = Pl011.write_fmt(args);
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
