//! Host-test stand-ins for the hardware: a `std`-backed [`TestHal`], the device side of a split
//! virtqueue ([`DeviceQueue`]), a device thread, a virtio-mmio register model and a simulated
//! GPU. Device code reads the rings through the same `RingView` as the driver, with the
//! device's half of each ordering rule, so Miri checks the pairing.

pub mod device_queue;
pub mod device_thread;
pub mod gpu;
pub mod hal;
pub mod mmio;
pub mod rng;

pub use device_queue::{Chain, DeviceQueue};
pub use device_thread::{DeviceThread, Doorbell, InterruptTiming, IrqLine};
pub use hal::TestHal;
