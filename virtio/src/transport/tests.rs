//! virtio-mmio transport tests: against a register block in plain memory (the volatile path)
//! and against the register model (the handshake and queue registers).

use core::ptr::NonNull;

use super::mmio::MmioTransport;
use super::mmio_regs::{Reg, MAGIC, SLOT_SIZE};
use super::*;
use crate::queue::QueueAddresses;
use crate::sim::mmio::FakeMmio;

/// A register block in ordinary memory, as the volatile accessor sees a device.
fn memory_block(magic: u32, version: u32, id: u32) -> Box<[u32; SLOT_SIZE / 4]> {
    let mut m = Box::new([0u32; SLOT_SIZE / 4]);
    m[Reg::MagicValue as usize / 4] = magic;
    m[Reg::Version as usize / 4] = version;
    m[Reg::DeviceId as usize / 4] = id;
    m[Reg::VendorId as usize / 4] = 0x554d_4551;
    m[0x100 / 4 + 2] = 1; // GPU config: num_scanouts
    m
}

fn probe(block: &mut [u32; SLOT_SIZE / 4]) -> Result<MmioTransport> {
    let base = NonNull::from(block).cast::<u8>();
    // SAFETY: the block is SLOT_SIZE bytes, 4-aligned, lives until the end of the test and is
    // only accessed through the transport meanwhile.
    unsafe { MmioTransport::new(base) }
}

#[test]
fn probe_checks_magic_version_and_device_id_in_memory_block() {
    assert_eq!(probe(&mut memory_block(0xdead_beef, 2, 16)).err(), Some(Error::BadMagic(0xdead_beef)));
    assert_eq!(probe(&mut memory_block(MAGIC, 1, 16)).err(), Some(Error::LegacyDevice));
    assert_eq!(probe(&mut memory_block(MAGIC, 3, 16)).err(), Some(Error::UnsupportedVersion(3)));
    assert_eq!(probe(&mut memory_block(MAGIC, 2, 0)).err(), Some(Error::NoDevice));
    let mut block = memory_block(MAGIC, 2, 16);
    let mut t = probe(&mut block).unwrap();
    assert_eq!(t.device_id(), device_id::GPU);
    assert_eq!(t.vendor_id(), 0x554d_4551);
    assert_eq!(t.read_config_u32(8), 1);
    t.set_status(DeviceStatus::ACKNOWLEDGE);
    t.setup_queue(0, 64, QueueAddresses { desc: 0x1_2345_6000, driver: 0x1_2345_7000, device: 0x2_0000_0000 });
    t.notify(0);
    let at = |r: Reg| block[r as usize / 4];
    assert_eq!(at(Reg::Status), 1);
    assert_eq!((at(Reg::QueueNum), at(Reg::QueueReady)), (64, 1));
    assert_eq!((at(Reg::QueueDescLow), at(Reg::QueueDescHigh)), (0x2345_6000, 1));
    assert_eq!((at(Reg::QueueDriverLow), at(Reg::QueueDriverHigh)), (0x2345_7000, 1));
    assert_eq!((at(Reg::QueueDeviceLow), at(Reg::QueueDeviceHigh)), (0, 2));
}

#[test]
fn identify_tells_empty_legacy_and_modern_slots_apart() {
    let id = |magic, version, device| {
        let block = memory_block(magic, version, device);
        let base = NonNull::from(&*block).cast::<u8>();
        // SAFETY: as in `probe`; identify only reads.
        let regs = unsafe { super::mmio_regs::VolatileRegisters::new(base) };
        super::mmio::identify(&regs)
    };
    use super::mmio::Identity;
    assert_eq!(id(MAGIC, 1, 0), Ok(Identity { version: 1, device_id: 0 }), "a legacy empty slot");
    assert_eq!(id(MAGIC, 1, 16), Ok(Identity { version: 1, device_id: 16 }), "a legacy GPU");
    assert_eq!(id(MAGIC, 2, 16), Ok(Identity { version: 2, device_id: 16 }));
    assert_eq!(id(0, 2, 16), Err(Error::BadMagic(0)));
}

#[test]
fn handshake_negotiates_features_and_walks_the_status_byte() {
    let offered = features::VERSION_1 | features::RING_EVENT_IDX | features::RING_INDIRECT_DESC | 1;
    let fake = FakeMmio::new(device_id::GPU, offered, 128);
    let mut t = MmioTransport::with_registers(fake.clone()).unwrap();
    assert_eq!(t.device_features(), offered, "both 32-bit words read through DeviceFeaturesSel");
    let got = t.begin_init(0, features::RING_EVENT_IDX).unwrap();
    assert_eq!(got, features::VERSION_1 | features::RING_EVENT_IDX);
    assert_eq!(fake.with(|s| s.driver_features), got);
    t.attach_queue(0, 64, QueueAddresses { desc: 0x1000, driver: 0x2000, device: 0x3000 }).unwrap();
    assert_eq!(
        t.attach_queue(0, 64, QueueAddresses { desc: 0x1000, driver: 0x2000, device: 0x3000 }),
        Err(Error::QueueUnavailable { queue: 0 }),
        "already ready"
    );
    t.finish_init().unwrap();
    let (writes, q) = fake.with(|s| (s.status_writes.clone(), s.queues[0]));
    assert_eq!(writes, [0, 1, 3, 11, 15], "reset, ACK, DRIVER, FEATURES_OK, DRIVER_OK");
    assert_eq!((q.num, q.ready, q.desc, q.driver, q.device), (64, 1, 0x1000, 0x2000, 0x3000));
    t.reset().unwrap();
    assert_eq!(fake.with(|s| s.queues[0].ready), 0);
}

#[test]
fn negotiation_failures_set_failed() {
    // No VERSION_1: a legacy-only feature set.
    let fake = FakeMmio::new(device_id::GPU, features::RING_EVENT_IDX, 128);
    let mut t = MmioTransport::with_registers(fake.clone()).unwrap();
    assert_eq!(t.begin_init(0, 0), Err(Error::FeatureNegotiationFailed { missing: features::VERSION_1 }));
    assert!(t.status().contains(DeviceStatus::FAILED));
    // Device refuses FEATURES_OK.
    let fake = FakeMmio::new(device_id::GPU, features::VERSION_1, 128);
    fake.with(|s| s.reject_features_ok = true);
    let mut t = MmioTransport::with_registers(fake.clone()).unwrap();
    assert_eq!(t.begin_init(0, 0), Err(Error::FeaturesRejected));
    assert!(t.status().contains(DeviceStatus::FAILED));
    // Queue bigger than the device allows; queue that does not exist.
    let fake = FakeMmio::new(device_id::GPU, features::VERSION_1, 16);
    let mut t = MmioTransport::with_registers(fake).unwrap();
    let a = QueueAddresses { desc: 0, driver: 0, device: 0 };
    assert_eq!(t.attach_queue(0, 32, a), Err(Error::InvalidQueueSize { requested: 32, max: 16 }));
    assert_eq!(t.max_queue_size(5), 0);
}

#[test]
fn wrong_device_is_named() {
    let fake = FakeMmio::new(device_id::NET, features::VERSION_1, 16);
    assert_eq!(
        MmioTransport::with_registers_for(fake, device_id::GPU).err(),
        Some(Error::WrongDevice { expected: 16, found: 1 })
    );
}

#[test]
fn interrupts_are_read_and_acknowledged() {
    let fake = FakeMmio::new(device_id::GPU, features::VERSION_1, 16);
    let mut t = MmioTransport::with_registers(fake.clone()).unwrap();
    fake.irq.status.store(3, std::sync::atomic::Ordering::Relaxed);
    let s = t.ack_interrupt();
    assert!(s.used_buffer() && s.config_change());
    assert_eq!(fake.with(|s| s.acks.clone()), [3]);
    assert_eq!(t.ack_interrupt(), InterruptStatus(0));
    assert_eq!(fake.with(|s| s.acks.len()), 1, "nothing to acknowledge, nothing written");
}
