//! A lock-free histogram of request durations.
//!
//! Each observation is one relaxed `fetch_add` on its bucket and one on the sum. Buckets hold
//! per-bucket (not cumulative) counts; the encoder makes them cumulative and derives `_count`
//! from them, so a scrape racing with writers still sees `le="+Inf"` equal to `_count`.

use std::any::Any;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
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
    /// the latest exemplar (in a worker's file; see [`Self::heap_cells`]).
    pub fn all_cells(&self) -> usize {
        self.cells() + 1 + self.native_cells() + EXEMPLAR_CELLS
    }

    /// Cells of a compact histogram on the heap (see [`Histogram`]): the sum, the bucket counts
    /// two to a cell, the inline native slots (the others, and the exemplar, are allocated when
    /// needed).
    pub fn heap_cells(&self) -> usize {
        1 + self.cells().div_ceil(2) + self.native_cells()
    }

    /// Cells of a wide histogram on the heap ([`Histogram::new`]).
    pub fn wide_heap_cells(&self) -> usize {
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

/// The count at which a compact bucket's series moves to wide cells. Half of `u32::MAX`, so
/// that the observations racing with the move (at most one per recording thread, since each
/// one that sees the mark asks for the move before it records again) cannot overflow it.
pub(crate) const WIDEN_AT: u32 = 1 << 31;

/// Counts and sum of one label set, in one of two layouts of `u64` cells:
///
/// - *wide* (a worker's mapped file, see [`crate::store`], and [`Histogram::new`]): a `u64`
///   per bucket (`+Inf` last), then the sum in nanoseconds;
/// - *compact* (series on the heap, see [`crate::model::cells`]): the sum first, then a `u32`
///   per bucket, two to a cell, so the sum and the low buckets share a cache line and the
///   default 32 buckets take 128 bytes instead of 256. A bucket that reaches [`WIDEN_AT`]
///   makes its recorder move the series to wide cells, under its table's write lock, so no
///   count ever wraps and none is lost (see `Recorder::widen`).
///
/// Either way the native buckets' cells follow (see [`crate::model::native`]). The latest
/// exemplar (see [`crate::model::exemplar`]) follows them in wide cells; compact ones allocate
/// it with the first traced observation, so that series of untraced apps do not pay for it.
/// Recording is atomic adds, without a lock.
pub struct Histogram {
    cells: NonNull<AtomicU64>,
    /// Number of native cells after the counts and the sum.
    native: u32,
    /// Number of buckets (`+Inf` included; at most 257).
    buckets: u16,
    compact: bool,
    /// Native slots past the inline ones (heap histograms only).
    extension: Extension,
    /// The exemplar cells of compact histograms.
    exemplar: LazyExemplar,
    _keeper: Keeper,
}

/// The exemplar cells of a compact histogram, allocated by its first traced observation (one
/// compare-and-swap decides whose allocation stays), freed with it.
#[derive(Default)]
struct LazyExemplar(AtomicPtr<[AtomicU64; EXEMPLAR_CELLS]>);

impl LazyExemplar {
    fn get(&self) -> Option<&[AtomicU64]> {
        // SAFETY: null, or a table from `get_or_alloc` that lives as long as `self`.
        unsafe { self.0.load(Ordering::Acquire).as_ref().map(|cells| &cells[..]) }
    }

    fn get_or_alloc(&self) -> &[AtomicU64] {
        if let Some(cells) = self.get() {
            return cells;
        }
        let fresh = Box::into_raw(Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        let kept =
            match self
                .0
                .compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => fresh,
                Err(theirs) => {
                    // SAFETY: `fresh` was never shared: another thread's table won.
                    drop(unsafe { Box::from_raw(fresh) });
                    theirs
                }
            };
        // SAFETY: the table kept lives as long as `self`.
        unsafe { &(&*kept)[..] }
    }
}

impl Drop for LazyExemplar {
    fn drop(&mut self) {
        let cells = *self.0.get_mut();
        if !cells.is_null() {
            // SAFETY: allocated by `get_or_alloc`, no longer used by anyone.
            drop(unsafe { Box::from_raw(cells) });
        }
    }
}

// SAFETY: the cells are atomics, kept alive by `_keeper`.
unsafe impl Send for Histogram {}
unsafe impl Sync for Histogram {}

/// Where a histogram's counts and sum are, and their layout: all that recording a duration
/// into its classic buckets needs, in one word (the cells' address, its low bit set when they
/// are compact), so that it sits in the registry's index beside the key. Valid while its
/// histogram lives.
#[derive(Clone, Copy)]
pub(crate) struct ClassicCells(NonNull<AtomicU64>);

// SAFETY: a pointer to atomics; the registry keeps it only while the histogram lives.
unsafe impl Send for ClassicCells {}
unsafe impl Sync for ClassicCells {}

impl ClassicCells {
    fn new(first: NonNull<AtomicU64>, compact: bool) -> ClassicCells {
        // Cells are 8-byte aligned, so the low bit is free.
        ClassicCells(first.map_addr(|addr| addr | usize::from(compact)))
    }

    /// Starts fetching the first lines of the native cells that follow the counts and the sum,
    /// so that their miss overlaps the classic cells' one rather than following it.
    #[inline]
    pub(crate) fn prefetch_native(self, buckets: &Buckets) {
        let compact = self.0.addr().get() & 1 == 1;
        let first = self.0.as_ptr().map_addr(|addr| addr & !1);
        let classic = if compact {
            1 + buckets.cells().div_ceil(2)
        } else {
            buckets.cells() + 1
        };
        // SAFETY: the native cells follow the classic ones (the caller records into a layout
        // with native buckets); a prefetch reads nothing and cannot fault.
        unsafe {
            let native = first.add(classic);
            prefetch(&*native);
            prefetch(&*native.add(8));
        }
    }

    /// Adds one duration to its bucket and to the sum. Returns the bucket, and whether the
    /// series should move to wide cells (a compact bucket reached [`WIDEN_AT`]).
    ///
    /// # Safety
    ///
    /// The histogram these cells belong to, of layout `buckets`, is alive.
    #[inline]
    pub(crate) unsafe fn observe(self, buckets: &Buckets, duration_ns: u64) -> (usize, bool) {
        let compact = self.0.addr().get() & 1 == 1;
        let first = self.0.as_ptr().map_addr(|addr| addr & !1);
        let bucket = buckets.index_of(duration_ns);
        if compact {
            let sum = &*first;
            let count = &*first.add(1).cast::<AtomicU32>().add(bucket);
            prefetch(count);
            sum.fetch_add(duration_ns, Ordering::Relaxed);
            let before = count.fetch_add(1, Ordering::Relaxed);
            (bucket, before >= WIDEN_AT - 1)
        } else {
            let sum = &*first.add(buckets.cells());
            prefetch(sum);
            (*first.add(bucket)).fetch_add(1, Ordering::Relaxed);
            sum.fetch_add(duration_ns, Ordering::Relaxed);
            (bucket, false)
        }
    }
}

impl Histogram {
    /// A histogram with wide cells of its own.
    pub fn new(buckets: &Buckets) -> Histogram {
        let cells: Arc<[AtomicU64]> = (0..buckets.wide_heap_cells())
            .map(|_| AtomicU64::new(0))
            .collect();
        // SAFETY: `wide_heap_cells` zeroed atomics, kept alive by the histogram.
        unsafe { Histogram::on_heap(buckets, NonNull::from(&cells[0]), false, Arc::new(cells)) }
    }

    /// A histogram whose `buckets.all_cells()` cells (wide) are at `cells`, kept alive by
    /// `keeper`, whose native buckets grow into `extension`.
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
            buckets: buckets.cells() as u16,
            native: buckets.native_cells() as u32,
            compact: false,
            extension,
            exemplar: LazyExemplar::default(),
            _keeper: keeper,
        }
    }

    /// A histogram on the heap whose cells (`buckets.heap_cells()` when `compact`, else
    /// `buckets.wide_heap_cells()`) are at `cells`, kept alive by `keeper`: its native slots
    /// past the inline ones go to an extension when needed.
    ///
    /// # Safety
    ///
    /// As for [`Self::in_place`].
    pub(crate) unsafe fn on_heap(
        buckets: &Buckets,
        cells: NonNull<AtomicU64>,
        compact: bool,
        keeper: Keeper,
    ) -> Histogram {
        Histogram {
            cells,
            buckets: buckets.cells() as u16,
            native: buckets.native_cells() as u32,
            compact,
            extension: Extension::default(),
            exemplar: LazyExemplar::default(),
            _keeper: keeper,
        }
    }

    /// Where the counts and sum are, for the registry's index.
    pub(crate) fn classic(&self) -> ClassicCells {
        ClassicCells::new(self.cells, self.compact)
    }

    /// Cells the counts and the sum take.
    fn classic_cells(&self) -> usize {
        let buckets = self.buckets as usize;
        if self.compact {
            1 + buckets.div_ceil(2)
        } else {
            buckets + 1
        }
    }

    fn sum_cell(&self) -> &AtomicU64 {
        let at = if self.compact { 0 } else { self.buckets as usize };
        // SAFETY: the sum is one of the histogram's cells.
        unsafe { &*self.cells.as_ptr().add(at) }
    }

    /// The count of bucket `i` (< `buckets`).
    fn count(&self, i: usize) -> u64 {
        assert!(i < self.buckets as usize);
        // SAFETY: bucket `i` is one of the histogram's counts.
        unsafe {
            if self.compact {
                let counts = self.cells.as_ptr().add(1).cast::<AtomicU32>();
                u64::from((*counts.add(i)).load(Ordering::Relaxed))
            } else {
                (*self.cells.as_ptr().add(i)).load(Ordering::Relaxed)
            }
        }
    }

    /// Adds `n` to bucket `i`; for compact counts, the caller has checked that it fits.
    fn add_count(&self, i: usize, n: u64) {
        assert!(i < self.buckets as usize);
        // SAFETY: bucket `i` is one of the histogram's counts.
        unsafe {
            if self.compact {
                let counts = self.cells.as_ptr().add(1).cast::<AtomicU32>();
                let n = u32::try_from(n).expect("compact counts stay below WIDEN_AT");
                (*counts.add(i)).fetch_add(n, Ordering::Relaxed);
            } else {
                (*self.cells.as_ptr().add(i)).fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The native cells, after the counts and the sum.
    fn native_slice(&self) -> &[AtomicU64] {
        // SAFETY: `in_place` and `on_heap` guarantee the native cells after the classic ones.
        unsafe {
            std::slice::from_raw_parts(
                self.cells.as_ptr().add(self.classic_cells()),
                self.native as usize,
            )
        }
    }

    /// Records one duration, and returns its classic bucket (for an exemplar). The sum is kept in
    /// whole nanoseconds so that it adds exactly. A caller that may hold compact cells (the
    /// registry) records with [`ClassicCells::observe`] and [`Self::observe_native`] instead,
    /// to learn when the series must move to wide cells.
    #[inline]
    pub fn observe(&self, buckets: &Buckets, duration_ns: u64) -> usize {
        // SAFETY: these are this histogram's cells.
        let (bucket, _) = unsafe { self.classic().observe(buckets, duration_ns) };
        self.observe_native(buckets, duration_ns);
        bucket
    }

    /// Records one duration into the native buckets, when the layout keeps them.
    #[inline]
    pub(crate) fn observe_native(&self, buckets: &Buckets, duration_ns: u64) {
        if let Some(native) = self.native_cells_of(buckets) {
            native.observe(duration_ns);
        }
    }

    /// The native cells, when the layout keeps native buckets.
    #[inline]
    fn native_cells_of<'a>(&'a self, buckets: &'a Buckets) -> Option<NativeCells<'a>> {
        let spec = buckets.native.as_ref()?;
        (self.native as usize == spec.cells())
            .then(|| NativeCells::new(spec, self.native_slice(), Overflow::Grows(&self.extension)))
    }

    /// Keeps a traced observation that fell in classic bucket `bucket` as the exemplar.
    #[cold]
    pub fn keep_exemplar(&self, bucket: usize, trace_id: [u8; 16], span_id: [u8; 8], duration_ns: u64) {
        ExemplarCells(self.exemplar_cells()).record(bucket, trace_id, span_id, duration_ns);
    }

    /// The latest exemplar per classic bucket (empty when there is none).
    pub fn exemplars(&self) -> Box<[Option<Exemplar>]> {
        crate::model::exemplar::latest_per_bucket(self.buckets as usize, self.latest_exemplar())
    }

    fn latest_exemplar(&self) -> Option<(usize, Exemplar)> {
        if self.compact {
            ExemplarCells(self.exemplar.get()?).read()
        } else {
            ExemplarCells(self.exemplar_cells()).read()
        }
    }

    /// The exemplar's cells: after the native ones when wide, else allocated now if need be.
    fn exemplar_cells(&self) -> &[AtomicU64] {
        if self.compact {
            return self.exemplar.get_or_alloc();
        }
        // SAFETY: `in_place` and `new` guarantee the exemplar cells after the native ones.
        unsafe {
            std::slice::from_raw_parts(
                self.cells
                    .as_ptr()
                    .add(self.classic_cells() + self.native as usize),
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
        (0..self.buckets as usize).map(|i| self.count(i))
    }

    pub fn sum_ns(&self) -> u64 {
        self.sum_cell().load(Ordering::Relaxed)
    }

    /// Sets bucket `i`'s count, to bring it near [`WIDEN_AT`] without 2^31 observations.
    #[cfg(test)]
    pub(crate) fn set_count(&self, i: usize, n: u64) {
        assert!(i < self.buckets as usize);
        // SAFETY: bucket `i` is one of the histogram's counts.
        unsafe {
            if self.compact {
                let count = &*self.cells.as_ptr().add(1).cast::<AtomicU32>().add(i);
                count.store(u32::try_from(n).unwrap(), Ordering::Relaxed);
            } else {
                (*self.cells.as_ptr().add(i)).store(n, Ordering::Relaxed);
            }
        }
    }

    /// Whether these are compact cells.
    #[cfg(test)]
    pub(crate) fn is_compact(&self) -> bool {
        self.compact
    }

    /// Whether a count is at [`WIDEN_AT`] or past it: compact cells that must move to wide ones.
    pub(crate) fn needs_widening(&self) -> bool {
        self.compact && self.counts().any(|count| count >= u64::from(WIDEN_AT))
    }

    /// Adds another histogram's counts, sum and native buckets to this one (same buckets,
    /// either layout), and takes its exemplar. False when compact counts here could not take
    /// the other's (see [`WIDEN_AT`]): then nothing is added, and the caller adds into wide
    /// cells instead.
    pub(crate) fn add_from(&self, buckets: &Buckets, other: &Histogram) -> bool {
        let buckets_n = self.buckets.min(other.buckets) as usize;
        if self.compact && (0..buckets_n).any(|i| self.count(i) + other.count(i) >= u64::from(WIDEN_AT)) {
            return false;
        }
        for i in 0..buckets_n {
            let n = other.count(i);
            if n != 0 {
                self.add_count(i, n);
            }
        }
        self.sum_cell().fetch_add(other.sum_ns(), Ordering::Relaxed);
        if let (Some(ours), Some(theirs)) = (self.native_cells_of(buckets), other.native(buckets)) {
            ours.add(&theirs);
        }
        if let Some((bucket, exemplar)) = other.latest_exemplar() {
            ExemplarCells(self.exemplar_cells()).put(bucket, &exemplar);
        }
        true
    }
}

/// Starts fetching the cache line of `cell`. The sum and the bucket are usually on different
/// lines, and an atomic add waits for its line before the next instruction's miss may start: a
/// series not in cache would cost two memory latencies in a row instead of one.
#[inline(always)]
pub(crate) fn prefetch<T>(cell: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((cell as *const T).cast());
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

    /// A compact histogram carved from an arena, of `buckets`.
    fn compact(buckets: &Buckets) -> Histogram {
        crate::model::cells::CellArena::default().histogram(buckets)
    }

    #[test]
    fn compact_cells_count_and_sum_like_wide_ones() {
        let buckets = Buckets::last9_default().with_native(Some(NativeSpec::default_spec()));
        let (small, wide) = (compact(&buckets), Histogram::new(&buckets));
        assert!(small.is_compact() && !wide.is_compact());
        for ms in [0.1, 1.0, 1.0, 7.5, 300.0, 1e6] {
            small.observe(&buckets, (ms * 1e6) as u64);
            wide.observe(&buckets, (ms * 1e6) as u64);
        }
        assert!(small.exemplar.get().is_none(), "untraced: no exemplar cells");
        assert!(small.exemplars().iter().all(Option::is_none));
        small.keep_exemplar(4, [1; 16], [2; 8], 1_000_000);
        wide.keep_exemplar(4, [1; 16], [2; 8], 1_000_000);
        assert_eq!(
            small.counts().collect::<Vec<_>>(),
            wide.counts().collect::<Vec<_>>()
        );
        assert_eq!(small.counts().sum::<u64>(), 6);
        assert_eq!(small.counts().last(), Some(1), "1e6 ms is past the last bound");
        assert_eq!(small.sum_ns(), wide.sum_ns());
        assert_eq!(small.native(&buckets), wide.native(&buckets));
        assert_eq!(small.native(&buckets).unwrap().count(), 6);
        assert_eq!(small.exemplars()[4].unwrap().trace_id, [1; 16]);
    }

    #[test]
    fn compact_cells_refuse_counts_that_would_reach_the_widening_mark() {
        let buckets = Buckets::new(&[1.0]).unwrap();
        let big = Histogram::new(&buckets);
        big.set_count(1, u64::from(u32::MAX) + 5);
        big.observe(&buckets, 7);
        let small = compact(&buckets);
        small.observe(&buckets, 3);
        assert!(!small.add_from(&buckets, &big), "the counts do not fit in u32");
        assert_eq!(
            small.counts().collect::<Vec<_>>(),
            vec![1, 0],
            "nothing was added"
        );
        assert_eq!(small.sum_ns(), 3);
        let wide = Histogram::new(&buckets);
        assert!(wide.add_from(&buckets, &small) && wide.add_from(&buckets, &big));
        assert_eq!(
            wide.counts().collect::<Vec<_>>(),
            vec![2, u64::from(u32::MAX) + 5]
        );
        assert_eq!(wide.sum_ns(), 10);
    }

    #[test]
    fn a_compact_count_reports_the_widening_mark_once_reached() {
        let buckets = Buckets::new(&[1.0]).unwrap();
        let small = compact(&buckets);
        small.set_count(0, u64::from(WIDEN_AT) - 2);
        let classic = small.classic();
        // SAFETY: `small` is alive.
        assert_eq!(unsafe { classic.observe(&buckets, 5) }, (0, false));
        assert!(!small.needs_widening());
        assert_eq!(unsafe { classic.observe(&buckets, 5) }, (0, true));
        assert!(small.needs_widening());
        assert_eq!(small.counts().next(), Some(u64::from(WIDEN_AT)));
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
