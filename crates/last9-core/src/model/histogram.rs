//! A lock-free histogram of request durations.
//!
//! Each observation is one relaxed `fetch_add` on its bucket and one on the sum. Buckets hold
//! per-bucket (not cumulative) counts; the encoder makes them cumulative and derives `_count`
//! from them, so a scrape racing with writers still sees `le="+Inf"` equal to `_count`.

use std::any::Any;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::model::exemplar::{Exemplar, ExemplarCells, EXEMPLAR_CELLS};
use crate::model::native::{Extension, NativeBuckets, NativeCells, NativeSpec, Overflow};

/// Upper bounds of a histogram in milliseconds, with the text of each `le` label rendered once,
/// and the shape of its native buckets when it keeps them.
#[derive(Debug)]
pub struct Buckets {
    bounds_ns: Box<[f64]>,
    bounds_ms: Box<[f64]>,
    le_text: Box<[Box<str>]>,
    le_openmetrics: Box<[Box<str>]>,
    native: Option<NativeSpec>,
}

impl Buckets {
    /// Last9's convention: 0.25 × 1.5^k ms for k = 0..30 (0.25 ms to about 48 s).
    pub fn last9_default() -> Buckets {
        let bounds: Vec<f64> = (0..=30).map(|k| 0.25 * 1.5f64.powi(k)).collect();
        Buckets::new(&bounds).expect("default buckets are valid")
    }

    /// Buckets from finite, strictly increasing upper bounds in milliseconds (`+Inf` is implied;
    /// a trailing `+Inf` given by the caller is accepted and dropped).
    pub fn new(bounds_ms: &[f64]) -> Result<Buckets, Error> {
        let mut bounds: Vec<f64> = bounds_ms.to_vec();
        if bounds.last() == Some(&f64::INFINITY) {
            bounds.pop();
        }
        if bounds.is_empty() {
            return Err(Error::InvalidBuckets(
                "at least one finite bucket bound is needed".into(),
            ));
        }
        if bounds.len() > 256 {
            return Err(Error::InvalidBuckets("at most 256 buckets are allowed".into()));
        }
        if let Some(bad) = bounds.iter().find(|b| !b.is_finite()) {
            return Err(Error::InvalidBuckets(format!("bucket bound {bad} is not finite")));
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidBuckets(
                "bucket bounds must be strictly increasing".into(),
            ));
        }
        let le_text = bounds.iter().map(|b| format_float(*b, false).into()).collect();
        let le_openmetrics = bounds.iter().map(|b| format_float(*b, true).into()).collect();
        Ok(Buckets {
            bounds_ns: bounds.iter().map(|b| b * 1e6).collect(),
            bounds_ms: bounds.into_boxed_slice(),
            le_text,
            le_openmetrics,
            native: None,
        })
    }

    /// A layout without classic buckets: only `+Inf` (so the text formats still give `_count`,
    /// `_sum` and one bucket), for histograms that keep native buckets only.
    pub fn none() -> Buckets {
        Buckets {
            bounds_ns: Box::new([]),
            bounds_ms: Box::new([]),
            le_text: Box::new([]),
            le_openmetrics: Box::new([]),
            native: None,
        }
    }

    /// The same layout, keeping native buckets of `spec` too (or not, with None).
    pub fn with_native(mut self, spec: Option<NativeSpec>) -> Buckets {
        self.native = spec;
        self
    }

    /// The native buckets' shape, when this layout keeps them.
    pub fn native(&self) -> Option<&NativeSpec> {
        self.native.as_ref()
    }

    /// Whether this layout has classic buckets besides `+Inf`.
    pub fn has_classic(&self) -> bool {
        !self.bounds_ms.is_empty()
    }

    /// Cells of the native buckets (0 without them); they follow the classic cells and the sum.
    pub fn native_cells(&self) -> usize {
        self.native.as_ref().map_or(0, NativeSpec::cells)
    }

    /// Every cell a histogram of this layout needs: classic buckets, the sum, native buckets,
    /// the latest exemplar.
    pub fn all_cells(&self) -> usize {
        self.cells() + 1 + self.native_cells() + EXEMPLAR_CELLS
    }

    /// [`Self::all_cells`] of a histogram on the heap (the same: native slots past the inline
    /// ones go to an extension, on the heap or in a worker's file, when needed).
    pub fn heap_cells(&self) -> usize {
        self.all_cells()
    }

    /// These buckets with `extra` bounds (milliseconds) added where they are missing.
    pub fn with_bounds(&self, extra: &[f64]) -> Result<Buckets, Error> {
        let mut bounds: Vec<f64> = self.bounds_ms.iter().chain(extra).copied().collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Ok(Buckets::new(&bounds)?.with_native(self.native))
    }

    /// Finite upper bounds in milliseconds.
    pub fn bounds_ms(&self) -> &[f64] {
        &self.bounds_ms
    }

    /// The `le` label of finite bucket `i`: Prometheus text keeps the shortest form (`1`),
    /// OpenMetrics wants canonical floats (`1.0`).
    pub fn le(&self, i: usize, openmetrics: bool) -> &str {
        if openmetrics {
            &self.le_openmetrics[i]
        } else {
            &self.le_text[i]
        }
    }

    /// Number of cells a histogram needs: one per finite bound plus `+Inf`.
    pub fn cells(&self) -> usize {
        self.bounds_ms.len() + 1
    }

    /// Index of the bucket a duration falls in (`le` is inclusive).
    #[inline]
    pub fn index_of(&self, duration_ns: u64) -> usize {
        let value = duration_ns as f64;
        self.bounds_ns.partition_point(|bound| *bound < value)
    }
}

impl PartialEq for Buckets {
    fn eq(&self, other: &Self) -> bool {
        self.bounds_ms == other.bounds_ms && self.native == other.native
    }
}

/// Shortest round-trip form of a float; OpenMetrics needs a `.0` on whole numbers.
pub(crate) fn format_float(value: f64, openmetrics: bool) -> String {
    float_text(&mut ryu::Buffer::new(), value, openmetrics).to_string()
}

/// [`format_float`] into a reusable buffer.
pub(crate) fn float_text(buf: &mut ryu::Buffer, value: f64, openmetrics: bool) -> &str {
    if value == f64::INFINITY {
        return "+Inf";
    }
    if value == f64::NEG_INFINITY {
        return "-Inf";
    }
    if value.is_nan() {
        return "NaN";
    }
    let text = buf.format_finite(value);
    // ryu writes `1.0` for whole numbers and `1e20` for large ones; Prometheus text prefers `1`.
    match text.strip_suffix(".0") {
        Some(whole) if !openmetrics => whole,
        _ => text,
    }
}

/// What keeps a histogram's cells alive: its own allocation, or a shared file mapping.
type Keeper = Arc<dyn Any + Send + Sync>;

/// Counts and sum of one label set: `cells` per-bucket counts, then the sum in nanoseconds,
/// then the native buckets' cells when the layout keeps them (see [`crate::model::native`]), then the
/// latest exemplar (see [`crate::model::exemplar`]).
///
/// The cells live on the heap in a single process, and inside a worker's mapped file in
/// multi-process mode (see [`crate::store`]); recording is the same atomic add either way.
pub struct Histogram {
    cells: NonNull<AtomicU64>,
    /// Number of bucket cells (`+Inf` included); the sum cell follows them.
    buckets: usize,
    /// Number of native cells after the sum.
    native: usize,
    /// Native slots past the inline ones (heap histograms only).
    extension: Extension,
    _keeper: Keeper,
}

// SAFETY: the cells are atomics, kept alive by `_keeper`.
unsafe impl Send for Histogram {}
unsafe impl Sync for Histogram {}

impl Histogram {
    pub fn new(buckets: &Buckets) -> Histogram {
        let cells: Arc<[AtomicU64]> = (0..buckets.heap_cells()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            cells: NonNull::from(&cells[0]),
            buckets: buckets.cells(),
            native: buckets.native_cells(),
            extension: Extension::default(),
            _keeper: Arc::new(cells),
        }
    }

    /// A histogram whose `buckets.all_cells()` cells are at `cells`, kept alive by `keeper`,
    /// whose native buckets grow into `extension`.
    ///
    /// # Safety
    ///
    /// `cells` must point to that many aligned `u64`s that stay valid while `keeper` lives and
    /// that are only ever accessed atomically.
    pub(crate) unsafe fn in_place(
        buckets: &Buckets,
        cells: NonNull<AtomicU64>,
        keeper: Keeper,
        extension: Extension,
    ) -> Histogram {
        Histogram {
            cells,
            buckets: buckets.cells(),
            native: buckets.native_cells(),
            extension,
            _keeper: keeper,
        }
    }

    /// A histogram on the heap whose `buckets.heap_cells()` cells are at `cells`, kept alive by
    /// `keeper`: its native slots past the inline ones go to an extension when needed.
    ///
    /// # Safety
    ///
    /// As for [`Self::in_place`].
    pub(crate) unsafe fn on_heap(buckets: &Buckets, cells: NonNull<AtomicU64>, keeper: Keeper) -> Histogram {
        Histogram {
            cells,
            buckets: buckets.cells(),
            native: buckets.native_cells(),
            extension: Extension::default(),
            _keeper: keeper,
        }
    }

    #[inline]
    fn cell(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i <= self.buckets);
        // SAFETY: `i` is at most `buckets` (callers index with `Buckets::index_of` or the sum).
        unsafe { &*self.cells.as_ptr().add(i) }
    }

    /// The native cells, after the sum.
    fn native_slice(&self) -> &[AtomicU64] {
        // SAFETY: `in_place` and `new` guarantee `buckets + 1 + native` cells.
        unsafe { std::slice::from_raw_parts(self.cells.as_ptr().add(self.buckets + 1), self.native) }
    }

    /// Records one duration, and returns its classic bucket (for an exemplar). The sum is kept in
    /// whole nanoseconds so that it adds exactly.
    #[inline]
    pub fn observe(&self, buckets: &Buckets, duration_ns: u64) -> usize {
        let sum = self.cell(self.buckets);
        prefetch(sum);
        let bucket = buckets.index_of(duration_ns);
        self.cell(bucket).fetch_add(1, Ordering::Relaxed);
        sum.fetch_add(duration_ns, Ordering::Relaxed);
        if let Some(native) = self.native_cells_of(buckets) {
            native.observe(duration_ns);
        }
        bucket
    }

    /// The native cells, when the layout keeps native buckets.
    #[inline]
    fn native_cells_of<'a>(&'a self, buckets: &'a Buckets) -> Option<NativeCells<'a>> {
        let spec = buckets.native.as_ref()?;
        (self.native == spec.cells())
            .then(|| NativeCells::new(spec, self.native_slice(), Overflow::Grows(&self.extension)))
    }

    /// Keeps a traced observation that fell in classic bucket `bucket` as the exemplar.
    #[cold]
    pub fn keep_exemplar(&self, bucket: usize, trace_id: [u8; 16], span_id: [u8; 8], duration_ns: u64) {
        ExemplarCells(self.exemplar_slice()).record(bucket, trace_id, span_id, duration_ns);
    }

    /// The latest exemplar per classic bucket (empty when there is none).
    pub fn exemplars(&self) -> Box<[Option<Exemplar>]> {
        let latest = ExemplarCells(self.exemplar_slice()).read();
        crate::model::exemplar::latest_per_bucket(self.buckets, latest)
    }

    fn exemplar_slice(&self) -> &[AtomicU64] {
        // SAFETY: `new` and `in_place` guarantee the exemplar cells after the native ones.
        unsafe {
            std::slice::from_raw_parts(
                self.cells.as_ptr().add(self.buckets + 1 + self.native),
                EXEMPLAR_CELLS,
            )
        }
    }

    /// The native buckets, when the layout keeps them.
    pub fn native(&self, buckets: &Buckets) -> Option<NativeBuckets> {
        Some(self.native_cells_of(buckets)?.read())
    }

    /// Per-bucket counts (not cumulative), the last one being `+Inf`.
    pub fn counts(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.buckets).map(|i| self.cell(i).load(Ordering::Relaxed))
    }

    pub fn sum_ns(&self) -> u64 {
        self.cell(self.buckets).load(Ordering::Relaxed)
    }

    /// Adds another histogram's counts, sum and native buckets to this one (same layout), and
    /// takes its exemplar.
    pub(crate) fn add_from(&self, buckets: &Buckets, other: &Histogram) {
        for i in 0..=self.buckets.min(other.buckets) {
            let v = other.cell(i).load(Ordering::Relaxed);
            if v != 0 {
                self.cell(i).fetch_add(v, Ordering::Relaxed);
            }
        }
        if let (Some(ours), Some(theirs)) = (self.native_cells_of(buckets), other.native(buckets)) {
            ours.add(&theirs);
        }
        if let Some((bucket, exemplar)) = ExemplarCells(other.exemplar_slice()).read() {
            ExemplarCells(self.exemplar_slice()).put(bucket, &exemplar);
        }
    }
}

/// Starts fetching the cache line of `cell`. The sum and the bucket are usually on different
/// lines, and an atomic add waits for its line before the next instruction's miss may start: a
/// series not in cache would cost two memory latencies in a row instead of one.
#[inline(always)]
fn prefetch(cell: &AtomicU64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((cell as *const AtomicU64).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = cell;
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("counts", &self.counts().collect::<Vec<_>>())
            .field("sum_ns", &self.sum_ns())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_follow_the_last9_convention() {
        let buckets = Buckets::last9_default();
        assert_eq!(buckets.bounds_ms().len(), 31);
        assert_eq!(buckets.bounds_ms()[0], 0.25);
        assert_eq!(buckets.bounds_ms()[1], 0.375);
        assert_eq!(buckets.bounds_ms()[30], 0.25 * 1.5f64.powi(30));
        assert_eq!(buckets.le(0, false), "0.25");
        assert_eq!(buckets.le(2, false), "0.5625");
    }

    #[test]
    fn le_is_inclusive() {
        let buckets = Buckets::new(&[1.0, 2.0]).unwrap();
        assert_eq!(buckets.index_of(1_000_000), 0);
        assert_eq!(buckets.index_of(1_000_001), 1);
        assert_eq!(buckets.index_of(2_000_000), 1);
        assert_eq!(buckets.index_of(2_000_001), 2);
        assert_eq!(buckets.index_of(0), 0);
        assert_eq!(buckets.index_of(u64::MAX), 2);
    }

    #[test]
    fn whole_bounds_render_per_format() {
        let buckets = Buckets::new(&[1.0, 2.5, 1000.0]).unwrap();
        assert_eq!(buckets.le(0, false), "1");
        assert_eq!(buckets.le(0, true), "1.0");
        assert_eq!(buckets.le(1, true), "2.5");
        assert_eq!(buckets.le(2, false), "1000");
        assert_eq!(buckets.le(2, true), "1000.0");
    }

    #[test]
    fn invalid_buckets_are_rejected() {
        assert!(Buckets::new(&[]).is_err());
        assert!(Buckets::new(&[2.0, 1.0]).is_err());
        assert!(Buckets::new(&[1.0, 1.0]).is_err());
        assert!(Buckets::new(&[f64::NAN]).is_err());
        assert!(Buckets::new(&[1.0, f64::INFINITY]).is_ok());
    }

    #[test]
    fn moving_a_series_keeps_its_native_buckets_and_exemplar() {
        let buckets = Buckets::new(&[1.0])
            .unwrap()
            .with_native(Some(NativeSpec::default_spec()));
        let old = Histogram::new(&buckets);
        for ms in [0.5, 2.0, 300.0] {
            old.observe(&buckets, (ms * 1e6) as u64);
        }
        old.keep_exemplar(1, [3; 16], [4; 8], 2_000_000);
        let moved = Histogram::new(&buckets);
        moved.add_from(&buckets, &old);
        assert_eq!(moved.native(&buckets), old.native(&buckets));
        assert_eq!(moved.native(&buckets).unwrap().count(), 3);
        assert_eq!(moved.exemplars()[1].unwrap().trace_id, [3; 16]);
        assert_eq!(moved.counts().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn observations_land_in_their_bucket_and_sum_exactly() {
        let buckets = Buckets::new(&[1.0, 10.0]).unwrap();
        let histogram = Histogram::new(&buckets);
        histogram.observe(&buckets, 500_000);
        histogram.observe(&buckets, 5_000_000);
        histogram.observe(&buckets, 50_000_000);
        assert_eq!(histogram.counts().collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(histogram.sum_ns(), 55_500_000);
    }
}
