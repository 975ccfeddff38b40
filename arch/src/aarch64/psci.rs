//! PSCI (Power State Coordination Interface) calls, through the conduit the device tree names.

/// How PSCI calls reach the firmware/hypervisor: `/psci/method` in the device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`: PSCI implemented at EL2 (QEMU's built-in PSCI when it has no EL2 guest).
    Hvc,
    /// `smc #0`: PSCI implemented at EL3.
    Smc,
}

impl Conduit {
    /// Parses the device tree's `method` property.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "hvc" => Some(Self::Hvc),
            "smc" => Some(Self::Smc),
            _ => None,
        }
    }
}

/// A PSCI error return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    NotSupported,
    InvalidParameters,
    Denied,
    AlreadyOn,
    OnPending,
    InternalFailure,
    NotPresent,
    Disabled,
    InvalidAddress,
    Unknown(i64),
}

impl PsciError {
    fn from_code(code: i64) -> Self {
        match code {
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::Denied,
            -4 => Self::AlreadyOn,
            -5 => Self::OnPending,
            -6 => Self::InternalFailure,
            -7 => Self::NotPresent,
            -8 => Self::Disabled,
            -9 => Self::InvalidAddress,
            other => Self::Unknown(other),
        }
    }
}

const CPU_ON_64: u64 = 0xc400_0003;
const SYSTEM_OFF: u64 = 0x8400_0008;

fn call(conduit: Conduit, function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call: x0 = function id, x1..x3 arguments, result in x0. The SMCCC lets the
    // callee clobber x0..x17, so all of them are declared clobbered.
    unsafe {
        match conduit {
            Conduit::Hvc => core::arch::asm!("hvc #0",
                inout("x0") function => ret, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, options(nostack)),
            Conduit::Smc => core::arch::asm!("smc #0",
                inout("x0") function => ret, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, options(nostack)),
        }
    }
    ret as i64
}

/// Starts the core with affinity `mpidr` at physical address `entry`, with `context` in its x0.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match call(conduit, CPU_ON_64, mpidr, entry, context) {
        0 => Ok(()),
        code => Err(PsciError::from_code(code)),
    }
}

/// Powers the machine off (no exit status: prefer semihosting's exit under QEMU).
pub fn system_off(conduit: Conduit) -> ! {
    call(conduit, SYSTEM_OFF, 0, 0, 0);
    loop {
        aarch64_cpu::asm::wfe();
    }
}
