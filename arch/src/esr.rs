//! Exception syndrome decoding (ESR_ELx), so a fault report names what happened instead of
//! printing a hex word. Pure logic: tested on the host.

/// The fields of an ESR_ELx value that a fault report needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syndrome {
    /// Exception class, ESR bits [31:26].
    pub ec: u8,
    /// Instruction length bit: 1 for a 32-bit instruction.
    pub il: bool,
    /// Instruction-specific syndrome, ESR bits [24:0].
    pub iss: u32,
}

impl Syndrome {
    /// Splits a raw ESR value into its fields.
    pub const fn from_raw(esr: u64) -> Self {
        Self { ec: ((esr >> 26) & 0x3f) as u8, il: (esr >> 25) & 1 == 1, iss: (esr & 0x1ff_ffff) as u32 }
    }

    /// The architecture's name for the exception class.
    pub fn class_name(&self) -> &'static str {
        match self.ec {
            0x00 => "unknown reason",
            0x01 => "trapped WFI/WFE",
            0x07 => "trapped SVE/SIMD/FP access",
            0x0e => "illegal execution state",
            0x15 => "SVC from AArch64",
            0x16 => "HVC from AArch64",
            0x17 => "SMC from AArch64",
            0x18 => "trapped MSR/MRS/system instruction",
            0x20 => "instruction abort from a lower EL",
            0x21 => "instruction abort from the current EL",
            0x22 => "PC alignment fault",
            0x24 => "data abort from a lower EL",
            0x25 => "data abort from the current EL",
            0x26 => "SP alignment fault",
            0x2c => "trapped floating-point exception",
            0x2f => "SError",
            0x30 | 0x31 => "breakpoint",
            0x32 | 0x33 => "software step",
            0x34 | 0x35 => "watchpoint",
            0x3c => "BRK instruction",
            _ => "reserved/unrecognised class",
        }
    }

    /// True for instruction and data aborts, whose FAR holds the faulting address.
    pub fn is_abort(&self) -> bool {
        matches!(self.ec, 0x20 | 0x21 | 0x24 | 0x25)
    }

    /// True for a data abort (the access was a load or a store, not an instruction fetch).
    pub fn is_data_abort(&self) -> bool {
        matches!(self.ec, 0x24 | 0x25)
    }

    /// For data aborts: whether the faulting access was a write (ISS.WnR).
    pub fn is_write(&self) -> bool {
        self.is_data_abort() && (self.iss >> 6) & 1 == 1
    }

    /// For aborts: the fault status code (DFSC/IFSC, ISS bits [5:0]) described in words.
    pub fn fault_status(&self) -> Option<&'static str> {
        if !self.is_abort() {
            return None;
        }
        Some(match self.iss & 0x3f {
            0x00..=0x03 => "address size fault",
            0x04..=0x07 => "translation fault",
            0x09..=0x0b => "access flag fault",
            0x0d..=0x0f => "permission fault",
            0x10 => "synchronous external abort",
            0x21 => "alignment fault",
            0x30 => "TLB conflict abort",
            _ => "other fault status",
        })
    }

    /// For translation/access/permission faults: the translation table level (0..=3).
    pub fn fault_level(&self) -> Option<u8> {
        let fsc = self.iss & 0x3f;
        (self.is_abort() && (0x04..=0x0f).contains(&fsc)).then_some((fsc & 3) as u8)
    }

    /// True when the abort is a translation fault: the address is not mapped at all
    /// (an unmapped guard page, for instance).
    pub fn is_translation_fault(&self) -> bool {
        self.is_abort() && (0x04..=0x07).contains(&(self.iss & 0x3f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_level3_translation_fault_on_a_store() {
        // EC=0x25 (data abort, current EL), IL=1, WnR=1, DFSC=0b000111 (translation, level 3).
        let esr = (0x25u64 << 26) | (1 << 25) | (1 << 6) | 0x07;
        let s = Syndrome::from_raw(esr);
        assert_eq!(s.ec, 0x25);
        assert!(s.il);
        assert_eq!(s.class_name(), "data abort from the current EL");
        assert!(s.is_write());
        assert_eq!(s.fault_status(), Some("translation fault"));
        assert_eq!(s.fault_level(), Some(3));
        assert!(s.is_translation_fault());
    }

    #[test]
    fn a_brk_is_not_an_abort() {
        let s = Syndrome::from_raw((0x3cu64 << 26) | (1 << 25) | 0x42);
        assert_eq!(s.class_name(), "BRK instruction");
        assert!(!s.is_abort());
        assert_eq!(s.fault_status(), None);
        assert_eq!(s.fault_level(), None);
        assert!(!s.is_write());
    }

    #[test]
    fn permission_and_alignment_faults_are_told_apart() {
        let perm = Syndrome::from_raw((0x25u64 << 26) | 0x0f);
        assert_eq!(perm.fault_status(), Some("permission fault"));
        assert!(!perm.is_translation_fault());
        let align = Syndrome::from_raw((0x25u64 << 26) | 0x21);
        assert_eq!(align.fault_status(), Some("alignment fault"));
        assert_eq!(align.fault_level(), None);
    }
}
