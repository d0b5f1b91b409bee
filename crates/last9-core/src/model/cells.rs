//! Heap cells of the series of a registry without a store (a single process).
//!
//! A series' cells are carved from a shared chunk rather than allocated one by one: one
//! allocation per [`SERIES_PER_CHUNK`] series, no allocator header per series, and series made
//! together sit together. A chunk is never moved or freed while a histogram uses it: each
//! histogram keeps its chunk alive.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::model::histogram::{Buckets, Histogram};

/// Series whose cells one chunk holds.
const SERIES_PER_CHUNK: usize = 64;

#[derive(Default)]
pub(crate) struct CellArena {
    chunk: Option<Arc<Box<[AtomicU64]>>>,
    /// Cells of `chunk` already handed out.
    used: usize,
}

impl CellArena {
    /// Zeroed cells for a new series: its bucket counts, its sum, its inline native slots and
    /// its exemplar.
    pub(crate) fn histogram(&mut self, buckets: &Buckets) -> Histogram {
        let cells = buckets.heap_cells();
        let chunk = match &self.chunk {
            Some(chunk) if chunk.len() - self.used >= cells => chunk.clone(),
            _ => {
                let chunk: Arc<Box<[AtomicU64]>> =
                    Arc::new((0..cells * SERIES_PER_CHUNK).map(|_| AtomicU64::new(0)).collect());
                self.chunk = Some(chunk.clone());
                self.used = 0;
                chunk
            }
        };
        let first = NonNull::from(&chunk[self.used]);
        self.used += cells;
        // SAFETY: `cells` zeroed atomics of `chunk` handed out once, which the histogram's clone
        // of `chunk` keeps alive.
        unsafe { Histogram::on_heap(buckets, first, chunk) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_get_distinct_zeroed_cells_across_chunks() {
        let buckets = Buckets::new(&[1.0]).unwrap();
        let mut arena = CellArena::default();
        let histograms: Vec<Histogram> = (0..1000).map(|_| arena.histogram(&buckets)).collect();
        for (i, histogram) in histograms.iter().enumerate() {
            assert_eq!(histogram.sum_ns(), 0, "series {i} starts at zero");
            histogram.observe(&buckets, i as u64);
        }
        for (i, histogram) in histograms.iter().enumerate() {
            assert_eq!(histogram.sum_ns(), i as u64, "series {i} has its own cells");
            assert_eq!(histogram.counts().sum::<u64>(), 1);
        }
    }
}
