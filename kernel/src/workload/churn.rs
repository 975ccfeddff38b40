//! `suite=churn`: ordinary kernel data structures holding GC handles. Each core keeps a
//! `hashbrown::HashMap<id, Handle>` and an `intrusive_collections::LinkedList` of boxed entries
//! that each own a `Handle`, and churns them: insert, remove, move map -> list, pop, and rewire
//! the items' `next` pointers (which hides items behind heap edges the barrier must record).
//!
//! A [`Handle`] is how a non-GC structure may hold a GC object: the collector does not scan the
//! kernel heap, so the handle owns a root slot in `.gcroots` (like a JNI global reference or a Go
//! `runtime/cgo.Handle`) and clears it when dropped.

use super::{checksum, Rng};
use super::{Census, Length, Workload};
use crate::gc::{self, Kernel};
use crate::percore;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use intrusive_collections::{intrusive_adapter, LinkedList, LinkedListLink};
use tricolor_abi::MAX_CORES;
use tricolor_gc::{gc_type, Gc, GcSlot};

pub const WORKLOAD: Workload = Workload {
    name: "churn",
    about: "hashbrown maps and intrusive lists holding GC handles: insert, remove, move, rewire",
    length: Length::Cycles,
    exercises_barrier: true,
    prepare,
    mutate,
    check,
    finish: || Ok(()),
};

gc_type! {
    /// The churned object: a link to another item and a checked payload.
    #[repr(C)]
    pub struct Item {
        next: GcSlot<Item>,
        id: AtomicU64,
        payload: [AtomicU64; 4],
    }
}

impl Item {
    fn fill(&self, id: u64) {
        self.id.store(id, Ordering::Relaxed);
        for (i, word) in self.payload.iter().enumerate() {
            word.store(checksum(id + i as u64), Ordering::Relaxed);
        }
    }

    fn intact(&self) -> bool {
        let id = self.id.load(Ordering::Relaxed);
        self.payload.iter().enumerate().all(|(i, w)| w.load(Ordering::Relaxed) == checksum(id + i as u64))
    }
}

/// Root slots handed out as handles, per core.
const HANDLES_PER_CORE: usize = 1024;
#[unsafe(link_section = ".gcroots")]
static HANDLE_SLOTS: [GcSlot<Item>; MAX_CORES * HANDLES_PER_CORE] =
    [const { GcSlot::null() }; MAX_CORES * HANDLES_PER_CORE];
/// Free handle slots per core. Only that core's (pinned) mutator takes the lock, so it never
/// contends; the lock just makes the static sound.
static FREE: [spin::Mutex<Vec<u16>>; MAX_CORES] = [const { spin::Mutex::new(Vec::new()) }; MAX_CORES];

/// A root slot holding one item, released (cleared) on drop.
struct Handle {
    core: usize,
    index: u16,
}

impl Handle {
    /// A handle for `item` from this core's pool (`None` when the pool is used up).
    fn new(item: Gc<Item>) -> Option<Handle> {
        let core = percore::id();
        let index = FREE[core].lock().pop()?;
        let handle = Handle { core, index };
        handle.slot().set::<Kernel>(Some(item));
        Some(handle)
    }

    fn slot(&self) -> &'static GcSlot<Item> {
        &HANDLE_SLOTS[self.core * HANDLES_PER_CORE + self.index as usize]
    }

    fn get(&self) -> Option<Gc<Item>> {
        self.slot().get()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.slot().set::<Kernel>(None);
        FREE[self.core].lock().push(self.index);
    }
}

/// A list entry in the kernel heap owning a handle.
struct Entry {
    link: LinkedListLink,
    id: u64,
    handle: Handle,
}

intrusive_adapter!(EntryAdapter = Box<Entry>: Entry { link: LinkedListLink });

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Bounds on each core's structures (with the pool, they cap the live data).
const MAX_MAP: usize = 600;
const MAX_LIST: usize = 300;

fn prepare(_: &tricolor_kernel::cmdline::Config<'_>) -> Result<(), String> {
    for slot in &HANDLE_SLOTS {
        slot.set::<Kernel>(None);
    }
    for free in &FREE {
        *free.lock() = (0..HANDLES_PER_CORE as u16).rev().collect();
    }
    Ok(())
}

/// This core's structures.
struct Churn {
    rng: Rng,
    map: hashbrown::HashMap<u64, Handle>,
    list: LinkedList<EntryAdapter>,
    list_len: usize,
}

impl Churn {
    fn random_key(&mut self) -> Option<u64> {
        let n = self.map.len();
        (n > 0).then(|| *self.map.keys().nth(self.rng.below(n)).expect("index below len"))
    }

    fn random_item(&mut self) -> Option<Gc<Item>> {
        let key = self.random_key()?;
        self.map[&key].get()
    }

    fn insert(&mut self) {
        if self.map.len() >= MAX_MAP {
            return;
        }
        let item = match gc::alloc::<Item>() {
            Ok(item) => item,
            Err(_) => {
                super::count_refused();
                self.map.clear();
                return;
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        item.fill(id);
        item.next.set::<Kernel>(self.random_item());
        if let Some(handle) = Handle::new(item) {
            self.map.insert(id, handle);
        }
    }

    /// Moves a map entry into the list (its handle moves with it: the slot never changes).
    fn move_to_list(&mut self) {
        if self.list_len >= MAX_LIST {
            return;
        }
        if let Some(key) = self.random_key() {
            let handle = self.map.remove(&key).expect("key from the map");
            self.list.push_back(Box::new(Entry { link: LinkedListLink::new(), id: key, handle }));
            self.list_len += 1;
        }
    }

    /// Hides an item: `a.next = b.next; b.next = nil`. The item that was `b.next` is now
    /// reachable only through `a`, which the mark may already have scanned.
    fn rewire(&mut self) {
        let (Some(a), Some(b)) = (self.random_item(), self.random_item()) else { return };
        a.next.set::<Kernel>(b.next.get());
        b.next.set::<Kernel>(None);
    }

    /// Looks items up by key and through the list, checking ids and payloads along `next`.
    fn verify(&mut self) {
        let from_map = self.random_key().map(|key| (key, self.map[&key].get()));
        let from_list = self.list.front().get().map(|entry| (entry.id, entry.handle.get()));
        for (key, item) in from_map.into_iter().chain(from_list) {
            let Some(item) = item else {
                log::error!("churn: handle for item {key} is empty");
                super::report_corrupt();
                continue;
            };
            if item.id.load(Ordering::Relaxed) != key {
                log::error!(
                    "churn: handle for item {key} holds {:#x} with id {:#x}",
                    item.addr(),
                    item.id.load(Ordering::Relaxed)
                );
                super::report_corrupt();
            }
            let mut at = Some(item);
            for _ in 0..8 {
                let Some(node) = at else { break };
                if !node.intact() {
                    log::error!(
                        "churn: item {:#x} is corrupt (id {:#x})",
                        node.addr(),
                        node.id.load(Ordering::Relaxed)
                    );
                    super::report_corrupt();
                    break;
                }
                at = node.next.get();
            }
        }
    }
}

fn mutate(seed: u64) {
    let mut churn = Churn {
        rng: Rng::new(seed),
        map: hashbrown::HashMap::new(),
        list: LinkedList::new(EntryAdapter::new()),
        list_len: 0,
    };
    while !super::stopping() {
        match churn.rng.below(100) {
            0..30 => churn.insert(),
            30..45 => {
                if let Some(key) = churn.random_key() {
                    churn.map.remove(&key);
                }
            }
            45..57 => churn.move_to_list(),
            57..67 => {
                if churn.list.pop_front().is_some() {
                    churn.list_len -= 1;
                }
            }
            67..85 => churn.rewire(),
            _ => churn.verify(),
        }
    }
    // Dropping the map and the list releases every handle.
}

fn check() -> Census {
    let mut census = Census::default();
    let mut seen = hashbrown::HashSet::new();
    let mut stack: Vec<Gc<Item>> = HANDLE_SLOTS.iter().filter_map(GcSlot::get).collect();
    while let Some(item) = stack.pop() {
        if !seen.insert(item.addr()) {
            continue;
        }
        if !item.intact() {
            census.corrupt += 1;
            log::error!(
                "churn: reachable item {:#x} is corrupt (id {:#x})",
                item.addr(),
                item.id.load(Ordering::Relaxed)
            );
            continue;
        }
        stack.extend(item.next.get());
    }
    census.reachable = seen.len();
    census
}
