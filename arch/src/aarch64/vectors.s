// Exception vector table (VBAR_EL1) and the common save/restore path.
//
// Kernel code runs with SPSel = 0, so every exception we expect arrives through the
// "current EL with SP_EL0" group. Synchronous exceptions run on SP_EL1 = the core's exception
// stack (a stack overflow still gets a report); IRQs switch back to the interrupted stack (see
// tricolor_irq_common). The "current EL with SP_ELx" group means we faulted while already handling
// an exception.
//
// Trap frame (see TrapFrame in exception.rs, 288 bytes):
//   x0..x30 @ 0..248, sp_el0 @ 248, elr @ 256, spsr @ 264, esr @ 272, far @ 280

.equ FRAME_SIZE, 288

.macro VECTOR kind
.balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       tricolor_exception_common
.endm

.macro VECTOR_ON_INTERRUPTED_STACK kind
.balign 0x80
    msr     spsel, #0                       // back onto SP_EL0: see tricolor_irq_common
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       tricolor_irq_common
.endm

.macro VECTOR_NESTED kind
.balign 0x80
    // We faulted while on SP_EL1, possibly because the exception stack itself overflowed, so SP
    // cannot be trusted. A nested exception is fatal anyway: restart the exception stack from its
    // top (kept in TPIDR_EL0 by boot.s) so the report has a stack to run on. x0 is parked in
    // TPIDRRO_EL0 meanwhile because no register is free yet.
    msr     tpidrro_el0, x0
    mrs     x0, tpidr_el0
    mov     sp, x0
    mrs     x0, tpidrro_el0
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       tricolor_exception_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global tricolor_exception_vectors
tricolor_exception_vectors:
    // Current EL with SP_EL0: the normal case.
    VECTOR 0    // synchronous
    VECTOR_ON_INTERRUPTED_STACK 1    // IRQ
    VECTOR 2    // FIQ
    VECTOR 3    // SError
    // Current EL with SP_ELx: nested, i.e. we faulted inside an exception handler.
    VECTOR_NESTED 4
    VECTOR_NESTED 5
    VECTOR_NESTED 6
    VECTOR_NESTED 7
    // Lower EL, AArch64 and AArch32: tricolor has no EL0; any of these is a bug.
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15

// x2..x29 into the frame at SP (x0, x1 were stored by the vector).
.macro SAVE_GPRS
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
.endm

// ELR/SPSR back from the frame, then x0..x29 (x30 is the caller's business), pop the frame, return.
.macro RESTORE_AND_RETURN
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #FRAME_SIZE
    eret
.endm

// Synchronous exceptions and everything unexpected: on SP_EL1, the core's exception stack.
tricolor_exception_common:
    SAVE_GPRS
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    mrs     x1, esr_el1
    mrs     x2, far_el1
    stp     x1, x2, [sp, #272]
    mov     x1, sp
    bl      tricolor_exception_entry        // (vector, &mut TrapFrame); may edit the frame
    ldp     x30, x1, [sp, #240]
    msr     sp_el0, x1
    RESTORE_AND_RETURN

// IRQs from kernel code: on the interrupted stack (SP_EL0). The frame then lives on the stack of
// the task that was interrupted, so the handler may switch tasks (timer preemption) and the
// interrupted state travels with the task; the per-core exception stack holds nothing across a
// switch. Reading or writing SP_EL0 by name is not allowed while SPSel = 0, so the interrupted SP
// is derived from the frame's address.
tricolor_irq_common:
    SAVE_GPRS
    add     x1, sp, #FRAME_SIZE
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    stp     xzr, xzr, [sp, #272]            // no syndrome for an interrupt
    mov     x1, sp
    bl      tricolor_exception_entry
    ldr     x30, [sp, #240]
    RESTORE_AND_RETURN
