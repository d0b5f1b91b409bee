//! Heap cells of the series of a registry without a store (a single process).
//!
//! A series' cells are carved from a shared chunk rather than allocated one by one: one
//! allocation per [`SERIES_PER_CHUNK`] series, no allocator header per series, and series made
//! together sit together. A chunk is never moved or freed while a histogram uses it: each
//! histogram keeps its chunk alive. Chunks start on a cache line, so with the default buckets
//! (24 cells, three lines) each series' sum and low buckets share its first line.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::model::histogram::{Buckets, Histogram};

/// Series whose cells one chunk holds.
const SERIES_PER_CHUNK: usize = 64;

/// Eight cells on a cache line of their own.
#[repr(C, align(64))]
struct Line([AtomicU64; 8]);

#[derive(Default)]
pub(crate) struct CellArena {
    chunk: Option<Arc<Box<[Line]>>>,
    /// Cells of `chunk` already handed out.
    used: usize,
}

impl CellArena {
    /// Zeroed compact cells for a new series: its sum, its bucket counts, its inline native
    /// slots and its exemplar.
    pub(crate) fn histogram(&mut self, buckets: &Buckets) -> Histogram {
        let cells = buckets.heap_cells();
        let chunk = match &self.chunk {
            Some(chunk) if chunk.len() * 8 - self.used >= cells => chunk.clone(),
            _ => {
                let lines = (cells * SERIES_PER_CHUNK).div_ceil(8);
                let chunk: Arc<Box<[Line]>> = Arc::new(
                    (0..lines)
                        .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
                        .collect(),
                );
                self.chunk = Some(chunk.clone());
                self.used = 0;
                chunk
            }
        };
        let lines: NonNull<[Line]> = NonNull::from(&**chunk);
        // SAFETY: `cells` zeroed atomics of `chunk` (its lines are contiguous `u64`s, and `used +
        // cells` fit), handed out once, which the histogram's clone of `chunk` keeps alive.
        unsafe {
            let first = lines.cast::<AtomicU64>().add(self.used);
            self.used += cells;
            Histogram::on_heap(buckets, first, true, chunk)
        }
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
