//! The one error type of the crate: every way a device or the driver can fail, with a message
//! that says what was expected and what was found.

use core::fmt;

/// Everything that can go wrong talking to a virtio device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The MagicValue register did not read "virt" (0x74726976): no virtio-mmio device here.
    BadMagic(u32),
    /// The device speaks the legacy (version 1) virtio-mmio interface. tricolor only drives
    /// modern devices: run QEMU with `-global virtio-mmio.force-legacy=false`.
    LegacyDevice,
    /// The Version register held something other than 1 (legacy) or 2 (modern).
    UnsupportedVersion(u32),
    /// The slot is empty (DeviceID 0): QEMU leaves unused virtio-mmio slots like this.
    NoDevice,
    /// A device of another type sits in this slot.
    WrongDevice {
        /// The device id the driver wanted (e.g. 16 for GPU).
        expected: u32,
        /// The device id the DeviceID register reported.
        found: u32,
    },
    /// The device does not offer features the driver requires (bit mask of the missing ones).
    FeatureNegotiationFailed {
        /// Required feature bits the device did not offer.
        missing: u64,
    },
    /// The device cleared FEATURES_OK after the driver wrote its feature subset: it cannot work
    /// with what the driver accepted.
    FeaturesRejected,
    /// The device set DEVICE_NEEDS_RESET in its status byte.
    DeviceNeedsReset,
    /// The queue does not exist (QueueNumMax reads 0) or is already live (QueueReady reads 1).
    QueueUnavailable {
        /// The queue index that was selected.
        queue: u16,
    },
    /// A queue size that is zero, not a power of two, or larger than the device's maximum.
    InvalidQueueSize {
        /// The size asked for.
        requested: u16,
        /// The largest size the device accepts.
        max: u32,
    },
    /// The Hal could not provide DMA memory.
    DmaAllocationFailed {
        /// Number of pages asked for.
        pages: usize,
    },
    /// Not enough free descriptors for the buffer chain.
    QueueFull {
        /// Descriptors the chain needs.
        needed: usize,
        /// Descriptors currently free.
        free: u16,
    },
    /// A chain with no buffers, or a buffer of length 0.
    EmptyBuffer,
    /// A wait exceeded its spin budget. The request stays with the device; the driver reports the
    /// command failed and goes on.
    Timeout {
        /// Poll iterations spent before giving up.
        spins: u64,
    },
    /// The device put an id in the used ring that is not the head of any outstanding chain.
    BadUsedId(u32),
    /// The device reported writing more bytes into a chain than its writable buffers hold
    /// (2.7.8.1: the device MUST write at least `len` bytes). The chain is returned to the free
    /// list; its data must not be trusted.
    BadUsedLen {
        /// The chain's head descriptor.
        id: u32,
        /// Bytes the device claims it wrote.
        len: u32,
        /// Bytes the chain's device-writable buffers hold.
        writable: u64,
    },
    /// The device published a used.idx more entries ahead than there are chains in flight: the
    /// slots past those are not completions (a broken or hostile device). Nothing is consumed;
    /// reset the device.
    UsedIndexJump {
        /// The used.idx the device published.
        used_idx: u16,
        /// The driver's position in the used ring.
        consumed: u16,
        /// Chains the device holds.
        in_flight: u16,
    },
    /// The previous command timed out and the device still owns its buffers.
    Busy,
    /// The device wrote fewer response bytes than the response type needs.
    ResponseTooShort {
        /// Bytes the response needs.
        expected: usize,
        /// Bytes the device reported writing.
        written: u32,
    },
    /// The device answered a command with an error or unexpected response type.
    DeviceError {
        /// Command type that was sent (e.g. 0x0101 RESOURCE_CREATE_2D).
        command: u32,
        /// Response type that came back (e.g. 0x1203 ERR_INVALID_RESOURCE_ID).
        response: u32,
    },
    /// The device reports no enabled scanout (display) at all.
    NoDisplay,
    /// A request argument the driver refuses before it reaches the device.
    InvalidArgument(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadMagic(v) => write!(f, "bad magic {v:#010x} (want 0x74726976 \"virt\")"),
            Error::LegacyDevice => {
                write!(f, "legacy virtio-mmio device (version 1); use -global virtio-mmio.force-legacy=false")
            }
            Error::UnsupportedVersion(v) => write!(f, "unsupported virtio-mmio version {v}"),
            Error::NoDevice => write!(f, "no device in this virtio-mmio slot (device id 0)"),
            Error::WrongDevice { expected, found } => {
                write!(f, "wrong device: want id {expected}, found {found}")
            }
            Error::FeatureNegotiationFailed { missing } => {
                write!(f, "feature negotiation failed: device lacks {missing:#x}")
            }
            Error::FeaturesRejected => write!(f, "device cleared FEATURES_OK"),
            Error::DeviceNeedsReset => write!(f, "device set DEVICE_NEEDS_RESET"),
            Error::QueueUnavailable { queue } => write!(f, "queue {queue} unavailable"),
            Error::InvalidQueueSize { requested, max } => {
                write!(f, "invalid queue size {requested} (power of two, at most {max})")
            }
            Error::DmaAllocationFailed { pages } => write!(f, "DMA allocation of {pages} pages failed"),
            Error::QueueFull { needed, free } => {
                write!(f, "queue full: chain needs {needed} descriptors, {free} free")
            }
            Error::EmptyBuffer => write!(f, "empty buffer or chain"),
            Error::Timeout { spins } => write!(f, "timed out after {spins} polls"),
            Error::BadUsedId(id) => write!(f, "device returned unknown descriptor id {id}"),
            Error::BadUsedLen { id, len, writable } => {
                write!(f, "device claims {len} bytes written into chain {id}, whose writable buffers hold {writable}")
            }
            Error::UsedIndexJump { used_idx, consumed, in_flight } => write!(
                f,
                "device published used.idx {used_idx}, {} entries past the driver's {consumed}, with only {in_flight} chains in flight",
                used_idx.wrapping_sub(consumed)
            ),
            Error::Busy => write!(f, "device still owns the buffers of a timed-out command"),
            Error::ResponseTooShort { expected, written } => {
                write!(f, "response too short: {written} bytes, need {expected}")
            }
            Error::DeviceError { command, response } => {
                write!(f, "command {command:#06x} failed: response {response:#06x}")
            }
            Error::NoDisplay => write!(f, "no enabled scanout"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

/// Short for `Result<T, virtio::Error>`.
pub type Result<T = ()> = core::result::Result<T, Error>;
