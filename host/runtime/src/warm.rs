//! Instances kept between job attempts, for plugins that opt in with
//! `plugins.<id>.reuse = N`.
//!
//! A kept instance serves at most N attempts. It is dropped at once after an attempt that
//! did not return normally (a trap, a deadline, a cancellation, a memory-limit hit): such a
//! store may hold a call stopped half-way. Between attempts it waits on its plugin's
//! [`Shelf`], holding no run slot but a pool slot: the engine's pool has room for one kept
//! instance per run slot, and [`KeptBudget`] never lets more exist. Kept instances belong
//! to one build of a plugin, so a replaced `.wasm` never serves a job from an old instance;
//! they go when that build is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use crate::bindings::JobPlugin;
use crate::capabilities::CallState;

/// An instance between two attempts: its store, its exports and how many attempts it served.
pub(crate) struct Kept {
    pub(crate) store: Store<CallState>,
    pub(crate) instance: JobPlugin,
    /// Attempts served so far.
    pub(crate) calls: u32,
    /// Its place in the budget, given back when it is dropped.
    pub(crate) place: Place,
}

/// The kept instances of one plugin build waiting for their next attempt.
#[derive(Default)]
pub(crate) struct Shelf {
    idle: Mutex<Vec<Kept>>,
}

impl Shelf {
    /// The most recently used instance, if one waits (its memory is the likeliest to be
    /// in cache).
    pub(crate) fn take(&self) -> Option<Kept> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Puts `kept` back for the next attempt.
    pub(crate) fn put(&self, kept: Kept) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(kept);
    }

    /// How many instances wait.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// How many instances may be kept at once, across plugins (`runtime.max_instances`: the
/// room the engine's pool reserves for them).
#[derive(Clone)]
pub(crate) struct KeptBudget(Arc<BudgetInner>);

struct BudgetInner {
    used: AtomicUsize,
    max: usize,
}

impl KeptBudget {
    /// A budget of `max` kept instances.
    pub(crate) fn new(max: usize) -> Self {
        KeptBudget(Arc::new(BudgetInner {
            used: AtomicUsize::new(0),
            max,
        }))
    }

    /// A place for one more kept instance, unless all are taken.
    pub(crate) fn place(&self) -> Option<Place> {
        self.0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.0.max).then_some(used + 1)
            })
            .ok()
            .map(|_| Place(self.clone()))
    }

    /// Places taken now.
    pub(crate) fn used(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }
}

/// One kept instance's place in the [`KeptBudget`]; dropping it frees the place.
pub(crate) struct Place(KeptBudget);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_gives_out_at_most_its_places_and_takes_them_back_when_dropped() {
        let budget = KeptBudget::new(2);
        let first = budget.place().expect("first place");
        let second = budget.place().expect("second place");
        assert!(budget.place().is_none(), "a third place beyond the budget");
        assert_eq!(budget.used(), 2);
        drop(first);
        assert_eq!(budget.used(), 1);
        let third = budget.place().expect("a freed place is given again");
        drop((second, third));
        assert_eq!(budget.used(), 0);
    }
}
