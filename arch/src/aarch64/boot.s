// Boot entry for every core.
//
// Orientation: this is the only code that runs before Rust. It brings a core from whatever state
// QEMU (or PSCI CPU_ON) left it in to "EL1, FP/SIMD trapped, stacks set, vectors installed", then
// calls into Rust. Everything after that first call is Rust.
//
// Stacks: normal kernel code runs on SP_EL0 (SPSel = 0); exceptions are taken on SP_EL1, which we
// point at the core's exception stack. A stack overflow on SP_EL0 therefore still has a good stack to
// report it from.

.section .text.boot, "ax"
.global _start
_start:
    // Primary core. x0 holds a DTB pointer under the Linux boot protocol; QEMU's ELF loader leaves
    // it 0 and puts the DTB at the start of RAM. Rust decides which to use.
    mov     x19, x0
    mov     x20, #0                     // logical core index
    b       1f

.global _secondary_entry
_secondary_entry:
    // Secondary core started by PSCI CPU_ON: x0 = context id = logical core index.
    mov     x19, #0
    mov     x20, x0

1:  msr     daifset, #0xf               // no interrupts until the kernel asks for them
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #2
    b.lt    .Lat_el1
    b.gt    .Lpark                      // EL3: QEMU `secure=on` is not supported

    // EL2 -> EL1. HCR_EL2.RW = 1: EL1 runs AArch64.
    mov     x9, #(1 << 31)
    msr     hcr_el2, x9
    // CNTHCTL_EL2.EL1PCTEN | EL1PCEN: EL1 may read the physical counter and use the physical timer.
    mov     x9, #3
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    // GICv3 system-register interface, if this CPU has one (ID_AA64PFR0_EL1.GIC [27:24] != 0;
    // without it ICC_SRE_EL2 is UNDEFINED): ICC_SRE_EL2.SRE | DFB | DIB | Enable, so EL1 may use
    // ICC_*_EL1 instead of trapping here (Linux's booting.rst asks the same of whatever enters it
    // at EL1). The ISB makes the write visible to what follows (a direct system-register write).
    // QEMU implements SRE and Enable as read-as-one, so only hardware and firmware that leave
    // them clear need this.
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4
    cbz     x9, 4f
    mrs     x9, S3_4_C12_C9_5           // ICC_SRE_EL2
    orr     x9, x9, #0xf
    msr     S3_4_C12_C9_5, x9
    isb
4:
    // SCTLR_EL1: architecturally-required RES1 bits only (MMU, caches off until the kernel sets them).
    ldr     x9, =0x30d00800
    msr     sctlr_el1, x9
    // SPSR_EL2: return to EL1h with D, A, I, F masked.
    mov     x9, #0x3c5
    msr     spsr_el2, x9
    adr     x9, .Lat_el1
    msr     elr_el2, x9
    eret

.Lat_el1:
    // CPACR_EL1 = 0 (FPEN = 0b00, and SVE/SME off): every FP/SIMD instruction traps. The kernel is
    // built for aarch64-unknown-none-softfloat, so the compiler emits none; the exception entry
    // saves only general-purpose registers and the root scan reads only those, so FP/SIMD state
    // would be neither preserved across an interrupt nor scanned. Trapping makes any FP/SIMD
    // instruction that slips in (a hard-float dependency, hand-written assembly) a fault report
    // ("trapped SVE/SIMD/FP access") instead of silent corruption. Written, not left at reset:
    // CPACR_EL1's reset value is architecturally unknown.
    msr     cpacr_el1, xzr
    isb

    // This core's stack slot: __stacks_start + index * __stack_slot_size (layout in linker.ld).
    ldr     x9, =__stacks_start
    ldr     x10, =__stack_slot_size
    madd    x9, x20, x10, x9
    // The exception stack is the top of the slot; it becomes SP_EL1. TPIDR_EL0 (unused otherwise:
    // tricolor has no EL0) remembers its top for the nested-exception vectors in vectors.s.
    add     x11, x9, x10
    msr     tpidr_el0, x11
    msr     spsel, #1
    mov     sp, x11
    // The boot stack sits above the first guard page; it becomes SP_EL0, the one we run on.
    msr     spsel, #0
    ldr     x12, =__guard_size
    ldr     x13, =__boot_stack_size
    add     x11, x9, x12
    add     x11, x11, x13
    mov     sp, x11
    mov     x29, #0                     // end of the frame-pointer chain for backtraces
    mov     x30, #0

    adrp    x9, tricolor_exception_vectors
    add     x9, x9, :lo12:tricolor_exception_vectors
    msr     vbar_el1, x9
    isb

    cbnz    x20, .Lsecondary

    // Primary only: zero .bss (16-byte aligned at both ends, see linker.ld).
    ldr     x9, =__bss_start
    ldr     x10, =__bss_end
2:  cmp     x9, x10
    b.hs    3f
    stp     xzr, xzr, [x9], #16
    b       2b
3:  mov     x0, x19
    bl      tricolor_boot_primary
    b       .Lpark

.Lsecondary:
    mov     x0, x20
    bl      tricolor_boot_secondary

.Lpark:
    wfe
    b       .Lpark
