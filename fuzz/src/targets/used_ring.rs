//! The split virtqueue's used-ring handling against a hostile device. The input is a script:
//! the driver submits chains, polls and toggles notifications; the device (the simulated
//! device queue, stepwise on one thread) completes chains honestly or lies: ids that head no
//! chain, lengths beyond the chain's writable buffers, used.idx jumps, scribbled slots, and
//! silence (the driver's bounded poll must time out). A model of the driver's outstanding
//! chains predicts every answer exactly; any difference, a broken free list, a panic or a hang
//! is a finding.

use std::collections::BTreeMap;

use crate::{Outcome, Target};
use tricolor_virtio::sim::{DeviceQueue, TestHal};
use tricolor_virtio::{Error, FenceStrategy, Segment, Token, Used, VirtQueue};

pub static TARGET: Target = Target { name: "used-ring", run, dictionary: &[], max_len: 256 };

/// The script's bytes, read front to back; exhausted reads give 0.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A chain the driver still owns, as the model sees it.
#[derive(Clone, Copy)]
struct Chain {
    descriptors: u16,
    writable: u64,
}

struct Model {
    size: u16,
    outstanding: BTreeMap<u16, Chain>,
    /// Used entries the driver has consumed (its last_used_idx).
    consumed: u16,
    /// What the device wrote into each used slot: (id, len).
    slots: Vec<(u32, u32)>,
}

impl Model {
    fn free(&self) -> u16 {
        self.size - self.outstanding.values().map(|c| c.descriptors).sum::<u16>()
    }

    /// What one try_pop_used must return with `published` = the device's used.idx.
    fn expect_pop(&mut self, published: u16) -> Result<Option<Used>, Error> {
        let pending = published.wrapping_sub(self.consumed);
        if pending == 0 {
            return Ok(None);
        }
        let in_flight = self.outstanding.len() as u16;
        if pending > in_flight {
            return Err(Error::UsedIndexJump { used_idx: published, consumed: self.consumed, in_flight });
        }
        let (id, len) = self.slots[(self.consumed % self.size) as usize];
        self.consumed = self.consumed.wrapping_add(1);
        let Some(chain) = (id < self.size as u32).then(|| self.outstanding.get(&(id as u16))).flatten().copied() else {
            return Err(Error::BadUsedId(id));
        };
        self.outstanding.remove(&(id as u16));
        if len as u64 > chain.writable {
            return Err(Error::BadUsedLen { id, len, writable: chain.writable });
        }
        Ok(Some(Used { token: Token(id as u16), len }))
    }
}

/// Which kinds of answer a script produced, as one label.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn note(&mut self, r: &Result<Option<Used>, Error>) {
        let bit = match r {
            Ok(None) => 0,
            Ok(Some(_)) => 1,
            Err(Error::BadUsedId(_)) => 2,
            Err(Error::BadUsedLen { .. }) => 3,
            Err(Error::UsedIndexJump { .. }) => 4,
            Err(Error::Timeout { .. }) => 5,
            Err(_) => 6,
        };
        self.0 |= 1 << bit;
    }
}

fn run(data: &[u8]) -> Outcome {
    let mut script = Script(data);
    let first = script.byte();
    let size = 2u16 << (first % 4);
    let event_idx = first & 0x10 != 0;
    let strategy = FenceStrategy::ALL[(first as usize >> 5) % FenceStrategy::ALL.len()];
    let mut q = VirtQueue::<TestHal>::new(0, size, strategy, event_idx).map_err(|e| format!("new: {e}"))?;
    // SAFETY: the rings belong to `q`, which outlives `dev` (declared later, dropped first).
    let mut dev = unsafe { DeviceQueue::attach(q.addresses(), q.size(), event_idx) };
    let mut model = Model { size, outstanding: BTreeMap::new(), consumed: 0, slots: vec![(0, 0); size as usize] };
    let mut held: Vec<tricolor_virtio::sim::Chain> = Vec::new();
    let mut seen = Seen::default();
    let mut step = 0;
    while !script.done() {
        step += 1;
        let op = script.byte() % 11;
        match op {
            // Driver: submit a chain of 0..=3 readable and 0..=3 writable buffers.
            0 | 1 => {
                let shape = script.byte();
                let lens: Vec<u32> = (0..(shape & 3) + (shape >> 2 & 3)).map(|_| script.u16() as u32 % 5000).collect();
                let segs: Vec<Segment> =
                    lens.iter().enumerate().map(|(k, &len)| Segment { phys: 0x1000 * (k as u64 + 1), len }).collect();
                let (readable, writable) = segs.split_at((shape & 3) as usize);
                let needed = segs.len();
                let expected: Result<(), Error> = if needed == 0 || lens.contains(&0) {
                    Err(Error::EmptyBuffer)
                } else if needed > model.free() as usize {
                    Err(Error::QueueFull { needed, free: model.free() })
                } else {
                    Ok(())
                };
                match (q.submit(readable, writable), expected) {
                    (Ok(token), Ok(())) => {
                        if model.outstanding.contains_key(&token.0) {
                            return Err(format!("step {step}: submit returned live token {}", token.0));
                        }
                        let writable = writable.iter().map(|s| s.len as u64).sum();
                        model.outstanding.insert(token.0, Chain { descriptors: needed as u16, writable });
                    }
                    (Err(e), Err(want)) if e == want => {}
                    (got, want) => return Err(format!("step {step}: submit gave {got:?}, model says {want:?}")),
                }
                let _ = q.should_notify();
            }
            // Device: take everything available.
            2 => held.extend(std::iter::from_fn(|| dev.pop())),
            // Device: return a chain it holds, with an honest length or a lie.
            3 => {
                if !held.is_empty() {
                    let chain = held.swap_remove(script.byte() as usize % held.len());
                    let writable: u32 = chain.writable.iter().map(|s| s.len).sum();
                    let len = match script.byte() % 4 {
                        0 => 0,
                        1 => writable,
                        2 => writable.wrapping_add(1),
                        _ => script.u32(),
                    };
                    model.slots[(dev.used_idx() % size) as usize] = (chain.head as u32, len);
                    dev.push(chain.head, len);
                }
            }
            // Device: any id, any length.
            4 => {
                let (id, len) = (script.u32() % (size as u32 * 2 + 2), script.u32());
                let id = if script.byte() & 1 == 0 { id } else { id | 0x8000_0000 };
                model.slots[(dev.used_idx() % size) as usize] = (id, len);
                dev.push_raw(id, len);
            }
            // Device: jump used.idx.
            5 => {
                let delta = script.u16();
                dev.publish_used_idx(dev.used_idx().wrapping_add(delta));
            }
            // Device: scribble over a slot without publishing.
            6 => {
                let (slot, id, len) = (script.u16(), script.u32(), script.u32());
                model.slots[(slot % size) as usize] = (id, len);
                dev.scribble_used_slot(slot, id, len);
            }
            // Driver: one poll.
            7 => {
                let want = model.expect_pop(dev.used_idx());
                let got = q.try_pop_used();
                seen.note(&got);
                if got != want {
                    return Err(format!("step {step}: try_pop_used gave {got:?}, model says {want:?}"));
                }
            }
            // Driver: a bounded wait (a device that never answers must end in Timeout).
            8 => {
                let budget = script.byte() as u64 % 5;
                let want = match model.expect_pop(dev.used_idx()) {
                    Ok(None) => Err(Error::Timeout { spins: budget + 1 }),
                    other => other.map(|u| u.expect("some")),
                };
                let got = q.poll_used(budget, || {});
                seen.note(&got.map(Some));
                if got != want {
                    return Err(format!("step {step}: poll_used gave {got:?}, model says {want:?}"));
                }
            }
            // Driver: notifications on/off; the return says whether completions are pending.
            9 => {
                let pending = dev.used_idx() != model.consumed;
                if q.set_used_notifications(script.byte() & 1 == 0) != pending {
                    return Err(format!("step {step}: set_used_notifications disagrees on pending ({pending})"));
                }
            }
            // Device: suppression hints, any values.
            _ => {
                dev.set_avail_event(script.u16());
                dev.set_no_notify(script.byte() & 1 == 0);
            }
        }
        // The free list and the outstanding set agree with the model after every step.
        if q.num_free() != model.free() {
            return Err(format!("step {step}: {} descriptors free, model says {}", q.num_free(), model.free()));
        }
        if let Some(t) = (0..size).find(|&t| q.is_outstanding(Token(t)) != model.outstanding.contains_key(&t)) {
            return Err(format!("step {step}: token {t} outstanding disagrees with the model"));
        }
    }
    Ok(format!("answers:{:03x}", seen.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn smoke() {
        let report = crate::smoke(&super::TARGET, 2.0);
        assert!(report.kinds.len() > 3, "{report}");
    }
}
