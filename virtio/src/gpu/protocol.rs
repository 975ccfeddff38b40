//! VirtIO GPU wire format (virtio 1.2, 5.7.6): the 2D subset tricolor uses. Every struct is
//! `repr(C)` with explicit padding, little-endian on the wire, and its size is asserted against
//! the spec so a field slip fails the build. The simulated GPU decodes requests by the spec's
//! byte offsets, not by these structs, which checks the layouts a second way.

use core::mem::size_of;

use static_assertions::const_assert_eq;

/// Control queue index.
pub const CONTROL_QUEUE: u16 = 0;
/// Cursor queue index (unused by tricolor).
pub const CURSOR_QUEUE: u16 = 1;
/// Scanouts a device can report (VIRTIO_GPU_MAX_SCANOUTS).
pub const MAX_SCANOUTS: usize = 16;

/// Config space offsets (`struct virtio_gpu_config`).
pub mod config {
    /// `events_read`.
    pub const EVENTS_READ: usize = 0;
    /// `events_clear`.
    pub const EVENTS_CLEAR: usize = 4;
    /// `num_scanouts`.
    pub const NUM_SCANOUTS: usize = 8;
}

/// Command types (`enum virtio_gpu_ctrl_type`), the 2D ones.
pub mod cmd {
    /// VIRTIO_GPU_CMD_GET_DISPLAY_INFO.
    pub const GET_DISPLAY_INFO: u32 = 0x0100;
    /// VIRTIO_GPU_CMD_RESOURCE_CREATE_2D.
    pub const RESOURCE_CREATE_2D: u32 = 0x0101;
    /// VIRTIO_GPU_CMD_RESOURCE_UNREF.
    pub const RESOURCE_UNREF: u32 = 0x0102;
    /// VIRTIO_GPU_CMD_SET_SCANOUT.
    pub const SET_SCANOUT: u32 = 0x0103;
    /// VIRTIO_GPU_CMD_RESOURCE_FLUSH.
    pub const RESOURCE_FLUSH: u32 = 0x0104;
    /// VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D.
    pub const TRANSFER_TO_HOST_2D: u32 = 0x0105;
    /// VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING.
    pub const RESOURCE_ATTACH_BACKING: u32 = 0x0106;
    /// VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING.
    pub const RESOURCE_DETACH_BACKING: u32 = 0x0107;
}

/// Response types.
pub mod resp {
    /// VIRTIO_GPU_RESP_OK_NODATA.
    pub const OK_NODATA: u32 = 0x1100;
    /// VIRTIO_GPU_RESP_OK_DISPLAY_INFO.
    pub const OK_DISPLAY_INFO: u32 = 0x1101;
    /// VIRTIO_GPU_RESP_ERR_UNSPEC.
    pub const ERR_UNSPEC: u32 = 0x1200;
    /// VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY.
    pub const ERR_OUT_OF_MEMORY: u32 = 0x1201;
    /// VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID.
    pub const ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
    /// VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID.
    pub const ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
    /// VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID.
    pub const ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
    /// VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER.
    pub const ERR_INVALID_PARAMETER: u32 = 0x1205;
}

/// Pixel formats (`enum virtio_gpu_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Format {
    /// Bytes B, G, R, A in memory (a little-endian u32 0xAARRGGBB).
    B8G8R8A8Unorm = 1,
    /// Bytes B, G, R, X.
    B8G8R8X8Unorm = 2,
    /// Bytes A, R, G, B.
    A8R8G8B8Unorm = 3,
    /// Bytes X, R, G, B.
    X8R8G8B8Unorm = 4,
}

impl Format {
    /// Bytes per pixel (all 2D formats here are 32-bit).
    pub const BYTES_PER_PIXEL: u32 = 4;
}

/// `struct virtio_gpu_ctrl_hdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlHeader {
    /// Command or response type.
    pub kind: u32,
    /// VIRTIO_GPU_FLAG_FENCE etc.
    pub flags: u32,
    /// Fence id when flagged.
    pub fence_id: u64,
    /// 3D context (0 for 2D).
    pub ctx_id: u32,
    /// Ring index (VIRTIO_GPU_F_CONTEXT_INIT), 0 here.
    pub ring_idx: u8,
    /// Padding.
    pub padding: [u8; 3],
}

impl CtrlHeader {
    /// A header for command `kind`.
    pub const fn command(kind: u32) -> Self {
        Self { kind, flags: 0, fence_id: 0, ctx_id: 0, ring_idx: 0, padding: [0; 3] }
    }
}

/// `struct virtio_gpu_rect`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// A rectangle.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self { x, y, width, height }
    }

    /// Whether it lies inside a `width` x `height` surface and is not empty.
    pub const fn fits_in(&self, width: u32, height: u32) -> bool {
        self.width > 0
            && self.height > 0
            && self.x as u64 + self.width as u64 <= width as u64
            && self.y as u64 + self.height as u64 <= height as u64
    }
}

/// One scanout in `struct virtio_gpu_resp_display_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisplayOne {
    /// Preferred position and size.
    pub rect: Rect,
    /// Non-zero if the scanout is enabled.
    pub enabled: u32,
    /// Flags.
    pub flags: u32,
}

/// `struct virtio_gpu_resp_display_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RespDisplayInfo {
    /// Response header (OK_DISPLAY_INFO).
    pub header: CtrlHeader,
    /// Scanouts.
    pub modes: [DisplayOne; MAX_SCANOUTS],
}

/// `struct virtio_gpu_resource_create_2d`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceCreate2d {
    /// RESOURCE_CREATE_2D.
    pub header: CtrlHeader,
    /// Id chosen by the driver (non-zero).
    pub resource_id: u32,
    /// [`Format`].
    pub format: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// `struct virtio_gpu_resource_attach_backing`, followed on the wire by `nr_entries`
/// [`MemEntry`]s.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceAttachBacking {
    /// RESOURCE_ATTACH_BACKING.
    pub header: CtrlHeader,
    /// Resource.
    pub resource_id: u32,
    /// Number of entries that follow.
    pub nr_entries: u32,
}

/// `struct virtio_gpu_mem_entry`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemEntry {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub length: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct virtio_gpu_set_scanout`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetScanout {
    /// SET_SCANOUT.
    pub header: CtrlHeader,
    /// Area of the resource shown.
    pub rect: Rect,
    /// Scanout (display) index.
    pub scanout_id: u32,
    /// Resource shown (0 disables the scanout).
    pub resource_id: u32,
}

/// `struct virtio_gpu_transfer_to_host_2d`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferToHost2d {
    /// TRANSFER_TO_HOST_2D.
    pub header: CtrlHeader,
    /// Area to copy.
    pub rect: Rect,
    /// Byte offset in the backing of the rectangle's first pixel.
    pub offset: u64,
    /// Resource.
    pub resource_id: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct virtio_gpu_resource_flush`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceFlush {
    /// RESOURCE_FLUSH.
    pub header: CtrlHeader,
    /// Area to show.
    pub rect: Rect,
    /// Resource.
    pub resource_id: u32,
    /// Padding.
    pub padding: u32,
}

// Sizes from the spec's struct definitions (5.7.6.7 / 5.7.6.8).
const_assert_eq!(size_of::<CtrlHeader>(), 24);
const_assert_eq!(size_of::<Rect>(), 16);
const_assert_eq!(size_of::<DisplayOne>(), 24);
const_assert_eq!(size_of::<RespDisplayInfo>(), 24 + 16 * 24);
const_assert_eq!(size_of::<ResourceCreate2d>(), 40);
const_assert_eq!(size_of::<ResourceAttachBacking>(), 32);
const_assert_eq!(size_of::<MemEntry>(), 16);
const_assert_eq!(size_of::<SetScanout>(), 48);
const_assert_eq!(size_of::<TransferToHost2d>(), 56);
const_assert_eq!(size_of::<ResourceFlush>(), 48);

/// A request struct that starts with a [`CtrlHeader`] and has no padding holes: safe to copy
/// byte-for-byte into a DMA buffer.
///
/// # Safety
///
/// Implementors are `repr(C)`, contain only integers and byte arrays, and have no implicit
/// padding (checked by the size assertions above).
pub unsafe trait Request: Copy {
    /// The command type in the header.
    fn kind(&self) -> u32;
}

macro_rules! request {
    ($($t:ty),*) => {$(
        // SAFETY: repr(C), integer fields only, sizes asserted equal to the sum of the fields.
        unsafe impl Request for $t {
            fn kind(&self) -> u32 {
                self.header.kind
            }
        }
    )*};
}
request!(ResourceCreate2d, ResourceAttachBacking, SetScanout, TransferToHost2d, ResourceFlush);

// SAFETY: a bare header is 24 bytes of integers with explicit padding bytes.
unsafe impl Request for CtrlHeader {
    fn kind(&self) -> u32 {
        self.kind
    }
}
