//! A simulated VirtIO GPU: decodes requests by the spec's byte offsets (5.7.6), keeps resources,
//! backings and scanouts, copies pixels on TRANSFER_TO_HOST_2D, and answers like QEMU, with a
//! display of 1280x720. Error responses can be injected per command type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::device_queue::Chain;
use crate::gpu::protocol::{cmd, resp};

/// Display size the simulated GPU reports by default (QEMU's default mode).
pub const WIDTH: u32 = 1280;
/// Display size the simulated GPU reports by default.
pub const HEIGHT: u32 = 720;

/// A resource on the simulated host.
#[derive(Debug, Default, Clone)]
pub struct Resource {
    /// Format code.
    pub format: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Backing (addr, len) entries.
    pub backing: Vec<(u64, u32)>,
    /// Host copy of the pixels (u32 per pixel), filled by transfers.
    pub pixels: Vec<u32>,
}

/// What the simulated GPU saw and holds; tests look inside.
#[derive(Debug, Default)]
pub struct GpuState {
    /// Reported display size.
    pub display: (u32, u32),
    /// While set, the device holds the current request without answering (a hung device).
    pub stall: bool,
    /// (command type, request bytes) in arrival order.
    pub log: Vec<(u32, Vec<u8>)>,
    /// Resources by id.
    pub resources: HashMap<u32, Resource>,
    /// Resource shown on scanout 0.
    pub scanout: Option<u32>,
    /// Flushed rectangles (x, y, w, h).
    pub flushes: Vec<(u32, u32, u32, u32)>,
    /// Answer this command type with this response type instead of executing it.
    pub inject_error: Option<(u32, u32)>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn header(kind: u32) -> Vec<u8> {
    let mut h = vec![0u8; 24];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h
}

impl GpuState {
    /// A GPU with a `width` x `height` display, shared with the device thread.
    pub fn shared(width: u32, height: u32) -> Arc<Mutex<GpuState>> {
        Arc::new(Mutex::new(GpuState { display: (width, height), ..Default::default() }))
    }
}

/// Spec request sizes (struct virtio_gpu_*), checked against the readable bytes received.
fn request_len(kind: u32) -> Option<usize> {
    Some(match kind {
        cmd::GET_DISPLAY_INFO => 24,
        cmd::RESOURCE_CREATE_2D => 40,
        cmd::SET_SCANOUT => 48,
        cmd::RESOURCE_FLUSH => 48,
        cmd::TRANSFER_TO_HOST_2D => 56,
        cmd::RESOURCE_ATTACH_BACKING => 32,
        _ => return None,
    })
}

/// Serves one control-queue chain; returns response bytes written.
pub fn serve(state: &Arc<Mutex<GpuState>>, chain: &Chain) -> u32 {
    let req = chain.read_all();
    while state.lock().unwrap().stall {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut s = state.lock().unwrap();
    let kind = u32_at(&req, 0);
    s.log.push((kind, req.clone()));
    let reply = |bytes: Vec<u8>| chain.write_all(&bytes);
    let Some(len) = request_len(kind) else { return reply(header(resp::ERR_UNSPEC)) };
    // Every request is exactly its spec size (attach backing: header + nr_entries * 16).
    let expected = if kind == cmd::RESOURCE_ATTACH_BACKING { len + 16 * u32_at(&req, 28) as usize } else { len };
    assert_eq!(req.len(), expected, "request {kind:#x}: {} bytes, spec says {expected}", req.len());
    assert_eq!(&req[4..24], &[0u8; 20], "header flags/fence/ctx/ring/padding must be zero");
    if let Some((cmd, err)) = s.inject_error {
        if cmd == kind {
            return reply(header(err));
        }
    }
    match kind {
        cmd::GET_DISPLAY_INFO => {
            let mut r = header(resp::OK_DISPLAY_INFO);
            r.resize(24 + 16 * 24, 0);
            // pmodes[0]: rect {0, 0, W, H}, enabled 1.
            let (width, height) = s.display;
            r[24 + 8..24 + 12].copy_from_slice(&width.to_le_bytes());
            r[24 + 12..24 + 16].copy_from_slice(&height.to_le_bytes());
            r[24 + 16..24 + 20].copy_from_slice(&1u32.to_le_bytes());
            reply(r)
        }
        cmd::RESOURCE_CREATE_2D => {
            let (id, format, width, height) = (u32_at(&req, 24), u32_at(&req, 28), u32_at(&req, 32), u32_at(&req, 36));
            if id == 0 || s.resources.contains_key(&id) {
                return reply(header(resp::ERR_INVALID_RESOURCE_ID));
            }
            let pixels = vec![0; (width * height) as usize];
            s.resources.insert(id, Resource { format, width, height, backing: Vec::new(), pixels });
            reply(header(resp::OK_NODATA))
        }
        cmd::RESOURCE_ATTACH_BACKING => {
            let (id, n) = (u32_at(&req, 24), u32_at(&req, 28) as usize);
            let Some(r) = s.resources.get_mut(&id) else { return reply(header(resp::ERR_INVALID_RESOURCE_ID)) };
            r.backing = (0..n).map(|i| (u64_at(&req, 32 + 16 * i), u32_at(&req, 32 + 16 * i + 8))).collect();
            reply(header(resp::OK_NODATA))
        }
        cmd::SET_SCANOUT => {
            let (scanout, id) = (u32_at(&req, 40), u32_at(&req, 44));
            if scanout != 0 {
                return reply(header(resp::ERR_INVALID_SCANOUT_ID));
            }
            if id != 0 && !s.resources.contains_key(&id) {
                return reply(header(resp::ERR_INVALID_RESOURCE_ID));
            }
            s.scanout = (id != 0).then_some(id);
            reply(header(resp::OK_NODATA))
        }
        cmd::TRANSFER_TO_HOST_2D => {
            let (x, y, w, h) = (u32_at(&req, 24), u32_at(&req, 28), u32_at(&req, 32), u32_at(&req, 36));
            let (offset, id) = (u64_at(&req, 40), u32_at(&req, 48));
            let Some(r) = s.resources.get_mut(&id) else { return reply(header(resp::ERR_INVALID_RESOURCE_ID)) };
            if x + w > r.width || y + h > r.height {
                return reply(header(resp::ERR_INVALID_PARAMETER));
            }
            let stride = r.width as u64 * 4;
            for row in 0..h {
                for col in 0..w {
                    // Byte offset in the backing, as QEMU computes it for 2D transfers.
                    let at = offset + row as u64 * stride + col as u64 * 4;
                    let px = read_backing(&r.backing, at);
                    r.pixels[((y + row) * r.width + x + col) as usize] = px;
                }
            }
            reply(header(resp::OK_NODATA))
        }
        cmd::RESOURCE_FLUSH => {
            let id = u32_at(&req, 40);
            if !s.resources.contains_key(&id) {
                return reply(header(resp::ERR_INVALID_RESOURCE_ID));
            }
            let rect = (u32_at(&req, 24), u32_at(&req, 28), u32_at(&req, 32), u32_at(&req, 36));
            s.flushes.push(rect);
            reply(header(resp::OK_NODATA))
        }
        _ => reply(header(resp::ERR_UNSPEC)),
    }
}

/// Reads the pixel at byte `at` of a scatter-listed backing.
fn read_backing(backing: &[(u64, u32)], mut at: u64) -> u32 {
    for &(addr, len) in backing {
        if at < len as u64 {
            let p = (addr + at) as usize as *const u32;
            // SAFETY: the driver described this memory as the resource's backing and keeps it
            // alive; the test writes pixels before presenting, ordered by the avail.idx publish.
            return unsafe { p.read_unaligned() };
        }
        at -= len as u64;
    }
    panic!("transfer reads past the backing");
}
