//! The register file a task is switched out with.
//!
//! AAPCS64 lets a called function clobber x0-x18 and v0-v7/v16-v31, so a cooperative switch
//! (a function call into `switch_context`) only has to keep what the callee must preserve:
//! x19-x28, the frame pointer x29, the link register x30, SP, and the low 64 bits of v8-v15
//! (d8-d15). Preemption goes through the same call from the timer handler, whose exception entry
//! has already saved the rest in its trap frame on the task's stack.
//!
//! The layout is `repr(C)` and its offsets are constants, because the aarch64 switch code
//! addresses the fields by offset.

use core::mem::offset_of;

/// Saved callee-saved state of a task that is not running.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// x19..=x28.
    pub x19_x28: [u64; 10],
    /// x29, the frame pointer.
    pub fp: u64,
    /// x30, the link register: where `switch_context` returns to when this task is resumed.
    pub lr: u64,
    /// The stack pointer.
    pub sp: u64,
    /// d8..=d15.
    pub d8_d15: [u64; 8],
}

/// Offset of `x19_x28` (x19 at +0, x20 at +8, ...).
pub const CONTEXT_X19: usize = offset_of!(Context, x19_x28);
/// Offset of `fp` (x29); `lr` (x30) follows at +8.
pub const CONTEXT_FP: usize = offset_of!(Context, fp);
/// Offset of `sp`.
pub const CONTEXT_SP: usize = offset_of!(Context, sp);
/// Offset of `d8_d15`.
pub const CONTEXT_D8: usize = offset_of!(Context, d8_d15);

// The switch code stores x29/x30 with one `stp` and x19..x28 with `stp` pairs: they must be
// adjacent and in this order.
static_assertions::const_assert_eq!(CONTEXT_X19, 0);
static_assertions::const_assert_eq!(CONTEXT_FP, 80);
static_assertions::const_assert_eq!(offset_of!(Context, lr), CONTEXT_FP + 8);
static_assertions::const_assert_eq!(CONTEXT_SP, 96);
static_assertions::const_assert_eq!(CONTEXT_D8, 104);

impl Context {
    /// The context of a task that has never run: switching to it "returns" into `trampoline`
    /// on a fresh stack whose top is `stack_top`, with x19 = `start`, x20 = `arg0`,
    /// x21 = `arg1`. The aarch64 trampoline calls `start(arg0, arg1)`, which must not return.
    /// The frame pointer is 0: a backtrace stops here.
    pub fn for_entry(stack_top: usize, trampoline: usize, start: usize, arg0: usize, arg1: usize) -> Context {
        assert!(stack_top.is_multiple_of(16), "SP must be 16-byte aligned");
        let mut c = Context { lr: trampoline as u64, sp: stack_top as u64, ..Context::default() };
        c.x19_x28[0] = start as u64;
        c.x19_x28[1] = arg0 as u64;
        c.x19_x28[2] = arg1 as u64;
        c
    }

    /// Every saved word, for the collector's conservative scan of a stopped task (a pointer may
    /// sit in any callee-saved register, including a d register the compiler spilled it to).
    pub fn words(&self) -> [u64; 21] {
        let mut w = [0u64; 21];
        w[..10].copy_from_slice(&self.x19_x28);
        w[10] = self.fp;
        w[11] = self.lr;
        w[12] = self.sp;
        w[13..].copy_from_slice(&self.d8_d15);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_context_puts_start_and_args_in_x19_to_x21() {
        let c = Context::for_entry(0x8000, 0x1111, 0x2222, 7, 9);
        assert_eq!(c.sp, 0x8000);
        assert_eq!(c.lr, 0x1111);
        assert_eq!(c.fp, 0);
        assert_eq!(&c.x19_x28[..3], &[0x2222, 7, 9]);
    }

    #[test]
    #[should_panic(expected = "16-byte aligned")]
    fn misaligned_entry_stack_is_rejected() {
        Context::for_entry(0x8008, 0, 0, 0, 0);
    }

    #[test]
    fn words_cover_every_register() {
        let mut c = Context::default();
        for (i, r) in c.x19_x28.iter_mut().enumerate() {
            *r = 100 + i as u64;
        }
        c.fp = 1;
        c.lr = 2;
        c.sp = 3;
        c.d8_d15 = [4; 8];
        let w = c.words();
        assert_eq!(w[0], 100);
        assert_eq!(w[9], 109);
        assert_eq!(&w[10..13], &[1, 2, 3]);
        assert!(w[13..].iter().all(|&x| x == 4));
    }
}
