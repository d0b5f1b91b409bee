//! A lock-free gauge: one signed value, changed with relaxed atomic adds.
//!
//! The cell holds an `i64` in two's complement inside an `AtomicU64`, so that it can live in a
//! worker's mapped file exactly like a histogram's cells (see [`crate::store`]).

use std::any::Any;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Keeper = Arc<dyn Any + Send + Sync>;

/// One gauge cell, on the heap or in a mapped file.
pub struct Gauge {
    cell: NonNull<AtomicU64>,
    _keeper: Keeper,
}

// SAFETY: the cell is an atomic, kept alive by `_keeper`.
unsafe impl Send for Gauge {}
unsafe impl Sync for Gauge {}

impl Default for Gauge {
    fn default() -> Gauge {
        Gauge::new()
    }
}

impl Gauge {
    pub fn new() -> Gauge {
        let cell = Arc::new(AtomicU64::new(0));
        Gauge {
            cell: NonNull::from(&*cell),
            _keeper: cell,
        }
    }

    /// A gauge whose cell is at `cell`, kept alive by `keeper`.
    ///
    /// # Safety
    ///
    /// `cell` must point to an aligned `u64` that stays valid while `keeper` lives and that is
    /// only ever accessed atomically.
    pub(crate) unsafe fn in_place(cell: NonNull<AtomicU64>, keeper: Keeper) -> Gauge {
        Gauge {
            cell,
            _keeper: keeper,
        }
    }

    #[inline]
    fn cell(&self) -> &AtomicU64 {
        // SAFETY: see `in_place`; `new` keeps its own allocation.
        unsafe { self.cell.as_ref() }
    }

    #[inline]
    pub fn add(&self, delta: i64) {
        self.cell().fetch_add(delta as u64, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.cell().load(Ordering::Relaxed) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_up_and_down_through_zero() {
        let g = Gauge::new();
        g.add(1);
        g.add(-3);
        assert_eq!(g.get(), -2);
        g.add(2);
        assert_eq!(g.get(), 0);
    }
}
