//! The trap frame saved by `vectors.s` and the dispatch to the kernel's handler.
//!
//! The kernel registers one handler with [`set_handler`]. Until it does, any exception ends the run
//! with exit status [`tricolor_abi::exit::EARLY_EXCEPTION`], so an early fault is never a silent
//! hang.

use crate::esr::Syndrome;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Registers as saved on exception entry (layout shared with vectors.s).
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct TrapFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// The interrupted code's stack pointer (SP_EL0: kernel code runs with SPSel = 0).
    pub sp: u64,
    /// Where the exception was taken (return address for IRQs, the faulting instruction for aborts).
    pub elr: u64,
    /// Saved PSTATE.
    pub spsr: u64,
    /// Exception syndrome.
    pub esr: u64,
    /// Fault address (meaningful for aborts).
    pub far: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 288, "TrapFrame must match vectors.s");

/// Where an exception came from (which quarter of the vector table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Current EL on SP_EL0: ordinary kernel code.
    Kernel,
    /// Current EL on SP_EL1: the exception handler itself faulted.
    Nested,
    /// A lower exception level (tricolor has none, so this is a bug).
    LowerEl,
}

/// What kind of exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Synchronous,
    Irq,
    Fiq,
    SError,
}

/// A decoded vector number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    pub origin: Origin,
    pub kind: Kind,
}

impl Exception {
    fn from_vector(vector: u64) -> Self {
        let origin = match vector / 4 {
            0 => Origin::Kernel,
            1 => Origin::Nested,
            _ => Origin::LowerEl,
        };
        let kind = match vector % 4 {
            0 => Kind::Synchronous,
            1 => Kind::Irq,
            2 => Kind::Fiq,
            _ => Kind::SError,
        };
        Self { origin, kind }
    }
}

impl TrapFrame {
    /// The decoded syndrome of a synchronous exception.
    pub fn syndrome(&self) -> Syndrome {
        Syndrome::from_raw(self.esr)
    }
}

/// The kernel's exception handler. It may edit the frame (a context switch replaces it); returning
/// resumes at `frame.elr`.
pub type Handler = fn(Exception, &mut TrapFrame);

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Installs the kernel's exception handler for all cores.
pub fn set_handler(handler: Handler) {
    // Release: a core that loads the pointer (Acquire) also sees everything the kernel initialised
    // before registering the handler.
    HANDLER.store(handler as usize, Ordering::Release);
}

/// Called from vectors.s with the vector number and the saved frame.
#[unsafe(no_mangle)]
extern "C" fn tricolor_exception_entry(vector: u64, frame: &mut TrapFrame) {
    let raw = HANDLER.load(Ordering::Acquire);
    if raw == 0 {
        super::semihosting::write0(c"tricolor: exception before the kernel installed its handler\n");
        super::semihosting::exit(tricolor_abi::exit::EARLY_EXCEPTION);
    }
    // SAFETY: the only non-zero value ever stored in HANDLER is a `Handler` fn pointer (set_handler).
    let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(Exception::from_vector(vector), frame);
}
