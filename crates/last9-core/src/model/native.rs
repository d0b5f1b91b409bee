//! Native (sparse, exponential) histograms: Prometheus's standard schemas, recorded lock-free.
//!
//! A bucket of schema `s` has index `i` and covers `(base^(i-1), base^i]` milliseconds, with
//! `base = 2^(2^-s)` (schema 3: eight buckets per power of two, each about 9% wide). Values at
//! or below the zero threshold go to the zero bucket. Durations are never negative, so only
//! positive buckets exist.
//!
//! The buckets of one series live in a small open-addressed table of `u64` cells, each holding
//! a bucket's key (schema and index) in its top bits and its count below. Recording is one
//! load and one `fetch_add` on the bucket's cell; a bucket seen for the first time is claimed
//! with one compare-and-swap. Keys never move and cells are never freed, so readers and
//! writers need no lock, and the table can live in a worker's mapped file like the classic
//! cells. The slot of index `i` is `i mod slots`: the buckets a series uses are a contiguous
//! run, so they rarely collide.
//!
//! Bucket limit (the spec's strategy, reduce resolution rather than grow): a series keeps at
//! most `max_buckets` buckets at the configured schema. An observation that would need one
//! more is counted in the bucket of the coarsest schema (-4) that holds it, from a few slots
//! kept in reserve, and a reader then reduces the whole series to that schema: counts stay
//! exact, resolution drops. Readers also reduce (merge neighbours, exactly) until a series has
//! at most `max_buckets` buckets, and series of different schemas (from several processes)
//! are added at the coarser one, as Prometheus does.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::Error;

/// Schemas the spec defines for exponential buckets.
pub const MIN_SCHEMA: i8 = -4;
pub const MAX_SCHEMA: i8 = 8;
/// The spec's default (client_golang's `NativeHistogramBucketFactor` 1.1 gives 3 too).
pub const DEFAULT_SCHEMA: i8 = 3;
/// client_golang's documented recommendation for `NativeHistogramMaxBucketNumber`.
pub const DEFAULT_MAX_BUCKETS: u32 = 160;
/// Durations at or below this many milliseconds count as zero (the spec's default, 2^-128).
pub const DEFAULT_ZERO_THRESHOLD_MS: f64 = 2.938_735_877_055_719e-39;

/// Bucket indexes kept in a key: schema 8 over 2^-32..2^32 ms (sub-nanosecond to 49 days).
const INDEX_BITS: u32 = 14;
const INDEX_BIAS: i32 = 1 << (INDEX_BITS - 1);
/// Key = (schema + 5) << INDEX_BITS | (index + bias): never zero, so a zero cell is empty.
const KEY_BITS: u32 = 4 + INDEX_BITS;
const COUNT_BITS: u32 = 64 - KEY_BITS;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Slots kept for schema -4 keys: a u64 of nanoseconds spans indexes -1..=3 there.
const RESERVE: usize = 6;
/// Cells before the slots: the zero bucket's count, then the number of claimed slots.
const HEADER_CELLS: usize = 2;
/// Slots a histogram on the heap keeps inline: enough for a route whose durations span a factor
/// of about four at schema 3. A series that spreads wider gets an [`Extension`] with room for
/// its whole bucket limit, allocated once, when the inline slots are full. (A worker's file has
/// no extension: its records hold every slot.)
pub const INLINE_SLOTS: usize = 16;

/// How a recorder's native histograms are shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeSpec {
    schema: i8,
    zero_threshold_ms: f64,
    max_buckets: u32,
}

/// For each schema s in 1..=8, the upper bounds of its `2^s` buckets between 0.5 and 1.
fn fraction_bounds(schema: i8) -> &'static [f64] {
    static BOUNDS: std::sync::OnceLock<Vec<Vec<f64>>> = std::sync::OnceLock::new();
    let all = BOUNDS.get_or_init(|| {
        (0..=MAX_SCHEMA)
            .map(|s| {
                let n = 1usize << s;
                (0..n).map(|j| 2f64.powf(j as f64 / n as f64 - 1.0)).collect()
            })
            .collect()
    });
    &all[schema as usize]
}

impl NativeSpec {
    /// Checks a schema (-4..=8), a zero threshold (finite, ≥ 0, in ms) and a bucket limit (≥ 1).
    pub fn new(schema: i8, zero_threshold_ms: f64, max_buckets: u32) -> Result<NativeSpec, Error> {
        if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&schema) {
            return Err(Error::InvalidBuckets(format!(
                "native histogram schema {schema} is outside {MIN_SCHEMA}..={MAX_SCHEMA}"
            )));
        }
        if !zero_threshold_ms.is_finite() || zero_threshold_ms < 0.0 {
            return Err(Error::InvalidBuckets(format!(
                "native histogram zero threshold {zero_threshold_ms} must be finite and at least 0"
            )));
        }
        if !(1..=4096).contains(&max_buckets) {
            return Err(Error::InvalidBuckets(format!(
                "native histogram bucket limit {max_buckets} must be between 1 and 4096"
            )));
        }
        Ok(NativeSpec {
            schema,
            zero_threshold_ms,
            max_buckets,
        })
    }

    pub fn default_spec() -> NativeSpec {
        NativeSpec::new(DEFAULT_SCHEMA, DEFAULT_ZERO_THRESHOLD_MS, DEFAULT_MAX_BUCKETS)
            .expect("defaults are valid")
    }

    pub fn schema(&self) -> i8 {
        self.schema
    }

    pub fn zero_threshold_ms(&self) -> f64 {
        self.zero_threshold_ms
    }

    pub fn max_buckets(&self) -> u32 {
        self.max_buckets
    }

    /// Slots of a series' table.
    fn slots(&self) -> usize {
        self.max_buckets as usize + RESERVE
    }

    /// Cells a series needs: the zero count, the claim count and the slots.
    pub fn cells(&self) -> usize {
        HEADER_CELLS + self.slots()
    }

    /// Cells of a series on the heap, whose slots past [`INLINE_SLOTS`] go to an [`Extension`].
    pub fn inline_cells(&self) -> usize {
        HEADER_CELLS + self.slots().min(INLINE_SLOTS)
    }

    /// The bucket index of `value_ms` (> 0) at this spec's schema.
    fn index_of(&self, value_ms: f64) -> i32 {
        let (frac, exp) = frexp(value_ms);
        let index = if self.schema > 0 {
            let bounds = fraction_bounds(self.schema);
            let j = bounds.partition_point(|b| *b < frac);
            j as i32 + (exp - 1) * bounds.len() as i32
        } else {
            let key = if frac == 0.5 { exp - 1 } else { exp };
            let shift = -self.schema as u32;
            (key + (1 << shift) - 1) >> shift
        };
        index.clamp(-INDEX_BIAS, INDEX_BIAS - 1)
    }
}

/// `value = frac × 2^exp` with `frac` in [0.5, 1), for finite positive normal values.
fn frexp(value: f64) -> (f64, i32) {
    let bits = value.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// The index at `schema - by` of bucket `index`: neighbours merge pairwise (`ceil(i / 2)`).
fn coarser(index: i32, by: u32) -> i32 {
    if by == 0 {
        return index;
    }
    (index + (1 << by) - 1) >> by
}

fn key(schema: i8, index: i32) -> u64 {
    let index = index.clamp(-INDEX_BIAS, INDEX_BIAS - 1);
    ((schema as i64 + 5) as u64) << INDEX_BITS | (index + INDEX_BIAS) as u64
}

fn unkey(key: u64) -> (i8, i32) {
    let schema = (key >> INDEX_BITS) as i64 - 5;
    let index = (key & ((1 << INDEX_BITS) - 1)) as i32 - INDEX_BIAS;
    (schema as i8, index)
}

/// The second table of a series on the heap, allocated when its inline slots are full (one
/// compare-and-swap decides whose allocation stays), freed with the series.
#[derive(Debug, Default)]
pub struct Extension(AtomicPtr<Box<[AtomicU64]>>);

impl Extension {
    /// The table, allocated with `len` slots if there is none yet.
    fn get_or_alloc(&self, len: usize) -> &[AtomicU64] {
        if let Some(table) = self.get() {
            return table;
        }
        let fresh: Box<Box<[AtomicU64]>> = Box::new((0..len).map(|_| AtomicU64::new(0)).collect());
        let fresh = Box::into_raw(fresh);
        match self
            .0
            .compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            // SAFETY: `fresh` was never shared: another thread's table won.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
        self.get().expect("a table was installed")
    }

    fn get(&self) -> Option<&[AtomicU64]> {
        let table = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer is a table installed by `get_or_alloc`, freed only by drop.
        (!table.is_null()).then(|| unsafe { &**table } as &[AtomicU64])
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        let table = *self.0.get_mut();
        if !table.is_null() {
            // SAFETY: installed by `get_or_alloc` from `Box::into_raw`, and no reader is left.
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

/// The native buckets of one series, over `cells` (see [`NativeSpec::cells`]).
pub struct NativeCells<'a> {
    spec: &'a NativeSpec,
    cells: &'a [AtomicU64],
    extension: Option<&'a Extension>,
}

/// What a probe of one table found.
#[derive(PartialEq)]
enum Probe {
    Counted,
    /// The bucket has no slot, and claiming one was not allowed.
    Refused,
    /// The bucket has no slot, and every slot is taken.
    Full,
}

impl<'a> NativeCells<'a> {
    /// `cells` must be `spec.cells()` long.
    pub fn new(spec: &'a NativeSpec, cells: &'a [AtomicU64]) -> NativeCells<'a> {
        debug_assert_eq!(cells.len(), spec.cells());
        NativeCells {
            spec,
            cells,
            extension: None,
        }
    }

    /// Over `spec.inline_cells()` cells and the extension that holds the other slots.
    pub fn with_extension(
        spec: &'a NativeSpec,
        cells: &'a [AtomicU64],
        extension: &'a Extension,
    ) -> NativeCells<'a> {
        debug_assert_eq!(cells.len(), spec.inline_cells());
        NativeCells {
            spec,
            cells,
            extension: Some(extension),
        }
    }

    fn slots(&self) -> &[AtomicU64] {
        &self.cells[HEADER_CELLS..]
    }

    /// Slots of the extension, when there is one now.
    fn extension_slots(&self) -> &[AtomicU64] {
        self.extension.and_then(Extension::get).unwrap_or(&[])
    }

    /// Records one duration.
    #[inline]
    pub fn observe(&self, duration_ns: u64) {
        let value_ms = duration_ns as f64 / 1e6;
        if value_ms <= self.spec.zero_threshold_ms {
            self.cells[0].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let index = self.spec.index_of(value_ms);
        if !self.add_count(self.spec.schema, index, 1, true) {
            self.add_coarser(self.spec.schema, index, 1);
        }
    }

    /// Adds the buckets of another histogram (a series moving to new cells).
    pub fn add(&self, other: &NativeBuckets) {
        self.cells[0].fetch_add(other.zero_count, Ordering::Relaxed);
        for &(index, count) in &other.buckets {
            if !self.add_count(other.schema, index, count, true) {
                self.add_coarser(other.schema, index, count);
            }
        }
    }

    /// The table is full: count in the finest coarser bucket that exists, else at schema -4.
    #[cold]
    fn add_coarser(&self, schema: i8, index: i32, count: u64) {
        for by in 1..=(schema - MIN_SCHEMA) as u32 {
            let coarse = schema - by as i8;
            if self.add_count(coarse, coarser(index, by), count, coarse == MIN_SCHEMA) {
                return;
            }
        }
        // Reached only when (schema, index) is already at -4 and its slot cannot be had, which
        // RESERVE rules out; never lose the count.
        self.cells[0].fetch_add(count, Ordering::Relaxed);
    }

    /// Adds `count` to bucket (schema, index); claims a slot for it if `may_claim`. False when
    /// the bucket has no slot and none could be claimed.
    fn add_count(&self, schema: i8, index: i32, count: u64, may_claim: bool) -> bool {
        match self.probe(self.slots(), schema, index, count, may_claim) {
            Probe::Counted => true,
            Probe::Refused => false,
            Probe::Full => match self.extension {
                Some(extension) if self.slots().len() < self.spec.slots() => {
                    let table = extension.get_or_alloc(self.spec.slots());
                    self.probe(table, schema, index, count, may_claim) == Probe::Counted
                }
                _ => false,
            },
        }
    }

    /// Adds `count` to bucket (schema, index) in one table of slots.
    fn probe(&self, slots: &[AtomicU64], schema: i8, index: i32, count: u64, may_claim: bool) -> Probe {
        let key = key(schema, index);
        let start = (index as i64 + schema as i64 * 61).rem_euclid(slots.len() as i64) as usize;
        for probe in 0..slots.len() {
            let slot = &slots[(start + probe) % slots.len()];
            let mut word = slot.load(Ordering::Relaxed);
            if word == 0 {
                if !may_claim || !self.reserve_slot(schema) {
                    return Probe::Refused;
                }
                match slot.compare_exchange(
                    0,
                    key << COUNT_BITS | count,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Probe::Counted,
                    Err(now) => {
                        self.cells[1].fetch_sub(1, Ordering::Relaxed);
                        word = now;
                    }
                }
            }
            if word >> COUNT_BITS == key {
                slot.fetch_add(count, Ordering::Relaxed);
                return Probe::Counted;
            }
        }
        Probe::Full
    }

    /// Counts a claim unless the configured schema has used up its share of the slots.
    fn reserve_slot(&self, schema: i8) -> bool {
        let claimed = self.cells[1].fetch_add(1, Ordering::Relaxed);
        if schema == MIN_SCHEMA || (claimed as usize) < self.spec.max_buckets as usize {
            return true;
        }
        self.cells[1].fetch_sub(1, Ordering::Relaxed);
        false
    }

    /// The buckets as they are now, reduced to the spec's limits.
    pub fn read(&self) -> NativeBuckets {
        let mut buckets = NativeBuckets {
            schema: self.spec.schema,
            zero_threshold_ms: self.spec.zero_threshold_ms,
            zero_count: self.cells[0].load(Ordering::Relaxed),
            buckets: Vec::new(),
        };
        let mut entries: Vec<(i8, i32, u64)> = Vec::new();
        for slot in self.slots().iter().chain(self.extension_slots()) {
            let word = slot.load(Ordering::Relaxed);
            if word != 0 {
                let (schema, index) = unkey(word >> COUNT_BITS);
                buckets.schema = buckets.schema.min(schema);
                entries.push((schema, index, word & COUNT_MASK));
            }
        }
        buckets.buckets = entries
            .into_iter()
            .map(|(schema, index, count)| (coarser(index, (schema - buckets.schema) as u32), count))
            .collect();
        buckets.normalize();
        buckets.limit(self.spec.max_buckets);
        buckets
    }
}

/// The positive buckets of a native histogram at one schema: `(index, count)` pairs in
/// increasing index order, no empty ones.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeBuckets {
    pub schema: i8,
    pub zero_threshold_ms: f64,
    pub zero_count: u64,
    pub buckets: Vec<(i32, u64)>,
}

impl NativeBuckets {
    /// Observations in every bucket, the zero bucket included.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(self.zero_count, |sum, (_, n)| sum.wrapping_add(*n))
    }

    /// Sorts by index and merges equal indexes.
    fn normalize(&mut self) {
        self.buckets.sort_unstable_by_key(|(index, _)| *index);
        self.buckets.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 = kept.1.wrapping_add(later.1);
                true
            } else {
                false
            }
        });
        self.buckets.retain(|(_, count)| *count != 0);
    }

    /// Merges neighbours into the next coarser schema.
    fn reduce_to(&mut self, schema: i8) {
        if schema < self.schema {
            let by = (self.schema - schema) as u32;
            for bucket in &mut self.buckets {
                bucket.0 = coarser(bucket.0, by);
            }
            self.schema = schema;
            self.normalize();
        }
    }

    /// The spec's bucket limit: halve the resolution until the buckets fit (or schema -4).
    pub fn limit(&mut self, max_buckets: u32) {
        while self.buckets.len() > max_buckets as usize && self.schema > MIN_SCHEMA {
            self.reduce_to(self.schema - 1);
        }
    }

    /// Adds another histogram's buckets, exactly, at the coarser of the two schemas. The wider
    /// zero bucket wins (buckets that fall inside it join its count).
    pub fn add(&mut self, other: &NativeBuckets) {
        let schema = self.schema.min(other.schema);
        self.reduce_to(schema);
        let mut other = other.clone();
        other.reduce_to(schema);
        self.zero_count = self.zero_count.wrapping_add(other.zero_count);
        self.buckets.extend(other.buckets);
        if other.zero_threshold_ms > self.zero_threshold_ms {
            self.zero_threshold_ms = other.zero_threshold_ms;
        }
        self.normalize();
        self.absorb_into_zero_bucket();
    }

    /// Moves buckets entirely inside the zero bucket into it.
    fn absorb_into_zero_bucket(&mut self) {
        let threshold = self.zero_threshold_ms;
        let schema = self.schema;
        let mut absorbed = 0u64;
        self.buckets.retain(|(index, count)| {
            let inside = upper_bound(schema, *index) <= threshold;
            if inside {
                absorbed = absorbed.wrapping_add(*count);
            }
            !inside
        });
        self.zero_count = self.zero_count.wrapping_add(absorbed);
    }

    /// Spans and deltas as the protobuf and remote-write formats carry them: each span is
    /// `(offset, length)`, the first offset absolute and later ones the gap after the previous
    /// span; each delta is a count minus the previous bucket's count.
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let mut previous_index = 0i32;
        let mut previous_count = 0i64;
        for (n, (index, count)) in self.buckets.iter().enumerate() {
            let gap = index - previous_index - 1;
            match spans.last_mut() {
                // Gaps of one or two empty buckets cost less as zero deltas than as a new span.
                Some(span) if n > 0 && gap <= 2 => {
                    for _ in 0..gap {
                        deltas.push(-previous_count);
                        previous_count = 0;
                    }
                    span.1 += gap as u32 + 1;
                }
                _ => spans.push((if n == 0 { *index } else { gap }, 1)),
            }
            deltas.push(*count as i64 - previous_count);
            previous_count = *count as i64;
            previous_index = *index;
        }
        (spans, deltas)
    }
}

/// Upper bound in milliseconds of bucket `index` at `schema`.
pub fn upper_bound(schema: i8, index: i32) -> f64 {
    (index as f64 * (-(schema as f64)).exp2()).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn table(spec: &NativeSpec) -> Vec<AtomicU64> {
        (0..spec.cells()).map(|_| AtomicU64::new(0)).collect()
    }

    fn ms(value: f64) -> u64 {
        (value * 1e6).round() as u64
    }

    #[test]
    fn indexes_follow_the_spec() {
        // Schema 0: buckets (2^(i-1), 2^i]; 1 is a bound, so 1 ms is index 0 and 1.5 is index 1.
        let spec = NativeSpec::new(0, 0.0, 160).unwrap();
        assert_eq!(spec.index_of(1.0), 0);
        assert_eq!(spec.index_of(1.5), 1);
        assert_eq!(spec.index_of(2.0), 1);
        assert_eq!(spec.index_of(0.5), -1);
        assert_eq!(spec.index_of(0.3), -1);
        // Schema 3: eight buckets per power of two; 2 ms is the upper bound of index 8.
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        assert_eq!(spec.index_of(2.0), 8);
        assert_eq!(spec.index_of(2.0001), 9);
        assert_eq!(spec.index_of(1.0), 0);
        assert_eq!(spec.index_of(1.05), 1);
        // Schema -1: buckets (4^(i-1), 4^i].
        let spec = NativeSpec::new(-1, 0.0, 160).unwrap();
        assert_eq!(spec.index_of(4.0), 1);
        assert_eq!(spec.index_of(4.1), 2);
        assert_eq!(spec.index_of(1.0), 0);
        assert_eq!(spec.index_of(0.9), 0);
    }

    #[test]
    fn every_value_is_inside_its_bucket() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            let spec = NativeSpec::new(schema, 0.0, 160).unwrap();
            for k in 0..2000 {
                let value = 0.001 * 1.013f64.powi(k);
                let index = spec.index_of(value);
                let (low, high) = (upper_bound(schema, index - 1), upper_bound(schema, index));
                assert!(
                    low < value * (1.0 + 1e-12) && value <= high * (1.0 + 1e-12),
                    "{schema} {value} {index}"
                );
            }
        }
    }

    #[test]
    fn reduction_merges_pairs_exactly() {
        assert_eq!(coarser(1, 1), 1);
        assert_eq!(coarser(2, 1), 1);
        assert_eq!(coarser(0, 1), 0);
        assert_eq!(coarser(-1, 1), 0);
        assert_eq!(coarser(-2, 1), -1);
        assert_eq!(coarser(8, 3), 1);
        assert_eq!(coarser(9, 3), 2);
    }

    #[test]
    fn observations_are_counted_per_bucket() {
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        let cells = table(&spec);
        let native = NativeCells::new(&spec, &cells);
        native.observe(0);
        native.observe(ms(2.0));
        native.observe(ms(2.0));
        native.observe(ms(50.0));
        let read = native.read();
        assert_eq!(read.schema, 3);
        assert_eq!(read.zero_count, 1);
        assert_eq!(read.buckets, vec![(8, 2), (spec.index_of(50.0), 1)]);
        assert_eq!(read.count(), 4);
    }

    #[test]
    fn threads_lose_no_observation() {
        let spec = NativeSpec::new(3, 0.0, 40).unwrap();
        let cells: Arc<Vec<AtomicU64>> = Arc::new(table(&spec));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    let native = NativeCells::new(&spec, &cells);
                    for i in 0..20_000u64 {
                        native.observe((i * 7919 + t) % 5_000_000_000);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let read = NativeCells::new(&spec, &cells).read();
        assert_eq!(read.count(), 80_000);
        assert!(read.buckets.len() <= 40);
    }

    #[test]
    fn a_full_table_reduces_resolution_and_keeps_every_count() {
        let spec = NativeSpec::new(3, 0.0, 4).unwrap();
        let cells = table(&spec);
        let native = NativeCells::new(&spec, &cells);
        for value in [1.0, 2.0, 4.0, 8.0, 16.0, 1000.0, 100_000.0] {
            native.observe(ms(value));
        }
        let read = native.read();
        assert_eq!(read.count(), 7);
        assert!(read.buckets.len() <= 4);
        assert!(read.schema < 3);
    }

    #[test]
    fn a_heap_series_grows_past_its_inline_slots_once_and_exactly() {
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        let cells: Arc<Vec<AtomicU64>> =
            Arc::new((0..spec.inline_cells()).map(|_| AtomicU64::new(0)).collect());
        let extension = Arc::new(Extension::default());
        // 0.5 ms to 2 s: about 96 buckets, far more than the inline slots.
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (cells, extension) = (cells.clone(), extension.clone());
                std::thread::spawn(move || {
                    let native = NativeCells::with_extension(&spec, &cells, &extension);
                    for i in 0..10_000u64 {
                        let ms = 0.5 * 4000f64.powf(((i * 7 + t) % 1000) as f64 / 999.0);
                        native.observe((ms * 1e6) as u64);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let read = NativeCells::with_extension(&spec, &cells, &extension).read();
        assert_eq!(read.count(), 40_000);
        assert_eq!(read.schema, 3, "no resolution lost: the limit is 160");
        assert!(read.buckets.len() > INLINE_SLOTS, "{}", read.buckets.len());
        assert!(extension.get().is_some());
        // The same observations in a full-size table read the same.
        let full: Vec<AtomicU64> = (0..spec.cells()).map(|_| AtomicU64::new(0)).collect();
        NativeCells::new(&spec, &full).add(&read);
        assert_eq!(NativeCells::new(&spec, &full).read(), read);
    }

    #[test]
    fn mixed_schemas_add_at_the_coarser() {
        let fine = NativeBuckets {
            schema: 3,
            zero_threshold_ms: 0.0,
            zero_count: 1,
            buckets: vec![(7, 1), (8, 2), (9, 4)],
        };
        let mut coarse = NativeBuckets {
            schema: 2,
            zero_threshold_ms: 0.0,
            zero_count: 0,
            buckets: vec![(4, 10)],
        };
        coarse.add(&fine);
        assert_eq!(coarse.schema, 2);
        assert_eq!(coarse.zero_count, 1);
        assert_eq!(coarse.buckets, vec![(4, 13), (5, 4)]);
    }

    #[test]
    fn spans_and_deltas_follow_the_wire_format() {
        let buckets = NativeBuckets {
            schema: 3,
            zero_threshold_ms: 0.0,
            zero_count: 0,
            buckets: vec![(-2, 3), (-1, 5), (1, 2), (10, 1)],
        };
        let (spans, deltas) = buckets.spans_and_deltas();
        // One empty bucket (index 0) is carried as a zero delta; the gap to 10 is a new span.
        assert_eq!(spans, vec![(-2, 4), (8, 1)]);
        assert_eq!(deltas, vec![3, 2, -5, 2, -1]);
    }
}
