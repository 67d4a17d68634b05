//! Instances kept between job attempts, for plugins that opt in with
//! `plugins.<id>.reuse = N`.
//!
//! A kept instance serves at most N attempts. It is dropped at once after an attempt that
//! did not return normally (a trap, a deadline, a cancellation, a memory-limit hit): such a
//! store may hold a call stopped half-way. Between attempts it waits on its plugin's
//! [`Shelf`], holding no run slot but a pool slot: the engine's pool has room for one kept
//! instance per run slot, and [`KeptBudget`] never lets more exist. Kept instances belong
//! to one build of a plugin, so a replaced `.wasm` never serves a job from an old instance;
//! they go when that build stops serving (replaced or blocked), and an attempt of a build
//! that no longer serves keeps no instance. One left unused for `runtime.kept_idle_secs` is
//! dropped ([`Shelf::expire`], from a thread of the runtime's own).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::bindings::JobPlugin;
use crate::capabilities::CallState;

/// An instance between two attempts: its store, its exports and how many attempts it served.
pub(crate) struct Kept {
    pub(crate) store: Store<CallState>,
    pub(crate) instance: JobPlugin,
    /// Attempts served so far.
    pub(crate) calls: u32,
    /// Its places in the budget, given back when it is dropped.
    pub(crate) place: Place,
}

/// An instance that has just served an attempt normally, which may be kept for the next.
pub(crate) struct Served {
    pub(crate) store: Store<CallState>,
    pub(crate) instance: JobPlugin,
    /// Attempts served, this one included.
    pub(crate) calls: u32,
    /// Its places in the budget if it was kept before.
    pub(crate) place: Option<Place>,
}

/// The kept instances of one plugin build waiting for their next attempt, each with the
/// time it was put back (oldest first: instances are taken from the end).
#[derive(Default)]
pub(crate) struct Shelf {
    idle: Mutex<Vec<(Instant, Kept)>>,
}

impl Shelf {
    /// The most recently used instance, if one waits (its memory is the likeliest to be
    /// in cache).
    pub(crate) fn take(&self) -> Option<Kept> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.pop().map(|(_, kept)| kept)
    }

    /// Puts `kept` back for the next attempt.
    pub(crate) fn put(&self, kept: Kept) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), kept));
    }

    /// Drops the instances that have waited longer than `idle`; returns how many.
    pub(crate) fn expire(&self, idle: Duration) -> usize {
        let stale: Vec<(Instant, Kept)> = {
            let mut waiting = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = waiting
                .iter()
                .position(|(since, _)| since.elapsed() <= idle)
                .unwrap_or(waiting.len());
            waiting.drain(..fresh).collect()
        };
        // Dropped outside the lock: a store's teardown resets its pool slot.
        stale.len()
    }

    /// Drops every waiting instance (the build serves no more attempts).
    pub(crate) fn clear(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        drop(idle);
    }

    /// How many instances wait.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// How many instances may be kept at once, across plugins: `runtime.max_instances` places,
/// the room the engine's pool reserves for them. A kept instance takes as many places as it
/// needs slots' shares of memories and tables ([`places_for`]).
#[derive(Clone)]
pub(crate) struct KeptBudget(Arc<BudgetInner>);

struct BudgetInner {
    /// Places taken.
    used: AtomicUsize,
    /// Instances holding them.
    instances: AtomicUsize,
    max: usize,
}

impl KeptBudget {
    /// A budget of `max` places.
    pub(crate) fn new(max: usize) -> Self {
        KeptBudget(Arc::new(BudgetInner {
            used: AtomicUsize::new(0),
            instances: AtomicUsize::new(0),
            max,
        }))
    }

    /// `places` places for one more kept instance, unless too few are free.
    pub(crate) fn place(&self, places: usize) -> Option<Place> {
        self.0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(places)
                    .filter(|after| *after <= self.0.max)
            })
            .ok()?;
        self.0.instances.fetch_add(1, Ordering::AcqRel);
        Some(Place {
            budget: self.clone(),
            places,
        })
    }

    /// Instances kept now, waiting or running.
    pub(crate) fn instances(&self) -> usize {
        self.0.instances.load(Ordering::Acquire)
    }
}

/// One kept instance's places in the [`KeptBudget`]; dropping it frees them.
pub(crate) struct Place {
    budget: KeptBudget,
    places: usize,
}

impl Drop for Place {
    fn drop(&mut self) {
        let inner = &self.budget.0;
        inner.used.fetch_sub(self.places, Ordering::AcqRel);
        inner.instances.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The places a kept instance of `component` (built from `bytes`) takes: one per pool
/// slot's share of core instances, memories and tables it needs (a Rust plugin: one; a
/// Python or JavaScript runtime: several), or `None` when its needs are unknown (it is
/// then never kept).
pub(crate) fn places_for(
    component: &wasmtime::component::Component,
    bytes: &[u8],
) -> Option<usize> {
    use crate::engine::{CORE_INSTANCES_PER_SLOT, MEMORIES_PER_SLOT, TABLES_PER_SLOT};
    let needs = component.resources_required()?;
    let share = |n: u32, per_slot: u32| n.div_ceil(per_slot) as usize;
    let places = share(core_instances(bytes)?, CORE_INSTANCES_PER_SLOT)
        .max(share(needs.num_memories, MEMORIES_PER_SLOT))
        .max(share(needs.num_tables, TABLES_PER_SLOT));
    Some(places.max(1))
}

/// The core module instances a component makes, nested components included (what the
/// pool counts against `total_core_instances`); `None` if the bytes do not parse.
fn core_instances(bytes: &[u8]) -> Option<u32> {
    let mut count = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::InstanceSection(instances) = payload.ok()? {
            for instance in instances {
                if let wasmparser::Instance::Instantiate { .. } = instance.ok()? {
                    count = count.saturating_add(1);
                }
            }
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_instance_takes_one_place_per_slot_share_of_what_it_instantiates() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        // n instances of a module with one memory and one table.
        let component = |n: usize| {
            let instances = "(core instance (instantiate $m))".repeat(n);
            let text =
                format!("(component (core module $m (memory 1) (table 1 funcref)) {instances})");
            wat::parse_str(text).unwrap()
        };
        // Each slot's share: 16 core instances, 2 memories, 8 tables.
        for (n, places) in [(1, 1), (2, 1), (3, 2), (8, 4), (40, 20)] {
            let bytes = component(n);
            let compiled = wasmtime::component::Component::new(&engine, &bytes).unwrap();
            assert_eq!(places_for(&compiled, &bytes), Some(places), "{n} instances");
        }
        assert_eq!(core_instances(b"not wasm"), None);
        let many = wat::parse_str(format!(
            "(component (core module $m) {})",
            "(core instance (instantiate $m))".repeat(33)
        ))
        .unwrap();
        assert_eq!(core_instances(&many), Some(33));
        let compiled = wasmtime::component::Component::new(&engine, &many).unwrap();
        assert_eq!(places_for(&compiled, &many), Some(3), "33 core instances");
    }

    #[test]
    fn the_budget_gives_out_at_most_its_places_and_takes_them_back_when_dropped() {
        let budget = KeptBudget::new(4);
        let big = budget.place(3).expect("three places");
        let small = budget.place(1).expect("the fourth");
        assert!(budget.place(1).is_none(), "a place beyond the budget");
        assert_eq!(budget.instances(), 2);
        drop(big);
        assert_eq!(budget.instances(), 1);
        assert!(budget.place(4).is_none(), "one place is still taken");
        let again = budget.place(3).expect("freed places are given again");
        assert!(budget.place(usize::MAX).is_none(), "no overflow");
        drop((small, again));
        assert_eq!(budget.instances(), 0);
        assert!(budget.place(4).is_some());
    }
}
